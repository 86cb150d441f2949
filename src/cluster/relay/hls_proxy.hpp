#pragma once
/// \file cluster::HlsProxy — HLS on a node that does not own the stream
/// (docs/design.md "Clustered live streaming"): playlists and segments are fetched from the
/// owner's inter-node API (`GET /internal/v1/hls/{app}/{stream}/{file}`) and kept in a local
/// cache, so every node serves the owner's exact bytes and names.
/// - Segments are fetched once per node and kept (never change once written) until evicted by
///   the cache's byte bound; playlists are re-fetched after `playlist_ttl_ms`.
/// - Fetches are single-flight: concurrent requests for one object wait for one upstream fetch.
/// - The owner's node id and lease epoch are part of every cache key, so a failover or takeover
///   never serves the old owner's objects as the new one's.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "base/bytes.hpp"
#include "base/result.hpp"
#include "cluster/internode/async_client.hpp"
#include "cluster/publisher_registry.hpp"

namespace castmesh::cluster {

struct HlsProxyConfig {
  uint32_t playlist_ttl_ms = 50;            ///< a cached playlist is served this long
  size_t max_bytes = 256 * 1024 * 1024;     ///< cache bound (oldest objects evicted first)
  uint32_t fetch_timeout_ms = 5000;         ///< one upstream fetch
  size_t max_object_bytes = 64 * 1024 * 1024;
};

struct HlsProxyMetrics {
  std::atomic<uint64_t> hits{0};            ///< served from the cache (also after waiting for a fetch)
  std::atomic<uint64_t> misses{0};          ///< requests that started an upstream fetch
  std::atomic<uint64_t> errors{0};          ///< upstream fetches that failed
  std::atomic<uint64_t> bytes_fetched{0};
  std::atomic<uint64_t> stale_served{0};    ///< cached objects served because the owner could not be reached
};

class HlsProxy {
 public:
  using Blob = std::shared_ptr<const Bytes>;

  HlsProxy(HlsProxyConfig cfg, internode::Signer signer);
  ~HlsProxy();

  /// The object `path` ("app/stream/file") of `owner`'s HLS output: the bytes, or nullptr when
  /// the owner has no such object (404). Runs on the caller's executor (an I/O thread; it never
  /// blocks it). When the owner cannot be reached, a cached copy is served however old (stale if
  /// error). Errors: Errc::unavailable when the owner cannot be reached and nothing is cached.
  boost::asio::awaitable<Result<Blob>> get(const PublisherEntry& owner, std::string path, bool playlist);

  const HlsProxyMetrics& metrics() const noexcept { return m_; }
  /// Objects and bytes cached now.
  size_t objects() const;
  size_t bytes() const;

 private:
  struct Flight;
  struct Cached {
    Blob body;              // nullptr: the owner answered 404
    int64_t fetched_ms = 0;
    bool playlist = false;
  };
  void store_locked(const std::string& key, Cached c);

  const HlsProxyConfig cfg_;
  const internode::Signer signer_;
  HlsProxyMetrics m_;
  mutable std::mutex mu_;
  std::map<std::string, Cached> cache_;
  std::deque<std::string> order_;  // insertion order of cache_ keys, for eviction
  size_t bytes_ = 0;
  std::map<std::string, std::shared_ptr<Flight>> flights_;
};

}  // namespace castmesh::cluster
