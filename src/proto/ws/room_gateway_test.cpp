// Gateway mechanics over loopback: a real net::HttpServer, the real RoomGateway, a real Beast
// WebSocket client, and a small RoomBackend double standing in for the room layer.

#include "proto/ws/room_gateway.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"
#include "proto/ws/ws_test_client.hpp"

namespace castmesh::ws {
namespace {

using namespace testing_client;
using namespace std::chrono_literals;

// ------------------------------------------------------------------------------------------
// Room layer double

class FakeRooms;

class FakeSession final : public RoomSession {
 public:
  FakeSession(FakeRooms& rooms, std::shared_ptr<room::Connection> conn) : rooms_(rooms), conn_(std::move(conn)) {}
  ~FakeSession() override;
  void on_message(std::string_view text) override;

 private:
  FakeRooms& rooms_;
  std::shared_ptr<room::Connection> conn_;
};

/// Rooms: "nope" does not exist, "locked" refuses, "down" is unavailable; any other id
/// accepts and sends a welcome frame naming the user.
class FakeRooms final : public RoomBackend {
 public:
  Result<std::unique_ptr<RoomSession>> attach(const std::string& room_id, const room::Identity& who,
                                              std::shared_ptr<room::Connection> conn) override {
    attaches++;
    if (room_id == "nope") return Error{Errc::not_found, "no such room"};
    if (room_id == "locked") return Error{Errc::forbidden, "not a member"};
    if (room_id == "down") return Error{Errc::unavailable, "store down"};
    conn->send(std::make_shared<const std::string>(R"({"type":"welcome","user":")" + who.username + "\"}"));
    {
      std::lock_guard lock(mu);
      last_conn = conn;
    }
    attached++;
    return std::unique_ptr<RoomSession>(std::make_unique<FakeSession>(*this, std::move(conn)));
  }

  std::shared_ptr<room::Connection> connection() {
    std::lock_guard lock(mu);
    return last_conn;
  }
  std::vector<std::string> messages() {
    std::lock_guard lock(mu);
    return received;
  }

  std::atomic<int> attaches{0};
  std::atomic<int> attached{0};
  std::atomic<int> detached{0};
  std::atomic<int> on_message_calls{0};
  std::mutex mu;
  std::vector<std::string> received;
  std::shared_ptr<room::Connection> last_conn;
};

FakeSession::~FakeSession() { rooms_.detached++; }

// "echo X" -> X back; "many N" -> N numbered frames; "kick" -> kicked frame then close 4001.
void FakeSession::on_message(std::string_view text) {
  rooms_.on_message_calls++;
  {
    std::lock_guard lock(rooms_.mu);
    rooms_.received.emplace_back(text);
  }
  if (text.substr(0, 5) == "echo ") {
    conn_->send(std::make_shared<const std::string>(text.substr(5)));
  } else if (text.substr(0, 5) == "many ") {
    const int n = std::stoi(std::string(text.substr(5)));
    for (int i = 0; i < n; ++i) conn_->send(std::make_shared<const std::string>("m" + std::to_string(i)));
  } else if (text == "kick") {
    conn_->send(std::make_shared<const std::string>(R"({"type":"kicked","reason":"test"})"));
    conn_->close(4001, "kicked");
  }
}

// ------------------------------------------------------------------------------------------
// Fixture

class RoomGatewayTest : public ::testing::Test {
 protected:
  void start(WsConfig cfg = test_config()) {
    auto auth = [](std::string_view token) -> Result<room::Identity> {
      if (token == "good") return room::Identity{1, "alice", "user"};
      if (token == "down") return Error{Errc::unavailable, "store down"};
      return Error{Errc::unauthorized, "bad token"};
    };
    gateway_ = std::make_unique<RoomGateway>(rooms_, auth, cfg, metrics_);
    router_.add_stream("GET", kRoutePrefix, kRouteSuffix, gateway_->handler());
    net::HttpConfig http;
    http.request_timeout_ms = 3000;
    server_ = std::make_unique<net::HttpServer>(pool_, http, router_, metrics_);
    auto st = server_->listen("127.0.0.1", 0);
    ASSERT_TRUE(st.ok()) << st.error().message();
    pool_.run();
  }

