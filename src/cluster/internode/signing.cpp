#include "cluster/internode/signing.hpp"

#include <algorithm>
#include <cstdlib>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base/clock.hpp"

namespace castmesh::cluster::internode {

namespace {

bool is_lower_hex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Decimal Unix ms: 1..18 digits (cannot overflow int64_t), no sign.
std::optional<int64_t> parse_timestamp(std::string_view s) noexcept {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

constexpr size_t kNonceHexLen = 32;
constexpr size_t kSignatureHexLen = 64;

}  // namespace

std::string string_to_sign(std::string_view method, std::string_view target, std::string_view body,
                           std::string_view timestamp, std::string_view nonce) {
  std::string s;
  s.reserve(method.size() + target.size() + 64 + timestamp.size() + nonce.size() + 4);
  s.append(method).append("\n").append(target).append("\n").append(sha256_hex(body)).append("\n");
  s.append(timestamp).append("\n").append(nonce);
  return s;
}

std::string compute_signature(std::string_view secret, std::string_view method, std::string_view target,
                              std::string_view body, std::string_view timestamp, std::string_view nonce) {
  return net::to_hex(net::hmac_sha256(secret, string_to_sign(method, target, body, timestamp, nonce)));
}

SignedHeaders sign_request_with_nonce(std::string_view secret, std::string_view node_id, std::string_view method,
                                      std::string_view target, std::string_view body, int64_t now_unix_ms,
                                      std::string_view nonce) {
  std::string ts = std::to_string(now_unix_ms);
  std::string sig = compute_signature(secret, method, target, body, ts, nonce);
  SignedHeaders h;
  h.reserve(4);
  h.emplace_back(std::string(kHeaderNode), std::string(node_id));
  h.emplace_back(std::string(kHeaderTimestamp), std::move(ts));
  h.emplace_back(std::string(kHeaderNonce), std::string(nonce));
  h.emplace_back(std::string(kHeaderSignature), std::move(sig));
  return h;
}

SignedHeaders sign_request(std::string_view secret, std::string_view node_id, std::string_view method,
                           std::string_view target, std::string_view body, int64_t now_unix_ms) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) std::abort();  // no safe fallback for a nonce
  return sign_request_with_nonce(secret, node_id, method, target, body, now_unix_ms, net::to_hex(raw, sizeof raw));
}

const char* refusal_name(Refusal r) noexcept {
  switch (r) {
    case Refusal::missing: return "missing";
    case Refusal::bad_signature: return "bad_signature";
    case Refusal::expired: return "expired";
    case Refusal::replay: return "replay";
    case Refusal::bad_node: return "bad_node";
    default: return "unknown";
  }
}

const char* refusal_message(Refusal r) noexcept {
  switch (r) {
    case Refusal::missing: return "request signature headers missing or malformed";
    case Refusal::bad_signature: return "request signature invalid";
    case Refusal::expired: return "request signature expired";
    case Refusal::replay: return "request nonce replayed";
    case Refusal::bad_node: return "request node id invalid";
    default: return "request refused";
  }
}

RequestVerifier::RequestVerifier(std::string secret, int64_t window_ms, int64_t nonce_ttl_ms, size_t max_nonces,
                                 std::function<int64_t()> now_ms)
    : secret_(std::move(secret)),
      window_ms_(window_ms),
      nonce_ttl_ms_(nonce_ttl_ms),
      max_nonces_(std::max<size_t>(max_nonces, 1)),
      now_ms_(now_ms ? std::move(now_ms) : std::function<int64_t()>([] { return wall_ms(); })) {}

size_t RequestVerifier::cached_nonces() const {
  std::lock_guard lk(mu_);
  return nonces_.size();
}

void RequestVerifier::prune_locked(int64_t now) {
  // Entries are in insertion order; forget-at is nearly monotonic. An entry whose forget-at is
  // later than a newer one's only delays pruning of the newer (it is then kept a bit longer,
  // which is the safe direction).
  while (!order_.empty() && order_.front().first <= now) {
    nonces_.erase(order_.front().second);
    order_.pop_front();
  }
}

std::optional<Refusal> RequestVerifier::verify(std::string_view method, std::string_view target,
                                               std::string_view body, const HeaderLookup& header,
                                               std::string* sender_node) {
  const std::string node = header(kHeaderNode);
  const std::string ts_text = header(kHeaderTimestamp);
  const std::string nonce = header(kHeaderNonce);
  const std::string sig = header(kHeaderSignature);
  if (node.empty() || ts_text.empty() || nonce.empty() || sig.empty()) return refuse(Refusal::missing);
  const auto ts = parse_timestamp(ts_text);
  if (!ts || nonce.size() != kNonceHexLen || !is_lower_hex(nonce) || sig.size() != kSignatureHexLen ||
      !is_lower_hex(sig)) {
    return refuse(Refusal::missing);
  }
  if (!valid_node_id(node)) return refuse(Refusal::bad_node);

  const std::string expected = compute_signature(secret_, method, target, body, ts_text, nonce);
  // Both are 64 characters here; the length is not secret.
  if (CRYPTO_memcmp(expected.data(), sig.data(), kSignatureHexLen) != 0) return refuse(Refusal::bad_signature);

  const int64_t now = now_ms_();
  if (*ts > now + window_ms_ || *ts < now - window_ms_) return refuse(Refusal::expired);

  {
    std::lock_guard lk(mu_);
    prune_locked(now);
    if (nonces_.count(nonce) != 0) return refuse(Refusal::replay);
    if (nonces_.size() >= max_nonces_) {
      busy_.fetch_add(1, std::memory_order_relaxed);
      return refuse(Refusal::replay);
    }
    const int64_t forget_at = std::max(now + nonce_ttl_ms_, *ts + window_ms_) + 1;
    nonces_.emplace(nonce, forget_at);
    order_.emplace_back(forget_at, nonce);
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  if (sender_node) *sender_node = node;
  return std::nullopt;
}

}  // namespace castmesh::cluster::internode
