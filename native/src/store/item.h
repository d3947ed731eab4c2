// An item is one allocation: this header, then the key bytes, then the value bytes.
//
//   [ Item header | key (key_size) | value (value_size) ]
//
// Items are created, linked and freed only by a Shard while its lock is held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gravity {

struct Item {
  Item* hash_next;     // bucket chain of the shard's index
  Item* prev;          // eviction-policy links, owned by the shard's policy
  Item* next;
  uint64_t hash;       // full 64-bit key hash (shard and bucket are derived from it)
  uint64_t cas;        // unique per modification; never 0 for a linked item
  int64_t expires_at;  // unix seconds; 0 = never expires
  int64_t stored_at;   // unix seconds of the last modification
  int64_t accessed_at; // unix seconds of the last read or write
  uint32_t client_flags;
  uint32_t value_size;
  uint16_t key_size;
  uint8_t bits;        // kFetched | kStale | kWinSent | kKeyBinary
  uint8_t linked;      // 1 while in the index and the policy
  uint8_t segment;     // eviction-policy private state (W-TinyLFU's segment), owned like prev/next

  static constexpr uint8_t kFetched = 1;  // read at least once since stored (meta "h")
  static constexpr uint8_t kStale = 2;    // invalidated by meta "I" (meta "X")
  static constexpr uint8_t kWinSent = 4;  // a client holds the recache token (meta "W"/"Z")
  static constexpr uint8_t kKeyBinary = 8;  // stored by meta "b": meta replies show the key in base64

  char* key_data() { return reinterpret_cast<char*>(this + 1); }
  const char* key_data() const { return reinterpret_cast<const char*>(this + 1); }
  char* value_data() { return key_data() + key_size; }
  const char* value_data() const { return key_data() + key_size; }
  std::string_view key() const { return {key_data(), key_size}; }
  std::string_view value() const { return {value_data(), value_size}; }

  bool expired_at(int64_t now) const { return expires_at != 0 && expires_at <= now; }
};

// Bytes an item of this size is charged against --memory: the allocation (header, key, value),
// the allocator's own overhead and its share of the index's bucket array.
constexpr uint64_t kAllocatorOverheadBytes = 16;
// The index (index.h) is a chained table of 8-byte bucket pointers that doubles when the items
// outnumber the buckets, so right after a doubling it has up to 2 buckets (16 bytes) per item.
// The chain link itself is Item::hash_next, already in the header.
constexpr uint64_t kIndexOverheadBytes = 16;
constexpr uint64_t item_cost(size_t key_size, size_t value_size) {
  return sizeof(Item) + key_size + value_size + kAllocatorOverheadBytes + kIndexOverheadBytes;
}

// memcached's item size check (items.c item_size_ok): its 48-byte header, 8-byte CAS, the key with
// a NUL and the value with CRLF must fit in the item size limit (-I, default 1 MiB).
constexpr bool item_size_ok(size_t key_size, size_t value_size, uint64_t max_item_bytes) {
  return 56 + key_size + 1 + value_size + 2 <= max_item_bytes;
}

}  // namespace gravity
