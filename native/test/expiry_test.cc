// The expiry schedule: ExpiryWheel on its own (due entries, later laps, budgets, compaction) and
// the store's sweeper built on it (frees what is due, only that, within a second of expiry,
// whatever touch/replace did to the item since). Time moves with advance_clock(), never sleeps.
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "store/expiry_wheel.h"
#include "store/store.h"

using gravity::ExpiryWheel;
using gravity::Item;
using gravity::Store;
using gravity::StoreOptions;
using gravity::StoreStats;

namespace {

using Visit = ExpiryWheel::Visit;

std::vector<ExpiryWheel::Entry> advance_all(ExpiryWheel& wheel, int64_t now, size_t budget = 1 << 20) {
  std::vector<ExpiryWheel::Entry> seen;
  wheel.advance(now, budget, [&](const ExpiryWheel::Entry& e) {
    seen.push_back(e);
    return Visit::Drop;
  });
  return seen;
}

StoreOptions one_shard() {
  StoreOptions options;
  options.memory_bytes = 64 << 20;
  options.max_item_bytes = 1024;
  options.shard_count = 1;
  return options;
}

void set(Store& store, const std::string& key, int64_t expires_at) {
  Store::Locked locked(store, key);
  Item* item = locked.allocate(5, 0, expires_at);
  CHECK(item != nullptr);
  if (item == nullptr) return;
  std::memcpy(item->value_data(), "value", 5);
  locked.link(item, store.now());
}

bool present(Store& store, const std::string& key) {
  Store::Locked locked(store, key);
  return locked.find(store.now()) != nullptr;
}

void set_expiry(Store& store, const std::string& key, int64_t expires_at) {
  Store::Locked locked(store, key);
  Item* item = locked.find(store.now());
  CHECK(item != nullptr);
  if (item != nullptr) locked.set_expiry(item, expires_at);
}

}  // namespace

TEST(wheel_visits_entries_when_due_and_not_before) {
  ExpiryWheel wheel;
  const int64_t t0 = 1'000'000;
  CHECK(advance_all(wheel, t0).empty());
  wheel.add(1, t0 + 1);
  wheel.add(2, t0 + 3);
  wheel.add(3, t0 + 3 + ExpiryWheel::kBuckets);  // same bucket as 2, a lap later
  CHECK_EQ(wheel.entries(), 3u);
  CHECK(advance_all(wheel, t0).empty());
  std::vector<ExpiryWheel::Entry> due = advance_all(wheel, t0 + 1);
  CHECK_EQ(due.size(), 1u);
  CHECK_EQ(due[0].hash, 1u);
  due = advance_all(wheel, t0 + 3);
  CHECK_EQ(due.size(), 1u);
  CHECK_EQ(due[0].hash, 2u);
  CHECK_EQ(wheel.entries(), 1u);
  CHECK(advance_all(wheel, t0 + 2 + ExpiryWheel::kBuckets).empty());
  due = advance_all(wheel, t0 + 3 + ExpiryWheel::kBuckets);
  CHECK_EQ(due.size(), 1u);
  CHECK_EQ(due[0].hash, 3u);
  CHECK_EQ(wheel.entries(), 0u);
}

TEST(wheel_entry_in_the_past_is_due_next) {
  ExpiryWheel wheel;
  const int64_t t0 = 5'000'000;
  advance_all(wheel, t0);
  wheel.add(7, 1);  // memcached's "already expired"
  wheel.add(8, t0);  // this very second, already swept
  CHECK_EQ(advance_all(wheel, t0 + 1).size(), 2u);
}

TEST(wheel_budget_resumes_inside_a_bucket) {
  ExpiryWheel wheel;
  const int64_t t0 = 2'000'000;
  advance_all(wheel, t0);
  for (uint64_t h = 1; h <= 100; ++h) wheel.add(h, t0 + 2);
  wheel.add(1000, t0 + 2 + ExpiryWheel::kBuckets);  // later lap, in the same bucket
  std::set<uint64_t> seen;
  size_t calls = 0;
  while (seen.size() < 100 && calls < 1000) {
    ++calls;
    const size_t visited = wheel.advance(t0 + 2, 7, [&](const ExpiryWheel::Entry& e) {
      CHECK(seen.insert(e.hash).second);  // never twice
      return Visit::Drop;
    });
    CHECK(visited <= 7u);
  }
  CHECK_EQ(seen.size(), 100u);
  CHECK(calls >= 100 / 7);
  CHECK_EQ(wheel.entries(), 1u);  // the later lap's entry stays
  // Keep leaves an entry in place for the next lap of its bucket.
  ExpiryWheel keep;
  advance_all(keep, t0);
  keep.add(42, t0 + 1);
  keep.advance(t0 + 1, 10, [](const ExpiryWheel::Entry&) { return Visit::Keep; });
  CHECK_EQ(keep.entries(), 1u);
  CHECK_EQ(advance_all(keep, t0 + 1 + ExpiryWheel::kBuckets).size(), 1u);
}

