#pragma once
/// \file room::RoomManager — rooms, membership, presence, chat, playlist and synchronized
/// playback over store::Store and cluster::EventBus. No sockets: the WebSocket gateway
/// (src/proto/ws) adapts sockets to room::Connection, the HTTP API (src/proto/api) calls the
/// operations below. Wire protocol: docs/protocol.md (version 1).
///
/// Event flow: a change is applied under the room's lock, persisted to the Store, serialized
/// ONCE and published on the EventBus (topic "room:{id}" plus "/state" for playback state,
/// "/presence" for a node's presence share, "/user/{uid}/kick"; critical lane for kicks, bans,
/// member changes and deletion, normal lane otherwise). Every node's RoomManager is subscribed
/// to "room:" and hands one shared string to each of its local connections of that room, with
/// `"seq"` put first: the node's delivery number of the room, so `seq` increases on every
/// connection whichever node an event came from. Cluster mode: another node's `state` is
/// mirrored when its version is newer (equal versions made at once on two nodes: the larger
/// node id wins on every node); presence is the merge of every node's share.
///
/// Threading: every public function is thread-safe and may be called from any io thread. Calls
/// are synchronous (Store calls included). Connection::send/close are called while room locks are
/// held, so implementations must never call back into RoomManager synchronously from them
/// (queue or post instead).
///
/// Errors of the HTTP-level operations (map to HTTP status): Errc::malformed 400 (detail says
/// what), Errc::forbidden 403, Errc::not_found 404, Errc::conflict 409, Errc::unavailable 503
/// (store down, or password hashing not configured), Errc::io_error 500.
///
/// Global roles: a user whose global role is "admin" or "root" acts as room role "admin" in every
/// room (all permissions, may attach without membership). Global role "guest" users may not
/// create or join rooms other than their own guest membership.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "cluster/event_bus.hpp"
#include "room/permissions.hpp"
#include "room/rooms_config.hpp"
#include "room/settings.hpp"
#include "room/views.hpp"
#include "store/store.hpp"

namespace castmesh::room {

/// The authenticated user behind a request or socket (from auth's session lookup).
struct Identity {
  int64_t user_id = 0;
  std::string username;
  std::string global_role;  ///< store::kRoleRoot | kRoleAdmin | kRoleUser | kRoleGuest
};

/// One client socket as the room layer sees it. Implemented by the WebSocket gateway (and by
/// recording fakes in tests).
class Connection {
 public:
  virtual ~Connection() = default;
  /// Queues one text frame. Thread-safe, non-blocking; the gateway bounds its queue
  /// (rooms.ws_send_queue) and disconnects on overflow. Must not call into RoomManager.
  virtual void send(std::shared_ptr<const std::string> json_text) = 0;
  /// Closes the socket with `ws_code` after the frames already queued. Thread-safe,
  /// non-blocking, idempotent. Must not call into RoomManager synchronously; the gateway later
  /// calls RoomManager::detach (or drops the Attachment) when its session ends.
  virtual void close(uint16_t ws_code, std::string reason) = 0;
};

/// Password hashing injected by app/ (auth's Argon2id functions), so the room module does not
/// depend on auth being ready. Empty functions: rooms cannot have passwords (creating or
/// joining one fails with Errc::unavailable).
struct PasswordFunctions {
  /// Encoded hash of `password`.
  std::function<Result<std::string>(std::string_view password)> hash;
  /// True when `password` matches `encoded`.
  std::function<bool(std::string_view password, std::string_view encoded)> verify;
};

class RoomManager;
struct Room;  // internal (room/room.hpp)

/// One connected socket in one room, returned by RoomManager::attach. Destroying it (or
/// RoomManager::detach) removes the connection from the room and updates presence. Must be
/// destroyed before the RoomManager.
class Attachment {
 public:
  ~Attachment();
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  const std::string& room_id() const noexcept { return room_id_; }
  const Identity& identity() const noexcept { return who_; }
  /// Unique per RoomManager (also the key of this connection's buffering report).
  uint64_t id() const noexcept { return id_; }
  const std::shared_ptr<Connection>& connection() const noexcept { return conn_; }

