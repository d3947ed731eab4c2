// Binary protocol tests (protocol/binary.h): detection by the first byte, every opcode memcached 1.6
// serves, quiet semantics, memcached's status codes for bad frames, CAS; and one transcript of
// frames fed whole, one byte at a time, split at every offset and through tiny output buffers.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "protocol/binary.h"
#include "protocol/connection.h"
#include "protocol/server.h"

using gravity::Connection;
using gravity::FeedResult;
using gravity::Server;
using gravity::ServerOptions;
namespace op = gravity::protocol::binary_op;

namespace {

ServerOptions test_options() {
  ServerOptions options;
  options.store.memory_bytes = 64ull << 20;
  options.store.max_item_bytes = 1ull << 20;
  options.version = "1.6.18-gravity-test";
  return options;
}

std::string be(uint64_t v, int bytes) {
  std::string s(static_cast<size_t>(bytes), '\0');
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) s[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return s;
}

uint64_t from_be(const std::string& s) {
  uint64_t v = 0;
  for (char c : s) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

struct Frame {
  uint8_t opcode = 0;
  std::string key;
  std::string extras;
  std::string value;
  uint32_t opaque = 0;
  uint64_t cas = 0;
};

std::string encode(const Frame& f) {
  std::string s;
  s.push_back(static_cast<char>(0x80));
  s.push_back(static_cast<char>(f.opcode));
  s += be(f.key.size(), 2);
  s.push_back(static_cast<char>(f.extras.size()));
  s.push_back('\0');
  s += be(0, 2);
  s += be(f.extras.size() + f.key.size() + f.value.size(), 4);
  s += be(f.opaque, 4);
  s += be(f.cas, 8);
  return s + f.extras + f.key + f.value;
}

std::string req(uint8_t opcode, const std::string& key = "", const std::string& extras = "",
                const std::string& value = "", uint64_t cas = 0, uint32_t opaque = 0) {
  Frame f;
  f.opcode = opcode;
  f.key = key;
  f.extras = extras;
  f.value = value;
  f.cas = cas;
  f.opaque = opaque;
  return encode(f);
}

std::string set_extras(uint32_t flags, uint32_t exptime) { return be(flags, 4) + be(exptime, 4); }
std::string delta_extras(uint64_t delta, uint64_t initial, uint32_t exptime) {
  return be(delta, 8) + be(initial, 8) + be(exptime, 4);
}

struct Reply {
  uint8_t magic = 0;
  uint8_t opcode = 0;
  uint16_t status = 0;
  uint32_t opaque = 0;
  uint64_t cas = 0;
  std::string extras;
  std::string key;
  std::string value;
};

// Splits reply bytes into frames; `ok` is false when the bytes do not end on a frame boundary.
std::vector<Reply> parse_replies(const std::string& bytes, bool* ok) {
  std::vector<Reply> out;
  size_t pos = 0;
  *ok = true;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 24) {
      *ok = false;
      break;
    }
    const std::string h = bytes.substr(pos, 24);
    Reply r;
    r.magic = static_cast<uint8_t>(h[0]);
    r.opcode = static_cast<uint8_t>(h[1]);
    const size_t keylen = from_be(h.substr(2, 2));
    const size_t extlen = static_cast<uint8_t>(h[4]);
    r.status = static_cast<uint16_t>(from_be(h.substr(6, 2)));
    const size_t bodylen = from_be(h.substr(8, 4));
    r.opaque = static_cast<uint32_t>(from_be(h.substr(12, 4)));
    r.cas = from_be(h.substr(16, 8));
    if (bytes.size() - pos - 24 < bodylen || keylen + extlen > bodylen) {
      *ok = false;
      break;
    }
    r.extras = bytes.substr(pos + 24, extlen);
    r.key = bytes.substr(pos + 24 + extlen, keylen);
    r.value = bytes.substr(pos + 24 + extlen + keylen, bodylen - extlen - keylen);
    out.push_back(r);
    pos += 24 + bodylen;
  }
  return out;
}

struct Client {
  Client(Server& server, size_t out_capacity) : connection(server), out(out_capacity), capacity(out_capacity) {}

