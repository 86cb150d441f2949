#include "media/codec/h264.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace castmesh::media::h264 {
namespace {

Bytes hex(std::string_view s) {
  Bytes out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(std::string(s.substr(i, 2)), nullptr, 16)));
  return out;
}

/// Test-side Exp-Golomb writer used to build SPS NAL units field by field.
class BitWriter {
 public:
  void bits(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) bit((v >> i) & 1);
  }
  void bit(uint32_t b) {
    if (n_ % 8 == 0) buf_.push_back(0);
    if (b) buf_.back() |= static_cast<uint8_t>(0x80 >> (n_ % 8));
    ++n_;
  }
  void ue(uint32_t v) {
    const uint64_t x = uint64_t{v} + 1;
    int len = 0;
    while ((x >> len) > 1) ++len;
    bits(0, len);
    bits(x, len + 1);
  }
  void se(int32_t v) { ue(v > 0 ? uint32_t(2 * v - 1) : uint32_t(-2 * int64_t{v})); }
  /// rbsp_trailing_bits, then emulation prevention, with the NAL header in front.
  Bytes nal(uint8_t header) {
    bit(1);
    while (n_ % 8) bit(0);
    Bytes out{header};
    int zeros = 0;
    for (uint8_t b : buf_) {
      if (zeros >= 2 && b <= 3) {
        out.push_back(3);
        zeros = 0;
      }
      zeros = b == 0 ? zeros + 1 : 0;
      out.push_back(b);
    }
    return out;
  }

 private:
  Bytes buf_;
  size_t n_ = 0;
};

struct SpsCase {
  const char* name;
  std::string hex;
  uint32_t width, height;
  uint8_t profile, level;
  double fps;
};

TEST(H264Sps, RealEncoderSps) {
  const SpsCase cases[] = {
      {"high_1080p25_cropped", "67640028acd940780227e5c044000003000400000300c83c60c658", 1920, 1080, 100, 40, 25.0},
      {"baseline_360p30_cropped", "6742c01ed900a02ff970110000030001000003003c0f162e48", 640, 360, 66, 30, 30.0},
      {"high_cif24", "6764000dacd9416096c044000003000400000300c03c50a658", 352, 288, 100, 13, 24.0},
      {"high_interlaced_576", "67640016acd940b424d808800000030100000300190f8a14cb", 720, 576, 100, 22, 12.5},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes sps = hex(c.hex);
    auto r = parse_sps(sps);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->width, c.width);
    EXPECT_EQ(r->height, c.height);
    EXPECT_EQ(r->profile_idc, c.profile);
    EXPECT_EQ(r->level_idc, c.level);
    EXPECT_DOUBLE_EQ(r->fps, c.fps);
  }
}

/// Builds a High-profile SPS with scaling lists, POC type 1, cropping and VUI timing.
Bytes crafted_sps(bool scaling, uint32_t chroma_format, bool frame_mbs_only, uint32_t crop_right_bottom,
                  bool timing) {
  BitWriter w;
  w.bits(100, 8);  // profile_idc High
  w.bits(0, 8);
  w.bits(31, 8);   // level 3.1
  w.ue(0);         // sps id
  w.ue(chroma_format);
  if (chroma_format == 3) w.bit(0);
  w.ue(2);  // bit_depth_luma_minus8 (10-bit)
  w.ue(2);
  w.bit(0);
  w.bit(scaling);
  if (scaling) {
    const int lists = chroma_format != 3 ? 8 : 12;
    for (int i = 0; i < lists; ++i) {
      w.bit(1);  // present
      const int size = i < 6 ? 16 : 64;
      for (int j = 0; j < size; ++j) w.se(j == 0 ? 8 : (j % 2 ? -3 : 3));
    }
  }
  w.ue(0);  // log2_max_frame_num_minus4
  w.ue(1);  // poc type 1
  w.bit(0);
  w.se(-2);
  w.se(5);
  w.ue(3);
  w.se(1);
  w.se(-1);
  w.se(7);
  w.ue(4);  // max_num_ref_frames
  w.bit(0);
  w.ue(1280 / 16 - 1);
  const uint32_t map_units = frame_mbs_only ? 736 / 16 : 736 / 32;
  w.ue(map_units - 1);
  w.bit(frame_mbs_only);
  if (!frame_mbs_only) w.bit(0);
  w.bit(1);
  w.bit(1);  // cropping
  w.ue(0);
  w.ue(crop_right_bottom);
  w.ue(0);
  w.ue(crop_right_bottom);
  w.bit(1);  // vui
  w.bit(1);  // aspect ratio present
  w.bits(255, 8);
  w.bits(1, 16);
  w.bits(1, 16);
  w.bit(0);  // overscan
  w.bit(1);  // video signal type
  w.bits(5, 3);
  w.bit(0);
  w.bit(1);
  w.bits(1, 8), w.bits(1, 8), w.bits(1, 8);
  w.bit(1);  // chroma loc
  w.ue(0), w.ue(0);
  w.bit(timing);
  if (timing) {
    w.bits(1, 32);  // 31 zero bits: forces emulation prevention bytes
    w.bits(120, 32);
    w.bit(1);
  }
  return w.nal(0x67);
}

