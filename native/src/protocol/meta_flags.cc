#include "protocol/meta_flags.h"

#include "protocol/base64.h"
#include "store/ttl.h"

namespace gravity::protocol {

void append_meta_key(std::string& line, std::string_view key, bool binary) {
  line.append(" k");
  if (!binary) {
    line.append(key);
    return;
  }
  base64_encode_append(key, line);
  line.append(" b");
}

bool append_opaque(std::string& line, std::string_view token) {
  if (token.size() > kMetaMaxOpaqueLength) return false;
  line.push_back(' ');
  line.append(token);
  return true;
}

bool append_opaque_and_key(std::string& line, const Tokens& t, std::string_view key, bool binary) {
  for (size_t i = 2; i < t.count; ++i) {
    const std::string_view token = t.token[i];
    if (token[0] == 'O') {
      if (!append_opaque(line, token)) return false;
    } else if (token[0] == 'k') {
      append_meta_key(line, key, binary);
    }
  }
  return true;
}

// memcached proto_text.c _meta_flag_preparse. An unknown or repeated flag stops at once;
// a bad token records its error and parsing goes on (a later error replaces the message).
bool parse_meta_flags(Context& ctx, const Tokens& t, size_t start, MetaFlags& of,
                      std::string_view& key, std::string_view& error) {
  static constexpr std::string_view kBadToken = "CLIENT_ERROR bad token in command line format";
  bool seen[127] = {};
  bool has_error = false;
  key = t.token[1];
  for (size_t i = start; i < t.count; ++i) {
    const std::string_view token = t.token[i];
    const uint8_t flag = static_cast<uint8_t>(token[0]);
    if (flag >= 127 || seen[flag]) {
      error = "CLIENT_ERROR duplicate flag";
      return false;
    }
    seen[flag] = true;
    const std::string_view arg = token.substr(1);
    int32_t seconds = 0;
    switch (flag) {
      case 'b':
        // The key is at most 250 bytes of base64, so the binary key is at most 187 bytes.
        if (base64_decode(t.token[1], ctx.session.key) == 0) {
          error = "CLIENT_ERROR error decoding key";
          has_error = true;
        }
        key = ctx.session.key;
        of.key_binary = true;
        break;
      case 'N':
        of.vivify = true;
        if (!parse_i32(arg, seconds)) {
          error = kBadToken;
          has_error = true;
        } else {
          of.vivify_expires_at = absolute_expiry(seconds, ctx.now);
        }
        break;
      case 'T':
        if (!parse_i32(arg, seconds)) {
          error = kBadToken;
          has_error = true;
        } else {
          of.expires_at = absolute_expiry(seconds, ctx.now);
          of.new_ttl = true;
        }
        break;
      case 'R':
        if (!parse_i32(arg, seconds)) {
          error = kBadToken;
          has_error = true;
        } else {
          of.recache_at = absolute_expiry(seconds, ctx.now);
        }
        break;
      case 'l':
      case 'h':
      case 'O':
      case 'P':
      case 'L':
      case 'k':
      case 's':
      case 't':
      case 'c':
      case 'f':
        break;
      case 'v':
        of.value = true;
        break;
      case 'u':
        of.no_update = true;
        break;
      case 'q':
        of.no_reply = true;
        break;
      case 'F':
        if (!parse_u32(arg, of.client_flags)) has_error = true;
        break;
      case 'C':
        if (!parse_u64(arg, of.compare_cas)) {
          error = kBadToken;
          has_error = true;
        } else {
          of.has_cas = true;
        }
        break;
      case 'E':
        if (!parse_u64(arg, of.new_cas)) {
          error = kBadToken;
          has_error = true;
        } else {
          of.has_new_cas = true;
        }
        break;
      case 'M':
        if (token.size() != 2) {
          error = "CLIENT_ERROR incorrect length for M token";
          has_error = true;
        } else {
          of.mode = token[1];
        }
        break;
      case 'J':
        if (!parse_u64(arg, of.initial)) {
          error = "CLIENT_ERROR invalid numeric initial value";
          has_error = true;
        }
        break;
      case 'D':
        if (!parse_u64(arg, of.delta)) {
          error = "CLIENT_ERROR invalid numeric delta value";
          has_error = true;
        }
        break;
      case 'I':
        of.set_stale = true;
        break;
      case 'x':
        of.remove_value = true;
        break;
      default:
        error = "CLIENT_ERROR invalid flag";
        return false;
    }
  }
  return !has_error;
}

}  // namespace gravity::protocol
