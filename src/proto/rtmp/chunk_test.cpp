#include "proto/rtmp/chunk.hpp"

#include <gtest/gtest.h>

#include <random>

namespace castmesh::rtmp {
namespace {

// Feeds bytes the way a session does: keeps the unconsumed rest and appends new input.
struct Feeder {
  explicit Feeder(ChunkLimits l = {}) : reader(l) {}
  Status push(ByteView data) {
    buf.insert(buf.end(), data.begin(), data.end());
    auto n = reader.feed(buf, out);
    if (!n) return n.error();
    EXPECT_LE(*n, buf.size());
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    EXPECT_LT(buf.size(), 19u);  // at most one incomplete chunk header is kept by the caller
    return ok_status();
  }
  Status push_bytewise(ByteView data) {
    for (uint8_t b : data) {
      auto st = push(ByteView(&b, 1));
      if (!st) return st;
    }
    return ok_status();
  }
  ChunkReader reader;
  Bytes buf;
  std::vector<Message> out;
};

Bytes payload_of(size_t n, uint8_t seed) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7);
  return p;
}

Message msg(uint32_t csid, uint8_t type, uint32_t ts, uint32_t sid, Bytes payload) {
  Message m;
  m.csid = csid;
  m.type_id = type;
  m.timestamp = ts;
  m.stream_id = sid;
  m.payload = std::move(payload);
  return m;
}

void expect_same(const Message& a, const Message& b) {
  EXPECT_EQ(a.csid, b.csid);
  EXPECT_EQ(a.type_id, b.type_id);
  EXPECT_EQ(a.timestamp, b.timestamp);
  EXPECT_EQ(a.stream_id, b.stream_id);
  EXPECT_EQ(a.payload, b.payload);
}

TEST(ChunkWriter, Fmt0HeaderLayout) {
  ChunkWriter w(128);
  Bytes out;
  w.write(msg(3, msg_type::kCommandAmf0, 0x010203, 0x04030201, Bytes{0xAA, 0xBB}), out);
  Bytes want = {0x03, 0x01, 0x02, 0x03, 0x00, 0x00, 0x02, 0x14, 0x01, 0x02, 0x03, 0x04, 0xAA, 0xBB};
  EXPECT_EQ(out, want);
}

TEST(ChunkWriter, SplitsWithFmt3Continuations) {
  ChunkWriter w(4);
  Bytes out;
  w.write(msg(5, msg_type::kVideo, 10, 1, payload_of(10, 1)), out);
  // 12-byte header + 4 payload, then 1+4, then 1+2.
  ASSERT_EQ(out.size(), 12u + 4 + 1 + 4 + 1 + 2);
  EXPECT_EQ(out[16], 0xC5);
  EXPECT_EQ(out[21], 0xC5);
}

TEST(ChunkWriter, ExtendedTimestampOnEveryChunk) {
  ChunkWriter w(4);
  Bytes out;
  w.write(msg(4, msg_type::kAudio, 0x12345678, 1, payload_of(6, 3)), out);
  ASSERT_EQ(out.size(), 12u + 4 + 4 + 1 + 4 + 2);
  EXPECT_EQ(out[1], 0xFF);
  EXPECT_EQ(out[2], 0xFF);
  EXPECT_EQ(out[3], 0xFF);
  EXPECT_EQ((Bytes{out.begin() + 12, out.begin() + 16}), (Bytes{0x12, 0x34, 0x56, 0x78}));
  EXPECT_EQ(out[20], 0xC4);
  EXPECT_EQ((Bytes{out.begin() + 21, out.begin() + 25}), (Bytes{0x12, 0x34, 0x56, 0x78}));
}

TEST(ChunkWriter, BasicHeaderForms) {
  ChunkWriter w(128);
  for (uint32_t csid : {2u, 63u, 64u, 319u, 320u, 65599u}) {
    Bytes out;
    w.write(msg(csid, 8, 0, 1, Bytes{1}), out);
    if (csid < 64) {
      EXPECT_EQ(out[0] & 0x3F, csid);
    } else if (csid < 320) {
      EXPECT_EQ(out[0] & 0x3F, 0);
      EXPECT_EQ(out[1] + 64u, csid);
    } else {
      EXPECT_EQ(out[0] & 0x3F, 1);
      EXPECT_EQ(out[1] + out[2] * 256u + 64u, csid);
    }
    Feeder f;
    ASSERT_TRUE(f.push(out).ok());
    ASSERT_EQ(f.out.size(), 1u);
    EXPECT_EQ(f.out[0].csid, csid);
  }
}

