// Hit-ratio benchmark: replays a trace of keys through the real Store as a look-aside cache and
// through Belady's offline optimum, for each capacity and policy; one JSON line per result.
//
//   hitratio_bench --trace FILE [--format keys|arc] [--name NAME] [--capacities 1%,5%,10%|ITEMS,...]
//                  [--policies lru,tinylfu,belady,belady-demand] [--value-size 16]
//
// A "keys" trace is one key per line. An "arc" trace is a block trace in the format of the ARC
// paper's traces (Megiddo and Modha, FAST 03): `start count ignored request_number` per line, each
// line expanded into `count` lookups of the blocks start, start + 1, ...; a FILE ending in ".zst"
// is read through `zstd -dc`, streamed. Every distinct key is mapped (in order of first appearance) to a
// dense id and stored under a fixed 12-byte key derived from that id, so every item has the same
// item_cost() and a store of capacity * item_cost() bytes holds exactly `capacity` items, whatever
// the lengths of the trace's keys. A capacity ending in '%' is a share of the trace's distinct keys.
//
// Store replay (per request):  find -> hit: touch | miss: allocate + link (no expiry, one shard).
// "belady": the exact optimum for equal-size items when the cache may decline to admit (bypass) a
// key, as an admission policy does: on a miss with a full cache, of the cached keys and the
// requested one, the one whose next use is farthest away is not kept. "belady-demand": the classic
// MIN, which must store every missed key (evicts the cached key used farthest in the future); at
// most "belady". next[] is precomputed; a max-heap keyed by next use, with stale entries skipped
// lazily, finds the farthest in O(log n).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/item.h"
#include "store/policy.h"
#include "store/store.h"

namespace {

constexpr size_t kKeyBytes = 12;  // fixed store key length: the id in decimal, zero-padded

struct Trace {
  std::vector<uint32_t> ids;  // one per request
  uint32_t distinct = 0;
  std::vector<char> keys;     // distinct * kKeyBytes: the store key of each id
};

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "hitratio_bench: %s\n", message.c_str());
  std::exit(2);
}

void assign_keys(Trace& trace) {
  trace.keys.resize(static_cast<size_t>(trace.distinct) * kKeyBytes);
  for (uint32_t id = 0; id < trace.distinct; ++id) {
    char key[kKeyBytes + 1];
    std::snprintf(key, sizeof key, "%012u", id);
    std::memcpy(trace.keys.data() + static_cast<size_t>(id) * kKeyBytes, key, kKeyBytes);
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The file's bytes as a stream: through `zstd -dc` when it ends in ".zst". *piped says which
// (pclose vs fclose).
std::FILE* open_trace(const std::string& path, bool* piped) {
  *piped = ends_with(path, ".zst");
  if (!*piped) return std::fopen(path.c_str(), "rb");
  if (path.find('\'') != std::string::npos) die("trace path with a quote: " + path);
  return popen(("zstd -dc -- '" + path + "'").c_str(), "r");
}

void close_trace(std::FILE* file, bool piped, const std::string& path) {
  if (!piped) {
    std::fclose(file);
  } else if (pclose(file) != 0) {
    die("zstd -dc failed on " + path);
  }
}

// An ARC block trace: each line `start count ...` is count lookups of consecutive blocks.
Trace read_arc_trace(const std::string& path) {
  bool piped = false;
  std::FILE* file = open_trace(path, &piped);
  if (file == nullptr) die("cannot open trace " + path);
  Trace trace;
  std::unordered_map<uint64_t, uint32_t> id_of;
  char line[256];
  while (std::fgets(line, sizeof line, file) != nullptr) {
    char* end = nullptr;
    const unsigned long long start = std::strtoull(line, &end, 10);
    if (end == line) continue;  // blank line
    char* after = nullptr;
    const unsigned long long count = std::strtoull(end, &after, 10);
    if (after == end) die("bad line in " + path + ": " + line);
    for (unsigned long long block = start; block < start + count; ++block) {
      auto [it, inserted] = id_of.try_emplace(block, trace.distinct);
      if (inserted) ++trace.distinct;
      trace.ids.push_back(it->second);
    }
  }
  close_trace(file, piped, path);
  if (trace.ids.empty()) die("trace " + path + " has no requests");
  assign_keys(trace);
  return trace;
}

Trace read_trace(const std::string& path) {
  bool piped = false;
  std::FILE* file = open_trace(path, &piped);
  if (file == nullptr) die("cannot open trace " + path);
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  close_trace(file, piped, path);

  Trace trace;
  std::unordered_map<std::string_view, uint32_t> id_of;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t stop = end;
    if (stop > start && text[stop - 1] == '\r') --stop;
    if (stop > start) {  // blank lines are skipped
      std::string_view key(text.data() + start, stop - start);
      auto [it, inserted] = id_of.try_emplace(key, trace.distinct);
      if (inserted) ++trace.distinct;
      trace.ids.push_back(it->second);
    }
    start = end + 1;
  }
  if (trace.ids.empty()) die("trace " + path + " has no keys");
  assign_keys(trace);
  return trace;
}

uint64_t replay_store(const Trace& trace, const std::string& policy, uint64_t capacity,
                      uint32_t value_size, uint64_t* items_at_end) {
  gravity::StoreOptions options;
  options.memory_bytes = capacity * gravity::item_cost(kKeyBytes, value_size);
  options.shard_count = 1;
  options.policy = policy;
  options.slab_pages = false;  // the charge alone bounds it: exactly `capacity` items (slab.h's page tails are not charged)
  gravity::Store store(options);
  const int64_t now = store.now();
  uint64_t hits = 0;
  for (uint32_t id : trace.ids) {
    std::string_view key(trace.keys.data() + static_cast<size_t>(id) * kKeyBytes, kKeyBytes);
    gravity::Store::Locked l(store, key);
    gravity::Item* item = l.find(now);
    if (item != nullptr) {
      ++hits;
      l.touch(item, now);
    } else {
      gravity::Item* fresh = l.allocate(value_size, 0, 0);
      if (fresh != nullptr) l.link(fresh, now);
    }
  }
  *items_at_end = store.stats().curr_items;
  return hits;
}

// next[i]: the index of the next request for the same key, or n + i if there is none (distinct
// values, so a heap entry (next, id) is current exactly when the key is cached with that next use).
std::vector<uint64_t> next_uses(const Trace& trace) {
  const size_t n = trace.ids.size();
  std::vector<uint64_t> next(n);
  std::vector<uint64_t> seen(trace.distinct, UINT64_MAX);
  for (size_t i = n; i-- > 0;) {
    const uint32_t id = trace.ids[i];
    next[i] = seen[id] != UINT64_MAX ? seen[id] : n + i;
    seen[id] = i;
  }
  return next;
}

uint64_t replay_belady(const Trace& trace, const std::vector<uint64_t>& next, uint64_t capacity,
                       bool bypass, uint64_t* items_at_end) {
  const size_t n = trace.ids.size();
  std::vector<uint64_t> cached_next(trace.distinct, UINT64_MAX);  // UINT64_MAX = not cached
  std::priority_queue<std::pair<uint64_t, uint32_t>> heap;       // (next use, id), farthest on top
  uint64_t size = 0, hits = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t id = trace.ids[i];
    if (cached_next[id] != UINT64_MAX) {
      ++hits;
    } else if (bypass && next[i] >= n) {
      continue;  // never requested again: keeping it cannot help
    } else if (size < capacity) {
      ++size;
    } else {
      while (cached_next[heap.top().second] != heap.top().first) heap.pop();  // skip stale
      if (bypass && heap.top().first < next[i]) continue;  // the requested key is the farthest
      cached_next[heap.top().second] = UINT64_MAX;
      heap.pop();
    }
    cached_next[id] = next[i];
    heap.emplace(next[i], id);
  }
  *items_at_end = size;
  return hits;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

uint64_t parse_capacity(const std::string& spec, uint32_t distinct) {
  char* end = nullptr;
  if (!spec.empty() && spec.back() == '%') {
    const double percent = std::strtod(spec.c_str(), &end);
    if (end != spec.c_str() + spec.size() - 1 || !(percent > 0)) die("bad capacity " + spec);
    const auto items = static_cast<uint64_t>(static_cast<double>(distinct) * percent / 100.0 + 0.5);
    return std::max<uint64_t>(items, 1);
  }
  const unsigned long long items = std::strtoull(spec.c_str(), &end, 10);
  if (spec.empty() || end != spec.c_str() + spec.size() || items == 0) die("bad capacity " + spec);
  return items;
}

}  // namespace

