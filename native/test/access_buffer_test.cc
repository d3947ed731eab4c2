// The lossy read buffer (access_buffer.h): what it keeps, when it asks for a drain, what it drops,
// and that a store under a lossy-read policy still learns of its reads. The concurrent side runs
// under TSan in stress_test (tinylfu) and in readers_and_drainers_race below.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "store/access_buffer.h"
#include "store/store.h"

using gravity::AccessBuffer;
using gravity::Item;
using gravity::Store;
using gravity::StoreOptions;

namespace {

struct Drained {
  std::vector<uint64_t> hashes;
  std::vector<bool> hits;
};

Drained drain(AccessBuffer& buffer) {
  Drained out;
  buffer.drain([&](const uint64_t* hashes, uint32_t hits, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
      out.hashes.push_back(hashes[i]);
      out.hits.push_back(((hits >> i) & 1u) != 0);
    }
  });
  return out;
}

}  // namespace

TEST(record_asks_for_a_drain_when_the_stripe_fills) {
  AccessBuffer buffer;
  for (uint32_t i = 0; i + 1 < AccessBuffer::kSlots; ++i) CHECK(!buffer.record(100 + i, i % 3 == 0));
  CHECK(buffer.record(999, true));  // the last slot fills the stripe
  Drained d = drain(buffer);
  CHECK_EQ(d.hashes.size(), static_cast<size_t>(AccessBuffer::kSlots));
  for (uint32_t i = 0; i + 1 < AccessBuffer::kSlots; ++i) {
    CHECK_EQ(d.hashes[i], 100 + i);  // oldest first
    CHECK_EQ(d.hits[i], i % 3 == 0);
  }
  CHECK_EQ(d.hashes.back(), 999u);
  CHECK(d.hits.back());
  CHECK(drain(buffer).hashes.empty());  // drained means empty
}

TEST(a_full_stripe_drops_accesses_until_drained) {
  AccessBuffer buffer;
  for (uint32_t i = 0; i < AccessBuffer::kSlots; ++i) buffer.record(i, false);
  CHECK(buffer.record(12345, false));  // still full: the caller is asked again, the access is lost
  Drained d = drain(buffer);
  CHECK_EQ(d.hashes.size(), static_cast<size_t>(AccessBuffer::kSlots));
  for (uint64_t h : d.hashes) CHECK(h != 12345u);
  CHECK(!buffer.record(7, true));  // room again
  CHECK_EQ(drain(buffer).hashes.size(), 1u);
}

// Threads record while one drains: nothing is applied twice, nothing invented, and every access
// is either applied or dropped (checked by TSan for races, by the counts for loss accounting).
TEST(readers_and_drainers_race) {
  AccessBuffer buffer;
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 20000;
  std::atomic<bool> start{false};
  std::atomic<int> running{kThreads};
  std::vector<std::thread> readers;
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&, t] {
      while (!start.load()) {
      }
      for (uint64_t i = 0; i < kPerThread; ++i) buffer.record((static_cast<uint64_t>(t) << 32) | (i + 1), false);
      running.fetch_sub(1);
    });
  }
  std::vector<uint64_t> seen_per_thread(kThreads, 0), last(kThreads, 0);
  uint64_t applied = 0;
  bool ordered = true, known = true;
  auto apply = [&](const uint64_t* hashes, uint32_t, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
      const uint64_t t = hashes[i] >> 32, n = hashes[i] & 0xffffffffu;
      if (t >= kThreads || n == 0 || n > kPerThread) {
        known = false;
        continue;
      }
      if (n <= last[t]) ordered = false;  // each thread's accesses arrive in order, once
      last[t] = n;
      ++applied;
    }
  };
  start.store(true);
  while (running.load() > 0) buffer.drain(apply);
  for (std::thread& r : readers) r.join();
  buffer.drain(apply);
  CHECK(known);
  CHECK(ordered);
  CHECK(applied > 0);
  CHECK(applied <= kThreads * kPerThread);
}

// Under tinylfu (lossy reads) a store still learns of reads: a key read many times survives a
// flood of new keys that a never-read key does not.
TEST(store_applies_buffered_reads_to_the_policy) {
  StoreOptions options;
  options.memory_bytes = 64 * 1024;
  options.max_item_bytes = 1024;
  options.shard_count = 1;
  options.policy = "tinylfu";
  Store store(options);
  const std::string value(100, 'v');
  auto set = [&](const std::string& key) {
    Store::Locked locked(store, key);
    Item* item = locked.allocate(static_cast<uint32_t>(value.size()), 0, 0);
    if (item == nullptr) return;
    std::memcpy(item->value_data(), value.data(), value.size());
    locked.link(item, store.now());
  };
  auto get = [&](const std::string& key) {
    Store::Locked locked(store, key);
    Item* item = locked.find(store.now());
    if (item != nullptr) locked.touch(item, store.now());
    return item != nullptr;
  };
  set("hot");
  set("cold");
  for (int i = 0; i < 200; ++i) CHECK(get("hot"));
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "new" + std::to_string(i);
    get(key);  // a miss: one access, as a look-aside client does before it sets
    set(key);
  }
  CHECK(get("hot"));
  CHECK(!get("cold"));
}

RUN_TESTS("access_buffer_test")
