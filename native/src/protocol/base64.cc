#include "protocol/base64.h"

#include <array>
#include <cstdint>

namespace gravity::protocol {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kInvalid = 0x80;

constexpr std::array<uint8_t, 256> make_decode_table() {
  std::array<uint8_t, 256> table{};
  for (auto& v : table) v = kInvalid;
  for (uint8_t i = 0; i < 64; ++i) table[static_cast<uint8_t>(kAlphabet[i])] = i;
  table[static_cast<uint8_t>('=')] = 0;
  return table;
}

constexpr std::array<uint8_t, 256> kDecode = make_decode_table();

}  // namespace

// memcached base64.c base64_decode: count the alphabet bytes, decode in blocks of four, stop
// after the first block that carries padding ("=" or "==" drop one or two bytes; more is an error).
size_t base64_decode(std::string_view in, std::string& out) {
  out.clear();
  size_t count = 0;
  for (char c : in) {
    if (kDecode[static_cast<uint8_t>(c)] != kInvalid) ++count;
  }
  if (count == 0 || count % 4 != 0) return 0;
  uint8_t block[4];
  size_t filled = 0;
  int pad = 0;
  for (char c : in) {
    const uint8_t v = kDecode[static_cast<uint8_t>(c)];
    if (v == kInvalid) continue;
    if (c == '=') ++pad;
    block[filled++] = v;
    if (filled < 4) continue;
    out.push_back(static_cast<char>((block[0] << 2) | (block[1] >> 4)));
    out.push_back(static_cast<char>((block[1] << 4) | (block[2] >> 2)));
    out.push_back(static_cast<char>((block[2] << 6) | block[3]));
    filled = 0;
    if (pad != 0) {
      if (pad > 2) {
        out.clear();
        return 0;
      }
      out.resize(out.size() - static_cast<size_t>(pad));
      break;
    }
  }
  return out.size();
}

void base64_encode_append(std::string_view in, std::string& out) {
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t left = in.size() - i;
  if (left == 0) return;
  uint32_t v = static_cast<uint8_t>(in[i]) << 16;
  if (left == 2) v |= static_cast<uint8_t>(in[i + 1]) << 8;
  out.push_back(kAlphabet[(v >> 18) & 63]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  out.push_back(left == 2 ? kAlphabet[(v >> 6) & 63] : '=');
  out.push_back('=');
}

}  // namespace gravity::protocol
