#include "store/postgres/postgres_store.hpp"

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <system_error>
#include <utility>
#include <vector>

#include "store/common.hpp"
#include "store/migrations/migrations.hpp"
#include "store/queries.hpp"

namespace castmesh::store {
namespace {

// pg_advisory_xact_lock key taken while migrating: nodes starting together migrate one by one.
constexpr int64_t kMigrationLockKey = 0x63617374'6d657368;  // "castmesh"
constexpr auto kAcquireTimeout = std::chrono::seconds(30);
constexpr const char* kRoomLock = "room_lock";
constexpr const char* kRoomLockSql = "SELECT id FROM rooms WHERE id = $1 FOR NO KEY UPDATE";

// libpq waits for a TCP connect without limit by default; a store call must not hang.
std::string with_connect_timeout(std::string url) {
  if (url.find("connect_timeout=") != std::string::npos) return url;
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += "connect_timeout=5";
  return url;
}

// Doubles travel as text: the shortest decimal that reads back to the same double (PostgreSQL
// 12+ prints float8 the same way), so playback positions round-trip exactly.
std::string double_text(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("0");
}

double double_at(const pqxx::field& f) {
  double v = 0;
  const char* p = f.c_str();
  std::from_chars(p, p + f.size(), v);
  return v;
}

int64_t i64_at(const pqxx::field& f) { return f.as<int64_t>(); }
bool bool_at(const pqxx::field& f) { return f.size() > 0 && f.c_str()[0] == 't'; }
std::string text_at(const pqxx::field& f) {
  if (f.is_null()) return {};
  return std::string(f.c_str(), f.size());
}

std::optional<std::string> text_or_null(const std::string& v) {
  if (v.empty()) return std::nullopt;
  return v;
}

User user_row(const pqxx::row& r) {
  User u;
  u.id = i64_at(r[0]);
  u.username = text_at(r[1]);
  u.password_hash = text_at(r[2]);
  u.role = text_at(r[3]);
  u.created_at_ms = i64_at(r[4]);
  return u;
}

Session session_row(const pqxx::row& r) {
  Session s;
  s.token_hash = text_at(r[0]);
  s.user_id = i64_at(r[1]);
  s.created_at_ms = i64_at(r[2]);
  s.expires_at_ms = i64_at(r[3]);
  return s;
}

Room room_row(const pqxx::row& r) {
  Room x;
  x.id = text_at(r[0]);
  x.name = text_at(r[1]);
  x.creator_id = i64_at(r[2]);
  x.password_hash = text_at(r[3]);
  x.allow_guests = bool_at(r[4]);
  x.settings_json = text_at(r[5]);
  x.publish_key = text_at(r[6]);  // NULL -> ""
  x.created_at_ms = i64_at(r[7]);
  return x;
}

Member member_row(const pqxx::row& r) {
  Member m;
  m.room_id = text_at(r[0]);
  m.user_id = i64_at(r[1]);
  m.username = text_at(r[2]);
  m.role = text_at(r[3]);
  m.grants = bits_from_sql(i64_at(r[4]));
  m.revokes = bits_from_sql(i64_at(r[5]));
  m.banned = bool_at(r[6]);
  m.kicked_until_ms = i64_at(r[7]);
  m.joined_at_ms = i64_at(r[8]);
  return m;
}

PlaylistItem item_row(const pqxx::row& r) {
  PlaylistItem it;
  it.id = i64_at(r[0]);
  it.room_id = text_at(r[1]);
  it.position = i64_at(r[2]);
  it.kind = text_at(r[3]);
  it.url = text_at(r[4]);
  it.title = text_at(r[5]);
  it.added_by = i64_at(r[6]);
  it.created_at_ms = i64_at(r[7]);
  return it;
}

ChatMessage chat_row(const pqxx::row& r) {
  ChatMessage c;
  c.id = i64_at(r[0]);
  c.room_id = text_at(r[1]);
  c.user_id = i64_at(r[2]);
  c.username = text_at(r[3]);
  c.text = text_at(r[4]);
  c.created_at_ms = i64_at(r[5]);
  return c;
}

RoomState state_row(const pqxx::row& r) {
  RoomState s;
  s.room_id = text_at(r[0]);
  s.item_id = i64_at(r[1]);
  s.position_s = double_at(r[2]);
  s.rate = double_at(r[3]);
  s.playing = bool_at(r[4]);
  s.updated_at_ms = i64_at(r[5]);
  s.version = static_cast<uint64_t>(i64_at(r[6]));
  return s;
}

template <typename RowFn>
auto one_row(const pqxx::result& res, const char* what, RowFn row)
    -> Result<decltype(row(res[0]))> {
  if (res.empty()) return Error{Errc::not_found, what};
  return row(res[0]);
}

template <typename RowFn>
auto all_rows(const pqxx::result& res, RowFn row) -> std::vector<decltype(row(res[0]))> {
  std::vector<decltype(row(res[0]))> out;
  out.reserve(res.size());
  for (const auto& r : res) out.push_back(row(r));
  return out;
}

Status changed_one(const pqxx::result& res, const char* what) {
  if (res.affected_rows() == 0) return Error{Errc::not_found, what};
  return ok_status();
}

const char* name_of(Q q) { return query(q).name; }

// Opens a connection and registers the prepared statements on it. Throws pqxx exceptions.
std::unique_ptr<pqxx::connection> connect(const std::string& url) {
  auto conn = std::make_unique<pqxx::connection>(url);
  for (const QueryText& q : kQueries) conn->prepare(q.name, q.sql);
  conn->prepare(kRoomLock, kRoomLockSql);
  return conn;
}

}  // namespace

/// The pool and the call wrapper; see PostgresStore.
struct PostgresStore::Impl {
  std::string url;
  size_t max_conns = kDefaultPoolSize;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<pqxx::connection>> idle;  // guarded by mu
  size_t open_conns = 0;                                 // idle + leased; guarded by mu

