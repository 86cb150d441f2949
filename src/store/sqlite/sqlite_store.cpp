#include "store/sqlite/sqlite_store.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "store/common.hpp"
#include "store/migrations/migrations.hpp"

namespace castmesh::store {
namespace {

constexpr int kBusyTimeoutMs = 5000;

Errc errc_from_sqlite(int rc) {
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Errc::conflict;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Errc::not_found;  // the referenced user/room does not exist
    default:
      break;
  }
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Errc::unavailable;
    default:
      return Errc::io_error;
  }
}

// SQLite reads `$1` as a *named* parameter numbered by first appearance; `?1` is explicitly
// parameter 1. The shared statements use `$N`, so rewrite them (no `$` appears otherwise).
std::string to_sqlite_params(std::string_view sql) {
  std::string out(sql);
  for (char& c : out) {
    if (c == '$') c = '?';
  }
  return out;
}

}  // namespace

/// One execution of a prepared statement: binds values left to right, steps, reads columns,
/// and resets the statement (or finalizes it, when owned) on destruction.
class SqliteStore::Stmt {
 public:
  Stmt(SqliteStore& store, Q q) : store_(store), st_(store.stmts_[static_cast<size_t>(q)]) {}
  Stmt(SqliteStore& store, sqlite3_stmt* owned) : store_(store), st_(owned), owned_(true) {}
  ~Stmt() {
    if (owned_) {
      sqlite3_finalize(st_);
    } else {
      sqlite3_reset(st_);
      sqlite3_clear_bindings(st_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& text(const std::string& v) {
    // SQLITE_TRANSIENT: SQLite copies, so temporaries are fine; the length keeps any byte.
    return note(sqlite3_bind_text(st_, ++index_, v.data(), static_cast<int>(v.size()),
                                  SQLITE_TRANSIENT));
  }
  Stmt& text_or_null(const std::string& v) {
    return v.empty() ? note(sqlite3_bind_null(st_, ++index_)) : text(v);
  }
  Stmt& i64(int64_t v) { return note(sqlite3_bind_int64(st_, ++index_, v)); }
  Stmt& f64(double v) { return note(sqlite3_bind_double(st_, ++index_, v)); }
  Stmt& boolean(bool v) { return i64(v ? 1 : 0); }

  /// Advances: true = a row is available, false = done. Errors mapped by error_from().
  Result<bool> step(const char* what) {
    if (bind_rc_ != SQLITE_OK) return store_.error_from(bind_rc_, what);
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return store_.error_from(rc, what);
  }
  /// Runs a statement that returns no rows; yields the number of rows changed.
  Result<int64_t> run(const char* what) {
    auto r = step(what);
    if (!r) return r.error();
    return static_cast<int64_t>(sqlite3_changes(store_.db_));
  }

  int64_t i64_at(int col) const { return sqlite3_column_int64(st_, col); }
  double f64_at(int col) const { return sqlite3_column_double(st_, col); }
  bool bool_at(int col) const { return sqlite3_column_int64(st_, col) != 0; }
  std::string text_at(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    if (p == nullptr) return {};  // SQL NULL reads as ""
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, col)));
  }

 private:
  Stmt& note(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
    return *this;
  }

  SqliteStore& store_;
  sqlite3_stmt* st_;
  bool owned_ = false;
  int index_ = 0;
  int bind_rc_ = SQLITE_OK;
};

