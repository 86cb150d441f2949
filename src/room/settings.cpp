#include "room/settings.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace castmesh::room {

namespace json = boost::json;

RoomSettings parse_settings(std::string_view settings_json) {
  RoomSettings s;
  boost::system::error_code ec;
  json::value v = json::parse(settings_json, ec);
  if (ec || !v.is_object()) return s;
  const auto& o = v.get_object();
  auto read = [&](const char* key, bool& field) {
    if (auto* p = o.if_contains(key); p && p->is_bool()) field = p->get_bool();
  };
  read("guests_can_control", s.guests_can_control);
  read("pause_on_buffering", s.pause_on_buffering);
  read("auto_advance", s.auto_advance);
  return s;
}

json::object settings_to_json(const RoomSettings& s) {
  json::object o;
  o["guests_can_control"] = s.guests_can_control;
  o["pause_on_buffering"] = s.pause_on_buffering;
  o["auto_advance"] = s.auto_advance;
  return o;
}

std::string serialize_settings(const RoomSettings& s) { return json::serialize(settings_to_json(s)); }

Result<SettingsPatch> parse_settings_patch(const json::value& v) {
  if (!v.is_object()) return Error{Errc::malformed, "settings must be an object"};
  SettingsPatch p;
  for (const auto& [key, val] : v.get_object()) {
    std::optional<bool>* field = nullptr;
    if (key == "guests_can_control") field = &p.guests_can_control;
    else if (key == "pause_on_buffering") field = &p.pause_on_buffering;
    else if (key == "auto_advance") field = &p.auto_advance;
    else return Error{Errc::malformed, "unknown setting \"" + std::string(key) + "\""};
    if (!val.is_bool()) return Error{Errc::malformed, "setting \"" + std::string(key) + "\" must be a boolean"};
    *field = val.get_bool();
  }
  return p;
}

void apply_settings_patch(RoomSettings& s, const SettingsPatch& p) {
  if (p.guests_can_control) s.guests_can_control = *p.guests_can_control;
  if (p.pause_on_buffering) s.pause_on_buffering = *p.pause_on_buffering;
  if (p.auto_advance) s.auto_advance = *p.auto_advance;
}

}  // namespace castmesh::room
