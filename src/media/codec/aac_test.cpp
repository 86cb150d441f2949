#include "media/codec/aac.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace castmesh::media::aac {
namespace {

Bytes hex(std::string_view s) {
  Bytes out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(std::string(s.substr(i, 2)), nullptr, 16)));
  return out;
}

TEST(AacAsc, ParsesTable) {
  struct Case {
    const char* name;
    const char* hex;
    uint8_t aot, index;
    uint32_t rate;
    uint8_t channels;
  };
  const Case cases[] = {
      {"lc_44100_stereo", "1210", 2, 4, 44100, 2},
      {"lc_48000_stereo", "1190", 2, 3, 48000, 2},
      {"lc_8000_mono", "1588", 2, 11, 8000, 1},
      {"he_aac_22050_with_ext", "2b920800", 5, 7, 22050, 2},
      {"explicit_rate_44100", "1780562210", 2, 15, 44100, 2},
      {"escape_aot_42", "f94620", 42, 3, 48000, 1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_asc(hex(c.hex));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->object_type, c.aot);
    EXPECT_EQ(r->sampling_index, c.index);
    EXPECT_EQ(r->sample_rate, c.rate);
    EXPECT_EQ(r->channels, c.channels);
  }
}

TEST(AacAsc, RejectsBadInput) {
  const char* bad[] = {
      "",            // empty
      "12",          // channel bits missing
      "1780",        // explicit rate truncated
      "1690",        // reserved frequency index 13
      "1780000010",  // explicit rate 0
      "1248",        // channelConfiguration 9
      "0210",        // object type 0
      "f8",          // escape AOT truncated
  };
  for (const char* h : bad) EXPECT_EQ(parse_asc(hex(h)).code(), Errc::malformed) << h;
}

/// Independent decode of the ADTS fixed + variable header (ISO/IEC 13818-7 6.2).
struct Adts {
  uint32_t sync, id, layer, protection_absent, profile, index, channels, frame_length, fullness, blocks;
};
Adts decode_adts(const uint8_t* h) {
  uint64_t v = 0;
  for (int i = 0; i < 7; ++i) v = (v << 8) | h[i];
  auto f = [&](int from_msb, int n) { return uint32_t((v >> (56 - from_msb - n)) & ((1u << n) - 1)); };
  return {f(0, 12), f(12, 1), f(13, 2), f(15, 1), f(16, 2), f(18, 4), f(23, 3), f(30, 13), f(43, 11), f(54, 2)};
}

TEST(AacAdts, HeaderFields) {
  struct Case {
    AudioSpecificConfig asc;
    size_t raw;
    uint32_t profile, index, channels;
  };
  const Case cases[] = {
      {{2, 4, 44100, 2}, 100, 1, 4, 2},
      {{2, 3, 48000, 1}, 8184, 1, 3, 1},  // largest frame_length 8191
      {{1, 11, 8000, 6}, 0, 0, 11, 6},
      {{5, 6, 24000, 2}, 371, 1, 6, 2},   // HE-AAC written as LC
      {{2, 15, 44000, 2}, 10, 1, 4, 2},   // explicit rate -> nearest index (44100)
      {{2, 15, 7000, 7}, 10, 1, 12, 7},   // explicit rate -> 7350
  };
  for (const auto& c : cases) {
    uint8_t h[7];
    write_adts_header(c.asc, c.raw, h);
    const Adts a = decode_adts(h);
    EXPECT_EQ(a.sync, 0xFFFu);
    EXPECT_EQ(a.id, 0u);
    EXPECT_EQ(a.layer, 0u);
    EXPECT_EQ(a.protection_absent, 1u);
    EXPECT_EQ(a.profile, c.profile);
    EXPECT_EQ(a.index, c.index);
    EXPECT_EQ(a.channels, c.channels);
    EXPECT_EQ(a.frame_length, c.raw + 7);
    EXPECT_EQ(a.fullness, 0x7FFu);
    EXPECT_EQ(a.blocks, 0u);
  }
  uint8_t h[7];
  write_adts_header({2, 4, 44100, 2}, 100, h);
  EXPECT_EQ(Bytes(h, h + 7), hex("fff150800d7ffc"));
}

TEST(AacFuzz, RandomBytesNeverCrash) {
  std::mt19937 rng(777);
  for (int i = 0; i < 20000; ++i) {
    Bytes b(rng() % 12);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    auto r = parse_asc(b);
    if (r.ok()) {
      EXPECT_GT(r->sample_rate, 0u);
      EXPECT_LE(r->channels, 7);
      EXPECT_GT(r->object_type, 0);
    }
  }
}

}  // namespace
}  // namespace castmesh::media::aac
