// Store operations called directly (the addon's get/set/delete/touch, and the HTTP and gRPC
// listeners built on them), without a memcached connection. Each one is its text command's
// twin and counts the same stats:
//
//   direct_get     get <key>          cmd_get, get_hits | get_misses; marks the item fetched
//   direct_set     set <key> ...      cmd_set (store_too_large, store_no_memory on the Server)
//   direct_delete  delete <key>       delete_hits | delete_misses
//   direct_touch   touch <key> <ttl>  cmd_touch, touch_hits | touch_misses
//
// Every call takes one shard lock through Store::Locked and reads the store clock once. Keys and
// values are views the caller owns; the only allocation is a stored item (and, the first time a
// thread sets a key that long, its per-thread copy of the key).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/server.h"

namespace gravity::protocol {

// memcached's key rules for the text protocol: 1..250 bytes (KEY_MAX_LENGTH), and no byte that
// would end or split a command line (space and the other control characters, DEL).
bool direct_key_ok(std::string_view key);

// What direct_get found. On a hit whose value did not fit in the caller's buffer, copied is
// false and nothing was counted or marked: the caller retries with value_size bytes of room.
struct DirectGetResult {
  bool found = false;
  bool copied = false;
  uint32_t value_size = 0;
  uint32_t client_flags = 0;
  uint64_t cas = 0;
};

// Looks up `key` (which must satisfy direct_key_ok) and, on a hit whose value fits in
// out[0..out_size), copies the value there.
DirectGetResult direct_get(Server& server, std::string_view key, char* out, size_t out_size);

enum class DirectSetStatus : uint8_t {
  kStored = 0,
  kTooLarge = 1,  // over the item size limit (memcached item_size_ok); the key's old item is dropped
  kNoMemory = 2,  // the store could not make room (or the policy refused it); the old item is dropped
};

// Stores `value` for `key` as memcached's "set" does, with protocol exptime `exptime_seconds`
// (0 = never, up to 30 days relative, above that a unix time; ttl.h absolute_expiry).
// On kStored, *cas_out (when not null) is the new item's CAS.
DirectSetStatus direct_set(Server& server, std::string_view key, std::string_view value,
                           int64_t exptime_seconds, uint32_t client_flags, uint64_t* cas_out = nullptr);

// Removes the key's item; false if there was none.
bool direct_delete(Server& server, std::string_view key);

// Gives the key's item a new exptime (as direct_set reads it); false if there was no item.
bool direct_touch(Server& server, std::string_view key, int64_t exptime_seconds);

}  // namespace gravity::protocol
