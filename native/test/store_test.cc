// Store tests: item life cycle, eviction order and cost accounting against a model, expiry,
// flush_all, shard choice, counters. Time moves with Store::advance_clock(), never by sleeping.
#include <cstring>
#include <list>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "check.h"
#include "store/store.h"

using gravity::Item;
using gravity::Store;
using gravity::StoreOptions;
using gravity::StoreStats;
using gravity::item_cost;

namespace {

StoreOptions one_shard(uint64_t memory_bytes, uint64_t max_item_bytes = 1024) {
  StoreOptions options;
  options.memory_bytes = memory_bytes;
  options.max_item_bytes = max_item_bytes;
  options.shard_count = 1;
  return options;
}

bool set(Store& store, const std::string& key, const std::string& value, int64_t expires_at = 0) {
  Store::Locked locked(store, key);
  Item* item = locked.allocate(static_cast<uint32_t>(value.size()), 0, expires_at);
  if (item == nullptr) return false;
  std::memcpy(item->value_data(), value.data(), value.size());
  locked.link(item, store.now());
  return true;
}

std::optional<std::string> get(Store& store, const std::string& key, bool touch = true) {
  Store::Locked locked(store, key);
  Item* item = locked.find(store.now(), true);
  if (item == nullptr) return std::nullopt;
  if (touch) locked.touch(item, store.now());
  item->bits |= Item::kFetched;
  return std::string(item->value());
}

bool remove(Store& store, const std::string& key) {
  Store::Locked locked(store, key);
  Item* item = locked.find(store.now());
  if (item == nullptr) return false;
  locked.remove(item);
  return true;
}

uint64_t cost(const std::string& key, const std::string& value) { return item_cost(key.size(), value.size()); }

}  // namespace

TEST(allocate_link_find_remove) {
  Store store(one_shard(1 << 20));
  CHECK(!get(store, "a").has_value());
  CHECK(set(store, "a", "hello"));
  CHECK_EQ(get(store, "a").value_or(""), std::string("hello"));
  {
    Store::Locked locked(store, "a");
    Item* item = locked.find(store.now());
    CHECK(item != nullptr);
    if (item != nullptr) {
      CHECK_EQ(item->key(), std::string_view("a"));
      CHECK_EQ(item->linked, 1);
      CHECK(item->cas != 0);
      CHECK_EQ(item->accessed_at, store.now());
    }
  }
  StoreStats stats = store.stats();
  CHECK_EQ(stats.curr_items, 1u);
  CHECK_EQ(stats.bytes, cost("a", "hello"));
  CHECK(remove(store, "a"));
  CHECK(!remove(store, "a"));
  CHECK(!get(store, "a").has_value());
  stats = store.stats();
  CHECK_EQ(stats.curr_items, 0u);
  CHECK_EQ(stats.bytes, 0u);
  CHECK_EQ(stats.total_items, 1u);
}

TEST(link_replaces_and_frees_old_item) {
  Store store(one_shard(1 << 20));
  CHECK(set(store, "k", std::string(100, 'x')));
  CHECK(set(store, "k", "short"));
  CHECK_EQ(get(store, "k").value_or(""), std::string("short"));
  StoreStats stats = store.stats();
  CHECK_EQ(stats.curr_items, 1u);
  CHECK_EQ(stats.bytes, cost("k", "short"));
  CHECK_EQ(stats.total_items, 2u);
  CHECK_EQ(stats.evictions, 0u);
}

TEST(discard_releases_reservation) {
  const uint64_t one = item_cost(1, 100);
  Store store(one_shard(2 * one));
  {
    Store::Locked locked(store, "a");
    Item* a = locked.allocate(100, 0, 0);
    Item* b = locked.allocate(100, 0, 0);
    CHECK(a != nullptr && b != nullptr);
    // Two unlinked items hold the whole shard: a third cannot fit and nothing can be evicted.
    CHECK(locked.allocate(100, 0, 0) == nullptr);
    locked.discard(b);
    Item* c = locked.allocate(100, 0, 0);
    CHECK(c != nullptr);
    locked.discard(c);
    locked.link(a, store.now());
  }
  CHECK_EQ(store.stats().bytes, one);
  CHECK(set(store, "b", std::string(100, 'b')));
  CHECK_EQ(store.stats().bytes, 2 * one);
}

