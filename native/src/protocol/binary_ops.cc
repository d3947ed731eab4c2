// Binary command handlers: memcached proto_bin.c process_bin_get_or_touch, complete_update_bin,
// process_bin_delete, complete_incr_bin, process_bin_flush and process_bin_stat, on the store
// semantics the text protocol uses (store_ops.h), so both protocols see the same items and CAS.
#include <string>
#include <string_view>

#include "protocol/binary.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

namespace {

// Binary exptimes are unsigned 32-bit (memcached converts them to time_t): never negative.
int64_t binary_expiry(const char* field, int64_t now) {
  return absolute_expiry(static_cast<int64_t>(load_be32(field)), now);
}

// memcached complete_incr_bin: an expiration of all ones means "do not create a missing item".
constexpr uint32_t kNoAutoCreate = 0xffffffff;

// One statistic as a binary reply (memcached append_bin_stats); an empty key ends the list.
void write_stat(Context& ctx, const BinaryRequest& req, std::string_view key, std::string_view value) {
  BinaryRequest stat = req;
  stat.opcode = binary_op::kStat;
  write_binary_header(ctx, stat, BinaryStatus::kSuccess, 0, static_cast<uint16_t>(key.size()),
                      static_cast<uint32_t>(key.size() + value.size()), 0);
  ctx.out.write(key);
  ctx.out.write(value);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

void binary_get(Context& ctx, const BinaryRequest& req) {
  using namespace binary_op;
  const bool touch = req.command == kTouch || req.command == kGat || req.command == kGatK;
  const bool return_key = req.command == kGetK || req.command == kGatK;
  const bool return_value = req.command != kTouch;
  {
    Store::Locked locked(ctx.store, req.key);
    StoreStats& stats = locked.stats();
    Item* item = locked.find(ctx.now, true);
    if (touch) {
      ++stats.cmd_touch;
    } else {
      ++stats.cmd_get;
    }
    if (item != nullptr) {
      if (touch) {
        ++stats.touch_hits;
        locked.set_expiry(item, binary_expiry(req.extras.data(), ctx.now));
      } else {
        ++stats.get_hits;
      }
      bump_locked(locked, item, ctx.now);
      const uint16_t keylen = return_key ? req.keylen : 0;
      const uint32_t value_bytes = return_value ? item->value_size : 0;
      write_binary_header(ctx, req, BinaryStatus::kSuccess, 4, keylen, 4 + keylen + value_bytes,
                          item->cas);
      char flags[4];
      store_be32(flags, item->client_flags);
      ctx.out.write(flags, sizeof flags);
      if (return_key) ctx.out.write(req.key);
      if (return_value) ctx.out.write(item->value());
      return;
    }
    if (touch) {
      ++stats.touch_misses;
    } else {
      ++stats.get_misses;
    }
  }
  if (req.quiet) return;  // quiet gets answer hits only
  if (return_key) {
    // memcached write_bin_miss_response: the key, and no error text.
    write_binary_header(ctx, req, BinaryStatus::kKeyNotFound, 0, req.keylen, req.keylen, 0);
    ctx.out.write(req.key);
  } else {
    write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
  }
}

void binary_store(Context& ctx, const BinaryRequest& req) {
  using namespace binary_op;
  PendingStore& p = ctx.session.store;
  switch (req.command) {
    case kAdd:
      p.mode = StoreMode::kAdd;
      break;
    case kReplace:
      p.mode = StoreMode::kReplace;
      break;
    case kAppend:
      p.mode = StoreMode::kAppend;
      break;
    case kPrepend:
      p.mode = StoreMode::kPrepend;
      break;
    default:
      p.mode = StoreMode::kSet;
      break;
  }
  const StoreMode requested = p.mode;
  // A CAS in the header turns set/add/replace into a compare-and-swap (memcached NREAD_CAS);
  // append/prepend compare it too, keeping their mode.
  if (req.cas != 0 && req.extlen == 8) p.mode = StoreMode::kCas;
  p.meta = false;
  p.noreply = req.quiet;
  p.key.assign(req.key.data(), req.key.size());
  p.client_flags = req.extlen == 8 ? load_be32(req.extras.data()) : 0;
  p.expires_at = req.extlen == 8 ? binary_expiry(req.extras.data() + 4, ctx.now) : 0;
  p.compare_cas = req.cas;
  p.value_size = static_cast<uint32_t>(req.value.size());
  p.key_binary = false;
  p.invalidate = false;
  p.has_new_cas = false;
  p.new_cas = 0;
  p.echo.clear();
  p.opaque.clear();

  StoreResult result = StoreResult::kNotStored;
  uint64_t cas = 0;
  {
    Store::Locked locked(ctx.store, req.key);
    ++locked.stats().cmd_set;
    result = store_item_locked(locked, ctx.now, ctx.store.max_item_bytes(), p, req.value, &cas);
  }
  switch (result) {
    case StoreResult::kStored:
      write_binary_ok(ctx, req, std::string_view(), cas);
      return;
    case StoreResult::kExists:
      write_binary_error(ctx, req, BinaryStatus::kKeyExists);
      return;
    case StoreResult::kNotFound:
      write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
      return;
    case StoreResult::kNotStored:
      // memcached complete_update_bin: an add that finds the key "exists", a replace that does not
      // "not found", the rest "not stored".
      if (requested == StoreMode::kAdd) {
        write_binary_error(ctx, req, BinaryStatus::kKeyExists);
      } else if (requested == StoreMode::kReplace) {
        write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
      } else {
        write_binary_error(ctx, req, BinaryStatus::kNotStored);
      }
      return;
    case StoreResult::kNoMemory:
      ctx.server.store_no_memory.fetch_add(1, std::memory_order_relaxed);
      write_binary_error(ctx, req, BinaryStatus::kOutOfMemory, "Out of memory allocating item");
      return;
  }
}

void binary_delete(Context& ctx, const BinaryRequest& req) {
  BinaryStatus status = BinaryStatus::kSuccess;
  {
    Store::Locked locked(ctx.store, req.key);
    Item* item = locked.find(ctx.now, true);
    if (item == nullptr) {
      ++locked.stats().delete_misses;
      status = BinaryStatus::kKeyNotFound;
    } else if (req.cas != 0 && req.cas != item->cas) {
      status = BinaryStatus::kKeyExists;
    } else {
      ++locked.stats().delete_hits;
      locked.remove(item);
    }
  }
  if (status == BinaryStatus::kSuccess) {
    write_binary_ok(ctx, req, std::string_view());
  } else {
    write_binary_error(ctx, req, status);
  }
}

void binary_delta(Context& ctx, const BinaryRequest& req) {
  const char* extras = req.extras.data();
  const uint64_t delta = load_be64(extras);
  const uint64_t initial = load_be64(extras + 8);
  const uint32_t expiration = load_be32(extras + 16);
  const DeltaOp op = req.command == binary_op::kIncrement ? DeltaOp::kIncr : DeltaOp::kDecr;
  std::string& digits = ctx.session.scratch;

  enum class Outcome : uint8_t { kOk, kBadValue, kNoMemory, kCasMismatch, kNotFound, kNotStored,
                                 kCreateNoMemory };
  Outcome outcome = Outcome::kOk;
  uint64_t value = 0;
  uint64_t cas = 0;
  {
    Store::Locked locked(ctx.store, req.key);
    Item* item = locked.find(ctx.now, true);
    if (item != nullptr) {
      switch (add_delta_locked(locked, ctx.now, &item, op, delta, req.cas, 0, digits)) {
        case DeltaResult::kOk:
          parse_u64(digits, value);
          cas = item->cas;
          break;
        case DeltaResult::kNonNumeric:
          outcome = Outcome::kBadValue;
          break;
        case DeltaResult::kNoMemory:
          outcome = Outcome::kNoMemory;
          break;
        case DeltaResult::kCasMismatch:
          outcome = Outcome::kCasMismatch;
          break;
        case DeltaResult::kNotFound:
          outcome = Outcome::kNotFound;
          break;
      }
    } else if (expiration != kNoAutoCreate) {
      // A miss creates the item with the initial value (flags 0), as an "add".
      digits.clear();
      append_u64(digits, initial);
      PendingStore& p = ctx.session.store;
      p.mode = StoreMode::kAdd;
      p.meta = false;
      p.noreply = req.quiet;
      p.key.assign(req.key.data(), req.key.size());
      p.client_flags = 0;
      p.expires_at = absolute_expiry(static_cast<int64_t>(expiration), ctx.now);
      p.compare_cas = 0;
      p.value_size = static_cast<uint32_t>(digits.size());
      p.key_binary = false;
      p.invalidate = false;
      p.has_new_cas = false;
      p.new_cas = 0;
      switch (store_item_locked(locked, ctx.now, ctx.store.max_item_bytes(), p, digits, &cas)) {
        case StoreResult::kStored:
          value = initial;
          break;
        case StoreResult::kNoMemory:
          outcome = Outcome::kCreateNoMemory;
          break;
        default:
          outcome = Outcome::kNotStored;
          break;
      }
    } else {
      if (op == DeltaOp::kIncr) {
        ++locked.stats().incr_misses;
      } else {
        ++locked.stats().decr_misses;
      }
      outcome = Outcome::kNotFound;
    }
  }
  switch (outcome) {
    case Outcome::kOk: {
      char body[8];
      store_be64(body, value);
      write_binary_ok(ctx, req, std::string_view(body, sizeof body), cas);
      return;
    }
    case Outcome::kBadValue:
      write_binary_error(ctx, req, BinaryStatus::kDeltaBadValue);
      return;
    case Outcome::kNoMemory:
      write_binary_error(ctx, req, BinaryStatus::kOutOfMemory, "Out of memory incrementing value");
      return;
    case Outcome::kCasMismatch:
      write_binary_error(ctx, req, BinaryStatus::kKeyExists);
      return;
    case Outcome::kNotFound:
      write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
      return;
    case Outcome::kNotStored:
      write_binary_error(ctx, req, BinaryStatus::kNotStored);
      return;
    case Outcome::kCreateNoMemory:
      write_binary_error(ctx, req, BinaryStatus::kOutOfMemory, "Out of memory allocating new item");
      return;
  }
}

void binary_flush(Context& ctx, const BinaryRequest& req) {
  int64_t delay = 0;
  if (req.extlen == 4) {
    const uint32_t exptime = load_be32(req.extras.data());
    if (exptime > 0) delay = absolute_expiry(static_cast<int64_t>(exptime), ctx.now) - ctx.now;
  }
  ctx.store.flush_all(ctx.now, delay);
  ctx.server.cmd_flush.fetch_add(1, std::memory_order_relaxed);
  write_binary_ok(ctx, req, std::string_view());
}

// memcached process_bin_stat. The statistics themselves are the text protocol's (stats.cc), one
// list for both protocols: rendered as text, then sent as one binary reply per "STAT" line.
void binary_stats(Context& ctx, const BinaryRequest& req) {
  const std::string_view sub = req.key;
  if (starts_with(sub, "reset")) {
    write_stat(ctx, req, {}, {});
    return;
  }
  if (starts_with(sub, "detail")) {
    // Gravity keeps no per-prefix detail: "on"/"off" are accepted, "dump" has nothing to show.
    const std::string_view rest = sub.substr(6);
    if (starts_with(rest, " dump")) {
      write_stat(ctx, req, "detailed", "END\r\n");
    } else if (!starts_with(rest, " on") && !starts_with(rest, " off")) {
      write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
      return;
    }
    write_stat(ctx, req, {}, {});
    return;
  }
  if (sub.find(' ') != std::string_view::npos) {
    write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
    return;
  }
  std::string line("stats");
  if (!sub.empty()) {
    line.push_back(' ');
    line.append(sub);
  }
  Tokens tokens;
  tokenize(line, tokens);
  std::string text;
  ReplyWriter writer(nullptr, 0, text);
  Context text_ctx{ctx.server, ctx.store, ctx.now, writer, ctx.session};
  process_stats(text_ctx, tokens);
  if (text.rfind("ERROR", 0) == 0) {
    write_binary_error(ctx, req, BinaryStatus::kKeyNotFound);
    return;
  }
  // "STAT <name> <value>\r\n" ... "END\r\n"
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string_view entry(text.data() + pos, end - pos);
    pos = end + 2;
    if (!starts_with(entry, "STAT ")) continue;
    entry.remove_prefix(5);
    const size_t space = entry.find(' ');
    if (space == std::string_view::npos) {
      write_stat(ctx, req, entry, {});
    } else {
      write_stat(ctx, req, entry.substr(0, space), entry.substr(space + 1));
    }
  }
  write_stat(ctx, req, {}, {});
}

}  // namespace gravity::protocol
