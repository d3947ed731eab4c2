// Command-line tokenizing and number parsing with memcached's exact rules, so that every odd
// input gets the reply memcached gives it:
//   - tokens are split on ' ' only (a tab or '\r' inside a token belongs to the token);
//     a NUL byte ends the line (memcached works on C strings);
//   - at most kMaxTokens - 1 tokens are split off, the rest of the line is left for the caller
//     (memcached proto_text.c tokenize_command, MAX_TOKENS);
//   - numbers follow util.c safe_strtoull / safe_strtoul / safe_strtol: strtoull/strtol
//     semantics (leading whitespace, a sign, base 10), a number must end at the token's end or
//     at a whitespace character, and 32-bit results are truncated from the 64-bit parse exactly
//     as memcached's assignment of a long to an int32_t truncates them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gravity::protocol {

// memcached MAX_TOKENS: 23 tokens and the terminal token.
constexpr size_t kMaxTokens = 24;

// memcached KEY_MAX_LENGTH.
constexpr size_t kKeyMaxLength = 250;

struct Tokens {
  std::string_view token[kMaxTokens];
  size_t count = 0;       // tokens split off the line
  bool has_rest = false;  // the line had more than kMaxTokens - 1 tokens
  std::string_view rest;  // the part of the line after them (valid when has_rest)

  // memcached's ntokens: the tokens plus its terminal token.
  size_t ntokens() const { return count + 1; }
  // Token i, or an empty view past the end (memcached's terminal token has length 0).
  std::string_view at(size_t i) const { return i < count ? token[i] : std::string_view(); }
};

// The line memcached sees: everything before the first NUL byte.
std::string_view until_nul(std::string_view line);

// Splits `line` as memcached's tokenize_command does, splitting off at most max_tokens - 1.
void tokenize(std::string_view line, Tokens& out, size_t max_tokens = kMaxTokens);

// C isspace() in the "C" locale.
constexpr bool is_c_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool parse_u64(std::string_view s, uint64_t& out);  // util.c safe_strtoull
bool parse_u32(std::string_view s, uint32_t& out);  // util.c safe_strtoul (64-bit long)
bool parse_i32(std::string_view s, int32_t& out);   // util.c safe_strtol (64-bit long)
bool parse_i64(std::string_view s, int64_t& out);   // util.c safe_strtoll

}  // namespace gravity::protocol
