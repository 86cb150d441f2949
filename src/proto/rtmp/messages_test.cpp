#include "proto/rtmp/messages.hpp"

#include <gtest/gtest.h>

namespace castmesh::rtmp {
namespace {

using amf0::Value;

std::vector<Value> values_of(const Message& m) {
  auto v = amf0::decode_all(m.payload);
  EXPECT_TRUE(v.ok());
  return v.ok() ? *v : std::vector<Value>{};
}

TEST(Messages, ProtocolControlLayouts) {
  Message m = set_chunk_size_message(60000);
  EXPECT_EQ(m.type_id, 1);
  EXPECT_EQ(m.csid, 2u);
  EXPECT_EQ(m.stream_id, 0u);
  EXPECT_EQ(m.payload, (Bytes{0x00, 0x00, 0xEA, 0x60}));
  EXPECT_EQ(window_ack_size_message(2500000).payload, (Bytes{0x00, 0x26, 0x25, 0xA0}));
  EXPECT_EQ(window_ack_size_message(1).type_id, 5);
  Message bw = set_peer_bandwidth_message(2500000, 2);
  EXPECT_EQ(bw.type_id, 6);
  EXPECT_EQ(bw.payload, (Bytes{0x00, 0x26, 0x25, 0xA0, 0x02}));
  Message ack = acknowledgement_message(0x01020304);
  EXPECT_EQ(ack.type_id, 3);
  EXPECT_EQ(ack.payload, (Bytes{1, 2, 3, 4}));
  EXPECT_EQ(abort_message(6).payload, (Bytes{0, 0, 0, 6}));
  EXPECT_EQ(*parse_u32_control(ack.payload), 0x01020304u);
  EXPECT_EQ(parse_u32_control(Bytes{1, 2}).code(), Errc::malformed);
}

TEST(Messages, UserControl) {
  Message sb = user_control_message(UserControlEvent::stream_begin, 1);
  EXPECT_EQ(sb.type_id, 4);
  EXPECT_EQ(sb.csid, 2u);
  EXPECT_EQ(sb.payload, (Bytes{0, 0, 0, 0, 0, 1}));
  Message eof = user_control_message(UserControlEvent::stream_eof, 1);
  EXPECT_EQ(eof.payload, (Bytes{0, 1, 0, 0, 0, 1}));
  Message pong = user_control_message(UserControlEvent::ping_response, 0xAABBCCDD);
  EXPECT_EQ(pong.payload, (Bytes{0, 7, 0xAA, 0xBB, 0xCC, 0xDD}));

  auto ping = parse_user_control(Bytes{0, 6, 0, 0, 1, 0});
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->event, 6);
  EXPECT_EQ(ping->value, 256u);
  auto buf = parse_user_control(Bytes{0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8});
  ASSERT_TRUE(buf.ok());
  EXPECT_EQ(buf->value, 1u);
  EXPECT_EQ(buf->value2, 3000u);
  EXPECT_EQ(parse_user_control(Bytes{0, 3, 0, 0, 0, 1}).code(), Errc::malformed);
  EXPECT_EQ(parse_user_control(Bytes{0, 6, 0}).code(), Errc::malformed);
}

TEST(Messages, ParseConnectCommand) {
  Message m = command_message(0, {Value::string("connect"), Value::number(1),
                                  Value::object({{"app", Value::string("live")},
                                                 {"tcUrl", Value::string("rtmp://h/live")},
                                                 {"objectEncoding", Value::number(0)}})});
  EXPECT_EQ(m.type_id, 20);
  auto c = parse_command(m);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name, "connect");
  EXPECT_EQ(c->transaction_id, 1);
  EXPECT_EQ(c->command_object.get_string("app"), "live");
  EXPECT_TRUE(c->args.empty());
}

TEST(Messages, ParsePublishAndAmf3Command) {
  Message m = command_message(1, {Value::string("publish"), Value::number(5), Value::null(),
                                  Value::string("test?key=1"), Value::string("live")});
  auto c = parse_command(m);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->name, "publish");
  EXPECT_TRUE(c->command_object.is_null());
  ASSERT_EQ(c->args.size(), 2u);
  EXPECT_EQ(c->arg_string(0), "test?key=1");
  EXPECT_EQ(c->arg_string(1), "live");
  EXPECT_EQ(c->arg_string(7), "");

  Message amf3 = m;
  amf3.type_id = 17;
  amf3.payload.insert(amf3.payload.begin(), 0x00);
  auto c3 = parse_command(amf3);
  ASSERT_TRUE(c3.ok());
  EXPECT_EQ(c3->arg_string(0), "test?key=1");
}

TEST(Messages, ParseCommandErrors) {
  Message m;
  m.type_id = 20;
  m.payload = {0x00, 0, 0, 0, 0, 0, 0, 0, 0};  // a number, not a name
  EXPECT_EQ(parse_command(m).code(), Errc::malformed);
  m.payload = {0x02, 0x00, 0x09, 'c'};  // truncated string
  EXPECT_EQ(parse_command(m).code(), Errc::malformed);
  m.type_id = 8;
  EXPECT_EQ(parse_command(m).code(), Errc::unsupported);
  m.type_id = 17;
  m.payload.clear();
  EXPECT_EQ(parse_command(m).code(), Errc::malformed);
}

