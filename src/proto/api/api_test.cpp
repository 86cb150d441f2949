#include "proto/api/api.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"

namespace castmesh::api {
namespace {

namespace json = boost::json;
using net::testing::RawClient;

live::StreamStats sample_stats() {
  live::StreamStats s;
  s.key = {"live", "cam1"};
  s.publishing = true;
  s.publisher_protocol = "rtmp";
  s.video_codec = "H264";
  s.audio_codec = "AAC";
  s.width = 1280;
  s.height = 720;
  s.fps = 29.97002997;
  s.bitrate_kbps = 2500;
  s.audio_sample_rate = 44100;
  s.audio_channels = 2;
  s.uptime_ms = 12345;
  s.bytes_in = 9876543210ull;
  s.subscribers[Metrics::idx(Proto::rtmp)] = 1;
  s.subscribers[Metrics::idx(Proto::httpflv)] = 2;
  s.subscribers[Metrics::idx(Proto::hls)] = 3;
  s.dropped_gops = 4;
  return s;
}

double num(const json::value& v) { return v.to_number<double>(); }

void expect_stream_schema(const json::object& o) {
  ASSERT_TRUE(o.contains("key") && o.at("key").is_string());
  ASSERT_TRUE(o.contains("app") && o.at("app").is_string());
  ASSERT_TRUE(o.contains("stream") && o.at("stream").is_string());
  ASSERT_TRUE(o.contains("publishing") && o.at("publishing").is_bool());
  ASSERT_TRUE(o.contains("video") && o.at("video").is_object());
  const auto& v = o.at("video").as_object();
  EXPECT_TRUE(v.at("codec").is_string());
  EXPECT_TRUE(v.at("width").is_number());
  EXPECT_TRUE(v.at("height").is_number());
  EXPECT_TRUE(v.at("fps").is_number());
  ASSERT_TRUE(o.contains("audio") && o.at("audio").is_object());
  const auto& a = o.at("audio").as_object();
  EXPECT_TRUE(a.at("codec").is_string());
  EXPECT_TRUE(a.at("sample_rate").is_number());
  EXPECT_TRUE(a.at("channels").is_number());
  EXPECT_TRUE(o.at("bitrate_kbps").is_number());
  ASSERT_TRUE(o.at("subscribers").is_object());
  const auto& s = o.at("subscribers").as_object();
  for (const char* k : {"rtmp", "httpflv", "hls", "total"}) EXPECT_TRUE(s.at(k).is_number()) << k;
  EXPECT_TRUE(o.at("uptime_ms").is_number());
  EXPECT_TRUE(o.at("bytes_in").is_number());
  EXPECT_TRUE(o.at("dropped_gops").is_number());
}

TEST(ApiJson, StreamObjectHasAllFieldsWithValues) {
  json::value v = json::parse(stream_json(sample_stats()));
  ASSERT_TRUE(v.is_object());
  const auto& o = v.as_object();
  expect_stream_schema(o);
  EXPECT_EQ(o.at("key").as_string(), "live/cam1");
  EXPECT_EQ(o.at("app").as_string(), "live");
  EXPECT_EQ(o.at("stream").as_string(), "cam1");
  EXPECT_TRUE(o.at("publishing").as_bool());
  EXPECT_EQ(o.at("video").at("codec").as_string(), "H264");
  EXPECT_EQ(num(o.at("video").at("width")), 1280);
  EXPECT_EQ(num(o.at("video").at("height")), 720);
  EXPECT_DOUBLE_EQ(num(o.at("video").at("fps")), 29.97);
  EXPECT_EQ(o.at("audio").at("codec").as_string(), "AAC");
  EXPECT_EQ(num(o.at("audio").at("sample_rate")), 44100);
  EXPECT_EQ(num(o.at("audio").at("channels")), 2);
  EXPECT_EQ(num(o.at("bitrate_kbps")), 2500);
  EXPECT_EQ(num(o.at("subscribers").at("rtmp")), 1);
  EXPECT_EQ(num(o.at("subscribers").at("httpflv")), 2);
  EXPECT_EQ(num(o.at("subscribers").at("hls")), 3);
  EXPECT_EQ(num(o.at("subscribers").at("total")), 6);
  EXPECT_EQ(num(o.at("uptime_ms")), 12345);
  EXPECT_EQ(o.at("bytes_in").to_number<uint64_t>(), 9876543210ull);
  EXPECT_EQ(num(o.at("dropped_gops")), 4);
}

TEST(ApiJson, WholeFpsIsAnIntegerAndMissingCodecsAreEmpty) {
  live::StreamStats s;
  s.key = {"a", "b"};
  s.fps = 30.0;
  std::string text = stream_json(s);
  EXPECT_NE(text.find("\"fps\":30"), std::string::npos) << text;
  json::value v = json::parse(text);
  expect_stream_schema(v.as_object());
  EXPECT_FALSE(v.at("publishing").as_bool());
  EXPECT_EQ(v.at("video").at("codec").as_string(), "");
  EXPECT_EQ(v.at("audio").at("codec").as_string(), "");
  EXPECT_EQ(num(v.at("subscribers").at("total")), 0);
}

TEST(ApiJson, StreamsListWrapsObjectsInOrder) {
  EXPECT_EQ(streams_json({}), "{\"streams\":[]}");
  auto a = sample_stats();
  auto b = sample_stats();
  b.key = {"live", "cam2"};
  json::value v = json::parse(streams_json({a, b}));
  ASSERT_TRUE(v.at("streams").is_array());
  const auto& arr = v.at("streams").as_array();
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(arr[0].at("key").as_string(), "live/cam1");
  EXPECT_EQ(arr[1].at("key").as_string(), "live/cam2");
  expect_stream_schema(arr[1].as_object());
}

// Parses Prometheus text format 0.0.4 into "name{labels}" -> value, checking each line's shape
// and that every sample's family was announced by HELP and TYPE lines first.
std::map<std::string, double> parse_prometheus(const std::string& text, std::map<std::string, std::string>* types) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$)");
  std::map<std::string, double> out;
  std::set<std::string> helped;
  std::istringstream in(text);
  std::string line;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      helped.insert(m[1]);
    } else if (std::regex_match(line, m, kType)) {
      EXPECT_TRUE(helped.count(m[1])) << "TYPE before HELP: " << line;
      EXPECT_FALSE(types->count(m[1])) << "family twice: " << line;
      (*types)[m[1]] = m[2];
    } else if (std::regex_match(line, m, kSample)) {
      EXPECT_TRUE(types->count(m[1])) << "sample without TYPE: " << line;
      std::string key = std::string(m[1]) + std::string(m[2]);
      EXPECT_FALSE(out.count(key)) << "duplicate series: " << line;
      out[key] = std::stod(m[4]);
    } else {
      ADD_FAILURE() << "bad exposition line: '" << line << "'";
    }
  }
  return out;
}

