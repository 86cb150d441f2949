#include "cluster/membership/membership.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace castmesh::cluster::membership {

void PrintTo(const Transition& t, std::ostream* os) {
  *os << t.node_id << " " << state_name(t.from) << "->" << state_name(t.to);
}

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

MembershipConfig static_config(const std::string& id, std::vector<std::string> peers) {
  MembershipConfig c;
  c.mode = Discovery::static_;
  c.interval = 100ms;
  c.suspect_threshold = 2;
  c.offline_threshold = 3;
  c.lease = 1000ms;
  c.self.node_id = id;
  c.self.advertise_addr = id + ":8081";
  c.self.group = "g";
  c.self.version = "test";
  c.self.started_ms = 1;
  c.peers = std::move(peers);
  return c;
}

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds limit) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

struct Seen {
  std::mutex mu;
  std::vector<std::pair<Transition, Clock::time_point>> events;
  void add(const std::string& id, NodeState from, NodeState to) {
    std::lock_guard lk(mu);
    events.push_back({Transition{id, from, to}, Clock::now()});
  }
  std::optional<Clock::time_point> when(const std::string& id, NodeState to) {
    std::lock_guard lk(mu);
    for (auto& [t, at] : events)
      if (t.node_id == id && t.to == to) return at;
    return std::nullopt;
  }
};

// A fake elector: always leader; fenced_check answers as told.
class FakeElector : public LeaderElector {
 public:
  explicit FakeElector(std::atomic<bool>& fence) : fence_(fence) {}
  Status step() override { ++steps; return ok_status(); }
  LeaderStatus status() const override { return {true, 4, "a", 4}; }
  bool is_leader() const override { return true; }
  Result<bool> fenced_check() override { return fence_.load(); }
  void resign() override {}
  std::atomic<int> steps{0};

 private:
  std::atomic<bool>& fence_;
};