  /// A connection taken from the pool; returned on destruction unless marked broken.
  class Lease {
   public:
    Lease(Impl& pool, std::unique_ptr<pqxx::connection> c) : pool_(&pool), conn_(std::move(c)) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    pqxx::connection& conn() { return *conn_; }
    /// Drops the connection (closing it) instead of returning it to the pool.
    void discard() {
      if (!conn_) return;
      conn_.reset();
      pool_->forget_one();
    }

   private:
    Impl* pool_;
    std::unique_ptr<pqxx::connection> conn_;
  };

  Result<Lease> acquire() {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, kAcquireTimeout, [&] { return !idle.empty() || open_conns < max_conns; })) {
      return Error{Errc::unavailable, "PostgreSQL connection pool exhausted"};
    }
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      return Lease(*this, std::move(c));
    }
    ++open_conns;  // reserve the slot, connect without holding the lock
    lock.unlock();
    try {
      return Lease(*this, connect(url));
    } catch (const std::exception& e) {
      forget_one();
      return Error{Errc::unavailable, std::string("cannot connect to PostgreSQL: ") + e.what()};
    }
  }

  void give_back(std::unique_ptr<pqxx::connection> c) {
    {
      std::lock_guard lock(mu);
      if (c->is_open()) {
        idle.push_back(std::move(c));
      } else {
        --open_conns;
      }
    }
    cv.notify_one();
  }

  void forget_one() {
    {
      std::lock_guard lock(mu);
      --open_conns;
    }
    cv.notify_one();
  }

  /// After one connection broke the server most likely restarted: the idle ones are dead too.
  void drop_idle() {
    std::vector<std::unique_ptr<pqxx::connection>> dead;
    {
      std::lock_guard lock(mu);
      dead.swap(idle);
      open_conns -= dead.size();
    }
    cv.notify_all();
  }

  /// Runs `body(pqxx::work&)` -> Result<T> in one transaction, committing when it succeeds.
  /// A broken connection is replaced and the call retried once (the transaction had not
  /// committed, so the retry cannot apply a change twice).
  template <typename Body>
  auto run(const char* what, Body body) -> decltype(body(std::declval<pqxx::work&>())) {
    for (int attempt = 0;; ++attempt) {
      auto lease = acquire();
      if (!lease) return lease.error();
      try {
        pqxx::work w(lease->conn());
        auto r = body(w);
        if (r.ok()) w.commit();
        return r;
      } catch (const pqxx::in_doubt_error& e) {
        lease->discard();
        drop_idle();
        return Error{Errc::unavailable,
                     std::string(what) + ": connection lost during commit, outcome unknown"};
      } catch (const pqxx::broken_connection& e) {
        lease->discard();
        drop_idle();
        if (attempt == 0) continue;
        return Error{Errc::unavailable, std::string(what) + ": " + e.what()};
      } catch (const pqxx::unique_violation& e) {
        return Error{Errc::conflict, std::string(what) + ": " + e.what()};
      } catch (const pqxx::foreign_key_violation& e) {
        return Error{Errc::not_found, std::string(what) + ": referenced row missing: " + e.what()};
      } catch (const std::exception& e) {
        if (!lease->conn().is_open()) {
          lease->discard();
          drop_idle();
          if (attempt == 0) continue;
          return Error{Errc::unavailable, std::string(what) + ": " + e.what()};
        }
        return Error{Errc::io_error, std::string(what) + ": " + e.what()};
      }
    }
  }

  Status migrate() {
    return run("migrate schema", [&](pqxx::work& w) -> Status {
      w.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      w.exec(schema_migrations_ddl());
      const int64_t current =
          w.exec("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0].as<int64_t>();
      const int latest = latest_schema_version();
      if (current > latest) {
        return Error{Errc::unsupported,
                     "database schema version " + std::to_string(current) +
                         " is newer than this castmesh supports (" + std::to_string(latest) +
                         "); upgrade castmesh or point database.url at another database"};
      }
      for (const Migration& m : migrations(Dialect::postgres)) {
        if (m.version <= current) continue;
        for (const std::string& sql : m.statements) w.exec(sql);
        w.exec_params(
            "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
            m.version, m.name, wall_ms());
      }
      return ok_status();
    });
  }
};

