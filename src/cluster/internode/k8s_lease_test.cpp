#include "cluster/internode/k8s_lease.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "base/metrics.hpp"
#include "net/http_server.hpp"
#include "net/io_pool.hpp"

namespace castmesh::cluster::internode {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr int64_t kT0 = 1700000000123456;  // 2023-11-14T22:13:20.123456Z

// ------------------------------------------------------------------------------------------
// Pure parts

TEST(K8sMicroTime, FormatsUtcWithSixFractionDigits) {
  EXPECT_EQ(format_micro_time(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_micro_time(kT0), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(format_micro_time(951782400000001), "2000-02-29T00:00:00.000001Z");
}

TEST(K8sMicroTime, ParsesRfc3339VariantsAndRejectsGarbage) {
  EXPECT_EQ(*parse_micro_time("2023-11-14T22:13:20.123456Z"), kT0);
  EXPECT_EQ(*parse_micro_time("2023-11-14T22:13:20Z"), 1700000000000000);
  EXPECT_EQ(*parse_micro_time("2023-11-14T22:13:20.5Z"), 1700000000500000);
  EXPECT_EQ(*parse_micro_time("2023-11-14T22:13:20.123456789Z"), kT0);  // nanoseconds truncated
  EXPECT_EQ(*parse_micro_time("2023-11-14T23:13:20.123456+01:00"), kT0);
  EXPECT_EQ(*parse_micro_time("2023-11-14T21:43:20.123456-00:30"), kT0);
  EXPECT_EQ(*parse_micro_time(format_micro_time(951782400000001)), 951782400000001);
  for (const char* bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z", "2023-13-14T22:13:20Z",
                          "2023-11-14T22:13:20Zx", "2023-11-14 22:13:20Z", "2023-11-14T22:13:20+0100",
                          "20x3-11-14T22:13:20Z"}) {
    EXPECT_EQ(parse_micro_time(bad).code(), Errc::malformed) << bad;
  }
}

// A Lease as the API server returns it (fields in its order, extra metadata).
constexpr const char* kLeaseJson = R"({
  "apiVersion": "coordination.k8s.io/v1",
  "kind": "Lease",
  "metadata": {
    "creationTimestamp": "2023-11-14T20:00:00Z",
    "name": "castmesh-leader",
    "namespace": "default",
    "resourceVersion": "48213",
    "uid": "5b0a3b58-0c6c-4d0f-9a57-0d7a6a6c3d2e"
  },
  "spec": {
    "acquireTime": "2023-11-14T22:10:00.000000Z",
    "holderIdentity": "castmesh-1",
    "leaseDurationSeconds": 15,
    "leaseTransitions": 4,
    "renewTime": "2023-11-14T22:13:20.123456Z"
  }
})";

TEST(K8sLeaseJson, ParsesAServerLease) {
  auto r = parse_lease(kLeaseJson);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->resource_version, "48213");
  EXPECT_EQ(r->holder, "castmesh-1");
  EXPECT_EQ(r->duration_secs, 15);
  EXPECT_EQ(r->transitions, 4u);
  ASSERT_TRUE(r->renew_us);
  EXPECT_EQ(*r->renew_us, kT0);
  ASSERT_TRUE(r->acquire_us);
  EXPECT_EQ(*r->acquire_us, 1700000000000000 - 200000000);
}

