#include "proto/hls/s3_store.hpp"

#include <gtest/gtest.h>

#include "net/digest.hpp"

namespace castmesh::hls {
namespace {

// The "GET Object" example of AWS's Signature Version 4 documentation ("Examples of signature
// calculations", header-based authentication): its canonical request hash and signature.
TEST(SigV4, AwsDocumentationGetObjectExample) {
  SigV4Request r;
  r.method = "GET";
  r.canonical_uri = "/test.txt";
  r.headers["host"] = "examplebucket.s3.amazonaws.com";
  r.headers["range"] = "bytes=0-9";
  r.payload_sha256 = net::sha256_hex("");
  r.headers["x-amz-content-sha256"] = r.payload_sha256;
  r.headers["x-amz-date"] = "20130524T000000Z";
  r.amz_date = "20130524T000000Z";
  EXPECT_EQ(r.payload_sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string canonical = sigv4_canonical_request(r);
  EXPECT_EQ(canonical,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(net::sha256_hex(canonical),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(sigv4_authorization(r, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, UriEncoding) {
  EXPECT_EQ(s3_uri_encode("live/cam/cam-1.ts", true), "live/cam/cam-1.ts");
  EXPECT_EQ(s3_uri_encode("live/cam", false), "live%2Fcam");
  EXPECT_EQ(s3_uri_encode("a b+c~", true), "a%20b%2Bc~");
}

TEST(S3Store, UnreachableEndpointKeepsLocalObjectsAndCountsFailures) {
  OssConfig cfg;
  cfg.endpoint = "http://127.0.0.1:1";  // nothing listens there
  cfg.bucket = "b";
  cfg.timeout_ms = 200;
  S3Store store(cfg);
  auto blob = std::make_shared<const Bytes>(Bytes{1, 2, 3});
  ASSERT_TRUE(store.put("live/cam/cam-1.ts", blob).ok()) << "put never waits for S3";
  EXPECT_EQ(store.peek("live/cam/cam-1.ts"), blob);
  EXPECT_EQ(store.get("live/cam/cam-1.ts"), blob);
  EXPECT_EQ(store.peek("live/cam/cam-2.ts"), nullptr);
  EXPECT_EQ(store.get("live/cam/cam-2.ts"), nullptr);
  EXPECT_TRUE(store.flush(5000));
  EXPECT_EQ(store.uploads_failed(), 1u);
  EXPECT_FALSE(store.put("../x", blob).ok());
}

}  // namespace
}  // namespace castmesh::hls
