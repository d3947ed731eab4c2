#include "protocol/tokenize.h"

#include <cstring>
#include <limits>

namespace gravity::protocol {

std::string_view until_nul(std::string_view line) {
  const void* nul = std::memchr(line.data(), '\0', line.size());
  if (nul == nullptr) return line;
  return line.substr(0, static_cast<const char*>(nul) - line.data());
}

// memcached proto_text.c tokenize_command: a token ends at each ' '; once max_tokens - 1
// tokens are split off, scanning stops one byte past the space that ended the last one.
void tokenize(std::string_view line, Tokens& out, size_t max_tokens) {
  out.count = 0;
  out.has_rest = false;
  out.rest = {};
  size_t start = 0;
  size_t i = 0;
  const size_t n = line.size();
  for (; i < n; ++i) {
    if (line[i] != ' ') continue;
    if (start != i) {
      out.token[out.count++] = line.substr(start, i - start);
      if (out.count == max_tokens - 1) {
        ++i;
        start = i;
        break;
      }
    }
    start = i + 1;
  }
  if (start < i) {
    out.token[out.count++] = line.substr(start, i - start);
  }
  if (i < n) {
    out.has_rest = true;
    out.rest = line.substr(i);
  }
}

namespace {

// The part of strtoull/strtoll both need: optional whitespace and sign, then base-10 digits.
// `end` is the offset of the first byte not parsed. Returns false if no digits were found.
struct Digits {
  bool negative = false;
  bool overflow = false;  // magnitude exceeds 2^64 - 1
  uint64_t magnitude = 0;
  size_t end = 0;
};

bool scan_digits(std::string_view s, Digits& d) {
  size_t i = 0;
  while (i < s.size() && is_c_space(s[i])) ++i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    d.negative = s[i] == '-';
    ++i;
  }
  const size_t first_digit = i;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (d.magnitude > (kMax - digit) / 10) {
      d.overflow = true;
    } else {
      d.magnitude = d.magnitude * 10 + digit;
    }
  }
  d.end = i;
  return i != first_digit;
}

// util.c: the number must end at the end of the token or at whitespace.
bool ends_cleanly(std::string_view s, size_t end) {
  return end == s.size() || is_c_space(s[end]) || s[end] == '\0';
}

bool has_minus(std::string_view s) { return s.find('-') != std::string_view::npos; }

// strtoull, then safe_strtoull's checks.
bool parse_unsigned64(std::string_view s, uint64_t& out) {
  out = 0;
  Digits d;
  if (!scan_digits(s, d) || d.overflow) return false;  // str == endptr, ERANGE
  if (!ends_cleanly(s, d.end)) return false;
  const uint64_t value = d.negative ? (~d.magnitude + 1) : d.magnitude;  // strtoull negates
  // "only check for negative signs in the uncommon case when the unsigned number is so big
  // that it's negative as a signed number"
  if (static_cast<int64_t>(value) < 0 && has_minus(s)) return false;
  out = value;
  return true;
}

// strtoll (long is 64-bit), then the safe_strtol checks.
bool parse_signed64(std::string_view s, int64_t& out) {
  out = 0;
  Digits d;
  if (!scan_digits(s, d) || d.overflow) return false;
  constexpr uint64_t kMaxPositive = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!d.negative && d.magnitude > kMaxPositive) return false;      // ERANGE
  if (d.negative && d.magnitude > kMaxPositive + 1) return false;   // ERANGE
  if (!ends_cleanly(s, d.end)) return false;
  out = d.negative ? static_cast<int64_t>(~d.magnitude + 1) : static_cast<int64_t>(d.magnitude);
  return true;
}

}  // namespace

bool parse_u64(std::string_view s, uint64_t& out) { return parse_unsigned64(s, out); }

bool parse_u32(std::string_view s, uint32_t& out) {
  uint64_t wide = 0;
  out = 0;
  if (!parse_unsigned64(s, wide)) return false;
  out = static_cast<uint32_t>(wide);  // memcached assigns the unsigned long to a uint32_t
  return true;
}

bool parse_i32(std::string_view s, int32_t& out) {
  int64_t wide = 0;
  out = 0;
  if (!parse_signed64(s, wide)) return false;
  out = static_cast<int32_t>(static_cast<uint32_t>(wide));  // memcached: int32_t = long
  return true;
}

bool parse_i64(std::string_view s, int64_t& out) { return parse_signed64(s, out); }

}  // namespace gravity::protocol
