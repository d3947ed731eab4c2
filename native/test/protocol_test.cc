// Protocol parser/executor tests: the transcript corpus (test/corpus/*.txt) fed whole, one byte
// at a time, split in two at every offset and through a tiny output buffer; then backpressure,
// bounded buffering, garbage and random input. Runs with the repository root as working
// directory (ctest sets it).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <dirent.h>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "corpus.h"
#include "protocol/connection.h"
#include "protocol/server.h"

using gravity::Connection;
using gravity::FeedResult;
using gravity::Server;
using gravity::ServerOptions;

namespace {

ServerOptions test_options() {
  ServerOptions options;
  options.store.memory_bytes = 64ull << 20;  // memcached's default -m, so no case evicts
  options.store.max_item_bytes = 1ull << 20;
  options.version = "1.6.18-gravity-test";
  return options;
}

// A connection driven like the TypeScript listener drives it: feed a read, then keep calling
// feed() with no input while replies are pending.
struct Client {
  explicit Client(Server& server, size_t out_capacity)
      : connection(server), out(out_capacity == 0 ? 1 : out_capacity), capacity(out_capacity) {}

  void send(const char* data, size_t size) {
    if (closed) return;
    collect(connection.feed(reinterpret_cast<const uint8_t*>(data), size, out.data(), capacity));
    while (!closed && connection.pending() > 0) collect(connection.feed(nullptr, 0, out.data(), capacity));
  }
  void send(const std::string& s) { send(s.data(), s.size()); }

  void collect(const FeedResult& r) {
    replies.append(reinterpret_cast<const char*>(out.data()), r.written);
    max_pending = std::max(max_pending, connection.pending());
    max_buffered = std::max(max_buffered, connection.buffered());
    if (r.close) closed = true;
  }

  Connection connection;
  std::vector<uint8_t> out;
  size_t capacity;
  std::string replies;
  bool closed = false;
  size_t max_pending = 0;
  size_t max_buffered = 0;
};

using Splitter = std::function<std::vector<std::string>(const std::string&)>;

struct Outcome {
  std::string replies;
  bool closed = false;
};

Outcome run_case(const corpus::Case& c, const Splitter& split, size_t out_capacity) {
  Server server(test_options());
  Client client(server, out_capacity);
  const std::vector<std::string> segments = c.segments();
  const std::vector<int64_t> advances = c.advances();
  for (size_t i = 0; i < segments.size() && !client.closed; ++i) {
    for (const std::string& chunk : split(segments[i])) client.send(chunk);
    if (i < advances.size()) server.store().advance_clock(advances[i]);
  }
  return {client.replies, client.closed};
}

std::vector<std::string> whole(const std::string& s) { return {s}; }

std::vector<std::string> bytes(const std::string& s) {
  std::vector<std::string> out;
  out.reserve(s.size());
  for (char c : s) out.emplace_back(1, c);
  return out;
}

std::vector<corpus::Case> load_corpus() {
  std::vector<std::string> files;
  if (DIR* dir = opendir("test/corpus")) {
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".txt") == 0) {
        files.push_back("test/corpus/" + name);
      }
    }
    closedir(dir);
  }
  std::sort(files.begin(), files.end());
  std::vector<corpus::Case> all;
  for (const std::string& file : files) {
    std::string error;
    std::vector<corpus::Case> cases = corpus::parse_file(file, error);
    if (!error.empty()) {
      gravity_test::fail(__FILE__, __LINE__, error);
      continue;
    }
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

const std::vector<corpus::Case>& cases() {
  static const std::vector<corpus::Case> all = load_corpus();
  return all;
}

bool check_outcome(const corpus::Case& c, const Outcome& o, const std::string& mode) {
  const std::string problem = corpus::match(c, o.replies, o.closed);
  if (problem.empty()) return true;
  gravity_test::fail(c.file.c_str(), c.line, "case '" + c.name + "' (" + mode + "): " + problem);
  return false;
}

constexpr size_t kSplitEveryOffsetMaxInput = 4096;

}  // namespace

TEST(corpus_is_present) {
  CHECK(cases().size() >= 100);
  std::vector<std::string> names;
  for (const corpus::Case& c : cases()) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());  // names are unique
}

