#include "cluster/internode/async_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/vector_body.hpp>
#include <boost/beast/http/write.hpp>

#include "base/clock.hpp"
#include "cluster/internode/internode_client.hpp"
#include "cluster/internode/signing.hpp"

namespace castmesh::cluster::internode {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::string why(const error_code& ec) { return ec == beast::error::timeout ? "timeout" : ec.message(); }

/// Resolves and connects `stream` to `addr`; sends the signed GET.
asio::awaitable<Status> connect_and_send(const Signer& signer, beast::tcp_stream& stream, const std::string& addr,
                                         const std::string& target) {
  auto hp = split_host_port(addr);
  if (!hp) co_return hp.error();
  const auto& [host, port] = *hp;
  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  auto literal = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(literal, port);
  } else {
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), kTuple);
    if (rec) co_return Error{Errc::unavailable, "resolve " + addr + ": " + rec.message()};
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }
  auto [cec, ep] = co_await stream.async_connect(endpoints, kTuple);
  if (cec) co_return Error{Errc::unavailable, "connect " + addr + ": " + why(cec)};
  error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);

  http::request<http::empty_body> req;
  req.method(http::verb::get);
  req.target(target);
  req.version(11);
  req.set(http::field::host, addr);
  req.set(http::field::user_agent, "castmesh-internode");
  for (const auto& [name, value] : sign_request(signer.secret, signer.node_id, "GET", target, "", wall_ms())) {
    req.set(name, value);
  }
  auto [wec, n] = co_await http::async_write(stream, req, kTuple);
  if (wec) co_return Error{Errc::unavailable, "send to " + addr + ": " + why(wec)};
  co_return ok_status();
}

}  // namespace

asio::awaitable<Result<FetchReply>> async_fetch(const Signer& signer, std::string addr, std::string target,
                                                std::chrono::milliseconds timeout, size_t max_body) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);
  if (auto st = co_await connect_and_send(signer, stream, addr, target); !st) co_return st.error();
  beast::flat_buffer buf;
  http::response_parser<http::vector_body<uint8_t>> parser;
  parser.body_limit(max_body);
  auto [ec, n] = co_await http::async_read(stream, buf, parser, kTuple);
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  if (ec == http::error::body_limit) co_return Error{Errc::too_large, "response from " + addr + " too large"};
  if (ec) co_return Error{Errc::unavailable, "response from " + addr + ": " + why(ec)};
  FetchReply r;
  r.status = parser.get().result_int();
  r.body = std::move(parser.get().body());
  co_return r;
}

asio::awaitable<Result<unsigned>> async_open_stream(const Signer& signer, tcp::socket& socket, std::string addr,
                                                    std::string target, std::chrono::milliseconds timeout,
                                                    Bytes& leftover) {
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(timeout);
  auto st = co_await connect_and_send(signer, stream, addr, target);
  if (!st) {
    socket = stream.release_socket();
    error_code ignored;
    socket.close(ignored);
    co_return st.error();
  }
  beast::flat_buffer buf;
  http::response_parser<http::empty_body> parser;
  parser.header_limit(16 * 1024);
  auto [ec, n] = co_await http::async_read_header(stream, buf, parser, kTuple);
  stream.expires_never();
  socket = stream.release_socket();
  if (ec) {
    error_code ignored;
    socket.close(ignored);
    co_return Error{Errc::unavailable, "response from " + addr + ": " + why(ec)};
  }
  auto data = buf.data();
  const auto* p = static_cast<const uint8_t*>(data.data());
  leftover.insert(leftover.end(), p, p + data.size());
  co_return static_cast<unsigned>(parser.get().result_int());
}

}  // namespace castmesh::cluster::internode
