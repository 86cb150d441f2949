#pragma once
/// \file cluster::RelayManager — edge relays on demand (DESIGN.md section 6, docs/design.md
/// "Clustered live streaming").
///
/// A play request (RTMP or HTTP-FLV) on this node for a stream the registry says another node
/// owns starts one relay per stream: a streaming pull of
/// `GET /internal/v1/relay/{app}/{stream}.flv?epoch=E` from the owner's signed inter-node API,
/// whose FLV tags feed a local Source as a Proto::relay publisher, so the GOP cache, every output
/// and the viewer counts work as for a local publisher.
/// - Establishing (connect + response head) is bounded by `establish_timeout`; a relay that
///   fails `max_retry_attempts` times in a row, `retry_delay` apart, gives up (players that
///   never got media are released).
/// - No media for `health_check_interval` reconnects.
/// - A registry change of the stream (new owner or epoch: a failover or takeover) switches the
///   upstream at once; players stay attached and continue at the next keyframe.
/// - `release_delay` after the last local player left, the relay stops.
///
/// All relay state lives on one io_context (its thread); public functions are thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "base/metrics.hpp"
#include "cluster/cluster_config.hpp"
#include "cluster/internode/async_client.hpp"
#include "cluster/relay/stream_directory.hpp"
#include "live/stream_hub.hpp"

namespace boost::asio {
class io_context;
}

namespace castmesh::cluster {

/// Counters for /metrics.
struct RelayMetrics {
  std::atomic<int64_t> active{0};               ///< relays running
  std::atomic<uint64_t> started_total{0};
  std::atomic<uint64_t> reconnects_total{0};    ///< upstream (re)connections after the first
  std::atomic<uint64_t> failures_total{0};      ///< upstream attempts that failed
  std::atomic<uint64_t> bytes_total{0};         ///< bytes received from upstreams
};

class RelayManager {
 public:
  /// `hub`, `directory`, `ctx` and `metrics` must outlive the manager.
  RelayManager(RelayConfig cfg, live::StreamHub& hub, StreamDirectory& directory, internode::Signer signer,
               boost::asio::io_context& ctx, Metrics& metrics);
  ~RelayManager();
  RelayManager(const RelayManager&) = delete;
  RelayManager& operator=(const RelayManager&) = delete;

  /// Subscribes to hub events and directory changes; sets the hub's remote locator.
  void start();
  /// Stops every relay (their local publishers unpublish). Thread-safe, idempotent.
  void stop();

  /// True while a relay of `stream` runs on this node.
  bool relaying(const std::string& stream) const;
  const RelayMetrics& metrics() const noexcept;
  const RelayConfig& config() const noexcept;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace castmesh::cluster
