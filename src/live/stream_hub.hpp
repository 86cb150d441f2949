#pragma once
/// \file live::StreamHub, Source, Publisher and Subscription: the fan-out core.
///
/// One Source per "app/stream". A Source keeps a bounded ring of shared, immutable packets
/// starting at the oldest retained keyframe (the GOP cache). The publisher appends under the
/// Source's mutex; each subscriber holds only a cursor into the ring and copies shared
/// pointers out under the same mutex, so no packet is copied per subscriber. A subscriber that
/// falls more than `subscriber_max_lag_ms` behind, or whose cursor fell out of the ring, skips
/// to the newest keyframe (whole GOPs are dropped and counted). Header is free of Asio.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "media/packet.hpp"

namespace castmesh::live {

/// "app/stream" — both parts validated by validate_name().
struct StreamKey {
  std::string app;
  std::string stream;
  std::string str() const { return app + "/" + stream; }
  auto operator<=>(const StreamKey&) const = default;
};

/// Accepts 1..128 characters of [A-Za-z0-9_.-], not starting with '.'; refuses everything
/// else (path traversal, empty, control characters) with Errc::bad_name.
Status validate_name(std::string_view name);

/// Limits and timings of live sources (config section `live`).
struct LiveConfig {
  /// Hard cap of the ring per Source in bytes; also caps one oversized GOP.
  size_t gop_cache_max_bytes = 32 * 1024 * 1024;
  /// How many whole GOPs the ring retains behind the newest keyframe (>= 1).
  uint32_t gop_cache_gops = 2;
  /// A subscriber further behind the newest packet than this skips to the newest keyframe.
  uint32_t subscriber_max_lag_ms = 3000;
  /// Source without publisher and subscribers is removed after this many ms.
  uint32_t idle_timeout_ms = 10000;
};

/// Snapshot of one stream for the HTTP API.
struct StreamStats {
  StreamKey key;
  bool publishing = false;
  std::string publisher_protocol;  ///< "rtmp"
  std::string publisher_remote;    ///< "ip:port"
  std::string video_codec;         ///< "H264", "HEVC" or ""
  std::string audio_codec;         ///< "AAC", "MP3" or ""
  uint32_t width = 0, height = 0;
  double fps = 0;                  ///< measured from video timestamps over the last GOPs
  uint32_t bitrate_kbps = 0;       ///< payload bitrate over the last ~5 s, kbit/s
  uint32_t audio_sample_rate = 0;
  uint32_t audio_channels = 0;
  int64_t uptime_ms = 0;           ///< since this publish started
  uint64_t bytes_in = 0;
  uint64_t subscribers[Metrics::kProtos] = {};
  uint64_t dropped_gops = 0;
};

/// Receives every packet of a Source synchronously on the publisher's thread (HLS segmenter,
/// recorders). Must not block for long; exceptions are not allowed.
class SourceObserver {
 public:
  virtual ~SourceObserver() = default;
  /// A publisher started. `republish` is true when the Source had a previous publisher.
  virtual void on_publish(bool republish) = 0;
  virtual void on_packet(const media::PacketPtr& pkt) = 0;
  /// The publisher stopped (disconnect or unpublish).
  virtual void on_unpublish() = 0;
  /// The Source is being removed (idle) or the hub stops; release resources.
  virtual void on_close() {}
  /// Whether this observer follows publishes of protocol `publisher` (called at each publish;
  /// an observer that declines gets no callbacks until the next publish it accepts). The HLS
  /// segmenter declines relayed publishes: an edge serves the owner's segments instead.
  virtual bool accepts(Proto publisher) const { return true; }
};

/// What happened to a stream (StreamHub::add_event_listener).
struct StreamEvent {
  enum class Kind : uint8_t { publish, unpublish, subscribe, unsubscribe };
  Kind kind;
  const StreamKey& key;
  /// The Source's publish epoch (1 for its first publisher, +1 per publish); for subscribe and
  /// unsubscribe the current one (0 before any publish).
  uint64_t epoch;
  /// publish/unpublish: the publisher's protocol; subscribe/unsubscribe: the subscriber's.
  Proto proto;
};

class Source;

/// Handle owned by the publishing session. Destroying it (or calling unpublish) releases the
/// stream key; subscribers stay attached and wait for the next publisher.
class Publisher {
 public:
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  /// Appends one message (any thread, but one thread at a time). `timestamp_ms` is the
  /// publisher's timestamp; it is rebased so output timestamps continue monotonically after a
  /// republish. `payload` is the FLV tag body / RTMP message payload. Returns false when the
  /// payload is too short for its codec (dropped; the caller may count a protocol error).
  bool push(media::PacketType type, uint32_t timestamp_ms, Bytes payload);
  /// Ends this publish (idempotent). A later publisher of the same Source is not affected.
  void unpublish();
  const StreamKey& key() const noexcept;
  /// The publish epoch of this publisher (see StreamEvent::epoch).
  uint64_t epoch() const noexcept { return epoch_; }
  /// True once StreamHub::revoke_publisher() ended this publish.
  bool revoked() const;
  /// Called once (on the revoking thread, under no hub lock) when StreamHub::revoke_publisher()
  /// ends this publish, with the reason. Must be cheap and thread-safe, e.g. an asio::post to
  /// the session. Set it right after publish().
  void set_on_revoked(std::function<void(const std::string& reason)> f);

