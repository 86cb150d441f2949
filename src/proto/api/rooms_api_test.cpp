#include "proto/api/rooms_api.hpp"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "cluster/memory/memory_event_bus.hpp"
#include "proto/api/api_test_fixture.hpp"
#include "proto/api/auth_api.hpp"

namespace castmesh::api {
namespace {

namespace json = boost::json;
using testing::HttpFixture;
using testing::Reply;

class RoomsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::open_test_store();
    ASSERT_TRUE(store_);
    accounts_ = std::make_unique<auth::Accounts>(*store_, auth::AuthConfig{});
    rooms_ = std::make_unique<room::RoomManager>(*store_, bus_, rooms_cfg_, metrics_, argon2_room_passwords());
    http_ = std::make_unique<HttpFixture>();
    register_auth_api(http_->router(), *accounts_);
    RoomsApiConfig cfg;
    cfg.rtmp_port = 19350;
    register_rooms_api(http_->router(), *rooms_, *accounts_, cfg);
    http_->start();
    alice_ = user_token("alice");
    bob_ = user_token("bob");
  }

  void TearDown() override {
    http_.reset();
    rooms_.reset();
  }

  std::string user_token(const std::string& name) {
    Reply r = http_->call("POST", "/api/v1/auth/register",
                          R"({"username":")" + name + R"(","password":"password-)" + name + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json.is_object() ? std::string(r.json.at("token").as_string()) : "";
  }

  Reply as(const std::string& token, const std::string& method, const std::string& path,
           const std::string& body = "") {
    return http_->call(method, "/api/v1" + path, body, token.empty() ? "" : HttpFixture::bearer(token));
  }

