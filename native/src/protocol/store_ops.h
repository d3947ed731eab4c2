// Item operations with memcached's semantics, shared by the text and meta commands:
// store (memcached.c do_store_item) and incr/decr (do_add_delta). Callers hold the shard lock
// through the Store::Locked they pass in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/command.h"
#include "store/item.h"
#include "store/store.h"

namespace gravity::protocol {

// memcached items.c item_size_ok: its header counts four more bytes when client flags are
// non-zero, so the largest value is four bytes smaller then.
inline bool value_size_ok(size_t key_size, size_t value_size, uint32_t client_flags,
                          uint64_t max_item_bytes) {
  return item_size_ok(key_size, value_size + (client_flags != 0 ? 4 : 0), max_item_bytes);
}

enum class StoreResult : uint8_t { kStored, kNotStored, kExists, kNotFound, kNoMemory };

// Stores `value` for `p.key` as p.mode asks. On kStored, *cas_out is the new item's CAS.
// Counts cmd_set and the cas_* stats.
StoreResult store_item_locked(Store::Locked& locked, int64_t now, uint64_t max_item_bytes,
                              const PendingStore& p, std::string_view value, uint64_t* cas_out);

enum class DeltaResult : uint8_t { kOk, kNonNumeric, kNoMemory, kNotFound, kCasMismatch };

// memcached do_add_delta on the live item `*item` (which may be replaced: *item is updated).
// compare_cas 0 = no check; new_cas 0 = a fresh CAS. Writes the new number's decimal digits
// into `digits`. Counts incr_hits/decr_hits.
DeltaResult add_delta_locked(Store::Locked& locked, int64_t now, Item** item, DeltaOp op,
                             uint64_t delta, uint64_t compare_cas, uint64_t new_cas,
                             std::string& digits);

// Marks a read for the eviction policy and memcached's "fetched" bit (do_item_bump).
void bump_locked(Store::Locked& locked, Item* item, int64_t now);

}  // namespace gravity::protocol
