#pragma once
/// \file Settings of the room WebSocket gateway (filled from config section `rooms`).

#include <cstdint>

namespace castmesh::ws {

/// Per-connection limits of the room WebSocket (docs/protocol.md, "Every frame is ...").
struct WsConfig {
  /// Largest message accepted, bytes (`rooms.ws_max_frame_bytes`). Larger -> close 1009.
  uint32_t max_frame_bytes = 16 * 1024;
  /// Messages per second a client may send on average (`rooms.ws_rate_per_sec`).
  uint32_t rate_per_sec = 20;
  /// Token-bucket size: messages a client may send at once (protocol default: 2x the rate).
  uint32_t burst = 40;
  /// Messages queued for one connection before it is treated as too slow and closed with
  /// 1008 (`rooms.ws_send_queue`).
  uint32_t send_queue = 256;
  /// A ping is sent this often, ms.
  uint32_t ping_interval_ms = 20'000;
  /// A connection from which nothing (no message, no pong) arrived for this long is closed, ms.
  uint32_t pong_timeout_ms = 60'000;
  /// After a close frame was requested, the socket is closed at the latest this much later
  /// (peer does not answer, or cannot even receive the close frame), ms.
  uint32_t close_timeout_ms = 5'000;
  /// When the token comes from the `castmesh_token` cookie, refuse (403) a handshake whose
  /// `Origin` names another host than `Host` (cross-site WebSocket hijacking). Tokens given
  /// explicitly (query, Authorization) are not checked: a foreign page cannot know them.
  bool cookie_same_origin_only = true;
};

}  // namespace castmesh::ws