int main(int argc, char** argv) {
  std::string trace_path, format = "keys", name, capacities = "1%,5%,10%", policies = "lru,belady";
  uint32_t value_size = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) die("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--trace") trace_path = value;
    else if (flag == "--format") format = value;
    else if (flag == "--name") name = value;
    else if (flag == "--capacities") capacities = value;
    else if (flag == "--policies") policies = value;
    else if (flag == "--value-size") value_size = static_cast<uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    else die("unknown flag " + flag);
  }
  if (trace_path.empty()) die("usage: hitratio_bench --trace FILE [--format keys|arc] [--name NAME] [--capacities 1%,5%,10%] [--policies lru,belady]");
  if (name.empty()) name = trace_path;

  if (format != "keys" && format != "arc") die("unknown format " + format + " (keys | arc)");
  const Trace trace = format == "arc" ? read_arc_trace(trace_path) : read_trace(trace_path);
  std::vector<uint64_t> next;  // computed on first use by belady
  for (const std::string& capacity_spec : split(capacities)) {
    const uint64_t capacity = parse_capacity(capacity_spec, trace.distinct);
    for (const std::string& policy : split(policies)) {
      std::string head = "{\"trace\":" + json_string(name) + ",\"policy\":" + json_string(policy) +
                         ",\"capacity\":" + json_string(capacity_spec) +
                         ",\"capacity_items\":" + std::to_string(capacity) +
                         ",\"requests\":" + std::to_string(trace.ids.size()) +
                         ",\"distinct\":" + std::to_string(trace.distinct);
      const bool belady = policy == "belady" || policy == "belady-demand";
      if (!belady && gravity::make_policy(policy) == nullptr) {
        // The store would silently fall back to LRU: say so instead of measuring the wrong thing.
        std::fprintf(stderr, "hitratio_bench: unknown policy \"%s\" (make_policy returned null)\n",
                     policy.c_str());
        std::printf("%s,\"error\":\"unknown policy\"}\n", head.c_str());
        std::fflush(stdout);
        continue;
      }
      const auto started = std::chrono::steady_clock::now();
      uint64_t items_at_end = 0, hits;
      if (belady) {
        if (next.empty()) next = next_uses(trace);
        hits = replay_belady(trace, next, capacity, policy == "belady", &items_at_end);
      } else {
        hits = replay_store(trace, policy, capacity, value_size, &items_at_end);
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (items_at_end > capacity) die("cache of " + policy + " held more than its capacity");
      std::printf("%s,\"hits\":%llu,\"hit_ratio\":%.6f,\"items_at_end\":%llu,\"seconds\":%.3f}\n",
                  head.c_str(), static_cast<unsigned long long>(hits),
                  static_cast<double>(hits) / static_cast<double>(trace.ids.size()),
                  static_cast<unsigned long long>(items_at_end), seconds);
      std::fflush(stdout);
    }
  }
  return 0;
}
