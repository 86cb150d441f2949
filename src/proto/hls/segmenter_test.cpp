#include "proto/hls/segmenter.hpp"

#include <gtest/gtest.h>

#include "proto/hls/hls_test_util.hpp"

namespace castmesh::hls {
namespace {

using namespace castmesh::hls::testing;
using media::PacketType;

std::string text(const Blob& b) { return b ? std::string(b->begin(), b->end()) : std::string(); }

/// A segmenter on a MemoryStore with a manual clock.
struct Rig {
  explicit Rig(HlsConfig c = {}) : cfg(c) {
    seg = std::make_unique<Segmenter>(live::StreamKey{"live", "cam"}, cfg, store, metrics, [this] { return now; });
  }
  void headers(uint32_t t, bool video = true, bool audio = true) {
    if (video) seg->on_packet(packet(PacketType::video, t, avc_sequence_header()));
    if (audio) seg->on_packet(packet(PacketType::audio, t, aac_sequence_header()));
  }
  /// Video every 40 ms (keyframe every `gop_ms` from `from`) and audio every 23 ms, in DTS
  /// order, for t in [from, to).
  void feed(uint32_t from, uint32_t to, uint32_t gop_ms = 1000, bool video = true, bool audio = true,
            size_t frame_size = 200) {
    uint32_t tv = from, ta = from;
    while ((video && tv < to) || (audio && ta < to)) {
      if (video && tv < to && (!audio || ta >= to || tv <= ta)) {
        seg->on_packet(packet(PacketType::video, tv, avc_frame((tv - from) % gop_ms == 0, frame_size)));
        tv += 40;
      } else {
        seg->on_packet(packet(PacketType::audio, ta, aac_frame()));
        ta += 23;
      }
    }
  }
  Blob get(const std::string& name) const { return store->get("live/cam/" + name); }
  std::string playlist() const { return text(get("cam.m3u8")); }

  HlsConfig cfg;
  std::shared_ptr<MemoryStore> store = std::make_shared<MemoryStore>();
  Metrics metrics;
  int64_t now = 1'000'000;
  std::unique_ptr<Segmenter> seg;
};

TEST(Segmenter, CutsAtKeyframesAfterTargetDuration) {
  Rig r;  // target 2 s
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 7000, 1000);  // keyframes every second: cuts at 2, 4, 6 s
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(st.segments[i].sequence, i);
    EXPECT_EQ(st.segments[i].duration_ms, 2000u);
    EXPECT_FALSE(st.segments[i].discontinuity);
  }
  EXPECT_EQ(r.metrics.hls_segments_total.load(), 3u);
  EXPECT_EQ(r.playlist(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
            "#EXTINF:2.000,\ncam-0.ts\n#EXTINF:2.000,\ncam-1.ts\n#EXTINF:2.000,\ncam-2.ts\n");
  for (int i = 0; i < 3; ++i) {
    Blob b = r.get("cam-" + std::to_string(i) + ".ts");
    ASSERT_NE(b, nullptr) << i;
    TsSummary ts = read_ts(*b);
    EXPECT_TRUE(ts.aligned);
    ASSERT_GE(ts.pids.size(), 3u);
    EXPECT_EQ(ts.pids[0], 0x0000);  // PAT first
    EXPECT_EQ(ts.pids[1], 0x1000);  // then PMT
    ASSERT_EQ(ts.video_pes.size(), 50u);  // 2 s of 25 fps
    auto first = nal_types(ts.video_pes.front());
    EXPECT_NE(std::find(first.begin(), first.end(), 5), first.end()) << "segment " << i << " starts without IDR";
    EXPECT_NE(std::find(first.begin(), first.end(), 7), first.end()) << "no SPS before the IDR";
    EXPECT_GT(ts.audio_pes, 80u);
  }
  EXPECT_EQ(r.get("cam-3.ts"), nullptr);  // still open
}

TEST(Segmenter, SegmentIsListedWhenItsClosingKeyframeArrives) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 2000, 1000);
  EXPECT_EQ(r.playlist(), "");  // nothing closed yet: 404 for players
  EXPECT_EQ(r.get("cam-0.ts"), nullptr);
  r.seg->on_packet(packet(PacketType::video, 2000, avc_frame(true)));
  EXPECT_NE(r.get("cam-0.ts"), nullptr);
  EXPECT_NE(r.playlist().find("cam-0.ts"), std::string::npos);
}

