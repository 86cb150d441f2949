#include "room/room_manager.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <optional>
#include <thread>
#include <unordered_set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_to.hpp>
#include <spdlog/spdlog.h>

#include "auth/crypto.hpp"
#include "base/clock.hpp"
#include "room/sync.hpp"
#include "room/text.hpp"

namespace castmesh::room {

namespace json = boost::json;
using Frame = std::shared_ptr<const std::string>;

namespace {

constexpr std::string_view kTopicPrefix = "room:";
constexpr int64_t kMaxCooldownSecs = 365LL * 24 * 3600;
constexpr size_t kWelcomeChat = 50;

Frame to_frame(const json::object& o) { return std::make_shared<const std::string>(json::serialize(o)); }

bool is_global_admin(const Identity& who) {
  return who.global_role == store::kRoleAdmin || who.global_role == store::kRoleRoot;
}

json::value by_json(const Identity* who) {
  if (!who) return nullptr;
  json::object o;
  o["user_id"] = who->user_id;
  o["username"] = who->username;
  return o;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Room: the in-memory state of one room on this node.
//
// Locks: `op_mu` (outer) serializes every change of the room together with its Store writes and
// its EventBus publish, so events leave in the order the changes were applied. `mu` (inner)
// guards the data and the connection list; the EventBus handler takes only `mu`, so a
// synchronous bus (MemoryEventBus) can deliver while the publisher holds `op_mu`. The manager's
// `rooms_mu` is a leaf: nothing else is locked while it is held.
struct Room {
  explicit Room(std::string room_id) : id(std::move(room_id)) {}

  struct Conn {
    Attachment* att = nullptr;
    std::shared_ptr<Connection> conn;
    int64_t user_id = 0;
    double live_offset_s = -1;  // last `live_offset` report, -1 = none
  };
  struct Presence {
    std::string username;
    std::string role;
    int64_t connections = 0;
  };

  const std::string id;
  std::mutex op_mu;
  mutable std::mutex mu;
  // guarded by mu (written under op_mu + mu, except remote mirror updates: mu only)
  store::Room row;
  RoomSettings settings;
  std::unordered_map<int64_t, store::Member> members;
  std::vector<store::PlaylistItem> playlist;
  PlaybackSync sync;
  std::map<uint64_t, Conn> conns;        // by attachment id
  std::map<int64_t, Presence> presence;  // by user id: this node's connections
  // Other nodes' connections (cluster mode), by node id then user id, from their `presence`
  // events; dropped when a node goes offline.
  std::map<std::string, std::map<int64_t, Presence>> remote_presence;
  std::string state_origin;  // node whose change produced the current playback state
  uint64_t seq = 0;          // `seq` of the last frame delivered to this node's connections
  bool deleted = false;
  // guarded by op_mu
  std::optional<int64_t> last_presence_ms;  // time of the last presence broadcast (now_ms)
  bool presence_dirty = false;              // a change awaits RoomManager::flush_presence
  std::atomic<bool> share_requested{false};  // another node asked for this node's presence share

  std::vector<PlaylistEntry> entries() const {
    std::vector<PlaylistEntry> e;
    e.reserve(playlist.size());
    for (const auto& i : playlist) e.push_back({i.id, i.kind == "live"});
    return e;
  }
  bool is_live(int64_t item_id) const {
    for (const auto& i : playlist) {
      if (i.id == item_id) return i.kind == "live";
    }
    return false;
  }
  /// Every node's connections merged by user (connections summed).
  std::map<int64_t, Presence> merged_presence() const {
    std::map<int64_t, Presence> all = presence;
    for (const auto& [node, users] : remote_presence) {
      for (const auto& [uid, p] : users) {
        auto [it, fresh] = all.emplace(uid, p);
        if (!fresh) it->second.connections += p.connections;
      }
    }
    return all;
  }
  /// Distinct users connected on any node.
  size_t online_users() const {
    if (remote_presence.empty()) return presence.size();
    return merged_presence().size();
  }
  static json::array presence_json(const std::map<int64_t, Presence>& users) {
    json::array a;
    for (const auto& [uid, p] : users) {
      json::object o;
      o["user_id"] = uid;
      o["username"] = p.username;
      o["role"] = p.role;
      o["connections"] = p.connections;
      a.push_back(std::move(o));
    }
    return a;
  }
  /// All members connected on any node (the `members` of `welcome` and `presence`).
  json::array presence_json() const { return presence_json(merged_presence()); }
  json::object playlist_frame() const {
    json::object o;
    o["type"] = "playlist";
    json::array items;
    for (const auto& i : playlist) items.push_back(to_json(i));
    o["items"] = std::move(items);
    return o;
  }
  json::object room_json() const {
    json::object o;
    o["id"] = id;
    o["name"] = row.name;
    o["settings"] = settings_to_json(settings);
    return o;
  }
};

// ---------------------------------------------------------------------------------------------

Attachment::Attachment(RoomManager* mgr, std::shared_ptr<Room> room, std::string room_id, Identity who,
                       std::shared_ptr<Connection> conn, uint64_t id)
    : mgr_(mgr), room_(std::move(room)), room_id_(std::move(room_id)), who_(std::move(who)),
      conn_(std::move(conn)), id_(id) {}

Attachment::~Attachment() {
  // The last owner is going away, so nobody can race with this read.
  if (!detached_.load()) mgr_->detach(*this);
}

// ---------------------------------------------------------------------------------------------

struct RoomManager::Impl {
  Impl(store::Store& s, cluster::EventBus& b, const RoomsConfig& c, Metrics& m, PasswordFunctions pw,
       std::function<int64_t()> clock)
      : store(s), bus(b), cfg(c), metrics(m), passwords(std::move(pw)), now_fn(std::move(clock)) {
    if (!passwords.hash) {
      passwords.hash = [](std::string_view p) { return auth::hash_password(p); };
    }
    if (!passwords.verify) {
      passwords.verify = [](std::string_view p, std::string_view enc) { return auth::verify_password(enc, p); };
    }
    if (!now_fn) now_fn = [] { return wall_ms(); };
  }

  store::Store& store;
  cluster::EventBus& bus;
  const RoomsConfig& cfg;
  Metrics& metrics;
  PasswordFunctions passwords;
  std::function<int64_t()> now_fn;
  std::atomic<uint64_t> next_attachment{1};

  mutable std::mutex rooms_mu;  // leaf lock
  std::unordered_map<std::string, std::shared_ptr<Room>> rooms;
  // Rooms with a pending presence broadcast (guarded by rooms_mu). Every room whose
  // presence_dirty is set is in here; entries whose flag was cleared meanwhile are dropped by
  // the next flush.
  std::unordered_map<std::string, std::shared_ptr<Room>> dirty_presence;
  std::atomic<bool> coalesce_presence{false};  // set by the first flush_presence call

  cluster::Subscription sub;

  int64_t now() const { return now_fn(); }

  /// Every room loaded on this node (a snapshot).
  std::vector<std::shared_ptr<Room>> loaded_rooms() const {
    std::vector<std::shared_ptr<Room>> out;
    std::lock_guard lk(rooms_mu);
    out.reserve(rooms.size());
    for (const auto& [id, r] : rooms) out.push_back(r);
    return out;
  }

  std::shared_ptr<Room> find(const std::string& id) const {
    std::lock_guard lk(rooms_mu);
    auto it = rooms.find(id);
    return it == rooms.end() ? nullptr : it->second;
  }

  /// The loaded room, reading it from the Store on first use.
  Result<std::shared_ptr<Room>> get_or_load(const std::string& id) {
    if (auto r = find(id)) return r;
    auto row = store.room_by_id(id);
    if (!row) return row.error();
    auto members = store.list_members(id);
    if (!members) return members.error();
    auto items = store.list_items(id);
    if (!items) return items.error();
    auto st = store.room_state(id);
    PlaybackState ps;
    if (st) {
      ps = PlaybackState{st->item_id, st->position_s, st->rate, st->playing, st->updated_at_ms, st->version};
    } else if (st.code() != Errc::not_found) {
      return st.error();
    }
    auto room = std::make_shared<Room>(id);
    room->row = std::move(*row);
    room->settings = parse_settings(room->row.settings_json);
    for (auto& m : *members) room->members[m.user_id] = std::move(m);
    room->playlist = std::move(*items);
    room->sync = PlaybackSync(ps, room->is_live(ps.item_id), room->settings.pause_on_buffering,
                              room->settings.auto_advance);
    std::shared_ptr<Room> loaded;
    bool inserted = false;
    {
      std::lock_guard lk(rooms_mu);
      auto [it, fresh] = rooms.emplace(id, room);
      loaded = it->second;
      inserted = fresh;
    }
    // Other nodes answer with their presence share, so members there are listed here too.
    if (inserted) ask_presence_shares(id);
    return loaded;
  }

  /// Asks the other nodes for their presence share of room `id` ("room:{id}/presence_query").
  void ask_presence_shares(const std::string& id) {
    (void)bus.publish(cluster::Lane::normal, std::string(kTopicPrefix) + id + "/presence_query",
                      std::make_shared<const std::string>("{}"));
  }

  // ---- permissions ----

  /// Effective permissions of `who` in a loaded room (cache); caller holds r.mu.
  Perms perms_locked(const Room& r, const Identity& who) const {
    if (is_global_admin(who)) return kAllPerms;
    auto it = r.members.find(who.user_id);
    if (it == r.members.end() || it->second.banned) return 0;
    const auto& m = it->second;
    return effective_permissions(m.role, m.grants, m.revokes, r.settings.guests_can_control);
  }

  std::string role_locked(const Room& r, const Identity& who) const {
    auto it = r.members.find(who.user_id);
    if (it != r.members.end() && !(is_global_admin(who) && role_rank(it->second.role) < role_rank(kRoomAdmin))) {
      return it->second.role;
    }
    return is_global_admin(who) ? std::string(kRoomAdmin) : std::string();
  }

  MemberInfo member_info(const store::Member& m, const RoomSettings& s, int64_t connections) const {
    MemberInfo i;
    i.user_id = m.user_id;
    i.username = m.username;
    i.role = m.role;
    i.permissions = m.banned ? 0 : effective_permissions(m.role, m.grants, m.revokes, s.guests_can_control);
    i.grants = m.grants;
    i.revokes = m.revokes;
    i.banned = m.banned;
    i.kicked_until_ms = m.kicked_until_ms;
    i.joined_at_ms = m.joined_at_ms;
    i.connections = connections;
    return i;
  }

  int64_t connections_of(const std::shared_ptr<Room>& r, int64_t user_id) const {
    if (!r) return 0;
    std::lock_guard lk(r->mu);
    auto it = r->presence.find(user_id);
    return it == r->presence.end() ? 0 : it->second.connections;
  }

  /// Fresh (Store) view of `who` in `room_id` for HTTP operations: the member row (nullopt for a
  /// global admin who is not a member) and the effective permissions. Errors: forbidden when not
  /// a member or banned, unavailable.
  struct Actor {
    std::optional<store::Member> member;
    Perms perms = 0;
    int rank = -1;
  };
  Result<Actor> actor(const store::Room& row, const Identity& who) {
    Actor a;
    auto m = store.member(row.id, who.user_id);
    if (m) {
      a.member = *m;
    } else if (m.code() != Errc::not_found) {
      return m.error();
    }
    if (is_global_admin(who)) {
      a.perms = kAllPerms;
      a.rank = std::max(role_rank(kRoomAdmin), a.member ? role_rank(a.member->role) : -1);
      return a;
    }
    if (!a.member) return Error{Errc::forbidden, "not a member of this room"};
    if (a.member->banned) return Error{Errc::forbidden, "banned from this room"};
    a.perms = effective_permissions(a.member->role, a.member->grants, a.member->revokes,
                                    parse_settings(row.settings_json).guests_can_control);
    a.rank = role_rank(a.member->role);
    return a;
  }

  // ---- publishing ----

  /// Serializes `frame` once and publishes it; each node adds its delivery `seq` (stamped()).
  /// Caller holds r.op_mu and not r.mu. Errors as EventBus::publish (logged here too).
  Status publish(Room& r, cluster::Lane lane, const std::string& topic_suffix, json::object frame) {
    auto st = bus.publish(lane, std::string(kTopicPrefix) + r.id + topic_suffix, to_frame(frame));
    if (!st) spdlog::warn("room {}: event not published: {}", r.id, st.error().message());
    return st;
  }

  /// The error of an HTTP operation whose change was stored but whose critical event the bus
  /// refused (cluster mode: Redis away and the critical queue full): 503, retry later.
  static Error not_delivered(const Status& st) {
    return Error{Errc::unavailable, "saved, but other nodes could not be told yet (" + st.error().message() +
                                        "); retry later"};
  }

  /// `payload` (a JSON object text) with `"seq":N` put first, N = this node's next delivery
  /// number of the room: every connection sees seq increase, whichever node an event came from.
  /// Caller holds r.mu.
  static std::shared_ptr<const std::string> stamped(Room& r, const std::string& payload) {
    auto out = std::make_shared<std::string>();
    out->reserve(payload.size() + 24);
    *out += "{\"seq\":";
    *out += std::to_string(++r.seq);
    if (payload.size() > 2) *out += ',';
    out->append(payload, payload.empty() ? 0 : 1);
    return out;
  }

  json::object state_frame(const PlaybackState& s, const Identity* by, std::string_view reason) const {
    json::object o;
    o["type"] = "state";
    o["state"] = to_json(s);
    o["by"] = by_json(by);
    o["reason"] = reason;
    o["server_time_ms"] = now();
    return o;
  }

  json::object live_frame() const {
    json::object o;
    o["type"] = "live";
    o["target_offset_s"] = cfg.live_target_offset_secs;
    return o;
  }

  /// Whether a presence change of `r` is to be broadcast now (then records the broadcast time);
  /// otherwise marks the room for flush_presence. Caller holds r->op_mu (r->mu may be held too).
  bool take_presence_slot(const std::shared_ptr<Room>& r) {
    const int64_t t = now();
    const bool due = !coalesce_presence.load(std::memory_order_relaxed) || !r->last_presence_ms ||
                     t < *r->last_presence_ms || t - *r->last_presence_ms >= RoomManager::kPresenceIntervalMs;
    if (due) {
      r->last_presence_ms = t;
      r->presence_dirty = false;
      return true;
    }
    if (!r->presence_dirty) {
      r->presence_dirty = true;
      std::lock_guard lk(rooms_mu);
      dirty_presence.emplace(r->id, r);
    }
    return false;
  }

  /// Drops `r`'s entry from dirty_presence (if it is still `r`'s).
  void forget_dirty(const std::shared_ptr<Room>& r) {
    std::lock_guard lk(rooms_mu);
    auto it = dirty_presence.find(r->id);
    if (it != dirty_presence.end() && it->second == r) dirty_presence.erase(it);
  }

  /// This node's share of the room's presence, published on "room:{id}/presence"; every node
  /// merges the shares and sends its connections `{"type":"presence","members":[all]}`.
  json::object presence_frame(const Room& r) const {
    json::object o;
    o["type"] = "presence";
    o["node"] = bus.node_id();
    o["members"] = Room::presence_json(r.presence);
    return o;
  }

  /// Publishes `r`'s presence share (caller holds r.op_mu, not r.mu).
  void publish_presence(Room& r, json::object frame) { publish(r, cluster::Lane::normal, "/presence", std::move(frame)); }

  /// The merged presence frame for this node's connections (caller holds r.mu).
  std::shared_ptr<const std::string> merged_presence_frame(Room& r) const {
    json::object o;
    o["type"] = "presence";
    o["members"] = r.presence_json();
    return stamped(r, json::serialize(o));
  }

  // ---- playback state persistence (write-behind) ----
  // A change is applied and broadcast at once; the writer thread stores the latest state of
  // each changed room. Changes made while a write runs are coalesced (only the newest version
  // of a room is written next), so a busy room costs one database write per write time, not
  // one per command, and no I/O thread waits for the database on a state change.
  std::mutex state_mu;
  std::condition_variable state_work_cv;  // writer: something to write, or stop
  std::condition_variable state_done_cv;  // flush_state_writes(): a batch finished
  std::unordered_map<std::string, store::RoomState> dirty_states;  // room id -> newest state
  bool state_writing = false;
  bool state_writer_stop = false;
  std::thread state_writer;

  void save_state(const Room& r, const PlaybackState& s) {
    store::RoomState rs{r.id, s.item_id, s.position_s, s.rate, s.playing, s.updated_at_ms, s.version};
    {
      std::lock_guard lk(state_mu);
      auto [it, fresh] = dirty_states.try_emplace(r.id, rs);
      if (!fresh && it->second.version <= rs.version) it->second = std::move(rs);
    }
    state_work_cv.notify_one();
  }

  void state_writer_main() {
    std::unique_lock lk(state_mu);
    for (;;) {
      state_work_cv.wait(lk, [&] { return state_writer_stop || !dirty_states.empty(); });
      if (dirty_states.empty()) return;  // stopping, nothing left
      auto batch = std::exchange(dirty_states, {});
      state_writing = true;
      lk.unlock();
      for (const auto& [id, rs] : batch) {
        auto st = store.save_room_state(rs);
        if (!st && st.code() != Errc::not_found) {  // not_found: the room was deleted meanwhile
          spdlog::warn("room {}: playback state not saved: {}", id, st.error().message());
        }
      }
      lk.lock();
      state_writing = false;
      state_done_cv.notify_all();
    }
  }

  void flush_state_writes() {
    std::unique_lock lk(state_mu);
    state_done_cv.wait(lk, [&] { return dirty_states.empty() && !state_writing; });
  }

  void stop_state_writer() {
    {
      std::lock_guard lk(state_mu);
      if (!state_writer.joinable()) return;
      state_writer_stop = true;
    }
    state_work_cv.notify_one();
    state_writer.join();
  }

  /// After a state change made under op_mu: persist, broadcast `state` (+ `live` when the new
  /// item is live and the item changed).
  void emit_state(Room& r, const PlaybackState& s, const Identity* by, std::string_view reason,
                  bool item_changed, bool live) {
    save_state(r, s);
    publish(r, cluster::Lane::normal, "/state", state_frame(s, by, reason));
    if (item_changed && live) publish(r, cluster::Lane::normal, "", live_frame());
  }

  // ---- event delivery (EventBus handler) ----

  void on_event(const cluster::Event& ev) {
    std::string_view topic = ev.topic;
    if (!topic.starts_with(kTopicPrefix)) return;
    topic.remove_prefix(kTopicPrefix.size());
    auto slash = topic.find('/');
    std::string room_id(topic.substr(0, slash));
    std::string_view rest = slash == std::string_view::npos ? std::string_view{} : topic.substr(slash);
    auto room = find(room_id);
    if (!room) return;
    const bool remote = ev.id.node_id != bus.node_id();

    if (rest.empty() || rest == "/state") {
      std::lock_guard lk(room->mu);
      if (rest == "/state") {
        if (remote && !apply_remote_state(*room, *ev.payload, ev.id.node_id)) return;
        if (!remote) room->state_origin = ev.id.node_id;
      } else if (remote && !apply_remote(*room, *ev.payload)) {
        return;
      }
      if (room->conns.empty()) return;
      auto frame = stamped(*room, *ev.payload);
      for (auto& [id, c] : room->conns) c.conn->send(frame);
      return;
    }
    if (rest == "/presence") {
      std::lock_guard lk(room->mu);
      if (remote && !apply_remote_presence(*room, ev.id.node_id, *ev.payload)) return;
      if (room->conns.empty()) return;
      auto frame = merged_presence_frame(*room);
      for (auto& [id, c] : room->conns) c.conn->send(frame);
      return;
    }
    if (rest == "/presence_query") {  // a node loaded the room: share this node's presence
      if (remote) request_presence_share(room);
      return;
    }
    if (rest == "/deleted") {
      {
        std::lock_guard lk(room->mu);
        room->deleted = true;
        for (auto& [id, c] : room->conns) {
          c.conn->send(ev.payload);
          c.conn->close(kCloseRoomDeleted, "room deleted");
        }
      }
      std::lock_guard lk(rooms_mu);
      auto it = rooms.find(room_id);
      if (it != rooms.end() && it->second == room) rooms.erase(it);
      return;
    }
    constexpr std::string_view kUser = "/user/";
    if (rest.starts_with(kUser)) {  // "/user/{uid}/kick"
      std::string_view tail = rest.substr(kUser.size());
      auto s2 = tail.find('/');
      if (s2 == std::string_view::npos || tail.substr(s2) != "/kick") return;
      int64_t uid = 0;
      try {
        uid = std::stoll(std::string(tail.substr(0, s2)));
      } catch (...) {
        return;
      }
      std::lock_guard lk(room->mu);
      if (remote) apply_remote_kick(*room, uid, *ev.payload);
      std::shared_ptr<const std::string> frame;
      for (auto& [id, c] : room->conns) {
        if (c.user_id != uid) continue;
        if (!frame) frame = stamped(*room, *ev.payload);
        c.conn->send(frame);
        c.conn->close(kCloseKicked, "kicked");
      }
    }
  }

  /// Marks `room` so that the next flush_presence publishes this node's presence share.
  void request_presence_share(const std::shared_ptr<Room>& room) {
    {
      std::lock_guard lk(room->mu);
      if (room->conns.empty()) return;
    }
    room->share_requested.store(true);
    std::lock_guard lk(rooms_mu);
    dirty_presence.emplace(room->id, room);
  }

  /// Mirrors another node's `state` event (caller holds r.mu). Versions order the states; two
  /// nodes that produced the same version at once are ordered by node id (the larger wins), so
  /// every node keeps the same state. Returns false for an event that is not newer (dropped).
  bool apply_remote_state(Room& r, const std::string& payload, const std::string& origin) {
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_object()) return false;
    const auto* s = v.get_object().if_contains("state");
    if (!s || !s->is_object()) return false;
    const auto& so = s->get_object();
    PlaybackState ps;
    try {
      ps.item_id = json::value_to<int64_t>(so.at("item_id"));
      ps.position_s = json::value_to<double>(so.at("position_s"));
      ps.rate = json::value_to<double>(so.at("rate"));
      ps.playing = so.at("playing").as_bool();
      ps.updated_at_ms = json::value_to<int64_t>(so.at("updated_at_ms"));
      ps.version = json::value_to<uint64_t>(so.at("version"));
    } catch (...) {
      return false;
    }
    const uint64_t have = r.sync.state().version;
    if (ps.version < have || (ps.version == have && origin <= r.state_origin)) return false;
    r.sync = PlaybackSync(ps, r.is_live(ps.item_id), r.settings.pause_on_buffering, r.settings.auto_advance);
    r.state_origin = origin;
    return true;
  }

  /// Records another node's presence share (caller holds r.mu). False when malformed.
  bool apply_remote_presence(Room& r, const std::string& node, const std::string& payload) {
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_object()) return false;
    const auto* members = v.get_object().if_contains("members");
    if (!members || !members->is_array()) return false;
    std::map<int64_t, Room::Presence> users;
    try {
      for (const auto& mv : members->get_array()) {
        const auto& mo = mv.as_object();
        Room::Presence p;
        p.username = json::value_to<std::string>(mo.at("username"));
        p.role = json::value_to<std::string>(mo.at("role"));
        p.connections = json::value_to<int64_t>(mo.at("connections"));
        users[json::value_to<int64_t>(mo.at("user_id"))] = std::move(p);
      }
    } catch (...) {
      return false;
    }
    if (users.empty()) r.remote_presence.erase(node);
    else r.remote_presence[node] = std::move(users);
    return true;
  }