TEST(corpus_whole_input) {
  for (const corpus::Case& c : cases()) check_outcome(c, run_case(c, whole, 1 << 20), "whole");
}

// [one-read] cases hold only for input that arrives whole (a line past 2048 bytes with its LF).
TEST(corpus_one_byte_at_a_time) {
  for (const corpus::Case& c : cases()) {
    if (!c.one_read) check_outcome(c, run_case(c, bytes, 64 * 1024), "bytes");
  }
}

TEST(corpus_split_at_every_offset) {
  for (const corpus::Case& c : cases()) {
    if (c.one_read || c.input_size() > kSplitEveryOffsetMaxInput) continue;
    for (size_t at = 1; at < c.input_size(); ++at) {
      // Each segment is split at `at` (clamped); segments are separated by clock advances.
      Splitter split = [at](const std::string& s) {
        const size_t k = std::min(at, s.size());
        return std::vector<std::string>{s.substr(0, k), s.substr(k)};
      };
      if (!check_outcome(c, run_case(c, split, 64 * 1024), "split at " + std::to_string(at))) break;
    }
  }
}

TEST(corpus_tiny_output_buffer) {
  // Replies back up after every few bytes: they must still come out whole and in order.
  for (size_t capacity : {1, 7, 64}) {
    for (const corpus::Case& c : cases()) {
      check_outcome(c, run_case(c, whole, capacity), "out capacity " + std::to_string(capacity));
    }
  }
}

// ---- backpressure ----

TEST(pending_replies_stop_execution) {
  Server server(test_options());
  Connection conn(server);
  std::string input;
  for (int i = 0; i < 50; ++i) input += "version\r\n";
  input += "set bp-key 0 0 5\r\nhello\r\n";
  uint8_t out[16];
  FeedResult r = conn.feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), out, sizeof(out));
  CHECK_EQ(r.written, sizeof(out));
  CHECK(conn.pending() > 0);
  CHECK(conn.buffered() > 0);  // the rest waits, unexecuted
  {
    // The set at the end has not run yet.
    Client other(server, 4096);
    other.send("get bp-key\r\n");
    CHECK_EQ(other.replies, std::string("END\r\n"));
  }
  std::string replies(reinterpret_cast<char*>(out), r.written);
  int calls = 0;
  while (conn.pending() > 0 || conn.buffered() > 0) {
    r = conn.feed(nullptr, 0, out, sizeof(out));
    replies.append(reinterpret_cast<char*>(out), r.written);
    CHECK(r.written > 0);
    if (++calls > 10000) break;
  }
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += "VERSION 1.6.18-gravity-test\r\n";
  expected += "STORED\r\n";
  CHECK_EQ(replies, expected);
  Client other(server, 4096);
  other.send("get bp-key\r\n");
  CHECK_EQ(other.replies, std::string("VALUE bp-key 0 5\r\nhello\r\nEND\r\n"));
}

// The TypeScript listener may pass an empty Uint8Array, whose data pointer can be null: feed()
// must not hand a null pointer to memcpy even for 0 bytes (UBSan's nonnull check, ASan build).
TEST(null_zero_capacity_out_keeps_replies_pending) {
  Server server(test_options());
  Connection conn(server);
  const std::string first =
      "set z-a 0 0 1 noreply\r\na\r\nversion\r\nset z-b 0 0 1 noreply\r\nb\r\nget z-a z-b\r\n";
  const auto* first_bytes = reinterpret_cast<const uint8_t*>(first.data());
  FeedResult r = conn.feed(first_bytes, first.size(), nullptr, 0);
  CHECK_EQ(r.written, size_t{0});
  CHECK(!r.close);
  CHECK(conn.pending() > 0);   // "VERSION ..." went to pending
  CHECK(conn.buffered() > 0);  // everything after "version" waits, unexecuted
  {
    // The noreply set before the first reply ran; the one after it has not.
    Client other(server, 4096);
    other.send("get z-a z-b\r\n");
    CHECK_EQ(other.replies, std::string("VALUE z-a 0 1\r\na\r\nEND\r\n"));
  }
  // More input while backed up is buffered, and a feed with no room drains nothing.
  const size_t pending_before = conn.pending();
  const std::string second = "mn\r\n";
  r = conn.feed(reinterpret_cast<const uint8_t*>(second.data()), second.size(), nullptr, 0);
  CHECK_EQ(r.written, size_t{0});
  r = conn.feed(nullptr, 0, nullptr, 0);
  CHECK_EQ(r.written, size_t{0});
  CHECK(!r.close);
  CHECK_EQ(conn.pending(), pending_before);
  CHECK_EQ(conn.buffered(), first.size() - first.find("set z-b") + second.size());
  // Drained through a real buffer, the replies come out whole and in command order.
  uint8_t out[8];
  std::string replies;
  for (int calls = 0; (conn.pending() > 0 || conn.buffered() > 0) && calls < 1000; ++calls) {
    r = conn.feed(nullptr, 0, out, sizeof(out));
    replies.append(reinterpret_cast<char*>(out), r.written);
  }
  CHECK_EQ(replies, std::string("VERSION 1.6.18-gravity-test\r\n"
                                "VALUE z-a 0 1\r\na\r\nVALUE z-b 0 1\r\nb\r\nEND\r\nMN\r\n"));
  CHECK_EQ(conn.pending(), size_t{0});
  CHECK_EQ(conn.buffered(), size_t{0});
}

