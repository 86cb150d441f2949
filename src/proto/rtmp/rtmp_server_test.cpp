#include "proto/rtmp/rtmp_server.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "proto/rtmp/rtmp_test_client.hpp"

namespace castmesh::rtmp {
namespace {

namespace asio = boost::asio;
using amf0::Value;
using test::TestClient;

// ---- fixtures ----------------------------------------------------------------------------------

struct RtmpServerTest : ::testing::Test {
  Metrics metrics;
  live::LiveConfig live_cfg;
  std::unique_ptr<live::StreamHub> hub;
  std::vector<std::unique_ptr<asio::io_context>> ctxs;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::unique_ptr<RtmpServer> server;
  uint16_t port = 0;

  void start(RtmpConfig cfg = {}) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    hub = std::make_unique<live::StreamHub>(live_cfg, metrics);
    std::vector<asio::io_context*> raw;
    for (int i = 0; i < 2; ++i) {
      ctxs.push_back(std::make_unique<asio::io_context>(1));
      guards.push_back(asio::make_work_guard(*ctxs.back()));
      raw.push_back(ctxs.back().get());
    }
    server = std::make_unique<RtmpServer>(raw, cfg, *hub, metrics);
    auto st = server->listen();
    ASSERT_TRUE(st.ok()) << st.error().message();
    port = server->port();
    ASSERT_NE(port, 0);
    for (auto& c : ctxs) threads.emplace_back([c = c.get()] { c->run(); });
  }

