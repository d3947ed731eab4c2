// What the command handlers share: the per-connection Session they read and change, the
// Context of one feed() call, and the entry points connection.cc calls.
//
//   connection.cc  framing: lines, data blocks, swallowing, backpressure
//        │ execute_line(line)                    │ complete_store(data block)
//        v                                       v
//   dispatch.cc ──> text_*.cc / meta_*.cc ──> store_ops.cc (set/add/cas/append, incr/decr)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/reply.h"
#include "protocol/server.h"
#include "protocol/tokenize.h"

namespace gravity::protocol {

// memcached do_store_item's modes (NREAD_SET ... NREAD_CAS).
enum class StoreMode : uint8_t { kSet, kAdd, kReplace, kAppend, kPrepend, kCas };

// The text retrieval commands (memcached proto_text.c process_get_command): "gets"/"gats" add
// the CAS unique to each VALUE line; "gat"/"gats" also set the expiry and count as touches.
enum class GetCommand : uint8_t { kGet, kGets, kGat, kGats };

// Which way incr/decr and meta "ma" move the number (memcached do_add_delta's `incr`).
enum class DeltaOp : uint8_t { kIncr, kDecr };

// A storage command (text or "ms") whose line is parsed and which waits for its data block.
// The strings keep their capacity, so parking a command allocates nothing in steady state.
struct PendingStore {
  StoreMode mode = StoreMode::kSet;
  bool meta = false;         // "ms": meta reply codes and return flags
  bool noreply = false;      // text "noreply" / meta "q"
  std::string key;           // key bytes (decoded when meta "b")
  uint32_t client_flags = 0;
  int64_t expires_at = 0;    // absolute unix seconds, 0 = never
  uint64_t compare_cas = 0;  // "cas" unique / ms "C"; 0 = no comparison
  uint32_t value_size = 0;   // bytes before the CRLF
  // ms only
  bool key_binary = false;   // "b": echo the key in base64
  bool invalidate = false;   // "I": a lower CAS stores the value as stale
  bool has_new_cas = false;  // "E": the CAS the stored item gets
  uint64_t new_cas = 0;
  std::string echo;          // return flags in request order: 'O', 'k', 'c'
  std::string opaque;        // the whole "O..." token
};

// Which protocol a connection speaks: decided by its first byte (memcached
// try_read_command_negotiate) and fixed for the connection's life.
enum class WireProtocol : uint8_t { kUndecided, kText, kBinary };

// Where an "lru_crawler metadump" paused on backpressure resumes (metadump.cc).
struct MetadumpCursor {
  bool active = false;  // a dump is under way: the same line runs again to continue it
  WalkCursor walk;
  uint64_t classes = 0;  // bit c: report class c+1 (item_classes.h) is dumped
};

// Per-connection protocol state.
struct Session {
  ConnectionInfo* info = nullptr;  // this connection in the server's list ("stats conns")
  MetadumpCursor metadump;
  WireProtocol protocol = WireProtocol::kUndecided;
  bool authenticated = false;  // SASL: a binary SASL auth succeeded on this connection
  PendingStore store;
  size_t data_needed = 0;     // bytes (value + CRLF) the parked store waits for; 0 = none
  uint64_t swallow = 0;       // bytes still to discard (data block of a refused store)
  std::string swallow_reply;  // reply written once the swallow ends (memcached sends it then)
  size_t resume_at = 0;       // multi-key get paused by backpressure: offset of its next key
  std::string line;           // reply line under construction (meta commands)
  std::string key;            // decoded base64 key
  std::string scratch;        // numbers for incr/ma
  Tokens tokens;
};

// One feed() call's view of the world.
struct Context {
  Server& server;
  Store& store;
  int64_t now;  // store clock, read once per feed
  ReplyWriter& out;
  Session& session;
  bool noreply = false;  // current text command had "noreply": out_line() writes nothing
};

enum class LineResult : uint8_t {
  kDone,     // line consumed (a store may now wait for data, or a swallow may be running)
  kSuspend,  // a multi-key get paused on backpressure; call again with the same line
  kClose,    // close the connection after the replies written so far
};

// memcached proto_text.c process_command_ascii: one command line, without its line ending.
LineResult execute_line(Context& ctx, std::string_view line);

// Runs the parked store with its data block (value + the two bytes that must be CRLF).
void complete_store(Context& ctx, std::string_view block);

// A text reply line, suppressed by "noreply" as memcached's out_string suppresses it.
inline void out_line(Context& ctx, std::string_view text) {
  if (ctx.noreply) return;
  ctx.out.line(text);
}

// Sets ctx.noreply when the command's last token is "noreply" (ctx.noreply starts each command
// false); returns it.
inline bool last_is_noreply(Context& ctx, const Tokens& t) {
  if (t.token[t.count - 1] == "noreply") ctx.noreply = true;
  return ctx.noreply;
}

// memcached's key length check for text commands: false (after replying) when the key is too long.
inline bool text_key_ok(Context& ctx, std::string_view key) {
  if (key.size() <= kKeyMaxLength) return true;
  out_line(ctx, "CLIENT_ERROR bad command line format");
  return false;
}

// Starts discarding `bytes` of input, then writes `reply` (if any) as memcached does after
// conn_swallow.
void start_swallow(Context& ctx, uint64_t bytes, std::string_view reply);

// What refuse_too_large() does beside swallowing the data block.
struct RefuseOptions {
  bool drop_old = false;      // also remove the key's current item (text "set", every "ms")
  bool always_reply = false;  // answer even when the command had "noreply"
};

// Refuses a store whose item would exceed the item size limit: swallows its data block, then
// answers "SERVER_ERROR object too large for cache" (unless noreply and !options.always_reply).
void refuse_too_large(Context& ctx, std::string_view key, uint64_t data_bytes,
                      const RefuseOptions& options);

// Handlers (dispatch.cc routes to them). `t` is the tokenized line.
LineResult process_get(Context& ctx, std::string_view line, const Tokens& t, GetCommand command);
void process_update(Context& ctx, const Tokens& t, StoreMode mode);
void process_touch(Context& ctx, const Tokens& t);
void process_arithmetic(Context& ctx, const Tokens& t, DeltaOp op);
void process_delete(Context& ctx, const Tokens& t);
void process_flush_all(Context& ctx, const Tokens& t);
void process_verbosity(Context& ctx, const Tokens& t);
void process_stats(Context& ctx, const Tokens& t);
LineResult process_lru_crawler(Context& ctx, const Tokens& t);
// "stats items" / "slabs" / "cachedump" and "stats conns" (item_stats.cc).
void item_stats(Context& ctx);
void slab_stats(Context& ctx);
void cachedump(Context& ctx, const Tokens& t);
void conn_stats(Context& ctx);
void process_mg(Context& ctx, Tokens& t);
void process_ms(Context& ctx, Tokens& t);
void process_md(Context& ctx, Tokens& t);
void process_ma(Context& ctx, Tokens& t);
void process_me(Context& ctx, Tokens& t);

}  // namespace gravity::protocol
