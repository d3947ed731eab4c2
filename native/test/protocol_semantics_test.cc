// Protocol behaviour a static transcript cannot pin down: CAS round trips with the unique the
// server handed out, exact stats counters, connection counts, no allocation per command in
// steady state; and unit tests of the tokenizer, number parsing and base64.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string>

#include "check.h"
#include "protocol/base64.h"
#include "protocol/connection.h"
#include "protocol/server.h"
#include "protocol/tokenize.h"

// Counts operator new calls, to check that commands allocate nothing once buffers are warm.
static std::atomic<uint64_t> g_allocations{0};

void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using gravity::Connection;
using gravity::FeedResult;
using gravity::Server;
using gravity::ServerOptions;

namespace {

ServerOptions options() {
  ServerOptions o;
  o.store.memory_bytes = 16ull << 20;
  o.store.max_item_bytes = 1ull << 20;
  o.version = "test";
  o.threads = 3;
  return o;
}

// Sends `input` and returns every reply byte (draining pending output).
std::string talk(Connection& conn, const std::string& input) {
  static uint8_t out[64 * 1024];
  std::string replies;
  FeedResult r = conn.feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), out, sizeof(out));
  replies.append(reinterpret_cast<char*>(out), r.written);
  while (conn.pending() > 0) {
    r = conn.feed(nullptr, 0, out, sizeof(out));
    replies.append(reinterpret_cast<char*>(out), r.written);
  }
  return replies;
}

// The CAS unique at the end of "VALUE <key> <flags> <bytes> <cas>\r\n".
std::string cas_of(const std::string& gets_reply) {
  const size_t eol = gets_reply.find("\r\n");
  const size_t space = gets_reply.rfind(' ', eol);
  return gets_reply.substr(space + 1, eol - space - 1);
}

// "STAT name value" lines of a "stats" reply.
std::map<std::string, std::string> stats_of(Connection& conn) {
  std::map<std::string, std::string> out;
  const std::string reply = talk(conn, "stats\r\n");
  size_t pos = 0;
  while (pos < reply.size()) {
    const size_t eol = reply.find("\r\n", pos);
    const std::string line = reply.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.compare(0, 5, "STAT ") != 0) continue;
    const size_t space = line.find(' ', 5);
    out[line.substr(5, space - 5)] = line.substr(space + 1);
  }
  return out;
}

}  // namespace

TEST(cas_round_trip_text) {
  Server server(options());
  Connection conn(server);
  CHECK_EQ(talk(conn, "set k 0 0 1\r\na\r\n"), std::string("STORED\r\n"));
  const std::string cas = cas_of(talk(conn, "gets k\r\n"));
  CHECK_EQ(talk(conn, "cas k 0 0 1 " + cas + "\r\nb\r\n"), std::string("STORED\r\n"));
  CHECK_EQ(talk(conn, "cas k 0 0 1 " + cas + "\r\nc\r\n"), std::string("EXISTS\r\n"));
  const std::string cas2 = cas_of(talk(conn, "gets k\r\n"));
  CHECK(cas2 != cas);
  CHECK_EQ(talk(conn, "get k\r\n"), std::string("VALUE k 0 1\r\nb\r\nEND\r\n"));
  // incr gives the item a new unique.
  CHECK_EQ(talk(conn, "set n 0 0 1\r\n5\r\n"), std::string("STORED\r\n"));
  const std::string before = cas_of(talk(conn, "gets n\r\n"));
  CHECK_EQ(talk(conn, "incr n 1\r\n"), std::string("6\r\n"));
  CHECK(cas_of(talk(conn, "gets n\r\n")) != before);
}

