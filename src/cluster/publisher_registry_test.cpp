#include "cluster/publisher_registry.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "cluster/memory/memory_publisher_registry.hpp"
#include "cluster/redis/redis_publisher_registry.hpp"
#include "cluster/redis/redis_test_util.hpp"

namespace castmesh::cluster {
namespace {

PublisherEntry want(const std::string& node, const std::string& gen, const std::string& stream = "live/cbar") {
  PublisherEntry e;
  e.stream = stream;
  e.node_id = node;
  e.addr = node + ":7000";
  e.generation = gen;
  e.started_ms = 1700000000000;
  return e;
}

// The rules every implementation follows; `expire` waits until a lease of `ttl` ms is gone.
void check_rules(PublisherRegistry& reg) {
  // An exclusive claim wins once; the second node sees the holder.
  auto a = reg.claim(want("a", "g1"), ClaimMode::exclusive, std::nullopt, 10000);
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_TRUE(a->won);
  EXPECT_EQ(a->entry.node_id, "a");
  EXPECT_GE(a->entry.epoch, 1u);
  auto b = reg.claim(want("b", "g2"), ClaimMode::exclusive, std::nullopt, 10000);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->won);
  EXPECT_EQ(b->entry.node_id, "a");
  EXPECT_EQ(b->entry.epoch, a->entry.epoch);

  // The holder refreshes (and stores codecs); the looked-up entry shows them.
  PublisherEntry held = a->entry;
  held.codecs = "H264,AAC";
  ASSERT_TRUE(reg.refresh(held, 10000, "17:2").ok());
  EXPECT_TRUE(a->continuation.empty()) << "a first claim has nothing to continue";
  auto look = reg.lookup("live/cbar");
  ASSERT_TRUE(look.ok());
  ASSERT_TRUE(look->has_value());
  EXPECT_EQ((*look)->codecs, "H264,AAC");
  EXPECT_EQ((*look)->addr, "a:7000");

  // A takeover that names a different holder is refused; one that names the holder wins with a
  // larger epoch.
  PublisherEntry wrong = a->entry;
  wrong.epoch += 7;
  auto t1 = reg.claim(want("b", "g2"), ClaimMode::takeover, wrong, 10000);
  ASSERT_TRUE(t1.ok());
  EXPECT_FALSE(t1->won);
  auto t2 = reg.claim(want("b", "g2"), ClaimMode::takeover, a->entry, 10000);
  ASSERT_TRUE(t2.ok());
  ASSERT_TRUE(t2->won);
  EXPECT_GT(t2->entry.epoch, a->entry.epoch);
  EXPECT_EQ(t2->entry.node_id, "b");

  // The old owner is fenced: it can neither refresh nor remove the new entry.
  EXPECT_EQ(t2->continuation, "17:2") << "the successor gets the last holder's continuation";
  auto r = reg.refresh(held, 10000, "99:9");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::conflict);
  ASSERT_TRUE(reg.release(held).ok());
  look = reg.lookup("live/cbar");
  ASSERT_TRUE(look.ok() && look->has_value());
  EXPECT_EQ((*look)->node_id, "b");

  // The fenced refresh stored nothing; the holder's own refresh replaces the continuation.
  ASSERT_TRUE(reg.refresh(t2->entry, 10000, "23:3").ok());
  // A second stream of b, one of c; removing node b removes b's two entries only.
  ASSERT_TRUE(reg.claim(want("b", "g3", "live/other"), ClaimMode::exclusive, std::nullopt, 10000)->won);
  ASSERT_TRUE(reg.claim(want("c", "g4", "live/third"), ClaimMode::exclusive, std::nullopt, 10000)->won);
  auto all = reg.list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].stream, "live/cbar");
  auto removed = reg.remove_node("b");
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->size(), 2u);
  all = reg.list();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].node_id, "c");

  // The epoch never goes back: a fresh claim after removal is above every earlier one.
  auto again = reg.claim(want("a", "g5"), ClaimMode::exclusive, std::nullopt, 10000);
  ASSERT_TRUE(again.ok() && again->won);
  EXPECT_GT(again->entry.epoch, t2->entry.epoch);
  EXPECT_EQ(again->continuation, "23:3") << "kept after the holder's entry was removed";

  // Release by the holder removes the entry.
  ASSERT_TRUE(reg.release(again->entry).ok());
  look = reg.lookup("live/cbar");
  ASSERT_TRUE(look.ok());
  EXPECT_FALSE(look->has_value());
}