namespace {

User user_row(const auto& s) {
  User u;
  u.id = s.i64_at(0);
  u.username = s.text_at(1);
  u.password_hash = s.text_at(2);
  u.role = s.text_at(3);
  u.created_at_ms = s.i64_at(4);
  return u;
}

Session session_row(const auto& s) {
  Session x;
  x.token_hash = s.text_at(0);
  x.user_id = s.i64_at(1);
  x.created_at_ms = s.i64_at(2);
  x.expires_at_ms = s.i64_at(3);
  return x;
}

Room room_row(const auto& s) {
  Room r;
  r.id = s.text_at(0);
  r.name = s.text_at(1);
  r.creator_id = s.i64_at(2);
  r.password_hash = s.text_at(3);
  r.allow_guests = s.bool_at(4);
  r.settings_json = s.text_at(5);
  r.publish_key = s.text_at(6);  // NULL -> ""
  r.created_at_ms = s.i64_at(7);
  return r;
}

Member member_row(const auto& s) {
  Member m;
  m.room_id = s.text_at(0);
  m.user_id = s.i64_at(1);
  m.username = s.text_at(2);
  m.role = s.text_at(3);
  m.grants = bits_from_sql(s.i64_at(4));
  m.revokes = bits_from_sql(s.i64_at(5));
  m.banned = s.bool_at(6);
  m.kicked_until_ms = s.i64_at(7);
  m.joined_at_ms = s.i64_at(8);
  return m;
}

PlaylistItem item_row(const auto& s) {
  PlaylistItem it;
  it.id = s.i64_at(0);
  it.room_id = s.text_at(1);
  it.position = s.i64_at(2);
  it.kind = s.text_at(3);
  it.url = s.text_at(4);
  it.title = s.text_at(5);
  it.added_by = s.i64_at(6);
  it.created_at_ms = s.i64_at(7);
  return it;
}

ChatMessage chat_row(const auto& s) {
  ChatMessage c;
  c.id = s.i64_at(0);
  c.room_id = s.text_at(1);
  c.user_id = s.i64_at(2);
  c.username = s.text_at(3);
  c.text = s.text_at(4);
  c.created_at_ms = s.i64_at(5);
  return c;
}

RoomState state_row(const auto& s) {
  RoomState st;
  st.room_id = s.text_at(0);
  st.item_id = s.i64_at(1);
  st.position_s = s.f64_at(2);
  st.rate = s.f64_at(3);
  st.playing = s.bool_at(4);
  st.updated_at_ms = s.i64_at(5);
  st.version = static_cast<uint64_t>(s.i64_at(6));
  return st;
}

// Reads at most one row; not_found (with `what`) when the statement yields none.
template <typename RowFn>
auto one_row(auto& stmt, const char* what, RowFn row) -> Result<decltype(row(stmt))> {
  auto r = stmt.step(what);
  if (!r) return r.error();
  if (!*r) return Error{Errc::not_found, what};
  return row(stmt);
}

template <typename RowFn>
auto all_rows(auto& stmt, const char* what, RowFn row)
    -> Result<std::vector<decltype(row(stmt))>> {
  std::vector<decltype(row(stmt))> out;
  for (;;) {
    auto r = stmt.step(what);
    if (!r) return r.error();
    if (!*r) return out;
    out.push_back(row(stmt));
  }
}

Status changed_one(const Result<int64_t>& n, const char* what) {
  if (!n) return n.error();
  if (*n == 0) return Error{Errc::not_found, what};
  return ok_status();
}

}  // namespace

Error SqliteStore::error_from(int rc, const char* what) const {
  std::string detail = what;
  detail += ": ";
  detail += db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error{errc_from_sqlite(rc), std::move(detail)};
}

Status SqliteStore::exec_plain(const char* sql) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &msg);
  if (rc == SQLITE_OK) return ok_status();
  std::string detail = std::string(sql).substr(0, 60) + ": " + (msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return Error{errc_from_sqlite(rc), std::move(detail)};
}

