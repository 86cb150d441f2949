#pragma once
/// \file Process-wide counters exported at /metrics. One instance is owned by app::Server and
/// passed by reference to every service that counts something (no globals).

#include <atomic>
#include <cstdint>

namespace castmesh {

/// Connection-level protocols counted separately.
/// `relay`: a node pulling a stream from its owner over the inter-node API (cluster mode): the
/// edge's local publisher and the origin's subscriber of that pull.
enum class Proto : uint8_t { rtmp = 0, httpflv = 1, hls = 2, http = 3, relay = 4, count = 5 };

inline const char* proto_name(Proto p) noexcept {
  switch (p) {
    case Proto::rtmp: return "rtmp";
    case Proto::httpflv: return "httpflv";
    case Proto::hls: return "hls";
    case Proto::http: return "http";
    case Proto::relay: return "relay";
    default: return "unknown";
  }
}

/// Monotonic counters (_total) and gauges, all relaxed atomics: readers may see a slightly
/// stale value, never a torn one.
struct Metrics {
  static constexpr size_t kProtos = static_cast<size_t>(Proto::count);

  std::atomic<int64_t> connections[kProtos] = {};        ///< gauge: open connections
  std::atomic<uint64_t> connections_total[kProtos] = {}; ///< counter: accepted connections
  std::atomic<uint64_t> bytes_in_total[kProtos] = {};    ///< counter: bytes received
  std::atomic<uint64_t> bytes_out_total[kProtos] = {};   ///< counter: bytes sent
  std::atomic<int64_t> streams = 0;                      ///< gauge: streams with a live publisher
  std::atomic<uint64_t> publishes_total = 0;             ///< counter: accepted publish requests
  std::atomic<uint64_t> publish_rejected_total = 0;      ///< counter: refused publish requests
  std::atomic<uint64_t> dropped_gops_total = 0;          ///< counter: GOP skips for slow subscribers
  std::atomic<uint64_t> slow_subscribers_closed_total = 0;  ///< counter: subscribers dropped on send timeout
  std::atomic<uint64_t> protocol_errors_total[kProtos] = {};  ///< counter: malformed input refused
  std::atomic<uint64_t> hls_segments_total = 0;          ///< counter: HLS segments produced

  static size_t idx(Proto p) noexcept { return static_cast<size_t>(p); }
  void add(std::atomic<uint64_t>* arr, Proto p, uint64_t n) noexcept {
    arr[idx(p)].fetch_add(n, std::memory_order_relaxed);
  }
};

}  // namespace castmesh
