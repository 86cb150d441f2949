#include "auth/crypto.hpp"

#include <gtest/gtest.h>

#include <set>

namespace castmesh::auth {
namespace {

TEST(Password, HashIsArgon2idWithTheConfiguredCostAndVerifies) {
  auto h = hash_password("correct horse battery staple");
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0), 0u) << *h;
  EXPECT_TRUE(verify_password(*h, "correct horse battery staple"));
  EXPECT_FALSE(verify_password(*h, "correct horse battery stapl"));
  EXPECT_FALSE(verify_password(*h, ""));
}

TEST(Password, SaltMakesEveryHashDifferent) {
  auto a = hash_password("password1");
  auto b = hash_password("password1");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(verify_password(*b, "password1"));
}

TEST(Password, MalformedEncodingsAreRejected) {
  EXPECT_FALSE(verify_password("", "x"));
  EXPECT_FALSE(verify_password("plaintext", "plaintext"));
  EXPECT_FALSE(verify_password("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA", "x"));
  EXPECT_FALSE(verify_password("$argon2id$v=19$m=19456,t=2,p=1$!!!$???", "x"));
  EXPECT_FALSE(verify_password(std::string_view("$argon2id$\0zz", 13), "x"));
}

TEST(Password, BinaryPasswordsAreHashedWhole) {
  const std::string p("abc\0def\xff", 8);
  auto h = hash_password(p);
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(verify_password(*h, p));
  EXPECT_FALSE(verify_password(*h, "abc"));
}

TEST(Token, Base64UrlMatchesRfc4648Vectors) {
  auto enc = [](std::string_view s) { return base64url(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg");
  EXPECT_EQ(enc("fo"), "Zm8");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg");
  EXPECT_EQ(enc("fooba"), "Zm9vYmE");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  const uint8_t hi[] = {0xfb, 0xff, 0xbf};
  EXPECT_EQ(base64url(hi, 3), "-_-_");
}

TEST(Token, NewTokensAre43UrlSafeCharsAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string t = new_token();
    EXPECT_EQ(t.size(), 43u);
    EXPECT_EQ(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos)
        << t;
    EXPECT_TRUE(seen.insert(t).second);
  }
}

TEST(Token, HashIsHexSha256) {
  EXPECT_EQ(token_hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Token, RandomBase62) {
  const std::string id = random_base62(10);
  EXPECT_EQ(id.size(), 10u);
  EXPECT_EQ(id.find_first_not_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
            std::string::npos);
  EXPECT_NE(random_base62(10), random_base62(10));
  EXPECT_EQ(random_base62(0), "");
  EXPECT_EQ(random_base62(300).size(), 300u);
}

TEST(Token, FromAuthorizationHeaderOrCookie) {
  EXPECT_EQ(request_token("Bearer abc", ""), "abc");
  EXPECT_EQ(request_token("bearer   abc  ", "castmesh_token=zzz"), "abc");
  EXPECT_EQ(request_token("", "a=1; castmesh_token=xyz; b=2"), "xyz");
  EXPECT_EQ(request_token("Basic dXNlcjpwYXNz", "castmesh_token=\"q\""), "q");
  EXPECT_EQ(request_token("Bearer ", "castmesh_token_x=1"), "");
  EXPECT_EQ(request_token("", "xcastmesh_token=1"), "");
  EXPECT_EQ(request_token("", ""), "");
}

}  // namespace
}  // namespace castmesh::auth