  static WsConfig test_config() {
    WsConfig c;
    c.max_frame_bytes = 1024;
    c.send_queue = 16;
    c.close_timeout_ms = 500;
    return c;
  }

  void TearDown() override {
    if (server_) {
      server_->stop();
      wait_until([&] { return server_->connections() == 0; }, 3000ms);
    }
    pool_.stop();
    pool_.join();
  }

  uint16_t port() const { return server_->port(); }

  // Order matters: see net/http_server_test.cpp (server before pool, pool before the rest).
  FakeRooms rooms_;
  net::Router router_;
  Metrics metrics_;
  std::unique_ptr<RoomGateway> gateway_;
  net::IoPool pool_{1};
  std::unique_ptr<net::HttpServer> server_;
};

int raw_status(uint16_t port, const std::string& request, net::testing::RawResponse* out = nullptr,
               int timeout_ms = 5000) {
  net::testing::RawClient c(port, timeout_ms);
  if (!c.connected() || !c.send(request)) return -1;
  auto r = c.read_response();
  if (!r) return -2;
  if (out) *out = *r;
  return r->status;
}

std::string upgrade_request(const std::string& target, const std::string& extra = "") {
  return "GET " + target +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
         extra + "\r\n";
}

// ------------------------------------------------------------------------------------------
// Handshake refusals: plain HTTP before any upgrade

TEST_F(RoomGatewayTest, RefusesBadHandshakesWithPlainHttp) {
  start();
  net::testing::RawResponse r;
  EXPECT_EQ(raw_status(port(), "GET /api/v1/rooms/r1/ws?token=good HTTP/1.1\r\nHost: x\r\n\r\n", &r), 400);
  EXPECT_NE(r.body.find("\"code\":\"bad_request\""), std::string::npos) << r.body;

  std::string v8 = upgrade_request("/api/v1/rooms/r1/ws?token=good");
  v8.replace(v8.find("Version: 13"), 11, "Version: 8");
  EXPECT_EQ(raw_status(port(), v8, &r), 426);
  EXPECT_EQ(r.headers["sec-websocket-version"], "13");

  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/r1/ws"), &r), 401);
  EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
  EXPECT_NE(r.body.find("\"code\":\"unauthorized\""), std::string::npos) << r.body;
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/r1/ws?token=bad")), 401);
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/r1/ws?token=down")), 503);
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/nope/ws?token=good"), &r), 404);
  EXPECT_NE(r.body.find("\"code\":\"not_found\""), std::string::npos) << r.body;
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/locked/ws?token=good"), &r), 403);
  EXPECT_NE(r.body.find("\"code\":\"forbidden\""), std::string::npos) << r.body;
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/down/ws?token=good")), 503);
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/a.b/ws?token=good")), 404);
  // A cookie token from a foreign page is refused; the same cookie from our origin is not.
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/r1/ws",
                                               "Cookie: castmesh_token=good\r\nOrigin: http://evil.example\r\n")),
            403);
  EXPECT_EQ(raw_status(port(), upgrade_request("/api/v1/rooms/r1/ws",
                                               "Cookie: castmesh_token=good\r\nOrigin: http://127.0.0.1\r\n"),
                       nullptr, 500),  // 101 has no length: the read ends at the timeout
            101);

  EXPECT_EQ(rooms_.attaches.load(), 4);  // nope, locked, down, and the same-origin cookie
  EXPECT_EQ(gateway_->stats().refused_total, 10u);
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

// ------------------------------------------------------------------------------------------
// Connected sessions

