/// \file castmesh-bus-bench: events per second through Redis with the cluster's own EventBus.
///
/// Two RedisEventBus instances in one process stand for two nodes ("bench-a" publishes,
/// "bench-b" subscribes) on one redis-server (127.0.0.1 only). Phases:
///  1. throughput: node a publishes -n events of --payload-bytes on the normal lane as fast as
///     publish() returns (its queue is sized to hold them all, so none is dropped); reported:
///     publish() calls per second, and events delivered to node b per second, from the first
///     publish to the last receipt;
///  2. latency: --latency-s seconds at --latency-rate events/s (default queue size); per event
///     publish() -> delivery to b's handler, p50 / p99 / max.
/// Each payload starts with the publish time (steady_clock ns, 8 bytes). Prints one JSON line.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "cluster/redis/redis_event_bus.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace cr = castmesh::cluster::redis;
using castmesh::cluster::Event;
using castmesh::cluster::Lane;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

/// Nearest-rank percentile of sorted `v`, p in [0, 100]; 0 when empty.
double percentile(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  k = std::clamp<size_t>(k, 1, v.size());
  return v[k - 1];
}

/// Receiving side: counts deliveries of the current phase and keeps their latencies (ms).
struct Receiver {
  std::mutex mu;
  std::vector<double> lat_ms;
  std::atomic<uint64_t> count{0};
  std::atomic<int64_t> last_ns{0};

  void on_event(const Event& ev) {
    const int64_t t = now_ns();
    if (!ev.payload || ev.payload->size() < 8) return;
    int64_t sent = 0;
    std::memcpy(&sent, ev.payload->data(), 8);
    {
      std::lock_guard lk(mu);
      lat_ms.push_back(static_cast<double>(t - sent) / 1e6);
    }
    last_ns.store(t, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  }
  void reset() {
    std::lock_guard lk(mu);
    lat_ms.clear();
    count = 0;
  }
};

std::shared_ptr<const std::string> make_payload(size_t bytes) {
  std::string p(std::max<size_t>(bytes, 8), 'x');
  const int64_t t = now_ns();
  std::memcpy(p.data(), &t, 8);
  return std::make_shared<const std::string>(std::move(p));
}

/// Waits until `n` deliveries or `timeout`; true when all arrived.
bool wait_for(const Receiver& r, uint64_t n, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (r.count.load() < n) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url = "redis://127.0.0.1:6379";
  std::string prefix = "cmbench-bus";
  uint64_t n = 100000;
  size_t payload_bytes = 200;
  double latency_s = 3;
  double latency_rate = 1000;
  CLI::App app{"castmesh-bus-bench: events per second through Redis (RedisEventBus, two nodes in one process)"};
  app.add_option("--redis", url, "redis://127.0.0.1:PORT");
  app.add_option("--prefix", prefix, "redis.key_prefix");
  app.add_option("-n,--events", n, "throughput phase: events published");
  app.add_option("--payload-bytes", payload_bytes, "bytes per event (>= 8)");
  app.add_option("--latency-s", latency_s, "latency phase length, s (0 = skip)");
  app.add_option("--latency-rate", latency_rate, "latency phase: events per second");
  CLI11_PARSE(app, argc, argv);

  auto parsed = cr::parse_redis_url(url);
  if (!parsed) {
    std::fprintf(stderr, "bad --redis: %s\n", parsed.error().message().c_str());
    return 2;
  }
  if (parsed->host != "127.0.0.1" && parsed->host != "localhost") {
    std::fprintf(stderr, "only 127.0.0.1\n");
    return 2;
  }
  auto make_config = [&](const char* id, size_t normal_capacity) {
    cr::RedisBusConfig c;
    c.url = *parsed;
    c.key_prefix = prefix;
    c.node_id = id;
    c.normal_capacity = normal_capacity;
    return c;
  };
  // a's queue holds the whole throughput phase: nothing is dropped, its drain rate is measured.
  cr::RedisEventBus a(make_config("bench-a", static_cast<size_t>(n) + 16));
  cr::RedisEventBus b(make_config("bench-b", 10000));
  Receiver rx;
  auto sub = b.subscribe("bench:", [&rx](const Event& ev) { rx.on_event(ev); });
  if (auto st = a.start(); !st) {
    std::fprintf(stderr, "start a: %s\n", st.error().message().c_str());
    return 1;
  }
  if (auto st = b.start(); !st) {
    std::fprintf(stderr, "start b: %s\n", st.error().message().c_str());
    return 1;
  }
  for (int i = 0; i < 100 && !(a.redis_up() && b.redis_up()); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!a.redis_up() || !b.redis_up()) {
    std::printf("{\"error\":\"redis not up\"}\n");
    return 1;
  }
  // Warm-up: one event end to end.
  (void)a.publish(Lane::normal, "bench:warm", make_payload(payload_bytes));
  if (!wait_for(rx, 1, std::chrono::seconds(5))) {
    std::printf("{\"error\":\"warm-up event not delivered\"}\n");
    return 1;
  }
  rx.reset();

  // Phase 1: throughput.
  const int64_t t0 = now_ns();
  uint64_t refused = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (!a.publish(Lane::normal, "bench:t", make_payload(payload_bytes))) ++refused;
  }
  const int64_t t_pub = now_ns();
  const bool all = wait_for(rx, n - refused, std::chrono::seconds(60));
  const double pub_s = static_cast<double>(t_pub - t0) / 1e9;
  const double del_s = static_cast<double>(rx.last_ns.load() - t0) / 1e9;
  const uint64_t received = rx.count.load();
  double tp_lat_p50 = 0, tp_lat_max = 0;
  {
    std::lock_guard lk(rx.mu);
    std::sort(rx.lat_ms.begin(), rx.lat_ms.end());
    tp_lat_p50 = percentile(rx.lat_ms, 50);
    tp_lat_max = rx.lat_ms.empty() ? 0 : rx.lat_ms.back();
  }
  rx.reset();

