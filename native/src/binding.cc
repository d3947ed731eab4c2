// The Node-API binding: the only file that includes <napi.h>. It converts arguments, calls the
// plain C++ library and maps failures to one JS error. No C++ exception crosses the boundary.
//
// The Server (store + process counters) is process-global: the main thread configures it and
// every Bun worker that loads this addon serves the same one.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

#include "protocol/connection.h"
#include "protocol/server.h"

namespace {

std::mutex g_server_mutex;
gravity::Server* g_server = nullptr;  // created once by configure(); lives until process exit

gravity::Server* server_or_throw(Napi::Env env) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server == nullptr) {
    Napi::Error::New(env, "gravity native store is not configured").ThrowAsJavaScriptException();
  }
  return g_server;
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

// configure({ memoryBytes, maxItemBytes, threads, version, policy, shardCount }) -> boolean
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
  Napi::Value policy = options.Get("policy");
  if (policy.IsString()) server_options.store.policy = policy.As<Napi::String>().Utf8Value();
  if (!gravity::make_policy(server_options.store.policy)) {
    Napi::Error::New(env, "unknown eviction policy: " + server_options.store.policy)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  std::lock_guard<std::mutex> lock(g_server_mutex);
  if (g_server != nullptr) return Napi::Boolean::New(env, false);
  g_server = new gravity::Server(server_options);
  return Napi::Boolean::New(env, true);
}

Napi::Value IsConfigured(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_server_mutex);
  return Napi::Boolean::New(info.Env(), g_server != nullptr);
}

Napi::Value OpenConnection(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  gravity::Server* server = server_or_throw(env);
  if (server == nullptr) return env.Undefined();
  auto* handle = new ConnectionHandle{std::make_unique<gravity::Connection>(*server)};
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
  bool is_array_buffer = false;
  if (napi_is_arraybuffer(env, value, &is_array_buffer) == napi_ok && is_array_buffer) {
    if (napi_get_arraybuffer_info(env, value, &raw, size) != napi_ok) return false;
    *data = static_cast<uint8_t*>(raw);
    return true;
  }
  bool is_typed_array = false;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array) return false;
  napi_typedarray_type type;
  napi_value array_buffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, size, &raw, &array_buffer, &byte_offset) !=
          napi_ok ||
      type != napi_uint8_array) {
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
  put("evictions", s.evictions);
  put("reclaimed", s.reclaimed);
  put("expired_unfetched", s.expired_unfetched);
  put("evicted_unfetched", s.evicted_unfetched);
  put("admissions_rejected", s.admissions_rejected);
  put("cmd_get", s.cmd_get);
  put("cmd_set", s.cmd_set);
  put("get_hits", s.get_hits);
  put("get_misses", s.get_misses);
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
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("connectionCount", Napi::Function::New(env, ConnectionCount, "connectionCount"));
  exports.Set("sweepExpired", Napi::Function::New(env, SweepExpired, "sweepExpired"));
  exports.Set("advanceClock", Napi::Function::New(env, AdvanceClock, "advanceClock"));
  return exports;
}

}  // namespace

NODE_API_MODULE(gravity, Init)
