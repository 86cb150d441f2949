#include "room/room_manager.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "cluster/memory/memory_event_bus.hpp"
#include "room/text.hpp"

namespace castmesh::room {
namespace {

namespace json = boost::json;

/// Records every frame and the close call (a test double of the gateway's socket).
class FakeConn : public Connection {
 public:
  void send(std::shared_ptr<const std::string> text) override {
    std::lock_guard lk(mu_);
    frames_.push_back(std::move(text));
  }
  void close(uint16_t code, std::string reason) override {
    std::lock_guard lk(mu_);
    ++close_calls_;
    code_ = code;
    reason_ = std::move(reason);
  }

  std::vector<std::shared_ptr<const std::string>> frames() const {
    std::lock_guard lk(mu_);
    return frames_;
  }
  std::vector<json::object> of_type(std::string_view type) const {
    std::vector<json::object> out;
    for (const auto& f : frames()) {
      auto v = json::parse(*f);
      if (v.as_object().at("type").as_string() == type) out.push_back(v.as_object());
    }
    return out;
  }
  json::object last(std::string_view type) const {
    auto all = of_type(type);
    EXPECT_FALSE(all.empty()) << "no frame of type " << type;
    return all.empty() ? json::object{} : all.back();
  }
  /// The most recent frame of `type` as the shared pointer that was sent.
  std::shared_ptr<const std::string> last_ptr(std::string_view type) const {
    std::shared_ptr<const std::string> out;
    for (const auto& f : frames()) {
      if (json::parse(*f).as_object().at("type").as_string() == type) out = f;
    }
    return out;
  }
  size_t count(std::string_view type) const { return of_type(type).size(); }
  void clear() {
    std::lock_guard lk(mu_);
    frames_.clear();
  }
  int close_calls() const {
    std::lock_guard lk(mu_);
    return close_calls_;
  }
  uint16_t close_code() const {
    std::lock_guard lk(mu_);
    return code_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const std::string>> frames_;
  int close_calls_ = 0;
  uint16_t code_ = 0;
  std::string reason_;
};

/// Fast, deterministic password hashing for tests that do not exercise auth itself.
PasswordFunctions fake_passwords() {
  PasswordFunctions p;
  p.hash = [](std::string_view pw) -> Result<std::string> { return "fake$" + std::string(pw); };
  p.verify = [](std::string_view pw, std::string_view enc) { return enc == "fake$" + std::string(pw); };
  return p;
}

class RoomManagerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store(":memory:");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
    mgr_ = std::make_unique<RoomManager>(*store_, bus_, cfg_, metrics_, fake_passwords(), [this] { return clock_; });
    alice_ = make_user("alice");
    bob_ = make_user("bob");
    carol_ = make_user("carol");
    root_ = make_user("root", store::kRoleAdmin);
    CreateRoomRequest req;
    req.name = "Movie night";
    req.allow_guests = true;
    auto r = mgr_->create_room(alice_, req);
    ASSERT_TRUE(r.ok()) << r.error().message();
    room_ = r->id;
    ASSERT_TRUE(mgr_->join(bob_, room_, std::nullopt).ok());
    ASSERT_TRUE(mgr_->join(carol_, room_, std::nullopt).ok());
  }
  void TearDown() override {
    attachments_.clear();
    mgr_.reset();
  }

  Identity make_user(const std::string& name, const char* role = store::kRoleUser) {
    store::User u;
    u.username = name;
    u.password_hash = "x";
    u.role = role;
    auto c = store_->create_user(u);
    EXPECT_TRUE(c.ok());
    return Identity{c->id, name, role};
  }

  /// Attaches a new fake connection; fails the test on error.
  std::pair<std::shared_ptr<FakeConn>, std::shared_ptr<Attachment>> connect(const Identity& who) {
    auto conn = std::make_shared<FakeConn>();
    auto a = mgr_->attach(room_, who, conn);
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message());
    if (!a.ok()) return {conn, nullptr};
    attachments_.push_back(*a);
    return {conn, *a};
  }

  void send(Attachment& a, const json::object& o) { mgr_->on_message(a, json::serialize(o)); }
  void send(Attachment& a, std::string_view text) { mgr_->on_message(a, text); }

  uint64_t version() {
    mgr_->flush_state_writes();
    auto st = store_->room_state(room_);
    return st.ok() ? st->version : 0;
  }

  int64_t add_item(const std::string& url, const std::string& kind = "url") {
    auto i = mgr_->add_playlist_item(alice_, room_, kind, url, "");
    EXPECT_TRUE(i.ok()) << (i.ok() ? "" : i.error().message());
    return i.ok() ? i->id : 0;
  }

  std::unique_ptr<store::Store> store_;
  cluster::MemoryEventBus bus_{"node-1"};
  RoomsConfig cfg_;
  Metrics metrics_;
  int64_t clock_ = 1'700'000'000'000;
  std::unique_ptr<RoomManager> mgr_;
  Identity alice_, bob_, carol_, root_;
  std::string room_;
  std::vector<std::shared_ptr<Attachment>> attachments_;
};

TEST_F(RoomManagerTest, WelcomeCarriesRoomYouStatePlaylistMembersAndChat) {
  int64_t item = add_item("https://media.example/a.m3u8");
  auto [b, ba] = connect(bob_);
  send(*ba, R"({"type":"chat","text":"hello"})");
  auto [a, aa] = connect(alice_);
  auto w = a->last("welcome");
  EXPECT_EQ(w.at("v").as_int64(), 1);
  EXPECT_EQ(w.at("server_time_ms").as_int64(), clock_);
  EXPECT_EQ(w.at("room").at("id").as_string(), room_);
  EXPECT_EQ(w.at("room").at("name").as_string(), "Movie night");
  EXPECT_TRUE(w.at("room").at("settings").at("auto_advance").as_bool());
  EXPECT_EQ(w.at("you").at("user_id").as_int64(), alice_.user_id);
  EXPECT_EQ(w.at("you").at("role").as_string(), "creator");
  EXPECT_EQ(w.at("you").at("permissions").as_array().size(), 6u);
  EXPECT_EQ(w.at("state").at("item_id").as_int64(), item);  // first item auto-selected
  EXPECT_FALSE(w.at("state").at("playing").as_bool());
  ASSERT_EQ(w.at("playlist").at("items").as_array().size(), 1u);
  EXPECT_EQ(w.at("playlist").at("items").at(0).at("url").as_string(), "https://media.example/a.m3u8");
  ASSERT_EQ(w.at("members").as_array().size(), 2u);
  ASSERT_EQ(w.at("chat").as_array().size(), 1u);
  EXPECT_EQ(w.at("chat").at(0).at("text").as_string(), "hello");
  EXPECT_EQ(w.at("chat").at(0).at("username").as_string(), "bob");
  // bob's permissions are a member's
  auto bw = b->last("welcome");
  EXPECT_EQ(bw.at("you").at("role").as_string(), "member");
  EXPECT_EQ(json::serialize(bw.at("you").at("permissions")),
            R"(["control_playback","seek","manage_playlist","chat"])");
  // bob saw alice arrive
  auto p = b->last("presence");
  EXPECT_EQ(p.at("members").as_array().size(), 2u);
}

