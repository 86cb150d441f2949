#include "cluster/membership/node_info.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace castmesh::cluster::membership {
namespace {

NodeInfo sample() {
  NodeInfo n;
  n.node_id = "node-a_1.x";
  n.advertise_addr = "10.0.0.7:8081";
  n.group = "eu-west";
  n.version = "0.4.0";
  n.epoch = 12;
  n.started_ms = 1700000000123;
  n.load = Load{5, 2, 1};
  return n;
}

TEST(NodeInfo, JsonRoundTripKeepsEveryField) {
  NodeInfo n = sample();
  std::string text = to_json_text(n);
  auto back = parse_node_info(text);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, n);
  auto v = boost::json::parse(text);
  EXPECT_EQ(v.at("node_id").as_string(), "node-a_1.x");
  EXPECT_EQ(v.at("load").at("connections").as_int64(), 5);
  EXPECT_EQ(v.at("epoch").to_number<uint64_t>(), 12u);
}

TEST(NodeInfo, LargeEpochRoundTrips) {
  NodeInfo n = sample();
  n.epoch = 18446744073709551615ull;
  auto back = parse_node_info(to_json_text(n));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->epoch, n.epoch);
}

TEST(NodeInfo, IgnoresUnknownFields) {
  auto v = to_json(sample());
  v["future"] = "x";
  auto back = node_info_from_json(v);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, sample());
}

TEST(NodeInfo, RefusesBadInput) {
  auto bad = [](auto mutate) {
    boost::json::value v = to_json(sample());
    mutate(v.as_object());
    return node_info_from_json(v).code();
  };
  EXPECT_EQ(bad([](auto& o) { o["node_id"] = ""; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["node_id"] = "has space"; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["node_id"] = "a/b"; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["node_id"] = std::string(65, 'a'); }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["node_id"] = 7; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o.erase("advertise_addr"); }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["group"] = nullptr; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["epoch"] = -1; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["epoch"] = "3"; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["epoch"] = 1.5; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["started_ms"] = "now"; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o.erase("load"); }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["load"] = boost::json::array{}; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["load"].as_object()["rooms"] = -2; }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["load"].as_object().erase("streams"); }), Errc::malformed);
  EXPECT_EQ(bad([](auto& o) { o["version"] = std::string(2000, 'v'); }), Errc::malformed);
  // And the unmodified sample is accepted (the lambda above is not refusing everything).
  EXPECT_EQ(bad([](auto&) {}), Errc::ok);

  EXPECT_EQ(parse_node_info("{").code(), Errc::malformed);
  EXPECT_EQ(parse_node_info("[1,2]").code(), Errc::malformed);
  EXPECT_EQ(parse_node_info("").code(), Errc::malformed);
  EXPECT_EQ(parse_node_info(std::string(70000, ' ')).code(), Errc::too_large);
}

TEST(NodeInfo, NodeIdCharsetAndStateNames) {
  EXPECT_TRUE(valid_node_id("A-z_0.9"));
  EXPECT_TRUE(valid_node_id(std::string(64, 'x')));
  EXPECT_FALSE(valid_node_id(std::string(65, 'x')));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id("a:b"));
  EXPECT_FALSE(valid_node_id("é"));
  EXPECT_STREQ(state_name(NodeState::alive), "alive");
  EXPECT_STREQ(state_name(NodeState::suspect), "suspect");
  EXPECT_STREQ(state_name(NodeState::offline), "offline");
}

}  // namespace
}  // namespace castmesh::cluster::membership
