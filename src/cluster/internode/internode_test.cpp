#include <gtest/gtest.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.hpp"
#include "cluster/internode/internode_client.hpp"
#include "cluster/internode/internode_server.hpp"
#include "cluster/internode/signing.hpp"
#include "net/http_test_client.hpp"
#include "net/io_pool.hpp"

namespace castmesh::cluster::internode {
namespace {

using namespace std::chrono_literals;
using net::testing::RawClient;

const std::string kSecret = "cluster-secret-for-tests";

template <typename Pred>
bool wait_until(Pred p, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

struct InternodeEndToEnd : ::testing::Test {
  std::atomic<int64_t> clock_offset_ms{0};
  Metrics metrics;
  net::IoPool pool{2};
  std::unique_ptr<InternodeServer> server;
  std::string addr;

  void SetUp() override {
    server = std::make_unique<InternodeServer>(pool, metrics, kSecret, net::HttpConfig{},
                                               [this] { return wall_ms() + clock_offset_ms.load(); });
    server->add("POST", "/internal/v1/echo", [](const net::HttpRequest& req, const std::string& sender) {
      net::HttpResponse r;
      r.content_type = "application/json";
      r.body = "{\"sender\":\"" + sender + "\",\"target\":\"" + req.target + "\",\"body\":" + req.body + "}";
      return r;
    });
    server->add("GET", "/internal/v1/node", [](const net::HttpRequest& req, const std::string& sender) {
      net::HttpResponse r;
      r.body = "node for " + sender + " q=" + req.query;
      return r;
    });
    server->add("GET", "/internal/v1/fail", [](const net::HttpRequest&, const std::string&) {
      return net::json_error(503, "not ready");
    });
    ASSERT_TRUE(server->listen("127.0.0.1", 0).ok());
    pool.run();
    addr = "127.0.0.1:" + std::to_string(server->port());
  }

  void TearDown() override {
    server->stop();
    wait_until([&] { return server->connections() == 0; }, 3000ms);
    pool.stop();
    pool.join();
    server.reset();
  }

  // A complete signed raw request, as bytes on the wire.
  std::string raw_request(const std::string& secret, const std::string& method, const std::string& target,
                          const std::string& body, int64_t ts) {
    std::string s = method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n";
    for (const auto& [k, v] : sign_request(secret, "raw-node", method, target, body, ts)) s += k + ": " + v + "\r\n";
    return s + "\r\n" + body;
  }
};

TEST_F(InternodeEndToEnd, SignedRequestReachesHandlerWithSenderNode) {
  InternodeClient client(kSecret, "node-a");
  auto r = client.request(addr, "POST", "/internal/v1/echo", "{\"x\":1}", 2000ms);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, "{\"sender\":\"node-a\",\"target\":\"/internal/v1/echo\",\"body\":{\"x\":1}}");

  auto g = client.request(addr, "GET", "/internal/v1/node?full=1&a=b", "", 2000ms);
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(*g, "node for node-a q=full=1&a=b");
  EXPECT_EQ(server->verifier().accepted_total(), 2u);
  for (size_t i = 0; i < static_cast<size_t>(Refusal::count); ++i) {
    EXPECT_EQ(server->verifier().refused_total(static_cast<Refusal>(i)), 0u);
  }
}

TEST_F(InternodeEndToEnd, WrongSecretIsForbiddenAndCounted) {
  InternodeClient forger("not-the-cluster-secret", "node-x");
  auto r = forger.request(addr, "POST", "/internal/v1/echo", "{}", 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::forbidden);
  EXPECT_NE(r.error().detail.find("request signature invalid"), std::string::npos) << r.error().detail;
  EXPECT_EQ(server->verifier().refused_total(Refusal::bad_signature), 1u);
  EXPECT_EQ(server->verifier().accepted_total(), 0u);
}

TEST_F(InternodeEndToEnd, ByteForByteReplayIsRefusedAsReplay) {
  const std::string wire = raw_request(kSecret, "POST", "/internal/v1/echo", "{\"n\":7}", wall_ms());
  {
    RawClient c(server->port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(wire));
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "{\"sender\":\"raw-node\",\"target\":\"/internal/v1/echo\",\"body\":{\"n\":7}}");
  }
  RawClient c(server->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(wire));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->body, "{\"error\":\"request nonce replayed\"}");
  EXPECT_EQ(res->headers["content-type"], "application/json");
  EXPECT_EQ(server->verifier().refused_total(Refusal::replay), 1u);
  EXPECT_EQ(server->verifier().accepted_total(), 1u);
}

