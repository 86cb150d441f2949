#pragma once
/// \file cluster::membership::Membership — this node's view of the cluster: who is there
/// (discovery), who is alive (liveness), who leads (election), and the leader's periodic work.
///
/// One thread ("the loop") does everything that talks to the network:
/// - every interval: heartbeat — redis mode: the registry hash (RedisRegistry); static and
///   k8s_dns modes: a signed POST /internal/v1/heartbeat to every peer address (injected
///   send_heartbeat, one worker thread per request so a dead peer never delays the others);
///   k8s_dns resolves the peer addresses again before each round;
/// - redis mode, every interval/4: reads the registry (heartbeat counters) into the tracker;
/// - every lease/5: one LeaderElector::step();
/// - every interval while leader, after fenced_check() returned true: the registry's
///   remove_stale() (redis mode) and the leader task set by set_leader_task();
/// - every interval/4 (at least): evaluates liveness and calls the state-change listeners.
/// Peers are keyed by the node_id they report; an address whose node is not known yet is still
/// polled. Self is always alive and is not tracked.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/result.hpp"
#include "cluster/cluster_config.hpp"
#include "cluster/membership/leader.hpp"
#include "cluster/membership/liveness.hpp"
#include "cluster/membership/node_info.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::membership {

class RedisRegistry;

/// How peers are found: cluster.discovery_mode (redis | static_ | k8s_dns), shared with the
/// configuration so the app passes it through unchanged.
using Discovery = cluster::DiscoveryMode;

/// "redis" | "static" | "k8s_dns".
const char* discovery_name(Discovery d) noexcept;

/// Settings (plain data; the app maps ClusterConfig / RedisConfig onto it).
struct MembershipConfig {
  Discovery mode = Discovery::redis;
  std::chrono::milliseconds interval{5000};  ///< cluster.heartbeat_interval (>= 100 ms)
  uint32_t suspect_threshold = 2;            ///< intervals -> suspect (>= 1)
  uint32_t offline_threshold = 3;            ///< intervals -> offline (> suspect_threshold)
  std::chrono::milliseconds lease{15000};    ///< cluster.leader_lease_secs (elector step every lease/5)
  /// This node: node_id, advertise_addr, group, version, started_ms. epoch and load are filled
  /// in by Membership (registry epoch in redis mode, else 0; load from the load callback).
  NodeInfo self;
  std::vector<std::string> peers;  ///< static: "host:port" of each peer's inter-node API
  std::string dns_name;            ///< k8s_dns: "$HEADLESS_SERVICE_NAME.$POD_NAMESPACE.svc"
  redis::RedisUrl redis;           ///< redis mode: the registry's server
  std::string key_prefix = "castmesh";  ///< redis.key_prefix
};

/// Injected collaborators. Every callback is called on Membership's own threads.
struct MembershipDeps {
  /// This node's current load (sampled before each heartbeat). Optional (zeros).
  std::function<Load()> load;
  /// static / k8s_dns: signed POST /internal/v1/heartbeat of `self` to `addr` ("host:port"),
  /// returning the receiver's NodeInfo. Must bound itself in time (interval/2 is a good
  /// timeout). Called from several worker threads at once (one request per peer address).
  /// Required for those modes when there are peers.
  std::function<Result<NodeInfo>(const std::string& addr, const NodeInfo& self)> send_heartbeat;
  /// k8s_dns: A records of `name` as "ip:port" (port of cluster.listen). Required for k8s_dns.
  std::function<Result<std::vector<std::string>>(const std::string& name)> resolve;
  /// Leader election (RedisLeaderElector or the Kubernetes one); null = this node never leads.
  std::unique_ptr<LeaderElector> elector;
};

/// One node as shown by /api/v1/cluster/nodes.
struct NodeView {
  NodeInfo info;
  NodeState state = NodeState::alive;
  int64_t last_seen_ms_ago = 0;
  bool is_self = false;
  bool is_leader = false;  ///< self: holds a valid lease now; peer: the holder last observed
};