  void send(const std::string& s) {
    if (closed) return;
    collect(connection.feed(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out.data(), capacity));
    while (!closed && connection.pending() > 0) collect(connection.feed(nullptr, 0, out.data(), capacity));
  }
  void collect(const FeedResult& r) {
    replies.append(reinterpret_cast<const char*>(out.data()), r.written);
    if (r.close) closed = true;
  }
  // Sends `s` and returns the reply frames it produced.
  std::vector<Reply> exchange(const std::string& s) {
    const size_t before = replies.size();
    send(s);
    bool ok = false;
    std::vector<Reply> frames = parse_replies(replies.substr(before), &ok);
    if (!ok) gravity_test::fail(__FILE__, __LINE__, "reply bytes do not end on a frame boundary");
    return frames;
  }
  Reply one(const std::string& s) {
    std::vector<Reply> frames = exchange(s);
    if (frames.size() != 1) {
      gravity_test::fail(__FILE__, __LINE__, "expected one reply, got " + std::to_string(frames.size()));
      return Reply{};
    }
    return frames[0];
  }

  Connection connection;
  std::vector<uint8_t> out;
  size_t capacity;
  std::string replies;
  bool closed = false;
};

constexpr uint16_t kOk = 0x00;
constexpr uint16_t kNotFound = 0x01;
constexpr uint16_t kExists = 0x02;
constexpr uint16_t kTooLarge = 0x03;
constexpr uint16_t kInvalid = 0x04;
constexpr uint16_t kNotStored = 0x05;
constexpr uint16_t kBadDelta = 0x06;
constexpr uint16_t kUnknown = 0x81;

}  // namespace

// ---- detection ----

TEST(first_byte_chooses_the_protocol) {
  Server server(test_options());
  Client text(server, 4096);
  text.send("set k 0 0 1\r\nx\r\nversion\r\n");
  CHECK_EQ(text.replies, std::string("STORED\r\nVERSION 1.6.18-gravity-test\r\n"));
  Client binary(server, 4096);
  const Reply r = binary.one(req(op::kVersion, "", "", "", 0, 0xdeadbeef));
  CHECK_EQ(r.magic, 0x81);
  CHECK_EQ(r.opcode, op::kVersion);
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.opaque, 0xdeadbeefu);
  CHECK_EQ(r.value, std::string("1.6.18-gravity-test"));
  // Both protocols see one store.
  const Reply got = binary.one(req(op::kGet, "k"));
  CHECK_EQ(got.status, kOk);
  CHECK_EQ(got.value, std::string("x"));
  // A text connection that later sends 0x80 is still text.
  text.replies.clear();
  text.send(std::string("\x80", 1) + "\r\n");
  CHECK_EQ(text.replies, std::string("ERROR\r\n"));
}

TEST(a_frame_after_the_first_without_magic_closes_silently) {
  Server server(test_options());
  Client c(server, 4096);
  c.send(req(op::kNoop) + std::string(24, 'x'));
  CHECK(c.closed);
  bool ok = false;
  CHECK_EQ(parse_replies(c.replies, &ok).size(), 1u);  // only the noop's reply
}

// ---- every opcode ----

TEST(get_family) {
  Server server(test_options());
  Client c(server, 4096);
  CHECK_EQ(c.one(req(op::kSet, "key", set_extras(0xcafe, 0), "value")).status, kOk);
  Reply r = c.one(req(op::kGet, "key", "", "", 0, 7));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.extras, be(0xcafe, 4));
  CHECK_EQ(r.key, std::string());
  CHECK_EQ(r.value, std::string("value"));
  CHECK_EQ(r.opaque, 7u);
  CHECK(r.cas != 0);
  r = c.one(req(op::kGetK, "key"));
  CHECK_EQ(r.key, std::string("key"));
  CHECK_EQ(r.value, std::string("value"));
  r = c.one(req(op::kGetQ, "key"));
  CHECK_EQ(r.opcode, op::kGetQ);
  CHECK_EQ(r.value, std::string("value"));
  r = c.one(req(op::kGetKQ, "key"));
  CHECK_EQ(r.key, std::string("key"));
  // Misses: "Not found" for get, the key and no text for getk.
  r = c.one(req(op::kGet, "nope"));
  CHECK_EQ(r.status, kNotFound);
  CHECK_EQ(r.value, std::string("Not found"));
  CHECK_EQ(r.cas, 0u);
  r = c.one(req(op::kGetK, "nope"));
  CHECK_EQ(r.status, kNotFound);
  CHECK_EQ(r.key, std::string("nope"));
  CHECK_EQ(r.value, std::string());
}

