// An item is one allocation of its shard's allocator (slab.h: a slab chunk, a malloc or a mapping
// of its own by its size): this header, then the key bytes, then the value bytes.
//
//   [ Item header (56 bytes) | key (key_size) | value (value_size) ]
//
// Items are created, linked and freed only by a Shard while its lock is held.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gravity {

// The 64-bit form of an item's 32-bit hash tag: the tag in the low half (the index's bucket and
// comparison), a remix of it in the high half, so that what the policy's sketch, the access buffer
// and the expiry wheel receive has entropy in every bit. The store hands this form, never the key's
// full hash, to everything outside the index.
constexpr uint64_t widen_hash_tag(uint32_t tag) {
  uint32_t h = tag * 0x9e3779b1u;  // Knuth's multiplicative step, then murmur3's fmix32
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  return (static_cast<uint64_t>(h) << 32) | tag;
}

// The 32 low bits of a key's hash (the top bits pick the shard, so these are independent of it).
// Reads as the widened 64-bit hash, so a policy written for 64-bit hashes (item->hash) sees the
// same value the store passed to record_access_locked().
struct HashTag {
  uint32_t tag;
  operator uint64_t() const { return widen_hash_tag(tag); }
};

struct Item {
  Item* hash_next;     // bucket chain of the shard's index
  Item* prev;          // eviction-policy links, owned by the shard's policy
  Item* next;
  uint64_t cas;        // unique per modification; never 0 for a linked item
  HashTag hash;        // the key hash's low 32 bits; reads as widen_hash_tag()
  // Unix seconds in 32 bits, unsigned (memcached's rel_time_t is 32 bits from process start;
  // unsigned unix seconds last until 2106 and read as int64 arithmetic unchanged).
  uint32_t expires_at;   // 0 = never expires; a later time than 2106 is clamped to the last second
  uint32_t accessed_at;  // last read or write; also what a delayed flush_all compares (memcached's it->time)
  uint32_t client_flags;
  uint32_t value_size;
  uint8_t key_size;    // memcached's keys are at most 250 bytes
  uint8_t bits;        // kFetched | kStale | kWinSent | kKeyBinary
  uint8_t linked;      // kLinked while in the index and the policy; the slab's chunk state (slab.h)
  uint8_t segment;     // eviction-policy private state (W-TinyLFU's segment), owned like prev/next

  static constexpr uint8_t kFetched = 1;  // read at least once since stored (meta "h")
  static constexpr uint8_t kStale = 2;    // invalidated by meta "I" (meta "X")
  static constexpr uint8_t kWinSent = 4;  // a client holds the recache token (meta "W"/"Z")
  static constexpr uint8_t kKeyBinary = 8;  // stored by meta "b": meta replies show the key in base64

  // Values of `linked`: allocated and not yet linked (or being freed), linked, and (written by the
  // slab allocator into a free chunk) free.
  static constexpr uint8_t kUnlinked = 0;
  static constexpr uint8_t kLinked = 1;
  static constexpr uint8_t kFreeChunk = 2;

  char* key_data() { return reinterpret_cast<char*>(this + 1); }
  const char* key_data() const { return reinterpret_cast<const char*>(this + 1); }
  char* value_data() { return key_data() + key_size; }
  const char* value_data() const { return key_data() + key_size; }
  std::string_view key() const { return {key_data(), key_size}; }
  std::string_view value() const { return {value_data(), value_size}; }

  bool expired_at(int64_t now) const { return expires_at != 0 && expires_at <= now; }
};
static_assert(sizeof(Item) == 56, "the item header is memcached's 48 bytes plus CAS");

constexpr size_t kMaxKeyBytes = 255;  // what Item::key_size holds

// A time for Item::expires_at / accessed_at: unix seconds clamped to 32 bits (0 stays 0).
constexpr uint32_t item_time(int64_t unix_seconds) {
  if (unix_seconds <= 0) return 0;
  return unix_seconds >= int64_t{UINT32_MAX} ? UINT32_MAX : static_cast<uint32_t>(unix_seconds);
}

// ---- Size classes and the allocator's three tiers (slab.h) ----
//
// Size classes are 8 bytes apart from 64 to 128 bytes, then 16 per doubling up to
// kMaxSizeClassBytes (memcached grows by 1.25: 16 per doubling wastes at most 1/16 of an item, 3%
// on average, where 1.25 wastes up to 20%). Every item has one for statistics ("stats items",
// "stats slabs"); its memory comes from one of three tiers by its size n (header, key, value):
//
//   n <= kMaxSlabItemBytes          a chunk of its class on a slab page of its shard (no per-item
//                                   header: glibc's 8-16 bytes are most of the overhead of small items)
//   n <  kMinMappedItemBytes        malloc: glibc's 8-16 bytes are at most 6% of such an item, less
//                                   than the free chunks of pages in more classes would hold
//                                   (bench:hitratio-network, 100-1,000-byte values in 16 MiB: pages
//                                   up to 512 bytes held 4.6% of the memory in free chunks and tails,
//                                   up to 256 bytes under 1%)
//   n >= kMinMappedItemBytes        a mapping of its own, unmapped when freed, so a flood of large
//                                   values leaves no heap behind (glibc's dynamic mmap threshold
//                                   would serve them from the heap after the first large free)
constexpr size_t kSlabPageBytes = 256 * 1024;  // the largest slab page, and the page "stats slabs" reports
constexpr size_t kMaxSizeClassBytes = kSlabPageBytes / 4;
constexpr size_t kMinSlabChunkBytes = 64;
constexpr size_t kMaxSlabItemBytes = 256;
constexpr size_t kMinMappedItemBytes = 128 * 1024;
constexpr size_t kLargePageBytes = 4096;  // a large item's mapping is rounded up to OS pages

