#include "proto/api/auth_api.hpp"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include "auth/crypto.hpp"
#include "proto/api/api_test_fixture.hpp"

namespace castmesh::api {
namespace {

namespace json = boost::json;
using testing::HttpFixture;
using testing::Reply;

class AuthApiTest : public ::testing::Test {
 protected:
  void SetUp() override { start(auth::AuthConfig{}); }

  void start(const auth::AuthConfig& cfg) {
    store_ = testing::open_test_store();
    ASSERT_TRUE(store_);
    accounts_ = std::make_unique<auth::Accounts>(*store_, cfg);
    http_ = std::make_unique<HttpFixture>();
    register_auth_api(http_->router(), *accounts_);
    http_->start();
  }

  void TearDown() override { http_.reset(); }

  Reply post(const std::string& path, const std::string& body, const std::string& extra = "") {
    return http_->call("POST", path, body, extra);
  }

  static std::string error_code(const Reply& r) {
    if (!r.json.is_object() || !r.json.as_object().contains("code")) return "<no code: " + r.body + ">";
    EXPECT_TRUE(r.json.at("error").is_string()) << r.body;
    return std::string(r.json.at("code").as_string());
  }

  std::unique_ptr<testing::FlakyStore> store_;
  std::unique_ptr<auth::Accounts> accounts_;
  std::unique_ptr<HttpFixture> http_;
};

TEST_F(AuthApiTest, RegisterSetsCookieAndReturnsUserAndToken) {
  Reply r = post("/api/v1/auth/register", R"({"username":"alice","password":"s3cret-pass"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  const auto& o = r.json.as_object();
  EXPECT_EQ(o.at("user").at("username").as_string(), "alice");
  EXPECT_EQ(o.at("user").at("display_name").as_string(), "alice");
  EXPECT_EQ(o.at("user").at("role").as_string(), "user");
  EXPECT_GT(o.at("user").at("id").as_int64(), 0);
  EXPECT_FALSE(o.at("user").as_object().contains("password_hash"));
  EXPECT_EQ(r.body.find("argon2"), std::string::npos);
  const std::string token(o.at("token").as_string());
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(r.headers["set-cookie"],
            "castmesh_token=" + token + "; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000");

  // The token works as bearer and as cookie.
  Reply me = http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer(token));
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json.at("user").at("username").as_string(), "alice");
  me = http_->call("GET", "/api/v1/auth/me", "", "Cookie: theme=dark; castmesh_token=" + token + "\r\n");
  ASSERT_EQ(me.status, 200) << me.body;
  EXPECT_EQ(me.json.at("user").at("id").as_int64(), o.at("user").at("id").as_int64());
}

TEST_F(AuthApiTest, LoginLogoutAndMe) {
  ASSERT_EQ(post("/api/v1/auth/register", R"({"username":"bob","password":"bobs-password"})").status, 201);
  Reply bad = post("/api/v1/auth/login", R"({"username":"bob","password":"nope-nope"})");
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_code(bad), "unauthorized");
  EXPECT_EQ(bad.headers.count("set-cookie"), 0u);

  Reply ok = post("/api/v1/auth/login", R"({"username":"bob","password":"bobs-password"})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  const std::string token(ok.json.at("token").as_string());
  EXPECT_NE(ok.headers["set-cookie"].find("castmesh_token=" + token), std::string::npos);
  EXPECT_GT(ok.json.at("expires_at_ms").as_int64(), 0);

  EXPECT_EQ(http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer(token)).status, 200);
  Reply out = post("/api/v1/auth/logout", "", HttpFixture::bearer(token));
  EXPECT_EQ(out.status, 204);
  EXPECT_NE(out.headers["set-cookie"].find("castmesh_token=;"), std::string::npos);
  EXPECT_NE(out.headers["set-cookie"].find("Max-Age=0"), std::string::npos);
  Reply me = http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer(token));
  EXPECT_EQ(me.status, 401);
  EXPECT_EQ(error_code(me), "unauthorized");
  // Logging out without a session is fine.
  EXPECT_EQ(post("/api/v1/auth/logout", "").status, 204);
}

TEST_F(AuthApiTest, MeNeedsAValidToken) {
  EXPECT_EQ(http_->call("GET", "/api/v1/auth/me").status, 401);
  EXPECT_EQ(http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer("forged")).status, 401);
  EXPECT_EQ(http_->call("GET", "/api/v1/auth/me", "", "Authorization: Basic Ym9iOnB3\r\n").status, 401);
}

