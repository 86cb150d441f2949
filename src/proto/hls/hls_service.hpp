#pragma once
/// \file HlsService: owns the HLS store and one Segmenter per live stream, and answers HLS file
/// reads for the HTTP layer. Pure logic: no sockets, no Asio.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "proto/hls/hls_config.hpp"
#include "proto/hls/segmenter.hpp"
#include "proto/hls/store.hpp"

namespace castmesh::hls {

/// The HLS output of a node. Wiring (app/): `hub.add_observer_factory(hls.observer_factory())`,
/// route `GET /live/{app}/{file}` to get(), call sweep() every second, and on shutdown call
/// stop() after StreamHub::stop(). The service must outlive the hub's use of the factory.
/// Thread-safe.
class HlsService {
 public:
  /// One file for an HTTP response. `body` is shared with the store (no copy).
  struct HlsFile {
    Blob body;
    /// "application/vnd.apple.mpegurl" (playlist, RFC 8216 4) or "video/mp2t" (segment).
    std::string content_type;
    /// Suggested Cache-Control header: playlists change every segment ("no-cache"); a
    /// segment never changes once listed ("max-age=..." of a few target durations).
    std::string cache_control;
  };

  /// Store chosen by `cfg.store` (make_store), monotonic clock.
  HlsService(const HlsConfig& cfg, Metrics& metrics);
  /// With an explicit store and clock (tests; `clock` empty = mono_ms).
  HlsService(const HlsConfig& cfg, Metrics& metrics, std::shared_ptr<Store> store, Clock clock);
  ~HlsService();
  HlsService(const HlsService&) = delete;
  HlsService& operator=(const HlsService&) = delete;

  /// Factory for StreamHub::add_observer_factory. Returns nullptr (no observer) when HLS is
  /// disabled. Observers of successive Sources of one stream key share one Segmenter while
  /// its files exist, so a publisher returning within cleanup_grace_secs continues the same
  /// playlist (media sequence continues, EXT-X-DISCONTINUITY marks the change).
  live::StreamHub::ObserverFactory observer_factory();

  /// The file `file_name` of stream `key`: "{stream}.m3u8" or "{stream}-{seq}.ts" (seq decimal).
  /// std::nullopt when a name is invalid, the name has another shape, or the file does not
  /// exist (yet, or any more): the caller answers 404.
  std::optional<HlsFile> get(const live::StreamKey& key, std::string_view file_name) const;
  /// As get(), but only what the store has without blocking (see Store::peek); when
  /// store().reads_block(), callers on I/O threads call this and run get() elsewhere.
  std::optional<HlsFile> peek(const live::StreamKey& key, std::string_view file_name) const;
  /// `body` as a segment (`segment`) or playlist response, with the content type and cache
  /// control get() gives it (also for objects fetched from another node).
  HlsFile make_file(bool segment, Blob body) const;

  /// Removes files of streams whose publisher left more than cleanup_grace_secs ago and
  /// forgets segmenters no Source uses any more. Call every second.
  void sweep();

  /// Removes every stream's files from the store (shutdown, after StreamHub::stop()).
  void stop();

  /// The playlist continuation of `key` ("{next_sequence}:{discontinuities}"), "" when the
  /// stream has no segmenter here. Text, so the cluster registry can carry it opaquely.
  std::string continuation(const live::StreamKey& key) const;
  /// Continues a predecessor's playlist ("{next_sequence}:{discontinuities}"), skipping `margin`
  /// sequence numbers so no number the predecessor may have written after its last report is
  /// reused. False when the text is malformed, the stream has no segmenter or already listed a
  /// segment.
  bool continue_from(const live::StreamKey& key, std::string_view text, uint64_t margin);

  /// Streams with a segmenter (publishing, in grace period, or attached to a Source).
  size_t stream_count() const;
  Store& store() noexcept { return *store_; }
  const HlsConfig& config() const noexcept { return cfg_; }

 private:
  std::unique_ptr<live::SourceObserver> make_observer(const live::StreamKey& key);
  std::optional<HlsFile> lookup(const live::StreamKey& key, std::string_view file_name, bool may_block) const;

  const HlsConfig cfg_;
  Metrics& metrics_;
  const std::shared_ptr<Store> store_;
  const Clock clock_;
  mutable std::mutex mu_;
  std::map<live::StreamKey, std::shared_ptr<Segmenter>> segmenters_;
};

}  // namespace castmesh::hls
