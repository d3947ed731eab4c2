// Framing of one connection's byte stream: command lines, data blocks, swallowed blocks, and
// backpressure. Command semantics live in dispatch.cc and the text_* / meta_* files.
//
//   feed(input) ──> drain pending ──> [backed up? keep input, stop]
//                        │
//                        v
//        source = input empty ? caller's bytes : input + caller's bytes
//                        │
//        first byte of the connection 0x80? ──> run_binary() (binary.cc) instead of the loop below
//                        │
//   loop: swallow bytes │ parked store: wait for data_needed bytes, then complete_store()
//         │ line (up to '\n'): execute_line() ──> replies into out, overflow into pending
//         └── stop when pending is non-empty, a line or block is incomplete, or on close
//                        │
//                        v
//        keep only the unexecuted tail in input
//
// `input` and `pending` are the State fields of those names (below).
#include "protocol/connection.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

#include "protocol/binary.h"
#include "protocol/command.h"

namespace gravity {

namespace {

using protocol::Context;
using protocol::LineResult;
using protocol::ReplyWriter;
using protocol::Session;

// memcached try_read_command_ascii: a line without '\n' after this many bytes closes the
// connection unless it is a multiget ("get " / "gets " after at most 100 spaces).
constexpr size_t kMaxLineBytes = 2048;
constexpr size_t kMaxLeadingSpaces = 100;
// memcached lets a multiget line grow without bound; Gravity bounds it here.
constexpr size_t kMinGetLineBytes = 64 * 1024;
// Buffers larger than this are released once empty, so an idle connection that once carried a
// large value does not keep its memory.
constexpr size_t kKeepCapacityBytes = 256 * 1024;

size_t get_line_limit(const Store& store) {
  return std::max<size_t>(kMinGetLineBytes, static_cast<size_t>(store.max_item_bytes()));
}

// True when a partial line (no '\n' yet) must close the connection.
bool partial_line_too_long(const char* data, size_t size, size_t get_limit) {
  if (size <= kMaxLineBytes) return false;
  size_t spaces = 0;
  while (spaces < size && data[spaces] == ' ') ++spaces;
  if (spaces > kMaxLeadingSpaces) return true;
  const std::string_view rest(data + spaces, size - spaces);
  const bool multiget = rest.substr(0, 4) == "get " || rest.substr(0, 5) == "gets ";
  return !multiget || size > get_limit;
}

void release_if_large(std::string& s) {
  if (s.empty() && s.capacity() > kKeepCapacityBytes) std::string().swap(s);
}

}  // namespace

struct Connection::State {
  explicit State(Server& s) : server(s) {}

  Server& server;
  Session session;
  ConnectionInfo info;       // this connection in the server's list ("stats conns")
  std::string input;         // unexecuted input: a partial command, or a backlog while backed up
  std::string pending;       // reply bytes that did not fit in `out`; drained from pending_pos
  size_t pending_pos = 0;
  bool closing = false;      // "quit" or a fatal input error: no further command runs
  size_t scanned = 0;        // leading bytes of `input` known to hold no '\n' (partial line)

  // Parses and executes commands in data[0, size); returns the bytes consumed.
  size_t run(Context& ctx, const char* data, size_t size);
};

size_t Connection::State::run(Context& ctx, const char* data, size_t size) {
  Session& s = session;
  if (s.protocol == protocol::WireProtocol::kUndecided && size > 0) {
    // With SASL memcached speaks binary only: a text command is a frame with bad magic (close).
    s.protocol = static_cast<uint8_t>(data[0]) == protocol::kBinaryRequestMagic || server.options().sasl
                     ? protocol::WireProtocol::kBinary
                     : protocol::WireProtocol::kText;
  }
  if (s.protocol == protocol::WireProtocol::kBinary) {
    bool close = false;
    const size_t consumed = protocol::run_binary(ctx, data, size, &close);
    if (close) closing = true;
    return consumed;
  }
  size_t pos = 0;
  const size_t skip = scanned;  // a partial line is not searched again from its start
  scanned = 0;
  while (pos < size && !ctx.out.has_pending()) {
    if (s.swallow > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(s.swallow, size - pos));
      pos += n;
      s.swallow -= n;
      if (s.swallow == 0 && !s.swallow_reply.empty()) {
        ctx.out.write(s.swallow_reply);
        s.swallow_reply.clear();
      }
      continue;
    }
    if (s.data_needed > 0) {
      if (size - pos < s.data_needed) break;
      const size_t n = s.data_needed;
      s.data_needed = 0;
      protocol::complete_store(ctx, std::string_view(data + pos, n));
      pos += n;
      continue;
    }
    const size_t from = pos == 0 ? std::min(skip, size) : pos;
    const void* newline = std::memchr(data + from, '\n', size - from);
    if (newline == nullptr) {
      if (partial_line_too_long(data + pos, size - pos, get_line_limit(ctx.store))) {
        closing = true;
        pos = size;
      } else {
        scanned = size - pos;
      }
      break;
    }
    const size_t line_end = static_cast<size_t>(static_cast<const char*>(newline) - data);
    size_t length = line_end - pos;
    // memcached strips the '\r' of "\r\n" only when the line has more than one byte.
    if (length > 1 && data[line_end - 1] == '\r') --length;
    const LineResult result = protocol::execute_line(ctx, std::string_view(data + pos, length));
    if (result == LineResult::kSuspend) break;  // the line stays; it resumes on the next feed
    pos = line_end + 1;
    if (result == LineResult::kClose) {
      closing = true;
      break;
    }
  }
  return pos;
}

