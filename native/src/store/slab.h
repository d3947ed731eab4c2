// A shard's memory: slab pages carved into chunks of one size class each (memcached's slabs.c),
// and a mapping of its own for each item bigger than the largest class.
//
//   region (reserved once, limit_bytes of address space, touched only as pages are used)
//   ┌────────┬────────┬────────┬─────────────┐
//   │ page 0 │ page 1 │ page 2 │  untouched  │   each page: one class, chunks carved lazily
//   └────────┴────────┴────────┴─────────────┘   (a bump pointer), freed chunks on the page's list
//   class c ──> pages with a free chunk          empty pages ──> pool (resident, reused by any class)
//   large item ──> its own mmap, unmapped when freed
//
// held_bytes() is every byte the allocator holds: pages in use or pooled, and large mappings. The
// shard keeps held_bytes() plus its index's bucket array within its limit, so free chunks and empty
// pages never escape --memory. Unlike memcached, the pool releases a page to the OS
// (MADV_DONTNEED) when a large item needs its bytes, and pages are never carved in advance.
// Every call is made with the shard lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "item.h"

namespace gravity {

class SlabAllocator {
 public:
  // A shard smaller than this many pages cannot spread its classes over pages: it takes each chunk
  // from malloc instead (stores below 4 MiB, such as tests'; glibc's 8-16 bytes per allocation
  // are then not counted).
  static constexpr uint64_t kMinPages = 16;

  // Reserves address space for limit_bytes of pages (no memory is touched until it is used).
  explicit SlabAllocator(uint64_t limit_bytes);
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // Memory for an item of n bytes (header, key, value) if it can be had within held_budget bytes
  // of held memory: a free chunk of its class, a pooled page, a new page, or (large) a new mapping
  // after releasing pooled pages. Null if not: the caller evicts and retries. The chunk's
  // Item::linked is kUnlinked.
  Item* allocate_locked(size_t n, uint64_t held_budget);

  // Returns an item's memory (n as given to allocate). A page left empty goes to the pool.
  void free_locked(Item* item, size_t n);

  // Whether an item of n bytes lives in a slab page (rather than a mapping of its own).
  bool in_slab(size_t n) const { return region_ != nullptr && n <= kMaxSlabChunkBytes; }
  bool uses_pages() const { return region_ != nullptr; }

  // Calls f(item) for every chunk on the page of `item` (a slab item) that is allocated (linked or
  // not). Collects them first, so f may free them.
  template <class F>
  void for_each_on_page_locked(const Item* item, F f) {
    const Page& page = pages_[page_of(item)];
    const SlabClassInfo& info = kSlabClassTable[page.cls];
    char* base = page_base(page_of(item));
    std::vector<Item*> on_page;
    on_page.reserve(page.live);
    for (uint32_t i = 0; i < page.carved; ++i) {
      Item* chunk = reinterpret_cast<Item*>(base + static_cast<size_t>(i) * info.chunk_bytes);
      if (chunk->linked != Item::kFreeChunk) on_page.push_back(chunk);
    }
    for (Item* chunk : on_page) f(chunk);
  }

  uint64_t held_bytes() const { return held_bytes_; }
  uint64_t pages_held() const { return pages_held_; }
  uint64_t pooled_pages() const { return pool_.size(); }
  uint64_t large_bytes() const { return large_bytes_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Page {
    Item* free = nullptr;     // freed chunks, linked through Item::hash_next
    uint32_t live = 0;        // chunks allocated (linked or not)
    uint32_t carved = 0;      // chunks handed out at least once (the bump pointer)
    uint32_t prev = kNone;    // the class's list of pages with a free or uncarved chunk
    uint32_t next = kNone;
    uint16_t cls = 0;
    bool listed = false;      // on its class's list
  };

  char* page_base(uint32_t page) const { return region_ + static_cast<size_t>(page) * kSlabPageBytes; }
  uint32_t page_of(const Item* item) const {
    return static_cast<uint32_t>((reinterpret_cast<const char*>(item) - region_) / kSlabPageBytes);
  }
  uint32_t take_page_locked(uint64_t held_budget);  // a pooled or new page, or kNone
  void list_push(uint32_t cls, uint32_t page);
  void list_remove(uint32_t page);

  char* region_ = nullptr;          // page_slots_ pages of reserved address space
  size_t region_bytes_ = 0;
  uint32_t page_slots_ = 0;
  uint32_t fresh_slot_ = 0;         // slots below this have been used; above, never touched
  std::vector<Page> pages_;         // by slot
  std::vector<uint32_t> pool_;      // empty pages, resident, held
  std::vector<uint32_t> released_;  // empty slots returned to the OS, not held
  uint32_t heads_[kSlabClasses];    // per class: first page with a free or uncarved chunk
  uint64_t held_bytes_ = 0;         // pages_held_ * kSlabPageBytes + large_bytes_
  uint64_t pages_held_ = 0;
  uint64_t large_bytes_ = 0;
};

}  // namespace gravity