 private:
  friend class RoomManager;
  Attachment(RoomManager* mgr, std::shared_ptr<Room> room, std::string room_id, Identity who,
             std::shared_ptr<Connection> conn, uint64_t id);

  RoomManager* mgr_;
  std::shared_ptr<Room> room_;
  std::string room_id_;
  Identity who_;
  std::shared_ptr<Connection> conn_;
  uint64_t id_;
  std::atomic<bool> detached_{false};  // set under the room's lock
};

/// `POST /rooms` body.
struct CreateRoomRequest {
  std::string name;                 ///< 1..64 characters (UTF-8 code points), no control characters
  std::optional<std::string> password;  ///< 8..256 characters; nullopt or "" = no password
  bool allow_guests = false;
  std::optional<SettingsPatch> settings;
};

/// `PATCH /rooms/{id}` body; absent fields stay unchanged.
struct RoomPatch {
  std::optional<std::string> name;
  std::optional<std::string> password;  ///< "" removes the password
  std::optional<bool> allow_guests;
  SettingsPatch settings;
};

/// `PATCH /rooms/{id}/members/{user_id}` body. Order of application: role, clear, grant, revoke.
struct MemberPatch {
  std::optional<std::string> role;  ///< "admin" | "member" | "guest" ("creator" cannot be given)
  std::vector<std::string> grant;   ///< permission names: added to grants, removed from revokes
  std::vector<std::string> revoke;  ///< added to revokes, removed from grants
  std::vector<std::string> clear;   ///< removed from both
};

/// `GET /rooms/{id}`.
struct RoomDetails {
  RoomInfo room;
  std::optional<MemberInfo> you;  ///< the caller's membership, if any
};

/// Result of add_guest_member: the new guest user (global role "guest", no password) and its
/// membership (room role "guest"). The HTTP layer then creates a session for `user`.
struct GuestJoin {
  store::User user;
  MemberInfo member;
};

/// What the publish-key endpoints return; the HTTP layer builds rtmp_url from the config.
struct PublishKeyInfo {
  std::string publish_key;  ///< 32 base62 characters (CSPRNG)
  std::string stream;       ///< "live/room-{room_id}": where the published stream plays (app/stream)
};

/// The app/stream under which a stream published with a room's key plays: "live/room-{id}".
inline std::string room_stream_name(const std::string& room_id) { return "live/room-" + room_id; }

class RoomManager {
 public:
  /// Subscribes to "room:" on `bus`. All references must outlive the manager. `now_ms` is the
  /// server clock (Unix ms; default wall_ms), replaceable in tests.
  RoomManager(store::Store& store, cluster::EventBus& bus, const RoomsConfig& cfg, Metrics& metrics,
              PasswordFunctions passwords = {}, std::function<int64_t()> now_ms = {});
  ~RoomManager();
  RoomManager(const RoomManager&) = delete;
  RoomManager& operator=(const RoomManager&) = delete;

  // ---- WebSocket seam (src/proto/ws) ----

  /// Connects `conn` as `who` to room `room_id`: checks membership (Errc::forbidden when not a
  /// member, banned, or inside a kick cooldown; Errc::not_found for an unknown room;
  /// Errc::unavailable when the store is down), sends `welcome` to `conn` (plus `live` when the
  /// current item is live), then broadcasts `presence` (possibly coalesced: see flush_presence).
  /// The connection receives every room event published after its welcome, none before.
  Result<std::shared_ptr<Attachment>> attach(const std::string& room_id, const Identity& who,
                                             std::shared_ptr<Connection> conn);

  /// The checks of attach() without attaching: lets the gateway answer the HTTP upgrade request
  /// with 404 (not_found), 403 (forbidden) or 503 (unavailable) before accepting the WebSocket.
  /// attach() checks again (the answer may change in between).
  Status check_access(const std::string& room_id, const Identity& who);

  /// Handles one client text frame (docs/protocol.md "Client -> server"): parses, validates,
  /// checks permissions, applies, and replies to this connection (`pong`, `error` with the
  /// request's `ref`) or broadcasts (`state`, `chat`, `playlist`, `live`). Never throws on bad
  /// input. Frame size and rate limits are the gateway's job. Ignored after detach.
  void on_message(Attachment& a, std::string_view json_text);