TEST(allocate_fails_when_item_never_fits) {
  Store store(one_shard(1000));
  Store::Locked locked(store, "big");
  CHECK(locked.allocate(2000, 0, 0) == nullptr);
  uint32_t largest = 0;  // item_cost() grows in steps (slab classes)
  while (item_cost(3, largest + 1) <= 1000) ++largest;
  CHECK(locked.allocate(largest + 1, 0, 0) == nullptr);
  Item* exact = locked.allocate(largest, 0, 0);
  CHECK(exact != nullptr);
  if (exact != nullptr) locked.discard(exact);
}

TEST(protect_is_never_evicted) {
  const std::string value(200, 'v');
  const uint64_t one = item_cost(2, value.size());
  Store store(one_shard(3 * one));
  CHECK(set(store, "p0", value));
  CHECK(set(store, "p1", value));
  CHECK(set(store, "p2", value));
  Store::Locked locked(store, "p0");
  Item* old = locked.find(store.now());
  CHECK(old != nullptr);
  // p0 is the LRU tail; with it protected, p1 goes instead.
  Item* fresh = locked.allocate(static_cast<uint32_t>(value.size()), 0, 0, old);
  CHECK(fresh != nullptr);
  CHECK_EQ(locked.stats().evictions, 1u);
  if (fresh != nullptr) locked.discard(fresh);
  // Room for one more without eviction, then p2 must go, then only the protected item is left.
  Item* x = locked.allocate(static_cast<uint32_t>(value.size()), 0, 0, old);
  Item* y = locked.allocate(static_cast<uint32_t>(value.size()), 0, 0, old);
  CHECK(x != nullptr && y != nullptr);
  CHECK_EQ(locked.stats().evictions, 2u);
  CHECK(locked.allocate(static_cast<uint32_t>(value.size()), 0, 0, old) == nullptr);
  CHECK(locked.find(store.now()) == old);
  if (x != nullptr) locked.discard(x);
  if (y != nullptr) locked.link(y, store.now());  // replaces the protected p0
  CHECK(locked.find(store.now()) == y);
}

TEST(lru_evicts_least_recently_used) {
  const uint64_t one = item_cost(2, 10);
  Store store(one_shard(4 * one));
  for (int i = 0; i < 4; ++i) CHECK(set(store, "k" + std::to_string(i), std::string(10, 'a')));
  CHECK(get(store, "k0").has_value());  // k0 moves to the front: k1 is now the LRU tail
  CHECK(set(store, "k4", std::string(10, 'a')));
  CHECK(!get(store, "k1", false).has_value());
  CHECK(set(store, "k5", std::string(10, 'a')));
  CHECK(!get(store, "k2", false).has_value());
  CHECK(get(store, "k0", false).has_value());
  CHECK(get(store, "k3", false).has_value());
  StoreStats stats = store.stats();
  CHECK_EQ(stats.evictions, 2u);
  CHECK_EQ(stats.evicted_unfetched, 2u);
  CHECK_EQ(stats.curr_items, 4u);
}

TEST(evicted_unfetched_counts_only_unread_victims) {
  const uint64_t one = item_cost(1, 10);
  Store store(one_shard(2 * one));
  CHECK(set(store, "a", std::string(10, 'a')));
  CHECK(set(store, "b", std::string(10, 'b')));
  CHECK(get(store, "a", false).has_value());  // fetched, not moved: a stays the tail
  CHECK(set(store, "c", std::string(10, 'c')));  // evicts a (fetched)
  CHECK(set(store, "d", std::string(10, 'd')));  // evicts b (never fetched)
  StoreStats stats = store.stats();
  CHECK_EQ(stats.evictions, 2u);
  CHECK_EQ(stats.evicted_unfetched, 1u);
}