  /// Mirrors another node's broadcast into this node's copy of the room (caller holds r.mu).
  /// Returns false when the event is older than what this node has seen (then it is dropped).
  bool apply_remote(Room& r, const std::string& payload) {
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_object()) return true;
    const auto& o = v.get_object();
    const auto* type = o.if_contains("type");
    if (!type || !type->is_string()) return true;
    const auto& t = type->get_string();
    if (t == "playlist") {
      const auto* items = o.if_contains("items");
      if (!items || !items->is_array()) return true;
      std::vector<store::PlaylistItem> list;
      try {
        for (const auto& iv : items->get_array()) {
          const auto& io = iv.as_object();
          store::PlaylistItem i;
          i.id = json::value_to<int64_t>(io.at("id"));
          i.room_id = r.id;
          i.kind = json::value_to<std::string>(io.at("kind"));
          i.url = json::value_to<std::string>(io.at("url"));
          i.title = json::value_to<std::string>(io.at("title"));
          i.position = json::value_to<int64_t>(io.at("position"));
          i.added_by = json::value_to<int64_t>(io.at("added_by"));
          list.push_back(std::move(i));
        }
      } catch (...) {
        return true;
      }
      r.playlist = std::move(list);
    } else if (t == "member") {
      try {
        const auto& mo = o.at("member").as_object();
        int64_t uid = json::value_to<int64_t>(mo.at("user_id"));
        auto& m = r.members[uid];
        m.room_id = r.id;
        m.user_id = uid;
        m.username = json::value_to<std::string>(mo.at("username"));
        m.role = json::value_to<std::string>(mo.at("role"));
        auto names = [&](const char* key) {
          std::vector<std::string> v;
          for (const auto& n : mo.at(key).as_array()) v.push_back(json::value_to<std::string>(n));
          auto p = perms_from_names(v);
          return p ? *p : Perms{0};
        };
        m.grants = names("grants");
        m.revokes = names("revokes");
        m.banned = mo.at("banned").as_bool();
        m.kicked_until_ms = json::value_to<int64_t>(mo.at("kicked_until_ms"));
        if (auto p = r.presence.find(uid); p != r.presence.end()) p->second.role = m.role;
      } catch (...) {
      }
    } else if (t == "room") {
      try {
        const auto& ro = o.at("room").as_object();
        r.row.name = json::value_to<std::string>(ro.at("name"));
        auto s = parse_settings(json::serialize(ro.at("settings")));
        r.settings = s;
        r.row.settings_json = serialize_settings(s);
      } catch (...) {
      }
    }
    return true;
  }