TEST(ChunkWriter, ZeroCopyHeadersMatchWrite) {
  for (uint32_t ts : {0u, 1000u, 0xFFFFFFu, 0xFFFFFFFFu}) {
    for (size_t len : {0u, 1u, 99u, 100u, 101u, 1000u}) {
      ChunkWriter w(100);
      Bytes payload = payload_of(len, 9);
      Bytes expected;
      w.write(msg(6, msg_type::kVideo, ts, 1, payload), expected);

      Bytes hdr = {0xEE};  // pre-existing content must be left alone
      std::vector<size_t> offsets = {42};
      const size_t k = offsets.size();
      size_t chunks = w.write_headers(6, msg_type::kVideo, ts, 1, len, hdr, offsets);
      ASSERT_EQ(offsets.size(), k + chunks + 1);
      EXPECT_EQ(hdr.size() - 1, w.header_bytes(6, ts, len));
      Bytes gathered;
      for (size_t i = 0; i < chunks; ++i) {
        gathered.insert(gathered.end(), hdr.begin() + offsets[k + i], hdr.begin() + offsets[k + i + 1]);
        size_t b = i * 100, e = std::min(len, b + 100);
        gathered.insert(gathered.end(), payload.begin() + b, payload.begin() + e);
      }
      EXPECT_EQ(gathered, expected) << "ts=" << ts << " len=" << len;
    }
  }
}

TEST(ChunkReader, RoundTripManySizes) {
  std::mt19937 rng(7);
  for (uint32_t cs : {1u, 2u, 128u, 4096u, 60000u}) {
    ChunkWriter w(cs);
    Bytes wire;
    std::vector<Message> sent;
    if (cs != 128) {
      Bytes p = {uint8_t(cs >> 24), uint8_t(cs >> 16), uint8_t(cs >> 8), uint8_t(cs)};
      ChunkWriter(128).write(msg(2, msg_type::kSetChunkSize, 0, 0, p), wire);
    }
    for (int i = 0; i < 20; ++i) {
      size_t len = rng() % 3000;
      Message m = msg(3 + i % 5, static_cast<uint8_t>(8 + i % 2), i * 33u, 1, payload_of(len, uint8_t(i)));
      if (i == 7) m.timestamp = 0xFFFFFF + 5;  // extended
      w.write(m, wire);
      sent.push_back(m);
    }
    Feeder f;
    ASSERT_TRUE(f.push(wire).ok());
    EXPECT_EQ(f.reader.chunk_size(), cs);
    size_t first = cs != 128 ? 1 : 0;
    ASSERT_EQ(f.out.size(), sent.size() + first);
    for (size_t i = 0; i < sent.size(); ++i) expect_same(f.out[i + first], sent[i]);
    EXPECT_TRUE(f.buf.empty());
  }
}

TEST(ChunkReader, ByteAtATime) {
  ChunkWriter w(50);
  Bytes wire;
  Bytes p = {0, 0, 0, 50};
  ChunkWriter(128).write(msg(2, msg_type::kSetChunkSize, 0, 0, p), wire);
  std::vector<Message> sent = {msg(3, 20, 0, 0, payload_of(200, 1)), msg(320, 9, 0xFFFFFF, 1, payload_of(77, 2)),
                               msg(64, 8, 40, 1, payload_of(0, 0)), msg(6, 9, 0x7FFFFFFF, 1, payload_of(151, 3))};
  for (auto& m : sent) w.write(m, wire);
  Feeder f;
  ASSERT_TRUE(f.push_bytewise(wire).ok());
  ASSERT_EQ(f.out.size(), sent.size() + 1);
  for (size_t i = 0; i < sent.size(); ++i) expect_same(f.out[i + 1], sent[i]);
}

