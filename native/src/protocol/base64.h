// Base64 for meta-command binary keys (flag "b"), with the rules of memcached's base64.c
// (derived from hostap): decoding skips bytes outside the alphabet, needs a multiple of four
// alphabet bytes and returns 0 on any error; encoding pads with '=' and adds no line breaks.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gravity::protocol {

// Decodes `in` into `out` (replacing its contents). Returns the decoded size; 0 means failure.
size_t base64_decode(std::string_view in, std::string& out);

// Appends the encoding of `in` to `out`.
void base64_encode_append(std::string_view in, std::string& out);

}  // namespace gravity::protocol
