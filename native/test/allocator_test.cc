// Store-level allocator property tests against a model: random sets, overwrites, deletes and
// expiry of random sizes (slab classes, malloc'd items and items with a mapping of their own) in
// stores whose shards use slab pages. At every step the charged bytes and the held bytes stay
// within --memory; every so often the charge is compared with the sum of the live items' costs,
// no two live items overlap, and every live item must read back exactly what the model last
// stored for its key. Then capacity: a store filled with mixed sizes keeps most of its memory in
// items (no page of a class starves the others). slab_test.cc tests the allocator alone.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "check.h"
#include "store/slab.h"
#include "store/store.h"

using gravity::Item;
using gravity::Store;
using gravity::StoreOptions;
using gravity::item_cost;

namespace {

struct Model {
  std::string value;
  int64_t expires_at;
};

std::string make_value(std::mt19937_64& rng, size_t size) {
  std::string value(size, '\0');
  const char fill = static_cast<char>('a' + rng() % 26);
  for (size_t i = 0; i < size; ++i) value[i] = static_cast<char>(fill + (i % 7));
  return value;
}

size_t random_size(std::mt19937_64& rng) {
  switch (rng() % 10) {
    case 0: return rng() % 8;                            // the smallest class
    case 1: return 150 + rng() % 120;                     // the largest page classes, and malloc
    case 2: return 120000 + rng() % 400000;               // a mapping of its own
    default: return 1 + rng() % 3000;                    // many small classes
  }
}

void run_model(const StoreOptions& options, uint64_t seed, int steps) {
  Store store(options);
  std::mt19937_64 rng(seed);
  std::map<std::string, Model> model;  // what was last stored per key (it may have been evicted)
  for (int step = 0; step < steps; ++step) {
    const std::string key = "k" + std::to_string(rng() % 2000);
    const unsigned op = static_cast<unsigned>(rng() % 20);
    if (op < 13) {
      const std::string value = make_value(rng, random_size(rng));
      // One time for the whole step: the store's clock also follows the wall clock, and an item
      // due at now + 1 is expired if a second passes between its set and the find below.
      const int64_t now = store.now();
      const int64_t expires_at = rng() % 5 == 0 ? now + 1 + static_cast<int64_t>(rng() % 3) : 0;
      Store::Locked locked(store, key);
      Item* old = locked.find(now);
      Item* item = locked.allocate(static_cast<uint32_t>(value.size()), 7, expires_at, old);
      CHECK(item != nullptr);  // every shard can hold the largest item: none is refused
      if (item == nullptr) continue;
      std::memcpy(item->value_data(), value.data(), value.size());
      locked.link(item, now);
      model[key] = {value, expires_at};
      CHECK(locked.find(now) == item);
    } else if (op < 15) {
      Store::Locked locked(store, key);
      Item* item = locked.find(store.now());
      if (item != nullptr) locked.remove(item);
      model.erase(key);
    } else if (op < 16) {
      store.advance_clock(1);
      if (rng() % 4 == 0) store.sweep_expired(store.now(), 1000);
    } else {
      Store::Locked locked(store, key);
      Item* item = locked.find(store.now());
      auto it = model.find(key);
      if (item != nullptr) {
        CHECK(it != model.end());
        if (it != model.end()) {
          CHECK(item->value() == it->second.value);
          CHECK_EQ(item->client_flags, 7u);
        }
      }
    }
    const gravity::StoreStats stats = store.stats();
    CHECK(stats.bytes <= options.memory_bytes);
    CHECK(stats.held_bytes <= options.memory_bytes);
    if (step % 64 == 0 || step == steps - 1) {
      uint64_t live_cost = 0, live = 0;
      std::vector<std::pair<const char*, size_t>> spans;  // each live item's memory
      for (auto& [k, m] : model) {
        Store::Locked locked(store, k);
        Item* item = locked.find(store.now());
        if (item == nullptr) continue;
        CHECK(item->value() == m.value);
        live_cost += item_cost(item->key_size, item->value_size);
        ++live;
        spans.emplace_back(reinterpret_cast<const char*>(item), sizeof(Item) + item->key_size + item->value_size);
      }
      std::sort(spans.begin(), spans.end());
      for (size_t i = 1; i < spans.size(); ++i) CHECK(spans[i - 1].first + spans[i - 1].second <= spans[i].first);
      const gravity::StoreStats after = store.stats();  // the finds above may have reclaimed
      CHECK_EQ(after.bytes, live_cost);
      CHECK_EQ(after.curr_items, live);
      CHECK(after.held_bytes >= after.bytes - 8 * live);  // chunks are held memory
    }
  }
  store.flush_all(store.now());
  CHECK_EQ(store.stats().bytes, 0u);
  CHECK_EQ(store.stats().curr_items, 0u);
}

}  // namespace

TEST(slab_classes_cover_every_size) {
  for (size_t n = 1; n <= gravity::kMaxSizeClassBytes; ++n) {
    const uint32_t c = gravity::slab_class_of(n);
    CHECK(c < gravity::kSlabClasses);
    if (c >= gravity::kSlabClasses) return;
    const gravity::SlabClassInfo& info = gravity::kSlabClassTable[c];
    CHECK(info.chunk_bytes >= n);
    if (c > 0) CHECK(gravity::kSlabClassTable[c - 1].chunk_bytes < n);  // the smallest that fits
    if (n >= 128) CHECK(info.chunk_bytes - n <= n / 16);  // at most 1/16 wasted
    if (n <= gravity::kMaxSlabItemBytes) CHECK(c < gravity::kSlabPageClasses);
    if (gravity_test::failures_in_case() > 0) return;
  }
}