TEST(K8sLeaseJson, EmptySpecAndErrors) {
  auto r = parse_lease(R"({"metadata":{"resourceVersion":"7","name":"x"},"spec":{}})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->holder, "");
  EXPECT_EQ(r->transitions, 0u);
  EXPECT_FALSE(r->renew_us);
  auto no_spec = parse_lease(R"({"metadata":{"resourceVersion":"7"}})");
  ASSERT_TRUE(no_spec.ok());
  EXPECT_EQ(parse_lease("not json").code(), Errc::malformed);
  EXPECT_EQ(parse_lease("[]").code(), Errc::malformed);
  EXPECT_EQ(parse_lease(R"({"spec":{}})").code(), Errc::malformed);  // no resourceVersion
  EXPECT_EQ(parse_lease(R"({"metadata":{"resourceVersion":"1"},"spec":{"holderIdentity":5}})").code(), Errc::malformed);
  EXPECT_EQ(parse_lease(R"({"metadata":{"resourceVersion":"1"},"spec":{"leaseTransitions":-1}})").code(),
            Errc::malformed);
  EXPECT_EQ(parse_lease(R"({"metadata":{"resourceVersion":"1"},"spec":{"renewTime":"yesterday"}})").code(),
            Errc::malformed);
}

TEST(K8sLeaseJson, BuildsTheWriteBody) {
  const std::string put = build_lease_body("default", "castmesh-leader", "48213", "castmesh-2", 15,
                                           kT0 - 1000000, kT0, 5);
  EXPECT_EQ(put,
            R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"castmesh-leader",)"
            R"("namespace":"default","resourceVersion":"48213"},"spec":{"holderIdentity":"castmesh-2",)"
            R"("leaseDurationSeconds":15,"acquireTime":"2023-11-14T22:13:19.123456Z",)"
            R"("renewTime":"2023-11-14T22:13:20.123456Z","leaseTransitions":5}})");
  auto back = parse_lease(put);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->holder, "castmesh-2");
  EXPECT_EQ(back->transitions, 5u);
  EXPECT_EQ(*back->renew_us, kT0);
  // POST: no resourceVersion.
  const std::string post = build_lease_body("ns1", "l", "", "a\"b", 1, 0, 0, 1);
  auto v = json::parse(post);
  EXPECT_EQ(v.at("metadata").as_object().if_contains("resourceVersion"), nullptr);
  EXPECT_EQ(v.at("spec").at("holderIdentity").as_string(), "a\"b");
}

TEST(K8sLeaseDecision, AcquireRenewTakeOverOrWait) {
  EXPECT_EQ(decide_lease_action(std::nullopt, "me", kT0), LeaseAction::create);
  LeaseRecord rec;
  rec.resource_version = "1";
  rec.holder = "other";
  rec.duration_secs = 15;
  rec.renew_us = kT0;
  rec.transitions = 3;
  EXPECT_EQ(decide_lease_action(rec, "me", kT0 + 1000000), LeaseAction::wait);
  EXPECT_EQ(decide_lease_action(rec, "me", kT0 + 15000000), LeaseAction::wait);  // exactly at the end
  EXPECT_EQ(decide_lease_action(rec, "me", kT0 + 15000001), LeaseAction::take_over);
  EXPECT_EQ(decide_lease_action(rec, "other", kT0 + 1), LeaseAction::renew);
  EXPECT_EQ(decide_lease_action(rec, "other", kT0 + 60000000), LeaseAction::renew);  // ours even if stale
  auto released = rec;
  released.holder = "";
  EXPECT_EQ(decide_lease_action(released, "me", kT0), LeaseAction::take_over);
  auto acquire_only = rec;
  acquire_only.renew_us.reset();
  acquire_only.acquire_us = kT0;
  EXPECT_EQ(decide_lease_action(acquire_only, "me", kT0 + 1000000), LeaseAction::wait);
  auto no_time = rec;
  no_time.renew_us.reset();
  EXPECT_EQ(decide_lease_action(no_time, "me", kT0), LeaseAction::take_over);
  auto no_duration = rec;
  no_duration.duration_secs = 0;
  EXPECT_EQ(decide_lease_action(no_duration, "me", kT0), LeaseAction::take_over);
}

// ------------------------------------------------------------------------------------------
// Election flow over plain HTTP against an in-process fake of the Lease endpoints (same
// semantics as the API server for these calls: 404 when absent, POST 409 when present, PUT
// 409 when metadata.resourceVersion is not the current one, resourceVersion changes on write).

