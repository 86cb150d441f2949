#pragma once
/// \file cluster::membership::RedisLeaderElector — leader election with a lease key in Redis
/// (docs/design.md "Cluster mode", leader; P = key prefix):
/// - `P:leader` = "{node_id}:{epoch}" with a PX lease, set only when absent;
/// - the epoch comes from INCR `P:leader_epoch` at each acquisition (strictly increasing terms);
/// - renew = Lua compare-and-PEXPIRE, fenced check = Lua compare, resign = Lua compare-and-DEL.
/// This node acts as leader only while now < valid_until = (steady time at the start of the
/// last successful acquire/renew request) + lease - lease/5, so it stops before its key can
/// expire in Redis and another node acquire it.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "cluster/membership/leader.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::membership {

/// Settings of a RedisLeaderElector.
struct RedisLeaderConfig {
  std::string key_prefix = "castmesh";       ///< redis.key_prefix (no trailing ':')
  std::string node_id;                       ///< this node ([A-Za-z0-9._-]{1,64}; never contains ':')
  std::chrono::milliseconds lease{15000};    ///< cluster.leader_lease_secs (>= 100 ms)
  /// Connect and per-command timeout; 0 = min(1 s, lease/5).
  std::chrono::milliseconds timeout{0};
};

/// LeaderElector backed by one Redis key. step(), fenced_check() and resign() must be called
/// from one thread (they share the connection); status() and is_leader() from any thread.
class RedisLeaderElector : public LeaderElector {
 public:
  RedisLeaderElector(redis::RedisUrl url, RedisLeaderConfig config);
  ~RedisLeaderElector() override;

  /// Renews when this node holds the lease, else tries to acquire it (one Lua call each).
  /// Connects first when there is no usable connection. Errors: Errc::unavailable (Redis
  /// unreachable; leadership lapses at valid_until), Errc::io_error (unexpected reply).
  Status step() override;
  LeaderStatus status() const override;
  bool is_leader() const override;
  /// Lua: GET P:leader == "{node}:{epoch}". False without a network call when not leader.
  /// Errors: Errc::unavailable, Errc::io_error.
  Result<bool> fenced_check() override;
  /// Lua compare-and-DEL of P:leader; local leadership ends at once (even when Redis fails).
  void resign() override;

  /// Key names (for tests).
  std::string leader_key() const { return prefix_ + "leader"; }
  std::string epoch_key() const { return prefix_ + "leader_epoch"; }

 private:
  using Clock = std::chrono::steady_clock;
  Result<redis::RedisConnection*> conn();
  void observe_holder(const std::string& value);  // "{node}:{epoch}" or "" (mutex held)
  void lose();                                      // mutex held
  std::string my_value() const;                     // mutex held

  redis::RedisUrl url_;
  RedisLeaderConfig config_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<redis::RedisConnection> conn_;  // step-thread only

  mutable std::mutex mu_;
  bool holding_ = false;       // we acquired and have not lost/resigned (validity checked apart)
  uint64_t epoch_ = 0;         // our term while holding_
  Clock::time_point valid_until_{};
  std::string holder_;         // last observed holder node id
  uint64_t holder_epoch_ = 0;  // and its epoch
};

}  // namespace castmesh::cluster::membership