TEST(cas_round_trip_meta) {
  Server server(options());
  Connection conn(server);
  std::string reply = talk(conn, "ms m 2 c\r\nhi\r\n");
  CHECK_EQ(reply.compare(0, 4, "HD c"), 0);
  const std::string cas = reply.substr(4, reply.size() - 6);
  CHECK_EQ(talk(conn, "mg m c\r\n"), "HD c" + cas + "\r\n");
  CHECK_EQ(talk(conn, "ms m 2 C" + cas + " c\r\nho\r\n").compare(0, 4, "HD c"), 0);
  CHECK_EQ(talk(conn, "ms m 2 C" + cas + "\r\nhu\r\n"), std::string("EX\r\n"));
  // md with a matching CAS deletes; with a stale one it does not.
  reply = talk(conn, "mg m c\r\n");
  const std::string current = reply.substr(4, reply.size() - 6);
  CHECK_EQ(talk(conn, "md m C" + cas + "\r\n"), std::string("EX\r\n"));
  CHECK_EQ(talk(conn, "md m C" + current + "\r\n"), std::string("HD\r\n"));
  // ma with a matching CAS applies the delta.
  reply = talk(conn, "ms a 1 c\r\n7\r\n");
  const std::string acas = reply.substr(4, reply.size() - 6);
  CHECK_EQ(talk(conn, "ma a C" + acas + " v\r\n"), std::string("VA 1\r\n8\r\n"));
  CHECK_EQ(talk(conn, "ma a C" + acas + " v\r\n"), std::string("EX\r\n"));
}

TEST(stats_counters) {
  Server server(options());
  Connection conn(server);
  talk(conn, "set a 0 0 1\r\n1\r\nget a b a\r\ngat 10 a c\r\ntouch a 5\r\ntouch z 5\r\n");
  talk(conn, "incr a 1\r\nincr z 1\r\ndecr a 1\r\ndecr z 1\r\ndelete a\r\ndelete a\r\n");
  talk(conn, "cas q 0 0 1 5\r\nx\r\nset q 0 0 1\r\nx\r\ncas q 0 0 1 999999\r\ny\r\n");
  talk(conn, "mg q v\r\nmg nope v\r\nmg q T5\r\nflush_all\r\nme q\r\n");
  talk(conn, "set big 0 0 2000000\r\n" + std::string(2000000, 'b') + "\r\n");
  std::map<std::string, std::string> s = stats_of(conn);
  CHECK_EQ(s["cmd_get"], std::string("5"));      // 3 get keys + 2 mg without T
  CHECK_EQ(s["get_hits"], std::string("3"));
  CHECK_EQ(s["get_misses"], std::string("2"));
  CHECK_EQ(s["cmd_touch"], std::string("5"));    // 2 gat keys, 2 touch, 1 mg with T
  CHECK_EQ(s["touch_hits"], std::string("3"));
  CHECK_EQ(s["touch_misses"], std::string("2"));
  CHECK_EQ(s["cmd_set"], std::string("4"));      // set a, cas q, set q, cas q
  CHECK_EQ(s["incr_hits"], std::string("1"));
  CHECK_EQ(s["incr_misses"], std::string("1"));
  CHECK_EQ(s["decr_hits"], std::string("1"));
  CHECK_EQ(s["decr_misses"], std::string("1"));
  CHECK_EQ(s["delete_hits"], std::string("1"));
  CHECK_EQ(s["delete_misses"], std::string("1"));
  CHECK_EQ(s["cas_misses"], std::string("1"));
  CHECK_EQ(s["cas_badval"], std::string("1"));
  CHECK_EQ(s["cas_hits"], std::string("0"));
  CHECK_EQ(s["cmd_flush"], std::string("1"));
  CHECK_EQ(s["cmd_meta"], std::string("1"));
  CHECK_EQ(s["store_too_large"], std::string("1"));
  CHECK_EQ(s["curr_items"], std::string("0"));
  CHECK_EQ(s["threads"], std::string("3"));
  CHECK_EQ(s["version"], std::string("test"));
  CHECK_EQ(s["limit_maxbytes"], std::to_string(16u << 20));
  CHECK_EQ(s["pointer_size"], std::to_string(8 * sizeof(void*)));
  CHECK(std::stoull(s["bytes_read"]) > 2000000);
  CHECK(s.count("pid") == 1 && s.count("uptime") == 1 && s.count("time") == 1);
  CHECK_EQ(s.size(), size_t{92});  // every name memcached 1.6 prints
}