  void apply_remote_kick(Room& r, int64_t uid, const std::string& payload) {
    auto it = r.members.find(uid);
    if (it == r.members.end()) return;
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec);
    if (ec || !v.is_object()) return;
    const auto& o = v.get_object();
    const auto* reason = o.if_contains("reason");
    const auto* until = o.if_contains("until_ms");
    if (reason && reason->is_string() && reason->get_string() == "banned") it->second.banned = true;
    if (until && until->is_int64()) it->second.kicked_until_ms = until->get_int64();
  }

  // ---- playlist changes shared by the WebSocket and HTTP paths (caller holds r.op_mu) ----

  Result<store::PlaylistItem> add_item_locked(Room& r, const Identity& who, const std::string& kind,
                                              const std::string& url, const std::string& title) {
    if (auto st = validate_playlist_item(kind, url, title); !st) return st.error();
    store::PlaylistItem item;
    item.room_id = r.id;
    item.kind = kind;
    item.url = url;
    item.title = title.empty() ? url : title;
    item.added_by = who.user_id;
    item.created_at_ms = now();
    auto added = store.add_item(item);
    if (!added) return added.error();
    json::object frame;
    bool selected = false;
    PlaybackState s;
    {
      std::lock_guard lk(r.mu);
      r.playlist.push_back(*added);
      frame = r.playlist_frame();
      if (r.sync.state().item_id == 0) {
        r.sync.replace_current(added->id, kind == "live", now());
        selected = true;
        s = r.sync.state();
      }
    }
    publish(r, cluster::Lane::normal, "", std::move(frame));
    if (selected) emit_state(r, s, nullptr, "auto", true, kind == "live");
    return *added;
  }

  Status remove_item_locked(Room& r, int64_t item_id) {
    {
      std::lock_guard lk(r.mu);
      auto it = std::find_if(r.playlist.begin(), r.playlist.end(), [&](const auto& i) { return i.id == item_id; });
      if (it == r.playlist.end()) return Error{Errc::not_found, "no such playlist item"};
    }
    if (auto st = store.remove_item(r.id, item_id); !st) return st;
    json::object frame;
    bool replaced = false;
    bool live = false;
    PlaybackState s;
    {
      std::lock_guard lk(r.mu);
      auto it = std::find_if(r.playlist.begin(), r.playlist.end(), [&](const auto& i) { return i.id == item_id; });
      if (it == r.playlist.end()) return ok_status();
      size_t idx = static_cast<size_t>(it - r.playlist.begin());
      r.playlist.erase(it);
      frame = r.playlist_frame();
      if (r.sync.state().item_id == item_id) {
        int64_t next_id = idx < r.playlist.size() ? r.playlist[idx].id : 0;
        live = next_id != 0 && r.playlist[idx].kind == "live";
        r.sync.replace_current(next_id, live, now());
        replaced = true;
        s = r.sync.state();
      }
    }
    publish(r, cluster::Lane::normal, "", std::move(frame));
    if (replaced) emit_state(r, s, nullptr, "auto", true, live);
    return ok_status();
  }

  Status reorder_locked(Room& r, const std::vector<int64_t>& ids) {
    {
      std::lock_guard lk(r.mu);
      std::vector<int64_t> have, want(ids);
      for (const auto& i : r.playlist) have.push_back(i.id);
      std::sort(have.begin(), have.end());
      std::sort(want.begin(), want.end());
      if (have != want) return Error{Errc::malformed, "item_ids must list every playlist item exactly once"};
    }
    if (auto st = store.reorder_items(r.id, ids); !st) return st;
    auto items = store.list_items(r.id);
    json::object frame;
    {
      std::lock_guard lk(r.mu);
      if (items) {
        r.playlist = std::move(*items);
      } else {  // reorder the cache ourselves
        std::vector<store::PlaylistItem> list;
        for (size_t k = 0; k < ids.size(); ++k) {
          for (auto& i : r.playlist) {
            if (i.id == ids[k]) {
              i.position = static_cast<int64_t>(k);
              list.push_back(i);
            }
          }
        }
        r.playlist = std::move(list);
      }
      frame = r.playlist_frame();
    }
    publish(r, cluster::Lane::normal, "", std::move(frame));
    return ok_status();
  }

  // ---- WebSocket message handlers ----
  void handle(Attachment& a, const json::object& msg, std::string_view type, const json::value* ref);

  // ---- HTTP helpers ----
  enum class KickKind { kick, ban, unban };
  Status kick_like(const Identity& who, const std::string& room_id, int64_t user_id, KickKind kind,
                   int64_t cooldown_secs);
  Result<std::shared_ptr<Room>> room_with_perm(const Identity& who, const std::string& room_id, Perms need);

  /// A change by `who` to member `user_id`: the room with its op lock held, and the target's
  /// row, after the manage_members and rank checks (may_act_on).
  struct MemberOp {
    std::shared_ptr<Room> room;
    std::unique_lock<std::mutex> op;
    store::Member target;
    int actor_rank = -1;
  };
  Result<MemberOp> begin_member_op(const Identity& who, const std::string& room_id, int64_t user_id);
  Result<PublishKeyInfo> publish_key_impl(const Identity& who, const std::string& room_id, bool rotate);
};