  void TearDown() override {
    if (!server) return;
    server->stop();
    const int64_t deadline = mono_ms() + 5000;
    while (server->connections() > 0 && mono_ms() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(server->connections(), 0u) << "sessions still open after stop()";
    guards.clear();
    for (auto& c : ctxs) c->stop();
    for (auto& t : threads) t.join();
    server.reset();
    ctxs.clear();  // destroys any session frames before the hub they reference
    hub.reset();
  }

  bool wait_until(const std::function<bool()>& cond, int timeout_ms = 5000) {
    const int64_t deadline = mono_ms() + timeout_ms;
    while (mono_ms() < deadline) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  }

  uint64_t protocol_errors() const { return metrics.protocol_errors_total[Metrics::idx(Proto::rtmp)].load(); }
};

// FLV-style payloads (FLV spec E.4.2.1 / E.4.3.1).
Bytes avc_sequence_header() { return Bytes{0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x00}; }
Bytes aac_sequence_header() { return Bytes{0xAF, 0x00, 0x12, 0x10}; }
Bytes video_frame(bool key, size_t n, uint8_t fill) {
  Bytes b(5 + n, fill);
  b[0] = key ? 0x17 : 0x27;
  b[1] = 0x01;
  b[2] = b[3] = b[4] = 0;
  return b;
}
Bytes audio_frame(size_t n, uint8_t fill) {
  Bytes b(2 + n, fill);
  b[0] = 0xAF;
  b[1] = 0x01;
  return b;
}
Bytes set_data_frame_metadata() {
  Bytes b;
  amf0::encode_all({Value::string("@setDataFrame"), Value::string("onMetaData"),
                    Value::ecma_array({{"width", Value::number(1280)}, {"height", Value::number(720)}})},
                   b);
  return b;
}

bool is_type(const Message& m, uint8_t t) { return m.type_id == t; }

// A connected publisher that sent metadata and sequence headers.
std::unique_ptr<TestClient> start_publisher(uint16_t port, const std::string& name, std::string* code = nullptr) {
  auto c = std::make_unique<TestClient>(port);
  if (!c->connected() || c->handshake().empty() || !c->connect_app("live", port)) return nullptr;
  c->set_chunk_size(4096);
  std::string got = c->publish(name);
  if (code) *code = got;
  if (got != status::kPublishStart) return c;
  c->send_media(msg_type::kDataAmf0, 0, set_data_frame_metadata(), 5);
  c->send_media(msg_type::kVideo, 0, avc_sequence_header());
  c->send_media(msg_type::kAudio, 0, aac_sequence_header(), 4);
  return c;
}

// ---- tests -------------------------------------------------------------------------------------

TEST_F(RtmpServerTest, PublishAndPlayWithOwnClients) {
  RtmpConfig cfg;
  cfg.out_chunk_size = 4000;
  cfg.merge_window_ms = 10;
  start(cfg);

  std::string code;
  auto pub = start_publisher(port, "test?token=abc", &code);
  ASSERT_TRUE(pub);
  ASSERT_EQ(code, status::kPublishStart);
  EXPECT_TRUE(pub->wait_command("onFCPublish").has_value());
  ASSERT_TRUE(wait_until([&] { return hub->publishing_count() == 1; }));
  auto stats = hub->stats({"live", "test"});  // the ?query is not part of the key
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(stats->publishing);
  EXPECT_EQ(stats->publisher_protocol, "rtmp");

  const Bytes key1 = video_frame(true, 10000, 0x11);  // spans 3 outgoing chunks of 4000
  pub->send_media(msg_type::kVideo, 40, key1);
  pub->send_media(msg_type::kAudio, 45, audio_frame(300, 0x22), 4);

  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  // The server announced its chunk size before the _result of connect.
  auto scs = player.wait_for([](const Message& m) { return is_type(m, msg_type::kSetChunkSize); }, 100);
  ASSERT_TRUE(scs.has_value());
  EXPECT_EQ(*parse_u32_control(scs->payload), 4000u);
  ASSERT_EQ(player.play("test"), status::kPlayReset);
  EXPECT_EQ(player.wait_status(), status::kPlayStart);
  auto begin = player.wait_for([](const Message& m) { return is_type(m, msg_type::kUserControl); });
  ASSERT_TRUE(begin.has_value());
  EXPECT_EQ(parse_user_control(begin->payload)->event, 0);  // StreamBegin
  EXPECT_EQ(parse_user_control(begin->payload)->value, 1u);

  auto sample = player.wait_for([](const Message& m) {
    return is_type(m, msg_type::kDataAmf0) && data_message_name(m.payload) == "|RtmpSampleAccess";
  });
  ASSERT_TRUE(sample.has_value());
  auto meta = player.wait_for([](const Message& m) { return is_type(m, msg_type::kDataAmf0) &&
                                                            data_message_name(m.payload) != "|RtmpSampleAccess"; });
  ASSERT_TRUE(meta.has_value());
  auto meta_values = amf0::decode_all(meta->payload);
  ASSERT_TRUE(meta_values.ok());
  ASSERT_EQ(meta_values->size(), 2u) << "@setDataFrame must be removed";
  EXPECT_EQ((*meta_values)[0].as_string(), "onMetaData");
  EXPECT_EQ((*meta_values)[1].get_number("width"), 1280);
  EXPECT_EQ(meta->stream_id, 1u);

  auto vsh = player.wait_for([](const Message& m) { return is_type(m, msg_type::kVideo); });
  ASSERT_TRUE(vsh.has_value());
  EXPECT_EQ(vsh->payload, avc_sequence_header());
  auto ash = player.wait_for([](const Message& m) { return is_type(m, msg_type::kAudio); });
  ASSERT_TRUE(ash.has_value());
  EXPECT_EQ(ash->payload, aac_sequence_header());
  auto k = player.wait_for([](const Message& m) { return is_type(m, msg_type::kVideo); });
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->payload, key1);
  EXPECT_EQ(k->timestamp, 40u);
  EXPECT_EQ(k->stream_id, 1u);

  // Live frames after the player joined.
  const Bytes inter = video_frame(false, 5000, 0x33);
  pub->send_media(msg_type::kVideo, 80, inter);
  auto live_frame = player.wait_for([&](const Message& m) { return is_type(m, msg_type::kVideo) && m.timestamp == 80; });
  ASSERT_TRUE(live_frame.has_value());
  EXPECT_EQ(live_frame->payload, inter);

