#include "cluster/relay/hls_proxy.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "cluster/internode/internode_server.hpp"
#include "net/io_pool.hpp"

namespace castmesh::cluster {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

const std::string kSecret = "hls-proxy-test-secret";

/// A real owner: the signed inter-node listener serving /internal/v1/hls/ objects after a delay,
/// counting the requests that reach it.
struct Owner {
  Metrics metrics;
  net::IoPool pool{1};
  std::unique_ptr<internode::InternodeServer> server;
  std::atomic<int> requests{0};
  std::atomic<int> version{1};

  Owner() {
    server = std::make_unique<internode::InternodeServer>(pool, metrics, kSecret);
    server->add_async("GET", "/internal/v1/hls/", "",
                      [this](const net::HttpRequest& req, const std::string&) -> asio::awaitable<net::HttpResponse> {
                        requests.fetch_add(1);
                        asio::steady_timer t(co_await asio::this_coro::executor);
                        t.expires_after(100ms);  // long enough for every reader to pile up
                        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                        if (req.path_param.ends_with("missing.ts")) co_return net::json_error(404, "not found");
                        net::HttpResponse r;
                        r.body = req.path_param + " v" + std::to_string(version.load());
                        co_return r;
                      });
    EXPECT_TRUE(server->listen("127.0.0.1", 0).ok());
    pool.run();
  }
  ~Owner() {
    server->stop();
    pool.stop();
    pool.join();
  }
  PublisherEntry entry(uint64_t epoch = 1) const {
    PublisherEntry e;
    e.stream = "live/cam";
    e.node_id = "owner";
    e.addr = "127.0.0.1:" + std::to_string(server->port());
    e.epoch = epoch;
    return e;
  }
};

/// Runs `n` concurrent get()s spread over `pool`'s threads; returns the bodies ("" = 404,
/// "ERR" = error).
std::vector<std::string> get_many(net::IoPool& pool, HlsProxy& proxy, const PublisherEntry& owner,
                                  const std::string& path, bool playlist, int n) {
  std::vector<std::string> out(n);
  std::atomic<int> left{n};
  std::promise<void> done;
  for (int i = 0; i < n; ++i) {
    asio::co_spawn(
        pool.next(),
        [&, i]() -> asio::awaitable<void> {
          auto r = co_await proxy.get(owner, path, playlist);
          out[i] = !r ? "ERR" : *r ? std::string((*r)->begin(), (*r)->end()) : std::string();
          if (left.fetch_sub(1) == 1) done.set_value();
        },
        asio::detached);
  }
  EXPECT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
  return out;
}

TEST(HlsProxy, OneUpstreamFetchForAThousandReaders) {
  Owner owner;
  net::IoPool clients{2};
  clients.run();
  HlsProxyConfig cfg;
  cfg.playlist_ttl_ms = 200;
  HlsProxy proxy(cfg, internode::Signer{kSecret, "edge"});

  auto bodies = get_many(clients, proxy, owner.entry(), "live/cam/cam-7.ts", false, 1000);
  for (const auto& b : bodies) ASSERT_EQ(b, "live/cam/cam-7.ts v1");
  EXPECT_EQ(owner.requests.load(), 1) << "single flight";
  EXPECT_EQ(proxy.metrics().misses.load(), 1u);
  EXPECT_EQ(proxy.metrics().hits.load(), 999u);

  // A segment stays cached (it never changes); a playlist is fetched again after its TTL.
  owner.version = 2;
  EXPECT_EQ(get_many(clients, proxy, owner.entry(), "live/cam/cam-7.ts", false, 10)[0], "live/cam/cam-7.ts v1");
  EXPECT_EQ(get_many(clients, proxy, owner.entry(), "live/cam/cam.m3u8", true, 10)[0], "live/cam/cam.m3u8 v2");
  EXPECT_EQ(owner.requests.load(), 2);
  EXPECT_EQ(get_many(clients, proxy, owner.entry(), "live/cam/cam.m3u8", true, 10)[0], "live/cam/cam.m3u8 v2");
  EXPECT_EQ(owner.requests.load(), 2) << "within the playlist TTL";
  std::this_thread::sleep_for(250ms);
  owner.version = 3;
  EXPECT_EQ(get_many(clients, proxy, owner.entry(), "live/cam/cam.m3u8", true, 10)[0], "live/cam/cam.m3u8 v3");
  EXPECT_EQ(owner.requests.load(), 3);

  // A new epoch (failover, takeover) never reuses the old owner's objects.
  EXPECT_EQ(get_many(clients, proxy, owner.entry(2), "live/cam/cam-7.ts", false, 5)[0], "live/cam/cam-7.ts v3");
  EXPECT_EQ(owner.requests.load(), 4);

  // 404 is passed on (and not kept longer than a playlist).
  EXPECT_EQ(get_many(clients, proxy, owner.entry(), "live/cam/missing.ts", false, 5)[0], "");
  clients.stop();
  clients.join();
}

TEST(HlsProxy, UnreachableOwnerServesStaleCopiesOrFails) {
  net::IoPool clients{1};
  clients.run();
  HlsProxyConfig cfg;
  cfg.playlist_ttl_ms = 0;
  cfg.fetch_timeout_ms = 500;
  HlsProxy proxy(cfg, internode::Signer{kSecret, "edge"});
  PublisherEntry gone;
  {
    Owner owner;
    gone = owner.entry();
    EXPECT_EQ(get_many(clients, proxy, gone, "live/cam/cam.m3u8", true, 3)[0], "live/cam/cam.m3u8 v1");
  }
  // The owner died: its last playlist is still served from the cache; an object never cached fails.
  EXPECT_EQ(get_many(clients, proxy, gone, "live/cam/cam.m3u8", true, 3)[0], "live/cam/cam.m3u8 v1");
  EXPECT_GE(proxy.metrics().stale_served.load(), 1u);
  EXPECT_EQ(get_many(clients, proxy, gone, "live/cam/cam-9.ts", false, 3)[0], "ERR");
  // A forged signature is refused by a real owner (401 is an error, not an object).
  Owner other;
  HlsProxy forged(cfg, internode::Signer{"wrong-secret", "edge"});
  EXPECT_EQ(get_many(clients, forged, other.entry(), "live/cam/cam.m3u8", true, 1)[0], "ERR");
  EXPECT_EQ(other.requests.load(), 0);
  clients.stop();
  clients.join();
}

}  // namespace
}  // namespace castmesh::cluster
