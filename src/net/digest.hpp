#pragma once
/// \file Small OpenSSL digest helpers shared by the request signers (inter-node HMAC, AWS SigV4)
/// and whoever needs hex text of bytes. No Asio.

#include <cstddef>
#include <string>
#include <string_view>

namespace castmesh::net {

/// Lower-case hex of `n` bytes at `p` (2n characters).
std::string to_hex(const unsigned char* p, size_t n);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

/// Lower-case hex of SHA-256(data) (64 characters).
std::string sha256_hex(std::string_view data);

/// HMAC-SHA256(key, data) as 32 raw bytes (RFC 2104).
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace castmesh::net
