// One behavioural suite for every Store backend. The SQLite instance runs on a fresh file per
// test; the PostgreSQL instance runs in a fresh schema per test on the server named by
// CASTMESH_TEST_PG_URL (scripts/pg-test start prints one) and is skipped when it is unset.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.hpp"
#include "store/migrations/migrations.hpp"
#include "store/store.hpp"

namespace castmesh::store {
namespace {

enum class Backend { sqlite, postgres };

// Readable test names in gtest/ctest output instead of the enum's bytes.
void PrintTo(Backend b, std::ostream* os) { *os << (b == Backend::sqlite ? "sqlite" : "postgres"); }

std::string random_hex(int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < n; ++i) s += kHex[rd() % 16];
  return s;
}

const std::vector<std::string>& hostile_strings() {
  static const std::vector<std::string> k = {
      "Robert'); DROP TABLE users;--",
      "\"double\" 'single' `back`",
      "back\\slash \\' \\\" \\\\",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x8E\xAC and CJK \xE6\xBC\xA2\xE5\xAD\x97",
      "%_ LIKE wildcards * ?",
      "$1 ?1 ? :name @p placeholders",
      "line1\nline2\ttab\r\n",
      "NULL",
      "  padded  ",
      "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D rtl + combining e\xCC\x81",
      "; SELECT pg_sleep(10); --",
  };
  return k;
}

class StoreSuite : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::postgres) {
      const char* env = std::getenv("CASTMESH_TEST_PG_URL");
      if (env == nullptr || *env == '\0') {
        GTEST_SKIP() << "CASTMESH_TEST_PG_URL is not set; PostgreSQL tests skipped (run "
                        "`scripts/pg-test start` and export the URL it prints)";
      }
      base_url_ = env;
      schema_ = "t_" + random_hex(16);
      exec_admin("CREATE SCHEMA " + schema_);
      // Every pooled connection of the store works inside the test's own schema; the
      // application_name lets a test find (and kill) exactly this store's connections.
      url_ = base_url_ + (base_url_.find('?') == std::string::npos ? "?" : "&") +
             "options=-csearch_path%3D" + schema_ + "&application_name=" + schema_;
    } else {
      dir_ = std::filesystem::temp_directory_path() / ("castmesh-store-test-" + random_hex(16));
      db_path_ = (dir_ / "nested" / "dir" / "castmesh.db").string();
      url_ = "sqlite:" + db_path_;
    }
    reopen();
  }

  void TearDown() override {
    store_.reset();
    if (!schema_.empty()) exec_admin("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  void reopen() {
    store_.reset();
    auto s = open_store(url_);
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
  }

  /// Runs SQL on the test's database outside the store (schema of this test on PostgreSQL).
  void exec_raw(const std::string& sql) {
    if (GetParam() == Backend::postgres) {
      pqxx::connection c(url_);
      pqxx::work w(c);
      w.exec(sql);
      w.commit();
    } else {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
      char* err = nullptr;
      const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
      std::string msg = err ? err : "";
      sqlite3_free(err);
      sqlite3_close(db);
      ASSERT_EQ(rc, SQLITE_OK) << msg;
    }
  }

  int64_t query_int(const std::string& sql) {
    if (GetParam() == Backend::postgres) {
      pqxx::connection c(url_);
      pqxx::work w(c);
      return w.exec(sql)[0][0].as<int64_t>();
    }
    sqlite3* db = nullptr;
    sqlite3_open(db_path_.c_str(), &db);
    sqlite3_stmt* st = nullptr;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }

  void exec_admin(const std::string& sql) {
    pqxx::connection c(base_url_);
    pqxx::work w(c);
    w.exec(sql);
    w.commit();
  }

  Store& db() { return *store_; }

  User make_user(const std::string& name, const std::string& role = kRoleUser) {
    User u;
    u.username = name;
    u.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    u.role = role;
    auto r = db().create_user(u);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? *r : User{};
  }

  Room make_room(const std::string& id, int64_t creator, const std::string& key = "") {
    Room r;
    r.id = id;
    r.name = "room " + id;
    r.creator_id = creator;
    r.publish_key = key;
    auto out = db().create_room(r);
    EXPECT_TRUE(out.ok()) << out.error().message();
    return out.ok() ? *out : Room{};
  }

  std::string base_url_;
  std::string schema_;
  std::filesystem::path dir_;
  std::string db_path_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

// ---- users ----

TEST_P(StoreSuite, UsersCreateReadUpdateCount) {
  const int64_t before = wall_ms();
  User alice = make_user("alice", kRoleAdmin);
  User bob = make_user("bob");
  EXPECT_GT(alice.id, 0);
  EXPECT_GT(bob.id, alice.id);
  EXPECT_GE(alice.created_at_ms, before);
  EXPECT_LE(alice.created_at_ms, wall_ms());

  auto by_id = db().user_by_id(alice.id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->username, "alice");
  EXPECT_EQ(by_id->role, kRoleAdmin);
  EXPECT_EQ(by_id->password_hash, alice.password_hash);
  EXPECT_EQ(by_id->created_at_ms, alice.created_at_ms);

  auto by_name = db().user_by_name("bob");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, bob.id);

  auto all = db().list_users();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].username, "alice");
  EXPECT_EQ((*all)[1].username, "bob");
  EXPECT_EQ(*db().count_users(), 2);

  bob.password_hash = "new-hash";
  bob.role = kRoleAdmin;
  bob.username = "ignored";  // update_user changes password_hash and role only
  ASSERT_TRUE(db().update_user(bob).ok());
  auto bob2 = db().user_by_id(bob.id);
  ASSERT_TRUE(bob2.ok());
  EXPECT_EQ(bob2->password_hash, "new-hash");
  EXPECT_EQ(bob2->role, kRoleAdmin);
  EXPECT_EQ(bob2->username, "bob");
}

