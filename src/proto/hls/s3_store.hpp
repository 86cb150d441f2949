#pragma once
/// \file The `oss` HLS store: playlists and segments in S3-compatible object storage, so every
/// node of a cluster reads every stream's HLS objects directly (no proxy), also while the node
/// that wrote them is stopped.
///
/// - Requests are signed with AWS Signature Version 4 (header-based; "Authenticating Requests:
///   Using the Authorization Header", AWS S3 API reference), path-style URLs
///   `{endpoint}/{bucket}/{base_path}/{app}/{stream}/{file}`; http:// and https:// (peer
///   certificate checked against the system's CA store) endpoints.
/// - Writes never block the publisher's thread: put() keeps the object in memory (this node
///   serves it from there at once) and an uploader thread sends it; removals are queued the same
///   way. A playlist waiting for upload is replaced by its newer version (one PUT per playlist
///   at a time); the queue is bounded (`kMaxQueued`: the oldest pending segment upload is dropped
///   with a warning beyond it).
/// - get() of an object this node did not write is a blocking S3 GET: callers on I/O threads use
///   peek() and run get() on a blocking-work executor (app/).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "proto/hls/hls_config.hpp"
#include "proto/hls/store.hpp"

namespace castmesh::hls {

/// One request to sign (AWS SigV4). `headers` must include host, x-amz-content-sha256 and
/// x-amz-date; names are lower-case, values trimmed; the signed headers are all of them.
struct SigV4Request {
  std::string method;        ///< "GET", "PUT", ...
  std::string canonical_uri; ///< URI-encoded path, e.g. "/bucket/live/cam/cam-1.ts"
  std::string canonical_query;  ///< sorted, encoded "k=v&k2=v2" ("" when none)
  std::map<std::string, std::string> headers;
  std::string payload_sha256;   ///< hex SHA-256 of the body (of "" for none)
  std::string amz_date;         ///< "YYYYMMDDTHHMMSSZ"
  std::string region = "us-east-1";
  std::string service = "s3";
};

/// The canonical request (SigV4 task 1).
std::string sigv4_canonical_request(const SigV4Request& r);
/// The Authorization header value: "AWS4-HMAC-SHA256 Credential=.../{date}/{region}/{service}/
/// aws4_request, SignedHeaders=..., Signature=<64 hex>".
std::string sigv4_authorization(const SigV4Request& r, const std::string& access_key_id,
                                const std::string& secret_access_key);
/// S3's URI encoding of one path: every byte but A-Z a-z 0-9 - _ . ~ and '/' as %XX.
std::string s3_uri_encode(std::string_view s, bool keep_slash);

/// Synchronous S3 client (one connection per request). Thread-safe (no shared state).
class S3Client {
 public:
  explicit S3Client(OssConfig cfg);
  /// The object at `key` (relative to the bucket). Errc::not_found on 404, Errc::unavailable on
  /// connection failures and timeouts, Errc::io_error on other statuses (message has the S3 code).
  Result<Bytes> get(const std::string& key) const;
  Status put(const std::string& key, ByteView body, std::string_view content_type) const;
  /// Deleting an absent key is not an error.
  Status remove(const std::string& key) const;
  /// Keys under `prefix` (ListObjectsV2, up to 1,000 per page, every page).
  Result<std::vector<std::string>> list(const std::string& prefix) const;
  const OssConfig& config() const noexcept { return cfg_; }

 private:
  struct Response {
    unsigned status = 0;
    Bytes body;
  };
  Result<Response> request(std::string_view method, const std::string& key, const std::string& query, ByteView body,
                           std::string_view content_type) const;
  OssConfig cfg_;
};

class S3Store final : public Store {
 public:
  /// Pending uploads and removals beyond which the oldest pending segment upload is dropped.
  static constexpr size_t kMaxQueued = 256;

  explicit S3Store(OssConfig cfg);
  ~S3Store() override;

  Status put(std::string_view path, Blob data) override;
  /// From memory when this node wrote it, else a blocking S3 GET (nullptr when absent).
  Blob get(std::string_view path) const override;
  /// From memory only (never blocks).
  Blob peek(std::string_view path) const override;
  bool reads_block() const override { return true; }
  void remove(std::string_view path) override;
  void remove_prefix(std::string_view dir) override;

  /// Waits until the queue is empty (or `timeout_ms` passed); true when empty. Tests, shutdown.
  bool flush(int64_t timeout_ms);
  uint64_t uploads_failed() const noexcept { return failed_.load(); }

 private:
  enum class Op { put, remove, remove_prefix };
  struct Task {
    Op op;
    std::string path;
    Blob data;
  };
  void run();
  std::string key_of(std::string_view path) const;

  S3Client client_;
  std::string base_;  // base_path with a trailing '/', or ""
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::map<std::string, Blob, std::less<>> local_;  // objects written here and not removed
  std::deque<Task> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::atomic<uint64_t> failed_{0};
  std::thread worker_;
};

}  // namespace castmesh::hls
