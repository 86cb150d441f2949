#include "net/http_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"

namespace castmesh::net {
namespace {

namespace asio = boost::asio;
using testing::RawClient;

template <typename Pred>
bool wait_until(Pred p, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Pure helpers

TEST(PercentDecode, DecodesAndRejects) {
  EXPECT_EQ(*percent_decode_path("/a%20b/%2Fc"), "/a b//c");
  EXPECT_EQ(*percent_decode_path("/plain+x"), "/plain+x");
  EXPECT_EQ(percent_decode_path("/bad%zz").code(), Errc::malformed);
  EXPECT_EQ(percent_decode_path("/trunc%2").code(), Errc::malformed);
  EXPECT_EQ(percent_decode_path("/trunc%").code(), Errc::malformed);
  EXPECT_EQ(percent_decode_path("/nul%00").code(), Errc::malformed);
}

TEST(JsonError, EscapesMessage) {
  HttpResponse r = json_error(404, "no \"such\" \\ thing\n\x01");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, "{\"error\":\"no \\\"such\\\" \\\\ thing\\n\\u0001\"}");
}

TEST(HttpRequest, HeaderLookupIsCaseInsensitive) {
  HttpRequest req;
  req.headers = {{"Host", "x"}, {"X-Thing", "1"}, {"x-thing", "2"}};
  EXPECT_EQ(req.header("x-THING"), "1");
  EXPECT_EQ(req.header("host"), "x");
  EXPECT_EQ(req.header("missing"), "");
}

TEST(Router, ExactPrefixSuffixHeadAndMethodNotAllowed) {
  Router r;
  int hit = 0;
  r.add("GET", "/healthz", [&](const HttpRequest&) { hit = 1; return HttpResponse{}; });
  r.add("GET", "/live/", ".m3u8", [&](const HttpRequest&) { hit = 2; return HttpResponse{}; });
  r.add("POST", "/live/", ".m3u8", [&](const HttpRequest&) { hit = 3; return HttpResponse{}; });
  r.add_stream("GET", "/live/", ".flv", [](asio::ip::tcp::socket&, const HttpRequest&) -> asio::awaitable<void> {
    co_return;
  });

  auto m = r.find("GET", "/healthz");
  ASSERT_EQ(m.kind, Router::Match::Kind::handler);
  (*m.handler)(HttpRequest{});
  EXPECT_EQ(hit, 1);
  EXPECT_EQ(m.path_param, "");

  EXPECT_EQ(r.find("GET", "/healthzx").kind, Router::Match::Kind::none);
  EXPECT_EQ(r.find("GET", "/healthz/").kind, Router::Match::Kind::none);

  m = r.find("GET", "/live/app/stream.m3u8");
  ASSERT_EQ(m.kind, Router::Match::Kind::handler);
  EXPECT_EQ(m.path_param, "app/stream");
  (*m.handler)(HttpRequest{});
  EXPECT_EQ(hit, 2);

  m = r.find("POST", "/live/app/stream.m3u8");
  ASSERT_EQ(m.kind, Router::Match::Kind::handler);
  (*m.handler)(HttpRequest{});
  EXPECT_EQ(hit, 3);

  // Empty middle part does not match a prefix/suffix route.
  EXPECT_EQ(r.find("GET", "/live/.m3u8").kind, Router::Match::Kind::none);

  // HEAD maps onto GET for plain handlers only.
  m = r.find("HEAD", "/live/a/b.m3u8");
  EXPECT_EQ(m.kind, Router::Match::Kind::handler);
  m = r.find("HEAD", "/live/a/b.flv");
  EXPECT_EQ(m.kind, Router::Match::Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET");

  m = r.find("GET", "/live/a/b.flv");
  ASSERT_EQ(m.kind, Router::Match::Kind::stream);
  EXPECT_EQ(m.path_param, "a/b");

  m = r.find("DELETE", "/live/a/b.m3u8");
  EXPECT_EQ(m.kind, Router::Match::Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, HEAD, POST");
}

// ------------------------------------------------------------------------------------------
// Server over loopback

class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpConfig cfg = default_config()) {
    router_.add("GET", "/hello", [](const HttpRequest&) {
      HttpResponse r;
      r.body = "hi";
      r.headers.emplace_back("X-Test", "yes");
      return r;
    });
    router_.add("POST", "/echo", [](const HttpRequest& req) {
      HttpResponse r;
      r.body = req.body;
      return r;
    });
    router_.add("GET", "/items/", "", [](const HttpRequest& req) {
      HttpResponse r;
      r.body = req.path_param + "|" + req.query + "|" + req.path + "|" + req.header("x-client");
      return r;
    });
    router_.add("GET", "/blob", [](const HttpRequest&) {
      auto blob = std::make_shared<Bytes>(300000);
      for (size_t i = 0; i < blob->size(); ++i) (*blob)[i] = static_cast<uint8_t>(i * 7);
      HttpResponse r;
      r.content_type = "video/mp2t";
      r.body = "ignored";
      r.shared_body = std::move(blob);
      return r;
    });
    router_.add("GET", "/throw", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
    router_.add_stream("GET", "/stream/", ".flv",
                       [](asio::ip::tcp::socket& s, const HttpRequest& req) -> asio::awaitable<void> {
                         std::string out =
                             "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\nCHUNK-" +
                             req.path_param;
                         co_await asio::async_write(s, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
                       });
    router_.add_stream("GET", "/wait/", "",
                       [this](asio::ip::tcp::socket& s, const HttpRequest&) -> asio::awaitable<void> {
                         std::string head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
                         co_await asio::async_write(s, asio::buffer(head), asio::as_tuple(asio::use_awaitable));
                         waiting_ = true;
                         asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::seconds(30));
                         auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                         if (ec == asio::error::operation_aborted) cancelled_ = true;
                       });
    server_ = std::make_unique<HttpServer>(pool_, cfg, router_, metrics_);
    auto st = server_->listen("127.0.0.1", 0);
    ASSERT_TRUE(st.ok()) << st.error().message();
    ASSERT_NE(server_->port(), 0);
    pool_.run();
  }

  static HttpConfig default_config() {
    HttpConfig cfg;
    cfg.request_timeout_ms = 3000;
    cfg.max_body_bytes = 1024;
    return cfg;
  }

  void TearDown() override {
    if (server_) server_->stop();
    pool_.stop();
    pool_.join();
  }

  uint16_t port() const { return server_->port(); }

  // Members are destroyed in reverse order: the server before the pool (its destructor
  // posts to the pool's contexts), the pool before the router and metrics (sessions still
  // pending in a stopped context are destroyed with it and touch the metrics).
  Router router_;
  Metrics metrics_;
  IoPool pool_{2};
  std::unique_ptr<HttpServer> server_;
  std::atomic<bool> waiting_{false};
  std::atomic<bool> cancelled_{false};
};

TEST_F(HttpServerTest, GetRouteAndMetrics) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hi");
  EXPECT_EQ(r->headers["content-length"], "2");
  EXPECT_EQ(r->headers["content-type"], "text/plain");
  EXPECT_EQ(r->headers["x-test"], "yes");
  EXPECT_EQ(r->headers["server"], "castmesh");
  EXPECT_EQ(metrics_.connections_total[Metrics::idx(Proto::http)].load(), 1u);
  EXPECT_EQ(metrics_.connections[Metrics::idx(Proto::http)].load(), 1);
  EXPECT_GT(metrics_.bytes_in_total[Metrics::idx(Proto::http)].load(), 20u);
  // Counted when the write completes, which may be just after the client saw the bytes.
  EXPECT_TRUE(wait_until([&] { return metrics_.bytes_out_total[Metrics::idx(Proto::http)].load() > 20u; }));
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r1 = c.read_response();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->status, 200);
  ASSERT_TRUE(c.send("GET /items/abc?q=1 HTTP/1.1\r\nHost: x\r\nX-Client: t\r\n\r\n"));
  auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body, "abc|q=1|/items/abc|t");
  EXPECT_EQ(metrics_.connections_total[Metrics::idx(Proto::http)].load(), 1u);
}

