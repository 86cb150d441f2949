#include "room/settings.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace castmesh::room {
namespace {

TEST(RoomSettings, ParseIsLenientAndRoundTrips) {
  EXPECT_EQ(parse_settings("{}"), RoomSettings{});
  EXPECT_EQ(parse_settings("not json"), RoomSettings{});
  EXPECT_EQ(parse_settings("[]"), RoomSettings{});
  auto s = parse_settings(R"({"guests_can_control":true,"auto_advance":false,"pause_on_buffering":"yes","x":1})");
  EXPECT_TRUE(s.guests_can_control);
  EXPECT_FALSE(s.auto_advance);
  EXPECT_FALSE(s.pause_on_buffering);  // wrong type -> default
  EXPECT_EQ(parse_settings(serialize_settings(s)), s);
  EXPECT_EQ(serialize_settings(RoomSettings{}),
            R"({"guests_can_control":false,"pause_on_buffering":false,"auto_advance":true})");
}

TEST(RoomSettings, PatchIsStrict) {
  auto p = parse_settings_patch(boost::json::parse(R"({"pause_on_buffering":true})"));
  ASSERT_TRUE(p.ok());
  RoomSettings s;
  apply_settings_patch(s, *p);
  EXPECT_TRUE(s.pause_on_buffering);
  EXPECT_TRUE(s.auto_advance);  // untouched
  EXPECT_EQ(parse_settings_patch(boost::json::parse(R"({"pause_on_buffering":1})")).code(), Errc::malformed);
  EXPECT_EQ(parse_settings_patch(boost::json::parse(R"({"colour":true})")).code(), Errc::malformed);
  EXPECT_EQ(parse_settings_patch(boost::json::parse(R"(true)")).code(), Errc::malformed);
}

}  // namespace
}  // namespace castmesh::room