  std::string make_room(const std::string& body = R"({"name":"Movie night"})") {
    Reply r = as(alice_, "POST", "/rooms", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json.is_object() ? std::string(r.json.at("room").at("id").as_string()) : "";
  }

  static std::string code(const Reply& r) {
    if (!r.json.is_object() || !r.json.as_object().contains("code")) return "<" + r.body + ">";
    return std::string(r.json.at("code").as_string());
  }

  std::unique_ptr<testing::FlakyStore> store_;
  std::unique_ptr<auth::Accounts> accounts_;
  cluster::MemoryEventBus bus_{"node-1"};
  room::RoomsConfig rooms_cfg_;
  Metrics metrics_;
  std::unique_ptr<room::RoomManager> rooms_;
  std::unique_ptr<HttpFixture> http_;
  std::string alice_, bob_;
};

TEST_F(RoomsApiTest, EverythingNeedsASession) {
  EXPECT_EQ(as("", "GET", "/rooms").status, 401);
  EXPECT_EQ(as("", "POST", "/rooms", R"({"name":"x"})").status, 401);
  EXPECT_EQ(as("bogus", "GET", "/rooms/abc").status, 401);
  EXPECT_EQ(code(as("", "GET", "/rooms/abc/members")), "unauthorized");
}

TEST_F(RoomsApiTest, CreateListGetUpdateDelete) {
  Reply created = as(alice_, "POST", "/rooms", R"({"name":"Movie <night>","settings":{"auto_advance":false}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto& room = created.json.at("room").as_object();
  const std::string id(room.at("id").as_string());
  EXPECT_EQ(room.at("name").as_string(), "Movie <night>");
  EXPECT_FALSE(room.at("has_password").as_bool());
  EXPECT_FALSE(room.at("allow_guests").as_bool());
  EXPECT_FALSE(room.at("settings").at("auto_advance").as_bool());
  EXPECT_EQ(room.at("creator").at("username").as_string(), "alice");

  Reply list = as(bob_, "GET", "/rooms");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(list.json.at("rooms").as_array().size(), 1u);
  EXPECT_EQ(list.json.at("rooms").as_array()[0].at("id").as_string(), id);
  EXPECT_EQ(list.json.at("rooms").as_array()[0].at("online").as_int64(), 0);

  Reply mine = as(alice_, "GET", "/rooms/" + id);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(mine.json.at("you").at("role").as_string(), "creator");
  Reply theirs = as(bob_, "GET", "/rooms/" + id);
  ASSERT_EQ(theirs.status, 200);
  EXPECT_FALSE(theirs.json.as_object().contains("you"));

  Reply patched = as(alice_, "PATCH", "/rooms/" + id,
                     R"({"name":"Renamed","allow_guests":true,"settings":{"pause_on_buffering":true}})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.json.at("room").at("name").as_string(), "Renamed");
  EXPECT_TRUE(patched.json.at("room").at("allow_guests").as_bool());
  EXPECT_TRUE(patched.json.at("room").at("settings").at("pause_on_buffering").as_bool());
  EXPECT_FALSE(patched.json.at("room").at("settings").at("auto_advance").as_bool());

  EXPECT_EQ(as(bob_, "PATCH", "/rooms/" + id, R"({"name":"Mine now"})").status, 403);
  EXPECT_EQ(as(bob_, "DELETE", "/rooms/" + id).status, 403);
  EXPECT_EQ(as(alice_, "DELETE", "/rooms/" + id).status, 204);
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id).status, 404);
  EXPECT_EQ(as(alice_, "GET", "/rooms").json.at("rooms").as_array().size(), 0u);
}

TEST_F(RoomsApiTest, BadBodiesAre400) {
  Reply r = as(alice_, "POST", "/rooms", "{oops");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code(r), "bad_json");
  r = as(alice_, "POST", "/rooms", R"({"name":42})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(code(r), "bad_request");
  EXPECT_NE(r.body.find("'name' must be a string"), std::string::npos) << r.body;
  r = as(alice_, "POST", "/rooms", R"({"name":""})");
  EXPECT_EQ(r.status, 400) << r.body;
  r = as(alice_, "POST", "/rooms", R"({"name":"x","allow_guests":"yes"})");
  EXPECT_EQ(r.status, 400);
  r = as(alice_, "POST", "/rooms", R"({"name":"x","settings":{"auto_advance":1}})");
  EXPECT_EQ(r.status, 400) << r.body;
  const std::string id = make_room();
  r = as(alice_, "PATCH", "/rooms/" + id + "/members/1", R"({"grant":"chat"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("'grant' must be an array of strings"), std::string::npos) << r.body;
  r = as(alice_, "POST", "/rooms/" + id + "/playlist/reorder", R"({"item_ids":[1,"2"]})");
  EXPECT_EQ(r.status, 400);
  r = as(alice_, "GET", "/rooms/" + id + "/chat?limit=abc");
  EXPECT_EQ(r.status, 400);
}

TEST_F(RoomsApiTest, UnknownPathsAre404AndWrongMethods405) {
  const std::string id = make_room();
  EXPECT_EQ(as(alice_, "GET", "/rooms/nope").status, 404);
  EXPECT_EQ(code(as(alice_, "GET", "/rooms/nope")), "not_found");
  EXPECT_EQ(as(alice_, "GET", "/rooms/bad%20id").status, 404);
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id + "/whatever").status, 404);
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id + "/members/").status, 404);
  EXPECT_EQ(as(alice_, "POST", "/rooms/" + id + "/members/abc/kick", "{}").status, 404);
  Reply r = as(alice_, "DELETE", "/rooms/" + id + "/join");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  r = as(alice_, "PUT", "/rooms/" + id + "/playlist", "{}");
  EXPECT_EQ(r.status, 405);
  r = as(alice_, "PATCH", "/rooms/" + id + "/playlist", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET, HEAD, POST");
}

