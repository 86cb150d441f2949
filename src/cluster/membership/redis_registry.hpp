#pragma once
/// \file cluster::membership::RedisRegistry — node registration and discovery in Redis
/// (docs/design.md "Cluster mode", discovery; P = key prefix):
/// - hash `P:node:{id}` with fields id, addr, group, version, epoch, hb (heartbeat counter),
///   started_ms, load (JSON), expiring `interval * (offline_threshold + 2)` after each heartbeat;
/// - index set `P:nodes` of the ids that registered;
/// - registration epoch `P:node_epoch:{id}` (INCR once per process start). A heartbeat whose
///   epoch is lower than the stored one (or than `P:node_epoch:{id}`) is refused: it comes from a
///   stale process that lost its node id to a newer one.
///
/// Owns its RedisConnection and reconnects on the next call after a failure. Not thread-safe:
/// one owner thread (the membership loop).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster/membership/node_info.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::membership {

/// Settings of a RedisRegistry.
struct RedisRegistryConfig {
  std::string key_prefix = "castmesh";              ///< redis.key_prefix (no trailing ':')
  std::chrono::milliseconds interval{5000};         ///< heartbeat interval
  uint32_t offline_threshold = 3;                   ///< hash TTL = interval * (offline_threshold + 2)
  std::chrono::milliseconds timeout{1000};          ///< connect and per-command timeout
};

/// One entry read back from the registry.
struct RegisteredNode {
  NodeInfo info;
  uint64_t heartbeat = 0;  ///< the hash's hb counter (+1 per heartbeat, from 1)
  int64_t age_ms = 0;      ///< time since its last heartbeat, derived from the remaining TTL (>= 0)
};

/// Registration of this node and listing of all nodes in Redis.
class RedisRegistry {
 public:
  RedisRegistry(redis::RedisUrl url, RedisRegistryConfig config);
  ~RedisRegistry();
  RedisRegistry(const RedisRegistry&) = delete;
  RedisRegistry& operator=(const RedisRegistry&) = delete;

  /// Takes a new registration epoch for `self.node_id` (INCR `P:node_epoch:{id}`) and writes the
  /// first heartbeat with it. Returns the epoch (>= 1); later heartbeat() calls use it.
  /// Errors: Errc::malformed (invalid node id), Errc::unavailable (Redis unreachable),
  /// Errc::conflict (see heartbeat()).
  Result<uint64_t> register_node(const NodeInfo& self);

  /// Writes this node's hash (epoch = the registered epoch; `self.epoch` is ignored), increments
  /// hb, renews the TTL and re-adds the id to the index (one Lua script). Registers first when
  /// register_node() has not succeeded yet.
  /// Errors: Errc::conflict "a newer process registered node id X" (a higher epoch is stored;
  /// this process must stop acting as that node), Errc::unavailable, Errc::io_error (unexpected
  /// reply).
  Status heartbeat(const NodeInfo& self);

  /// All registered nodes (SMEMBERS of the index, then one pipelined HGETALL + PTTL per id),
  /// this node included, in id order. Ids whose hash is gone (expired) are skipped; entries
  /// that fail to parse are skipped. Errors: Errc::unavailable, Errc::io_error.
  Result<std::vector<RegisteredNode>> list();

  /// Removes from the index the ids whose hash has expired (atomic Lua; leader task).
  /// Returns how many were removed. Errors: Errc::unavailable, Errc::io_error.
  Result<size_t> remove_stale();

  /// Deletes this node's hash and index entry when they still belong to this process's epoch
  /// (clean shutdown). Errors: Errc::unavailable, Errc::io_error.
  Status deregister(const std::string& node_id);

  /// Registration epoch (0 before register_node() succeeds).
  uint64_t epoch() const noexcept { return epoch_; }

  /// True when the last Redis call succeeded (a conflict counts as reachable).
  bool ok() const noexcept { return ok_; }

  /// TTL of a node hash: interval * (offline_threshold + 2).
  std::chrono::milliseconds hash_ttl() const noexcept;

  /// Key names (for tests and diagnostics).
  std::string node_key(const std::string& id) const { return prefix_ + "node:" + id; }
  std::string index_key() const { return prefix_ + "nodes"; }
  std::string epoch_key(const std::string& id) const { return prefix_ + "node_epoch:" + id; }

 private:
  Result<redis::RedisConnection*> conn();
  template <typename T>
  Result<T> note(Result<T> r);

  redis::RedisUrl url_;
  RedisRegistryConfig config_;
  std::string prefix_;  // "{key_prefix}:"
  std::unique_ptr<redis::RedisConnection> conn_;
  uint64_t epoch_ = 0;
  bool ok_ = false;
};

}  // namespace castmesh::cluster::membership
