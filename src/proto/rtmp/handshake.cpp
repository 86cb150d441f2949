#include "proto/rtmp/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "base/clock.hpp"

namespace castmesh::rtmp {

namespace {

constexpr size_t kDigestLen = 32;

// The handshake keys are public protocol constants: an ASCII prefix followed by 32 fixed bytes.
constexpr uint8_t kKeyTail[32] = {0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0,
                                  0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80,
                                  0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};
constexpr char kPlayerText[] = "Genuine Adobe Flash Player 001";        // 30 bytes
constexpr char kServerText[] = "Genuine Adobe Flash Media Server 001";  // 36 bytes

struct Keys {
  uint8_t player[30 + 32];
  uint8_t server[36 + 32];
  constexpr Keys() : player{}, server{} {
    for (size_t i = 0; i < 30; ++i) player[i] = static_cast<uint8_t>(kPlayerText[i]);
    for (size_t i = 0; i < 36; ++i) server[i] = static_cast<uint8_t>(kServerText[i]);
    for (size_t i = 0; i < 32; ++i) {
      player[30 + i] = kKeyTail[i];
      server[36 + i] = kKeyTail[i];
    }
  }
};
constexpr Keys kKeys{};

// Server version advertised in a digest-based S1 (bytes 4..7); clients validate S1 only when
// the first byte is >= 3.
constexpr uint8_t kServerVersion[4] = {0x04, 0x05, 0x00, 0x01};

void random_fill(uint8_t* p, size_t n) {
  if (RAND_bytes(p, static_cast<int>(n)) == 1) return;
  // The handshake's random bytes need no cryptographic strength; fall back if OpenSSL's
  // generator is unavailable.
  std::mt19937 rng(static_cast<uint32_t>(mono_us()));
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(rng());
}

// HMAC-SHA256 over `block` (1536 bytes) leaving out the 32 bytes at `gap`.
std::array<uint8_t, 32> digest_without_gap(ByteView block, size_t gap, ByteView key) {
  uint8_t joined[kHandshakeSize - kDigestLen];
  std::memcpy(joined, block.data(), gap);
  std::memcpy(joined + gap, block.data() + gap + kDigestLen, kHandshakeSize - gap - kDigestLen);
  return hmac_sha256(key, ByteView(joined, sizeof(joined)));
}

// Writes the digest of `block` (1536 bytes, random elsewhere) under `scheme` in place.
void imprint_digest(uint8_t* block, DigestScheme scheme, ByteView key) {
  ByteView view(block, kHandshakeSize);
  size_t off = digest_offset(view, scheme);
  auto d = digest_without_gap(view, off, key);
  std::memcpy(block + off, d.data(), kDigestLen);
}

void put_time(uint8_t* p) { put_be(p, static_cast<uint32_t>(mono_ms()), 4); }

}  // namespace

ByteView flash_player_key_public() noexcept { return ByteView(kKeys.player, 30); }
ByteView flash_server_key_public() noexcept { return ByteView(kKeys.server, 36); }
ByteView flash_server_key_full() noexcept { return ByteView(kKeys.server, sizeof(kKeys.server)); }

std::array<uint8_t, 32> hmac_sha256(ByteView key, ByteView data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len);
  return out;
}

size_t digest_offset(ByteView block, DigestScheme scheme) noexcept {
  const size_t base = scheme == DigestScheme::offset_at_8 ? 8 : 772;
  if (block.size() < base + 4) return base + 4;
  const size_t sum = size_t(block[base]) + block[base + 1] + block[base + 2] + block[base + 3];
  return base + 4 + sum % 728;
}

std::optional<DigestScheme> find_digest(ByteView block, ByteView key) {
  if (block.size() != kHandshakeSize) return std::nullopt;
  for (DigestScheme s : {DigestScheme::offset_at_8, DigestScheme::offset_at_772}) {
    size_t off = digest_offset(block, s);
    auto d = digest_without_gap(block, off, key);
    if (std::memcmp(d.data(), block.data() + off, kDigestLen) == 0) return s;
  }
  return std::nullopt;
}

Result<Bytes> server_response(ByteView c0c1) {
  if (c0c1.size() != 1 + kHandshakeSize)
    return Error{Errc::malformed, "rtmp handshake: C0C1 must be 1537 bytes"};
  if (c0c1[0] != kRtmpVersion)
    return Error{Errc::unsupported, "rtmp handshake: version " + std::to_string(c0c1[0]) + " (only 3)"};
  ByteView c1 = c0c1.subspan(1);

  Bytes out(1 + 2 * kHandshakeSize);
  out[0] = kRtmpVersion;
  uint8_t* s1 = out.data() + 1;
  uint8_t* s2 = s1 + kHandshakeSize;
  random_fill(s1 + 8, kHandshakeSize - 8);
  put_time(s1);

  // Plain C1 (version bytes 4..7 zero) needs no digest search: clients that send them do not
  // validate the reply.
  const bool maybe_digest = c1[4] != 0 || c1[5] != 0 || c1[6] != 0 || c1[7] != 0;
  std::optional<DigestScheme> scheme;
  if (maybe_digest) scheme = find_digest(c1, flash_player_key_public());
  if (!scheme) {
    std::memset(s1 + 4, 0, 4);
    std::memcpy(s2, c1.data(), kHandshakeSize);  // S2 echoes C1 (RTMP spec 5.2.4)
    return out;
  }

  std::memcpy(s1 + 4, kServerVersion, 4);
  imprint_digest(s1, *scheme, flash_server_key_public());

  // S2: random, its last 32 bytes an HMAC keyed with HMAC(full server key, C1 digest).
  const size_t c1_off = digest_offset(c1, *scheme);
  auto s2_key = hmac_sha256(flash_server_key_full(), c1.subspan(c1_off, kDigestLen));
  random_fill(s2, kHandshakeSize - kDigestLen);
  auto sig = hmac_sha256(s2_key, ByteView(s2, kHandshakeSize - kDigestLen));
  std::memcpy(s2 + kHandshakeSize - kDigestLen, sig.data(), kDigestLen);
  return out;
}

Bytes client_c0c1() {
  Bytes out(1 + kHandshakeSize);
  out[0] = kRtmpVersion;
  uint8_t* c1 = out.data() + 1;
  random_fill(c1 + 8, kHandshakeSize - 8);
  put_time(c1);
  // A Flash Player version (bytes 4..7) marks a digest-carrying C1.
  c1[4] = 0x80;
  c1[5] = 0x00;
  c1[6] = 0x07;
  c1[7] = 0x02;
  imprint_digest(c1, DigestScheme::offset_at_8, flash_player_key_public());
  return out;
}

Bytes client_c2(ByteView s1) {
  Bytes out(kHandshakeSize, 0);
  std::memcpy(out.data(), s1.data(), std::min(s1.size(), kHandshakeSize));
  return out;
}

}  // namespace castmesh::rtmp