class FakeLeaseApi {
 public:
  FakeLeaseApi() : pool_(1) {
    router_.add("GET", "/apis/coordination.k8s.io/v1/namespaces/", "", [this](const net::HttpRequest& r) { return handle(r); });
    router_.add("PUT", "/apis/coordination.k8s.io/v1/namespaces/", "", [this](const net::HttpRequest& r) { return handle(r); });
    router_.add("POST", "/apis/coordination.k8s.io/v1/namespaces/", "", [this](const net::HttpRequest& r) { return handle(r); });
    server_ = std::make_unique<net::HttpServer>(pool_, net::HttpConfig{}, router_, metrics_);
    EXPECT_TRUE(server_->listen("127.0.0.1", 0).ok());
    pool_.run();
  }
  ~FakeLeaseApi() {
    server_->stop();
    for (int i = 0; i < 300 && server_->connections() > 0; ++i) std::this_thread::sleep_for(10ms);
    pool_.stop();
    pool_.join();
    server_.reset();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::mutex mu;
  std::optional<json::object> lease;  // stored object, resourceVersion included
  uint64_t rv = 100;
  bool conflict_next_put = false;     // a concurrent writer changes the Lease before the next PUT
  unsigned forced_status = 0;         // when set, every request gets this status
  std::string last_authorization;
  std::vector<std::string> calls;     // "GET path" ...

 private:
  net::HttpResponse reply(unsigned status, std::string body) {
    net::HttpResponse r;
    r.status = status;
    r.content_type = "application/json";
    r.body = std::move(body);
    return r;
  }
  net::HttpResponse handle(const net::HttpRequest& req) {
    std::lock_guard lk(mu);
    calls.push_back(req.method + " " + req.path);
    last_authorization = req.header("Authorization");
    if (forced_status) return reply(forced_status, R"({"kind":"Status"})");
    const std::string item = "default/leases/castmesh-leader";
    const std::string collection = "default/leases";
    if (req.method == "GET" && req.path_param == item) {
      if (!lease) return reply(404, R"({"kind":"Status","reason":"NotFound","code":404})");
      return reply(200, json::serialize(*lease));
    }
    if (req.method == "POST" && req.path_param == collection) {
      if (lease) return reply(409, R"({"kind":"Status","reason":"AlreadyExists","code":409})");
      auto v = json::parse(req.body).as_object();
      v["metadata"].as_object()["resourceVersion"] = std::to_string(++rv);
      lease = v;
      return reply(201, json::serialize(v));
    }
    if (req.method == "PUT" && req.path_param == item) {
      if (!lease) return reply(404, R"({"kind":"Status","code":404})");
      if (conflict_next_put) {
        conflict_next_put = false;
        (*lease)["metadata"].as_object()["resourceVersion"] = std::to_string(++rv);
      }
      auto v = json::parse(req.body).as_object();
      const auto* sent = v["metadata"].as_object().if_contains("resourceVersion");
      if (!sent || *sent != (*lease)["metadata"].as_object()["resourceVersion"]) {
        return reply(409, R"({"kind":"Status","reason":"Conflict","code":409})");
      }
      v["metadata"].as_object()["resourceVersion"] = std::to_string(++rv);
      lease = v;
      return reply(200, json::serialize(v));
    }
    return reply(404, R"({"kind":"Status","code":404})");
  }

  Metrics metrics_;
  net::IoPool pool_;
  net::Router router_;
  std::unique_ptr<net::HttpServer> server_;
};

struct K8sLeaseFlow : ::testing::Test {
  FakeLeaseApi api;
  std::atomic<int64_t> wall_a{kT0}, wall_b{kT0};