TEST(quiet_gets_send_nothing_on_a_miss_and_noop_flushes) {
  Server server(test_options());
  Client c(server, 4096);
  c.send(req(op::kSetQ, "b", set_extras(0, 0), "B"));
  CHECK_EQ(c.replies, std::string());  // a quiet success sends nothing
  const std::vector<Reply> frames =
      c.exchange(req(op::kGetQ, "a", "", "", 0, 1) + req(op::kGetKQ, "b", "", "", 0, 2) +
                 req(op::kGetQ, "c", "", "", 0, 3) + req(op::kGatQ, "d", be(0, 4), "", 0, 4) +
                 req(op::kNoop, "", "", "", 0, 5));
  CHECK_EQ(frames.size(), 2u);
  if (frames.size() == 2) {
    CHECK_EQ(frames[0].opaque, 2u);
    CHECK_EQ(frames[0].key, std::string("b"));
    CHECK_EQ(frames[0].value, std::string("B"));
    CHECK_EQ(frames[1].opcode, op::kNoop);
    CHECK_EQ(frames[1].opaque, 5u);
  }
}

TEST(store_family_and_quiet_forms) {
  Server server(test_options());
  Client c(server, 4096);
  CHECK_EQ(c.one(req(op::kAdd, "k", set_extras(1, 0), "a")).status, kOk);
  Reply r = c.one(req(op::kAdd, "k", set_extras(1, 0), "b"));
  CHECK_EQ(r.status, kExists);
  CHECK_EQ(r.value, std::string("Data exists for key."));
  r = c.one(req(op::kReplace, "missing", set_extras(0, 0), "x"));
  CHECK_EQ(r.status, kNotFound);
  CHECK_EQ(c.one(req(op::kReplace, "k", set_extras(2, 0), "c")).status, kOk);
  CHECK_EQ(c.one(req(op::kAppend, "k", "", "d")).status, kOk);
  CHECK_EQ(c.one(req(op::kPrepend, "k", "", "b")).status, kOk);
  r = c.one(req(op::kGet, "k"));
  CHECK_EQ(r.value, std::string("bcd"));
  CHECK_EQ(r.extras, be(2, 4));  // append/prepend keep the flags
  r = c.one(req(op::kAppend, "missing", "", "x"));
  CHECK_EQ(r.status, kNotStored);
  CHECK_EQ(r.value, std::string("Not stored."));
  // Quiet forms: silent on success, errors still sent.
  c.replies.clear();
  c.send(req(op::kSetQ, "q", set_extras(0, 0), "1") + req(op::kAddQ, "q2", set_extras(0, 0), "1") +
         req(op::kReplaceQ, "q", set_extras(0, 0), "2") + req(op::kAppendQ, "q", "", "3") +
         req(op::kPrependQ, "q", "", "0"));
  CHECK_EQ(c.replies, std::string());
  r = c.one(req(op::kAddQ, "q", set_extras(0, 0), "x", 0, 9));
  CHECK_EQ(r.status, kExists);
  CHECK_EQ(r.opcode, op::kAddQ);
  CHECK_EQ(r.opaque, 9u);
  CHECK_EQ(c.one(req(op::kGet, "q")).value, std::string("023"));
  // An empty value is a value.
  CHECK_EQ(c.one(req(op::kSet, "empty", set_extras(0, 0), "")).status, kOk);
  r = c.one(req(op::kGet, "empty"));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.value, std::string());
}

TEST(delete_and_deleteq) {
  Server server(test_options());
  Client c(server, 4096);
  c.one(req(op::kSet, "k", set_extras(0, 0), "v"));
  CHECK_EQ(c.one(req(op::kDelete, "k")).status, kOk);
  CHECK_EQ(c.one(req(op::kDelete, "k")).status, kNotFound);
  c.one(req(op::kSet, "k", set_extras(0, 0), "v"));
  c.replies.clear();
  c.send(req(op::kDeleteQ, "k"));
  CHECK_EQ(c.replies, std::string());
  CHECK_EQ(c.one(req(op::kDeleteQ, "k")).status, kNotFound);
}