Result<std::unique_ptr<PostgresStore>> PostgresStore::open(const std::string& url, int pool_size) {
  auto impl = std::make_unique<Impl>();
  impl->url = with_connect_timeout(url);
  impl->max_conns = static_cast<size_t>(pool_size > 0 ? pool_size : 1);
  if (auto m = impl->migrate(); !m) return m.error();
  return std::unique_ptr<PostgresStore>(new PostgresStore(std::move(impl)));
}

PostgresStore::PostgresStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresStore::~PostgresStore() = default;

// ---- users ----

Result<User> PostgresStore::create_user(const User& u) {
  return impl_->run("create user", [&](pqxx::work& w) -> Result<User> {
    User out = u;
    out.created_at_ms = or_now(u.created_at_ms);
    auto res = w.exec_prepared(name_of(Q::user_insert), out.username, out.password_hash,
                               out.role, out.created_at_ms);
    out.id = i64_at(res[0][0]);
    return out;
  });
}

Result<User> PostgresStore::user_by_id(int64_t id) {
  return impl_->run("user", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::user_by_id), id), "user", user_row);
  });
}

Result<User> PostgresStore::user_by_name(const std::string& username) {
  return impl_->run("user", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::user_by_name), username), "user", user_row);
  });
}

Result<std::vector<User>> PostgresStore::list_users() {
  return impl_->run("list users", [&](pqxx::work& w) -> Result<std::vector<User>> {
    return all_rows(w.exec_prepared(name_of(Q::user_list)), user_row);
  });
}

Status PostgresStore::update_user(const User& u) {
  return impl_->run("update user", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::user_update), u.id, u.password_hash, u.role),
                       "user");
  });
}

Result<int64_t> PostgresStore::count_users() {
  return impl_->run("count users", [&](pqxx::work& w) -> Result<int64_t> {
    return i64_at(w.exec_prepared(name_of(Q::user_count))[0][0]);
  });
}

// ---- sessions ----

