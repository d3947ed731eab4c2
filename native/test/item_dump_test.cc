// Item dumps and per-class statistics: "lru_crawler metadump", "stats cachedump", "stats items",
// "stats slabs", "stats conns", and the store walk under them (Store::walk), including a walk
// across index doublings and a dump racing writers on another thread.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "check.h"
#include "protocol/connection.h"
#include "protocol/item_classes.h"
#include "protocol/server.h"

using gravity::Connection;
using gravity::FeedResult;
using gravity::Item;
using gravity::Server;
using gravity::ServerOptions;
using gravity::Store;
using gravity::StoreOptions;
using gravity::WalkCursor;

namespace {

ServerOptions options() {
  ServerOptions o;
  o.store.memory_bytes = 64ull << 20;
  o.version = "test";
  return o;
}

// Sends `input` through an output buffer of `capacity` bytes and returns every reply byte; with
// `max_pending` set, also checks the connection never held more than that many bytes of replies.
std::string talk(Connection& conn, const std::string& input, size_t capacity = 64 * 1024, size_t* max_pending = nullptr) {
  std::string out(capacity, '\0');
  auto* buffer = reinterpret_cast<uint8_t*>(&out[0]);
  std::string replies;
  FeedResult r = conn.feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), buffer, capacity);
  replies.append(out.data(), r.written);
  while (conn.pending() > 0) {
    if (max_pending != nullptr && conn.pending() > *max_pending) *max_pending = conn.pending();
    r = conn.feed(nullptr, 0, buffer, capacity);
    replies.append(out.data(), r.written);
  }
  return replies;
}

std::string set_command(const std::string& key, size_t value_bytes, int exptime = 0) {
  return "set " + key + " 0 " + std::to_string(exptime) + " " + std::to_string(value_bytes) + "\r\n" +
         std::string(value_bytes, 'v') + "\r\n";
}

// The keys of metadump lines ("key=<k> ...\n"), counted.
std::map<std::string, int> metadump_keys(const std::string& dump) {
  std::map<std::string, int> keys;
  size_t pos = 0;
  while (pos < dump.size() && dump.compare(pos, 4, "key=") == 0) {
    const size_t space = dump.find(' ', pos);
    ++keys[dump.substr(pos + 4, space - pos - 4)];
    pos = dump.find('\n', pos) + 1;
  }
  return keys;
}

}  // namespace

TEST(metadump_line_format) {
  Server server(options());
  Connection conn(server);
  talk(conn, set_command("foo", 3) + set_command("a%b", 1, 100) + "get foo\r\nms Zm9vAGJhcg== 2 b\r\nhi\r\n");
  const std::string dump = talk(conn, "lru_crawler metadump all\r\n");
  CHECK(dump.size() > 5 && dump.compare(dump.size() - 5, 5, "END\r\n") == 0);
  const auto keys = metadump_keys(dump);
  CHECK_EQ(keys.size(), size_t{3});
  CHECK_EQ(keys.count("a%25b"), size_t{1});
  CHECK_EQ(keys.count("foo%00bar"), size_t{1});
  const size_t foo = dump.find("key=foo ");
  CHECK(foo != std::string::npos);
  const std::string line = dump.substr(foo, dump.find('\n', foo) - foo);
  const std::string la = std::to_string(server.store().now());
  CHECK_EQ(line, "key=foo exp=-1 la=" + la + " cas=1 fetch=yes cls=1 size=" + std::to_string(sizeof(Item) + 6));
  CHECK(dump.find("key=a%25b exp=" + std::to_string(server.store().now() + 100) + " ") != std::string::npos);
  CHECK(dump.find("fetch=no cls=1 size=60\n") != std::string::npos);
}

TEST(metadump_errors_like_memcached) {
  Server server(options());
  Connection conn(server);
  CHECK_EQ(talk(conn, "lru_crawler metadump\r\n"), "ERROR\r\n");
  CHECK_EQ(talk(conn, "lru_crawler\r\n"), "ERROR\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump all extra\r\n"), "ERROR\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump 0\r\n"), "BADCLASS invalid class id\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump 64\r\n"), "BADCLASS invalid class id\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump 1,x\r\n"), "BADCLASS invalid class id\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump 63\r\n"), "END\r\n");
  CHECK_EQ(talk(conn, "lru_crawler metadump ,1,\r\n"), "END\r\n");
}

