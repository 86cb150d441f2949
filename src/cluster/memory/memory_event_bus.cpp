#include "cluster/memory/memory_event_bus.hpp"

#include <mutex>
#include <vector>

namespace castmesh::cluster {

struct MemoryEventBus::State {
  struct Sub {
    uint64_t id;
    std::string prefix;
    std::shared_ptr<Handler> handler;
  };
  mutable std::mutex mu;
  uint64_t next_id = 1;
  std::vector<Sub> subs;  // subscription order
};

MemoryEventBus::MemoryEventBus(std::string node_id)
    : node_id_(std::move(node_id)), state_(std::make_shared<State>()) {}

MemoryEventBus::~MemoryEventBus() = default;

Status MemoryEventBus::publish(Lane lane, const std::string& topic,
                               std::shared_ptr<const std::string> payload) {
  if (!payload) return Error{Errc::malformed, "event payload is null"};
  if (topic.empty()) return Error{Errc::malformed, "event topic is empty"};
  Event ev{EventId{node_id_, seq_.fetch_add(1, std::memory_order_relaxed) + 1}, lane, topic,
           std::move(payload)};
  // Snapshot the matching handlers, then call them without the lock so that a handler may
  // publish, subscribe or unsubscribe.
  std::vector<std::shared_ptr<Handler>> targets;
  {
    std::lock_guard lk(state_->mu);
    for (const auto& s : state_->subs) {
      if (topic.compare(0, s.prefix.size(), s.prefix) == 0) targets.push_back(s.handler);
    }
  }
  for (const auto& h : targets) {
    // A handler unsubscribed by an earlier handler of this very event is skipped.
    bool still = false;
    {
      std::lock_guard lk(state_->mu);
      for (const auto& s : state_->subs) {
        if (s.handler == h) {
          still = true;
          break;
        }
      }
    }
    if (still) (*h)(ev);
  }
  return ok_status();
}

Subscription MemoryEventBus::subscribe(const std::string& topic_prefix, Handler h) {
  uint64_t id = 0;
  {
    std::lock_guard lk(state_->mu);
    id = state_->next_id++;
    state_->subs.push_back(State::Sub{id, topic_prefix, std::make_shared<Handler>(std::move(h))});
  }
  std::weak_ptr<State> weak = state_;
  return Subscription([weak, id] {
    if (auto st = weak.lock()) {
      std::lock_guard lk(st->mu);
      std::erase_if(st->subs, [id](const State::Sub& s) { return s.id == id; });
    }
  });
}

size_t MemoryEventBus::subscriber_count() const {
  std::lock_guard lk(state_->mu);
  return state_->subs.size();
}

}  // namespace castmesh::cluster