/// Counters and gauges for /metrics (castmesh_cluster_nodes{state}, castmesh_cluster_leader...).
struct MembershipStats {
  int64_t nodes_alive = 0;    ///< gauge, self included
  int64_t nodes_suspect = 0;  ///< gauge
  int64_t nodes_offline = 0;  ///< gauge
  int64_t leader = 0;         ///< gauge 0/1: this node holds a valid lease
  uint64_t heartbeats_sent_total = 0;      ///< heartbeats that succeeded (registry write / peer reply)
  uint64_t heartbeats_failed_total = 0;    ///< heartbeats that failed
  uint64_t heartbeats_received_total = 0;  ///< on_heartbeat() calls accepted
  uint64_t leader_changes_total = 0;       ///< times the observed (leader, epoch) changed
  uint64_t leader_tasks_total = 0;         ///< leader work rounds run after a passed fenced check
};

/// Listener of liveness changes of peers (called on the loop thread, outside any lock).
using StateChangeListener = std::function<void(const std::string& node_id, NodeState from, NodeState to)>;

/// See the file comment. start() once, stop() once (also done by the destructor).
class Membership {
 public:
  Membership(MembershipConfig config, MembershipDeps deps);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  /// Validates the configuration and starts the loop thread (the first heartbeat is sent at
  /// once). Errors: Errc::config_invalid naming the key (bad node id, interval < 100 ms,
  /// thresholds out of order, lease < 100 ms, k8s_dns without a name or resolver, peers
  /// without send_heartbeat). Static mode without peers is valid (a single node). Redis being
  /// unreachable is not an error here: the loop keeps retrying (redis_ok() reports it).
  Status start();

  /// Stops the loop: resigns leadership, deregisters (redis mode), waits for outstanding
  /// heartbeat requests (each bounded by its own timeout). Idempotent.
  void stop();

  /// A peer's heartbeat arrived (inter-node server, any thread). Ignored for self.
  void on_heartbeat(const NodeInfo& peer);

  /// This node's NodeInfo as sent in heartbeats (current load and epoch). Any thread.
  NodeInfo self_info() const;

  /// Self first, then peers in node_id order. Any thread.
  std::vector<NodeView> nodes() const;

  /// The elector's view (empty when there is no elector). Any thread.
  LeaderStatus leader() const;

  /// Redis mode: the last registry call reached Redis. Other modes: true (Membership does not
  /// use Redis itself there). Any thread.
  bool redis_ok() const;

  /// Redis mode: a newer process took this node id (heartbeats are refused). Any thread.
  bool conflict() const { return conflict_.load(); }

  /// Adds a listener of peer state changes. Call before start().
  void on_state_change(StateChangeListener listener);

  /// Sets the global work run on the loop thread every interval while this node is leader,
  /// only after fenced_check() returned true. Call before start().
  void set_leader_task(std::function<void()> task);

  /// Counters for /metrics. Any thread.
  MembershipStats stats() const;

  const MembershipConfig& config() const noexcept { return config_; }

 private:
  using Clock = SteadyClock;
  void run();
  void heartbeat_round(Clock::time_point now);
  void redis_heartbeat();
  void redis_poll(Clock::time_point now);
  void push_heartbeats();
  void leader_work();
  void evaluate(Clock::time_point now);
  void reap_requests(bool wait);
  void note_leader();

  MembershipConfig config_;
  MembershipDeps deps_;
  std::unique_ptr<RedisRegistry> registry_;  // redis mode; loop thread only

  mutable std::mutex mu_;
  LivenessTracker tracker_;
  NodeInfo self_;                  // epoch + load current
  std::vector<StateChangeListener> listeners_;
  std::function<void()> leader_task_;
  std::vector<std::string> addresses_;  // static / k8s_dns peer addresses
  std::set<std::string> self_addrs_;    // addresses that answered with our own node id
  std::string last_leader_;             // "{node}:{epoch}" last observed
  bool redis_ok_ = false;

  // Outstanding heartbeat requests by address (loop thread only).
  std::map<std::string, std::future<void>> requests_;

  std::atomic<bool> conflict_{false};
  std::atomic<uint64_t> hb_sent_{0}, hb_failed_{0}, hb_received_{0}, leader_changes_{0}, leader_tasks_{0};

  std::mutex run_mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread thread_;
};

}  // namespace castmesh::cluster::membership