  // Phase 2: latency at a fixed rate.
  uint64_t lat_sent = 0;
  std::vector<double> lat;
  if (latency_s > 0 && latency_rate > 0) {
    const auto start = Clock::now();
    const auto gap = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / latency_rate));
    const uint64_t count = static_cast<uint64_t>(latency_s * latency_rate);
    for (uint64_t i = 0; i < count; ++i) {
      std::this_thread::sleep_until(start + gap * static_cast<int64_t>(i));
      if (a.publish(Lane::normal, "bench:l", make_payload(payload_bytes))) ++lat_sent;
    }
    wait_for(rx, lat_sent, std::chrono::seconds(10));
    std::lock_guard lk(rx.mu);
    lat = rx.lat_ms;
    std::sort(lat.begin(), lat.end());
  }
  const auto& am = a.metrics();
  std::printf(
      "{\"events\":%llu,\"payload_bytes\":%zu,\"refused\":%llu,\"received\":%llu,\"all_delivered\":%s,"
      "\"publish_per_sec\":%.0f,\"delivered_per_sec\":%.0f,\"tp_latency_ms_p50\":%.2f,\"tp_latency_ms_max\":%.2f,"
      "\"latency_rate\":%.0f,\"latency_events\":%llu,\"latency_received\":%zu,\"latency_ms_p50\":%.3f,"
      "\"latency_ms_p99\":%.3f,\"latency_ms_max\":%.3f,\"a_published_total\":%llu,\"a_dropped_normal\":%llu,"
      "\"b_received_total\":%llu,\"b_duplicates\":%llu}\n",
      static_cast<unsigned long long>(n), payload_bytes, static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(received), all ? "true" : "false", pub_s > 0 ? static_cast<double>(n) / pub_s : 0.0,
      del_s > 0 ? static_cast<double>(received) / del_s : 0.0, tp_lat_p50, tp_lat_max, latency_rate,
      static_cast<unsigned long long>(lat_sent), lat.size(), percentile(lat, 50), percentile(lat, 99),
      lat.empty() ? 0.0 : lat.back(),
      static_cast<unsigned long long>(am.published_total[1].load()),
      static_cast<unsigned long long>(am.dropped_total[1].load()),
      static_cast<unsigned long long>(b.metrics().received_total.load()),
      static_cast<unsigned long long>(b.metrics().duplicate_total.load()));
  sub.reset();
  b.stop();
  a.stop();
  return all ? 0 : 1;
}
