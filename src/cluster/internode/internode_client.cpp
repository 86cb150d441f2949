#include "cluster/internode/internode_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "base/clock.hpp"
#include "cluster/internode/signing.hpp"

namespace castmesh::cluster::internode {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr uint64_t kMaxResponseBody = 8 * 1024 * 1024;

// Runs the io_context until the pending operation completes (run() returns when idle).
void run_once(asio::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

std::string snippet(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
  return out;
}

}  // namespace

Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view addr) {
  std::string_view host, port;
  if (!addr.empty() && addr.front() == '[') {
    size_t close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return Error{Errc::malformed, "bad address (want [v6]:port)"};
    }
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return Error{Errc::malformed, "address has no port (want host:port)"};
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return Error{Errc::malformed, "IPv6 address needs brackets"};
  }
  if (host.empty()) return Error{Errc::malformed, "address has no host"};
  if (port.empty() || port.size() > 5) return Error{Errc::malformed, "bad port in address"};
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return Error{Errc::malformed, "bad port in address"};
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p == 0 || p > 65535) return Error{Errc::malformed, "port out of range in address"};
  return std::pair<std::string, uint16_t>{std::string(host), static_cast<uint16_t>(p)};
}

InternodeClient::InternodeClient(std::string secret, std::string node_id)
    : secret_(std::move(secret)), node_id_(std::move(node_id)) {}

Result<std::string> InternodeClient::request(const std::string& addr, std::string_view method,
                                             std::string_view target, std::string_view body,
                                             std::chrono::milliseconds timeout) const {
  auto hp = split_host_port(addr);
  if (!hp) return hp.error();
  const auto& [host, port] = *hp;

  asio::io_context ioc(1);
  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  auto literal = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(literal, port);
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return Error{Errc::unavailable, "resolve " + addr + ": " + ec.message()};
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  beast::tcp_stream stream(ioc);
  stream.expires_after(timeout);  // one deadline for connect + write + read

  stream.async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
  run_once(ioc);
  if (ec) {
    return Error{Errc::unavailable,
                 "connect " + addr + ": " + (ec == beast::error::timeout ? std::string("timeout") : ec.message())};
  }

  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(http::field::host, addr);
  req.set(http::field::user_agent, "castmesh-internode");
  req.set(http::field::connection, "close");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : sign_request(secret_, node_id_, method, target, body, wall_ms())) {
    req.set(name, value);
  }
  req.body().assign(body.data(), body.size());
  req.prepare_payload();

  http::async_write(stream, req, [&](error_code e, size_t) { ec = e; });
  run_once(ioc);
  if (ec) {
    return Error{Errc::unavailable,
                 "send to " + addr + ": " + (ec == beast::error::timeout ? std::string("timeout") : ec.message())};
  }

  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  http::async_read(stream, buf, parser, [&](error_code e, size_t) { ec = e; });
  run_once(ioc);
  if (ec) {
    if (ec == beast::error::timeout) return Error{Errc::unavailable, "response from " + addr + ": timeout"};
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset) {
      return Error{Errc::unavailable, "response from " + addr + ": connection closed"};
    }
    return Error{Errc::io_error, "response from " + addr + ": " + ec.message()};
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);

  auto& res = parser.get();
  const unsigned status = res.result_int();
  if (status >= 200 && status < 300) return std::move(res.body());
  if (status == 401) return Error{Errc::forbidden, addr + " refused the request: " + snippet(res.body())};
  return Error{Errc::io_error, "HTTP " + std::to_string(status) + " from " + addr + ": " + snippet(res.body())};
}

}  // namespace castmesh::cluster::internode
