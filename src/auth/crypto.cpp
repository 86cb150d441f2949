#include "auth/crypto.hpp"

#include <argon2.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cctype>
#include <limits>
#include <stdexcept>
#include <vector>

namespace castmesh::auth {

namespace {

void random_bytes(uint8_t* out, size_t n) {
  if (n > static_cast<size_t>(std::numeric_limits<int>::max()) || RAND_bytes(out, static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed: the random generator is not seeded");
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<std::string> hash_password(std::string_view password) {
  if (password.size() > std::numeric_limits<uint32_t>::max()) return Error{Errc::too_large, "password too long"};
  std::array<uint8_t, kArgonSaltBytes> salt{};
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return Error{Errc::io_error, "random generator failed"};
  }
  const size_t len = argon2_encodedlen(kArgonTimeCost, kArgonMemoryKiB, kArgonLanes,
                                       static_cast<uint32_t>(salt.size()), kArgonHashBytes, Argon2_id);
  std::vector<char> encoded(len + 1, '\0');
  const int rc = argon2id_hash_encoded(kArgonTimeCost, kArgonMemoryKiB, kArgonLanes, password.data(),
                                       password.size(), salt.data(), salt.size(), kArgonHashBytes,
                                       encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Error{Errc::io_error, std::string("argon2id: ") + argon2_error_message(rc)};
  return std::string(encoded.data());
}

bool verify_password(std::string_view encoded, std::string_view password) {
  // argon2id_verify needs a NUL-terminated string; reject anything that is not an Argon2id
  // encoding before handing it over (it would also fail, but this keeps the contract obvious).
  if (encoded.rfind("$argon2id$", 0) != 0 || encoded.find('\0') != std::string_view::npos) return false;
  if (password.size() > std::numeric_limits<uint32_t>::max()) return false;
  const std::string enc(encoded);
  return argon2id_verify(enc.c_str(), password.data(), password.size()) == ARGON2_OK;
}

std::string base64url(const uint8_t* bytes, size_t n) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::string new_token() {
  std::array<uint8_t, 32> raw{};
  random_bytes(raw.data(), raw.size());
  return base64url(raw.data(), raw.size());
}

std::string token_hash(std::string_view token) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string random_base62(size_t n) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  out.reserve(n);
  std::array<uint8_t, 64> pool{};
  while (out.size() < n) {
    random_bytes(pool.data(), pool.size());
    for (uint8_t b : pool) {
      // 248 = 4 * 62: values at or above it would favour the first characters.
      if (b >= 248) continue;
      out += kAlphabet[b % 62];
      if (out.size() == n) break;
    }
  }
  return out;
}

std::string request_token(std::string_view authorization, std::string_view cookie) {
  const std::string_view a = trim(authorization);
  if (a.size() > 7 && iequals(a.substr(0, 7), "bearer ")) {
    const std::string_view t = trim(a.substr(7));
    if (!t.empty()) return std::string(t);
  }
  std::string_view c = cookie;
  while (!c.empty()) {
    const size_t semi = c.find(';');
    std::string_view pair = trim(c.substr(0, semi));
    c = semi == std::string_view::npos ? std::string_view{} : c.substr(semi + 1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim(pair.substr(0, eq)) != kTokenCookie) continue;
    std::string_view v = trim(pair.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (!v.empty()) return std::string(v);
  }
  return {};
}

}  // namespace castmesh::auth
