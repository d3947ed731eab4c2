// SlabAllocator property tests against a model: random allocations and frees of sizes in every
// tier (slab chunks, malloc, mappings of their own) within a random held budget. The model keeps
// each live allocation's address, size and fill pattern. After every step: held bytes within the
// budget the allocation was given and equal to the model's pages plus outside bytes; every so
// often: no two live allocations overlap, each still holds its own pattern at both ends (and
// whole when it is freed), and a page's walk (for_each_on_page_locked) finds exactly the live
// chunks on that page.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "check.h"
#include "store/slab.h"

using gravity::Item;
using gravity::SlabAllocator;

namespace {

struct Live {
  size_t bytes;
  uint8_t fill;
};

size_t random_bytes(std::mt19937_64& rng) {
  const size_t min = sizeof(Item);
  switch (rng() % 8) {
    case 0: return min + rng() % 16;                                   // the smallest classes
    case 1: return gravity::kMaxSlabItemBytes - rng() % 8;             // the largest page classes
    case 2: return gravity::kMaxSlabItemBytes + 1 + rng() % 4000;      // malloc
    case 3: return gravity::kMinMappedItemBytes + rng() % 300000;      // mapped
    default: return min + rng() % (gravity::kMaxSlabItemBytes - min);  // every page class
  }
}

void fill(Item* item, size_t bytes, uint8_t pattern) {
  // The header's first bytes belong to the allocator while a chunk is free; a live one is ours.
  std::memset(reinterpret_cast<char*>(item) + sizeof(Item), pattern, bytes - sizeof(Item));
  item->linked = Item::kUnlinked;
}

// The whole pattern (checked once per allocation, when it is freed).
bool holds(const Item* item, size_t bytes, uint8_t pattern) {
  const auto* p = reinterpret_cast<const uint8_t*>(item) + sizeof(Item);
  for (size_t i = 0; i < bytes - sizeof(Item); ++i) {
    if (p[i] != pattern) return false;
  }
  return item->linked == Item::kUnlinked;
}

// Its first and last bytes (checked for every live allocation, often).
bool ends_hold(const Item* item, size_t bytes, uint8_t pattern) {
  const auto* p = reinterpret_cast<const uint8_t*>(item);
  const bool ends = bytes == sizeof(Item) || (p[sizeof(Item)] == pattern && p[bytes - 1] == pattern);
  return ends && item->linked == Item::kUnlinked;
}

void check_model(SlabAllocator& slab, const std::map<Item*, Live>& live) {
  // No overlap: sorted by address, each allocation ends before the next begins.
  const char* end = nullptr;
  std::map<uintptr_t, std::set<Item*>> pages;  // the live slab chunks by page
  for (const auto& [item, l] : live) {
    const char* begin = reinterpret_cast<const char*>(item);
    CHECK(end == nullptr || end <= begin);
    end = begin + l.bytes;
    CHECK(ends_hold(item, l.bytes, l.fill));
    if (slab.in_slab(l.bytes)) pages[reinterpret_cast<uintptr_t>(item) / slab.page_bytes()].insert(item);
  }
  // A page's walk finds exactly the live chunks on it.
  for (const auto& [page, chunks] : pages) {
    std::set<Item*> walked;
    slab.for_each_on_page_locked(*chunks.begin(), [&](Item* chunk) { walked.insert(chunk); });
    CHECK(walked == chunks);
    if (gravity_test::failures_in_case() > 0) return;
  }
}

void free_checked(SlabAllocator& slab, std::map<Item*, Live>& live, std::map<Item*, Live>::iterator at,
                  uint64_t& outside) {
  CHECK(holds(at->first, at->second.bytes, at->second.fill));
  if (!slab.in_slab(at->second.bytes)) outside -= gravity::allocation_cost(at->second.bytes);
  slab.free_locked(at->first, at->second.bytes);
  live.erase(at);
}

void run_model(uint64_t limit_bytes, uint64_t seed, int steps) {
  SlabAllocator slab(limit_bytes);
  CHECK(slab.uses_pages());
  std::mt19937_64 rng(seed);
  std::map<Item*, Live> live;
  uint64_t outside = 0;
  for (int step = 0; step < steps; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      const size_t bytes = random_bytes(rng);
      // Budgets around the limit: some allocations must be refused, none may exceed its budget.
      const uint64_t budget = limit_bytes - rng() % (limit_bytes / 4);
      Item* item = slab.allocate_locked(bytes, budget);
      if (item == nullptr) {
        // Refused only when nothing of the needed kind is free within the budget: free a random
        // live allocation instead, as the store's eviction would.
        if (!live.empty()) free_checked(slab, live, std::next(live.begin(), static_cast<long>(rng() % live.size())), outside);
      } else {
        CHECK(slab.held_bytes() <= budget);
        CHECK(live.count(item) == 0);
        const uint8_t pattern = static_cast<uint8_t>(rng());
        fill(item, bytes, pattern);
        live[item] = {bytes, pattern};
        if (!slab.in_slab(bytes)) outside += gravity::allocation_cost(bytes);
      }
    } else {
      free_checked(slab, live, std::next(live.begin(), static_cast<long>(rng() % live.size())), outside);
    }
    CHECK(slab.held_bytes() <= limit_bytes);
    CHECK_EQ(slab.outside_bytes(), outside);
    CHECK_EQ(slab.held_bytes(), slab.metadata_bytes() + slab.pages_held() * slab.page_bytes() + outside);
    if (step % 97 == 0) check_model(slab, live);
    if (gravity_test::failures_in_case() > 0) return;
  }
  check_model(slab, live);
  while (!live.empty()) free_checked(slab, live, live.begin(), outside);
  // Everything freed: only empty pages are held, all of them pooled.
  CHECK_EQ(slab.outside_bytes(), 0u);
  CHECK_EQ(slab.pooled_pages(), slab.pages_held());
}

}  // namespace

