// Meta-command flags: the first pass over a meta command's flag tokens, with memcached's
// rules and error strings (proto_text.c _meta_flag_preparse). Flags that return data are
// handled by each command in a second pass, in request order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/command.h"

namespace gravity::protocol {

// memcached MFLAG_MAX_OPT_LENGTH (a token count, including the command, key and terminal) and
// MFLAG_MAX_OPAQUE_LENGTH (the whole "O..." token).
constexpr size_t kMetaMaxTokens = 20;
constexpr size_t kMetaMaxOpaqueLength = 32;

struct MetaFlags {
  bool no_update = false;   // u
  bool vivify = false;      // N
  bool value = false;       // v
  bool set_stale = false;   // I
  bool no_reply = false;    // q
  bool has_cas = false;     // C
  bool new_ttl = false;     // T
  bool key_binary = false;  // b
  bool has_new_cas = false; // E (memcached >= 1.6.21)
  bool remove_value = false;  // x (md, memcached >= 1.6.21)
  char mode = 0;            // M
  int64_t expires_at = 0;          // T, absolute
  int64_t vivify_expires_at = 0;   // N, absolute
  int64_t recache_at = 0;          // R, absolute
  uint32_t client_flags = 0;       // F
  uint64_t compare_cas = 0;        // C
  uint64_t new_cas = 0;            // E
  uint64_t delta = 1;              // D
  uint64_t initial = 0;            // J
};

// Parses the flag tokens t.token[start..]. Decodes a base64 key into session.key and points
// `key` at the key to use. Returns false with `error` set (memcached's errstr) on failure.
bool parse_meta_flags(Context& ctx, const Tokens& t, size_t start, MetaFlags& flags,
                      std::string_view& key, std::string_view& error);

// " k<key>" as memcached's META_KEY writes it: base64 and a " b" flag for binary keys.
void append_meta_key(std::string& line, std::string_view key, bool binary);

// memcached's reply to an "O" token longer than kMetaMaxOpaqueLength.
constexpr std::string_view kOpaqueTooLong = "CLIENT_ERROR opaque token too long";

// Appends the echo of an "O<opaque>" token; false (nothing appended) if it is too long.
bool append_opaque(std::string& line, std::string_view token);

// Appends the " O..." and " k..." return flags of t.token[2..] in request order, as the replies
// that carry no item (EN, NF, HD of md) echo them; false if an opaque is too long.
bool append_opaque_and_key(std::string& line, const Tokens& t, std::string_view key, bool binary);

}  // namespace gravity::protocol
