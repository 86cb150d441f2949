#pragma once
/// \file Helpers for the tests that need a real Redis (suites named Redis*): the server URL
/// comes from the environment variable CASTMESH_TEST_REDIS_URL (scripts/redis-test exec sets it).

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::redis::test {

/// The URL of the test Redis, or nullopt (with a test failure explaining how to set it).
inline std::optional<RedisUrl> test_redis_url() {
  const char* env = std::getenv("CASTMESH_TEST_REDIS_URL");
  if (!env || !*env) {
    ADD_FAILURE() << "CASTMESH_TEST_REDIS_URL is not set: run Redis* tests with "
                     "`scripts/redis-test start KEY && scripts/redis-test exec KEY <test binary>`";
    return std::nullopt;
  }
  auto u = parse_redis_url(env);
  if (!u) {
    ADD_FAILURE() << "CASTMESH_TEST_REDIS_URL: " << u.error().message();
    return std::nullopt;
  }
  return *u;
}

/// A connection to the test Redis, or null (with a test failure).
inline std::unique_ptr<RedisConnection> connect_test_redis() {
  auto u = test_redis_url();
  if (!u) return nullptr;
  auto c = RedisConnection::connect(*u, std::chrono::milliseconds(2000));
  if (!c) {
    ADD_FAILURE() << "cannot connect to the test Redis: " << c.error().message();
    return nullptr;
  }
  return std::move(*c);
}

/// A key prefix unique to this process and call, e.g. "t-bus-12345-1712345678901-3".
inline std::string unique_prefix(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return "t-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(ms) + "-" +
         std::to_string(counter.fetch_add(1) + 1);
}

}  // namespace castmesh::cluster::redis::test
