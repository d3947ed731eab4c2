// Binary framing and dispatch: memcached proto_bin.c try_read_command_binary and
// dispatch_bin_command, with the same header checks and the same replies to bad frames.
//
//   run_binary: [swallow] ──> 24-byte header ──bad magic──> close
//                                  │ wait for extras + key
//                                  v
//               execute_frame: length checks ──bad──> error reply, close (as memcached)
//                                  │ fold quiet opcode, per-opcode shape checks
//                                  ├─ set/add/replace/append/prepend: too large? E2BIG and swallow
//                                  │   the value; else wait for the whole value, then store
//                                  └─ everything else runs on header + extras + key
//
// memcached reads a value only for the commands that carry one; a stat or touch frame with a
// longer body leaves the rest to be read as the next frame, and so does this parser.
#include "protocol/binary.h"

#include <algorithm>
#include <string_view>

#include "protocol/store_ops.h"

namespace gravity::protocol {

namespace {

enum class FrameStep : uint8_t {
  kDone,   // frame executed; `consumed` bytes are used (a swallow may follow)
  kWait,   // the value has not all arrived: nothing consumed
  kClose,  // reply written; close the connection after it
};

// memcached's text for each error status (write_bin_error).
std::string_view status_text(BinaryStatus status) {
  switch (status) {
    case BinaryStatus::kOutOfMemory:
      return "Out of memory";
    case BinaryStatus::kUnknownCommand:
      return "Unknown command";
    case BinaryStatus::kKeyNotFound:
      return "Not found";
    case BinaryStatus::kInvalidArguments:
      return "Invalid arguments";
    case BinaryStatus::kKeyExists:
      return "Data exists for key.";
    case BinaryStatus::kTooLarge:
      return "Too large.";
    case BinaryStatus::kDeltaBadValue:
      return "Non-numeric server-side value for incr or decr";
    case BinaryStatus::kNotStored:
      return "Not stored.";
    case BinaryStatus::kAuthError:
      return "Auth failure.";
    case BinaryStatus::kSuccess:
    case BinaryStatus::kAuthContinue:
      break;
  }
  return "";
}

// Folds a quiet opcode into its loud one (memcached dispatch_bin_command's first switch).
void fold_quiet(BinaryRequest& req) {
  using namespace binary_op;
  req.quiet = true;
  switch (req.opcode) {
    case kSetQ:
      req.command = kSet;
      return;
    case kAddQ:
      req.command = kAdd;
      return;
    case kReplaceQ:
      req.command = kReplace;
      return;
    case kDeleteQ:
      req.command = kDelete;
      return;
    case kIncrementQ:
      req.command = kIncrement;
      return;
    case kDecrementQ:
      req.command = kDecrement;
      return;
    case kQuitQ:
      req.command = kQuit;
      return;
    case kFlushQ:
      req.command = kFlush;
      return;
    case kAppendQ:
      req.command = kAppend;
      return;
    case kPrependQ:
      req.command = kPrepend;
      return;
    case kGetQ:
      req.command = kGet;
      return;
    case kGetKQ:
      req.command = kGetK;
      return;
    case kGatQ:
      req.command = kGat;
      return;
    case kGatKQ:
      req.command = kGatK;
      return;
    default:
      req.quiet = false;
      req.command = req.opcode;
      return;
  }
}

// memcached handle_binary_protocol_error: "Invalid arguments", then close.
FrameStep protocol_error(Context& ctx, const BinaryRequest& req) {
  write_binary_error(ctx, req, BinaryStatus::kInvalidArguments);
  return FrameStep::kClose;
}

// Storage commands: too large is refused before the value arrives (memcached replies E2BIG from
// the header and swallows the value); otherwise the whole value is awaited, then stored.
FrameStep store_frame(Context& ctx, BinaryRequest& req, const char* frame, size_t available,
                      size_t* consumed) {
  const uint32_t value_bytes = req.bodylen - req.keylen - req.extlen;
  const uint32_t flags =
      req.extlen == 8 ? load_be32(req.extras.data()) : 0;  // append/prepend: no extras
  if (!value_size_ok(req.keylen, value_bytes, flags, ctx.store.max_item_bytes())) {
    ctx.server.store_too_large.fetch_add(1, std::memory_order_relaxed);
    if (req.command == binary_op::kSet) {
      // "Avoid stale data persisting in cache because we failed alloc."
      Store::Locked locked(ctx.store, req.key);
      Item* old = locked.find(ctx.now, true);
      if (old != nullptr) locked.remove(old);
    }
    write_binary_error(ctx, req, BinaryStatus::kTooLarge);
    ctx.session.swallow = value_bytes;
    return FrameStep::kDone;
  }
  const size_t frame_bytes = kBinaryHeaderBytes + size_t{req.bodylen};
  if (available < frame_bytes) return FrameStep::kWait;
  req.value = std::string_view(frame + kBinaryHeaderBytes + req.extlen + req.keylen, value_bytes);
  *consumed = frame_bytes;
  binary_store(ctx, req);
  return FrameStep::kDone;
}

// memcached authenticated(): what an unauthenticated connection may send when SASL is on.
bool sasl_exempt(uint8_t opcode) {
  using namespace binary_op;
  return opcode == kSaslListMechs || opcode == kSaslAuth || opcode == kSaslStep || opcode == kVersion;
}

// memcached process_bin_sasl_auth: the mechanism is the key, the client's data the value.
FrameStep sasl_auth_frame(Context& ctx, BinaryRequest& req, const char* frame, size_t available,
                          size_t* consumed) {
  constexpr uint32_t kMaxMechanismBytes = 32;  // memcached MAX_SASL_MECH_LEN
  const uint32_t value_bytes = req.bodylen - req.keylen;
  if (req.keylen > kMaxMechanismBytes) {
    write_binary_error(ctx, req, BinaryStatus::kInvalidArguments);
    ctx.session.swallow = value_bytes;
    return FrameStep::kDone;
  }
  if (value_bytes > ctx.store.max_item_bytes()) {
    write_binary_error(ctx, req, BinaryStatus::kOutOfMemory);
    ctx.session.swallow = value_bytes;
    return FrameStep::kDone;
  }
  const size_t frame_bytes = kBinaryHeaderBytes + size_t{req.bodylen};
  if (available < frame_bytes) return FrameStep::kWait;
  req.value = std::string_view(frame + kBinaryHeaderBytes + req.keylen, value_bytes);
  *consumed = frame_bytes;
  binary_sasl_auth(ctx, req);
  return FrameStep::kDone;
}

// memcached dispatch_bin_command: the header checks, then the per-opcode shape checks.
FrameStep execute_frame(Context& ctx, BinaryRequest& req, const char* frame, size_t available,
                        size_t* consumed) {
  using namespace binary_op;
  const uint32_t extlen = req.extlen;
  const uint32_t keylen = req.keylen;
  const uint32_t bodylen = req.bodylen;
  if (keylen > bodylen || keylen + extlen > bodylen) {
    write_binary_error(ctx, req, BinaryStatus::kUnknownCommand);
    return FrameStep::kClose;
  }
  if (ctx.server.options().sasl && !ctx.session.authenticated && !sasl_exempt(req.opcode)) {
    write_binary_error(ctx, req, BinaryStatus::kAuthError);
    return FrameStep::kClose;
  }
  fold_quiet(req);
  // "binprot supports 16bit keys, but internals are still 8bit"
  if (keylen > kKeyMaxLength) return protocol_error(ctx, req);

  switch (req.command) {
    case kVersion:
      if (extlen != 0 || keylen != 0 || bodylen != 0) return protocol_error(ctx, req);
      write_binary_ok(ctx, req, ctx.server.options().version);
      return FrameStep::kDone;
    case kFlush:
      if (keylen != 0 || bodylen != extlen || (extlen != 0 && extlen != 4)) {
        return protocol_error(ctx, req);
      }
      binary_flush(ctx, req);
      return FrameStep::kDone;
    case kNoop:
      if (extlen != 0 || keylen != 0 || bodylen != 0) return protocol_error(ctx, req);
      write_binary_ok(ctx, req, std::string_view());
      return FrameStep::kDone;
    case kSet:
    case kAdd:
    case kReplace:
      if (extlen != 8 || keylen == 0 || bodylen < keylen + 8) return protocol_error(ctx, req);
      return store_frame(ctx, req, frame, available, consumed);
    case kAppend:
    case kPrepend:
      if (keylen == 0 || extlen != 0) return protocol_error(ctx, req);
      return store_frame(ctx, req, frame, available, consumed);
    case kGet:
    case kGetK:
      if (extlen != 0 || bodylen != keylen || keylen == 0) return protocol_error(ctx, req);
      binary_get(ctx, req);
      return FrameStep::kDone;
    case kTouch:
    case kGat:
    case kGatK:
      if (extlen != 4 || keylen == 0) return protocol_error(ctx, req);
      binary_get(ctx, req);
      return FrameStep::kDone;
    case kDelete:
      if (keylen == 0 || extlen != 0 || bodylen != keylen) return protocol_error(ctx, req);
      binary_delete(ctx, req);
      return FrameStep::kDone;
    case kIncrement:
    case kDecrement:
      if (keylen == 0 || extlen != 20 || bodylen != keylen + extlen) {
        return protocol_error(ctx, req);
      }
      binary_delta(ctx, req);
      return FrameStep::kDone;
    case kStat:
      if (extlen != 0) return protocol_error(ctx, req);
      binary_stats(ctx, req);
      return FrameStep::kDone;
    case kQuit:
      if (keylen != 0 || extlen != 0 || bodylen != 0) return protocol_error(ctx, req);
      write_binary_ok(ctx, req, std::string_view());
      return FrameStep::kClose;
    case kSaslListMechs:
      if (extlen != 0 || keylen != 0 || bodylen != 0) return protocol_error(ctx, req);
      if (!ctx.server.options().sasl) break;
      binary_sasl_list_mechs(ctx, req);
      return FrameStep::kDone;
    case kSaslAuth:
    case kSaslStep:
      if (extlen != 0 || keylen == 0) return protocol_error(ctx, req);
      if (!ctx.server.options().sasl) break;
      return sasl_auth_frame(ctx, req, frame, available, consumed);
    default:
      break;
  }
  // Unknown opcodes, and SASL opcodes without SASL: "Unknown command", and the rest of the body
  // is discarded. (memcached discards `bodylen` bytes after the extras and key, which eats into the
  // next frame when they are not empty; Gravity discards exactly the rest of this frame.)
  write_binary_error(ctx, req, BinaryStatus::kUnknownCommand);
  ctx.session.swallow = bodylen - extlen - keylen;
  return FrameStep::kDone;
}

}  // namespace

void write_binary_header(Context& ctx, const BinaryRequest& req, BinaryStatus status,
                         uint8_t extlen, uint16_t keylen, uint32_t bodylen, uint64_t cas) {
  char header[kBinaryHeaderBytes];
  header[0] = static_cast<char>(kBinaryResponseMagic);
  header[1] = static_cast<char>(req.opcode);
  store_be16(header + 2, keylen);
  header[4] = static_cast<char>(extlen);
  header[5] = 0;  // datatype: raw bytes
  store_be16(header + 6, static_cast<uint16_t>(status));
  store_be32(header + 8, bodylen);
  std::copy(req.opaque, req.opaque + 4, header + 12);
  store_be64(header + 16, cas);
  ctx.out.write(header, sizeof header);
}

void write_binary_ok(Context& ctx, const BinaryRequest& req, std::string_view body, uint64_t cas) {
  if (req.quiet) return;
  write_binary_header(ctx, req, BinaryStatus::kSuccess, 0, 0, static_cast<uint32_t>(body.size()), cas);
  ctx.out.write(body);
}

void write_binary_error(Context& ctx, const BinaryRequest& req, BinaryStatus status,
                        std::string_view text) {
  if (text.empty()) text = status_text(status);
  write_binary_header(ctx, req, status, 0, 0, static_cast<uint32_t>(text.size()), 0);
  ctx.out.write(text);
}

size_t run_binary(Context& ctx, const char* data, size_t size, bool* close) {
  Session& s = ctx.session;
  size_t pos = 0;
  while (pos < size && !ctx.out.has_pending()) {
    if (s.swallow > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(s.swallow, size - pos));
      pos += n;
      s.swallow -= n;
      continue;
    }
    const char* frame = data + pos;
    const size_t available = size - pos;
    if (available < kBinaryHeaderBytes) break;
    if (static_cast<uint8_t>(frame[0]) != kBinaryRequestMagic) {
      // memcached: "Invalid magic", the connection closes without a reply.
      *close = true;
      return size;
    }
    BinaryRequest req;
    req.opcode = static_cast<uint8_t>(frame[1]);
    req.keylen = load_be16(frame + 2);
    req.extlen = static_cast<uint8_t>(frame[4]);
    req.bodylen = load_be32(frame + 8);
    req.opaque = frame + 12;
    req.cas = load_be64(frame + 16);
    const size_t head_bytes = kBinaryHeaderBytes + req.extlen + req.keylen;
    if (available < head_bytes) break;
    req.extras = std::string_view(frame + kBinaryHeaderBytes, req.extlen);
    req.key = std::string_view(frame + kBinaryHeaderBytes + req.extlen, req.keylen);
    size_t consumed = head_bytes;
    const FrameStep step = execute_frame(ctx, req, frame, available, &consumed);
    if (step == FrameStep::kWait) break;
    pos += consumed;
    if (step == FrameStep::kClose) {
      *close = true;
      return size;
    }
  }
  return pos;
}

}  // namespace gravity::protocol
