// The Node-API binding: the only file that includes <napi.h>. It converts arguments, calls the
// plain C++ library and maps failures to one JS error. No C++ exception crosses the boundary.
//
// The Server (store + process counters) is process-global: the main thread configures it and
// every Bun worker that loads this addon serves the same one.
#include <malloc.h>
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/connection.h"
#include "protocol/direct_ops.h"
#include "protocol/server.h"

namespace {

std::mutex g_server_mutex;  // serialises configure()
// Created once by configure() (under g_server_mutex) and lives until process exit. Atomic so the
// direct get/set path of every worker reads it without taking the mutex.
std::atomic<gravity::Server*> g_server{nullptr};

constexpr const char* kNotConfigured = "gravity native store is not configured";

gravity::Server* server_or_throw(Napi::Env env) {
  gravity::Server* server = g_server.load(std::memory_order_acquire);
  if (server == nullptr) Napi::Error::New(env, kNotConfigured).ThrowAsJavaScriptException();
  return server;
}

// A connection handle held by JS. close() frees the Connection; the finalizer frees it if JS
// dropped the handle without closing.
struct ConnectionHandle {
  std::unique_ptr<gravity::Connection> connection;
};

// Marks the externals this file creates, so a foreign External is never taken for a connection.
constexpr napi_type_tag kConnectionTag = {0x6772617669747963ull, 0x6f6e6e656374696full};

// Reads an optional integer field in [min, max]; sets `error` (and returns 0) when it is not one.
uint64_t integer_field(Napi::Object object, const char* name, double fallback, double min, double max,
                       std::string& error) {
  Napi::Value value = object.Get(name);
  double number = fallback;
  if (!value.IsUndefined()) {
    number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : std::nan("");
  }
  if (!std::isfinite(number) || number != std::floor(number) || number < min || number > max) {
    if (error.empty()) {
      error = std::string(name) + " must be an integer in [" + std::to_string(static_cast<uint64_t>(min)) +
              ", " + std::to_string(static_cast<uint64_t>(max)) + "]";
    }
    return 0;
  }
  return static_cast<uint64_t>(number);
}

// configure({ memoryBytes, maxItemBytes, threads, version, policy, shardCount, saslPasswords })
// -> boolean
// Creates the process-global server; returns false (and changes nothing) if it already exists.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "configure(options) expects an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object options = info[0].As<Napi::Object>();
  gravity::ServerOptions server_options;
  std::string error;
  server_options.store.memory_bytes =
      integer_field(options, "memoryBytes", 64.0 * 1024 * 1024, 1024.0 * 1024, std::ldexp(1.0, 50), error);
  server_options.store.max_item_bytes =
      integer_field(options, "maxItemBytes", 1024.0 * 1024, 1024, 1024.0 * 1024 * 1024, error);
  server_options.store.shard_count =
      static_cast<uint32_t>(integer_field(options, "shardCount", 0, 0, 1024, error));
  server_options.threads = static_cast<uint32_t>(integer_field(options, "threads", 1, 1, 1024, error));
  if (error.empty() && server_options.store.max_item_bytes * 2 > server_options.store.memory_bytes) {
    error = "memoryBytes must be at least twice maxItemBytes";
  }
  if (!error.empty()) {
    Napi::RangeError::New(env, "configure: " + error).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value version = options.Get("version");
  if (version.IsString()) server_options.version = version.As<Napi::String>().Utf8Value();
  Napi::Value sasl = options.Get("saslPasswords");
  if (sasl.IsArray()) {
    // [[user, password], ...]: the users of memcached's SASL password file (sasl-plain.ts).
    server_options.sasl = true;
    Napi::Array entries = sasl.As<Napi::Array>();
    for (uint32_t i = 0; i < entries.Length(); i++) {
      Napi::Value entry = entries.Get(i);
      if (!entry.IsArray() || entry.As<Napi::Array>().Length() != 2 ||
          !entry.As<Napi::Array>().Get(0u).IsString() || !entry.As<Napi::Array>().Get(1u).IsString()) {
        Napi::TypeError::New(env, "configure: saslPasswords expects [user, password] string pairs")
            .ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Array pair = entry.As<Napi::Array>();
      server_options.sasl_passwords.emplace(pair.Get(0u).As<Napi::String>().Utf8Value(),
                                            pair.Get(1u).As<Napi::String>().Utf8Value());
    }
  }
  Napi::Value policy = options.Get("policy");
  if (policy.IsString()) server_options.store.policy = policy.As<Napi::String>().Utf8Value();
  if (!gravity::make_policy(server_options.store.policy)) {
    Napi::Error::New(env, "unknown eviction policy: " + server_options.store.policy)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server.load(std::memory_order_acquire) != nullptr) return Napi::Boolean::New(env, false);
  // glibc's mmap threshold is dynamic: freeing one mapped chunk raises it to that chunk's size, so
  // after a connection's input buffer of a large value (connection.cc) is freed, the next ones
  // come from the heap, where freed holes stay resident. Fixed, every allocation of 128 KiB or
  // more stays a mapping of its own, unmapped when freed (bench:memory's flood: the heap grew
  // 7.7 MB with the dynamic threshold, 4.6 MB with it fixed).
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(gravity::kMinMappedItemBytes));
  g_server.store(new gravity::Server(server_options), std::memory_order_release);
  return Napi::Boolean::New(env, true);
}

Napi::Value IsConfigured(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_server.load(std::memory_order_acquire) != nullptr);
}

