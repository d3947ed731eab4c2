// SASL over the binary protocol: memcached proto_bin.c bin_list_sasl_mechs and
// process_bin_complete_sasl_auth, with the one mechanism memjs and most clients use: PLAIN
// (RFC 4616: "authzid NUL authcid NUL password"), checked against the users of memcached's SASL
// password file (ServerOptions::sasl_passwords; the file is parsed by src/protocol/sasl-plain.ts).
#include <string>
#include <string_view>
#include <unordered_map>

#include "protocol/binary.h"

namespace gravity::protocol {

namespace {

// SASL PLAIN: "[authzid] NUL authcid NUL passwd"; an authzid other than the user is refused.
bool plain_ok(const std::unordered_map<std::string, std::string>& passwords, std::string_view data) {
  const size_t first = data.find('\0');
  if (first == std::string_view::npos) return false;
  const size_t second = data.find('\0', first + 1);
  if (second == std::string_view::npos) return false;
  const std::string_view authzid = data.substr(0, first);
  const std::string_view user = data.substr(first + 1, second - first - 1);
  const std::string_view password = data.substr(second + 1);
  if (user.empty() || (!authzid.empty() && authzid != user)) return false;
  const auto found = passwords.find(std::string(user));
  return found != passwords.end() && found->second == password;
}

}  // namespace

void binary_sasl_list_mechs(Context& ctx, const BinaryRequest& req) {
  write_binary_ok(ctx, req, "PLAIN");
}

void binary_sasl_auth(Context& ctx, const BinaryRequest& req) {
  // Each attempt starts over (memcached init_sasl_conn): a failed one leaves the connection
  // unauthenticated. PLAIN has one step, so a SASL step never succeeds.
  const bool ok = req.command == binary_op::kSaslAuth && req.key == "PLAIN" &&
                  plain_ok(ctx.server.options().sasl_passwords, req.value);
  ctx.session.authenticated = ok;
  ctx.server.auth_cmds.fetch_add(1, std::memory_order_relaxed);
  if (ok) {
    write_binary_ok(ctx, req, "Authenticated");
    return;
  }
  ctx.server.auth_errors.fetch_add(1, std::memory_order_relaxed);
  write_binary_error(ctx, req, BinaryStatus::kAuthError);
}

}  // namespace gravity::protocol