// RTMP spec 5.3.2.1, example 1: four audio messages, same stream, same length, 20 ms apart:
// fmt 0, fmt 2, fmt 3, fmt 3.
TEST(ChunkReader, SpecExample1DeltasAndFmt3NewMessages) {
  Bytes wire;
  auto body = [&](uint8_t v) { wire.insert(wire.end(), 32, v); };
  // csid 3, fmt 0: ts 1000, len 32, type 8, stream 12345
  wire.insert(wire.end(), {0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0x00, 0x00});
  body(1);
  wire.insert(wire.end(), {0x83, 0x00, 0x00, 0x14});  // fmt 2 delta 20
  body(2);
  wire.push_back(0xC3);  // fmt 3, new message
  body(3);
  wire.push_back(0xC3);
  body(4);
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 4u);
  uint32_t want_ts[] = {1000, 1020, 1040, 1060};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(f.out[i].timestamp, want_ts[i]);
    EXPECT_EQ(f.out[i].stream_id, 12345u);
    EXPECT_EQ(f.out[i].type_id, 8);
    EXPECT_EQ(f.out[i].payload, Bytes(32, uint8_t(i + 1)));
  }
}

// RTMP spec 5.3.2.2, example 2: one 307-byte video message at chunk size 128.
TEST(ChunkReader, SpecExample2Continuations) {
  Bytes wire = {0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 0x39, 0x30, 0x00, 0x00};
  Bytes payload = payload_of(307, 5);
  wire.insert(wire.end(), payload.begin(), payload.begin() + 128);
  wire.push_back(0xC4);
  wire.insert(wire.end(), payload.begin() + 128, payload.begin() + 256);
  wire.push_back(0xC4);
  wire.insert(wire.end(), payload.begin() + 256, payload.end());
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].timestamp, 1000u);
  EXPECT_EQ(f.out[0].payload, payload);
}

TEST(ChunkReader, Fmt1ChangesLengthAndType) {
  Bytes wire = {0x05, 0x00, 0x00, 0x64, 0x00, 0x00, 0x02, 0x09, 0x01, 0x00, 0x00, 0x00, 0xA1, 0xA2};
  wire.insert(wire.end(), {0x45, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x03, 0x08, 0xB1, 0xB2, 0xB3});  // fmt 1
  wire.insert(wire.end(), {0xC5, 0xC1, 0xC2, 0xC3});  // fmt 3 new: +10, len 3, type 8
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(f.out[0].timestamp, 100u);
  EXPECT_EQ(f.out[1].timestamp, 110u);
  EXPECT_EQ(f.out[1].type_id, 8);
  EXPECT_EQ(f.out[1].stream_id, 1u);
  EXPECT_EQ(f.out[1].payload, (Bytes{0xB1, 0xB2, 0xB3}));
  EXPECT_EQ(f.out[2].timestamp, 120u);
  EXPECT_EQ(f.out[2].payload, (Bytes{0xC1, 0xC2, 0xC3}));
}

TEST(ChunkReader, Fmt3AfterFmt0UsesItsTimestampAsDelta) {
  Bytes wire = {0x06, 0x00, 0x00, 0x28, 0x00, 0x00, 0x01, 0x09, 0x01, 0x00, 0x00, 0x00, 0xAA};
  wire.insert(wire.end(), {0xC6, 0xBB});
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].timestamp, 40u);
  EXPECT_EQ(f.out[1].timestamp, 80u);
}

TEST(ChunkReader, ExtendedDeltaOnFmt2AndFmt3) {
  // fmt 0 ts 0 len 1; fmt 2 with extended delta 0x01000000; fmt 3 new message carries the
  // extended field again and advances by the same delta.
  Bytes wire = {0x07, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x01};
  wire.insert(wire.end(), {0x87, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x02});
  wire.insert(wire.end(), {0xC7, 0x01, 0x00, 0x00, 0x00, 0x03});
  Feeder f;
  ASSERT_TRUE(f.push_bytewise(wire).ok());
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(f.out[1].timestamp, 0x01000000u);
  EXPECT_EQ(f.out[2].timestamp, 0x02000000u);
  EXPECT_EQ(f.out[2].payload, Bytes{0x03});
}

