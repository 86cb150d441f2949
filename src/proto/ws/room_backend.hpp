#pragma once
/// \file ws::RoomBackend: the part of the room layer the WebSocket gateway talks to. In
/// production it is room::RoomManager (make_room_backend); tests plug in a double.

#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "room/room_manager.hpp"

namespace castmesh::ws {

/// One socket attached to one room. Destroying it detaches the socket from the room
/// (presence, buffering reports); it is destroyed on the socket's io thread.
class RoomSession {
 public:
  virtual ~RoomSession() = default;
  /// Hands one client text frame (a complete message, at most WsConfig::max_frame_bytes) to
  /// the room. Called on the socket's io thread, never after destruction begins.
  virtual void on_message(std::string_view json_text) = 0;
};

/// Attaches sockets to rooms.
class RoomBackend {
 public:
  virtual ~RoomBackend() = default;
  /// Connects `conn` as `who` to room `room_id` (see room::RoomManager::attach). Errors:
  /// Errc::not_found (unknown room), Errc::forbidden (not a member, banned, kick cooldown),
  /// Errc::unavailable (store down). May call conn->send()/close() before returning.
  virtual Result<std::unique_ptr<RoomSession>> attach(const std::string& room_id, const room::Identity& who,
                                                      std::shared_ptr<room::Connection> conn) = 0;
};

/// The production backend over `rooms` (which must outlive it): attach -> RoomManager::attach,
/// RoomSession::on_message -> RoomManager::on_message, ~RoomSession -> RoomManager::detach.
std::unique_ptr<RoomBackend> make_room_backend(room::RoomManager& rooms);

}  // namespace castmesh::ws