TEST(ApiPrometheus, TextFormatParsesBackWithValues) {
  Metrics m;
  m.connections[Metrics::idx(Proto::rtmp)] = 3;
  m.connections_total[Metrics::idx(Proto::httpflv)] = 7;
  m.bytes_in_total[Metrics::idx(Proto::rtmp)] = 1000;
  m.bytes_out_total[Metrics::idx(Proto::hls)] = 2000;
  m.streams = 2;
  m.publishes_total = 5;
  m.publish_rejected_total = 1;
  m.dropped_gops_total = 9;
  m.slow_subscribers_closed_total = 4;
  m.protocol_errors_total[Metrics::idx(Proto::http)] = 6;
  m.hls_segments_total = 42;

  std::map<std::string, std::string> types;
  auto v = parse_prometheus(prometheus_text(m, 123456789), &types);

  EXPECT_EQ(v["castmesh_connections{protocol=\"rtmp\"}"], 3);
  EXPECT_EQ(v["castmesh_connections{protocol=\"http\"}"], 0);
  EXPECT_EQ(v["castmesh_connections_total{protocol=\"httpflv\"}"], 7);
  EXPECT_EQ(v["castmesh_bytes_received_total{protocol=\"rtmp\"}"], 1000);
  EXPECT_EQ(v["castmesh_bytes_sent_total{protocol=\"hls\"}"], 2000);
  EXPECT_EQ(v["castmesh_streams"], 2);
  EXPECT_EQ(v["castmesh_publishes_total"], 5);
  EXPECT_EQ(v["castmesh_publish_rejected_total"], 1);
  EXPECT_EQ(v["castmesh_dropped_gops_total"], 9);
  EXPECT_EQ(v["castmesh_slow_subscribers_closed_total"], 4);
  EXPECT_EQ(v["castmesh_protocol_errors_total{protocol=\"http\"}"], 6);
  EXPECT_EQ(v["castmesh_hls_segments_total"], 42);
  EXPECT_EQ(v["process_resident_memory_bytes"], 123456789);

  // Every per-protocol family has one series per protocol.
  for (const char* fam : {"castmesh_connections", "castmesh_connections_total", "castmesh_bytes_received_total",
                          "castmesh_bytes_sent_total", "castmesh_protocol_errors_total"}) {
    for (const char* p : {"rtmp", "httpflv", "hls", "http"}) {
      EXPECT_TRUE(v.count(std::string(fam) + "{protocol=\"" + p + "\"}")) << fam << " " << p;
    }
  }
  EXPECT_EQ(types["castmesh_connections"], "gauge");
  EXPECT_EQ(types["castmesh_streams"], "gauge");
  EXPECT_EQ(types["process_resident_memory_bytes"], "gauge");
  for (const auto& [name, type] : types) {
    if (name.ends_with("_total")) {
      EXPECT_EQ(type, "counter") << name;
    }
  }
  EXPECT_EQ(types.size(), 12u);
}

