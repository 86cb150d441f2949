#pragma once
/// \file Inter-node request authentication: HMAC-SHA256 (RFC 2104, FIPS 180-4) signatures over
/// the request with the shared cluster secret, a timestamp window and a bounded replay cache.
///
/// Every inter-node request carries four header fields:
///   X-Castmesh-Node:      sender node id, [A-Za-z0-9._-]{1,64}
///   X-Castmesh-Timestamp: sender's Unix time in ms, decimal
///   X-Castmesh-Nonce:     16 random bytes as 32 lowercase hex digits
///   X-Castmesh-Signature: lowercase hex HMAC-SHA256(secret, string_to_sign) (64 digits)
/// string_to_sign = METHOD "\n" TARGET "\n" hex(SHA-256(body)) "\n" TIMESTAMP "\n" NONCE, where
/// TARGET is the request-target as sent (path plus "?query"), hex is lowercase.
/// The secret is never logged by anything in this module.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cluster/cluster_config.hpp"
#include "net/digest.hpp"

namespace castmesh::cluster::internode {

inline constexpr std::string_view kHeaderNode = "X-Castmesh-Node";
inline constexpr std::string_view kHeaderTimestamp = "X-Castmesh-Timestamp";
inline constexpr std::string_view kHeaderNonce = "X-Castmesh-Nonce";
inline constexpr std::string_view kHeaderSignature = "X-Castmesh-Signature";

/// Header fields (name, value) to add to a request, in the order Node, Timestamp, Nonce,
/// Signature.
using SignedHeaders = std::vector<std::pair<std::string, std::string>>;

/// True when `id` matches [A-Za-z0-9._-]{1,64} (cluster/cluster_config.hpp).
using cluster::valid_node_id;

/// Lowercase hex of SHA-256(data) (64 characters).
using net::sha256_hex;

/// The string the signature covers (see the file comment). `timestamp` is the decimal text
/// sent in X-Castmesh-Timestamp.
std::string string_to_sign(std::string_view method, std::string_view target, std::string_view body,
                           std::string_view timestamp, std::string_view nonce);

/// Lowercase hex HMAC-SHA256(secret, string_to_sign(...)) (64 characters).
std::string compute_signature(std::string_view secret, std::string_view method, std::string_view target,
                              std::string_view body, std::string_view timestamp, std::string_view nonce);

/// Signs a request: returns the four header fields with a fresh nonce (16 bytes from OpenSSL
/// RAND_bytes) and timestamp `now_unix_ms`. `target` must be the exact request-target that will
/// be sent. Thread-safe. Aborts only if the OpenSSL RNG fails (it cannot be seeded), since an
/// unsigned or predictable-nonce request must never be sent.
SignedHeaders sign_request(std::string_view secret, std::string_view node_id, std::string_view method,
                           std::string_view target, std::string_view body, int64_t now_unix_ms);

/// Deterministic variant of sign_request() with a caller-chosen nonce (tests, vectors).
SignedHeaders sign_request_with_nonce(std::string_view secret, std::string_view node_id,
                                      std::string_view method, std::string_view target,
                                      std::string_view body, int64_t now_unix_ms, std::string_view nonce);

/// Why a request was refused.
enum class Refusal : uint8_t {
  missing = 0,    ///< a header is absent or not in its format (ts decimal, nonce/signature hex)
  bad_signature,  ///< the signature does not match the request
  expired,        ///< |now - timestamp| > window
  replay,         ///< the nonce was already used within its retention time, or the cache is full
  bad_node,       ///< X-Castmesh-Node is not [A-Za-z0-9._-]{1,64}
  count
};

/// "missing", "bad_signature", "expired", "replay", "bad_node" (metric label values).
const char* refusal_name(Refusal r) noexcept;

/// Human text for a 401 body, e.g. "request signature expired".
const char* refusal_message(Refusal r) noexcept;

/// Verifies signed requests. Thread-safe (one mutex around the nonce cache; counters are
/// relaxed atomics).
///
/// Order of checks: missing/malformed header fields -> bad_node -> signature (constant-time
/// compare with CRYPTO_memcmp) -> timestamp window -> nonce. The nonce is recorded only once
/// the signature and the timestamp are valid, so forged requests cannot fill the cache.
///
/// Replay cache: a nonce is retained until max(now + nonce_ttl, timestamp + window) + 1 ms, so
/// a request can never be accepted twice while its timestamp is inside the window (even a
/// timestamp from the future). Expired entries are pruned on every verify(). When
/// `max_nonces` live entries are held, new requests are refused as Refusal::replay (the node is
/// under a flood of validly signed requests, i.e. a peer misbehaves); busy_total() counts those.
class RequestVerifier {
 public:
  /// `secret`: the cluster secret (non-empty; copied, never logged). `window_ms`: largest
  /// accepted |now - timestamp|. `nonce_ttl_ms`: how long a nonce is remembered at least.
  /// `max_nonces`: cache bound (entries). `now_ms`: Unix time in ms (default: system clock).
  explicit RequestVerifier(std::string secret, int64_t window_ms = 30000, int64_t nonce_ttl_ms = 60000,
                           size_t max_nonces = 100000, std::function<int64_t()> now_ms = {});

  /// Looks a header field up by name (ASCII case-insensitive); "" when absent.
  using HeaderLookup = std::function<std::string(std::string_view name)>;

  /// Checks one request. `method` and `target` as received (target = raw request-target),
  /// `body` = the raw body bytes. Returns nullopt when accepted (and writes the sender's node
  /// id to `*sender_node` when not null), else the reason; every refusal is counted.
  std::optional<Refusal> verify(std::string_view method, std::string_view target, std::string_view body,
                                const HeaderLookup& header, std::string* sender_node = nullptr);

  /// Requests refused for `r` so far.
  uint64_t refused_total(Refusal r) const noexcept {
    return refused_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
  }
  /// Requests accepted so far.
  uint64_t accepted_total() const noexcept { return accepted_.load(std::memory_order_relaxed); }
  /// Refusals (counted under Refusal::replay) because the nonce cache was full of live entries.
  uint64_t busy_total() const noexcept { return busy_.load(std::memory_order_relaxed); }
  /// Nonces currently retained.
  size_t cached_nonces() const;

 private:
  std::optional<Refusal> refuse(Refusal r) noexcept {
    refused_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  void prune_locked(int64_t now);

  const std::string secret_;
  const int64_t window_ms_;
  const int64_t nonce_ttl_ms_;
  const size_t max_nonces_;
  const std::function<int64_t()> now_ms_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, int64_t> nonces_;     // nonce -> forget-at (Unix ms)
  std::deque<std::pair<int64_t, std::string>> order_;  // (forget-at, nonce), insertion order

  std::array<std::atomic<uint64_t>, static_cast<size_t>(Refusal::count)> refused_{};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> busy_{0};
};

}  // namespace castmesh::cluster::internode