TEST(Messages, ConnectResult) {
  Message m = connect_result_message(1, 0);
  EXPECT_EQ(m.stream_id, 0u);
  auto v = values_of(m);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].as_string(), "_result");
  EXPECT_EQ(v[1].as_number(), 1);
  EXPECT_EQ(v[2].get_string("fmsVer").rfind("FMS/", 0), 0u);
  EXPECT_EQ(v[3].get_string("level"), "status");
  EXPECT_EQ(v[3].get_string("code"), "NetConnection.Connect.Success");
  EXPECT_EQ(v[3].get_number("objectEncoding", -1), 0);
}

TEST(Messages, CreateStreamResultAndError) {
  auto v = values_of(create_stream_result_message(4, 1));
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].as_string(), "_result");
  EXPECT_EQ(v[1].as_number(), 4);
  EXPECT_TRUE(v[2].is_null());
  EXPECT_EQ(v[3].as_number(), 1);
  auto e = values_of(error_message(2, Value::null(), status_object("error", "X.Y", "d")));
  EXPECT_EQ(e[0].as_string(), "_error");
  EXPECT_EQ(e[3].get_string("code"), "X.Y");
}

TEST(Messages, OnStatusCodes) {
  for (auto code : {status::kPublishStart, status::kPublishBadName, status::kPlayReset, status::kPlayStart,
                    status::kPlayStreamNotFound, status::kUnpublishSuccess, status::kPlayUnpublishNotify}) {
    Message m = on_status_message(1, "status", code, "desc");
    EXPECT_EQ(m.stream_id, 1u);
    EXPECT_EQ(m.type_id, 20);
    auto v = values_of(m);
    ASSERT_EQ(v.size(), 4u);
    EXPECT_EQ(v[0].as_string(), "onStatus");
    EXPECT_EQ(v[1].as_number(), 0);
    EXPECT_TRUE(v[2].is_null());
    EXPECT_EQ(v[3].get_string("code"), code);
    EXPECT_EQ(v[3].get_string("description"), "desc");
  }
}

TEST(Messages, FcPublishAndSampleAccess) {
  auto v = values_of(on_fc_publish_message("test"));
  EXPECT_EQ(v[0].as_string(), "onFCPublish");
  EXPECT_EQ(v[3].get_string("code"), "NetStream.Publish.Start");
  auto u = values_of(on_fc_unpublish_message("test"));
  EXPECT_EQ(u[0].as_string(), "onFCUnpublish");
  EXPECT_EQ(u[3].get_string("code"), "NetStream.Unpublish.Success");
  Message sa = sample_access_message(1);
  EXPECT_EQ(sa.type_id, 18);
  EXPECT_EQ(sa.stream_id, 1u);
  auto s = values_of(sa);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].as_string(), "|RtmpSampleAccess");
  EXPECT_TRUE(s[1].as_bool());
  EXPECT_TRUE(s[2].as_bool());
}

TEST(Messages, StripSetDataFrame) {
  Value meta = Value::ecma_array({{"width", Value::number(1280)}});
  Bytes wrapped, bare;
  amf0::encode_all({Value::string("@setDataFrame"), Value::string("onMetaData"), meta}, wrapped);
  amf0::encode_all({Value::string("onMetaData"), meta}, bare);
  auto s = strip_set_data_frame(wrapped);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Bytes(s->begin(), s->end()), bare);
  auto t = strip_set_data_frame(bare);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(Bytes(t->begin(), t->end()), bare);
  EXPECT_EQ(data_message_name(bare), "onMetaData");
  EXPECT_EQ(data_message_name(wrapped), "@setDataFrame");
  EXPECT_EQ(strip_set_data_frame(Bytes{0x02, 0x00}).code(), Errc::malformed);
}

TEST(Messages, AckCounter) {
  AckCounter a(1000);
  EXPECT_FALSE(a.on_received(999));
  auto s = a.on_received(1);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, 1000u);
  EXPECT_FALSE(a.on_received(500));
  s = a.on_received(2000);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, 3500u);
  a.set_window(0);
  EXPECT_FALSE(a.on_received(100000));
  // Sequence numbers wrap at 2^32.
  AckCounter w(1u << 31);
  EXPECT_TRUE(w.on_received(1ull << 31));
  auto s2 = w.on_received((1ull << 31) + 5);
  ASSERT_TRUE(s2);
  EXPECT_EQ(*s2, 5u);
}

TEST(Messages, BuiltMessagesSurviveChunking) {
  ChunkWriter w(128);
  Bytes wire;
  std::vector<Message> sent = {window_ack_size_message(2500000), set_peer_bandwidth_message(2500000),
                               set_chunk_size_message(4096), connect_result_message(1, 0),
                               on_status_message(1, "status", status::kPlayStart, "Start live")};
  for (size_t i = 0; i < sent.size(); ++i) {
    w.write(sent[i], wire);
    if (i == 2) w.set_chunk_size(4096);
  }
  ChunkReader r;
  std::vector<Message> got;
  auto n = r.feed(wire, got);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, wire.size());
  ASSERT_EQ(got.size(), sent.size());
  EXPECT_EQ(r.chunk_size(), 4096u);
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(got[i].payload, sent[i].payload);
}

}  // namespace
}  // namespace castmesh::rtmp