  K8sLeaseConfig config(const std::string& id, std::atomic<int64_t>* wall, std::chrono::milliseconds lease = 3000ms) {
    K8sLeaseConfig c;
    c.api_url = api.url();
    c.ns = "default";
    c.identity = id;
    c.lease = lease;
    c.token_path = "/nonexistent/token";
    c.timeout = 2000ms;
    c.wall_us = [wall] { return wall->load(); };
    return c;
  }
  std::string stored_holder() {
    std::lock_guard lk(api.mu);
    return api.lease ? std::string(api.lease->at("spec").at("holderIdentity").as_string()) : "<none>";
  }
  int64_t stored_transitions() {
    std::lock_guard lk(api.mu);
    return api.lease ? api.lease->at("spec").at("leaseTransitions").to_number<int64_t>() : -1;
  }
};

TEST_F(K8sLeaseFlow, CreateRenewTakeOverAfterExpiryAndFencing) {
  K8sLeaseElector a(config("castmesh-0", &wall_a));
  K8sLeaseElector b(config("castmesh-1", &wall_b));
  EXPECT_EQ(a.lease_path(), "/apis/coordination.k8s.io/v1/namespaces/default/leases/castmesh-leader");

  ASSERT_TRUE(a.step().ok());
  EXPECT_TRUE(a.is_leader());
  EXPECT_EQ(a.status().epoch, 1u);
  EXPECT_EQ(stored_holder(), "castmesh-0");
  EXPECT_EQ(stored_transitions(), 1);

  ASSERT_TRUE(b.step().ok());
  EXPECT_FALSE(b.is_leader());
  auto sb = b.status();
  EXPECT_EQ(sb.epoch, 0u);
  EXPECT_EQ(sb.leader_node_id, "castmesh-0");
  EXPECT_EQ(sb.leader_epoch, 1u);
  EXPECT_EQ(*b.fenced_check(), false);

  // Renew: same term, new renewTime.
  wall_a = kT0 + 1000000;
  ASSERT_TRUE(a.step().ok());
  EXPECT_TRUE(a.is_leader());
  EXPECT_EQ(a.status().epoch, 1u);
  EXPECT_EQ(stored_transitions(), 1);
  EXPECT_EQ(*a.fenced_check(), true);
  {
    std::lock_guard lk(api.mu);
    EXPECT_EQ(api.lease->at("spec").at("renewTime").as_string(), "2023-11-14T22:13:21.123456Z");
    EXPECT_EQ(api.lease->at("spec").at("leaseDurationSeconds").to_number<int64_t>(), 3);
  }

  // B's clock passes renewTime + 3 s: B takes over with the next term.
  wall_b = kT0 + 1000000 + 3000001;
  ASSERT_TRUE(b.step().ok());
  EXPECT_TRUE(b.is_leader());
  EXPECT_EQ(b.status().epoch, 2u);
  EXPECT_EQ(stored_holder(), "castmesh-1");
  EXPECT_EQ(stored_transitions(), 2);

  // A still believes it leads (its local lease is valid) until the fenced check says no.
  auto fenced = a.fenced_check();
  ASSERT_TRUE(fenced.ok());
  EXPECT_FALSE(*fenced);
  EXPECT_FALSE(a.is_leader());
  auto sa = a.status();
  EXPECT_EQ(sa.leader_node_id, "castmesh-1");
  EXPECT_EQ(sa.leader_epoch, 2u);
  ASSERT_TRUE(a.step().ok());  // wait: B's lease is fresh by A's clock
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(stored_holder(), "castmesh-1");
}

TEST_F(K8sLeaseFlow, ConflictOnWriteMeansAnotherNodeWon) {
  K8sLeaseElector a(config("castmesh-0", &wall_a));
  ASSERT_TRUE(a.step().ok());
  ASSERT_TRUE(a.is_leader());
  {
    std::lock_guard lk(api.mu);
    api.conflict_next_put = true;
  }
  ASSERT_TRUE(a.step().ok());  // renew PUT -> 409
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(a.status().epoch, 0u);
  std::lock_guard lk(api.mu);
  ASSERT_GE(api.calls.size(), 2u);
  EXPECT_EQ(api.calls.back(), "PUT /apis/coordination.k8s.io/v1/namespaces/default/leases/castmesh-leader");
}

TEST_F(K8sLeaseFlow, ResignReleasesSoAnotherNodeTakesOverAtOnce) {
  K8sLeaseElector a(config("castmesh-0", &wall_a));
  K8sLeaseElector b(config("castmesh-1", &wall_b));
  ASSERT_TRUE(a.step().ok());
  ASSERT_TRUE(b.step().ok());
  EXPECT_FALSE(b.is_leader());
  a.resign();
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(stored_holder(), "");
  EXPECT_EQ(stored_transitions(), 1);
  ASSERT_TRUE(b.step().ok());  // no clock change needed
  EXPECT_TRUE(b.is_leader());
  EXPECT_EQ(b.status().epoch, 2u);
}

TEST_F(K8sLeaseFlow, LeadershipLapsesAtValidUntilWithoutRenewal) {
  K8sLeaseElector a(config("castmesh-0", &wall_a, 1000ms));
  ASSERT_TRUE(a.step().ok());
  EXPECT_TRUE(a.is_leader());
  std::this_thread::sleep_for(850ms);  // valid_until = start + 1000 - 200 ms
  EXPECT_FALSE(a.is_leader());
  EXPECT_EQ(*a.fenced_check(), false);
}

TEST_F(K8sLeaseFlow, SendsTheBearerTokenAndMapsErrors) {
  char path[] = "/tmp/castmesh-token-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream(path) << "tok-123\n";
  }
  auto c = config("castmesh-0", &wall_a);
  c.token_path = path;
  K8sLeaseElector a(c);
  ASSERT_TRUE(a.step().ok());
  {
    std::lock_guard lk(api.mu);
    EXPECT_EQ(api.last_authorization, "Bearer tok-123");
    api.forced_status = 403;
  }
  EXPECT_EQ(a.step().code(), Errc::forbidden);
  {
    std::lock_guard lk(api.mu);
    api.forced_status = 500;
  }
  auto s = a.step();
  EXPECT_EQ(s.code(), Errc::io_error);
  EXPECT_NE(s.error().detail.find("HTTP 500"), std::string::npos);
  std::remove(path);
}