Napi::Value OpenConnection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  // openConnection([addr, listenAddr]): the peer and the listener, as "stats conns" prints them.
  std::string addr, listen_addr;
  if (info.Length() > 0 && info[0].IsString()) addr = info[0].As<Napi::String>().Utf8Value();
  if (info.Length() > 1 && info[1].IsString()) listen_addr = info[1].As<Napi::String>().Utf8Value();
  auto* handle = new ConnectionHandle{std::make_unique<gravity::Connection>(*server, std::move(addr), std::move(listen_addr))};
  auto external = Napi::External<ConnectionHandle>::New(
      env, handle, [](Napi::Env, ConnectionHandle* dropped) { delete dropped; });
  napi_type_tag_object(env, external, &kConnectionTag);
  return external;
}

ConnectionHandle* handle_of(napi_env env, napi_value value) {
  napi_valuetype type;
  bool tagged = false;
  void* data = nullptr;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external ||
      napi_check_object_type_tag(env, value, &kConnectionTag, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &data) != napi_ok) {
    return nullptr;
  }
  return static_cast<ConnectionHandle*>(data);
}

Napi::Value CloseConnection(const Napi::CallbackInfo& info) {
  ConnectionHandle* handle = info.Length() > 0 ? handle_of(info.Env(), info[0]) : nullptr;
  if (handle != nullptr) handle->connection.reset();
  return info.Env().Undefined();
}

// The bytes of a Uint8Array or an ArrayBuffer (what Bun passes a socket's data handler with
// binaryType "arraybuffer"); false for anything else.
bool bytes_of(napi_env env, napi_value value, uint8_t** data, size_t* size) {
  void* raw = nullptr;
  napi_typedarray_type type;
  // A Uint8Array, the common case, in one call.
  if (napi_get_typedarray_info(env, value, &type, size, &raw, nullptr, nullptr) == napi_ok) {
    if (type != napi_uint8_array) return false;
    *data = static_cast<uint8_t*>(raw);
    return true;
  }
  bool is_array_buffer = false;
  if (napi_is_arraybuffer(env, value, &is_array_buffer) != napi_ok || !is_array_buffer ||
      napi_get_arraybuffer_info(env, value, &raw, size) != napi_ok) {
    return false;
  }
  *data = static_cast<uint8_t*>(raw);
  return true;
}

