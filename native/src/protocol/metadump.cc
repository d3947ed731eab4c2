// "lru_crawler metadump all|hash|<class>[,<class>...]": memcached 1.6 crawler.c's metadump, one
// line per live item, then END:
//
//   key=<uri-encoded key> exp=<unix time or -1> la=<last access, unix time> cas=<n> fetch=<yes|no>
//   cls=<report class> size=<header + key + value bytes>\n        (one line; END ends with \r\n)
//
// memcached crawls in a background thread and writes to the socket itself; here the dump runs in
// the connection's own feed(), one batch of index buckets at a time (Store::walk holds one shard's
// lock per batch), and pauses whenever the reply backs up: the line is run again on the next feed
// and resumes from Session::metadump. A large store is then dumped without holding a lock for
// long or buffering more than one batch of lines, and each batch is a snapshot of its buckets.
// "all" and "hash" are the same walk here (memcached walks its LRUs or its hash table).
#include <string_view>

#include "protocol/command.h"
#include "protocol/item_classes.h"

namespace gravity::protocol {

namespace {

constexpr size_t kWalkBuckets = 256;
// Expiry entries "lru_crawler crawl" looks at, at most (the leaf's sweeper's budget per second).
constexpr size_t kCrawlEntries = 100000;

bool uri_plain(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// memcached util.c uriencode: every byte but [0-9A-Za-z._~-] as %XX (upper-case hex).
void write_uri_encoded(ReplyWriter& out, std::string_view key) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    if (uri_plain(c)) {
      out.write_char(ch);
    } else {
      const char escaped[3] = {'%', kHex[c >> 4], kHex[c & 15]};
      out.write(escaped, 3);
    }
  }
}

void write_item(ReplyWriter& out, const Item& item) {
  out.write("key=");
  write_uri_encoded(out, item.key());
  out.write(" exp=");
  if (item.expires_at == 0) {
    out.write("-1");
  } else {
    out.write_u64(item.expires_at);
  }
  out.write(" la=");
  out.write_u64(item.accessed_at);
  out.write(" cas=");
  out.write_u64(item.cas);
  out.write((item.bits & Item::kFetched) != 0 ? " fetch=yes cls=" : " fetch=no cls=");
  const size_t bytes = item_bytes(item);
  out.write_u64(report_class_of(bytes));
  out.write(" size=");
  out.write_u64(bytes);
  out.write_char('\n');
}

// memcached crawler.c lru_crawler_crawl's class list: "all", "hash", or ids separated by commas
// (empty fields skipped), each 1..63. False for anything else (BADCLASS).
bool parse_classes(std::string_view spec, uint64_t& classes) {
  if (spec == "all" || spec == "hash") {
    classes = ~uint64_t{0};
    return true;
  }
  classes = 0;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view field = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (field.empty()) continue;
    uint32_t id = 0;
    if (!parse_u32(field, id) || id < 1 || id > kMaxReportClassId) return false;
    classes |= uint64_t{1} << (id - 1);
  }
  return true;
}

}  // namespace

// memcached proto_text.c process_lru_crawler_command, for what a crawler thread means here. The
// store has no crawler thread: its expiry sweeper (Store::sweep_expired, run every second by the
// leaf) frees expired items and always runs. So "crawl <classes>" runs a sweep now, of every class
// (bounded: kCrawlEntries), and answers OK; "enable" gets what memcached answers when its crawler
// already runs ("failed to start"), "disable" what it answers when it cannot stop it; "sleep" and
// "tocrawl" tune a thread there is not, and are ERROR.
LineResult process_lru_crawler(Context& ctx, const Tokens& t) {
  MetadumpCursor& dump = ctx.session.metadump;
  if (!dump.active) {
    const std::string_view sub = t.ntokens() >= 3 ? t.token[1] : std::string_view();
    if (t.ntokens() == 4 && sub == "crawl") {
      uint64_t classes = 0;
      if (!parse_classes(t.token[2], classes)) {
        ctx.out.line("BADCLASS invalid class id");
        return LineResult::kDone;
      }
      ctx.store.sweep_expired(ctx.now, kCrawlEntries);
      ctx.out.line("OK");
      return LineResult::kDone;
    }
    if (t.ntokens() == 3 && sub == "enable") {
      ctx.out.line("ERROR failed to start lru crawler thread");
      return LineResult::kDone;
    }
    if (t.ntokens() == 3 && sub == "disable") {
      ctx.out.line("ERROR failed to stop lru crawler thread");
      return LineResult::kDone;
    }
    if (t.ntokens() != 4 || sub != "metadump") {
      ctx.out.line("ERROR");
      return LineResult::kDone;
    }
    uint64_t classes = 0;
    if (!parse_classes(t.token[2], classes)) {
      ctx.out.line("BADCLASS invalid class id");
      return LineResult::kDone;
    }
    dump.active = true;
    dump.walk = WalkCursor{};
    dump.classes = classes;
  }
  for (;;) {
    const bool more = ctx.store.walk(dump.walk, kWalkBuckets, ctx.now, [&](const Item& item) {
      if ((dump.classes >> (report_class_of(item_bytes(item)) - 1) & 1u) != 0) write_item(ctx.out, item);
      return true;
    });
    if (!more) break;
    if (ctx.out.has_pending()) return LineResult::kSuspend;
  }
  dump.active = false;
  ctx.out.line("END");
  return LineResult::kDone;
}

}  // namespace gravity::protocol
