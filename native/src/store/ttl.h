// Expiry as memcached defines it (protocol.txt, "Expiration times").
#pragma once

#include <cstdint>

namespace gravity {

// Relative times above this many seconds are absolute unix times.
constexpr int64_t kMaxRelativeExpirySeconds = 60 * 60 * 24 * 30;

// A unix time that is always in the past: an item with it is expired on arrival.
constexpr int64_t kAlreadyExpired = 1;

// Converts a protocol exptime into an absolute unix second (0 = never):
// 0 never expires; negative is already expired; up to 30 days is relative to now;
// above that it is an absolute unix time (already expired if not in the future).
constexpr int64_t absolute_expiry(int64_t exptime, int64_t now) {
  if (exptime == 0) return 0;
  if (exptime < 0) return kAlreadyExpired;
  if (exptime > kMaxRelativeExpirySeconds) return exptime <= now ? kAlreadyExpired : exptime;
  return now + exptime;
}

// Seconds an item with this absolute expiry has left, as meta "t" reports it (-1 = never).
constexpr int64_t remaining_ttl(int64_t expires_at, int64_t now) {
  if (expires_at == 0) return -1;
  return expires_at > now ? expires_at - now : 0;
}

}  // namespace gravity