TEST_P(StoreSuite, UsersConflictAndNotFound) {
  make_user("carol");
  User dup;
  dup.username = "carol";
  EXPECT_EQ(db().create_user(dup).code(), Errc::conflict);
  EXPECT_EQ(*db().count_users(), 1);
  EXPECT_EQ(db().user_by_id(999999).code(), Errc::not_found);
  EXPECT_EQ(db().user_by_name("nobody").code(), Errc::not_found);
  EXPECT_EQ(db().user_by_name("CAROL").code(), Errc::not_found);  // exact match
  User ghost;
  ghost.id = 999999;
  EXPECT_EQ(db().update_user(ghost).code(), Errc::not_found);
  EXPECT_EQ(db().list_users()->size(), 1u);
}

// ---- sessions ----

TEST_P(StoreSuite, SessionsLifecycleAndExpiry) {
  User u = make_user("dave");
  for (int i = 1; i <= 3; ++i) {
    Session s;
    s.token_hash = "hash" + std::to_string(i);
    s.user_id = u.id;
    s.created_at_ms = 10;
    s.expires_at_ms = 100 * i;
    ASSERT_TRUE(db().create_session(s).ok());
  }
  auto s2 = db().session_by_token_hash("hash2");
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->user_id, u.id);
  EXPECT_EQ(s2->created_at_ms, 10);
  EXPECT_EQ(s2->expires_at_ms, 200);

  Session dup;
  dup.token_hash = "hash1";
  dup.user_id = u.id;
  EXPECT_EQ(db().create_session(dup).code(), Errc::conflict);
  Session orphan;
  orphan.token_hash = "orphan";
  orphan.user_id = 424242;
  EXPECT_EQ(db().create_session(orphan).code(), Errc::not_found);

  // Expired means expires_at_ms <= now.
  auto removed = db().delete_expired_sessions(200);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2);
  EXPECT_EQ(db().session_by_token_hash("hash1").code(), Errc::not_found);
  EXPECT_EQ(db().session_by_token_hash("hash2").code(), Errc::not_found);
  EXPECT_TRUE(db().session_by_token_hash("hash3").ok());
  EXPECT_EQ(*db().delete_expired_sessions(200), 0);

  ASSERT_TRUE(db().delete_session("hash3").ok());
  EXPECT_EQ(db().session_by_token_hash("hash3").code(), Errc::not_found);
  EXPECT_EQ(db().delete_session("hash3").code(), Errc::not_found);
}

// ---- rooms ----