TEST(stats_expired_and_flushed) {
  Server server(options());
  Connection conn(server);
  talk(conn, "set e 0 10 1\r\n1\r\nset f 0 0 1\r\n1\r\nflush_all 5\r\n");
  server.store().advance_clock(11);
  talk(conn, "get e f\r\n");
  std::map<std::string, std::string> s = stats_of(conn);
  CHECK_EQ(s["get_expired"], std::string("1"));
  CHECK_EQ(s["get_flushed"], std::string("1"));
  CHECK_EQ(s["get_misses"], std::string("2"));
  CHECK_EQ(s["uptime"], std::string("11"));
}

TEST(connection_counters) {
  Server server(options());
  {
    Connection a(server);
    Connection b(server);
    std::map<std::string, std::string> s = stats_of(a);
    CHECK_EQ(s["curr_connections"], std::string("2"));
    CHECK_EQ(s["total_connections"], std::string("2"));
  }
  Connection c(server);
  std::map<std::string, std::string> s = stats_of(c);
  CHECK_EQ(s["curr_connections"], std::string("1"));
  CHECK_EQ(s["total_connections"], std::string("3"));
}

TEST(steady_state_commands_do_not_allocate) {
  Server server(options());
  Connection conn(server);
  const std::string round =
      "set alloc-a 0 0 5\r\nhello\r\nget alloc-a alloc-b\r\ngets alloc-a\r\nincr alloc-n 1\r\n"
      "set alloc-n 0 0 1\r\n1\r\nincr alloc-n 5\r\ndecr alloc-n 2\r\ntouch alloc-a 100\r\n"
      "append alloc-a 0 0 1\r\n!\r\ndelete alloc-a\r\nmg alloc-n v c t f k s O1\r\n"
      "ms alloc-m 3 T10 F5 c k O2\r\nabc\r\nmg alloc-m v q\r\nmg alloc-x v q k\r\n"
      "ma alloc-m2 N0 J5 v\r\nma alloc-m2 MD D2 v\r\nmd alloc-m2 q\r\nmd alloc-m I T5\r\n"
      "mg Zm9v b k v\r\nms Zm9v 1 b k\r\nz\r\nmn\r\nversion\r\nverbosity 1\r\n"
      "bogus command\r\nset x 0 0 -1\r\nms y 1 Q\r\nz\r\n";
  uint8_t out[4096];
  // Each pass feeds the round split at a different offset every time, so partial commands are
  // buffered and completed.
  auto pass = [&] {
    for (int i = 0; i < 50; ++i) {
      const size_t cut = 1 + static_cast<size_t>(i) * 7 % (round.size() - 1);
      conn.feed(reinterpret_cast<const uint8_t*>(round.data()), cut, out, sizeof(out));
      while (conn.pending() > 0) conn.feed(nullptr, 0, out, sizeof(out));
      conn.feed(reinterpret_cast<const uint8_t*>(round.data()) + cut, round.size() - cut, out,
                sizeof(out));
      while (conn.pending() > 0) conn.feed(nullptr, 0, out, sizeof(out));
    }
  };
  // Warm-up: besides the connection's buffers, the expiry wheel's bucket vectors reach their
  // working size (the clock stands still here, so TTL'd commands pile stale entries into one
  // bucket until the wheel compacts it, at about 1,000 entries; measured: the last growth is in
  // pass 11).
  for (int i = 0; i < 16; ++i) pass();
  // The store's clock is real seconds: a pass that crosses a second boundary may give the wheel a
  // new bucket. A command that allocated would allocate in every pass, so the least of a few
  // passes must be zero (under TSan on a loaded machine one pass can take most of a second).
  uint64_t least = UINT64_MAX;
  for (int i = 0; i < 5 && least > 0; ++i) {
    const uint64_t before = g_allocations.load();
    pass();
    const uint64_t allocated = g_allocations.load() - before;
    if (allocated < least) least = allocated;
  }
  CHECK_EQ(least, uint64_t{0});
}