TEST(multiget_pauses_between_keys) {
  Server server(test_options());
  Client writer(server, 4096);
  const std::string value(100 * 1024, 'v');
  std::string get = "get";
  std::string expected;
  for (int i = 0; i < 40; ++i) {
    const std::string key = "mg-pause-" + std::to_string(i);
    writer.send("set " + key + " 0 0 " + std::to_string(value.size()) + " noreply\r\n" + value + "\r\n");
    get += " " + key;
    expected += "VALUE " + key + " 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  }
  expected += "END\r\n";
  CHECK_EQ(writer.replies, std::string());
  Client reader(server, 4096);
  reader.send(get + "\r\nversion\r\n");
  CHECK_EQ(reader.replies, expected + "VERSION 1.6.18-gravity-test\r\n");
  // At most one value is held beyond the caller's buffer at a time.
  CHECK(reader.max_pending <= value.size() + 64);
}

TEST(quit_closes_after_pending_replies) {
  Server server(test_options());
  Connection conn(server);
  const std::string input = "version\r\nversion\r\nquit\r\nversion\r\n";
  uint8_t out[10];
  FeedResult r = conn.feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), out, sizeof(out));
  std::string replies(reinterpret_cast<char*>(out), r.written);
  CHECK(!r.close);
  while (!r.close) {
    r = conn.feed(nullptr, 0, out, sizeof(out));
    replies.append(reinterpret_cast<char*>(out), r.written);
  }
  CHECK_EQ(replies, std::string("VERSION 1.6.18-gravity-test\r\nVERSION 1.6.18-gravity-test\r\n"));
  CHECK_EQ(conn.pending(), size_t{0});
}

// ---- bounded buffering ----

TEST(partial_line_is_bounded) {
  Server server(test_options());
  {
    Client c(server, 4096);
    c.send(std::string(2048, 'x'));
    CHECK(!c.closed);
    c.send("x");
    CHECK(c.closed);  // memcached: no newline after 2048 bytes and not a multiget
  }
  {
    Client c(server, 4096);
    std::string get = "get";
    while (get.size() < 200 * 1024) get += " some-fairly-long-key-name";
    c.send(get);
    CHECK(!c.closed);  // a multiget may be long
    CHECK(c.connection.buffered() == get.size());
    c.send(std::string(1 << 20, 'k'));
    CHECK(c.closed);   // but not unbounded
    CHECK_EQ(c.connection.buffered(), size_t{0});
  }
}

TEST(data_block_wait_is_bounded) {
  Server server(test_options());
  Client c(server, 4096);
  const size_t size = 1000 * 1000;
  c.send("set big-wait 0 0 " + std::to_string(size) + "\r\n");
  CHECK_EQ(c.connection.buffered(), size_t{0});  // the line is parsed and kept as state
  const std::string chunk(64 * 1024, 'z');
  size_t sent = 0;
  while (sent + chunk.size() < size) {
    c.send(chunk);
    sent += chunk.size();
    CHECK_EQ(c.connection.buffered(), sent);
  }
  c.send(std::string(size - sent, 'z') + "\r\nget big-wait-missing\r\n");
  CHECK_EQ(c.replies, std::string("STORED\r\nEND\r\n"));
  CHECK_EQ(c.connection.buffered(), size_t{0});
  CHECK(c.max_buffered <= size + 2);
}

