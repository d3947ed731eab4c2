// SASL over the binary protocol: memcached proto_bin.c bin_list_sasl_mechs,
// process_bin_complete_sasl_auth and sasl_defs.c's password-file check, with the one mechanism
// memjs and most clients use: PLAIN (RFC 4616: "authzid NUL authcid NUL password").
#include <string_view>

#include "protocol/binary.h"

namespace gravity::protocol {

namespace {

// memcached sasl_server_userdb_checkpass: the first line whose user matches decides; its password
// ends at ':' (more fields), CR, LF or the end of the file.
bool password_ok(std::string_view passwords, std::string_view user, std::string_view password) {
  size_t pos = 0;
  while (pos < passwords.size()) {
    size_t end = passwords.find('\n', pos);
    if (end == std::string_view::npos) end = passwords.size();
    const std::string_view line = passwords.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= user.size() || line.substr(0, user.size()) != user || line[user.size()] != ':') {
      continue;
    }
    std::string_view stored = line.substr(user.size() + 1);
    const size_t stop = stored.find_first_of(":\r");
    if (stop != std::string_view::npos) stored = stored.substr(0, stop);
    return stored == password;
  }
  return false;
}

// SASL PLAIN: "[authzid] NUL authcid NUL passwd"; an authzid other than the user is refused.
bool plain_ok(std::string_view passwords, std::string_view data) {
  const size_t first = data.find('\0');
  if (first == std::string_view::npos) return false;
  const size_t second = data.find('\0', first + 1);
  if (second == std::string_view::npos) return false;
  const std::string_view authzid = data.substr(0, first);
  const std::string_view user = data.substr(first + 1, second - first - 1);
  const std::string_view password = data.substr(second + 1);
  if (user.empty() || (!authzid.empty() && authzid != user)) return false;
  return password_ok(passwords, user, password);
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
