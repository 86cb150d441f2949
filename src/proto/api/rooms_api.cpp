#include "proto/api/rooms_api.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <spdlog/spdlog.h>

#include "auth/crypto.hpp"
#include "proto/api/auth_api.hpp"
#include "room/views.hpp"

namespace castmesh::api {

namespace json = boost::json;

namespace {

constexpr std::string_view kPrefix = "/api/v1/rooms/";
constexpr int64_t kDefaultChatLimit = 50;

bool valid_room_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

std::optional<int64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split_path(std::string_view p) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t slash = p.find('/', start);
    out.push_back(p.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

/// Value of `name` in a raw query string (no decoding: the values used here are digits).
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
  }
  return std::nullopt;
}

/// The Host header without its port, restricted to host-name characters ("" when unusable).
std::string host_of(const net::HttpRequest& req) {
  std::string h = req.header("Host");
  if (!h.empty() && h.front() == '[') {
    const size_t close = h.find(']');
    h = close == std::string::npos ? std::string() : h.substr(0, close + 1);
  } else if (const size_t colon = h.find(':'); colon != std::string::npos) {
    h.resize(colon);
  }
  const bool clean = std::all_of(h.begin(), h.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == ':' || c == '[' || c == ']';
  });
  return clean ? h : std::string();
}

