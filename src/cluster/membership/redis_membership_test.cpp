// Suites that need a real Redis (CASTMESH_TEST_REDIS_URL; CTest runs them as cluster.redis).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#include "cluster/membership/membership.hpp"
#include "cluster/membership/redis_leader.hpp"
#include "cluster/membership/redis_registry.hpp"

extern char** environ;

namespace castmesh::cluster::membership {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The test server's URL, or nullopt (the test is skipped).
std::optional<redis::RedisUrl> test_url() {
  const char* u = std::getenv("CASTMESH_TEST_REDIS_URL");
  if (!u || !*u) return std::nullopt;
  auto r = redis::parse_redis_url(u);
  if (!r) return std::nullopt;
  return *r;
}

#define REQUIRE_REDIS(var)                                             \
  auto var##_opt = test_url();                                         \
  if (!var##_opt) GTEST_SKIP() << "CASTMESH_TEST_REDIS_URL is not set"; \
  const redis::RedisUrl var = *var##_opt

// A key prefix no other test run uses.
std::string unique_prefix(const std::string& name) {
  std::random_device rd;
  return "cmtest" + std::to_string(rd()) + name;
}

NodeInfo node(const std::string& id) {
  NodeInfo n;
  n.node_id = id;
  n.advertise_addr = id + ":8081";
  n.group = "g1";
  n.version = "1.2.3";
  n.started_ms = 1700000000000;
  n.load = Load{7, 2, 1};
  return n;
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

std::vector<std::string> smembers(const redis::RedisUrl& url, const std::string& key) {
  auto c = redis::RedisConnection::connect(url, 1s);
  EXPECT_TRUE(c.ok());
  if (!c) return {};
  auto r = (*c)->command({"SMEMBERS", key});
  std::vector<std::string> out;
  if (r && r->type == redis::Reply::Type::array)
    for (auto& e : r->elements) out.push_back(e.str);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RedisRegistry, RegisterListHeartbeatAndEpochFence) {
  REQUIRE_REDIS(url);
  RedisRegistryConfig cfg;
  cfg.key_prefix = unique_prefix("reg");
  cfg.interval = 1000ms;
  cfg.offline_threshold = 3;
  RedisRegistry r1(url, cfg);
  auto e1 = r1.register_node(node("n1"));
  ASSERT_TRUE(e1.ok()) << e1.error().message();
  EXPECT_GE(*e1, 1u);
  EXPECT_TRUE(r1.ok());
  EXPECT_EQ(r1.hash_ttl(), 5000ms);

  auto l = r1.list();
  ASSERT_TRUE(l.ok()) << l.error().message();
  ASSERT_EQ(l->size(), 1u);
  NodeInfo want = node("n1");
  want.epoch = *e1;
  EXPECT_EQ((*l)[0].info, want);
  EXPECT_EQ((*l)[0].heartbeat, 1u);
  EXPECT_LT((*l)[0].age_ms, 500);

  NodeInfo changed = node("n1");
  changed.load.connections = 99;
  ASSERT_TRUE(r1.heartbeat(changed).ok());
  l = r1.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].heartbeat, 2u);
  EXPECT_EQ((*l)[0].info.load.connections, 99);

  // A second node shows up in the list, sorted by id.
  RedisRegistry r0(url, cfg);
  ASSERT_TRUE(r0.register_node(node("n0")).ok());
  l = r1.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].info.node_id, "n0");
  EXPECT_EQ((*l)[1].info.node_id, "n1");

  // A new process takes the same node id: higher epoch; the old one is fenced out.
  RedisRegistry r2(url, cfg);
  auto e2 = r2.register_node(node("n1"));
  ASSERT_TRUE(e2.ok());
  EXPECT_GT(*e2, *e1);
  auto stale = r1.heartbeat(node("n1"));
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.code(), Errc::conflict);
  EXPECT_NE(stale.error().detail.find("a newer process registered node id n1"), std::string::npos);
  EXPECT_TRUE(r2.heartbeat(node("n1")).ok());
  l = r2.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[1].info.epoch, *e2);

  // The stale process's deregistration leaves the newer registration alone.
  ASSERT_TRUE(r1.deregister("n1").ok());
  EXPECT_EQ(r2.list()->size(), 2u);
  ASSERT_TRUE(r2.deregister("n1").ok());
  l = r2.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].info.node_id, "n0");
  EXPECT_EQ(smembers(url, r2.index_key()), std::vector<std::string>{"n0"});
}