// feed(conn, input: Uint8Array | ArrayBuffer | null, out: Uint8Array) -> written * 4 + (pending ? 2 : 0) + close
// The hot path: written with the C API to keep it to a few calls per socket read.
napi_value Feed(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  ConnectionHandle* handle = argc == 3 ? handle_of(env, args[0]) : nullptr;
  uint8_t* out = nullptr;
  size_t out_size = 0;
  if (handle == nullptr || handle->connection == nullptr || !bytes_of(env, args[2], &out, &out_size)) {
    napi_throw_type_error(env, nullptr, "feed(conn, input, out): bad arguments or closed connection");
    return nullptr;
  }
  uint8_t* input = nullptr;
  size_t input_size = 0;
  napi_valuetype input_type;
  napi_typeof(env, args[1], &input_type);
  if (input_type != napi_null && input_type != napi_undefined &&
      !bytes_of(env, args[1], &input, &input_size)) {
    napi_throw_type_error(env, nullptr, "feed: input must be a Uint8Array, an ArrayBuffer or null");
    return nullptr;
  }
  gravity::FeedResult result;
  try {
    result = handle->connection->feed(input, input_size, out, out_size);
  } catch (const std::exception& e) {
    // Only allocation can throw here (buffers, index growth); the listener drops the connection.
    napi_throw_error(env, "ENOMEM", (std::string("feed: ") + e.what()).c_str());
    return nullptr;
  }
  double encoded = static_cast<double>(result.written) * 4 +
                   (handle->connection->pending() > 0 ? 2 : 0) + (result.close ? 1 : 0);
  napi_value value;
  napi_create_double(env, encoded, &value);
  return value;
}

// Direct store operations: get/set/delete/touch on the process-global store without a
// connection (protocol/direct_ops.h). Written with the C API like feed(): they are hot paths.

// Room for a string key's UTF-8 bytes. Keys over kKeyMaxLength bytes are refused, and a string
// that napi had to truncate to fit here encodes to more than that, so no truncated key passes.
constexpr size_t kKeyBufferBytes = 1024;

// Reads the key argument of `fn`: a string (encoded as UTF-8 into `buffer`, which has
// kKeyBufferBytes) or a Uint8Array's bytes. Throws a TypeError and returns false when it is
// neither or breaks memcached's key rules.
bool key_arg(napi_env env, napi_value value, char* buffer, std::string_view* key, const char* fn) {
  size_t length = 0;
  // A string, the common case, in one call (it fails with napi_string_expected for anything else).
  const napi_status status = napi_get_value_string_utf8(env, value, buffer, kKeyBufferBytes, &length);
  bool ok = status == napi_ok;
  if (ok) {
    *key = std::string_view(buffer, length);
  } else if (status == napi_string_expected) {
    uint8_t* data = nullptr;
    size_t size = 0;
    ok = bytes_of(env, value, &data, &size);
    *key = std::string_view(reinterpret_cast<const char*>(data), size);
  }
  if (!ok) {
    napi_throw_type_error(env, nullptr, (std::string(fn) + ": key must be a string or a Uint8Array").c_str());
    return false;
  }
  if (!gravity::protocol::direct_key_ok(*key)) {
    napi_throw_type_error(
        env, nullptr,
        (std::string(fn) + ": key must be 1 to 250 bytes without spaces or control characters").c_str());
    return false;
  }
  return true;
}

// Reads an integer argument in [min, max]; undefined reads as `fallback` when `optional`.
// Throws a TypeError naming `fn` and `name` and returns false otherwise.
bool integer_arg(napi_env env, napi_value value, bool optional, double fallback, double min, double max,
                 double* out, const char* fn, const char* name) {
  napi_valuetype type = napi_undefined;
  napi_typeof(env, value, &type);
  double number = std::nan("");
  if (type == napi_undefined && optional) {
    number = fallback;
  } else if (type == napi_number) {
    napi_get_value_double(env, value, &number);
  }
  if (!std::isfinite(number) || number != std::floor(number) || number < min || number > max) {
    napi_throw_type_error(env, nullptr,
                          (std::string(fn) + ": " + name + " must be an integer in [" +
                           std::to_string(static_cast<int64_t>(min)) + ", " +
                           std::to_string(static_cast<int64_t>(max)) + "]")
                              .c_str());
    return false;
  }
  *out = number;
  return true;
}

// The server, or null after throwing (not configured).
gravity::Server* server_or_throw_c(napi_env env) {
  gravity::Server* server = g_server.load(std::memory_order_acquire);
  if (server == nullptr) napi_throw_error(env, nullptr, kNotConfigured);
  return server;
}

void throw_allocation_error(napi_env env, const char* fn, const std::exception& e) {
  napi_throw_error(env, "ENOMEM", (std::string(fn) + ": " + e.what()).c_str());
}

