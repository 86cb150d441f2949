#pragma once
/// \file cluster::StreamDirectory — this node's side of the publisher registry
/// (docs/design.md "Clustered live streaming").
///
/// - Claims: every local publish (not a relay) is claimed in the registry on the directory's
///   worker thread, never on the publisher's I/O thread. A lost claim revokes the local publish
///   (the RTMP session answers NetStream.Publish.BadName and closes). A claim wins over an entry
///   of this node itself (a stale one), of a node that is not alive, or — with
///   live.publish_takeover — of any node; every win takes a new, larger epoch.
/// - Leases: the worker refreshes every held entry each refresh interval (the heartbeat
///   interval) and releases it at unpublish. A refresh refused by epoch means another node took
///   the stream: the local publish is revoked.
/// - Mirror: every node keeps a copy of the whole registry in memory, replaced by a full listing
///   every refresh interval and updated at once by `stream:` events on the cluster bus (claim,
///   release), so play requests look up owners without a network round trip.
///
/// Thread safety: all public functions are thread-safe. Listeners run on the worker thread or
/// the bus thread; they must not block.

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cluster/event_bus.hpp"
#include "cluster/publisher_registry.hpp"
#include "live/stream_hub.hpp"

namespace castmesh::cluster {

struct StreamDirectoryConfig {
  std::string node_id;            ///< this node
  std::string addr;               ///< this node's inter-node API "host:port" (stored in entries)
  int64_t refresh_interval_ms = 5000;  ///< lease refresh and full mirror reload
  int64_t lease_ms = 25000;       ///< entry TTL (refresh interval x (offline threshold + 2))
  bool publish_takeover = false;  ///< live.publish_takeover
};

/// Counters for /metrics.
struct DirectoryStats {
  uint64_t claims_won = 0;
  uint64_t claims_lost = 0;
  uint64_t takeovers = 0;
  uint64_t fenced = 0;            ///< local publishes revoked because another node holds the key
  uint64_t registry_errors = 0;
  size_t entries = 0;             ///< entries in the mirror
  size_t held = 0;                ///< entries this node holds
};

class StreamDirectory {
 public:
  /// `registry`, `hub` and `bus` must outlive the directory.
  StreamDirectory(StreamDirectoryConfig cfg, PublisherRegistry& registry, live::StreamHub& hub, EventBus& bus);
  ~StreamDirectory();
  StreamDirectory(const StreamDirectory&) = delete;
  StreamDirectory& operator=(const StreamDirectory&) = delete;

  /// Whether a node is alive (membership). Set before start(); unset = every node is alive.
  void set_node_alive(std::function<bool(const std::string& node_id)> f);
  /// Called after the mirror's entry of `stream` changed (new owner or epoch, or removed).
  void on_change(std::function<void(const std::string& stream, const std::optional<PublisherEntry>&)> f);

  /// Output state handed from one owner of a stream to the next (PublisherRegistry::refresh):
  /// `get(key)` reads this node's state of a stream it publishes (every refresh and before a
  /// release); `apply(key, text)` gives a new local publish the state its predecessor stored
  /// (right after the claim is won). Both run on the worker thread. Set before start().
  void set_continuation(std::function<std::string(const live::StreamKey&)> get,
                        std::function<void(const live::StreamKey&, const std::string&)> apply);

  /// Subscribes to the hub and the bus, clears this node's stale entries and starts the worker.
  void start();
  /// Releases every held entry (bounded by the registry's timeouts) and stops the worker.
  void stop();

  /// The registry's owner of `stream` ("app/stream") as mirrored here, or nullopt.
  std::optional<PublisherEntry> owner(const std::string& stream) const;
  /// owner(), or else the last owner of `stream` when its entry went away less than `grace_ms`
  /// ago (HLS players keep reading the last segments after an unpublish).
  std::optional<PublisherEntry> owner_or_recent(const std::string& stream, int64_t grace_ms) const;
  /// The owner `stream` had before its current one (or before it went away), when that changed
  /// less than `grace_ms` ago; nullopt otherwise.
  std::optional<PublisherEntry> previous_owner(const std::string& stream, int64_t grace_ms) const;
  /// True when another node owns `stream` (the hub's remote locator).
  bool remote(const std::string& stream) const;
  /// Every mirrored entry, by stream.
  std::vector<PublisherEntry> entries() const;

  /// Leader task: removes the entries of an offline node (asynchronous, on the worker).
  void remove_node(const std::string& node_id);
  /// Re-reads the whole registry now (asynchronous).
  void reload();

  DirectoryStats stats() const;
  const StreamDirectoryConfig& config() const noexcept { return cfg_; }

 private:
  struct Held {
    PublisherEntry entry;
    uint64_t local_epoch = 0;
  };
  void post(std::function<void()> task);
  void run();
  void on_stream_event(const live::StreamEvent& ev);
  void on_bus_event(const Event& ev);
  void claim(const live::StreamKey& key, uint64_t local_epoch);
  void release(const std::string& stream, uint64_t local_epoch);
  void refresh_all();
  void reload_now();
  void announce(const char* kind, const PublisherEntry& e);
  void revoke(const std::string& stream, const std::string& reason);
  void apply(const std::string& stream, const std::optional<PublisherEntry>& e, bool authoritative);
  bool alive(const std::string& node_id) const;
  std::string codecs_of(const live::StreamKey& key) const;

  const StreamDirectoryConfig cfg_;
  PublisherRegistry& registry_;
  live::StreamHub& hub_;
  EventBus& bus_;
  std::function<bool(const std::string&)> node_alive_;
  std::function<void(const std::string&, const std::optional<PublisherEntry>&)> changed_;
  std::function<std::string(const live::StreamKey&)> cont_get_;
  std::function<void(const live::StreamKey&, const std::string&)> cont_apply_;
  Subscription bus_sub_;

  mutable std::mutex mu_;
  std::map<std::string, PublisherEntry> mirror_;
  std::map<std::string, std::pair<PublisherEntry, int64_t>> departed_;  // entry, when it left (mono ms)
  std::map<std::string, Held> held_;          // worker thread writes, stats reads (mu_)
  std::map<std::string, uint64_t> pending_;   // publishes whose claim failed (Redis away): retried
  DirectoryStats stats_;

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  bool started_ = false;
  std::thread worker_;
};

/// The bus topic of stream registry events: "stream:{app/stream}".
std::string stream_topic(const std::string& stream);

}  // namespace castmesh::cluster