TEST_F(RoomGatewayTest, WelcomeEchoAndDetachOnClientClose) {
  start();
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    EXPECT_FALSE(h.ec) << h.ec.message();
    EXPECT_EQ(h.status, 101u);
    if (h.ec) co_return;
    {
      const std::string got = co_await read_one(*h.ws);
      EXPECT_EQ(got, R"({"type":"welcome","user":"alice"})");
    }
    co_await h.ws->async_write(asio::buffer(std::string("echo {\"type\":\"pong\"}")), asio::use_awaitable);
    {
      const std::string got = co_await read_one(*h.ws);
      EXPECT_EQ(got, R"({"type":"pong"})");
    }
    co_await h.ws->async_write(asio::buffer(std::string("many 10")), asio::use_awaitable);
    for (int i = 0; i < 10; ++i) {
      const std::string got = co_await read_one(*h.ws);
      EXPECT_EQ(got, "m" + std::to_string(i));
    }
    EXPECT_EQ(gateway_->stats().connections, 1);
    co_await h.ws->async_close(websocket::close_code::normal, asio::use_awaitable);
  });
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
  EXPECT_TRUE(wait_until([&] { return gateway_->stats().connections == 0; }));
  auto st = gateway_->stats();
  EXPECT_EQ(st.connections_total, 1u);
  EXPECT_EQ(st.messages_in_total, 2u);
  EXPECT_EQ(st.messages_out_total, 12u);
  EXPECT_EQ(rooms_.messages(), (std::vector<std::string>{"echo {\"type\":\"pong\"}", "many 10"}));
}

TEST_F(RoomGatewayTest, TokenFromBearerHeaderAndCookie) {
  start();
  run_client([&]() -> asio::awaitable<void> {
    // (Field lists are built outside the co_await expressions: GCC 12 rejects braced
    // initializers of string literals there.)
    const Fields bearer = {{"Authorization", "Bearer good"}};
    const Fields cookie = {{"Cookie", "theme=dark; castmesh_token=good"}};
    const Fields wrong = {{"Authorization", "Bearer nope"}};
    auto a = co_await open_ws(port(), "/api/v1/rooms/r1/ws", bearer);
    EXPECT_EQ(a.status, 101u);
    auto b = co_await open_ws(port(), "/api/v1/rooms/r2/ws", cookie);
    EXPECT_EQ(b.status, 101u);
    auto c = co_await open_ws(port(), "/api/v1/rooms/r2/ws", wrong);
    EXPECT_EQ(c.status, 401u);
    EXPECT_EQ(c.ec, websocket::error::upgrade_declined);
  });
  EXPECT_EQ(rooms_.attached.load(), 2);
}

TEST_F(RoomGatewayTest, OversizeMessageClosesWith1009) {
  start();
  unsigned code = 0;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    co_await h.ws->async_write(asio::buffer(std::string(1024, 'x')), asio::use_awaitable);  // at the limit: fine
    co_await h.ws->async_write(asio::buffer(std::string(1025, 'y')), asio::use_awaitable);
    std::vector<std::string> frames;
    code = co_await read_until_close(*h.ws, frames);
  });
  EXPECT_EQ(code, 1009u);
  EXPECT_EQ(rooms_.on_message_calls.load(), 1);
  // Beast sends the close frame before the server's read completes: the count may lag.
  EXPECT_TRUE(wait_until([&] { return gateway_->stats().too_large_total == 1u; }));
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

TEST_F(RoomGatewayTest, BinaryFrameClosesWith1003) {
  start();
  unsigned code = 0;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    h.ws->binary(true);
    co_await h.ws->async_write(asio::buffer(std::string("\x01\x02", 2)), asio::use_awaitable);
    std::vector<std::string> frames;
    code = co_await read_until_close(*h.ws, frames);
  });
  EXPECT_EQ(code, 1003u);
  EXPECT_EQ(rooms_.on_message_calls.load(), 0);
  EXPECT_EQ(gateway_->stats().binary_closed_total, 1u);
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

