#include "cluster/redis/envelope.hpp"

#include <gtest/gtest.h>

namespace castmesh::cluster::redis {
namespace {

TEST(Envelope, RoundTripBinaryPayload) {
  const std::string payload("{\"a\":1}\n\0\r\nend", 14);
  std::string bytes = encode_envelope(EventId{"node-1", 1712345678901000001ull}, Lane::critical,
                                      "room:AbC", payload);
  EXPECT_EQ(bytes.substr(0, 40), std::string("v1\nnode-1\n1712345678901000001\n0\nroom:AbC\n").substr(0, 40));
  auto ev = decode_envelope(bytes);
  ASSERT_TRUE(ev.ok()) << ev.error().message();
  EXPECT_EQ(ev->id.node_id, "node-1");
  EXPECT_EQ(ev->id.seq, 1712345678901000001ull);
  EXPECT_EQ(ev->lane, Lane::critical);
  EXPECT_EQ(ev->topic, "room:AbC");
  ASSERT_TRUE(ev->payload);
  EXPECT_EQ(*ev->payload, payload);
}

TEST(Envelope, ExactBytes) {
  EXPECT_EQ(encode_envelope(EventId{"b", 7}, Lane::normal, "t", "xy"), "v1\nb\n7\n1\nt\nxy");
  auto ev = decode_envelope("v1\nb\n7\n1\nt\n");
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(*ev->payload, "");
  EXPECT_EQ(ev->lane, Lane::normal);
}

TEST(Envelope, RejectsMalformed) {
  struct Case {
    std::string bytes;
    std::string kind;
  };
  const Case cases[] = {
      {"", "version"},
      {"v2\nb\n7\n1\nt\nx", "version"},
      {"v1\nb\n7\n1\nt", "header"},
      {"v1\nb\n7", "header"},
      {"v1\n\n7\n1\nt\nx", "node_id"},
      {"v1\nb\n0\n1\nt\nx", "seq"},
      {"v1\nb\n-1\n1\nt\nx", "seq"},
      {"v1\nb\n99999999999999999999999\n1\nt\nx", "seq"},
      {"v1\nb\n7\n2\nt\nx", "lane"},
      {"v1\nb\n7\n1\n\nx", "topic"},
  };
  for (const auto& c : cases) {
    auto ev = decode_envelope(c.bytes);
    ASSERT_FALSE(ev.ok()) << c.bytes;
    EXPECT_EQ(ev.code(), Errc::malformed);
    EXPECT_EQ(ev.error().detail.rfind(c.kind, 0), 0u) << ev.error().detail;
  }
}

TEST(StreamIdFormat, ParseCompareNext) {
  auto a = parse_stream_id("1712345678901-0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->ms, 1712345678901u);
  EXPECT_EQ(a->seq, 0u);
  EXPECT_EQ(a->next().str(), "1712345678901-1");
  EXPECT_EQ((StreamId{5, UINT64_MAX}.next()), (StreamId{6, 0}));
  EXPECT_LT((StreamId{5, 9}), (StreamId{6, 0}));
  EXPECT_LT((StreamId{5, 1}), (StreamId{5, 2}));
  EXPECT_FALSE(parse_stream_id("12").ok());
  EXPECT_FALSE(parse_stream_id("a-1").ok());
  EXPECT_FALSE(parse_stream_id("1-").ok());
  EXPECT_FALSE(parse_stream_id("-1").ok());
}

TEST(StreamIdFormat, SplitLiveMessage) {
  auto m = split_live_message("1-2\nv1\nb\n7\n1\nt\nx\ny");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->stream_id, (StreamId{1, 2}));
  EXPECT_EQ(m->envelope, "v1\nb\n7\n1\nt\nx\ny");
  EXPECT_FALSE(split_live_message("v1\nb").ok());
  EXPECT_FALSE(split_live_message("nonewline").ok());
}

}  // namespace
}  // namespace castmesh::cluster::redis