// ---------------------------------------------------------------------------------------------

RoomManager::RoomManager(store::Store& store, cluster::EventBus& bus, const RoomsConfig& cfg, Metrics& metrics,
                         PasswordFunctions passwords, std::function<int64_t()> now_ms)
    : impl_(std::make_unique<Impl>(store, bus, cfg, metrics, std::move(passwords), std::move(now_ms))) {
  impl_->state_writer = std::thread([impl = impl_.get()] { impl->state_writer_main(); });
  impl_->sub = bus.subscribe(std::string(kTopicPrefix), [impl = impl_.get()](const cluster::Event& ev) {
    impl->on_event(ev);
  });
}

RoomManager::~RoomManager() {
  impl_->sub.reset();
  impl_->stop_state_writer();  // writes what is pending first
}

void RoomManager::flush_state_writes() { impl_->flush_state_writes(); }

Status RoomManager::check_access(const std::string& room_id, const Identity& who) {
  auto& I = *impl_;
  if (!I.find(room_id)) {
    auto row = I.store.room_by_id(room_id);
    if (!row) return row.error();
  }
  auto m = I.store.member(room_id, who.user_id);
  if (!m && m.code() != Errc::not_found) return m.error();
  if (m) {
    if (m->banned) return Error{Errc::forbidden, "banned from this room"};
    if (m->kicked_until_ms > I.now()) return Error{Errc::forbidden, "kicked: wait before rejoining"};
  } else if (!is_global_admin(who)) {
    return Error{Errc::forbidden, "not a member of this room"};
  }
  return ok_status();
}

RoomManager::Stats RoomManager::stats() const {
  const auto rooms = impl_->loaded_rooms();
  Stats s;
  s.rooms_loaded = static_cast<int64_t>(rooms.size());
  for (auto& r : rooms) {
    std::lock_guard lk(r->mu);
    s.connections += static_cast<int64_t>(r->conns.size());
    s.users_online += static_cast<int64_t>(r->online_users());
  }
  return s;
}

Result<std::shared_ptr<Attachment>> RoomManager::attach(const std::string& room_id, const Identity& who,
                                                        std::shared_ptr<Connection> conn) {
  auto& I = *impl_;
  auto room_r = I.get_or_load(room_id);
  if (!room_r) return room_r.error();
  auto room = *room_r;
  if (auto st = check_access(room_id, who); !st) return st.error();
  auto m = I.store.member(room_id, who.user_id);
  if (!m && m.code() != Errc::not_found) return m.error();

  std::lock_guard op(room->op_mu);
  auto chat = I.store.recent_chat(room_id, static_cast<int64_t>(kWelcomeChat));
  std::shared_ptr<Attachment> att(
      new Attachment(this, room, room_id, who, conn, I.next_attachment.fetch_add(1)));
  std::optional<json::object> presence;
  {
    std::lock_guard lk(room->mu);
    if (room->deleted) {
      att->detached_ = true;
      return Error{Errc::not_found, "room deleted"};
    }
    if (m) room->members[who.user_id] = *m;
    const std::string role = I.role_locked(*room, who);
    room->conns[att->id()] = Room::Conn{att.get(), conn, who.user_id, -1};
    auto& p = room->presence[who.user_id];
    p.username = who.username;
    p.role = role;
    ++p.connections;

    json::object w;
    w["type"] = "welcome";
    w["v"] = 1;
    w["server_time_ms"] = I.now();
    w["seq"] = room->seq;
    w["room"] = room->room_json();
    json::object you;
    you["user_id"] = who.user_id;
    you["username"] = who.username;
    you["role"] = role;
    json::array perms;
    for (auto& n : perm_names(I.perms_locked(*room, who))) perms.emplace_back(n);
    you["permissions"] = std::move(perms);
    w["you"] = std::move(you);
    w["state"] = to_json(room->sync.state());
    json::object pl;
    json::array items;
    for (const auto& i : room->playlist) items.push_back(to_json(i));
    pl["items"] = std::move(items);
    w["playlist"] = std::move(pl);
    w["members"] = room->presence_json();
    json::array ch;
    if (chat) {
      for (const auto& c : *chat) ch.push_back(to_json(c));
    }
    w["chat"] = std::move(ch);
    conn->send(to_frame(w));
    if (room->sync.current_live()) conn->send(to_frame(I.live_frame()));
    if (I.take_presence_slot(room)) presence = I.presence_frame(*room);
  }
  if (presence) I.publish_presence(*room, std::move(*presence));
  return att;
}

void RoomManager::detach(Attachment& a) {
  auto& I = *impl_;
  auto& room = *a.room_;
  std::lock_guard op(room.op_mu);
  std::optional<json::object> presence;
  bool changed = false;
  PlaybackState s;
  {
    std::lock_guard lk(room.mu);
    if (a.detached_.load()) return;
    a.detached_.store(true);
    room.conns.erase(a.id());
    if (room.deleted) return;
    auto it = room.presence.find(a.identity().user_id);
    if (it != room.presence.end() && --it->second.connections <= 0) room.presence.erase(it);
    changed = room.sync.remove_connection(a.id(), I.now());
    s = room.sync.state();
    if (I.take_presence_slot(a.room_)) presence = I.presence_frame(room);
  }
  if (changed) I.emit_state(room, s, nullptr, "buffering", false, false);
  if (presence) I.publish_presence(room, std::move(*presence));
}