TEST(incr_decr_with_initial_value_and_expiration) {
  Server server(test_options());
  Client c(server, 4096);
  // A miss creates the item with the initial value.
  Reply r = c.one(req(op::kIncrement, "n", delta_extras(5, 10, 0)));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(from_be(r.value), 10u);
  CHECK(r.cas != 0);
  r = c.one(req(op::kIncrement, "n", delta_extras(5, 10, 0)));
  CHECK_EQ(from_be(r.value), 15u);
  r = c.one(req(op::kDecrement, "n", delta_extras(20, 0, 0)));
  CHECK_EQ(from_be(r.value), 0u);  // decr stops at 0
  // Wraps at 2^64.
  c.one(req(op::kSet, "w", set_extras(0, 0), "18446744073709551615"));
  CHECK_EQ(from_be(c.one(req(op::kIncrement, "w", delta_extras(2, 0, 0))).value), 1u);
  // Expiration all ones: no auto-create.
  r = c.one(req(op::kDecrement, "absent", delta_extras(1, 0, 0xffffffff)));
  CHECK_EQ(r.status, kNotFound);
  // A created item gets the expiration.
  c.one(req(op::kIncrement, "ttl", delta_extras(1, 3, 10)));
  server.store().advance_clock(11);
  CHECK_EQ(c.one(req(op::kGet, "ttl")).status, kNotFound);
  // Non-numeric values.
  c.one(req(op::kSet, "s", set_extras(0, 0), "abc"));
  r = c.one(req(op::kIncrement, "s", delta_extras(1, 0, 0)));
  CHECK_EQ(r.status, kBadDelta);
  CHECK_EQ(r.value, std::string("Non-numeric server-side value for incr or decr"));
  // Quiet forms.
  c.replies.clear();
  c.send(req(op::kIncrementQ, "n", delta_extras(1, 0, 0)) + req(op::kDecrementQ, "n", delta_extras(1, 0, 0)));
  CHECK_EQ(c.replies, std::string());
  CHECK_EQ(c.one(req(op::kIncrementQ, "s", delta_extras(1, 0, 0))).status, kBadDelta);
  // The text protocol reads the number back, padded in place as memcached pads it.
  Client text(server, 4096);
  text.send("get n\r\n");
  CHECK_EQ(text.replies, std::string("VALUE n 0 2\r\n0 \r\nEND\r\n"));
}

TEST(touch_and_gat) {
  Server server(test_options());
  Client c(server, 4096);
  c.one(req(op::kSet, "k", set_extras(3, 0), "v"));
  Reply r = c.one(req(op::kTouch, "k", be(10, 4)));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.extras, be(3, 4));
  CHECK_EQ(r.value, std::string());
  r = c.one(req(op::kGat, "k", be(10, 4)));
  CHECK_EQ(r.value, std::string("v"));
  r = c.one(req(op::kGatK, "k", be(10, 4)));
  CHECK_EQ(r.key, std::string("k"));
  CHECK_EQ(r.value, std::string("v"));
  CHECK_EQ(c.one(req(op::kGatKQ, "k", be(10, 4))).key, std::string("k"));
  CHECK_EQ(c.one(req(op::kTouch, "missing", be(10, 4))).status, kNotFound);
  CHECK_EQ(c.one(req(op::kGatK, "missing", be(10, 4))).key, std::string("missing"));
  server.store().advance_clock(11);
  CHECK_EQ(c.one(req(op::kGet, "k")).status, kNotFound);
}

TEST(flush_and_flushq) {
  Server server(test_options());
  Client c(server, 4096);
  c.one(req(op::kSet, "k", set_extras(0, 0), "v"));
  CHECK_EQ(c.one(req(op::kFlush)).status, kOk);
  CHECK_EQ(c.one(req(op::kGet, "k")).status, kNotFound);
  c.one(req(op::kSet, "k", set_extras(0, 0), "v"));
  c.replies.clear();
  c.send(req(op::kFlushQ));
  CHECK_EQ(c.replies, std::string());
  CHECK_EQ(c.one(req(op::kGet, "k")).status, kNotFound);
  // With a delay.
  c.one(req(op::kSet, "k", set_extras(0, 0), "v"));
  CHECK_EQ(c.one(req(op::kFlush, "", be(5, 4))).status, kOk);
  CHECK_EQ(c.one(req(op::kGet, "k")).status, kOk);
  server.store().advance_clock(6);
  CHECK_EQ(c.one(req(op::kGet, "k")).status, kNotFound);
}

