#pragma once
/// \file cluster::membership::LeaderElector — one leader per deployment for global work
/// (expired sessions, stale registry entries, room cleanup). Implementations: RedisLeaderElector
/// (a lease key with a fencing epoch) and K8sLeaseElector (coordination.k8s.io/v1 Lease).
///
/// Safety rule shared by both: a node acts as leader only while `now < valid_until`, where
/// valid_until = (start of the last successful acquire/renew request) + lease - a safety margin,
/// so a node that cannot renew stops leader work before its lease can expire elsewhere.

#include <chrono>
#include <cstdint>
#include <string>

#include "base/result.hpp"

namespace castmesh::cluster::membership {

/// What one node knows of the leadership (a snapshot).
struct LeaderStatus {
  bool is_leader = false;          ///< this node holds a lease that is valid now
  uint64_t epoch = 0;              ///< this node's term (fencing epoch) while is_leader, else 0
  std::string leader_node_id;      ///< the current holder as last observed ("" = none/unknown)
  uint64_t leader_epoch = 0;       ///< the holder's epoch as last observed (0 = unknown)
};

/// Leader election. step() is called by one thread (the membership loop) every lease/5;
/// status() and is_leader() may be called from any thread.
class LeaderElector {
 public:
  virtual ~LeaderElector() = default;

  /// One acquire-or-renew attempt. Errors: Errc::unavailable when the backend (Redis, the
  /// Kubernetes API) cannot be reached; leadership then lapses at valid_until.
  virtual Status step() = 0;

  /// Snapshot; is_leader is re-evaluated against the steady clock on every call.
  virtual LeaderStatus status() const = 0;

  /// True while this node may do leader work (same as status().is_leader).
  virtual bool is_leader() const = 0;

  /// Checks with the backend, atomically, that this node still holds the lease with its epoch
  /// (fencing check before a global task). False when not leader or the backend disagrees.
  virtual Result<bool> fenced_check() = 0;

  /// Gives the lease up (best effort; used at shutdown).
  virtual void resign() = 0;
};

}  // namespace castmesh::cluster::membership
