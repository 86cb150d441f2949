#pragma once
/// \file Room permissions: named bits, room roles and their defaults (docs/protocol.md
/// "Permissions"). Effective permissions = (role defaults | grants) & ~revokes: a revocation
/// always wins over a grant.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace castmesh::room {

/// A set of permission bits (store::Member::grants / revokes hold the same values).
using Perms = uint64_t;

/// The named bits. Values are stored in the database: never renumber.
inline constexpr Perms kControlPlayback = 1u << 0;  ///< "control_playback": play, pause, rate, next, set_item
inline constexpr Perms kSeek = 1u << 1;             ///< "seek"
inline constexpr Perms kManagePlaylist = 1u << 2;   ///< "manage_playlist": add, remove, move items
inline constexpr Perms kManageMembers = 1u << 3;    ///< "manage_members": roles, grants, kick, ban
inline constexpr Perms kChat = 1u << 4;             ///< "chat"
inline constexpr Perms kManageLive = 1u << 5;       ///< "manage_live": read/rotate the publish key
inline constexpr Perms kAllPerms = (1u << 6) - 1;

/// Room roles (store::Member::role).
inline constexpr std::string_view kRoomCreator = "creator";
inline constexpr std::string_view kRoomAdmin = "admin";
inline constexpr std::string_view kRoomMember = "member";
inline constexpr std::string_view kRoomGuest = "guest";

/// True for "creator", "admin", "member", "guest".
bool is_room_role(std::string_view role) noexcept;

/// Rank used for "may act on" checks: creator 3, admin 2, member 1, guest 0, unknown -1.
int role_rank(std::string_view role) noexcept;

/// Role defaults: creator, admin -> all; member -> control_playback|seek|manage_playlist|chat;
/// guest -> chat (plus control_playback|seek when `guests_can_control`); unknown role -> none.
Perms role_defaults(std::string_view role, bool guests_can_control) noexcept;

/// (role_defaults(role) | grants) & ~revokes, limited to kAllPerms.
Perms effective_permissions(std::string_view role, Perms grants, Perms revokes,
                            bool guests_can_control) noexcept;

/// The bit named `name` ("control_playback", ...), or nullopt for an unknown name.
std::optional<Perms> perm_from_name(std::string_view name) noexcept;

/// Name of one bit; "" when `bit` is not exactly one known bit.
std::string_view perm_name(Perms bit) noexcept;

/// Names of the bits set in `p`, in bit order (control_playback first).
std::vector<std::string> perm_names(Perms p);

/// OR of the named bits. Errors: Errc::malformed naming the first unknown name.
Result<Perms> perms_from_names(const std::vector<std::string>& names);

}  // namespace castmesh::room
