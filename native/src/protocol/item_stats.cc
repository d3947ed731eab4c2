// "stats items", "stats slabs", "stats cachedump" and "stats conns" in memcached 1.6's formats.
// The classes are the report classes of item_classes.h. Counts come from one walk of the store
// (Store::walk: each shard's lock is held for a batch of index buckets at a time), so they are a
// snapshot per batch, and the walk's cost grows with the number of items.
#include <string_view>

#include "protocol/command.h"
#include "protocol/item_classes.h"

namespace gravity::protocol {

namespace {

// Index buckets walked under one shard lock.
constexpr size_t kWalkBuckets = 1024;
// memcached item_cachedump's reply limit (2 MiB, END included).
constexpr size_t kCachedumpBytes = 2 * 1024 * 1024;

struct ClassTotals {
  uint64_t number = 0;
  uint64_t mem_requested = 0;
  uint32_t oldest_access = UINT32_MAX;  // least recent accessed_at among the class's items
};

void class_stat(ReplyWriter& out, std::string_view prefix, uint32_t cls, std::string_view name, uint64_t value) {
  out.write("STAT ");
  out.write(prefix);
  out.write_u64(cls);
  out.write_char(':');
  out.write(name);
  out.write_char(' ');
  out.write_u64(value);
  out.crlf();
}

void count_classes(Context& ctx, ClassTotals* totals) {
  WalkCursor cursor;
  bool more = true;
  while (more) {
    more = ctx.store.walk(cursor, kWalkBuckets, ctx.now, [&](const Item& item) {
      ClassTotals& t = totals[report_class_of(item_bytes(item))];
      ++t.number;
      t.mem_requested += item_bytes(item);
      if (item.accessed_at < t.oldest_access) t.oldest_access = item.accessed_at;
      return true;
    });
  }
}

}  // namespace

// memcached items.c item_stats: one block per class that holds items. Fields of memcached's
// segmented LRU (number_hot/warm/cold, age_hot/warm, hits_to_*, moves_*), of its crawler and of
// its per-class allocation failures have no counterpart here and are left out.
void item_stats(Context& ctx) {
  ClassTotals totals[kReportClasses + 1];
  count_classes(ctx, totals);
  ClassCounters by_size[kSizeClasses];
  ctx.store.class_counters(by_size);
  ClassCounters counters[kReportClasses + 1];
  for (uint32_t c = 0; c < kSizeClasses; ++c) {
    const uint32_t r = c == kSlabClasses ? kLargeReportClass : c / kSizeClassesPerReportClass + 1;
    ClassCounters& into = counters[r];
    into.evicted += by_size[c].evicted;
    into.evicted_nonzero += by_size[c].evicted_nonzero;
    into.evicted_unfetched += by_size[c].evicted_unfetched;
    if (by_size[c].evicted != 0) into.evicted_time = by_size[c].evicted_time;
    into.reclaimed += by_size[c].reclaimed;
    into.expired_unfetched += by_size[c].expired_unfetched;
  }
  ReplyWriter& out = ctx.out;
  for (uint32_t r = 1; r <= kReportClasses; ++r) {
    const ClassTotals& t = totals[r];
    if (t.number == 0) continue;
    const ClassCounters& c = counters[r];
    const int64_t age = ctx.now - static_cast<int64_t>(t.oldest_access);
    class_stat(out, "items:", r, "number", t.number);
    class_stat(out, "items:", r, "age", age > 0 ? static_cast<uint64_t>(age) : 0);
    class_stat(out, "items:", r, "mem_requested", t.mem_requested);
    class_stat(out, "items:", r, "evicted", c.evicted);
    class_stat(out, "items:", r, "evicted_nonzero", c.evicted_nonzero);
    class_stat(out, "items:", r, "evicted_time", c.evicted_time);
    class_stat(out, "items:", r, "reclaimed", c.reclaimed);
    class_stat(out, "items:", r, "expired_unfetched", c.expired_unfetched);
    class_stat(out, "items:", r, "evicted_unfetched", c.evicted_unfetched);
  }
  out.line("END");
}

// memcached slabs.c do_slabs_stats. Without slab pages (StoreOptions::slab_pages off: one malloc
// per item) every item is one chunk of its own, so total_chunks = used_chunks, no chunk is free
// and no page is held; with slab pages (the default) the page counts per class are not reported.
void slab_stats(Context& ctx) {
  ClassTotals totals[kReportClasses + 1];
  count_classes(ctx, totals);
  const bool pages = ctx.server.options().store.slab_pages;
  ReplyWriter& out = ctx.out;
  uint64_t active = 0;
  for (uint32_t r = 1; r <= kReportClasses; ++r) {
    const ClassTotals& t = totals[r];
    if (t.number == 0) continue;
    ++active;
    const bool large = r == kLargeReportClass;
    class_stat(out, "", r, "chunk_size", large ? ctx.store.max_item_bytes() : report_chunk_bytes(r));
    class_stat(out, "", r, "chunks_per_page", large ? 1 : report_chunks_per_page(r));
    if (!pages) {
      class_stat(out, "", r, "total_pages", 0);
      class_stat(out, "", r, "total_chunks", t.number);
    }
    class_stat(out, "", r, "used_chunks", t.number);
    if (!pages) {
      class_stat(out, "", r, "free_chunks", 0);
      class_stat(out, "", r, "free_chunks_end", 0);
    }
  }
  out.write("STAT active_slabs ");
  out.write_u64(active);
  out.crlf();
  out.write("STAT total_malloced ");
  out.write_u64(ctx.store.stats().held_bytes);
  out.crlf();
  out.line("END");
}

// memcached proto_text.c process_stat "cachedump" and items.c item_cachedump: "ITEM <key>
// [<value bytes> b; <expiry unix time or 0> s]" for up to `limit` items of the class (0: all),
// within 2 MiB, then END. memcached lists a class from its LRU head; this lists in index order.
void cachedump(Context& ctx, const Tokens& t) {
  ReplyWriter& out = ctx.out;
  if (t.ntokens() < 5) {
    out.line("CLIENT_ERROR bad command line");
    return;
  }
  uint32_t id = 0, limit = 0;
  if (!parse_u32(t.token[2], id) || !parse_u32(t.token[3], limit)) {
    out.line("CLIENT_ERROR bad command line format");
    return;
  }
  if (id > kMaxReportClassId) {
    out.line("CLIENT_ERROR Illegal slab id");
    return;
  }
  size_t bytes = 0;
  uint32_t shown = 0;
  bool full = false;
  WalkCursor cursor;
  while (!full && (limit == 0 || shown < limit)) {
    const bool more = ctx.store.walk(cursor, kWalkBuckets, ctx.now, [&](const Item& item) {
      if (report_class_of(item_bytes(item)) != id) return true;
      char value_bytes[24], expiry[24];
      const size_t value_len = format_u64(item.value_size, value_bytes);
      const size_t expiry_len = format_u64(item.expires_at, expiry);
      // "ITEM " key " [" n " b; " e " s]\r\n", and room for END\r\n after it (memcached's check).
      const size_t line = 5 + item.key_size + 2 + value_len + 4 + expiry_len + 4;
      if (bytes + line + 5 > kCachedumpBytes) {
        full = true;
        return false;
      }
      bytes += line;
      out.write("ITEM ");
      out.write(item.key());
      out.write(" [");
      out.write(value_bytes, value_len);
      out.write(" b; ");
      out.write(expiry, expiry_len);
      out.write(" s]\r\n");
      return limit == 0 || ++shown < limit;
    });
    if (!more || (limit != 0 && shown >= limit)) break;
  }
  out.line("END");
}

// memcached proto_text.c process_stats_conns, for the client connections: "<id>:addr" and
// "<id>:listen_addr" (when the listener gave them: conn_to_str's "tcp:host:port"), "<id>:state"
// and "<id>:secs_since_last_cmd". The id is the connection's number in opening order (memcached's
// is its file descriptor); listening sockets are not listed.
void conn_stats(Context& ctx) {
  static constexpr std::string_view kStateNames[] = {"conn_read", "conn_parse_cmd", "conn_nread", "conn_swallow",
                                                     "conn_mwrite"};
  ReplyWriter& out = ctx.out;
  ctx.server.for_each_connection([&](const ConnectionInfo& c) {
    const bool self = &c == ctx.session.info;
    const ConnectionState state = self ? ConnectionState::kParseCmd : c.state.load(std::memory_order_relaxed);
    const int64_t idle = self ? 0 : ctx.now - c.last_cmd_at.load(std::memory_order_relaxed);
    if (!c.addr.empty()) {
      out.write("STAT ");
      out.write_u64(c.id);
      out.write(":addr ");
      out.line(c.addr);
    }
    if (!c.listen_addr.empty()) {
      out.write("STAT ");
      out.write_u64(c.id);
      out.write(":listen_addr ");
      out.line(c.listen_addr);
    }
    out.write("STAT ");
    out.write_u64(c.id);
    out.write(":state ");
    out.line(kStateNames[static_cast<uint8_t>(state)]);
    out.write("STAT ");
    out.write_u64(c.id);
    out.write(":secs_since_last_cmd ");
    out.write_u64(idle > 0 ? static_cast<uint64_t>(idle) : 0);
    out.crlf();
  });
  out.line("END");
}

}  // namespace gravity::protocol