TEST_F(RoomManagerTest, BroadcastReachesEveryConnectionIncludingTheSameUserTwice) {
  add_item("https://media.example/a.m3u8");
  auto [a1, aa1] = connect(alice_);
  auto [a2, aa2] = connect(alice_);
  auto [b, ba] = connect(bob_);
  auto pres = b->last("presence");
  ASSERT_EQ(pres.at("members").as_array().size(), 2u);
  for (const auto& m : pres.at("members").as_array()) {
    if (m.at("user_id").as_int64() == alice_.user_id) {
      EXPECT_EQ(m.at("connections").as_int64(), 2);
    }
  }
  const uint64_t v = version();
  clock_ += 1000;
  send(*ba, json::object{{"type", "play"}, {"version", v}});
  auto s1 = a1->last_ptr("state");
  auto s2 = a2->last_ptr("state");
  auto s3 = b->last_ptr("state");
  ASSERT_TRUE(s1 && s2 && s3);
  EXPECT_EQ(s1.get(), s2.get());  // serialized once, shared
  EXPECT_EQ(s1.get(), s3.get());
  auto st = json::parse(*s1).as_object();
  EXPECT_EQ(st.at("reason").as_string(), "play");
  EXPECT_EQ(st.at("by").at("username").as_string(), "bob");
  EXPECT_TRUE(st.at("state").at("playing").as_bool());
  EXPECT_EQ(st.at("state").at("version").to_number<uint64_t>(), v + 1);
  EXPECT_EQ(st.at("state").at("updated_at_ms").as_int64(), clock_);
  EXPECT_EQ(version(), v + 1);  // persisted
}

TEST_F(RoomManagerTest, StaleVersionIsRefusedWithTheCurrentState) {
  add_item("https://media.example/a.m3u8");
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  const uint64_t v = version();
  send(*aa, json::object{{"type", "seek"}, {"version", v}, {"position_s", 30.0}});
  b->clear();
  a->clear();
  send(*ba, json::object{{"type", "seek"}, {"version", v}, {"position_s", 90.0}, {"ref", "r1"}});
  auto e = b->last("error");
  EXPECT_EQ(e.at("code").as_string(), "stale_version");
  EXPECT_EQ(e.at("ref").as_string(), "r1");
  EXPECT_EQ(e.at("state").at("version").to_number<uint64_t>(), v + 1);
  EXPECT_DOUBLE_EQ(e.at("state").at("position_s").as_double(), 30.0);
  EXPECT_EQ(a->count("state"), 0u);  // nothing broadcast
  EXPECT_EQ(version(), v + 1);
}

TEST_F(RoomManagerTest, PermissionRefusalAndRevocationWinningOverGrant) {
  add_item("https://media.example/a.m3u8");
  auto guest = mgr_->add_guest_member(room_, "Zoé", std::nullopt);
  ASSERT_TRUE(guest.ok()) << guest.error().message();
  EXPECT_EQ(guest->member.role, "guest");
  EXPECT_EQ(guest->user.role, store::kRoleGuest);
  EXPECT_EQ(guest->user.username.rfind("Zoé#", 0), 0u);
  Identity g{guest->user.id, guest->user.username, store::kRoleGuest};
  auto [gc, ga] = connect(g);
  auto [b, ba] = connect(bob_);
  send(*ga, json::object{{"type", "play"}, {"version", version()}, {"ref", 7}});
  auto e = gc->last("error");
  EXPECT_EQ(e.at("code").as_string(), "forbidden");
  EXPECT_EQ(e.at("ref").as_int64(), 7);
  EXPECT_EQ(b->count("state"), 0u);

  // guests_can_control lets the guest play
  RoomPatch patch;
  patch.settings.guests_can_control = true;
  ASSERT_TRUE(mgr_->update_room(alice_, room_, patch).ok());
  auto gm = gc->last("member").at("member");  // the guest learns its new permissions
  EXPECT_EQ(gm.at("user_id").as_int64(), g.user_id);
  EXPECT_EQ(json::serialize(gm.at("permissions")), R"(["control_playback","seek","chat"])");
  send(*ga, json::object{{"type", "play"}, {"version", version()}});
  EXPECT_EQ(b->last("state").at("reason").as_string(), "play");

  // chat granted and revoked in one patch for bob: revoked wins
  MemberPatch mp;
  mp.grant = {"chat", "manage_live"};
  mp.revoke = {"chat"};
  auto m = mgr_->update_member(alice_, room_, bob_.user_id, mp);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_FALSE(m->permissions & kChat);
  EXPECT_TRUE(m->permissions & kManageLive);
  auto mf = b->last("member");
  EXPECT_EQ(mf.at("member").at("user_id").as_int64(), bob_.user_id);
  b->clear();
  send(*ba, R"({"type":"chat","text":"can I talk?"})");
  EXPECT_EQ(b->last("error").at("code").as_string(), "forbidden");
  EXPECT_EQ(b->count("chat"), 0u);
  // a later grant alone clears the revocation
  MemberPatch back;
  back.grant = {"chat"};
  ASSERT_TRUE(mgr_->update_member(alice_, room_, bob_.user_id, back).ok());
  send(*ba, R"({"type":"chat","text":"now?"})");
  EXPECT_EQ(b->last("chat").at("message").at("text").as_string(), "now?");
}

TEST_F(RoomManagerTest, ChatIsStoredAndBroadcastVerbatim) {
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  const std::string evil = "<script>alert(\"x\")</script> & \u00e9";
  send(*ba, json::object{{"type", "chat"}, {"text", evil}});
  auto raw = a->last_ptr("chat");
  ASSERT_TRUE(raw);
  EXPECT_NE(raw->find("<script>"), std::string::npos);  // not HTML-escaped
  EXPECT_EQ(raw->find("&lt;"), std::string::npos);
  auto c = json::parse(*raw).as_object();
  EXPECT_EQ(c.at("message").at("text").as_string(), evil);
  EXPECT_EQ(c.at("message").at("user_id").as_int64(), bob_.user_id);
  EXPECT_EQ(c.at("message").at("created_at_ms").as_int64(), clock_);
  auto stored = store_->recent_chat(room_, 10);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].text, evil);
  auto via_api = mgr_->recent_chat(carol_, room_, 50);
  ASSERT_TRUE(via_api.ok());
  EXPECT_EQ(via_api->at(0).text, evil);
}

TEST_F(RoomManagerTest, ChatLengthLimits) {
  auto [b, ba] = connect(bob_);
  send(*ba, json::object{{"type", "chat"}, {"text", ""}});
  EXPECT_EQ(b->last("error").at("code").as_string(), "bad_message");
  send(*ba, json::object{{"type", "chat"}, {"text", std::string(2001, 'x')}});
  EXPECT_EQ(b->count("error"), 2u);
  std::string max;
  for (int i = 0; i < 2000; ++i) max += "\u00e9";  // 2000 code points, 4000 bytes
  send(*ba, json::object{{"type", "chat"}, {"text", max}});
  EXPECT_EQ(b->count("chat"), 1u);
}

