#pragma once
/// \file store::Store — durable state (users, sessions, rooms, members, playlist, chat, room
/// playback state). Implementations: SqliteStore (default, `data/castmesh.db`, WAL) and
/// PostgresStore (`database.url: postgres://...`). Both pass the same test suite
/// (store_suite_test.cpp). All SQL uses bound parameters, never string concatenation of values.
///
/// Calls are synchronous and thread-safe (each implementation serializes or pools its
/// connections). Times are Unix milliseconds. Errors: Errc::not_found, Errc::conflict (unique
/// key taken), Errc::unavailable (database unreachable; callers answer 503), Errc::io_error.
///
/// Shared rules (both backends, checked by store_suite_test.cpp):
/// - A zero `created_at_ms` / `joined_at_ms` on input means "now".
/// - Lookups of a missing row, and update/delete that match no row: Errc::not_found.
/// - Writes naming a room or user that does not exist (foreign key): Errc::not_found.
/// - Listings (members, playlist, chat) of an unknown room are empty, not an error.
/// - Text is stored byte for byte (any UTF-8, quotes, backslashes); lookups are exact matches.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace castmesh::store {

/// Global roles (stored as text).
inline constexpr const char* kRoleRoot = "root";
inline constexpr const char* kRoleAdmin = "admin";
inline constexpr const char* kRoleUser = "user";
inline constexpr const char* kRoleGuest = "guest";  ///< ephemeral guest identity, one room

struct User {
  int64_t id = 0;
  std::string username;       ///< unique, 1..32 chars validated by the caller
  std::string password_hash;  ///< Argon2id encoded string; empty for guests
  std::string role = kRoleUser;
  int64_t created_at_ms = 0;
};

struct Session {
  std::string token_hash;  ///< hex SHA-256 of the bearer token; the token itself is never stored
  int64_t user_id = 0;
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;
};

struct Room {
  std::string id;             ///< URL-safe random id (e.g. 10 base62 chars)
  std::string name;
  int64_t creator_id = 0;
  std::string password_hash;  ///< Argon2id; empty = no password
  bool allow_guests = false;
  std::string settings_json = "{}";  ///< room settings object (see room/settings.hpp)
  std::string publish_key;    ///< stream key for publishing into the room; empty = none
  int64_t created_at_ms = 0;
};

struct Member {
  std::string room_id;
  int64_t user_id = 0;
  std::string username;       ///< joined from users on read
  std::string role;           ///< "creator" | "admin" | "member" | "guest"
  uint64_t grants = 0;        ///< permission bits added to the role's defaults
  uint64_t revokes = 0;       ///< permission bits removed (revocation wins)
  bool banned = false;
  int64_t kicked_until_ms = 0;  ///< rejoin cooldown after a kick
  int64_t joined_at_ms = 0;
};

struct PlaylistItem {
  int64_t id = 0;
  std::string room_id;
  int64_t position = 0;       ///< order within the room, ascending
  std::string kind;           ///< "url" (HLS or MP4) | "live" (stream of this server: url = "app/stream")
  std::string url;
  std::string title;
  int64_t added_by = 0;
  int64_t created_at_ms = 0;
};

struct ChatMessage {
  int64_t id = 0;
  std::string room_id;
  int64_t user_id = 0;
  std::string username;
  std::string text;
  int64_t created_at_ms = 0;
};

/// Server-authoritative playback anchor of a room (DESIGN.md section 5).
struct RoomState {
  std::string room_id;
  int64_t item_id = 0;        ///< 0 = nothing selected
  double position_s = 0;
  double rate = 1.0;
  bool playing = false;
  int64_t updated_at_ms = 0;
  uint64_t version = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // users
  virtual Result<User> create_user(const User& u) = 0;  ///< id/created_at filled; conflict on name
  virtual Result<User> user_by_id(int64_t id) = 0;
  virtual Result<User> user_by_name(const std::string& username) = 0;
  virtual Result<std::vector<User>> list_users() = 0;
  virtual Status update_user(const User& u) = 0;        ///< password_hash, role; not_found
  virtual Result<int64_t> count_users() = 0;            ///< every user, guests included

