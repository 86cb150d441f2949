#pragma once
/// \file Test-only WebSocket client helpers (Beast client over loopback) shared by the gateway
/// tests. Included by *_test.cpp files only.

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

namespace castmesh::ws::testing_client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using asio::ip::tcp;
inline constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

/// Polls `p` every 2 ms until it holds or `limit` passes.
template <typename Pred>
bool wait_until(Pred p, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// Runs client coroutine `f` on its own io_context for at most `limit`; fails the test when it
/// does not finish; rethrows what it threw.
inline void run_client(std::function<asio::awaitable<void>()> f,
                       std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  asio::io_context ioc;
  bool done = false;
  std::exception_ptr err;
  asio::co_spawn(ioc, f(), [&](std::exception_ptr e) {
    done = true;
    err = e;
  });
  ioc.run_for(limit);
  ASSERT_TRUE(done) << "client did not finish in time";
  if (err) std::rethrow_exception(err);
}

using Ws = websocket::stream<beast::tcp_stream>;

struct Handshake {
  std::unique_ptr<Ws> ws;
  boost::system::error_code ec;
  unsigned status = 0;
};

/// Connects and performs the client handshake for `target` with extra request fields.
using Fields = std::vector<std::pair<std::string, std::string>>;

inline asio::awaitable<Handshake> open_ws(uint16_t port, std::string target, Fields fields = {}, int rcvbuf = 0) {
  Handshake h;
  h.ws = std::make_unique<Ws>(co_await asio::this_coro::executor);
  auto& sock = beast::get_lowest_layer(*h.ws).socket();
  if (rcvbuf > 0) {
    sock.open(tcp::v4());
    sock.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
  }
  auto [cec] = co_await beast::get_lowest_layer(*h.ws).async_connect(
      tcp::endpoint(asio::ip::address_v4::loopback(), port), kTuple);
  if (cec) {
    h.ec = cec;
    co_return h;
  }
  h.ws->set_option(websocket::stream_base::decorator([fields](websocket::request_type& r) {
    for (const auto& [k, v] : fields) r.set(k, v);
  }));
  websocket::response_type res;
  auto [ec] = co_await h.ws->async_handshake(res, "127.0.0.1", target, kTuple);
  h.ec = ec;
  h.status = res.result_int();
  co_return h;
}

/// Reads frames into `frames` until the connection ends. Returns the close code received
/// (0 when it ended without a close frame). The read may end with connection_reset after the
/// close frame arrived: a server that fails a connection with unread input left (e.g. the rest
/// of an oversized message) resets it after sending its close frame, so the code counts.
inline asio::awaitable<unsigned> read_until_close(Ws& ws, std::vector<std::string>& frames) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) co_return ws.reason().code;
    frames.push_back(beast::buffers_to_string(buf.data()));
    buf.consume(buf.size());
  }
}

inline asio::awaitable<std::string> read_one(Ws& ws) {
  beast::flat_buffer buf;
  auto [ec, n] = co_await ws.async_read(buf, kTuple);
  if (ec) co_return "<error: " + ec.message() + ">";
  co_return beast::buffers_to_string(buf.data());
}


}  // namespace castmesh::ws::testing_client