TEST(wheel_compact_drops_dead_and_duplicate_entries) {
  ExpiryWheel wheel;
  const int64_t t0 = 3'000'000;
  advance_all(wheel, t0);
  for (uint64_t h = 1; h <= 50; ++h) {
    wheel.add(h, t0 + static_cast<int64_t>(h));
    wheel.add(h, t0 + static_cast<int64_t>(h));  // replaced by an item with the same expiry
  }
  CHECK_EQ(wheel.entries(), 100u);
  wheel.compact([](const ExpiryWheel::Entry& e) { return e.hash % 2 == 0; });
  CHECK_EQ(wheel.entries(), 25u);
  std::vector<ExpiryWheel::Entry> due = advance_all(wheel, t0 + 50);
  CHECK_EQ(due.size(), 25u);
  for (const ExpiryWheel::Entry& e : due) CHECK_EQ(e.hash % 2, 0u);
}

TEST(wheel_compact_during_an_interrupted_sweep) {
  ExpiryWheel wheel;
  const int64_t t0 = 4'000'000;
  advance_all(wheel, t0);
  for (uint64_t h = 1; h <= 20; ++h) wheel.add(h, t0 + 1);
  std::set<uint64_t> seen;
  wheel.advance(t0 + 1, 5, [&](const ExpiryWheel::Entry& e) {
    seen.insert(e.hash);
    return Visit::Drop;
  });
  CHECK_EQ(seen.size(), 5u);
  wheel.compact([](const ExpiryWheel::Entry&) { return true; });
  CHECK_EQ(wheel.entries(), 15u);
  for (const ExpiryWheel::Entry& e : advance_all(wheel, t0 + 1)) CHECK(seen.insert(e.hash).second);
  CHECK_EQ(seen.size(), 20u);
  CHECK_EQ(wheel.entries(), 0u);
}

TEST(sweeper_frees_items_within_a_second_of_expiry) {
  Store store(one_shard());
  const int64_t t0 = store.now();
  for (int i = 0; i < 1000; ++i) set(store, "soon" + std::to_string(i), t0 + 2);
  for (int i = 0; i < 1000; ++i) set(store, "later" + std::to_string(i), t0 + 1000);
  for (int i = 0; i < 1000; ++i) set(store, "never" + std::to_string(i), 0);
  const uint64_t bytes_before = store.stats().bytes;
  store.advance_clock(1);
  CHECK_EQ(store.sweep_expired(store.now(), 1 << 20), 0u);
  store.advance_clock(1);
  CHECK_EQ(store.sweep_expired(store.now(), 1 << 20), 1000u);
  StoreStats stats = store.stats();
  CHECK_EQ(stats.curr_items, 2000u);
  CHECK_EQ(stats.reclaimed, 1000u);
  CHECK(stats.bytes < bytes_before);
  CHECK(present(store, "later0"));
  store.advance_clock(ExpiryWheel::kBuckets);  // a lap: "later" is seen and kept
  CHECK_EQ(store.sweep_expired(store.now(), 1 << 20), 0u);
  store.advance_clock(1000);
  CHECK_EQ(store.sweep_expired(store.now(), 1 << 20), 1000u);
  CHECK_EQ(store.stats().curr_items, 1000u);
}

TEST(sweeper_follows_touch_and_replace) {
  Store store(one_shard());
  const int64_t t0 = store.now();
  set(store, "touched-later", t0 + 5);
  set(store, "touched-forever", t0 + 5);
  set(store, "replaced", t0 + 5);
  set(store, "touched-sooner", t0 + 50);
  set_expiry(store, "touched-later", t0 + 20);
  set_expiry(store, "touched-forever", 0);
  set(store, "replaced", t0 + 30);
  set_expiry(store, "touched-sooner", t0 + 3);
  store.advance_clock(3);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 1u);
  CHECK(!present(store, "touched-sooner"));
  store.advance_clock(2);  // t0 + 5: every stale entry comes due, nothing is freed
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 0u);
  CHECK(present(store, "touched-later"));
  CHECK(present(store, "touched-forever"));
  CHECK(present(store, "replaced"));
  store.advance_clock(15);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 1u);
  CHECK(!present(store, "touched-later"));
  store.advance_clock(10);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 1u);
  CHECK(!present(store, "replaced"));
  CHECK(present(store, "touched-forever"));
}

TEST(sweeper_budget_bounds_each_call) {
  Store store(one_shard());
  const int64_t t0 = store.now();
  for (int i = 0; i < 5000; ++i) set(store, "k" + std::to_string(i), t0 + 1);
  store.advance_clock(1);
  size_t total = 0, calls = 0;
  while (total < 5000 && calls < 10000) {
    const size_t freed = store.sweep_expired(store.now(), 100);
    CHECK(freed <= 100u);
    total += freed;
    ++calls;
  }
  CHECK_EQ(total, 5000u);
  CHECK(calls >= 50u);
  CHECK_EQ(store.stats().curr_items, 0u);
}

// Setting the same keys over and over with a TTL leaves stale entries; compaction keeps their
// number near the item count.
TEST(rewrites_do_not_grow_the_schedule_without_bound) {
  Store store(one_shard());
  const int64_t t0 = store.now();
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 100; ++i) set(store, "k" + std::to_string(i), t0 + 10);
  }
  // 20,000 sets of 100 keys: compaction keeps at most 2 x 100 + 1024 entries (plus the one that
  // triggers it).
  CHECK(store.stats().expiry_entries <= 2 * 100 + 1024 + 1);
  CHECK(store.stats().expiry_entries >= 100u);
  store.advance_clock(10);
  store.sweep_expired(store.now(), 1 << 20);
  CHECK_EQ(store.stats().curr_items, 0u);
  CHECK_EQ(store.stats().expiry_entries, 0u);
}

RUN_TESTS("expiry_test")
