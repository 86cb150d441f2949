#include "cluster/memory/memory_event_bus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

namespace castmesh::cluster {
namespace {

std::shared_ptr<const std::string> text(const char* s) { return std::make_shared<const std::string>(s); }

TEST(MemoryEventBus, DeliversToMatchingPrefixesOnlyWithSamePayloadPointer) {
  MemoryEventBus bus("node-a");
  std::vector<Event> room1, all;
  auto s1 = bus.subscribe("room:1", [&](const Event& e) { room1.push_back(e); });
  auto s2 = bus.subscribe("", [&](const Event& e) { all.push_back(e); });
  auto p = text("{\"type\":\"chat\"}");
  ASSERT_TRUE(bus.publish(Lane::normal, "room:1", p).ok());
  ASSERT_TRUE(bus.publish(Lane::critical, "room:2", text("x")).ok());
  ASSERT_EQ(room1.size(), 1u);
  EXPECT_EQ(room1[0].payload.get(), p.get());  // no copy
  EXPECT_EQ(room1[0].topic, "room:1");
  EXPECT_EQ(room1[0].lane, Lane::normal);
  EXPECT_EQ(room1[0].id.node_id, "node-a");
  EXPECT_EQ(room1[0].id.seq, 1u);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].id.seq, 2u);
  EXPECT_EQ(all[1].lane, Lane::critical);
  EXPECT_EQ(bus.published_total(), 2u);
  EXPECT_EQ(bus.node_id(), "node-a");
}

TEST(MemoryEventBus, RejectsNullPayloadAndEmptyTopic) {
  MemoryEventBus bus;
  int n = 0;
  auto s = bus.subscribe("", [&](const Event&) { ++n; });
  EXPECT_EQ(bus.publish(Lane::normal, "t", nullptr).code(), Errc::malformed);
  EXPECT_EQ(bus.publish(Lane::normal, "", text("x")).code(), Errc::malformed);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(bus.published_total(), 0u);
}

TEST(MemoryEventBus, UnsubscribeOnResetAndDestruction) {
  MemoryEventBus bus;
  int a = 0, b = 0;
  auto sa = bus.subscribe("t", [&](const Event&) { ++a; });
  {
    auto sb = bus.subscribe("t", [&](const Event&) { ++b; });
    EXPECT_EQ(bus.subscriber_count(), 2u);
    (void)bus.publish(Lane::normal, "t", text("1"));
  }
  EXPECT_EQ(bus.subscriber_count(), 1u);
  (void)bus.publish(Lane::normal, "t", text("2"));
  sa.reset();
  EXPECT_FALSE(sa.active());
  (void)bus.publish(Lane::normal, "t", text("3"));
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(bus.subscriber_count(), 0u);
}

TEST(MemoryEventBus, MovedSubscriptionStaysActive) {
  MemoryEventBus bus;
  int n = 0;
  Subscription outer;
  {
    auto s = bus.subscribe("t", [&](const Event&) { ++n; });
    outer = std::move(s);
  }
  (void)bus.publish(Lane::normal, "t", text("1"));
  EXPECT_EQ(n, 1);
}

TEST(MemoryEventBus, HandlersMayPublishAndUnsubscribeReentrantly) {
  MemoryEventBus bus;
  std::vector<std::string> seen;
  Subscription second;
  auto first = bus.subscribe("a", [&](const Event& e) {
    seen.push_back("first:" + *e.payload);
    if (*e.payload == "go") {
      second.reset();  // the second handler must not see this event
      (void)bus.publish(Lane::normal, "b", text("nested"));
    }
  });
  second = bus.subscribe("a", [&](const Event& e) { seen.push_back("second:" + *e.payload); });
  auto other = bus.subscribe("b", [&](const Event& e) { seen.push_back("b:" + *e.payload); });
  (void)bus.publish(Lane::normal, "a", text("go"));
  EXPECT_EQ(seen, (std::vector<std::string>{"first:go", "b:nested"}));
}

TEST(MemoryEventBus, SubscriptionOutlivingBusIsSafe) {
  Subscription s;
  {
    MemoryEventBus bus;
    s = bus.subscribe("t", [](const Event&) {});
  }
  s.reset();  // must not touch the destroyed bus
  EXPECT_FALSE(s.active());
}

TEST(MemoryEventBus, ConcurrentPublishersGetUniqueSequenceNumbers) {
  MemoryEventBus bus;
  std::mutex mu;
  std::vector<uint64_t> seqs;
  auto s = bus.subscribe("", [&](const Event& e) {
    std::lock_guard lk(mu);
    seqs.push_back(e.id.seq);
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 500; ++i) (void)bus.publish(Lane::normal, "x", text("p"));
    });
  }
  for (auto& t : ts) t.join();
  ASSERT_EQ(seqs.size(), 2000u);
  std::sort(seqs.begin(), seqs.end());
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
}

TEST(Lane, Names) {
  EXPECT_STREQ(lane_name(Lane::critical), "critical");
  EXPECT_STREQ(lane_name(Lane::normal), "normal");
}

}  // namespace
}  // namespace castmesh::cluster
