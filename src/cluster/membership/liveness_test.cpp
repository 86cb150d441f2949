#include "cluster/membership/liveness.hpp"

#include <gtest/gtest.h>

namespace castmesh::cluster::membership {
namespace {

using namespace std::chrono_literals;

NodeInfo node(const std::string& id, uint64_t epoch = 1) {
  NodeInfo n;
  n.node_id = id;
  n.advertise_addr = id + ":8081";
  n.epoch = epoch;
  return n;
}

// interval 1 s, suspect after 2 s, offline after 3 s.
struct LivenessFixture : ::testing::Test {
  LivenessTracker t{1000ms, 2, 3};
  SteadyTime t0 = SteadyTime{} + 100h;
};

TEST_F(LivenessFixture, FirstSightingIsReportedAsJoin) {
  t.observe(node("b"), 0, t0);
  auto tr = t.evaluate(t0);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::offline, NodeState::alive}));
  EXPECT_TRUE(t.evaluate(t0 + 100ms).empty());  // reported once
}

TEST_F(LivenessFixture, SuspectThenOfflineAtTheThresholds) {
  t.observe(node("b"), 0, t0);
  (void)t.evaluate(t0);
  EXPECT_TRUE(t.evaluate(t0 + 1999ms).empty());
  EXPECT_EQ(*t.state_of("b", t0 + 1999ms), NodeState::alive);
  auto tr = t.evaluate(t0 + 2000ms);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::alive, NodeState::suspect}));
  EXPECT_TRUE(t.evaluate(t0 + 2999ms).empty());
  tr = t.evaluate(t0 + 3000ms);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::suspect, NodeState::offline}));
  auto snap = t.snapshot(t0 + 3500ms);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].state, NodeState::offline);
  EXPECT_EQ(snap[0].last_seen_ms_ago, 3500);
}

TEST_F(LivenessFixture, PushedHeartbeatsKeepANodeAlive) {
  for (int i = 0; i < 10; ++i) {
    t.observe(node("b"), 0, t0 + i * 1000ms);
    auto tr = t.evaluate(t0 + i * 1000ms + 999ms);
    if (i == 0) {
      EXPECT_EQ(tr.size(), 1u);
    } else {
      EXPECT_TRUE(tr.empty()) << i;
    }
  }
  EXPECT_EQ(t.snapshot(t0 + 9500ms)[0].heartbeats, 10u);
}

TEST_F(LivenessFixture, CounterHeartbeatCountsOnlyWhenTheCounterChanges) {
  t.observe(node("b"), 5, t0);
  (void)t.evaluate(t0);
  // Same counter read again and again: no heartbeat, the node ages.
  t.observe(node("b"), 5, t0 + 1000ms);
  t.observe(node("b"), 5, t0 + 1900ms);
  auto tr = t.evaluate(t0 + 2000ms);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0].to, NodeState::suspect);
  // Counter moves: back to alive, reported.
  t.observe(node("b"), 6, t0 + 2100ms);
  tr = t.evaluate(t0 + 2100ms);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::suspect, NodeState::alive}));
  EXPECT_EQ(t.snapshot(t0 + 2100ms)[0].heartbeats, 2u);
}

TEST_F(LivenessFixture, NewEpochWithSameCounterCounts) {
  t.observe(node("b", 1), 3, t0);
  (void)t.evaluate(t0);
  t.observe(node("b", 2), 3, t0 + 1500ms);
  EXPECT_EQ(t.snapshot(t0 + 1500ms)[0].last_seen_ms_ago, 0);
  EXPECT_EQ(t.snapshot(t0 + 1500ms)[0].info.epoch, 2u);
}

TEST_F(LivenessFixture, RecoveryFromOfflineIsReported) {
  t.observe(node("b"), 0, t0);
  (void)t.evaluate(t0);
  auto tr = t.evaluate(t0 + 5000ms);  // evaluated late: skips suspect
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::alive, NodeState::offline}));
  t.observe(node("b"), 0, t0 + 6000ms);
  tr = t.evaluate(t0 + 6000ms);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::offline, NodeState::alive}));
}

TEST_F(LivenessFixture, HeartbeatTimeFromTheSourceIsUsedAndNeverMovesBack) {
  // First sighting of a registry entry last written 2.5 s ago: already suspect.
  t.observe(node("b"), 9, t0, t0 - 2500ms);
  auto tr = t.evaluate(t0);
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0], (Transition{"b", NodeState::offline, NodeState::suspect}));
  // A first sighting already past the offline window is no transition at all.
  t.observe(node("c"), 9, t0, t0 - 10s);
  EXPECT_TRUE(t.evaluate(t0).empty());
  EXPECT_EQ(*t.state_of("c", t0), NodeState::offline);
  // Older report than the one known: ignored for last_seen.
  t.observe(node("b"), 10, t0 + 100ms, t0);
  t.observe(node("b"), 11, t0 + 200ms, t0 - 1s);
  EXPECT_EQ(t.snapshot(t0 + 200ms)[0].last_seen_ms_ago, 200);
}

TEST_F(LivenessFixture, ForgetsLongOfflineNodes) {
  t.observe(node("b"), 0, t0);
  t.observe(node("c"), 0, t0);
  (void)t.evaluate(t0);
  t.observe(node("c"), 0, t0 + 30s);
  (void)t.evaluate(t0 + 30s);
  EXPECT_EQ(t.size(), 2u);  // b offline for 27 s: still remembered
  (void)t.evaluate(t0 + 33s + 1ms);
  EXPECT_EQ(t.size(), 1u);  // b gone after 10 offline windows past offline
  EXPECT_EQ(t.state_of("b", t0 + 34s).code(), Errc::not_found);
  t.forget("c");
  EXPECT_EQ(t.size(), 0u);
}

TEST(Liveness, FractionalThresholdsAndShortInterval) {
  LivenessTracker t(100ms, 2, 3);
  EXPECT_EQ(t.suspect_after(), 200ms);
  EXPECT_EQ(t.offline_after(), 300ms);
  LivenessTracker u(1000ms, 1.5, 2.5);
  EXPECT_EQ(u.suspect_after(), 1500ms);
  EXPECT_EQ(u.offline_after(), 2500ms);
}

}  // namespace
}  // namespace castmesh::cluster::membership
