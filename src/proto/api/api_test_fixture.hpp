#pragma once
/// \file Test support for the account and room API tests: a Store decorator that can be made
/// unreachable, and an HTTP fixture on 127.0.0.1 with the real SqliteStore (":memory:").

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "auth/accounts.hpp"
#include "base/metrics.hpp"
#include "net/http_server.hpp"
#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"
#include "store/store.hpp"

namespace castmesh::api::testing {

/// Forwards to a real store; while `down` is set every call fails with Errc::unavailable.
class FlakyStore final : public store::Store {
 public:
  explicit FlakyStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> down{false};

#define CASTMESH_FLAKY(ret, name, params, args) \
  ret name params override {                    \
    if (down) return Error{Errc::unavailable, "database down (test)"}; \
    return inner_->name args;                   \
  }
  CASTMESH_FLAKY(Result<store::User>, create_user, (const store::User& u), (u))
  CASTMESH_FLAKY(Result<store::User>, user_by_id, (int64_t id), (id))
  CASTMESH_FLAKY(Result<store::User>, user_by_name, (const std::string& n), (n))
  CASTMESH_FLAKY(Result<std::vector<store::User>>, list_users, (), ())
  CASTMESH_FLAKY(Status, update_user, (const store::User& u), (u))
  CASTMESH_FLAKY(Result<int64_t>, count_users, (), ())
  CASTMESH_FLAKY(Status, create_session, (const store::Session& s), (s))
  CASTMESH_FLAKY(Result<store::Session>, session_by_token_hash, (const std::string& h), (h))
  CASTMESH_FLAKY(Status, delete_session, (const std::string& h), (h))
  CASTMESH_FLAKY(Result<int64_t>, delete_expired_sessions, (int64_t now), (now))
  CASTMESH_FLAKY(Result<int64_t>, delete_idle_guests, (int64_t before, int64_t now), (before, now))
  CASTMESH_FLAKY(Result<store::Room>, create_room, (const store::Room& r), (r))
  CASTMESH_FLAKY(Result<store::Room>, room_by_id, (const std::string& id), (id))
  CASTMESH_FLAKY(Result<store::Room>, room_by_publish_key, (const std::string& k), (k))
  CASTMESH_FLAKY(Result<std::vector<store::Room>>, list_rooms, (), ())
  CASTMESH_FLAKY(Status, update_room, (const store::Room& r), (r))
  CASTMESH_FLAKY(Status, delete_room, (const std::string& id), (id))
  CASTMESH_FLAKY(Status, upsert_member, (const store::Member& m), (m))
  CASTMESH_FLAKY(Result<store::Member>, member, (const std::string& r, int64_t u), (r, u))
  CASTMESH_FLAKY(Result<std::vector<store::Member>>, list_members, (const std::string& r), (r))
  CASTMESH_FLAKY(Status, delete_member, (const std::string& r, int64_t u), (r, u))
  CASTMESH_FLAKY(Result<store::PlaylistItem>, add_item, (const store::PlaylistItem& i), (i))
  CASTMESH_FLAKY(Result<std::vector<store::PlaylistItem>>, list_items, (const std::string& r), (r))
  CASTMESH_FLAKY(Status, remove_item, (const std::string& r, int64_t i), (r, i))
  CASTMESH_FLAKY(Status, reorder_items, (const std::string& r, const std::vector<int64_t>& ids), (r, ids))
  CASTMESH_FLAKY(Result<store::ChatMessage>, add_chat, (const store::ChatMessage& m, int64_t keep), (m, keep))
  CASTMESH_FLAKY(Result<std::vector<store::ChatMessage>>, recent_chat, (const std::string& r, int64_t l), (r, l))
  CASTMESH_FLAKY(Status, save_room_state, (const store::RoomState& s), (s))
  CASTMESH_FLAKY(Result<store::RoomState>, room_state, (const std::string& r), (r))
#undef CASTMESH_FLAKY

 private:
  std::unique_ptr<store::Store> inner_;
};

/// Opens a FlakyStore over a fresh in-memory SQLite store (fails the test if it cannot).
inline std::unique_ptr<FlakyStore> open_test_store() {
  auto s = store::open_store(":memory:");
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
  if (!s.ok()) return nullptr;
  return std::make_unique<FlakyStore>(std::move(*s));
}

/// A parsed API response.
struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case names
  std::string body;
  boost::json::value json;                     ///< null when the body is not JSON
};

/// HTTP server on 127.0.0.1:ephemeral with a router the test fills before start().
class HttpFixture {
 public:
  HttpFixture() = default;
  ~HttpFixture() { shutdown(); }

  net::Router& router() { return router_; }

  void start() {
    server_ = std::make_unique<net::HttpServer>(pool_, net::HttpConfig{}, router_, metrics_);
    ASSERT_TRUE(server_->listen("127.0.0.1", 0).ok());
    pool_.run();
  }

  void shutdown() {
    if (!server_) return;
    server_->stop();
    pool_.stop();
    pool_.join();
    server_.reset();
  }

  /// One request on a fresh connection. `extra` holds whole header lines ("Name: value\r\n").
  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& extra = "") {
    net::testing::RawClient c(server_->port());
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra;
    if (!body.empty() || method == "POST" || method == "PATCH") {
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    }
    req += "\r\n" + body;
    Reply out;
    if (!c.send(req)) return out;
    auto r = c.read_response();
    if (!r) return out;
    out.status = r->status;
    out.headers = r->headers;
    out.body = r->body;
    boost::system::error_code ec;
    out.json = boost::json::parse(out.body, ec);
    if (ec) out.json = nullptr;
    return out;
  }

  /// Header line carrying a bearer token.
  static std::string bearer(const std::string& token) { return "Authorization: Bearer " + token + "\r\n"; }

 private:
  Metrics metrics_;
  net::Router router_;
  net::IoPool pool_{2};
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace castmesh::api::testing
