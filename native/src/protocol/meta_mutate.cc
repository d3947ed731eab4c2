// Meta delete ("md") and meta arithmetic ("ma"): memcached proto_text.c process_mdelete_command
// and process_marithmetic_command; memcached protocol.txt, "Meta Delete" and "Meta Arithmetic".
#include <cstring>
#include <string_view>

#include "protocol/command.h"
#include "protocol/meta_flags.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

namespace {


// The checks md and ma share before their flags are parsed. False when a reply was written.
bool check_meta_line(Context& ctx, const Tokens& t) {
  if (t.ntokens() < 3) {
    ctx.out.line("ERROR");
    return false;
  }
  if (t.token[1].size() > kKeyMaxLength) {
    ctx.out.line("CLIENT_ERROR bad command line format");
    return false;
  }
  if (t.ntokens() > kMetaMaxTokens) {
    ctx.out.line("CLIENT_ERROR options flags too long");
    return false;
  }
  return true;
}

// md's and ma's shared start: the line checks, then the flags (memcached answers both kinds of bad
// flag with one message for these two commands). False when a reply was written.
bool parse_md_ma(Context& ctx, const Tokens& t, MetaFlags& of, std::string_view& key) {
  if (!check_meta_line(ctx, t)) return false;
  std::string_view error;
  if (!parse_meta_flags(ctx, t, 2, of, key, error)) {
    ctx.out.line("CLIENT_ERROR invalid or duplicate flag");
    return false;
  }
  return true;
}

}  // namespace

void process_md(Context& ctx, Tokens& t) {
  MetaFlags of;
  std::string_view key;
  if (!parse_md_ma(ctx, t, of, key)) return;
  std::string& line = ctx.session.line;
  line.assign("XX");  // the code is filled in below, the return flags follow it
  if (!append_opaque_and_key(line, t, key, of.key_binary)) {
    ctx.out.line(kOpaqueTooLong);
    return;
  }
  bool quiet = false;
  {
    Store::Locked locked(ctx.store, key);
    StoreStats& stats = locked.stats();
    Item* item = locked.find(ctx.now, true);
    if (item == nullptr) {
      ++stats.delete_misses;
      line.replace(0, 2, "NF");
    } else if (of.has_cas && item->cas != of.compare_cas) {
      ++stats.delete_misses;
      line.replace(0, 2, "EX");
    } else if (of.set_stale) {
      // "mark as stale, bumps CAS": the item stays for clients to serve while one recaches it.
      if (of.new_ttl) locked.set_expiry(item, of.expires_at);
      item->bits |= Item::kStale;
      item->bits &= static_cast<uint8_t>(~Item::kWinSent);  // the next fetch can win
      if (of.has_new_cas) {
        item->cas = of.new_cas;
      } else {
        locked.bump_cas(item);
      }
      line.replace(0, 2, "HD");
      quiet = of.no_reply;
    } else if (of.remove_value) {
      // "x" (memcached >= 1.6.21): drop the value, keep the item with its flags and TTL.
      Item* empty = locked.allocate(0, item->client_flags, item->expires_at, item);
      if (empty == nullptr) {
        ctx.out.line("SERVER_ERROR out of memory");
        return;
      }
      empty->bits = item->bits & Item::kKeyBinary;
      locked.link(empty, ctx.now, of.has_new_cas ? of.new_cas : 0);
      line.replace(0, 2, "HD");
      quiet = of.no_reply;
    } else {
      ++stats.delete_hits;
      locked.remove(item);
      line.replace(0, 2, "HD");
      quiet = of.no_reply;
    }
  }
  if (!quiet) ctx.out.line(line);
}

void process_ma(Context& ctx, Tokens& t) {
  MetaFlags of;
  std::string_view key;
  if (!parse_md_ma(ctx, t, of, key)) return;
  DeltaOp op = DeltaOp::kIncr;
  switch (of.mode) {
    case 0:
    case 'I':
    case '+':
      break;
    case 'D':
    case '-':
      op = DeltaOp::kDecr;
      break;
    default:
      ctx.out.line("CLIENT_ERROR invalid mode for ma M token");
      return;
  }
  std::string& line = ctx.session.line;
  std::string& digits = ctx.session.scratch;
  line.clear();
  digits.clear();

  Store::Locked locked(ctx.store, key);
  StoreStats& stats = locked.stats();
  Item* item = locked.find(ctx.now, true);
  bool created = false;
  bool quiet = false;
  if (item != nullptr) {
    switch (add_delta_locked(locked, ctx.now, &item, op, of.delta,
                             of.has_cas ? of.compare_cas : 0, of.has_new_cas ? of.new_cas : 0,
                             digits)) {
      case DeltaResult::kOk:
        quiet = of.no_reply;
        break;
      case DeltaResult::kNonNumeric:
        ctx.out.line("CLIENT_ERROR cannot increment or decrement non-numeric value");
        return;
      case DeltaResult::kNoMemory:
        ctx.out.line("SERVER_ERROR out of memory");
        return;
      case DeltaResult::kCasMismatch:
        line.append("EX");
        item = nullptr;
        break;
      case DeltaResult::kNotFound:
        break;
    }
  } else if (of.vivify) {
    // "auto create item on miss with supplied TTL", seeded with J (default 0); no delta applied.
    append_u64(digits, of.initial);
    item = locked.allocate(static_cast<uint32_t>(digits.size()), 0, 0);
    if (item == nullptr) {
      ctx.out.line("SERVER_ERROR Out of memory allocating new item");
      return;
    }
    std::memcpy(item->value_data(), digits.data(), digits.size());
    locked.link(item, ctx.now, of.has_new_cas ? of.new_cas : 0);
    created = true;
  } else {
    if (op == DeltaOp::kIncr) {
      ++stats.incr_misses;
    } else {
      ++stats.decr_misses;
    }
    line.append("NF");
  }

  if (item == nullptr) {
    if (!append_opaque_and_key(line, t, key, of.key_binary)) {
      ctx.out.line(kOpaqueTooLong);
      return;
    }
    ctx.out.line(line);
    return;
  }
  if (of.value) {
    line.append("VA ");
    append_u64(line, digits.size());
  } else {
    line.append("HD");
  }
  for (size_t i = 2; i < t.count; ++i) {
    const std::string_view token = t.token[i];
    switch (token[0]) {
      case 'c':
        line.append(" c");
        append_u64(line, item->cas);
        break;
      case 't':
        line.append(" t");
        append_i64(line, remaining_ttl(item->expires_at, ctx.now));
        break;
      case 'T':
        locked.set_expiry(item, of.expires_at);
        break;
      case 'N':
        if (created) locked.set_expiry(item, of.vivify_expires_at);
        break;
      case 'O':
        if (!append_opaque(line, token)) {
          ctx.out.line(kOpaqueTooLong);
          return;
        }
        break;
      case 'k':
        append_meta_key(line, key, of.key_binary);
        break;
      default:
        break;
    }
  }
  if (quiet) return;
  ctx.out.line(line);
  if (of.value) ctx.out.line(digits);
}

}  // namespace gravity::protocol