 private:
  friend class StreamHub;
  Publisher(std::shared_ptr<Source> src, uint64_t epoch) : src_(std::move(src)), epoch_(epoch) {}
  std::shared_ptr<Source> src_;
  uint64_t epoch_ = 0;
};

/// A subscriber's cursor. Owned by the playing session; destroying it unsubscribes.
class Subscription {
 public:
  enum class ReadStatus {
    ok,     ///< packets were appended
    wait,   ///< nothing new; the waker will be called once when there is
    ended,  ///< the Source is gone (hub stopping or removed); stop playing
  };
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  /// Appends packets not yet seen, in order, to `out`. The first read yields metadata,
  /// sequence headers and the GOP cache from the newest keyframe; later reads continue from
  /// the cursor. When lagging (see LiveConfig) it first skips to the newest keyframe,
  /// re-sending metadata and sequence headers. `max_bytes` bounds the payload appended.
  /// On `wait` the waker is armed and called once from the publisher's thread.
  ReadStatus read(std::vector<media::PacketPtr>& out, size_t max_bytes = 4 * 1024 * 1024);

  /// Sets the callback run (on the publisher's thread, under no lock) when data arrives
  /// after a `wait`. It must be cheap and thread-safe, e.g. an asio::post to the reader.
  void set_waker(std::function<void()> waker);

  /// GOP skips of this subscriber.
  uint64_t dropped_gops() const noexcept { return dropped_gops_; }
  const StreamKey& key() const noexcept;
  /// True while the Source has a live publisher.
  bool publishing() const;

 private:
  friend class StreamHub;
  friend class Source;
  Subscription(std::shared_ptr<Source> src, Proto proto) : src_(std::move(src)), proto_(proto) {}
  std::shared_ptr<Source> src_;
  Proto proto_;
  uint64_t cursor_ = 0;          // next sequence number to read
  bool started_ = false;
  uint64_t seen_epoch_ = 0;      // publish epoch whose headers were sent
  uint64_t min_epoch_ = 0;       // the first publish epoch this subscriber may play (set at attach)
  uint64_t dropped_gops_ = 0;
  std::function<void()> waker_;
  bool armed_ = false;           // guarded by the Source's mutex
};

/// The registry of Sources. Thread-safe.
class StreamHub {
 public:
  StreamHub(const LiveConfig& cfg, Metrics& metrics);
  ~StreamHub();

  /// Claims `key` (or the key the authorizer maps it to) for a new publisher; the
  /// Publisher's key() tells which. Relayed publishes (Proto::relay) skip the authorizer: the
  /// key is already the public one the owner publishes. Errors: Errc::bad_name, Errc::already_publishing, and the
  /// authorizer's (Errc::forbidden).
  Result<std::unique_ptr<Publisher>> publish(const StreamKey& requested, Proto proto, std::string remote);

  /// Subscribes to `key`. When no publisher is live: with `wait_for_publisher` the
  /// subscription is created and waits (RTMP play semantics); without it, the subscription
  /// also waits when the remote locator says another node publishes the stream (a relay will
  /// feed this Source), otherwise Errc::not_found (Errc::unavailable when the locator says too
  /// many players already wait for that relay).
  Result<std::unique_ptr<Subscription>> subscribe(const StreamKey& key, Proto proto,
                                                  bool wait_for_publisher);

