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

}  // namespace

SlabAllocator::SlabAllocator(uint64_t limit_bytes) {
  for (uint32_t& head : heads_) head = kNone;
  if (limit_bytes < kMinPages * kSlabPageBytes) return;
  page_slots_ = static_cast<uint32_t>((limit_bytes + kSlabPageBytes - 1) / kSlabPageBytes);
  // Pages must be aligned to kSlabPageBytes so that an item finds its page by division: reserve
  // one page more and trim the ends.
  const size_t want = static_cast<size_t>(page_slots_) * kSlabPageBytes;
  char* raw = static_cast<char*>(map_bytes(want + kSlabPageBytes));
  if (raw == nullptr) {
    page_slots_ = 0;  // every small item then fails to allocate, as a failed malloc did
    return;
  }
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + kSlabPageBytes - 1) & ~(uintptr_t{kSlabPageBytes} - 1);
  char* start = reinterpret_cast<char*>(aligned);
  if (start > raw) munmap(raw, static_cast<size_t>(start - raw));
  char* end = raw + want + kSlabPageBytes;
  if (end > start + want) munmap(start + want, static_cast<size_t>(end - (start + want)));
  region_ = start;
  region_bytes_ = want;
  pages_.resize(page_slots_);
}

SlabAllocator::~SlabAllocator() {
  if (region_ != nullptr) munmap(region_, region_bytes_);
  // Large items still allocated are unmapped by whoever frees the items (Store's destructor).
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
  if (held_bytes_ + kSlabPageBytes > held_budget) return kNone;
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
  held_bytes_ += kSlabPageBytes;
  return page;
}

Item* SlabAllocator::allocate_locked(size_t n, uint64_t held_budget) {
  if (region_ == nullptr) {
    const uint64_t bytes = allocation_cost(n);
    if (held_bytes_ + bytes > held_budget) return nullptr;
    void* memory = std::malloc(n <= kMaxSlabChunkBytes ? kSlabClassTable[slab_class_of(n)].chunk_bytes : n);
    if (memory == nullptr) return nullptr;
    held_bytes_ += bytes;
    Item* item = static_cast<Item*>(memory);
    item->linked = Item::kUnlinked;
    return item;
  }
  if (!in_slab(n)) {
    const uint64_t bytes = allocation_cost(n);
    // Pooled pages are held but idle: give them back to the OS before asking for more.
    while (held_bytes_ + bytes > held_budget && !pool_.empty()) {
      const uint32_t page = pool_.back();
      pool_.pop_back();
      madvise(page_base(page), kSlabPageBytes, MADV_DONTNEED);
      released_.push_back(page);
      --pages_held_;
      held_bytes_ -= kSlabPageBytes;
    }
    if (held_bytes_ + bytes > held_budget) return nullptr;
    void* memory = map_bytes(static_cast<size_t>(bytes));
    if (memory == nullptr) return nullptr;
    large_bytes_ += bytes;
    held_bytes_ += bytes;
    Item* item = static_cast<Item*>(memory);
    item->linked = Item::kUnlinked;
    return item;
  }
  const uint32_t cls = slab_class_of(n);
  const SlabClassInfo& info = kSlabClassTable[cls];
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
    item = reinterpret_cast<Item*>(page_base(page) + static_cast<size_t>(p.carved) * info.chunk_bytes);
    ++p.carved;
  }
  ++p.live;
  if (p.free == nullptr && p.carved == info.chunks_per_page) list_remove(page);
  item->linked = Item::kUnlinked;
  return item;
}

void SlabAllocator::free_locked(Item* item, size_t n) {
  if (region_ == nullptr) {
    held_bytes_ -= allocation_cost(n);
    std::free(item);
    return;
  }
  if (!in_slab(n)) {
    const uint64_t bytes = allocation_cost(n);
    munmap(item, static_cast<size_t>(bytes));
    large_bytes_ -= bytes;
    held_bytes_ -= bytes;
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