TEST(Segmenter, DropsFramesBeforeFirstKeyframeAndWaitsForLongGop) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0);
  // Inter frames first: dropped. Then keyframes every 3 s with target 2 s.
  for (uint32_t t = 0; t < 400; t += 40) r.seg->on_packet(packet(PacketType::video, t, avc_frame(false)));
  r.feed(400, 400 + 9001, 3000, true, false);
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 3u);
  for (auto& s : st.segments) EXPECT_EQ(s.duration_ms, 3000u);
  // RFC 8216 4.3.3.1: target duration covers the longest segment.
  EXPECT_NE(r.playlist().find("#EXT-X-TARGETDURATION:3\n"), std::string::npos);
  TsSummary ts = read_ts(*r.get("cam-0.ts"));
  EXPECT_EQ(ts.video_pes.size(), 75u);  // the 10 leading inter frames are not in it
}

TEST(Segmenter, TargetDurationNeverDecreases) {
  HlsConfig cfg;
  cfg.window = 2;
  Rig r(cfg);
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 5000, 5000, true, false);        // one 5 s GOP
  r.feed(5000, 5000 + 12001, 2000, true, false);  // then 2 s GOPs push it out of the window
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 2u);
  EXPECT_EQ(st.segments.back().duration_ms, 2000u);
  EXPECT_EQ(st.segments.front().duration_ms, 2000u);
  EXPECT_NE(r.playlist().find("#EXT-X-TARGETDURATION:5\n"), std::string::npos) << r.playlist();
}

TEST(Segmenter, WindowSlidesAndOldSegmentsAreDeleted) {
  HlsConfig cfg;
  cfg.window = 3;
  Rig r(cfg);
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 20001, 1000);  // 10 segments closed (cuts at 2..20 s)
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 3u);
  EXPECT_EQ(st.segments.front().sequence, 7u);
  EXPECT_EQ(r.seg->next_sequence(), 10u);
  EXPECT_NE(r.playlist().find("#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\ncam-7.ts\n"), std::string::npos);
  EXPECT_EQ(r.playlist().find("cam-6.ts"), std::string::npos);
  // Listed ones and kRetainedSegments more exist; older ones are gone.
  for (uint64_t s = 0; s < 10; ++s) {
    bool expect = s >= 7 - Segmenter::kRetainedSegments;
    EXPECT_EQ(r.get("cam-" + std::to_string(s) + ".ts") != nullptr, expect) << s;
  }
  EXPECT_EQ(r.store->size(), 3 + Segmenter::kRetainedSegments + 1);  // + playlist
}