TEST_F(HttpServerTest, PipelinedRequestsAnsweredInOrder) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /items/one HTTP/1.1\r\nHost: x\r\n\r\nGET /items/two HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r1 = c.read_response();
  auto r2 = c.read_response();
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->body.substr(0, 4), "one|");
  EXPECT_EQ(r2->body.substr(0, 4), "two|");
}

TEST_F(HttpServerTest, ConnectionCloseAndHttp10CloseAfterResponse) {
  start();
  {
    RawClient c(port());
    ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(c.wait_closed());
  }
  {
    RawClient c(port());
    ASSERT_TRUE(c.send("GET /hello HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hi");
    EXPECT_TRUE(c.wait_closed());
  }
}

TEST_F(HttpServerTest, PercentDecodedPathAndQuerySplit) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /items/a%20b%2Fc?x=%20y HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "a b/c|x=%20y|/items/a b/c|");
}

TEST_F(HttpServerTest, NotFoundAndMethodNotAllowedAreJson) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  EXPECT_EQ(r->body, "{\"error\":\"not found\"}");

  // Same connection stays usable.
  ASSERT_TRUE(c.send("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers["allow"], "GET, HEAD");
  EXPECT_EQ(r->body, "{\"error\":\"method not allowed\"}");
}

TEST_F(HttpServerTest, HeadSendsHeadersWithoutBody) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-length"], "2");
  // If a body had been sent, it would precede this response's status line.
  ASSERT_TRUE(c.send("GET /items/z HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 200);
  EXPECT_EQ(r2->body.substr(0, 2), "z|");
}

TEST_F(HttpServerTest, SharedBodyIsSentInsteadOfBody) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /blob HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "video/mp2t");
  ASSERT_EQ(r->body.size(), 300000u);
  bool same = true;
  for (size_t i = 0; i < r->body.size(); ++i) same = same && static_cast<uint8_t>(r->body[i]) == static_cast<uint8_t>(i * 7);
  EXPECT_TRUE(same);
  ASSERT_TRUE(c.send("HEAD /blob HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers["content-length"], "300000");
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "hi");
}

TEST_F(HttpServerTest, PostBodyWithinLimitIsEchoed) {
  start();
  RawClient c(port());
  std::string body(1000, 'b');
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + body));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, body);
  // Chunked transfer coding within the limit.
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abcde");
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c.send("xyz"));
  r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "xyz");
}

