// Direct store operations (protocol/direct_ops.h): key rules, get into a caller's buffer, set with
// the item size limit, delete, touch and expiry, and the stats each one counts, checked against
// the same commands sent as text through a Connection. Time moves with Store::advance_clock().
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "protocol/connection.h"
#include "protocol/direct_ops.h"
#include "protocol/server.h"

using gravity::Connection;
using gravity::Item;
using gravity::Server;
using gravity::ServerOptions;
using gravity::Store;
using gravity::StoreStats;
using gravity::protocol::direct_delete;
using gravity::protocol::direct_get;
using gravity::protocol::direct_key_ok;
using gravity::protocol::direct_set;
using gravity::protocol::direct_touch;
using gravity::protocol::DirectGetResult;
using gravity::protocol::DirectSetStatus;

namespace {

constexpr uint64_t kMaxItemBytes = 1024;

ServerOptions test_options() {
  ServerOptions options;
  options.store.memory_bytes = 4ull << 20;
  options.store.max_item_bytes = kMaxItemBytes;
  return options;
}

// The value of `key` through direct_get, or "<miss>".
std::string get(Server& server, const std::string& key) {
  std::vector<char> out(kMaxItemBytes);
  DirectGetResult r = direct_get(server, key, out.data(), out.size());
  if (!r.found) return "<miss>";
  return std::string(out.data(), r.value_size);
}

bool set(Server& server, const std::string& key, const std::string& value, int64_t exptime = 0,
         uint32_t flags = 0) {
  return direct_set(server, key, value, exptime, flags) == DirectSetStatus::kStored;
}

bool fetched_bit(Server& server, const std::string& key) {
  Store::Locked locked(server.store(), key);
  Item* item = locked.find(server.store().now());
  return item != nullptr && (item->bits & Item::kFetched) != 0;
}

// Sends text commands through a connection and returns the replies.
std::string text(Server& server, const std::string& commands) {
  Connection connection(server);
  std::vector<uint8_t> out(64 * 1024);
  gravity::FeedResult r = connection.feed(reinterpret_cast<const uint8_t*>(commands.data()),
                                          commands.size(), out.data(), out.size());
  return std::string(reinterpret_cast<const char*>(out.data()), r.written);
}

// The stats both paths count, as one string to compare.
std::string counted(Server& server) {
  StoreStats s = server.store().stats();
  return "cmd_get=" + std::to_string(s.cmd_get) + " get_hits=" + std::to_string(s.get_hits) +
         " get_misses=" + std::to_string(s.get_misses) + " get_expired=" + std::to_string(s.get_expired) +
         " cmd_set=" + std::to_string(s.cmd_set) + " cmd_touch=" + std::to_string(s.cmd_touch) +
         " touch_hits=" + std::to_string(s.touch_hits) + " touch_misses=" + std::to_string(s.touch_misses) +
         " delete_hits=" + std::to_string(s.delete_hits) + " delete_misses=" +
         std::to_string(s.delete_misses) + " curr_items=" + std::to_string(s.curr_items) +
         " store_too_large=" + std::to_string(server.store_too_large.load());
}

}  // namespace

TEST(key_rules_are_memcached_text_rules) {
  CHECK(direct_key_ok("a"));
  CHECK(direct_key_ok(std::string(250, 'k')));
  CHECK(direct_key_ok("caf\xc3\xa9"));  // bytes above 0x7f are allowed, as memcached allows them
  CHECK(!direct_key_ok(""));
  CHECK(!direct_key_ok(std::string(251, 'k')));
  CHECK(!direct_key_ok("a b"));
  CHECK(!direct_key_ok("a\r\nb"));
  CHECK(!direct_key_ok("tab\there"));
  CHECK(!direct_key_ok(std::string("nul\0", 4)));
  CHECK(!direct_key_ok("del\x7f"));
}

TEST(set_then_get_round_trips_and_counts) {
  Server server(test_options());
  CHECK_EQ(get(server, "k"), std::string("<miss>"));
  CHECK(set(server, "k", "hello", 0, 42));
  std::vector<char> out(16);
  DirectGetResult r = direct_get(server, "k", out.data(), out.size());
  CHECK(r.found);
  CHECK(r.copied);
  CHECK_EQ(r.value_size, 5u);
  CHECK_EQ(r.client_flags, 42u);
  CHECK(r.cas != 0);
  CHECK_EQ(std::string(out.data(), 5), std::string("hello"));
  CHECK(set(server, "k", ""));
  CHECK_EQ(get(server, "k"), std::string(""));
  StoreStats s = server.store().stats();
  CHECK_EQ(s.cmd_get, 3u);
  CHECK_EQ(s.get_hits, 2u);
  CHECK_EQ(s.get_misses, 1u);
  CHECK_EQ(s.cmd_set, 2u);
  CHECK_EQ(s.curr_items, 1u);
}