TEST_P(StoreSuite, IdleGuestsAreDeletedWithTheirMemberships) {
  User owner = make_user("owner");
  Room r = make_room("guestroom", owner.id);
  auto guest = [&](const std::string& name, int64_t created) {
    User u;
    u.username = name;
    u.role = kRoleGuest;
    u.created_at_ms = created;
    auto out = db().create_user(u);
    EXPECT_TRUE(out.ok()) << out.error().message();
    Member m;
    m.room_id = r.id;
    m.user_id = out->id;
    m.role = "guest";
    EXPECT_TRUE(db().upsert_member(m).ok());
    return *out;
  };
  User idle = guest("idle#0001", 100);
  User active = guest("active#0002", 100);
  User fresh = guest("fresh#0003", 5000);
  Session s;
  s.token_hash = "active-session";
  s.user_id = active.id;
  s.created_at_ms = 100;
  s.expires_at_ms = 10'000;
  ASSERT_TRUE(db().create_session(s).ok());
  Session old = s;
  old.token_hash = "idle-expired";
  old.user_id = idle.id;
  old.expires_at_ms = 500;
  ASSERT_TRUE(db().create_session(old).ok());

  // created at or before 1000, no session valid at 2000: only `idle`; users are never touched.
  auto removed = db().delete_idle_guests(1000, 2000);
  ASSERT_TRUE(removed.ok()) << removed.error().message();
  EXPECT_EQ(*removed, 1);
  EXPECT_EQ(db().user_by_id(idle.id).code(), Errc::not_found);
  EXPECT_EQ(db().member(r.id, idle.id).code(), Errc::not_found);
  EXPECT_TRUE(db().user_by_id(active.id).ok());
  EXPECT_TRUE(db().member(r.id, active.id).ok());
  EXPECT_TRUE(db().user_by_id(fresh.id).ok());
  EXPECT_TRUE(db().user_by_id(owner.id).ok());
  EXPECT_EQ(*db().delete_idle_guests(1000, 2000), 0);
}

TEST_P(StoreSuite, RoomsRoundTripAndUpdate) {
  User u = make_user("erin");
  Room r;
  r.id = "AbCdEf1234";
  r.name = "Movie night";
  r.creator_id = u.id;
  r.password_hash = "room-hash";
  r.allow_guests = true;
  r.settings_json = R"({"auto_advance":true,"pause_on_buffering":false})";
  r.publish_key = "key-1";
  r.created_at_ms = 1763770000123;
  ASSERT_TRUE(db().create_room(r).ok());

  auto got = db().room_by_id(r.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, r.name);
  EXPECT_EQ(got->creator_id, u.id);
  EXPECT_EQ(got->password_hash, "room-hash");
  EXPECT_TRUE(got->allow_guests);
  EXPECT_EQ(got->settings_json, r.settings_json);
  EXPECT_EQ(got->publish_key, "key-1");
  EXPECT_EQ(got->created_at_ms, 1763770000123);

  auto by_key = db().room_by_publish_key("key-1");
  ASSERT_TRUE(by_key.ok());
  EXPECT_EQ(by_key->id, r.id);

  got->name = "Renamed";
  got->password_hash = "";
  got->allow_guests = false;
  got->settings_json = "{}";
  got->publish_key = "";  // removes the key
  ASSERT_TRUE(db().update_room(*got).ok());
  auto after = db().room_by_id(r.id);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->name, "Renamed");
  EXPECT_EQ(after->password_hash, "");
  EXPECT_FALSE(after->allow_guests);
  EXPECT_EQ(after->settings_json, "{}");
  EXPECT_EQ(after->publish_key, "");
  EXPECT_EQ(db().room_by_publish_key("key-1").code(), Errc::not_found);
  EXPECT_EQ(db().room_by_publish_key("").code(), Errc::not_found);
}

TEST_P(StoreSuite, RoomsConflictsNotFoundAndList) {
  User u = make_user("frank");
  make_room("r1", u.id);
  make_room("r2", u.id);  // two rooms without a key: NULLs do not collide
  make_room("r3", u.id, "shared-key");

  Room dup_id;
  dup_id.id = "r1";
  dup_id.creator_id = u.id;
  EXPECT_EQ(db().create_room(dup_id).code(), Errc::conflict);

  Room dup_key;
  dup_key.id = "r4";
  dup_key.creator_id = u.id;
  dup_key.publish_key = "shared-key";
  EXPECT_EQ(db().create_room(dup_key).code(), Errc::conflict);

  auto r1 = db().room_by_id("r1");
  ASSERT_TRUE(r1.ok());
  r1->publish_key = "shared-key";
  EXPECT_EQ(db().update_room(*r1).code(), Errc::conflict);
  EXPECT_EQ(db().room_by_publish_key("shared-key")->id, "r3");

  Room no_creator;
  no_creator.id = "r5";
  no_creator.creator_id = 987654;
  EXPECT_EQ(db().create_room(no_creator).code(), Errc::not_found);
  Room no_id;
  no_id.creator_id = u.id;
  EXPECT_EQ(db().create_room(no_id).code(), Errc::malformed);

  EXPECT_EQ(db().room_by_id("missing").code(), Errc::not_found);
  Room ghost;
  ghost.id = "missing";
  EXPECT_EQ(db().update_room(ghost).code(), Errc::not_found);
  EXPECT_EQ(db().delete_room("missing").code(), Errc::not_found);

  auto rooms = db().list_rooms();
  ASSERT_TRUE(rooms.ok());
  std::set<std::string> ids;
  for (const auto& r : *rooms) ids.insert(r.id);
  EXPECT_EQ(ids, (std::set<std::string>{"r1", "r2", "r3"}));

  ASSERT_TRUE(db().delete_room("r2").ok());
  EXPECT_EQ(db().room_by_id("r2").code(), Errc::not_found);
  EXPECT_EQ(db().list_rooms()->size(), 2u);
}

