// The eviction policy of one shard: which linked item leaves when memory is needed.
// Every call is made with the shard lock held (hence the _locked suffix).
#pragma once

#include <memory>
#include <string_view>

#include "item.h"

namespace gravity {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void added_locked(Item* item) = 0;     // item was just linked
  virtual void accessed_locked(Item* item) = 0;  // item was read or rewritten in place
  virtual void removed_locked(Item* item) = 0;   // item is being unlinked
  // The item to evict next, never `protect` (may be null); null if there is none.
  virtual Item* victim_locked(const Item* protect) = 0;
};

// "lru" (exact LRU per shard). Returns null for an unknown name.
std::unique_ptr<EvictionPolicy> make_policy(std::string_view name);

}  // namespace gravity
