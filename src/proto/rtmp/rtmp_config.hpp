#pragma once
/// \file RTMP server settings (config section `rtmp`).

#include <cstdint>
#include <string>

namespace castmesh::rtmp {

struct RtmpConfig {
  bool enabled = true;
  std::string host = "0.0.0.0";
  uint16_t port = 1935;
  /// Handshake must complete within this time, ms.
  uint32_t handshake_timeout_ms = 5000;
  /// A publisher that sends nothing for this long is closed, ms.
  uint32_t idle_timeout_ms = 30000;
  /// A player whose pending write does not complete within this time is closed, ms.
  uint32_t send_timeout_ms = 10000;
  /// Largest Set Chunk Size accepted from a peer, bytes (RTMP spec 5.4.1 allows 2^31-1).
  uint32_t max_chunk_size = 16 * 1024 * 1024;
  /// Largest message length accepted, bytes.
  uint32_t max_message_bytes = 8 * 1024 * 1024;
  /// Chunk size castmesh sends with (announced by Set Chunk Size), bytes.
  uint32_t out_chunk_size = 60000;
  /// Window Acknowledgement Size announced to peers, bytes.
  uint32_t window_ack_size = 2500000;
  /// A player's writer waits up to this long to merge frames into one write, ms (0 = none).
  uint32_t merge_window_ms = 20;
  /// Concurrent RTMP connections accepted; beyond it new connections are closed at once.
  uint32_t max_connections = 20000;
};

}  // namespace castmesh::rtmp
