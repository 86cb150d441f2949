#pragma once
/// \file net::Router and net::HttpServer: a small HTTP/1.1 server (RFC 9112) for the API, HLS
/// and HTTP-FLV. Beast is used only in http_server.cpp; this header needs Asio only for the
/// socket type handed to streaming handlers.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/bytes.hpp"
#include "base/metrics.hpp"
#include "base/result.hpp"
#include "net/http_config.hpp"

namespace castmesh::net {

class IoPool;

/// Largest accepted request head (request line + header fields), bytes; larger -> 431.
inline constexpr size_t kMaxHeaderBytes = 8 * 1024;

/// A parsed request as handlers see it.
struct HttpRequest {
  std::string method;      ///< "GET", "HEAD", "POST", ... as sent
  std::string target;      ///< raw request-target, e.g. "/live/a%20b/s.flv?x=1"
  std::string path;        ///< percent-decoded path without the query, e.g. "/live/a b/s.flv"
  std::string query;       ///< raw query string without '?', not decoded ("" when absent)
  std::string path_param;  ///< the part of `path` between the matched route's prefix and suffix
  std::vector<std::pair<std::string, std::string>> headers;  ///< in arrival order, names as sent
  std::string body;        ///< at most HttpConfig::max_body_bytes
  std::string remote;      ///< peer "ip:port"

  /// The first header named `name` (ASCII case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
};

/// A complete response built by a Handler. The server adds Content-Length, Connection and
/// Server; for HEAD it sends the head with the body's Content-Length and no body.
struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra header fields
  /// When set, sent as the body instead of `body`, without a copy (e.g. an HLS segment
  /// shared with its store); kept alive until the write completes.
  std::shared_ptr<const Bytes> shared_body;
};

/// A JSON error response: `{"error":"<message>"}` with `status`. `message` is JSON-escaped.
HttpResponse json_error(unsigned status, std::string_view message);

/// Writes json_error(status, message) as a whole HTTP/1.1 response with `Connection: close` on a
/// socket a StreamHandler owns (a streaming route refusing a request before it streams).
/// Write errors are ignored (the caller closes the socket next).
boost::asio::awaitable<void> write_json_error(boost::asio::ip::tcp::socket& socket, unsigned status,
                                              std::string_view message);

/// Escapes `s` for use inside a JSON string literal (RFC 8259 section 7), no quotes added.
std::string json_escape(std::string_view s);

/// Decodes %XX escapes of a URL path (RFC 3986 2.1). '+' is kept as is. Errors:
/// Errc::malformed on a truncated or non-hex escape or a decoded NUL byte.
Result<std::string> percent_decode_path(std::string_view s);

/// Synchronous request handler. Runs on the connection's io thread: it must be fast and must
/// not block. An exception becomes a 500 response.
using Handler = std::function<HttpResponse(const HttpRequest&)>;

/// Asynchronous request handler: like Handler, but it may await I/O (an inter-node fetch, a
/// blocking-work executor) without holding the I/O thread. Runs on the connection's io_context.
/// An exception becomes a 500 response.
using AsyncHandler = std::function<boost::asio::awaitable<HttpResponse>(const HttpRequest&)>;

/// Takes over the connection after the request head was read (the body is not read; the
/// request's `body` is empty). The handler writes its own status line and headers, then as
/// much as it likes; the server closes the connection when the returned awaitable completes.
/// It runs on the socket's io_context (its single thread). HttpServer::stop() closes the
/// socket and emits a terminal cancellation into the handler's coroutine: the operation it
/// awaits (socket op, timer wait) completes with operation_aborted, and every later co_await
/// in that coroutine throws system_error(operation_aborted) (Asio's throw_if_cancelled
/// default), so clean up with RAII. Coroutines the handler co_spawns separately are not
/// cancelled; they see only the closed socket. Exceptions are caught and logged (aborts at
/// debug level). The socket object lives until the session ends: do not keep references to
/// it in work that outlives the handler.
/// Bytes the handler moves are not counted by the server (the handler counts its protocol).
using StreamHandler =
    std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket&, const HttpRequest&)>;

