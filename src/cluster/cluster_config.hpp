#pragma once
/// \file Sections `cluster` and `redis` of the configuration, plus the keys
/// `server.cluster_secret` / `server.cluster_secret_file` (DESIGN.md section 6; docs/design.md
/// "Cluster mode"). Plain data; app/config.cpp holds the key table and the cross-checks.

#include <cstdint>
#include <string>
#include <vector>

namespace castmesh::cluster {

/// How a node finds the other nodes (key `cluster.discovery_mode`).
enum class DiscoveryMode : uint8_t {
  redis = 0,    ///< node keys with a TTL + an index set in Redis
  static_ = 1,  ///< `cluster.peers`, liveness by signed heartbeats over the inter-node API
  k8s_dns = 2,  ///< A records of $HEADLESS_SERVICE_NAME.$POD_NAMESPACE.svc, heartbeats as static
};

/// Who runs the global tasks (key `cluster.leader_election_mode`).
enum class LeaderElectionMode : uint8_t {
  redis = 0,      ///< a lease key with a fencing epoch in Redis
  k8s_lease = 1,  ///< coordination.k8s.io/v1 Lease (POD_NAME / POD_NAMESPACE)
};

/// Section `cluster` (+ the two `server.cluster_secret*` keys).
struct ClusterConfig {
  bool enabled = false;                      ///< cluster mode; needs redis.url, PostgreSQL and a secret
  std::string node_id;                       ///< [A-Za-z0-9._-]{1,64}; "" = "{hostname}-{6 base62}"
  std::string advertise_addr;                ///< host:port of this node's inter-node API as peers reach it
  std::string node_group = "default";        ///< region label
  std::string listen = "0.0.0.0:8081";       ///< inter-node API listener, host:port
  DiscoveryMode discovery_mode = DiscoveryMode::redis;
  std::vector<std::string> peers;            ///< static: "host[:port]"; no port -> server.port
  std::string dns_server;                    ///< k8s_dns: "ip[:port]" of the DNS server; "" = system
  double heartbeat_interval = 5;             ///< seconds between heartbeats
  uint32_t suspect_threshold = 2;            ///< intervals without a heartbeat -> suspect
  uint32_t offline_threshold = 3;            ///< intervals without a heartbeat -> offline
  uint64_t stream_max_length = 10000;        ///< events kept in the Redis stream (approximate trim)
  uint32_t critical_channel_capacity = 1000; ///< queued critical events; publish fails beyond
  uint32_t publish_channel_capacity = 10000; ///< queued normal events; dropped beyond
  uint32_t catchup_window_secs = 300;        ///< history replayed on (re)connect, s
  LeaderElectionMode leader_election_mode = LeaderElectionMode::redis;
  double leader_lease_secs = 15;             ///< leader lease, s; renewed every lease/3
  std::string k8s_api_url = "https://kubernetes.default.svc";
  std::string secret;                        ///< key server.cluster_secret (never logged)
  std::string secret_file;                   ///< key server.cluster_secret_file
};

/// Section `redis`.
/// Edge relays (config section `relay`, seed defaults; cluster::RelayManager).
/// Times are in seconds, as the seed's keys (relay.establish_timeout ...) are.
struct RelayConfig {
  double establish_timeout = 10;        ///< s: connect + response head of one upstream pull
  uint32_t max_retry_attempts = 3;      ///< failed pulls in a row before the relay gives up
  double retry_delay = 2;               ///< s: between failed pulls
  double release_delay = 10;            ///< s: the relay stops this long after the last local player left
  double health_check_interval = 5;     ///< s: a pull without media this long is reconnected
  uint32_t max_waiting_players = 1000;  ///< players waiting for one relay's first media (HTTP-FLV: 503 beyond)

  /// Seconds as whole milliseconds (at least 1).
  static uint32_t ms(double secs) noexcept { return secs <= 0.001 ? 1u : static_cast<uint32_t>(secs * 1000 + 0.5); }
};

struct RedisConfig {
  std::string url;                        ///< redis://[:password@]host[:port][/db]
  std::string key_prefix = "castmesh";    ///< every key and channel starts with "{prefix}:"
};

}  // namespace castmesh::cluster

#include <optional>
#include <string_view>

namespace castmesh::cluster {

/// A parsed "host:port" ("[v6]:port" allowed).
struct HostPort {
  std::string host;
  uint16_t port = 0;
};

/// Parses "host:port", "[v6addr]:port", or — when `default_port` is set — a bare host.
/// nullopt for an empty host, a port outside 1..65535 or non-digits.
std::optional<HostPort> parse_host_port(std::string_view text, std::optional<uint16_t> default_port = std::nullopt);

/// True for a valid node id: 1..64 characters of [A-Za-z0-9._-].
bool valid_node_id(std::string_view id) noexcept;

}  // namespace castmesh::cluster