void RoomManager::flush_presence() {
  auto& I = *impl_;
  I.coalesce_presence.store(true, std::memory_order_relaxed);
  std::vector<std::shared_ptr<Room>> pending;
  {
    std::lock_guard lk(I.rooms_mu);
    if (I.dirty_presence.empty()) return;
    pending.reserve(I.dirty_presence.size());
    for (auto& [id, r] : I.dirty_presence) pending.push_back(r);
  }
  for (auto& r : pending) {
    std::lock_guard op(r->op_mu);
    const bool share = r->share_requested.exchange(false);
    if (!r->presence_dirty && !share) {  // broadcast meanwhile by attach/detach
      I.forget_dirty(r);
      continue;
    }
    const int64_t t = I.now();
    if (!share && r->last_presence_ms && t >= *r->last_presence_ms && t - *r->last_presence_ms < kPresenceIntervalMs) {
      continue;  // still inside the interval: next flush
    }
    json::object presence;
    bool deleted = false;
    {
      std::lock_guard lk(r->mu);
      deleted = r->deleted;
      if (!deleted) presence = I.presence_frame(*r);
    }
    r->presence_dirty = false;
    I.forget_dirty(r);
    if (deleted) continue;
    r->last_presence_ms = t;
    I.publish_presence(*r, std::move(presence));
  }
}

void RoomManager::stop() {
  const auto rooms = impl_->loaded_rooms();
  for (auto& r : rooms) {
    std::lock_guard lk(r->mu);
    for (auto& [id, c] : r->conns) c.conn->close(kCloseGoingAway, "server shutting down");
  }
  impl_->flush_state_writes();
}

// ---- WebSocket messages ----