TEST_F(RoomGatewayTest, FloodGetsRateLimitedThenClosedWith1008) {
  start();  // 20/s, burst 40
  unsigned code = 0;
  std::vector<std::string> frames;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    for (int i = 0; i < 300; ++i) {
      auto [ec, n] = co_await h.ws->async_write(asio::buffer(std::string("x")), kTuple);
      if (ec) break;
    }
    code = co_await read_until_close(*h.ws, frames);
  });
  EXPECT_EQ(code, 1008u);
  bool saw_rate_limited = false;
  for (const auto& f : frames) saw_rate_limited |= f.find("\"code\":\"rate_limited\"") != std::string::npos;
  EXPECT_TRUE(saw_rate_limited);
  // The burst got through, little more (the bucket refills at 20/s while the flood arrives).
  EXPECT_GE(rooms_.on_message_calls.load(), 40);
  EXPECT_LE(rooms_.on_message_calls.load(), 50);
  const auto st = gateway_->stats();
  EXPECT_EQ(st.flood_closed_total, 1u);
  EXPECT_GE(st.rate_limited_total, 41u);
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

TEST_F(RoomGatewayTest, ModerateOverrateOnlyDropsExcess) {
  WsConfig cfg = test_config();
  cfg.rate_per_sec = 5;
  cfg.burst = 5;
  start(cfg);
  std::vector<std::string> frames;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    asio::steady_timer t(co_await asio::this_coro::executor);
    // 8 messages at once: 5 pass, 3 are dropped with one notice; no close.
    for (int i = 0; i < 8; ++i) co_await h.ws->async_write(asio::buffer(std::string("x")), asio::use_awaitable);
    frames.push_back(co_await read_one(*h.ws));  // welcome
    frames.push_back(co_await read_one(*h.ws));  // rate_limited
    t.expires_after(300ms);
    co_await t.async_wait(asio::use_awaitable);
    co_await h.ws->async_write(asio::buffer(std::string("echo still-here")), asio::use_awaitable);
    frames.push_back(co_await read_one(*h.ws));
    co_await h.ws->async_close(websocket::close_code::normal, asio::use_awaitable);
  });
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_NE(frames[1].find("rate_limited"), std::string::npos) << frames[1];
  EXPECT_EQ(frames[2], "still-here");
  EXPECT_EQ(rooms_.on_message_calls.load(), 6);
  EXPECT_EQ(gateway_->stats().flood_closed_total, 0u);
}

TEST_F(RoomGatewayTest, RoomCloseSendsQueuedFramesThenCloseCode) {
  start();
  unsigned code = 0;
  std::vector<std::string> frames;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    co_await h.ws->async_write(asio::buffer(std::string("kick")), asio::use_awaitable);
    code = co_await read_until_close(*h.ws, frames);
  });
  EXPECT_EQ(code, 4001u);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1], R"({"type":"kicked","reason":"test"})");
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

TEST_F(RoomGatewayTest, SlowReaderOverflowsBoundedQueueAndIsClosed) {
  start();  // send_queue 16, close_timeout 500 ms
  std::atomic<bool> opened{false};
  std::atomic<bool> stop_client{false};
  unsigned code = 99;
  std::thread client([&] {
    run_client(
        [&]() -> asio::awaitable<void> {
          auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good", Fields(), 4096);
          if (h.ec) co_return;
          opened = true;
          // Do not read until the server gave up on us.
          asio::steady_timer t(co_await asio::this_coro::executor);
          while (!stop_client) {
            t.expires_after(10ms);
            co_await t.async_wait(asio::use_awaitable);
          }
          std::vector<std::string> frames;
          code = co_await read_until_close(*h.ws, frames);
        },
        20000ms);
  });
  ASSERT_TRUE(wait_until([&] { return opened.load() && rooms_.connection() != nullptr; }));
  // Another thread pushes 64 KiB frames (one shared buffer) until the member is dropped.
  auto conn = rooms_.connection();
  auto big = std::make_shared<const std::string>(64 * 1024, 'z');
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  int sent = 0;
  while (rooms_.detached.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    conn->send(big);
    ++sent;
    std::this_thread::sleep_for(1ms);
  }
  stop_client = true;
  client.join();
  EXPECT_EQ(rooms_.detached.load(), 1) << "sent " << sent;
  const auto st = gateway_->stats();
  EXPECT_EQ(st.slow_closed_total, 1u);
  EXPECT_EQ(metrics_.slow_subscribers_closed_total.load(), 1u);
  // Bounded: far fewer frames left the server than were offered.
  EXPECT_LT(st.messages_out_total + 16, static_cast<uint64_t>(sent));
  // The client sees the end of the connection: the close frame (1008) when it got through,
  // otherwise a dropped socket.
  EXPECT_TRUE(code == 1008u || code == 0u) << code;
  EXPECT_TRUE(wait_until([&] { return gateway_->stats().connections == 0; }));
}