TEST(Segmenter, RepublishAddsDiscontinuityAndContinuesSequence) {
  HlsConfig cfg;
  cfg.window = 4;
  Rig r(cfg);
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 5000, 1000);
  r.seg->on_unpublish();  // flushes the partial 4..5 s segment
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 3u);
  EXPECT_EQ(st.segments[2].duration_ms, 1000u);  // 4000..4960 + one frame
  EXPECT_EQ(r.playlist().find("ENDLIST"), std::string::npos);  // players keep waiting

  r.seg->on_publish(true);
  r.headers(5040);
  r.feed(5040, 5040 + 4001, 1000);
  st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 4u);
  // Listed: 1, 2 (the flushed partial one), then 3 and 4 from the new publisher.
  EXPECT_EQ(st.segments[0].sequence, 1u);
  EXPECT_EQ(st.segments[2].sequence, 3u);
  EXPECT_EQ(st.segments[3].sequence, 4u);
  EXPECT_FALSE(st.segments[1].discontinuity);
  EXPECT_TRUE(st.segments[2].discontinuity);
  EXPECT_FALSE(st.segments[3].discontinuity);
  EXPECT_NE(r.playlist().find("cam-2.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\ncam-3.ts\n"), std::string::npos)
      << r.playlist();
  EXPECT_EQ(r.playlist().find("DISCONTINUITY-SEQUENCE"), std::string::npos);

  // Slide the discontinuity out: its sequence number advances (RFC 8216 4.3.3.3).
  r.feed(9041, 9041 + 10001, 1000);
  EXPECT_NE(r.playlist().find("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), std::string::npos) << r.playlist();
  EXPECT_EQ(r.playlist().find("#EXT-X-DISCONTINUITY\n"), std::string::npos);
}

TEST(Segmenter, ContinuesAnotherOwnersPlaylist) {
  // The old owner: two segments and one discontinuity so far.
  HlsConfig cfg;
  cfg.window = 4;
  Rig old(cfg);
  old.seg->on_publish(false);
  old.headers(0);
  old.feed(0, 5000, 1000);
  old.seg->on_unpublish();
  old.seg->on_publish(true);
  old.headers(5040);
  old.feed(5040, 5040 + 2001, 1000);
  const auto c = old.seg->continuation();
  EXPECT_EQ(c.next_sequence, 4u);
  EXPECT_EQ(c.discontinuities, 1u);

  // The new owner continues after it: sequence 4 + margin, a discontinuity first, the
  // discontinuity sequence counting the old owner's.
  Rig next(cfg);
  next.seg->on_publish(false);
  next.headers(100);
  next.feed(100, 900, 1000);  // the claim completes while the first segment is still open
  ASSERT_TRUE(next.seg->continue_from({c.next_sequence + 3, c.discontinuities}));
  next.feed(900, 4101, 1000);
  auto st = next.seg->playlist();
  ASSERT_GE(st.segments.size(), 1u);
  EXPECT_EQ(st.segments[0].sequence, 7u);
  EXPECT_TRUE(st.segments[0].discontinuity);
  EXPECT_EQ(st.discontinuity_sequence, 1u);
  EXPECT_NE(next.playlist().find("#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-DISCONTINUITY\n"),
            std::string::npos)
      << next.playlist();
  EXPECT_NE(next.get("cam-7.ts"), nullptr);
  // Once a segment is listed, a late continuation changes nothing.
  EXPECT_FALSE(next.seg->continue_from({100, 5}));
  EXPECT_EQ(next.seg->next_sequence(), st.segments.back().sequence + 1);
}

TEST(Segmenter, CleanupAfterGrace) {
  HlsConfig cfg;
  cfg.cleanup_grace_secs = 30;
  Rig r(cfg);
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 6001, 1000);
  EXPECT_FALSE(r.seg->sweep());  // publishing
  r.seg->on_unpublish();
  r.now += 29'999;
  EXPECT_FALSE(r.seg->sweep());
  EXPECT_NE(r.playlist(), "");
  r.now += 1;
  EXPECT_TRUE(r.seg->sweep());
  EXPECT_TRUE(r.seg->expired());
  EXPECT_EQ(r.store->size(), 0u);

  // A later publisher starts a fresh playlist with no discontinuity.
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 2001, 1000);
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 1u);
  EXPECT_FALSE(st.segments[0].discontinuity);
  EXPECT_NE(r.get("cam-" + std::to_string(st.segments[0].sequence) + ".ts"), nullptr);
}