napi_value number_value(napi_env env, double number) {
  napi_value value;
  napi_create_double(env, number, &value);
  return value;
}

napi_value boolean_value(napi_env env, bool flag) {
  napi_value value;
  napi_get_boolean(env, flag, &value);
  return value;
}

// protocol exptime in seconds: 0 = never, negative = expired, up to 30 days relative, above that
// a unix time (ttl.h absolute_expiry); any safe integer.
constexpr double kMaxSafeInteger = 9007199254740991.0;

// get(key, out: Uint8Array) -> value length, or -1 on a miss. The value is copied into `out` when
// it fits; when it does not, nothing is copied (or counted) and the length tells the caller how
// much room to retry with.
napi_value Get(napi_env env, napi_callback_info info) {
  constexpr const char* kFn = "get(key, out)";
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  gravity::Server* server = server_or_throw_c(env);
  if (server == nullptr) return nullptr;
  char buffer[kKeyBufferBytes];
  std::string_view key;
  if (!key_arg(env, args[0], buffer, &key, kFn)) return nullptr;
  uint8_t* out = nullptr;
  size_t out_size = 0;
  if (!bytes_of(env, args[1], &out, &out_size)) {
    napi_throw_type_error(env, nullptr, "get(key, out): out must be a Uint8Array");
    return nullptr;
  }
  gravity::protocol::DirectGetResult result;
  try {
    result = gravity::protocol::direct_get(*server, key, reinterpret_cast<char*>(out), out_size);
  } catch (const std::exception& e) {
    throw_allocation_error(env, kFn, e);
    return nullptr;
  }
  return number_value(env, result.found ? static_cast<double>(result.value_size) : -1.0);
}

// set(key, value: Uint8Array, ttlSeconds = 0, flags = 0) -> StoreStatus (0 stored, 1 too large,
// 2 no memory).
napi_value Set(napi_env env, napi_callback_info info) {
  constexpr const char* kFn = "set(key, value, ttlSeconds, flags)";
  size_t argc = 4;
  napi_value args[4];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  gravity::Server* server = server_or_throw_c(env);
  if (server == nullptr) return nullptr;
  char buffer[kKeyBufferBytes];
  std::string_view key;
  if (!key_arg(env, args[0], buffer, &key, kFn)) return nullptr;
  uint8_t* value = nullptr;
  size_t value_size = 0;
  if (!bytes_of(env, args[1], &value, &value_size)) {
    napi_throw_type_error(env, nullptr, "set(key, value, ttlSeconds, flags): value must be a Uint8Array");
    return nullptr;
  }
  double ttl_seconds = 0;
  double flags = 0;
  if (!integer_arg(env, args[2], true, 0, -kMaxSafeInteger, kMaxSafeInteger, &ttl_seconds, kFn,
                   "ttlSeconds") ||
      !integer_arg(env, args[3], true, 0, 0, 4294967295.0, &flags, kFn, "flags")) {
    return nullptr;
  }
  gravity::protocol::DirectSetStatus status;
  try {
    status = gravity::protocol::direct_set(
        *server, key, std::string_view(reinterpret_cast<const char*>(value), value_size),
        static_cast<int64_t>(ttl_seconds), static_cast<uint32_t>(flags));
  } catch (const std::exception& e) {
    throw_allocation_error(env, kFn, e);
    return nullptr;
  }
  return number_value(env, static_cast<double>(status));
}

// delete(key) -> whether an item was removed.
napi_value Delete(napi_env env, napi_callback_info info) {
  constexpr const char* kFn = "delete(key)";
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  gravity::Server* server = server_or_throw_c(env);
  if (server == nullptr) return nullptr;
  char buffer[kKeyBufferBytes];
  std::string_view key;
  if (!key_arg(env, args[0], buffer, &key, kFn)) return nullptr;
  bool deleted = false;
  try {
    deleted = gravity::protocol::direct_delete(*server, key);
  } catch (const std::exception& e) {
    throw_allocation_error(env, kFn, e);
    return nullptr;
  }
  return boolean_value(env, deleted);
}