net::HttpResponse no_content() {
  net::HttpResponse r;
  r.status = 204;
  r.content_type = "application/json";
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

net::HttpResponse bad_body(const Error& e) { return error_response(400, "bad_json", e.detail); }

json::array items_json(const std::vector<store::PlaylistItem>& items) {
  json::array a;
  a.reserve(items.size());
  for (const auto& i : items) a.push_back(room::to_json(i));
  return a;
}

/// What a route handler gets: the request, the room id and the numeric path parameter.
struct Call {
  const net::HttpRequest& req;
  std::string room_id;
  int64_t target = 0;  ///< {user_id} or {item_id} when the route has one
};

using Fn = std::function<net::HttpResponse(const Call&)>;

class RoomsApi {
 public:
  RoomsApi(room::RoomManager& rooms, auth::Accounts& accounts, RoomsApiConfig cfg)
      : rooms_(rooms), accounts_(accounts), cfg_(std::move(cfg)) {
    build();
  }

  net::HttpResponse list(const net::HttpRequest& req) {
    auto who = identity(req);
    if (!who) return error_response(who.error());
    auto rooms = rooms_.list_rooms(*who);
    if (!rooms) return error_response(rooms.error());
    json::array a;
    for (const auto& r : *rooms) a.push_back(room::to_json(r));
    json::object o;
    o["rooms"] = std::move(a);
    return json_response(o);
  }

  net::HttpResponse create(const net::HttpRequest& req) {
    auto who = identity(req);
    if (!who) return error_response(who.error());
    auto body = parse_body(req);
    if (!body) return bad_body(body.error());
    room::CreateRoomRequest cr;
    auto name = required_string(*body, "name");
    if (!name) return error_response(name.error());
    cr.name = std::move(*name);
    auto password = optional_string(*body, "password");
    if (!password) return error_response(password.error());
    if (*password && !(*password)->empty()) cr.password = std::move(**password);
    auto guests = optional_bool(*body, "allow_guests");
    if (!guests) return error_response(guests.error());
    cr.allow_guests = guests->value_or(false);
    if (const json::value* s = body->if_contains("settings"); s != nullptr && !s->is_null()) {
      auto patch = room::parse_settings_patch(*s);
      if (!patch) return error_response(patch.error());
      cr.settings = *patch;
    }
    auto created = rooms_.create_room(*who, cr);
    if (!created) return error_response(created.error());
    spdlog::info("rooms: '{}' created room {}", who->username, created->id);
    json::object o;
    o["room"] = room::to_json(*created);
    return json_response(o, 201);
  }

  /// Resolves `{id}/...` for `method` and runs the route.
  net::HttpResponse dispatch(std::string_view method, const net::HttpRequest& req) {
    if (method == "HEAD") method = "GET";
    const auto segs = split_path(req.path_param);
    if (!valid_room_id(segs[0])) return error_response(404, "not_found", "room not found");
    Call call{req, std::string(segs[0])};
    std::string key;
    for (size_t i = 1; i < segs.size(); ++i) {
      std::string_view s = segs[i];
      // The second segment after "members" / "playlist" is a numeric id, except "reorder".
      if (i == 2 && (segs[1] == "members" || segs[1] == "playlist") && s != "reorder") {
        auto id = parse_id(s);
        if (!id) return error_response(404, "not_found", "not found");
        call.target = *id;
        s = "*";
      }
      key += '/';
      key += s;
    }
    auto route = routes_.find(key);
    if (route == routes_.end()) return error_response(404, "not_found", "not found");
    auto fn = route->second.find(std::string(method));
    if (fn == route->second.end()) {
      std::string allow;
      for (const auto& [m, f] : route->second) {
        if (!allow.empty()) allow += ", ";
        allow += m;
        if (m == "GET") allow += ", HEAD";
      }
      auto r = error_response(405, "method_not_allowed", "method not allowed");
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    return fn->second(call);
  }

 private:
  Result<room::Identity> identity(const net::HttpRequest& req) {
    auto id = authenticate(accounts_, req);
    if (!id) return id.error();
    return room_identity(*id);
  }

  /// Adds `fn` behind authentication: it receives the caller's identity.
  void authed(const std::string& key, const std::string& method,
              std::function<net::HttpResponse(const Call&, const room::Identity&)> fn) {
    routes_[key][method] = [this, fn = std::move(fn)](const Call& c) {
      auto who = identity(c.req);
      if (!who) return error_response(who.error());
      return fn(c, *who);
    };
  }

  net::HttpResponse publish_key_response(const net::HttpRequest& req, const room::PublishKeyInfo& k) {
    std::string host = cfg_.rtmp_host.empty() ? host_of(req) : cfg_.rtmp_host;
    if (host.empty()) host = "localhost";
    std::string url = "rtmp://" + host;
    if (cfg_.rtmp_port != 1935) url += ":" + std::to_string(cfg_.rtmp_port);
    const size_t slash = k.stream.find('/');
    url += "/" + (slash == std::string::npos ? std::string("live") : k.stream.substr(0, slash));
    json::object o;
    o["publish_key"] = k.publish_key;
    o["rtmp_url"] = url;
    o["stream"] = k.stream;
    return json_response(o);
  }

  void build() {
    // ---- the room itself
    authed("", "GET", [this](const Call& c, const room::Identity& who) {
      auto d = rooms_.get_room(who, c.room_id);
      if (!d) return error_response(d.error());
      json::object o;
      o["room"] = room::to_json(d->room);
      if (d->you) o["you"] = room::to_json(*d->you);
      return json_response(o);
    });
    authed("", "PATCH", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req);
      if (!body) return bad_body(body.error());
      room::RoomPatch p;
      auto name = optional_string(*body, "name");
      if (!name) return error_response(name.error());
      p.name = std::move(*name);
      auto password = optional_string(*body, "password");
      if (!password) return error_response(password.error());
      p.password = std::move(*password);
      auto guests = optional_bool(*body, "allow_guests");
      if (!guests) return error_response(guests.error());
      p.allow_guests = *guests;
      if (const json::value* s = body->if_contains("settings"); s != nullptr && !s->is_null()) {
        auto patch = room::parse_settings_patch(*s);
        if (!patch) return error_response(patch.error());
        p.settings = *patch;
      }
      auto updated = rooms_.update_room(who, c.room_id, p);
      if (!updated) return error_response(updated.error());
      json::object o;
      o["room"] = room::to_json(*updated);
      return json_response(o);
    });
    authed("", "DELETE", [this](const Call& c, const room::Identity& who) {
      auto st = rooms_.delete_room(who, c.room_id);
      if (!st) return error_response(st.error());
      spdlog::info("rooms: '{}' deleted room {}", who.username, c.room_id);
      return no_content();
    });

    // ---- membership
    authed("/join", "POST", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req, true);
      if (!body) return bad_body(body.error());
      auto password = optional_string(*body, "password");
      if (!password) return error_response(password.error());
      // A password attempt costs an Argon2id verification: limit guessing like logins.
      int64_t retry_ms = 0;
      if (*password && !accounts_.allow_attempt(client_address(c.req), &retry_ms)) {
        return error_response(Error{Errc::rate_limited, "too many attempts"}, retry_ms);
      }
      auto m = rooms_.join(who, c.room_id, *password);
      if (!m) return error_response(m.error());
      json::object o;
      o["member"] = room::to_json(*m);
      return json_response(o);
    });
    routes_["/guest"]["POST"] = [this](const Call& c) {
      auto body = parse_body(c.req);
      if (!body) return bad_body(body.error());
      auto name = required_string(*body, "name");
      if (!name) return error_response(name.error());
      auto password = optional_string(*body, "password");
      if (!password) return error_response(password.error());
      int64_t retry_ms = 0;
      if (!accounts_.allow_attempt(client_address(c.req), &retry_ms)) {
        return error_response(Error{Errc::rate_limited, "too many attempts"}, retry_ms);
      }
      auto g = rooms_.add_guest_member(c.room_id, *name, *password);
      if (!g) return error_response(g.error());
      auto login = accounts_.open_session(g->user);
      if (!login) return error_response(login.error());
      json::object o;
      o["user"] = user_json(login->user);
      o["token"] = login->token;
      o["expires_at_ms"] = login->expires_at_ms;
      o["member"] = room::to_json(g->member);
      auto r = json_response(o, 201);
      r.headers.emplace_back("Set-Cookie", session_cookie(login->token, accounts_.config().session_ttl_secs));
      return r;
    };
    authed("/members", "GET", [this](const Call& c, const room::Identity& who) {
      auto ms = rooms_.list_members(who, c.room_id);
      if (!ms) return error_response(ms.error());
      json::array a;
      for (const auto& m : *ms) a.push_back(room::to_json(m));
      json::object o;
      o["members"] = std::move(a);
      return json_response(o);
    });
    authed("/members/*", "PATCH", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req);
      if (!body) return bad_body(body.error());
      room::MemberPatch p;
      auto role = optional_string(*body, "role");
      if (!role) return error_response(role.error());
      p.role = std::move(*role);
      auto grant = optional_string_array(*body, "grant");
      if (!grant) return error_response(grant.error());
      p.grant = std::move(*grant);
      auto revoke = optional_string_array(*body, "revoke");
      if (!revoke) return error_response(revoke.error());
      p.revoke = std::move(*revoke);
      auto clear = optional_string_array(*body, "clear");
      if (!clear) return error_response(clear.error());
      p.clear = std::move(*clear);
      auto m = rooms_.update_member(who, c.room_id, c.target, p);
      if (!m) return error_response(m.error());
      json::object o;
      o["member"] = room::to_json(*m);
      return json_response(o);
    });
    authed("/members/*/kick", "POST", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req, true);
      if (!body) return bad_body(body.error());
      auto cooldown = optional_int(*body, "cooldown_secs");
      if (!cooldown) return error_response(cooldown.error());
      auto st = rooms_.kick(who, c.room_id, c.target, *cooldown);
      if (!st) return error_response(st.error());
      return no_content();
    });
    authed("/members/*/ban", "POST", [this](const Call& c, const room::Identity& who) {
      auto st = rooms_.ban(who, c.room_id, c.target);
      if (!st) return error_response(st.error());
      return no_content();
    });
    authed("/members/*/unban", "POST", [this](const Call& c, const room::Identity& who) {
      auto st = rooms_.unban(who, c.room_id, c.target);
      if (!st) return error_response(st.error());
      return no_content();
    });

    // ---- playlist
    authed("/playlist", "GET", [this](const Call& c, const room::Identity& who) {
      auto items = rooms_.list_playlist(who, c.room_id);
      if (!items) return error_response(items.error());
      json::object o;
      o["items"] = items_json(*items);
      return json_response(o);
    });
    authed("/playlist", "POST", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req);
      if (!body) return bad_body(body.error());
      auto kind = required_string(*body, "kind");
      if (!kind) return error_response(kind.error());
      auto url = required_string(*body, "url");
      if (!url) return error_response(url.error());
      auto title = optional_string(*body, "title");
      if (!title) return error_response(title.error());
      auto item = rooms_.add_playlist_item(who, c.room_id, *kind, *url, title->value_or(""));
      if (!item) return error_response(item.error());
      json::object o;
      o["item"] = room::to_json(*item);
      return json_response(o, 201);
    });
    authed("/playlist/*", "DELETE", [this](const Call& c, const room::Identity& who) {
      auto st = rooms_.remove_playlist_item(who, c.room_id, c.target);
      if (!st) return error_response(st.error());
      return no_content();
    });
    authed("/playlist/reorder", "POST", [this](const Call& c, const room::Identity& who) {
      auto body = parse_body(c.req);
      if (!body) return bad_body(body.error());
      auto ids = required_int_array(*body, "item_ids");
      if (!ids) return error_response(ids.error());
      auto st = rooms_.reorder_playlist(who, c.room_id, *ids);
      if (!st) return error_response(st.error());
      auto items = rooms_.list_playlist(who, c.room_id);
      if (!items) return error_response(items.error());
      json::object o;
      o["items"] = items_json(*items);
      return json_response(o);
    });

    // ---- chat
    authed("/chat", "GET", [this](const Call& c, const room::Identity& who) {
      int64_t limit = kDefaultChatLimit;
      if (auto q = query_param(c.req.query, "limit")) {
        auto v = parse_id(*q);
        if (!v || *v < 1) return error_response(400, "bad_request", "'limit' must be a positive integer");
        limit = *v;
      }
      auto msgs = rooms_.recent_chat(who, c.room_id, limit);
      if (!msgs) return error_response(msgs.error());
      json::array a;
      a.reserve(msgs->size());
      for (const auto& m : *msgs) a.push_back(room::to_json(m));
      json::object o;
      o["messages"] = std::move(a);
      return json_response(o);
    });

    // ---- live publishing
    authed("/publish-key", "GET", [this](const Call& c, const room::Identity& who) {
      auto k = rooms_.publish_key(who, c.room_id);
      if (!k) return error_response(k.error());
      return publish_key_response(c.req, *k);
    });
    authed("/publish-key", "POST", [this](const Call& c, const room::Identity& who) {
      auto k = rooms_.rotate_publish_key(who, c.room_id);
      if (!k) return error_response(k.error());
      spdlog::info("rooms: '{}' rotated the publish key of room {}", who.username, c.room_id);
      return publish_key_response(c.req, *k);
    });
  }

  room::RoomManager& rooms_;
  auth::Accounts& accounts_;
  RoomsApiConfig cfg_;
  /// path after the room id ("" for the room, "/members/*/kick", ...) -> method -> handler
  std::map<std::string, std::map<std::string, Fn>> routes_;
};

}  // namespace