TEST(noop_version_stat) {
  Server server(test_options());
  Client c(server, 4096);
  Reply r = c.one(req(op::kNoop));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.value, std::string());
  std::vector<Reply> stats = c.exchange(req(op::kStat, "", "", "", 0, 3));
  CHECK(stats.size() > 40);
  bool has_pid = false;
  bool has_version = false;
  for (const Reply& s : stats) {
    CHECK_EQ(s.opcode, op::kStat);
    CHECK_EQ(s.opaque, 3u);
    if (s.key == "pid") has_pid = true;
    if (s.key == "version") has_version = s.value == "1.6.18-gravity-test";
  }
  CHECK(has_pid);
  CHECK(has_version);
  if (!stats.empty()) {
    CHECK_EQ(stats.back().key, std::string());  // the terminator
    CHECK_EQ(stats.back().value, std::string());
  }
  stats = c.exchange(req(op::kStat, "settings"));
  CHECK(stats.size() > 2);
  stats = c.exchange(req(op::kStat, "items"));
  CHECK_EQ(stats.size(), 1u);
  stats = c.exchange(req(op::kStat, "reset"));
  CHECK_EQ(stats.size(), 1u);
  r = c.one(req(op::kStat, "bogus"));
  CHECK_EQ(r.status, kNotFound);
  CHECK_EQ(r.value, std::string("Not found"));
}

TEST(quit_and_quitq) {
  Server server(test_options());
  Client loud(server, 4096);
  loud.send(req(op::kQuit) + req(op::kNoop));
  CHECK(loud.closed);
  bool ok = false;
  std::vector<Reply> frames = parse_replies(loud.replies, &ok);
  CHECK_EQ(frames.size(), 1u);
  if (!frames.empty()) CHECK_EQ(frames[0].opcode, op::kQuit);
  Client quiet(server, 4096);
  quiet.send(req(op::kQuitQ) + req(op::kNoop));
  CHECK(quiet.closed);
  CHECK_EQ(quiet.replies, std::string());
}

TEST(unknown_opcodes_verbosity_and_sasl_without_sasl) {
  Server server(test_options());
  Client c(server, 4096);
  // memcached 1.6 does not serve verbosity over binary: "Unknown command", body discarded.
  for (uint8_t opcode : {op::kVerbosity, static_cast<uint8_t>(0x30), static_cast<uint8_t>(0xff)}) {
    std::vector<Reply> frames = c.exchange(req(opcode, "", be(1, 4)) + req(op::kNoop));
    CHECK_EQ(frames.size(), 2u);
    if (frames.size() == 2) {
      CHECK_EQ(frames[0].status, kUnknown);
      CHECK_EQ(frames[0].value, std::string("Unknown command"));
      CHECK_EQ(frames[1].opcode, op::kNoop);
    }
  }
  std::vector<Reply> frames = c.exchange(req(op::kSaslAuth, "PLAIN", "", std::string("\0u\0p", 4)) +
                                         req(op::kSaslListMechs) + req(op::kNoop));
  CHECK_EQ(frames.size(), 3u);
  if (frames.size() == 3) {
    CHECK_EQ(frames[0].status, kUnknown);
    CHECK_EQ(frames[1].status, kUnknown);
    CHECK_EQ(frames[2].status, kOk);
  }
  CHECK(!c.closed);
}

// ---- errors ----

TEST(bad_lengths_get_memcacheds_reply_and_close) {
  Server server(test_options());
  struct Bad {
    std::string frame;
    uint16_t status;
  };
  std::string key_past_body = req(op::kGet, "abc");
  key_past_body[11] = 1;  // bodylen 1 < keylen 3
  std::vector<Bad> bad = {
      {key_past_body, kUnknown},
      {req(op::kGet, std::string(251, 'k')), kInvalid},
      {req(op::kGet, "k", "xxxx"), kInvalid},   // get with extras
      {req(op::kGet, ""), kInvalid},            // get without a key
      {req(op::kSet, "k", "", "v"), kInvalid},  // set without extras
      {req(op::kSet, "", set_extras(0, 0), "v"), kInvalid},
      {req(op::kAppend, "k", be(0, 4), "v"), kInvalid},
      {req(op::kDelete, "k", "", "v"), kInvalid},
      {req(op::kIncrement, "k", be(1, 8)), kInvalid},
      {req(op::kTouch, "k"), kInvalid},
      {req(op::kNoop, "k"), kInvalid},
      {req(op::kVersion, "", "", "x"), kInvalid},
      {req(op::kQuit, "", "", "x"), kInvalid},
      {req(op::kFlush, "", be(0, 2)), kInvalid},
      {req(op::kStat, "", "x"), kInvalid},
  };
  for (const Bad& b : bad) {
    Client c(server, 4096);
    c.send(b.frame + req(op::kNoop));
    CHECK(c.closed);
    bool ok = false;
    std::vector<Reply> frames = parse_replies(c.replies, &ok);
    CHECK_EQ(frames.size(), 1u);
    if (frames.size() == 1) CHECK_EQ(frames[0].status, b.status);
  }
}