// Runs `body` inside BEGIN IMMEDIATE .. COMMIT (ROLLBACK when it fails). Caller holds mu_.
template <typename Body>
auto SqliteStore::in_txn(Body body) -> decltype(body()) {
  if (auto b = exec_plain("BEGIN IMMEDIATE"); !b) return b.error();
  auto r = body();
  if (r.ok()) {
    if (auto c = exec_plain("COMMIT"); !c) {
      (void)exec_plain("ROLLBACK");
      return c.error();
    }
  } else {
    (void)exec_plain("ROLLBACK");
  }
  return r;
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  if (path.empty()) return Error{Errc::config_invalid, "empty SQLite path"};
  const bool memory = path == ":memory:";
  if (!memory) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec) {
        return Error{Errc::io_error, "cannot create directory " + parent.string() + ": " +
                                         ec.message()};
      }
    }
  }
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = "cannot open " + path + ": " +
                         (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return Error{Errc::io_error, std::move(detail)};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(db));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  for (const char* pragma : {"PRAGMA foreign_keys = ON", "PRAGMA journal_mode = WAL",
                             "PRAGMA synchronous = NORMAL"}) {
    if (auto s = store->exec_plain(pragma); !s) return s.error();
  }
  if (auto m = store->migrate(); !m) return m.error();
  for (size_t i = 0; i < store->stmts_.size(); ++i) {
    const std::string sql = to_sqlite_params(kQueries[i].sql);
    if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &store->stmts_[i], nullptr) != SQLITE_OK) {
      return Error{Errc::io_error,
                   std::string("prepare ") + kQueries[i].name + ": " + sqlite3_errmsg(db)};
    }
  }
  return store;
}

SqliteStore::~SqliteStore() {
  for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);  // NULL is a no-op
  sqlite3_close(db_);
}

Status SqliteStore::migrate() {
  std::lock_guard lock(mu_);
  return in_txn([&]() -> Status {
    if (auto s = exec_plain(schema_migrations_ddl().c_str()); !s) return s.error();
    int64_t current = 0;
    {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1,
                             &raw, nullptr) != SQLITE_OK) {
        return error_from(sqlite3_errcode(db_), "read schema version");
      }
      Stmt q(*this, raw);
      auto r = q.step("read schema version");
      if (!r) return r.error();
      current = *r ? q.i64_at(0) : 0;
    }
    const int latest = latest_schema_version();
    if (current > latest) {
      return Error{Errc::unsupported,
                   "database schema version " + std::to_string(current) +
                       " is newer than this castmesh supports (" + std::to_string(latest) +
                       "); upgrade castmesh or point database.url at another database"};
    }
    for (const Migration& m : migrations(Dialect::sqlite)) {
      if (m.version <= current) continue;
      for (const std::string& sql : m.statements) {
        if (auto s = exec_plain(sql.c_str()); !s) return s.error();
      }
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(db_,
                             "INSERT INTO schema_migrations (version, name, applied_at_ms)"
                             " VALUES (?1, ?2, ?3)",
                             -1, &raw, nullptr) != SQLITE_OK) {
        return error_from(sqlite3_errcode(db_), "record migration");
      }
      Stmt ins(*this, raw);
      ins.i64(m.version).text(m.name).i64(wall_ms());
      if (auto r = ins.run("record migration"); !r) return r.error();
    }
    return ok_status();
  });
}

// ---- users ----

Result<User> SqliteStore::create_user(const User& u) {
  std::lock_guard lock(mu_);
  User out = u;
  out.created_at_ms = or_now(u.created_at_ms);
  Stmt q(*this, Q::user_insert);
  q.text(out.username).text(out.password_hash).text(out.role).i64(out.created_at_ms);
  auto r = q.step("create user");
  if (!r) return r.error();
  out.id = q.i64_at(0);
  return out;
}

Result<User> SqliteStore::user_by_id(int64_t id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_by_id);
  q.i64(id);
  return one_row(q, "user", [](const Stmt& s) { return user_row(s); });
}

Result<User> SqliteStore::user_by_name(const std::string& username) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_by_name);
  q.text(username);
  return one_row(q, "user", [](const Stmt& s) { return user_row(s); });
}

Result<std::vector<User>> SqliteStore::list_users() {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_list);
  return all_rows(q, "list users", [](const Stmt& s) { return user_row(s); });
}

Status SqliteStore::update_user(const User& u) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_update);
  q.i64(u.id).text(u.password_hash).text(u.role);
  return changed_one(q.run("update user"), "user");
}

Result<int64_t> SqliteStore::count_users() {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_count);
  return one_row(q, "count users", [](const Stmt& s) { return s.i64_at(0); });
}

// ---- sessions ----

