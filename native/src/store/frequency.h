// TinyLFU's frequency estimate of a key: doorkeeper + count-min sketch + aging (Einziger,
// Friedman, Manes). Every access counts as one sample toward the period W, whether the doorkeeper
// absorbed it or the sketch counted it; at W the sketch halves and the doorkeeper is cleared.
//
//   record(h):  doorkeeper has h? ──no──> set its bits
//                      └──yes──> sketch.increment(h)
//   estimate(h) = sketch.estimate(h) + (doorkeeper has h ? 1 : 0)
#pragma once

#include <cstdint>

#include "doorkeeper.h"
#include "sketch.h"

namespace gravity {

class FrequencyEstimator {
 public:
  // The doorkeeper has about one bit per sample of a period (W = 10 x expected_items).
  explicit FrequencyEstimator(uint64_t expected_items)
      : sketch_(expected_items), doorkeeper_(sketch_.sample_size()) {}

  void record(uint64_t hash) {
    const bool halved = doorkeeper_.insert(hash) ? sketch_.increment(hash) : sketch_.count_sample();
    if (halved) doorkeeper_.clear();
  }

  uint32_t estimate(uint64_t hash) const {
    return sketch_.estimate(hash) + (doorkeeper_.contains(hash) ? 1 : 0);
  }

  const CountMinSketch& sketch() const { return sketch_; }
  const Doorkeeper& doorkeeper() const { return doorkeeper_; }
  size_t memory_bytes() const { return sketch_.memory_bytes() + doorkeeper_.memory_bytes(); }

 private:
  CountMinSketch sketch_;
  Doorkeeper doorkeeper_;
};

}  // namespace gravity
