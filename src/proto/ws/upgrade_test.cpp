#include "proto/ws/upgrade.hpp"

#include <gtest/gtest.h>

#include "proto/ws/message_limiter.hpp"

namespace castmesh::ws {
namespace {

net::HttpRequest good_upgrade() {
  net::HttpRequest r;
  r.method = "GET";
  r.target = "/api/v1/rooms/abc/ws";
  r.path = "/api/v1/rooms/abc/ws";
  r.path_param = "abc";
  r.headers = {{"Host", "example.com:8080"},
               {"Upgrade", "websocket"},
               {"Connection", "keep-alive, Upgrade"},
               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"Sec-WebSocket-Version", "13"}};
  return r;
}

void set_header(net::HttpRequest& r, const std::string& name, const std::string& value) {
  for (auto& [k, v] : r.headers) {
    if (k == name) {
      v = value;
      return;
    }
  }
  r.headers.emplace_back(name, value);
}

TEST(CheckUpgrade, AcceptsRfcExampleAndTokenLists) {
  auto r = good_upgrade();
  EXPECT_FALSE(check_upgrade(r).has_value());
  set_header(r, "Upgrade", "WebSocket");
  set_header(r, "Connection", "upgrade");
  EXPECT_FALSE(check_upgrade(r).has_value());
}

TEST(CheckUpgrade, RefusesMissingOrWrongFields) {
  auto r = good_upgrade();
  set_header(r, "Upgrade", "h2c");
  auto bad = check_upgrade(r);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400u);
  EXPECT_EQ(bad->code, "bad_request");

  r = good_upgrade();
  set_header(r, "Connection", "keep-alive");
  ASSERT_TRUE(check_upgrade(r).has_value());
  EXPECT_EQ(check_upgrade(r)->status, 400u);

  r = good_upgrade();
  set_header(r, "Sec-WebSocket-Version", "8");
  ASSERT_TRUE(check_upgrade(r).has_value());
  EXPECT_EQ(check_upgrade(r)->status, 426u);

  for (const char* key : {"", "short==", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25j!Q==", "dGhlIHNhbXBsZSBub25jZQ=x"}) {
    r = good_upgrade();
    set_header(r, "Sec-WebSocket-Key", key);
    auto k = check_upgrade(r);
    ASSERT_TRUE(k.has_value()) << key;
    EXPECT_EQ(k->status, 400u) << key;
  }

  r = good_upgrade();
  r.method = "POST";
  ASSERT_TRUE(check_upgrade(r).has_value());
}

TEST(FindToken, QueryThenBearerThenCookie) {
  auto r = good_upgrade();
  EXPECT_EQ(find_token(r).source, TokenSource::none);

  r.headers.emplace_back("Cookie", "a=b; castmesh_token=cookie-tok; c=d");
  auto c = find_token(r);
  EXPECT_EQ(c.source, TokenSource::cookie);
  EXPECT_EQ(c.token, "cookie-tok");

  r.headers.emplace_back("Authorization", "bearer  hdr-tok ");
  auto h = find_token(r);
  EXPECT_EQ(h.source, TokenSource::header);
  EXPECT_EQ(h.token, "hdr-tok");

  r.query = "x=1&token=q%2Dtok&y=2";
  auto q = find_token(r);
  EXPECT_EQ(q.source, TokenSource::query);
  EXPECT_EQ(q.token, "q-tok");
}

TEST(FindToken, EmptyAndOtherSchemesAreAbsent) {
  auto r = good_upgrade();
  r.query = "token=&tokens=x";
  r.headers.emplace_back("Authorization", "Basic dXNlcjpwdw==");
  r.headers.emplace_back("Cookie", "castmesh_tokenx=1; xcastmesh_token=2");
  EXPECT_EQ(find_token(r).source, TokenSource::none);
  // A second Cookie field is searched too; quotes are removed.
  r.headers.emplace_back("cookie", "castmesh_token=\"quoted\"");
  auto c = find_token(r);
  EXPECT_EQ(c.source, TokenSource::cookie);
  EXPECT_EQ(c.token, "quoted");
}

TEST(SameOrigin, ComparesOriginHostWithHostField) {
  auto r = good_upgrade();
  EXPECT_TRUE(same_origin(r));  // no Origin (non-browser client)
  r.headers.emplace_back("Origin", "https://Example.com:8080");
  EXPECT_TRUE(same_origin(r));
  set_header(r, "Origin", "https://evil.example:8080");
  EXPECT_FALSE(same_origin(r));
  set_header(r, "Origin", "https://example.com");
  EXPECT_FALSE(same_origin(r));  // port differs
  set_header(r, "Origin", "null");
  EXPECT_FALSE(same_origin(r));
}

TEST(RoomId, Validation) {
  EXPECT_TRUE(valid_room_id("aZ09_-"));
  EXPECT_FALSE(valid_room_id(""));
  EXPECT_FALSE(valid_room_id("a/b"));
  EXPECT_FALSE(valid_room_id("a.b"));
  EXPECT_FALSE(valid_room_id(std::string(129, 'a')));
}

TEST(Refusal, StatusMappingAndRendering) {
  EXPECT_EQ(refusal_for(Error{Errc::not_found, ""}).status, 404u);
  EXPECT_EQ(refusal_for(Error{Errc::forbidden, "banned"}).status, 403u);
  EXPECT_EQ(refusal_for(Error{Errc::forbidden, "banned"}).message, "banned");
  EXPECT_EQ(refusal_for(Error{Errc::unauthorized, ""}).status, 401u);
  EXPECT_EQ(refusal_for(Error{Errc::unavailable, ""}).status, 503u);
  EXPECT_EQ(refusal_for(Error{Errc::rate_limited, ""}).status, 429u);
  EXPECT_EQ(refusal_for(Error{Errc::malformed, ""}).status, 500u);

  const std::string out = render_refusal(Refusal{401, "unauthorized", "bad \"token\""});
  EXPECT_EQ(out.rfind("HTTP/1.1 401 Unauthorized\r\n", 0), 0u);
  EXPECT_NE(out.find("WWW-Authenticate: Bearer\r\n"), std::string::npos);
  const std::string body = R"({"error":"bad \"token\"","code":"unauthorized"})";
  EXPECT_NE(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - body.size()), body);
  EXPECT_NE(render_refusal(Refusal{426, "upgrade_required", "x"}).find("Sec-WebSocket-Version: 13\r\n"),
            std::string::npos);
}