TEST(RedisRegistry, FenceHoldsBeforeTheNewProcessWritesItsHash) {
  REQUIRE_REDIS(url);
  RedisRegistryConfig cfg;
  cfg.key_prefix = unique_prefix("fence");
  RedisRegistry r1(url, cfg);
  ASSERT_TRUE(r1.register_node(node("n1")).ok());
  // Another process only incremented the epoch so far.
  auto c = redis::RedisConnection::connect(url, 1s);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->command({"INCR", r1.epoch_key("n1")}).ok());
  EXPECT_EQ(r1.heartbeat(node("n1")).code(), Errc::conflict);
}

TEST(RedisRegistry, ExpiredEntriesLeaveTheListAndStaleRemovalCleansTheIndex) {
  REQUIRE_REDIS(url);
  RedisRegistryConfig cfg;
  cfg.key_prefix = unique_prefix("stale");
  cfg.interval = 100ms;
  cfg.offline_threshold = 1;  // hash TTL 300 ms
  RedisRegistry a(url, cfg), b(url, cfg);
  ASSERT_TRUE(a.register_node(node("a")).ok());
  ASSERT_TRUE(b.register_node(node("b")).ok());
  auto l = a.list();
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 2u);
  auto r = a.remove_stale();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);  // nothing expired yet
  // a keeps heartbeating, b stops.
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(a.heartbeat(node("a")).ok());
  }
  l = a.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].info.node_id, "a");
  EXPECT_EQ((*l)[0].heartbeat, 6u);
  EXPECT_EQ(smembers(url, a.index_key()), (std::vector<std::string>{"a", "b"}));
  r = a.remove_stale();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1u);
  EXPECT_EQ(smembers(url, a.index_key()), std::vector<std::string>{"a"});
  // b heartbeats again: back in the index and the list.
  ASSERT_TRUE(b.heartbeat(node("b")).ok());
  EXPECT_EQ(a.list()->size(), 2u);
}

TEST(RedisRegistry, UnreachableRedisIsUnavailable) {
  REQUIRE_REDIS(url);
  redis::RedisUrl dead = url;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    dead.host = "127.0.0.1";
    dead.port = ntohs(sa.sin_port);
    ::close(fd);
  }
  RedisRegistry r(dead, RedisRegistryConfig{});
  EXPECT_EQ(r.register_node(node("x")).code(), Errc::unavailable);
  EXPECT_EQ(r.list().code(), Errc::unavailable);
  EXPECT_FALSE(r.ok());
}

RedisLeaderConfig leader_cfg(const std::string& prefix, const std::string& id, std::chrono::milliseconds lease) {
  RedisLeaderConfig c;
  c.key_prefix = prefix;
  c.node_id = id;
  c.lease = lease;
  return c;
}

int count_leaders(const std::vector<std::unique_ptr<RedisLeaderElector>>& es) {
  int n = 0;
  for (auto& e : es) n += e->is_leader() ? 1 : 0;
  return n;
}