TEST_F(RoomsApiTest, JoinMembersRolesKickBan) {
  const std::string id = make_room();
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/members").status, 403);  // not a member yet
  Reply j = as(bob_, "POST", "/rooms/" + id + "/join");
  ASSERT_EQ(j.status, 200) << j.body;
  const int64_t bob_id = j.json.at("member").at("user_id").as_int64();
  EXPECT_EQ(j.json.at("member").at("role").as_string(), "member");

  Reply ms = as(alice_, "GET", "/rooms/" + id + "/members");
  ASSERT_EQ(ms.status, 200) << ms.body;
  EXPECT_EQ(ms.json.at("members").as_array().size(), 2u);

  const std::string member_path = "/rooms/" + id + "/members/" + std::to_string(bob_id);
  Reply p = as(alice_, "PATCH", member_path, R"({"grant":["manage_live"],"revoke":["seek"]})");
  ASSERT_EQ(p.status, 200) << p.body;
  std::string perms = json::serialize(p.json.at("member").at("permissions"));
  EXPECT_NE(perms.find("manage_live"), std::string::npos) << perms;
  EXPECT_EQ(perms.find("\"seek\""), std::string::npos) << perms;
  EXPECT_EQ(as(alice_, "PATCH", member_path, R"({"grant":["fly"]})").status, 400);
  EXPECT_EQ(as(bob_, "PATCH", "/rooms/" + id + "/members/1", R"({"role":"guest"})").status, 403);

  EXPECT_EQ(as(alice_, "POST", member_path + "/kick", R"({"cooldown_secs":600})").status, 204);
  Reply again = as(bob_, "POST", "/rooms/" + id + "/join");
  EXPECT_EQ(again.status, 403) << again.body;
  EXPECT_EQ(as(alice_, "POST", member_path + "/unban").status, 204);
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 200);
  EXPECT_EQ(as(alice_, "POST", member_path + "/ban").status, 204);
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 403);
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/playlist").status, 403);
}

TEST_F(RoomsApiTest, PasswordProtectedRoom) {
  const std::string id = make_room(R"({"name":"Secret","password":"room-password"})");
  EXPECT_TRUE(as(bob_, "GET", "/rooms/" + id).json.at("room").at("has_password").as_bool());
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 403);
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join", R"({"password":"wrong-password"})").status, 403);
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join", R"({"password":"room-password"})").status, 200);
}

TEST_F(RoomsApiTest, PasswordGuessingIsRateLimited) {
  const std::string id = make_room(R"({"name":"Secret","password":"room-password"})");
  // Registration of alice and bob took 2 of the client's 30 attempts per minute.
  int limited_at = -1;
  for (int i = 0; i < 30 && limited_at < 0; ++i) {
    Reply r = as(bob_, "POST", "/rooms/" + id + "/join", R"({"password":"guess-)" + std::to_string(i) + R"("})");
    if (r.status == 429) {
      limited_at = i;
      EXPECT_EQ(code(r), "rate_limited");
      EXPECT_FALSE(r.headers["retry-after"].empty());
    } else {
      EXPECT_EQ(r.status, 403) << r.body;
    }
  }
  EXPECT_EQ(limited_at, 28);
  // Joining without a password is not limited (and is refused for lack of it).
  EXPECT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 403);
}

