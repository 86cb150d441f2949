#include "cluster/redis/redis_client.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "cluster/redis/redis_test_util.hpp"

namespace castmesh::cluster::redis {
namespace {

TEST(ParseRedisUrl, Defaults) {
  auto u = parse_redis_url("redis://localhost");
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->host, "localhost");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->password, "");
  EXPECT_EQ(u->username, "");
  EXPECT_EQ(u->db, 0);
}

TEST(ParseRedisUrl, AllParts) {
  auto u = parse_redis_url("redis://:s3cr%40t@10.0.0.5:6380/3");
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->password, "s3cr@t");
  EXPECT_EQ(u->username, "");
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->display(), "10.0.0.5:6380/3");
}

TEST(ParseRedisUrl, UserAndIpv6) {
  auto u = parse_redis_url("REDIS://app:pw@[::1]:7000/");
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->username, "app");
  EXPECT_EQ(u->password, "pw");
  EXPECT_EQ(u->db, 0);
  EXPECT_EQ(u->display(), "[::1]:7000/0");
}

TEST(ParseRedisUrl, PasswordWithAtSign) {
  auto u = parse_redis_url("redis://:a@b@host:1");
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->password, "a@b");
  EXPECT_EQ(u->host, "host");
  EXPECT_EQ(u->port, 1);
}

TEST(ParseRedisUrl, Rejects) {
  const char* bad[] = {
      "",
      "http://host",
      "redis://",
      "redis://:pw@",
      "redis://host:",
      "redis://host:0",
      "redis://host:65536",
      "redis://host:12ab",
      "redis://host/x",
      "redis://host/-1",
      "redis://host/1?x=1",
      "redis://ho st",
      "redis://[::1",
      "redis://[::1]x",
      "redis://:bad%zzpw@host",
      "redis://passwordonly@host",
  };
  for (const char* s : bad) {
    auto u = parse_redis_url(s);
    EXPECT_FALSE(u.ok()) << s;
    if (!u.ok()) {
      EXPECT_EQ(u.code(), Errc::malformed) << s;
    }
  }
  EXPECT_EQ(parse_redis_url("rediss://host").code(), Errc::unsupported);
  EXPECT_EQ(parse_redis_url("unix:///tmp/redis.sock").code(), Errc::unsupported);
}

TEST(ParseRedisUrl, ErrorsNeverShowThePassword) {
  const char* bad[] = {"redis://:TOPSECRET@host:99999", "redis://:TOPSECRET@ho st",
                       "redis://:TOPSECRET@host/x", "redis://:TOPSECRET@host?q",
                       "redis://u:TOPSECRET%zz@host", "redis://TOPSECRET@host"};
  for (const char* s : bad) {
    auto u = parse_redis_url(s);
    ASSERT_FALSE(u.ok()) << s;
    EXPECT_EQ(u.error().message().find("TOPSECRET"), std::string::npos) << u.error().message();
  }
}

