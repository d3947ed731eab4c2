// Text commands without a data block: delete, incr/decr, flush_all, verbosity
// (memcached proto_text.c process_delete_command, process_arithmetic_command,
// process_flush_all_command, process_verbosity_command).
#include <string_view>

#include "protocol/command.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

namespace {

constexpr int kMaxVerbosityLevel = 2;  // memcached MAX_VERBOSITY_LEVEL

}  // namespace

void process_delete(Context& ctx, const Tokens& t) {
  if (t.ntokens() > 3) {
    // "delete <key> 0" is accepted for backwards compatibility; any other hold time is not.
    const bool hold_is_zero = t.token[2] == "0";
    const bool sets_noreply = last_is_noreply(ctx, t);
    const bool valid = (t.ntokens() == 4 && (hold_is_zero || sets_noreply)) ||
                       (t.ntokens() == 5 && hold_is_zero && sets_noreply);
    if (!valid) {
      out_line(ctx, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
      return;
    }
  }
  const std::string_view key = t.token[1];
  if (!text_key_ok(ctx, key)) return;
  bool deleted = false;
  {
    Store::Locked locked(ctx.store, key);
    Item* item = locked.find(ctx.now, true);
    if (item != nullptr) {
      ++locked.stats().delete_hits;
      locked.remove(item);
      deleted = true;
    } else {
      ++locked.stats().delete_misses;
    }
  }
  out_line(ctx, deleted ? "DELETED" : "NOT_FOUND");
}

void process_arithmetic(Context& ctx, const Tokens& t, DeltaOp op) {
  last_is_noreply(ctx, t);
  const std::string_view key = t.token[1];
  if (!text_key_ok(ctx, key)) return;
  uint64_t delta = 0;
  if (!parse_u64(t.token[2], delta)) {
    out_line(ctx, "CLIENT_ERROR invalid numeric delta argument");
    return;
  }
  std::string& digits = ctx.session.scratch;
  DeltaResult result = DeltaResult::kNotFound;
  {
    Store::Locked locked(ctx.store, key);
    Item* item = locked.find(ctx.now, true);
    if (item != nullptr) {
      result = add_delta_locked(locked, ctx.now, &item, op, delta, 0, 0, digits);
    } else if (op == DeltaOp::kIncr) {
      ++locked.stats().incr_misses;
    } else {
      ++locked.stats().decr_misses;
    }
  }
  switch (result) {
    case DeltaResult::kOk:
      out_line(ctx, digits);
      break;
    case DeltaResult::kNonNumeric:
      out_line(ctx, "CLIENT_ERROR cannot increment or decrement non-numeric value");
      break;
    case DeltaResult::kNoMemory:
      out_line(ctx, "SERVER_ERROR out of memory");
      break;
    case DeltaResult::kNotFound:
      out_line(ctx, "NOT_FOUND");
      break;
    case DeltaResult::kCasMismatch:
      break;  // "Should never get here"
  }
}

void process_flush_all(Context& ctx, const Tokens& t) {
  const bool noreply = last_is_noreply(ctx, t);
  ctx.server.cmd_flush.fetch_add(1, std::memory_order_relaxed);
  int32_t exptime = 0;
  if (t.ntokens() != (noreply ? 3u : 2u)) {
    if (!parse_i32(t.token[1], exptime)) {
      out_line(ctx, "CLIENT_ERROR invalid exptime argument");
      return;
    }
  }
  // A positive delay is an exptime like an item's: relative up to 30 days, else absolute.
  int64_t delay = 0;
  if (exptime > 0) delay = absolute_expiry(exptime, ctx.now) - ctx.now;
  ctx.store.flush_all(ctx.now, delay);
  out_line(ctx, "OK");
}

void process_verbosity(Context& ctx, const Tokens& t) {
  last_is_noreply(ctx, t);
  uint32_t level = 0;
  if (!parse_u32(t.token[1], level)) {
    out_line(ctx, "CLIENT_ERROR bad command line format");
    return;
  }
  ctx.server.verbosity.store(level > kMaxVerbosityLevel ? kMaxVerbosityLevel : static_cast<int>(level));
  out_line(ctx, "OK");
}

}  // namespace gravity::protocol