TEST(allocation_cost_covers_the_allocation) {
  for (size_t n = 1; n <= (2u << 20); n += (n < 4096 ? 1 : 997)) {
    const uint64_t cost = gravity::allocation_cost(n);
    CHECK(cost >= n);
    if (n > gravity::kMaxSlabItemBytes && n < gravity::kMinMappedItemBytes) CHECK(cost >= n + 8);  // glibc's header
    if (n >= 128) CHECK(cost - n <= n / 16 + 32);  // at most 1/16 (or glibc's rounding) wasted
    if (gravity_test::failures_in_case() > 0) return;
  }
}

TEST(item_header_is_56_bytes) { CHECK_EQ(sizeof(Item), 56u); }

TEST(model_one_shard) {
  StoreOptions options;
  options.memory_bytes = 6ull << 20;  // 24 pages
  options.shard_count = 1;
  options.slab_pages = true;
  options.policy = "lru";
  run_model(options, 1, 20000);
}

TEST(model_malloc_per_item) {
  // StoreOptions::slab_pages off: one malloc per item, the same invariants.
  StoreOptions options;
  options.memory_bytes = 20ull << 20;
  options.shard_count = 4;
  options.slab_pages = false;
  options.policy = "tinylfu";
  run_model(options, 3, 20000);
}

TEST(model_tinylfu_four_shards) {
  StoreOptions options;
  options.memory_bytes = 20ull << 20;
  options.shard_count = 4;
  options.slab_pages = true;
  options.policy = "tinylfu";
  run_model(options, 2, 20000);
}

TEST(model_pages_move_between_classes) {
  // Phases of one size each: every phase must take its pages from the previous ones.
  StoreOptions options;
  options.memory_bytes = 4ull << 20;
  options.shard_count = 1;
  options.slab_pages = true;
  Store store(options);
  const size_t sizes[] = {100, 3000, 200000, 40, 60000, 900};
  int n = 0;
  for (size_t size : sizes) {
    for (int i = 0; i < 400; ++i, ++n) {
      const std::string key = "p" + std::to_string(n);
      {
        Store::Locked locked(store, key);
        Item* item = locked.allocate(static_cast<uint32_t>(size), 0, 0);
        CHECK(item != nullptr);
        if (item == nullptr) return;
        std::memset(item->value_data(), 'x', size);
        locked.link(item, store.now());
      }
      CHECK(store.stats().held_bytes <= options.memory_bytes);
      CHECK(store.stats().bytes <= options.memory_bytes);
    }
  }
}

// Fills a store of memory_bytes (the default shard count) with 3x its memory in items of
// value_size(i) bytes and returns the charged bytes at the end.
template <class Size>
uint64_t fill_store(uint64_t memory_bytes, const char* policy, Size value_size) {
  StoreOptions options;
  options.memory_bytes = memory_bytes;
  options.policy = policy;
  Store store(options);
  std::string value(1 << 20, 'v');
  uint64_t written = 0;
  for (uint64_t i = 0; written < 3 * memory_bytes; ++i) {
    const size_t size = value_size(i);
    const std::string key = "fill:" + std::to_string(i);
    Store::Locked locked(store, key);
    Item* item = locked.allocate(static_cast<uint32_t>(size), 0, 0);
    CHECK(item != nullptr);
    if (item == nullptr) return 0;
    std::memcpy(item->value_data(), value.data(), size);
    locked.link(item, store.now());
    written += size;
  }
  const gravity::StoreStats stats = store.stats();
  CHECK(stats.held_bytes <= memory_bytes);
  return stats.bytes;
}

TEST(mixed_sizes_fill_the_memory) {
  // Values of 100-1,000 bytes span about 40 size classes, a dozen of them in slab pages: with
  // pages per shard, each page class in use takes pages from the others, and the store must still hold items in nearly all of its
  // memory (a 64 MiB store once kept 300 such items). memcached -m holds its -m in pages of
  // items, wasting up to 1/4 of each chunk; 90% is the bar.
  for (const char* policy : {"lru", "tinylfu"}) {
    for (uint64_t mib : {4u, 16u, 64u}) {
      const uint64_t memory = mib << 20;
      const uint64_t bytes = fill_store(memory, policy, [](uint64_t i) { return 100 + (i * 7919) % 901; });
      CHECK(bytes >= memory / 10 * 9);
      if (gravity_test::failures_in_case() > 0) {
        std::fprintf(stderr, "  %s, %llu MiB: %llu bytes of items\n", policy, static_cast<unsigned long long>(mib),
                     static_cast<unsigned long long>(bytes));
        return;
      }
    }
  }
}

TEST(flood_of_large_values_fills_the_memory) {
  // 1 KB to 900 KB (bench:memory's flood): items outside the pages take the memory they need
  // from small ones, and the charge stays near the limit.
  std::mt19937_64 rng(7);
  const uint64_t memory = 64ull << 20;
  const uint64_t bytes = fill_store(memory, "tinylfu", [&](uint64_t) { return 1000 + rng() % 899000; });
  CHECK(bytes >= memory / 10 * 8);
}

RUN_TESTS("allocator_test")