  // Unpublish: FCUnpublish + deleteStream; the player is told.
  pub->command(0, {Value::string("FCUnpublish"), Value::number(6), Value::null(), Value::string("test")});
  pub->command(0, {Value::string("deleteStream"), Value::number(7), Value::null(), Value::number(1)});
  EXPECT_TRUE(pub->wait_command("onFCUnpublish").has_value());
  ASSERT_TRUE(wait_until([&] { return hub->publishing_count() == 0; }));
  bool unpublish_notified = false;
  for (int i = 0; i < 5 && !unpublish_notified; ++i)
    unpublish_notified = player.wait_status(2000) == status::kPlayUnpublishNotify;
  EXPECT_TRUE(unpublish_notified);
  EXPECT_GT(metrics.bytes_in_total[Metrics::idx(Proto::rtmp)].load(), 15000u);
  EXPECT_GT(metrics.bytes_out_total[Metrics::idx(Proto::rtmp)].load(), 15000u);
  EXPECT_EQ(metrics.connections[Metrics::idx(Proto::rtmp)].load(), 2);
}

TEST_F(RtmpServerTest, SecondPublisherGetsBadNameAndFirstKeepsStream) {
  start();
  auto p1 = start_publisher(port, "dup");
  ASSERT_TRUE(p1);
  ASSERT_TRUE(wait_until([&] { return hub->publishing_count() == 1; }));
  const auto remote1 = hub->stats({"live", "dup"})->publisher_remote;

  std::string code;
  auto p2 = start_publisher(port, "dup", &code);
  ASSERT_TRUE(p2);
  EXPECT_EQ(code, status::kPublishBadName);
  EXPECT_GE(metrics.publish_rejected_total.load(), 1u);
  // Media from the refused connection are ignored; the first publisher still owns the key.
  p2->send_media(msg_type::kVideo, 0, video_frame(true, 100, 0x99));
  EXPECT_EQ(hub->stats({"live", "dup"})->publisher_remote, remote1);

  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("dup"), status::kPlayReset);
  p1->send_media(msg_type::kVideo, 40, video_frame(true, 100, 0x55));
  auto f = player.wait_for([](const Message& m) { return is_type(m, msg_type::kVideo) && m.payload.size() == 105; });
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload[10], 0x55);
  EXPECT_FALSE(p1->closed());
}

TEST_F(RtmpServerTest, AggregateMessagesAreSplit) {
  start();
  auto pub = start_publisher(port, "agg");
  ASSERT_TRUE(pub);
  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("agg"), status::kPlayReset);

  // RTMP spec 7.1.6: two video sub-messages with FLV tag headers; times relative to the first.
  Bytes agg;
  auto tag = [&](uint32_t ts, const Bytes& body) {
    ByteWriter w(agg);
    w.u8(msg_type::kVideo);
    w.u24(static_cast<uint32_t>(body.size()));
    w.u24(ts & 0xFFFFFF);
    w.u8(static_cast<uint8_t>(ts >> 24));
    w.u24(0);
    w.bytes(body);
    w.u32(static_cast<uint32_t>(11 + body.size()));
  };
  const Bytes f1 = video_frame(true, 300, 0xA1), f2 = video_frame(false, 200, 0xA2);
  tag(5000, f1);
  tag(5033, f2);
  pub->send_media(msg_type::kAggregate, 1000, agg);
  auto m1 = player.wait_for([&](const Message& m) { return is_type(m, msg_type::kVideo) && m.payload == f1; });
  auto m2 = player.wait_for([&](const Message& m) { return is_type(m, msg_type::kVideo) && m.payload == f2; });
  ASSERT_TRUE(m1.has_value());
  ASSERT_TRUE(m2.has_value());
  EXPECT_EQ(m2->timestamp - m1->timestamp, 33u);

  // A truncated aggregate is a protocol error.
  agg.resize(agg.size() - 10);
  const uint64_t before = protocol_errors();
  pub->send_media(msg_type::kAggregate, 2000, agg);
  EXPECT_TRUE(pub->wait_closed(3000));
  EXPECT_EQ(protocol_errors(), before + 1);
}

TEST_F(RtmpServerTest, BadNamesAreRefused) {
  start();
  TestClient c(port);
  ASSERT_FALSE(c.handshake().empty());
  ASSERT_TRUE(c.connect_app("live", port));
  EXPECT_EQ(c.publish("../etc"), status::kPublishBadName);
  EXPECT_EQ(c.play("bad name"), status::kPlayStreamNotFound);
  EXPECT_EQ(hub->publishing_count(), 0u);

  TestClient d(port);
  ASSERT_FALSE(d.handshake().empty());
  d.command(0, {Value::string("connect"), Value::number(1), Value::object({{"app", Value::string("a/../b")}})});
  auto err = d.wait_command("_error");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->args[0].get_string("code"), status::kConnectRejected);
  EXPECT_TRUE(d.wait_closed(3000));
}

TEST_F(RtmpServerTest, PingAndAcknowledgement) {
  start();
  TestClient c(port);
  ASSERT_FALSE(c.handshake().empty());
  ASSERT_TRUE(c.connect_app("live", port));
  c.send(user_control_message(UserControlEvent::ping_request, 123456));
  auto pong = c.wait_for([](const Message& m) {
    if (!is_type(m, msg_type::kUserControl)) return false;
    auto uc = parse_user_control(m.payload);
    return uc && uc->event == 7;
  });
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(parse_user_control(pong->payload)->value, 123456u);

  // The client asks for an acknowledgement every 5000 bytes.
  c.send(window_ack_size_message(5000));
  ASSERT_EQ(c.publish("acks"), status::kPublishStart);
  c.send_media(msg_type::kVideo, 0, video_frame(true, 12000, 1));
  auto ack = c.wait_for([](const Message& m) { return is_type(m, msg_type::kAcknowledgement); });
  ASSERT_TRUE(ack.has_value());
  EXPECT_GE(*parse_u32_control(ack->payload), 5000u);
}

