#pragma once
/// \file Password hashing (Argon2id, RFC 9106) and bearer tokens (random bytes from OpenSSL's
/// CSPRNG, base64url without padding, RFC 4648 section 5) with their SHA-256 digests (FIPS 180-4).
/// All functions are thread-safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace castmesh::auth {

/// Argon2id cost parameters used by hash_password (OWASP's second recommended set:
/// about 30-60 ms and 19 MiB per hash on a small server).
inline constexpr uint32_t kArgonTimeCost = 2;
inline constexpr uint32_t kArgonMemoryKiB = 19456;
inline constexpr uint32_t kArgonLanes = 1;
inline constexpr size_t kArgonSaltBytes = 16;
inline constexpr size_t kArgonHashBytes = 32;

/// Hashes `password` with Argon2id (t=2, m=19456 KiB, p=1, 16-byte random salt, 32-byte tag)
/// and returns the PHC-style encoded string `$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, which
/// carries its own parameters. Errors: Errc::io_error when the random generator or libargon2
/// fails (out of memory), Errc::too_large for a password over 4 GiB.
Result<std::string> hash_password(std::string_view password);

/// True when `password` matches `encoded` (a string from hash_password, any Argon2id cost).
/// The comparison is constant-time (argon2id_verify). A malformed or empty `encoded` string
/// yields false; this function never throws.
bool verify_password(std::string_view encoded, std::string_view password);

/// Base64url (RFC 4648 section 5) of `bytes`, without '=' padding.
std::string base64url(const uint8_t* bytes, size_t n);

/// A new bearer token: 32 random bytes (RAND_bytes) as base64url, 43 characters.
/// Throws std::runtime_error only when the CSPRNG cannot be seeded (not recoverable).
std::string new_token();

/// Lower-case hex SHA-256 of `token` (64 characters): what the store keeps in place of it.
std::string token_hash(std::string_view token);

/// `n` random characters from [0-9A-Za-z] (rejection sampling, no modulo bias), e.g. for room
/// ids. Throws std::runtime_error only when the CSPRNG fails.
std::string random_base62(size_t n);

/// The bearer token of an HTTP request: from `Authorization: Bearer TOKEN` (scheme
/// case-insensitive, RFC 6750 section 2.1) when present, else from the cookie
/// `castmesh_token` of the `Cookie` header (RFC 6265 section 5.4). "" when neither has one.
std::string request_token(std::string_view authorization, std::string_view cookie);

/// Name of the session cookie.
inline constexpr std::string_view kTokenCookie = "castmesh_token";

}  // namespace castmesh::auth
