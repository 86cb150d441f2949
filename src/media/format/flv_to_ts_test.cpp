#include "media/format/flv_to_ts.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "media/format/flv.hpp"

namespace castmesh::media::ts {
namespace {

namespace fs = std::filesystem;

const Bytes kSps{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
                 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2e, 0x48};
const Bytes kPps{0x68, 0xcb, 0x83, 0xcb, 0x20};

PacketPtr packet(PacketType type, uint32_t dts, Bytes payload) {
  auto p = make_packet(type, dts, std::move(payload));
  EXPECT_NE(p, nullptr);
  return p;
}

PacketPtr avc_sequence_header() {
  Bytes b{0x17, 0x00, 0, 0, 0, 1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, uint8_t(kSps.size())};
  b.insert(b.end(), kSps.begin(), kSps.end());
  b.insert(b.end(), {1, 0, uint8_t(kPps.size())});
  b.insert(b.end(), kPps.begin(), kPps.end());
  return packet(PacketType::video, 0, b);
}

PacketPtr avc_frame(uint32_t dts, int32_t cts, bool key, Bytes nal) {
  Bytes b{uint8_t(key ? 0x17 : 0x27), 0x01, uint8_t((cts >> 16) & 0xFF), uint8_t((cts >> 8) & 0xFF), uint8_t(cts & 0xFF)};
  const uint32_t n = uint32_t(nal.size());
  b.insert(b.end(), {uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)});
  b.insert(b.end(), nal.begin(), nal.end());
  return packet(PacketType::video, dts, b);
}

/// Finds the first PES on `pid` in `ts` and returns its bytes (header + data).
Bytes first_pes(const Bytes& ts, uint16_t pid) {
  Bytes pes;
  bool started = false;
  for (size_t i = 0; i + kPacketSize <= ts.size(); i += kPacketSize) {
    const uint8_t* p = &ts[i];
    if ((((p[1] & 0x1F) << 8) | p[2]) != pid) continue;
    const bool pusi = p[1] & 0x40;
    if (pusi && started) break;
    if (pusi) started = true;
    if (!started) continue;
    size_t pos = 4;
    if (p[3] & 0x20) pos = 5 + p[4];
    pes.insert(pes.end(), p + pos, p + kPacketSize);
  }
  return pes;
}

uint64_t ts_field(const uint8_t* b) {
  return (uint64_t((b[0] >> 1) & 7) << 30) | (uint64_t(b[1]) << 22) | (uint64_t(b[2] >> 1) << 15) |
         (uint64_t(b[3]) << 7) | (b[4] >> 1);
}

TEST(FlvToTs, VideoNeedsSequenceHeaderThenConverts) {
  FlvToTs conv;
  Bytes out;
  EXPECT_FALSE(conv.has_video_config());
  EXPECT_EQ(conv.write(*avc_frame(0, 0, true, {0x65, 0x88}), out).code(), Errc::malformed);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(conv.write(*avc_sequence_header(), out).ok());
  EXPECT_TRUE(out.empty()) << "sequence headers produce no TS";
  EXPECT_TRUE(conv.has_video_config());
  ASSERT_EQ(conv.video_config()->sps.size(), 1u);

  ASSERT_TRUE(conv.write(*avc_frame(40, 80, true, {0x65, 0x88, 0x84}), out).ok());
  ASSERT_EQ(out.size() % kPacketSize, 0u);
  const Bytes pes = first_pes(out, kVideoPid);
  ASSERT_GE(pes.size(), 19u);
  EXPECT_EQ(pes[7] >> 6, 3) << "PTS and DTS";
  EXPECT_EQ(ts_field(&pes[9]), (40u + 80u) * 90 + FlvToTs::kTimestampOffset);
  EXPECT_EQ(ts_field(&pes[14]), 40u * 90 + FlvToTs::kTimestampOffset);
  Bytes want{0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1};
  want.insert(want.end(), kSps.begin(), kSps.end());
  want.insert(want.end(), {0, 0, 0, 1});
  want.insert(want.end(), kPps.begin(), kPps.end());
  want.insert(want.end(), {0, 0, 0, 1, 0x65, 0x88, 0x84});
  EXPECT_EQ(Bytes(pes.begin() + 19, pes.end()), want);
}

TEST(FlvToTs, NegativeCompositionTimeKeepsPtsAtLeastDts) {
  FlvToTs conv;
  Bytes out;
  ASSERT_TRUE(conv.write(*avc_sequence_header(), out).ok());
  ASSERT_TRUE(conv.write(*avc_frame(0, -40, false, {0x41, 0x9a}), out).ok());
  const Bytes pes = first_pes(out, kVideoPid);
  ASSERT_GE(pes.size(), 14u);
  EXPECT_EQ(pes[7] >> 6, 2) << "PTS only (clamped to DTS)";
  EXPECT_EQ(ts_field(&pes[9]), FlvToTs::kTimestampOffset);
}

TEST(FlvToTs, AudioWrappedInAdts) {
  FlvToTs conv;
  Bytes out;
  EXPECT_EQ(conv.write(*packet(PacketType::audio, 0, {0xAF, 0x01, 1, 2}), out).code(), Errc::malformed);
  ASSERT_TRUE(conv.write(*packet(PacketType::audio, 0, {0xAF, 0x00, 0x11, 0x90}), out).ok());
  ASSERT_TRUE(conv.has_audio_config());
  EXPECT_EQ(conv.audio_config()->sample_rate, 48000u);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(conv.write(*packet(PacketType::audio, 21, {0xAF, 0x01, 0xDE, 0xAD, 0xBE}), out).ok());
  const Bytes pes = first_pes(out, kAudioPid);
  ASSERT_EQ(pes.size(), 14u + 7 + 3);
  EXPECT_EQ(pes[3], kAudioStreamId);
  EXPECT_EQ(ts_field(&pes[9]), 21u * 90 + FlvToTs::kTimestampOffset);
  const Bytes adts(pes.begin() + 14, pes.end());
  EXPECT_EQ(adts[0], 0xFF);
  EXPECT_EQ(adts[1], 0xF1);
  EXPECT_EQ((adts[2] >> 2) & 0xF, 3) << "48 kHz index";
  EXPECT_EQ(((adts[3] & 3) << 11) | (adts[4] << 3) | (adts[5] >> 5), 10) << "frame length";
  EXPECT_EQ(Bytes(adts.begin() + 7, adts.end()), (Bytes{0xDE, 0xAD, 0xBE}));
}

TEST(FlvToTs, ErrorsAndIgnoredPackets) {
  FlvToTs conv;
  Bytes out;
  EXPECT_TRUE(conv.write(*packet(PacketType::data, 0, {0x02, 0x00, 0x01, 'x'}), out).ok());
  EXPECT_EQ(conv.write(*packet(PacketType::audio, 0, {0x2F, 0x00}), out).code(), Errc::unsupported);  // MP3
  EXPECT_EQ(conv.write(*packet(PacketType::video, 0, {0x1C, 0x00, 0, 0, 0}), out).code(), Errc::unsupported);  // HEVC
  EXPECT_EQ(conv.write(*packet(PacketType::video, 0, {0x17, 0x00, 0, 0, 0, 2}), out).code(), Errc::malformed);
  EXPECT_EQ(conv.write(*packet(PacketType::audio, 0, {0xAF, 0x00, 0x00}), out).code(), Errc::malformed);
  MediaPacket raw;  // hand-built packets that bypass make_packet's checks
  raw.type = PacketType::video;
  raw.payload = {0x17, 0x01};
  EXPECT_EQ(conv.write(raw, out).code(), Errc::malformed);
  raw.payload.clear();
  EXPECT_EQ(conv.write(raw, out).code(), Errc::malformed);
  EXPECT_TRUE(out.empty());
  // End-of-sequence is accepted and writes nothing.
  ASSERT_TRUE(conv.write(*avc_sequence_header(), out).ok());
  EXPECT_TRUE(conv.write(*packet(PacketType::video, 0, {0x17, 0x02, 0, 0, 0}), out).ok());
  EXPECT_TRUE(out.empty());
  // A bad NAL length leaves the output untouched.
  EXPECT_EQ(conv.write(*packet(PacketType::video, 0, {0x17, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x65}), out).code(),
            Errc::malformed);
  EXPECT_TRUE(out.empty());
}

TEST(FlvToTsFuzz, RandomPayloadsNeverCrash) {
  std::mt19937 rng(4242);
  FlvToTs conv;
  Bytes out;
  ASSERT_TRUE(conv.write(*avc_sequence_header(), out).ok());
  ASSERT_TRUE(conv.write(*packet(PacketType::audio, 0, {0xAF, 0x00, 0x12, 0x10}), out).ok());
  for (int i = 0; i < 5000; ++i) {
    Bytes b(1 + rng() % 80);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (i % 3 == 0) b[0] = (i % 2) ? 0x17 : 0x27;
    if (i % 3 == 1) b[0] = 0xAF;
    MediaPacket p;
    p.type = (i % 3 == 1) ? PacketType::audio : PacketType::video;
    p.dts_ms = uint32_t(i * 33);
    p.payload = b;
    const size_t before = out.size();
    auto st = conv.write(p, out);
    if (!st.ok()) EXPECT_EQ(out.size(), before);
    ASSERT_EQ(out.size() % kPacketSize, 0u);
  }
}

// ---------------------------------------------------------------------------------------------
// End to end: ffmpeg-encoded FLV -> flv::Demuxer -> FlvToTs -> ffprobe / ffmpeg decode.

bool have_tool(const char* name) { return std::system((std::string(name) + " -version >/dev/null 2>&1").c_str()) == 0; }

std::string run(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(FlvToTsEndToEnd, FfmpegFlvToPlayableTs) {
  if (!have_tool("ffmpeg") || !have_tool("ffprobe")) GTEST_SKIP() << "ffmpeg/ffprobe not installed";
  std::string tmpl = (fs::temp_directory_path() / "castmesh-media-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  const fs::path flv_path = dir / "out.flv", ts_path = dir / "out.ts";
  const std::string gen =
      "timeout 120 ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine "
      "-c:v libx264 -g 30 -c:a aac -t 3 -f flv '" + flv_path.string() + "' 2>&1";
  const std::string gen_log = run(gen);
  ASSERT_TRUE(fs::exists(flv_path)) << gen_log;

  const Bytes flv = read_file(flv_path);
  ASSERT_GT(flv.size(), 1000u);
  flv::Demuxer demux;
  std::vector<flv::Tag> tags;
  // Feed in uneven pieces to exercise the incremental path.
  for (size_t pos = 0, step = 1; pos < flv.size(); pos += step, step = step * 3 % 4093 + 1)
    ASSERT_TRUE(demux.feed(ByteView(flv).subspan(pos, std::min(step, flv.size() - pos)), tags).ok());
  ASSERT_GT(tags.size(), 150u);

  FlvToTs conv;
  Bytes ts;
  conv.write_tables(ts);
  size_t video_frames = 0, audio_frames = 0, keyframes = 0;
  bool checked_sps = false;
  for (const auto& t : tags) {
    auto pkt = make_packet(t.type, t.timestamp_ms, t.data);
    if (!pkt) continue;
    if (pkt->is_video() && pkt->sequence_header && !checked_sps) {
      auto cfg = h264::parse_decoder_config(ByteView(pkt->payload).subspan(5));
      ASSERT_TRUE(cfg.ok()) << cfg.error().message();
      ASSERT_FALSE(cfg->sps.empty());
      auto sps = h264::parse_sps(cfg->sps[0]);
      ASSERT_TRUE(sps.ok()) << sps.error().message();
      EXPECT_EQ(sps->width, 1280u);
      EXPECT_EQ(sps->height, 720u);
      EXPECT_NEAR(sps->fps, 30.0, 0.01);
      EXPECT_EQ(sps->profile_idc, cfg->profile);
      checked_sps = true;
    }
    if (pkt->is_video() && pkt->keyframe) {
      conv.write_tables(ts);  // as an HLS segmenter would at each segment start
      ++keyframes;
    }
    auto st = conv.write(*pkt, ts);
    ASSERT_TRUE(st.ok()) << st.error().message();
    if (pkt->is_video() && pkt->payload[1] == 1) ++video_frames;  // AVC NALU, not end-of-sequence
    if (!pkt->sequence_header && pkt->is_audio()) ++audio_frames;
  }
  EXPECT_TRUE(checked_sps);
  EXPECT_EQ(video_frames, 90u);
  EXPECT_GT(audio_frames, 120u);
  EXPECT_EQ(keyframes, 3u);
  ASSERT_EQ(ts.size() % kPacketSize, 0u);
  for (size_t i = 0; i < ts.size(); i += kPacketSize) ASSERT_EQ(ts[i], 0x47) << "packet " << i / kPacketSize;
  {
    std::ofstream o(ts_path, std::ios::binary);
    o.write(reinterpret_cast<const char*>(ts.data()), std::streamsize(ts.size()));
  }

  const std::string probe =
      run("timeout 60 ffprobe -v error -show_streams -show_format '" + ts_path.string() + "' 2>&1");
  EXPECT_NE(probe.find("codec_name=h264"), std::string::npos) << probe;
  EXPECT_NE(probe.find("width=1280"), std::string::npos) << probe;
  EXPECT_NE(probe.find("height=720"), std::string::npos) << probe;
  EXPECT_NE(probe.find("codec_name=aac"), std::string::npos) << probe;
  EXPECT_EQ(probe.find("error"), std::string::npos) << probe;
  // The 1 s offset: the stream starts near 1.0 s, never at a wrapped huge value.
  const auto st = probe.find("start_time=");
  ASSERT_NE(st, std::string::npos);
  const double start = std::atof(probe.c_str() + st + 11);
  EXPECT_GE(start, 0.9);
  EXPECT_LE(start, 1.5);

  const std::string decode = run("timeout 120 ffmpeg -nostdin -v error -i '" + ts_path.string() + "' -f null - 2>&1");
  EXPECT_TRUE(decode.empty()) << decode;

  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace castmesh::media::ts
