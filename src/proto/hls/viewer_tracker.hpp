#pragma once
/// \file Counts HLS viewers. HLS is stateless HTTP, so a viewer is a client (address +
/// User-Agent) that fetched a playlist or segment of the stream within the last `window_ms`.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "live/stream_hub.hpp"

namespace castmesh::hls {

/// Thread-safe. Memory is bounded by `max_clients` entries in all (oldest evicted first when
/// full, then by expiry on every prune).
class ViewerTracker {
 public:
  explicit ViewerTracker(int64_t window_ms, size_t max_clients = 100000)
      : window_ms_(window_ms), max_clients_(max_clients) {}

  /// Records a fetch of `key` by `client` (e.g. "127.0.0.1|ffmpeg/5.1") at `now_ms`
  /// (monotonic ms).
  void touch(const live::StreamKey& key, const std::string& client, int64_t now_ms);

  /// Distinct clients of `key` seen within the window ending at `now_ms`.
  uint64_t count(const live::StreamKey& key, int64_t now_ms) const;

  /// Drops entries older than the window (call periodically).
  void prune(int64_t now_ms);

  size_t size() const;

 private:
  int64_t window_ms_;
  size_t max_clients_;
  mutable std::mutex mu_;
  // stream -> client -> last seen
  std::map<live::StreamKey, std::unordered_map<std::string, int64_t>> seen_;
  size_t entries_ = 0;
};

}  // namespace castmesh::hls
