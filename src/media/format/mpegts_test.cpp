#include "media/format/mpegts.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>

namespace castmesh::media::ts {
namespace {

/// Bit-by-bit CRC-32/MPEG-2, written independently of the muxer's table-driven one.
uint32_t reference_crc(ByteView data) {
  uint32_t crc = 0xFFFFFFFF;
  for (uint8_t byte : data) {
    for (int i = 7; i >= 0; --i) {
      const bool in = ((byte >> i) & 1) != 0;
      const bool top = (crc & 0x80000000u) != 0;
      crc <<= 1;
      if (in != top) crc ^= 0x04C11DB7u;
    }
  }
  return crc;
}

struct Packet {
  bool pusi = false;
  uint16_t pid = 0;
  uint8_t afc = 0, cc = 0;
  bool has_af = false;
  uint8_t af_len = 0;
  bool rai = false;
  std::optional<uint64_t> pcr_base;
  uint16_t pcr_ext = 0;
  ByteView payload;
};

/// Parses one 188-byte packet (ISO/IEC 13818-1 2.4.3.2, 2.4.3.4); fails the test on bad syntax.
Packet parse_packet(ByteView p) {
  Packet k;
  EXPECT_EQ(p.size(), kPacketSize);
  EXPECT_EQ(p[0], 0x47);
  EXPECT_EQ(p[1] & 0x80, 0) << "transport_error_indicator";
  k.pusi = (p[1] & 0x40) != 0;
  k.pid = static_cast<uint16_t>(((p[1] & 0x1F) << 8) | p[2]);
  EXPECT_EQ(p[3] & 0xC0, 0) << "scrambling";
  k.afc = (p[3] >> 4) & 3;
  k.cc = p[3] & 0x0F;
  EXPECT_NE(k.afc, 0);
  size_t pos = 4;
  if (k.afc & 2) {
    k.has_af = true;
    k.af_len = p[4];
    EXPECT_LE(k.af_len, 183);
    pos = 5;
    if (k.af_len > 0) {
      const uint8_t flags = p[5];
      k.rai = (flags & 0x40) != 0;
      if (flags & 0x10) {
        const uint8_t* c = &p[6];
        k.pcr_base = (uint64_t{c[0]} << 25) | (uint64_t{c[1]} << 17) | (uint64_t{c[2]} << 9) | (uint64_t{c[3]} << 1) |
                     (c[4] >> 7);
        EXPECT_EQ(c[4] & 0x7E, 0x7E) << "PCR reserved bits";
        k.pcr_ext = static_cast<uint16_t>(((c[4] & 1) << 8) | c[5]);
      }
      const size_t used = 1 + ((flags & 0x10) ? 6 : 0);
      for (size_t i = 5 + used; i < 5 + size_t{k.af_len}; ++i) EXPECT_EQ(p[i], 0xFF) << "stuffing byte";
    }
    pos = 5 + k.af_len;
  }
  if (k.afc & 1) k.payload = p.subspan(pos);
  return k;
}

std::vector<Packet> parse_all(ByteView ts) {
  EXPECT_EQ(ts.size() % kPacketSize, 0u);
  std::vector<Packet> v;
  for (size_t i = 0; i + kPacketSize <= ts.size(); i += kPacketSize) v.push_back(parse_packet(ts.subspan(i, kPacketSize)));
  return v;
}

/// Checks that continuity_counter advances by one per payload-bearing packet on every PID.
void expect_continuity(const std::vector<Packet>& pkts, std::map<uint16_t, int>& last) {
  for (const auto& k : pkts) {
    auto it = last.find(k.pid);
    if (it != last.end()) EXPECT_EQ(k.cc, (it->second + 1) & 0x0F) << "pid " << k.pid;
    last[k.pid] = k.cc;
  }
}

uint64_t decode_ts_field(const uint8_t* b, uint8_t want_prefix) {
  EXPECT_EQ(b[0] >> 4, want_prefix);
  EXPECT_EQ(b[0] & 1, 1);
  EXPECT_EQ(b[2] & 1, 1);
  EXPECT_EQ(b[4] & 1, 1);
  return (uint64_t((b[0] >> 1) & 7) << 30) | (uint64_t(b[1]) << 22) | (uint64_t(b[2] >> 1) << 15) |
         (uint64_t(b[3]) << 7) | (b[4] >> 1);
}

struct Pes {
  uint8_t stream_id = 0;
  uint16_t length_field = 0;
  std::optional<uint64_t> pts, dts;
  Bytes data;
  size_t packets = 0;
  Packet first;
};

/// Reassembles the PESes on `pid` and parses their headers (2.4.3.6, 2.4.3.7).
std::vector<Pes> collect_pes(const std::vector<Packet>& pkts, uint16_t pid) {
  std::vector<Bytes> raw;
  std::vector<Pes> out;
  for (const auto& k : pkts) {
    if (k.pid != pid) continue;
    if (k.pusi) {
      raw.emplace_back();
      out.emplace_back();
      out.back().first = k;
    }
    EXPECT_FALSE(raw.empty()) << "payload before payload_unit_start";
    if (raw.empty()) continue;
    raw.back().insert(raw.back().end(), k.payload.begin(), k.payload.end());
    ++out.back().packets;
  }
  for (size_t i = 0; i < raw.size(); ++i) {
    const Bytes& r = raw[i];
    Pes& p = out[i];
    EXPECT_GE(r.size(), 9u);
    if (r.size() < 9) continue;
    EXPECT_EQ(r[0], 0);
    EXPECT_EQ(r[1], 0);
    EXPECT_EQ(r[2], 1);
    p.stream_id = r[3];
    p.length_field = static_cast<uint16_t>((r[4] << 8) | r[5]);
    EXPECT_EQ(r[6] & 0xC0, 0x80);
    const uint8_t flags = r[7] >> 6;
    const uint8_t hlen = r[8];
    if (flags == 2) {
      EXPECT_EQ(hlen, 5);
      p.pts = decode_ts_field(&r[9], 2);
    } else if (flags == 3) {
      EXPECT_EQ(hlen, 10);
      p.pts = decode_ts_field(&r[9], 3);
      p.dts = decode_ts_field(&r[14], 1);
    } else {
      EXPECT_EQ(flags, 0);
    }
    p.data.assign(r.begin() + 9 + hlen, r.end());
    if (p.length_field != 0) EXPECT_EQ(size_t{p.length_field}, r.size() - 6);
  }
  return out;
}

/// Parses a single-packet PSI section; returns the section bytes (table_id .. CRC).
Bytes section_of(const Packet& k) {
  EXPECT_TRUE(k.pusi);
  EXPECT_EQ(k.payload[0], 0) << "pointer_field";
  const size_t len = ((k.payload[2] & 0x0F) << 8) | k.payload[3];
  EXPECT_EQ(k.payload[2] & 0xC0, 0x80) << "section_syntax_indicator";
  Bytes s(k.payload.begin() + 1, k.payload.begin() + 4 + len);
  for (size_t i = 4 + len; i < k.payload.size(); ++i) EXPECT_EQ(k.payload[i], 0xFF);
  return s;
}

TEST(TsCrc, MatchesReference) {
  EXPECT_EQ(crc32_mpeg2(Bytes{}), 0xFFFFFFFFu);
  const Bytes check{'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  EXPECT_EQ(crc32_mpeg2(check), 0x0376E6E7u);  // catalogue check value of CRC-32/MPEG-2
  EXPECT_EQ(reference_crc(check), 0x0376E6E7u);
  Bytes b;
  for (int i = 0; i < 300; ++i) {
    b.push_back(static_cast<uint8_t>(i * 37 + 11));
    ASSERT_EQ(crc32_mpeg2(b), reference_crc(b));
  }
}

TEST(TsTables, PatAndPmt) {
  struct Case {
    TsMuxer::Options opts;
    uint16_t pcr_pid;
    std::vector<std::pair<uint8_t, uint16_t>> streams;
  };
  const Case cases[] = {
      {{true, true}, kVideoPid, {{0x1B, kVideoPid}, {0x0F, kAudioPid}}},
      {{true, false}, kVideoPid, {{0x1B, kVideoPid}}},
      {{false, true}, kAudioPid, {{0x0F, kAudioPid}}},
  };
  for (const auto& c : cases) {
    TsMuxer mux(c.opts);
    Bytes out;
    mux.write_tables(out);
    mux.write_tables(out);
    const auto pkts = parse_all(out);
    ASSERT_EQ(pkts.size(), 4u);
    std::map<uint16_t, int> cc;
    expect_continuity(pkts, cc);
    EXPECT_EQ(pkts[0].pid, kPatPid);
    EXPECT_EQ(pkts[1].pid, kPmtPid);
    EXPECT_EQ(pkts[2].cc, 1);

    const Bytes pat = section_of(pkts[0]);
    EXPECT_EQ(reference_crc(pat), 0u) << "CRC over a section including its CRC is 0";
    // The well-known PAT for transport_stream_id 1, program 1 -> PID 0x1000.
    EXPECT_EQ(pat, (Bytes{0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1, 0x04, 0xB2}));

    const Bytes pmt = section_of(pkts[1]);
    EXPECT_EQ(reference_crc(pmt), 0u);
    EXPECT_EQ(pmt[0], 0x02);
    EXPECT_EQ((pmt[3] << 8) | pmt[4], kProgramNumber);
    EXPECT_EQ(((pmt[8] & 0x1F) << 8) | pmt[9], c.pcr_pid);
    EXPECT_EQ(((pmt[10] & 0x0F) << 8) | pmt[11], 0);
    const size_t section_len = ((pmt[1] & 0x0F) << 8) | pmt[2];
    EXPECT_EQ(section_len, 9 + 4 + 5 * c.streams.size());
    for (size_t i = 0; i < c.streams.size(); ++i) {
      const uint8_t* e = &pmt[12 + 5 * i];
      EXPECT_EQ(e[0], c.streams[i].first);
      EXPECT_EQ(((e[1] & 0x1F) << 8) | e[2], c.streams[i].second);
      EXPECT_EQ(((e[3] & 0x0F) << 8) | e[4], 0);
    }
  }
}

TEST(TsFields, PesTimestampBitLayout) {
  uint8_t b[5];
  put_pes_timestamp(b, 2, 0);
  EXPECT_EQ(Bytes(b, b + 5), (Bytes{0x21, 0x00, 0x01, 0x00, 0x01}));
  put_pes_timestamp(b, 2, kTimestampMask);
  EXPECT_EQ(Bytes(b, b + 5), (Bytes{0x2F, 0xFF, 0xFF, 0xFF, 0xFF}));
  // 0x1_2345_6789: bits 32..30 = 100, 29..15 = 0x0468 (0b000010001101000), 14..0 = 0x6789.
  put_pes_timestamp(b, 3, 0x123456789ull);
  EXPECT_EQ(b[0], 0x30 | (0b100 << 1) | 1);
  EXPECT_EQ(((b[1] << 7) | (b[2] >> 1)), int((0x123456789ull >> 15) & 0x7FFF));
  EXPECT_EQ(((b[3] << 7) | (b[4] >> 1)), int(0x123456789ull & 0x7FFF));
  EXPECT_EQ(decode_ts_field(b, 3), 0x123456789ull);
  // 33-bit wrap.
  put_pes_timestamp(b, 1, (uint64_t{1} << 33) + 42);
  EXPECT_EQ(decode_ts_field(b, 1), 42u);
}

TEST(TsFields, PcrEncoding) {
  uint8_t b[6];
  put_pcr(b, 0);
  EXPECT_EQ(Bytes(b, b + 6), (Bytes{0, 0, 0, 0, 0x7E, 0}));
  put_pcr(b, 1, 0x1FF);
  EXPECT_EQ(Bytes(b, b + 6), (Bytes{0, 0, 0, 0, 0xFF, 0xFF}));
  put_pcr(b, kTimestampMask);
  EXPECT_EQ(Bytes(b, b + 6), (Bytes{0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0}));
  put_pcr(b, 0x12345678Aull, 300);
  Bytes pkt(kPacketSize, 0xFF);
  pkt[0] = 0x47, pkt[1] = 0x01, pkt[2] = 0x00, pkt[3] = 0x20, pkt[4] = 183, pkt[5] = 0x10;
  std::copy_n(b, 6, &pkt[6]);
  const Packet k = parse_packet(pkt);
  ASSERT_TRUE(k.pcr_base.has_value());
  EXPECT_EQ(*k.pcr_base, 0x12345678Aull & kTimestampMask);
  EXPECT_EQ(k.pcr_ext, 300);
}

Bytes payload_of(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

TEST(TsVideo, PesSizesAndStuffing) {
  // Sizes around packet boundaries: first packet holds 184 - 14 (PES hdr w/o DTS) = 170
  // bytes of data, or less with an adaptation field.
  const size_t sizes[] = {0, 1, 2, 168, 169, 170, 171, 172, 176, 177, 182, 183, 184, 353, 354, 355, 1000, 65521, 65522, 70000, 200000};
  for (bool keyframe : {false, true}) {
    for (size_t n : sizes) {
      SCOPED_TRACE(testing::Message() << "size " << n << " keyframe " << keyframe);
      TsMuxer mux({true, true});
      Bytes out;
      const Bytes data = payload_of(n, uint8_t(n));
      mux.write_video(out, 9000, 9000, keyframe, data);
      const auto pkts = parse_all(out);
      std::map<uint16_t, int> cc;
      expect_continuity(pkts, cc);
      for (const auto& k : pkts) EXPECT_EQ(k.pid, kVideoPid);
      const auto pes = collect_pes(pkts, kVideoPid);
      ASSERT_EQ(pes.size(), 1u);
      EXPECT_EQ(pes[0].stream_id, kVideoStreamId);
      EXPECT_EQ(pes[0].data, data);
      ASSERT_TRUE(pes[0].pts.has_value());
      EXPECT_EQ(*pes[0].pts, 9000u);
      EXPECT_FALSE(pes[0].dts.has_value());
      const size_t pes_len = 3 + 5 + n;
      EXPECT_EQ(pes[0].length_field, pes_len > 0xFFFF ? 0 : pes_len);
      // Minimal packet count: exactly enough packets, the last one stuffed.
      const size_t af = 8;  // length + flags + PCR: the first PES of a muxer always has a PCR
      const size_t bytes = 6 + pes_len + af;
      EXPECT_EQ(pkts.size(), (bytes + 183) / 184);
      EXPECT_EQ(pkts[0].rai, keyframe);
      EXPECT_EQ(pkts[0].pcr_base.has_value(), true);  // first PES always gets a PCR
      for (size_t i = 1; i < pkts.size(); ++i) {
        EXPECT_FALSE(pkts[i].pusi);
        EXPECT_FALSE(pkts[i].pcr_base.has_value());
        if (i + 1 < pkts.size()) EXPECT_FALSE(pkts[i].has_af) << "only the last packet is stuffed";
      }
    }
  }
}

TEST(TsVideo, PesSizesWithoutAdaptationField) {
  // A PES with no PCR/RAI: only stuffing adds an adaptation field, including the 1-byte
  // (adaptation_field_length = 0) case when exactly 183 bytes remain.
  for (size_t n = 0; n < 600; ++n) {
    SCOPED_TRACE(testing::Message() << "size " << n);
    TsMuxer mux({true, false});
    Bytes first;
    mux.write_video(first, 90000, 90000, true, payload_of(1, 0));
    Bytes out;
    const Bytes data = payload_of(n, uint8_t(n));
    mux.write_video(out, 91000, 91000, false, data);
    const auto pkts = parse_all(out);
    const auto pes = collect_pes(pkts, kVideoPid);
    ASSERT_EQ(pes.size(), 1u);
    EXPECT_EQ(pes[0].data, data);
    EXPECT_EQ(pkts.size(), (14 + n + 183) / 184);
    EXPECT_EQ(pkts[0].cc, 1);
    EXPECT_FALSE(pkts[0].pcr_base.has_value());
    EXPECT_FALSE(pkts[0].rai);
    const size_t tail = (14 + n) % 184;
    EXPECT_EQ(pkts.back().has_af, tail != 0);
    if (tail == 183) EXPECT_EQ(pkts.back().af_len, 0);
  }
}

TEST(TsVideo, PcrOnKeyframesRaiAndDts) {
  TsMuxer mux({true, true});
  Bytes out;
  mux.write_tables(out);
  const Bytes au = payload_of(500, 1);
  // Keyframe, then B-frame style (pts > dts) non-keyframes 33 ms apart, then keyframe.
  mux.write_video(out, 100000 + 6000, 100000, true, au);
  mux.write_video(out, 103000 + 6000, 103000, false, au);
  mux.write_video(out, 106000, 106000, false, au);
  mux.write_video(out, 109000, 109000, true, au);
  const auto pkts = parse_all(out);
  std::map<uint16_t, int> cc;
  expect_continuity(pkts, cc);
  const auto pes = collect_pes(pkts, kVideoPid);
  ASSERT_EQ(pes.size(), 4u);
  EXPECT_EQ(*pes[0].pts, 106000u);
  EXPECT_EQ(*pes[0].dts, 100000u);
  EXPECT_EQ(*pes[1].dts, 103000u);
  EXPECT_FALSE(pes[2].dts.has_value()) << "DTS omitted when equal to PTS";
  EXPECT_EQ(*pes[2].pts, 106000u);
  EXPECT_TRUE(pes[0].first.rai);
  ASSERT_TRUE(pes[0].first.pcr_base.has_value());
  EXPECT_EQ(*pes[0].first.pcr_base, 100000u);
  EXPECT_FALSE(pes[1].first.pcr_base.has_value()) << "3000 ticks after the last PCR";
  EXPECT_FALSE(pes[1].first.rai);
  ASSERT_TRUE(pes[2].first.pcr_base.has_value()) << "6000 ticks since the last PCR";
  EXPECT_EQ(*pes[2].first.pcr_base, 106000u);
  EXPECT_FALSE(pes[2].first.rai);
  ASSERT_TRUE(pes[3].first.pcr_base.has_value());
  EXPECT_EQ(*pes[3].first.pcr_base, 109000u);
  EXPECT_TRUE(pes[3].first.rai);
  for (const auto& k : pkts)
    if (k.pid == kAudioPid) ADD_FAILURE() << "no audio written";
}

TEST(TsVideo, TimestampWrap) {
  TsMuxer mux({true, false});
  Bytes out;
  const uint64_t big = (uint64_t{1} << 33) + 1234;
  mux.write_video(out, big + 3000, big, true, payload_of(10, 0));
  const auto pes = collect_pes(parse_all(out), kVideoPid);
  ASSERT_EQ(pes.size(), 1u);
  EXPECT_EQ(*pes[0].pts, 4234u);
  EXPECT_EQ(*pes[0].dts, 1234u);
  EXPECT_EQ(*pes[0].first.pcr_base, 1234u);
}

TEST(TsAudio, AudioOnlyCarriesPcrAndSplitsLargePayloads) {
  TsMuxer mux({false, true});
  Bytes out;
  mux.write_tables(out);
  mux.write_audio(out, 90000, payload_of(300, 3));
  mux.write_audio(out, 91920, payload_of(300, 4));  // 21 ms later: no PCR needed yet
  mux.write_audio(out, 95000, payload_of(300, 5));  // 56 ms after the first: PCR
  const Bytes big = payload_of(150000, 6);
  mux.write_audio(out, 99000, big);
  const auto pkts = parse_all(out);
  std::map<uint16_t, int> cc;
  expect_continuity(pkts, cc);
  const auto pes = collect_pes(pkts, kAudioPid);
  ASSERT_EQ(pes.size(), 3u + 3u);
  EXPECT_EQ(pes[0].stream_id, kAudioStreamId);
  EXPECT_EQ(*pes[0].pts, 90000u);
  EXPECT_EQ(*pes[0].first.pcr_base, 90000u);
  EXPECT_FALSE(pes[1].first.pcr_base.has_value());
  EXPECT_EQ(*pes[2].first.pcr_base, 95000u);
  EXPECT_EQ(pes[1].data, payload_of(300, 4));
  Bytes joined;
  for (size_t i = 3; i < pes.size(); ++i) {
    EXPECT_NE(pes[i].length_field, 0) << "audio PES length is always bounded";
    EXPECT_EQ(pes[i].pts.has_value(), i == 3);
    joined.insert(joined.end(), pes[i].data.begin(), pes[i].data.end());
  }
  EXPECT_EQ(joined, big);
}

TEST(TsAudio, NoPcrOnAudioWhenVideoPresent) {
  TsMuxer mux({true, true});
  Bytes out;
  mux.write_audio(out, 90000, payload_of(100, 1));
  mux.write_video(out, 90000, 90000, true, payload_of(100, 2));
  mux.write_audio(out, 92000, payload_of(100, 3));
  const auto pkts = parse_all(out);
  std::map<uint16_t, int> cc;
  expect_continuity(pkts, cc);
  for (const auto& k : pkts) {
    if (k.pid == kAudioPid) EXPECT_FALSE(k.pcr_base.has_value());
  }
  EXPECT_EQ(collect_pes(pkts, kAudioPid).size(), 2u);
}

TEST(TsContinuity, CountersWrapPerPid) {
  TsMuxer mux({true, true});
  Bytes out;
  for (int i = 0; i < 40; ++i) {
    if (i % 10 == 0) mux.write_tables(out);
    mux.write_video(out, 90000 + i * 3000, 90000 + i * 3000, i % 10 == 0, payload_of(400 + i * 13, uint8_t(i)));
    mux.write_audio(out, 90000 + i * 1920, payload_of(200 + i, uint8_t(i)));
  }
  const auto pkts = parse_all(out);
  std::map<uint16_t, int> cc;
  expect_continuity(pkts, cc);
  EXPECT_EQ(cc.size(), 4u);
  EXPECT_GT(pkts.size(), 16u * 4);
  EXPECT_EQ(collect_pes(pkts, kVideoPid).size(), 40u);
  EXPECT_EQ(collect_pes(pkts, kAudioPid).size(), 40u);
}

}  // namespace
}  // namespace castmesh::media::ts