TEST(too_large_value_is_refused_and_swallowed) {
  Server server(test_options());
  Client c(server, 64 * 1024);
  c.one(req(op::kSet, "big", set_extras(0, 0), "old"));
  const std::string value(2u << 20, 'v');
  // Sent in pieces: the refusal comes from the header; the value is discarded as it arrives.
  const std::string frame = req(op::kSet, "big", set_extras(0, 0), value) + req(op::kNoop);
  const size_t before = c.replies.size();
  for (size_t at = 0; at < frame.size(); at += 100000) c.send(frame.substr(at, 100000));
  bool ok = false;
  std::vector<Reply> frames = parse_replies(c.replies.substr(before), &ok);
  CHECK_EQ(frames.size(), 2u);
  if (frames.size() == 2) {
    CHECK_EQ(frames[0].status, kTooLarge);
    CHECK_EQ(frames[0].value, std::string("Too large."));
    CHECK_EQ(frames[1].opcode, op::kNoop);
  }
  CHECK(c.connection.buffered() < 1024);
  // A refused set drops the old value, as memcached does.
  CHECK_EQ(c.one(req(op::kGet, "big")).status, kNotFound);
  // Quiet stores still report it.
  CHECK_EQ(c.one(req(op::kSetQ, "big", set_extras(0, 0), value)).status, kTooLarge);
}

// ---- CAS ----

TEST(cas_semantics) {
  Server server(test_options());
  Client c(server, 4096);
  const uint64_t cas1 = c.one(req(op::kSet, "k", set_extras(0, 0), "1")).cas;
  CHECK(cas1 != 0);
  CHECK_EQ(c.one(req(op::kGet, "k")).cas, cas1);
  Reply r = c.one(req(op::kSet, "k", set_extras(0, 0), "2", cas1 + 100));
  CHECK_EQ(r.status, kExists);
  r = c.one(req(op::kSet, "k", set_extras(0, 0), "2", cas1));
  CHECK_EQ(r.status, kOk);
  const uint64_t cas2 = r.cas;
  CHECK(cas2 != cas1);
  CHECK_EQ(c.one(req(op::kSet, "missing", set_extras(0, 0), "x", 5)).status, kNotFound);
  CHECK_EQ(c.one(req(op::kAdd, "missing", set_extras(0, 0), "x", 5)).status, kNotFound);
  CHECK_EQ(c.one(req(op::kReplace, "k", set_extras(0, 0), "3", cas1)).status, kExists);
  CHECK_EQ(c.one(req(op::kAppend, "k", "", "x", cas1)).status, kExists);
  r = c.one(req(op::kAppend, "k", "", "x", cas2));
  CHECK_EQ(r.status, kOk);
  const uint64_t cas3 = r.cas;
  CHECK_EQ(c.one(req(op::kDelete, "k", "", "", cas2)).status, kExists);
  CHECK_EQ(c.one(req(op::kIncrement, "k", delta_extras(1, 0, 0), "", cas2)).status, kExists);
  CHECK_EQ(c.one(req(op::kDelete, "k", "", "", cas3)).status, kOk);
  // incr with the right CAS.
  const uint64_t cas4 = c.one(req(op::kSet, "n", set_extras(0, 0), "1")).cas;
  r = c.one(req(op::kIncrement, "n", delta_extras(1, 0, 0), "", cas4));
  CHECK_EQ(r.status, kOk);
  CHECK(r.cas != cas4);
  CHECK_EQ(c.one(req(op::kGet, "n")).cas, r.cas);
  // Text gets see the same CAS.
  Client text(server, 4096);
  text.send("gets n\r\n");
  CHECK_EQ(text.replies, "VALUE n 0 1 " + std::to_string(r.cas) + "\r\n2\r\nEND\r\n");
}

// ---- SASL ----