TEST_F(RoomManagerTest, ChatHistoryKeepsTheConfiguredNumber) {
  cfg_.chat_history = 3;
  auto [b, ba] = connect(bob_);
  for (int i = 0; i < 5; ++i) send(*ba, json::object{{"type", "chat"}, {"text", "m" + std::to_string(i)}});
  auto stored = store_->recent_chat(room_, 100);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 3u);
  EXPECT_EQ(stored->front().text, "m2");
  EXPECT_EQ(stored->back().text, "m4");
}

TEST_F(RoomManagerTest, MalformedMessagesGetErrorFrames) {
  auto [b, ba] = connect(bob_);
  struct Case {
    const char* text;
    const char* code;
  } cases[] = {
      {"{not json", "bad_json"},
      {"", "bad_json"},
      {"[1,2]", "bad_message"},
      {R"({"t":1})", "bad_message"},
      {R"({"type":5})", "bad_message"},
      {R"({"type":"dance"})", "unknown_type"},
      {R"({"type":"play"})", "bad_message"},
      {R"({"type":"play","version":-1})", "bad_message"},
      {R"({"type":"play","version":"3"})", "bad_message"},
      {R"({"type":"seek","version":0})", "bad_message"},
      {R"({"type":"seek","version":0,"position_s":"10"})", "bad_message"},
      {R"({"type":"rate","version":0})", "bad_message"},
      {R"({"type":"set_item","version":0})", "bad_message"},
      {R"({"type":"buffering"})", "bad_message"},
      {R"({"type":"buffering","buffering":"yes"})", "bad_message"},
      {R"({"type":"ended"})", "bad_message"},
      {R"({"type":"chat"})", "bad_message"},
      {R"({"type":"chat","text":7})", "bad_message"},
      {R"({"type":"playlist_add","kind":"url"})", "bad_message"},
      {R"x({"type":"playlist_add","kind":"url","url":"javascript:alert(1)"})x", "bad_message"},
      {R"({"type":"playlist_add","kind":"file","url":"/a.mp4"})", "bad_message"},
      {R"({"type":"playlist_remove"})", "bad_message"},
      {R"({"type":"playlist_move","item_ids":[1,"x"]})", "bad_message"},
      {R"({"type":"live_offset"})", "bad_message"},
      {R"({"type":"ping"})", "bad_message"},
  };
  for (const auto& c : cases) {
    b->clear();
    send(*ba, c.text);
    auto errors = b->of_type("error");
    ASSERT_EQ(errors.size(), 1u) << c.text;
    EXPECT_EQ(errors[0].at("code").as_string(), c.code) << c.text;
    EXPECT_FALSE(errors[0].at("message").as_string().empty());
  }
  EXPECT_EQ(version(), 0u);
}

TEST_F(RoomManagerTest, PingPongEchoesTAndRef) {
  auto [b, ba] = connect(bob_);
  send(*ba, R"({"type":"ping","t":12345.5,"ref":"p1","extra":{"ignored":true}})");
  auto p = b->last("pong");
  EXPECT_DOUBLE_EQ(p.at("t").as_double(), 12345.5);
  EXPECT_EQ(p.at("server_time_ms").as_int64(), clock_);
  EXPECT_EQ(p.at("ref").as_string(), "p1");
}

TEST_F(RoomManagerTest, KickDisconnectsTheUserAndEnforcesTheCooldown) {
  auto [a, aa] = connect(alice_);
  auto [b1, ba1] = connect(bob_);
  auto [b2, ba2] = connect(bob_);
  auto [c, ca] = connect(carol_);
  ASSERT_TRUE(mgr_->kick(alice_, room_, bob_.user_id, 30).ok());
  for (auto* conn : {b1.get(), b2.get()}) {
    auto k = conn->last("kicked");
    EXPECT_EQ(k.at("reason").as_string(), "kicked");
    EXPECT_EQ(k.at("until_ms").as_int64(), clock_ + 30'000);
    EXPECT_EQ(conn->close_calls(), 1);
    EXPECT_EQ(conn->close_code(), kCloseKicked);
  }
  EXPECT_EQ(a->close_calls(), 0);
  EXPECT_EQ(c->close_calls(), 0);
  EXPECT_EQ(a->count("kicked"), 0u);
  // the gateway then detaches the closed sockets: presence shrinks
  mgr_->detach(*ba1);
  mgr_->detach(*ba2);
  auto pres = a->last("presence").at("members").as_array();
  EXPECT_EQ(pres.size(), 2u);
  // rejoining inside the cooldown is refused, both on the socket and via join
  auto again = mgr_->attach(room_, bob_, std::make_shared<FakeConn>());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.code(), Errc::forbidden);
  EXPECT_EQ(mgr_->join(bob_, room_, std::nullopt).code(), Errc::forbidden);
  clock_ += 30'001;
  auto later = mgr_->attach(room_, bob_, std::make_shared<FakeConn>());
  EXPECT_TRUE(later.ok());
}

TEST_F(RoomManagerTest, KickRulesFollowRanks) {
  EXPECT_EQ(mgr_->kick(bob_, room_, carol_.user_id, std::nullopt).code(), Errc::forbidden);  // no manage_members
  EXPECT_EQ(mgr_->kick(alice_, room_, alice_.user_id, std::nullopt).code(), Errc::forbidden);  // self
  MemberPatch mk;
  mk.role = "admin";
  ASSERT_TRUE(mgr_->update_member(alice_, room_, bob_.user_id, mk).ok());
  EXPECT_EQ(mgr_->kick(bob_, room_, alice_.user_id, std::nullopt).code(), Errc::forbidden);  // creator
  EXPECT_TRUE(mgr_->kick(bob_, room_, carol_.user_id, std::nullopt).ok());
  // an admin cannot make someone admin, nor act on another admin
  auto dave = make_user("dave");
  ASSERT_TRUE(mgr_->join(dave, room_, std::nullopt).ok());
  EXPECT_EQ(mgr_->update_member(bob_, room_, dave.user_id, mk).code(), Errc::forbidden);
  EXPECT_EQ(mgr_->kick(root_, room_, 999999, std::nullopt).code(), Errc::not_found);
  // default cooldown comes from the config
  auto m = store_->member(room_, carol_.user_id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kicked_until_ms, clock_ + cfg_.kick_cooldown_secs * 1000);
  EXPECT_EQ(mgr_->kick(alice_, room_, dave.user_id, -5).code(), Errc::malformed);
}

