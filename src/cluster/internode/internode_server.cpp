#include "cluster/internode/internode_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "net/io_pool.hpp"

namespace castmesh::cluster::internode {

namespace {

// Request text in a log line: printable ASCII only, bounded.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
  return out;
}

}  // namespace

InternodeServer::InternodeServer(net::IoPool& pool, Metrics& metrics, std::string secret,
                                 const net::HttpConfig& cfg, std::function<int64_t()> now_ms)
    : verifier_(std::make_unique<RequestVerifier>(std::move(secret), 30000, 60000, 100000, std::move(now_ms))),
      http_(std::make_unique<net::HttpServer>(pool, cfg, router_, metrics)) {}

InternodeServer::~InternodeServer() {
  // The HttpServer references router_; destroy it first (it stops accepting).
  http_.reset();
}

void InternodeServer::add(std::string method, std::string path, InternodeHandler handler) {
  router_.add(std::move(method), std::move(path),
              [this, h = std::move(handler)](const net::HttpRequest& req) { return handle(req, h); });
}

std::optional<Refusal> InternodeServer::check(const net::HttpRequest& req, std::string& sender) {
  auto refusal = verifier_->verify(
      req.method, req.target, req.body, [&req](std::string_view name) { return req.header(name); }, &sender);
  if (refusal) log_refusal(*refusal, req);
  return refusal;
}

net::HttpResponse InternodeServer::handle(const net::HttpRequest& req, const InternodeHandler& handler) {
  std::string sender;
  if (auto refusal = check(req, sender)) return net::json_error(401, refusal_message(*refusal));
  return handler(req, sender);
}

void InternodeServer::add_stream(std::string method, std::string prefix, std::string suffix,
                                 InternodeStreamHandler handler) {
  router_.add_stream(std::move(method), std::move(prefix), std::move(suffix),
                     [this, h = std::move(handler)](boost::asio::ip::tcp::socket& sock,
                                                    const net::HttpRequest& req) -> boost::asio::awaitable<void> {
                       std::string sender;
                       if (auto refusal = check(req, sender)) {
                         co_await net::write_json_error(sock, 401, refusal_message(*refusal));
                         co_return;
                       }
                       co_await h(sock, req, sender);
                     });
}

void InternodeServer::add_async(std::string method, std::string prefix, std::string suffix,
                                InternodeAsyncHandler handler) {
  router_.add_async(std::move(method), std::move(prefix), std::move(suffix),
                    [this, h = std::move(handler)](const net::HttpRequest& req) -> boost::asio::awaitable<net::HttpResponse> {
                      std::string sender;
                      if (auto refusal = check(req, sender)) co_return net::json_error(401, refusal_message(*refusal));
                      co_return co_await h(req, sender);
                    });
}

void InternodeServer::log_refusal(Refusal r, const net::HttpRequest& req) {
  auto& last = last_log_ms_[static_cast<size_t>(r)];
  const int64_t now = mono_ms();
  int64_t prev = last.load(std::memory_order_relaxed);
  if (prev != 0 && now - prev < 1000) return;
  if (!last.compare_exchange_strong(prev, now, std::memory_order_relaxed)) return;
  // The node header is logged only when it is a valid id (it is attacker-controlled text).
  const std::string node = req.header(kHeaderNode);
  const std::string_view shown = valid_node_id(node) ? std::string_view(node) : std::string_view("?");
  spdlog::warn("internode: refused {} {} from {} (node {}): {} ({} so far)", printable(req.method), printable(req.path), req.remote, shown,
               refusal_name(r), verifier_->refused_total(r));
}

Status InternodeServer::listen(const std::string& host, uint16_t port) { return http_->listen(host, port); }

uint16_t InternodeServer::port() const { return http_->port(); }

void InternodeServer::stop() { http_->stop(); }

size_t InternodeServer::connections() const { return http_->connections(); }

}  // namespace castmesh::cluster::internode
