// Concurrent stress of the store: threads run mixed set/get/delete/touch/append-like rewrites on
// overlapping keys, with TTLs, delayed flushes and sweeps, against a small memory limit so that
// eviction never stops. Afterwards the accounting must add up:
//   bytes == sum of item_cost() of the items present <= memory_bytes, and
//   total_items == curr_items + removed + replaced + evictions + reclaimed.
// Values carry a fill byte derived from key and size, so a torn or freed item shows up as a
// wrong byte. Meant to run under TSan and ASan+UBSan (the run is bounded by time, not steps).
// Runs once per eviction policy.
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "store/store.h"

using gravity::Item;
using gravity::Store;
using gravity::StoreOptions;
using gravity::StoreStats;

namespace {

constexpr int kThreads = 6;
constexpr int kKeys = 3000;
constexpr auto kRunTime = std::chrono::milliseconds(1500);

std::string key_name(int i) { return "stress:" + std::to_string(i); }

char fill_for(int key_index, uint32_t size) { return static_cast<char>('a' + (key_index + size) % 26); }

struct Counts {
  uint64_t links = 0, removed = 0, replaced = 0, corrupt = 0, failed_allocs = 0, ops = 0;
};

bool value_intact(const Item* item, int key_index) {
  const char want = fill_for(key_index, item->value_size);
  const char* v = item->value_data();
  for (uint32_t i = 0; i < item->value_size; ++i) {
    if (v[i] != want) return false;
  }
  return true;
}

void worker(Store& store, int seed, const std::atomic<bool>& stop, Counts& counts) {
  std::mt19937 rng(seed);
  while (!stop.load(std::memory_order_relaxed)) {
    ++counts.ops;
    // Skewed key choice so that threads collide on hot keys.
    const int k = (rng() % 4 == 0) ? static_cast<int>(rng() % 32) : static_cast<int>(rng() % kKeys);
    const std::string key = key_name(k);
    const int op = static_cast<int>(rng() % 100);
    const int64_t now = store.now();
    if (op >= 60 && op < 80) {
      // A plain lookup holding the lock shared (Store::Access::kRead): it must see a whole value
      // while writers replace, evict, expire and free items of the same shard; expired and flushed
      // items met here make it take the lock alone and free them.
      Store::Locked reader(store, key, Store::Access::kRead);
      Item* item = reader.find(now);
      if (item == nullptr) continue;
      if (!value_intact(item, k)) ++counts.corrupt;
      reader.touch(item, now);
      continue;
    }
    Store::Locked locked(store, key);
    if (op < 40) {
      // set, sometimes keeping the old item alive through allocate() like append does
      Item* old = locked.find(now);
      if (old != nullptr && !value_intact(old, k)) ++counts.corrupt;
      const uint32_t size = (rng() % 16 == 0) ? rng() % 12000 : rng() % 400;
      const int64_t expires_at = (rng() % 4 == 0) ? now + 1 + rng() % 3 : 0;
      Item* item = locked.allocate(size, 0, expires_at, (op < 10) ? old : nullptr);
      if (item == nullptr) {
        ++counts.failed_allocs;
        continue;
      }
      std::memset(item->value_data(), fill_for(k, size), size);
      if (rng() % 10 == 0) {
        locked.discard(item);
        continue;
      }
      if (locked.find(now) != nullptr) ++counts.replaced;  // allocate() may have evicted it
      locked.link(item, now);
      ++counts.links;
    } else if (op < 60) {
      Item* item = locked.find(now, true);
      if (item == nullptr) continue;
      if (!value_intact(item, k)) ++counts.corrupt;
      item->bits |= Item::kFetched;
      locked.touch(item, now);
      ++locked.stats().get_hits;
    } else if (op < 92) {
      Item* item = locked.find(now);
      if (item == nullptr) continue;
      locked.remove(item);
      ++counts.removed;
    } else {
      Item* item = locked.find(now);
      if (item != nullptr) locked.bump_cas(item);
    }
  }
}

// Moves the clock, flushes with a delay and sweeps, while the workers run.
void janitor(Store& store, const std::atomic<bool>& stop, uint64_t& stats_reads) {
  std::mt19937 rng(99);
  while (!stop.load(std::memory_order_relaxed)) {
    const int op = static_cast<int>(rng() % 100);
    if (op < 2) {
      store.advance_clock(1);
    } else if (op < 3) {
      store.flush_all(store.now(), 1 + rng() % 2);
    } else if (op < 60) {
      store.sweep_expired(store.now(), 64);
    } else {
      StoreStats stats = store.stats();
      if (stats.bytes <= store.memory_bytes()) ++stats_reads;
    }
    std::this_thread::yield();
  }
}

void run_stress(const char* policy) {
  StoreOptions options;
  options.policy = policy;
  options.memory_bytes = 2ull << 20;
  options.max_item_bytes = 16 * 1024;  // 32 shards of 64 KiB, each >= 4 max-size items
  Store store(options);
  CHECK_EQ(store.shard_count(), 32u);

  std::atomic<bool> stop{false};
  std::vector<Counts> counts(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(worker, std::ref(store), 1000 + t, std::cref(stop), std::ref(counts[t]));
  }
  uint64_t stats_reads = 0;
  std::thread janitor_thread(janitor, std::ref(store), std::cref(stop), std::ref(stats_reads));
  std::this_thread::sleep_for(kRunTime);  // the run length, not a synchronisation
  stop.store(true);
  for (auto& thread : threads) thread.join();
  janitor_thread.join();

  Counts total;
  for (const Counts& c : counts) {
    total.links += c.links;
    total.removed += c.removed;
    total.replaced += c.replaced;
    total.corrupt += c.corrupt;
    total.failed_allocs += c.failed_allocs;
    total.ops += c.ops;
  }
  CHECK_EQ(total.corrupt, 0u);
  CHECK(total.ops > 1000);
  CHECK(stats_reads > 0);

  // Conservation: every link is still present or left exactly one way.
  StoreStats stats = store.stats();
  CHECK_EQ(total.failed_allocs, 0u);  // every shard holds 4 max-size items; no policy refuses
  if (options.policy == "lru") CHECK_EQ(stats.admissions_rejected, 0u);
  CHECK_EQ(stats.total_items, total.links);
  CHECK_EQ(stats.total_items,
           stats.curr_items + total.removed + total.replaced + stats.evictions + stats.reclaimed);
  CHECK(stats.evictions > 0);
  CHECK(stats.bytes <= options.memory_bytes);

  // bytes equals the cost of what a lookup finds (lookups free dead items, so read stats after).
  const int64_t now = store.now();
  uint64_t present_cost = 0, present = 0;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = key_name(k);
    Store::Locked locked(store, key);
    Item* item = locked.find(now);
    if (item == nullptr) continue;
    CHECK(value_intact(item, k));
    present_cost += gravity::item_cost(item->key_size, item->value_size);
    ++present;
  }
  stats = store.stats();
  CHECK_EQ(stats.bytes, present_cost);
  CHECK_EQ(stats.curr_items, present);
  CHECK(stats.bytes <= options.memory_bytes);

  store.flush_all(store.now());
  stats = store.stats();
  CHECK_EQ(stats.curr_items, 0u);
  CHECK_EQ(stats.bytes, 0u);
  std::printf("  %s: %llu ops, %llu links, %llu evictions, %llu reclaimed, %llu refused\n", policy,
              static_cast<unsigned long long>(total.ops), static_cast<unsigned long long>(total.links),
              static_cast<unsigned long long>(stats.evictions),
              static_cast<unsigned long long>(stats.reclaimed),
              static_cast<unsigned long long>(total.failed_allocs));
}

}  // namespace

TEST(concurrent_mixed_operations_keep_accounting) { run_stress("lru"); }

TEST(concurrent_mixed_operations_keep_accounting_tinylfu) { run_stress("tinylfu"); }

RUN_TESTS("stress_test")
