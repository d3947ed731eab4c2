// A shard's lossy read buffer (ristretto's striped ring buffers, Caffeine's read buffer): reads
// record which keys they looked up here, and the policy learns of them in batches, so a read holds
// the shard lock only for the index lookup and the copy of its value, never for policy work.
//
//   reader: lock · find · copy · unlock ──record(hash, hit)──> stripe[thread] (32 slots)
//                                                   stripe full ──try_lock──> drain into policy
//   writer (holds the lock, about to evict) ──drain──┘
//
// Lossy by design: an access is dropped when its stripe is busy (another thread mid-record on the
// same stripe) or full while the shard lock is taken by someone else. The policy's frequencies and
// recency are then slightly stale or low, never wrong about what is stored: the buffer holds key
// hashes, not item pointers, and the drain looks each one up in the index again.
#pragma once

#include <atomic>
#include <cstdint>

namespace gravity {

class AccessBuffer {
 public:
  static constexpr uint32_t kStripes = 4;
  static constexpr uint32_t kSlots = 32;  // per stripe; a bit per slot in Stripe::hits

  // Records one lookup of the key with this hash (hit: it was found and read). Returns true when
  // the caller's stripe is full: the caller should drain if it can take the shard lock without
  // waiting. Never blocks.
  bool record(uint64_t hash, bool hit) {
    Stripe& stripe = stripes_[stripe_of_this_thread()];
    if (stripe.busy.exchange(true, std::memory_order_acquire)) return false;  // dropped
    bool full = stripe.count == kSlots;
    if (!full) {
      stripe.hashes[stripe.count] = hash;
      if (hit) stripe.hits |= 1u << stripe.count;
      full = ++stripe.count == kSlots;
    }
    stripe.busy.store(false, std::memory_order_release);
    return full;
  }

  // Empties every stripe, calling apply(hashes, hits, count) once per non-empty stripe with its
  // accesses oldest first (bit i of hits: hashes[i] was a hit). The caller holds the shard lock, so
  // only one drain runs at a time; a stripe a reader is writing to right now is left for next time.
  template <class Apply>
  void drain(Apply apply) {
    for (Stripe& stripe : stripes_) {
      if (stripe.busy.exchange(true, std::memory_order_acquire)) continue;
      const uint32_t count = stripe.count;
      const uint32_t hits = stripe.hits;
      uint64_t hashes[kSlots];
      for (uint32_t i = 0; i < count; ++i) hashes[i] = stripe.hashes[i];
      stripe.count = 0;
      stripe.hits = 0;
      stripe.busy.store(false, std::memory_order_release);
      if (count != 0) apply(hashes, hits, count);
    }
  }

 private:
  // Threads are spread over the stripes round-robin in the order they first record, so up to
  // kStripes threads never share one.
  static uint32_t stripe_of_this_thread() {
    static std::atomic<uint32_t> next_thread{0};
    thread_local const uint32_t stripe = next_thread.fetch_add(1, std::memory_order_relaxed) % kStripes;
    return stripe;
  }

  struct alignas(64) Stripe {
    std::atomic<bool> busy{false};  // held while one thread records into or drains this stripe
    uint32_t count = 0;             // recorded accesses; guarded by busy
    uint32_t hits = 0;              // bit i: access i was a hit; guarded by busy
    uint64_t hashes[kSlots];        // guarded by busy
  };
  Stripe stripes_[kStripes];
};

}  // namespace gravity