TEST(set_returns_the_new_cas) {
  Server server(test_options());
  uint64_t first = 0, second = 0;
  CHECK(direct_set(server, "k", "a", 0, 0, &first) == DirectSetStatus::kStored);
  CHECK(direct_set(server, "k", "b", 0, 0, &second) == DirectSetStatus::kStored);
  CHECK(first != 0);
  CHECK(second > first);
  std::vector<char> out(4);
  CHECK_EQ(direct_get(server, "k", out.data(), out.size()).cas, second);
}

TEST(get_into_a_short_buffer_reports_the_length_and_counts_nothing) {
  Server server(test_options());
  CHECK(set(server, "k", "0123456789"));
  const std::string before = counted(server);
  std::vector<char> out(4, 'x');
  DirectGetResult r = direct_get(server, "k", out.data(), out.size());
  CHECK(r.found);
  CHECK(!r.copied);
  CHECK_EQ(r.value_size, 10u);
  CHECK_EQ(std::string(out.data(), 4), std::string("xxxx"));  // untouched
  CHECK_EQ(counted(server), before);
  CHECK(!fetched_bit(server, "k"));
  // The retry with room is the get that counts.
  out.resize(r.value_size);
  r = direct_get(server, "k", out.data(), out.size());
  CHECK(r.copied);
  CHECK_EQ(std::string(out.data(), out.size()), std::string("0123456789"));
  CHECK_EQ(server.store().stats().get_hits, 1u);
  CHECK(fetched_bit(server, "k"));
}

TEST(get_marks_the_item_fetched) {
  Server server(test_options());
  CHECK(set(server, "k", "v"));
  CHECK(!fetched_bit(server, "k"));
  CHECK_EQ(get(server, "k"), std::string("v"));
  CHECK(fetched_bit(server, "k"));
  CHECK(set(server, "k", "w"));  // a new item is unfetched again
  CHECK(!fetched_bit(server, "k"));
}

TEST(item_size_limit_is_memcached_item_size_ok) {
  Server server(test_options());
  const std::string key = "big";
  // 56-byte header + key + NUL + value + CRLF <= the limit; client flags take 4 bytes more.
  const size_t largest = kMaxItemBytes - 56 - key.size() - 1 - 2;
  CHECK(set(server, key, std::string(largest, 'v')));
  CHECK_EQ(get(server, key).size(), largest);
  CHECK(direct_set(server, key, std::string(largest + 1, 'v'), 0, 0) == DirectSetStatus::kTooLarge);
  CHECK(set(server, key, std::string(largest - 4, 'v'), 0, 7));
  CHECK(direct_set(server, key, std::string(largest - 3, 'v'), 0, 7) == DirectSetStatus::kTooLarge);
  CHECK_EQ(server.store_too_large.load(), 2u);
}

TEST(too_large_set_drops_the_old_value_and_is_not_a_cmd_set) {
  Server server(test_options());
  CHECK(set(server, "k", "old"));
  CHECK(direct_set(server, "k", std::string(kMaxItemBytes, 'v'), 0, 0) == DirectSetStatus::kTooLarge);
  CHECK_EQ(get(server, "k"), std::string("<miss>"));
  CHECK_EQ(server.store().stats().cmd_set, 1u);
}

TEST(ttl_follows_memcached_exptime) {
  Server server(test_options());
  Store& store = server.store();
  CHECK(set(server, "relative", "v", 10));
  CHECK(set(server, "absolute", "v", store.now() + 40ll * 24 * 3600));
  CHECK(set(server, "past", "v", store.now() - 40ll * 24 * 3600));
  CHECK(set(server, "negative", "v", -1));
  CHECK(set(server, "never", "v", 0));
  CHECK_EQ(get(server, "past"), std::string("<miss>"));
  CHECK_EQ(get(server, "negative"), std::string("<miss>"));
  store.advance_clock(9);
  CHECK_EQ(get(server, "relative"), std::string("v"));
  store.advance_clock(1);
  CHECK_EQ(get(server, "relative"), std::string("<miss>"));
  CHECK_EQ(get(server, "absolute"), std::string("v"));
  store.advance_clock(40ll * 24 * 3600);
  CHECK_EQ(get(server, "absolute"), std::string("<miss>"));
  CHECK_EQ(get(server, "never"), std::string("v"));
  CHECK(server.store().stats().get_expired >= 4u);
}