TEST_F(RoomManagerTest, BanIsPersistentUntilUnban) {
  auto [b, ba] = connect(bob_);
  ASSERT_TRUE(mgr_->ban(alice_, room_, bob_.user_id).ok());
  EXPECT_EQ(b->last("kicked").at("reason").as_string(), "banned");
  EXPECT_EQ(b->close_code(), kCloseKicked);
  clock_ += 365LL * 24 * 3600 * 1000;
  EXPECT_EQ(mgr_->attach(room_, bob_, std::make_shared<FakeConn>()).code(), Errc::forbidden);
  EXPECT_EQ(mgr_->join(bob_, room_, std::nullopt).code(), Errc::forbidden);
  EXPECT_EQ(mgr_->list_playlist(bob_, room_).code(), Errc::forbidden);
  ASSERT_TRUE(mgr_->unban(alice_, room_, bob_.user_id).ok());
  EXPECT_TRUE(mgr_->attach(room_, bob_, std::make_shared<FakeConn>()).ok());
}

TEST_F(RoomManagerTest, AutoAdvanceHappensOnceForManyEndedReports) {
  int64_t i1 = add_item("https://m.example/1.mp4");
  int64_t i2 = add_item("https://m.example/2.mp4");
  add_item("https://m.example/3.mp4");
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  auto [c, ca] = connect(carol_);
  send(*aa, json::object{{"type", "play"}, {"version", version()}});
  const uint64_t v = version();
  a->clear();
  clock_ += 60'000;
  for (auto* att : {ba.get(), ca.get(), aa.get(), ba.get()}) {
    send(*att, json::object{{"type", "ended"}, {"item_id", i1}});
  }
  auto states = a->of_type("state");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].at("reason").as_string(), "auto");
  EXPECT_TRUE(states[0].at("by").is_null());
  EXPECT_EQ(states[0].at("state").at("item_id").as_int64(), i2);
  EXPECT_DOUBLE_EQ(states[0].at("state").at("position_s").as_double(), 0.0);
  EXPECT_TRUE(states[0].at("state").at("playing").as_bool());
  EXPECT_EQ(version(), v + 1);
  EXPECT_EQ(b->count("error"), 0u);  // duplicates are ignored silently
}

TEST_F(RoomManagerTest, NextAtTheEndOfThePlaylistIsNotFound) {
  add_item("https://m.example/1.mp4");
  auto [a, aa] = connect(alice_);
  send(*aa, json::object{{"type", "next"}, {"version", version()}});
  EXPECT_EQ(a->last("error").at("code").as_string(), "not_found");
}

TEST_F(RoomManagerTest, PlaylistEditingOverTheSocket) {
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  send(*ba, R"({"type":"playlist_add","kind":"url","url":"https://m.example/1.mp4","title":"One"})");
  auto pl = a->last("playlist").at("items").as_array();
  ASSERT_EQ(pl.size(), 1u);
  EXPECT_EQ(pl[0].at("title").as_string(), "One");
  EXPECT_EQ(pl[0].at("added_by").as_int64(), bob_.user_id);
  const int64_t first = pl[0].at("id").as_int64();
  auto st = a->last("state");  // first item selected automatically
  EXPECT_EQ(st.at("reason").as_string(), "auto");
  EXPECT_EQ(st.at("state").at("item_id").as_int64(), first);
  send(*ba, R"({"type":"playlist_add","kind":"live","url":"live/show"})");
  pl = a->last("playlist").at("items").as_array();
  ASSERT_EQ(pl.size(), 2u);
  EXPECT_EQ(pl[1].at("title").as_string(), "live/show");
  const int64_t second = pl[1].at("id").as_int64();
  send(*ba, json::object{{"type", "playlist_move"}, {"item_ids", json::array{second, first}}});
  pl = a->last("playlist").at("items").as_array();
  EXPECT_EQ(pl[0].at("id").as_int64(), second);
  send(*ba, json::object{{"type", "playlist_move"}, {"item_ids", json::array{second}}});
  EXPECT_EQ(b->last("error").at("code").as_string(), "bad_message");
  // removing the current item selects the one that followed it (now: none after `first`)
  send(*ba, json::object{{"type", "playlist_remove"}, {"item_id", first}});
  EXPECT_EQ(a->last("state").at("state").at("item_id").as_int64(), 0);
  EXPECT_EQ(a->last("playlist").at("items").as_array().size(), 1u);
  send(*ba, json::object{{"type", "playlist_remove"}, {"item_id", 424242}});
  EXPECT_EQ(b->last("error").at("code").as_string(), "not_found");
  auto listed = mgr_->list_playlist(carol_, room_);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->at(0).kind, "live");
}

TEST_F(RoomManagerTest, LiveItemsAnnounceTheTargetOffset) {
  add_item("https://m.example/1.mp4");
  int64_t live = add_item("live/show", "live");
  auto [a, aa] = connect(alice_);
  send(*aa, json::object{{"type", "set_item"}, {"version", version()}, {"item_id", live}});
  EXPECT_DOUBLE_EQ(a->last("live").at("target_offset_s").as_double(), cfg_.live_target_offset_secs);
  send(*aa, json::object{{"type", "seek"}, {"version", version()}, {"position_s", 3}});
  EXPECT_EQ(a->last("error").at("code").as_string(), "bad_message");
  send(*aa, R"({"type":"live_offset","seconds":4.2})");
  EXPECT_EQ(a->count("error"), 1u);
  // a late joiner gets `live` right after its welcome
  auto [b, ba] = connect(bob_);
  auto frames = b->frames();
  ASSERT_GE(frames.size(), 2u);
  EXPECT_NE(frames[0]->find("\"welcome\""), std::string::npos);
  EXPECT_NE(frames[1]->find("\"live\""), std::string::npos);
}

TEST_F(RoomManagerTest, BufferingWaitPausesTheRoomUntilEveryoneIsReady) {
  add_item("https://m.example/1.mp4");
  RoomPatch patch;
  patch.settings.pause_on_buffering = true;
  ASSERT_TRUE(mgr_->update_room(alice_, room_, patch).ok());
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  send(*aa, json::object{{"type", "play"}, {"version", version()}});
  clock_ += 2000;
  a->clear();
  send(*ba, R"({"type":"buffering","buffering":true})");
  auto s = a->last("state");
  EXPECT_EQ(s.at("reason").as_string(), "buffering");
  EXPECT_FALSE(s.at("state").at("playing").as_bool());
  EXPECT_DOUBLE_EQ(s.at("state").at("position_s").as_double(), 2.0);
  clock_ += 5000;
  send(*aa, R"({"type":"buffering","buffering":false})");  // alice was never buffering
  EXPECT_EQ(a->count("state"), 1u);
  // bob's connection goes away while buffering: playback resumes from 2.0
  mgr_->detach(*ba);
  s = a->last("state");
  EXPECT_TRUE(s.at("state").at("playing").as_bool());
  EXPECT_DOUBLE_EQ(s.at("state").at("position_s").as_double(), 2.0);
  EXPECT_EQ(s.at("state").at("updated_at_ms").as_int64(), clock_);
}