namespace {

/// A non-negative integer JSON number (int64, uint64 or an integral double).
std::optional<uint64_t> as_u64(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) {
    if (v->get_int64() < 0) return std::nullopt;
    return static_cast<uint64_t>(v->get_int64());
  }
  if (v->is_double()) {
    double d = v->get_double();
    if (d >= 0 && d <= 9.007199254740992e15 && std::floor(d) == d) return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

std::optional<int64_t> as_i64(const json::value* v) {
  auto u = as_u64(v);
  if (!u || *u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(*u);
}

std::optional<double> as_num(const json::value* v) {
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

const char* error_code_for(Errc e) {
  switch (e) {
    case Errc::conflict: return "stale_version";
    case Errc::not_found: return "not_found";
    case Errc::forbidden: return "forbidden";
    case Errc::unavailable:
    case Errc::io_error: return "unavailable";
    case Errc::too_large: return "too_large";
    case Errc::rate_limited: return "rate_limited";
    default: return "bad_message";
  }
}

}  // namespace

void RoomManager::on_message(Attachment& a, std::string_view json_text) {
  auto& conn = *a.connection();
  boost::system::error_code ec;
  json::value v = json::parse(json_text, ec);
  if (ec) {
    conn.send(make_error_frame("bad_json", "the frame is not valid JSON"));
    return;
  }
  if (!v.is_object()) {
    conn.send(make_error_frame("bad_message", "a message must be a JSON object"));
    return;
  }
  const auto& msg = v.get_object();
  const json::value* ref = msg.if_contains("ref");
  if (ref && !ref->is_string() && !ref->is_number()) ref = nullptr;
  const auto* type = msg.if_contains("type");
  if (!type || !type->is_string()) {
    conn.send(make_error_frame("bad_message", "missing string field \"type\"", ref));
    return;
  }
  impl_->handle(a, msg, std::string_view(type->get_string()), ref);
}

void RoomManager::Impl::handle(Attachment& a, const json::object& msg, std::string_view type,
                               const json::value* ref) {
  auto& conn = *a.connection();
  auto& r = *a.room_;
  const Identity& who = a.identity();
  auto fail = [&](std::string_view code, std::string_view message) {
    conn.send(make_error_frame(code, message, ref));
  };

  if (type == "ping") {
    auto t = as_num(msg.if_contains("t"));
    if (!t) return fail("bad_message", "ping needs a number \"t\"");
    json::object o;
    o["type"] = "pong";
    o["t"] = msg.at("t");
    o["server_time_ms"] = now();
    if (ref) o["ref"] = *ref;
    conn.send(to_frame(o));
    return;
  }

  enum class Kind { play, pause, seek, rate, next, set_item, buffering, ended, chat, playlist_add,
                    playlist_remove, playlist_move, live_offset };
  static const std::unordered_map<std::string_view, Kind> kKinds{
      {"play", Kind::play}, {"pause", Kind::pause}, {"seek", Kind::seek}, {"rate", Kind::rate},
      {"next", Kind::next}, {"set_item", Kind::set_item}, {"buffering", Kind::buffering},
      {"ended", Kind::ended}, {"chat", Kind::chat}, {"playlist_add", Kind::playlist_add},
      {"playlist_remove", Kind::playlist_remove}, {"playlist_move", Kind::playlist_move},
      {"live_offset", Kind::live_offset}};
  auto kit = kKinds.find(type);
  if (kit == kKinds.end()) return fail("unknown_type", "unknown message type \"" + std::string(type) + "\"");
  const Kind kind = kit->second;

  // Parse and validate the fields before taking any lock.
  std::optional<uint64_t> version;
  std::optional<double> position;
  double rate = 1;
  int64_t item_id = 0;
  bool flag = false;
  std::string text, kind_s, url, title;
  std::vector<int64_t> ids;
  double seconds = 0;
  Perms need = 0;
  switch (kind) {
    case Kind::play:
    case Kind::pause:
    case Kind::seek:
    case Kind::rate:
    case Kind::next:
    case Kind::set_item:
      version = as_u64(msg.if_contains("version"));
      if (!version) return fail("bad_message", "missing non-negative integer \"version\"");
      need = kind == Kind::seek ? kSeek : kControlPlayback;
      if (const auto* p = msg.if_contains("position_s"); p && !p->is_null()) {
        position = as_num(p);
        if (!position) return fail("bad_message", "\"position_s\" must be a number");
      }
      if (kind == Kind::seek && !position) return fail("bad_message", "seek needs \"position_s\"");
      if (kind == Kind::rate) {
        auto rv = as_num(msg.if_contains("rate"));
        if (!rv) return fail("bad_message", "rate needs a number \"rate\"");
        rate = *rv;
      }
      if (kind == Kind::set_item) {
        auto id = as_i64(msg.if_contains("item_id"));
        if (!id) return fail("bad_message", "set_item needs an integer \"item_id\"");
        item_id = *id;
      }
      break;
    case Kind::buffering: {
      const auto* b = msg.if_contains("buffering");
      if (!b || !b->is_bool()) return fail("bad_message", "buffering needs a boolean \"buffering\"");
      flag = b->get_bool();
      break;
    }
    case Kind::ended:
    case Kind::playlist_remove: {
      auto id = as_i64(msg.if_contains("item_id"));
      if (!id) return fail("bad_message", "missing integer \"item_id\"");
      item_id = *id;
      if (kind == Kind::playlist_remove) need = kManagePlaylist;
      break;
    }
    case Kind::chat: {
      const auto* t = msg.if_contains("text");
      if (!t || !t->is_string()) return fail("bad_message", "chat needs a string \"text\"");
      text = std::string(t->get_string());
      if (auto st = validate_chat_text(text); !st) return fail("bad_message", st.error().detail);
      need = kChat;
      break;
    }
    case Kind::playlist_add: {
      const auto* k = msg.if_contains("kind");
      const auto* u = msg.if_contains("url");
      const auto* t = msg.if_contains("title");
      if (!k || !k->is_string() || !u || !u->is_string()) {
        return fail("bad_message", "playlist_add needs strings \"kind\" and \"url\"");
      }
      if (t && !t->is_null() && !t->is_string()) return fail("bad_message", "\"title\" must be a string");
      kind_s = std::string(k->get_string());
      url = std::string(u->get_string());
      if (t && t->is_string()) title = std::string(t->get_string());
      if (auto st = validate_playlist_item(kind_s, url, title); !st) return fail("bad_message", st.error().detail);
      need = kManagePlaylist;
      break;
    }
    case Kind::playlist_move: {
      const auto* arr = msg.if_contains("item_ids");
      if (!arr || !arr->is_array()) return fail("bad_message", "playlist_move needs an array \"item_ids\"");
      for (const auto& e : arr->get_array()) {
        auto id = as_i64(&e);
        if (!id) return fail("bad_message", "\"item_ids\" must hold integers");
        ids.push_back(*id);
      }
      need = kManagePlaylist;
      break;
    }
    case Kind::live_offset: {
      auto s = as_num(msg.if_contains("seconds"));
      if (!s || !std::isfinite(*s) || *s < 0 || *s > 3600) {
        return fail("bad_message", "live_offset needs \"seconds\" in 0..3600");
      }
      seconds = *s;
      break;
    }
  }

  std::lock_guard op(r.op_mu);
  PlaybackState s;
  Status result = ok_status();
  bool state_changed = false;
  bool item_changed = false;
  bool live = false;
  std::string_view reason;
  const Identity* by = &who;
  {
    std::lock_guard lk(r.mu);
    if (a.detached_ || r.deleted) return;
    if (need && (perms_locked(r, who) & need) != need) {
      return fail("forbidden", "you lack the permission \"" + std::string(perm_name(need)) + "\"");
    }
    const int64_t t = now();
    const int64_t before_item = r.sync.state().item_id;
    switch (kind) {
      case Kind::play: result = r.sync.play(*version, position, t); reason = "play"; break;
      case Kind::pause: result = r.sync.pause(*version, position, t); reason = "pause"; break;
      case Kind::seek: result = r.sync.seek(*version, *position, t); reason = "seek"; break;
      case Kind::rate: result = r.sync.set_rate(*version, rate, t); reason = "rate"; break;
      case Kind::next: {
        auto e = r.entries();
        result = r.sync.next(*version, e, t);
        reason = "next";
        break;
      }
      case Kind::set_item: {
        auto e = r.entries();
        result = r.sync.set_item(*version, item_id, e, t);
        reason = "set_item";
        break;
      }
      case Kind::buffering:
        state_changed = r.sync.set_buffering(a.id(), flag, t);
        reason = "buffering";
        break;
      case Kind::ended: {
        auto e = r.entries();
        auto out = r.sync.ended(item_id, e, t);
        state_changed = out != EndedOutcome::ignored;
        reason = out == EndedOutcome::advanced ? "auto" : "ended";
        by = nullptr;
        break;
      }
      case Kind::live_offset:
        if (auto it = r.conns.find(a.id()); it != r.conns.end()) it->second.live_offset_s = seconds;
        return;
      default:
        break;
    }
    if (!result) {
      if (result.code() == Errc::conflict) {
        json::object o;
        o["type"] = "error";
        o["code"] = "stale_version";
        o["message"] = "the state changed since version " + std::to_string(*version);
        if (ref) o["ref"] = *ref;
        o["state"] = to_json(r.sync.state());
        conn.send(to_frame(o));
        return;
      }
      return fail(error_code_for(result.code()), result.error().detail);
    }
    if (!reason.empty() && kind != Kind::buffering && kind != Kind::ended) state_changed = true;
    s = r.sync.state();
    item_changed = s.item_id != before_item || kind == Kind::set_item;
    live = r.sync.current_live();
  }

  switch (kind) {
    case Kind::chat: {
      store::ChatMessage m;
      m.room_id = r.id;
      m.user_id = who.user_id;
      m.username = who.username;
      m.text = text;
      m.created_at_ms = now();
      auto added = store.add_chat(m, std::max<int64_t>(1, cfg.chat_history));
      if (!added) return fail("unavailable", "chat message not stored: " + added.error().message());
      json::object o;
      o["type"] = "chat";
      o["message"] = to_json(*added);
      publish(r, cluster::Lane::normal, "", std::move(o));
      return;
    }
    case Kind::playlist_add: {
      auto added = add_item_locked(r, who, kind_s, url, title);
      if (!added) return fail(error_code_for(added.code()), added.error().detail);
      return;
    }
    case Kind::playlist_remove: {
      auto st = remove_item_locked(r, item_id);
      if (!st) return fail(error_code_for(st.code()), st.error().detail);
      return;
    }
    case Kind::playlist_move: {
      auto st = reorder_locked(r, ids);
      if (!st) return fail(error_code_for(st.code()), st.error().detail);
      return;
    }
    default:
      break;
  }
  if (state_changed) emit_state(r, s, by, reason, item_changed, live);
}

// ---- HTTP-level operations ----

namespace {

RoomInfo room_info(const store::Room& row, const std::string& creator, int64_t online) {
  RoomInfo i;
  i.id = row.id;
  i.name = row.name;
  i.has_password = !row.password_hash.empty();
  i.allow_guests = row.allow_guests;
  i.settings = parse_settings(row.settings_json);
  i.creator_id = row.creator_id;
  i.creator = creator;
  i.online = online;
  i.created_at_ms = row.created_at_ms;
  return i;
}

}  // namespace

void RoomManager::drop_node(const std::string& node_id) {
  auto& I = *impl_;
  const auto rooms = I.loaded_rooms();
  for (auto& r : rooms) {
    std::lock_guard lk(r->mu);
    if (r->remote_presence.erase(node_id) == 0 || r->conns.empty()) continue;
    auto frame = I.merged_presence_frame(*r);
    for (auto& [id, c] : r->conns) c.conn->send(frame);
  }
}

void RoomManager::resync() {
  auto& I = *impl_;
  const auto rooms = I.loaded_rooms();
  for (auto& r : rooms) {
    std::lock_guard op(r->op_mu);
    auto row = I.store.room_by_id(r->id);
    auto members = I.store.list_members(r->id);
    auto items = I.store.list_items(r->id);
    auto st = I.store.room_state(r->id);
    if (!row || !members || !items || (!st && st.code() != Errc::not_found)) {
      spdlog::warn("room {}: not refreshed from the database (unavailable)", r->id);
      continue;
    }
    std::lock_guard lk(r->mu);
    r->row = std::move(*row);
    r->settings = parse_settings(r->row.settings_json);
    r->members.clear();
    for (auto& m : *members) r->members[m.user_id] = std::move(m);
    r->playlist = std::move(*items);
    bool state_changed = false;
    if (st && st->version > r->sync.state().version) {
      PlaybackState ps{st->item_id, st->position_s, st->rate, st->playing, st->updated_at_ms, st->version};
      r->sync = PlaybackSync(ps, r->is_live(ps.item_id), r->settings.pause_on_buffering, r->settings.auto_advance);
      r->state_origin.clear();
      state_changed = true;
    }
    if (!r->conns.empty()) {
      auto playlist = Impl::stamped(*r, json::serialize(r->playlist_frame()));
      for (auto& [id, c] : r->conns) c.conn->send(playlist);
      if (state_changed) {
        auto state = Impl::stamped(*r, json::serialize(I.state_frame(r->sync.state(), nullptr, "resync")));
        for (auto& [id, c] : r->conns) c.conn->send(state);
      }
    }
  }
  exchange_presence();
}

void RoomManager::exchange_presence() {
  auto& I = *impl_;
  const auto rooms = I.loaded_rooms();
  for (auto& r : rooms) {
    I.request_presence_share(r);
    I.ask_presence_shares(r->id);
  }
}

int64_t RoomManager::online_count(const std::string& room_id) const {
  auto r = impl_->find(room_id);
  if (!r) return 0;
  std::lock_guard lk(r->mu);
  return static_cast<int64_t>(r->online_users());
}

Result<RoomInfo> RoomManager::create_room(const Identity& who, const CreateRoomRequest& req) {
  auto& I = *impl_;
  if (who.global_role == store::kRoleGuest) return Error{Errc::forbidden, "guests cannot create rooms"};
  if (auto st = validate_room_name(req.name); !st) return st.error();
  store::Room row;
  row.name = req.name;
  row.creator_id = who.user_id;
  row.allow_guests = req.allow_guests;
  RoomSettings settings;
  if (req.settings) apply_settings_patch(settings, *req.settings);
  row.settings_json = serialize_settings(settings);
  if (req.password && !req.password->empty()) {
    if (auto st = validate_password(*req.password); !st) return st.error();
    auto h = I.passwords.hash(*req.password);
    if (!h) return h.error();
    row.password_hash = *h;
  }
  row.created_at_ms = I.now();
  Result<store::Room> created = Error{Errc::conflict, "room id collision"};
  for (int attempt = 0; attempt < 5 && created.code() == Errc::conflict; ++attempt) {
    row.id = auth::random_base62(10);
    created = I.store.create_room(row);
  }
  if (!created) return created.error();
  store::Member m;
  m.room_id = created->id;
  m.user_id = who.user_id;
  m.username = who.username;
  m.role = std::string(kRoomCreator);
  m.joined_at_ms = row.created_at_ms;
  if (auto st = I.store.upsert_member(m); !st) {
    (void)I.store.delete_room(created->id);
    return st.error();
  }
  return room_info(*created, who.username, 0);
}

Result<RoomDetails> RoomManager::get_room(const Identity& who, const std::string& room_id) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  std::string creator;
  if (auto u = I.store.user_by_id(row->creator_id)) creator = u->username;
  RoomDetails d;
  d.room = room_info(*row, creator, online_count(room_id));
  auto m = I.store.member(room_id, who.user_id);
  if (m) {
    d.you = I.member_info(*m, d.room.settings, I.connections_of(I.find(room_id), who.user_id));
  } else if (m.code() != Errc::not_found) {
    return m.error();
  }
  return d;
}

Result<std::vector<RoomInfo>> RoomManager::list_rooms(const Identity& who) {
  auto& I = *impl_;
  auto rows = I.store.list_rooms();
  if (!rows) return rows.error();
  std::unordered_map<int64_t, std::string> names;
  std::vector<RoomInfo> out;
  for (const auto& row : *rows) {
    auto it = names.find(row.creator_id);
    if (it == names.end()) {
      auto u = I.store.user_by_id(row.creator_id);
      it = names.emplace(row.creator_id, u ? u->username : std::string()).first;
    }
    out.push_back(room_info(row, it->second, online_count(row.id)));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const RoomInfo& a, const RoomInfo& b) { return a.created_at_ms > b.created_at_ms; });
  return out;
}

Result<RoomInfo> RoomManager::update_room(const Identity& who, const std::string& room_id, const RoomPatch& patch) {
  auto& I = *impl_;
  if (patch.name) {
    if (auto st = validate_room_name(*patch.name); !st) return st.error();
  }
  std::optional<std::string> new_hash;
  if (patch.password) {
    if (patch.password->empty()) {
      new_hash = std::string();
    } else {
      if (auto st = validate_password(*patch.password); !st) return st.error();
      auto h = I.passwords.hash(*patch.password);
      if (!h) return h.error();
      new_hash = *h;
    }
  }
  auto room_r = I.get_or_load(room_id);
  if (!room_r) return room_r.error();
  auto room = *room_r;
  std::lock_guard op(room->op_mu);
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  auto act = I.actor(*row, who);
  if (!act) return act.error();
  if (!is_global_admin(who) && act->rank < role_rank(kRoomAdmin)) {
    return Error{Errc::forbidden, "only the creator or a room admin may change the room"};
  }
  if (patch.name) row->name = *patch.name;
  if (new_hash) row->password_hash = *new_hash;
  if (patch.allow_guests) row->allow_guests = *patch.allow_guests;
  RoomSettings settings = parse_settings(row->settings_json);
  apply_settings_patch(settings, patch.settings);
  row->settings_json = serialize_settings(settings);
  if (auto st = I.store.update_room(*row); !st) return st.error();

  json::object frame;
  bool changed = false;
  PlaybackState s;
  std::vector<json::object> member_frames;  // guests whose permissions follow guests_can_control
  {
    std::lock_guard lk(room->mu);
    const bool guests_changed = room->settings.guests_can_control != settings.guests_can_control;
    room->row = *row;
    room->settings = settings;
    if (guests_changed) {
      for (const auto& [uid, p] : room->merged_presence()) {
        auto m = room->members.find(uid);
        if (m == room->members.end() || m->second.role != kRoomGuest) continue;
        json::object mf;
        mf["type"] = "member";
        mf["member"] = to_json(I.member_info(m->second, settings, p.connections));
        member_frames.push_back(std::move(mf));
      }
    }
    room->sync.set_auto_advance(settings.auto_advance);
    changed = room->sync.set_pause_on_buffering(settings.pause_on_buffering, I.now());
    s = room->sync.state();
    frame["type"] = "room";
    frame["room"] = room->room_json();
  }
  I.publish(*room, cluster::Lane::normal, "", std::move(frame));
  for (auto& mf : member_frames) I.publish(*room, cluster::Lane::critical, "", std::move(mf));
  if (changed) I.emit_state(*room, s, &who, "buffering", false, false);
  std::string creator;
  if (auto u = I.store.user_by_id(row->creator_id)) creator = u->username;
  return room_info(*row, creator, online_count(room_id));
}

Status RoomManager::delete_room(const Identity& who, const std::string& room_id) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  if (!is_global_admin(who) && row->creator_id != who.user_id) {
    return Error{Errc::forbidden, "only the creator may delete the room"};
  }
  if (auto st = I.store.delete_room(room_id); !st) return st;
  auto room = I.find(room_id);
  json::object frame;
  frame["type"] = "error";
  frame["code"] = "not_found";
  frame["message"] = "the room was deleted";
  if (room) {
    std::lock_guard op(room->op_mu);
    I.publish(*room, cluster::Lane::critical, "/deleted", std::move(frame));
  } else {
    frame["seq"] = 0;
    (void)I.bus.publish(cluster::Lane::critical, std::string(kTopicPrefix) + room_id + "/deleted", to_frame(frame));
  }
  return ok_status();
}