TEST(touch_sets_a_new_expiry) {
  Server server(test_options());
  Store& store = server.store();
  CHECK(!direct_touch(server, "absent", 10));
  CHECK(set(server, "k", "v", 5));
  CHECK(direct_touch(server, "k", 100));
  store.advance_clock(50);
  CHECK_EQ(get(server, "k"), std::string("v"));
  CHECK(direct_touch(server, "k", 0));  // never expires
  store.advance_clock(1000);
  CHECK_EQ(get(server, "k"), std::string("v"));
  CHECK(direct_touch(server, "k", -1));  // expired now
  CHECK_EQ(get(server, "k"), std::string("<miss>"));
  StoreStats s = store.stats();
  CHECK_EQ(s.cmd_touch, 4u);
  CHECK_EQ(s.touch_hits, 3u);
  CHECK_EQ(s.touch_misses, 1u);
}

// The background sweeper frees what direct_set and direct_touch scheduled, without a lookup.
TEST(sweeper_frees_items_at_the_expiry_set_or_touched) {
  Server server(test_options());
  Store& store = server.store();
  CHECK(set(server, "set-ttl", "v", 10));
  CHECK(set(server, "touched-shorter", "v", 0));
  CHECK(set(server, "touched-longer", "v", 10));
  CHECK(direct_touch(server, "touched-shorter", 10));
  CHECK(direct_touch(server, "touched-longer", 100));
  store.advance_clock(11);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), static_cast<size_t>(2));
  CHECK_EQ(store.stats().curr_items, 1u);
  store.advance_clock(100);
  CHECK_EQ(store.sweep_expired(store.now(), 1000), static_cast<size_t>(1));
  CHECK_EQ(store.stats().curr_items, 0u);
}

TEST(delete_removes_once) {
  Server server(test_options());
  CHECK(set(server, "k", "v"));
  CHECK(direct_delete(server, "k"));
  CHECK(!direct_delete(server, "k"));
  CHECK_EQ(get(server, "k"), std::string("<miss>"));
  StoreStats s = server.store().stats();
  CHECK_EQ(s.delete_hits, 1u);
  CHECK_EQ(s.delete_misses, 1u);
  CHECK_EQ(s.curr_items, 0u);
}

// The same sequence as direct calls and as text commands leaves the same values and stats.
TEST(stats_match_the_text_protocol) {
  Server direct(test_options());
  Server texted(test_options());
  const std::string too_large(kMaxItemBytes, 'x');

  CHECK_EQ(get(direct, "a"), std::string("<miss>"));
  CHECK(set(direct, "a", "one", 0, 3));
  CHECK(set(direct, "b", "two", 10));
  CHECK_EQ(get(direct, "a"), std::string("one"));
  CHECK(direct_set(direct, "a", too_large, 0, 0) == DirectSetStatus::kTooLarge);
  CHECK(direct_touch(direct, "b", 100));
  CHECK(!direct_touch(direct, "a", 100));
  CHECK(direct_delete(direct, "b"));
  CHECK(!direct_delete(direct, "b"));
  CHECK(set(direct, "c", "three", -1));
  CHECK_EQ(get(direct, "c"), std::string("<miss>"));

  const std::string replies = text(
      texted, "get a\r\nset a 3 0 3\r\none\r\nset b 0 10 3\r\ntwo\r\nget a\r\nset a 0 0 " +
                  std::to_string(too_large.size()) + "\r\n" + too_large +
                  "\r\ntouch b 100\r\ntouch a 100\r\ndelete b\r\ndelete b\r\nset c 0 -1 5\r\nthree\r\nget c\r\n");
  CHECK_EQ(replies, std::string("END\r\nSTORED\r\nSTORED\r\nVALUE a 3 3\r\none\r\nEND\r\n"
                                "SERVER_ERROR object too large for cache\r\nTOUCHED\r\nNOT_FOUND\r\n"
                                "DELETED\r\nNOT_FOUND\r\nSTORED\r\nEND\r\n"));
  CHECK_EQ(counted(direct), counted(texted));
}

RUN_TESTS("direct_ops_test")