room::Identity room_identity(const auth::Identity& id) {
  room::Identity out;
  out.user_id = id.user.id;
  out.username = id.user.username;
  out.global_role = id.user.role;
  return out;
}

std::function<Result<room::Identity>(std::string_view token)> room_authenticator(auth::Accounts& accounts) {
  return [&accounts](std::string_view token) -> Result<room::Identity> {
    auto id = accounts.authenticate(token);
    if (!id) return id.error();
    return room_identity(*id);
  };
}

room::PasswordFunctions argon2_room_passwords() {
  room::PasswordFunctions p;
  p.hash = [](std::string_view password) { return auth::hash_password(password); };
  p.verify = [](std::string_view password, std::string_view encoded) {
    return auth::verify_password(encoded, password);
  };
  return p;
}

void register_rooms_api(net::Router& r, room::RoomManager& rooms, auth::Accounts& accounts,
                        const RoomsApiConfig& cfg) {
  auto api = std::make_shared<RoomsApi>(rooms, accounts, cfg);
  r.add("GET", "/api/v1/rooms", [api](const net::HttpRequest& req) { return api->list(req); });
  r.add("POST", "/api/v1/rooms", [api](const net::HttpRequest& req) { return api->create(req); });
  for (const char* method : {"GET", "POST", "PATCH", "DELETE"}) {
    r.add(method, std::string(kPrefix), "", [api, method](const net::HttpRequest& req) {
      return api->dispatch(req.method == "HEAD" ? std::string_view("HEAD") : std::string_view(method), req);
    });
  }
}

}  // namespace castmesh::api
