#pragma once
/// \file cluster::MemoryEventBus — in-process EventBus for single-node mode and tests.

#include <atomic>
#include <memory>
#include <string>

#include "cluster/event_bus.hpp"

namespace castmesh::cluster {

/// Delivers every published event synchronously, on the publisher's thread, to the local
/// subscribers whose prefix matches, in subscription order. No bus lock is held while a handler
/// runs, so handlers may publish, subscribe or unsubscribe (re-entrancy is allowed). Nothing is
/// queued, so neither lane ever drops or blocks.
class MemoryEventBus final : public EventBus {
 public:
  /// `node_id` becomes EventId::node_id of every event.
  explicit MemoryEventBus(std::string node_id = "local");
  ~MemoryEventBus() override;

  Status publish(Lane lane, const std::string& topic, std::shared_ptr<const std::string> payload) override;
  Subscription subscribe(const std::string& topic_prefix, Handler h) override;
  const std::string& node_id() const override { return node_id_; }

  /// Events accepted by publish() so far.
  uint64_t published_total() const noexcept { return seq_.load(std::memory_order_relaxed); }
  /// Current number of subscriptions.
  size_t subscriber_count() const;

 private:
  struct State;
  std::string node_id_;
  std::atomic<uint64_t> seq_{0};
  std::shared_ptr<State> state_;  // shared with Subscription cancel functions
};

}  // namespace castmesh::cluster