namespace {

ServerOptions sasl_options() {
  ServerOptions options = test_options();
  options.sasl = true;
  options.sasl_passwords = {{"alice", "secret"}, {"bob", "hunter2"}};
  return options;
}

std::string plain(const std::string& user, const std::string& password) {
  return std::string("\0", 1) + user + std::string("\0", 1) + password;
}

}  // namespace

TEST(sasl_unauthenticated_requests_get_auth_error_and_close) {
  Server server(sasl_options());
  Client c(server, 4096);
  CHECK_EQ(c.one(req(op::kVersion)).status, kOk);  // allowed before authentication
  c.send(req(op::kGet, "k", "", "", 0, 4) + req(op::kNoop));
  CHECK(c.closed);
  bool ok = false;
  std::vector<Reply> frames = parse_replies(c.replies, &ok);
  CHECK_EQ(frames.size(), 2u);
  if (frames.size() == 2) {
    CHECK_EQ(frames[1].status, 0x20);
    CHECK_EQ(frames[1].value, std::string("Auth failure."));
    CHECK_EQ(frames[1].opaque, 4u);
  }
  // The text protocol is refused: memcached speaks binary only with SASL.
  Client text(server, 4096);
  text.send("get a-key-for-a-full-header\r\n");  // 24 bytes or more: a whole "header"
  CHECK(text.closed);
  CHECK_EQ(text.replies, std::string());
}

TEST(sasl_plain_authentication) {
  Server server(sasl_options());
  Client c(server, 4096);
  Reply r = c.one(req(op::kSaslListMechs));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.value, std::string("PLAIN"));
  r = c.one(req(op::kSaslAuth, "PLAIN", "", plain("alice", "wrong")));
  CHECK_EQ(r.status, 0x20);
  CHECK(!c.closed);
  r = c.one(req(op::kSaslAuth, "CRAM-MD5", "", plain("alice", "secret")));
  CHECK_EQ(r.status, 0x20);
  r = c.one(req(op::kSaslAuth, "PLAIN", "", plain("alice", "secret")));
  CHECK_EQ(r.status, kOk);
  CHECK_EQ(r.value, std::string("Authenticated"));
  CHECK_EQ(c.one(req(op::kSet, "k", set_extras(0, 0), "v")).status, kOk);
  CHECK_EQ(c.one(req(op::kGet, "k")).value, std::string("v"));
  // A later failed attempt leaves the connection unauthenticated.
  CHECK_EQ(c.one(req(op::kSaslStep, "PLAIN", "", plain("alice", "secret"))).status, 0x20);
  c.send(req(op::kGet, "k"));
  CHECK(c.closed);
  // A password ends at ':' or CR; an authzid must be the user.
  Client bob(server, 4096);
  CHECK_EQ(bob.one(req(op::kSaslAuth, "PLAIN", "", plain("bob", "hunter2"))).status, kOk);
  Client carol(server, 4096);
  CHECK_EQ(carol.one(req(op::kSaslAuth, "PLAIN", "", "bob" + plain("alice", "secret"))).status, 0x20);
  CHECK_EQ(carol.one(req(op::kSaslAuth, "PLAIN", "", plain("nobody", ""))).status, 0x20);
  CHECK_EQ(server.auth_cmds.load(), 7u);
  CHECK_EQ(server.auth_errors.load(), 5u);
  // A mechanism name longer than 32 bytes: "Invalid arguments", the data discarded.
  std::vector<Reply> frames =
      carol.exchange(req(op::kSaslAuth, std::string(33, 'M'), "", "data") + req(op::kSaslListMechs));
  CHECK_EQ(frames.size(), 2u);
  if (frames.size() == 2) {
    CHECK_EQ(frames[0].status, kInvalid);
    CHECK_EQ(frames[1].value, std::string("PLAIN"));
  }
}

// ---- framing ----

