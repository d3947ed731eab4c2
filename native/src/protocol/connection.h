// One client connection's protocol state: the memcached text and meta protocol parser and executor
// that is the leaf's hot path. The TypeScript listener owns the socket and calls feed() once per
// socket read:
//
//   socket read ──bytes──> feed() ──parse every complete command──> execute on Store
//                             │                                          │
//        partial command <────┘ (kept in input_)        replies ──> out (caller's buffer)
//                                                                   └─> pending_ (did not fit)
//
// Backpressure: while pending_ is non-empty no further command is executed; unexecuted input
// stays buffered and the caller stops reading the socket until pending() is 0 (it calls feed()
// with no input after each flush, which first drains pending_ and then resumes executing).
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
  explicit Connection(Server& server);  // counts curr_connections / total_connections
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Parses and executes every complete command in the buffered input plus `input` and writes
  // replies into out[0, out_capacity). Keeps partial commands for the next call. Never throws.
  FeedResult feed(const uint8_t* input, size_t input_size, uint8_t* out, size_t out_capacity);

  size_t pending() const;   // reply bytes held here because they did not fit in `out`
  size_t buffered() const;  // unexecuted input bytes held here

 private:
  // Implementation in connection.cc; see that file.
  struct State;
  State* state_;
};

}  // namespace gravity
