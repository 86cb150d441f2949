#pragma once
/// \file ws::RoomGateway: the room WebSocket endpoint `GET /api/v1/rooms/{room_id}/ws`
/// (docs/protocol.md). It authenticates and attaches the socket to its room BEFORE the upgrade
/// (refusals are plain HTTP responses), then runs the connection: frame size and message rate
/// limits, a bounded send queue, pings and the pong timeout. Beast is used only in the .cpp.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "net/http_server.hpp"
#include "proto/ws/room_backend.hpp"
#include "proto/ws/ws_config.hpp"
#include "room/room_manager.hpp"
#include "room/rooms_config.hpp"

namespace castmesh::ws {

/// Route of the endpoint: `router.add_stream("GET", kRoutePrefix, kRouteSuffix, gw.handler())`.
inline constexpr const char* kRoutePrefix = "/api/v1/rooms/";
inline constexpr const char* kRouteSuffix = "/ws";

/// Close status codes sent by the gateway (RFC 6455 7.4.1).
inline constexpr uint16_t kCloseUnsupportedData = 1003;  ///< a binary frame arrived
inline constexpr uint16_t kClosePolicy = 1008;           ///< flooding, send-queue overflow, ping timeout
inline constexpr uint16_t kCloseTooBig = 1009;           ///< message larger than max_frame_bytes
inline constexpr uint16_t kCloseInternal = 1011;         ///< the room layer threw

/// The gateway's counters (a snapshot; see RoomGateway::stats()). Counters only grow except
/// `connections`.
struct WsStats {
  int64_t connections = 0;            ///< gauge: upgraded sockets currently open
  uint64_t connections_total = 0;     ///< sockets upgraded
  uint64_t refused_total = 0;         ///< handshakes answered with an HTTP error instead of 101
  uint64_t messages_in_total = 0;     ///< frames read (text and binary)
  uint64_t messages_out_total = 0;    ///< frames written (excluding control frames)
  uint64_t bytes_in_total = 0;        ///< message payload bytes read
  uint64_t bytes_out_total = 0;       ///< message payload bytes written
  uint64_t rate_limited_total = 0;    ///< messages dropped by the rate limit
  uint64_t flood_closed_total = 0;    ///< connections closed 1008 for flooding
  uint64_t too_large_total = 0;       ///< connections closed 1009
  uint64_t binary_closed_total = 0;   ///< connections closed 1003
  uint64_t slow_closed_total = 0;     ///< connections closed 1008 on send-queue overflow
  uint64_t ping_timeouts_total = 0;   ///< connections closed because nothing arrived for pong_timeout
};

/// The `rooms.*` keys as WebSocket limits: max frame, rate (burst = 2 x rate, as the protocol
/// says), send queue; pings keep their defaults (20 s / 60 s).
WsConfig ws_config_from(const room::RoomsConfig& rooms);

struct GatewayCounters;  // internal, shared with live connections

/// Serves room WebSockets. Construct once (app/), register handler(), keep it alive until the
/// HttpServer and the IoPool are stopped and joined.
///
/// Handshake (each step's refusal is a plain HTTP response with body
/// `{"error":"...","code":"..."}` and `Connection: close`):
///  1. RFC 6455 4.2.1 fields (check_upgrade): 400, or 426 for a version other than 13;
///  2. room id from the path (`[A-Za-z0-9_-]{1,128}`): 404;
///  3. token from `?token=`, `Authorization: Bearer`, or the `castmesh_token` cookie: 401 when
///     missing; a cookie token with a foreign `Origin` -> 403 (WsConfig::cookie_same_origin_only);
///  4. the Authenticator: its error -> 401 (unavailable -> 503);
///  5. RoomBackend::attach: not_found -> 404, forbidden -> 403, unavailable -> 503 (refusal_for);
///  6. 101 Switching Protocols (Beast accept; no extensions, no subprotocol).
///
/// Connection (all on the socket's io thread; three coroutines: reader, writer, keeper):
///  - text frames go to RoomSession::on_message; a binary frame -> close 1003; a message over
///    max_frame_bytes -> close 1009 (Beast), invalid UTF-8 -> 1007 (Beast);
///  - MessageLimiter: excess messages are dropped with `{"type":"error","code":"rate_limited"}`
///    (at most one per second), a flood -> close 1008;
///  - room::Connection::send (any thread) appends to a queue of at most send_queue messages and
///    wakes the writer once per batch; the writer sends everything queued back-to-back. A full
///    queue drops it and closes the member with 1008 (counted in WsStats::slow_closed_total and
///    Metrics::slow_subscribers_closed_total);
///  - room::Connection::close(code, reason) sends the queued messages, then a close frame with
///    `code`; a peer that does not finish the closing handshake within close_timeout_ms (or
///    cannot even receive the close frame) has its socket closed;
///  - a ping every ping_interval_ms; nothing received for pong_timeout_ms -> close 1008;
///  - when the socket ends, the RoomSession is destroyed (detach) on the io thread.
/// HttpServer::stop() closes the socket and the session ends as above.
class RoomGateway {
 public:
  /// Token -> user. Runs on the io thread (keep it fast). Errors: unauthorized (bad or expired
  /// token) -> 401, unavailable -> 503, any other -> 401.
  using Authenticator = std::function<Result<room::Identity>(std::string_view token)>;

  /// Production form over `rooms` (make_room_backend). `rooms` and `metrics` must outlive the
  /// IoPool the sockets run on; `cfg` is copied.
  RoomGateway(room::RoomManager& rooms, Authenticator auth, const WsConfig& cfg, Metrics& metrics);
  /// Over any backend (tests); `rooms` must outlive the IoPool too.
  RoomGateway(RoomBackend& rooms, Authenticator auth, const WsConfig& cfg, Metrics& metrics);
  ~RoomGateway();
  RoomGateway(const RoomGateway&) = delete;
  RoomGateway& operator=(const RoomGateway&) = delete;

  /// net::StreamHandler for the route (kRoutePrefix, kRouteSuffix): `req.path_param` is the
  /// room id. The gateway must outlive every call.
  net::StreamHandler handler();

  /// Serves one handshake and, when accepted, the connection until it closes. Runs on the
  /// socket's io_context, which must be single-threaded (IoPool contexts are).
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket& socket, const net::HttpRequest& req);

  /// Current counters. Thread-safe.
  WsStats stats() const;

 private:
  std::unique_ptr<RoomBackend> owned_;
  RoomBackend& rooms_;
  Authenticator auth_;
  WsConfig cfg_;
  Metrics& metrics_;
  std::shared_ptr<GatewayCounters> counters_;
  std::shared_ptr<const std::string> rate_limited_frame_;
};

}  // namespace castmesh::ws
