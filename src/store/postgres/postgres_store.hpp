#pragma once
/// \file store::PostgresStore — the Store on PostgreSQL (libpqxx 6.4), for clusters where
/// several nodes share durable state. A small pool of connections (default 4) serves calls
/// from any thread; every call runs in its own transaction with prepared statements and bound
/// values. Broken connections are dropped and replaced (one retry per call); when the server
/// cannot be reached the call fails with Errc::unavailable (callers answer HTTP 503).

#include <memory>
#include <string>

#include "store/store.hpp"

namespace castmesh::store {

/// Store on PostgreSQL. Semantics shared with SqliteStore (see store.hpp); backend notes:
/// - Errc::unavailable: the server is unreachable, the pool stayed exhausted for 30 s, or the
///   connection broke during COMMIT (the outcome is then unknown).
/// - Errc::io_error: any other database error.
/// - add_item / reorder_items lock the room row (FOR NO KEY UPDATE), so concurrent appends from
///   several nodes get distinct positions.
class PostgresStore final : public Store {
 public:
  /// Default number of pooled connections.
  static constexpr int kDefaultPoolSize = 4;

  /// Connects to `url` (libpq URI "postgres://user:pass@host:port/db?param=value"; a 5 s
  /// connect_timeout is added unless the URI names one), applies pending migrations under an
  /// advisory lock (so nodes starting together migrate once), and keeps up to `pool_size`
  /// connections. Errors: Errc::unavailable (cannot connect), Errc::unsupported (the schema is
  /// newer than this binary), Errc::io_error (a migration failed).
  static Result<std::unique_ptr<PostgresStore>> open(const std::string& url,
                                                     int pool_size = kDefaultPoolSize);

  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

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
  struct Impl;
  explicit PostgresStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace castmesh::store