// ---- members ----

TEST_P(StoreSuite, MembersUpsertReadListDelete) {
  User owner = make_user("gina");
  User guest = make_user("guest-1", kRoleGuest);
  make_room("room", owner.id);

  Member m;
  m.room_id = "room";
  m.user_id = owner.id;
  m.role = "creator";
  m.joined_at_ms = 1000;
  ASSERT_TRUE(db().upsert_member(m).ok());
  Member g;
  g.room_id = "room";
  g.user_id = guest.id;
  g.role = "guest";
  g.joined_at_ms = 2000;
  ASSERT_TRUE(db().upsert_member(g).ok());

  auto got = db().member("room", owner.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->username, "gina");
  EXPECT_EQ(got->role, "creator");
  EXPECT_EQ(got->joined_at_ms, 1000);
  EXPECT_FALSE(got->banned);

  // Upsert updates role, bits, ban and kick cooldown, and keeps the original join time.
  g.role = "member";
  g.grants = (uint64_t{1} << 63) | 0b101;  // every bit must survive the signed SQL column
  g.revokes = ~uint64_t{0};
  g.banned = true;
  g.kicked_until_ms = 1763770000999;
  g.joined_at_ms = 9999;
  ASSERT_TRUE(db().upsert_member(g).ok());
  auto g2 = db().member("room", guest.id);
  ASSERT_TRUE(g2.ok());
  EXPECT_EQ(g2->role, "member");
  EXPECT_EQ(g2->grants, (uint64_t{1} << 63) | 0b101);
  EXPECT_EQ(g2->revokes, ~uint64_t{0});
  EXPECT_TRUE(g2->banned);
  EXPECT_EQ(g2->kicked_until_ms, 1763770000999);
  EXPECT_EQ(g2->joined_at_ms, 2000);
  EXPECT_EQ(g2->username, "guest-1");

  auto all = db().list_members("room");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].user_id, owner.id);  // by join time
  EXPECT_EQ((*all)[1].user_id, guest.id);

  Member bad_room = m;
  bad_room.room_id = "nope";
  EXPECT_EQ(db().upsert_member(bad_room).code(), Errc::not_found);
  Member bad_user = m;
  bad_user.user_id = 55555;
  EXPECT_EQ(db().upsert_member(bad_user).code(), Errc::not_found);

  ASSERT_TRUE(db().delete_member("room", guest.id).ok());
  EXPECT_EQ(db().member("room", guest.id).code(), Errc::not_found);
  EXPECT_EQ(db().delete_member("room", guest.id).code(), Errc::not_found);
  EXPECT_EQ(db().list_members("room")->size(), 1u);
  EXPECT_TRUE(db().list_members("nope")->empty());
}

// ---- playlist ----

TEST_P(StoreSuite, PlaylistAppendRemoveReorder) {
  User u = make_user("hank");
  make_room("pl", u.id);
  make_room("other", u.id);
  std::vector<PlaylistItem> added;
  for (int i = 0; i < 3; ++i) {
    PlaylistItem it;
    it.room_id = "pl";
    it.kind = i == 2 ? "live" : "url";
    it.url = i == 2 ? "live/cam" : "https://example.com/v" + std::to_string(i) + ".m3u8";
    it.title = "item " + std::to_string(i);
    it.added_by = u.id;
    auto r = db().add_item(it);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->position, i);
    EXPECT_GT(r->created_at_ms, 0);
    added.push_back(*r);
  }
  EXPECT_LT(added[0].id, added[1].id);

  auto list = db().list_items("pl");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[2].kind, "live");
  EXPECT_EQ((*list)[2].url, "live/cam");
  EXPECT_EQ((*list)[1].title, "item 1");
  EXPECT_EQ((*list)[0].added_by, u.id);

  const int64_t a = added[0].id, b = added[1].id, c = added[2].id;
  ASSERT_TRUE(db().reorder_items("pl", {c, a, b}).ok());
  list = db().list_items("pl");
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].id, c);
  EXPECT_EQ((*list)[1].id, a);
  EXPECT_EQ((*list)[2].id, b);
  EXPECT_EQ((*list)[0].position, 0);
  EXPECT_EQ((*list)[2].position, 2);

  // Validation: exactly the room's items, each once. Nothing changes on refusal.
  EXPECT_EQ(db().reorder_items("pl", {c, a}).code(), Errc::conflict);
  EXPECT_EQ(db().reorder_items("pl", {c, a, b, 999}).code(), Errc::conflict);
  EXPECT_EQ(db().reorder_items("pl", {c, a, a}).code(), Errc::malformed);
  EXPECT_EQ(db().reorder_items("pl", {c, a, 999}).code(), Errc::conflict);
  EXPECT_EQ(db().reorder_items("missing", {}).code(), Errc::not_found);
  EXPECT_EQ(db().list_items("pl")->front().id, c);

  EXPECT_EQ(db().remove_item("other", a).code(), Errc::not_found);  // not that room's item
  ASSERT_TRUE(db().remove_item("pl", a).ok());
  EXPECT_EQ(db().remove_item("pl", a).code(), Errc::not_found);
  list = db().list_items("pl");
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, c);
  EXPECT_EQ((*list)[1].id, b);

  PlaylistItem next;
  next.room_id = "pl";
  next.kind = "url";
  next.url = "https://example.com/last.mp4";
  auto last = db().add_item(next);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(db().list_items("pl")->back().id, last->id);  // appended at the end

  PlaylistItem orphan = next;
  orphan.room_id = "missing";
  EXPECT_EQ(db().add_item(orphan).code(), Errc::not_found);
  EXPECT_TRUE(db().list_items("other")->empty());
}

