#pragma once
/// \file Values returned by room::RoomManager and their JSON shapes, shared by the WebSocket
/// frames (docs/protocol.md) and the HTTP JSON API (README "HTTP API"), so both render alike.
/// Nothing secret (password hash, publish key) is ever part of these views.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "room/permissions.hpp"
#include "room/settings.hpp"
#include "room/sync.hpp"
#include "store/store.hpp"

namespace castmesh::room {

/// WebSocket close codes used by the room layer (the gateway sends them on Connection::close).
inline constexpr uint16_t kCloseKicked = 4001;       ///< kicked or banned (after a `kicked` frame)
inline constexpr uint16_t kCloseRoomDeleted = 4004;  ///< the room was deleted
inline constexpr uint16_t kCloseGoingAway = 1001;    ///< server shutting down (RoomManager::stop)

/// A room as listed/shown: `{id, name, has_password, allow_guests, settings, creator:
/// {user_id, username}, online, created_at_ms}`.
struct RoomInfo {
  std::string id;
  std::string name;
  bool has_password = false;
  bool allow_guests = false;
  RoomSettings settings;
  int64_t creator_id = 0;
  std::string creator;   ///< creator's username ("" if the user is gone)
  int64_t online = 0;    ///< connected users (distinct user ids) on this node
  int64_t created_at_ms = 0;
};

/// A member: `{user_id, username, role, permissions[], grants[], revokes[], banned,
/// kicked_until_ms, joined_at_ms, connections}` (permissions = effective, names).
struct MemberInfo {
  int64_t user_id = 0;
  std::string username;
  std::string role;
  Perms permissions = 0;  ///< effective
  Perms grants = 0;
  Perms revokes = 0;
  bool banned = false;
  int64_t kicked_until_ms = 0;
  int64_t joined_at_ms = 0;
  int64_t connections = 0;  ///< open WebSocket connections of this user in the room (this node)
};

boost::json::object to_json(const RoomInfo& r);
boost::json::object to_json(const MemberInfo& m);
/// `{id, kind, url, title, position, added_by}`.
boost::json::object to_json(const store::PlaylistItem& i);
/// `{id, user_id, username, text, created_at_ms}` (text verbatim; JSON escaping only).
boost::json::object to_json(const store::ChatMessage& c);
/// `{item_id, position_s, rate, playing, updated_at_ms, version}`.
boost::json::object to_json(const PlaybackState& s);

/// `{"type":"error","code":code,"message":message}` (+ `ref` when given, a JSON string or
/// number copied from the request). Serialized; for the gateway's own errors (rate_limited,
/// too_large) too.
std::shared_ptr<const std::string> make_error_frame(std::string_view code, std::string_view message,
                                                    const boost::json::value* ref = nullptr);

}  // namespace castmesh::room