TEST_F(RoomsApiTest, PlaylistAndChat) {
  const std::string id = make_room();
  ASSERT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 200);
  Reply a = as(bob_, "POST", "/rooms/" + id + "/playlist",
               R"({"kind":"url","url":"https://example.com/a.m3u8","title":"A"})");
  ASSERT_EQ(a.status, 201) << a.body;
  const int64_t first = a.json.at("item").at("id").as_int64();
  Reply b = as(alice_, "POST", "/rooms/" + id + "/playlist", R"({"kind":"live","url":"live/cam1"})");
  ASSERT_EQ(b.status, 201) << b.body;
  const int64_t second = b.json.at("item").at("id").as_int64();
  EXPECT_EQ(as(alice_, "POST", "/rooms/" + id + "/playlist", R"({"kind":"ftp","url":"x"})").status, 400);
  EXPECT_EQ(as(alice_, "POST", "/rooms/" + id + "/playlist", R"({"url":"https://e/x"})").status, 400);

  Reply list = as(bob_, "GET", "/rooms/" + id + "/playlist");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json.at("items").as_array().size(), 2u);
  EXPECT_EQ(list.json.at("items").as_array()[0].at("title").as_string(), "A");

  Reply re = as(alice_, "POST", "/rooms/" + id + "/playlist/reorder",
                R"({"item_ids":[)" + std::to_string(second) + "," + std::to_string(first) + "]}");
  ASSERT_EQ(re.status, 200) << re.body;
  EXPECT_EQ(re.json.at("items").as_array()[0].at("id").as_int64(), second);
  EXPECT_EQ(as(alice_, "POST", "/rooms/" + id + "/playlist/reorder", R"({"item_ids":[1]})").status, 400);

  EXPECT_EQ(as(alice_, "DELETE", "/rooms/" + id + "/playlist/" + std::to_string(first)).status, 204);
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/playlist").json.at("items").as_array().size(), 1u);

  Reply chat = as(bob_, "GET", "/rooms/" + id + "/chat?limit=10");
  ASSERT_EQ(chat.status, 200) << chat.body;
  EXPECT_TRUE(chat.json.at("messages").as_array().empty());
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/chat").status, 200);
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/chat?limit=0").status, 400);
}

TEST_F(RoomsApiTest, PublishKeyNeedsManageLiveAndRotates) {
  const std::string id = make_room();
  ASSERT_EQ(as(bob_, "POST", "/rooms/" + id + "/join").status, 200);
  EXPECT_EQ(as(bob_, "GET", "/rooms/" + id + "/publish-key").status, 403);

  Reply k = as(alice_, "GET", "/rooms/" + id + "/publish-key");
  ASSERT_EQ(k.status, 200) << k.body;
  const std::string key(k.json.at("publish_key").as_string());
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(k.json.at("rtmp_url").as_string(), "rtmp://t:19350/live");  // Host header "t"
  EXPECT_EQ(k.json.at("stream").as_string(), "live/room-" + id);
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id + "/publish-key").json.at("publish_key").as_string(), key);

  Reply rot = as(alice_, "POST", "/rooms/" + id + "/publish-key");
  ASSERT_EQ(rot.status, 200) << rot.body;
  EXPECT_NE(rot.json.at("publish_key").as_string(), key);
}

TEST_F(RoomsApiTest, GuestsJoinRoomsThatAllowThem) {
  const std::string closed = make_room();
  Reply no = http_->call("POST", "/api/v1/rooms/" + closed + "/guest", R"({"name":"Visitor"})");
  EXPECT_EQ(no.status, 403) << no.body;

  const std::string id = make_room(R"({"name":"Open","allow_guests":true})");
  Reply bad = http_->call("POST", "/api/v1/rooms/" + id + "/guest", R"({"nom":"Visitor"})");
  EXPECT_EQ(bad.status, 400);
  Reply g = http_->call("POST", "/api/v1/rooms/" + id + "/guest", R"({"name":"Visitor"})");
  ASSERT_EQ(g.status, 201) << g.body;
  EXPECT_EQ(g.json.at("user").at("role").as_string(), "guest");
  EXPECT_EQ(g.json.at("user").at("display_name").as_string(), "Visitor");
  EXPECT_EQ(g.json.at("member").at("role").as_string(), "guest");
  const std::string token(g.json.at("token").as_string());
  EXPECT_NE(g.headers["set-cookie"].find("castmesh_token=" + token), std::string::npos);

  // The guest session works (cookie) and sees the room as a member.
  Reply mine = http_->call("GET", "/api/v1/rooms/" + id, "", "Cookie: castmesh_token=" + token + "\r\n");
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(mine.json.at("you").at("role").as_string(), "guest");
  EXPECT_EQ(as(token, "GET", "/auth/me").json.at("user").at("role").as_string(), "guest");
  // Guests cannot create rooms.
  EXPECT_EQ(as(token, "POST", "/rooms", R"({"name":"x"})").status, 403);
}

TEST_F(RoomsApiTest, DatabaseDownIs503) {
  const std::string id = make_room();
  store_->down = true;
  Reply r = as(alice_, "GET", "/rooms");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(code(r), "unavailable");
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id + "/members").status, 503);
  store_->down = false;
  EXPECT_EQ(as(alice_, "GET", "/rooms/" + id + "/members").status, 200);
}

}  // namespace
}  // namespace castmesh::api