// ---- tokenizer, numbers, base64 ----

TEST(tokenize_like_memcached) {
  using gravity::protocol::Tokens;
  using gravity::protocol::tokenize;
  Tokens t;
  tokenize("  get  a b ", t);
  CHECK_EQ(t.count, size_t{3});
  CHECK(t.token[0] == "get" && t.token[1] == "a" && t.token[2] == "b");
  CHECK(!t.has_rest);
  std::string line = "c";
  for (int i = 1; i < 30; ++i) line += " t" + std::to_string(i);
  tokenize(line, t);
  CHECK_EQ(t.count, size_t{23});
  CHECK(t.has_rest);
  CHECK(t.rest == "t23 t24 t25 t26 t27 t28 t29");
  tokenize("a\tb c", t);
  CHECK_EQ(t.count, size_t{2});
  CHECK(t.token[0] == "a\tb");
  CHECK(gravity::protocol::until_nul(std::string_view("get a\0b", 7)) == "get a");
}

TEST(numbers_like_memcached) {
  using namespace gravity::protocol;
  uint64_t u64 = 0;
  uint32_t u32 = 0;
  int32_t i32 = 0;
  CHECK(parse_u64("18446744073709551615", u64) && u64 == UINT64_MAX);
  CHECK(!parse_u64("18446744073709551616", u64));
  CHECK(!parse_u64("-1", u64));
  CHECK(parse_u64("-0", u64) && u64 == 0);
  CHECK(parse_u64("+7", u64) && u64 == 7);
  CHECK(parse_u64(" 7", u64) && u64 == 7);
  CHECK(parse_u64("7\r", u64) && u64 == 7);
  CHECK(!parse_u64("7x", u64));
  CHECK(!parse_u64("", u64));
  CHECK(!parse_u64("+", u64));
  CHECK(!parse_u64("0x10", u64));
  CHECK(parse_u32("4294967297", u32) && u32 == 1);
  CHECK(!parse_u32("-1", u32));
  CHECK(parse_i32("-1", i32) && i32 == -1);
  CHECK(parse_i32("4294967296", i32) && i32 == 0);
  CHECK(parse_i32("4000000000", i32) && i32 < 0);
  CHECK(!parse_i32("9223372036854775808", i32));
  CHECK(parse_i32("-9223372036854775808", i32) && i32 == 0);
}

TEST(base64_like_memcached) {
  using gravity::protocol::base64_decode;
  using gravity::protocol::base64_encode_append;
  std::string out;
  CHECK_EQ(base64_decode("Zm9vYmFy", out), size_t{6});
  CHECK_EQ(out, std::string("foobar"));
  CHECK_EQ(base64_decode("Zm9vYg==", out), size_t{4});
  CHECK_EQ(out, std::string("foob"));
  CHECK_EQ(base64_decode("Zm9", out), size_t{0});
  CHECK_EQ(base64_decode("Zm9vY===", out), size_t{0});
  CHECK_EQ(base64_decode("Zm#9vYg==", out), size_t{4});  // bytes outside the alphabet are skipped
  std::string enc;
  base64_encode_append(std::string("\x00\x01\x02\xff", 4), enc);
  CHECK_EQ(enc, std::string("AAEC/w=="));
  enc.clear();
  base64_encode_append("foob", enc);
  CHECK_EQ(enc, std::string("Zm9vYg=="));
}

RUN_TESTS("protocol_semantics_test")