TEST_F(AuthApiTest, MalformedBodiesGetClear400s) {
  struct Case {
    std::string body, code, message_part;
  };
  const Case cases[] = {
      {"", "bad_json", "body is required"},
      {"{not json", "bad_json", "malformed JSON"},
      {"[1,2]", "bad_json", "must be a JSON object"},
      {R"({"username":"alice"})", "bad_request", "'password' is required"},
      {R"({"username":5,"password":"s3cret-pass"})", "bad_request", "'username' must be a string"},
      {R"({"username":"a b","password":"s3cret-pass"})", "bad_request", "username may contain only"},
      {R"({"username":"alice","password":"short"})", "bad_request", "8..256"},
  };
  for (const auto& c : cases) {
    Reply r = post("/api/v1/auth/register", c.body);
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    EXPECT_EQ(error_code(r), c.code) << c.body;
    ASSERT_TRUE(r.json.is_object()) << r.body;
    EXPECT_NE(std::string(r.json.at("error").as_string()).find(c.message_part), std::string::npos)
        << c.body << " -> " << r.body;
  }
  Reply r = post("/api/v1/auth/login", R"({"username":"alice","password":null})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code(r), "bad_request");
}

TEST_F(AuthApiTest, DuplicateUsernameIsAConflict) {
  ASSERT_EQ(post("/api/v1/auth/register", R"({"username":"carol","password":"carols-pass"})").status, 201);
  Reply r = post("/api/v1/auth/register", R"({"username":"carol","password":"other-pass"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(error_code(r), "conflict");
}

TEST_F(AuthApiTest, RegistrationDisabledIs403) {
  http_.reset();
  auth::AuthConfig cfg;
  cfg.allow_registration = false;
  start(cfg);
  Reply r = post("/api/v1/auth/register", R"({"username":"dave","password":"daves-pass"})");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(error_code(r), "forbidden");
}

TEST_F(AuthApiTest, LoginRateLimitAnswers429WithRetryAfter) {
  ASSERT_EQ(post("/api/v1/auth/register", R"({"username":"erin","password":"erins-pass"})").status, 201);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(post("/api/v1/auth/login", R"({"username":"erin","password":"wrong-pass"})").status, 401) << i;
  }
  Reply r = post("/api/v1/auth/login", R"({"username":"erin","password":"erins-pass"})");
  EXPECT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(error_code(r), "rate_limited");
  ASSERT_TRUE(r.headers.count("retry-after"));
  const int secs = std::stoi(r.headers["retry-after"]);
  EXPECT_GE(secs, 1);
  EXPECT_LE(secs, 12);
}

TEST_F(AuthApiTest, DatabaseDownIs503) {
  Reply reg = post("/api/v1/auth/register", R"({"username":"frank","password":"franks-pass"})");
  ASSERT_EQ(reg.status, 201);
  const std::string token(reg.json.at("token").as_string());
  store_->down = true;
  Reply r = post("/api/v1/auth/login", R"({"username":"frank","password":"franks-pass"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(error_code(r), "unavailable");
  r = http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer(token));
  EXPECT_EQ(r.status, 503);
  r = post("/api/v1/auth/register", R"({"username":"gina","password":"ginas-pass"})");
  EXPECT_EQ(r.status, 503);
  store_->down = false;
  EXPECT_EQ(http_->call("GET", "/api/v1/auth/me", "", HttpFixture::bearer(token)).status, 200);
}

TEST_F(AuthApiTest, WrongMethodIs405) {
  EXPECT_EQ(http_->call("GET", "/api/v1/auth/login").status, 405);
  EXPECT_EQ(http_->call("POST", "/api/v1/auth/me", "{}").status, 405);
}

TEST(AuthApiHelpers, ClientAddressDropsThePort) {
  net::HttpRequest r;
  r.remote = "127.0.0.1:5555";
  EXPECT_EQ(client_address(r), "127.0.0.1");
  r.remote = "[::1]:80";
  EXPECT_EQ(client_address(r), "::1");
  r.remote = "?";
  EXPECT_EQ(client_address(r), "?");
}

TEST(AuthApiHelpers, FieldReaders) {
  auto o = json::parse(R"({"s":"x","b":true,"i":7,"f":7.5,"w":7.0,"a":["p","q"],"n":[1,2],"bad":[1,"x"],"z":null})")
               .as_object();
  EXPECT_EQ(*required_string(o, "s"), "x");
  EXPECT_EQ(required_string(o, "b").code(), Errc::malformed);
  EXPECT_EQ(required_string(o, "z").code(), Errc::malformed);
  EXPECT_FALSE(optional_string(o, "z")->has_value());
  EXPECT_EQ(optional_bool(o, "b")->value(), true);
  EXPECT_EQ(optional_bool(o, "i").code(), Errc::malformed);
  EXPECT_EQ(optional_int(o, "i")->value(), 7);
  EXPECT_EQ(optional_int(o, "w")->value(), 7);
  EXPECT_EQ(optional_int(o, "f").code(), Errc::malformed);
  EXPECT_EQ(optional_string_array(o, "a")->size(), 2u);
  EXPECT_EQ(optional_string_array(o, "n").code(), Errc::malformed);
  EXPECT_TRUE(optional_string_array(o, "missing")->empty());
  EXPECT_EQ(required_int_array(o, "n")->at(1), 2);
  EXPECT_EQ(required_int_array(o, "bad").code(), Errc::malformed);
  EXPECT_EQ(required_int_array(o, "missing").code(), Errc::malformed);
}

}  // namespace
}  // namespace castmesh::api