namespace {

Status check_room_password(const PasswordFunctions& pw, const store::Room& row,
                           const std::optional<std::string>& password) {
  if (row.password_hash.empty()) return ok_status();
  if (!password || password->empty()) return Error{Errc::forbidden, "this room needs a password"};
  if (!pw.verify(*password, row.password_hash)) return Error{Errc::forbidden, "wrong room password"};
  return ok_status();
}

}  // namespace

Result<MemberInfo> RoomManager::join(const Identity& who, const std::string& room_id,
                                     const std::optional<std::string>& password) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  const RoomSettings settings = parse_settings(row->settings_json);
  auto existing = I.store.member(room_id, who.user_id);
  if (existing) {
    if (existing->banned) return Error{Errc::forbidden, "banned from this room"};
    if (existing->kicked_until_ms > I.now()) return Error{Errc::forbidden, "kicked: wait before rejoining"};
    return I.member_info(*existing, settings, I.connections_of(I.find(room_id), who.user_id));
  }
  if (existing.code() != Errc::not_found) return existing.error();
  if (who.global_role == store::kRoleGuest) return Error{Errc::forbidden, "guest accounts belong to one room"};
  if (auto st = check_room_password(I.passwords, *row, password); !st) return st.error();
  store::Member m;
  m.room_id = room_id;
  m.user_id = who.user_id;
  m.username = who.username;
  m.role = std::string(kRoomMember);
  m.joined_at_ms = I.now();
  if (auto st = I.store.upsert_member(m); !st) return st.error();
  if (auto room = I.find(room_id)) {
    std::lock_guard lk(room->mu);
    room->members[m.user_id] = m;
  }
  return I.member_info(m, settings, 0);
}

Result<GuestJoin> RoomManager::add_guest_member(const std::string& room_id, const std::string& name,
                                                const std::optional<std::string>& password) {
  auto& I = *impl_;
  if (auto st = validate_guest_name(name); !st) return st.error();
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  if (!row->allow_guests) return Error{Errc::forbidden, "this room does not allow guests"};
  if (auto st = check_room_password(I.passwords, *row, password); !st) return st.error();
  store::User u;
  u.role = store::kRoleGuest;
  Result<store::User> created = Error{Errc::conflict, "guest name taken"};
  for (int attempt = 0; attempt < 5 && created.code() == Errc::conflict; ++attempt) {
    u.username = name + "#" + auth::random_base62(4);
    created = I.store.create_user(u);
  }
  if (!created) return created.error();
  store::Member m;
  m.room_id = room_id;
  m.user_id = created->id;
  m.username = created->username;
  m.role = std::string(kRoomGuest);
  m.joined_at_ms = I.now();
  if (auto st = I.store.upsert_member(m); !st) return st.error();
  if (auto room = I.find(room_id)) {
    std::lock_guard lk(room->mu);
    room->members[m.user_id] = m;
  }
  GuestJoin g;
  g.user = *created;
  g.member = I.member_info(m, parse_settings(row->settings_json), 0);
  return g;
}

Result<std::vector<MemberInfo>> RoomManager::list_members(const Identity& who, const std::string& room_id) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  if (auto act = I.actor(*row, who); !act) return act.error();
  auto list = I.store.list_members(room_id);
  if (!list) return list.error();
  const RoomSettings settings = parse_settings(row->settings_json);
  std::map<int64_t, int64_t> online;
  if (auto room = I.find(room_id)) {
    std::lock_guard lk(room->mu);
    for (const auto& [uid, p] : room->merged_presence()) online[uid] = p.connections;
  }
  std::vector<MemberInfo> out;
  for (const auto& m : *list) out.push_back(I.member_info(m, settings, online.count(m.user_id) ? online[m.user_id] : 0));
  std::stable_sort(out.begin(), out.end(),
                   [](const MemberInfo& a, const MemberInfo& b) { return a.joined_at_ms < b.joined_at_ms; });
  return out;
}

namespace {

/// May `act` (holding manage_members) act on `target`? Errors: forbidden.
Status may_act_on(const Identity& who, int actor_rank, Perms actor_perms, const store::Member& target) {
  if ((actor_perms & kManageMembers) == 0) return Error{Errc::forbidden, "you lack the permission \"manage_members\""};
  if (target.user_id == who.user_id && !is_global_admin(who)) return Error{Errc::forbidden, "you cannot act on yourself"};
  if (target.role == kRoomCreator && !is_global_admin(who)) return Error{Errc::forbidden, "the creator cannot be changed"};
  if (!is_global_admin(who) && actor_rank <= role_rank(target.role)) {
    return Error{Errc::forbidden, "you may only act on members of a lower role"};
  }
  return ok_status();
}

}  // namespace

Result<RoomManager::Impl::MemberOp> RoomManager::Impl::begin_member_op(const Identity& who,
                                                                       const std::string& room_id,
                                                                       int64_t user_id) {
  auto room = get_or_load(room_id);
  if (!room) return room.error();
  MemberOp op{*room, std::unique_lock<std::mutex>((*room)->op_mu), {}, -1};
  auto row = store.room_by_id(room_id);
  if (!row) return row.error();
  auto act = actor(*row, who);
  if (!act) return act.error();
  auto target = store.member(room_id, user_id);
  if (!target) return target.error();
  if (auto st = may_act_on(who, act->rank, act->perms, *target); !st) return st.error();
  op.target = std::move(target.value());
  op.actor_rank = act->rank;
  return op;
}