TEST_F(HttpServerTest, OversizeBodyIs413) {
  start();
  {
    RawClient c(port());
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(r->body, "{\"error\":\"request body too large\"}");
    EXPECT_TRUE(c.wait_closed());
  }
  {
    // Chunked: the size is only known while reading.
    RawClient c(port());
    std::string chunk(800, 'c');
    ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" + chunk +
                       "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
}

TEST_F(HttpServerTest, OversizeHeaderIs431) {
  start();
  RawClient c(port());
  std::string big(9 * 1024, 'h');
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, HeaderJustUnderLimitIsAccepted) {
  start();
  RawClient c(port());
  std::string big(7 * 1024, 'h');
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, DotDotAndBadTargetsAre400) {
  start();
  for (const char* target : {"/items/../hello", "/items/%2e%2e/x", "/items/a%2F..%2Fb", "/..", "/items/%zz",
                             "http://example.com/hello", "*"}) {
    RawClient c(port());
    ASSERT_TRUE(c.send(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->status, 400) << target;
    EXPECT_NE(r->body.find("\"error\""), std::string::npos) << target;
  }
  // A segment merely containing dots is fine.
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /items/a..b HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /hello HTTP/1.1\r\nBad Header Line\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(HttpServerTest, HandlerExceptionIs500) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body, "{\"error\":\"internal error\"}");
}

TEST_F(HttpServerTest, StreamHandlerWritesAndCloses) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("GET /stream/app/s.flv HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool timed_out = true;
  std::string all = c.read_all(&timed_out);
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(all, "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\nCHUNK-app/s");
  EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
}

TEST_F(HttpServerTest, IdleConnectionTimesOut) {
  HttpConfig cfg = default_config();
  cfg.request_timeout_ms = 200;
  start(cfg);
  RawClient c(port());
  ASSERT_TRUE(c.connected());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed());
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::milliseconds(2000));
  EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
  EXPECT_EQ(metrics_.connections[Metrics::idx(Proto::http)].load(), 0);
}

TEST_F(HttpServerTest, MaxConnectionsRejectsWith503) {
  HttpConfig cfg = default_config();
  cfg.max_connections = 1;
  start(cfg);
  RawClient first(port());
  ASSERT_TRUE(first.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(first.read_response());
  RawClient second(port());
  auto r = second.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  // The first connection still works.
  ASSERT_TRUE(first.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r1 = first.read_response();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->status, 200);
}

TEST_F(HttpServerTest, StopClosesIdleAndStreamingConnections) {
  start();
  RawClient idle(port());
  ASSERT_TRUE(idle.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle.read_response());

  RawClient streaming(port());
  ASSERT_TRUE(streaming.send("GET /wait/x HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto head = streaming.read_response(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  ASSERT_TRUE(wait_until([&] { return waiting_.load(); }));
  EXPECT_EQ(server_->connections(), 2u);

  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(streaming.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000));
  EXPECT_TRUE(wait_until([&] { return cancelled_.load(); }));
  EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
  EXPECT_EQ(metrics_.connections[Metrics::idx(Proto::http)].load(), 0);

  // No longer accepting.
  RawClient late(port(), 500);
  EXPECT_FALSE(late.connected() && late.send("GET /hello HTTP/1.1\r\n\r\n") && late.read_response());
}

TEST_F(HttpServerTest, StopCutsAnUnfinishedUploadShort) {
  start();
  RawClient c(port());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n0123456789"));
  ASSERT_TRUE(wait_until([&] { return metrics_.bytes_in_total[Metrics::idx(Proto::http)].load() > 0; }));
  auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_TRUE(c.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));  // request_timeout is 3 s
  EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
}

TEST(HttpServerListen, BadAddressIsAnError) {
  Router router;
  Metrics metrics;
  IoPool pool(1);
  HttpServer server(pool, HttpConfig{}, router, metrics);
  auto st = server.listen("not-an-ip", 0);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::io_error);
}

TEST(HttpServerListen, PortInUseIsAnError) {
  Router router;
  Metrics metrics;
  IoPool pool(1);
  HttpServer a(pool, HttpConfig{}, router, metrics);
  ASSERT_TRUE(a.listen("127.0.0.1", 0).ok());
  HttpServer b(pool, HttpConfig{}, router, metrics);
  auto st = b.listen("127.0.0.1", a.port());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Errc::io_error);
}

}  // namespace
}  // namespace castmesh::net
