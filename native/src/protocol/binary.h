// The memcached binary protocol (memcached protocol_binary.h and proto_bin.c, 1.6), served on the
// same connection type as the text protocol: the first byte a connection sends decides (0x80 is
// binary, anything else text), as memcached's try_read_command_negotiate does.
//
//   connection.cc run() ──first byte 0x80──> run_binary(): frames, swallowing, backpressure
//                                                │ execute_frame(): header checks, quiet opcodes
//                                                v
//                          binary_ops.cc: get/touch, store, delete, incr/decr, flush, stats
//                                                │
//                                                v
//                          store_ops.cc (the text protocol's store and delta semantics)
//
// Wire format: a 24-byte header (all numbers big-endian), then extras, key and value, whose
// lengths add up to the header's body length. A reply echoes the request's opcode and opaque.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/command.h"

namespace gravity::protocol {

constexpr uint8_t kBinaryRequestMagic = 0x80;
constexpr uint8_t kBinaryResponseMagic = 0x81;
constexpr size_t kBinaryHeaderBytes = 24;

// protocol_binary_command: the opcodes memcached 1.6 serves (verbosity, 0x1b, is not one of them:
// memcached answers it "Unknown command", and so does Gravity).
namespace binary_op {
constexpr uint8_t kGet = 0x00;
constexpr uint8_t kSet = 0x01;
constexpr uint8_t kAdd = 0x02;
constexpr uint8_t kReplace = 0x03;
constexpr uint8_t kDelete = 0x04;
constexpr uint8_t kIncrement = 0x05;
constexpr uint8_t kDecrement = 0x06;
constexpr uint8_t kQuit = 0x07;
constexpr uint8_t kFlush = 0x08;
constexpr uint8_t kGetQ = 0x09;
constexpr uint8_t kNoop = 0x0a;
constexpr uint8_t kVersion = 0x0b;
constexpr uint8_t kGetK = 0x0c;
constexpr uint8_t kGetKQ = 0x0d;
constexpr uint8_t kAppend = 0x0e;
constexpr uint8_t kPrepend = 0x0f;
constexpr uint8_t kStat = 0x10;
constexpr uint8_t kSetQ = 0x11;
constexpr uint8_t kAddQ = 0x12;
constexpr uint8_t kReplaceQ = 0x13;
constexpr uint8_t kDeleteQ = 0x14;
constexpr uint8_t kIncrementQ = 0x15;
constexpr uint8_t kDecrementQ = 0x16;
constexpr uint8_t kQuitQ = 0x17;
constexpr uint8_t kFlushQ = 0x18;
constexpr uint8_t kAppendQ = 0x19;
constexpr uint8_t kPrependQ = 0x1a;
constexpr uint8_t kVerbosity = 0x1b;
constexpr uint8_t kTouch = 0x1c;
constexpr uint8_t kGat = 0x1d;
constexpr uint8_t kGatQ = 0x1e;
constexpr uint8_t kSaslListMechs = 0x20;
constexpr uint8_t kSaslAuth = 0x21;
constexpr uint8_t kSaslStep = 0x22;
constexpr uint8_t kGatK = 0x23;
constexpr uint8_t kGatKQ = 0x24;
}  // namespace binary_op

// protocol_binary_response_status.
enum class BinaryStatus : uint16_t {
  kSuccess = 0x00,
  kKeyNotFound = 0x01,
  kKeyExists = 0x02,
  kTooLarge = 0x03,
  kInvalidArguments = 0x04,
  kNotStored = 0x05,
  kDeltaBadValue = 0x06,
  kAuthError = 0x20,
  kAuthContinue = 0x21,
  kUnknownCommand = 0x81,
  kOutOfMemory = 0x82,
};

// One request frame whose header, extras and key have arrived (the value may not have).
struct BinaryRequest {
  uint8_t opcode = 0;      // as sent; replies echo it
  uint8_t command = 0;     // the opcode with its quiet variant folded into the loud one
  bool quiet = false;      // a quiet opcode: success replies (and get misses) are not sent
  uint8_t extlen = 0;
  uint16_t keylen = 0;
  uint32_t bodylen = 0;
  const char* opaque = nullptr;  // the 4 opaque bytes, echoed as they came
  uint64_t cas = 0;
  std::string_view extras;
  std::string_view key;
  std::string_view value;  // set by execute_frame once the whole body is in
};

// Parses and executes every complete binary frame in data[0, size) (connection.cc calls it once the
// connection is known to speak binary). Stops when replies back up, a frame is incomplete, or the
// connection must close (*close set). Returns the bytes consumed.
size_t run_binary(Context& ctx, const char* data, size_t size, bool* close);

// Reply writing, shared by binary.cc and binary_ops.cc.
void write_binary_header(Context& ctx, const BinaryRequest& req, BinaryStatus status,
                         uint8_t extlen, uint16_t keylen, uint32_t bodylen, uint64_t cas);
// memcached write_bin_error: the status and its text (memcached's wording unless `text` is given).
// Sent for quiet opcodes too.
void write_binary_error(Context& ctx, const BinaryRequest& req, BinaryStatus status,
                        std::string_view text = std::string_view());
// memcached write_bin_response for a reply without extras or key: nothing for a quiet opcode.
void write_binary_ok(Context& ctx, const BinaryRequest& req, std::string_view body, uint64_t cas = 0);

// Handlers (binary_ops.cc); each writes its reply (or none, for a quiet success).
void binary_get(Context& ctx, const BinaryRequest& req);  // get(k)(q), touch, gat(k)(q)
void binary_store(Context& ctx, const BinaryRequest& req);  // set/add/replace/append/prepend
void binary_delete(Context& ctx, const BinaryRequest& req);
void binary_delta(Context& ctx, const BinaryRequest& req);  // incr/decr
void binary_flush(Context& ctx, const BinaryRequest& req);
void binary_stats(Context& ctx, const BinaryRequest& req);
// SASL (sasl.cc): list mechanisms, and PLAIN authentication against ServerOptions::sasl_passwords.
void binary_sasl_list_mechs(Context& ctx, const BinaryRequest& req);
void binary_sasl_auth(Context& ctx, const BinaryRequest& req);  // auth and step; req.value set

// Big-endian field access.
inline uint16_t load_be16(const char* p) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return static_cast<uint16_t>((b[0] << 8) | b[1]);
}
inline uint32_t load_be32(const char* p) {
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}
inline uint64_t load_be64(const char* p) {
  return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
inline void store_be32(char* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}
inline void store_be64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}

}  // namespace gravity::protocol
