#pragma once
/// \file Per-room settings, stored as the JSON object store::Room::settings_json and shown in
/// `welcome.room.settings` / the HTTP API:
///   {"guests_can_control": false, "pause_on_buffering": false, "auto_advance": true}

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "base/result.hpp"

namespace castmesh::room {

struct RoomSettings {
  bool guests_can_control = false;  ///< guests also get control_playback and seek
  bool pause_on_buffering = false;  ///< playback waits while any connected member is buffering
  bool auto_advance = true;         ///< `ended` moves to the next playlist item

  friend bool operator==(const RoomSettings&, const RoomSettings&) = default;
};

/// Parses settings_json leniently: missing keys, keys of the wrong type, unknown keys and
/// unparsable text all fall back to the defaults (stored data is trusted to be ours).
RoomSettings parse_settings(std::string_view settings_json);

/// Compact JSON text with every key.
std::string serialize_settings(const RoomSettings& s);

/// The settings as a JSON object with every key.
boost::json::object settings_to_json(const RoomSettings& s);

/// A partial update (HTTP `PATCH /rooms/{id} {settings: {...}}`).
struct SettingsPatch {
  std::optional<bool> guests_can_control;
  std::optional<bool> pause_on_buffering;
  std::optional<bool> auto_advance;
};

/// Strict parse of a patch object. Errors: Errc::malformed when `v` is not an object, a key is
/// unknown, or a value is not a boolean (the detail names the key).
Result<SettingsPatch> parse_settings_patch(const boost::json::value& v);

/// Applies the keys present in `p` to `s`.
void apply_settings_patch(RoomSettings& s, const SettingsPatch& p);

}  // namespace castmesh::room
