#pragma once
/// \file HLS settings (config section `hls`).

#include <cstdint>
#include <string>

namespace castmesh::hls {

enum class StoreKind { memory, file, oss };

/// The `oss` store: S3-compatible object storage (config keys hls.oss.*).
struct OssConfig {
  /// "http(s)://host[:port]" of the S3 API (path-style requests).
  std::string endpoint;
  std::string bucket;
  /// Key prefix inside the bucket ("" = the bucket's root), e.g. "hls".
  std::string base_path;
  std::string region = "us-east-1";
  /// Credentials; empty = the environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
  std::string access_key_id;
  std::string secret_access_key;
  /// One S3 request (connect + send + response), ms.
  uint32_t timeout_ms = 5000;
};

struct HlsConfig {
  bool enabled = true;
  StoreKind store = StoreKind::memory;
  /// Directory of the `file` store; one sub-directory per app/stream.
  std::string dir = "data/hls";
  /// Set when several nodes share `dir` (valid only with store `file`).
  bool shared_storage = false;
  /// Segments are cut on the first keyframe at or after this duration, seconds.
  uint32_t target_duration_secs = 2;
  /// Segments listed in the live playlist.
  uint32_t window = 6;
  /// Playlist and segments are removed this long after the publisher stops, seconds.
  uint32_t cleanup_grace_secs = 30;
  /// Hard cap of one segment, bytes (a GOP-less stream is cut here).
  uint32_t max_segment_bytes = 32 * 1024 * 1024;
  /// Cluster mode, non-shared store: a node proxying another node's HLS serves a cached
  /// playlist this long, ms.
  uint32_t proxy_playlist_ttl_ms = 50;
  /// Cluster mode: bound of the proxy cache of other nodes' playlists and segments, bytes.
  uint64_t proxy_cache_bytes = 256ull * 1024 * 1024;
  /// Settings of the `oss` store.
  OssConfig oss;
};

}  // namespace castmesh::hls
