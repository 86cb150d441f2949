#include "cluster/membership/liveness.hpp"

#include <algorithm>
#include <cmath>

namespace castmesh::cluster::membership {
namespace {

std::chrono::milliseconds scale(std::chrono::milliseconds interval, double k) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(static_cast<double>(interval.count()) * k)));
}

}  // namespace

LivenessTracker::LivenessTracker(std::chrono::milliseconds interval, double suspect_threshold,
                                 double offline_threshold)
    : suspect_after_(scale(std::max(interval, std::chrono::milliseconds(1)), std::max(suspect_threshold, 0.0))),
      offline_after_(std::max(suspect_after_,
                              scale(std::max(interval, std::chrono::milliseconds(1)), std::max(offline_threshold, 0.0)))),
      forget_after_(offline_after_ * 10) {}

void LivenessTracker::observe(const NodeInfo& info, uint64_t heartbeat_counter, SteadyTime now) {
  observe(info, heartbeat_counter, now, now);
}

void LivenessTracker::observe(const NodeInfo& info, uint64_t heartbeat_counter, SteadyTime now,
                              SteadyTime heartbeat_at) {
  if (info.node_id.empty()) return;
  heartbeat_at = std::min(heartbeat_at, now);
  auto [it, inserted] = nodes_.try_emplace(info.node_id);
  Entry& e = it->second;
  // A restarted process (new epoch) may happen to reuse a counter value: that still counts.
  bool counts = inserted || heartbeat_counter == 0 || heartbeat_counter != e.counter || info.epoch != e.info.epoch;
  e.info = info;
  e.counter = heartbeat_counter;
  if (!counts) return;
  ++e.heartbeats;
  // A heartbeat never moves last_seen backwards (a late, older report must not age a node).
  if (inserted || heartbeat_at > e.last_seen) e.last_seen = heartbeat_at;
}

NodeState LivenessTracker::compute(const Entry& e, SteadyTime now) const {
  auto age = now - e.last_seen;
  if (age >= offline_after_) return NodeState::offline;
  if (age >= suspect_after_) return NodeState::suspect;
  return NodeState::alive;
}

std::vector<Transition> LivenessTracker::evaluate(SteadyTime now) {
  std::vector<Transition> out;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    Entry& e = it->second;
    NodeState s = compute(e, now);
    if (!e.announced || s != e.reported) {
      out.push_back(Transition{it->first, e.announced ? e.reported : NodeState::offline, s});
      e.announced = true;
      e.reported = s;
    }
    if (s == NodeState::offline && now - e.last_seen >= offline_after_ + forget_after_) {
      it = nodes_.erase(it);
    } else {
      ++it;
    }
  }
  // A first sighting that is already offline (stale registry entry) is no change at all.
  std::erase_if(out, [](const Transition& t) { return t.from == t.to; });
  return out;
}

std::vector<TrackedNode> LivenessTracker::snapshot(SteadyTime now) const {
  std::vector<TrackedNode> out;
  out.reserve(nodes_.size());
  for (const auto& [id, e] : nodes_) {
    TrackedNode n;
    n.info = e.info;
    n.state = compute(e, now);
    n.last_seen_ms_ago =
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - e.last_seen).count());
    n.heartbeats = e.heartbeats;
    out.push_back(std::move(n));
  }
  return out;
}

Result<NodeState> LivenessTracker::state_of(const std::string& node_id, SteadyTime now) const {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return Error{Errc::not_found, "node " + node_id + " is not tracked"};
  return compute(it->second, now);
}

void LivenessTracker::forget(const std::string& node_id) { nodes_.erase(node_id); }

}  // namespace castmesh::cluster::membership