// A random sequence of set/get/delete on one shard, checked against an exact LRU model with cost
// accounting: the store must hold exactly what the model holds, evict exactly what it evicts, and
// never exceed memory.
TEST(model_lru_with_costs) {
  const uint64_t memory = 64 * 1024;
  Store store(one_shard(memory, 8 * 1024));
  std::mt19937_64 rng(42);
  std::list<std::string> order;  // front = most recent
  struct Entry {
    std::string value;
    std::list<std::string>::iterator position;
  };
  std::unordered_map<std::string, Entry> model;
  uint64_t used = 0, evictions = 0, links = 0;
  auto model_erase = [&](const std::string& key) {
    auto it = model.find(key);
    used -= cost(key, it->second.value);
    order.erase(it->second.position);
    model.erase(it);
  };
  for (int step = 0; step < 60000; ++step) {
    const std::string key = "key:" + std::to_string(rng() % 300);
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      size_t size = (rng() % 4 == 0) ? rng() % 4000 : rng() % 300;
      std::string value(size, static_cast<char>('a' + rng() % 26));
      const uint64_t c = cost(key, value);
      while (used + c > memory) {
        model_erase(order.back());
        ++evictions;
      }
      CHECK(set(store, key, value));
      if (model.count(key) != 0) model_erase(key);
      order.push_front(key);
      model[key] = Entry{value, order.begin()};
      used += c;
      ++links;
    } else if (op < 8) {
      auto got = get(store, key);
      auto it = model.find(key);
      CHECK_EQ(got.has_value(), it != model.end());
      if (got && it != model.end()) {
        CHECK(*got == it->second.value);
        order.erase(it->second.position);
        order.push_front(key);
        it->second.position = order.begin();
      }
    } else {
      bool removed = remove(store, key);
      CHECK_EQ(removed, model.count(key) != 0);
      if (model.count(key) != 0) model_erase(key);
    }
    if (step % 500 == 0 || step == 59999) {
      StoreStats stats = store.stats();
      CHECK_EQ(stats.bytes, used);
      CHECK(stats.bytes <= memory);
      CHECK_EQ(stats.curr_items, static_cast<uint64_t>(model.size()));
      CHECK_EQ(stats.evictions, evictions);
      CHECK_EQ(stats.total_items, links);
    }
  }
  CHECK(evictions > 1000);  // the sequence really exercised eviction
}

// Many shards: no exact order, but the bytes must equal the cost of what is present and stay
// within the limit, and an item may vanish only through eviction.
TEST(model_multi_shard_accounting) {
  StoreOptions options;
  options.memory_bytes = 256 * 1024;
  options.max_item_bytes = 4096;
  Store store(options);
  CHECK_EQ(store.shard_count(), 16u);
  std::mt19937_64 rng(7);
  std::map<std::string, std::string> model;
  for (int step = 0; step < 40000; ++step) {
    const std::string key = "k" + std::to_string(rng() % 2000);
    if (rng() % 3 != 0) {
      std::string value(rng() % 1500, static_cast<char>('a' + rng() % 26));
      CHECK(set(store, key, value));
      model[key] = value;
    } else {
      remove(store, key);
      model.erase(key);
    }
    if (step % 200 == 0) CHECK(store.stats().bytes <= options.memory_bytes);
  }
  uint64_t present_cost = 0, present = 0, vanished = 0;
  for (const auto& [key, value] : model) {
    auto got = get(store, key, false);
    if (got) {
      CHECK(*got == value);
      present_cost += cost(key, value);
      ++present;
    } else {
      ++vanished;
    }
  }
  StoreStats stats = store.stats();
  CHECK_EQ(stats.bytes, present_cost);
  CHECK_EQ(stats.curr_items, present);
  CHECK(stats.bytes <= options.memory_bytes);
  CHECK(stats.evictions >= vanished);
  CHECK(vanished > 0);
}

