#include "cluster/internode/signing.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

namespace castmesh::cluster::internode {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  std::string s;
  char buf[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", p[i]);
    s += buf;
  }
  return s;
}

// Reference computation with OpenSSL's one-shot functions, written out independently.
std::string reference_signature(const std::string& secret, const std::string& msg) {
  unsigned char md[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len);
  return hex(md, len);
}

std::string find(const SignedHeaders& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (k == name) return v;
  }
  return {};
}

RequestVerifier::HeaderLookup lookup(const SignedHeaders& h) {
  return [h](std::string_view name) { return find(h, name); };
}

constexpr int64_t kNow = 1700000000000;
const std::string kSecret = "s3cret-cluster-key";
const std::string kNonce = "00112233445566778899aabbccddeeff";

TEST(InternodeSigning, Sha256OfEmptyBodyIsTheKnownDigest) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(InternodeSigning, Rfc4231TestCase2) {
  // RFC 4231 4.3: key "Jefe", data "what do ya want for nothing?".
  unsigned char md[32];
  unsigned int len = 0;
  const std::string data = "what do ya want for nothing?";
  HMAC(EVP_sha256(), "Jefe", 4, reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  EXPECT_EQ(hex(md, len), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(InternodeSigning, FixedVectorMatchesIndependentHmac) {
  const std::string body = R"({"node_id":"a"})";
  auto h = sign_request_with_nonce(kSecret, "node-a", "POST", "/internal/v1/heartbeat?x=1", body, kNow, kNonce);
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].first, "X-Castmesh-Node");
  EXPECT_EQ(h[0].second, "node-a");
  EXPECT_EQ(h[1].first, "X-Castmesh-Timestamp");
  EXPECT_EQ(h[1].second, "1700000000000");
  EXPECT_EQ(h[2].first, "X-Castmesh-Nonce");
  EXPECT_EQ(h[2].second, kNonce);
  EXPECT_EQ(h[3].first, "X-Castmesh-Signature");

  unsigned char d[32];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), d);
  const std::string msg = "POST\n/internal/v1/heartbeat?x=1\n" + hex(d, 32) + "\n1700000000000\n" + kNonce;
  EXPECT_EQ(string_to_sign("POST", "/internal/v1/heartbeat?x=1", body, "1700000000000", kNonce), msg);
  EXPECT_EQ(h[3].second, reference_signature(kSecret, msg));
  EXPECT_EQ(h[3].second.size(), 64u);
  // A different secret gives a different signature.
  EXPECT_NE(compute_signature("other", "POST", "/internal/v1/heartbeat?x=1", body, "1700000000000", kNonce),
            h[3].second);
}

TEST(InternodeSigning, FreshNoncesAre32LowercaseHexAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto h = sign_request(kSecret, "n", "GET", "/internal/v1/node", "", kNow);
    const std::string n = find(h, kHeaderNonce);
    ASSERT_EQ(n.size(), 32u);
    for (char c : n) ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << n;
    seen.insert(n);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(InternodeSigning, NodeIdCharset) {
  EXPECT_TRUE(valid_node_id("a"));
  EXPECT_TRUE(valid_node_id("Node_1.eu-west"));
  EXPECT_TRUE(valid_node_id(std::string(64, 'x')));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id(std::string(65, 'x')));
  EXPECT_FALSE(valid_node_id("a b"));
  EXPECT_FALSE(valid_node_id("a/b"));
  EXPECT_FALSE(valid_node_id("a\nb"));
}

struct VerifierTest : ::testing::Test {
  std::atomic<int64_t> now{kNow};
  RequestVerifier v{kSecret, 30000, 60000, 100000, [this] { return now.load(); }};
};

TEST_F(VerifierTest, AcceptsAValidRequestAndReportsTheSender) {
  auto h = sign_request(kSecret, "node-a", "POST", "/internal/v1/heartbeat", "{}", kNow);
  std::string sender;
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat", "{}", lookup(h), &sender), std::nullopt);
  EXPECT_EQ(sender, "node-a");
  EXPECT_EQ(v.accepted_total(), 1u);
  EXPECT_EQ(v.cached_nonces(), 1u);
}

TEST_F(VerifierTest, TamperedBodyPathMethodOrTimestampIsBadSignature) {
  auto h = sign_request(kSecret, "node-a", "POST", "/internal/v1/heartbeat", "{\"a\":1}", kNow);
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat", "{\"a\":2}", lookup(h)), Refusal::bad_signature);
  EXPECT_EQ(v.verify("POST", "/internal/v1/node", "{\"a\":1}", lookup(h)), Refusal::bad_signature);
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat?x", "{\"a\":1}", lookup(h)), Refusal::bad_signature);
  EXPECT_EQ(v.verify("PUT", "/internal/v1/heartbeat", "{\"a\":1}", lookup(h)), Refusal::bad_signature);
  auto ts_changed = h;
  ts_changed[1].second = std::to_string(kNow + 1);
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat", "{\"a\":1}", lookup(ts_changed)), Refusal::bad_signature);
  auto wrong_secret = sign_request("not-the-secret", "node-a", "POST", "/internal/v1/heartbeat", "{\"a\":1}", kNow);
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat", "{\"a\":1}", lookup(wrong_secret)), Refusal::bad_signature);
  EXPECT_EQ(v.refused_total(Refusal::bad_signature), 6u);
  // Nothing was recorded for the refused requests: the original still passes once.
  EXPECT_EQ(v.cached_nonces(), 0u);
  EXPECT_EQ(v.verify("POST", "/internal/v1/heartbeat", "{\"a\":1}", lookup(h)), std::nullopt);
}