TEST(Membership, StaticPeersSeeEachOtherAndDetectAStoppedNode) {
  std::unique_ptr<Membership> a, b;
  std::atomic<bool> b_up{true}, a_up{true};
  MembershipDeps da, db;
  da.load = [] { return Load{3, 1, 0}; };
  da.send_heartbeat = [&](const std::string& addr, const NodeInfo& self) -> Result<NodeInfo> {
    EXPECT_EQ(addr, "b:8081");
    if (!b_up) return Error{Errc::unavailable, "b is down"};
    b->on_heartbeat(self);
    return b->self_info();
  };
  db.send_heartbeat = [&](const std::string&, const NodeInfo& self) -> Result<NodeInfo> {
    if (!a_up) return Error{Errc::unavailable, "a is down"};
    a->on_heartbeat(self);
    return a->self_info();
  };
  a = std::make_unique<Membership>(static_config("a", {"b:8081", "a:8081"}), std::move(da));
  b = std::make_unique<Membership>(static_config("b", {"a:8081"}), std::move(db));
  Seen seen;
  a->on_state_change([&](const std::string& id, NodeState f, NodeState t) { seen.add(id, f, t); });
  ASSERT_TRUE(a->start().ok());
  ASSERT_TRUE(b->start().ok());

  ASSERT_TRUE(wait_for([&] { return seen.when("b", NodeState::alive).has_value(); }, 2s));
  ASSERT_TRUE(wait_for([&] { return b->nodes().size() == 2; }, 2s));
  std::this_thread::sleep_for(350ms);  // several intervals: b must stay alive
  EXPECT_FALSE(seen.when("b", NodeState::suspect).has_value());

  auto view = a->nodes();
  ASSERT_EQ(view.size(), 2u);
  EXPECT_TRUE(view[0].is_self);
  EXPECT_EQ(view[0].info.node_id, "a");
  EXPECT_EQ(view[0].info.load, (Load{3, 1, 0}));
  EXPECT_EQ(view[1].info.node_id, "b");
  EXPECT_FALSE(view[1].is_self);
  EXPECT_EQ(view[1].state, NodeState::alive);
  EXPECT_LT(view[1].last_seen_ms_ago, 200);
  EXPECT_EQ(view[1].info.advertise_addr, "b:8081");
  // b's view holds a's load as sent in a's heartbeats.
  auto bview = b->nodes();
  ASSERT_EQ(bview.size(), 2u);
  EXPECT_EQ(bview[1].info.node_id, "a");
  EXPECT_EQ(bview[1].info.load, (Load{3, 1, 0}));

  auto st = a->stats();
  EXPECT_GT(st.heartbeats_sent_total, 2u);
  EXPECT_GT(st.heartbeats_received_total, 2u);
  EXPECT_EQ(st.nodes_alive, 2);
  EXPECT_EQ(st.leader, 0);

  // b goes away: no more heartbeats in either direction.
  b_up = false;
  b->stop();
  const auto stopped = Clock::now();
  ASSERT_TRUE(wait_for([&] { return seen.when("b", NodeState::offline).has_value(); }, 2s));
  auto suspect_at = seen.when("b", NodeState::suspect);
  auto offline_at = seen.when("b", NodeState::offline);
  ASSERT_TRUE(suspect_at.has_value());
  auto ms = [&](Clock::time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t - stopped).count(); };
  // Last heartbeat from b at most one interval (100 ms) before the stop; suspect 200 ms after
  // it, offline 300 ms after it; evaluation every 25 ms; some scheduling slack.
  // (Bounds leave room for a loaded machine; the design allows interval * 3 + 1 s.)
  EXPECT_GE(ms(*suspect_at), 50);
  EXPECT_LE(ms(*suspect_at), 450);
  EXPECT_GE(ms(*offline_at), 150);
  EXPECT_LE(ms(*offline_at), 700);
  EXPECT_GE(*offline_at - *suspect_at, 70ms);
  view = a->nodes();
  ASSERT_EQ(view.size(), 2u);
  EXPECT_EQ(view[1].state, NodeState::offline);
  EXPECT_GE(view[1].last_seen_ms_ago, 300);
  st = a->stats();
  EXPECT_EQ(st.nodes_offline, 1);
  EXPECT_GT(st.heartbeats_failed_total, 0u);

  // b comes back (a new process with the same id): alive again, reported.
  b = std::make_unique<Membership>(static_config("b", {"a:8081"}), MembershipDeps{});
  b_up = true;
  ASSERT_TRUE(wait_for([&] { return a->nodes()[1].state == NodeState::alive; }, 2s));
  ASSERT_TRUE(wait_for(
      [&] {
        std::lock_guard lk(seen.mu);
        return seen.events.back().first == Transition{"b", NodeState::offline, NodeState::alive};
      },
      1s));
  a_up = false;
}

TEST(Membership, RefusesConfigsThatCannotWork) {
  auto cfg = static_config("a", {});
  cfg.mode = Discovery::k8s_dns;
  MembershipDeps d;
  d.send_heartbeat = [](const std::string&, const NodeInfo& n) -> Result<NodeInfo> { return n; };
  d.resolve = [](const std::string&) -> Result<std::vector<std::string>> { return std::vector<std::string>{}; };
  {
    Membership m(cfg, std::move(d));
    auto st = m.start();
    EXPECT_EQ(st.code(), Errc::config_invalid);
    EXPECT_NE(st.error().detail.find("k8s_dns"), std::string::npos);
  }
  {
    auto c = static_config("bad id", {});
    Membership m(c, {});
    EXPECT_EQ(m.start().code(), Errc::config_invalid);
  }
  {
    auto c = static_config("a", {});
    c.offline_threshold = 2;
    Membership m(c, {});
    auto st = m.start();
    EXPECT_EQ(st.code(), Errc::config_invalid);
    EXPECT_NE(st.error().detail.find("cluster.offline_threshold"), std::string::npos);
  }
  {
    auto c = static_config("a", {});
    c.interval = 50ms;
    Membership m(c, {});
    EXPECT_EQ(m.start().code(), Errc::config_invalid);
  }
  {
    auto c = static_config("a", {"b:1"});  // peers but no heartbeat client
    Membership m(c, {});
    EXPECT_EQ(m.start().code(), Errc::config_invalid);
  }
  {
    auto c = static_config("a", {});
    c.mode = Discovery::redis;
    c.redis.host = "";
    Membership m(c, {});
    EXPECT_EQ(m.start().code(), Errc::config_invalid);
  }
  {
    // Static without peers: a single node, valid.
    Membership m(static_config("solo", {}), {});
    ASSERT_TRUE(m.start().ok());
    EXPECT_EQ(m.start().code(), Errc::conflict);  // started once only
    std::this_thread::sleep_for(150ms);
    auto v = m.nodes();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_TRUE(v[0].is_self);
    EXPECT_EQ(v[0].state, NodeState::alive);
    EXPECT_TRUE(m.redis_ok());
    m.stop();
    m.stop();  // idempotent
  }
}

