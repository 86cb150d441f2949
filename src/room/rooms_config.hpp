#pragma once
/// \file The `rooms.*` configuration keys (docs/design.md, "Watch together"), read by app/ and passed by const&
/// to room::RoomManager and the WebSocket gateway.

#include <cstdint>

namespace castmesh::room {

struct RoomsConfig {
  int64_t chat_history = 200;           ///< rooms.chat_history: messages kept per room (>= 1)
  int64_t ws_max_frame_bytes = 16384;   ///< rooms.ws_max_frame_bytes: larger frames close with 1009 (gateway)
  int64_t ws_rate_per_sec = 20;         ///< rooms.ws_rate_per_sec: messages/s per connection, burst 2x (gateway)
  int64_t kick_cooldown_secs = 60;      ///< rooms.kick_cooldown_secs: default rejoin cooldown after a kick
  int64_t ws_send_queue = 256;          ///< rooms.ws_send_queue: queued messages per connection before disconnect (gateway)
  double live_target_offset_secs = 3;   ///< rooms.live_target_offset_secs: distance behind the live edge, seconds
};

}  // namespace castmesh::room
