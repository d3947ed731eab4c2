// Store throughput from C++ threads: the "Throughput — Read / Write / Mixed (Zipfian)" charts.
//
//   throughput_bench --trace FILE --workload read|write|mixed --threads N [--seconds S]
//                    [--value-bytes B] [--policy lru|tinylfu]
//
// Keys come from a trace file (one key per line, written by bench/workloads.ts, so the Zipf
// generator lives in one place). The store holds every distinct key of the trace (no eviction
// pressure: this measures the request path, not the policy's hit ratio) and is filled before the
// clock starts. Each thread walks the trace from its own offset:
//   read  — every op is a get (find + touch + copy of the value, as the protocol does, holding
//           the shard lock shared: Store::Access::kRead)
//   write — every op is a set (allocate + copy + link, replacing the old item)
//   mixed — one op in four is a set, the rest gets
// Prints one JSON line: {"workload","threads","policy","ops","seconds","mops","cpuSeconds"}, where
// cpuSeconds is the CPU time the measuring threads got (CLOCK_THREAD_CPUTIME_ID): on a shared
// machine, ops per CPU-second tells a slowdown from lost time slices.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <time.h>
#include <unordered_set>
#include <vector>

#include "store/store.h"

namespace {

using gravity::Item;
using gravity::Store;

std::atomic<uint64_t> g_sink{0};

struct Options {
  std::string trace;
  std::string workload = "read";
  std::string policy = "lru";
  int threads = 1;
  double seconds = 1.0;
  uint32_t value_bytes = 16;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "throughput_bench: %s\n", why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
    std::string value = argv[++i];
    if (flag == "--trace") {
      o.trace = value;
    } else if (flag == "--workload") {
      o.workload = value;
    } else if (flag == "--policy") {
      o.policy = value;
    } else if (flag == "--threads") {
      o.threads = std::atoi(value.c_str());
    } else if (flag == "--seconds") {
      o.seconds = std::atof(value.c_str());
    } else if (flag == "--value-bytes") {
      o.value_bytes = static_cast<uint32_t>(std::atoi(value.c_str()));
    } else {
      usage(("unknown flag " + flag).c_str());
    }
  }
  if (o.trace.empty()) usage("--trace is required");
  if (o.workload != "read" && o.workload != "write" && o.workload != "mixed") {
    usage("--workload must be read, write or mixed");
  }
  if (o.threads < 1 || o.threads > 256) usage("--threads must be in [1, 256]");
  if (o.seconds <= 0) usage("--seconds must be positive");
  if (o.value_bytes < 1 || o.value_bytes > 65536) usage("--value-bytes must be in [1, 65536]");
  if (!gravity::make_policy(o.policy)) usage(("unknown policy " + o.policy).c_str());
  return o;
}

std::vector<std::string> read_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage(("cannot read trace " + path).c_str());
  std::vector<std::string> keys;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) keys.push_back(line);
  }
  if (keys.empty()) usage("the trace is empty");
  return keys;
}

void set(Store& store, const std::string& key, const char* value, uint32_t size, int64_t now) {
  Store::Locked locked(store, key);
  Item* item = locked.allocate(size, 0, 0);
  if (item == nullptr) return;
  std::memcpy(item->value_data(), value, size);
  locked.link(item, now);
}

// Returns whether the key was found; copies its value out as a reply would.
bool get(Store& store, const std::string& key, char* out, int64_t now) {
  Store::Locked locked(store, key, Store::Access::kRead);
  Item* item = locked.find(now);
  if (item == nullptr) return false;
  locked.touch(item, now);
  std::memcpy(out, item->value_data(), item->value_size);
  return true;
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const std::vector<std::string> keys = read_trace(o.trace);
  std::unordered_set<std::string> distinct(keys.begin(), keys.end());
  size_t longest = 0;
  for (const std::string& k : distinct) longest = std::max(longest, k.size());

  gravity::StoreOptions store_options;
  store_options.policy = o.policy;
  store_options.max_item_bytes = 1 << 20;
  // Room for every distinct key twice over, so the measurement never waits on eviction.
  store_options.memory_bytes =
      std::max<uint64_t>(2 * distinct.size() * gravity::item_cost(longest, o.value_bytes), 64ull << 20);
  Store store(store_options);
  const std::string value(o.value_bytes, 'v');
  const int64_t now = store.now();
  for (const std::string& k : distinct) set(store, k, value.data(), o.value_bytes, now);

  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::vector<uint64_t> ops(static_cast<size_t>(o.threads), 0);
  std::vector<double> cpu_seconds(static_cast<size_t>(o.threads), 0);
  std::vector<std::thread> threads;
  const int write_every = o.workload == "write" ? 1 : o.workload == "mixed" ? 4 : 0;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<char> out(o.value_bytes);
      size_t i = (keys.size() / static_cast<size_t>(o.threads)) * static_cast<size_t>(t);
      uint64_t done = 0, hits = 0;
      ready.fetch_add(1);
      while (ready.load() < o.threads) {
      }
      const double cpu_started = thread_cpu_seconds();
      while (!stop.load(std::memory_order_relaxed)) {
        for (int batch = 0; batch < 256; ++batch) {
          const std::string& key = keys[i];
          if (++i == keys.size()) i = 0;
          if (write_every != 0 && done % static_cast<uint64_t>(write_every) == 0) {
            set(store, key, value.data(), o.value_bytes, now);
          } else {
            hits += get(store, key, out.data(), now) ? 1 : 0;
          }
          ++done;
        }
      }
      ops[static_cast<size_t>(t)] = done;
      cpu_seconds[static_cast<size_t>(t)] = thread_cpu_seconds() - cpu_started;
      // Published so the compiler cannot drop the reads and copies as unused.
      g_sink.fetch_add(hits + static_cast<unsigned char>(out[0]), std::memory_order_relaxed);
    });
  }
  while (ready.load() < o.threads) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop.store(true);
  for (std::thread& th : threads) th.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t total = 0;
  for (uint64_t n : ops) total += n;
  double cpu_total = 0;
  for (double c : cpu_seconds) cpu_total += c;
  std::printf(
      "{\"workload\":\"%s\",\"threads\":%d,\"policy\":\"%s\",\"valueBytes\":%u,\"ops\":%llu,"
      "\"seconds\":%.4f,\"mops\":%.4f,\"cpuSeconds\":%.4f}\n",
      o.workload.c_str(), o.threads, o.policy.c_str(), o.value_bytes,
      static_cast<unsigned long long>(total), elapsed, static_cast<double>(total) / elapsed / 1e6, cpu_total);
  return 0;
}
