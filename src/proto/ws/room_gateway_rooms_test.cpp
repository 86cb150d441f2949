// The gateway over the real room layer: RoomManager on an in-memory SQLite store and the
// in-process event bus, real net::HttpServer, Beast WebSocket clients over loopback.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include "cluster/memory/memory_event_bus.hpp"
#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"
#include "proto/ws/room_gateway.hpp"
#include "proto/ws/ws_test_client.hpp"
#include "room/room_manager.hpp"
#include "store/store.hpp"

namespace castmesh::ws {
namespace {

using namespace testing_client;
using namespace std::chrono_literals;
namespace json = boost::json;

/// Reads frames until one has `type` (other types are skipped); "" when the connection ended.
asio::awaitable<std::string> next_of_type(Ws& ws, std::string_view type) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) co_return "";
    std::string text = beast::buffers_to_string(buf.data());
    buf.consume(buf.size());
    boost::system::error_code jec;
    auto v = json::parse(text, jec);
    if (!jec && v.is_object() && v.as_object().contains("type") && v.as_object().at("type").as_string() == type)
      co_return text;
  }
}

json::object parse(const std::string& s) {
  boost::system::error_code ec;
  auto v = json::parse(s, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

class RoomsOverWsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store(":memory:");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
    rooms_ = std::make_unique<room::RoomManager>(*store_, bus_, rooms_cfg_, metrics_);
    alice_ = make_user("alice");
    bob_ = make_user("bob");
    mallory_ = make_user("mallory");
    room::CreateRoomRequest req;
    req.name = "Movie night";
    auto r = rooms_->create_room(alice_, req);
    ASSERT_TRUE(r.ok()) << r.error().message();
    room_id_ = r->id;
    ASSERT_TRUE(rooms_->join(bob_, room_id_, std::nullopt).ok());

    auto auth = [this](std::string_view token) -> Result<room::Identity> {
      auto it = tokens_.find(std::string(token));
      if (it == tokens_.end()) return Error{Errc::unauthorized, "unknown token"};
      return it->second;
    };
    gateway_ = std::make_unique<RoomGateway>(*rooms_, auth, ws_config_from(rooms_cfg_), metrics_);
    router_.add_stream("GET", kRoutePrefix, kRouteSuffix, gateway_->handler());
    server_ = std::make_unique<net::HttpServer>(*pool_, net::HttpConfig{}, router_, metrics_);
    auto st = server_->listen("127.0.0.1", 0);
    ASSERT_TRUE(st.ok()) << st.error().message();
    pool_->run();
  }

  void TearDown() override {
    if (rooms_) rooms_->stop();
    if (server_) {
      server_->stop();
      wait_until([&] { return server_->connections() == 0; }, 3000ms);
    }
    pool_->stop();
    pool_->join();
    // Sessions left in a stopped pool hold Attachments: destroy them before the RoomManager.
    server_.reset();
    pool_.reset();
    gateway_.reset();
    rooms_.reset();
  }

  room::Identity make_user(const std::string& name) {
    store::User u;
    u.username = name;
    u.password_hash = "x";
    auto c = store_->create_user(u);
    EXPECT_TRUE(c.ok());
    room::Identity id{c.ok() ? c->id : 0, name, store::kRoleUser};
    tokens_["tok-" + name] = id;
    return id;
  }

  std::string url(const std::string& who, const std::string& room = "") const {
    return "/api/v1/rooms/" + (room.empty() ? room_id_ : room) + "/ws?token=tok-" + who;
  }
  uint16_t port() const { return server_->port(); }

  std::unique_ptr<store::Store> store_;
  cluster::MemoryEventBus bus_{"node-1"};
  room::RoomsConfig rooms_cfg_;
  Metrics metrics_;
  net::Router router_;
  std::map<std::string, room::Identity> tokens_;  // written before the server starts
  room::Identity alice_, bob_, mallory_;
  std::string room_id_;
  std::unique_ptr<room::RoomManager> rooms_;
  std::unique_ptr<RoomGateway> gateway_;
  std::unique_ptr<net::IoPool> pool_ = std::make_unique<net::IoPool>(2);
  std::unique_ptr<net::HttpServer> server_;
};