// No crawler thread: "crawl" sweeps expired items now; enable and disable answer as memcached does
// when its crawler cannot be started (it runs) or stopped.
TEST(lru_crawler_crawl_enable_disable) {
  Server server(options());
  Connection conn(server);
  talk(conn, "set short 0 10 1\r\nx\r\nset long 0 0 1\r\ny\r\n");
  server.store().advance_clock(20);
  CHECK_EQ(server.store().stats().curr_items, 2u);  // the expired one is still held
  CHECK_EQ(talk(conn, "lru_crawler crawl all\r\n"), "OK\r\n");
  CHECK_EQ(server.store().stats().curr_items, 1u);
  CHECK_EQ(talk(conn, "lru_crawler crawl 1,,2\r\n"), "OK\r\n");
  CHECK_EQ(talk(conn, "lru_crawler crawl 0\r\n"), "BADCLASS invalid class id\r\n");
  CHECK_EQ(talk(conn, "lru_crawler crawl 64\r\n"), "BADCLASS invalid class id\r\n");
  CHECK_EQ(talk(conn, "lru_crawler crawl\r\n"), "ERROR\r\n");
  CHECK_EQ(talk(conn, "lru_crawler enable\r\n"), "ERROR failed to start lru crawler thread\r\n");
  CHECK_EQ(talk(conn, "lru_crawler enable x\r\n"), "ERROR\r\n");
  CHECK_EQ(talk(conn, "lru_crawler disable\r\n"), "ERROR failed to stop lru crawler thread\r\n");
  CHECK_EQ(talk(conn, "lru_crawler sleep 100\r\n"), "ERROR\r\n");
}

// A dump of many items through a small output buffer pauses on backpressure and resumes: every
// key once, commands after it answered after its END, and never more than a batch held.
TEST(metadump_streams_with_backpressure) {
  Server server(options());
  Connection conn(server);
  std::string sets;
  for (int i = 0; i < 20000; ++i) sets += set_command("key:" + std::to_string(i), 10);
  talk(conn, sets);
  size_t max_pending = 0;
  const std::string dump = talk(conn, "lru_crawler metadump hash\r\nversion\r\n", 4096, &max_pending);
  const auto keys = metadump_keys(dump);
  CHECK_EQ(keys.size(), size_t{20000});
  bool once = true;
  for (const auto& [key, count] : keys) once = once && count == 1;
  CHECK(once);
  CHECK(dump.size() > 20 && dump.compare(dump.size() - 19, 19, "END\r\nVERSION test\r\n") == 0);
  CHECK(max_pending < 64 * 1024);
}

TEST(cachedump_like_memcached) {
  Server server(options());
  Connection conn(server);
  talk(conn, set_command("a", 3) + set_command("b", 4, 50) + set_command("big", 5000) + set_command("huge", 200000));
  const std::string one = talk(conn, "stats cachedump 1 0\r\n");
  CHECK(one.find("ITEM a [3 b; 0 s]\r\n") != std::string::npos);
  CHECK(one.find("ITEM b [4 b; " + std::to_string(server.store().now() + 50) + " s]\r\n") != std::string::npos);
  CHECK(one.find("big") == std::string::npos);
  const uint32_t big_class = gravity::protocol::report_class_of(sizeof(Item) + 3 + 5000);
  CHECK_EQ(talk(conn, "stats cachedump " + std::to_string(big_class) + " 0\r\n"), "ITEM big [5000 b; 0 s]\r\nEND\r\n");
  CHECK_EQ(talk(conn, "stats cachedump " + std::to_string(gravity::protocol::kLargeReportClass) + " 0\r\n"),
           "ITEM huge [200000 b; 0 s]\r\nEND\r\n");
  const std::string limited = talk(conn, "stats cachedump 1 1\r\n");
  CHECK(limited.compare(0, 5, "ITEM ") == 0 && limited.find("ITEM ", 5) == std::string::npos);
  CHECK_EQ(talk(conn, "stats cachedump 0 0\r\n"), "END\r\n");
  CHECK_EQ(talk(conn, "stats cachedump 63 0\r\n"), "END\r\n");
  CHECK_EQ(talk(conn, "stats cachedump 64 0\r\n"), "CLIENT_ERROR Illegal slab id\r\n");
  CHECK_EQ(talk(conn, "stats cachedump 1\r\n"), "CLIENT_ERROR bad command line\r\n");
  CHECK_EQ(talk(conn, "stats cachedump -1 0\r\n"), "CLIENT_ERROR bad command line format\r\n");
  CHECK_EQ(talk(conn, "stats cachedump 1 x\r\n"), "CLIENT_ERROR bad command line format\r\n");
}

TEST(stats_items_and_slabs) {
  Server server(options());
  Connection conn(server);
  talk(conn, set_command("a", 3) + set_command("b", 4) + set_command("big", 5000));
  const std::string items = talk(conn, "stats items\r\n");
  CHECK(items.find("STAT items:1:number 2\r\nSTAT items:1:age 0\r\nSTAT items:1:mem_requested " +
                   std::to_string(2 * sizeof(Item) + 2 + 7) + "\r\n") != std::string::npos);
  const uint32_t big_class = gravity::protocol::report_class_of(sizeof(Item) + 3 + 5000);
  CHECK(items.find("STAT items:" + std::to_string(big_class) + ":number 1\r\n") != std::string::npos);
  CHECK(items.compare(items.size() - 5, 5, "END\r\n") == 0);
  const std::string slabs = talk(conn, "stats slabs\r\n");
  CHECK(slabs.find("STAT 1:used_chunks 2\r\n") != std::string::npos);
  CHECK(slabs.find("STAT active_slabs 2\r\n") != std::string::npos);
  CHECK_EQ(talk(conn, "stats sizes\r\n"), "STAT sizes_status disabled\r\nEND\r\n");
}

