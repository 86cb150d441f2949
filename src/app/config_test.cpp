#include "app/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

// The repository root, where castmesh.example.yaml lives. CMake should define it for app_tests;
// otherwise the environment variable CASTMESH_SOURCE_DIR is used, else the first of the working
// directory and its parents that holds this test's source.
#ifndef CASTMESH_SOURCE_DIR
#define CASTMESH_SOURCE_DIR ""
#endif

namespace castmesh::app {
namespace {

using Env = std::map<std::string, std::string>;

std::string source_dir() {
  if (std::string dir = CASTMESH_SOURCE_DIR; !dir.empty()) return dir;
  if (const char* env = std::getenv("CASTMESH_SOURCE_DIR"); env && *env) return env;
  std::error_code ec;
  for (auto dir = std::filesystem::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    if (std::filesystem::exists(dir / "src/app/config_test.cpp", ec)) return dir.string();
    if (dir == dir.parent_path()) break;
  }
  return ".";
}

/// A YAML file in a fresh temporary directory, removed at the end of the test.
class TempYaml {
 public:
  explicit TempYaml(const std::string& content) {
    char tmpl[] = "/tmp/castmesh-config-test-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    EXPECT_NE(dir, nullptr);
    dir_ = dir ? dir : "/tmp";
    path_ = dir_ + "/castmesh.yaml";
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempYaml() {
    std::remove(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

std::string errors_of(const Result<Config>& r) {
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.code(), Errc::config_invalid);
  return r.error().detail;
}

size_t line_count(const std::string& s) {
  if (s.empty()) return 0;
  size_t n = 1;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Config, DefaultsComeFromTheStructs) {
  auto r = load_config(nullptr, Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = *r;
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_TRUE(c.rtmp.enabled);
  EXPECT_EQ(c.rtmp.port, 1935);
  EXPECT_EQ(c.rtmp.out_chunk_size, 60000u);
  EXPECT_EQ(c.hls.store, hls::StoreKind::memory);
  EXPECT_EQ(c.hls.dir, "data/hls");
  EXPECT_EQ(c.live.gop_cache_gops, 2u);
}

// Counts the members of an aggregate: the most initializers `T{...}` accepts.
struct AnyValue {
  template <class T>
  operator T() const;  // NOLINT: only used in unevaluated context
};

template <class T, class... A>
constexpr size_t field_count() {
  if constexpr (requires { T{A{}..., AnyValue{}}; }) {
    return field_count<T, A..., AnyValue>();
  } else {
    return sizeof...(A);
  }
}

TEST(Config, KeyTableCoversEveryFieldOnce) {
  const auto keys = config_keys();
  std::set<std::string> names, envs;
  std::map<std::string, size_t> per_section;
  for (const auto& k : keys) {
    EXPECT_TRUE(names.insert(k.key).second) << k.key;
    EXPECT_TRUE(envs.insert(k.env).second) << k.env;
    EXPECT_FALSE(k.description.empty()) << k.key;
    EXPECT_FALSE(k.default_value.empty()) << k.key;
    per_section[k.key.substr(0, k.key.find('.'))]++;
  }
  // A field added to a module struct must get a row in the key table.
  EXPECT_EQ(per_section["server"], field_count<net::HttpConfig>() + 1 + 2);  // + log_level, cluster_secret(_file)
  EXPECT_EQ(per_section["rtmp"], field_count<rtmp::RtmpConfig>());
  EXPECT_EQ(per_section["httpflv"], field_count<httpflv::HttpFlvConfig>());
  // hls.oss.* are the fields of HlsConfig::oss.
  EXPECT_EQ(per_section["hls"], field_count<hls::HlsConfig>() - 1 + field_count<hls::OssConfig>());
  // require_publish_key lives in PublishAuthConfig.
  EXPECT_EQ(per_section["live"], field_count<live::LiveConfig>() + field_count<PublishAuthConfig>());
  EXPECT_EQ(per_section["database"], field_count<store::DatabaseConfig>());
  EXPECT_EQ(per_section["auth"], field_count<auth::AuthConfig>());
  EXPECT_EQ(per_section["rooms"], field_count<room::RoomsConfig>());
  EXPECT_EQ(per_section["cluster"], field_count<cluster::ClusterConfig>() - 2);  // secrets are server.*
  EXPECT_EQ(per_section["redis"], field_count<cluster::RedisConfig>());
  EXPECT_EQ(per_section["web"], field_count<WebConfig>());
  EXPECT_EQ(per_section["relay"], field_count<cluster::RelayConfig>());
  EXPECT_EQ(field_count<rtmp::RtmpConfig>(), 12u);                        // the counter itself works
  EXPECT_EQ(per_section.size(), 12u);
  EXPECT_TRUE(names.count("server.log_level"));
  EXPECT_TRUE(envs.count("CASTMESH_SERVER__LOG_LEVEL"));
  EXPECT_TRUE(envs.count("CASTMESH_HLS__SHARED_STORAGE"));
}

TEST(Config, WatchTogetherDefaults) {
  auto r = load_config(nullptr, Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->database.url, "sqlite:data/castmesh.db");
  EXPECT_EQ(r->auth.session_ttl_secs, 2592000u);
  EXPECT_TRUE(r->auth.allow_registration);
  EXPECT_EQ(r->auth.login_rate_per_min, 5u);
  EXPECT_EQ(r->rooms.chat_history, 200);
  EXPECT_EQ(r->rooms.ws_max_frame_bytes, 16384);
  EXPECT_EQ(r->rooms.ws_rate_per_sec, 20);
  EXPECT_EQ(r->rooms.kick_cooldown_secs, 60);
  EXPECT_EQ(r->rooms.ws_send_queue, 256);
  EXPECT_DOUBLE_EQ(r->rooms.live_target_offset_secs, 3.0);
  EXPECT_FALSE(r->publish_auth.require_publish_key);
  EXPECT_EQ(r->web.root, "web/dist");
}

TEST(Config, WatchTogetherKeysFromYamlAndEnvironment) {
  TempYaml f(
      "database:\n"
      "  url: postgres://u:p@127.0.0.1:5432/castmesh\n"
      "auth:\n"
      "  session_ttl_secs: 3600\n"
      "  allow_registration: false\n"
      "rooms:\n"
      "  chat_history: 50\n"
      "  live_target_offset_secs: 2.5\n"
      "live:\n"
      "  require_publish_key: true\n"
      "web:\n"
      "  root: \"\"\n");
  auto r = load_config(&f.path(), Env{{"CASTMESH_AUTH__LOGIN_RATE_PER_MIN", "9"},
                                      {"CASTMESH_ROOMS__KICK_COOLDOWN_SECS", "0"}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->database.url, "postgres://u:p@127.0.0.1:5432/castmesh");
  EXPECT_EQ(r->auth.session_ttl_secs, 3600u);
  EXPECT_FALSE(r->auth.allow_registration);
  EXPECT_EQ(r->auth.login_rate_per_min, 9u);
  EXPECT_EQ(r->rooms.chat_history, 50);
  EXPECT_EQ(r->rooms.kick_cooldown_secs, 0);
  EXPECT_DOUBLE_EQ(r->rooms.live_target_offset_secs, 2.5);
  EXPECT_TRUE(r->publish_auth.require_publish_key);
  EXPECT_EQ(r->web.root, "");
}

TEST(Config, WatchTogetherKeysAreValidated) {
  TempYaml f(
      "database:\n"
      "  url: \"\"\n"
      "auth:\n"
      "  session_ttl_secs: 10\n"
      "rooms:\n"
      "  chat_history: -1\n"
      "  live_target_offset_secs: 601\n"
      "  ws_rate_per_sec: 0\n");
  const std::string e = errors_of(load_config(&f.path(), Env{{"CASTMESH_ROOMS__LIVE_TARGET_OFFSET_SECS", "abc"}}));
  EXPECT_NE(e.find(f.path() + ":2: database.url: must not be empty"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":4: auth.session_ttl_secs: 10 is out of range 60..315360000"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":6: rooms.chat_history: expected an integer (int64 1..100000), got '-1'"),
            std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":7: rooms.live_target_offset_secs: 601 is out of range 0..600"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":8: rooms.ws_rate_per_sec: 0 is out of range 1..10000"), std::string::npos) << e;
  EXPECT_NE(e.find("CASTMESH_ROOMS__LIVE_TARGET_OFFSET_SECS: rooms.live_target_offset_secs: expected a number "
                   "(0..600), got 'abc'"),
            std::string::npos) << e;
}

TEST(Config, ClusterKeysFromYamlAndEnvironment) {
  TempYaml f(
      "server:\n"
      "  cluster_secret_file: /run/secrets/castmesh\n"
      "database:\n"
      "  url: postgres://u:p@127.0.0.1:5432/castmesh\n"
      "cluster:\n"
      "  enabled: true\n"
      "  node_id: node-a.1\n"
      "  discovery_mode: static\n"
      "  peers:\n"
      "    - 10.0.0.2:8081\n"
      "    - node-c\n"
      "  heartbeat_interval: 0.5\n"
      "  leader_election_mode: k8s_lease\n"
      "redis:\n"
      "  url: redis://127.0.0.1:6379/0\n");
  auto r = load_config(&f.path(), Env{{"CASTMESH_CLUSTER__LISTEN", "127.0.0.1:18181"}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->cluster.enabled);
  EXPECT_EQ(r->cluster.node_id, "node-a.1");
  EXPECT_EQ(r->cluster.discovery_mode, cluster::DiscoveryMode::static_);
  EXPECT_EQ(r->cluster.peers, (std::vector<std::string>{"10.0.0.2:8081", "node-c"}));
  EXPECT_DOUBLE_EQ(r->cluster.heartbeat_interval, 0.5);
  EXPECT_EQ(r->cluster.leader_election_mode, cluster::LeaderElectionMode::k8s_lease);
  EXPECT_EQ(r->cluster.listen, "127.0.0.1:18181");
  EXPECT_EQ(r->cluster.secret_file, "/run/secrets/castmesh");
  EXPECT_EQ(r->redis.url, "redis://127.0.0.1:6379/0");
  auto e = load_config(nullptr, Env{{"CASTMESH_CLUSTER__PEERS", " a:1 , b:2,"}});
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_EQ(e->cluster.peers, (std::vector<std::string>{"a:1", "b:2"}));
}

TEST(Config, ClusterModeNamesEveryMissingRequirement) {
  const std::string e = errors_of(load_config(nullptr, Env{{"CASTMESH_CLUSTER__ENABLED", "true"}}));
  EXPECT_NE(e.find("redis.url: required when cluster.enabled is true"), std::string::npos) << e;
  EXPECT_NE(e.find("database.url: cluster mode needs PostgreSQL"), std::string::npos) << e;
  EXPECT_NE(e.find("server.cluster_secret: required when cluster.enabled is true"), std::string::npos) << e;
  // Satisfied requirements are not reported; the secret is never echoed.
  const std::string e2 = errors_of(load_config(nullptr, Env{{"CASTMESH_CLUSTER__ENABLED", "true"},
                                                            {"CASTMESH_SERVER__CLUSTER_SECRET", "s3cr3t-value"},
                                                            {"CASTMESH_DATABASE__URL", "postgres://x@h/db"}}));
  EXPECT_EQ(line_count(e2), 1u) << e2;
  EXPECT_NE(e2.find("redis.url"), std::string::npos) << e2;
  EXPECT_EQ(e2.find("s3cr3t-value"), std::string::npos) << e2;
}

TEST(Config, ClusterValuesAreValidated) {
  TempYaml f(
      "cluster:\n"
      "  node_id: \"bad id\"\n"
      "  listen: nohostport\n"
      "  suspect_threshold: 3\n"
      "  offline_threshold: 3\n"
      "  peers: [\"ok:1\", \":9\"]\n"
      "  heartbeat_interval: 0.01\n");
  const std::string e = errors_of(load_config(&f.path(), {}));
  EXPECT_NE(e.find("cluster.node_id: \"bad id\" is not 1..64 characters"), std::string::npos) << e;
  EXPECT_NE(e.find("cluster.listen: \"nohostport\" is not host:port"), std::string::npos) << e;
  EXPECT_NE(e.find("cluster.offline_threshold: must be greater than cluster.suspect_threshold"), std::string::npos) << e;
  EXPECT_NE(e.find("cluster.peers: \":9\" is not host[:port]"), std::string::npos) << e;
  EXPECT_NE(e.find("cluster.heartbeat_interval: 0.01 is out of range 0.1..3600"), std::string::npos) << e;
}

TEST(ClusterConfig, ParseHostPort) {
  auto a = cluster::parse_host_port("127.0.0.1:8081");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8081);
  auto b = cluster::parse_host_port("[::1]:9");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(cluster::parse_host_port("node-c", uint16_t{8080})->port, 8080);
  EXPECT_FALSE(cluster::parse_host_port("node-c"));
  EXPECT_FALSE(cluster::parse_host_port("h:0"));
  EXPECT_FALSE(cluster::parse_host_port("h:65536"));
  EXPECT_FALSE(cluster::parse_host_port("h:1x"));
  EXPECT_FALSE(cluster::parse_host_port(":80"));
  EXPECT_TRUE(cluster::valid_node_id("a.b_c-9"));
  EXPECT_FALSE(cluster::valid_node_id(""));
  EXPECT_FALSE(cluster::valid_node_id(std::string(65, 'a')));
  EXPECT_FALSE(cluster::valid_node_id("a/b"));
}

TEST(Config, YamlOverridesDefaults) {
  TempYaml f(
      "server:\n"
      "  host: 127.0.0.1\n"
      "  port: 18080\n"
      "  log_level: debug\n"
      "rtmp:\n"
      "  enabled: false\n"
      "  port: 11935\n"
      "  out_chunk_size: 4096\n"
      "hls:\n"
      "  store: file\n"
      "  dir: /var/lib/castmesh/hls\n"
      "  shared_storage: true\n"
      "live:\n"
      "  gop_cache_max_bytes: 1048576\n"
      "httpflv:\n");
  auto r = load_config(&f.path(), Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = *r;
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 18080);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_FALSE(c.rtmp.enabled);
  EXPECT_EQ(c.rtmp.port, 11935);
  EXPECT_EQ(c.rtmp.out_chunk_size, 4096u);
  EXPECT_EQ(c.hls.store, hls::StoreKind::file);
  EXPECT_EQ(c.hls.dir, "/var/lib/castmesh/hls");
  EXPECT_TRUE(c.hls.shared_storage);
  EXPECT_EQ(c.live.gop_cache_max_bytes, 1048576u);
  // untouched keys keep their defaults
  EXPECT_EQ(c.server.request_timeout_ms, net::HttpConfig{}.request_timeout_ms);
  EXPECT_TRUE(c.httpflv.enabled);
}

TEST(Config, EnvironmentBeatsYaml) {
  TempYaml f("server:\n  port: 18080\nrtmp:\n  port: 11935\n");
  Env env = {{"CASTMESH_SERVER__PORT", "28080"},
             {"CASTMESH_HLS__STORE", "file"},
             {"CASTMESH_SERVER__LOG_LEVEL", "warn"},
             {"CASTMESH_RTMP__ENABLED", "false"},
             {"CASTMESH_SOURCE_DIR", "/ignored/without/double/underscore"},
             {"HOME", "/root"}};
  auto r = load_config(&f.path(), env);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->server.port, 28080);
  EXPECT_EQ(r->rtmp.port, 11935);  // from the file, not overridden
  EXPECT_EQ(r->hls.store, hls::StoreKind::file);
  EXPECT_EQ(r->log_level, "warn");
  EXPECT_FALSE(r->rtmp.enabled);
}

TEST(Config, EveryKeyCanBeSetFromTheEnvironmentWithItsDefault) {
  Env env;
  for (const auto& k : config_keys()) {
    std::string v = k.default_value;
    if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
    env[k.env] = v;
  }
  auto r = load_config(nullptr, env);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->server.host, "0.0.0.0");
  EXPECT_EQ(r->rtmp.port, 1935);
}

TEST(Config, UnknownSectionAndKeySuggestClosest) {
  TempYaml f(
      "server:\n"
      "  prot: 80\n"
      "rmtp:\n"
      "  port: 1\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: unknown key 'server.prot' (did you mean 'server.port'?)"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":3: unknown section 'rmtp' (did you mean 'rtmp'?)"), std::string::npos) << e;
}

TEST(Config, UnknownEnvironmentVariable) {
  const std::string e = errors_of(load_config(nullptr, Env{{"CASTMESH_RTMP__PROT", "1"}, {"CASTMESH_NOPE__X", "1"}}));
  EXPECT_NE(e.find("CASTMESH_RTMP__PROT: unknown configuration variable (did you mean 'CASTMESH_RTMP__PORT'?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("CASTMESH_NOPE__X: unknown configuration variable"), std::string::npos) << e;
}

TEST(Config, WrongType) {
  TempYaml f(
      "server:\n"
      "  port: http\n"
      "rtmp:\n"
      "  enabled: maybe\n"
      "  port: [1, 2]\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: server.port: expected an integer (uint16 0..65535), got 'http'"), std::string::npos)
      << e;
  EXPECT_NE(e.find(f.path() + ":4: rtmp.enabled: expected a boolean (true|false), got 'maybe'"), std::string::npos)
      << e;
  EXPECT_NE(e.find(f.path() + ":5: rtmp.port: expected an integer, got a list"), std::string::npos) << e;
  EXPECT_EQ(line_count(e), 3u) << e;
}

TEST(Config, NegativeNumberIsAWrongType) {
  const std::string e = errors_of(load_config(nullptr, Env{{"CASTMESH_SERVER__THREADS", "-1"}}));
  EXPECT_NE(e.find("CASTMESH_SERVER__THREADS: server.threads: expected an integer"), std::string::npos) << e;
}

TEST(Config, OutOfRange) {
  TempYaml f(
      "server:\n"
      "  port: 70000\n"
      "rtmp:\n"
      "  out_chunk_size: 127\n"
      "live:\n"
      "  gop_cache_gops: 0\n");
  const std::string e = errors_of(load_config(&f.path(), Env{{"CASTMESH_RTMP__OUT_CHUNK_SIZE", "16777216"}}));
  EXPECT_NE(e.find(f.path() + ":2: server.port: 70000 is out of range 0..65535"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":4: rtmp.out_chunk_size: 127 is out of range 128..16777215"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":6: live.gop_cache_gops: 0 is out of range 1..100"), std::string::npos) << e;
  EXPECT_NE(e.find("CASTMESH_RTMP__OUT_CHUNK_SIZE: rtmp.out_chunk_size: 16777216 is out of range 128..16777215"),
            std::string::npos)
      << e;
  EXPECT_EQ(line_count(e), 4u) << e;
}

TEST(Config, BoundaryValuesAreAccepted) {
  auto r = load_config(nullptr, Env{{"CASTMESH_RTMP__OUT_CHUNK_SIZE", "16777215"},
                                    {"CASTMESH_SERVER__PORT", "65535"},
                                    {"CASTMESH_LIVE__GOP_CACHE_GOPS", "1"}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->rtmp.out_chunk_size, 16777215u);
  EXPECT_EQ(r->server.port, 65535);
  EXPECT_EQ(r->live.gop_cache_gops, 1u);
}

TEST(Config, HugeNumberIsOutOfRange) {
  const std::string e = errors_of(load_config(nullptr, Env{{"CASTMESH_SERVER__PORT", "99999999999999999999999"}}));
  EXPECT_NE(e.find("CASTMESH_SERVER__PORT: server.port: 99999999999999999999999 is out of range 0..65535"),
            std::string::npos)
      << e;
}

TEST(Config, BadEnumValue) {
  TempYaml f("hls:\n  store: s3\nserver:\n  log_level: verbose\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: hls.store: 's3' is not one of memory|file"), std::string::npos) << e;
  EXPECT_NE(e.find(f.path() + ":4: server.log_level: 'verbose' is not one of trace|debug|info|warn|error|critical|off"),
            std::string::npos)
      << e;
}

TEST(Config, EmptyStringRejectedWhereRequired) {
  TempYaml f("hls:\n  dir: \"\"\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: hls.dir: must not be empty"), std::string::npos) << e;
}

TEST(Config, MissingValue) {
  TempYaml f("rtmp:\n  port:\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: rtmp.port: expected an integer, got no value"), std::string::npos) << e;
}

TEST(Config, SharedStorageNeedsFileStore) {
  TempYaml f("hls:\n  shared_storage: true\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find(f.path() + ":2: hls.shared_storage: true is valid only with hls.store: file (hls.store is memory)"),
            std::string::npos)
      << e;
  // The environment can repair it.
  auto ok = load_config(&f.path(), Env{{"CASTMESH_HLS__STORE", "file"}});
  EXPECT_TRUE(ok.ok());
}

TEST(Config, RtmpAndHttpOnTheSamePort) {
  const std::string e = errors_of(load_config(nullptr, Env{{"CASTMESH_RTMP__PORT", "8080"}}));
  EXPECT_NE(e.find("CASTMESH_RTMP__PORT: rtmp.port: 8080 is also server.port on overlapping hosts"), std::string::npos)
      << e;
  // Distinct specific hosts, port 0, or RTMP disabled do not conflict.
  EXPECT_TRUE(load_config(nullptr, Env{{"CASTMESH_RTMP__PORT", "8080"},
                                       {"CASTMESH_RTMP__HOST", "127.0.0.1"},
                                       {"CASTMESH_SERVER__HOST", "127.0.0.2"}})
                  .ok());
  EXPECT_TRUE(load_config(nullptr, Env{{"CASTMESH_RTMP__PORT", "0"}, {"CASTMESH_SERVER__PORT", "0"}}).ok());
  EXPECT_TRUE(load_config(nullptr, Env{{"CASTMESH_RTMP__PORT", "8080"}, {"CASTMESH_RTMP__ENABLED", "false"}}).ok());
  // A wildcard host overlaps a specific one.
  EXPECT_FALSE(load_config(nullptr, Env{{"CASTMESH_RTMP__PORT", "8080"}, {"CASTMESH_RTMP__HOST", "127.0.0.1"}}).ok());
}

TEST(Config, DuplicateKey) {
  TempYaml f("rtmp:\n  port: 1\n  port: 2\n");
  auto r = load_config(&f.path(), Env{});
  // yaml-cpp may reject duplicates itself; either way the load fails and names the key or line.
  const std::string e = errors_of(r);
  EXPECT_NE(e.find(f.path() + ":3"), std::string::npos) << e;
}

TEST(Config, AllErrorsAreReportedTogether) {
  TempYaml f(
      "server:\n"
      "  port: 70000\n"
      "  nope: 1\n"
      "hls:\n"
      "  store: s3\n"
      "live:\n"
      "  gop_cache_gops: 0\n");
  const std::string e = errors_of(load_config(&f.path(), Env{{"CASTMESH_RTMP__ENABLED", "perhaps"}}));
  EXPECT_EQ(line_count(e), 5u) << e;
  EXPECT_NE(e.find("server.port"), std::string::npos);
  EXPECT_NE(e.find("server.nope"), std::string::npos);
  EXPECT_NE(e.find("hls.store"), std::string::npos);
  EXPECT_NE(e.find("live.gop_cache_gops"), std::string::npos);
  EXPECT_NE(e.find("CASTMESH_RTMP__ENABLED: rtmp.enabled"), std::string::npos);
}

TEST(Config, YamlSyntaxError) {
  TempYaml f("server:\n  port: 80\n  host: [unclosed\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_EQ(e.rfind(f.path() + ":", 0), 0u) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
  EXPECT_EQ(line_count(e), 1u) << e;
}

TEST(Config, TopLevelMustBeAMapping) {
  TempYaml f("- server\n- rtmp\n");
  const std::string e = errors_of(load_config(&f.path(), Env{}));
  EXPECT_NE(e.find("the top level must be a mapping of sections, got a list"), std::string::npos) << e;
}

TEST(Config, EmptyFileMeansDefaults) {
  TempYaml f("# nothing here\n");
  auto r = load_config(&f.path(), Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->rtmp.port, 1935);
}

TEST(Config, MissingFile) {
  const std::string path = "/nonexistent/castmesh.yaml";
  const std::string e = errors_of(load_config(&path, Env{}));
  EXPECT_EQ(e, path + ": cannot read config file: No such file or directory");
}

TEST(Config, CheckConfigFile) {
  TempYaml good("rtmp:\n  port: 11935\n");
  EXPECT_EQ(check_config_file(good.path()), "");
  TempYaml bad("rtmp:\n  port: x\n  prot: 1\n");
  const std::string e = check_config_file(bad.path());
  EXPECT_EQ(line_count(e), 3u) << e;  // two errors + trailing newline
  EXPECT_EQ(e.back(), '\n');
  EXPECT_NE(e.find("rtmp.port"), std::string::npos);
  EXPECT_NE(e.find("rtmp.prot"), std::string::npos);
}

TEST(Config, DescribeKeysListsEveryKey) {
  const std::string d = describe_keys();
  for (const auto& k : config_keys()) {
    EXPECT_NE(d.find(k.key), std::string::npos) << k.key;
    EXPECT_NE(d.find(k.env), std::string::npos) << k.env;
    EXPECT_NE(d.find(k.description), std::string::npos) << k.key;
  }
  EXPECT_NE(d.find("uint16 0..65535"), std::string::npos);
  EXPECT_NE(d.find("memory|file"), std::string::npos);
}

TEST(Config, ExampleYamlParsesToTheDefaults) {
  TempYaml f(render_example_yaml());
  auto r = load_config(&f.path(), Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  // Every key of the loaded file shows the same as the defaults.
  const std::string example = render_example_yaml();
  for (const auto& k : config_keys()) {
    const std::string line = "  " + k.key.substr(k.key.find('.') + 1) + ": " + k.default_value + "\n";
    EXPECT_NE(example.find(line), std::string::npos) << k.key;
    EXPECT_NE(example.find(k.env), std::string::npos) << k.key;
  }
  const Config d;
  EXPECT_EQ(r->server.host, d.server.host);
  EXPECT_EQ(r->server.port, d.server.port);
  EXPECT_EQ(r->log_level, d.log_level);
  EXPECT_EQ(r->rtmp.max_chunk_size, d.rtmp.max_chunk_size);
  EXPECT_EQ(r->hls.store, d.hls.store);
  EXPECT_EQ(r->hls.dir, d.hls.dir);
  EXPECT_EQ(r->live.gop_cache_max_bytes, d.live.gop_cache_max_bytes);
  EXPECT_EQ(r->live.subscriber_max_lag_ms, d.live.subscriber_max_lag_ms);
}

TEST(Config, CommittedExampleYamlIsUpToDate) {
  const std::string path = source_dir() + "/castmesh.example.yaml";
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << path;
  std::ostringstream text;
  text << in.rdbuf();
  // CASTMESH_UPDATE_EXAMPLE_YAML=1 rewrites the committed file instead of failing.
  if (const char* update = std::getenv("CASTMESH_UPDATE_EXAMPLE_YAML"); update && std::string(update) == "1") {
    in.close();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << render_example_yaml();
    return;
  }
  EXPECT_EQ(text.str(), render_example_yaml())
      << "castmesh.example.yaml is out of date: regenerate it from render_example_yaml()";
}

}  // namespace
}  // namespace castmesh::app

namespace castmesh::app {
namespace {

TEST(Config, OssSubsectionNestedFlatAndEnvironment) {
  // Nested mapping, as the hls.oss.* keys read in YAML.
  TempYaml nested("hls:\n  store: oss\n  oss:\n    endpoint: http://127.0.0.1:4568\n    bucket: media\n"
                  "    base_path: hls\n");
  auto r = load_config(&nested.path(), Env{});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->hls.store, hls::StoreKind::oss);
  EXPECT_EQ(r->hls.oss.endpoint, "http://127.0.0.1:4568");
  EXPECT_EQ(r->hls.oss.bucket, "media");
  EXPECT_EQ(r->hls.oss.base_path, "hls");
  EXPECT_EQ(r->hls.oss.region, "us-east-1");
  // The environment wins; the sub-section's dot is "__" there.
  auto e = load_config(&nested.path(), Env{{"CASTMESH_HLS__OSS__BUCKET", "other"}});
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_EQ(e->hls.oss.bucket, "other");
  // oss without endpoint/bucket, a bad endpoint, an unknown sub-key and oss + shared_storage are refused.
  TempYaml missing("hls:\n  store: oss\n");
  auto m = load_config(&missing.path(), Env{});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("hls.oss.endpoint and hls.oss.bucket: required"), std::string::npos);
  TempYaml bad("hls:\n  store: oss\n  oss:\n    endpoint: s3.example.com\n    bucket: b\n    bukket: c\n");
  auto b = load_config(&bad.path(), Env{});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("want http(s)://host[:port]"), std::string::npos) << b.error().message();
  EXPECT_NE(b.error().message().find("unknown key 'hls.oss.bukket'"), std::string::npos) << b.error().message();
  TempYaml shared("hls:\n  store: oss\n  shared_storage: true\n  oss:\n    endpoint: http://h:1\n    bucket: b\n");
  auto s = load_config(&shared.path(), Env{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("valid only with hls.store: file"), std::string::npos);
}

}  // namespace
}  // namespace castmesh::app