TEST(backlog_while_backed_up_is_bounded) {
  Server server(test_options());
  Connection conn(server);
  uint8_t out[1];
  const std::string versions(20000, 'v');  // not executed: the first reply already backs up
  std::string first = "version\r\n";
  FeedResult r = conn.feed(reinterpret_cast<const uint8_t*>(first.data()), first.size(), out, 1);
  CHECK(conn.pending() > 0);
  // A caller that ignores pending() and keeps feeding is cut off.
  const std::string chunk(256 * 1024, 'g');
  bool closed = false;
  for (int i = 0; i < 64 && !closed; ++i) {
    r = conn.feed(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size(), out, 1);
    CHECK(conn.buffered() <= (3u << 20));
    while (conn.pending() > 0 && !r.close) r = conn.feed(nullptr, 0, out, 1);
    closed = r.close;
  }
  CHECK(closed);
}

TEST(huge_garbage_closes_without_growth) {
  Server server(test_options());
  Client c(server, 4096);
  std::mt19937 rng(7);
  std::string chunk(64 * 1024, '\0');
  for (int i = 0; i < 160 && !c.closed; ++i) {
    for (char& ch : chunk) {
      ch = static_cast<char>(rng() % 255 + 1);
      if (ch == '\n') ch = 'n';
    }
    c.send(chunk);
  }
  CHECK(c.closed);
  CHECK(c.max_buffered <= 64 * 1024 + 2048);
}

// ---- random input ----

TEST(random_input_never_crashes) {
  static const char* const kFragments[] = {
      "get ", "gets ", "gat ", "set ", "add ", "cas ", "append ", "prepend ", "incr ", "decr ",
      "delete ", "touch ", "mg ", "ms ", "md ", "ma ", "mn", "me ", "stats", "flush_all",
      "version", "verbosity ", "noreply", " k", " key", " 0", " 1", " 5", " -1", " 99999999999",
      " 18446744073709551615", " v", " c", " f", " t", " T30", " N30", " q", " b", " O123",
      " MA", " ME", " MD", " I", " C1", " E5", " D3", " J7", " x", " s", " h", " l", " k",
      "\r\n", "\r\n", "\r\n", "\n", "\r", " ", "  ", "\0", "hello", "12345", "ZmFrZQ==",
      "HTTP/1.1", "quit"};
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    Server server(test_options());
    Client c(server, 1 + rng() % 300);
    std::string input;
    const int pieces = 20 + static_cast<int>(rng() % 200);
    for (int i = 0; i < pieces; ++i) {
      if (rng() % 8 == 0) {
        const size_t n = rng() % 40;
        for (size_t j = 0; j < n; ++j) input += static_cast<char>(rng() % 256);
      } else {
        const char* f = kFragments[rng() % (sizeof(kFragments) / sizeof(kFragments[0]))];
        input.append(f, f[0] == '\0' ? 1 : std::strlen(f));
      }
    }
    size_t pos = 0;
    while (pos < input.size() && !c.closed) {
      const size_t n = std::min<size_t>(input.size() - pos, 1 + rng() % 64);
      c.send(input.data() + pos, n);
      pos += n;
    }
    CHECK(c.max_buffered <= (2u << 20) + 64);
  }
}

TEST(random_bytes_never_crash) {
  std::mt19937 rng(99);
  for (int round = 0; round < 200; ++round) {
    Server server(test_options());
    Client c(server, 1 + rng() % 1000);
    const size_t size = rng() % 20000;
    std::string input(size, '\0');
    for (char& ch : input) ch = static_cast<char>(rng() % 256);
    size_t pos = 0;
    while (pos < input.size() && !c.closed) {
      const size_t n = std::min<size_t>(input.size() - pos, 1 + rng() % 3000);
      c.send(input.data() + pos, n);
      pos += n;
    }
  }
}

RUN_TESTS("protocol_test")
