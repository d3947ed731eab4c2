// Text retrieval: get, gets, gat, gats (memcached proto_text.c process_get_command) and touch.
//
// A multi-key get runs key by key; when the reply backs up (pending output) it pauses before the
// next key and resumes from Session::resume_at on a later feed(), so one get never holds more
// than one value of pending output beyond the caller's buffer.
#include <string_view>

#include "protocol/command.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

namespace {

// The next space-separated key at or after `pos`; empty when the line is done.
std::string_view next_key(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') ++pos;
  return line.substr(start, pos - start);
}

bool returns_cas(GetCommand command) {
  return command == GetCommand::kGets || command == GetCommand::kGats;
}

bool touches(GetCommand command) {
  return command == GetCommand::kGat || command == GetCommand::kGats;
}

// Whether get_one() writes the VALUE block of a hit.
enum class HitReply : uint8_t { kValue, kSilent };

// Looks up one key and, for HitReply::kValue, writes its VALUE block. Counts as memcached does:
// a get counts cmd_get and get_hits/get_misses, a gat counts cmd_touch and touch_hits/touch_misses.
// A gat sets the item's expiry to `expires_at`.
void get_one(Context& ctx, std::string_view key, GetCommand command, int64_t expires_at,
             HitReply reply) {
  const bool touch = touches(command);
  Store::Locked locked(ctx.store, key);
  StoreStats& stats = locked.stats();
  Item* item = locked.find(ctx.now, true);
  if (touch) {
    ++stats.cmd_touch;
  } else {
    ++stats.cmd_get;
  }
  if (item == nullptr) {
    if (touch) {
      ++stats.touch_misses;
    } else {
      ++stats.get_misses;
    }
    return;
  }
  if (touch) {
    ++stats.touch_hits;
    locked.set_expiry(item, expires_at);
  } else {
    ++stats.get_hits;
  }
  bump_locked(locked, item, ctx.now);
  if (reply == HitReply::kSilent) return;
  ReplyWriter& out = ctx.out;
  out.write("VALUE ");
  out.write(item->key());
  out.write_char(' ');
  out.write_u64(item->client_flags);
  out.write_char(' ');
  out.write_u64(item->value_size);
  if (returns_cas(command)) {
    out.write_char(' ');
    out.write_u64(item->cas);
  }
  out.crlf();
  out.write(item->value());
  out.crlf();
}

}  // namespace

LineResult process_get(Context& ctx, std::string_view line, const Tokens& t, GetCommand command) {
  Session& session = ctx.session;
  int64_t expires_at = 0;
  size_t first_key = 1;
  if (touches(command)) {
    int32_t exptime = 0;
    if (!parse_i32(t.token[1], exptime)) {
      out_line(ctx, "CLIENT_ERROR invalid exptime argument");
      return LineResult::kDone;
    }
    expires_at = absolute_expiry(exptime, ctx.now);
    first_key = 2;
  }
  size_t start = line.size();
  if (first_key < t.count) {
    start = static_cast<size_t>(t.token[first_key].data() - line.data());
  } else if (t.has_rest) {
    start = static_cast<size_t>(t.rest.data() - line.data());
  }

  if (session.resume_at == 0) {
    // memcached drops the replies of the keys before a key that is too long and answers only
    // the error; their lookups still happen.
    size_t pos = start;
    for (std::string_view key = next_key(line, pos); !key.empty(); key = next_key(line, pos)) {
      if (key.size() <= kKeyMaxLength) continue;
      size_t before = start;
      for (std::string_view k = next_key(line, before); k.data() != key.data();
           k = next_key(line, before)) {
        get_one(ctx, k, command, expires_at, HitReply::kSilent);
      }
      out_line(ctx, "CLIENT_ERROR bad command line format");
      return LineResult::kDone;
    }
  } else {
    start = session.resume_at;
  }

  size_t pos = start;
  bool first = true;
  for (;;) {
    const size_t key_at = pos;
    std::string_view key = next_key(line, pos);
    if (key.empty()) break;
    if (!first && ctx.out.has_pending()) {
      session.resume_at = key_at;
      return LineResult::kSuspend;
    }
    first = false;
    get_one(ctx, key, command, expires_at, HitReply::kValue);
  }
  session.resume_at = 0;
  ctx.out.line("END");
  return LineResult::kDone;
}

// memcached process_touch_command.
void process_touch(Context& ctx, const Tokens& t) {
  last_is_noreply(ctx, t);
  const std::string_view key = t.token[1];
  if (!text_key_ok(ctx, key)) return;
  int32_t exptime = 0;
  if (!parse_i32(t.token[2], exptime)) {
    out_line(ctx, "CLIENT_ERROR invalid exptime argument");
    return;
  }
  bool found = false;
  {
    Store::Locked locked(ctx.store, key);
    StoreStats& stats = locked.stats();
    ++stats.cmd_touch;
    Item* item = locked.find(ctx.now, true);
    if (item != nullptr) {
      ++stats.touch_hits;
      locked.set_expiry(item, absolute_expiry(exptime, ctx.now));
      bump_locked(locked, item, ctx.now);
      found = true;
    } else {
      ++stats.touch_misses;
    }
  }
  out_line(ctx, found ? "TOUCHED" : "NOT_FOUND");
}

}  // namespace gravity::protocol
