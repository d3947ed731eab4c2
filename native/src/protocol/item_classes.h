// The item classes that "stats items", "stats slabs", "stats cachedump" and "lru_crawler metadump"
// report. memcached numbers its slab classes 1..63 (MAX_NUMBER_OF_SLAB_CLASSES 64), and
// libmemcached's memcdump asks "stats cachedump N 0" for N = 0..63 only, so the store's
// kSizeClasses size classes (item.h: 8 bytes apart to 128, then 16 per doubling) are reported four
// at a time: report class r covers size classes 4(r-1) .. 4(r-1)+3, and the last report class
// holds the items bigger than the largest size class.
#pragma once

#include <cstdint>

#include "store/item.h"

namespace gravity::protocol {

constexpr uint32_t kSizeClassesPerReportClass = 4;
constexpr uint32_t kLargeReportClass = (kSlabClasses + kSizeClassesPerReportClass - 1) / kSizeClassesPerReportClass + 1;
constexpr uint32_t kReportClasses = kLargeReportClass;  // ids 1..kReportClasses
// memcached's bound on a class id (cachedump: "Illegal slab id"; metadump: "BADCLASS").
constexpr uint32_t kMaxReportClassId = 63;
static_assert(kReportClasses <= kMaxReportClassId, "memcdump asks for classes 0..63 only");

// The report class (1-based) of an item of n bytes (header, key, value).
constexpr uint32_t report_class_of(size_t n) {
  const uint32_t c = size_class_of(n);
  return c == kSlabClasses ? kLargeReportClass : c / kSizeClassesPerReportClass + 1;
}

// The largest item (bytes) a slab report class holds: the chunk of its largest size class.
constexpr uint32_t report_chunk_bytes(uint32_t report_class) {
  uint32_t c = (report_class - 1) * kSizeClassesPerReportClass + kSizeClassesPerReportClass - 1;
  if (c >= kSlabClasses) c = kSlabClasses - 1;
  return kSlabClassTable[c].chunk_bytes;
}

constexpr uint32_t report_chunks_per_page(uint32_t report_class) {
  uint32_t c = (report_class - 1) * kSizeClassesPerReportClass + kSizeClassesPerReportClass - 1;
  if (c >= kSlabClasses) c = kSlabClasses - 1;
  return kSlabClassTable[c].chunks_per_page;
}

// An item's bytes as the store allocates them: the 56-byte header, the key and the value.
inline size_t item_bytes(const Item& item) { return sizeof(Item) + item.key_size + item.value_size; }

}  // namespace gravity::protocol
