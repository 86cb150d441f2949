#pragma once
/// \file cluster::internode::InternodeServer — the inter-node HTTP/1.1 API listener
/// (cluster.listen). Every request is authenticated with RequestVerifier before its route
/// handler runs; refused requests get 401 `{"error":"<reason>"}`.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "cluster/internode/signing.hpp"
#include "net/http_config.hpp"
#include "net/http_server.hpp"

namespace castmesh::net {
class IoPool;
}

namespace castmesh::cluster::internode {

/// Handler of an authenticated inter-node request. `sender_node` is the verified
/// X-Castmesh-Node value. Runs on an io thread of the pool: fast, non-blocking (see
/// net::Handler). An exception becomes a 500 response.
using InternodeHandler = std::function<net::HttpResponse(const net::HttpRequest&, const std::string& sender_node)>;

/// Streaming handler of an authenticated inter-node request (see net::StreamHandler).
using InternodeStreamHandler = std::function<boost::asio::awaitable<void>(
    boost::asio::ip::tcp::socket&, const net::HttpRequest&, const std::string& sender_node)>;

/// Asynchronous handler of an authenticated inter-node request (see net::AsyncHandler).
using InternodeAsyncHandler =
    std::function<boost::asio::awaitable<net::HttpResponse>(const net::HttpRequest&, const std::string& sender_node)>;

/// The inter-node API server: a net::Router plus a net::HttpServer on the given IoPool.
///
/// Requests to a known route are verified first (headers, signature, timestamp window,
/// nonce); a refusal is counted in verifier() and answered with 401
/// `{"error":"request signature expired"}` (etc., see refusal_message()). Refusals are logged
/// at warn level at most once per second per reason (the secret and signatures are never
/// logged). Unknown paths get 404 and wrong methods 405 without verification (no handler runs).
///
/// Life cycle: add() every route, then listen(). Shutdown as for net::HttpServer: stop(),
/// wait for connections() == 0 (bounded), stop and join the pool, destroy this object, then the
/// pool. `pool` and `metrics` must outlive this object; HTTP connection counters go to
/// `metrics` under Proto::http.
class InternodeServer {
 public:
  /// `secret`: the cluster secret (non-empty). `now_ms`: Unix ms clock for the timestamp
  /// window (default: system clock). Window 30 s, nonce TTL 60 s, cache 100000 nonces.
  InternodeServer(net::IoPool& pool, Metrics& metrics, std::string secret, const net::HttpConfig& cfg = {},
                  std::function<int64_t()> now_ms = {});
  ~InternodeServer();
  InternodeServer(const InternodeServer&) = delete;
  InternodeServer& operator=(const InternodeServer&) = delete;

  /// Adds a route matching exactly `path` (decoded, without query) for `method`. Must be called
  /// before listen().
  void add(std::string method, std::string path, InternodeHandler handler);
  /// A prefix/suffix route whose handler takes over the connection once the request is verified
  /// (a refused one gets 401 and is closed). Before listen().
  void add_stream(std::string method, std::string prefix, std::string suffix, InternodeStreamHandler handler);
  /// A prefix/suffix route with an asynchronous handler, verified first. Before listen().
  void add_async(std::string method, std::string prefix, std::string suffix, InternodeAsyncHandler handler);

  /// Binds host:port (port 0 = ephemeral) and starts accepting. Errors: Errc::io_error naming
  /// the address.
  Status listen(const std::string& host, uint16_t port);

  /// The bound port (0 before listen()).
  uint16_t port() const;

  /// Stops accepting and closes connections (see net::HttpServer::stop). Thread-safe, idempotent.
  void stop();

  /// Connections currently open.
  size_t connections() const;

  /// Refusal/acceptance counters (castmesh_internode_requests_refused_total{reason}).
  const RequestVerifier& verifier() const noexcept { return *verifier_; }

 private:
  net::HttpResponse handle(const net::HttpRequest& req, const InternodeHandler& handler);
  /// Verifies `req`; the refusal (logged and counted) or nullopt with `sender` set.
  std::optional<Refusal> check(const net::HttpRequest& req, std::string& sender);
  void log_refusal(Refusal r, const net::HttpRequest& req);

  std::unique_ptr<RequestVerifier> verifier_;
  net::Router router_;
  std::unique_ptr<net::HttpServer> http_;
  std::array<std::atomic<int64_t>, static_cast<size_t>(Refusal::count)> last_log_ms_{};
};

}  // namespace castmesh::cluster::internode