TEST(K8sLeaseElectorErrors, UnreachableApiAndBadUrl) {
  K8sLeaseConfig c;
  c.ns = "default";
  c.identity = "castmesh-0";
  c.timeout = 500ms;
  c.api_url = "http://127.0.0.1:1";  // nothing listens on port 1
  K8sLeaseElector a(c);
  EXPECT_EQ(a.step().code(), Errc::unavailable);
  EXPECT_FALSE(a.is_leader());
  c.api_url = "ftp://x";
  EXPECT_EQ(K8sLeaseElector(c).step().code(), Errc::config_invalid);
  c.api_url = "https://kubernetes.default.svc/api";
  EXPECT_EQ(K8sLeaseElector(c).step().code(), Errc::config_invalid);
  c.api_url = "https://127.0.0.1:1";
  c.ca_path = "/nonexistent/ca.crt";
  EXPECT_EQ(K8sLeaseElector(c).step().code(), Errc::config_invalid);
}

// ------------------------------------------------------------------------------------------
// HTTPS: a TLS endpoint with a throwaway self-signed certificate (made with the openssl CLI)
// that answers GET with 404 and POST with the created Lease. It checks the transport only
// (TLS, CA and host-name verification, bearer token); the election logic is covered above.

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

class TlsLeaseEndpoint {
 public:
  TlsLeaseEndpoint(const std::string& cert, const std::string& key) : ctx_(asio::ssl::context::tls_server) {
    ctx_.use_certificate_chain_file(cert);
    ctx_.use_private_key_file(key, asio::ssl::context::pem);
    acceptor_.open(asio::ip::tcp::v4());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TlsLeaseEndpoint() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port = 0;
  std::mutex mu;
  std::vector<std::string> requests;  // "METHOD target auth"

 private:
  struct Session {
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buf;
    bhttp::request<bhttp::string_body> req;
    bhttp::response<bhttp::string_body> res;
    Session(asio::ip::tcp::socket s, asio::ssl::context& c) : stream(std::move(s), c) {}
  };
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket sock) {
      if (ec) return;
      auto s = std::make_shared<Session>(std::move(sock), ctx_);
      beast::get_lowest_layer(s->stream).expires_after(5s);
      s->stream.async_handshake(asio::ssl::stream_base::server, [this, s](boost::system::error_code ec) {
        if (ec) return;
        bhttp::async_read(s->stream, s->buf, s->req, [this, s](boost::system::error_code ec, size_t) {
          if (ec) return;
          {
            std::lock_guard lk(mu);
            requests.push_back(std::string(s->req.method_string()) + " " + std::string(s->req.target()) + " " +
                               std::string(s->req[bhttp::field::authorization]));
          }
          s->res.version(11);
          s->res.set(bhttp::field::content_type, "application/json");
          if (s->req.method() == bhttp::verb::post) {
            auto v = json::parse(s->req.body()).as_object();
            v["metadata"].as_object()["resourceVersion"] = "1";
            s->res.result(201);
            s->res.body() = json::serialize(v);
          } else {
            s->res.result(404);
            s->res.body() = R"({"kind":"Status","code":404})";
          }
          s->res.prepare_payload();
          bhttp::async_write(s->stream, s->res, [s](boost::system::error_code, size_t) {
            beast::get_lowest_layer(s->stream).close();
          });
        });
      });
      accept();
    });
  }
  asio::io_context ioc_{1};
  asio::ssl::context ctx_;
  asio::ip::tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
};

