#pragma once
/// \file cluster::EventBus — topic-based publish/subscribe between the nodes of a deployment
/// (DESIGN.md section 6). Implementations: MemoryEventBus (single node, synchronous, also the
/// test fake) and, later, a Redis implementation (PUBLISH + XADD, replay on reconnect,
/// de-duplication by EventId).
///
/// Payloads are immutable, reference-counted bytes (`shared_ptr<const std::string>`): a local
/// publisher's payload reaches every local subscriber without a copy.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "base/result.hpp"

namespace castmesh::cluster {

/// Delivery class of an event (DESIGN.md section 6).
/// - critical: kicks, bans, permission changes, room deletion. A bounded implementation applies
///   backpressure (publish fails with Errc::unavailable) rather than dropping.
/// - normal: room state, chat, presence, playlist, cache invalidation. A bounded implementation
///   may drop under overload (with a warning and a metric).
enum class Lane : uint8_t { critical = 0, normal = 1 };

/// "critical" | "normal".
const char* lane_name(Lane l) noexcept;

/// Globally unique event id: the publishing node plus that node's publish counter (starts at 1,
/// +1 per publish). Receivers that may see an event twice (stream replay after a reconnect)
/// de-duplicate on (node_id, seq).
struct EventId {
  std::string node_id;
  uint64_t seq = 0;

  friend bool operator==(const EventId&, const EventId&) = default;
};

/// One delivered event.
struct Event {
  EventId id;
  Lane lane = Lane::normal;
  std::string topic;                              ///< e.g. "room:AbCdEf1234"
  std::shared_ptr<const std::string> payload;     ///< never null; opaque bytes (room events: JSON text)
};

/// Called once per matching event. May be called on any thread (MemoryEventBus: the publisher's
/// thread, synchronously inside publish()). It must not block; it may publish again.
using Handler = std::function<void(const Event&)>;

/// RAII handle of one subscription. Destroying or reset()ing it unsubscribes: no delivery
/// *starts* after reset() returns (one already running on another thread may still finish).
/// Movable, not copyable. Safe to destroy after the bus itself is gone.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& o) noexcept : cancel_(std::exchange(o.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& o) noexcept {
    if (this != &o) {
      reset();
      cancel_ = std::exchange(o.cancel_, nullptr);
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  /// Unsubscribes now (idempotent).
  void reset() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }
  /// True while subscribed.
  bool active() const noexcept { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

/// Publish/subscribe interface. All functions are thread-safe.
///
/// Ordering: events published by one thread on one topic are delivered to each subscriber in
/// publish order. Callers that publish one topic from several threads serialize those publishes
/// themselves (room::Room does, per room).
class EventBus {
 public:
  virtual ~EventBus() = default;

  /// Publishes `payload` (non-null) on `topic` to every subscriber (on every node) whose prefix
  /// matches, including this node's own subscribers. Errors: Errc::unavailable when the
  /// transport cannot take the event now (Redis down, critical lane full); Errc::malformed for a
  /// null payload or empty topic. MemoryEventBus never fails on valid input.
  virtual Status publish(Lane lane, const std::string& topic, std::shared_ptr<const std::string> payload) = 0;

  /// Subscribes `h` to every topic that starts with `topic_prefix` ("" = all topics).
  virtual Subscription subscribe(const std::string& topic_prefix, Handler h) = 0;

  /// This node's id: EventId::node_id of the events it publishes. Lets a subscriber tell its own
  /// node's events from other nodes' events.
  virtual const std::string& node_id() const = 0;
};

}  // namespace castmesh::cluster