TEST(RedisLeader, ExactlyOneLeaderResignHandsOverWithAHigherEpoch) {
  REQUIRE_REDIS(url);
  std::string prefix = unique_prefix("lead");
  std::vector<std::unique_ptr<RedisLeaderElector>> es;
  for (const char* id : {"a", "b", "c"}) es.push_back(std::make_unique<RedisLeaderElector>(url, leader_cfg(prefix, id, 2000ms)));
  for (int round = 0; round < 3; ++round)
    for (auto& e : es) ASSERT_TRUE(e->step().ok());
  ASSERT_EQ(count_leaders(es), 1);
  RedisLeaderElector* leader = nullptr;
  for (auto& e : es)
    if (e->is_leader()) leader = e.get();
  auto ls = leader->status();
  EXPECT_GE(ls.epoch, 1u);
  EXPECT_EQ(ls.leader_epoch, ls.epoch);
  for (auto& e : es) {
    auto s = e->status();
    EXPECT_EQ(s.leader_node_id, ls.leader_node_id);
    EXPECT_EQ(s.leader_epoch, ls.epoch);
    auto f = e->fenced_check();
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(*f, e.get() == leader);
    if (e.get() != leader) EXPECT_EQ(s.epoch, 0u);
  }
  // Renewals keep the same term.
  for (auto& e : es) ASSERT_TRUE(e->step().ok());
  EXPECT_EQ(leader->status().epoch, ls.epoch);

  leader->resign();
  EXPECT_FALSE(leader->is_leader());
  for (auto& e : es)
    if (e.get() != leader) ASSERT_TRUE(e->step().ok());
  ASSERT_EQ(count_leaders(es), 1);
  RedisLeaderElector* next = nullptr;
  for (auto& e : es)
    if (e->is_leader()) next = e.get();
  ASSERT_NE(next, leader);
  EXPECT_GT(next->status().epoch, ls.epoch);
  ASSERT_TRUE(leader->step().ok());
  EXPECT_FALSE(leader->is_leader());
  EXPECT_EQ(leader->status().leader_node_id, next->status().leader_node_id);
  EXPECT_EQ(leader->status().leader_epoch, next->status().epoch);

  // Someone else's value in the key (e.g. the lease expired and was taken): the fenced check
  // fails and the next step gives leadership up.
  auto c = redis::RedisConnection::connect(url, 1s);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->command({"SET", next->leader_key(), "zz:999999", "PX", "2000"}).ok());
  auto f = next->fenced_check();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(*f);
  ASSERT_TRUE(next->step().ok());
  EXPECT_FALSE(next->is_leader());
  EXPECT_EQ(next->status().leader_node_id, "zz");
  EXPECT_EQ(next->status().leader_epoch, 999999u);
  EXPECT_EQ(count_leaders(es), 0);
}

TEST(RedisLeader, ExpiredLeaseIsTakenOverWithinTheLease) {
  REQUIRE_REDIS(url);
  std::string prefix = unique_prefix("expire");
  RedisLeaderElector a(url, leader_cfg(prefix, "a", 500ms)), b(url, leader_cfg(prefix, "b", 500ms));
  ASSERT_TRUE(a.step().ok());
  ASSERT_TRUE(b.step().ok());
  ASSERT_TRUE(a.is_leader());
  ASSERT_FALSE(b.is_leader());
  uint64_t ea = a.status().epoch;
  // a stops renewing (dies): b takes over once the key expires, never while a is valid.
  auto start = Clock::now();
  while (!b.is_leader() && Clock::now() - start < 2s) {
    EXPECT_FALSE(a.is_leader() && b.is_leader());
    ASSERT_TRUE(b.step().ok());
    std::this_thread::sleep_for(100ms);  // lease/5
  }
  ASSERT_TRUE(b.is_leader());
  EXPECT_FALSE(a.is_leader());
  EXPECT_GT(b.status().epoch, ea);
  EXPECT_LE(Clock::now() - start, 500ms + 100ms + 150ms);
}

// Runs its own redis-server on a free loopback port; stopped by PID.
class OwnRedis {
 public:
  bool start() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return false;
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    ::close(fd);
    std::string port = std::to_string(port_);
    std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--daemonize", "no", "--logfile", "/dev/null"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) return false;
    url_.host = "127.0.0.1";
    url_.port = port_;
    return wait_for([&] { return redis::RedisConnection::connect(url_, 200ms).ok(); }, 5s);
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  ~OwnRedis() { stop(); }
  const redis::RedisUrl& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  redis::RedisUrl url_;
};

