// One shard of the store: its lock and everything the lock guards. Private to store.cc and tests.
#pragma once

#include <cstdint>
#include <memory>

#include "access_buffer.h"
#include "expiry_wheel.h"
#include "index.h"
#include "policy.h"
#include "slab.h"
#include "spin_lock.h"
#include "store.h"

namespace gravity {

struct Shard {
  Shard(uint64_t limit, bool slab_pages) : limit_bytes(limit), slab(slab_pages ? limit : 0) {}

  SpinLock mutex;
  // Everything below is guarded by `mutex`.
  Index index;
  std::unique_ptr<EvictionPolicy> policy;
  const uint64_t limit_bytes;   // memory_bytes / shard count
  uint64_t used_bytes = 0;      // sum of item_cost() of linked items
  uint64_t reserved_bytes = 0;  // item_cost() of allocated, not yet linked items
  uint64_t reserved_items = 0;  // how many
  SlabAllocator slab;           // every item's memory
  // Invariants: used_bytes + reserved_bytes <= limit_bytes (what is charged), and
  // slab.held_bytes() + index.bytes_for(linked + reserved items) <= limit_bytes (what is held).
  ExpiryWheel expiry;           // when each item with an expiry is due (linked and set_expiry)
  // The delayed flush_all whose items this shard has finished sweeping (0: none), and where the
  // sweep of the current one resumes in the index / how many buckets it has walked.
  int64_t flush_swept = 0;
  size_t flush_bucket = 0;
  size_t flush_walked = 0;
  StoreStats stats;             // counters; curr_items/bytes/limit_maxbytes are filled by Store::stats()
  ClassCounters class_stats[kSizeClasses];  // by size_class_of() of the item's bytes
  // Not guarded by `mutex`: readers record into it after unlocking; draining it takes the lock.
  AccessBuffer reads;
  bool lossy_reads = false;     // policy->tolerates_lossy_reads(), fixed at construction
};

}  // namespace gravity