TEST(ApiPrometheus, ResidentMemoryIsReadFromProc) {
  uint64_t rss = resident_memory_bytes();
  EXPECT_GT(rss, 1024u * 1024u);           // a gtest binary uses more than 1 MiB
  EXPECT_LT(rss, 64ull * 1024 * 1024 * 1024);
}

// ------------------------------------------------------------------------------------------
// Over HTTP with a real hub.

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    register_api(router_, hub_, metrics_, [this] { return ready_.load(); });
    server_ = std::make_unique<net::HttpServer>(pool_, net::HttpConfig{}, router_, metrics_);
    ASSERT_TRUE(server_->listen("127.0.0.1", 0).ok());
    pool_.run();
  }
  void TearDown() override {
    server_->stop();
    pool_.stop();
    pool_.join();
  }

  std::optional<net::testing::RawResponse> get(const std::string& target, const char* method = "GET") {
    RawClient c(server_->port());
    if (!c.send(std::string(method) + " " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) {
      return std::nullopt;
    }
    return c.read_response(std::string(method) == "HEAD");
  }

  // Destroyed in reverse order: server, pool, then what sessions may still reference.
  Metrics metrics_;
  live::StreamHub hub_{live::LiveConfig{}, metrics_};
  net::Router router_;
  net::IoPool pool_{2};
  std::unique_ptr<net::HttpServer> server_;
  std::atomic<bool> ready_{false};
};

TEST_F(ApiServerTest, StreamsListAndLookup) {
  auto r = get("/api/v1/streams");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  EXPECT_EQ(r->body, "{\"streams\":[]}");

  auto pub = hub_.publish({"live", "cam1"}, Proto::rtmp, "127.0.0.1:5000");
  ASSERT_TRUE(pub.ok());

  r = get("/api/v1/streams");
  ASSERT_TRUE(r);
  json::value v = json::parse(r->body);
  ASSERT_EQ(v.at("streams").as_array().size(), 1u);
  const auto& s = v.at("streams").as_array()[0].as_object();
  expect_stream_schema(s);
  EXPECT_EQ(s.at("key").as_string(), "live/cam1");
  EXPECT_TRUE(s.at("publishing").as_bool());

  r = get("/api/v1/streams/live/cam1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  v = json::parse(r->body);
  expect_stream_schema(v.as_object());
  EXPECT_EQ(v.at("stream").as_string(), "cam1");

  r = get("/api/v1/streams/live/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body).at("error").as_string(), "stream not found");

  r = get("/api/v1/streams/live");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  r = get("/api/v1/streams/live/bad%20name");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(json::parse(r->body).at("error").is_string());

  r = get("/api/v1/streams", "POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
}

TEST_F(ApiServerTest, HealthAndReadiness) {
  auto r = get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body).at("status").as_string(), "ok");

  r = get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  ready_ = true;
  r = get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiServerTest, MetricsEndpointServesExposition) {
  auto pub = hub_.publish({"live", "m"}, Proto::rtmp, "127.0.0.1:5000");
  ASSERT_TRUE(pub.ok());
  auto r = get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], std::string(kPrometheusContentType));
  std::map<std::string, std::string> types;
  auto v = parse_prometheus(r->body, &types);
  EXPECT_EQ(v["castmesh_streams"], 1);
  EXPECT_EQ(v["castmesh_publishes_total"], 1);
  EXPECT_GE(v["castmesh_connections{protocol=\"http\"}"], 1);  // this request's connection
  EXPECT_GT(v["process_resident_memory_bytes"], 0);

  auto h = get("/metrics", "HEAD");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_NE(h->headers["content-length"], "0");
}

}  // namespace
}  // namespace castmesh::api