Status SqliteStore::create_session(const Session& s) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::session_insert);
  q.text(s.token_hash).i64(s.user_id).i64(or_now(s.created_at_ms)).i64(s.expires_at_ms);
  auto r = q.run("create session");
  if (!r) return r.error();
  return ok_status();
}

Result<Session> SqliteStore::session_by_token_hash(const std::string& token_hash) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::session_by_hash);
  q.text(token_hash);
  return one_row(q, "session", [](const Stmt& s) { return session_row(s); });
}

Status SqliteStore::delete_session(const std::string& token_hash) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::session_delete);
  q.text(token_hash);
  return changed_one(q.run("delete session"), "session");
}

Result<int64_t> SqliteStore::delete_expired_sessions(int64_t now_ms) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::session_delete_expired);
  q.i64(now_ms);
  return q.run("delete expired sessions");
}

Result<int64_t> SqliteStore::delete_idle_guests(int64_t created_before_ms, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::user_delete_idle_guests);
  q.i64(created_before_ms);
  q.i64(now_ms);
  return q.run("delete idle guests");
}

// ---- rooms ----

Result<Room> SqliteStore::create_room(const Room& r) {
  if (r.id.empty()) return Error{Errc::malformed, "room id is empty"};
  std::lock_guard lock(mu_);
  Room out = r;
  out.created_at_ms = or_now(r.created_at_ms);
  Stmt q(*this, Q::room_insert);
  q.text(out.id).text(out.name).i64(out.creator_id).text(out.password_hash)
      .boolean(out.allow_guests).text(out.settings_json).text_or_null(out.publish_key)
      .i64(out.created_at_ms);
  auto n = q.run("create room");
  if (!n) return n.error();
  return out;
}

Result<Room> SqliteStore::room_by_id(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::room_by_id);
  q.text(id);
  return one_row(q, "room", [](const Stmt& s) { return room_row(s); });
}

Result<Room> SqliteStore::room_by_publish_key(const std::string& key) {
  if (key.empty()) return Error{Errc::not_found, "room (empty publish key)"};
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::room_by_key);
  q.text(key);
  return one_row(q, "room", [](const Stmt& s) { return room_row(s); });
}

Result<std::vector<Room>> SqliteStore::list_rooms() {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::room_list);
  return all_rows(q, "list rooms", [](const Stmt& s) { return room_row(s); });
}

Status SqliteStore::update_room(const Room& r) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::room_update);
  q.text(r.id).text(r.name).text(r.password_hash).boolean(r.allow_guests).text(r.settings_json)
      .text_or_null(r.publish_key);
  return changed_one(q.run("update room"), "room");
}

Status SqliteStore::delete_room(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::room_delete);
  q.text(id);
  return changed_one(q.run("delete room"), "room");
}

// ---- members ----

Status SqliteStore::upsert_member(const Member& m) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::member_upsert);
  q.text(m.room_id).i64(m.user_id).text(m.role).i64(bits_to_sql(m.grants))
      .i64(bits_to_sql(m.revokes)).boolean(m.banned).i64(m.kicked_until_ms)
      .i64(or_now(m.joined_at_ms));
  auto r = q.run("upsert member");
  if (!r) return r.error();
  return ok_status();
}

Result<Member> SqliteStore::member(const std::string& room_id, int64_t user_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::member_get);
  q.text(room_id).i64(user_id);
  return one_row(q, "member", [](const Stmt& s) { return member_row(s); });
}

Result<std::vector<Member>> SqliteStore::list_members(const std::string& room_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::member_list);
  q.text(room_id);
  return all_rows(q, "list members", [](const Stmt& s) { return member_row(s); });
}

Status SqliteStore::delete_member(const std::string& room_id, int64_t user_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::member_delete);
  q.text(room_id).i64(user_id);
  return changed_one(q.run("delete member"), "member");
}

// ---- playlist ----

