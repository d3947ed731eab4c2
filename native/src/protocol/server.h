// Process-wide state shared by every connection of a leaf: the store and the counters that
// memcached's "stats" reports beside the store's own.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "store/store.h"

namespace gravity {

struct ServerOptions {
  StoreOptions store;
  std::string version = "0.0.0";  // reported by "version" and "stats"
  uint32_t threads = 1;           // reported by "stats"
  // SASL (memcached -S): connections speak binary only, and every binary command but version and
  // the SASL ones needs a successful SASL PLAIN authentication first.
  bool sasl = false;
  // user -> password, from memcached's SASL password file (parsed in TypeScript: sasl-plain.ts)
  std::unordered_map<std::string, std::string> sasl_passwords;
};

// What memcached's "stats conns" reports of a connection (conn_read, conn_nread...), as of the end
// of its latest feed().
enum class ConnectionState : uint8_t { kRead, kParseCmd, kNread, kSwallow, kMwrite };

// One open connection in the server's list ("stats conns"). The connection writes its fields, any
// thread reads them while holding Server::connections_mutex (the connection unlists itself under
// it before it goes).
struct ConnectionInfo {
  uint64_t id = 0;                           // 1, 2, ... in the order connections were opened
  std::string addr;                          // the peer, as memcached prints it ("tcp:1.2.3.4:5678"), or ""
  std::string listen_addr;                   // where it was accepted, likewise; both fixed before listing
  std::atomic<int64_t> last_cmd_at{0};       // store clock of its latest feed() with input
  std::atomic<ConnectionState> state{ConnectionState::kRead};
  ConnectionInfo* prev = nullptr;            // the list, guarded by Server::connections_mutex
  ConnectionInfo* next = nullptr;
};

class Server {
 public:
  explicit Server(const ServerOptions& options);

  Store& store() { return store_; }
  const ServerOptions& options() const { return options_; }

  int64_t started_at() const { return started_at_; }  // unix seconds (store clock)
  std::atomic<uint64_t> curr_connections{0};
  std::atomic<uint64_t> total_connections{0};
  std::atomic<int> verbosity{0};
  // memcached "stats" counters that are not per item (the store counts those).
  std::atomic<uint64_t> cmd_flush{0};
  std::atomic<uint64_t> cmd_meta{0};         // memcached 1.6 counts "me" here
  std::atomic<uint64_t> store_too_large{0};
  std::atomic<uint64_t> store_no_memory{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> auth_cmds{0};    // SASL authentications attempted
  std::atomic<uint64_t> auth_errors{0};  // ... and failed

  // The open connections, oldest first ("stats conns").
  void add_connection(ConnectionInfo* info);
  void remove_connection(ConnectionInfo* info);
  // Calls f(const ConnectionInfo&) for each open connection, oldest first, with the list locked.
  template <class F>
  void for_each_connection(F f) {
    std::lock_guard<std::mutex> lock(connections_mutex_);
    for (const ConnectionInfo* c = connections_head_; c != nullptr; c = c->next) f(*c);
  }

 private:
  ServerOptions options_;
  Store store_;
  int64_t started_at_;
  std::mutex connections_mutex_;
  ConnectionInfo* connections_head_ = nullptr;  // guarded by connections_mutex_
  ConnectionInfo* connections_tail_ = nullptr;
};

}  // namespace gravity
