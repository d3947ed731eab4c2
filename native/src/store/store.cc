// The store: shard selection, the item life cycle under a shard lock, cost accounting, lazy and
// swept expiry, flush_all.
//
//   allocate() ──reserve cost──> unlinked item ──link()──> indexed + in policy ──remove()/evict/expire──> freed
//                                     └──discard()──> freed (reservation released)
//
// A shard's used_bytes + reserved_bytes never exceeds its limit_bytes: allocate() evicts policy
// victims before it reserves, and link() only moves the reservation into used_bytes. Nor does
// what its slab allocator holds (pages, free chunks included, and large mappings) plus its index's
// bucket array: when the item's class has no free chunk and no page can be added, allocate()
// evicts until one frees (slab.h). The policy never refuses a new item (policy.h): allocate()
// fails only for an item bigger than the shard or when the policy has nothing left to evict
// (every other item is reserved or protected).
#include "store.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <time.h>
#include <new>

#include "shard.h"

namespace gravity {
namespace {

constexpr uint32_t kMaxShards = 1024;          // for an explicit StoreOptions::shard_count
constexpr uint32_t kMaxAutoShards = 64;        // when the store chooses
constexpr uint64_t kMinShardItemsOfMaxSize = 4;  // a shard holds at least this many max-size items
// sweep_expired() takes a shard lock for at most this many wheel entries or index buckets.
constexpr size_t kSweepEntriesPerLock = 1024;
constexpr size_t kSweepBucketsPerLock = 1024;
// A shard's expiry wheel is compacted when its entries outnumber twice its items plus this.
constexpr size_t kWheelStaleSlack = 1024;

uint32_t floor_pow2(uint32_t n) {
  uint32_t p = 1;
  while (p <= n / 2) p *= 2;
  return p;
}

uint32_t choose_shard_count(const StoreOptions& options) {
  if (options.shard_count != 0) {
    return floor_pow2(options.shard_count < kMaxShards ? options.shard_count : kMaxShards);
  }
  uint32_t n = kMaxAutoShards;
  while (n > 1 && options.memory_bytes / n < kMinShardItemsOfMaxSize * options.max_item_bytes) n /= 2;
  return n;
}

uint32_t log2_pow2(uint32_t n) {
  uint32_t bits = 0;
  while ((1u << bits) < n) ++bits;
  return bits;
}

uint64_t cost_of(const Item* item) { return item_cost(item->key_size, item->value_size); }
size_t bytes_of(const Item* item) { return sizeof(Item) + item->key_size + item->value_size; }

// memcached's oldest_live check (items.c do_item_get): a flush_all with a delay invalidates, once
// its time arrives, every item stored before it. Like memcached (it->time), this compares the last
// access: an item stored before the flush time and read after it was flushed by that read.
// accessed_at is read atomically: readers holding the shard lock shared update it (touch()).
bool flushed(const Item* item, int64_t flush_at, int64_t now) {
  return flush_at != 0 && now >= flush_at && __atomic_load_n(&item->accessed_at, __ATOMIC_RELAXED) < flush_at;
}

// Takes a linked item out of the policy and the byte count; the caller has already unchained it
// from the index. Frees it.
void drop_unchained_locked(Shard& shard, Item* item) {
  shard.policy->removed_locked(item);
  shard.used_bytes -= cost_of(item);
  item->linked = Item::kUnlinked;
  shard.slab.free_locked(item, bytes_of(item));
}

void unlink_and_free_locked(Shard& shard, Item* item) {
  shard.index.erase(item);
  drop_unchained_locked(shard, item);
}

// Hands the reads buffered in shard.reads to the policy: frequencies first, for the whole batch
// (independent counter updates whose cache misses overlap), then the promotions of the hits.
void drain_reads_locked(Shard& shard) {
  shard.reads.drain([&](const uint64_t* hashes, uint32_t hits, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) shard.policy->record_access_locked(hashes[i]);
    for (uint32_t i = 0; i < count; ++i) {
      if (((hits >> i) & 1u) == 0) continue;
      Item* item = shard.index.find_hash(hashes[i]);
      if (item != nullptr) shard.policy->accessed_locked(item);
    }
  });
}

// Unlinks and frees a victim, counted as an eviction, or as reclaimed if it was dead already (as
// memcached's lru_pull_tail does).
void evict_locked(Shard& shard, Item* victim, int64_t now, int64_t flush_at);

// Evicts every item on the slab page of `victim`, which then goes to the pool. False, evicting
// nothing, if an item there may not go: `protect`, or one allocated and not yet linked.
bool evict_page_locked(Shard& shard, Item* victim, const Item* protect, int64_t now, int64_t flush_at) {
  bool movable = true;
  shard.slab.for_each_on_page_locked(victim, [&](Item* item) {
    if (item == protect || item->linked != Item::kLinked) movable = false;
  });
  if (!movable) return false;
  shard.slab.for_each_on_page_locked(victim, [&](Item* item) { evict_locked(shard, item, now, flush_at); });
  return true;
}

// Counts an item that leaves because it expired or was flushed (memcached's "reclaimed").
void count_reclaimed_locked(Shard& shard, const Item* item, bool expired) {
  ClassCounters& counters = shard.class_stats[size_class_of(bytes_of(item))];
  ++shard.stats.reclaimed;
  ++counters.reclaimed;
  if (expired && (item->bits & Item::kFetched) == 0) {
    ++shard.stats.expired_unfetched;
    ++counters.expired_unfetched;
  }
}

void evict_locked(Shard& shard, Item* victim, int64_t now, int64_t flush_at) {
  const bool expired = victim->expired_at(now);
  if (expired || flushed(victim, flush_at, now)) {
    count_reclaimed_locked(shard, victim, expired);
  } else {
    ClassCounters& counters = shard.class_stats[size_class_of(bytes_of(victim))];
    ++shard.stats.evictions;
    ++counters.evicted;
    if (victim->expires_at != 0) ++counters.evicted_nonzero;
    counters.evicted_time = now > int64_t{victim->accessed_at} ? static_cast<uint64_t>(now - victim->accessed_at) : 0;
    if ((victim->bits & Item::kFetched) == 0) {
      ++shard.stats.evicted_unfetched;
      ++counters.evicted_unfetched;
    }
  }
  unlink_and_free_locked(shard, victim);
}

void add_counters(StoreStats& into, const StoreStats& from) {
  into.total_items += from.total_items;
  into.evictions += from.evictions;
  into.expired_unfetched += from.expired_unfetched;
  into.evicted_unfetched += from.evicted_unfetched;
  into.reclaimed += from.reclaimed;
  into.get_expired += from.get_expired;
  into.get_flushed += from.get_flushed;
  into.cmd_get += from.cmd_get;
  into.get_hits += from.get_hits;
  into.get_misses += from.get_misses;
  into.cmd_set += from.cmd_set;
  into.cmd_touch += from.cmd_touch;
  into.touch_hits += from.touch_hits;
  into.touch_misses += from.touch_misses;
  into.delete_hits += from.delete_hits;
  into.delete_misses += from.delete_misses;
  into.incr_hits += from.incr_hits;
  into.incr_misses += from.incr_misses;
  into.decr_hits += from.decr_hits;
  into.decr_misses += from.decr_misses;
  into.cas_hits += from.cas_hits;
  into.cas_misses += from.cas_misses;
  into.cas_badval += from.cas_badval;
  into.admissions_rejected += from.admissions_rejected;
}

// 64-bit multiply, folding the high half into the low (the "mum" step of wyhash and rapidhash).
__extension__ typedef unsigned __int128 Uint128;
inline uint64_t fold_multiply(uint64_t a, uint64_t b) {
  Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t load_partial(const char* p, size_t n) {  // n < 8 bytes, zero-extended
  uint64_t v = 0;
  if (n != 0) std::memcpy(&v, p, n);  // p may be null when n == 0
  return v;
}

}  // namespace

// Whole seconds on a monotonic clock. Linux's CLOCK_MONOTONIC_COARSE is read from the vDSO
// without reading the hardware timer: direct_ops reads the clock once per operation, and a
// profile of hot-key addon gets put ~14% of their time in steady_clock's clock_gettime. Seconds
// are all the store needs.
int64_t monotonic_seconds() {
#if defined(CLOCK_MONOTONIC_COARSE)
  timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0) return static_cast<int64_t>(ts.tv_sec);
#endif
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Keys are short (<= 250 bytes), so the hash reads 16 bytes per step with one folded multiply,
// mixes the length in (zero padding of the tail is then unambiguous) and ends with the
// splitmix64 finaliser (Steele, Lea, Flood) so that both the top bits (shard) and the low bits
// (bucket) avalanche.
uint64_t hash_key(std::string_view key) {
  constexpr uint64_t kSeed = 0x243f6a8885a308d3ull;  // digits of pi
  constexpr uint64_t kMul0 = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio
  constexpr uint64_t kMul1 = 0xd6e8feb86659fd93ull;  // degski64's multiplier
  constexpr uint64_t kMul2 = 0xa0761d6478bd642full;  // wyhash's first secret
  const char* p = key.data();
  size_t n = key.size();
  uint64_t h = kSeed ^ (static_cast<uint64_t>(n) * kMul0);
  while (n > 16) {
    h = fold_multiply(load64(p) ^ kMul1, load64(p + 8) ^ h ^ kMul2);
    p += 16;
    n -= 16;
  }
  uint64_t a, b;
  if (n > 8) {
    a = load64(p);
    b = load_partial(p + 8, n - 8);
  } else if (n == 8) {
    a = load64(p);
    b = 0;
  } else {
    a = load_partial(p, n);
    b = 0;
  }
  h = fold_multiply(a ^ kMul1 ^ h, b ^ kMul2 ^ (h >> 32));
  h ^= key.size();
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

Store::Store(const StoreOptions& options)
    : options_(options),
      created_at_(static_cast<int64_t>(std::time(nullptr))),
      created_monotonic_(monotonic_seconds()) {
  uint32_t n = choose_shard_count(options);
  shard_shift_ = 64 - log2_pow2(n);
  shards_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    auto shard = std::make_unique<Shard>(options.memory_bytes / n, options.slab_pages);
    // The policy's budgets steer the victims within what the charge can reach. In a slab shard
    // the held limit binds first (free chunks of partly used pages, the index's buckets), so the
    // policy is sized a sixteenth smaller: its main space then fills, and W-TinyLFU's duels run,
    // before the store must evict for memory.
    const uint64_t policy_bytes =
        shard->slab.uses_pages() ? shard->limit_bytes - shard->limit_bytes / 16 : shard->limit_bytes;
    shard->policy = make_policy(options.policy, policy_bytes);
    // An unknown name falls back to LRU; callers validate the name with make_policy() first.
    if (shard->policy == nullptr) shard->policy = make_lru_policy();
    shard->lossy_reads = shard->policy->tolerates_lossy_reads();
    shards_.push_back(std::move(shard));
  }
}

Store::~Store() {
  for (auto& shard : shards_) {
    Shard& s = *shard;
    s.index.clear([&](Item* item) { s.slab.free_locked(item, bytes_of(item)); });
  }
}

Shard& Store::shard_for(uint64_t hash) {
  if (shard_shift_ >= 64) return *shards_[0];
  return *shards_[hash >> shard_shift_];
}

int64_t Store::now() const {
  const int64_t elapsed_seconds = monotonic_seconds() - created_monotonic_;
  return created_at_ + elapsed_seconds + clock_offset_.load(std::memory_order_relaxed);
}

void Store::advance_clock(int64_t seconds) { clock_offset_.fetch_add(seconds, std::memory_order_relaxed); }

void Store::flush_all(int64_t now, int64_t delay_seconds) {
  if (delay_seconds > 0) {
    // A new delay replaces the old flush time. If the old one has already passed, the items it
    // invalidated must not come back to life: free them now, then move the flush time.
    int64_t previous = flush_at_.load(std::memory_order_relaxed);
    if (previous != 0 && previous <= now) {
      for (auto& shard : shards_) {
        std::lock_guard<SpinLock> lock(shard->mutex);
        size_t cursor = 0;
        shard->index.sweep(
            &cursor, shard->index.bucket_count(),
            [&](Item* item) { return flushed(item, previous, now); },
            [&](Item* item) {
              count_reclaimed_locked(*shard, item, false);
              drop_unchained_locked(*shard, item);
            });
      }
    }
    flush_at_.store(now + delay_seconds, std::memory_order_relaxed);
    return;
  }
  flush_at_.store(0, std::memory_order_relaxed);
  for (auto& shard : shards_) {
    std::lock_guard<SpinLock> lock(shard->mutex);
    shard->index.clear([&](Item* item) { drop_unchained_locked(*shard, item); });
  }
}

size_t Store::sweep_expired(int64_t now, size_t max_items) {
  size_t freed = 0, looked = 0;
  const int64_t flush_at = flush_at_.load(std::memory_order_relaxed);
  for (auto& shard_ptr : shards_) {
    Shard& shard = *shard_ptr;
    while (looked < max_items) {
      std::lock_guard<SpinLock> lock(shard.mutex);
      const size_t budget = std::min(kSweepEntriesPerLock, max_items - looked);
      const size_t visited = shard.expiry.advance(now, budget, [&](const ExpiryWheel::Entry& entry) {
        // Gone, or re-touched to another expiry since: that item has (or needs) its own entry.
        Item* item = shard.index.find_hash(entry.hash, [&](const Item* it) { return it->expires_at == entry.expires_at; });
        if (item == nullptr) return ExpiryWheel::Visit::Drop;
        count_reclaimed_locked(shard, item, true);
        unlink_and_free_locked(shard, item);
        ++freed;
        return ExpiryWheel::Visit::Drop;
      });
      looked += visited;
      if (visited < budget) break;  // this shard has nothing more due
    }
    // One walk of the index after a delayed flush_all's time: every item stored before it goes.
    while (flush_at != 0 && now >= flush_at && looked < max_items) {
      std::lock_guard<SpinLock> lock(shard.mutex);
      if (shard.flush_swept == flush_at) break;
      if (shard.flush_walked >= shard.index.bucket_count()) {
        shard.flush_swept = flush_at;
        shard.flush_walked = 0;
        break;
      }
      shard.index.sweep(
          &shard.flush_bucket, kSweepBucketsPerLock, [&](Item* item) { return flushed(item, flush_at, now); },
          [&](Item* item) {
            count_reclaimed_locked(shard, item, false);
            drop_unchained_locked(shard, item);
            ++freed;
          });
      shard.flush_walked += kSweepBucketsPerLock;
      looked += kSweepBucketsPerLock;
    }
  }
  return freed;
}

StoreStats Store::stats() const {
  StoreStats total;
  for (const auto& shard : shards_) {
    std::lock_guard<SpinLock> lock(shard->mutex);
    add_counters(total, shard->stats);
    total.admissions_rejected += shard->policy->rejected_candidates_locked();
    total.curr_items += shard->index.size();
    total.bytes += shard->used_bytes;
    total.expiry_entries += shard->expiry.entries();
    total.held_bytes += shard->slab.held_bytes() + shard->index.bytes_for(shard->index.size());
  }
  total.limit_maxbytes = options_.memory_bytes;
  return total;
}

void Store::class_counters(ClassCounters* out) const {
  for (uint32_t c = 0; c < kSizeClasses; ++c) out[c] = ClassCounters{};
  for (const auto& shard : shards_) {
    std::lock_guard<SpinLock> lock(shard->mutex);
    for (uint32_t c = 0; c < kSizeClasses; ++c) {
      const ClassCounters& from = shard->class_stats[c];
      ClassCounters& into = out[c];
      into.evicted += from.evicted;
      into.evicted_nonzero += from.evicted_nonzero;
      into.evicted_unfetched += from.evicted_unfetched;
      if (from.evicted != 0) into.evicted_time = from.evicted_time;  // some shard's latest
      into.reclaimed += from.reclaimed;
      into.expired_unfetched += from.expired_unfetched;
    }
  }
}

// The index doubles by splitting bucket j into j and j + old size, so walking bucket j of the size
// the walk began with means visiting j, j + begun, j + 2 * begun ... of the current array: every
// item that was in old bucket j, and none that was in an old bucket already walked.
bool Store::walk_batch(WalkCursor& cursor, size_t max_buckets, int64_t now, bool (*visit)(void*, const Item&),
                       void* f) {
  if (max_buckets == 0) max_buckets = 1;
  while (cursor.shard < shards_.size()) {
    Shard& shard = *shards_[cursor.shard];
    std::lock_guard<SpinLock> lock(shard.mutex);
    const size_t current = shard.index.bucket_count();
    if (cursor.buckets == 0 || cursor.buckets > current) {
      cursor.buckets = current;
      cursor.bucket = 0;
    }
    const int64_t flush_at = flush_at_.load(std::memory_order_relaxed);
    const size_t end = std::min(cursor.buckets, cursor.bucket + max_buckets);
    bool stopped = false;
    for (size_t j = cursor.bucket; j < end && !stopped; ++j) {
      for (size_t b = j; b < current && !stopped; b += cursor.buckets) {
        shard.index.for_each_in_bucket(b, [&](Item* item) {
          if (stopped || item->expired_at(now) || flushed(item, flush_at, now)) return;
          if (!visit(f, *item)) stopped = true;
        });
      }
    }
    cursor.bucket = end;
    if (cursor.bucket >= cursor.buckets) {
      ++cursor.shard;
      cursor.bucket = 0;
      cursor.buckets = 0;
    }
    return cursor.shard < shards_.size();
  }
  return false;
}

// ---- Store::Locked ----

Store::Locked::Locked(Store& store, std::string_view key, Access access)
    : Locked(store, key, hash_key(key), access) {}

Store::Locked::Locked(Store& store, std::string_view key, uint64_t hash, Access access)
    : store_(store),
      shard_(store.shard_for(hash)),
      hash_(widen_hash_tag(static_cast<uint32_t>(hash))),
      key_(key),
      shared_(access == Access::kRead && shard_.lossy_reads) {
  if (shared_) {
    shard_.mutex.lock_shared();
  } else {
    shard_.mutex.lock();
  }
}

Store::Locked::~Locked() {
  if (shared_) {
    shard_.mutex.unlock_shared();
  } else {
    shard_.mutex.unlock();
  }
  // The reader has what it came for; the policy's share of the work is batched, and done now only
  // if this reader filled its stripe and nobody holds the lock.
  if (access_pending_ && shard_.reads.record(hash_, access_hit_) && shard_.mutex.try_lock()) {
    drain_reads_locked(shard_);
    shard_.mutex.unlock();
  }
}

Item* Store::Locked::find(int64_t now, bool count_miss_reason) {
  if (shard_.lossy_reads) {
    access_pending_ = true;
  } else {
    shard_.policy->record_access_locked(hash_);  // hit or miss: both count for frequency
  }
  Item* item = shard_.index.find(hash_, key_);
  if (item == nullptr) return nullptr;
  const bool dead = item->expired_at(now) || flushed(item, store_.flush_at_.load(std::memory_order_relaxed), now);
  if (dead && shared_) {
    // Unlinking needs the lock alone. Between the two holds another thread may unlink the item or
    // store a fresh one for the key, so look again rather than keep the pointer.
    shard_.mutex.unlock_shared();
    shard_.mutex.lock();
    shared_ = false;
    return find(now, count_miss_reason);
  }
  if (item->expired_at(now)) {
    count_reclaimed_locked(shard_, item, true);
    if (count_miss_reason) ++shard_.stats.get_expired;
    unlink_and_free_locked(shard_, item);
    return nullptr;
  }
  if (flushed(item, store_.flush_at_.load(std::memory_order_relaxed), now)) {
    count_reclaimed_locked(shard_, item, false);
    if (count_miss_reason) ++shard_.stats.get_flushed;
    unlink_and_free_locked(shard_, item);
    return nullptr;
  }
  return item;
}

Item* Store::Locked::allocate(uint32_t value_size, uint32_t client_flags, int64_t expires_at,
                              const Item* protect) {
  assert(!shared_);
  if (key_.size() > kMaxKeyBytes) return nullptr;
  const size_t bytes = sizeof(Item) + key_.size() + value_size;
  const uint64_t cost = item_cost(key_.size(), value_size);
  if (cost > shard_.limit_bytes) return nullptr;

  bool have_now = false;
  int64_t now = 0, flush_at = 0;
  if (access_pending_ && !access_hit_) {
    // A write after a miss (look-aside fill, add): the lock is held anyway, so the policy counts
    // this lookup now, and the duels that choose the victims below see it.
    shard_.policy->record_access_locked(hash_);
    access_pending_ = false;
  }
  // Evict from the policy's end until the item is within the charged limit and the allocator has
  // memory for it within the held limit (what it holds plus the index's buckets).
  Item* item = nullptr;
  bool drained = false;
  uint64_t stray_bytes = 0;
  for (;;) {
    const bool charge_fits = shard_.used_bytes + shard_.reserved_bytes + cost <= shard_.limit_bytes;
    if (charge_fits) {
      uint64_t held_budget = UINT64_MAX;  // a malloc shard counts only the charge (slab.h)
      if (shard_.slab.uses_pages()) {
        const uint64_t index_bytes = shard_.index.bytes_for(shard_.index.size() + shard_.reserved_items + 1);
        held_budget = index_bytes < shard_.limit_bytes ? shard_.limit_bytes - index_bytes : 0;
      }
      item = shard_.slab.allocate_locked(bytes, held_budget);
      if (item != nullptr) break;
    }
    if (shard_.lossy_reads && !drained) {
      drain_reads_locked(shard_);  // choose the victims with what readers have seen so far
      drained = true;
    }
    Item* victim = shard_.policy->victim_locked(protect, cost);
    if (victim == nullptr) return nullptr;
    if (!have_now) {
      now = store_.now();
      flush_at = store_.flush_at_.load(std::memory_order_relaxed);
      have_now = true;
    }
    // Within the charge but short of memory: a slab victim frees a chunk, which serves only an
    // item of its class and only if the held memory is within budget (the index grows too).
    // Such victims are evicted one at a time until they add up to a page; then the next one
    // goes with its whole page, which serves the waiting item (memcached's slab page mover, done
    // at once on the page of the policy's victim). So a page of other items is evicted for at
    // most a page of victims that did not help.
    const size_t victim_bytes = bytes_of(victim);
    if (charge_fits && shard_.slab.in_slab(victim_bytes)) {
      if (stray_bytes >= shard_.slab.page_bytes() && evict_page_locked(shard_, victim, protect, now, flush_at)) {
        stray_bytes = 0;
        continue;
      }
      stray_bytes += allocation_cost(victim_bytes);
    }
    evict_locked(shard_, victim, now, flush_at);
  }

  item->hash_next = nullptr;
  item->prev = nullptr;
  item->next = nullptr;
  item->cas = 0;
  item->hash.tag = static_cast<uint32_t>(hash_);
  item->expires_at = item_time(expires_at);
  item->accessed_at = 0;
  item->client_flags = client_flags;
  item->value_size = value_size;
  item->key_size = static_cast<uint8_t>(key_.size());
  item->bits = 0;
  item->linked = Item::kUnlinked;
  item->segment = 0;
  if (!key_.empty()) std::memcpy(item->key_data(), key_.data(), key_.size());
  shard_.reserved_bytes += cost;
  ++shard_.reserved_items;
  return item;
}

void Store::Locked::link(Item* item, int64_t now, uint64_t cas) {
  assert(!shared_);
  assert(item->linked == Item::kUnlinked);
  assert(item->hash.tag == static_cast<uint32_t>(hash_) && item->key() == key_);
  Item* old = shard_.index.find(hash_, key_);
  if (old != nullptr) unlink_and_free_locked(shard_, old);
  const uint64_t cost = cost_of(item);
  shard_.reserved_bytes -= cost;
  --shard_.reserved_items;
  shard_.used_bytes += cost;
  item->cas = cas != 0 ? cas : store_.next_cas();
  item->accessed_at = item_time(now);
  item->linked = Item::kLinked;
  shard_.index.insert(item);
  shard_.policy->added_locked(item);
  ++shard_.stats.total_items;
  if (item->expires_at != 0) schedule_expiry_locked(item);
}

void Store::Locked::set_expiry(Item* item, int64_t expires_at) {
  assert(!shared_);
  if (item->expires_at == item_time(expires_at)) return;
  item->expires_at = item_time(expires_at);
  if (expires_at != 0) schedule_expiry_locked(item);
}

void Store::Locked::schedule_expiry_locked(Item* item) {
  ExpiryWheel& wheel = shard_.expiry;
  wheel.add(item->hash, item->expires_at);
  if (wheel.entries() > 2 * shard_.index.size() + kWheelStaleSlack) {
    wheel.compact([&](const ExpiryWheel::Entry& entry) {
      return shard_.index.find_hash(entry.hash, [&](const Item* it) { return it->expires_at == entry.expires_at; }) !=
             nullptr;
    });
  }
}

void Store::Locked::discard(Item* item) {
  assert(!shared_);
  assert(item->linked == Item::kUnlinked);
  shard_.reserved_bytes -= cost_of(item);
  --shard_.reserved_items;
  shard_.slab.free_locked(item, bytes_of(item));
}

void Store::Locked::remove(Item* item) {
  assert(!shared_);
  assert(item->linked == Item::kLinked);
  unlink_and_free_locked(shard_, item);
}

void Store::Locked::touch(Item* item, int64_t now) {
  if (shard_.lossy_reads) {
    access_pending_ = true;
    access_hit_ = true;
  } else {
    shard_.policy->accessed_locked(item);
  }
  // Atomic because readers sharing the lock may touch the same item; relaxed because nothing else
  // is published with it (a reader with an older `now` may store it last: a second's error).
  const uint32_t at = item_time(now);
  if (__atomic_load_n(&item->accessed_at, __ATOMIC_RELAXED) != at) {
    __atomic_store_n(&item->accessed_at, at, __ATOMIC_RELAXED);
  }
}

uint64_t Store::Locked::bump_cas(Item* item) {
  assert(!shared_);
  item->cas = store_.next_cas();
  return item->cas;
}

StoreStats& Store::Locked::stats() {
  assert(!shared_);
  return shard_.stats;
}

}  // namespace gravity
