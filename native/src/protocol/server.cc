#include "protocol/server.h"

namespace gravity {

Server::Server(const ServerOptions& options)
    : options_(options), store_(options.store), started_at_(store_.now()) {}

}  // namespace gravity
