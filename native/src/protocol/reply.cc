#include "protocol/reply.h"

namespace gravity::protocol {

size_t format_u64(uint64_t v, char* buf) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; ++i) buf[i] = tmp[n - 1 - i];
  return n;
}

size_t format_i64(int64_t v, char* buf) {
  if (v >= 0) return format_u64(static_cast<uint64_t>(v), buf);
  buf[0] = '-';
  return 1 + format_u64(~static_cast<uint64_t>(v) + 1, buf + 1);
}

}  // namespace gravity::protocol
