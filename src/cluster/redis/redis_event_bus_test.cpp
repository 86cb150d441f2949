#include "cluster/redis/redis_event_bus.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <thread>

#include "cluster/redis/redis_test_util.hpp"

extern char** environ;

namespace castmesh::cluster::redis {
namespace {

using namespace std::chrono_literals;

// Collects delivered events (thread-safe) and waits for them.
class Collector {
 public:
  Handler handler() {
    return [this](const Event& ev) {
      std::lock_guard lk(mu_);
      events_.push_back(ev);
      cv_.notify_all();
    };
  }
  // Waits until `pred(events)` holds or `timeout` passes; returns pred's last value.
  template <typename Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(events_); });
  }
  bool wait_count(size_t n, std::chrono::milliseconds timeout = 10s) {
    return wait([n](const std::vector<Event>& e) { return e.size() >= n; }, timeout);
  }
  std::vector<Event> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  size_t size() const {
    std::lock_guard lk(mu_);
    return events_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

std::shared_ptr<const std::string> text(std::string s) { return std::make_shared<const std::string>(std::move(s)); }

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Per-lane payload sequences of the events from `node` (payload = "{node}-{lane}-{i}").
std::map<int, std::vector<std::string>> by_lane(const std::vector<Event>& events, const std::string& node) {
  std::map<int, std::vector<std::string>> out;
  for (const auto& e : events) {
    if (e.id.node_id == node) out[static_cast<int>(e.lane)].push_back(*e.payload);
  }
  return out;
}

// Publishes n events on `bus` (lane: every third critical); returns the expected per-lane
// payload sequences.
std::map<int, std::vector<std::string>> publish_mixed(RedisEventBus& bus, int n, int first = 0) {
  std::map<int, std::vector<std::string>> expected;
  for (int i = first; i < first + n; ++i) {
    Lane lane = i % 3 == 0 ? Lane::critical : Lane::normal;
    std::string payload = bus.node_id() + "-" + std::to_string(static_cast<int>(lane)) + "-" + std::to_string(i);
    auto s = bus.publish(lane, "room:r" + std::to_string(i % 5), text(payload));
    EXPECT_TRUE(s.ok()) << s.error().message();
    expected[static_cast<int>(lane)].push_back(payload);
  }
  return expected;
}

RedisBusConfig bus_config(const RedisUrl& url, const std::string& prefix, const std::string& node) {
  RedisBusConfig c;
  c.url = url;
  c.key_prefix = prefix;
  c.node_id = node;
  c.io_timeout = 1000ms;
  return c;
}

// A Redis URL where nothing listens.
RedisUrl dead_url() {
  RedisUrl u;
  u.port = free_port();
  return u;
}

// ---- without Redis -------------------------------------------------------------------------

TEST(EventBusOffline, PublishValidates) {
  RedisEventBus bus(bus_config(dead_url(), "t", "a"));
  EXPECT_EQ(bus.publish(Lane::normal, "room:x", nullptr).code(), Errc::malformed);
  EXPECT_EQ(bus.publish(Lane::normal, "", text("x")).code(), Errc::malformed);
  EXPECT_EQ(bus.publish(Lane::normal, "room\nx", text("x")).code(), Errc::malformed);
}

TEST(EventBusOffline, StartRejectsBadConfig) {
  EXPECT_EQ(RedisEventBus(bus_config(dead_url(), "t", "")).start().code(), Errc::config_invalid);
  EXPECT_EQ(RedisEventBus(bus_config(dead_url(), "", "a")).start().code(), Errc::config_invalid);
  EXPECT_EQ(RedisEventBus(bus_config(dead_url(), "t", "a\nb")).start().code(), Errc::config_invalid);
  auto c = bus_config(dead_url(), "t", "a");
  c.critical_capacity = 0;
  EXPECT_EQ(RedisEventBus(c).start().code(), Errc::config_invalid);
}

TEST(EventBusOffline, LocalDeliveryIsSynchronousWhileRedisIsDown) {
  RedisEventBus bus(bus_config(dead_url(), "t", "a"));
  ASSERT_TRUE(bus.start().ok());
  Collector room, other;
  auto s1 = bus.subscribe("room:", room.handler());
  auto s2 = bus.subscribe("user:", other.handler());
  ASSERT_TRUE(bus.publish(Lane::normal, "room:1", text("one")).ok());
  ASSERT_EQ(room.size(), 1u);  // already delivered when publish() returned
  auto ev = room.events()[0];
  EXPECT_EQ(ev.id.node_id, "a");
  EXPECT_EQ(*ev.payload, "one");
  EXPECT_EQ(ev.topic, "room:1");
  EXPECT_EQ(other.size(), 0u);
  ASSERT_TRUE(bus.publish(Lane::critical, "room:1", text("two")).ok());
  ASSERT_EQ(room.size(), 2u);
  EXPECT_GT(room.events()[1].id.seq, ev.id.seq);
  EXPECT_FALSE(bus.redis_up());
  EXPECT_EQ(bus.queued(Lane::normal), 1u);
  EXPECT_EQ(bus.queued(Lane::critical), 1u);
  s1.reset();
  ASSERT_TRUE(bus.publish(Lane::normal, "room:1", text("three")).ok());
  EXPECT_EQ(room.size(), 2u);  // unsubscribed
}

TEST(EventBusOffline, SeqStartsFromTheClock) {
  auto before = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  RedisEventBus bus(bus_config(dead_url(), "t", "a"));
  Collector c;
  auto sub = bus.subscribe("", c.handler());
  ASSERT_TRUE(bus.publish(Lane::normal, "x", text("")).ok());
  ASSERT_EQ(c.size(), 1u);
  EXPECT_GE(c.events()[0].id.seq, before * 1'000'000 + 1);
  EXPECT_LT(c.events()[0].id.seq, (before + 60'000) * 1'000'000);
}

TEST(EventBusOffline, CriticalQueueFullIsBackpressure) {
  auto cfg = bus_config(dead_url(), "t", "a");
  cfg.critical_capacity = 5;
  RedisEventBus bus(cfg);
  ASSERT_TRUE(bus.start().ok());
  Collector local;
  auto sub = bus.subscribe("", local.handler());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus.publish(Lane::critical, "room:1", text("k")).ok());
  auto s = bus.publish(Lane::critical, "room:1", text("refused"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Errc::unavailable);
  EXPECT_EQ(local.size(), 5u);  // the refused event was not delivered locally either
  EXPECT_EQ(bus.metrics().dropped_total[0].load(), 1u);
  // The normal lane is independent.
  EXPECT_TRUE(bus.publish(Lane::normal, "room:1", text("n")).ok());
  EXPECT_EQ(local.size(), 6u);
  EXPECT_EQ(bus.queued(Lane::critical), 5u);
}

TEST(EventBusOffline, NormalQueueFullDropsForRedisOnly) {
  auto cfg = bus_config(dead_url(), "t", "a");
  cfg.normal_capacity = 3;
  RedisEventBus bus(cfg);
  ASSERT_TRUE(bus.start().ok());
  Collector local;
  auto sub = bus.subscribe("", local.handler());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(bus.publish(Lane::normal, "room:1", text(std::to_string(i))).ok());
  EXPECT_EQ(local.size(), 10u);  // all delivered locally
  EXPECT_EQ(bus.queued(Lane::normal), 3u);
  EXPECT_EQ(bus.metrics().dropped_total[1].load(), 7u);
  EXPECT_EQ(bus.metrics().dropped_total[0].load(), 0u);
}

TEST(EventBusOffline, StopIsIdempotentAndQuick) {
  auto bus = std::make_unique<RedisEventBus>(bus_config(dead_url(), "t", "a"));
  ASSERT_TRUE(bus->start().ok());
  ASSERT_TRUE(bus->publish(Lane::normal, "room:1", text("x")).ok());
  Collector c;
  auto sub = bus->subscribe("", c.handler());
  auto t0 = std::chrono::steady_clock::now();
  bus->stop();
  bus->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(bus->start().code(), Errc::closed);
  EXPECT_EQ(bus->publish(Lane::critical, "room:1", text("x")).code(), Errc::unavailable);
  EXPECT_TRUE(bus->publish(Lane::normal, "room:1", text("x")).ok());
  EXPECT_EQ(c.size(), 1u);
  bus.reset();
  sub.reset();  // safe after the bus is gone
}

TEST(EventBusOffline, HandlersMayPublish) {
  RedisEventBus bus(bus_config(dead_url(), "t", "a"));
  Collector echoes;
  auto s1 = bus.subscribe("ping", [&](const Event& ev) {
    EXPECT_TRUE(bus.publish(Lane::normal, "pong", ev.payload).ok());
  });
  auto s2 = bus.subscribe("pong", echoes.handler());
  ASSERT_TRUE(bus.publish(Lane::normal, "ping", text("1")).ok());
  EXPECT_EQ(echoes.size(), 1u);
}

// ---- with Redis ----------------------------------------------------------------------------

// Starts both buses and waits until both are linked and caught up.
void start_linked(std::initializer_list<RedisEventBus*> buses) {
  for (auto* b : buses) ASSERT_TRUE(b->start().ok());
  for (auto* b : buses) ASSERT_TRUE(eventually([b] { return b->redis_up(); })) << b->node_id() << " not linked";
}

TEST(RedisEventBus, TwoNodesDeliverEachOthersEventsInOrder) {
  auto url = test::test_redis_url();
  ASSERT_TRUE(url);
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus a(bus_config(*url, prefix, "a"));
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector at_a, at_b;
  auto sa = a.subscribe("room:", at_a.handler());
  auto sb = b.subscribe("room:", at_b.handler());
  start_linked({&a, &b});

  std::map<int, std::vector<std::string>> from_b;
  std::thread tb([&] { from_b = publish_mixed(b, 1000); });
  auto from_a = publish_mixed(a, 1000);
  tb.join();

  ASSERT_TRUE(at_b.wait_count(2000, 20s)) << at_b.size();
  ASSERT_TRUE(at_a.wait_count(2000, 20s)) << at_a.size();
  std::this_thread::sleep_for(200ms);  // nothing more (no own echo, no duplicates)
  EXPECT_EQ(at_a.size(), 2000u);
  EXPECT_EQ(at_b.size(), 2000u);
  EXPECT_EQ(by_lane(at_b.events(), "a"), from_a);
  EXPECT_EQ(by_lane(at_a.events(), "b"), from_b);
  EXPECT_EQ(by_lane(at_a.events(), "a"), from_a);  // local delivery
  // Seqs increase per origin in each lane.
  for (const auto& [evs, node] : {std::pair{at_b.events(), std::string("a")}, std::pair{at_a.events(), std::string("b")}}) {
    uint64_t last[2] = {0, 0};
    for (const auto& e : evs) {
      if (e.id.node_id != node) continue;
      EXPECT_GT(e.id.seq, last[static_cast<int>(e.lane)]);
      last[static_cast<int>(e.lane)] = e.id.seq;
    }
  }
  EXPECT_EQ(a.metrics().published_total[0].load() + a.metrics().published_total[1].load(), 1000u);
  EXPECT_EQ(a.metrics().published_total[0].load(), 334u);
  EXPECT_EQ(b.metrics().received_total.load(), 1000u);
  EXPECT_EQ(b.metrics().duplicate_total.load(), 0u);
  EXPECT_EQ(a.metrics().redis_up.load(), 1);
}

TEST(RedisEventBus, TopicPrefixAndOwnEventsNotRepeated) {
  auto url = test::test_redis_url();
  ASSERT_TRUE(url);
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus a(bus_config(*url, prefix, "a"));
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector all_b, room1_b, user_b, all_a;
  auto s1 = b.subscribe("", all_b.handler());
  auto s2 = b.subscribe("room:1", room1_b.handler());
  auto s3 = b.subscribe("user:", user_b.handler());
  auto s4 = a.subscribe("", all_a.handler());
  start_linked({&a, &b});
  ASSERT_TRUE(a.publish(Lane::normal, "room:1", text("p1")).ok());
  ASSERT_TRUE(a.publish(Lane::normal, "room:2", text("p2")).ok());
  ASSERT_TRUE(a.publish(Lane::critical, "room:10", text("p3")).ok());
  EXPECT_EQ(all_a.size(), 3u);  // synchronous
  ASSERT_TRUE(all_b.wait_count(3));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(all_a.size(), 3u);  // own events are not delivered again from Redis
  EXPECT_EQ(all_b.size(), 3u);
  EXPECT_EQ(user_b.size(), 0u);
  // "room:1" and "room:10"; the critical lane may overtake the normal one.
  std::set<std::string> room1;
  for (const auto& e : room1_b.events()) room1.insert(*e.payload);
  EXPECT_EQ(room1, (std::set<std::string>{"p1", "p3"}));
  // Same id, lane, topic and payload on both nodes.
  for (const auto& local : all_a.events()) {
    bool found = false;
    for (const auto& remote : all_b.events()) {
      if (remote.id == local.id) {
        found = true;
        EXPECT_EQ(remote.lane, local.lane);
        EXPECT_EQ(remote.topic, local.topic);
        EXPECT_EQ(*remote.payload, *local.payload);
      }
    }
    EXPECT_TRUE(found) << *local.payload;
  }
}

TEST(RedisEventBus, PublishesAgainAfterScriptFlush) {
  auto url = test::test_redis_url();
  auto raw = test::connect_test_redis();
  ASSERT_TRUE(url && raw);
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus a(bus_config(*url, prefix, "a"));
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector got;
  auto sub = b.subscribe("", got.handler());
  start_linked({&a, &b});
  auto expected = publish_mixed(a, 10);
  ASSERT_TRUE(got.wait_count(10));
  ASSERT_TRUE(raw->command({"SCRIPT", "FLUSH"}).ok());  // the publisher's EVALSHA gets NOSCRIPT
  auto more = publish_mixed(a, 10, 10);
  for (auto& [lane, v] : more) expected[lane].insert(expected[lane].end(), v.begin(), v.end());
  ASSERT_TRUE(got.wait_count(20));
  EXPECT_EQ(by_lane(got.events(), "a"), expected);
  EXPECT_EQ(a.metrics().dropped_total[0].load() + a.metrics().dropped_total[1].load(), 0u);
}

TEST(RedisEventBus, StopFlushesQueuedEvents) {
  auto url = test::test_redis_url();
  ASSERT_TRUE(url);
  const std::string prefix = test::unique_prefix("bus");
  auto a = std::make_unique<RedisEventBus>(bus_config(*url, prefix, "a"));
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector got;
  auto sub = b.subscribe("", got.handler());
  start_linked({a.get(), &b});
  auto expected = publish_mixed(*a, 2000);
  a.reset();  // stop(): drains what is still queued
  ASSERT_TRUE(got.wait_count(2000)) << got.size();
  EXPECT_EQ(by_lane(got.events(), "a"), expected);
}

// Lists the ids of the clients named "{prefix}:{node}:events-{role}".
std::vector<std::string> client_ids(RedisConnection& c, const std::string& name) {
  std::vector<std::string> ids;
  auto list = c.command({"CLIENT", "LIST"});
  if (!list || list->is_error()) return ids;
  size_t pos = 0;
  const std::string& s = list->str;
  while (pos < s.size()) {
    size_t end = s.find('\n', pos);
    std::string line = s.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? s.size() : end + 1;
    if (line.find(" name=" + name + " ") == std::string::npos) continue;
    size_t id = line.find("id=");
    if (id == 0) ids.push_back(line.substr(3, line.find(' ') - 3));
  }
  return ids;
}

TEST(RedisEventBus, DuplicatesAreDeliveredOnceAlsoAfterReplay) {
  auto url = test::test_redis_url();
  auto raw = test::connect_test_redis();
  ASSERT_TRUE(url && raw);
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector got;
  auto sub = b.subscribe("", got.handler());
  start_linked({&b});

  // A publisher retrying after a lost reply: the same envelope twice (stream + channel).
  const Script publish_script(R"(local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
redis.call('PUBLISH', ARGV[1], id .. '\n' .. ARGV[2]) return id)");
  const std::string stream = prefix + ":events:stream";
  const std::string channel = prefix + ":events";
  const std::string e42 = encode_envelope(EventId{"x", 42}, Lane::normal, "room:1", "forty-two");
  for (int i = 0; i < 2; ++i) {
    auto r = raw->eval(publish_script, {stream}, {channel, e42});
    ASSERT_TRUE(r.ok() && !r->is_error());
  }
  ASSERT_TRUE(eventually([&] { return b.metrics().duplicate_total.load() == 1; }));
  EXPECT_EQ(got.size(), 1u);

  // Written to the stream only (no PUBLISH): a third copy of 42 and a new event 43. They reach
  // b only by the replay after it reconnects.
  ASSERT_TRUE(raw->command({"XADD", stream, "*", "e", e42}).ok());
  const std::string e43 = encode_envelope(EventId{"x", 43}, Lane::normal, "room:1", "forty-three");
  ASSERT_TRUE(raw->command({"XADD", stream, "*", "e", e43}).ok());
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(got.size(), 1u);
  auto ids = client_ids(*raw, prefix + ":b:events-sub");
  ASSERT_EQ(ids.size(), 1u);
  auto k = raw->command({"CLIENT", "KILL", "ID", ids[0]});
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->integer, 1);

  ASSERT_TRUE(got.wait_count(2));
  ASSERT_TRUE(eventually([&] { return b.metrics().reconnects_total.load() == 1 && b.redis_up(); }));
  std::this_thread::sleep_for(200ms);
  auto evs = got.events();
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(*evs[0].payload, "forty-two");
  EXPECT_EQ(*evs[1].payload, "forty-three");
  EXPECT_EQ(evs[1].id, (EventId{"x", 43}));
  EXPECT_EQ(b.metrics().duplicate_total.load(), 2u);
  EXPECT_EQ(b.metrics().replayed_total.load(), 1u);
  EXPECT_EQ(b.metrics().received_total.load(), 2u);
}

TEST(RedisEventBus, MalformedEntriesAreSkipped) {
  auto url = test::test_redis_url();
  auto raw = test::connect_test_redis();
  ASSERT_TRUE(url && raw);
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus b(bus_config(*url, prefix, "b"));
  Collector got;
  auto sub = b.subscribe("", got.handler());
  start_linked({&b});
  ASSERT_TRUE(raw->command({"PUBLISH", prefix + ":events", "garbage"}).ok());
  ASSERT_TRUE(raw->command({"PUBLISH", prefix + ":events", "1-1\nv9\n"}).ok());
  ASSERT_TRUE(raw->command({"PUBLISH", prefix + ":events",
                            "2-1\n" + encode_envelope(EventId{"x", 1}, Lane::normal, "t", "ok")})
                  .ok());
  ASSERT_TRUE(got.wait_count(1));
  EXPECT_EQ(*got.events()[0].payload, "ok");
  EXPECT_EQ(b.metrics().malformed_total.load(), 2u);
  EXPECT_TRUE(b.redis_up());
}

RedisBusConfig cfg_with_window(RedisBusConfig c) {
  c.catchup_window_ms = 60000;
  return c;
}

TEST(RedisEventBus, LateStarterCatchesUpWithinTheWindow) {
  auto url = test::test_redis_url();
  auto raw = test::connect_test_redis();
  ASSERT_TRUE(url && raw);
  const std::string prefix = test::unique_prefix("bus");
  // An event older than the window (stream id 120 s ago) must not be replayed.
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  ASSERT_TRUE(raw->command({"XADD", prefix + ":events:stream", std::to_string(now_ms - 120000) + "-0", "e",
                            encode_envelope(EventId{"old", 1}, Lane::normal, "room:1", "too old")})
                  .ok());
  RedisEventBus a(bus_config(*url, prefix, "a"));
  start_linked({&a});
  auto expected = publish_mixed(a, 50);
  ASSERT_TRUE(eventually([&] {
    return a.metrics().published_total[0].load() + a.metrics().published_total[1].load() == 50;
  }));

  RedisEventBus b(cfg_with_window(bus_config(*url, prefix, "b")));
  Collector got;
  auto sub = b.subscribe("", got.handler());
  start_linked({&b});  // up = caught up
  EXPECT_EQ(got.size(), 50u);
  EXPECT_EQ(by_lane(got.events(), "a"), expected);
  EXPECT_EQ(by_lane(got.events(), "old").size(), 0u);
  EXPECT_EQ(b.metrics().replayed_total.load(), 50u);
  // A restarted "a" (same node id) is not re-delivered its own events.
  RedisEventBus a2(cfg_with_window(bus_config(*url, prefix, "a")));
  Collector own;
  auto sub2 = a2.subscribe("", own.handler());
  start_linked({&a2});
  EXPECT_EQ(own.size(), 0u);
  // Its seqs start above the previous process's.
  ASSERT_TRUE(a2.publish(Lane::normal, "room:1", text("new")).ok());
  ASSERT_TRUE(got.wait_count(51));
  EXPECT_GT(got.events().back().id.seq, got.events()[49].id.seq);
}

// A redis-server of this test, on a fixed port, that can be stopped and started again.
class OwnRedis {
 public:
  OwnRedis() : port_(free_port()) {}
  ~OwnRedis() { stop(); }
  uint16_t port() const { return port_; }

  bool start() {
    std::string port = std::to_string(port_);
    std::vector<std::string> args{"redis-server", "--bind",    "127.0.0.1", "--port", port, "--save", "",
                                  "--appendonly", "no",        "--daemonize", "no",   "--logfile", "/dev/null",
                                  "--dir",        "/tmp"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid_, "redis-server", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    RedisUrl u = url();
    return eventually([&] {
      auto c = RedisConnection::connect(u, 200ms);
      if (!c) return false;
      auto r = (*c)->command({"PING"});
      return r.ok() && r->is("PONG");
    }, 5s);
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  RedisUrl url() const {
    RedisUrl u;
    u.port = port_;
    return u;
  }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

TEST(RedisEventBus, OutageBuffersEventsAndDeliversThemInOrder) {
  OwnRedis server;
  ASSERT_TRUE(server.start()) << "cannot start redis-server on port " << server.port();
  const std::string prefix = test::unique_prefix("bus");
  RedisEventBus a(bus_config(server.url(), prefix, "a"));
  RedisEventBus b(bus_config(server.url(), prefix, "b"));
  std::mutex link_mu;
  std::vector<bool> links;
  b.set_link_listener([&](bool up) {
    std::lock_guard lk(link_mu);
    links.push_back(up);
  });
  Collector at_a, at_b;
  auto sa = a.subscribe("", at_a.handler());
  auto sb = b.subscribe("", at_b.handler());
  start_linked({&a, &b});

  auto expected = publish_mixed(a, 100);
  ASSERT_TRUE(at_b.wait_count(100));

  server.stop();
  ASSERT_TRUE(eventually([&] { return !a.redis_up() && !b.redis_up(); }));
  auto more = publish_mixed(a, 300, 100);
  for (auto& [lane, v] : more) expected[lane].insert(expected[lane].end(), v.begin(), v.end());
  EXPECT_EQ(at_a.size(), 400u);  // local delivery went on
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(a.queued(Lane::critical) + a.queued(Lane::normal), 300u);  // buffered
  EXPECT_EQ(at_b.size(), 100u);

  ASSERT_TRUE(server.start()) << "cannot restart redis-server on port " << server.port();
  ASSERT_TRUE(at_b.wait_count(400, 20s)) << at_b.size();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(at_b.size(), 400u);
  EXPECT_EQ(by_lane(at_b.events(), "a"), expected);
  EXPECT_TRUE(eventually([&] { return a.queued(Lane::critical) + a.queued(Lane::normal) == 0; }));
  EXPECT_TRUE(eventually([&] { return b.redis_up(); }));
  EXPECT_EQ(b.metrics().reconnects_total.load(), 1u);
  EXPECT_EQ(b.metrics().duplicate_total.load(), 0u);
  std::lock_guard lk(link_mu);
  EXPECT_EQ(links, (std::vector<bool>{true, false, true}));
}

}  // namespace
}  // namespace castmesh::cluster::redis
