#include "net/io_pool.hpp"

#include <exception>

#include "base/log.hpp"

namespace castmesh::net {

namespace asio = boost::asio;

IoPool::IoPool(size_t threads) {
  if (threads == 0) threads = std::thread::hardware_concurrency();
  if (threads == 0) threads = 1;
  ctxs_.reserve(threads);
  guards_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    // Concurrency hint 1: each context is only ever run by its own thread.
    ctxs_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(std::make_unique<Guard>(ctxs_.back()->get_executor()));
  }
}

IoPool::~IoPool() {
  stop();
  join();
}

asio::io_context& IoPool::next() {
  size_t i = next_.fetch_add(1, std::memory_order_relaxed) % ctxs_.size();
  return *ctxs_[i];
}

std::vector<asio::io_context*> IoPool::contexts() {
  std::vector<asio::io_context*> out;
  out.reserve(ctxs_.size());
  for (auto& c : ctxs_) out.push_back(c.get());
  return out;
}

void IoPool::run() {
  std::lock_guard lock(mu_);
  if (running_.exchange(true)) return;
  threads_.reserve(ctxs_.size());
  for (size_t i = 0; i < ctxs_.size(); ++i) {
    asio::io_context* ctx = ctxs_[i].get();
    threads_.emplace_back([ctx, i] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          // Sessions catch their own errors at the co_spawn boundary; anything reaching here
          // is a bug in a plain handler. Keep serving the other connections of this thread.
          spdlog::error("io thread {}: unhandled exception: {}", i, e.what());
        } catch (...) {
          spdlog::error("io thread {}: unhandled non-standard exception", i);
        }
      }
    });
  }
}

void IoPool::stop() {
  std::lock_guard lock(mu_);
  for (auto& g : guards_) g.reset();
  for (auto& c : ctxs_) c->stop();
}

void IoPool::drain() {
  std::lock_guard lock(mu_);
  for (auto& g : guards_) g.reset();
}

void IoPool::join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace castmesh::net
