// The process-global item store: N shards, each with its own lock, index, eviction policy and
// share of the memory limit. Command semantics (set/add/cas/meta flags...) live in the protocol
// layer; it takes a shard lock through Store::Locked and uses these primitives under it.
//
//   Store ──hash──> Shard[i] { mutex, index (chained buckets), EvictionPolicy, used_bytes }
//
// Invariant: for every shard, used_bytes = sum of item_cost() of its linked items <= its
// limit_bytes, and the shards' limit_bytes add up to at most StoreOptions::memory_bytes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "item.h"
#include "policy.h"

namespace gravity {

struct StoreOptions {
  uint64_t memory_bytes = 64ull << 20;
  uint64_t max_item_bytes = 1ull << 20;  // memcached -I; see item_size_ok()
  uint32_t shard_count = 0;              // 0 = chosen from memory_bytes and max_item_bytes
  std::string policy = "lru";            // make_policy(): "lru" | "tinylfu"; the CLI picks its own default
  // Carve small items from per-shard slab pages (slab.h) instead of one malloc each: memcached's
  // bytes per item. Off: every item up to kMinMappedItemBytes is a malloc of its own (glibc's 8-16
  // bytes per allocation are then not counted), as in-process benchmarks of the policy alone use.
  bool slab_pages = true;
};

// Counters summed over shards. Field names are memcached's stats names.
struct StoreStats {
  uint64_t curr_items = 0, total_items = 0, bytes = 0, evictions = 0, expired_unfetched = 0,
           evicted_unfetched = 0, reclaimed = 0, get_expired = 0, get_flushed = 0;
  uint64_t cmd_get = 0, get_hits = 0, get_misses = 0, cmd_set = 0, cmd_touch = 0, touch_hits = 0,
           touch_misses = 0, delete_hits = 0, delete_misses = 0, incr_hits = 0, incr_misses = 0,
           decr_hits = 0, decr_misses = 0, cas_hits = 0, cas_misses = 0, cas_badval = 0;
  // W-TinyLFU window candidates evicted because they lost their duel for the main space (policy.h;
  // they count in evictions too). A new item is never refused.
  uint64_t admissions_rejected = 0;
  uint64_t limit_maxbytes = 0;
  uint64_t expiry_entries = 0;  // entries in the shards' expiry wheels, stale ones included
  // Memory the shards hold: slab pages (free chunks and pooled pages included), large items'
  // mappings and the indexes' bucket arrays. At most limit_maxbytes (slab.h).
  uint64_t held_bytes = 0;
};

// Per size class (item.h size_class_of) counters of items that left, summed over shards (memcached's
// "stats items" per-class fields of those names).
struct ClassCounters {
  uint64_t evicted = 0;            // evicted while live
  uint64_t evicted_nonzero = 0;    // ... of which had an expiry
  uint64_t evicted_unfetched = 0;  // ... of which were never read
  uint64_t evicted_time = 0;       // seconds since the last access of the latest one evicted (any shard)
  uint64_t reclaimed = 0;          // freed because they had expired or were flushed
  uint64_t expired_unfetched = 0;  // ... expired, never read
};

// Where a walk over every item (Store::walk) resumes: a shard, and a bucket of that shard's index
// as it was sized when the walk reached the shard (the index may double between batches).
struct WalkCursor {
  uint32_t shard = 0;
  size_t bucket = 0;
  size_t buckets = 0;  // the shard's bucket count when its walk began; 0 = not begun
};

struct Shard;

class Store {
 public:
  explicit Store(const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // How a Locked holds its shard's lock. kRead is for a plain lookup (find, touch, reading the
  // item): readers of a shard then run together. Under kRead only find() and touch() may be called
  // and the item must not be written; find() takes the lock exclusively by itself when it must
  // unlink an expired or flushed item. A policy that sees every access exactly (LRU: it moves the
  // item on each read) gets the exclusive lock either way.
  enum class Access : uint8_t { kWrite, kRead };

  // Holds one shard's lock for its lifetime; every item operation goes through it.
  // Item pointers it returns are valid only while it lives.
  class Locked {
   public:
    Locked(Store& store, std::string_view key, Access access = Access::kWrite);
    ~Locked();
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

    // The live item for the key, or null. An expired or flushed item found here is unlinked and
    // freed (lazy expiry) and counted (reclaimed; get_expired/get_flushed when count_miss_reason).
    // Every call, hit or miss, is one access for the policy's frequency count. A policy that
    // tolerates lossy reads learns of it after the lock is released (access_buffer.h).
    Item* find(int64_t now, bool count_miss_reason = false);

    // Allocates an unlinked item for this key with room for value_size bytes (value uninitialised),
    // evicting other items of the shard to make room. Never evicts `protect`. Returns null only if
    // the item cannot fit in the shard even when it is empty (callers check item_size_ok() first)
    // or if nothing else is left to evict; the policy chooses the victims, never refuses the item.
    // The item's cost is derived from key_size and value_size: neither may change afterwards.
    Item* allocate(uint32_t value_size, uint32_t client_flags, int64_t expires_at,
                   const Item* protect = nullptr);

    // Links an allocated item, replacing (unlinking and freeing) the current item for the key if
    // any. Assigns a new CAS unless cas != 0 (meta "E"). Sets accessed_at to now.
    void link(Item* item, int64_t now, uint64_t cas = 0);

    // Frees an item that allocate() returned and that was never linked.
    void discard(Item* item);

    // Unlinks and frees a linked item.
    void remove(Item* item);

    // Records a read or in-place update for the eviction policy and sets accessed_at. Under a
    // policy that tolerates lossy reads, the policy learns of it with find()'s access, buffered.
    // Writes accessed_at only when it changes (a second later), so readers of a hot item do not
    // pass its cache line between cores.
    void touch(Item* item, int64_t now);

    // Changes a linked item's expiry (touch, gat, meta T/N), keeping the expiry schedule right.
    void set_expiry(Item* item, int64_t expires_at);

    // Gives a linked item a fresh CAS (after an in-place change such as meta "I") and returns it.
    uint64_t bump_cas(Item* item);

    StoreStats& stats();  // this shard's counters; the caller holds the lock (not under kRead)

   private:
    Locked(Store& store, std::string_view key, uint64_t hash, Access access);  // hashes the key once
    void schedule_expiry_locked(Item* item);  // item->expires_at != 0

    Store& store_;
    Shard& shard_;
    uint64_t hash_;  // widen_hash_tag() of the key hash's low 32 bits (the shard came from its top bits)
    std::string_view key_;
    bool access_pending_ = false;  // find() ran: record the access when the lock is released
    bool access_hit_ = false;      // touch() ran: the recorded access is a hit
    bool shared_ = false;          // holds the lock shared (Access::kRead under a lossy-read policy)
  };

  // The configured limits.
  uint64_t memory_bytes() const { return options_.memory_bytes; }
  uint64_t max_item_bytes() const { return options_.max_item_bytes; }
  size_t shard_count() const { return shards_.size(); }

  // memcached flush_all. With delay_seconds <= 0 every item is freed now. Otherwise, once
  // now + delay_seconds arrives, items stored before that second are invalid (found lazily by
  // find() as get_flushed, or freed by sweep_expired()).
  void flush_all(int64_t now, int64_t delay_seconds = 0);

  // The background sweeper: frees the items whose expiry has come (each shard's timing wheel,
  // expiry_wheel.h) and, once a delayed flush_all's time has passed, the items it invalidated (one
  // walk of each shard's index). Looks at about max_items entries at most, taking each shard lock
  // for a bounded batch at a time. Returns the items freed.
  size_t sweep_expired(int64_t now, size_t max_items);

  StoreStats stats() const;

  // Per size class counters, indexed by size_class_of(); `out` has kSizeClasses entries.
  void class_counters(ClassCounters* out) const;

  // Walks the live items (neither expired nor flushed at `now`): calls visit(item) for each item
  // in the next batch of about max_buckets index buckets from `cursor`, holding one shard's lock
  // for the batch, then advances `cursor`. Returns false once the walk is complete. An item
  // present and unchanged for the whole walk is visited exactly once; one stored or removed
  // during it may or may not be (a snapshot per batch). visit() must not call into the store;
  // it returns false to end the batch early (the batch's remaining buckets are skipped).
  template <class Visit>
  bool walk(WalkCursor& cursor, size_t max_buckets, int64_t now, Visit visit) {
    return walk_batch(cursor, max_buckets, now, [](void* f, const Item& item) { return (*static_cast<Visit*>(f))(item); },
                      &visit);
  }

  // The store clock in unix seconds: the wall time when the store was created plus the whole
  // seconds elapsed since on a monotonic clock, plus a test-only offset (advance_clock).
  // A step of the wall clock neither expires items early nor revives them (memcached's
  // current_time likewise counts from process start on a monotonic clock).
  int64_t now() const;
  void advance_clock(int64_t seconds);

  uint64_t next_cas() { return cas_counter_.fetch_add(1, std::memory_order_relaxed) + 1; }

 private:
  friend class Locked;
  Shard& shard_for(uint64_t hash);
  bool walk_batch(WalkCursor& cursor, size_t max_buckets, int64_t now, bool (*visit)(void*, const Item&), void* f);

  StoreOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
  uint32_t shard_shift_;
  // Written by every modification on every thread: on its own cache line, so the fields read by
  // every lookup (clock_offset_, flush_at_) do not bounce between cores with it.
  alignas(64) std::atomic<uint64_t> cas_counter_{0};
  alignas(64) int64_t created_at_;  // unix seconds (std::time) when the store was created
  int64_t created_monotonic_;       // the same moment, monotonic_seconds()
  std::atomic<int64_t> clock_offset_{0};  // seconds added by advance_clock()
  std::atomic<int64_t> flush_at_{0};  // items stored before this unix time are invalid once it passes
};

// Whole seconds on a monotonic clock (the store clock's source).
int64_t monotonic_seconds();

// 64-bit hash of a key (shard and bucket selection inside the store).
uint64_t hash_key(std::string_view key);

}  // namespace gravity
