#pragma once
/// \file The store's data statements, shared by both backends so they behave the same. Values
/// are always bound as parameters: `$1`, `$2` ... as PostgreSQL writes them; SqliteStore turns
/// `$N` into SQLite's numbered `?N` (same index). Internal to src/store.
///
/// Column order of the row-returning statements is fixed by the k*Cols constants below and
/// read positionally by each backend's row decoders.

#include <array>
#include <cstddef>

namespace castmesh::store {

/// Identifies one statement; the value indexes kQueries.
enum class Q : std::size_t {
  user_insert,
  user_by_id,
  user_by_name,
  user_list,
  user_update,
  user_count,
  session_insert,
  session_by_hash,
  session_delete,
  session_delete_expired,
  user_delete_idle_guests,
  room_insert,
  room_by_id,
  room_by_key,
  room_list,
  room_update,
  room_delete,
  room_exists,
  member_upsert,
  member_get,
  member_list,
  member_delete,
  item_next_position,
  item_insert,
  item_list,
  item_ids,
  item_remove,
  item_set_position,
  chat_insert,
  chat_trim,
  chat_recent,
  state_upsert,
  state_get,
  kCount,
};

/// One statement: a stable name (PostgreSQL prepared-statement name) and its SQL.
struct QueryText {
  const char* name;
  const char* sql;
};

// users: id, username, password_hash, role, created_at_ms
#define CASTMESH_USER_COLS "id, username, password_hash, role, created_at_ms"
// sessions: token_hash, user_id, created_at_ms, expires_at_ms
#define CASTMESH_SESSION_COLS "token_hash, user_id, created_at_ms, expires_at_ms"
// rooms: id, name, creator_id, password_hash, allow_guests, settings_json, publish_key, created_at_ms
#define CASTMESH_ROOM_COLS \
  "id, name, creator_id, password_hash, allow_guests, settings_json, publish_key, created_at_ms"
// members: room_id, user_id, username, role, grants, revokes, banned, kicked_until_ms, joined_at_ms
#define CASTMESH_MEMBER_COLS                                                                    \
  "m.room_id, m.user_id, u.username, m.role, m.grants, m.revokes, m.banned, m.kicked_until_ms," \
  " m.joined_at_ms"
// playlist: id, room_id, position, kind, url, title, added_by, created_at_ms
#define CASTMESH_ITEM_COLS "id, room_id, position, kind, url, title, added_by, created_at_ms"
// chat: id, room_id, user_id, username, text, created_at_ms
#define CASTMESH_CHAT_COLS "id, room_id, user_id, username, text, created_at_ms"
// room state: room_id, item_id, position_s, rate, playing, updated_at_ms, version
#define CASTMESH_STATE_COLS "room_id, item_id, position_s, rate, playing, updated_at_ms, version"

/// Every statement, indexed by Q.
inline constexpr std::array<QueryText, static_cast<std::size_t>(Q::kCount)> kQueries = {{
    {"user_insert",
     "INSERT INTO users (username, password_hash, role, created_at_ms) VALUES ($1, $2, $3, $4)"
     " RETURNING id"},
    {"user_by_id", "SELECT " CASTMESH_USER_COLS " FROM users WHERE id = $1"},
    {"user_by_name", "SELECT " CASTMESH_USER_COLS " FROM users WHERE username = $1"},
    {"user_list", "SELECT " CASTMESH_USER_COLS " FROM users ORDER BY id"},
    {"user_update", "UPDATE users SET password_hash = $2, role = $3 WHERE id = $1"},
    {"user_count", "SELECT COUNT(*) FROM users"},

    {"session_insert",
     "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms)"
     " VALUES ($1, $2, $3, $4)"},
    {"session_by_hash", "SELECT " CASTMESH_SESSION_COLS " FROM sessions WHERE token_hash = $1"},
    {"session_delete", "DELETE FROM sessions WHERE token_hash = $1"},
    {"session_delete_expired", "DELETE FROM sessions WHERE expires_at_ms <= $1"},
    {"user_delete_idle_guests",
     "DELETE FROM users WHERE role = 'guest' AND created_at_ms <= $1 AND NOT EXISTS"
     " (SELECT 1 FROM sessions WHERE sessions.user_id = users.id AND sessions.expires_at_ms > $2)"},

    {"room_insert",
     "INSERT INTO rooms (id, name, creator_id, password_hash, allow_guests, settings_json,"
     " publish_key, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
    {"room_by_id", "SELECT " CASTMESH_ROOM_COLS " FROM rooms WHERE id = $1"},
    {"room_by_key", "SELECT " CASTMESH_ROOM_COLS " FROM rooms WHERE publish_key = $1"},
    {"room_list", "SELECT " CASTMESH_ROOM_COLS " FROM rooms ORDER BY created_at_ms, id"},
    {"room_update",
     "UPDATE rooms SET name = $2, password_hash = $3, allow_guests = $4, settings_json = $5,"
     " publish_key = $6 WHERE id = $1"},
    {"room_delete", "DELETE FROM rooms WHERE id = $1"},
    {"room_exists", "SELECT id FROM rooms WHERE id = $1"},

    {"member_upsert",
     "INSERT INTO room_members (room_id, user_id, role, grants, revokes, banned,"
     " kicked_until_ms, joined_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
     " ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role,"
     " grants = excluded.grants, revokes = excluded.revokes, banned = excluded.banned,"
     " kicked_until_ms = excluded.kicked_until_ms"},
    {"member_get",
     "SELECT " CASTMESH_MEMBER_COLS " FROM room_members m JOIN users u ON u.id = m.user_id"
     " WHERE m.room_id = $1 AND m.user_id = $2"},
    {"member_list",
     "SELECT " CASTMESH_MEMBER_COLS " FROM room_members m JOIN users u ON u.id = m.user_id"
     " WHERE m.room_id = $1 ORDER BY m.joined_at_ms, m.user_id"},
    {"member_delete", "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2"},

    {"item_next_position",
     "SELECT COALESCE(MAX(position) + 1, 0) FROM playlist_items WHERE room_id = $1"},
    {"item_insert",
     "INSERT INTO playlist_items (room_id, position, kind, url, title, added_by, created_at_ms)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"},
    {"item_list",
     "SELECT " CASTMESH_ITEM_COLS " FROM playlist_items WHERE room_id = $1 ORDER BY position, id"},
    {"item_ids", "SELECT id FROM playlist_items WHERE room_id = $1"},
    {"item_remove", "DELETE FROM playlist_items WHERE room_id = $1 AND id = $2"},
    {"item_set_position", "UPDATE playlist_items SET position = $3 WHERE room_id = $1 AND id = $2"},

    {"chat_insert",
     "INSERT INTO chat_messages (room_id, user_id, username, text, created_at_ms)"
     " VALUES ($1, $2, $3, $4, $5) RETURNING id"},
    // Deletes everything at or below the id of the (keep_last+1)-th newest message; when the
    // room has fewer messages the subquery is NULL and nothing matches.
    {"chat_trim",
     "DELETE FROM chat_messages WHERE room_id = $1 AND id <= (SELECT id FROM chat_messages"
     " WHERE room_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)"},
    {"chat_recent",
     "SELECT " CASTMESH_CHAT_COLS " FROM (SELECT " CASTMESH_CHAT_COLS " FROM chat_messages"
     " WHERE room_id = $1 ORDER BY id DESC LIMIT $2) AS newest ORDER BY id"},

    {"state_upsert",
     "INSERT INTO room_states (" CASTMESH_STATE_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
     " ON CONFLICT (room_id) DO UPDATE SET item_id = excluded.item_id,"
     " position_s = excluded.position_s, rate = excluded.rate, playing = excluded.playing,"
     " updated_at_ms = excluded.updated_at_ms, version = excluded.version"
     // Several nodes write one room's state: a stored version never goes back.
     " WHERE room_states.version <= excluded.version"},
    {"state_get", "SELECT " CASTMESH_STATE_COLS " FROM room_states WHERE room_id = $1"},
}};

#undef CASTMESH_USER_COLS
#undef CASTMESH_SESSION_COLS
#undef CASTMESH_ROOM_COLS
#undef CASTMESH_MEMBER_COLS
#undef CASTMESH_ITEM_COLS
#undef CASTMESH_CHAT_COLS
#undef CASTMESH_STATE_COLS

/// The statement for `q`.
constexpr const QueryText& query(Q q) { return kQueries[static_cast<std::size_t>(q)]; }

}  // namespace castmesh::store
