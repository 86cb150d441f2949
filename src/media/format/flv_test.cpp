#include "media/format/flv.hpp"

#include <gtest/gtest.h>

#include <random>

namespace castmesh::media::flv {
namespace {

void append(Bytes& out, ByteView v) { out.insert(out.end(), v.begin(), v.end()); }
template <size_t N>
void append(Bytes& out, const std::array<uint8_t, N>& a) { out.insert(out.end(), a.begin(), a.end()); }

void append_tag(Bytes& out, PacketType type, uint32_t ts, const Bytes& body) {
  append(out, tag_header(type, uint32_t(body.size()), ts));
  append(out, body);
  append(out, prev_tag_size(uint32_t(body.size())));
}

TEST(FlvWriter, FileHeader) {
  EXPECT_EQ(file_header(true, true), (std::array<uint8_t, 13>{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0}));
  EXPECT_EQ(file_header(true, false)[4], 4);
  EXPECT_EQ(file_header(false, true)[4], 1);
  EXPECT_EQ(file_header(false, false)[4], 0);
}

TEST(FlvWriter, TagHeaderWithExtendedTimestamp) {
  EXPECT_EQ(tag_header(PacketType::video, 0x0A0B0C, 0x12345678),
            (std::array<uint8_t, 11>{9, 0x0A, 0x0B, 0x0C, 0x34, 0x56, 0x78, 0x12, 0, 0, 0}));
  EXPECT_EQ(tag_header(PacketType::audio, 5, 1000),
            (std::array<uint8_t, 11>{8, 0, 0, 5, 0, 0x03, 0xE8, 0, 0, 0, 0}));
  EXPECT_EQ(tag_header(PacketType::data, 0, 0)[0], 18);
  EXPECT_EQ(prev_tag_size(100), (std::array<uint8_t, 4>{0, 0, 0, 111}));
  EXPECT_EQ(prev_tag_size(0x01000000), (std::array<uint8_t, 4>{1, 0, 0, 11}));
}

Bytes sample_file() {
  Bytes f;
  append(f, file_header(true, true));
  // onMetaData-like script tag whose body contains bytes that look like tag headers.
  append_tag(f, PacketType::data, 0, Bytes{0x02, 0x00, 0x0A, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 0x09, 0x09, 0x08});
  append_tag(f, PacketType::video, 0, Bytes{0x17, 0x00, 0, 0, 0, 1, 2, 3});
  append_tag(f, PacketType::audio, 23, Bytes{0xAF, 0x01, 0x21, 0x10});
  append_tag(f, PacketType::video, 0x01000021, Bytes{0x27, 0x01, 0, 0, 0x28});  // extended timestamp
  append_tag(f, PacketType::audio, 50, Bytes{});                                  // empty body
  return f;
}

void expect_sample_tags(const std::vector<Tag>& tags) {
  ASSERT_EQ(tags.size(), 5u);
  EXPECT_EQ(tags[0].type, PacketType::data);
  EXPECT_EQ(tags[0].data.size(), 16u);
  EXPECT_EQ(tags[1].type, PacketType::video);
  EXPECT_EQ(tags[1].data, (Bytes{0x17, 0x00, 0, 0, 0, 1, 2, 3}));
  EXPECT_EQ(tags[2].type, PacketType::audio);
  EXPECT_EQ(tags[2].timestamp_ms, 23u);
  EXPECT_EQ(tags[3].timestamp_ms, 0x01000021u);
  EXPECT_EQ(tags[3].data, (Bytes{0x27, 0x01, 0, 0, 0x28}));
  EXPECT_TRUE(tags[4].data.empty());
  EXPECT_EQ(tags[4].timestamp_ms, 50u);
}

TEST(FlvDemuxer, WholeBuffer) {
  Demuxer d;
  std::vector<Tag> tags;
  ASSERT_TRUE(d.feed(sample_file(), tags).ok());
  EXPECT_TRUE(d.header_done());
  EXPECT_TRUE(d.has_audio());
  EXPECT_TRUE(d.has_video());
  expect_sample_tags(tags);
}

TEST(FlvDemuxer, OneByteAtATime) {
  const Bytes f = sample_file();
  Demuxer d;
  std::vector<Tag> tags;
  for (size_t i = 0; i < f.size(); ++i) {
    ASSERT_TRUE(d.feed(ByteView(f).subspan(i, 1), tags).ok()) << i;
    if (i < 12) EXPECT_FALSE(d.header_done());
  }
  expect_sample_tags(tags);
}

TEST(FlvDemuxer, RandomSplits) {
  const Bytes f = sample_file();
  std::mt19937 rng(5);
  for (int round = 0; round < 200; ++round) {
    Demuxer d;
    std::vector<Tag> tags;
    size_t pos = 0;
    while (pos < f.size()) {
      const size_t n = std::min<size_t>(f.size() - pos, rng() % 30);
      ASSERT_TRUE(d.feed(ByteView(f).subspan(pos, n), tags).ok());
      pos += n;
    }
    expect_sample_tags(tags);
  }
}

TEST(FlvDemuxer, LargerDataOffsetAndZeroPrevTagSize) {
  Bytes f{'F', 'L', 'V', 1, 1, 0, 0, 0, 12, 0xEE, 0xEE, 0xEE, 0, 0, 0, 0};
  append(f, tag_header(PacketType::video, 2, 7));
  append(f, Bytes{0x17, 0x02});
  append(f, Bytes{0, 0, 0, 0});  // some live muxers write 0
  Demuxer d;
  std::vector<Tag> tags;
  ASSERT_TRUE(d.feed(f, tags).ok());
  ASSERT_EQ(tags.size(), 1u);
  EXPECT_EQ(tags[0].timestamp_ms, 7u);
  EXPECT_FALSE(d.has_audio());
  EXPECT_TRUE(d.has_video());
}

TEST(FlvDemuxer, Errors) {
  struct Case {
    const char* name;
    Bytes data;
    Errc want;
    uint32_t limit = 1024;
  };
  Bytes hdr;
  append(hdr, file_header(true, true));
  auto with = [&](std::initializer_list<uint8_t> tail) {
    Bytes b = hdr;
    b.insert(b.end(), tail);
    return b;
  };
  const Case cases[] = {
      {"bad_signature", Bytes{'F', 'L', 'X', 1, 5, 0, 0, 0, 9}, Errc::malformed},
      {"bad_version", Bytes{'F', 'L', 'V', 2, 5, 0, 0, 0, 9}, Errc::malformed},
      {"data_offset_too_small", Bytes{'F', 'L', 'V', 1, 5, 0, 0, 0, 8}, Errc::malformed},
      {"data_offset_huge", Bytes{'F', 'L', 'V', 1, 5, 0xFF, 0xFF, 0xFF, 0xFF}, Errc::malformed},
      {"unknown_tag_type", with({7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}), Errc::malformed},
      {"tag_too_large", with({9, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0}), Errc::too_large},
      {"huge_tag_size", with({9, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0}), Errc::too_large},
      {"bad_prev_tag_size", with({8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xAF, 0, 0, 0, 13}), Errc::malformed},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Demuxer d(c.limit);
    std::vector<Tag> tags;
    EXPECT_EQ(d.feed(c.data, tags).code(), c.want);
    EXPECT_TRUE(tags.empty());
    // Errors are sticky.
    EXPECT_EQ(d.feed(sample_file(), tags).code(), c.want);
    EXPECT_TRUE(tags.empty());
  }
}

TEST(FlvDemuxer, TruncatedInputIsPendingNotError) {
  const Bytes f = sample_file();
  for (size_t n = 0; n < f.size(); ++n) {
    Demuxer d;
    std::vector<Tag> tags;
    ASSERT_TRUE(d.feed(ByteView(f).first(n), tags).ok()) << n;
    EXPECT_LT(tags.size(), 5u);
  }
}

TEST(FlvFuzz, RandomBytesNeverCrash) {
  std::mt19937 rng(99);
  for (int i = 0; i < 5000; ++i) {
    Bytes b;
    if (i % 2) append(b, file_header(true, true));
    const size_t n = rng() % 200;
    for (size_t k = 0; k < n; ++k) b.push_back(static_cast<uint8_t>(rng()));
    // Bias towards valid tag types so the body/prev-size paths are reached.
    if (b.size() > 13 && (i % 4) == 1) b[13] = 8 + (rng() % 2);
    Demuxer d(4096);
    std::vector<Tag> tags;
    size_t pos = 0;
    while (pos < b.size()) {
      const size_t k = std::min<size_t>(b.size() - pos, 1 + rng() % 17);
      if (!d.feed(ByteView(b).subspan(pos, k), tags).ok()) break;
      pos += k;
    }
    for (const Tag& t : tags) EXPECT_LE(t.data.size(), 4096u);
  }
}

}  // namespace
}  // namespace castmesh::media::flv
