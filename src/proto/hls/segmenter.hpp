#pragma once
/// \file HLS segmenter: turns one stream's MediaPackets into MPEG-TS segments and a live media
/// playlist in a Store (RFC 8216).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "media/format/flv_to_ts.hpp"
#include "proto/hls/hls_config.hpp"
#include "proto/hls/playlist.hpp"
#include "proto/hls/store.hpp"

namespace castmesh::hls {

/// Monotonic clock in milliseconds (castmesh::mono_ms by default; tests inject their own).
using Clock = std::function<int64_t()>;

/// Segments one stream ("app/stream") into "{app}/{stream}/{stream}-{seq}.ts" objects and keeps
/// "{app}/{stream}/{stream}.m3u8" up to date in a Store.
///
/// Cutting: a segment starts at a video keyframe (audio-only streams: at any audio frame) and is
/// closed at the first keyframe whose DTS is >= target_duration_secs after the segment's start,
/// or before a packet when the segment already holds max_segment_bytes. Packets before the
/// first keyframe are dropped. Every segment starts with PAT + PMT. Only H.264 video and AAC
/// audio are segmented; other codecs are ignored (an HEVC stream gives audio-only HLS).
///
/// Publishing is immediate: when a keyframe closes a segment, the segment and the re-rendered
/// playlist are put into the store before the keyframe is written to the next segment, on the
/// publisher's thread. The playlist lists the newest `window` segments; files of segments that
/// slid out are kept for kRetainedSegments more cuts, then removed from the store.
///
/// Publisher changes: on_unpublish flushes the partial segment and leaves the playlist
/// live-looking (no EXT-X-ENDLIST) so players wait for a republish; the first segment after a
/// republish carries EXT-X-DISCONTINUITY and the media sequence continues (RFC 8216 4.3.2.3,
/// 6.2.2). cleanup_grace_secs after the publisher left, sweep() removes playlist and segments.
///
/// Thread safety: all members lock an internal mutex; the SourceObserver callbacks run on the
/// publisher's thread, sweep() on any thread.
class Segmenter final : public live::SourceObserver {
 public:
  /// Segment files kept in the store after sliding out of the playlist, for players that
  /// fetched the playlist just before the slide.
  static constexpr size_t kRetainedSegments = 3;

  /// `store` and `metrics` must outlive the segmenter; `clock` defaults to mono_ms.
  Segmenter(live::StreamKey key, const HlsConfig& cfg, std::shared_ptr<Store> store, Metrics& metrics,
            Clock clock = {});
  ~Segmenter() override;

  /// A publisher started. When segments of an earlier publisher are still listed (same Source
  /// or, within the grace period, an earlier Source of this key) the next segment gets
  /// EXT-X-DISCONTINUITY, whatever `republish` says; a fresh stream first clears stale files
  /// under "{app}/{stream}" in the store.
  void on_publish(bool republish) override;
  /// Segments one packet (sequence headers update the muxer config; data packets are ignored).
  /// May put a finished segment and the playlist into the store before returning.
  void on_packet(const media::PacketPtr& pkt) override;
  /// Flushes the partial segment (its duration is extended by one frame interval) and starts
  /// the cleanup grace period. The playlist stays without EXT-X-ENDLIST.
  void on_unpublish() override;
  /// Treated as an unpublish when a publisher is still live; files stay until sweep() expires.
  void on_close() override;

  /// Removes the playlist and segments once no publisher has been live for cleanup_grace_secs.
  /// Returns expired(). Idempotent; call periodically (HlsService::sweep does, every second).
  bool sweep();
  /// Removes this stream's files now and ignores every later callback (service shutdown).
  void shutdown();
  /// True when no publisher is live and none of this stream's files are in the store.
  bool expired() const;
  bool publishing() const;

  /// Where a successor continues this stream's playlist (another node taking the stream over).
  struct Continuation {
    uint64_t next_sequence = 0;    ///< media sequence number of the next segment
    uint64_t discontinuities = 0;  ///< EXT-X-DISCONTINUITY tags written so far (slid out or listed)
  };
  Continuation continuation() const;
  /// Continues a predecessor's playlist: when this segmenter has listed no segment yet, the next
  /// segment gets sequence `c.next_sequence` (if larger than its own) and EXT-X-DISCONTINUITY,
  /// and the playlist's discontinuity sequence becomes `c.discontinuities` (RFC 8216 6.2.2:
  /// players switching between nodes see one continuous playlist with a discontinuity).
  /// Returns false (nothing changed) once a segment is listed.
  bool continue_from(const Continuation& c);

  /// A copy of the current playlist state (for tests and the API).
  PlaylistState playlist() const;
  /// Media sequence number the next segment will get.
  uint64_t next_sequence() const;
  const live::StreamKey& key() const noexcept { return key_; }
  /// Store paths: "{app}/{stream}/{stream}.m3u8" and "{app}/{stream}/{stream}-{seq}.ts".
  std::string playlist_path() const;
  std::string segment_path(uint64_t seq) const;

 private:
  void open_segment_locked(uint32_t dts_ms);
  void close_segment_locked(int64_t duration_ms);
  void reset_muxer_locked();
  bool create_muxer_locked();
  void warn_once_locked(const std::string& what);

  const live::StreamKey key_;
  const HlsConfig cfg_;
  const std::shared_ptr<Store> store_;
  Metrics& metrics_;
  const Clock clock_;
  const std::string dir_;  // "{app}/{stream}"

  mutable std::mutex mu_;
  // Publish state.
  bool publishing_ = false;
  bool shut_down_ = false;
  bool files_present_ = false;    // something of this stream is in the store
  bool discontinuity_next_ = false;
  int64_t idle_since_ms_ = 0;     // when the publisher left
  bool warned_ = false;           // one warning per publish for unusable packets
  // Muxer and the tracks it was created with (decided at the first coded frame).
  std::optional<media::ts::FlvToTs> ts_;
  bool has_video_ = false, has_audio_ = false;
  bool reconfig_pending_ = false;  // a track appeared after the muxer was created
  media::PacketPtr video_sh_, audio_sh_;
  // The open segment.
  bool open_ = false;
  Bytes buf_;
  uint32_t start_dts_ = 0;
  uint32_t last_dts_ = 0;         // DTS of the newest frame of the cutting track
  uint32_t last_delta_ = 0;       // its distance to the frame before, ms
  uint32_t frames_ = 0;
  bool segment_discontinuity_ = false;
  // Playlist.
  uint64_t next_seq_ = 0;
  PlaylistState playlist_;
  std::deque<uint64_t> retired_;  // slid out, file still in the store
};

}  // namespace castmesh::hls
