#include "cluster/internode/dns_resolver.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace castmesh::cluster::internode {
namespace {

using namespace std::chrono_literals;

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";

// Binds a loopback socket of `type` on an ephemeral port; returns the fd (caller closes) and port.
int bind_loopback(int type, uint16_t* port) {
  int fd = ::socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A dnsmasq serving a private hosts file on 127.0.0.1:<ephemeral port>, authoritative for
// "svc" (--local), so unknown names get NXDOMAIN rather than REFUSED. Stopped by PID.
class Dnsmasq {
 public:
  Dnsmasq() {
    char tmpl[] = "/tmp/castmesh-dns-XXXXXX";
    if (!::mkdtemp(tmpl)) return;
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    {
      std::ofstream hosts(dir_ + "/hosts");
      hosts << "127.0.0.13 castmesh.default.svc\n"
               "127.0.0.11 castmesh.default.svc\n"
               "127.0.0.12 castmesh.default.svc\n"
               "::1 v6only.default.svc\n";
    }
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) start();
  }
  ~Dnsmasq() {
    stop();
    if (!dir_.empty()) {
      std::remove((dir_ + "/hosts").c_str());
      std::remove((dir_ + "/pid").c_str());
      ::rmdir(dir_.c_str());
    }
  }
  bool running() const { return pid_ > 0; }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void start() {
    uint16_t port = 0;
    int probe = bind_loopback(SOCK_DGRAM, &port);
    if (probe < 0) return;
    ::close(probe);  // small race with other processes; a failed start is retried
    std::vector<std::string> args = {kDnsmasq,
                                     "--keep-in-foreground",
                                     "--conf-file=/dev/null",
                                     "--port=" + std::to_string(port),
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--local=/svc/",
                                     "--addn-hosts=" + dir_ + "/hosts",
                                     "--pid-file=" + dir_ + "/pid"};
    if (::geteuid() == 0) args.push_back("--user=root");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      int devnull = ::open("/dev/null", O_WRONLY);
      if (devnull >= 0) {
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      ::execv(kDnsmasq, argv.data());
      ::_exit(127);
    }
    if (pid < 0) return;
    pid_ = pid;
    port_ = port;
    // Ready when it answers; gone when the port was taken meanwhile.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      if (resolve_a("castmesh.default.svc", server(), 1000ms).ok()) return;
      std::this_thread::sleep_for(20ms);
    }
    stop();
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status;
    for (int i = 0; i < 250; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

class DnsResolver : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::access(kDnsmasq, X_OK) != 0) return;
    dns_ = new Dnsmasq();
  }
  static void TearDownTestSuite() {
    delete dns_;
    dns_ = nullptr;
  }
  void SetUp() override {
    if (!dns_) GTEST_SKIP() << kDnsmasq << " not installed";
    ASSERT_TRUE(dns_->running()) << "dnsmasq did not start";
  }
  static Dnsmasq* dns_;
};
Dnsmasq* DnsResolver::dns_ = nullptr;

TEST_F(DnsResolver, ReturnsAllARecordsSorted) {
  auto r = resolve_a("castmesh.default.svc", dns_->server(), 2000ms);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<std::string>{"127.0.0.11", "127.0.0.12", "127.0.0.13"}));
  auto dotted = resolve_a("castmesh.default.svc.", dns_->server(), 2000ms);
  ASSERT_TRUE(dotted.ok()) << dotted.error().message();
  EXPECT_EQ(dotted->size(), 3u);
}

TEST_F(DnsResolver, UnknownNameIsNotFound) {
  auto r = resolve_a("nope.default.svc", dns_->server(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::not_found);
  EXPECT_NE(r.error().detail.find("NXDOMAIN"), std::string::npos) << r.error().detail;
}

TEST_F(DnsResolver, NameWithoutARecordsIsNotFound) {
  auto r = resolve_a("v6only.default.svc", dns_->server(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::not_found);
}

TEST_F(DnsResolver, ConcurrentLookupsAgree) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto r = resolve_a("castmesh.default.svc", dns_->server(), 2000ms);
        if (r.ok() && r->size() == 3) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST(DnsResolverErrors, SilentServerTimesOutAsUnavailable) {
  uint16_t port = 0;
  int fd = bind_loopback(SOCK_DGRAM, &port);  // bound, never answers
  ASSERT_GE(fd, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto r = resolve_a("castmesh.default.svc", "127.0.0.1:" + std::to_string(port), 500ms);
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::unavailable);
  EXPECT_GE(took, 900ms);  // rounded up to libresolv's 1 s
  EXPECT_LT(took, 3000ms);
}

TEST(DnsResolverErrors, BadInputIsMalformed) {
  EXPECT_EQ(resolve_a("", "", 1000ms).code(), Errc::malformed);
  EXPECT_EQ(resolve_a("a b.svc", "", 1000ms).code(), Errc::malformed);
  EXPECT_EQ(resolve_a("x.svc", "not-an-ip", 1000ms).code(), Errc::malformed);
  EXPECT_EQ(resolve_a("x.svc", "127.0.0.1:0", 1000ms).code(), Errc::malformed);
  EXPECT_EQ(resolve_a("x.svc", "127.0.0.1:99999", 1000ms).code(), Errc::malformed);
  EXPECT_EQ(resolve_a("x.svc", "::1", 1000ms).code(), Errc::malformed);
}

}  // namespace
}  // namespace castmesh::cluster::internode
