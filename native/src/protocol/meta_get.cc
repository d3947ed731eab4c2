// Meta get ("mg") and meta debug ("me"): memcached proto_text.c process_mget_command and
// process_meta_command; memcached protocol.txt, "Meta Get" and "Meta Debug".
#include <string_view>

#include "protocol/base64.h"
#include "protocol/command.h"
#include "protocol/meta_flags.h"
#include "protocol/store_ops.h"
#include "store/ttl.h"

namespace gravity::protocol {

namespace {


// memcached's "t": seconds left, -1 for an item that never expires.
void append_ttl(std::string& line, const Item* item, int64_t now) {
  line.append(" t");
  append_i64(line, remaining_ttl(item->expires_at, now));
}

// memcached's default slab classes (-n 48, -f 1.25, slab_chunk_max 512 KiB), for "me" cls=.
uint32_t slab_class_of(uint64_t total) {
  constexpr uint32_t kItemHeader = 48, kChunkSize = 48, kAlign = 8, kChunkMax = 512 * 1024;
  constexpr double kFactor = 1.25;
  uint32_t size = kItemHeader + kChunkSize;
  uint32_t cls = 1;
  for (;; ++cls) {
    if (size >= kChunkMax / kFactor) return cls;  // the largest class
    if (size % kAlign != 0) size += kAlign - size % kAlign;
    if (total <= size) return cls;
    size = static_cast<uint32_t>(size * kFactor);
  }
}

}  // namespace

void process_mg(Context& ctx, Tokens& t) {
  if (t.ntokens() < 3) {
    ctx.out.line("ERROR");
    return;
  }
  if (t.token[1].size() > kKeyMaxLength) {
    ctx.out.line("CLIENT_ERROR bad command line format");
    return;
  }
  if (t.ntokens() > kMetaMaxTokens) {
    ctx.out.line("CLIENT_ERROR options flags are too long");
    return;
  }
  MetaFlags of;
  std::string_view key;
  std::string_view error = "CLIENT_ERROR bad command line format";
  if (!parse_meta_flags(ctx, t, 2, of, key, error)) {
    ctx.out.line(error);
    return;
  }
  std::string& line = ctx.session.line;
  line.clear();

  Store::Locked locked(ctx.store, key);
  StoreStats& stats = locked.stats();
  Item* item = locked.find(ctx.now, true);
  bool created = false;
  if (item == nullptr && of.vivify) {
    // "create a stub item with the key and TTL as supplied" (the TTL is applied at "N" below).
    item = locked.allocate(0, 0, 0);
    if (item != nullptr) {
      locked.link(item, ctx.now, of.has_new_cas ? of.new_cas : 0);  // "E": CAS of a new item
      created = true;
    }
  }

  if (item == nullptr) {
    ++stats.get_misses;
    ++stats.cmd_get;
    line.append("EN");
    if (!append_opaque_and_key(line, t, key, of.key_binary)) {
      ctx.out.line(kOpaqueTooLong);
      return;
    }
    if (!of.no_reply) ctx.out.line(line);  // "q": the miss is not reported
    return;
  }

  const uint8_t bits_before = item->bits;
  const int64_t accessed_before = item->accessed_at;
  bool won = false;
  bool ttl_set = false;
  if (of.value) {
    line.append("VA ");
    append_u64(line, item->value_size);
  } else {
    line.append("HD");
  }
  for (size_t i = 2; i < t.count; ++i) {
    const std::string_view token = t.token[i];
    switch (token[0]) {
      case 'T':
        ttl_set = true;
        locked.set_expiry(item, of.expires_at);
        break;
      case 'N':
        if (created) {
          locked.set_expiry(item, of.vivify_expires_at);
          won = true;
        }
        break;
      case 'R':
        // Win the recache token if the item's TTL is below the threshold.
        if ((item->bits & Item::kWinSent) == 0 && !created && item->expires_at != 0 &&
            item->expires_at < of.recache_at) {
          won = true;
        }
        break;
      case 's':
        line.append(" s");
        append_u64(line, item->value_size);
        break;
      case 't':
        append_ttl(line, item, ctx.now);
        break;
      case 'c':
        line.append(" c");
        append_u64(line, item->cas);
        break;
      case 'f':
        line.append(" f");
        append_u64(line, item->client_flags);
        break;
      case 'l':
        // "l" and "h" report the state before this fetch.
        line.append(" l");
        append_i64(line, ctx.now - accessed_before);
        break;
      case 'h':
        line.append((bits_before & Item::kFetched) != 0 ? " h1" : " h0");
        break;
      case 'O':
        if (!append_opaque(line, token)) {
          ctx.out.line(kOpaqueTooLong);
          return;
        }
        break;
      case 'k':
        append_meta_key(line, item->key(), (item->bits & Item::kKeyBinary) != 0);
        break;
      default:
        break;
    }
  }
  // "Has this item already sent a token? Important to do this here so we don't send W with Z."
  if ((item->bits & Item::kWinSent) != 0) line.append(" Z");
  if ((item->bits & Item::kStale) != 0) {
    line.append(" X");
    if ((item->bits & Item::kWinSent) == 0) won = true;  // stale and nobody is recaching yet
  }
  if (won) {
    line.append(" W");
    item->bits |= Item::kWinSent;
  }
  ctx.out.line(line);
  if (of.value) {
    ctx.out.write(item->value());
    ctx.out.crlf();
  }
  if (!of.no_update) bump_locked(locked, item, ctx.now);
  if (ttl_set) {
    ++stats.cmd_touch;
    ++stats.touch_hits;
  } else {
    ++stats.get_hits;
    ++stats.cmd_get;
  }
}

// memcached process_meta_command: "ME <key> exp= la= cas= fetch= cls= size=" for debugging.
void process_me(Context& ctx, Tokens& t) {
  if (t.ntokens() < 3 || t.token[1].size() > kKeyMaxLength) {
    ctx.out.line("CLIENT_ERROR bad command line format");
    return;
  }
  std::string_view key = t.token[1];
  if (t.ntokens() >= 4 && t.token[2] == "b") {
    if (base64_decode(key, ctx.session.key) == 0) {
      ctx.out.line("CLIENT_ERROR bad command line format");
      return;
    }
    key = ctx.session.key;
  }
  ctx.server.cmd_meta.fetch_add(1, std::memory_order_relaxed);  // memcached counts only "me"
  std::string& line = ctx.session.line;
  line.clear();
  {
    Store::Locked locked(ctx.store, key);
    const Item* item = locked.find(ctx.now, true);
    if (item == nullptr) {
      line.append("EN");
    } else {
      line.append("ME ");
      if ((item->bits & Item::kKeyBinary) != 0) {
        base64_encode_append(item->key(), line);
      } else {
        line.append(item->key());
      }
      // memcached prints exp as current_time - exptime: negative while the item is live.
      line.append(" exp=");
      append_i64(line, item->expires_at == 0 ? -1 : ctx.now - item->expires_at);
      line.append(" la=");
      append_i64(line, ctx.now - item->accessed_at);
      line.append(" cas=");
      append_u64(line, item->cas);
      line.append((item->bits & Item::kFetched) != 0 ? " fetch=yes" : " fetch=no");
      // memcached's ITEM_ntotal: 48-byte header, CAS, key + NUL, value + CRLF, flags if set.
      const uint64_t total = 56 + item->key_size + 1 + item->value_size + 2 +
                             (item->client_flags != 0 ? 4 : 0);
      line.append(" cls=");
      append_u64(line, slab_class_of(total));
      line.append(" size=");
      append_u64(line, total);
    }
  }
  ctx.out.line(line);
}

}  // namespace gravity::protocol