/// Maps (method, decoded path) to a handler. Routes are tried in the order they were added;
/// the first whose method and path both match wins. Add every route before the server
/// starts; matching is then read-only and thread-safe.
class Router {
 public:
  /// What find() resolved.
  struct Match {
    enum class Kind { none, method_not_allowed, handler, async, stream } kind = Kind::none;
    const Handler* handler = nullptr;              ///< Kind::handler
    const AsyncHandler* async = nullptr;           ///< Kind::async
    const StreamHandler* stream = nullptr;         ///< Kind::stream
    std::string path_param;                        ///< see HttpRequest::path_param
    std::string allow;                             ///< Kind::method_not_allowed: "GET, HEAD"
  };

  /// Matches paths that start with `prefix`, end with `suffix` and have at least one
  /// character between them (that part becomes `path_param`), e.g. ("/live/", ".m3u8")
  /// matches "/live/app/s.m3u8" with path_param "app/s".
  void add(std::string method, std::string prefix, std::string suffix, Handler h);
  /// Matches exactly `path` (path_param is empty), e.g. "/healthz".
  void add(std::string method, std::string path, Handler h);
  /// Prefix/suffix route whose handler takes over the connection (see StreamHandler).
  void add_stream(std::string method, std::string prefix, std::string suffix, StreamHandler h);
  /// Prefix/suffix route with an asynchronous handler (HEAD matches GET routes, as for add()).
  void add_async(std::string method, std::string prefix, std::string suffix, AsyncHandler h);
  /// Exact-path route with an asynchronous handler.
  void add_async(std::string method, std::string path, AsyncHandler h);

  /// Resolves a request. A HEAD request also matches GET routes with a plain Handler (not
  /// stream routes). When the path matches only routes of other methods the result is
  /// method_not_allowed with the allowed methods listed.
  Match find(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method, prefix, suffix;
    bool exact = false;
    Handler handler;
    StreamHandler stream;
    AsyncHandler async;
  };
  static bool path_matches(const Route& r, std::string_view path);
  std::vector<Route> routes_;
};

/// HTTP/1.1 server with keep-alive. One coroutine per connection on the io_context chosen
/// round-robin from the IoPool.
///
/// Per request: the head must arrive within request_timeout_ms (also the keep-alive idle
/// limit, then the connection is closed silently); a head over kMaxHeaderBytes -> 431; a
/// body over max_body_bytes -> 413; a target that is not origin-form, has a bad %-escape or
/// a ".." segment -> 400; no route -> 404; wrong method -> 405 with Allow. Error bodies are
/// `{"error":"..."}`. Connections beyond max_connections get 503 and are closed.
/// Metrics: Proto::http connections (gauge), connections_total, bytes_in/out_total (request
/// and response bytes of plain handlers).
class HttpServer {
 public:
  /// `router` and `metrics` must outlive the pool (sessions left pending in a stopped pool
  /// are destroyed with its io_contexts and release their metrics then); the server must be
  /// destroyed before the pool. `cfg` is copied. Shutdown order: stop(), wait (bounded) for
  /// connections() == 0, pool.stop(), pool.join(), destroy the server, then the pool.
  HttpServer(IoPool& pool, const HttpConfig& cfg, Router& router, Metrics& metrics);
  /// Calls stop(). Connections still open keep what they need alive and end on their own.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds and listens on host:port (port 0 = ephemeral, read it back with port()) and
  /// starts accepting on the pool (the pool may be started before or after). Errors:
  /// Errc::io_error naming the address (bad address, address in use, ...).
  Status listen(const std::string& host, uint16_t port);

  /// The bound port (0 before listen()).
  uint16_t port() const;

  /// Stops accepting, closes idle keep-alive connections, lets a response being written
  /// finish and then closes its connection, and closes/cancels streaming connections (see
  /// StreamHandler). Thread-safe, idempotent, non-blocking.
  void stop();

  /// Number of connections currently open (accepted and not yet finished).
  size_t connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace castmesh::net