  /// Decides whether a publish may proceed and under which key: it returns the key to
  /// publish under (the requested one, or e.g. a room's public stream for a secret publish
  /// key), or an error that refuses the publish (Errc::forbidden). Called on the publisher's
  /// thread before the key is claimed; set before serving.
  using PublishAuthorizer = std::function<Result<StreamKey>(const StreamKey&, std::string_view remote)>;
  void set_publish_authorizer(PublishAuthorizer f);

  /// Answers "does another node publish `key`?" for subscribe(): `none` (Errc::not_found),
  /// `remote` (the subscription waits for the relay) or `full` (too many players already wait:
  /// Errc::unavailable). Called on the subscriber's thread under no hub lock: it must not block
  /// (a memory lookup). Unset: always `none`.
  enum class Remote : uint8_t { none, remote, full };
  using RemoteLocator = std::function<Remote(const StreamKey&)>;
  void set_remote_locator(RemoteLocator f);

  /// Ends the publish of `key` when its epoch is `epoch` (a lost registry claim, a takeover by
  /// another node): the publisher's on_revoked callback runs with `reason`, subscribers stay
  /// and wait for the next publisher. Returns false when that publish is not live.
  bool revoke_publisher(const StreamKey& key, uint64_t epoch, const std::string& reason);

  /// Ends every subscription of `key` while it has no publisher (read() returns ended) and
  /// removes its Source: a relay that could not reach any owner releases its waiting players.
  /// Returns false when the stream is being published here (nothing is done).
  bool close_unpublished(const StreamKey& key);

  /// Live subscribers of `key` on this node, by protocol, without HLS viewers (0 when absent).
  uint64_t subscriber_count(const StreamKey& key, Proto proto) const;
  /// True when `key` has a live publisher on this node; `proto` (optional) receives its protocol.
  bool is_publishing(const StreamKey& key, Proto* proto = nullptr) const;

  /// Creates the observers attached to every new Source (called under no hub lock).
  using ObserverFactory = std::function<std::unique_ptr<SourceObserver>(const StreamKey&)>;
  void add_observer_factory(ObserverFactory f);

  /// Stream events for other services (publisher registry, relays, rooms): publish and
  /// unpublish on the publisher's thread, subscribe and unsubscribe on the subscriber's thread.
  /// Called under no hub or Source lock; must be cheap (no I/O).
  using EventListener = std::function<void(const StreamEvent&)>;
  void add_event_listener(EventListener f);

  /// Supplies subscriber counts of a protocol the hub does not see as subscriptions (HLS
  /// viewers are stateless HTTP clients). Set before serving; used by list() and stats().
  using SubscriberCounter = std::function<uint64_t(const StreamKey&)>;
  void set_subscriber_counter(Proto proto, SubscriberCounter counter);

  std::vector<StreamStats> list() const;
  std::optional<StreamStats> stats(const StreamKey& key) const;
  size_t publishing_count() const;

  /// Removes Sources idle longer than idle_timeout_ms. Call periodically (app does, 1 s).
  void sweep();
  /// Ends every subscription (read() returns ended) and drops all Sources.
  void stop();

  const LiveConfig& config() const noexcept { return cfg_; }

 private:
  friend class Source;
  void emit_event(const StreamEvent& ev);
  std::shared_ptr<Source> find(const StreamKey& key) const;
  void add_external_counts(StreamStats& st) const;
  /// The Source of `key`; with `create`, a new one (with observers) when there is none.
  Result<std::shared_ptr<Source>> find_or_create(const StreamKey& key, bool create);

  LiveConfig cfg_;
  Metrics& metrics_;
  mutable std::mutex mu_;
  std::map<StreamKey, std::shared_ptr<Source>> sources_;
  std::vector<ObserverFactory> observer_factories_;
  std::vector<EventListener> listeners_;
  std::vector<std::pair<Proto, SubscriberCounter>> counters_;
  PublishAuthorizer authorizer_;
  RemoteLocator locator_;
  bool stopped_ = false;
};

}  // namespace castmesh::live