Connection::Connection(Server& server, std::string addr, std::string listen_addr) : state_(new State(server)) {
  server.curr_connections.fetch_add(1, std::memory_order_relaxed);
  state_->info.id = server.total_connections.fetch_add(1, std::memory_order_relaxed) + 1;
  state_->info.addr = std::move(addr);
  state_->info.listen_addr = std::move(listen_addr);
  state_->session.info = &state_->info;
  state_->info.last_cmd_at.store(server.store().now(), std::memory_order_relaxed);
  server.add_connection(&state_->info);
}

Connection::~Connection() {
  state_->server.remove_connection(&state_->info);
  state_->server.curr_connections.fetch_sub(1, std::memory_order_relaxed);
  delete state_;
}

size_t Connection::pending() const { return state_->pending.size() - state_->pending_pos; }

size_t Connection::buffered() const { return state_->input.size(); }

FeedResult Connection::feed(const uint8_t* input, size_t input_size, uint8_t* out,
                            size_t out_capacity) {
  State& s = *state_;
  Server& server = s.server;
  Store& store = server.store();
  FeedResult result;
  if (input_size > 0) server.bytes_read.fetch_add(input_size, std::memory_order_relaxed);
  const char* in = reinterpret_cast<const char*>(input);

  // 1. Replies held from earlier calls go first.
  size_t written = 0;
  if (s.pending_pos < s.pending.size()) {
    written = std::min(s.pending.size() - s.pending_pos, out_capacity);
    // memcpy's pointers must be valid even for 0 bytes, and `out` may be null at capacity 0.
    if (written > 0) std::memcpy(out, s.pending.data() + s.pending_pos, written);
    s.pending_pos += written;
    if (s.pending_pos == s.pending.size()) {
      s.pending.clear();
      s.pending_pos = 0;
      release_if_large(s.pending);
    }
  }

  if (s.closing) {
    s.input.clear();
  } else if (!s.pending.empty()) {
    // 2a. Still backed up: keep the input unexecuted. The caller stops reading while replies
    // are pending, so more than one read on top of a full buffer means it does not: close.
    const size_t limit = get_line_limit(store) + static_cast<size_t>(store.max_item_bytes()) + 2;
    if (s.input.size() > limit) {
      s.closing = true;
      s.input.clear();
    } else if (input_size > 0) {
      s.input.append(in, input_size);
    }
  } else {
    // 2b. Execute: straight from the caller's bytes when nothing is buffered.
    ReplyWriter writer(out + written, out_capacity - written, s.pending);
    Context ctx{server, store, store.now(), writer, s.session};
    if (input_size > 0) s.info.last_cmd_at.store(ctx.now, std::memory_order_relaxed);
    if (s.input.empty()) {
      const size_t consumed = input_size > 0 ? s.run(ctx, in, input_size) : 0;
      if (!s.closing && consumed < input_size) s.input.assign(in + consumed, input_size - consumed);
    } else {
      if (input_size > 0) s.input.append(in, input_size);
      const size_t consumed = s.run(ctx, s.input.data(), s.input.size());
      s.input.erase(0, consumed);
    }
    if (s.closing) s.input.clear();
    release_if_large(s.input);
    written += writer.written();
  }

  ConnectionState state = ConnectionState::kRead;
  if (!s.pending.empty()) {
    state = ConnectionState::kMwrite;
  } else if (s.session.data_needed > 0) {
    state = ConnectionState::kNread;
  } else if (s.session.swallow > 0) {
    state = ConnectionState::kSwallow;
  }
  s.info.state.store(state, std::memory_order_relaxed);
  server.bytes_written.fetch_add(written, std::memory_order_relaxed);
  result.written = written;
  result.close = s.closing && s.pending.empty();
  return result;
}

}  // namespace gravity
