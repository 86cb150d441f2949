#include "proto/hls/playlist.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace castmesh::hls {

uint32_t ceil_secs(uint64_t duration_ms) noexcept {
  return static_cast<uint32_t>((duration_ms + 999) / 1000);
}

uint32_t effective_target_duration(const PlaylistState& state) noexcept {
  uint32_t target = std::max<uint32_t>(state.target_duration_secs, 1);
  for (const auto& seg : state.segments) target = std::max(target, ceil_secs(seg.duration_ms));
  return target;
}

std::string render_media_playlist(const PlaylistState& state) {
  std::string out;
  out.reserve(128 + state.segments.size() * 48);
  auto it = std::back_inserter(out);
  fmt::format_to(it, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n",
                 effective_target_duration(state));
  uint64_t media_sequence = state.segments.empty() ? state.media_sequence : state.segments.front().sequence;
  fmt::format_to(it, "#EXT-X-MEDIA-SEQUENCE:{}\n", media_sequence);
  if (state.discontinuity_sequence > 0)
    fmt::format_to(it, "#EXT-X-DISCONTINUITY-SEQUENCE:{}\n", state.discontinuity_sequence);
  for (const auto& seg : state.segments) {
    if (seg.discontinuity) out += "#EXT-X-DISCONTINUITY\n";
    // Integer arithmetic keeps the decimal text exact (no binary floating-point rounding).
    fmt::format_to(it, "#EXTINF:{}.{:03},\n{}\n", seg.duration_ms / 1000, seg.duration_ms % 1000, seg.uri);
  }
  if (state.ended) out += "#EXT-X-ENDLIST\n";
  return out;
}

std::string segment_file_name(std::string_view stream, uint64_t seq) {
  return fmt::format("{}-{}.ts", stream, seq);
}

std::string playlist_file_name(std::string_view stream) { return fmt::format("{}.m3u8", stream); }

}  // namespace castmesh::hls
