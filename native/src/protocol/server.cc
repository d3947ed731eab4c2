#include "protocol/server.h"

namespace gravity {

Server::Server(const ServerOptions& options)
    : options_(options), store_(options.store), started_at_(store_.now()) {}

void Server::add_connection(ConnectionInfo* info) {
  std::lock_guard<std::mutex> lock(connections_mutex_);
  info->prev = connections_tail_;
  info->next = nullptr;
  if (connections_tail_ != nullptr) {
    connections_tail_->next = info;
  } else {
    connections_head_ = info;
  }
  connections_tail_ = info;
}

void Server::remove_connection(ConnectionInfo* info) {
  std::lock_guard<std::mutex> lock(connections_mutex_);
  (info->prev != nullptr ? info->prev->next : connections_head_) = info->next;
  (info->next != nullptr ? info->next->prev : connections_tail_) = info->prev;
  info->prev = info->next = nullptr;
}

}  // namespace gravity
