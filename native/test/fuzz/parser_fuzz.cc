// libFuzzer target for the protocol parser/executor: the input is split into reads and fed to a
// Connection with a small output buffer, draining pending replies as the leaf listener does.
// Invariants checked: no crash or sanitizer report, buffered input stays bounded.
//
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Inative/src
//     native/test/fuzz/parser_fuzz.cc native/src/protocol/*.cc native/src/store/*.cc -o parser_fuzz
//   ./parser_fuzz -max_len=4096 test/corpus/
//
// Without clang: g++ ... -DGRAVITY_FUZZ_STANDALONE runs each file named on the command line once.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "protocol/connection.h"
#include "protocol/server.h"

namespace {

gravity::Server& server() {
  static gravity::Server* s = [] {
    gravity::ServerOptions options;
    options.store.memory_bytes = 8ull << 20;
    options.store.max_item_bytes = 64 * 1024;
    return new gravity::Server(options);
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t out_capacity = 1 + data[0] % 200;  // small buffers exercise backpressure
  const size_t read_size = 1 + data[1] % 64;
  data += 2;
  size -= 2;
  gravity::Connection conn(server());
  std::vector<uint8_t> out(out_capacity);
  const size_t bound = 64 * 1024 + 64 * 1024 + 2 + 2 * read_size;  // get line / item + reads
  for (size_t pos = 0; pos < size;) {
    const size_t n = size - pos < read_size ? size - pos : read_size;
    gravity::FeedResult r = conn.feed(data + pos, n, out.data(), out.size());
    pos += n;
    while (!r.close && conn.pending() > 0) r = conn.feed(nullptr, 0, out.data(), out.size());
    if (r.close) break;
    if (conn.buffered() > bound) std::abort();
  }
  return 0;
}

#ifdef GRAVITY_FUZZ_STANDALONE
#include <fstream>
#include <iterator>
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  return 0;
}
#endif
