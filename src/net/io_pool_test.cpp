#include "net/io_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/post.hpp>

namespace castmesh::net {
namespace {

namespace asio = boost::asio;

TEST(IoPool, RoundRobinOverDistinctContexts) {
  IoPool pool(2);
  ASSERT_EQ(pool.size(), 2u);
  auto ctxs = pool.contexts();
  ASSERT_EQ(ctxs.size(), 2u);
  EXPECT_NE(ctxs[0], ctxs[1]);
  asio::io_context* a = &pool.next();
  asio::io_context* b = &pool.next();
  asio::io_context* c = &pool.next();
  EXPECT_NE(a, b);
  EXPECT_EQ(a, c);
}

TEST(IoPool, ZeroMeansAtLeastOneThread) {
  IoPool pool(0);
  EXPECT_GE(pool.size(), 1u);
}

TEST(IoPool, RunsWorkOnOneThreadPerContextAndStops) {
  IoPool pool(2);
  pool.run();
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> done{0};
  for (auto* ctx : pool.contexts()) {
    for (int i = 0; i < 10; ++i) {
      asio::post(*ctx, [&] {
        std::lock_guard lock(mu);
        ids.insert(std::this_thread::get_id());
        ++done;
      });
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (done.load() < 20 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(done.load(), 20);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(ids.size(), 2u);
    EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
  }
  // Threads stay alive with no work (work guards) until stop().
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic<bool> late{false};
  asio::post(pool.next(), [&] { late = true; });
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!late.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(late.load());
  pool.stop();
  pool.join();
  for (auto* ctx : pool.contexts()) EXPECT_TRUE(ctx->stopped());
}

TEST(IoPool, DrainLetsPendingWorkFinish) {
  IoPool pool(1);
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) asio::post(pool.next(), [&] { ++ran; });
  pool.run();
  pool.drain();
  pool.join();
  EXPECT_EQ(ran.load(), 100);
}

}  // namespace
}  // namespace castmesh::net