TEST(lazy_expiry) {
  Store store(one_shard(1 << 20));
  const int64_t t0 = store.now();
  CHECK(set(store, "ttl", "v", t0 + 10));
  CHECK(set(store, "read", "v", t0 + 10));
  CHECK(set(store, "forever", "v", 0));
  CHECK(get(store, "read").has_value());  // marks it fetched
  store.advance_clock(9);
  CHECK(get(store, "ttl", false).has_value());
  store.advance_clock(1);  // expires_at <= now: expired
  {
    Store::Locked locked(store, "ttl");
    CHECK(locked.find(store.now(), true) == nullptr);
  }
  {
    Store::Locked locked(store, "read");
    CHECK(locked.find(store.now(), false) == nullptr);
  }
  CHECK(get(store, "forever").has_value());
  StoreStats stats = store.stats();
  CHECK_EQ(stats.reclaimed, 2u);
  CHECK_EQ(stats.get_expired, 1u);  // only the lookup that asked for the reason
  CHECK_EQ(stats.expired_unfetched, 0u);  // both were fetched before they expired
  CHECK_EQ(stats.curr_items, 1u);
  CHECK_EQ(stats.bytes, cost("forever", "v"));

  CHECK(set(store, "never-read", "v", store.now() + 1));
  store.advance_clock(1);
  CHECK(!get(store, "never-read").has_value());
  CHECK_EQ(store.stats().expired_unfetched, 1u);
}

TEST(expired_victim_counts_as_reclaimed) {
  const uint64_t one = item_cost(1, 10);
  Store store(one_shard(2 * one));
  CHECK(set(store, "a", std::string(10, 'a'), store.now() + 1));
  CHECK(set(store, "b", std::string(10, 'b')));
  store.advance_clock(5);
  CHECK(set(store, "c", std::string(10, 'c')));
  StoreStats stats = store.stats();
  CHECK_EQ(stats.evictions, 0u);
  CHECK_EQ(stats.reclaimed, 1u);
  CHECK_EQ(stats.expired_unfetched, 1u);
}

TEST(sweep_expired_frees_expired_items) {
  StoreOptions options;
  options.memory_bytes = 64 << 20;
  Store store(options);
  const int64_t t0 = store.now();
  for (int i = 0; i < 5000; ++i) {
    CHECK(set(store, "e" + std::to_string(i), "value", t0 + 5));
    CHECK(set(store, "k" + std::to_string(i), "value", 0));
  }
  CHECK_EQ(store.sweep_expired(store.now(), 1000000), 0u);  // nothing expired yet
  store.advance_clock(5);
  CHECK(store.sweep_expired(store.now(), 10) <= 10u);
  size_t freed_total = 0;
  for (int round = 0; round < 1000 && store.stats().curr_items > 5000; ++round) {
    freed_total += store.sweep_expired(store.now(), 300);
  }
  StoreStats stats = store.stats();
  CHECK_EQ(stats.curr_items, 5000u);
  CHECK_EQ(stats.reclaimed, 5000u);
  CHECK_EQ(stats.expired_unfetched, 5000u);
  uint64_t expected_bytes = 0;
  for (int i = 0; i < 5000; ++i) expected_bytes += cost("k" + std::to_string(i), "value");
  CHECK_EQ(stats.bytes, expected_bytes);
  CHECK(get(store, "k4999").has_value());
  CHECK(freed_total <= 5000u);
}

TEST(flush_all_immediate) {
  StoreOptions options;
  options.memory_bytes = 64 << 20;
  Store store(options);
  for (int i = 0; i < 2000; ++i) CHECK(set(store, "k" + std::to_string(i), "value"));
  store.flush_all(store.now());
  StoreStats stats = store.stats();
  CHECK_EQ(stats.curr_items, 0u);
  CHECK_EQ(stats.bytes, 0u);
  CHECK(!get(store, "k0").has_value());
  CHECK(set(store, "after", "v"));
  CHECK(get(store, "after").has_value());
}

