#include "proto/hls/playlist.hpp"

#include <gtest/gtest.h>

namespace castmesh::hls {
namespace {

SegmentEntry seg(uint64_t seq, uint64_t ms, bool disc = false) {
  return SegmentEntry{seq, ms, disc, segment_file_name("test", seq)};
}

TEST(Playlist, FileNames) {
  EXPECT_EQ(segment_file_name("cam_1", 42), "cam_1-42.ts");
  EXPECT_EQ(playlist_file_name("cam_1"), "cam_1.m3u8");
}

TEST(Playlist, EmptyLivePlaylist) {
  PlaylistState st;
  st.target_duration_secs = 2;
  st.media_sequence = 7;
  EXPECT_EQ(render_media_playlist(st),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n");
}

TEST(Playlist, GoldenLive) {
  PlaylistState st;
  st.target_duration_secs = 2;
  st.segments = {seg(0, 2000), seg(1, 2002), seg(2, 1960)};
  // 2.002 s needs a target of 3 (ceil), the configured 2 is only a floor.
  EXPECT_EQ(render_media_playlist(st),
            "#EXTM3U\n"
            "#EXT-X-VERSION:3\n"
            "#EXT-X-TARGETDURATION:3\n"
            "#EXT-X-MEDIA-SEQUENCE:0\n"
            "#EXTINF:2.000,\ntest-0.ts\n"
            "#EXTINF:2.002,\ntest-1.ts\n"
            "#EXTINF:1.960,\ntest-2.ts\n");
}

TEST(Playlist, MediaSequenceIsFirstListedSegment) {
  PlaylistState st;
  st.media_sequence = 0;  // ignored when segments are listed
  st.segments = {seg(10, 2000), seg(11, 2000)};
  std::string text = render_media_playlist(st);
  EXPECT_NE(text.find("#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2.000,\ntest-10.ts\n#EXTINF:2.000,\ntest-11.ts\n"),
            std::string::npos)
      << text;
}

TEST(Playlist, DiscontinuityAndSequence) {
  PlaylistState st;
  st.target_duration_secs = 4;
  st.discontinuity_sequence = 2;
  st.segments = {seg(5, 4000), seg(6, 1500, true), seg(7, 4000)};
  st.ended = true;
  EXPECT_EQ(render_media_playlist(st),
            "#EXTM3U\n"
            "#EXT-X-VERSION:3\n"
            "#EXT-X-TARGETDURATION:4\n"
            "#EXT-X-MEDIA-SEQUENCE:5\n"
            "#EXT-X-DISCONTINUITY-SEQUENCE:2\n"
            "#EXTINF:4.000,\ntest-5.ts\n"
            "#EXT-X-DISCONTINUITY\n"
            "#EXTINF:1.500,\ntest-6.ts\n"
            "#EXTINF:4.000,\ntest-7.ts\n"
            "#EXT-X-ENDLIST\n");
}

TEST(Playlist, TargetDurationRule) {
  EXPECT_EQ(ceil_secs(0), 0u);
  EXPECT_EQ(ceil_secs(1), 1u);
  EXPECT_EQ(ceil_secs(2000), 2u);
  EXPECT_EQ(ceil_secs(2001), 3u);
  PlaylistState st;
  st.target_duration_secs = 0;  // never rendered below 1
  EXPECT_EQ(effective_target_duration(st), 1u);
  st.target_duration_secs = 6;  // a floor kept by the owner after long segments slid out
  st.segments = {seg(1, 2000)};
  EXPECT_EQ(effective_target_duration(st), 6u);
  st.segments.push_back(seg(2, 6001));
  EXPECT_EQ(effective_target_duration(st), 7u);
  for (const auto& s : st.segments) EXPECT_LE(ceil_secs(s.duration_ms), effective_target_duration(st));
}

TEST(Playlist, NoEndListWhileLive) {
  PlaylistState st;
  st.segments = {seg(0, 2000)};
  EXPECT_EQ(render_media_playlist(st).find("ENDLIST"), std::string::npos);
  st.ended = true;
  std::string text = render_media_playlist(st);
  EXPECT_EQ(text.substr(text.size() - 15), "#EXT-X-ENDLIST\n");
}

}  // namespace
}  // namespace castmesh::hls