TEST(LuaScript, Sha1OfBody) {
  // sha1("return 1") per `printf 'return 1' | sha1sum`.
  Script s("return 1");
  EXPECT_EQ(s.sha1(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(ConnectionOffline, ConnectRefusedIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  RedisUrl u;
  u.port = 1;
  u.password = "TOPSECRET";
  auto c = RedisConnection::connect(u, std::chrono::milliseconds(500));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.code(), Errc::unavailable);
  EXPECT_EQ(c.error().message().find("TOPSECRET"), std::string::npos);
}

TEST(RedisClient, CommandsAndBinarySafety) {
  auto conn = test::connect_test_redis();
  ASSERT_TRUE(conn);
  const std::string key = test::unique_prefix("client") + ":bin";
  const std::string value("a\0b\r\nc", 6);
  auto r = conn->command({"SET", key, value});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->type, Reply::Type::status);
  EXPECT_EQ(r->str, "OK");
  r = conn->command({"GET", key});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, Reply::Type::string);
  EXPECT_EQ(r->str, value);
  r = conn->command({"GET", key + ":missing"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_nil());
  r = conn->command({"INCRBY", key + ":n", "5"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, Reply::Type::integer);
  EXPECT_EQ(r->integer, 5);
  // An error reply is a value, and the connection stays usable.
  r = conn->command({"INCR", key});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_error());
  EXPECT_FALSE(conn->broken());
  r = conn->command({"RPUSH", key + ":l", "x", "y"});
  ASSERT_TRUE(r.ok());
  r = conn->command({"LRANGE", key + ":l", "0", "-1"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->type, Reply::Type::array);
  ASSERT_EQ(r->elements.size(), 2u);
  EXPECT_EQ(r->elements[1].str, "y");
  conn->command({"DEL", key, key + ":n", key + ":l"}).ok();
}

TEST(RedisClient, Pipeline) {
  auto conn = test::connect_test_redis();
  ASSERT_TRUE(conn);
  const std::string key = test::unique_prefix("client") + ":p";
  auto r = conn->pipeline({{"INCR", key}, {"INCR", key}, {"BADCOMMAND"}, {"GET", key}, {"DEL", key}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 5u);
  EXPECT_EQ((*r)[0].integer, 1);
  EXPECT_EQ((*r)[1].integer, 2);
  EXPECT_TRUE((*r)[2].is_error());
  EXPECT_EQ((*r)[3].str, "2");
  EXPECT_EQ((*r)[4].integer, 1);
}

TEST(RedisClient, EvalRunsAnUncachedScript) {
  auto conn = test::connect_test_redis();
  ASSERT_TRUE(conn);
  // A body unique to this run, so the server has never cached it.
  Script s("return {KEYS[1], ARGV[1], '" + test::unique_prefix("script") + "'}");
  auto r = conn->eval(s, {"k"}, {"v"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->type, Reply::Type::array);
  ASSERT_EQ(r->elements.size(), 3u);
  EXPECT_EQ(r->elements[0].str, "k");
  EXPECT_EQ(r->elements[1].str, "v");
  // Now cached: EVALSHA alone works.
  auto direct = conn->command({"EVALSHA", s.sha1(), "0"});
  ASSERT_TRUE(direct.ok());
  EXPECT_FALSE(direct->is_error()) << direct->str;
  Script bad("return redis.call('NOSUCHCOMMAND')");
  r = conn->eval(bad, {}, {});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_error());
}

TEST(RedisClient, SubscribeReadMessageTimeoutAndPing) {
  auto sub = test::connect_test_redis();
  auto pub = test::connect_test_redis();
  ASSERT_TRUE(sub && pub);
  const std::string ch = test::unique_prefix("client") + ":ch";
  ASSERT_TRUE(sub->subscribe(ch).ok());
  auto m = sub->read_message(std::chrono::milliseconds(50));
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_value());  // timeout, connection still usable
  EXPECT_FALSE(sub->broken());
  const std::string payload("x\0y\n", 4);
  auto n = pub->command({"PUBLISH", ch, payload});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->integer, 1);
  m = sub->read_message(std::chrono::milliseconds(2000));
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->has_value());
  const Reply& msg = **m;
  ASSERT_EQ(msg.type, Reply::Type::array);
  ASSERT_EQ(msg.elements.size(), 3u);
  EXPECT_TRUE(msg.elements[0].is("message"));
  EXPECT_EQ(msg.elements[1].str, ch);
  EXPECT_EQ(msg.elements[2].str, payload);
  ASSERT_TRUE(sub->send({"PING"}).ok());
  m = sub->read_message(std::chrono::milliseconds(2000));
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE(m->has_value());
  ASSERT_EQ((*m)->type, Reply::Type::array);
  EXPECT_TRUE((*m)->elements[0].is("pong"));
}

TEST(RedisClient, ServerSideCloseMarksBroken) {
  auto victim = test::connect_test_redis();
  auto admin = test::connect_test_redis();
  ASSERT_TRUE(victim && admin);
  const std::string name = test::unique_prefix("victim");
  ASSERT_TRUE(victim->command({"CLIENT", "SETNAME", name}).ok());
  auto id = victim->command({"CLIENT", "ID"});
  ASSERT_TRUE(id.ok());
  auto k = admin->command({"CLIENT", "KILL", "ID", std::to_string(id->integer)});
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->integer, 1);
  auto r = victim->command({"PING"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::unavailable);
  EXPECT_TRUE(victim->broken());
  EXPECT_EQ(victim->command({"PING"}).code(), Errc::unavailable);
}

}  // namespace
}  // namespace castmesh::cluster::redis
