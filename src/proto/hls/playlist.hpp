#pragma once
/// \file HLS media playlist rendering (RFC 8216 4.3), pure text generation.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace castmesh::hls {

/// One media segment listed in a media playlist.
struct SegmentEntry {
  /// Media sequence number of the segment (RFC 8216 3).
  uint64_t sequence = 0;
  /// Segment duration in milliseconds (rendered as EXTINF seconds with 3 decimals).
  uint64_t duration_ms = 0;
  /// True for the first segment after a publisher change: an EXT-X-DISCONTINUITY tag is
  /// written before it (RFC 8216 4.3.2.3).
  bool discontinuity = false;
  /// URI relative to the playlist, e.g. "test-12.ts".
  std::string uri;
};

/// Everything a live media playlist shows. `segments` are in media sequence order.
struct PlaylistState {
  /// Lower bound of EXT-X-TARGETDURATION in seconds. The renderer writes the maximum of this
  /// and the ceiling of every listed segment's duration (RFC 8216 4.3.3.1); the owner keeps
  /// it at the largest value ever written so the value never decreases within a stream.
  uint32_t target_duration_secs = 2;
  /// Media sequence number written when `segments` is empty; otherwise the first listed
  /// segment's sequence number is written (RFC 8216 4.3.3.2).
  uint64_t media_sequence = 0;
  /// Discontinuity sequence number of the first listed segment: the number of
  /// EXT-X-DISCONTINUITY tags that slid out of the playlist (RFC 8216 4.3.3.3). The tag is
  /// written only when non-zero.
  uint64_t discontinuity_sequence = 0;
  std::deque<SegmentEntry> segments;
  /// The stream ended: EXT-X-ENDLIST is appended (RFC 8216 4.3.3.4).
  bool ended = false;
};

/// Ceiling of `duration_ms` in whole seconds (the smallest target duration that covers it).
uint32_t ceil_secs(uint64_t duration_ms) noexcept;

/// The EXT-X-TARGETDURATION value `state` renders with, in seconds (>= 1).
uint32_t effective_target_duration(const PlaylistState& state) noexcept;

/// Renders a version 3 media playlist (RFC 8216 4.3): #EXTM3U, #EXT-X-VERSION:3,
/// #EXT-X-TARGETDURATION, #EXT-X-MEDIA-SEQUENCE, #EXT-X-DISCONTINUITY-SEQUENCE (when
/// non-zero), then per segment an optional #EXT-X-DISCONTINUITY, `#EXTINF:<s.mmm>,` and the
/// URI, and #EXT-X-ENDLIST when `ended`. Lines end with "\n".
std::string render_media_playlist(const PlaylistState& state);

/// Segment file name of stream `stream`, sequence `seq`: "{stream}-{seq}.ts".
std::string segment_file_name(std::string_view stream, uint64_t seq);

/// Playlist file name of stream `stream`: "{stream}.m3u8".
std::string playlist_file_name(std::string_view stream);

}  // namespace castmesh::hls
