#include "protocol/store_ops.h"

#include <cstring>

#include "store/item.h"

namespace gravity::protocol {

void bump_locked(Store::Locked& locked, Item* item, int64_t now) {
  locked.touch(item, now);
  item->bits |= Item::kFetched;
}

// memcached.c do_store_item.
StoreResult store_item_locked(Store::Locked& locked, int64_t now, uint64_t max_item_bytes,
                              const PendingStore& p, std::string_view value, uint64_t* cas_out) {
  StoreStats& stats = locked.stats();
  Item* old = locked.find(now);
  bool stale = false;
  switch (p.mode) {
    case StoreMode::kAdd:
      if (old != nullptr) {
        // "add only adds a nonexistent item, but promote to head of LRU"
        locked.touch(old, now);
        return StoreResult::kNotStored;
      }
      break;
    case StoreMode::kReplace:
    case StoreMode::kAppend:
    case StoreMode::kPrepend:
      if (old == nullptr) return StoreResult::kNotStored;
      if (p.mode != StoreMode::kReplace && p.compare_cas != 0 && p.compare_cas != old->cas) {
        return StoreResult::kExists;
      }
      break;
    case StoreMode::kCas:
      if (old == nullptr) {
        ++stats.cas_misses;
        return StoreResult::kNotFound;
      }
      if (old->cas == p.compare_cas) {
        ++stats.cas_hits;
      } else if (p.invalidate && p.compare_cas < old->cas) {
        // meta "I": a value older than the item's is stored, but as stale.
        ++stats.cas_hits;
        stale = true;
      } else {
        ++stats.cas_badval;
        return StoreResult::kExists;
      }
      break;
    case StoreMode::kSet:
      break;
  }

  uint32_t flags = p.client_flags;
  int64_t expires_at = p.expires_at;
  size_t size = value.size();
  const bool concat = p.mode == StoreMode::kAppend || p.mode == StoreMode::kPrepend;
  if (concat) {
    flags = old->client_flags;
    expires_at = old->expires_at;
    size += old->value_size;
    // memcached: the combined item fails to allocate past the item size limit: NOT_STORED.
    if (!value_size_ok(p.key.size(), size, flags, max_item_bytes)) return StoreResult::kNotStored;
  }
  if (stale) expires_at = old->expires_at;

  Item* item = locked.allocate(static_cast<uint32_t>(size), flags, expires_at, old);
  if (item == nullptr) {
    if (concat) return StoreResult::kNotStored;
    // "Avoid stale data persisting in cache because we failed alloc." (set, and every ms)
    if (old != nullptr && (p.mode == StoreMode::kSet || p.meta)) locked.remove(old);
    return StoreResult::kNoMemory;
  }
  char* dst = item->value_data();
  if (p.mode == StoreMode::kAppend) {
    std::memcpy(dst, old->value_data(), old->value_size);
    std::memcpy(dst + old->value_size, value.data(), value.size());
  } else if (p.mode == StoreMode::kPrepend) {
    std::memcpy(dst, value.data(), value.size());
    std::memcpy(dst + value.size(), old->value_data(), old->value_size);
  } else if (!value.empty()) {
    std::memcpy(dst, value.data(), value.size());
  }
  item->bits = 0;
  if (stale) item->bits |= Item::kStale | (old->bits & Item::kWinSent);
  // memcached allocates a fresh item for append/prepend, which loses ITEM_KEY_BINARY.
  if (p.key_binary && !concat) item->bits |= Item::kKeyBinary;
  locked.link(item, now, p.has_new_cas ? p.new_cas : 0);
  *cas_out = item->cas;
  return StoreResult::kStored;
}

// memcached.c do_add_delta.
DeltaResult add_delta_locked(Store::Locked& locked, int64_t now, Item** item_io, DeltaOp op,
                             uint64_t delta, uint64_t compare_cas, uint64_t new_cas,
                             std::string& digits) {
  Item* item = *item_io;
  // "Can't delta zero byte values."
  if (item->value_size == 0) return DeltaResult::kNonNumeric;
  if (compare_cas != 0 && item->cas != compare_cas) return DeltaResult::kCasMismatch;
  uint64_t value = 0;
  if (!parse_u64(item->value(), value)) return DeltaResult::kNonNumeric;
  StoreStats& stats = locked.stats();
  if (op == DeltaOp::kIncr) {
    value += delta;  // wraps at 2^64, as memcached does
    ++stats.incr_hits;
  } else {
    value = delta > value ? 0 : value - delta;
    ++stats.decr_hits;
  }
  digits.clear();
  append_u64(digits, value);
  if (digits.size() <= item->value_size) {
    // "replace in-place": memcached pads a shorter number with spaces.
    char* dst = item->value_data();
    std::memcpy(dst, digits.data(), digits.size());
    std::memset(dst + digits.size(), ' ', item->value_size - digits.size());
    locked.touch(item, now);
    if (new_cas != 0) {
      item->cas = new_cas;
    } else {
      locked.bump_cas(item);
    }
    return DeltaResult::kOk;
  }
  Item* fresh = locked.allocate(static_cast<uint32_t>(digits.size()), item->client_flags,
                                item->expires_at, item);
  if (fresh == nullptr) return DeltaResult::kNoMemory;
  std::memcpy(fresh->value_data(), digits.data(), digits.size());
  fresh->bits = 0;
  locked.link(fresh, now, new_cas);
  *item_io = fresh;
  return DeltaResult::kOk;
}

}  // namespace gravity::protocol
