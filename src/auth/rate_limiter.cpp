#include "auth/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

#include "base/clock.hpp"

namespace castmesh::auth {

RateLimiter::RateLimiter(double rate_per_sec, double burst, size_t max_keys, Clock clock)
    : rate_per_ms_(std::max(rate_per_sec, 1e-9) / 1000.0),
      burst_(std::max(burst, 1.0)),
      max_keys_(std::max<size_t>(max_keys, 1)),
      clock_(clock ? std::move(clock) : Clock([] { return mono_ms(); })) {}

void RateLimiter::refill(Bucket& b, int64_t now) const {
  if (now > b.at_ms) {
    b.tokens = std::min(burst_, b.tokens + static_cast<double>(now - b.at_ms) * rate_per_ms_);
  }
  // A clock that went backwards is taken as "no time passed" from the new reading on.
  b.at_ms = now;
}

RateLimiter::Bucket& RateLimiter::bucket(std::string_view key, int64_t now) {
  std::string k(key);
  auto it = buckets_.find(k);
  if (it != buckets_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= max_keys_) {
    buckets_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(k);
  Bucket b;
  b.tokens = burst_;
  b.at_ms = now;
  b.lru = lru_.begin();
  return buckets_.emplace(std::move(k), b).first->second;
}

RateLimiter::Decision RateLimiter::try_acquire(std::string_view key) {
  const int64_t now = clock_();
  std::lock_guard lock(mu_);
  Bucket& b = bucket(key, now);
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {true, 0};
  }
  const double wait = (1.0 - b.tokens) / rate_per_ms_;
  return {false, std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)))};
}

double RateLimiter::available(std::string_view key) {
  const int64_t now = clock_();
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) return burst_;
  refill(it->second, now);
  return it->second.tokens;
}

void RateLimiter::reset(std::string_view key) {
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) return;
  lru_.erase(it->second.lru);
  buckets_.erase(it);
}

size_t RateLimiter::size() const {
  std::lock_guard lock(mu_);
  return buckets_.size();
}

}  // namespace castmesh::auth