TEST(Segmenter, RepublishWithinGraceKeepsFiles) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 4001, 1000);
  r.seg->on_unpublish();
  r.now += 10'000;
  r.seg->on_publish(true);
  r.now += 60'000;
  EXPECT_FALSE(r.seg->sweep());
  EXPECT_NE(r.playlist(), "");
}

TEST(Segmenter, AudioOnlyStreamCutsOnDuration) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0, false, true);
  r.feed(0, 6000, 1000, false, true);  // cuts at the frames at 2001 and 4002 ms
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 2u);
  for (auto& s : st.segments) {
    EXPECT_GE(s.duration_ms, 2000u);
    EXPECT_LT(s.duration_ms, 2023u);
  }
  TsSummary ts = read_ts(*r.get("cam-0.ts"));
  EXPECT_TRUE(ts.video_pes.empty());
  EXPECT_GT(ts.audio_pes, 80u);
}

TEST(Segmenter, MaxSegmentBytesCapsGoplessStreams) {
  HlsConfig cfg;
  cfg.max_segment_bytes = 100'000;
  Rig r(cfg);
  r.seg->on_publish(false);
  r.headers(0, true, false);
  r.feed(0, 4000, 1'000'000, true, false, 5000);  // one keyframe, then 99 inter frames of 5 kB
  auto st = r.seg->playlist();
  ASSERT_GE(st.segments.size(), 4u);
  for (auto& s : st.segments) {
    Blob b = r.get(s.uri);
    ASSERT_NE(b, nullptr);
    EXPECT_LE(b->size(), cfg.max_segment_bytes);
    EXPECT_GT(b->size(), cfg.max_segment_bytes / 2);
  }
}

TEST(Segmenter, LateAudioTrackStartsNewSegmentWithDiscontinuity) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0, true, false);
  r.feed(0, 1000, 1000, true, false);
  r.headers(1000, false, true);  // audio shows up after video started
  r.feed(1000, 2001, 1000);      // cut at the keyframe at 1 s (not waiting for 2 s)
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 1u);
  EXPECT_EQ(st.segments[0].duration_ms, 1000u);
  r.feed(2040, 4001, 1000);
  st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 2u);
  EXPECT_TRUE(st.segments[1].discontinuity);
  TsSummary ts = read_ts(*r.get("cam-1.ts"));
  EXPECT_GT(ts.audio_pes, 0u);
  EXPECT_EQ(read_ts(*r.get("cam-0.ts")).audio_pes, 0u);
}

TEST(Segmenter, IgnoresUnsupportedCodecsAndBadPackets) {
  Rig r;
  r.seg->on_publish(false);
  // HEVC (codec id 12) video is ignored; AAC audio still segments.
  r.seg->on_packet(packet(PacketType::video, 0, Bytes{0x1c, 0x00, 0, 0, 0, 1, 2, 3}));
  r.headers(0, false, true);
  r.seg->on_packet(packet(PacketType::video, 0, Bytes{0x1c, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x26}));
  // A malformed AVC sequence header does not create a video track.
  r.seg->on_packet(packet(PacketType::video, 0, Bytes{0x17, 0x00, 0, 0, 0, 0x01}));
  r.feed(0, 4100, 1000, false, true);
  auto st = r.seg->playlist();
  ASSERT_EQ(st.segments.size(), 2u);
  EXPECT_TRUE(read_ts(*r.get("cam-0.ts")).video_pes.empty());
}

TEST(Segmenter, ShutdownRemovesFilesAndIgnoresLaterPackets) {
  Rig r;
  r.seg->on_publish(false);
  r.headers(0);
  r.feed(0, 4001, 1000);
  EXPECT_GT(r.store->size(), 0u);
  r.seg->shutdown();
  EXPECT_EQ(r.store->size(), 0u);
  r.feed(4040, 8001, 1000);
  r.seg->on_unpublish();
  EXPECT_EQ(r.store->size(), 0u);
  EXPECT_TRUE(r.seg->expired());
}

}  // namespace
}  // namespace castmesh::hls