class K8sLeaseHttps : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/castmesh-k8s-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (!make_cert("server", "DNS:localhost,IP:127.0.0.1") || !make_cert("other", "DNS:other.example")) {
      GTEST_SKIP() << "openssl CLI not available";
    }
    std::ofstream(dir_ + "/token") << "sa-token\n";
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  bool make_cert(const std::string& name, const std::string& san) {
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                            "-subj /CN=" + name + " -addext subjectAltName=" + san + " -keyout '" + dir_ + "/" + name +
                            ".key' -out '" + dir_ + "/" + name + ".crt' >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
  }
  K8sLeaseConfig config(const std::string& url, const std::string& ca) {
    K8sLeaseConfig c;
    c.api_url = url;
    c.ns = "default";
    c.identity = "castmesh-0";
    c.lease = 3000ms;
    c.timeout = 2000ms;
    c.ca_path = dir_ + "/" + ca + ".crt";
    c.token_path = dir_ + "/token";
    return c;
  }
  std::string dir_;
};

TEST_F(K8sLeaseHttps, VerifiesTheServerAndSendsTheToken) {
  TlsLeaseEndpoint ep(dir_ + "/server.crt", dir_ + "/server.key");
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    K8sLeaseElector a(config("https://" + host + ":" + std::to_string(ep.port), "server"));
    auto s = a.step();
    ASSERT_TRUE(s.ok()) << host << ": " << s.error().message();
    EXPECT_TRUE(a.is_leader());
    EXPECT_EQ(a.status().epoch, 1u);
  }
  std::lock_guard lk(ep.mu);
  ASSERT_EQ(ep.requests.size(), 4u);
  EXPECT_EQ(ep.requests[0], "GET /apis/coordination.k8s.io/v1/namespaces/default/leases/castmesh-leader Bearer sa-token");
  EXPECT_EQ(ep.requests[1], "POST /apis/coordination.k8s.io/v1/namespaces/default/leases Bearer sa-token");
}

TEST_F(K8sLeaseHttps, RefusesAnUntrustedOrMisnamedCertificate) {
  TlsLeaseEndpoint ep(dir_ + "/server.crt", dir_ + "/server.key");
  // Signed by a CA we do not trust.
  K8sLeaseElector untrusted(config("https://127.0.0.1:" + std::to_string(ep.port), "other"));
  EXPECT_EQ(untrusted.step().code(), Errc::unavailable);
  EXPECT_FALSE(untrusted.is_leader());
  // Trusted certificate whose names do not include the host we asked for.
  TlsLeaseEndpoint misnamed(dir_ + "/other.crt", dir_ + "/other.key");
  K8sLeaseElector wrong_name(config("https://127.0.0.1:" + std::to_string(misnamed.port), "other"));
  auto s = wrong_name.step();
  EXPECT_EQ(s.code(), Errc::unavailable);
  EXPECT_NE(s.error().detail.find("TLS handshake"), std::string::npos) << s.error().detail;
  std::lock_guard lk(ep.mu);
  EXPECT_TRUE(ep.requests.empty());
}

}  // namespace
}  // namespace castmesh::cluster::internode