Result<MemberInfo> RoomManager::update_member(const Identity& who, const std::string& room_id, int64_t user_id,
                                              const MemberPatch& patch) {
  auto& I = *impl_;
  auto grant = perms_from_names(patch.grant);
  if (!grant) return grant.error();
  auto revoke = perms_from_names(patch.revoke);
  if (!revoke) return revoke.error();
  auto clear = perms_from_names(patch.clear);
  if (!clear) return clear.error();
  if (patch.role && (!is_room_role(*patch.role) || *patch.role == kRoomCreator)) {
    return Error{Errc::malformed, "role must be \"admin\", \"member\" or \"guest\""};
  }
  auto op = I.begin_member_op(who, room_id, user_id);
  if (!op) return op.error();
  auto& room = op->room;
  auto* target = &op->target;
  if (patch.role && *patch.role != target->role) {
    if (target->role == kRoomCreator) return Error{Errc::forbidden, "the creator's role cannot change"};
    if (!is_global_admin(who) && role_rank(*patch.role) >= op->actor_rank) {
      return Error{Errc::forbidden, "you may only give roles below your own"};
    }
    target->role = *patch.role;
  }
  target->grants &= ~*clear;
  target->revokes &= ~*clear;
  target->grants = (target->grants | *grant) & ~*revoke;
  target->revokes = (target->revokes | *revoke) & ~*grant;
  // a name both granted and revoked in one patch: the revocation wins
  target->revokes |= (*grant & *revoke);
  if (auto st = I.store.upsert_member(*target); !st) return st.error();
  MemberInfo info;
  {
    std::lock_guard lk(room->mu);
    room->members[user_id] = *target;
    auto p = room->presence.find(user_id);
    if (p != room->presence.end()) p->second.role = target->role;
    info = I.member_info(*target, room->settings, p != room->presence.end() ? p->second.connections : 0);
  }
  json::object frame;
  frame["type"] = "member";
  frame["member"] = to_json(info);
  if (auto st = I.publish(*room, cluster::Lane::critical, "", std::move(frame)); !st) return I.not_delivered(st);
  return info;
}

Status RoomManager::kick(const Identity& who, const std::string& room_id, int64_t user_id,
                         std::optional<int64_t> cooldown_secs) {
  int64_t secs = cooldown_secs.value_or(impl_->cfg.kick_cooldown_secs);
  if (secs < 0 || secs > kMaxCooldownSecs) return Error{Errc::malformed, "cooldown_secs must be in 0..31536000"};
  return impl_->kick_like(who, room_id, user_id, Impl::KickKind::kick, secs);
}

Status RoomManager::ban(const Identity& who, const std::string& room_id, int64_t user_id) {
  return impl_->kick_like(who, room_id, user_id, Impl::KickKind::ban, 0);
}

Status RoomManager::unban(const Identity& who, const std::string& room_id, int64_t user_id) {
  return impl_->kick_like(who, room_id, user_id, Impl::KickKind::unban, 0);
}

Status RoomManager::Impl::kick_like(const Identity& who, const std::string& room_id, int64_t user_id,
                                    KickKind kind, int64_t cooldown_secs) {
  auto& I = *this;
  auto op = begin_member_op(who, room_id, user_id);
  if (!op) return op.error();
  auto& room = op->room;
  auto* target = &op->target;
  const int64_t now = I.now();
  json::object frame;
  frame["type"] = "kicked";
  switch (kind) {
    case KickKind::kick:
      target->kicked_until_ms = now + cooldown_secs * 1000;
      frame["reason"] = "kicked";
      frame["until_ms"] = target->kicked_until_ms;
      break;
    case KickKind::ban:
      target->banned = true;
      frame["reason"] = "banned";
      frame["until_ms"] = 0;
      break;
    case KickKind::unban:
      target->banned = false;
      target->kicked_until_ms = 0;
      break;
  }
  if (auto st = I.store.upsert_member(*target); !st) return st;
  {
    std::lock_guard lk(room->mu);
    room->members[user_id] = *target;
  }
  if (kind != KickKind::unban) {
    auto st = I.publish(*room, cluster::Lane::critical, "/user/" + std::to_string(user_id) + "/kick", std::move(frame));
    if (!st) return I.not_delivered(st);
  }
  return ok_status();
}

Result<std::vector<store::PlaylistItem>> RoomManager::list_playlist(const Identity& who, const std::string& room_id) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  if (auto act = I.actor(*row, who); !act) return act.error();
  return I.store.list_items(room_id);
}

/// Loads the room and checks that `who` holds `need` (fresh from the Store); returns the room.
Result<std::shared_ptr<Room>> RoomManager::Impl::room_with_perm(const Identity& who, const std::string& room_id,
                                                                Perms need) {
  auto& I = *this;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  auto act = I.actor(*row, who);
  if (!act) return act.error();
  if ((act->perms & need) != need) {
    return Error{Errc::forbidden, "you lack the permission \"" + std::string(perm_name(need)) + "\""};
  }
  return I.get_or_load(room_id);
}

Result<store::PlaylistItem> RoomManager::add_playlist_item(const Identity& who, const std::string& room_id,
                                                           const std::string& kind, const std::string& url,
                                                           const std::string& title) {
  if (auto st = validate_playlist_item(kind, url, title); !st) return st.error();
  auto room = impl_->room_with_perm(who, room_id, kManagePlaylist);
  if (!room) return room.error();
  std::lock_guard op((*room)->op_mu);
  return impl_->add_item_locked(**room, who, kind, url, title);
}

Status RoomManager::remove_playlist_item(const Identity& who, const std::string& room_id, int64_t item_id) {
  auto room = impl_->room_with_perm(who, room_id, kManagePlaylist);
  if (!room) return room.error();
  std::lock_guard op((*room)->op_mu);
  return impl_->remove_item_locked(**room, item_id);
}

Status RoomManager::reorder_playlist(const Identity& who, const std::string& room_id,
                                     const std::vector<int64_t>& item_ids) {
  auto room = impl_->room_with_perm(who, room_id, kManagePlaylist);
  if (!room) return room.error();
  std::lock_guard op((*room)->op_mu);
  return impl_->reorder_locked(**room, item_ids);
}

Result<std::vector<store::ChatMessage>> RoomManager::recent_chat(const Identity& who, const std::string& room_id,
                                                                 int64_t limit) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  if (auto act = I.actor(*row, who); !act) return act.error();
  limit = std::clamp<int64_t>(limit, 1, std::max<int64_t>(1, I.cfg.chat_history));
  return I.store.recent_chat(room_id, limit);
}

Result<PublishKeyInfo> RoomManager::Impl::publish_key_impl(const Identity& who, const std::string& room_id,
                                                           bool rotate) {
  auto& I = *this;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  auto act = I.actor(*row, who);
  if (!act) return act.error();
  if ((act->perms & kManageLive) == 0) return Error{Errc::forbidden, "you lack the permission \"manage_live\""};
  if (row->publish_key.empty() || rotate) {
    Status st = Error{Errc::conflict, "publish key collision"};
    for (int attempt = 0; attempt < 5 && st.code() == Errc::conflict; ++attempt) {
      row->publish_key = auth::random_base62(32);
      st = I.store.update_room(*row);
    }
    if (!st) return st.error();
    if (auto room = I.find(room_id)) {
      std::lock_guard lk(room->mu);
      room->row.publish_key = row->publish_key;
    }
  }
  // Publishers use the secret key; the stream appears under the room's public name so
  // viewers (and the playlist) never see the key (app/server.cpp maps it on publish).
  return PublishKeyInfo{row->publish_key, room_stream_name(room_id)};
}

Result<PublishKeyInfo> RoomManager::publish_key(const Identity& who, const std::string& room_id) {
  return impl_->publish_key_impl(who, room_id, false);
}

Result<PublishKeyInfo> RoomManager::rotate_publish_key(const Identity& who, const std::string& room_id) {
  return impl_->publish_key_impl(who, room_id, true);
}

Status RoomManager::on_room_stream_published(const std::string& room_id) {
  auto& I = *impl_;
  auto row = I.store.room_by_id(room_id);
  if (!row) return row.error();
  auto room_r = I.get_or_load(room_id);
  if (!room_r) return room_r.error();
  Room& r = **room_r;
  const std::string url = room_stream_name(room_id);
  std::lock_guard op(r.op_mu);
  bool present = false;
  bool selected = false;
  PlaybackState s;
  {
    std::lock_guard lk(r.mu);
    auto it = std::find_if(r.playlist.begin(), r.playlist.end(),
                           [&](const auto& i) { return i.kind == "live" && i.url == url; });
    present = it != r.playlist.end();
    if (present && r.sync.state().item_id == 0) {
      r.sync.replace_current(it->id, true, I.now());
      s = r.sync.state();
      selected = true;
    }
  }
  if (selected) I.emit_state(r, s, nullptr, "auto", true, true);
  if (present) return ok_status();
  Identity creator;
  creator.user_id = row->creator_id;
  if (auto u = I.store.user_by_id(row->creator_id)) creator.username = u->username;
  auto added = I.add_item_locked(r, creator, "live", url, "Room stream");
  if (!added) return added.error();
  return ok_status();
}

Result<store::Room> RoomManager::room_for_publish_key(const std::string& key) {
  if (key.empty()) return Error{Errc::not_found, "no publish key"};
  return impl_->store.room_by_publish_key(key);
}

}  // namespace castmesh::room
