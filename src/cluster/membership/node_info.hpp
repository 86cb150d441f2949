#pragma once
/// \file cluster::membership::NodeInfo — what a node tells the others about itself (inter-node
/// heartbeat body, registry hash in Redis, /api/v1/cluster/nodes), and the liveness states.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/fwd.hpp>
#include <boost/json/object.hpp>

#include "base/result.hpp"
#include "cluster/cluster_config.hpp"

namespace castmesh::cluster::membership {

/// Current load of a node (gauges, sampled when a heartbeat is sent).
struct Load {
  int64_t connections = 0;  ///< open client connections (all protocols)
  int64_t rooms = 0;        ///< rooms with at least one member on this node
  int64_t streams = 0;      ///< streams with a live publisher on this node

  friend bool operator==(const Load&, const Load&) = default;
};

/// Identity and state of one node.
struct NodeInfo {
  std::string node_id;         ///< [A-Za-z0-9._-]{1,64}
  std::string advertise_addr;  ///< "host:port" of the inter-node API
  std::string group;           ///< region label (cluster.node_group)
  std::string version;         ///< castmesh version string
  uint64_t epoch = 0;          ///< registration epoch (INCR P:node_epoch:{id} at start; 0 = none)
  int64_t started_ms = 0;      ///< process start, unix ms
  Load load;

  friend bool operator==(const NodeInfo&, const NodeInfo&) = default;
};

/// Liveness of a node as seen by this node (alive -> suspect after
/// suspect_threshold heartbeat intervals without a heartbeat, offline after offline_threshold).
enum class NodeState : uint8_t { alive = 0, suspect = 1, offline = 2 };

/// "alive" | "suspect" | "offline".
const char* state_name(NodeState s) noexcept;

/// True when `id` matches [A-Za-z0-9._-]{1,64} (cluster/cluster_config.hpp).
using cluster::valid_node_id;

/// {"connections":N,"rooms":N,"streams":N}.
boost::json::object load_to_json(const Load& load);

/// Parses a Load object. Errors: Errc::malformed when not an object, a field is missing, not an
/// integer or negative.
Result<Load> load_from_json(const boost::json::value& v);

/// NodeInfo JSON (the inter-node API and /api/v1/cluster/nodes): {"node_id","advertise_addr","group","version","epoch",
/// "started_ms","load":{"connections","rooms","streams"}}.
boost::json::object to_json(const NodeInfo& info);

/// Same, serialized.
std::string to_json_text(const NodeInfo& info);

/// Parses NodeInfo JSON. Every field is required with its type (strings; epoch an unsigned
/// integer; started_ms an integer; load an object). Unknown fields are ignored (newer peers).
/// Errors: Errc::malformed naming the field (bad node_id charset/length included).
Result<NodeInfo> node_info_from_json(const boost::json::value& v);

/// Parses NodeInfo JSON text (at most 64 KiB). Errors: Errc::malformed (bad JSON or fields),
/// Errc::too_large.
Result<NodeInfo> parse_node_info(std::string_view text);

}  // namespace castmesh::cluster::membership