TEST(RedisLeader, LeaderWhoseRedisGoesAwayStepsDownBeforeItsLeaseExpires) {
  REQUIRE_REDIS(url);  // the suite runs only where Redis is available; this case uses its own
  OwnRedis server;
  ASSERT_TRUE(server.start()) << "could not start redis-server";
  const auto lease = 1000ms;
  RedisLeaderElector e(server.url(), leader_cfg("own", "a", lease));
  auto before = Clock::now();
  ASSERT_TRUE(e.step().ok());
  ASSERT_TRUE(e.is_leader());
  server.stop();
  // Keep trying as the membership loop would (every lease/5); every step now fails.
  Clock::time_point lost{};
  while (Clock::now() - before < lease + 500ms) {
    auto st = e.step();
    EXPECT_EQ(st.code(), Errc::unavailable);
    if (!e.is_leader()) {
      lost = Clock::now();
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(lost, Clock::time_point{}) << "still leader after the lease";
  // Lease 1 s, margin lease/5: leadership ends 800 ms after the last successful acquire began,
  // before the key could expire in Redis (1 s after it was set).
  EXPECT_LT(lost - before, lease);
  EXPECT_GE(lost - before, 700ms);
  auto f = e.fenced_check();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(*f);
  EXPECT_EQ(e.status().epoch, 0u);
}

MembershipConfig redis_config(const redis::RedisUrl& url, const std::string& prefix, const std::string& id) {
  MembershipConfig c;
  c.mode = Discovery::redis;
  c.interval = 200ms;
  c.suspect_threshold = 2;
  c.offline_threshold = 3;
  c.lease = 1000ms;
  c.self = node(id);
  c.redis = url;
  c.key_prefix = prefix;
  return c;
}

TEST(RedisMembership, ThreeNodesSeeEachOtherElectOneLeaderAndDetectOneThatStops) {
  REQUIRE_REDIS(url);
  std::string prefix = unique_prefix("mem");
  std::vector<std::unique_ptr<Membership>> ms;
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, NodeState, Clock::time_point>> seen;  // observer, node, to, when
  std::atomic<int> tasks{0};
  for (const char* id : {"a", "b", "c"}) {
    MembershipDeps d;
    d.load = [] { return Load{1, 0, 0}; };
    d.elector = std::make_unique<RedisLeaderElector>(url, leader_cfg(prefix, id, 1000ms));
    auto m = std::make_unique<Membership>(redis_config(url, prefix, id), std::move(d));
    std::string me = id;
    m->on_state_change([&, me](const std::string& n, NodeState, NodeState to) {
      std::lock_guard lk(mu);
      seen.emplace_back(me, n, to, Clock::now());
    });
    m->set_leader_task([&] { ++tasks; });
    ms.push_back(std::move(m));
  }
  for (auto& m : ms) ASSERT_TRUE(m->start().ok());
  auto all_alive = [&] {
    for (auto& m : ms) {
      auto v = m->nodes();
      if (v.size() != 3) return false;
      for (auto& n : v)
        if (n.state != NodeState::alive) return false;
    }
    return true;
  };
  ASSERT_TRUE(wait_for(all_alive, 3s));
  ASSERT_TRUE(wait_for([&] { return ms[0]->leader().leader_node_id != ""; }, 2s));
  // For a while: everyone alive, exactly one leader at every sample, everyone agrees.
  for (int i = 0; i < 40; ++i) {
    int leaders = 0;
    for (auto& m : ms) leaders += m->leader().is_leader ? 1 : 0;
    EXPECT_LE(leaders, 1);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(all_alive());
  int li = -1;
  for (int i = 0; i < 3; ++i)
    if (ms[i]->leader().is_leader) li = i;
  ASSERT_GE(li, 0);
  const uint64_t first_epoch = ms[li]->leader().epoch;
  for (auto& m : ms) {
    EXPECT_TRUE(m->redis_ok());
    EXPECT_NE(m->self_info().epoch, 0u);
    auto v = m->nodes();
    int flagged = 0;
    for (auto& n : v) flagged += n.is_leader ? 1 : 0;
    EXPECT_EQ(flagged, 1);
    EXPECT_EQ(m->leader().leader_node_id, ms[li]->self_info().node_id);
  }
  EXPECT_GT(tasks.load(), 0);
  EXPECT_EQ(ms[li]->stats().leader, 1);
  // The leader's work includes removing index entries whose hash is gone.
  {
    auto c = redis::RedisConnection::connect(url, 1s);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->command({"SADD", prefix + ":nodes", "ghost"}).ok());
    ASSERT_TRUE(wait_for([&] { return smembers(url, prefix + ":nodes") == std::vector<std::string>{"a", "b", "c"}; },
                         1s));
  }

  // Stop the leader: the others see it suspect then offline, and one of them takes over.
  const std::string gone = ms[li]->self_info().node_id;
  ms[li]->stop();
  const auto stopped = Clock::now();
  std::vector<int> rest;
  for (int i = 0; i < 3; ++i)
    if (i != li) rest.push_back(i);
  auto when = [&](const std::string& observer, NodeState to) -> std::optional<Clock::time_point> {
    std::lock_guard lk(mu);
    for (auto& [o, n, t, at] : seen)
      if (o == observer && n == gone && t == to) return at;
    return std::nullopt;
  };
  for (int i : rest) {
    std::string obs = ms[i]->self_info().node_id;
    ASSERT_TRUE(wait_for([&] { return when(obs, NodeState::offline).has_value(); }, 3s)) << obs;
    auto s = when(obs, NodeState::suspect);
    auto o = when(obs, NodeState::offline);
    ASSERT_TRUE(s.has_value());
    // Last heartbeat at most one interval (+ a tick) before the stop: suspect 400 ms and offline
    // 600 ms after it; the bound interval * offline_threshold + 1 s.
    EXPECT_GE(*s - stopped, 50ms);
    EXPECT_LE(*s - stopped, 800ms);
    EXPECT_GE(*o - stopped, 300ms);
    EXPECT_LE(*o - stopped, 1600ms);
  }
  ASSERT_TRUE(wait_for(
      [&] {
        int n = 0;
        for (int i : rest) n += ms[i]->leader().is_leader ? 1 : 0;
        return n == 1;
      },
      1000ms + 200ms + 500ms));
  EXPECT_LE(Clock::now() - stopped, 1700ms);
  for (int i : rest) {
    if (ms[i]->leader().is_leader) EXPECT_GT(ms[i]->leader().epoch, first_epoch);
    auto v = ms[i]->nodes();
    ASSERT_EQ(v.size(), 3u);
    for (auto& n : v)
      if (n.info.node_id == gone) EXPECT_EQ(n.state, NodeState::offline);
    EXPECT_EQ(ms[i]->stats().nodes_offline, 1);
    EXPECT_GE(ms[i]->stats().leader_changes_total, 2u);
  }
  for (auto& m : ms) m->stop();
}

TEST(RedisMembership, SecondProcessWithTheSameNodeIdFencesTheFirstOut) {
  REQUIRE_REDIS(url);
  std::string prefix = unique_prefix("dup");
  Membership first(redis_config(url, prefix, "same"), {});
  ASSERT_TRUE(first.start().ok());
  ASSERT_TRUE(wait_for([&] { return first.self_info().epoch != 0; }, 2s));
  const uint64_t e1 = first.self_info().epoch;
  Membership second(redis_config(url, prefix, "same"), {});
  ASSERT_TRUE(second.start().ok());
  ASSERT_TRUE(wait_for([&] { return first.conflict(); }, 2s));
  EXPECT_FALSE(second.conflict());
  EXPECT_GT(second.self_info().epoch, e1);
  EXPECT_GT(first.stats().heartbeats_failed_total, 0u);
  first.stop();  // must not deregister the newer process's entry
  RedisRegistryConfig rc;
  rc.key_prefix = prefix;
  RedisRegistry reader(url, rc);
  std::this_thread::sleep_for(250ms);
  auto l = reader.list();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 1u);
  EXPECT_EQ((*l)[0].info.epoch, second.self_info().epoch);
  second.stop();
  l = reader.list();
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->empty());  // clean shutdown deregisters
}

}  // namespace
}  // namespace castmesh::cluster::membership