TEST(H264Sps, CraftedHighProfileVariants) {
  struct Case {
    const char* name;
    bool scaling;
    uint32_t chroma;
    bool frame_mbs_only;
    uint32_t crop;
    bool timing;
    uint32_t w, h;
    double fps;
  };
  const Case cases[] = {
      // 4:2:0 progressive: crop units 2x2 -> 1280 - 2*8, 736 - 2*8.
      {"420_scaling_crop8", true, 1, true, 8, true, 1264, 720, 60.0},
      // 4:4:4 with 12 scaling lists: crop unit 1x1.
      {"444_scaling", true, 3, true, 8, false, 1272, 728, 0},
      // 4:2:2: crop unit 2 horizontally, 1 vertically.
      {"422", false, 2, true, 8, true, 1264, 728, 60.0},
      // Field coding: height doubles per map unit, crop unit y = 2 * 2.
      {"420_interlaced", false, 1, false, 4, true, 1272, 720, 60.0},
      // Monochrome: crop units 1 x (2 - frame_mbs_only).
      {"mono", false, 0, true, 16, true, 1264, 720, 60.0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes sps = crafted_sps(c.scaling, c.chroma, c.frame_mbs_only, c.crop, c.timing);
    auto r = parse_sps(sps);
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->width, c.w);
    EXPECT_EQ(r->height, c.h);
    EXPECT_EQ(r->profile_idc, 100);
    EXPECT_EQ(r->level_idc, 31);
    EXPECT_NEAR(r->fps, c.fps, 1e-9);
  }
}

TEST(H264Sps, EmulationPreventionRemoved) {
  EXPECT_EQ(remove_emulation_prevention(hex("0000030100000300")), hex("000001000000"));
  EXPECT_EQ(remove_emulation_prevention(hex("00000303")), hex("000003"));
  // The crafted SPS with long zero runs only parses right with EPBs removed.
  const Bytes sps = crafted_sps(true, 1, true, 8, true);
  bool has_epb = false;
  for (size_t i = 2; i < sps.size(); ++i)
    if (sps[i - 2] == 0 && sps[i - 1] == 0 && sps[i] == 3) has_epb = true;
  EXPECT_TRUE(has_epb);
}

TEST(H264Sps, RejectsBadInput) {
  const Bytes good = hex("67640028acd940780227e5c044000003000400000300c83c60c658");
  EXPECT_EQ(parse_sps({}).code(), Errc::malformed);
  EXPECT_EQ(parse_sps(hex("6764")).code(), Errc::malformed);
  Bytes not_sps = good;
  not_sps[0] = 0x68;
  EXPECT_EQ(parse_sps(not_sps).code(), Errc::malformed);
  // Every truncation of a valid SPS before the cropping fields is an error, never a crash.
  for (size_t n = 0; n < 9; ++n) EXPECT_FALSE(parse_sps(ByteView(good).first(n)).ok()) << n;
  // All-zero payload: Exp-Golomb with too many leading zeros.
  EXPECT_FALSE(parse_sps(hex("6764002800000000000000000000")).ok());
  // Cropping larger than the picture.
  BitWriter w;
  w.bits(66, 8), w.bits(0, 8), w.bits(30, 8);
  w.ue(0), w.ue(0), w.ue(2), w.ue(1), w.bit(0);
  w.ue(0), w.ue(0);  // 16x16
  w.bit(1), w.bit(1), w.bit(1);
  w.ue(0), w.ue(8), w.ue(0), w.ue(0);
  w.bit(0);
  EXPECT_EQ(parse_sps(w.nal(0x67)).code(), Errc::malformed);
}

