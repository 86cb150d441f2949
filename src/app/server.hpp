#pragma once
/// \file app::Server: owns every long-lived service of a single node and wires them together.
///
/// Start order: I/O pool, stream hub, HLS service (hub observer), RTMP server, HTTP router
/// and server, housekeeping timer. Stop order (SIGTERM/SIGINT): stop accepting (RTMP, HTTP),
/// end every subscription and publisher (hub), wait up to server.shutdown_grace_secs for
/// sessions to finish, stop the I/O pool and join its threads.

#include <memory>

#include "app/config.hpp"
#include "base/result.hpp"

namespace castmesh::app {

class Server {
 public:
  explicit Server(Config cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds every listener and starts the I/O threads. Errors: Errc::io_error naming the
  /// address that could not be bound.
  Status start();

  /// Graceful stop as described above; blocks at most shutdown_grace_secs (+ join time).
  /// Idempotent.
  void stop();

  uint16_t http_port() const;
  uint16_t rtmp_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// castmesh's version, e.g. "0.1.0" (the CMake project version).
const char* version() noexcept;

/// `castmesh serve`: loads nothing itself; runs `cfg` until SIGTERM or SIGINT, then stops
/// gracefully. Returns the process exit code (0 on a clean stop, 1 when start-up failed).
int run_until_signal(Config cfg);

}  // namespace castmesh::app