TEST(flush_all_delayed) {
  Store store(one_shard(1 << 20));
  const int64_t t0 = store.now();
  CHECK(set(store, "old", "v"));
  store.flush_all(t0, 10);
  store.advance_clock(5);
  CHECK(set(store, "middle", "v"));  // stored before the flush time: also invalidated
  CHECK(get(store, "old").has_value());
  store.advance_clock(5);  // now == flush time
  CHECK(set(store, "new", "v"));  // stored at the flush time: survives
  CHECK(!get(store, "old").has_value());
  CHECK(!get(store, "middle").has_value());
  CHECK(get(store, "new").has_value());
  StoreStats stats = store.stats();
  CHECK_EQ(stats.get_flushed, 2u);
  CHECK_EQ(stats.reclaimed, 2u);
  CHECK_EQ(stats.curr_items, 1u);
}

TEST(flush_all_delayed_swept) {
  Store store(one_shard(1 << 20));
  for (int i = 0; i < 100; ++i) CHECK(set(store, "k" + std::to_string(i), "v"));
  store.flush_all(store.now(), 1);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 0u);
  store.advance_clock(1);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), 100u);
  CHECK_EQ(store.stats().curr_items, 0u);
}

TEST(flush_all_new_delay_does_not_revive_flushed_items) {
  Store store(one_shard(1 << 20));
  CHECK(set(store, "old", "v"));
  store.flush_all(store.now(), 1);
  store.advance_clock(2);  // the first flush has happened (nobody looked at "old" yet)
  store.flush_all(store.now(), 100);
  CHECK(!get(store, "old").has_value());
  CHECK_EQ(store.stats().curr_items, 0u);
}

TEST(flush_all_immediate_cancels_pending_delay) {
  Store store(one_shard(1 << 20));
  store.flush_all(store.now(), 10);
  store.flush_all(store.now());
  CHECK(set(store, "k", "v"));
  store.advance_clock(20);
  CHECK(get(store, "k").has_value());
}

TEST(shard_count_choice) {
  auto shards_for = [](uint64_t memory, uint64_t max_item, uint32_t explicit_count) {
    StoreOptions options;
    options.memory_bytes = memory;
    options.max_item_bytes = max_item;
    options.shard_count = explicit_count;
    return Store(options).shard_count();
  };
  CHECK_EQ(shards_for(64ull << 20, 1 << 20, 0), 16u);  // 4 MiB per shard
  CHECK_EQ(shards_for(1ull << 30, 1 << 20, 0), 64u);   // capped at 64
  CHECK_EQ(shards_for(1ull << 20, 1 << 20, 0), 1u);    // too small to split
  CHECK_EQ(shards_for(8ull << 20, 1 << 20, 0), 2u);
  CHECK_EQ(shards_for((8ull << 20) - 1, 1 << 20, 0), 1u);
  CHECK_EQ(shards_for(64ull << 20, 1 << 20, 8), 8u);
  CHECK_EQ(shards_for(64ull << 20, 1 << 20, 6), 4u);   // rounded down to a power of two
  for (uint64_t memory : {1ull << 20, 5ull << 20, 100ull << 20, 3ull << 30}) {
    StoreOptions options;
    options.memory_bytes = memory;
    Store store(options);
    const size_t n = store.shard_count();
    CHECK(n >= 1 && n <= 64 && (n & (n - 1)) == 0);
    CHECK(n == 1 || memory / n >= 4 * options.max_item_bytes);
  }
}

TEST(max_size_item_fits_in_every_shard) {
  StoreOptions options;
  options.memory_bytes = 64ull << 20;
  Store store(options);
  size_t value_size = options.max_item_bytes - 56 - 250 - 1 - 2;
  CHECK(gravity::item_size_ok(250, value_size, options.max_item_bytes));
  for (int i = 0; i < 200; ++i) {
    std::string key(250, static_cast<char>('a' + i % 26));
    key += std::to_string(i);
    key.resize(250);
    CHECK(set(store, key, std::string(value_size, 'v')));
  }
  CHECK(store.stats().bytes <= options.memory_bytes);
}

