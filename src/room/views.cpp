#include "room/views.hpp"

#include <boost/json/serialize.hpp>

namespace castmesh::room {

namespace json = boost::json;

namespace {
json::array names_json(Perms p) {
  json::array a;
  for (auto& n : perm_names(p)) a.emplace_back(n);
  return a;
}
}  // namespace

json::object to_json(const RoomInfo& r) {
  json::object o;
  o["id"] = r.id;
  o["name"] = r.name;
  o["has_password"] = r.has_password;
  o["allow_guests"] = r.allow_guests;
  o["settings"] = settings_to_json(r.settings);
  json::object c;
  c["user_id"] = r.creator_id;
  c["username"] = r.creator;
  o["creator"] = std::move(c);
  o["online"] = r.online;
  o["created_at_ms"] = r.created_at_ms;
  return o;
}

json::object to_json(const MemberInfo& m) {
  json::object o;
  o["user_id"] = m.user_id;
  o["username"] = m.username;
  o["role"] = m.role;
  o["permissions"] = names_json(m.permissions);
  o["grants"] = names_json(m.grants);
  o["revokes"] = names_json(m.revokes);
  o["banned"] = m.banned;
  o["kicked_until_ms"] = m.kicked_until_ms;
  o["joined_at_ms"] = m.joined_at_ms;
  o["connections"] = m.connections;
  return o;
}

json::object to_json(const store::PlaylistItem& i) {
  json::object o;
  o["id"] = i.id;
  o["kind"] = i.kind;
  o["url"] = i.url;
  o["title"] = i.title;
  o["position"] = i.position;
  o["added_by"] = i.added_by;
  return o;
}

json::object to_json(const store::ChatMessage& c) {
  json::object o;
  o["id"] = c.id;
  o["user_id"] = c.user_id;
  o["username"] = c.username;
  o["text"] = c.text;
  o["created_at_ms"] = c.created_at_ms;
  return o;
}

json::object to_json(const PlaybackState& s) {
  json::object o;
  o["item_id"] = s.item_id;
  o["position_s"] = s.position_s;
  o["rate"] = s.rate;
  o["playing"] = s.playing;
  o["updated_at_ms"] = s.updated_at_ms;
  o["version"] = s.version;
  return o;
}

std::shared_ptr<const std::string> make_error_frame(std::string_view code, std::string_view message,
                                                    const json::value* ref) {
  json::object o;
  o["type"] = "error";
  o["code"] = code;
  o["message"] = message;
  if (ref && (ref->is_string() || ref->is_number())) o["ref"] = *ref;
  return std::make_shared<const std::string>(json::serialize(o));
}

}  // namespace castmesh::room