TEST_F(RoomGatewayTest, PingsKeepAnAnsweringClientOpen) {
  WsConfig cfg = test_config();
  cfg.ping_interval_ms = 100;
  cfg.pong_timeout_ms = 400;
  start(cfg);
  int pings = 0;
  std::string reply;
  run_client([&]() -> asio::awaitable<void> {
    auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
    if (h.ec) co_return;
    h.ws->control_callback([&](websocket::frame_type k, beast::string_view) {
      if (k == websocket::frame_type::ping) ++pings;
    });
    {
      const std::string got = co_await read_one(*h.ws);
      EXPECT_EQ(got, R"({"type":"welcome","user":"alice"})");
    }
    // Stay silent (only automatic pongs, answered while this read is pending) for 1.2 s.
    asio::steady_timer t(co_await asio::this_coro::executor, 1200ms);
    const std::string echo = "echo alive";
    bool written = false;
    t.async_wait([&](boost::system::error_code) {
      h.ws->async_write(asio::buffer(echo), [&](boost::system::error_code ec, size_t) {
        EXPECT_FALSE(ec) << ec.message();
        written = true;
      });
    });
    reply = co_await read_one(*h.ws);
    while (!written) {  // the write's completion may still be queued
      t.expires_after(1ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    auto [cec] = co_await h.ws->async_close(websocket::close_code::normal, kTuple);
    EXPECT_FALSE(cec) << cec.message();
  });
  EXPECT_EQ(reply, "alive");
  EXPECT_GE(pings, 8);
  EXPECT_EQ(gateway_->stats().ping_timeouts_total, 0u);
}

TEST_F(RoomGatewayTest, SilentPeerIsClosedAfterPongTimeout) {
  WsConfig cfg = test_config();
  cfg.ping_interval_ms = 100;
  cfg.pong_timeout_ms = 300;
  cfg.close_timeout_ms = 300;
  start(cfg);
  // A raw socket: it completes the handshake and receives, but never answers anything.
  net::testing::RawClient c(port(), 5000);
  ASSERT_TRUE(c.send(upgrade_request("/api/v1/rooms/r1/ws?token=good")));
  const auto t0 = std::chrono::steady_clock::now();
  bool timed_out = true;
  const std::string all = c.read_all(&timed_out);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_FALSE(timed_out);
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(all.rfind("HTTP/1.1 101", 0), 0u) << all.substr(0, 40);
  EXPECT_NE(all.find("\x89\x00", 0, 2), std::string::npos);  // an empty ping frame
  // Close frame: FIN|close, length 14, status 1008 (0x03F0), "ping timeout".
  EXPECT_NE(all.find(std::string("\x88\x0e\x03\xf0ping timeout", 16)), std::string::npos);
  EXPECT_EQ(gateway_->stats().ping_timeouts_total, 1u);
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
}

TEST_F(RoomGatewayTest, ServerStopEndsSessionsAndDetaches) {
  start();
  std::atomic<bool> opened{false};
  unsigned code = 99;
  std::thread client([&] {
    run_client([&]() -> asio::awaitable<void> {
      auto h = co_await open_ws(port(), "/api/v1/rooms/r1/ws?token=good");
      if (h.ec) co_return;
      opened = true;
      std::vector<std::string> frames;
      code = co_await read_until_close(*h.ws, frames);
    });
  });
  ASSERT_TRUE(wait_until([&] { return opened.load() && rooms_.attached.load() == 1; }));
  server_->stop();
  client.join();
  EXPECT_EQ(code, 0u);  // socket closed under the session
  EXPECT_TRUE(wait_until([&] { return rooms_.detached.load() == 1; }));
  EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
}

}  // namespace
}  // namespace castmesh::ws