Status PostgresStore::create_session(const Session& s) {
  return impl_->run("create session", [&](pqxx::work& w) -> Status {
    w.exec_prepared(name_of(Q::session_insert), s.token_hash, s.user_id, or_now(s.created_at_ms),
                    s.expires_at_ms);
    return ok_status();
  });
}

Result<Session> PostgresStore::session_by_token_hash(const std::string& token_hash) {
  return impl_->run("session", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::session_by_hash), token_hash), "session",
                   session_row);
  });
}

Status PostgresStore::delete_session(const std::string& token_hash) {
  return impl_->run("delete session", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::session_delete), token_hash), "session");
  });
}

Result<int64_t> PostgresStore::delete_expired_sessions(int64_t now_ms) {
  return impl_->run("delete expired sessions", [&](pqxx::work& w) -> Result<int64_t> {
    return static_cast<int64_t>(
        w.exec_prepared(name_of(Q::session_delete_expired), now_ms).affected_rows());
  });
}

Result<int64_t> PostgresStore::delete_idle_guests(int64_t created_before_ms, int64_t now_ms) {
  return impl_->run("delete idle guests", [&](pqxx::work& w) -> Result<int64_t> {
    return static_cast<int64_t>(
        w.exec_prepared(name_of(Q::user_delete_idle_guests), created_before_ms, now_ms).affected_rows());
  });
}

// ---- rooms ----

Result<Room> PostgresStore::create_room(const Room& r) {
  if (r.id.empty()) return Error{Errc::malformed, "room id is empty"};
  return impl_->run("create room", [&](pqxx::work& w) -> Result<Room> {
    Room out = r;
    out.created_at_ms = or_now(r.created_at_ms);
    w.exec_prepared(name_of(Q::room_insert), out.id, out.name, out.creator_id, out.password_hash,
                    out.allow_guests, out.settings_json, text_or_null(out.publish_key),
                    out.created_at_ms);
    return out;
  });
}

Result<Room> PostgresStore::room_by_id(const std::string& id) {
  return impl_->run("room", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::room_by_id), id), "room", room_row);
  });
}

Result<Room> PostgresStore::room_by_publish_key(const std::string& key) {
  if (key.empty()) return Error{Errc::not_found, "room (empty publish key)"};
  return impl_->run("room", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::room_by_key), key), "room", room_row);
  });
}

Result<std::vector<Room>> PostgresStore::list_rooms() {
  return impl_->run("list rooms", [&](pqxx::work& w) -> Result<std::vector<Room>> {
    return all_rows(w.exec_prepared(name_of(Q::room_list)), room_row);
  });
}

Status PostgresStore::update_room(const Room& r) {
  return impl_->run("update room", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::room_update), r.id, r.name, r.password_hash,
                                       r.allow_guests, r.settings_json,
                                       text_or_null(r.publish_key)),
                       "room");
  });
}

Status PostgresStore::delete_room(const std::string& id) {
  return impl_->run("delete room", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::room_delete), id), "room");
  });
}

// ---- members ----

Status PostgresStore::upsert_member(const Member& m) {
  return impl_->run("upsert member", [&](pqxx::work& w) -> Status {
    w.exec_prepared(name_of(Q::member_upsert), m.room_id, m.user_id, m.role,
                    bits_to_sql(m.grants), bits_to_sql(m.revokes), m.banned, m.kicked_until_ms,
                    or_now(m.joined_at_ms));
    return ok_status();
  });
}

Result<Member> PostgresStore::member(const std::string& room_id, int64_t user_id) {
  return impl_->run("member", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::member_get), room_id, user_id), "member",
                   member_row);
  });
}

Result<std::vector<Member>> PostgresStore::list_members(const std::string& room_id) {
  return impl_->run("list members", [&](pqxx::work& w) -> Result<std::vector<Member>> {
    return all_rows(w.exec_prepared(name_of(Q::member_list), room_id), member_row);
  });
}

Status PostgresStore::delete_member(const std::string& room_id, int64_t user_id) {
  return impl_->run("delete member", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::member_delete), room_id, user_id), "member");
  });
}