  /// Removes the connection (idempotent): drops its buffering report (may resume playback) and
  /// broadcasts `presence` (possibly coalesced: see flush_presence). Does not close the socket.
  void detach(Attachment& a);

  /// Closes every local connection with 1001 "server shutting down" (Connection::close only;
  /// the gateway detaches them afterwards), then waits for pending playback-state writes.
  void stop();

  /// Playback state is written to the Store behind the broadcast, by a writer thread that
  /// coalesces a room's changes (only its newest version is written). Blocks until every
  /// change made before the call is stored (or failed, logged). Thread-safe.
  void flush_state_writes();

  /// Minimum time between two `presence` broadcasts of one room (ms), once coalescing is on.
  static constexpr int64_t kPresenceIntervalMs = 250;

  /// Broadcasts the current `presence` of every room whose membership changed while its
  /// previous presence broadcast was less than kPresenceIntervalMs ago, once that interval has
  /// passed (rooms still inside it stay pending). Meant to be called periodically (every
  /// kPresenceIntervalMs) by the server. Thread-safe; one lock and an emptiness check when
  /// nothing is pending.
  ///
  /// Coalescing starts with the first call: until then every attach/detach broadcasts
  /// `presence` at once, so a manager nobody flushes never holds back an update. Afterwards a
  /// change is broadcast at once when the room's last presence broadcast is at least
  /// kPresenceIntervalMs old (by the `now_ms` clock) and is otherwise left for this function,
  /// which sends one frame with the latest member list. Frames take the room's next `seq` like
  /// every other broadcast.
  void flush_presence();

  // ---- HTTP-level operations (src/proto/api); each checks `who`'s rights ----

  /// Creates a room with a random 10-char base62 id; `who` becomes its "creator" member.
  /// Forbidden for global guests. Errors: malformed (name, password, settings).
  Result<RoomInfo> create_room(const Identity& who, const CreateRoomRequest& req);
  /// Any authenticated user may view any room.
  Result<RoomDetails> get_room(const Identity& who, const std::string& room_id);
  /// All rooms, newest first, with online counts.
  Result<std::vector<RoomInfo>> list_rooms(const Identity& who);
  /// Creator, room admin or global admin. Broadcasts `{"type":"room","room":{...}}` to members
  /// (an addition to protocol v1: clients ignore unknown types) and, when settings change the
  /// playback (pause_on_buffering), `state`.
  Result<RoomInfo> update_room(const Identity& who, const std::string& room_id, const RoomPatch& patch);
  /// Creator or global admin. Connected members get `error{code:"not_found"}` and are closed
  /// with kCloseRoomDeleted.
  Status delete_room(const Identity& who, const std::string& room_id);

  /// Makes `who` a "member" (idempotent: an existing member gets its membership back without a
  /// password check). Errors: forbidden (banned, kick cooldown, wrong/missing password, global
  /// guest), not_found.
  Result<MemberInfo> join(const Identity& who, const std::string& room_id,
                          const std::optional<std::string>& password);
  /// Creates a guest user for a room with allow_guests (forbidden otherwise) and makes it a
  /// "guest" member. `name`: 1..24 code points, no control characters; the username becomes
  /// "{name}#{4 base62 chars}" (unique; "#" cannot occur in registered usernames). Checks the
  /// room password like join.
  Result<GuestJoin> add_guest_member(const std::string& room_id, const std::string& name,
                                     const std::optional<std::string>& password);
  /// Members (and global admins) only. Ordered by join time.
  Result<std::vector<MemberInfo>> list_members(const Identity& who, const std::string& room_id);
  /// Needs manage_members and a higher rank than the target (creator > admin > member > guest;
  /// global admins may act on anyone but the creator's role stays). Giving or taking "admin"
  /// needs the creator or a global admin. Unknown permission names: malformed. Broadcasts
  /// `member` (critical lane).
  Result<MemberInfo> update_member(const Identity& who, const std::string& room_id, int64_t user_id,
                                   const MemberPatch& patch);
  /// Needs manage_members and a higher rank. Sets kicked_until_ms = now + cooldown
  /// (default rooms.kick_cooldown_secs, 0..31536000), sends `kicked` to every connection of the
  /// user (all nodes) and closes them with 4001.
  Status kick(const Identity& who, const std::string& room_id, int64_t user_id,
              std::optional<int64_t> cooldown_secs);
  /// Like kick but persistent (`kicked` with reason "banned", until_ms 0); join/attach refused
  /// until unban.
  Status ban(const Identity& who, const std::string& room_id, int64_t user_id);
  /// Needs manage_members. Clears the ban and any cooldown.
  Status unban(const Identity& who, const std::string& room_id, int64_t user_id);

