#pragma once
/// \file HTTP server settings (config section `server`).

#include <cstdint>
#include <string>

namespace castmesh::net {

struct HttpConfig {
  std::string host = "0.0.0.0";
  uint16_t port = 8080;
  /// I/O threads, one io_context each (0 = number of cores).
  uint32_t threads = 0;
  /// Request headers must arrive within this time, ms; also the keep-alive idle limit.
  uint32_t request_timeout_ms = 10000;
  /// A response (head and body of a plain handler) must be written within this time, ms;
  /// otherwise the connection is closed.
  uint32_t send_timeout_ms = 30000;
  /// Largest request body accepted, bytes.
  uint32_t max_body_bytes = 1024 * 1024;
  /// Concurrent HTTP connections accepted.
  uint32_t max_connections = 20000;
  /// On SIGTERM/SIGINT sessions are closed and the process exits within this time, s.
  uint32_t shutdown_grace_secs = 5;
};

}  // namespace castmesh::net
