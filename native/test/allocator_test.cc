// Slab allocator property tests against a model: random sets, overwrites, deletes and expiry of
// random sizes (small classes, the largest classes and items with a mapping of their own) in
// stores whose shards use slab pages. At every step the charged bytes and the held bytes stay
// within --memory; every so often the charge is compared with the sum of the live items' costs,
// and every live item must read back exactly what the model last stored for its key.
#include <cstring>
#include <map>
#include <random>
#include <string>

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
    case 1: return 60000 + rng() % 5600;                  // the largest classes
    case 2: return 70000 + rng() % 400000;                // a mapping of its own
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
      for (auto& [k, m] : model) {
        Store::Locked locked(store, k);
        Item* item = locked.find(store.now());
        if (item == nullptr) continue;
        CHECK(item->value() == m.value);
        live_cost += item_cost(item->key_size, item->value_size);
        ++live;
      }
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
  for (size_t n = 1; n <= gravity::kMaxSlabChunkBytes; ++n) {
    const uint32_t c = gravity::slab_class_of(n);
    CHECK(c < gravity::kSlabClasses);
    if (c >= gravity::kSlabClasses) return;
    const gravity::SlabClassInfo& info = gravity::kSlabClassTable[c];
    CHECK(info.chunk_bytes >= n);
    if (c > 0) CHECK(gravity::kSlabClassTable[c - 1].chunk_bytes < n);  // the smallest that fits
    CHECK(info.cost_bytes >= info.chunk_bytes);
    CHECK(uint64_t{info.cost_bytes} * info.chunks_per_page <= gravity::kSlabPageBytes);
    if (n >= 128) CHECK(info.chunk_bytes - n <= n / 16);  // at most 1/16 wasted
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
  // The default (StoreOptions::slab_pages off): one malloc per item, the same invariants.
  StoreOptions options;
  options.memory_bytes = 20ull << 20;
  options.shard_count = 4;
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

RUN_TESTS("allocator_test")