TEST(ChunkReader, InterleavedChunkStreams) {
  // Audio (csid 4) chunks interleaved between the chunks of a video message (csid 6).
  Bytes video = payload_of(300, 1), audio1 = payload_of(10, 2), audio2 = payload_of(10, 3);
  Bytes wire = {0x06, 0, 0, 0x21, 0, 0x01, 0x2C, 9, 1, 0, 0, 0};
  wire.insert(wire.end(), video.begin(), video.begin() + 128);
  wire.insert(wire.end(), {0x04, 0, 0, 0x20, 0, 0, 10, 8, 1, 0, 0, 0});
  wire.insert(wire.end(), audio1.begin(), audio1.end());
  wire.push_back(0xC6);
  wire.insert(wire.end(), video.begin() + 128, video.begin() + 256);
  wire.insert(wire.end(), {0x84, 0, 0, 23});
  wire.insert(wire.end(), audio2.begin(), audio2.end());
  wire.push_back(0xC6);
  wire.insert(wire.end(), video.begin() + 256, video.end());
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(f.out[0].csid, 4u);
  EXPECT_EQ(f.out[0].payload, audio1);
  EXPECT_EQ(f.out[1].csid, 4u);
  EXPECT_EQ(f.out[1].timestamp, 32u + 23);
  EXPECT_EQ(f.out[2].csid, 6u);
  EXPECT_EQ(f.out[2].timestamp, 33u);
  EXPECT_EQ(f.out[2].payload, video);
}

TEST(ChunkReader, ChunkSizeChangeMidStreamAppliesToNextChunk) {
  ChunkWriter w(128);
  Bytes wire;
  Message big = msg(6, 9, 0, 1, payload_of(1000, 4));
  w.write(big, wire);
  ChunkWriter(128).write(msg(2, msg_type::kSetChunkSize, 0, 0, Bytes{0, 0, 0x01, 0x00}), wire);  // 256
  w.set_chunk_size(256);
  w.write(big, wire);
  ChunkWriter(256).write(msg(2, msg_type::kSetChunkSize, 0, 0, Bytes{0, 0, 0, 7}), wire);
  w.set_chunk_size(7);
  w.write(big, wire);
  Feeder f;
  // Arbitrary split points.
  size_t split[] = {5, 700, 1200, 1500, wire.size()};
  size_t prev = 0;
  for (size_t s : split) {
    ASSERT_TRUE(f.push(ByteView(wire.data() + prev, s - prev)).ok());
    prev = s;
  }
  ASSERT_EQ(f.out.size(), 5u);
  expect_same(f.out[0], big);
  expect_same(f.out[2], big);
  expect_same(f.out[4], big);
  EXPECT_EQ(f.reader.chunk_size(), 7u);
}

TEST(ChunkReader, SetChunkSizeInTheMiddleOfAnotherMessage) {
  // A video message is half received at chunk size 128 when Set Chunk Size 64 arrives; its
  // next chunk is 64 bytes.
  Bytes video = payload_of(200, 6);
  Bytes wire = {0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0};
  wire.insert(wire.end(), video.begin(), video.begin() + 128);
  wire.insert(wire.end(), {0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 64});
  wire.push_back(0xC6);
  wire.insert(wire.end(), video.begin() + 128, video.begin() + 192);
  wire.push_back(0xC6);
  wire.insert(wire.end(), video.begin() + 192, video.end());
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[1].payload, video);
}

TEST(ChunkReader, AbortDropsPartialMessage) {
  Bytes wire = {0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0};
  wire.insert(wire.end(), 128, 0x11);
  wire.insert(wire.end(), {0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6});  // Abort csid 6
  // csid 6 may start a new message (fmt 1 is fine: it has a prior header).
  wire.insert(wire.end(), {0x46, 0, 0, 5, 0, 0, 2, 9, 0x21, 0x22});
  Feeder f;
  ASSERT_TRUE(f.push(wire).ok());
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].type_id, msg_type::kAbort);
  EXPECT_EQ(f.out[1].payload, (Bytes{0x21, 0x22}));
  EXPECT_EQ(f.out[1].timestamp, 5u);
}