// ---- playlist ----

Result<PlaylistItem> PostgresStore::add_item(const PlaylistItem& item) {
  return impl_->run("add playlist item", [&](pqxx::work& w) -> Result<PlaylistItem> {
    // Serializes appends per room, so two nodes never hand out the same position.
    if (w.exec_prepared(kRoomLock, item.room_id).empty()) {
      return Error{Errc::not_found, "room"};
    }
    PlaylistItem out = item;
    out.created_at_ms = or_now(item.created_at_ms);
    out.position = i64_at(w.exec_prepared(name_of(Q::item_next_position), out.room_id)[0][0]);
    auto res = w.exec_prepared(name_of(Q::item_insert), out.room_id, out.position, out.kind,
                               out.url, out.title, out.added_by, out.created_at_ms);
    out.id = i64_at(res[0][0]);
    return out;
  });
}

Result<std::vector<PlaylistItem>> PostgresStore::list_items(const std::string& room_id) {
  return impl_->run("list playlist", [&](pqxx::work& w) -> Result<std::vector<PlaylistItem>> {
    return all_rows(w.exec_prepared(name_of(Q::item_list), room_id), item_row);
  });
}

Status PostgresStore::remove_item(const std::string& room_id, int64_t item_id) {
  return impl_->run("remove playlist item", [&](pqxx::work& w) {
    return changed_one(w.exec_prepared(name_of(Q::item_remove), room_id, item_id),
                       "playlist item");
  });
}

Status PostgresStore::reorder_items(const std::string& room_id,
                                    const std::vector<int64_t>& item_ids) {
  return impl_->run("reorder playlist", [&](pqxx::work& w) -> Status {
    if (w.exec_prepared(kRoomLock, room_id).empty()) return Error{Errc::not_found, "room"};
    std::vector<int64_t> current = all_rows(w.exec_prepared(name_of(Q::item_ids), room_id),
                                            [](const pqxx::row& r) { return i64_at(r[0]); });
    if (auto c = check_reorder(std::move(current), item_ids); !c) return c.error();
    for (size_t i = 0; i < item_ids.size(); ++i) {
      w.exec_prepared(name_of(Q::item_set_position), room_id, item_ids[i],
                      static_cast<int64_t>(i));
    }
    return ok_status();
  });
}

// ---- chat ----

Result<ChatMessage> PostgresStore::add_chat(const ChatMessage& m, int64_t keep_last) {
  return impl_->run("add chat message", [&](pqxx::work& w) -> Result<ChatMessage> {
    ChatMessage out = m;
    out.created_at_ms = or_now(m.created_at_ms);
    auto res = w.exec_prepared(name_of(Q::chat_insert), out.room_id, out.user_id, out.username,
                               out.text, out.created_at_ms);
    out.id = i64_at(res[0][0]);
    if (keep_last > 0) w.exec_prepared(name_of(Q::chat_trim), out.room_id, keep_last);
    return out;
  });
}

Result<std::vector<ChatMessage>> PostgresStore::recent_chat(const std::string& room_id,
                                                            int64_t limit) {
  if (limit <= 0) return std::vector<ChatMessage>{};
  return impl_->run("recent chat", [&](pqxx::work& w) -> Result<std::vector<ChatMessage>> {
    return all_rows(w.exec_prepared(name_of(Q::chat_recent), room_id, limit), chat_row);
  });
}

// ---- playback state ----

Status PostgresStore::save_room_state(const RoomState& s) {
  return impl_->run("save room state", [&](pqxx::work& w) -> Status {
    w.exec_prepared(name_of(Q::state_upsert), s.room_id, s.item_id, double_text(s.position_s),
                    double_text(s.rate), s.playing, s.updated_at_ms,
                    static_cast<int64_t>(s.version));
    return ok_status();
  });
}

Result<RoomState> PostgresStore::room_state(const std::string& room_id) {
  return impl_->run("room state", [&](pqxx::work& w) {
    return one_row(w.exec_prepared(name_of(Q::state_get), room_id), "room state", state_row);
  });
}

}  // namespace castmesh::store
