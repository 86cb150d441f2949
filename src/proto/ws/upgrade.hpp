#pragma once
/// \file Checks run on a room WebSocket handshake before the upgrade: the opening handshake
/// fields (RFC 6455 section 4.2.1), where the bearer token is, and the plain HTTP refusal sent
/// when the connection is not upgraded. No Beast here: these are pure functions.

#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "net/http_server.hpp"

namespace castmesh::ws {

/// Where a handshake's bearer token was found.
enum class TokenSource { none, query, header, cookie };

/// The bearer token of a handshake and its source (`token` empty when source is none).
struct Credentials {
  std::string token;
  TokenSource source = TokenSource::none;
};

/// A refused handshake, answered with a plain HTTP response instead of 101.
struct Refusal {
  unsigned status = 400;   ///< HTTP status: 400, 401, 403, 404, 409, 426, 429, 500, 503
  std::string code;        ///< machine-readable code for the JSON body, e.g. "unauthorized"
  std::string message;     ///< human-readable detail
};

/// Validates the opening handshake fields of a server-side upgrade (RFC 6455 4.2.1): method
/// GET, `Upgrade` contains the token "websocket", `Connection` contains "upgrade",
/// `Sec-WebSocket-Key` is the base64 encoding of 16 bytes (24 characters). Returns nullopt when
/// acceptable; otherwise 400 (code "bad_request"), or 426 (code "upgrade_required") when
/// `Sec-WebSocket-Version` is not 13 (RFC 6455 4.4; render_refusal adds the
/// `Sec-WebSocket-Version: 13` field).
std::optional<Refusal> check_upgrade(const net::HttpRequest& req);

/// Finds the bearer token: the `token` query parameter (percent-decoded), else
/// `Authorization: Bearer TOKEN` (scheme case-insensitive, RFC 6750 2.1), else the
/// `castmesh_token` cookie (RFC 6265 5.4; every Cookie field is searched). An empty value
/// counts as absent.
Credentials find_token(const net::HttpRequest& req);

/// True when the request has no `Origin` field, or its host[:port] equals the `Host` field
/// (ASCII case-insensitive; RFC 6454 origin serialization "scheme://host[:port]").
bool same_origin(const net::HttpRequest& req);

/// True for a plausible room id: 1..128 characters of [A-Za-z0-9_-].
bool valid_room_id(std::string_view id);

/// The refusal for an error of the authenticator or of RoomManager::attach: unauthorized ->
/// 401, forbidden -> 403, not_found -> 404, conflict -> 409, rate_limited -> 429,
/// unavailable/io_error/timeout -> 503, anything else -> 500. `Error::detail` becomes the
/// message (or a default text when empty).
Refusal refusal_for(const Error& e);

/// A complete HTTP/1.1 response for `r`: status line, `Content-Type: application/json`,
/// `Content-Length`, `Connection: close`, `Cache-Control: no-store` (plus `WWW-Authenticate:
/// Bearer` for 401 and `Sec-WebSocket-Version: 13` for 426) and the body
/// `{"error":"<message>","code":"<code>"}`.
std::string render_refusal(const Refusal& r);

}  // namespace castmesh::ws
