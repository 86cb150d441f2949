#pragma once
/// \file auth::RateLimiter: token buckets keyed by string (client address, username+address,
/// ...), in a bounded map.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace castmesh::auth {

/// Token-bucket limiter: each key has a bucket of `burst` tokens refilled at `rate_per_sec`;
/// an attempt takes one token or is refused with the time until the next token.
///
/// At most `max_keys` buckets are kept. When a new key arrives at the limit, the least
/// recently used bucket is dropped (a dropped bucket starts full again when its key returns, so
/// the bound trades a little precision under key floods for bounded memory).
/// Thread-safe (one mutex; every call is O(1)).
class RateLimiter {
 public:
  /// Milliseconds of a monotonic clock (default: mono_ms()). Going backwards is tolerated.
  using Clock = std::function<int64_t()>;

  /// Outcome of try_acquire().
  struct Decision {
    bool allowed = true;
    int64_t retry_after_ms = 0;  ///< when refused: time until one token is available (> 0)
  };

  /// `rate_per_sec` > 0 tokens per second, `burst` >= 1 bucket size, `max_keys` >= 1.
  RateLimiter(double rate_per_sec, double burst, size_t max_keys = 100'000, Clock clock = {});

  /// Takes one token of `key`'s bucket when there is one.
  Decision try_acquire(std::string_view key);

  /// Tokens `key` has now (burst for an unknown key), without taking any.
  double available(std::string_view key);

  /// Forgets `key` (e.g. after a successful login the per-user bucket may be reset).
  void reset(std::string_view key);

  /// Buckets currently kept (<= max_keys).
  size_t size() const;

 private:
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;
    std::list<std::string>::iterator lru;
  };
  Bucket& bucket(std::string_view key, int64_t now);  // mu_ held
  void refill(Bucket& b, int64_t now) const;

  const double rate_per_ms_;
  const double burst_;
  const size_t max_keys_;
  Clock clock_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // front = most recently used
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace castmesh::auth
