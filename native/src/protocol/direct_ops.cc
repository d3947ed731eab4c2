#include "protocol/direct_ops.h"

#include <cstring>

#include "protocol/command.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

bool direct_key_ok(std::string_view key) {
  if (key.empty() || key.size() > kKeyMaxLength) return false;
  for (char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return false;
  }
  return true;
}

// text_get.cc get_one, for one key and a caller's buffer.
DirectGetResult direct_get(Server& server, std::string_view key, char* out, size_t out_size) {
  Store& store = server.store();
  const int64_t now = store.now();
  DirectGetResult result;
  Store::Locked locked(store, key);
  StoreStats& stats = locked.stats();
  Item* item = locked.find(now, true);
  if (item == nullptr) {
    ++stats.cmd_get;
    ++stats.get_misses;
    return result;
  }
  result.found = true;
  result.value_size = item->value_size;
  result.client_flags = item->client_flags;
  result.cas = item->cas;
  // Too small a buffer: the caller asks again, and that call is the get that counts.
  if (item->value_size > out_size) return result;
  ++stats.cmd_get;
  ++stats.get_hits;
  bump_locked(locked, item, now);
  if (item->value_size != 0) std::memcpy(out, item->value_data(), item->value_size);
  result.copied = true;
  return result;
}

// text_store.cc process_update + complete_store for "set": the size check first (refusing drops
// the old item and counts store_too_large, not cmd_set), then memcached do_store_item.
DirectSetStatus direct_set(Server& server, std::string_view key, std::string_view value,
                           int64_t exptime_seconds, uint32_t client_flags, uint64_t* cas_out) {
  Store& store = server.store();
  const int64_t now = store.now();
  if (!value_size_ok(key.size(), value.size(), client_flags, store.max_item_bytes())) {
    server.store_too_large.fetch_add(1, std::memory_order_relaxed);
    Store::Locked locked(store, key);
    Item* old = locked.find(now, true);
    if (old != nullptr) locked.remove(old);
    return DirectSetStatus::kTooLarge;
  }
  // The command store_item_locked runs, kept per thread so its key's capacity is reused: a set
  // allocates nothing once a thread has seen its longest key.
  thread_local PendingStore pending;
  pending.mode = StoreMode::kSet;
  pending.key.assign(key.data(), key.size());
  pending.client_flags = client_flags;
  pending.expires_at = absolute_expiry(exptime_seconds, now);
  pending.value_size = static_cast<uint32_t>(value.size());
  StoreResult result;
  uint64_t cas = 0;
  {
    Store::Locked locked(store, key);
    ++locked.stats().cmd_set;
    result = store_item_locked(locked, now, store.max_item_bytes(), pending, value, &cas);
  }
  if (result == StoreResult::kStored) {
    if (cas_out != nullptr) *cas_out = cas;
    return DirectSetStatus::kStored;
  }
  // A plain set is only ever stored or out of memory.
  server.store_no_memory.fetch_add(1, std::memory_order_relaxed);
  return DirectSetStatus::kNoMemory;
}

// text_misc.cc process_delete.
bool direct_delete(Server& server, std::string_view key) {
  Store& store = server.store();
  Store::Locked locked(store, key);
  Item* item = locked.find(store.now(), true);
  if (item == nullptr) {
    ++locked.stats().delete_misses;
    return false;
  }
  ++locked.stats().delete_hits;
  locked.remove(item);
  return true;
}

// text_get.cc process_touch.
bool direct_touch(Server& server, std::string_view key, int64_t exptime_seconds) {
  Store& store = server.store();
  const int64_t now = store.now();
  Store::Locked locked(store, key);
  StoreStats& stats = locked.stats();
  ++stats.cmd_touch;
  Item* item = locked.find(now, true);
  if (item == nullptr) {
    ++stats.touch_misses;
    return false;
  }
  ++stats.touch_hits;
  locked.set_expiry(item, absolute_expiry(exptime_seconds, now));
  bump_locked(locked, item, now);
  return true;
}

}  // namespace gravity::protocol