// ---- chat ----

TEST_P(StoreSuite, ChatKeepsNewestAndReadsOldestFirst) {
  User u = make_user("ivy");
  make_room("chat", u.id);
  make_room("quiet", u.id);
  ChatMessage quiet;
  quiet.room_id = "quiet";
  quiet.user_id = u.id;
  quiet.username = "ivy";
  quiet.text = "hello quiet";
  ASSERT_TRUE(db().add_chat(quiet, 5).ok());

  int64_t last_id = 0;
  for (int i = 0; i < 12; ++i) {
    ChatMessage m;
    m.room_id = "chat";
    m.user_id = u.id;
    m.username = "ivy";
    m.text = "msg " + std::to_string(i);
    auto r = db().add_chat(m, 5);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_GT(r->id, last_id);
    EXPECT_GT(r->created_at_ms, 0);
    last_id = r->id;
  }
  auto all = db().recent_chat("chat", 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*all)[i].text, "msg " + std::to_string(7 + i));
  EXPECT_EQ(all->back().id, last_id);
  EXPECT_EQ(all->front().username, "ivy");

  auto three = db().recent_chat("chat", 3);
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[0].text, "msg 9");
  EXPECT_EQ((*three)[2].text, "msg 11");
  EXPECT_TRUE(db().recent_chat("chat", 0)->empty());
  ASSERT_EQ(db().recent_chat("quiet", 10)->size(), 1u);  // other rooms are not trimmed

  ChatMessage unbounded = quiet;  // keep_last <= 0: no trimming
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(db().add_chat(unbounded, 0).ok());
  EXPECT_EQ(db().recent_chat("quiet", 100)->size(), 8u);

  ChatMessage orphan = quiet;
  orphan.room_id = "missing";
  EXPECT_EQ(db().add_chat(orphan, 5).code(), Errc::not_found);
  EXPECT_TRUE(db().recent_chat("missing", 10)->empty());
}

// ---- playback state ----

TEST_P(StoreSuite, RoomStateSaveAndOverwrite) {
  User u = make_user("jack");
  make_room("st", u.id);
  EXPECT_EQ(db().room_state("st").code(), Errc::not_found);

  RoomState s;
  s.room_id = "st";
  s.item_id = 12;
  s.position_s = 31.123456789012345;
  s.rate = 1.25;
  s.playing = true;
  s.updated_at_ms = 1763770000000;
  s.version = 42;
  ASSERT_TRUE(db().save_room_state(s).ok());
  auto got = db().room_state("st");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->item_id, 12);
  EXPECT_EQ(got->position_s, 31.123456789012345);  // exact round trip
  EXPECT_EQ(got->rate, 1.25);
  EXPECT_TRUE(got->playing);
  EXPECT_EQ(got->updated_at_ms, 1763770000000);
  EXPECT_EQ(got->version, 42u);

  s.playing = false;
  s.position_s = 0.1 + 0.2;
  s.version = 43;
  ASSERT_TRUE(db().save_room_state(s).ok());
  got = db().room_state("st");
  EXPECT_FALSE(got->playing);
  EXPECT_EQ(got->position_s, 0.1 + 0.2);
  EXPECT_EQ(got->version, 43u);

  // A late write of an older version (another node) is ignored.
  RoomState older = s;
  older.version = 41;
  older.position_s = 99;
  ASSERT_TRUE(db().save_room_state(older).ok());
  got = db().room_state("st");
  EXPECT_EQ(got->version, 43u);
  EXPECT_EQ(got->position_s, 0.1 + 0.2);

  RoomState orphan = s;
  orphan.room_id = "missing";
  EXPECT_EQ(db().save_room_state(orphan).code(), Errc::not_found);
}

