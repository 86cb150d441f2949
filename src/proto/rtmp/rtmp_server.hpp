#pragma once
/// \file rtmp::RtmpServer: RTMP ingest (publish) and playback over TCP (RTMP specification
/// 1.0; command set of Flash Media Server as used by OBS and ffmpeg). Asio stays in the .cpp.
///
/// Per connection: handshake (5.2) within handshake_timeout_ms, then chunk stream (5.3) and
/// commands connect / releaseStream / FCPublish / createStream / publish / play /
/// deleteStream / closeStream / FCUnpublish / getStreamLength (7.2). A publisher's media go to
/// live::Publisher::push; a player reads its live::Subscription and receives, per wake-up and
/// merge window, everything queued as one gather write of shared, zero-copy payload slices.
/// Malformed input closes only that connection (counted in protocol_errors_total).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/metrics.hpp"
#include "base/result.hpp"
#include "live/stream_hub.hpp"
#include "proto/rtmp/rtmp_config.hpp"

namespace boost::asio {
class io_context;
}

namespace castmesh::rtmp {

/// The RTMP listener and its sessions.
///
/// Threading: the acceptor runs on ctxs[0]; each accepted connection lives on the next
/// io_context round-robin and everything it does runs on that context's thread. listen(),
/// port() and stop() may be called from any thread. `hub` and `metrics` must outlive every
/// session: call stop() and let the contexts finish the sessions (the
/// connections[Proto::rtmp] gauge drops to 0) before destroying them.
class RtmpServer {
 public:
  RtmpServer(std::vector<boost::asio::io_context*> ctxs, const RtmpConfig& cfg, live::StreamHub& hub, Metrics& m);
  /// Calls stop().
  ~RtmpServer();
  RtmpServer(const RtmpServer&) = delete;
  RtmpServer& operator=(const RtmpServer&) = delete;

  /// Binds cfg.host:cfg.port (port 0 = ephemeral, see port()) and starts accepting; the
  /// contexts may be run before or after. Errors: Errc::io_error naming the address,
  /// Errc::config_invalid when no io_context was given.
  Status listen();

  /// The bound port (0 before listen()).
  uint16_t port() const;

  /// Stops accepting and closes every session (publishers unpublish, players end). Thread-safe,
  /// idempotent, non-blocking: sessions finish on their own threads.
  void stop();

  /// Open sessions right now.
  size_t connections() const;

  struct State;  ///< shared with the sessions (implementation detail)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace castmesh::rtmp
