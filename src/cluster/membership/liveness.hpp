#pragma once
/// \file cluster::membership::LivenessTracker — turns heartbeats into alive / suspect / offline
/// states (suspect after suspect_threshold heartbeat intervals without a heartbeat,
/// offline after offline_threshold). Pure: no threads, no clock of its own (the caller passes
/// steady-clock times), not thread-safe (Membership guards it with its mutex).

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cluster/membership/node_info.hpp"

namespace castmesh::cluster::membership {

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

/// One state change of one node, reported once by LivenessTracker::evaluate().
struct Transition {
  std::string node_id;
  NodeState from = NodeState::offline;
  NodeState to = NodeState::alive;

  friend bool operator==(const Transition&, const Transition&) = default;
};

/// What the tracker knows of one node at a given time.
struct TrackedNode {
  NodeInfo info;                 ///< latest info observed (load included)
  NodeState state = NodeState::alive;  ///< state computed for the `now` of the snapshot
  int64_t last_seen_ms_ago = 0;  ///< ms since the last counted heartbeat (>= 0)
  uint64_t heartbeats = 0;       ///< heartbeats counted since first observed
};

/// Heartbeat bookkeeping for the peers of one node (self is not tracked here).
class LivenessTracker {
 public:
  /// `interval`: heartbeat interval (> 0). Thresholds in intervals, 0 < suspect < offline
  /// (the caller validates; out-of-order values are clamped so that offline >= suspect).
  LivenessTracker(std::chrono::milliseconds interval, double suspect_threshold, double offline_threshold);

  /// Records what is known of a node at `now`. `heartbeat_counter` == 0 means a pushed heartbeat
  /// (static / k8s_dns: every call is one heartbeat); otherwise (Redis registry) a heartbeat
  /// counts when the counter differs from the last one observed — or on first sight.
  /// `heartbeat_at` (<= now) is when that heartbeat was made, when the source knows it better
  /// than `now` (Redis: derived from the key's remaining TTL); defaults to `now`.
  /// Info (load, addr, epoch) is updated on every call. Ignores an info with an empty node_id.
  void observe(const NodeInfo& info, uint64_t heartbeat_counter, SteadyTime now);
  void observe(const NodeInfo& info, uint64_t heartbeat_counter, SteadyTime now, SteadyTime heartbeat_at);

  /// State changes since the previous call (in node_id order). A node observed for the first
  /// time reports offline -> {its state} (usually alive: "joined"). A heartbeat after suspect
  /// or offline reports -> alive. A node may skip suspect (alive -> offline) when evaluate() is
  /// called less often than the suspect window. Forgets nodes that have been offline for
  /// 10 offline windows (no transition reported for that).
  std::vector<Transition> evaluate(SteadyTime now);

  /// All tracked nodes with their state at `now` (node_id order).
  std::vector<TrackedNode> snapshot(SteadyTime now) const;

  /// State of one node at `now`; Errc::not_found when not tracked.
  Result<NodeState> state_of(const std::string& node_id, SteadyTime now) const;

  /// Stops tracking a node (e.g. a peer that deregistered cleanly). No transition is reported.
  void forget(const std::string& node_id);

  /// Number of tracked nodes.
  size_t size() const noexcept { return nodes_.size(); }

  /// Windows derived from the constructor arguments.
  std::chrono::milliseconds suspect_after() const noexcept { return suspect_after_; }
  std::chrono::milliseconds offline_after() const noexcept { return offline_after_; }

 private:
  struct Entry {
    NodeInfo info;
    uint64_t counter = 0;
    uint64_t heartbeats = 0;
    SteadyTime last_seen{};
    NodeState reported = NodeState::offline;  // state last returned by evaluate()
    bool announced = false;                   // evaluate() has reported this node at least once
  };

  NodeState compute(const Entry& e, SteadyTime now) const;

  std::chrono::milliseconds suspect_after_;
  std::chrono::milliseconds offline_after_;
  std::chrono::milliseconds forget_after_;
  std::map<std::string, Entry> nodes_;
};

}  // namespace castmesh::cluster::membership
