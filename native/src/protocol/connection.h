// One client connection's protocol state: the memcached text and meta protocol parser and executor
// that is the leaf's hot path. The TypeScript listener owns the socket and calls feed() once per
// socket read:
//
//   socket read ──bytes──> feed() ──parse every complete command──> execute on Store
//                             │                                     │
//        partial command <────┘                         replies ──> out (caller's buffer)
//        (kept in State::input)                                     └─> State::pending (overflow)
//
// Backpressure: while replies are pending (State::pending, pending() > 0) no command is executed;
// input stays buffered in State::input and the caller stops reading the socket until pending()
// is 0. It calls feed() with no input after each flush, which first drains pending replies into
// `out` and, once none are left, resumes executing. A command runs only while nothing is
// pending, so with a zero-capacity `out` commands still run until the first reply byte goes to
// State::pending (a "noreply" command writes none, so several may run); the command that wrote
// it finishes its reply there, except that a multi-key get pauses before its next key. Replies
// always come out in command order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "protocol/server.h"

namespace gravity {

struct FeedResult {
  size_t written = 0;   // bytes written to out
  bool close = false;   // close the connection once `written` bytes are sent ("quit", fatal error)
};

class Connection {
 public:
  // Counts curr_connections / total_connections. `addr` and `listen_addr` are the peer's and the
  // listener's addresses as memcached's "stats conns" prints them ("tcp:127.0.0.1:5678"), or "".
  explicit Connection(Server& server, std::string addr = {}, std::string listen_addr = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Parses and executes every complete command in the buffered input plus `input` and writes
  // replies into out[0, out_capacity). Keeps partial commands for the next call. Never throws.
  // `input` may be null when input_size is 0, and `out` may be null when out_capacity is 0.
  FeedResult feed(const uint8_t* input, size_t input_size, uint8_t* out, size_t out_capacity);

  size_t pending() const;   // reply bytes held here because they did not fit in `out`
  size_t buffered() const;  // unexecuted input bytes held here

 private:
  // Implementation in connection.cc; see that file.
  struct State;
  State* state_;
};

}  // namespace gravity