TEST(ChunkReader, ErrorsAndLimits) {
  {  // fmt 1 with no prior header
    Feeder f;
    EXPECT_EQ(f.push(Bytes{0x43, 0, 0, 0, 0, 0, 1, 8, 0}).code(), Errc::malformed);
  }
  {  // fmt 3 with no prior header
    Feeder f;
    EXPECT_EQ(f.push(Bytes{0xC3, 0}).code(), Errc::malformed);
  }
  {  // Set Chunk Size 0
    Feeder f;
    EXPECT_EQ(f.push(Bytes{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0}).code(), Errc::malformed);
    EXPECT_FALSE(f.reader.feed(Bytes{0x02}, f.out).ok());  // unusable afterwards
  }
  {  // Set Chunk Size above the limit
    ChunkLimits l;
    l.max_chunk_size = 1000;
    Feeder f(l);
    EXPECT_EQ(f.push(Bytes{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x03, 0xE9}).code(), Errc::malformed);
  }
  {  // short Set Chunk Size
    Feeder f;
    EXPECT_EQ(f.push(Bytes{0x02, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1}).code(), Errc::malformed);
  }
  {  // message length limit
    ChunkLimits l;
    l.max_message_bytes = 1000;
    Feeder f(l);
    EXPECT_EQ(f.push(Bytes{0x03, 0, 0, 0, 0, 0x03, 0xE9, 20, 0, 0, 0, 0}).code(), Errc::too_large);
    Feeder g(l);
    EXPECT_TRUE(g.push(Bytes{0x03, 0, 0, 0, 0, 0x03, 0xE8, 20, 0, 0, 0, 0}).ok());
  }
  {  // huge length
    Feeder f;
    EXPECT_EQ(f.push(Bytes{0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0}).code(), Errc::too_large);
  }
  {  // chunk stream count limit
    ChunkLimits l;
    l.max_chunk_streams = 3;
    Feeder f(l);
    for (uint8_t c = 3; c < 6; ++c) ASSERT_TRUE(f.push(Bytes{c, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0}).ok());
    EXPECT_EQ(f.push(Bytes{0x06, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0}).code(), Errc::too_large);
  }
  {  // new header in the middle of a message
    Feeder f;
    Bytes w = {0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0};
    w.insert(w.end(), 128, 0);
    w.insert(w.end(), {0x86, 0, 0, 1});
    EXPECT_EQ(f.push(w).code(), Errc::malformed);
  }
}

TEST(ChunkReader, InterleavedPartialMessagesShareOneLimit) {
  // Three chunk streams each start a 900-byte message (under the 1000-byte limit on its
  // own); together their partial payloads exceed it and the connection is refused.
  ChunkLimits l;
  l.max_message_bytes = 1000;
  Feeder f(l);
  Status st = ok_status();
  for (uint8_t c = 3; c < 6 && st.ok(); ++c) {
    Bytes chunk = {c, 0, 0, 0, 0, 0x03, 0x84, 9, 1, 0, 0, 0};  // fmt 0, length 900
    chunk.insert(chunk.end(), 128, 0xAA);                      // first 128-byte chunk
    st = f.push(chunk);
  }
  EXPECT_TRUE(st.ok()) << "384 bytes buffered so far";
  for (int round = 0; round < 3 && st.ok(); ++round) {
    for (uint8_t c = 3; c < 6 && st.ok(); ++c) {
      Bytes cont = {static_cast<uint8_t>(0xC0 | c)};
      cont.insert(cont.end(), 128, 0xBB);
      st = f.push(cont);
    }
  }
  EXPECT_EQ(st.code(), Errc::too_large);
  EXPECT_TRUE(f.out.empty());
}

TEST(ChunkReader, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  ChunkLimits l;
  l.max_message_bytes = 64 * 1024;
  int errors = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    Bytes junk(rng() % 600);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    ChunkReader r(l);
    std::vector<Message> out;
    auto n = r.feed(junk, out);
    if (!n) ++errors;
    else EXPECT_LE(*n, junk.size());
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace castmesh::rtmp
