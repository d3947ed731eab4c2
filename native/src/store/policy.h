// The eviction policy of one shard: which linked item leaves when memory is needed. Every call is
// made with the shard lock held (hence the _locked suffix). Policies are selected by name: "lru"
// or "tinylfu". A policy never refuses a new item: the store evicts the victims it names until the
// item fits, so a client's write fails only when nothing is left to evict. Admission (TinyLFU)
// decides which of the policy's own items leaves, never whether the new one is stored.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "item.h"

namespace gravity {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void added_locked(Item* item) = 0;     // item was just linked
  virtual void accessed_locked(Item* item) = 0;  // item was read or rewritten in place
  virtual void removed_locked(Item* item) = 0;   // item is being unlinked
  // The item to evict next to make room for a new item of incoming_cost bytes, never `protect`
  // (may be null); null if there is none. May reorder the policy's own state (W-TinyLFU moves
  // window items to its main space here, and may name one of them: a candidate that lost its duel).
  virtual Item* victim_locked(const Item* protect, uint64_t incoming_cost) = 0;

  // One lookup of a key, hit or miss (Store::Locked::find calls it once per lookup). Frequency
  // policies count it; a miss is an access too, so a key can earn admission before it is stored.
  virtual void record_access_locked(uint64_t hash) {}
  // Whether the policy may learn of reads late, in batches, and lose a few under contention
  // (access_buffer.h): then the store records reads in a lossy buffer instead of calling
  // record_access_locked/accessed_locked while the reader holds the lock. An exact policy (LRU)
  // says no and sees every access as it happens.
  virtual bool tolerates_lossy_reads() const { return false; }
  // Items the policy refused entry to its main space and evicted (W-TinyLFU's window candidates
  // that lost their duel to the main victim): StoreStats::admissions_rejected.
  virtual uint64_t rejected_candidates_locked() const { return 0; }
};

// "lru" (exact LRU per shard) or "tinylfu" (W-TinyLFU, policy_tinylfu.cc), for a shard holding at
// most limit_bytes of item cost (tinylfu sizes its frequency sketch from it; 0 = only validate
// the name, the policy is built for a small shard). Returns null for an unknown name.
std::unique_ptr<EvictionPolicy> make_policy(std::string_view name, uint64_t limit_bytes = 0);

std::unique_ptr<EvictionPolicy> make_lru_policy();
std::unique_ptr<EvictionPolicy> make_tinylfu_policy(uint64_t limit_bytes);

}  // namespace gravity