TEST_F(RoomManagerTest, AttachErrors) {
  auto dave = make_user("dave");
  EXPECT_EQ(mgr_->check_access("nope", alice_).code(), Errc::not_found);
  EXPECT_EQ(mgr_->check_access(room_, dave).code(), Errc::forbidden);
  EXPECT_TRUE(mgr_->check_access(room_, bob_).ok());
  EXPECT_TRUE(mgr_->check_access(room_, root_).ok());
  EXPECT_EQ(mgr_->attach("nope", alice_, std::make_shared<FakeConn>()).code(), Errc::not_found);
  EXPECT_EQ(mgr_->attach(room_, dave, std::make_shared<FakeConn>()).code(), Errc::forbidden);
  // a global admin may enter without membership, as a room admin
  auto [r, ra] = connect(root_);
  EXPECT_EQ(r->last("welcome").at("you").at("role").as_string(), "admin");
}

TEST_F(RoomManagerTest, DestroyingTheAttachmentUpdatesPresence) {
  auto [a, aa] = connect(alice_);
  {
    auto conn = std::make_shared<FakeConn>();
    auto b = mgr_->attach(room_, bob_, conn);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(a->last("presence").at("members").as_array().size(), 2u);
  }  // dropped
  EXPECT_EQ(a->last("presence").at("members").as_array().size(), 1u);
  EXPECT_EQ(mgr_->online_count(room_), 1);
  EXPECT_EQ(mgr_->stats().connections, 1);
  EXPECT_EQ(mgr_->stats().rooms_loaded, 1);
  // messages after detach are ignored
  auto conn = std::make_shared<FakeConn>();
  auto c = mgr_->attach(room_, carol_, conn);
  ASSERT_TRUE(c.ok());
  mgr_->detach(**c);
  mgr_->detach(**c);  // idempotent
  conn->clear();
  mgr_->on_message(**c, R"({"type":"chat","text":"ghost"})");
  EXPECT_EQ(a->count("chat"), 0u);
}

TEST_F(RoomManagerTest, RoomLifecycleOverTheApi) {
  auto list = mgr_->list_rooms(bob_);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->at(0).creator, "alice");
  EXPECT_EQ(list->at(0).online, 0);
  auto [b, ba] = connect(bob_);
  EXPECT_EQ(mgr_->list_rooms(bob_)->at(0).online, 1);
  auto d = mgr_->get_room(bob_, room_);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d->you.has_value());
  EXPECT_EQ(d->you->role, "member");
  EXPECT_EQ(d->you->connections, 1);
  EXPECT_FALSE(mgr_->get_room(make_user("eve"), room_)->you.has_value());

  RoomPatch rename;
  rename.name = "Film night";
  EXPECT_EQ(mgr_->update_room(bob_, room_, rename).code(), Errc::forbidden);
  auto updated = mgr_->update_room(alice_, room_, rename);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->name, "Film night");
  EXPECT_EQ(b->last("room").at("room").at("name").as_string(), "Film night");
  RoomPatch bad;
  bad.name = std::string(65, 'n');
  EXPECT_EQ(mgr_->update_room(alice_, room_, bad).code(), Errc::malformed);

  auto members = mgr_->list_members(bob_, room_);
  ASSERT_TRUE(members.ok());
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ(members->at(0).role, "creator");

  EXPECT_EQ(mgr_->delete_room(bob_, room_).code(), Errc::forbidden);
  ASSERT_TRUE(mgr_->delete_room(alice_, room_).ok());
  EXPECT_EQ(b->close_code(), kCloseRoomDeleted);
  EXPECT_EQ(b->last("error").at("code").as_string(), "not_found");
  EXPECT_EQ(mgr_->get_room(alice_, room_).code(), Errc::not_found);
  EXPECT_EQ(mgr_->attach(room_, alice_, std::make_shared<FakeConn>()).code(), Errc::not_found);
  mgr_->detach(*ba);  // the gateway's detach after close is harmless
}

TEST_F(RoomManagerTest, CreateRoomValidatesAndGuestsCannotCreate) {
  CreateRoomRequest req;
  req.name = "";
  EXPECT_EQ(mgr_->create_room(alice_, req).code(), Errc::malformed);
  req.name = "ok";
  req.password = "short";
  EXPECT_EQ(mgr_->create_room(alice_, req).code(), Errc::malformed);
  req.password.reset();
  Identity g{12345, "g#abcd", store::kRoleGuest};
  EXPECT_EQ(mgr_->create_room(g, req).code(), Errc::forbidden);
  req.name = "<b>bold</b> \u2603";
  auto r = mgr_->create_room(bob_, req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->name, "<b>bold</b> \u2603");  // stored as given
  EXPECT_EQ(r->id.size(), 10u);
  EXPECT_FALSE(r->has_password);
  auto m = store_->member(r->id, bob_.user_id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->role, "creator");
}

TEST_F(RoomManagerTest, PasswordProtectedRooms) {
  CreateRoomRequest req;
  req.name = "secret";
  req.password = "correct horse";
  auto r = mgr_->create_room(alice_, req);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->has_password);
  EXPECT_EQ(mgr_->join(bob_, r->id, std::nullopt).code(), Errc::forbidden);
  EXPECT_EQ(mgr_->join(bob_, r->id, std::string("wrong pass")).code(), Errc::forbidden);
  auto ok = mgr_->join(bob_, r->id, std::string("correct horse"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->role, "member");
  EXPECT_TRUE(mgr_->join(bob_, r->id, std::nullopt).ok());  // already a member
  auto stored = store_->room_by_id(r->id);
  EXPECT_NE(stored->password_hash, "correct horse");
}

TEST(RoomManagerAuth, RealPasswordHashingIsTheDefault) {
  auto s = store::open_store(":memory:");
  ASSERT_TRUE(s.ok());
  cluster::MemoryEventBus bus;
  RoomsConfig cfg;
  Metrics metrics;
  RoomManager mgr(**s, bus, cfg, metrics);
  store::User a{0, "alice", "x", store::kRoleUser, 0};
  store::User b{0, "bob", "x", store::kRoleUser, 0};
  auto ua = (*s)->create_user(a);
  auto ub = (*s)->create_user(b);
  ASSERT_TRUE(ua.ok() && ub.ok());
  CreateRoomRequest req;
  req.name = "r";
  req.password = "hunter2hunter2";
  auto r = mgr.create_room(Identity{ua->id, "alice", "user"}, req);
  ASSERT_TRUE(r.ok()) << r.error().message();
  auto row = (*s)->room_by_id(r->id);
  EXPECT_EQ(row->password_hash.rfind("$argon2id$", 0), 0u);
  Identity bob{ub->id, "bob", "user"};
  EXPECT_EQ(mgr.join(bob, r->id, std::string("hunter3hunter3")).code(), Errc::forbidden);
  EXPECT_TRUE(mgr.join(bob, r->id, std::string("hunter2hunter2")).ok());
}

