#pragma once
/// \file Room endpoints of the HTTP JSON API, over room::RoomManager.
///
/// Every route needs a session (Authorization: Bearer or cookie castmesh_token; 401 otherwise)
/// except POST /rooms/{id}/guest. All paths are under /api/v1; `{id}` is a room id
/// ([A-Za-z0-9_-]{1,128}, else 404), `{user_id}` and `{item_id}` are decimal integers (else 404).
///
///   GET    /rooms                              -> 200 {rooms:[room]} (newest first)
///   POST   /rooms {name, password?, allow_guests?, settings?}   -> 201 {room}
///   GET    /rooms/{id}                         -> 200 {room, you?} (you = the caller's member)
///   PATCH  /rooms/{id} {name?, password?, allow_guests?, settings?} -> 200 {room}
///                                                 (password "" removes the password)
///   DELETE /rooms/{id}                         -> 204
///   POST   /rooms/{id}/join {password?}        -> 200 {member}; a request carrying a password
///                                                 is rate limited per client like logins (429)
///   POST   /rooms/{id}/guest {name, password?} -> 201 {user, token, expires_at_ms, member}
///                                                 + session cookie; 429 when rate limited
///   GET    /rooms/{id}/members                 -> 200 {members:[member]}
///   PATCH  /rooms/{id}/members/{user_id} {role?, grant?, revoke?, clear?} -> 200 {member}
///   POST   /rooms/{id}/members/{user_id}/kick {cooldown_secs?}  -> 204
///   POST   /rooms/{id}/members/{user_id}/ban   -> 204
///   POST   /rooms/{id}/members/{user_id}/unban -> 204
///   GET    /rooms/{id}/playlist                -> 200 {items:[item]}
///   POST   /rooms/{id}/playlist {kind, url, title?}             -> 201 {item}
///   DELETE /rooms/{id}/playlist/{item_id}      -> 204
///   POST   /rooms/{id}/playlist/reorder {item_ids}              -> 200 {items:[item]}
///   GET    /rooms/{id}/chat?limit=N            -> 200 {messages:[message]} (oldest first,
///                                                 N default 50, clamped by the room layer)
///   GET    /rooms/{id}/publish-key             -> 200 {publish_key, rtmp_url, stream}
///   POST   /rooms/{id}/publish-key             -> 200 {publish_key, rtmp_url, stream} (new key)
/// Shapes of room, member, item and message: room/views.hpp. rtmp_url is the server URL a
/// broadcaster enters in OBS ("rtmp://HOST[:PORT]/live"); publish_key is the stream key.
/// Errors as in auth_api.hpp ({"error","code"}; 400 bad_json / bad_request, 401, 403, 404, 405
/// with Allow for a known path and another method, 409, 429 + Retry-After, 503).
///
/// The WebSocket route GET /rooms/{id}/ws is not served here: register the gateway's stream
/// route (ws::kRoutePrefix, ws::kRouteSuffix) BEFORE calling register_rooms_api, because the
/// router takes the first matching route and these routes match every path under /rooms/.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "auth/accounts.hpp"
#include "base/result.hpp"
#include "net/http_server.hpp"
#include "room/room_manager.hpp"

namespace castmesh::api {

/// Settings of the room endpoints.
struct RoomsApiConfig {
  /// Host shown in rtmp_url; "" = the request's Host header without its port.
  std::string rtmp_host;
  /// RTMP port shown in rtmp_url (omitted when 1935).
  uint16_t rtmp_port = 1935;
};

/// The room layer's view of an authenticated user.
room::Identity room_identity(const auth::Identity& id);

/// Token -> room::Identity over `accounts` (for ws::RoomGateway's Authenticator). Errors:
/// Errc::unauthorized, Errc::unavailable. `accounts` must outlive the function.
std::function<Result<room::Identity>(std::string_view token)> room_authenticator(auth::Accounts& accounts);

/// Room passwords hashed with auth's Argon2id functions (for room::RoomManager).
room::PasswordFunctions argon2_room_passwords();

/// Adds the routes above. `rooms` and `accounts` must outlive the router's server; `cfg` is
/// copied.
void register_rooms_api(net::Router& r, room::RoomManager& rooms, auth::Accounts& accounts,
                        const RoomsApiConfig& cfg = {});

}  // namespace castmesh::api
