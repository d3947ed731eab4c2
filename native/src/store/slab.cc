#include "slab.h"

#include <sys/mman.h>

#include <cassert>
#include <cstdint>
#include <cstdlib>

namespace gravity {
namespace {

void* map_bytes(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// The page size for a shard of limit_bytes: the power of two nearest below limit / kPagesPerShard,
// within [kMinPageBytes, kSlabPageBytes].
size_t page_bytes_for(uint64_t limit_bytes) {
  size_t page = SlabAllocator::kMinPageBytes;
  while (page < kSlabPageBytes && uint64_t{page} * 2 * SlabAllocator::kPagesPerShard <= limit_bytes) page *= 2;
  return page;
}

}  // namespace

SlabAllocator::SlabAllocator(uint64_t limit_bytes) : page_bytes_(page_bytes_for(limit_bytes)) {
  while ((size_t{1} << page_shift_) < page_bytes_) ++page_shift_;
  for (uint32_t c = 0; c < kSlabPageClasses; ++c) {
    heads_[c] = kNone;
    chunks_per_page_[c] = static_cast<uint32_t>(page_bytes_ / kSlabClassTable[c].chunk_bytes);
  }
  if (limit_bytes < kMinPages * page_bytes_) return;
  page_slots_ = static_cast<uint32_t>((limit_bytes + page_bytes_ - 1) / page_bytes_);
  // Pages must be aligned to page_bytes_ so that an item finds its page by a shift: reserve one
  // page more and trim the ends.
  const size_t want = static_cast<size_t>(page_slots_) * page_bytes_;
  char* raw = static_cast<char*>(map_bytes(want + page_bytes_));
  if (raw == nullptr) {
    page_slots_ = 0;  // every small item then fails to allocate, as a failed malloc did
    return;
  }
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + page_bytes_ - 1) & ~(uintptr_t{page_bytes_} - 1);
  char* start = reinterpret_cast<char*>(aligned);
  if (start > raw) munmap(raw, static_cast<size_t>(start - raw));
  char* end = raw + want + page_bytes_;
  if (end > start + want) munmap(start + want, static_cast<size_t>(end - (start + want)));
  region_ = start;
  region_bytes_ = want;
  pages_.resize(page_slots_);
  pool_.reserve(page_slots_);
  released_.reserve(page_slots_);
  metadata_bytes_ = uint64_t{page_slots_} * (sizeof(Page) + 2 * sizeof(uint32_t));
  held_bytes_ = metadata_bytes_;
}

SlabAllocator::~SlabAllocator() {
  if (region_ != nullptr) munmap(region_, region_bytes_);
  // Items outside the pages still allocated are freed by whoever frees the items (Store's destructor).
}

void SlabAllocator::list_push(uint32_t cls, uint32_t page) {
  Page& p = pages_[page];
  p.prev = kNone;
  p.next = heads_[cls];
  if (p.next != kNone) pages_[p.next].prev = page;
  heads_[cls] = page;
  p.listed = true;
}

void SlabAllocator::list_remove(uint32_t page) {
  Page& p = pages_[page];
  if (p.prev != kNone) pages_[p.prev].next = p.next;
  else heads_[p.cls] = p.next;
  if (p.next != kNone) pages_[p.next].prev = p.prev;
  p.prev = p.next = kNone;
  p.listed = false;
}

uint32_t SlabAllocator::take_page_locked(uint64_t held_budget) {
  if (!pool_.empty()) {
    const uint32_t page = pool_.back();
    pool_.pop_back();
    return page;
  }
  if (held_bytes_ + page_bytes_ > held_budget) return kNone;
  uint32_t page;
  if (!released_.empty()) {
    page = released_.back();
    released_.pop_back();
  } else if (fresh_slot_ < page_slots_) {
    page = fresh_slot_++;
  } else {
    return kNone;
  }
  ++pages_held_;
  held_bytes_ += page_bytes_;
  return page;
}

void SlabAllocator::release_pool_locked(uint64_t held_budget) {
  while (held_bytes_ > held_budget && !pool_.empty()) {
    const uint32_t page = pool_.back();
    pool_.pop_back();
    madvise(page_base(page), page_bytes_, MADV_DONTNEED);
    released_.push_back(page);
    --pages_held_;
    held_bytes_ -= page_bytes_;
  }
}

Item* SlabAllocator::allocate_outside_locked(size_t n, uint64_t held_budget) {
  const uint64_t bytes = allocation_cost(n);
  // Pooled pages are held but idle: give them back to the OS before asking for more.
  if (held_budget >= bytes) release_pool_locked(held_budget - bytes);
  if (held_bytes_ + bytes > held_budget) return nullptr;
  void* memory;
  if (n >= kMinMappedItemBytes) {
    memory = map_bytes(static_cast<size_t>(bytes));
  } else {
    // A small item in a shard without pages takes its whole chunk, so that its cost stays true.
    memory = std::malloc(n <= kMaxSlabItemBytes ? kSlabClassTable[slab_class_of(n)].chunk_bytes : n);
  }
  if (memory == nullptr) return nullptr;
  outside_bytes_ += bytes;
  held_bytes_ += bytes;
  Item* item = static_cast<Item*>(memory);
  item->linked = Item::kUnlinked;
  return item;
}

void SlabAllocator::free_outside_locked(Item* item, size_t n) {
  const uint64_t bytes = allocation_cost(n);
  if (n >= kMinMappedItemBytes) {
    munmap(item, static_cast<size_t>(bytes));
  } else {
    std::free(item);
  }
  outside_bytes_ -= bytes;
  held_bytes_ -= bytes;
}

Item* SlabAllocator::allocate_locked(size_t n, uint64_t held_budget) {
  if (!in_slab(n)) return allocate_outside_locked(n, held_budget);
  // The budget may have shrunk below what is held (the index grew): nothing more until it fits.
  release_pool_locked(held_budget);
  if (held_bytes_ > held_budget) return nullptr;
  const uint32_t cls = slab_class_of(n);
  const size_t chunk_bytes = kSlabClassTable[cls].chunk_bytes;
  uint32_t page = heads_[cls];
  if (page == kNone) {
    page = take_page_locked(held_budget);
    if (page == kNone) return nullptr;
    Page& fresh = pages_[page];
    fresh = Page();
    fresh.cls = static_cast<uint16_t>(cls);
    list_push(cls, page);
  }
  Page& p = pages_[page];
  Item* item;
  if (p.free != nullptr) {
    item = p.free;
    p.free = item->hash_next;
  } else {
    item = reinterpret_cast<Item*>(page_base(page) + static_cast<size_t>(p.carved) * chunk_bytes);
    ++p.carved;
  }
  ++p.live;
  if (p.free == nullptr && p.carved == chunks_per_page_[cls]) list_remove(page);
  item->linked = Item::kUnlinked;
  return item;
}

void SlabAllocator::free_locked(Item* item, size_t n) {
  if (!in_slab(n)) {
    free_outside_locked(item, n);
    return;
  }
  const uint32_t page = page_of(item);
  Page& p = pages_[page];
  assert(p.live > 0 && p.cls == slab_class_of(n));
  item->linked = Item::kFreeChunk;
  item->hash_next = p.free;
  p.free = item;
  --p.live;
  if (p.live == 0) {
    if (p.listed) list_remove(page);
    p = Page();
    pool_.push_back(page);
  } else if (!p.listed) {
    list_push(p.cls, page);
  }
}

}  // namespace gravity