TEST_F(RoomManagerTest, GuestsNeedAllowGuests) {
  RoomPatch p;
  p.allow_guests = false;
  ASSERT_TRUE(mgr_->update_room(alice_, room_, p).ok());
  EXPECT_EQ(mgr_->add_guest_member(room_, "Zed", std::nullopt).code(), Errc::forbidden);
  p.allow_guests = true;
  ASSERT_TRUE(mgr_->update_room(alice_, room_, p).ok());
  EXPECT_EQ(mgr_->add_guest_member(room_, "bad#name", std::nullopt).code(), Errc::malformed);
  auto g1 = mgr_->add_guest_member(room_, "Zed", std::nullopt);
  auto g2 = mgr_->add_guest_member(room_, "Zed", std::nullopt);
  ASSERT_TRUE(g1.ok() && g2.ok());
  EXPECT_NE(g1->user.username, g2->user.username);
  EXPECT_EQ(g1->member.permissions, kChat);
  // a guest account cannot join another room
  CreateRoomRequest req;
  req.name = "other";
  auto other = mgr_->create_room(alice_, req);
  ASSERT_TRUE(other.ok());
  Identity gi{g1->user.id, g1->user.username, store::kRoleGuest};
  EXPECT_EQ(mgr_->join(gi, other->id, std::nullopt).code(), Errc::forbidden);
}

TEST_F(RoomManagerTest, PublishKeys) {
  EXPECT_EQ(mgr_->publish_key(bob_, room_).code(), Errc::forbidden);
  auto k = mgr_->publish_key(alice_, room_);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->publish_key.size(), 32u);
  EXPECT_EQ(k->stream, "live/room-" + room_) << "viewers see the room, never the key";
  EXPECT_EQ(mgr_->publish_key(alice_, room_)->publish_key, k->publish_key);  // stable
  auto found = mgr_->room_for_publish_key(k->publish_key);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->id, room_);
  auto rotated = mgr_->rotate_publish_key(alice_, room_);
  ASSERT_TRUE(rotated.ok());
  EXPECT_NE(rotated->publish_key, k->publish_key);
  EXPECT_EQ(mgr_->room_for_publish_key(k->publish_key).code(), Errc::not_found);
  EXPECT_EQ(mgr_->room_for_publish_key("").code(), Errc::not_found);
  MemberPatch live;
  live.grant = {"manage_live"};
  ASSERT_TRUE(mgr_->update_member(alice_, room_, bob_.user_id, live).ok());
  EXPECT_EQ(mgr_->publish_key(bob_, room_)->publish_key, rotated->publish_key);
}

TEST_F(RoomManagerTest, MemberUpdatesValidate) {
  MemberPatch bad;
  bad.grant = {"fly"};
  EXPECT_EQ(mgr_->update_member(alice_, room_, bob_.user_id, bad).code(), Errc::malformed);
  MemberPatch creator;
  creator.role = "creator";
  EXPECT_EQ(mgr_->update_member(alice_, room_, bob_.user_id, creator).code(), Errc::malformed);
  MemberPatch demote;
  demote.role = "guest";
  EXPECT_EQ(mgr_->update_member(root_, room_, alice_.user_id, demote).code(), Errc::forbidden);
  auto m = mgr_->update_member(alice_, room_, bob_.user_id, demote);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->role, "guest");
  EXPECT_EQ(m->permissions, kChat);
  MemberPatch clear;
  clear.revoke = {"chat"};
  ASSERT_TRUE(mgr_->update_member(alice_, room_, bob_.user_id, clear).ok());
  clear.revoke.clear();
  clear.clear = {"chat"};
  auto cleared = mgr_->update_member(alice_, room_, bob_.user_id, clear);
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->permissions, kChat);
  EXPECT_EQ(cleared->revokes, 0u);
}

TEST_F(RoomManagerTest, ConcurrentCommandsKeepVersionsConsistent) {
  add_item("https://m.example/1.mp4");
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  std::vector<std::thread> ts;
  for (auto* att : {aa.get(), ba.get()}) {
    ts.emplace_back([&, att] {
      for (int i = 0; i < 200; ++i) {
        // read the version as a client would, from the latest state we were told
        send(*att, json::object{{"type", "seek"}, {"version", version()}, {"position_s", double(i)}});
        send(*att, R"({"type":"chat","text":"x"})");
      }
    });
  }
  for (auto& t : ts) t.join();
  // every accepted seek produced exactly one state frame, in version order, for every connection
  auto states = a->of_type("state");
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.size(), b->of_type("state").size());
  for (size_t i = 1; i < states.size(); ++i) {
    EXPECT_EQ(states[i].at("state").at("version").to_number<uint64_t>(), states[i - 1].at("state").at("version").to_number<uint64_t>() + 1);
  }
  EXPECT_EQ(states.back().at("state").at("version").to_number<uint64_t>(), version());
  EXPECT_EQ(a->count("chat"), 400u);
  // seq numbers strictly increase on each connection
  int64_t last = -1;
  for (const auto& f : a->frames()) {
    auto o = json::parse(*f).as_object();
    // welcome carries the seq seen so far; direct replies (errors) carry none
    if (o.at("type").as_string() == "welcome" || o.at("type").as_string() == "error") continue;
    auto seq = o.at("seq").to_number<uint64_t>();
    EXPECT_GT(static_cast<int64_t>(seq), last);
    last = static_cast<int64_t>(seq);
  }
}

/// Several nodes' buses joined in one process: every publish reaches every node's subscribers
/// with the publisher's node id, like a Redis deployment would deliver it.
class LinkedNetwork {
 public:
  class Node : public cluster::EventBus {
   public:
    Node(LinkedNetwork& net, std::string id) : net_(net), id_(std::move(id)) {}
    Status publish(cluster::Lane lane, const std::string& topic, std::shared_ptr<const std::string> payload) override {
      cluster::Event ev{{id_, ++seq_}, lane, topic, std::move(payload)};
      std::vector<std::pair<std::string, std::shared_ptr<cluster::Handler>>> subs;
      {
        std::lock_guard lk(net_.mu_);
        subs = net_.subs_;
      }
      for (auto& [prefix, h] : subs) {
        if (topic.starts_with(prefix)) (*h)(ev);
      }
      return ok_status();
    }
    cluster::Subscription subscribe(const std::string& prefix, cluster::Handler h) override {
      auto hp = std::make_shared<cluster::Handler>(std::move(h));
      std::lock_guard lk(net_.mu_);
      net_.subs_.emplace_back(prefix, hp);
      return cluster::Subscription([this, hp] {
        std::lock_guard lk2(net_.mu_);
        std::erase_if(net_.subs_, [&](const auto& s) { return s.second == hp; });
      });
    }
    const std::string& node_id() const override { return id_; }

   private:
    LinkedNetwork& net_;
    std::string id_;
    std::atomic<uint64_t> seq_{0};
  };

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, std::shared_ptr<cluster::Handler>>> subs_;
};

