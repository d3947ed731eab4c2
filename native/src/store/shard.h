// One shard of the store: its lock and everything the lock guards. Private to store.cc and tests.
#pragma once

#include <cstdint>
#include <memory>

#include "access_buffer.h"
#include "index.h"
#include "policy.h"
#include "spin_lock.h"
#include "store.h"

namespace gravity {

struct Shard {
  SpinLock mutex;
  // Everything below is guarded by `mutex`.
  Index index;
  std::unique_ptr<EvictionPolicy> policy;
  uint64_t limit_bytes = 0;     // memory_bytes / shard count
  uint64_t used_bytes = 0;      // sum of item_cost() of linked items
  uint64_t reserved_bytes = 0;  // item_cost() of allocated, not yet linked items
  // Invariant: used_bytes + reserved_bytes <= limit_bytes.
  size_t sweep_bucket = 0;      // where sweep_expired() resumes in the index
  StoreStats stats;             // counters; curr_items/bytes/limit_maxbytes are filled by Store::stats()
  // Not guarded by `mutex`: readers record into it after unlocking; draining it takes the lock.
  AccessBuffer reads;
  bool lossy_reads = false;     // policy->tolerates_lossy_reads(), fixed at construction
};

}  // namespace gravity