TEST(H264Config, ParsesRecord) {
  const Bytes sps = hex("6742c01ed900a02ff970110000030001000003003c0f162e48");
  const Bytes pps = hex("68cb83cb20");
  Bytes rec{1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1};
  rec.push_back(0), rec.push_back(uint8_t(sps.size()));
  rec.insert(rec.end(), sps.begin(), sps.end());
  rec.push_back(1);
  rec.push_back(0), rec.push_back(uint8_t(pps.size()));
  rec.insert(rec.end(), pps.begin(), pps.end());
  auto r = parse_decoder_config(rec);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->profile, 0x42);
  EXPECT_EQ(r->compatibility, 0xC0);
  EXPECT_EQ(r->level, 0x1E);
  EXPECT_EQ(r->nal_length_size, 4);
  ASSERT_EQ(r->sps.size(), 1u);
  ASSERT_EQ(r->pps.size(), 1u);
  EXPECT_EQ(r->sps[0], sps);
  EXPECT_EQ(r->pps[0], pps);

  Bytes two = rec;
  two[4] = 0xFD;  // lengthSizeMinusOne = 1
  auto r2 = parse_decoder_config(two);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->nal_length_size, 2);

  // Every truncation fails cleanly.
  for (size_t n = 0; n < rec.size(); ++n) EXPECT_FALSE(parse_decoder_config(ByteView(rec).first(n)).ok()) << n;
  Bytes bad = rec;
  bad[0] = 2;
  EXPECT_EQ(parse_decoder_config(bad).code(), Errc::malformed);
  bad = rec;
  bad[4] = 0xFE;  // length size 3
  EXPECT_EQ(parse_decoder_config(bad).code(), Errc::malformed);
  bad = rec;
  bad[5] = 0xE0;  // no SPS
  EXPECT_FALSE(parse_decoder_config(bad).ok());
  bad = rec;
  bad[8] = 0x65;  // SPS slot holds an IDR NAL
  EXPECT_EQ(parse_decoder_config(bad).code(), Errc::malformed);
}

AvcConfig test_config() {
  AvcConfig cfg;
  cfg.nal_length_size = 4;
  cfg.sps = {hex("6742c01e")};
  cfg.pps = {hex("68cb83cb20")};
  return cfg;
}

TEST(H264AnnexB, KeyframeGetsAudAndParams) {
  const AvcConfig cfg = test_config();
  // AU: AUD, SPS (in-band duplicate), SEI, IDR.
  const Bytes au = hex("00000002" "09f0" "00000003" "674200" "00000002" "0605" "00000004" "65888400");
  Bytes out{0xAA};  // existing content is kept
  ASSERT_TRUE(avcc_to_annexb(au, cfg, true, out).ok());
  const Bytes want = hex("aa" "0000000109f0" "000000016742c01e" "0000000168cb83cb20" "000000010605" "0000000165888400");
  EXPECT_EQ(out, want);
}

TEST(H264AnnexB, NonKeyframeAndShortLengths) {
  AvcConfig cfg = test_config();
  cfg.nal_length_size = 2;
  const Bytes au = hex("0003" "419a02" "0000" "0002" "0102");
  Bytes out;
  ASSERT_TRUE(avcc_to_annexb(au, cfg, false, out).ok());
  EXPECT_EQ(out, hex("0000000109f0" "00000001419a02" "000000010102"));
  cfg.nal_length_size = 1;
  out.clear();
  ASSERT_TRUE(avcc_to_annexb(hex("02419a"), cfg, false, out).ok());
  EXPECT_EQ(out, hex("0000000109f0" "00000001419a"));
}

TEST(H264AnnexB, BadLengthsAreMalformedAndLeaveOutputUnchanged) {
  const AvcConfig cfg = test_config();
  const Bytes cases[] = {hex("00000005419a"), hex("000000"), hex("00000001" "41" "ffffffff" "00")};
  for (const Bytes& au : cases) {
    Bytes out{1, 2, 3};
    EXPECT_EQ(avcc_to_annexb(au, cfg, true, out).code(), Errc::malformed);
    EXPECT_EQ(out, (Bytes{1, 2, 3}));
  }
  AvcConfig bad = cfg;
  bad.nal_length_size = 0;
  Bytes out;
  EXPECT_EQ(avcc_to_annexb(hex("00"), bad, false, out).code(), Errc::malformed);
}

TEST(H264Fuzz, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  const AvcConfig cfg = test_config();
  int sps_ok = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 64);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (!b.empty() && (i & 1)) b[0] = 0x67;  // reach deeper into the SPS parser
    auto s = parse_sps(b);
    if (s.ok()) {
      ++sps_ok;
      EXPECT_GT(s->width, 0u);
      EXPECT_GT(s->height, 0u);
    }
    if (!b.empty() && (i & 2)) b[0] = 1;
    (void)parse_decoder_config(b);
    Bytes out;
    auto st = avcc_to_annexb(b, cfg, i & 4, out);
    if (!st.ok()) EXPECT_TRUE(out.empty());
  }
  SUCCEED() << sps_ok << " random SPS parsed";
}

}  // namespace
}  // namespace castmesh::media::h264
