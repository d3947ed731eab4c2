// A count-min sketch of 4-bit counters with periodic halving: TinyLFU's approximate frequency
// histogram (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission Policy";
// count-min after Cormode and Muthukrishnan).
//
//   row 0: [w0: 16 x 4-bit counters][w1]...   width = next power of two >= 4 x expected items
//   row 1..3: the same, each indexed by its own remix of the key hash
//
// estimate(h) is the minimum of the key's 4 counters, so it never undercounts what was added
// since the last halving (counters saturate at 15). After W = 10 x expected items samples every
// counter and the sample count are halved ("reset"), so old popularity decays. increment() and
// estimate() do not allocate; ensure_capacity() does, rarely, when the cache holds more items than
// the sketch was sized for (Caffeine's FrequencySketch.ensureCapacity).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gravity {

class CountMinSketch {
 public:
  static constexpr int kRows = 4;
  static constexpr uint32_t kMaxCount = 15;
  // W = 10 x capacity, the paper's and Caffeine's. Measured on bench:hitratio with the hill
  // climber's period at 10 x capacity: 80 x gains ~1 point on Zipf(0.99) but loses 4.4 / 3.9 points
  // on "shifting" at 5% / 10% and 2.5 on the ARC trace P12 at 10%: old popularity outlives its
  // keys; 20 x sits between; 5 x moves shifting by -0.1 / +0.5 and loses 0.2-1.2 on Zipf and P2.
  static constexpr uint64_t kSamplesPerItem = 10;
  // Counters per row per expected item (4, so 16 per item in all: Caffeine's FrequencySketch
  // density, 8 bytes per item). One per item (width = capacity) overcounts by about W / width.
  static constexpr uint64_t kCountersPerItem = 4;

  explicit CountMinSketch(uint64_t expected_items) {
    if (expected_items < 1) expected_items = 1;
    uint64_t width = kCountersPerWord;
    while (width < expected_items * kCountersPerItem) width *= 2;
    shift_ = 64;
    for (uint64_t w = width; w > 1; w /= 2) --shift_;
    words_per_row_ = static_cast<size_t>(width / kCountersPerWord);
    table_.assign(words_per_row_ * kRows, 0);
    sample_size_ = kSamplesPerItem * expected_items;
  }

  // Adds one to the key's counters and counts one sample. Returns true if that sample completed
  // the period and every counter was halved.
  bool increment(uint64_t hash) {
    for (int row = 0; row < kRows; ++row) {
      uint64_t& word = table_[word_index(hash, row)];
      const unsigned shift = nibble_shift(hash, row);
      if (((word >> shift) & kMaxCount) < kMaxCount) word += uint64_t{1} << shift;
    }
    return count_sample();
  }

  // Counts one sample that did not reach the counters (an access absorbed by a doorkeeper).
  bool count_sample() {
    if (++samples_ < sample_size_) return false;
    halve();
    return true;
  }

  // Sizes the sketch for at least expected_items: W becomes 10 x expected_items (never smaller)
  // and the width doubles until it covers them. Estimates are kept: a key's counter index is the
  // top log2(width) bits of one product, so at twice the width its counter is 2i or 2i + 1 of the
  // old counter i, and both start with i's count. Allocates only when the width grows.
  void ensure_capacity(uint64_t expected_items) {
    if (kSamplesPerItem * expected_items > sample_size_) sample_size_ = kSamplesPerItem * expected_items;
    const uint64_t old_width = width();
    uint64_t new_width = old_width;
    unsigned doublings = 0;
    while (new_width < expected_items * kCountersPerItem) {
      new_width *= 2;
      ++doublings;
    }
    if (doublings == 0) return;
    const size_t new_words_per_row = static_cast<size_t>(new_width / kCountersPerWord);
    std::vector<uint64_t> table(new_words_per_row * kRows, 0);
    const uint64_t fan_out = uint64_t{1} << doublings;
    for (int row = 0; row < kRows; ++row) {
      const uint64_t* from = &table_[static_cast<size_t>(row) * words_per_row_];
      uint64_t* to = &table[static_cast<size_t>(row) * new_words_per_row];
      for (uint64_t i = 0; i < old_width; ++i) {
        const uint64_t count = (from[i / kCountersPerWord] >> ((i % kCountersPerWord) * 4)) & kMaxCount;
        if (count == 0) continue;
        for (uint64_t j = i * fan_out; j < (i + 1) * fan_out; ++j) {
          to[j / kCountersPerWord] |= count << ((j % kCountersPerWord) * 4);
        }
      }
    }
    table_.swap(table);
    words_per_row_ = new_words_per_row;
    shift_ -= doublings;
  }

  uint32_t estimate(uint64_t hash) const {
    uint32_t least = kMaxCount;
    for (int row = 0; row < kRows; ++row) {
      const uint32_t count =
          static_cast<uint32_t>((table_[word_index(hash, row)] >> nibble_shift(hash, row)) & kMaxCount);
      if (count < least) least = count;
    }
    return least;
  }

  // The reset: every counter and the sample count are divided by two (the paper's aging).
  void halve() {
    for (uint64_t& word : table_) word = (word >> 1) & 0x7777777777777777ull;
    samples_ /= 2;
  }

  uint64_t sample_size() const { return sample_size_; }  // W
  uint64_t samples() const { return samples_; }          // since the last halving (halved too)
  uint64_t width() const { return words_per_row_ * kCountersPerWord; }
  size_t memory_bytes() const { return table_.size() * sizeof(uint64_t); }

 private:
  static constexpr uint64_t kCountersPerWord = 16;

  // A different remix of the key hash per row: the store's hash picks the shard with its top bits,
  // so the row index must depend on every bit, not just a slice.
  uint64_t counter_index(uint64_t hash, int row) const {
    static constexpr uint64_t kRowSeeds[kRows] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full,
                                                  0x165667b19e3779f9ull, 0xd6e8feb86659fd93ull};
    uint64_t h = (hash ^ kRowSeeds[row]) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebull;
    return shift_ >= 64 ? 0 : h >> shift_;  // top bits of the product: the best mixed
  }
  size_t word_index(uint64_t hash, int row) const {
    return static_cast<size_t>(row) * words_per_row_ + static_cast<size_t>(counter_index(hash, row) / kCountersPerWord);
  }
  unsigned nibble_shift(uint64_t hash, int row) const {
    return static_cast<unsigned>(counter_index(hash, row) % kCountersPerWord) * 4;
  }

  std::vector<uint64_t> table_;  // kRows rows of words_per_row_ words
  size_t words_per_row_ = 0;
  unsigned shift_ = 64;          // 64 - log2(width)
  uint64_t sample_size_ = 0;     // W
  uint64_t samples_ = 0;
};

}  // namespace gravity
