#pragma once
/// \file app::ClusterNode — cluster mode's parts wired together for one process
/// (docs/design.md "Cluster mode"):
/// - the Redis event bus (cluster::redis::RedisEventBus) every room event goes through;
/// - Membership: discovery (redis | static | k8s_dns), liveness (alive -> suspect -> offline),
///   leader election (redis | k8s_lease) and the leader's global work;
/// - the inter-node API on `cluster.listen` (HMAC-SHA256 signed requests only):
///     POST /internal/v1/heartbeat  body NodeInfo JSON -> 200 NodeInfo JSON of this node
///     GET  /internal/v1/node                        -> 200 NodeInfo JSON of this node
/// - the JSON of GET /api/v1/cluster/nodes and the cluster's /metrics lines.
/// No Beast in this header.

#include <functional>
#include <memory>
#include <string>

#include "app/config.hpp"
#include "base/metrics.hpp"
#include "base/result.hpp"
#include "cluster/event_bus.hpp"
#include "cluster/membership/node_info.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::net {
class IoPool;
}
namespace castmesh::cluster::internode {
class InternodeServer;
}

namespace castmesh::app {

/// The node id used when cluster.node_id is empty: "{host name}-{6 random base62}" (the host
/// name reduced to [A-Za-z0-9._-], at most 57 characters).
std::string derive_node_id();

/// The cluster secret: server.cluster_secret, else the content of server.cluster_secret_file
/// without trailing CR/LF. Errors: Errc::config_invalid naming the key (unreadable or empty
/// file; neither key set). The secret itself is never part of a message.
Result<std::string> load_cluster_secret(const cluster::ClusterConfig& c);

/// GET /api/v1/cluster/nodes for a single node (cluster.enabled false):
/// {"enabled":false,"node_id":...,"is_leader":true,"leader_epoch":0,"leader":null,"redis":"off",
///  "discovery":"none","nodes":[{...self...}]}
std::string single_node_json(const cluster::membership::NodeInfo& self);

class ClusterNode {
 public:
  /// Builds the parts from `cfg` (cluster.enabled must be true). Nothing is started.
  /// Errors: Errc::config_invalid naming the key (secret, redis.url, cluster.listen, missing
  /// HEADLESS_SERVICE_NAME / POD_NAMESPACE for k8s_dns, POD_NAMESPACE for k8s_lease). The node id is
  /// cluster.node_id, else $POD_NAME when it is a valid id, else derive_node_id().
  static Result<std::unique_ptr<ClusterNode>> create(const Config& cfg, net::IoPool& pool, Metrics& metrics);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  /// The Redis event bus (valid from create() on; publishing before start() only queues).
  cluster::EventBus& bus();
  const std::string& node_id() const;

  /// Hooks, set before start(). `offline(node_id)`: a peer went offline (loop thread).
  /// `bus_up()`: the bus reconnected to Redis and finished its catch-up (bus thread; must not
  /// block long). `leader_task()`: global work, run by the leader only, after a fencing check,
  /// every heartbeat interval (loop thread). `load()`: this node's load for heartbeats.
  void on_node_offline(std::function<void(const std::string&)> offline);
  /// `back(node_id)`: a peer that was offline is alive again (loop thread).
  void on_node_back(std::function<void(const std::string&)> back);
  void on_bus_reconnected(std::function<void()> bus_up);
  void set_leader_task(std::function<void()> task);
  void set_load(std::function<cluster::membership::Load()> load);

  /// Starts the bus, the inter-node listener (cluster.listen) and the membership loop. Redis
  /// being down is not an error (everything retries with backoff). Errors: the listener
  /// cannot bind (Errc::io_error), invalid membership settings.
  Status start();
  /// Stops in reverse order (resigns leadership, deregisters, flushes queued events for up to
  /// 1 s). Idempotent.
  void stop();

  /// The inter-node API server, to add routes before start().
  cluster::internode::InternodeServer& internode();
  /// The cluster secret (never logged) and this node's inter-node address as peers reach it.
  const std::string& secret() const;
  const std::string& advertise_addr() const;
  /// True when `node_id` is this node or a peer currently alive (not suspect, not offline).
  bool node_alive(const std::string& node_id) const;
  /// True when `node_id` is offline or unknown to membership (never for this node).
  bool node_offline(const std::string& node_id) const;
  /// Inter-node addresses of the alive nodes, this one included, as {node_id, addr}.
  std::vector<std::pair<std::string, std::string>> alive_nodes() const;
  /// True while this node acts as the leader.
  bool is_leader() const;
  /// The Redis URL (cluster mode always has one).
  const cluster::redis::RedisUrl& redis_url() const;

  /// The body of GET /api/v1/cluster/nodes (shape in docs/design.md, "Cluster mode").
  std::string nodes_json() const;
  /// Prometheus lines: castmesh_cluster_* and castmesh_internode_requests_refused_total.
  std::string metrics_text() const;
  /// True while the bus is connected to Redis.
  bool redis_up() const;

 private:
  struct Impl;
  explicit ClusterNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace castmesh::app
