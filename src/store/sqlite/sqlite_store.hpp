#pragma once
/// \file store::SqliteStore — the embedded default Store on one SQLite file (WAL journal,
/// foreign keys on, busy_timeout 5 s). One connection guarded by a mutex: every call is
/// serialized, which is simple, correct and fast enough for one node (SQLite allows one writer
/// at a time anyway). Statements are prepared once and cached; values are always bound.

#include <array>
#include <memory>
#include <mutex>
#include <string>

#include "store/queries.hpp"
#include "store/store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace castmesh::store {

/// Store on SQLite (sqlite3 C API). Semantics shared with PostgresStore, see store.hpp and
/// the notes on each method of Store; backend-specific notes:
/// - Errc::unavailable when the file stays locked by another process past busy_timeout.
/// - Errc::io_error for any other SQLite failure (disk full, corrupt file, ...).
class SqliteStore final : public Store {
 public:
  /// Opens or creates the database at `path` (":memory:" for a private in-memory database),
  /// creating missing parent directories, then applies pending migrations in one transaction.
  /// Errors: Errc::io_error (cannot create/open), Errc::unsupported (the file's schema is newer
  /// than this binary), Errc::unavailable (locked by another process).
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<User> create_user(const User& u) override;
  Result<User> user_by_id(int64_t id) override;
  Result<User> user_by_name(const std::string& username) override;
  Result<std::vector<User>> list_users() override;
  Status update_user(const User& u) override;
  Result<int64_t> count_users() override;

  Status create_session(const Session& s) override;
  Result<Session> session_by_token_hash(const std::string& token_hash) override;
  Status delete_session(const std::string& token_hash) override;
  Result<int64_t> delete_expired_sessions(int64_t now_ms) override;
  Result<int64_t> delete_idle_guests(int64_t created_before_ms, int64_t now_ms) override;

  Result<Room> create_room(const Room& r) override;
  Result<Room> room_by_id(const std::string& id) override;
  Result<Room> room_by_publish_key(const std::string& key) override;
  Result<std::vector<Room>> list_rooms() override;
  Status update_room(const Room& r) override;
  Status delete_room(const std::string& id) override;

  Status upsert_member(const Member& m) override;
  Result<Member> member(const std::string& room_id, int64_t user_id) override;
  Result<std::vector<Member>> list_members(const std::string& room_id) override;
  Status delete_member(const std::string& room_id, int64_t user_id) override;

  Result<PlaylistItem> add_item(const PlaylistItem& item) override;
  Result<std::vector<PlaylistItem>> list_items(const std::string& room_id) override;
  Status remove_item(const std::string& room_id, int64_t item_id) override;
  Status reorder_items(const std::string& room_id, const std::vector<int64_t>& item_ids) override;

  Result<ChatMessage> add_chat(const ChatMessage& m, int64_t keep_last) override;
  Result<std::vector<ChatMessage>> recent_chat(const std::string& room_id, int64_t limit) override;

  Status save_room_state(const RoomState& s) override;
  Result<RoomState> room_state(const std::string& room_id) override;

 private:
  class Stmt;
  explicit SqliteStore(sqlite3* db) : db_(db) {}

  Status migrate();
  Status exec_plain(const char* sql);  // a statement without values (PRAGMA, BEGIN, DDL)
  template <typename Body>
  auto in_txn(Body body) -> decltype(body());
  Result<sqlite3_stmt*> prepared(Q q);
  Error error_from(int rc, const char* what) const;

  std::mutex mu_;  // guards db_ and stmts_: one statement at a time on the one connection
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, static_cast<std::size_t>(Q::kCount)> stmts_{};
};

}  // namespace castmesh::store