namespace {

// Every opcode's frames in one stream (no stats: their values vary between runs).
std::string transcript() {
  std::string s;
  s += req(op::kSet, "a", set_extras(1, 0), "alpha", 0, 1);
  s += req(op::kSetQ, "b", set_extras(2, 0), "beta", 0, 2);
  s += req(op::kGet, "a", "", "", 0, 3);
  s += req(op::kGetQ, "missing", "", "", 0, 4);
  s += req(op::kGetK, "b", "", "", 0, 5);
  s += req(op::kGetKQ, "b", "", "", 0, 6);
  s += req(op::kAdd, "a", set_extras(0, 0), "x", 0, 7);
  s += req(op::kReplace, "a", set_extras(0, 0), "gamma", 0, 8);
  s += req(op::kAppend, "a", "", "!", 0, 9);
  s += req(op::kPrependQ, "a", "", "<", 0, 10);
  s += req(op::kIncrement, "n", delta_extras(1, 41, 0), "", 0, 11);
  s += req(op::kIncrement, "n", delta_extras(1, 41, 0), "", 0, 12);
  s += req(op::kDecrementQ, "n", delta_extras(2, 0, 0), "", 0, 13);
  s += req(op::kTouch, "a", be(100, 4), "", 0, 14);
  s += req(op::kGat, "a", be(100, 4), "", 0, 15);
  s += req(op::kGatKQ, "zz", be(100, 4), "", 0, 16);
  s += req(op::kDelete, "b", "", "", 0, 17);
  s += req(op::kDeleteQ, "b", "", "", 0, 18);
  s += req(op::kVerbosity, "", be(1, 4), "", 0, 19);
  s += req(op::kNoop, "", "", "", 0, 20);
  s += req(op::kVersion, "", "", "", 0, 21);
  s += req(op::kSet, "big", set_extras(0, 0), std::string(3000, 'v'), 0, 22);
  s += req(op::kGet, "big", "", "", 0, 23);
  s += req(op::kFlushQ, "", "", "", 0, 24);
  s += req(op::kGet, "a", "", "", 0, 25);
  s += req(op::kQuit, "", "", "", 0, 26);
  s += req(op::kNoop, "", "", "", 0, 27);  // after quit: never answered
  return s;
}

struct Run {
  std::string replies;
  bool closed = false;
};

Run run(const std::vector<std::string>& chunks, size_t out_capacity) {
  Server server(test_options());
  Client c(server, out_capacity);
  for (const std::string& chunk : chunks) c.send(chunk);
  return {c.replies, c.closed};
}

}  // namespace

TEST(transcript_whole_bytes_split_and_tiny_buffers) {
  const std::string input = transcript();
  const Run expected = run({input}, 1 << 20);
  CHECK(expected.closed);
  bool ok = false;
  const std::vector<Reply> frames = parse_replies(expected.replies, &ok);
  CHECK(ok);
  // Replies to opaques 1,3,5,6,7,8,9,11,12,14,15,17,18,19,20,21,22,23,25,26.
  std::vector<uint32_t> opaques;
  for (const Reply& r : frames) opaques.push_back(r.opaque);
  const std::vector<uint32_t> want = {1, 3, 5, 6, 7, 8, 9, 11, 12, 14, 15, 17, 18, 19, 20, 21, 22, 23, 25, 26};
  CHECK(opaques == want);

  std::vector<std::string> bytes;
  for (char ch : input) bytes.emplace_back(1, ch);
  const Run by_byte = run(bytes, 1 << 20);
  CHECK(by_byte.replies == expected.replies);
  CHECK(by_byte.closed);

  size_t mismatches = 0;
  for (size_t at = 1; at < input.size(); ++at) {
    const Run split = run({input.substr(0, at), input.substr(at)}, 64 * 1024);
    if (split.replies != expected.replies || !split.closed) ++mismatches;
  }
  CHECK_EQ(mismatches, 0u);

  for (size_t capacity : {1, 7, 64}) {
    const Run tiny = run({input}, capacity);
    CHECK(tiny.replies == expected.replies);
  }
}

TEST(random_frames_never_crash) {
  std::mt19937_64 rng(11);
  Server server(test_options());
  for (int round = 0; round < 3000; ++round) {
    Client c(server, 256);
    std::string frame = req(static_cast<uint8_t>(rng() % 0x28), std::string(rng() % 8, 'k'),
                            std::string(rng() % 24, 'e'), std::string(rng() % 16, 'v'), rng() % 3);
    // Corrupt a few header bytes (lengths included).
    for (int i = static_cast<int>(rng() % 3); i > 0; --i) {
      frame[1 + rng() % 23] = static_cast<char>(rng());
    }
    c.send(frame + req(op::kNoop) + frame.substr(0, rng() % (frame.size() + 1)));
    c.send(std::string(static_cast<size_t>(rng() % 40), static_cast<char>(rng())));
  }
  CHECK(true);
}

RUN_TESTS("binary_protocol_test")