// touch(key, ttlSeconds) -> whether the key had an item (which now has the new expiry).
napi_value Touch(napi_env env, napi_callback_info info) {
  constexpr const char* kFn = "touch(key, ttlSeconds)";
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  gravity::Server* server = server_or_throw_c(env);
  if (server == nullptr) return nullptr;
  char buffer[kKeyBufferBytes];
  std::string_view key;
  if (!key_arg(env, args[0], buffer, &key, kFn)) return nullptr;
  double ttl_seconds = 0;
  if (!integer_arg(env, args[1], false, 0, -kMaxSafeInteger, kMaxSafeInteger, &ttl_seconds, kFn,
                   "ttlSeconds")) {
    return nullptr;
  }
  bool touched = false;
  try {
    touched = gravity::protocol::direct_touch(*server, key, static_cast<int64_t>(ttl_seconds));
  } catch (const std::exception& e) {
    throw_allocation_error(env, kFn, e);
    return nullptr;
  }
  return boolean_value(env, touched);
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  gravity::StoreStats s = server->store().stats();
  Napi::Object out = Napi::Object::New(env);
  auto put = [&](const char* name, uint64_t value) {
    out.Set(name, Napi::Number::New(env, static_cast<double>(value)));
  };
  put("curr_connections", server->curr_connections.load());
  put("total_connections", server->total_connections.load());
  put("curr_items", s.curr_items);
  put("total_items", s.total_items);
  put("bytes", s.bytes);
  put("limit_maxbytes", s.limit_maxbytes);
  put("item_size_max", server->store().max_item_bytes());  // memcached "stats settings"
  put("evictions", s.evictions);
  put("reclaimed", s.reclaimed);
  put("expired_unfetched", s.expired_unfetched);
  put("evicted_unfetched", s.evicted_unfetched);
  put("admissions_rejected", s.admissions_rejected);
  put("cmd_get", s.cmd_get);
  put("cmd_set", s.cmd_set);
  put("get_hits", s.get_hits);
  put("get_misses", s.get_misses);
  put("get_expired", s.get_expired);
  put("cmd_touch", s.cmd_touch);
  put("touch_hits", s.touch_hits);
  put("touch_misses", s.touch_misses);
  put("delete_hits", s.delete_hits);
  put("delete_misses", s.delete_misses);
  put("store_too_large", server->store_too_large.load());
  put("store_no_memory", server->store_no_memory.load());
  put("shards", server->store().shard_count());
  return out;
}

// The open connections of every thread (for the listener's --max-connections check).
Napi::Value ConnectionCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  return Napi::Number::New(env, static_cast<double>(server->curr_connections.load()));
}

Napi::Value SweepExpired(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  double max_items = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue()
                                                              : 10000;
  gravity::Store& store = server->store();
  size_t freed = store.sweep_expired(store.now(), static_cast<size_t>(max_items));
  return Napi::Number::New(env, static_cast<double>(freed));
}

// Test hook: moves the store clock forward instead of sleeping.
Napi::Value AdvanceClock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "advanceClock(seconds) expects a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  server->store().advance_clock(info[0].As<Napi::Number>().Int64Value());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("configure", Napi::Function::New(env, Configure, "configure"));
  exports.Set("isConfigured", Napi::Function::New(env, IsConfigured, "isConfigured"));
  exports.Set("openConnection", Napi::Function::New(env, OpenConnection, "openConnection"));
  exports.Set("closeConnection", Napi::Function::New(env, CloseConnection, "closeConnection"));
  napi_value feed;
  napi_create_function(env, "feed", NAPI_AUTO_LENGTH, Feed, nullptr, &feed);
  exports.Set("feed", Napi::Value(env, feed));
  const std::pair<const char*, napi_callback> direct[] = {
      {"get", Get}, {"set", Set}, {"delete", Delete}, {"touch", Touch}};
  for (const auto& [name, callback] : direct) {
    napi_value function;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &function);
    exports.Set(name, Napi::Value(env, function));
  }
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("connectionCount", Napi::Function::New(env, ConnectionCount, "connectionCount"));
  exports.Set("sweepExpired", Napi::Function::New(env, SweepExpired, "sweepExpired"));
  exports.Set("advanceClock", Napi::Function::New(env, AdvanceClock, "advanceClock"));
  return exports;
}

}  // namespace

NODE_API_MODULE(gravity, Init)