TEST(Membership, K8sDnsPollsResolvedAddressesAndSkipsItsOwn) {
  auto cfg = static_config("a", {});
  cfg.mode = Discovery::k8s_dns;
  cfg.dns_name = "svc.ns.svc";
  std::atomic<int> to_self{0}, resolves{0};
  MembershipDeps d;
  d.resolve = [&](const std::string& name) -> Result<std::vector<std::string>> {
    EXPECT_EQ(name, "svc.ns.svc");
    ++resolves;
    return std::vector<std::string>{"10.0.0.2:8081", "10.0.0.1:8081", "10.0.0.3:8081"};
  };
  d.send_heartbeat = [&](const std::string& addr, const NodeInfo& self) -> Result<NodeInfo> {
    NodeInfo peer;
    peer.advertise_addr = addr;
    if (addr == "10.0.0.1:8081") {
      ++to_self;
      return self;  // our own pod
    }
    if (addr == "10.0.0.3:8081") return Error{Errc::timeout, "no answer"};
    peer.node_id = "pod-2";
    return peer;
  };
  Membership m(cfg, std::move(d));
  ASSERT_TRUE(m.start().ok());
  ASSERT_TRUE(wait_for([&] { return m.nodes().size() == 2; }, 2s));
  std::this_thread::sleep_for(350ms);
  auto v = m.nodes();
  ASSERT_EQ(v.size(), 2u);  // self + pod-2; the silent address is not a node
  EXPECT_EQ(v[1].info.node_id, "pod-2");
  EXPECT_EQ(v[1].state, NodeState::alive);
  EXPECT_EQ(to_self.load(), 1);  // learned once, then skipped
  EXPECT_GE(resolves.load(), 3);
  EXPECT_GT(m.stats().heartbeats_failed_total, 1u);
  m.stop();
}

TEST(Membership, LeaderTaskRunsOnlyAfterThePassedFencedCheck) {
  std::atomic<bool> fence{false};
  auto elector = std::make_unique<FakeElector>(fence);
  FakeElector* e = elector.get();
  MembershipDeps d;
  d.elector = std::move(elector);
  Membership m(static_config("a", {}), std::move(d));
  std::atomic<int> runs{0};
  m.set_leader_task([&] { ++runs; });
  ASSERT_TRUE(m.start().ok());
  std::this_thread::sleep_for(350ms);
  EXPECT_EQ(runs.load(), 0);  // fence refused
  EXPECT_GE(e->steps.load(), 1);
  fence = true;
  ASSERT_TRUE(wait_for([&] { return runs.load() >= 2; }, 2s));
  auto v = m.nodes();
  EXPECT_TRUE(v[0].is_leader);
  EXPECT_EQ(m.leader().epoch, 4u);
  auto st = m.stats();
  EXPECT_EQ(st.leader, 1);
  EXPECT_EQ(st.leader_changes_total, 1u);
  EXPECT_GE(st.leader_tasks_total, 2u);
  m.stop();
}

TEST(Membership, RedisModeWithUnreachableRedisKeepsRunningAndSaysSo) {
  auto cfg = static_config("a", {});
  cfg.mode = Discovery::redis;
  cfg.redis.host = "127.0.0.1";
  cfg.redis.port = 1;  // nothing listens on port 1 of the loopback
  Membership m(cfg, {});
  ASSERT_TRUE(m.start().ok());
  std::this_thread::sleep_for(250ms);
  EXPECT_FALSE(m.redis_ok());
  EXPECT_GE(m.stats().heartbeats_failed_total, 2u);
  EXPECT_EQ(m.stats().heartbeats_sent_total, 0u);
  EXPECT_EQ(m.nodes().size(), 1u);
  EXPECT_EQ(m.self_info().epoch, 0u);
  m.stop();
}

}  // namespace
}  // namespace castmesh::cluster::membership
