// Text storage commands: set add replace append prepend cas (memcached proto_text.c
// process_update_command), and the completion of any parked store once its data block is in
// (complete_nread_ascii), text or meta.
#include <climits>
#include <string_view>

#include "protocol/base64.h"
#include "protocol/command.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

void start_swallow(Context& ctx, uint64_t bytes, std::string_view reply) {
  Session& session = ctx.session;
  session.swallow = bytes;
  session.swallow_reply.clear();
  if (!reply.empty()) {
    session.swallow_reply.append(reply);
    session.swallow_reply.append("\r\n");
  }
}

// Refuses a store whose item cannot fit in the item size limit: memcached answers once the data
// block has been swallowed, and with options.drop_old (a text "set", any "ms") also drops the
// key's current item so a stale value does not outlive the failed write.
void refuse_too_large(Context& ctx, std::string_view key, uint64_t data_bytes,
                      const RefuseOptions& options) {
  ctx.server.store_too_large.fetch_add(1, std::memory_order_relaxed);
  if (options.drop_old) {
    Store::Locked locked(ctx.store, key);
    Item* old = locked.find(ctx.now, true);
    if (old != nullptr) locked.remove(old);
  }
  const bool reply = options.always_reply || !ctx.noreply;
  start_swallow(ctx, data_bytes, reply ? "SERVER_ERROR object too large for cache" : "");
}

void process_update(Context& ctx, const Tokens& t, StoreMode mode) {
  last_is_noreply(ctx, t);
  const std::string_view key = t.token[1];
  if (!text_key_ok(ctx, key)) return;
  uint32_t flags = 0;
  int32_t exptime = 0;
  int32_t vlen = 0;
  if (!(parse_u32(t.token[2], flags) && parse_i32(t.token[3], exptime) &&
        parse_i32(t.token[4], vlen))) {
    out_line(ctx, "CLIENT_ERROR bad command line format");
    return;
  }
  uint64_t cas = 0;
  if (mode == StoreMode::kCas && !parse_u64(t.token[5], cas)) {
    out_line(ctx, "CLIENT_ERROR bad command line format");
    return;
  }
  if (vlen < 0 || vlen > INT_MAX - 2) {
    out_line(ctx, "CLIENT_ERROR bad command line format");
    return;
  }
  const uint64_t data_bytes = static_cast<uint64_t>(vlen) + 2;
  if (!value_size_ok(key.size(), static_cast<size_t>(vlen), flags, ctx.store.max_item_bytes())) {
    RefuseOptions refuse;
    refuse.drop_old = mode == StoreMode::kSet;
    refuse_too_large(ctx, key, data_bytes, refuse);
    return;
  }
  PendingStore& p = ctx.session.store;
  p.mode = mode;
  p.meta = false;
  p.noreply = ctx.noreply;
  p.key.assign(key.data(), key.size());
  p.client_flags = flags;
  p.expires_at = absolute_expiry(exptime, ctx.now);
  p.compare_cas = cas;
  p.value_size = static_cast<uint32_t>(vlen);
  p.key_binary = false;
  p.invalidate = false;
  p.has_new_cas = false;
  p.new_cas = 0;
  p.echo.clear();
  p.opaque.clear();
  ctx.session.data_needed = static_cast<size_t>(data_bytes);
}

namespace {

std::string_view text_reply(StoreResult result) {
  switch (result) {
    case StoreResult::kStored:
      return "STORED";
    case StoreResult::kNotStored:
      return "NOT_STORED";
    case StoreResult::kExists:
      return "EXISTS";
    case StoreResult::kNotFound:
      return "NOT_FOUND";
    case StoreResult::kNoMemory:
      break;
  }
  return "SERVER_ERROR out of memory storing object";
}

// memcached proto_text.c _finalize_mset: the code, then the return flags in request order.
void finish_ms(Context& ctx, const PendingStore& p, StoreResult result, uint64_t cas) {
  std::string& line = ctx.session.line;
  line.clear();
  switch (result) {
    case StoreResult::kStored:
      if (p.noreply) return;  // "q": only the nominal reply is suppressed
      line.append("HD");
      break;
    case StoreResult::kExists:
      line.append("EX");
      break;
    case StoreResult::kNotFound:
      line.append("NF");
      break;
    case StoreResult::kNotStored:
      line.append("NS");
      break;
    case StoreResult::kNoMemory:
      ctx.out.line("SERVER_ERROR out of memory storing object");
      return;
  }
  for (char flag : p.echo) {
    switch (flag) {
      case 'O':
        line.push_back(' ');
        line.append(p.opaque);
        break;
      case 'k':
        line.append(" k");
        if (p.key_binary) {
          base64_encode_append(p.key, line);
          line.append(" b");
        } else {
          line.append(p.key);
        }
        break;
      case 'c':
        line.append(" c");
        append_u64(line, result == StoreResult::kStored ? cas : 0);
        break;
      default:
        break;
    }
  }
  ctx.out.line(line);
}

}  // namespace

void complete_store(Context& ctx, std::string_view block) {
  const PendingStore& p = ctx.session.store;
  ctx.noreply = p.noreply;
  const std::string_view value = block.substr(0, block.size() - 2);
  const bool terminated = block.substr(block.size() - 2) == "\r\n";
  StoreResult result = StoreResult::kNotStored;
  uint64_t cas = 0;
  {
    Store::Locked locked(ctx.store, p.key);
    ++locked.stats().cmd_set;  // memcached counts the set before it checks the data chunk
    if (terminated) {
      result = store_item_locked(locked, ctx.now, ctx.store.max_item_bytes(), p, value, &cas);
    }
  }
  if (!terminated) {
    // "metaset mode always returns errors."
    if (p.meta) {
      ctx.out.line("CLIENT_ERROR bad data chunk");
    } else {
      out_line(ctx, "CLIENT_ERROR bad data chunk");
    }
    return;
  }
  if (result == StoreResult::kNoMemory) {
    ctx.server.store_no_memory.fetch_add(1, std::memory_order_relaxed);
  }
  if (p.meta) {
    finish_ms(ctx, p, result, cas);
  } else {
    out_line(ctx, text_reply(result));
  }
}

}  // namespace gravity::protocol