TEST(page_size_follows_the_shard) {
  CHECK_EQ(SlabAllocator(4ull << 20).page_bytes(), 4096u);
  CHECK_EQ(SlabAllocator(16ull << 20).page_bytes(), 16384u);
  CHECK_EQ(SlabAllocator(1ull << 30).page_bytes(), gravity::kSlabPageBytes);
  CHECK(SlabAllocator(4ull << 20).uses_pages());
  // The page table is held from the start: 1,024 pages of 4 KiB, 40 bytes each at most.
  CHECK(SlabAllocator(4ull << 20).held_bytes() > 0);
  CHECK(SlabAllocator(4ull << 20).held_bytes() <= 1024 * 40);
  CHECK(!SlabAllocator(SlabAllocator::kMinPages * SlabAllocator::kMinPageBytes - 1).uses_pages());
}

TEST(model_small_pages) { run_model(1ull << 20, 1, 30000); }

TEST(model_large_pages) { run_model(64ull << 20, 2, 30000); }

TEST(chunks_are_reused_before_new_pages) {
  // Free every other chunk of one class: the next allocations of that class fill the holes
  // without holding one page more.
  SlabAllocator slab(4ull << 20);
  std::vector<Item*> items;
  for (int i = 0; i < 1000; ++i) {
    Item* item = slab.allocate_locked(200, UINT64_MAX);
    CHECK(item != nullptr);
    if (item == nullptr) return;
    item->linked = Item::kUnlinked;
    items.push_back(item);
  }
  const uint64_t pages = slab.pages_held();
  for (size_t i = 0; i < items.size(); i += 2) slab.free_locked(items[i], 200);
  for (size_t i = 0; i < items.size(); i += 2) {
    items[i] = slab.allocate_locked(200, slab.held_bytes());  // no room for a page more
    CHECK(items[i] != nullptr);
  }
  CHECK_EQ(slab.pages_held(), pages);
  for (Item* item : items) {
    if (item != nullptr) slab.free_locked(item, 200);
  }
}

TEST(pooled_pages_are_released_for_larger_items) {
  // Pages left empty are held in the pool; an item outside the pages that needs their bytes
  // within the budget gets them back from the OS first.
  SlabAllocator slab(4ull << 20);
  std::vector<Item*> items;
  for (int i = 0; i < 2000; ++i) items.push_back(slab.allocate_locked(100, UINT64_MAX));
  for (Item* item : items) slab.free_locked(item, 100);
  const uint64_t held = slab.held_bytes();
  CHECK(held > 0);
  CHECK_EQ(slab.pooled_pages(), slab.pages_held());
  const size_t large = gravity::kMinMappedItemBytes;
  Item* item = slab.allocate_locked(large, held);
  CHECK(item != nullptr);
  CHECK(slab.held_bytes() <= held);
  if (item != nullptr) slab.free_locked(item, large);
}

RUN_TESTS("slab_test")