Result<PlaylistItem> SqliteStore::add_item(const PlaylistItem& item) {
  std::lock_guard lock(mu_);
  return in_txn([&]() -> Result<PlaylistItem> {
    PlaylistItem out = item;
    out.created_at_ms = or_now(item.created_at_ms);
    {
      Stmt pos(*this, Q::item_next_position);
      pos.text(item.room_id);
      auto r = one_row(pos, "next playlist position", [](const Stmt& s) { return s.i64_at(0); });
      if (!r) return r.error();
      out.position = *r;
    }
    Stmt q(*this, Q::item_insert);
    q.text(out.room_id).i64(out.position).text(out.kind).text(out.url).text(out.title)
        .i64(out.added_by).i64(out.created_at_ms);
    auto r = q.step("add playlist item");  // FK violation -> not_found (unknown room)
    if (!r) return r.error();
    out.id = q.i64_at(0);
    return out;
  });
}

Result<std::vector<PlaylistItem>> SqliteStore::list_items(const std::string& room_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::item_list);
  q.text(room_id);
  return all_rows(q, "list playlist", [](const Stmt& s) { return item_row(s); });
}

Status SqliteStore::remove_item(const std::string& room_id, int64_t item_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::item_remove);
  q.text(room_id).i64(item_id);
  return changed_one(q.run("remove playlist item"), "playlist item");
}

Status SqliteStore::reorder_items(const std::string& room_id,
                                  const std::vector<int64_t>& item_ids) {
  std::lock_guard lock(mu_);
  return in_txn([&]() -> Status {
    {
      Stmt q(*this, Q::room_exists);
      q.text(room_id);
      auto r = one_row(q, "room", [](const Stmt& s) { return s.text_at(0); });
      if (!r) return r.error();
    }
    std::vector<int64_t> current;
    {
      Stmt q(*this, Q::item_ids);
      q.text(room_id);
      auto r = all_rows(q, "playlist ids", [](const Stmt& s) { return s.i64_at(0); });
      if (!r) return r.error();
      current = std::move(*r);
    }
    if (auto c = check_reorder(std::move(current), item_ids); !c) return c.error();
    for (size_t i = 0; i < item_ids.size(); ++i) {
      Stmt q(*this, Q::item_set_position);
      q.text(room_id).i64(item_ids[i]).i64(static_cast<int64_t>(i));
      if (auto n = q.run("reorder playlist"); !n) return n.error();
    }
    return ok_status();
  });
}

// ---- chat ----

Result<ChatMessage> SqliteStore::add_chat(const ChatMessage& m, int64_t keep_last) {
  std::lock_guard lock(mu_);
  return in_txn([&]() -> Result<ChatMessage> {
    ChatMessage out = m;
    out.created_at_ms = or_now(m.created_at_ms);
    {
      Stmt q(*this, Q::chat_insert);
      q.text(out.room_id).i64(out.user_id).text(out.username).text(out.text)
          .i64(out.created_at_ms);
      auto r = q.step("add chat message");
      if (!r) return r.error();
      out.id = q.i64_at(0);
    }
    if (keep_last > 0) {
      Stmt q(*this, Q::chat_trim);
      q.text(out.room_id).i64(keep_last);
      if (auto n = q.run("trim chat"); !n) return n.error();
    }
    return out;
  });
}

Result<std::vector<ChatMessage>> SqliteStore::recent_chat(const std::string& room_id,
                                                          int64_t limit) {
  if (limit <= 0) return std::vector<ChatMessage>{};
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::chat_recent);
  q.text(room_id).i64(limit);
  return all_rows(q, "recent chat", [](const Stmt& s) { return chat_row(s); });
}

// ---- playback state ----

Status SqliteStore::save_room_state(const RoomState& s) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::state_upsert);
  q.text(s.room_id).i64(s.item_id).f64(s.position_s).f64(s.rate).boolean(s.playing)
      .i64(s.updated_at_ms).i64(static_cast<int64_t>(s.version));
  auto r = q.run("save room state");
  if (!r) return r.error();
  return ok_status();
}

Result<RoomState> SqliteStore::room_state(const std::string& room_id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, Q::state_get);
  q.text(room_id);
  return one_row(q, "room state", [](const Stmt& s) { return state_row(s); });
}

}  // namespace castmesh::store