TEST_F(VerifierTest, OldOrFutureTimestampIsExpired) {
  auto old_req = sign_request(kSecret, "n", "GET", "/x", "", kNow - 30001);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(old_req)), Refusal::expired);
  auto future = sign_request(kSecret, "n", "GET", "/x", "", kNow + 30001);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(future)), Refusal::expired);
  auto edge = sign_request(kSecret, "n", "GET", "/x", "", kNow - 30000);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(edge)), std::nullopt);
  EXPECT_EQ(v.refused_total(Refusal::expired), 2u);
}

TEST_F(VerifierTest, SameNonceTwiceIsReplay) {
  auto h = sign_request(kSecret, "n", "GET", "/x", "", kNow);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), std::nullopt);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::replay);
  now = kNow + 30000;  // still inside the window: still a replay
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::replay);
  now = kNow + 30001;  // outside the window: expired before the cache is consulted
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::expired);
  EXPECT_EQ(v.refused_total(Refusal::replay), 2u);
}

TEST(RequestVerifierRetention, NonceOutlivesAShortTtlWhileItsTimestampIsInTheWindow) {
  int64_t now = kNow;
  RequestVerifier v(kSecret, 30000, 1000, 100, [&] { return now; });  // TTL shorter than the window
  auto h = sign_request(kSecret, "n", "GET", "/x", "", kNow + 29000);  // timestamp from the future
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), std::nullopt);
  now = kNow + 5000;  // TTL passed, timestamp still valid until kNow + 59000
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::replay);
  now = kNow + 59000;
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::replay);
  now = kNow + 59001;
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::expired);
  EXPECT_EQ(v.refused_total(Refusal::replay), 2u);
}

TEST_F(VerifierTest, ExpiredNoncesArePruned) {
  for (int i = 0; i < 10; ++i) {
    auto h = sign_request(kSecret, "n", "GET", "/x", "", kNow);
    ASSERT_EQ(v.verify("GET", "/x", "", lookup(h)), std::nullopt);
  }
  EXPECT_EQ(v.cached_nonces(), 10u);
  now = kNow + 60001;
  auto h = sign_request(kSecret, "n", "GET", "/x", "", now);
  ASSERT_EQ(v.verify("GET", "/x", "", lookup(h)), std::nullopt);
  EXPECT_EQ(v.cached_nonces(), 1u);
}

TEST(RequestVerifierBound, FullCacheRefusesAsReplayUntilEntriesExpire) {
  int64_t now = kNow;
  RequestVerifier v(kSecret, 30000, 60000, 3, [&] { return now; });
  for (int i = 0; i < 3; ++i) {
    auto h = sign_request(kSecret, "n", "GET", "/x", "", now);
    ASSERT_EQ(v.verify("GET", "/x", "", lookup(h)), std::nullopt);
  }
  auto h = sign_request(kSecret, "n", "GET", "/x", "", now);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::replay);
  EXPECT_EQ(v.busy_total(), 1u);
  EXPECT_EQ(v.cached_nonces(), 3u);
  now += 60001;
  auto h2 = sign_request(kSecret, "n", "GET", "/x", "", now);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h2)), std::nullopt);
  EXPECT_EQ(v.cached_nonces(), 1u);
}

TEST_F(VerifierTest, MissingOrMalformedHeadersAreMissing) {
  const auto h = sign_request(kSecret, "node-a", "GET", "/x", "", kNow);
  for (size_t drop = 0; drop < 4; ++drop) {
    auto partial = h;
    partial.erase(partial.begin() + static_cast<long>(drop));
    EXPECT_EQ(v.verify("GET", "/x", "", lookup(partial)), Refusal::missing) << drop;
  }
  auto upper_sig = h;
  for (auto& c : upper_sig[3].second) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(upper_sig)), Refusal::missing);
  auto short_nonce = h;
  short_nonce[2].second = "abcd";
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(short_nonce)), Refusal::missing);
  auto bad_ts = h;
  bad_ts[1].second = "-5";
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(bad_ts)), Refusal::missing);
  EXPECT_EQ(v.refused_total(Refusal::missing), 7u);
  EXPECT_EQ(v.accepted_total(), 0u);
}

TEST_F(VerifierTest, BadNodeIdIsBadNode) {
  auto h = sign_request(kSecret, "bad node", "GET", "/x", "", kNow);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h)), Refusal::bad_node);
  auto h2 = sign_request(kSecret, std::string(65, 'a'), "GET", "/x", "", kNow);
  EXPECT_EQ(v.verify("GET", "/x", "", lookup(h2)), Refusal::bad_node);
  EXPECT_EQ(v.refused_total(Refusal::bad_node), 2u);
}

TEST_F(VerifierTest, ConcurrentVerifiersAcceptEachNonceOnce) {
  std::vector<SignedHeaders> reqs;
  for (int i = 0; i < 200; ++i) reqs.push_back(sign_request(kSecret, "n", "GET", "/x", "", kNow));
  std::atomic<int> accepted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (const auto& r : reqs) {
        if (!v.verify("GET", "/x", "", lookup(r))) accepted.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(accepted.load(), 200);
  EXPECT_EQ(v.refused_total(Refusal::replay), 600u);
}

TEST(InternodeSigning, RefusalNames) {
  EXPECT_STREQ(refusal_name(Refusal::missing), "missing");
  EXPECT_STREQ(refusal_name(Refusal::bad_signature), "bad_signature");
  EXPECT_STREQ(refusal_name(Refusal::expired), "expired");
  EXPECT_STREQ(refusal_name(Refusal::replay), "replay");
  EXPECT_STREQ(refusal_name(Refusal::bad_node), "bad_node");
  EXPECT_STREQ(refusal_message(Refusal::expired), "request signature expired");
}

}  // namespace
}  // namespace castmesh::cluster::internode
