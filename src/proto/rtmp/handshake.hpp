#pragma once
/// \file RTMP handshake (RTMP specification 1.0, section 5.2), server side, plus client
/// helpers for load generators and tests.
///
/// Besides the plain handshake of the spec (S1 random, S2 = echo of C1), the server answers a
/// C1 that carries a Flash Player 9 digest (HMAC-SHA256 keyed with "Genuine Adobe Flash Player
/// 001", at a position given by bytes 8..11 or 772..775 of C1) with a digest-based S1/S2
/// (keyed with the "Genuine Adobe Flash Media Server 001" key), which players that validate the
/// server (ffmpeg when playing, librtmp with FP9 handshakes) require.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::rtmp {

/// Size of C1, C2, S1 and S2, bytes (RTMP spec 5.2.3).
inline constexpr size_t kHandshakeSize = 1536;
/// The only C0/S0 version accepted and sent (RTMP spec 5.2.2).
inline constexpr uint8_t kRtmpVersion = 3;

/// Where a digest sits in a 1536-byte C1/S1 block.
enum class DigestScheme : uint8_t {
  offset_at_772,  ///< offset bytes 772..775; digest at 776 + (sum % 728)  ("scheme 0")
  offset_at_8,    ///< offset bytes 8..11; digest at 12 + (sum % 728)      ("scheme 1")
};

/// Byte offset of the 32-byte digest of `block` (1536 bytes) under `scheme`.
size_t digest_offset(ByteView block, DigestScheme scheme) noexcept;

/// If `block` (1536 bytes) carries a valid HMAC-SHA256 digest under either scheme, keyed with
/// `key` over the block without the digest's 32 bytes, returns the scheme that matched (the
/// offset_at_8 scheme is tried first). Returns nullopt for a plain block or a wrong size.
std::optional<DigestScheme> find_digest(ByteView block, ByteView key);

/// The 30-byte public part of the Flash Player key, which keys a client's C1 digest.
ByteView flash_player_key_public() noexcept;
/// The 36-byte public part of the Flash Media Server key, which keys a server's S1 digest.
ByteView flash_server_key_public() noexcept;
/// The full 68-byte Flash Media Server key; HMAC-SHA256(full key, C1 digest) keys S2's digest.
ByteView flash_server_key_full() noexcept;

/// HMAC-SHA256 of `data` with `key`, 32 bytes.
std::array<uint8_t, 32> hmac_sha256(ByteView key, ByteView data);

/// Server reply to C0+C1 (1537 bytes): S0+S1+S2 (1 + 1536 + 1536 bytes). When C1 carries a
/// valid Flash Player digest the reply is digest based (same scheme as C1; S1 advertises a
/// server version, so clients validate it), otherwise S1 is random with zero version and S2
/// echoes C1. Errors: Errc::malformed when `c0c1` is not 1537 bytes, Errc::unsupported when
/// C0 is not version 3 (e.g. 6 = RTMPE).
Result<Bytes> server_response(ByteView c0c1);

/// Client C0+C1 (1537 bytes) whose C1 carries a Flash Player digest (offset_at_8 scheme).
Bytes client_c0c1();

/// Client C2 for the server's S1: an echo of S1, always 1536 bytes (a shorter `s1` is
/// zero-padded, a longer one truncated).
Bytes client_c2(ByteView s1);

}  // namespace castmesh::rtmp
