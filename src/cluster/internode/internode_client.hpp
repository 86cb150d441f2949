#pragma once
/// \file cluster::internode::InternodeClient — signed, synchronous HTTP/1.1 requests to
/// another node's inter-node API (plain TCP; the cluster network is trusted for
/// confidentiality, the HMAC signature provides authenticity, see signing.hpp).

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace castmesh::cluster::internode {

/// Sends signed requests. Every call opens its own connection on its own small io_context,
/// so the client is thread-safe for concurrent callers and keeps no state between calls.
/// Calls block the calling thread (at most about `timeout`): do not call from an io thread.
class InternodeClient {
 public:
  /// `secret`: the cluster secret (never logged). `node_id`: this node's id, sent in
  /// X-Castmesh-Node.
  InternodeClient(std::string secret, std::string node_id);

  /// Sends `method target` with `body` (Content-Type application/json when non-empty) to
  /// `addr` = "host:port" ("[v6]:port" for IPv6 literals; host names are resolved with the
  /// system resolver) and returns the response body on 2xx. `target` is the origin-form
  /// request-target ("/internal/v1/node?x=1"), signed as is. `timeout` bounds connect + write +
  /// read together (name resolution of a non-literal host is not interruptible).
  /// Errors: Errc::unavailable on resolve/connect failure, timeout or a connection closed
  /// before a response; Errc::forbidden on 401 (the peer refused our signature; the detail
  /// carries its error body); Errc::io_error on any other status ("HTTP 500: <body>") or a
  /// malformed response; Errc::malformed for a bad `addr`.
  Result<std::string> request(const std::string& addr, std::string_view method, std::string_view target,
                              std::string_view body, std::chrono::milliseconds timeout) const;

  const std::string& node_id() const noexcept { return node_id_; }

 private:
  std::string secret_;
  std::string node_id_;
};

/// Splits "host:port" / "[v6]:port" into host and port. Errc::malformed when the port is
/// missing, not decimal or out of 1..65535, or the host is empty.
Result<std::pair<std::string, uint16_t>> split_host_port(std::string_view addr);

}  // namespace castmesh::cluster::internode