TEST(stats_items_counts_evictions_per_class) {
  ServerOptions o = options();
  o.store.memory_bytes = 1ull << 20;
  o.store.shard_count = 1;
  Server server(o);
  Connection conn(server);
  std::string sets;
  for (int i = 0; i < 20000; ++i) sets += set_command("k" + std::to_string(i), 100, 1000);
  talk(conn, sets);
  const std::string items = talk(conn, "stats items\r\n");
  const uint32_t cls = gravity::protocol::report_class_of(sizeof(Item) + 5 + 100);
  const std::string prefix = "STAT items:" + std::to_string(cls) + ":";
  CHECK(items.find(prefix + "number ") != std::string::npos);
  CHECK(items.find(prefix + "evicted 0\r\n") == std::string::npos);
  CHECK(items.find(prefix + "evicted_nonzero 0\r\n") == std::string::npos);
  CHECK(items.find(prefix + "evicted_unfetched 0\r\n") == std::string::npos);
}

TEST(stats_conns_lists_open_connections) {
  Server server(options());
  Connection a(server);
  std::string reply;
  {
    Connection b(server);
    talk(b, "set x 0 0 5\r\nab");  // waits for the rest of its data block
    reply = talk(a, "stats conns\r\n");
    CHECK_EQ(reply, "STAT 1:state conn_parse_cmd\r\nSTAT 1:secs_since_last_cmd 0\r\n"
                    "STAT 2:state conn_nread\r\nSTAT 2:secs_since_last_cmd 0\r\nEND\r\n");
  }
  CHECK_EQ(talk(a, "stats conns\r\n"), "STAT 1:state conn_parse_cmd\r\nSTAT 1:secs_since_last_cmd 0\r\nEND\r\n");
  // With the addresses the listener gave: memcached's addr and listen_addr lines first.
  Connection c(server, "tcp:127.0.0.1:40000", "tcp:127.0.0.1:11211");
  CHECK_EQ(talk(c, "stats conns\r\n"),
           "STAT 1:state conn_read\r\nSTAT 1:secs_since_last_cmd 0\r\n"
           "STAT 3:addr tcp:127.0.0.1:40000\r\nSTAT 3:listen_addr tcp:127.0.0.1:11211\r\n"
           "STAT 3:state conn_parse_cmd\r\nSTAT 3:secs_since_last_cmd 0\r\nEND\r\n");
}

// Items present for the whole walk are visited once each, although the index doubles between
// batches (keys are added as it goes).
TEST(walk_across_index_growth) {
  StoreOptions o;
  o.memory_bytes = 64ull << 20;
  o.shard_count = 1;
  Store store(o);
  const int64_t now = store.now();
  auto put = [&](const std::string& key) {
    Store::Locked locked(store, key);
    Item* item = locked.allocate(1, 0, 0);
    item->value_data()[0] = 'v';
    locked.link(item, now);
  };
  for (int i = 0; i < 300; ++i) put("old" + std::to_string(i));
  std::map<std::string, int> seen;
  WalkCursor cursor;
  int added = 0;
  bool more = true;
  while (more) {
    more = store.walk(cursor, 8, now, [&](const Item& item) {
      ++seen[std::string(item.key())];
      return true;
    });
    for (int i = 0; i < 50; ++i) put("new" + std::to_string(added++));
  }
  int old_once = 0;
  bool no_duplicates = true;
  for (const auto& [key, count] : seen) {
    if (key.compare(0, 3, "old") == 0 && count == 1) ++old_once;
    no_duplicates = no_duplicates && count == 1;
  }
  CHECK_EQ(old_once, 300);
  CHECK(no_duplicates);
}

// A dump on one thread while another writes and deletes (TSan checks the locking).
TEST(metadump_races_writers) {
  Server server(options());
  std::thread writer([&] {
    Connection conn(server);
    for (int round = 0; round < 20; ++round) {
      std::string batch;
      for (int i = 0; i < 500; ++i) batch += set_command("w" + std::to_string(i), 20);
      for (int i = 0; i < 500; i += 3) batch += "delete w" + std::to_string(i) + "\r\n";
      talk(conn, batch);
    }
  });
  Connection dumper(server);
  for (int i = 0; i < 20; ++i) {
    const std::string dump = talk(dumper, "lru_crawler metadump all\r\nstats items\r\nstats conns\r\n", 2048);
    CHECK(dump.find("END\r\n") != std::string::npos);
  }
  writer.join();
}

RUN_TESTS("item_dump_test")