// ---- cascade ----

TEST_P(StoreSuite, DeleteRoomCascades) {
  User u = make_user("kate");
  User v = make_user("liam");
  for (const char* id : {"doomed", "kept"}) {
    make_room(id, u.id);
    Member m;
    m.room_id = id;
    m.user_id = v.id;
    m.role = "member";
    ASSERT_TRUE(db().upsert_member(m).ok());
    PlaylistItem it;
    it.room_id = id;
    it.kind = "url";
    it.url = "https://example.com/a.m3u8";
    ASSERT_TRUE(db().add_item(it).ok());
    ChatMessage c;
    c.room_id = id;
    c.user_id = v.id;
    c.username = "liam";
    c.text = "hi";
    ASSERT_TRUE(db().add_chat(c, 100).ok());
    RoomState s;
    s.room_id = id;
    s.version = 1;
    ASSERT_TRUE(db().save_room_state(s).ok());
  }
  ASSERT_TRUE(db().delete_room("doomed").ok());
  EXPECT_TRUE(db().list_members("doomed")->empty());
  EXPECT_TRUE(db().list_items("doomed")->empty());
  EXPECT_TRUE(db().recent_chat("doomed", 10)->empty());
  EXPECT_EQ(db().room_state("doomed").code(), Errc::not_found);
  // The rows are gone from the tables, not just hidden.
  EXPECT_EQ(query_int("SELECT COUNT(*) FROM room_members WHERE room_id = 'doomed'"), 0);
  EXPECT_EQ(query_int("SELECT COUNT(*) FROM playlist_items WHERE room_id = 'doomed'"), 0);
  EXPECT_EQ(query_int("SELECT COUNT(*) FROM chat_messages WHERE room_id = 'doomed'"), 0);
  EXPECT_EQ(query_int("SELECT COUNT(*) FROM room_states WHERE room_id = 'doomed'"), 0);

  EXPECT_EQ(db().list_members("kept")->size(), 1u);
  EXPECT_EQ(db().list_items("kept")->size(), 1u);
  EXPECT_EQ(db().recent_chat("kept", 10)->size(), 1u);
  EXPECT_TRUE(db().room_state("kept").ok());
  EXPECT_EQ(*db().count_users(), 2);
}

// ---- hostile input ----

TEST_P(StoreSuite, SqlMetacharactersAndUnicodeRoundTrip) {
  const auto& strs = hostile_strings();
  User owner = make_user("owner");
  for (size_t i = 0; i < strs.size(); ++i) {
    const std::string& s = strs[i];
    SCOPED_TRACE(s);
    User u;
    u.username = s;
    u.password_hash = s;
    u.role = kRoleUser;
    auto created = db().create_user(u);
    ASSERT_TRUE(created.ok()) << created.error().message();
    auto back = db().user_by_name(s);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->username, s);
    EXPECT_EQ(back->password_hash, s);

    Room r;
    r.id = "room" + std::to_string(i) + s;  // ids are opaque text to the store
    r.name = s;
    r.creator_id = owner.id;
    r.settings_json = s;
    r.publish_key = s;
    r.password_hash = s;
    ASSERT_TRUE(db().create_room(r).ok());
    auto room = db().room_by_publish_key(s);
    ASSERT_TRUE(room.ok());
    EXPECT_EQ(room->id, r.id);
    EXPECT_EQ(room->name, s);
    EXPECT_EQ(room->settings_json, s);

    PlaylistItem it;
    it.room_id = r.id;
    it.kind = "url";
    it.url = s;
    it.title = s;
    ASSERT_TRUE(db().add_item(it).ok());
    EXPECT_EQ(db().list_items(r.id)->front().title, s);
    EXPECT_EQ(db().list_items(r.id)->front().url, s);

    ChatMessage c;
    c.room_id = r.id;
    c.user_id = created->id;
    c.username = s;
    c.text = s;
    ASSERT_TRUE(db().add_chat(c, 10).ok());
    auto chat = db().recent_chat(r.id, 10);
    ASSERT_EQ(chat->size(), 1u);
    EXPECT_EQ(chat->front().text, s);
    EXPECT_EQ(chat->front().username, s);

    Session sess;
    sess.token_hash = s;
    sess.user_id = created->id;
    sess.expires_at_ms = wall_ms() + 60000;
    ASSERT_TRUE(db().create_session(sess).ok());
    EXPECT_EQ(db().session_by_token_hash(s)->user_id, created->id);
  }
  // Nothing was interpreted as SQL: every table is still there and counts add up.
  EXPECT_EQ(*db().count_users(), static_cast<int64_t>(strs.size() + 1));
  EXPECT_EQ(db().list_rooms()->size(), strs.size());
  // Wildcards are literal: no LIKE matching.
  EXPECT_EQ(db().user_by_name("%").code(), Errc::not_found);
  EXPECT_EQ(db().user_by_name("%_ LIKE wildcards *%").code(), Errc::not_found);
}

