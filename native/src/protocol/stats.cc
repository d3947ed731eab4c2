// "stats": memcached 1.6's general-purpose statistics, every name in memcached's order (so tools
// that read them find them where they expect), with Gravity's values; names that describe
// memcached internals Gravity does not have (slabs, LRU crawler, libevent) report 0.
#include <sys/resource.h>
#include <unistd.h>

#include <string_view>

#include "protocol/command.h"

namespace gravity::protocol {

namespace {

void stat(ReplyWriter& out, std::string_view name, uint64_t value) {
  out.write("STAT ");
  out.write(name);
  out.write_char(' ');
  out.write_u64(value);
  out.crlf();
}

void stat(ReplyWriter& out, std::string_view name, std::string_view value) {
  out.write("STAT ");
  out.write(name);
  out.write_char(' ');
  out.write(value);
  out.crlf();
}

// memcached prints rusage as seconds.microseconds ("%ld.%06ld").
void stat_time(ReplyWriter& out, std::string_view name, const timeval& tv) {
  char micros[8];
  long us = static_cast<long>(tv.tv_usec);
  for (int i = 5; i >= 0; --i) {
    micros[i] = static_cast<char>('0' + us % 10);
    us /= 10;
  }
  out.write("STAT ");
  out.write(name);
  out.write_char(' ');
  out.write_u64(static_cast<uint64_t>(tv.tv_sec));
  out.write_char('.');
  out.write(micros, 6);
  out.crlf();
}

void general_stats(Context& ctx) {
  Server& server = ctx.server;
  const StoreStats s = ctx.store.stats();
  const uint64_t connections = server.curr_connections.load(std::memory_order_relaxed);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  ReplyWriter& out = ctx.out;
  const int64_t uptime = ctx.now - server.started_at();
  stat(out, "pid", static_cast<uint64_t>(getpid()));
  stat(out, "uptime", static_cast<uint64_t>(uptime > 0 ? uptime : 0));
  stat(out, "time", static_cast<uint64_t>(ctx.now));
  stat(out, "version", server.options().version);
  stat(out, "libevent", "none");
  stat(out, "pointer_size", static_cast<uint64_t>(8 * sizeof(void*)));
  stat_time(out, "rusage_user", usage.ru_utime);
  stat_time(out, "rusage_system", usage.ru_stime);
  stat(out, "max_connections", 0);  // Gravity sets no connection limit
  stat(out, "curr_connections", connections);
  stat(out, "total_connections", server.total_connections.load(std::memory_order_relaxed));
  stat(out, "rejected_connections", 0);
  stat(out, "connection_structures", connections);
  for (const char* name : {"response_obj_oom", "response_obj_count", "response_obj_bytes",
                           "read_buf_count", "read_buf_bytes", "read_buf_bytes_free",
                           "read_buf_oom", "reserved_fds"}) {
    stat(out, name, 0);
  }
  stat(out, "cmd_get", s.cmd_get);
  stat(out, "cmd_set", s.cmd_set);
  stat(out, "cmd_flush", server.cmd_flush.load(std::memory_order_relaxed));
  stat(out, "cmd_touch", s.cmd_touch);
  stat(out, "cmd_meta", server.cmd_meta.load(std::memory_order_relaxed));
  stat(out, "get_hits", s.get_hits);
  stat(out, "get_misses", s.get_misses);
  stat(out, "get_expired", s.get_expired);
  stat(out, "get_flushed", s.get_flushed);
  stat(out, "delete_misses", s.delete_misses);
  stat(out, "delete_hits", s.delete_hits);
  stat(out, "incr_misses", s.incr_misses);
  stat(out, "incr_hits", s.incr_hits);
  stat(out, "decr_misses", s.decr_misses);
  stat(out, "decr_hits", s.decr_hits);
  stat(out, "cas_misses", s.cas_misses);
  stat(out, "cas_hits", s.cas_hits);
  stat(out, "cas_badval", s.cas_badval);
  stat(out, "touch_hits", s.touch_hits);
  stat(out, "touch_misses", s.touch_misses);
  stat(out, "store_too_large", server.store_too_large.load(std::memory_order_relaxed));
  stat(out, "store_no_memory", server.store_no_memory.load(std::memory_order_relaxed));
  stat(out, "auth_cmds", server.auth_cmds.load(std::memory_order_relaxed));
  stat(out, "auth_errors", server.auth_errors.load(std::memory_order_relaxed));
  stat(out, "bytes_read", server.bytes_read.load(std::memory_order_relaxed));
  stat(out, "bytes_written", server.bytes_written.load(std::memory_order_relaxed));
  stat(out, "limit_maxbytes", s.limit_maxbytes);
  stat(out, "accepting_conns", 1);
  stat(out, "listen_disabled_num", 0);
  stat(out, "time_in_listen_disabled_us", 0);
  stat(out, "threads", server.options().threads);
  stat(out, "conn_yields", 0);
  stat(out, "hash_power_level", 0);
  stat(out, "hash_bytes", 0);
  stat(out, "hash_is_expanding", 0);
  for (const char* name :
       {"slab_reassign_rescues", "slab_reassign_chunk_rescues", "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim", "slab_reassign_busy_items", "slab_reassign_busy_deletes",
        "slab_reassign_running", "slabs_moved", "lru_crawler_running", "lru_crawler_starts",
        "lru_maintainer_juggles", "malloc_fails", "log_worker_dropped", "log_worker_written",
        "log_watcher_skipped", "log_watcher_sent", "log_watchers", "unexpected_napi_ids",
        "round_robin_fallback"}) {
    stat(out, name, 0);
  }
  stat(out, "bytes", s.bytes);
  stat(out, "curr_items", s.curr_items);
  stat(out, "total_items", s.total_items);
  stat(out, "slab_global_page_pool", 0);
  stat(out, "expired_unfetched", s.expired_unfetched);
  stat(out, "evicted_unfetched", s.evicted_unfetched);
  stat(out, "evicted_active", 0);
  stat(out, "evictions", s.evictions);
  stat(out, "reclaimed", s.reclaimed);
  for (const char* name : {"crawler_reclaimed", "crawler_items_checked", "lrutail_reflocked",
                           "moves_to_cold", "moves_to_warm", "moves_within_lru", "direct_reclaims",
                           "lru_bumps_dropped"}) {
    stat(out, name, 0);
  }
  // Gravity's own, after memcached's names: new items the TinyLFU policy refused (admission), only
  // under that policy, so an LRU leaf's stats stay memcached's list exactly.
  if (server.options().store.policy == "tinylfu") {
    stat(out, "admissions_rejected", s.admissions_rejected);
  }
  out.line("END");
}

// "stats settings": the settings Gravity has, under memcached's names and in memcached's order
// (proto_text.c process_stat_settings). Listener settings (maxconns, tcpport, inter) are the
// TypeScript listener's and are not known here.
void settings_stats(Context& ctx) {
  ReplyWriter& out = ctx.out;
  const ServerOptions& options = ctx.server.options();
  stat(out, "maxbytes", ctx.store.memory_bytes());
  stat(out, "verbosity", static_cast<uint64_t>(ctx.server.verbosity.load()));
  stat(out, "evictions", "on");
  stat(out, "num_threads", options.threads);
  stat(out, "cas_enabled", "yes");
  stat(out, "binding_protocol", "auto-negotiate");  // text or binary by the first byte (-B auto)
  stat(out, "auth_enabled_sasl", options.sasl ? "yes" : "no");
  stat(out, "auth_enabled_ascii", "no");
  stat(out, "item_size_max", ctx.store.max_item_bytes());
  stat(out, "flush_enabled", "yes");
  stat(out, "dump_enabled", "yes");  // stats cachedump and lru_crawler metadump are served
  out.line("END");
}

}  // namespace

// memcached proto_text.c process_stat.
void process_stats(Context& ctx, const Tokens& t) {
  if (t.ntokens() == 2) {
    general_stats(ctx);
    return;
  }
  const std::string_view sub = t.token[1];
  if (sub == "settings") {
    settings_stats(ctx);
  } else if (sub == "cachedump") {
    cachedump(ctx, t);
  } else if (sub == "conns") {
    conn_stats(ctx);
  } else if (sub == "items") {
    item_stats(ctx);
  } else if (sub == "slabs") {
    slab_stats(ctx);
  } else if (sub == "sizes") {
    stat(ctx.out, "sizes_status", "disabled");
    ctx.out.line("END");
  } else {
    ctx.out.line("ERROR");
  }
}

}  // namespace gravity::protocol