TEST(cas_values) {
  Store store(one_shard(1 << 20));
  CHECK(set(store, "a", "1"));
  CHECK(set(store, "b", "1"));
  Store::Locked locked(store, "a");
  Item* a = locked.find(store.now());
  CHECK(a != nullptr);
  if (a == nullptr) return;
  const uint64_t first = a->cas;
  const uint64_t bumped = locked.bump_cas(a);
  CHECK(bumped > first);
  CHECK_EQ(a->cas, bumped);
  Item* b = locked.allocate(1, 0, 0);
  CHECK(b != nullptr);
  if (b == nullptr) return;
  locked.link(b, store.now(), 12345);  // explicit CAS (meta "E")
  CHECK_EQ(locked.find(store.now())->cas, 12345u);
}

TEST(touch_updates_accessed_at) {
  Store store(one_shard(1 << 20));
  CHECK(set(store, "a", "1"));
  store.advance_clock(7);
  Store::Locked locked(store, "a");
  Item* a = locked.find(store.now());
  CHECK(a != nullptr);
  if (a == nullptr) return;
  CHECK_EQ(a->accessed_at, store.now() - 7);  // a find alone is not an access
  locked.touch(a, store.now());
  CHECK_EQ(a->accessed_at, store.now());
}

TEST(stats_sum_over_shards) {
  StoreOptions options;
  options.memory_bytes = 64 << 20;
  Store store(options);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(i);
    CHECK(set(store, key, "v"));
    Store::Locked locked(store, key);
    ++locked.stats().cmd_set;
    ++locked.stats().get_hits;
  }
  StoreStats stats = store.stats();
  CHECK_EQ(stats.cmd_set, 1000u);
  CHECK_EQ(stats.get_hits, 1000u);
  CHECK_EQ(stats.total_items, 1000u);
  CHECK_EQ(stats.curr_items, 1000u);
  CHECK_EQ(stats.limit_maxbytes, options.memory_bytes);
}

TEST(index_grows) {
  Store store(one_shard(64 << 20));
  for (int i = 0; i < 20000; ++i) CHECK(set(store, "key-" + std::to_string(i), std::to_string(i)));
  for (int i = 0; i < 20000; i += 97) CHECK_EQ(get(store, "key-" + std::to_string(i)).value_or(""), std::to_string(i));
  for (int i = 0; i < 20000; ++i) CHECK(remove(store, "key-" + std::to_string(i)));
  CHECK_EQ(store.stats().curr_items, 0u);
  CHECK_EQ(store.stats().bytes, 0u);
}

TEST(hash_key_is_well_mixed) {
  // Top 6 bits (shard) and low 10 bits (bucket) of sequential keys are close to uniform.
  const int kKeys = 1 << 16;
  std::vector<int> top(64, 0), low(1024, 0);
  for (int i = 0; i < kKeys; ++i) {
    uint64_t h = gravity::hash_key("user:" + std::to_string(i));
    ++top[h >> 58];
    ++low[h & 1023];
  }
  for (int n : top) CHECK(n > kKeys / 64 * 8 / 10 && n < kKeys / 64 * 12 / 10);
  for (int n : low) CHECK(n > kKeys / 1024 / 2 && n < kKeys / 1024 * 2);
  // Avalanche: flipping one input bit flips about half of the output bits.
  std::mt19937_64 rng(1);
  double flipped = 0;
  int trials = 0;
  for (size_t len : {1, 7, 8, 9, 16, 17, 40, 250}) {
    for (int t = 0; t < 200; ++t) {
      std::string key(len, '\0');
      for (char& c : key) c = static_cast<char>(rng());
      const uint64_t h = gravity::hash_key(key);
      const size_t bit = rng() % (len * 8);
      key[bit / 8] = static_cast<char>(key[bit / 8] ^ (1 << (bit % 8)));
      flipped += __builtin_popcountll(h ^ gravity::hash_key(key));
      ++trials;
    }
  }
  const double mean = flipped / trials;
  CHECK(mean > 30 && mean < 34);
  CHECK(gravity::hash_key("") != gravity::hash_key(std::string(1, '\0')));
  CHECK(gravity::hash_key("abc") == gravity::hash_key(std::string("abc")));
}

RUN_TESTS("store_test")