// ---- schema ----

TEST_P(StoreSuite, ReopenKeepsDataAndDoesNotReapplyMigrations) {
  User u = make_user("mia");
  reopen();
  auto back = db().user_by_id(u.id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->username, "mia");
  reopen();
  EXPECT_EQ(query_int("SELECT COUNT(*) FROM schema_migrations"), latest_schema_version());
  EXPECT_EQ(query_int("SELECT MAX(version) FROM schema_migrations"), latest_schema_version());
}

TEST_P(StoreSuite, RefusesSchemaNewerThanBinary) {
  store_.reset();
  const int future = latest_schema_version() + 1;
  exec_raw("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (" +
           std::to_string(future) + ", 'from the future', 0)");
  auto s = open_store(url_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Errc::unsupported);
  EXPECT_NE(s.error().message().find("newer"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find(std::to_string(future)), std::string::npos);
}

// ---- concurrency ----

TEST_P(StoreSuite, ConcurrentUseFromThreads) {
  User owner = make_user("root-user", kRoleRoot);
  make_room("busy", owner.id);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        User u;
        u.username = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto cu = db().create_user(u);
        if (!cu.ok()) { ++failures; continue; }
        Member m;
        m.room_id = "busy";
        m.user_id = cu->id;
        m.role = "member";
        if (!db().upsert_member(m).ok()) ++failures;
        ChatMessage c;
        c.room_id = "busy";
        c.user_id = cu->id;
        c.username = u.username;
        c.text = "hello from " + u.username;
        if (!db().add_chat(c, 1000).ok()) ++failures;
        PlaylistItem it;
        it.room_id = "busy";
        it.kind = "url";
        it.url = "https://example.com/" + u.username;
        if (!db().add_item(it).ok()) ++failures;
        if (!db().user_by_name(u.username).ok()) ++failures;
        if (!db().list_items("busy").ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const int total = kThreads * kPerThread;
  EXPECT_EQ(*db().count_users(), total + 1);
  EXPECT_EQ(db().list_members("busy")->size(), static_cast<size_t>(total));
  auto chat = db().recent_chat("busy", 10000);
  ASSERT_EQ(chat->size(), static_cast<size_t>(total));
  for (size_t i = 1; i < chat->size(); ++i) EXPECT_LT((*chat)[i - 1].id, (*chat)[i].id);
  auto items = db().list_items("busy");
  ASSERT_EQ(items->size(), static_cast<size_t>(total));
  std::set<int64_t> positions;
  for (const auto& it : *items) positions.insert(it.position);
  EXPECT_EQ(positions.size(), static_cast<size_t>(total));  // appends never share a position
  EXPECT_EQ(*positions.begin(), 0);
  EXPECT_EQ(*positions.rbegin(), total - 1);
}

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::sqlite ? "Sqlite" : "Postgres";
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreSuite,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_name);

// ---- backend-specific ----

using PostgresOnly = StoreSuite;

TEST_P(PostgresOnly, ReconnectsAfterServerDropsConnections) {
  // Fill the pool with several connections, then have the server kill all of them.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { (void)db().count_users(); });
  }
  for (auto& th : threads) th.join();
  make_user("before");
  const int64_t killed = query_int(
      "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" +
      schema_ + "' AND pid <> pg_backend_pid()");
  EXPECT_GE(killed, 1);
  // Every call after that succeeds on a fresh connection.
  auto u = db().user_by_name("before");
  ASSERT_TRUE(u.ok()) << u.error().message();
  for (int i = 0; i < 6; ++i) {
    auto c = db().count_users();
    ASSERT_TRUE(c.ok()) << c.error().message();
    EXPECT_EQ(*c, 1);
  }
  User after;
  after.username = "after";
  EXPECT_TRUE(db().create_user(after).ok());
}

