// Meta set ("ms"): memcached proto_text.c process_mset_command; memcached protocol.txt,
// "Meta Set". The line is parsed here and the store parked until its data block arrives;
// text_store.cc complete_store() finishes it.
#include <climits>
#include <string_view>

#include "protocol/command.h"
#include "protocol/meta_flags.h"
#include "protocol/store_ops.h"

namespace gravity::protocol {

void process_ms(Context& ctx, Tokens& t) {
  if (t.ntokens() < 3) {
    ctx.out.line("ERROR");
    return;
  }
  if (t.token[1].size() > kKeyMaxLength || t.ntokens() == 3) {
    ctx.out.line("CLIENT_ERROR bad command line format");
    return;
  }
  if (t.ntokens() > kMetaMaxTokens) {
    ctx.out.line("CLIENT_ERROR options flags too long");
    return;
  }
  int32_t vlen = 0;
  if (!parse_i32(t.token[2], vlen) || vlen < 0 || vlen > INT_MAX - 2) {
    ctx.out.line("CLIENT_ERROR bad command line format");
    return;
  }
  const uint64_t data_bytes = static_cast<uint64_t>(vlen) + 2;

  // From here on an error swallows the data block ("We need to at least try to get the size
  // to properly slurp bad bytes after an error").
  MetaFlags of;
  std::string_view key;
  std::string_view error = "CLIENT_ERROR bad command line format";
  if (!parse_meta_flags(ctx, t, 3, of, key, error)) {
    start_swallow(ctx, data_bytes, error);
    return;
  }
  PendingStore& p = ctx.session.store;
  p.echo.clear();
  p.opaque.clear();
  bool has_error = false;
  for (size_t i = 3; i < t.count; ++i) {
    const std::string_view token = t.token[i];
    switch (token[0]) {
      case 'O':
        if (token.size() > kMetaMaxOpaqueLength) {
          error = kOpaqueTooLong;
          has_error = true;
          break;
        }
        p.echo.push_back('O');
        p.opaque.assign(token.data(), token.size());
        break;
      case 'k':
      case 'c':
        p.echo.push_back(token[0]);
        break;
      default:
        break;
    }
  }
  StoreMode mode = StoreMode::kSet;
  switch (of.mode) {
    case 0:
    case 'S':
      break;
    case 'E':
      mode = StoreMode::kAdd;
      break;
    case 'A':
      mode = StoreMode::kAppend;
      break;
    case 'P':
      mode = StoreMode::kPrepend;
      break;
    case 'R':
      mode = StoreMode::kReplace;
      break;
    default:
      start_swallow(ctx, data_bytes, "CLIENT_ERROR invalid mode for ms M token");
      return;
  }
  // "If a CAS value is supplied, upgrade default SET mode to CAS mode. Also allows REPLACE to
  // work, as REPLACE + CAS works the same as CAS."
  if (of.has_cas && (mode == StoreMode::kSet || mode == StoreMode::kReplace)) {
    mode = StoreMode::kCas;
  }
  if (has_error) {
    start_swallow(ctx, data_bytes, error);
    return;
  }
  if (!value_size_ok(key.size(), static_cast<size_t>(vlen), of.client_flags,
                     ctx.store.max_item_bytes())) {
    RefuseOptions refuse;
    refuse.drop_old = true;      // "Avoid stale data persisting in cache because we failed alloc."
    refuse.always_reply = true;  // memcached out_errstring: meta errors ignore noreply
    refuse_too_large(ctx, key, data_bytes, refuse);
    return;
  }
  p.mode = mode;
  p.meta = true;
  p.noreply = of.no_reply;
  p.key.assign(key.data(), key.size());
  p.client_flags = of.client_flags;
  p.expires_at = of.expires_at;
  p.compare_cas = of.has_cas ? of.compare_cas : 0;
  p.value_size = static_cast<uint32_t>(vlen);
  p.key_binary = of.key_binary;
  p.invalidate = of.set_stale && mode == StoreMode::kCas;
  p.has_new_cas = of.has_new_cas;
  p.new_cas = of.new_cas;
  ctx.session.data_needed = static_cast<size_t>(data_bytes);
}

}  // namespace gravity::protocol