// The size class of n bytes (1 <= n <= kMaxSizeClassBytes).
constexpr uint32_t slab_class_of(size_t n) {
  if (n <= 128) return n <= kMinSlabChunkBytes ? 0 : static_cast<uint32_t>((n - kMinSlabChunkBytes + 7) / 8);
  uint32_t b = 7;  // 2^b < n <= 2^(b+1)
  while ((size_t{2} << b) < n) ++b;
  const size_t step = (size_t{1} << b) / 16;
  const size_t k = (n - (size_t{1} << b) + step - 1) / step;  // 1..16
  return 8 + (b - 7) * 16 + static_cast<uint32_t>(k);
}

constexpr uint32_t kSlabClasses = slab_class_of(kMaxSizeClassBytes) + 1;
constexpr uint32_t kSlabPageClasses = slab_class_of(kMaxSlabItemBytes) + 1;  // classes carved from pages

// The size class of an item of n bytes (header, key, value) for statistics and dumps: its class,
// or kSlabClasses for an item bigger than the largest one.
constexpr uint32_t size_class_of(size_t n) { return n <= kMaxSizeClassBytes ? slab_class_of(n) : kSlabClasses; }
constexpr uint32_t kSizeClasses = kSlabClasses + 1;

struct SlabClassInfo {
  uint32_t chunk_bytes;      // the class's size
  uint32_t chunks_per_page;  // in a page of kSlabPageBytes (what "stats slabs" reports)
};

constexpr std::array<SlabClassInfo, kSlabClasses> make_slab_classes() {
  std::array<SlabClassInfo, kSlabClasses> classes{};
  for (uint32_t c = 0; c < kSlabClasses; ++c) {
    size_t chunk = 0;
    if (c <= 8) {
      chunk = kMinSlabChunkBytes + 8 * c;
    } else {
      const uint32_t b = 7 + (c - 9) / 16;
      const uint32_t k = (c - 9) % 16 + 1;
      chunk = (size_t{1} << b) + k * ((size_t{1} << b) / 16);
    }
    classes[c] = {static_cast<uint32_t>(chunk), static_cast<uint32_t>(kSlabPageBytes / chunk)};
  }
  return classes;
}

inline constexpr std::array<SlabClassInfo, kSlabClasses> kSlabClassTable = make_slab_classes();

// glibc's chunk for a malloc of n bytes: an 8-byte size field, 16-byte alignment, 32 at least.
constexpr uint64_t malloc_chunk_bytes(size_t n) {
  const uint64_t chunk = (uint64_t{n} + 8 + 15) / 16 * 16;
  return chunk < 32 ? 32 : chunk;
}

// Bytes an allocation of n bytes (header, key and value) is charged: its slab chunk, its malloc
// chunk, or its mapping rounded up to OS pages (the tiers above). A slab page's tail (less than a
// chunk) and the free chunks of partly used pages are held, not charged: the shard's held limit
// (slab.h) counts them.
constexpr uint64_t allocation_cost(size_t n) {
  if (n <= kMaxSlabItemBytes) return kSlabClassTable[slab_class_of(n)].chunk_bytes;
  if (n < kMinMappedItemBytes) return malloc_chunk_bytes(n);
  return (n + kLargePageBytes - 1) / kLargePageBytes * kLargePageBytes;
}

// The index (index.h) is a chained table of 8-byte bucket pointers holding at most 2 items per
// bucket and doubling past that, so right after a doubling it has one bucket (8 bytes) per item.
// The chain link itself is Item::hash_next, already in the header.
constexpr uint64_t kIndexOverheadBytes = 8;

// Bytes an item of this size is charged against --memory: its allocation_cost() plus its share
// of the index.
constexpr uint64_t item_cost(size_t key_size, size_t value_size) {
  return allocation_cost(sizeof(Item) + key_size + value_size) + kIndexOverheadBytes;
}

// memcached's item size check (items.c item_size_ok): its 48-byte header, 8-byte CAS, the key with
// a NUL and the value with CRLF must fit in the item size limit (-I, default 1 MiB).
constexpr bool item_size_ok(size_t key_size, size_t value_size, uint64_t max_item_bytes) {
  return 56 + key_size + 1 + value_size + 2 <= max_item_bytes;
}

}  // namespace gravity
