#include "proto/ws/message_limiter.hpp"

#include <algorithm>

namespace castmesh::ws {

MessageLimiter::MessageLimiter(uint32_t rate_per_sec, uint32_t burst)
    : rate_(std::max<uint32_t>(rate_per_sec, 1)), burst_(std::max<uint32_t>(burst, 1)), tokens_(burst_) {}

MessageLimiter::Verdict MessageLimiter::admit(int64_t now_ms) {
  if (!started_) {
    started_ = true;
    last_ms_ = now_ms;
  }
  // A clock going backwards refills nothing rather than draining.
  const double elapsed_s = now_ms > last_ms_ ? double(now_ms - last_ms_) / 1000.0 : 0.0;
  last_ms_ = std::max(last_ms_, now_ms);
  tokens_ = std::min(burst_, tokens_ + elapsed_s * rate_);
  excess_ = std::max(0.0, excess_ - elapsed_s * rate_);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return Verdict::accept;
  }
  excess_ += 1.0;
  if (excess_ > burst_) return Verdict::close;
  if (!notified_ || now_ms - last_notify_ms_ >= kNotifyIntervalMs) {
    notified_ = true;
    last_notify_ms_ = now_ms;
    return Verdict::drop_notify;
  }
  return Verdict::drop;
}

}  // namespace castmesh::ws
