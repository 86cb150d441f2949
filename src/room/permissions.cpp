#include "room/permissions.hpp"

#include <array>

namespace castmesh::room {
namespace {

struct Named {
  Perms bit;
  std::string_view name;
};

constexpr std::array<Named, 6> kNames{{
    {kControlPlayback, "control_playback"},
    {kSeek, "seek"},
    {kManagePlaylist, "manage_playlist"},
    {kManageMembers, "manage_members"},
    {kChat, "chat"},
    {kManageLive, "manage_live"},
}};

}  // namespace

bool is_room_role(std::string_view role) noexcept { return role_rank(role) >= 0; }

int role_rank(std::string_view role) noexcept {
  if (role == kRoomCreator) return 3;
  if (role == kRoomAdmin) return 2;
  if (role == kRoomMember) return 1;
  if (role == kRoomGuest) return 0;
  return -1;
}

Perms role_defaults(std::string_view role, bool guests_can_control) noexcept {
  if (role == kRoomCreator || role == kRoomAdmin) return kAllPerms;
  if (role == kRoomMember) return kControlPlayback | kSeek | kManagePlaylist | kChat;
  if (role == kRoomGuest) return kChat | (guests_can_control ? (kControlPlayback | kSeek) : 0);
  return 0;
}

Perms effective_permissions(std::string_view role, Perms grants, Perms revokes,
                            bool guests_can_control) noexcept {
  return (role_defaults(role, guests_can_control) | grants) & ~revokes & kAllPerms;
}

std::optional<Perms> perm_from_name(std::string_view name) noexcept {
  for (const auto& n : kNames) {
    if (n.name == name) return n.bit;
  }
  return std::nullopt;
}

std::string_view perm_name(Perms bit) noexcept {
  for (const auto& n : kNames) {
    if (n.bit == bit) return n.name;
  }
  return {};
}

std::vector<std::string> perm_names(Perms p) {
  std::vector<std::string> out;
  for (const auto& n : kNames) {
    if (p & n.bit) out.emplace_back(n.name);
  }
  return out;
}

Result<Perms> perms_from_names(const std::vector<std::string>& names) {
  Perms p = 0;
  for (const auto& name : names) {
    auto bit = perm_from_name(name);
    if (!bit) return Error{Errc::malformed, "unknown permission \"" + name + "\""};
    p |= *bit;
  }
  return p;
}

}  // namespace castmesh::room
