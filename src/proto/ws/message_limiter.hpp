#pragma once
/// \file ws::MessageLimiter: the per-connection message rate limit of the room protocol
/// (docs/protocol.md: `rooms.ws_rate_per_sec`, burst, `rate_limited`, close 1008).

#include <cstdint>

namespace castmesh::ws {

/// Token bucket of `burst` messages refilled at `rate_per_sec`, plus a flood detector.
///
/// Every message either takes a token (accept) or is dropped. Dropped messages fill an
/// "excess" counter that drains at `rate_per_sec`; when it exceeds `burst` the client keeps
/// sending far above the limit (about twice the rate, sustained, or a burst of 2 x burst at
/// once) and the verdict is close. A client slightly above the rate only loses its excess.
/// One instance per connection; not thread-safe (used by the connection's reader only).
class MessageLimiter {
 public:
  /// What to do with one incoming message.
  enum class Verdict {
    accept,       ///< hand it to the room
    drop,         ///< discard it silently (the client was told recently)
    drop_notify,  ///< discard it and send `{"type":"error","code":"rate_limited"}`
    close,        ///< flood: close the connection with 1008
  };

  /// `rate_per_sec` >= 1, `burst` >= 1 (smaller values are raised to 1). Starts full.
  MessageLimiter(uint32_t rate_per_sec, uint32_t burst);

  /// Classifies a message arriving at monotonic time `now_ms`. drop_notify is returned for
  /// the first drop and then at most once per `kNotifyIntervalMs`.
  Verdict admit(int64_t now_ms);

  /// Minimum time between two rate_limited notices, ms.
  static constexpr int64_t kNotifyIntervalMs = 1000;

 private:
  double rate_;
  double burst_;
  double tokens_;
  double excess_ = 0;
  int64_t last_ms_ = 0;
  bool started_ = false;
  int64_t last_notify_ms_ = 0;
  bool notified_ = false;
};

}  // namespace castmesh::ws