// ---- MessageLimiter ----

using V = MessageLimiter::Verdict;

TEST(MessageLimiter, BurstThenDropWithOneNoticeThenClose) {
  MessageLimiter l(20, 40);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(l.admit(1000), V::accept) << i;
  EXPECT_EQ(l.admit(1000), V::drop_notify);
  for (int i = 0; i < 39; ++i) ASSERT_EQ(l.admit(1000), V::drop) << i;
  EXPECT_EQ(l.admit(1000), V::close);  // 41 excess messages > burst
}

TEST(MessageLimiter, RefillsAtRate) {
  MessageLimiter l(20, 40);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(l.admit(0), V::accept);
  EXPECT_EQ(l.admit(0), V::drop_notify);
  // 100 ms later: 2 tokens.
  EXPECT_EQ(l.admit(100), V::accept);
  EXPECT_EQ(l.admit(100), V::accept);
  EXPECT_EQ(l.admit(100), V::drop);
  // A second later the notice may be repeated.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(l.admit(1100), V::accept);
  EXPECT_EQ(l.admit(1100), V::drop_notify);
}

TEST(MessageLimiter, ModestOverrateIsThrottledNotClosed) {
  // 30 messages/s against a limit of 20 for 20 s: about a third is dropped, never closed.
  MessageLimiter l(20, 40);
  int accepted = 0, dropped = 0;
  for (int i = 0; i < 600; ++i) {
    auto v = l.admit(int64_t(i) * 1000 / 30);
    ASSERT_NE(v, V::close) << i;
    (v == V::accept ? accepted : dropped)++;
  }
  EXPECT_GE(accepted, 400 + 30);
  EXPECT_LE(accepted, 400 + 45);
  EXPECT_GT(dropped, 150);
}

TEST(MessageLimiter, SustainedFloodCloses) {
  // 100 messages/s: closes within a couple of seconds.
  MessageLimiter l(20, 40);
  int i = 0;
  for (; i < 1000; ++i) {
    if (l.admit(int64_t(i) * 10) == V::close) break;
  }
  EXPECT_LT(i, 200);
  EXPECT_GT(i, 40);
}

}  // namespace
}  // namespace castmesh::ws