TEST_F(RoomsOverWsTest, MembershipDecidesTheHandshake) {
  run_client([&]() -> asio::awaitable<void> {
    auto stranger = co_await open_ws(port(), url("mallory"));
    EXPECT_EQ(stranger.status, 403u);
    auto unknown = co_await open_ws(port(), url("bob", "NoSuchRoom"));
    EXPECT_EQ(unknown.status, 404u);
    auto anonymous = co_await open_ws(port(), "/api/v1/rooms/" + room_id_ + "/ws?token=forged");
    EXPECT_EQ(anonymous.status, 401u);

    auto bob = co_await open_ws(port(), url("bob"));
    EXPECT_EQ(bob.status, 101u);
    if (bob.ec) co_return;
    const auto w = parse(co_await next_of_type(*bob.ws, "welcome"));
    EXPECT_EQ(w.at("v").as_int64(), 1);
    EXPECT_EQ(w.at("room").at("id").as_string(), room_id_);
    EXPECT_EQ(w.at("you").at("username").as_string(), "bob");
    EXPECT_EQ(w.at("you").at("role").as_string(), "member");
    // ping -> pong with the ref echoed
    co_await bob.ws->async_write(asio::buffer(std::string(R"({"type":"ping","t":123,"ref":"p1"})")),
                                 asio::use_awaitable);
    const auto p = parse(co_await next_of_type(*bob.ws, "pong"));
    EXPECT_EQ(p.at("t").as_int64(), 123);
    EXPECT_EQ(p.at("ref").as_string(), "p1");
    co_await bob.ws->async_close(websocket::close_code::normal, asio::use_awaitable);
  });
}

TEST_F(RoomsOverWsTest, ChatReachesOtherMembersAndPresenceFollowsDisconnects) {
  run_client([&]() -> asio::awaitable<void> {
    auto alice = co_await open_ws(port(), url("alice"));
    auto bob = co_await open_ws(port(), url("bob"));
    if (alice.ec || bob.ec) {
      ADD_FAILURE() << "handshake failed";
      co_return;
    }
    co_await next_of_type(*bob.ws, "welcome");
    co_await bob.ws->async_write(asio::buffer(std::string(R"({"type":"chat","text":"hello from bob"})")),
                                 asio::use_awaitable);
    const auto c = parse(co_await next_of_type(*alice.ws, "chat"));
    EXPECT_EQ(c.at("message").at("text").as_string(), "hello from bob");
    EXPECT_EQ(c.at("message").at("username").as_string(), "bob");

    co_await bob.ws->async_close(websocket::close_code::normal, asio::use_awaitable);
    // Alice sees presence with herself only once bob's socket is gone.
    for (int i = 0; i < 10; ++i) {
      const auto pr = parse(co_await next_of_type(*alice.ws, "presence"));
      if (pr.empty()) break;
      if (pr.at("members").as_array().size() == 1) {
        EXPECT_EQ(pr.at("members").at(0).at("username").as_string(), "alice");
        co_await alice.ws->async_close(websocket::close_code::normal, asio::use_awaitable);
        co_return;
      }
    }
    ADD_FAILURE() << "no presence update without bob";
  });
  EXPECT_TRUE(wait_until([&] { return rooms_->online_count(room_id_) == 0; }));
}

TEST_F(RoomsOverWsTest, KickSendsKickedThenClose4001AndBlocksReconnect) {
  std::atomic<bool> bob_ready{false};
  unsigned code = 0;
  std::vector<std::string> frames;
  std::thread bob_thread([&] {
    run_client([&]() -> asio::awaitable<void> {
      auto bob = co_await open_ws(port(), url("bob"));
      if (bob.ec) co_return;
      co_await next_of_type(*bob.ws, "welcome");
      bob_ready = true;
      code = co_await read_until_close(*bob.ws, frames);
    });
  });
  ASSERT_TRUE(wait_until([&] { return bob_ready.load(); }));
  auto st = rooms_->kick(alice_, room_id_, bob_.user_id, 60);
  ASSERT_TRUE(st.ok()) << st.error().message();
  bob_thread.join();
  EXPECT_EQ(code, 4001u);
  bool kicked = false;
  for (const auto& f : frames) kicked |= parse(f).contains("type") && parse(f).at("type").as_string() == "kicked";
  EXPECT_TRUE(kicked);
  EXPECT_TRUE(wait_until([&] { return rooms_->online_count(room_id_) == 0; }));
  run_client([&]() -> asio::awaitable<void> {
    auto again = co_await open_ws(port(), url("bob"));
    EXPECT_EQ(again.status, 403u);  // inside the kick cooldown
  });
}

}  // namespace
}  // namespace castmesh::ws