TEST_F(RtmpServerTest, MalformedInputClosesOnlyThatConnection) {
  RtmpConfig cfg;
  cfg.max_message_bytes = 1024 * 1024;
  start(cfg);
  auto pub = start_publisher(port, "keep");
  ASSERT_TRUE(pub);
  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("keep"), status::kPlayReset);
  pub->send_media(msg_type::kVideo, 40, video_frame(true, 100, 0x01));
  ASSERT_TRUE(player.wait_for([](const Message& m) { return is_type(m, msg_type::kVideo) && m.timestamp == 40; }));

  uint64_t errors = protocol_errors();
  {  // random bytes (not starting with version 3)
    TestClient c(port);
    std::mt19937 rng(42);
    Bytes junk(5000);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    junk[0] = 0x47;
    c.send_raw(junk);
    EXPECT_TRUE(c.wait_closed(3000));
    EXPECT_TRUE(wait_until([&] { return protocol_errors() == errors + 1; }));
    errors = protocol_errors();
  }
  {  // bad version byte with a full-size C0C1
    TestClient c(port);
    Bytes c0c1 = client_c0c1();
    c0c1[0] = 6;
    c.send_raw(c0c1);
    EXPECT_TRUE(c.wait_closed(3000));
    EXPECT_TRUE(wait_until([&] { return protocol_errors() == errors + 1; }));
    errors = protocol_errors();
  }
  {  // Set Chunk Size 0 after the handshake
    TestClient c(port);
    ASSERT_FALSE(c.handshake().empty());
    c.send_raw(Bytes{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0});
    EXPECT_TRUE(c.wait_closed(3000));
    EXPECT_TRUE(wait_until([&] { return protocol_errors() == errors + 1; }));
    errors = protocol_errors();
  }
  {  // huge message length
    TestClient c(port);
    ASSERT_FALSE(c.handshake().empty());
    c.send_raw(Bytes{0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0});
    EXPECT_TRUE(c.wait_closed(3000));
    EXPECT_TRUE(wait_until([&] { return protocol_errors() == errors + 1; }));
    errors = protocol_errors();
  }
  {  // random bytes after a good handshake
    TestClient c(port);
    ASSERT_FALSE(c.handshake().empty());
    std::mt19937 rng(7);
    Bytes junk(20000);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    junk[0] = 0x43;  // chunk type 1 on a chunk stream without a header: malformed at once
    c.send_raw(junk);
    EXPECT_TRUE(c.wait_closed(3000));
  }
  {  // malformed AMF0 in a command
    TestClient c(port);
    ASSERT_FALSE(c.handshake().empty());
    Message m;
    m.type_id = msg_type::kCommandAmf0;
    m.csid = 3;
    m.payload = {0x02, 0x00, 0x07, 'c', 'o', 'n', 'n', 'e', 'c', 't', 0x03, 0x00, 0x03, 'a', 'p', 'p', 0x02, 0xFF};
    c.send(m);
    EXPECT_TRUE(c.wait_closed(3000));
  }
  EXPECT_GE(protocol_errors(), errors + 2);

  // The live stream kept working throughout.
  EXPECT_FALSE(pub->closed());
  pub->send_media(msg_type::kVideo, 80, video_frame(false, 100, 0x02));
  auto f = player.wait_for([](const Message& m) { return is_type(m, msg_type::kVideo) && m.timestamp == 80; });
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->payload[10], 0x02);
  EXPECT_EQ(hub->publishing_count(), 1u);
}

TEST_F(RtmpServerTest, PeerThatDoesNotReadRepliesIsClosed) {
  RtmpConfig cfg;
  cfg.send_timeout_ms = 60000;  // the backlog bound, not the send timeout, must act
  start(cfg);
  TestClient c(port);
  ASSERT_FALSE(c.handshake().empty());
  // connect commands, each answered with ~4x its size in replies, sent without ever reading.
  Bytes batch;
  ChunkWriter w(128);
  const Message connect = command_message(
      0, {Value::string("connect"), Value::number(1), Value::object({{"app", Value::string("live")}})});
  for (int i = 0; i < 2000; ++i) w.write(connect, batch);
  const uint64_t before = protocol_errors();
  for (int i = 0; i < 200 && c.send_raw(batch); ++i) {
  }
  EXPECT_TRUE(c.wait_closed(5000));
  EXPECT_TRUE(wait_until([&] { return protocol_errors() == before + 1; }));
}

