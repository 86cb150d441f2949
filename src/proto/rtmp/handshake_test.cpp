#include "proto/rtmp/handshake.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace castmesh::rtmp {
namespace {

// The 32-byte digest of `block` at `off`, keyed with `key`, computed independently of the
// library (HMAC over the block with the digest bytes left out).
std::array<uint8_t, 32> expected_digest(ByteView block, size_t off, ByteView key) {
  Bytes joined(block.begin(), block.begin() + off);
  joined.insert(joined.end(), block.begin() + off + 32, block.end());
  return hmac_sha256(key, joined);
}

TEST(Handshake, HmacSha256KnownAnswer) {
  // RFC 4231 test case 2.
  std::string key = "Jefe", data = "what do ya want for nothing?";
  auto d = hmac_sha256(ByteView(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
                       ByteView(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
                            0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
                            0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
  EXPECT_EQ(std::memcmp(d.data(), want, 32), 0);
}

TEST(Handshake, KeysArePublicConstants) {
  ASSERT_EQ(flash_player_key_public().size(), 30u);
  ASSERT_EQ(flash_server_key_public().size(), 36u);
  ASSERT_EQ(flash_server_key_full().size(), 68u);
  EXPECT_EQ(std::memcmp(flash_player_key_public().data(), "Genuine Adobe Flash Player 001", 30), 0);
  EXPECT_EQ(std::memcmp(flash_server_key_public().data(), "Genuine Adobe Flash Media Server 001", 36), 0);
  EXPECT_EQ(flash_server_key_full()[36], 0xF0);
  EXPECT_EQ(flash_server_key_full()[67], 0xAE);
}

TEST(Handshake, RejectsBadVersionAndSize) {
  Bytes c0c1(1537, 0);
  c0c1[0] = 6;
  EXPECT_EQ(server_response(c0c1).code(), Errc::unsupported);
  c0c1[0] = 0x47;  // 'G' of an HTTP request
  EXPECT_EQ(server_response(c0c1).code(), Errc::unsupported);
  Bytes short_c0c1(1536, 0);
  short_c0c1[0] = 3;
  EXPECT_EQ(server_response(short_c0c1).code(), Errc::malformed);
}

TEST(Handshake, PlainC1GetsEcho) {
  Bytes c0c1(1537);
  c0c1[0] = 3;
  for (size_t i = 1; i < c0c1.size(); ++i) c0c1[i] = static_cast<uint8_t>(i * 13);
  std::memset(c0c1.data() + 5, 0, 4);  // version zero: plain handshake
  auto r = server_response(c0c1);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u + 1536 + 1536);
  EXPECT_EQ((*r)[0], 3);
  EXPECT_EQ(Bytes(r->begin() + 1 + 1536, r->end()), Bytes(c0c1.begin() + 1, c0c1.end()));
  // S1 advertises no server version, so clients do not validate it.
  EXPECT_EQ((*r)[5], 0);
  EXPECT_FALSE(find_digest(ByteView(r->data() + 1, 1536), flash_server_key_public()).has_value());
}

TEST(Handshake, NonZeroVersionWithoutDigestFallsBackToEcho) {
  Bytes c0c1(1537, 0x5A);
  c0c1[0] = 3;
  auto r = server_response(c0c1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Bytes(r->begin() + 1 + 1536, r->end()), Bytes(c0c1.begin() + 1, c0c1.end()));
}

void check_digest_reply(const Bytes& c0c1, DigestScheme scheme) {
  ByteView c1(c0c1.data() + 1, 1536);
  ASSERT_EQ(find_digest(c1, flash_player_key_public()), scheme);
  auto r = server_response(c0c1);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u + 1536 + 1536);
  ByteView s1(r->data() + 1, 1536), s2(r->data() + 1 + 1536, 1536);
  EXPECT_GE(s1[4], 3);  // a server version: clients validate
  // S1 digest, same scheme as the client's, keyed with the server key's public part.
  size_t s1_off = digest_offset(s1, scheme);
  auto want_s1 = expected_digest(s1, s1_off, flash_server_key_public());
  EXPECT_EQ(std::memcmp(want_s1.data(), s1.data() + s1_off, 32), 0);
  EXPECT_EQ(find_digest(s1, flash_server_key_public()), scheme);
  // S2: last 32 bytes = HMAC(HMAC(full server key, C1 digest), S2[0..1504)).
  size_t c1_off = digest_offset(c1, scheme);
  auto key = hmac_sha256(flash_server_key_full(), c1.subspan(c1_off, 32));
  auto sig = hmac_sha256(key, s2.subspan(0, 1536 - 32));
  EXPECT_EQ(std::memcmp(sig.data(), s2.data() + 1536 - 32, 32), 0);
}

TEST(Handshake, DigestC1Scheme1GetsDigestReply) {
  Bytes c0c1 = client_c0c1();
  ASSERT_EQ(c0c1.size(), 1537u);
  check_digest_reply(c0c1, DigestScheme::offset_at_8);
}

TEST(Handshake, DigestC1Scheme0GetsDigestReply) {
  Bytes c0c1(1537);
  c0c1[0] = 3;
  for (size_t i = 1; i < c0c1.size(); ++i) c0c1[i] = static_cast<uint8_t>(i * 31 + 7);
  uint8_t* c1 = c0c1.data() + 1;
  c1[4] = 9;
  ByteView view(c1, 1536);
  size_t off = digest_offset(view, DigestScheme::offset_at_772);
  size_t sum = size_t(c1[772]) + c1[773] + c1[774] + c1[775];
  ASSERT_EQ(off, 776 + sum % 728);
  auto d = expected_digest(view, off, flash_player_key_public());
  std::memcpy(c1 + off, d.data(), 32);
  check_digest_reply(c0c1, DigestScheme::offset_at_772);
}

TEST(Handshake, CorruptedDigestIsPlain) {
  Bytes c0c1 = client_c0c1();
  size_t off = digest_offset(ByteView(c0c1.data() + 1, 1536), DigestScheme::offset_at_8);
  c0c1[1 + off] ^= 1;
  auto r = server_response(c0c1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Bytes(r->begin() + 1 + 1536, r->end()), Bytes(c0c1.begin() + 1, c0c1.end()));
}

TEST(Handshake, ClientC2EchoesS1) {
  Bytes s1(1536);
  for (size_t i = 0; i < s1.size(); ++i) s1[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(client_c2(s1), s1);
  EXPECT_EQ(client_c2(ByteView(s1.data(), 10)).size(), 1536u);
}

TEST(Handshake, ClientC0C1IsRandomised) {
  Bytes a = client_c0c1(), b = client_c0c1();
  EXPECT_NE(Bytes(a.begin() + 9, a.end()), Bytes(b.begin() + 9, b.end()));
}

}  // namespace
}  // namespace castmesh::rtmp