TEST(MemoryPublisherRegistry, ClaimFencingAndRemoval) {
  MemoryPublisherRegistry reg;
  check_rules(reg);
}

TEST(MemoryPublisherRegistry, LeaseExpires) {
  int64_t now = 1000;
  MemoryPublisherRegistry reg([&] { return now; });
  auto a = reg.claim(want("a", "g1"), ClaimMode::exclusive, std::nullopt, 500);
  ASSERT_TRUE(a.ok() && a->won);
  now += 499;
  EXPECT_TRUE(reg.lookup("live/cbar")->has_value());
  now += 1;
  EXPECT_FALSE(reg.lookup("live/cbar")->has_value());
  EXPECT_EQ(reg.refresh(a->entry, 500, "").code(), Errc::conflict);
  // The next claim wins with a larger epoch.
  auto b = reg.claim(want("b", "g2"), ClaimMode::exclusive, std::nullopt, 500);
  ASSERT_TRUE(b.ok() && b->won);
  EXPECT_GT(b->entry.epoch, a->entry.epoch);
}

TEST(PublisherEntryJson, RoundTripAndRefusals) {
  PublisherEntry e = want("node-1", "abc");
  e.epoch = 42;
  e.codecs = "H264,AAC";
  auto back = entry_from_json(entry_to_json(e));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, e);
  EXPECT_FALSE(entry_from_json("[]").ok());
  EXPECT_FALSE(entry_from_json(R"({"stream":"a/b"})").ok());
  EXPECT_FALSE(entry_from_json("{not json").ok());
  EXPECT_EQ(codec_list("H264", "AAC"), "H264,AAC");
  EXPECT_EQ(codec_list("", "AAC"), "AAC");
  EXPECT_EQ(codec_list("H264", ""), "H264");
}

TEST(RedisPublisherRegistry, ClaimFencingAndRemoval) {
  auto url = redis::test::test_redis_url();
  ASSERT_TRUE(url);
  redis::RedisPublisherRegistry reg(*url, redis::test::unique_prefix("pubreg"), std::chrono::milliseconds(2000));
  check_rules(reg);
}

TEST(RedisPublisherRegistry, LeaseExpiresInRedis) {
  auto url = redis::test::test_redis_url();
  ASSERT_TRUE(url);
  redis::RedisPublisherRegistry reg(*url, redis::test::unique_prefix("pubreg"), std::chrono::milliseconds(2000));
  auto a = reg.claim(want("a", "g1"), ClaimMode::exclusive, std::nullopt, 150);
  ASSERT_TRUE(a.ok() && a->won);
  ASSERT_TRUE(reg.lookup("live/cbar")->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(reg.lookup("live/cbar")->has_value());
  EXPECT_EQ(reg.refresh(a->entry, 150, "").code(), Errc::conflict);
  // The listing skips the expired entry even though the index still names it.
  auto all = reg.list();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
}

TEST(RedisPublisherRegistry, UnreachableRedisIsUnavailable) {
  redis::RedisUrl url;
  url.host = "127.0.0.1";
  url.port = 1;  // nothing listens there
  redis::RedisPublisherRegistry reg(url, "x", std::chrono::milliseconds(200));
  auto r = reg.claim(want("a", "g"), ClaimMode::exclusive, std::nullopt, 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::unavailable);
}

}  // namespace
}  // namespace castmesh::cluster