TEST_F(RtmpServerTest, HandshakeAndIdleTimeouts) {
  RtmpConfig cfg;
  cfg.handshake_timeout_ms = 300;
  cfg.idle_timeout_ms = 400;
  start(cfg);
  TestClient silent(port);
  ASSERT_TRUE(silent.connected());
  const int64_t t0 = mono_ms();
  EXPECT_TRUE(silent.wait_closed(3000));
  EXPECT_GE(mono_ms() - t0, 250);

  auto pub = start_publisher(port, "idle");
  ASSERT_TRUE(pub);
  ASSERT_TRUE(wait_until([&] { return hub->publishing_count() == 1; }));
  EXPECT_TRUE(pub->wait_closed(3000));  // sends nothing more: closed as idle
  EXPECT_TRUE(wait_until([&] { return hub->publishing_count() == 0; }));
}

TEST_F(RtmpServerTest, MaxConnections) {
  RtmpConfig cfg;
  cfg.max_connections = 2;
  start(cfg);
  TestClient a(port), b(port);
  ASSERT_FALSE(a.handshake().empty());
  ASSERT_FALSE(b.handshake().empty());
  TestClient c(port);
  EXPECT_TRUE(c.handshake().empty());
  EXPECT_TRUE(c.wait_closed(2000));
  EXPECT_EQ(server->connections(), 2u);
}

TEST_F(RtmpServerTest, SlowPlayerIsClosedOnSendTimeout) {
  RtmpConfig cfg;
  cfg.send_timeout_ms = 300;
  live_cfg.subscriber_max_lag_ms = 600000;  // no GOP dropping: the writer must block
  live_cfg.gop_cache_max_bytes = 256 * 1024 * 1024;
  start(cfg);
  auto pub = start_publisher(port, "slow");
  ASSERT_TRUE(pub);
  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("slow"), status::kPlayReset);
  // The player stops reading; the publisher sends far more than the socket buffers hold.
  for (int i = 0; i < 200 && !pub->closed(); ++i) pub->send_media(msg_type::kVideo, 40u * i, video_frame(i % 50 == 0, 200000, 7));
  EXPECT_TRUE(wait_until([&] { return metrics.slow_subscribers_closed_total.load() == 1; }, 5000));
  EXPECT_TRUE(wait_until([&] { return server->connections() == 1; }, 3000));
  EXPECT_FALSE(pub->closed());
  EXPECT_EQ(hub->publishing_count(), 1u);
}

TEST_F(RtmpServerTest, StopClosesEverySession) {
  start();
  auto pub = start_publisher(port, "stopme");
  ASSERT_TRUE(pub);
  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("stopme"), status::kPlayReset);
  EXPECT_EQ(server->connections(), 2u);
  server->stop();
  EXPECT_TRUE(pub->wait_closed(3000));
  EXPECT_TRUE(player.wait_closed(3000));
  EXPECT_TRUE(wait_until([&] { return server->connections() == 0; }));
  EXPECT_EQ(hub->publishing_count(), 0u);
  TestClient late(port);
  EXPECT_FALSE(late.connected() && !late.handshake().empty());
}

TEST_F(RtmpServerTest, TeardownWithSessionsStillOpen) {
  // The shutdown path after an expired grace period: the contexts stop with sessions (and the
  // accept loop) suspended; the server, then the contexts, then the hub are destroyed.
  start();
  auto pub = start_publisher(port, "abrupt");
  ASSERT_TRUE(pub);
  TestClient player(port);
  ASSERT_FALSE(player.handshake().empty());
  ASSERT_TRUE(player.connect_app("live", port));
  ASSERT_EQ(player.play("abrupt"), status::kPlayReset);
  guards.clear();
  for (auto& c : ctxs) c->stop();
  for (auto& t : threads) t.join();
  threads.clear();
  server.reset();
  ctxs.clear();
  EXPECT_EQ(metrics.connections[Metrics::idx(Proto::rtmp)].load(), 0);
  EXPECT_EQ(hub->publishing_count(), 0u);
  hub.reset();
  EXPECT_TRUE(pub->wait_closed(2000));
  EXPECT_TRUE(player.wait_closed(2000));
}