TEST(RoomManagerCluster, TwoNodesShareEventsAndMirrorState) {
  auto s = store::open_store(":memory:");
  ASSERT_TRUE(s.ok());
  auto& st = **s;
  LinkedNetwork net;
  LinkedNetwork::Node bus1(net, "n1"), bus2(net, "n2");
  RoomsConfig cfg;
  Metrics metrics;
  int64_t clock = 1'700'000'000'000;
  auto now = [&] { return clock; };
  auto n1 = std::make_unique<RoomManager>(st, bus1, cfg, metrics, fake_passwords(), now);
  auto n2 = std::make_unique<RoomManager>(st, bus2, cfg, metrics, fake_passwords(), now);
  auto mk = [&](const char* name) {
    auto u = st.create_user(store::User{0, name, "x", store::kRoleUser, 0});
    EXPECT_TRUE(u.ok());
    return Identity{u->id, name, store::kRoleUser};
  };
  Identity alice = mk("alice"), bob = mk("bob");
  CreateRoomRequest req;
  req.name = "r";
  auto room = n1->create_room(alice, req);
  ASSERT_TRUE(room.ok());
  ASSERT_TRUE(n2->join(bob, room->id, std::nullopt).ok());
  ASSERT_TRUE(n1->add_playlist_item(alice, room->id, "url", "https://m.example/1.mp4", "").ok());

  auto ac = std::make_shared<FakeConn>();
  auto bc = std::make_shared<FakeConn>();
  auto aa = n1->attach(room->id, alice, ac);
  auto ba = n2->attach(room->id, bob, bc);
  ASSERT_TRUE(aa.ok() && ba.ok());
  EXPECT_EQ(bc->last("welcome").at("playlist").at("items").as_array().size(), 1u);

  // bob plays on node 2; alice on node 1 sees it, and node 1 accepts her next version
  const uint64_t v = bc->last("welcome").at("state").at("version").to_number<uint64_t>();
  n2->on_message(**ba, json::serialize(json::object{{"type", "play"}, {"version", v}}));
  auto as = ac->last("state");
  EXPECT_EQ(as.at("by").at("username").as_string(), "bob");
  ASSERT_EQ(ac->count("state"), 1u);  // delivered once, by node 1 only
  n1->on_message(**aa, json::serialize(json::object{{"type", "pause"}, {"version", v + 1}}));
  EXPECT_EQ(ac->count("error"), 0u);
  EXPECT_FALSE(bc->last("state").at("state").at("playing").as_bool());

  // an older state arriving late from another node is dropped
  json::object old{{"type", "state"}, {"reason", "seek"}, {"by", nullptr}, {"server_time_ms", clock},
                   {"state", json::object{{"item_id", 1}, {"position_s", 99.0}, {"rate", 1.0}, {"playing", true},
                                          {"updated_at_ms", clock}, {"version", v}}}};
  LinkedNetwork::Node bus3(net, "n3");
  const size_t before = ac->count("state");
  ASSERT_TRUE(bus3.publish(cluster::Lane::normal, "room:" + room->id + "/state",
                           std::make_shared<const std::string>(json::serialize(old))).ok());
  EXPECT_EQ(ac->count("state"), before);

  // Two nodes that produced the same version at once: the larger node id wins on every node.
  const uint64_t cur = ac->last("state").at("state").at("version").to_number<uint64_t>();
  auto same_version = [&](double pos) {
    json::object f = old;
    f["state"].as_object()["version"] = cur;
    f["state"].as_object()["position_s"] = pos;
    return std::make_shared<const std::string>(json::serialize(f));
  };
  LinkedNetwork::Node bus0(net, "n0");
  ASSERT_TRUE(bus0.publish(cluster::Lane::normal, "room:" + room->id + "/state", same_version(11.0)).ok());
  EXPECT_EQ(ac->count("state"), before);  // "n0" < "n2" (the origin of the current state): dropped
  ASSERT_TRUE(bus3.publish(cluster::Lane::normal, "room:" + room->id + "/state", same_version(33.0)).ok());
  EXPECT_EQ(ac->last("state").at("state").at("position_s").as_double(), 33.0);
  EXPECT_EQ(bc->last("state").at("state").at("position_s").as_double(), 33.0);

  // Presence lists the members of both nodes, on both nodes (node 1 shares its part when the
  // periodic flush runs, after node 2 asked for it on loading the room).
  n1->flush_presence();
  EXPECT_EQ(ac->last("presence").at("members").as_array().size(), 2u);
  EXPECT_EQ(bc->last("presence").at("members").as_array().size(), 2u);
  EXPECT_EQ(n1->online_count(room->id), 2);
  EXPECT_EQ(n2->online_count(room->id), 2);
  // A node going offline takes its members out of the other nodes' presence.
  n1->drop_node("n2");
  EXPECT_EQ(ac->last("presence").at("members").as_array().size(), 1u);
  EXPECT_EQ(n1->online_count(room->id), 1);

  // chat from node 2 reaches node 1; a kick issued on node 1 closes bob's socket on node 2
  n2->on_message(**ba, R"({"type":"chat","text":"hi from n2"})");
  EXPECT_EQ(ac->last("chat").at("message").at("text").as_string(), "hi from n2");
  ASSERT_TRUE(n1->kick(alice, room->id, bob.user_id, 10).ok());
  EXPECT_EQ(bc->close_code(), kCloseKicked);
  EXPECT_EQ(ac->close_calls(), 0);

  // a member change made on node 1 updates node 2's permission cache
  n2->detach(**ba);
  clock += 11'000;
  auto bc2 = std::make_shared<FakeConn>();
  auto ba2 = n2->attach(room->id, bob, bc2);
  ASSERT_TRUE(ba2.ok());
  MemberPatch mp;
  mp.revoke = {"chat"};
  ASSERT_TRUE(n1->update_member(alice, room->id, bob.user_id, mp).ok());
  EXPECT_EQ(bc2->last("member").at("member").at("user_id").as_int64(), bob.user_id);
  n2->on_message(**ba2, R"({"type":"chat","text":"muted?"})");
  EXPECT_EQ(bc2->last("error").at("code").as_string(), "forbidden");

  // Every connection saw `seq` increase, whichever node each frame came from.
  for (const auto* c : {ac.get(), bc.get(), bc2.get()}) {
    uint64_t last = 0;
    for (const auto& f : c->frames()) {
      const auto o = json::parse(*f).as_object();
      if (!o.contains("seq") || o.at("type").as_string() == "welcome") continue;
      const uint64_t seq = o.at("seq").to_number<uint64_t>();
      EXPECT_GT(seq, last) << *f;
      last = seq;
    }
    EXPECT_GT(last, 0u);
  }

  aa->reset();
  ba->reset();
  ba2->reset();
  n1.reset();
  n2.reset();
}

