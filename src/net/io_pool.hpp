#pragma once
/// \file net::IoPool: a fixed set of threads, each running its own io_context.

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace castmesh::net {

/// One io_context per thread. Connections are spread over the contexts round-robin with
/// next(); everything a connection does then runs on that context's single thread, so a
/// connection needs no strand and no lock for its own state.
///
/// Life cycle: construct -> (objects post work / create sockets on contexts()) -> run() ->
/// stop() -> join(). The destructor calls stop() and join(). Work guards keep each context
/// running while it has no pending work, until stop() or drain().
class IoPool {
 public:
  /// Creates `threads` io_contexts (0 = std::thread::hardware_concurrency(), at least 1).
  /// No thread is started yet.
  explicit IoPool(size_t threads);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  /// The next io_context, round-robin. Thread-safe.
  boost::asio::io_context& next();

  /// All io_contexts, in a stable order (index = thread index).
  std::vector<boost::asio::io_context*> contexts();

  /// Number of io_contexts (= threads once run() was called).
  size_t size() const noexcept { return ctxs_.size(); }

  /// Starts one thread per io_context and returns immediately. Calling it twice is a no-op.
  /// An exception escaping a handler is logged and that context keeps running.
  void run();

  /// Stops every io_context now: run() on each thread returns as soon as the handler in
  /// progress finishes; pending handlers are not run (they are destroyed with the pool).
  /// Thread-safe, idempotent, non-blocking.
  void stop();

  /// Releases the work guards only: each thread exits once its context has no more pending
  /// work (graceful variant of stop()). Non-blocking.
  void drain();

  /// Waits for every thread started by run() to exit. Must not be called from a pool thread.
  void join();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

  std::vector<std::unique_ptr<boost::asio::io_context>> ctxs_;
  std::mutex mu_;  // guards_ and threads_
  std::vector<std::unique_ptr<Guard>> guards_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> running_{false};
};

}  // namespace castmesh::net