// ---- ffmpeg / ffprobe --------------------------------------------------------------------------

bool have_program(const char* name) {
  return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0;
}

// A child process with stdout and stderr sent to files; killed by pid if still running.
struct Child {
  pid_t pid = -1;
  std::filesystem::path out, err;
  int status = -1;

  static Child spawn(const std::vector<std::string>& args, const std::string& tag) {
    Child c;
    auto dir = std::filesystem::temp_directory_path();
    c.out = dir / ("castmesh-rtmp-" + std::to_string(::getpid()) + "-" + tag + ".out");
    c.err = dir / ("castmesh-rtmp-" + std::to_string(::getpid()) + "-" + tag + ".err");
    c.pid = ::fork();
    if (c.pid == 0) {
      int o = ::open(c.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(c.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int n = ::open("/dev/null", O_RDONLY);
      ::dup2(n, 0);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    return c;
  }
  /// Exit code, or nullopt when still running after `timeout_ms` (then it is killed).
  std::optional<int> wait(int timeout_ms) {
    const int64_t deadline = mono_ms() + timeout_ms;
    while (mono_ms() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    return std::nullopt;
  }
  void kill() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      pid = -1;
    }
  }
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  ~Child() {
    kill();
    std::error_code ec;
    std::filesystem::remove(out, ec);
    std::filesystem::remove(err, ec);
  }
};

TEST_F(RtmpServerTest, FfmpegPublishFfprobePlay) {
  if (!have_program("ffmpeg") || !have_program("ffprobe")) GTEST_SKIP() << "ffmpeg/ffprobe not installed";
  start();
  const std::string url = "rtmp://127.0.0.1:" + std::to_string(port) + "/live/test";
  Child pub = Child::spawn({"ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i",
                            "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine", "-c:v", "libx264",
                            "-preset", "ultrafast", "-g", "30", "-c:a", "aac", "-t", "5", "-f", "flv", url},
                           "pub");
  ASSERT_TRUE(wait_until([&] {
    auto s = hub->stats({"live", "test"});
    return s && s->publishing && s->video_codec == "H264";
  }, 10000)) << Child::slurp(pub.err);

  // A second publisher on the same key is refused with NetStream.Publish.BadName.
  Child dup = Child::spawn({"ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i",
                            "testsrc2=size=320x240:rate=15", "-c:v", "libx264", "-preset", "ultrafast", "-t", "3",
                            "-f", "flv", url},
                           "dup");
  auto dup_rc = dup.wait(15000);
  ASSERT_TRUE(dup_rc.has_value()) << "second publisher was not refused";
  EXPECT_NE(*dup_rc, 0);
  EXPECT_NE(Child::slurp(dup.err).find("already publishing"), std::string::npos) << Child::slurp(dup.err);

  Child probe = Child::spawn({"ffprobe", "-v", "error", "-show_streams", url}, "probe");
  // Meanwhile a player decodes two seconds: no decoder or timestamp errors expected.
  Child decode = Child::spawn({"ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "2", "-f", "null", "-"}, "decode");
  auto probe_rc = probe.wait(20000);
  ASSERT_TRUE(probe_rc.has_value()) << "ffprobe did not finish";
  const std::string out = Child::slurp(probe.out);
  EXPECT_EQ(*probe_rc, 0) << Child::slurp(probe.err);
  EXPECT_NE(out.find("codec_name=h264"), std::string::npos) << out;
  EXPECT_NE(out.find("width=1280"), std::string::npos) << out;
  EXPECT_NE(out.find("height=720"), std::string::npos) << out;
  EXPECT_NE(out.find("codec_name=aac"), std::string::npos) << out;

  auto decode_rc = decode.wait(20000);
  ASSERT_TRUE(decode_rc.has_value()) << "decoding player did not finish";
  EXPECT_EQ(*decode_rc, 0) << Child::slurp(decode.err);
  EXPECT_EQ(Child::slurp(decode.err), "");

  auto pub_rc = pub.wait(20000);
  ASSERT_TRUE(pub_rc.has_value()) << "publisher did not finish";
  EXPECT_EQ(*pub_rc, 0) << Child::slurp(pub.err);
  EXPECT_TRUE(wait_until([&] { return hub->publishing_count() == 0; }));
  EXPECT_EQ(protocol_errors(), 0u);
}

}  // namespace
}  // namespace castmesh::rtmp