TEST(TextValidation, Utf8) {
  EXPECT_EQ(utf8_length("abc"), 3);
  EXPECT_EQ(utf8_length("\u00e9\u2603\U0001F600"), 3);
  EXPECT_EQ(utf8_length("\xC3"), -1);            // truncated
  EXPECT_EQ(utf8_length("\xC0\xAF"), -1);        // overlong
  EXPECT_EQ(utf8_length("\xED\xA0\x80"), -1);    // surrogate
  EXPECT_EQ(utf8_length("\xF4\x90\x80\x80"), -1);  // > U+10FFFF
  EXPECT_TRUE(has_control_chars("a\nb"));
  EXPECT_FALSE(has_control_chars("a b"));
  EXPECT_TRUE(validate_chat_text("line1\nline2").ok());
  EXPECT_TRUE(validate_playlist_item("url", "/hls/live/x.m3u8", "").ok());
  EXPECT_FALSE(validate_playlist_item("url", "https://a b", "").ok());
  EXPECT_FALSE(validate_playlist_item("live", "live/../x", "").ok());
  EXPECT_FALSE(validate_playlist_item("live", "live", "").ok());
  EXPECT_FALSE(validate_playlist_item("url", "/x.mp4", "tab\there").ok());
}


TEST_F(RoomManagerTest, RoomStreamPublishAddsAndSelectsTheLiveItemOnce) {
  auto [b, ba] = connect(bob_);
  ASSERT_TRUE(mgr_->on_room_stream_published(room_).ok());
  auto pl = b->last("playlist");
  ASSERT_EQ(pl.at("items").as_array().size(), 1u);
  const auto& item = pl.at("items").at(0);
  EXPECT_EQ(item.at("kind").as_string(), "live");
  EXPECT_EQ(item.at("url").as_string(), "live/room-" + room_);
  EXPECT_EQ(item.at("added_by").as_int64(), alice_.user_id) << "added on behalf of the creator";
  EXPECT_EQ(b->last("state").at("state").at("item_id").as_int64(), item.at("id").as_int64());
  // A second publish (reconnect) adds nothing.
  ASSERT_TRUE(mgr_->on_room_stream_published(room_).ok());
  auto items = mgr_->list_playlist(alice_, room_);
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 1u);
  EXPECT_EQ(mgr_->on_room_stream_published("no-such-room").code(), Errc::not_found);
}

TEST_F(RoomManagerTest, RoomStreamPublishKeepsTheCurrentItem) {
  int64_t vod = add_item("https://media.example/a.m3u8");
  uint64_t v = version();
  ASSERT_TRUE(mgr_->on_room_stream_published(room_).ok());
  auto items = mgr_->list_playlist(alice_, room_);
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(items->at(1).url, "live/room-" + room_);
  mgr_->flush_state_writes();
  auto st = store_->room_state(room_);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->item_id, vod);
  EXPECT_EQ(st->version, v);
}


// ---- presence coalescing ----

TEST_F(RoomManagerTest, PresenceIsImmediateForEveryChangeUntilFlushingStarts) {
  auto [a, aa] = connect(alice_);
  auto [b, ba] = connect(bob_);
  auto [c, ca] = connect(carol_);
  EXPECT_EQ(a->count("presence"), 3u);  // same clock, but nobody flushes: nothing is held back
  EXPECT_EQ(a->last("presence").at("members").as_array().size(), 3u);
}

TEST_F(RoomManagerTest, ABurstOfAttachesIsCoalescedIntoOneImmediateAndOneFlushedPresence) {
  mgr_->flush_presence();  // the server's flush loop is running
  std::vector<Identity> users{alice_, bob_, carol_};
  for (int i = 0; i < 7; ++i) {
    users.push_back(make_user("user" + std::to_string(i)));
    ASSERT_TRUE(mgr_->join(users.back(), room_, std::nullopt).ok());
  }
  std::vector<std::shared_ptr<FakeConn>> conns;
  for (const auto& u : users) conns.push_back(connect(u).first);
  const auto& first = conns.front();
  const auto& last = conns.back();
  ASSERT_EQ(first->count("presence"), 1u);  // its own arrival, broadcast at once
  EXPECT_EQ(first->last("presence").at("members").as_array().size(), 1u);
  EXPECT_EQ(last->count("presence"), 0u);
  // the newcomer's welcome still lists everybody
  EXPECT_EQ(last->last("welcome").at("members").as_array().size(), users.size());

  clock_ += RoomManager::kPresenceIntervalMs - 1;
  mgr_->flush_presence();  // still inside the interval
  EXPECT_EQ(first->count("presence"), 1u);

  clock_ += 1;
  mgr_->flush_presence();
  ASSERT_EQ(first->count("presence"), 2u);
  ASSERT_EQ(last->count("presence"), 1u);
  auto p = first->last("presence");
  const auto& members = p.at("members").as_array();
  ASSERT_EQ(members.size(), users.size());
  std::set<int64_t> ids;
  for (const auto& m : members) ids.insert(m.at("user_id").as_int64());
  for (const auto& u : users) EXPECT_TRUE(ids.count(u.user_id)) << u.username;
  // ordered after every welcome of the burst, and the same frame for everybody
  EXPECT_GT(p.at("seq").to_number<uint64_t>(), last->last("welcome").at("seq").to_number<uint64_t>());
  EXPECT_EQ(first->last_ptr("presence").get(), last->last_ptr("presence").get());

  clock_ += 10 * RoomManager::kPresenceIntervalMs;
  mgr_->flush_presence();  // nothing pending any more
  EXPECT_EQ(first->count("presence"), 2u);
}

TEST_F(RoomManagerTest, AnAttachAfterAQuietPeriodIsBroadcastAtOnce) {
  mgr_->flush_presence();
  auto [a, aa] = connect(alice_);
  clock_ += RoomManager::kPresenceIntervalMs;
  auto [b, ba] = connect(bob_);
  ASSERT_EQ(a->count("presence"), 2u);
  EXPECT_EQ(a->last("presence").at("members").as_array().size(), 2u);
  EXPECT_EQ(b->last("presence").at("members").as_array().size(), 2u);
}

TEST_F(RoomManagerTest, ADetachInsideTheIntervalIsFlushedLater) {
  mgr_->flush_presence();
  auto [a, aa] = connect(alice_);
  auto conn = std::make_shared<FakeConn>();
  auto b = mgr_->attach(room_, bob_, conn);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->last("presence").at("members").as_array().size(), 1u);  // bob held back
  clock_ += RoomManager::kPresenceIntervalMs;
  mgr_->flush_presence();
  EXPECT_EQ(a->last("presence").at("members").as_array().size(), 2u);
  const size_t before = a->count("presence");
  mgr_->detach(**b);  // right after that broadcast
  EXPECT_EQ(a->count("presence"), before);
  clock_ += 100;
  mgr_->flush_presence();
  EXPECT_EQ(a->count("presence"), before);
  clock_ += RoomManager::kPresenceIntervalMs - 100;
  mgr_->flush_presence();
  ASSERT_EQ(a->count("presence"), before + 1);
  auto members = a->last("presence").at("members").as_array();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members.at(0).at("user_id").as_int64(), alice_.user_id);
}

}  // namespace
}  // namespace castmesh::room
