#pragma once
/// \file cluster::redis::RedisEventBus — the EventBus of a multi-node deployment (DESIGN.md
/// section 6; docs/design.md "Cluster mode", event bus).
///
/// Every event goes to this node's subscribers at once (synchronously, like MemoryEventBus) and
/// to Redis through a bounded queue per lane: a publisher thread runs one Lua script per event
/// (XADD `P:events:stream` MAXLEN ~ N, then PUBLISH `P:events` "{stream id}\n{envelope}").
/// A subscriber thread SUBSCRIBEs to `P:events`, replays the stream (XRANGE) from the last id it
/// saw (first time: from now - catch-up window), then delivers live messages; after a
/// disconnection it reconnects with exponential backoff (100 ms doubling to 5 s) and replays
/// again. Remote events are de-duplicated by EventId; this node's own events are skipped there
/// (they were delivered locally).

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/event_bus.hpp"
#include "cluster/redis/envelope.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::redis {

/// Settings of a RedisEventBus (from the cluster.* / redis.* config keys).
struct RedisBusConfig {
  RedisUrl url;
  std::string key_prefix = "castmesh";     ///< redis.key_prefix; keys are "{prefix}:..."
  std::string node_id;                     ///< cluster.node_id; non-empty, no '\n'
  size_t stream_max_length = 10000;        ///< cluster.stream_max_length (XADD MAXLEN ~)
  size_t critical_capacity = 1000;         ///< cluster.critical_channel_capacity (events)
  size_t normal_capacity = 10000;          ///< cluster.publish_channel_capacity (events)
  int64_t catchup_window_ms = 300000;      ///< cluster.catchup_window_secs * 1000
  std::chrono::milliseconds io_timeout{2000};     ///< connect and per-command timeout
  std::chrono::milliseconds drain_timeout{1000};  ///< stop(): time left to flush queued events
};

/// Counters of a RedisEventBus (relaxed atomics; read them at any time from any thread).
/// Index [0] = Lane::critical, [1] = Lane::normal.
struct RedisBusMetrics {
  /// Events written to Redis (script succeeded), per lane.
  std::array<std::atomic<uint64_t>, 2> published_total{};
  /// Remote events delivered to this node's subscribers (live and replayed; after de-dup).
  std::atomic<uint64_t> received_total{0};
  /// Events that will not reach other nodes, per lane. critical: refused by backpressure
  /// (publish() returned unavailable) or given up after repeated error replies; normal: queue
  /// full (delivered locally only) or given up after repeated error replies.
  std::array<std::atomic<uint64_t>, 2> dropped_total{};
  /// Remote events delivered from a stream replay (XRANGE); a subset of received_total.
  std::atomic<uint64_t> replayed_total{0};
  /// Remote events skipped because their EventId was already delivered.
  std::atomic<uint64_t> duplicate_total{0};
  /// Envelopes or messages that could not be decoded (skipped).
  std::atomic<uint64_t> malformed_total{0};
  /// Successful reconnections of the subscriber after a lost link.
  std::atomic<uint64_t> reconnects_total{0};
  /// 1 while the subscriber is connected and caught up, else 0.
  std::atomic<int> redis_up{0};
};

/// EventBus over Redis pub/sub + a stream. All EventBus functions are thread-safe.
///
/// Delivery: local subscribers are called on the publisher's thread inside publish(); remote
/// events on the bus's subscriber thread. No bus lock is held while a handler runs, so handlers
/// may publish, subscribe and unsubscribe.
/// Ordering: events published by one thread on one lane reach every other node in publish order
/// (the critical queue is drained before the normal one, so the two lanes may interleave
/// differently remotely than locally).
class RedisEventBus final : public EventBus {
 public:
  explicit RedisEventBus(RedisBusConfig config);
  /// Calls stop().
  ~RedisEventBus() override;
  RedisEventBus(const RedisEventBus&) = delete;
  RedisEventBus& operator=(const RedisEventBus&) = delete;

  /// Starts the publisher and subscriber threads. Does not wait for Redis: while it is
  /// unreachable, events are queued (bounded) and the threads keep reconnecting.
  /// Errors: Errc::config_invalid (empty node_id or key_prefix, '\n' in either, zero capacity);
  /// Errc::closed after stop(). Calling it again while running is a no-op.
  Status start();

  /// Stops and joins both threads (idempotent). Queued events get up to drain_timeout to reach
  /// Redis if it is connected; what is left is discarded. publish() afterwards delivers locally
  /// only (critical: refused with Errc::unavailable).
  void stop();

  /// Publishes per EventBus: validates (Errc::malformed for a null payload, an empty topic or a
  /// topic containing '\n'), assigns the EventId, queues the event for Redis and delivers it to
  /// the local subscribers. Errc::unavailable when the critical queue is full (backpressure):
  /// the event is then neither queued nor delivered locally. A full normal queue drops the event
  /// for Redis only (warning at most once per second, dropped_total[normal]).
  Status publish(Lane lane, const std::string& topic, std::shared_ptr<const std::string> payload) override;
  Subscription subscribe(const std::string& topic_prefix, Handler h) override;
  const std::string& node_id() const override { return config_.node_id; }

  /// True while the subscriber is connected to Redis and caught up.
  bool redis_up() const noexcept { return metrics_.redis_up.load(std::memory_order_relaxed) != 0; }
  /// Counters for the metrics endpoint.
  const RedisBusMetrics& metrics() const noexcept { return metrics_; }
  /// Events waiting for Redis in `lane`'s queue (including the batch being written).
  size_t queued(Lane lane) const;

  /// Sets a function called on the subscriber thread when the link to Redis comes up (after
  /// the catch-up replay finished) or goes down; called only on changes, first with true.
  /// Set it before start(); it must not block for long.
  void set_link_listener(std::function<void(bool up)> listener);

 private:
  struct SubState;
  struct Queued {
    uint64_t seq;
    Lane lane;
    std::string topic;
    std::shared_ptr<const std::string> payload;
  };
  struct Dedup;

  void publisher_main();
  void subscriber_main();
  void deliver(const Event& ev, bool catch_exceptions);
  bool wait_backoff(std::condition_variable& cv, std::chrono::milliseconds d);  // false when stopping
  void set_link(bool up);
  // Handles one event read from Redis (decode, skip own, de-dup, deliver).
  void on_remote(const StreamId& sid, std::string_view envelope, bool replay);
  void note_malformed(const Error& e);
  void name_connection(RedisConnection& c, const char* role) const;

  const RedisBusConfig config_;
  const std::string stream_key_;
  const std::string channel_;
  RedisBusMetrics metrics_;
  std::shared_ptr<SubState> subs_;

  mutable std::mutex mu_;  // queues, seq, stopping/started flags
  std::condition_variable cv_;       // publisher: queue changes and stop
  std::condition_variable stop_cv_;  // subscriber backoff: stop
  std::atomic<bool> stop_requested_{false};
  std::mutex stop_mu_;               // serializes stop()
  std::array<std::deque<Queued>, 2> queues_;
  uint64_t next_seq_;
  bool started_ = false;
  bool stopping_ = false;
  std::atomic<int64_t> last_drop_warn_ms_{0};

  std::mutex listener_mu_;
  std::function<void(bool)> listener_;
  bool link_reported_up_ = false;  // subscriber thread only

  // Subscriber-thread state.
  std::unique_ptr<Dedup> dedup_;
  StreamId resume_from_;  // next XRANGE start (inclusive)
  std::mutex malformed_mu_;
  std::vector<std::string> malformed_kinds_logged_;

  std::thread publisher_;
  std::thread subscriber_;
};

}  // namespace castmesh::cluster::redis
