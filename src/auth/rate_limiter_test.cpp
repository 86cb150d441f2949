#include "auth/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace castmesh::auth {
namespace {

struct FakeClock {
  int64_t now = 1'000'000;
  RateLimiter::Clock fn() {
    return [this] { return now; };
  }
};

TEST(RateLimiter, BurstThenRefillAtTheRate) {
  FakeClock clk;
  RateLimiter rl(5.0 / 60.0, 5, 100, clk.fn());  // 5 per minute
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rl.try_acquire("a").allowed) << i;
  auto d = rl.try_acquire("a");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_ms, 12000);  // one token per 12 s
  clk.now += 11'999;
  EXPECT_FALSE(rl.try_acquire("a").allowed);
  clk.now += 1;
  EXPECT_TRUE(rl.try_acquire("a").allowed);
  EXPECT_FALSE(rl.try_acquire("a").allowed);
  // Keys are independent.
  EXPECT_TRUE(rl.try_acquire("b").allowed);
}

TEST(RateLimiter, RefillIsCappedAtBurst) {
  FakeClock clk;
  RateLimiter rl(1.0, 3, 100, clk.fn());
  EXPECT_TRUE(rl.try_acquire("k").allowed);
  clk.now += 3'600'000;
  EXPECT_DOUBLE_EQ(rl.available("k"), 3.0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.try_acquire("k").allowed);
  EXPECT_FALSE(rl.try_acquire("k").allowed);
}

TEST(RateLimiter, ClockGoingBackwardsAddsNothing) {
  FakeClock clk;
  RateLimiter rl(1.0, 1, 100, clk.fn());
  EXPECT_TRUE(rl.try_acquire("k").allowed);
  clk.now -= 10'000;
  EXPECT_FALSE(rl.try_acquire("k").allowed);
  clk.now += 1000;
  EXPECT_TRUE(rl.try_acquire("k").allowed);
}

TEST(RateLimiter, MapIsBoundedAndEvictsLeastRecentlyUsed) {
  FakeClock clk;
  RateLimiter rl(0.001, 1, 3, clk.fn());
  EXPECT_TRUE(rl.try_acquire("a").allowed);
  EXPECT_TRUE(rl.try_acquire("b").allowed);
  EXPECT_TRUE(rl.try_acquire("c").allowed);
  EXPECT_FALSE(rl.try_acquire("a").allowed);  // touches a: b is now the oldest
  EXPECT_TRUE(rl.try_acquire("d").allowed);   // evicts b
  EXPECT_EQ(rl.size(), 3u);
  EXPECT_FALSE(rl.try_acquire("a").allowed);  // a kept its empty bucket
  EXPECT_FALSE(rl.try_acquire("c").allowed);
  EXPECT_TRUE(rl.try_acquire("b").allowed);   // b came back with a full bucket
  EXPECT_EQ(rl.size(), 3u);
}

TEST(RateLimiter, ResetForgetsAKey) {
  FakeClock clk;
  RateLimiter rl(0.001, 1, 10, clk.fn());
  EXPECT_TRUE(rl.try_acquire("a").allowed);
  EXPECT_FALSE(rl.try_acquire("a").allowed);
  rl.reset("a");
  EXPECT_EQ(rl.size(), 0u);
  EXPECT_TRUE(rl.try_acquire("a").allowed);
}

TEST(RateLimiter, ConcurrentCallersNeverGetMoreThanTheBurst) {
  RateLimiter rl(0.0001, 100, 1000);
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) granted += rl.try_acquire("shared").allowed ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(granted.load(), 100);
}

}  // namespace
}  // namespace castmesh::auth
