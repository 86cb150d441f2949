#pragma once
/// \file HTTP-FLV play: `GET /live/{app}/{stream}.flv` streams the live source as one endless
/// FLV file (FLV spec, Annex E) over a close-delimited HTTP/1.1 response.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "net/http_server.hpp"
#include "proto/httpflv/httpflv_config.hpp"

namespace castmesh::httpflv {

/// Serves HTTP-FLV players. Each player is a live::Subscription; its writer sends whatever
/// has queued as one gather write of shared packet payloads (no per-player copy), waiting up
/// to merge_window_ms after a wake-up so each write carries several frames. A player whose
/// write stays pending longer than send_timeout_ms is closed; a player that falls behind skips
/// whole GOPs (live::Subscription).
class HttpFlvService {
 public:
  HttpFlvService(const HttpFlvConfig& cfg, live::StreamHub& hub, Metrics& metrics);

  /// net::StreamHandler for the route prefix "/live/", suffix ".flv": `req.path_param` is
  /// "app/stream". Responds 400 for a malformed name, 404 when the stream is not live,
  /// otherwise 200 with `Content-Type: video/x-flv` and streams until the player leaves, the
  /// stream's Source is removed or the server stops. Runs on the socket's io_context.
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket& socket, const net::HttpRequest& req);

  /// Plays `key` to `socket` as serve() does, counting the player under `proto` (Proto::relay
  /// for another node's edge relay).
  boost::asio::awaitable<void> play(boost::asio::ip::tcp::socket& socket, const net::HttpRequest& req,
                                    const live::StreamKey& key, Proto proto);

  /// Adapts serve() to net::StreamHandler.
  net::StreamHandler handler();

 private:
  HttpFlvConfig cfg_;
  live::StreamHub& hub_;
  Metrics& metrics_;
};

/// Splits "app/stream" into a key; nullopt unless it has exactly two valid names.
std::optional<live::StreamKey> parse_stream_path(std::string_view path_param);

}  // namespace castmesh::httpflv