TEST_P(PostgresOnly, UnavailableWhileServerRefusesThenRecovers) {
  // A login role of our own lets the test make "the server" refuse this store alone (other
  // tests may share the cluster): kill its connections and forbid new logins.
  const std::string role = "r_" + random_hex(16);
  const std::string schema = "s_" + random_hex(16);
  exec_admin("CREATE ROLE " + role + " LOGIN");
  exec_admin("CREATE SCHEMA " + schema + " AUTHORIZATION " + role);
  const std::string url = base_url_ + (base_url_.find('?') == std::string::npos ? "?" : "&") +
                          "user=" + role + "&options=-csearch_path%3D" + schema;
  {
    auto opened = open_store(url);
    ASSERT_TRUE(opened.ok()) << opened.error().message();
    Store& s = **opened;
    User u;
    u.username = "survivor";
    ASSERT_TRUE(s.create_user(u).ok());

    exec_admin("ALTER ROLE " + role + " NOLOGIN");
    exec_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role +
               "'");
    const int64_t start = mono_ms();
    EXPECT_EQ(s.count_users().code(), Errc::unavailable);
    User v;
    v.username = "lost";
    EXPECT_EQ(s.create_user(v).code(), Errc::unavailable);
    EXPECT_EQ(open_store(url).code(), Errc::unavailable);
    EXPECT_LT(mono_ms() - start, 10000);

    exec_admin("ALTER ROLE " + role + " LOGIN");
    auto n = s.count_users();
    ASSERT_TRUE(n.ok()) << n.error().message();
    EXPECT_EQ(*n, 1);
    EXPECT_TRUE(s.user_by_name("survivor").ok());
    EXPECT_EQ(s.user_by_name("lost").code(), Errc::not_found);
  }
  exec_admin("DROP SCHEMA " + schema + " CASCADE");
  exec_admin("DROP ROLE " + role);
}

INSTANTIATE_TEST_SUITE_P(Backends, PostgresOnly, ::testing::Values(Backend::postgres),
                         backend_name);

TEST(OpenStore, UnknownSchemeIsConfigInvalid) {
  EXPECT_EQ(open_store("mysql://localhost/db").code(), Errc::config_invalid);
  EXPECT_EQ(open_store("sqlite:").code(), Errc::config_invalid);
  EXPECT_EQ(open_store("").code(), Errc::config_invalid);
}

TEST(OpenStore, UnreachablePostgresIsUnavailable) {
  // Port 1 on loopback refuses at once; no server needed.
  const int64_t start = mono_ms();
  auto s = open_store("postgres://postgres@127.0.0.1:1/castmesh");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Errc::unavailable) << s.error().message();
  EXPECT_LT(mono_ms() - start, 10000);
  EXPECT_EQ(open_store("postgresql://postgres@127.0.0.1:1/castmesh").code(), Errc::unavailable);
}

TEST(OpenStore, SqliteMemoryPlainPathAndWal) {
  auto mem = open_store(":memory:");
  ASSERT_TRUE(mem.ok()) << mem.error().message();
  User u;
  u.username = "memo";
  EXPECT_TRUE((*mem)->create_user(u).ok());
  auto other = open_store(":memory:");  // a separate, empty database
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*(*other)->count_users(), 0);

  const auto dir = std::filesystem::temp_directory_path() / ("castmesh-open-" + random_hex(12));
  const std::string path = (dir / "a" / "b.db").string();
  {
    auto plain = open_store(path);  // plain path; parents created
    ASSERT_TRUE(plain.ok()) << plain.error().message();
    ASSERT_TRUE((*plain)->create_user(u).ok());
    // A second connection to the same file (another process would do the same) sees the row.
    auto second = open_store("sqlite:" + path);
    ASSERT_TRUE(second.ok()) << second.error().message();
    EXPECT_TRUE((*second)->user_by_name("memo").ok());
    User w;
    w.username = "writer2";
    EXPECT_TRUE((*second)->create_user(w).ok());
    EXPECT_EQ(*(*plain)->count_users(), 2);

    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
    sqlite3_finalize(st);
    sqlite3_close(raw);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(Migrations, EveryVersionIsPresentOnceAndRendered) {
  for (Dialect d : {Dialect::sqlite, Dialect::postgres}) {
    const auto ms = migrations(d);
    ASSERT_FALSE(ms.empty());
    for (size_t i = 0; i < ms.size(); ++i) {
      EXPECT_EQ(ms[i].version, static_cast<int>(i + 1));
      for (const auto& sql : ms[i].statements) EXPECT_EQ(sql.find("@ID@"), std::string::npos);
    }
    EXPECT_EQ(ms.back().version, latest_schema_version());
  }
  EXPECT_NE(migrations(Dialect::sqlite)[0].statements[0].find("AUTOINCREMENT"), std::string::npos);
  EXPECT_NE(migrations(Dialect::postgres)[0].statements[0].find("IDENTITY"), std::string::npos);
}

}  // namespace
}  // namespace castmesh::store
