#include "room/permissions.hpp"

#include <gtest/gtest.h>

namespace castmesh::room {
namespace {

TEST(Permissions, RoleDefaultsFollowTheProtocol) {
  EXPECT_EQ(role_defaults("creator", false), kAllPerms);
  EXPECT_EQ(role_defaults("admin", false), kAllPerms);
  EXPECT_EQ(role_defaults("member", false), kControlPlayback | kSeek | kManagePlaylist | kChat);
  EXPECT_EQ(role_defaults("guest", false), kChat);
  EXPECT_EQ(role_defaults("guest", true), kChat | kControlPlayback | kSeek);
  EXPECT_EQ(role_defaults("member", true), role_defaults("member", false));
  EXPECT_EQ(role_defaults("root", false), 0u);  // a global role is not a room role
  EXPECT_EQ(role_defaults("", false), 0u);
}

TEST(Permissions, RevocationWinsOverGrant) {
  // member granted manage_members, chat both granted and revoked
  Perms p = effective_permissions("member", kManageMembers | kChat, kChat, false);
  EXPECT_TRUE(p & kManageMembers);
  EXPECT_FALSE(p & kChat);
  EXPECT_TRUE(p & kSeek);
  // revoking from the creator works too
  EXPECT_EQ(effective_permissions("creator", 0, kSeek, false), kAllPerms & ~kSeek);
  // guests_can_control can be revoked per member
  EXPECT_EQ(effective_permissions("guest", 0, kSeek, true), kChat | kControlPlayback);
  // unknown bits never leak into the result
  EXPECT_EQ(effective_permissions("guest", 1u << 40, 0, false), kChat);
}

TEST(Permissions, NamesRoundTrip) {
  for (Perms b = 1; b <= kAllPerms; b <<= 1) {
    auto name = perm_name(b);
    ASSERT_FALSE(name.empty()) << b;
    EXPECT_EQ(perm_from_name(name), b);
  }
  EXPECT_EQ(perm_name(kSeek | kChat), "");
  EXPECT_EQ(perm_from_name("fly"), std::nullopt);
  EXPECT_EQ(perm_names(kSeek | kChat | kControlPlayback),
            (std::vector<std::string>{"control_playback", "seek", "chat"}));
  EXPECT_TRUE(perm_names(0).empty());
  auto all = perms_from_names({"control_playback", "seek", "manage_playlist", "manage_members", "chat", "manage_live"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, kAllPerms);
  auto bad = perms_from_names({"chat", "sudo"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), Errc::malformed);
  EXPECT_NE(bad.error().detail.find("sudo"), std::string::npos);
}

TEST(Permissions, RolesAndRanks) {
  EXPECT_GT(role_rank("creator"), role_rank("admin"));
  EXPECT_GT(role_rank("admin"), role_rank("member"));
  EXPECT_GT(role_rank("member"), role_rank("guest"));
  EXPECT_EQ(role_rank("owner"), -1);
  EXPECT_TRUE(is_room_role("guest"));
  EXPECT_FALSE(is_room_role("root"));
}

}  // namespace
}  // namespace castmesh::room
