// TinyLFU doorkeeper (Einziger, Friedman, Manes): a Bloom filter in front of the count-min sketch.
// The first access of a key in a period only sets its bits; repeat accesses reach the sketch, so
// the many keys seen once ("one-hit wonders") never occupy sketch counters. Cleared whenever the
// sketch halves. A false positive only lets a first access into the sketch (an overcount of 1).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace gravity {

class Doorkeeper {
 public:
  static constexpr int kProbes = 3;

  // bits: rounded up to a power of two (at least 64).
  explicit Doorkeeper(uint64_t bits) {
    uint64_t size = 64;
    while (size < bits) size *= 2;
    mask_ = size - 1;
    words_.assign(static_cast<size_t>(size / 64), 0);
  }

  // Sets the key's bits; returns true if they were all set already (a repeat access).
  bool insert(uint64_t hash) {
    bool present = true;
    for (int i = 0; i < kProbes; ++i) {
      const uint64_t bit = probe(hash, i);
      uint64_t& word = words_[static_cast<size_t>(bit / 64)];
      const uint64_t m = uint64_t{1} << (bit % 64);
      if ((word & m) == 0) {
        present = false;
        word |= m;
      }
    }
    return present;
  }

  bool contains(uint64_t hash) const {
    for (int i = 0; i < kProbes; ++i) {
      const uint64_t bit = probe(hash, i);
      if ((words_[static_cast<size_t>(bit / 64)] & (uint64_t{1} << (bit % 64))) == 0) return false;
    }
    return true;
  }

  // Grows to at least `bits` (a power of two), keeping every key it contains: a probe is a value
  // masked to the size, so at twice the size bit b of the old filter is bit b or b + old size,
  // and the old words are repeated to cover both. Allocates only when the size grows.
  void grow(uint64_t bits) {
    const uint64_t old_size = mask_ + 1;
    uint64_t size = old_size;
    while (size < bits) size *= 2;
    if (size == old_size) return;
    const size_t old_words = words_.size();
    words_.resize(static_cast<size_t>(size / 64));
    for (size_t i = old_words; i < words_.size(); ++i) words_[i] = words_[i % old_words];
    mask_ = size - 1;
  }

  void clear() { std::fill(words_.begin(), words_.end(), 0); }

  size_t memory_bytes() const { return words_.size() * sizeof(uint64_t); }

 private:
  // Double hashing (Kirsch and Mitzenmacher): probe i = h1 + i * h2, from one remix of the hash.
  uint64_t probe(uint64_t hash, int i) const {
    uint64_t h = (hash ^ 0x243f6a8885a308d3ull) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    const uint64_t h1 = h >> 32;
    const uint64_t h2 = (h & 0xffffffffull) | 1;
    return (h1 + static_cast<uint64_t>(i) * h2) & mask_;
  }

  std::vector<uint64_t> words_;
  uint64_t mask_ = 63;
};

}  // namespace gravity