  // sessions
  virtual Status create_session(const Session& s) = 0;
  /// Returns the session even when expired: the caller compares expires_at_ms with now.
  virtual Result<Session> session_by_token_hash(const std::string& token_hash) = 0;
  virtual Status delete_session(const std::string& token_hash) = 0;  ///< not_found if absent
  /// Removes sessions with expires_at_ms <= now_ms; returns the number removed.
  virtual Result<int64_t> delete_expired_sessions(int64_t now_ms) = 0;
  /// Removes guest users (role kRoleGuest) created at or before `created_before_ms` that have
  /// no session valid at `now_ms`, with their memberships; returns the number removed.
  virtual Result<int64_t> delete_idle_guests(int64_t created_before_ms, int64_t now_ms) = 0;

  // rooms
  /// Conflict on id or on a non-empty publish_key already used; not_found for an unknown
  /// creator_id; malformed for an empty id.
  virtual Result<Room> create_room(const Room& r) = 0;
  virtual Result<Room> room_by_id(const std::string& id) = 0;
  virtual Result<Room> room_by_publish_key(const std::string& key) = 0;  ///< "" never matches
  virtual Result<std::vector<Room>> list_rooms() = 0;   ///< oldest first
  virtual Status update_room(const Room& r) = 0;        ///< name, password_hash, allow_guests, settings_json, publish_key
  virtual Status delete_room(const std::string& id) = 0;  ///< cascades to members, playlist, chat, state

  // members
  /// Inserts, or updates role, grants, revokes, banned and kicked_until_ms of an existing
  /// member (joined_at_ms keeps its first value). not_found for an unknown room or user.
  virtual Status upsert_member(const Member& m) = 0;
  virtual Result<Member> member(const std::string& room_id, int64_t user_id) = 0;
  virtual Result<std::vector<Member>> list_members(const std::string& room_id) = 0;  ///< by join time
  virtual Status delete_member(const std::string& room_id, int64_t user_id) = 0;

  // playlist
  /// Appended at the end (position = last + 1, distinct even under concurrent appends); the
  /// result carries id, position and created_at_ms. not_found for an unknown room.
  virtual Result<PlaylistItem> add_item(const PlaylistItem& item) = 0;
  virtual Result<std::vector<PlaylistItem>> list_items(const std::string& room_id) = 0;  ///< by position
  virtual Status remove_item(const std::string& room_id, int64_t item_id) = 0;  ///< item of that room
  /// Sets positions to the order of `item_ids` (0, 1, 2 ...), which must be exactly the room's
  /// items: Errc::malformed when an id repeats, Errc::conflict when the set differs from the
  /// room's current items (stale view), Errc::not_found for an unknown room. All or nothing.
  virtual Status reorder_items(const std::string& room_id, const std::vector<int64_t>& item_ids) = 0;

  // chat: keeps the newest `keep_last` messages per room (keep_last <= 0: no trimming)
  /// Returns the message with id (ascending per database) and created_at_ms; not_found for an
  /// unknown room. username is stored as given (history survives removal of guest users).
  virtual Result<ChatMessage> add_chat(const ChatMessage& m, int64_t keep_last) = 0;
  virtual Result<std::vector<ChatMessage>> recent_chat(const std::string& room_id, int64_t limit) = 0;  ///< oldest first

  // playback state
  virtual Status save_room_state(const RoomState& s) = 0;  ///< upsert; not_found for unknown room
  /// not_found until a state was saved for the room (the caller then starts from defaults).
  virtual Result<RoomState> room_state(const std::string& room_id) = 0;
};

/// Opens the store named by `url`: "sqlite:PATH" (or a plain path; ":memory:" for tests) or
/// "postgres://user:pass@host:port/db" / "postgresql://...". Applies pending migrations
/// (versioned, in a transaction, recorded in schema_migrations). Errors: Errc::config_invalid
/// for an unknown scheme, Errc::unavailable when the database cannot be reached,
/// Errc::unsupported when the database's schema is newer than this binary knows.
Result<std::unique_ptr<Store>> open_store(const std::string& url);

}  // namespace castmesh::store