  /// Members only.
  Result<std::vector<store::PlaylistItem>> list_playlist(const Identity& who, const std::string& room_id);
  /// Needs manage_playlist. kind "url": url starts with "http://", "https://" or "/" (1..2048
  /// chars, no whitespace/control chars); kind "live": url "app/stream" of this server. title
  /// 0..200 code points (default: the url). Broadcasts `playlist` (and `state` when this is the
  /// first item: it is selected, paused at 0).
  Result<store::PlaylistItem> add_playlist_item(const Identity& who, const std::string& room_id,
                                                const std::string& kind, const std::string& url,
                                                const std::string& title);
  /// Needs manage_playlist. Removing the current item selects the one that followed it (or
  /// nothing), broadcasting `state` too.
  Status remove_playlist_item(const Identity& who, const std::string& room_id, int64_t item_id);
  /// Needs manage_playlist. `item_ids` must be exactly the room's items (malformed otherwise).
  Status reorder_playlist(const Identity& who, const std::string& room_id, const std::vector<int64_t>& item_ids);

  /// Members only. Oldest first; limit clamped to 1..rooms.chat_history.
  Result<std::vector<store::ChatMessage>> recent_chat(const Identity& who, const std::string& room_id, int64_t limit);

  /// Needs manage_live. Creates the key on first use.
  Result<PublishKeyInfo> publish_key(const Identity& who, const std::string& room_id);
  /// Needs manage_live. Replaces the key (the old one stops working for new publishes).
  Result<PublishKeyInfo> rotate_publish_key(const Identity& who, const std::string& room_id);
  /// The room owning publish key `key` (for live.require_publish_key). not_found otherwise.
  Result<store::Room> room_for_publish_key(const std::string& key);

  /// Called when the room's own stream (`live/room-{id}`, published with its publish key)
  /// starts: adds a `live` item for it (added_by = the creator) unless the playlist already
  /// has one, and selects it when nothing is selected (broadcasting `playlist` / `state`).
  /// not_found for an unknown room; store errors as they come.
  Status on_room_stream_published(const std::string& room_id);

  // ---- cluster seam (app/) ----

  /// Node `node_id` went offline: its presence share is dropped from every room and this
  /// node's members get the new `presence` list. Thread-safe.
  void drop_node(const std::string& node_id);

  /// The event bus reconnected after an outage: every loaded room's members, playlist,
  /// settings and (when the stored version is newer) playback state are re-read from the
  /// Store, local connections get `playlist` (and `state` when it changed), and presence shares
  /// are exchanged again. Rooms whose reads fail keep their cached data (logged). Thread-safe.
  void resync();

  /// Every node re-sends its presence share of every room loaded here (this node's share goes
  /// out with the next flush_presence). Used when a node comes back. Thread-safe.
  void exchange_presence();

  /// Distinct users connected to `room_id` on any node (this node's connections plus the
  /// presence shares other nodes published).
  int64_t online_count(const std::string& room_id) const;

  /// Gauges for /metrics (this node).
  struct Stats {
    int64_t rooms_loaded = 0;  ///< rooms held in memory
    int64_t connections = 0;   ///< attached sockets
    int64_t users_online = 0;  ///< sum over rooms of distinct connected users (all nodes)
  };
  Stats stats() const;

 private:
  friend class Attachment;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace castmesh::room