TEST_F(InternodeEndToEnd, UnsignedAndStaleRequestsAreRefused) {
  RawClient c(server->port());
  ASSERT_TRUE(c.send("GET /internal/v1/node HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto res = c.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->body, "{\"error\":\"request signature headers missing or malformed\"}");
  EXPECT_EQ(server->verifier().refused_total(Refusal::missing), 1u);

  // The receiver's clock is 31 s ahead: the client's timestamp is outside the window.
  clock_offset_ms = 31000;
  InternodeClient client(kSecret, "node-a");
  auto r = client.request(addr, "GET", "/internal/v1/node", "", 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::forbidden);
  EXPECT_NE(r.error().detail.find("request signature expired"), std::string::npos) << r.error().detail;
  EXPECT_EQ(server->verifier().refused_total(Refusal::expired), 1u);
}

TEST_F(InternodeEndToEnd, NonSuccessStatusesAreIoErrorsWithTheStatus) {
  InternodeClient client(kSecret, "node-a");
  auto r = client.request(addr, "GET", "/internal/v1/fail", "", 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::io_error);
  EXPECT_NE(r.error().detail.find("HTTP 503"), std::string::npos) << r.error().detail;
  EXPECT_NE(r.error().detail.find("not ready"), std::string::npos) << r.error().detail;

  auto nf = client.request(addr, "GET", "/internal/v1/nope", "", 2000ms);
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.code(), Errc::io_error);
  EXPECT_NE(nf.error().detail.find("HTTP 404"), std::string::npos) << nf.error().detail;
}

TEST_F(InternodeEndToEnd, ConcurrentCallersShareOneClient) {
  InternodeClient client(kSecret, "node-a");
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string body = "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + "}";
        auto r = client.request(addr, "POST", "/internal/v1/echo", body, 3000ms);
        if (r.ok() && r->find(body) != std::string::npos) ok.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_EQ(server->verifier().accepted_total(), 100u);
}

// A listening socket that never accepts: connect succeeds (kernel backlog), no response comes.
struct SilentListener {
  int fd = -1;
  uint16_t port = 0;
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 8);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd); }
};

TEST(InternodeClient, TimeoutAndRefusedConnectionAreUnavailable) {
  InternodeClient client(kSecret, "node-a");
  SilentListener silent;
  ASSERT_NE(silent.port, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto r = client.request("127.0.0.1:" + std::to_string(silent.port), "GET", "/internal/v1/node", "", 300ms);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::unavailable);
  EXPECT_NE(r.error().detail.find("timeout"), std::string::npos) << r.error().detail;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2000ms);

  // A port nobody listens on: take one from a closed listener.
  uint16_t closed_port;
  {
    SilentListener tmp;
    closed_port = tmp.port;
  }
  auto c = client.request("127.0.0.1:" + std::to_string(closed_port), "GET", "/x", "", 1000ms);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), Errc::unavailable);
}

TEST(InternodeClient, SplitsHostPort) {
  auto a = split_host_port("10.0.0.5:8081");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "10.0.0.5");
  EXPECT_EQ(a->second, 8081);
  auto b = split_host_port("[::1]:9000");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "::1");
  EXPECT_EQ(b->second, 9000);
  auto h = split_host_port("node-b.castmesh.svc:8081");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->first, "node-b.castmesh.svc");
  EXPECT_EQ(split_host_port("10.0.0.5").code(), Errc::malformed);
  EXPECT_EQ(split_host_port(":80").code(), Errc::malformed);
  EXPECT_EQ(split_host_port("h:0").code(), Errc::malformed);
  EXPECT_EQ(split_host_port("h:65536").code(), Errc::malformed);
  EXPECT_EQ(split_host_port("h:8a").code(), Errc::malformed);
  EXPECT_EQ(split_host_port("::1:80").code(), Errc::malformed);
  InternodeClient client(kSecret, "n");
  EXPECT_EQ(client.request("nohostport", "GET", "/", "", 100ms).code(), Errc::malformed);
}

}  // namespace
}  // namespace castmesh::cluster::internode
