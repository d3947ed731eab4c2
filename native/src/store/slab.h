// A shard's memory in three tiers by item size (item.h): slab pages carved into chunks of one
// size class each (memcached's slabs.c) for small items, malloc for middle-sized ones, and a
// mapping of its own for each large one.
//
//   region (reserved once, limit_bytes of address space, touched only as pages are used)
//   ┌────────┬────────┬────────┬─────────────┐
//   │ page 0 │ page 1 │ page 2 │  untouched  │   each page: one class, chunks carved lazily
//   └────────┴────────┴────────┴─────────────┘   (a bump pointer), freed chunks on the page's list
//   class c ──> pages with a free chunk          empty pages ──> pool (resident, reused by any class)
//   n > kMaxSlabItemBytes ──> malloc, or (n >= kMinMappedItemBytes) its own mmap, unmapped when freed
//
// Pages are small against the shard (about 1/kPagesPerShard of it, 4 KiB to 256 KiB): a class in
// use holds at most one partly used page, so even with every page class in use the pages'
// slack is a few percent of the shard, and a class that needs a page takes it from another class
// by evicting a page of a few dozen items, not a sixteenth of the shard.
//
// held_bytes() is every byte the allocator holds: pages in use or pooled, their page table, and
// the allocations of the other tiers (charged as allocation_cost()). The shard keeps held_bytes() plus its index's
// bucket array within its limit, so page tails, free chunks and empty pages never escape
// --memory. Unlike memcached, the pool releases a page to the OS (MADV_DONTNEED) when a larger
// item needs its bytes, and pages are never carved in advance.
// Every call is made with the shard lock held.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "item.h"

namespace gravity {

class SlabAllocator {
 public:
  // A shard smaller than this many of the smallest pages (1 MiB) cannot spread its classes over
  // pages (with its ~25 page classes in use, their partly used pages would be 5% of it): it takes
  // each small chunk from malloc instead (glibc's 8-16 bytes per allocation are then not counted).
  static constexpr uint64_t kMinPages = 256;
  static constexpr size_t kMinPageBytes = 4096;
  static constexpr uint64_t kPagesPerShard = 1024;  // the page size aims at limit / this

  // Reserves address space for limit_bytes of pages (no memory is touched until it is used).
  explicit SlabAllocator(uint64_t limit_bytes);
  ~SlabAllocator();
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // Memory for an item of n bytes (header, key, value) if it can be had within held_budget bytes
  // of held memory: a free chunk of its class, a pooled page, a new page, or (larger than a slab
  // chunk) a malloc or a mapping after releasing pooled pages. Null if not: the caller evicts and
  // retries. The item's Item::linked is kUnlinked.
  Item* allocate_locked(size_t n, uint64_t held_budget);

  // Returns an item's memory (n as given to allocate). A page left empty goes to the pool.
  void free_locked(Item* item, size_t n);

  // Whether an item of n bytes lives in a slab page (rather than a malloc or a mapping).
  bool in_slab(size_t n) const { return region_ != nullptr && n <= kMaxSlabItemBytes; }
  bool uses_pages() const { return region_ != nullptr; }

  // Calls f(item) for every chunk on the page of `item` (a slab item) that is allocated (linked or
  // not). Collects them first, so f may free them.
  template <class F>
  void for_each_on_page_locked(const Item* item, F f) {
    const Page& page = pages_[page_of(item)];
    const size_t chunk_bytes = kSlabClassTable[page.cls].chunk_bytes;
    char* base = page_base(page_of(item));
    std::vector<Item*> on_page;
    on_page.reserve(page.live);
    for (uint32_t i = 0; i < page.carved; ++i) {
      Item* chunk = reinterpret_cast<Item*>(base + static_cast<size_t>(i) * chunk_bytes);
      if (chunk->linked != Item::kFreeChunk) on_page.push_back(chunk);
    }
    for (Item* chunk : on_page) f(chunk);
  }

  uint64_t held_bytes() const { return held_bytes_; }
  uint64_t pages_held() const { return pages_held_; }
  uint64_t pooled_pages() const { return pool_.size(); }
  uint64_t outside_bytes() const { return outside_bytes_; }
  uint64_t metadata_bytes() const { return metadata_bytes_; }
  size_t page_bytes() const { return page_bytes_; }

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

  char* page_base(uint32_t page) const { return region_ + (static_cast<size_t>(page) << page_shift_); }
  uint32_t page_of(const Item* item) const {
    return static_cast<uint32_t>(static_cast<size_t>(reinterpret_cast<const char*>(item) - region_) >> page_shift_);
  }
  uint32_t take_page_locked(uint64_t held_budget);  // a pooled or new page, or kNone
  void list_push(uint32_t cls, uint32_t page);
  void list_remove(uint32_t page);

  void release_pool_locked(uint64_t held_budget);  // pooled pages back to the OS until within it
  Item* allocate_outside_locked(size_t n, uint64_t held_budget);  // malloc or mapping
  void free_outside_locked(Item* item, size_t n);

  size_t page_bytes_ = kSlabPageBytes;  // a power of two
  uint32_t page_shift_ = 0;             // log2(page_bytes_)
  uint32_t chunks_per_page_[kSlabPageClasses];
  char* region_ = nullptr;          // page_slots_ pages of reserved address space
  size_t region_bytes_ = 0;
  uint32_t page_slots_ = 0;
  uint32_t fresh_slot_ = 0;         // slots below this have been used; above, never touched
  std::vector<Page> pages_;         // by slot
  std::vector<uint32_t> pool_;      // empty pages, resident, held
  std::vector<uint32_t> released_;  // empty slots returned to the OS, not held
  uint32_t heads_[kSlabPageClasses];  // per class: first page with a free or uncarved chunk
  // The page table and the page lists at their full size (reserved once): a page's 40 bytes are
  // 1% of a 4 KiB page, held like the pages themselves.
  uint64_t metadata_bytes_ = 0;
  uint64_t held_bytes_ = 0;         // metadata_bytes_ + pages_held_ * page_bytes_ + outside_bytes_
  uint64_t pages_held_ = 0;
  uint64_t outside_bytes_ = 0;      // allocation_cost() of the items malloc'd or mapped
};

}  // namespace gravity
