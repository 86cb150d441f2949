#pragma once
/// \file castmesh's whole configuration: the module structs, one table of keys, and the loader
/// that layers defaults <- YAML file <- environment and validates the result once at start-up.
///
/// Every key is `section.key` in YAML and `CASTMESH_<SECTION>__<KEY>` (upper case) in the
/// environment, e.g. `rtmp.port` / `CASTMESH_RTMP__PORT`. Defaults are the in-class defaults
/// of the module structs; the key table (config.cpp) only adds types, ranges, descriptions.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "auth/auth_config.hpp"
#include "base/result.hpp"
#include "cluster/cluster_config.hpp"
#include "live/stream_hub.hpp"
#include "net/http_config.hpp"
#include "proto/hls/hls_config.hpp"
#include "proto/httpflv/httpflv_config.hpp"
#include "proto/rtmp/rtmp_config.hpp"
#include "room/rooms_config.hpp"
#include "store/database_config.hpp"

namespace castmesh::app {

/// Section `web`: the browser UI.
struct WebConfig {
  /// Directory of the built UI (index.html and assets), served at `/`; unknown non-API paths
  /// get index.html (single-page app). Empty = no UI is served.
  std::string root = "web/dist";
};

/// Key `live.require_publish_key`: who may publish over RTMP.
struct PublishAuthConfig {
  /// When true, an RTMP publish is accepted only when its stream name is a room's publish key
  /// (`rtmp://host/live/{publish_key}`); the stream is then shown in that room.
  bool require_publish_key = false;
  /// Cluster mode: a publish of a key that another alive node holds takes it over (higher
  /// epoch; the old owner's publisher is closed) instead of being refused.
  bool publish_takeover = false;
};

/// The complete configuration. Each module receives only its own section, by `const&`.
struct Config {
  net::HttpConfig server;              ///< section `server`
  std::string log_level = "info";      ///< key `server.log_level`: trace|debug|info|warn|error|critical|off
  rtmp::RtmpConfig rtmp;               ///< section `rtmp`
  httpflv::HttpFlvConfig httpflv;      ///< section `httpflv`
  hls::HlsConfig hls;                  ///< section `hls`
  live::LiveConfig live;               ///< section `live`
  PublishAuthConfig publish_auth;      ///< key `live.require_publish_key` (section `live`)
  store::DatabaseConfig database;      ///< section `database`
  auth::AuthConfig auth;               ///< section `auth`
  room::RoomsConfig rooms;             ///< section `rooms`
  WebConfig web;                       ///< section `web`
  cluster::ClusterConfig cluster;      ///< section `cluster` (+ server.cluster_secret, server.cluster_secret_file)
  cluster::RedisConfig redis;          ///< section `redis`
  cluster::RelayConfig relay;          ///< section `relay`
};

/// Read-only description of one configuration key (one row of the key table).
struct KeyInfo {
  std::string key;            ///< "section.key", e.g. "rtmp.port"
  std::string env;            ///< "CASTMESH_RTMP__PORT"
  std::string type;           ///< "bool", "uint16", "uint32", "uint64", "int64", "number", "string" or "enum"
  std::string range;          ///< "0..65535", "memory|file", "non-empty", or "" when any value fits
  std::string default_value;  ///< the struct's in-class default as YAML text ("1935", "\"0.0.0.0\"", "true")
  std::string description;    ///< one line
};

/// Every key in table order (sections server, rtmp, httpflv, hls, live, database, auth, rooms,
/// web, cluster, redis).
std::vector<KeyInfo> config_keys();

/// Builds the configuration: struct defaults, then the YAML file at `*path` (skipped when
/// `path` is null), then every `CASTMESH_<SECTION>__<KEY>` entry of `env` (the environment
/// wins over the file). Entries of `env` that do not start with `CASTMESH_` or contain no
/// `__` are ignored.
///
/// Errors: Errc::config_invalid whose detail lists EVERY problem found, one per line, each
/// starting with its source (`FILE:LINE:` for the YAML file, `FILE:` when the file cannot be
/// read or parsed without a line, `CASTMESH_X__Y:` for the environment) and naming the key:
/// unreadable file, YAML syntax error, unknown section or key (with the closest known key
/// suggested), duplicate key, wrong type, value out of range, value not in the enum,
/// contradictory settings (hls.shared_storage without hls.store `file`; rtmp.port ==
/// server.port on overlapping hosts while RTMP is enabled; cluster.enabled without redis.url, a
/// postgres:// database.url or a cluster secret; offline_threshold <= suspect_threshold; a
/// malformed cluster.listen, node_id or peer).
/// Never throws on bad input.
Result<Config> load_config(const std::string* path, const std::map<std::string, std::string>& env);

/// As above, with the process environment (`environ`, only `CASTMESH_*` variables).
Result<Config> load_config(const std::string* path);

/// The key reference printed by `castmesh --help` after the usage: every key with its type and
/// range, default, environment variable and description. Ends with a newline.
std::string describe_keys();

/// The content of castmesh.example.yaml: every key set to its default, each preceded by comment
/// lines giving its description, type/range and environment variable. Loading it yields the
/// defaults. The committed file is checked by app_tests; regenerate it with
/// `CASTMESH_UPDATE_EXAMPLE_YAML=1 app_tests --gtest_filter=Config.CommittedExampleYamlIsUpToDate`.
std::string render_example_yaml();

/// For `castmesh config check FILE`: loads FILE alone (the environment is not applied) and
/// returns "" when it is valid, else the error list (one problem per line, newline-terminated).
std::string check_config_file(const std::string& path);

}  // namespace castmesh::app
