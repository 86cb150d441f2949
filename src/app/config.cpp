#include "app/config.hpp"

// yaml-cpp 0.7's node templates trip GCC 12's -Wdangling-pointer (a false positive in its
// headers); silence it for those headers only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#include <yaml-cpp/yaml.h>
#pragma GCC diagnostic pop
#else
#include <yaml-cpp/yaml.h>
#endif

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <type_traits>

extern char** environ;  // POSIX; declared here because <unistd.h> only does so with _GNU_SOURCE

namespace castmesh::app {
namespace {

constexpr std::string_view kEnvPrefix = "CASTMESH_";

// ---------------------------------------------------------------------------------------------
// Field accessors: a type per key that names where the key lives in Config. Member pointers do
// not compose across nested structs, so each accessor is a tiny template over the two members.

template <auto Section, auto Member>
struct In {
  static auto& ref(Config& c) { return (c.*Section).*Member; }
  static const auto& cref(const Config& c) { return (c.*Section).*Member; }
};

/// A key of the `hls.oss` sub-section.
template <auto Member>
struct InOss {
  static auto& ref(Config& c) { return c.hls.oss.*Member; }
  static const auto& cref(const Config& c) { return c.hls.oss.*Member; }
};

template <auto Member>
struct Top {
  static auto& ref(Config& c) { return c.*Member; }
  static const auto& cref(const Config& c) { return c.*Member; }
};

// ---------------------------------------------------------------------------------------------
// The typed descriptor of one key.

enum class Kind { boolean, uint, real, string, choice, list };

/// Shortest text that reads back as `v` ("3", "2.5").
std::string format_real(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

struct Key {
  std::string_view section;
  std::string_view name;
  Kind kind = Kind::string;
  std::string_view type;  // "bool", "uint16", ...
  uint64_t min = 0;
  uint64_t max = 0;
  double real_min = 0;  // Kind::real
  double real_max = 0;
  std::vector<std::string_view> choices;  // Kind::choice, in enum order
  bool non_empty = false;                 // Kind::string
  std::string_view description;
  /// Parses `text` into the field of `c`; returns "" or what is wrong with the value.
  std::string (*apply)(Config& c, const Key& k, std::string_view text) = nullptr;
  /// The field's current value of `c` as YAML text.
  std::string (*show)(const Config& c, const Key& k) = nullptr;

  std::string full() const { return std::string(section) + "." + std::string(name); }
  std::string env() const {
    std::string e(kEnvPrefix);
    for (char ch : section) e += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    e += "__";
    // A sub-section's dot becomes "__" too: hls.oss.endpoint -> CASTMESH_HLS__OSS__ENDPOINT.
    for (char ch : name) {
      if (ch == '.') e += "__";
      else e += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    return e;
  }
  std::string range() const {
    switch (kind) {
      case Kind::boolean: return "true|false";
      case Kind::uint: return std::to_string(min) + ".." + std::to_string(max);
      case Kind::real: return format_real(real_min) + ".." + format_real(real_max);
      case Kind::string: return non_empty ? "non-empty" : "";
      case Kind::list: return "";
      case Kind::choice: {
        std::string r;
        for (auto c : choices) {
          if (!r.empty()) r += '|';
          r += c;
        }
        return r;
      }
    }
    return "";
  }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string yaml_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
  return out;
}

std::optional<bool> parse_bool(std::string_view text) {
  const std::string t = lower(trim(text));
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  return std::nullopt;
}

std::optional<size_t> find_choice(const Key& k, std::string_view text) {
  const std::string t = lower(trim(text));
  for (size_t i = 0; i < k.choices.size(); ++i) {
    if (k.choices[i] == t) return i;
  }
  return std::nullopt;
}

std::string bad_choice(const Key& k, std::string_view text) {
  return "'" + std::string(text) + "' is not one of " + k.range();
}

template <class A>
std::string apply_field(Config& c, const Key& k, std::string_view text) {
  auto& field = A::ref(c);
  using T = std::remove_cvref_t<decltype(field)>;
  if constexpr (std::is_same_v<T, bool>) {
    auto b = parse_bool(text);
    if (!b) return "expected a boolean (true|false), got '" + std::string(text) + "'";
    field = *b;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (k.kind == Kind::choice) {
      auto i = find_choice(k, text);
      if (!i) return bad_choice(k, text);
      field = std::string(k.choices[*i]);
    } else {
      if (k.non_empty && trim(text).empty()) return "must not be empty";
      field = std::string(text);
    }
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    // A YAML list arrives joined with ',' (see walk_section); the environment uses ',' too.
    // "[a, b]" (the form the defaults are shown in) is accepted as well; items may be quoted.
    field.clear();
    std::string_view rest = trim(text);
    if (rest.size() >= 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view item = trim(rest.substr(0, comma));
      if (item.size() >= 2 && item.front() == '"' && item.back() == '"') item = item.substr(1, item.size() - 2);
      if (!item.empty()) field.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  } else if constexpr (std::is_enum_v<T>) {
    auto i = find_choice(k, text);
    if (!i) return bad_choice(k, text);
    field = static_cast<T>(*i);
  } else if constexpr (std::is_floating_point_v<T>) {
    const std::string_view t = trim(text);
    const std::string expected = "expected a number (" + k.range() + "), got '" + std::string(text) + "'";
    double v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, std::chars_format::fixed);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size() || !std::isfinite(v)) return expected;
    if (v < k.real_min || v > k.real_max) return std::string(t) + " is out of range " + k.range();
    field = static_cast<T>(v);
  } else {
    // Signed fields (int64_t) accept only their non-negative range min..max, like unsigned ones.
    static_assert(std::is_integral_v<T>, "unsupported field type");
    const std::string_view t = trim(text);
    const std::string expected =
        "expected an integer (" + std::string(k.type) + " " + k.range() + "), got '" + std::string(text) + "'";
    if (t.empty() || !std::all_of(t.begin(), t.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      return expected;
    }
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec == std::errc::result_out_of_range || (ec == std::errc{} && (v < k.min || v > k.max))) {
      return std::string(t) + " is out of range " + k.range();
    }
    if (ec != std::errc{} || end != t.data() + t.size()) return expected;
    field = static_cast<T>(v);
  }
  return {};
}

template <class A>
std::string show_field(const Config& c, const Key& k) {
  const auto& field = A::cref(c);
  using T = std::remove_cvref_t<decltype(field)>;
  if constexpr (std::is_same_v<T, bool>) {
    return field ? "true" : "false";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return k.kind == Kind::choice ? field : yaml_quote(field);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::string out = "[";
    for (const auto& item : field) out += (out.size() > 1 ? ", " : "") + yaml_quote(item);
    return out + "]";
  } else if constexpr (std::is_enum_v<T>) {
    const auto i = static_cast<size_t>(field);
    return i < k.choices.size() ? std::string(k.choices[i]) : std::to_string(i);
  } else if constexpr (std::is_floating_point_v<T>) {
    return format_real(field);
  } else {
    return std::to_string(field);
  }
}

template <class A>
Key make_key(std::string_view key, Kind kind, std::string_view description) {
  Key k;
  const auto dot = key.find('.');
  k.section = key.substr(0, dot);
  k.name = key.substr(dot + 1);
  k.kind = kind;
  k.description = description;
  k.apply = &apply_field<A>;
  k.show = &show_field<A>;
  return k;
}

/// A boolean key.
template <class A>
Key flag(std::string_view key, std::string_view description) {
  Key k = make_key<A>(key, Kind::boolean, description);
  k.type = "bool";
  return k;
}

/// An integer key accepting min..max (max 0 = the field type's maximum). Signed fields take
/// only non-negative values.
template <class A>
Key number(std::string_view key, uint64_t min, uint64_t max, std::string_view description) {
  using T = std::remove_cvref_t<decltype(A::ref(std::declval<Config&>()))>;
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  Key k = make_key<A>(key, Kind::uint, description);
  if constexpr (std::is_signed_v<T>) {
    k.type = sizeof(T) == 8 ? "int64" : "int32";
  } else {
    k.type = sizeof(T) == 2 ? "uint16" : sizeof(T) == 4 ? "uint32" : "uint64";
  }
  k.min = min;
  k.max = max == 0 ? static_cast<uint64_t>(std::numeric_limits<T>::max()) : max;
  return k;
}

/// A floating-point key accepting min..max, written in plain decimal notation ("2.5").
template <class A>
Key real(std::string_view key, double min, double max, std::string_view description) {
  using T = std::remove_cvref_t<decltype(A::ref(std::declval<Config&>()))>;
  static_assert(std::is_floating_point_v<T>);
  Key k = make_key<A>(key, Kind::real, description);
  k.type = "number";
  k.real_min = min;
  k.real_max = max;
  return k;
}

/// A free-form string key.
template <class A>
Key text(std::string_view key, bool non_empty, std::string_view description) {
  Key k = make_key<A>(key, Kind::string, description);
  k.type = "string";
  k.non_empty = non_empty;
  return k;
}

/// A list of strings: a YAML sequence, or comma-separated text (environment).
template <class A>
Key list(std::string_view key, std::string_view description) {
  Key k = make_key<A>(key, Kind::list, description);
  k.type = "list";
  return k;
}

/// A key with a fixed set of values; for an enum field `choices` follow the enumerators' order.
template <class A>
Key choice(std::string_view key, std::vector<std::string_view> choices, std::string_view description) {
  Key k = make_key<A>(key, Kind::choice, description);
  k.type = "enum";
  k.choices = std::move(choices);
  return k;
}

struct Section {
  std::string_view name;
  std::string_view description;
};

const std::vector<Section>& sections() {
  static const std::vector<Section> kSections = {
      {"server", "HTTP server: HTTP-FLV and HLS playback, the JSON API, /healthz, /metrics; logging."},
      {"rtmp", "RTMP ingest and playback (rtmp://HOST:PORT/{app}/{stream})."},
      {"httpflv", "HTTP-FLV playback (GET /live/{app}/{stream}.flv)."},
      {"hls", "HLS playback (GET /live/{app}/{stream}.m3u8), MPEG-TS segments cut on keyframes."},
      {"live", "Live sources: GOP cache, subscriber lag, who may publish."},
      {"database", "Durable state: users, sessions, rooms, members, playlists, chat."},
      {"auth", "Accounts, login sessions and login rate limits."},
      {"rooms", "Watch-together rooms and their WebSocket connections."},
      {"web", "The browser UI."},
      {"cluster", "Cluster mode: nodes sharing PostgreSQL and Redis, discovery, liveness, leader election."},
      {"redis", "Redis: the cluster's event bus, node registry and leader lease."},
      {"relay", "Cluster mode: edge relays that pull a stream from the node publishing it."},
  };
  return kSections;
}

constexpr uint64_t kMaxMs = 86'400'000;  // one day

// THE key table. Defaults are not repeated here: they come from the structs' in-class defaults.
const std::vector<Key>& keys() {
  using net::HttpConfig;
  using rtmp::RtmpConfig;
  using httpflv::HttpFlvConfig;
  using hls::HlsConfig;
  using hls::OssConfig;
  using live::LiveConfig;
  using store::DatabaseConfig;
  using auth::AuthConfig;
  using room::RoomsConfig;
  using cluster::ClusterConfig;
  using cluster::RedisConfig;
  using cluster::RelayConfig;
  static const std::vector<Key> kKeys = {
      // server
      text<In<&Config::server, &HttpConfig::host>>("server.host", true,
          "Address the HTTP server listens on."),
      number<In<&Config::server, &HttpConfig::port>>("server.port", 0, 0,
          "TCP port of the HTTP server (0 = ephemeral)."),
      number<In<&Config::server, &HttpConfig::threads>>("server.threads", 0, 1024,
          "I/O threads, one event loop each (0 = number of cores)."),
      number<In<&Config::server, &HttpConfig::request_timeout_ms>>("server.request_timeout_ms", 100, kMaxMs,
          "Request headers must arrive within this time, also the keep-alive idle limit, ms."),
      number<In<&Config::server, &HttpConfig::send_timeout_ms>>("server.send_timeout_ms", 100, kMaxMs,
          "A response must be written within this time, else the connection is closed, ms."),
      number<In<&Config::server, &HttpConfig::max_body_bytes>>("server.max_body_bytes", 0, 0,
          "Largest request body accepted, bytes."),
      number<In<&Config::server, &HttpConfig::max_connections>>("server.max_connections", 1, 0,
          "Concurrent HTTP connections accepted."),
      number<In<&Config::server, &HttpConfig::shutdown_grace_secs>>("server.shutdown_grace_secs", 0, 3600,
          "On SIGTERM/SIGINT sessions are closed and the process exits within this time, s."),
      choice<Top<&Config::log_level>>("server.log_level",
          {"trace", "debug", "info", "warn", "error", "critical", "off"},
          "Least severe log level written."),
      text<In<&Config::cluster, &ClusterConfig::secret>>("server.cluster_secret", false,
          "Shared secret signing inter-node requests (HMAC-SHA256); required in cluster mode. Never logged."),
      text<In<&Config::cluster, &ClusterConfig::secret_file>>("server.cluster_secret_file", false,
          "File holding the cluster secret (trailing newline ignored); used when server.cluster_secret is empty."),
      // rtmp
      flag<In<&Config::rtmp, &RtmpConfig::enabled>>("rtmp.enabled",
          "Accept RTMP publishers and players."),
      text<In<&Config::rtmp, &RtmpConfig::host>>("rtmp.host", true,
          "Address the RTMP server listens on."),
      number<In<&Config::rtmp, &RtmpConfig::port>>("rtmp.port", 0, 0,
          "TCP port of the RTMP server (0 = ephemeral)."),
      number<In<&Config::rtmp, &RtmpConfig::handshake_timeout_ms>>("rtmp.handshake_timeout_ms", 100, kMaxMs,
          "The handshake must complete within this time, ms."),
      number<In<&Config::rtmp, &RtmpConfig::idle_timeout_ms>>("rtmp.idle_timeout_ms", 100, kMaxMs,
          "A publisher that sends nothing for this long is closed, ms."),
      number<In<&Config::rtmp, &RtmpConfig::send_timeout_ms>>("rtmp.send_timeout_ms", 100, kMaxMs,
          "A player whose pending write does not complete within this time is closed, ms."),
      number<In<&Config::rtmp, &RtmpConfig::max_chunk_size>>("rtmp.max_chunk_size", 128, 2'147'483'647,
          "Largest Set Chunk Size accepted from a peer, bytes (RTMP spec 5.4.1)."),
      number<In<&Config::rtmp, &RtmpConfig::max_message_bytes>>("rtmp.max_message_bytes", 1024, 1'073'741'824,
          "Largest RTMP message accepted, bytes."),
      number<In<&Config::rtmp, &RtmpConfig::out_chunk_size>>("rtmp.out_chunk_size", 128, 16'777'215,
          "Chunk size castmesh sends with, announced by Set Chunk Size, bytes."),
      number<In<&Config::rtmp, &RtmpConfig::window_ack_size>>("rtmp.window_ack_size", 1, 2'147'483'647,
          "Window Acknowledgement Size announced to peers, bytes."),
      number<In<&Config::rtmp, &RtmpConfig::merge_window_ms>>("rtmp.merge_window_ms", 0, 1000,
          "A player's writer waits up to this long to merge frames into one write, ms (0 = none)."),
      number<In<&Config::rtmp, &RtmpConfig::max_connections>>("rtmp.max_connections", 1, 0,
          "Concurrent RTMP connections accepted; beyond it new connections are closed at once."),
      // httpflv
      flag<In<&Config::httpflv, &HttpFlvConfig::enabled>>("httpflv.enabled",
          "Serve HTTP-FLV playback."),
      number<In<&Config::httpflv, &HttpFlvConfig::send_timeout_ms>>("httpflv.send_timeout_ms", 100, kMaxMs,
          "A player whose pending write does not complete within this time is closed, ms."),
      number<In<&Config::httpflv, &HttpFlvConfig::merge_window_ms>>("httpflv.merge_window_ms", 0, 1000,
          "The writer waits up to this long to merge frames into one write, ms (0 = none)."),
      // hls
      flag<In<&Config::hls, &HlsConfig::enabled>>("hls.enabled",
          "Serve HLS playback."),
      choice<In<&Config::hls, &HlsConfig::store>>("hls.store", {"memory", "file", "oss"},
          "Where playlists and segments are kept (oss: S3-compatible object storage, hls.oss.*)."),
      text<In<&Config::hls, &HlsConfig::dir>>("hls.dir", true,
          "Directory of the file store; one sub-directory per app/stream."),
      flag<In<&Config::hls, &HlsConfig::shared_storage>>("hls.shared_storage",
          "Set when several nodes share hls.dir (valid only with hls.store: file)."),
      number<In<&Config::hls, &HlsConfig::target_duration_secs>>("hls.target_duration_secs", 1, 60,
          "Segments are cut on the first keyframe at or after this duration, s."),
      number<In<&Config::hls, &HlsConfig::window>>("hls.window", 1, 1000,
          "Segments listed in the live playlist."),
      number<In<&Config::hls, &HlsConfig::cleanup_grace_secs>>("hls.cleanup_grace_secs", 0, 86400,
          "Playlist and segments are removed this long after the publisher stops, s."),
      number<In<&Config::hls, &HlsConfig::max_segment_bytes>>("hls.max_segment_bytes", 65536, 0,
          "Hard cap of one segment, bytes (a stream without keyframes is cut here)."),
      number<In<&Config::hls, &HlsConfig::proxy_playlist_ttl_ms>>("hls.proxy_playlist_ttl_ms", 0, 10000,
          "Cluster mode: a node serving another node's HLS re-fetches the playlist after this time, ms."),
      number<In<&Config::hls, &HlsConfig::proxy_cache_bytes>>("hls.proxy_cache_bytes", 1048576, 0,
          "Cluster mode: bound of the cache of other nodes' playlists and segments, bytes."),
      text<InOss<&OssConfig::endpoint>>("hls.oss.endpoint", false,
          "oss store: http(s)://host[:port] of the S3 API (path-style requests)."),
      text<InOss<&OssConfig::bucket>>("hls.oss.bucket", false,
          "oss store: the bucket."),
      text<InOss<&OssConfig::base_path>>("hls.oss.base_path", false,
          "oss store: key prefix inside the bucket (\"\" = its root)."),
      text<InOss<&OssConfig::region>>("hls.oss.region", true,
          "oss store: the region named in request signatures (AWS SigV4)."),
      text<InOss<&OssConfig::access_key_id>>("hls.oss.access_key_id", false,
          "oss store: access key id; empty = the environment's AWS_ACCESS_KEY_ID."),
      text<InOss<&OssConfig::secret_access_key>>("hls.oss.secret_access_key", false,
          "oss store: secret access key (never logged); empty = AWS_SECRET_ACCESS_KEY."),
      number<InOss<&OssConfig::timeout_ms>>("hls.oss.timeout_ms", 100, kMaxMs,
          "oss store: one S3 request (connect, send, response), ms."),
      // live
      number<In<&Config::live, &LiveConfig::gop_cache_max_bytes>>("live.gop_cache_max_bytes", 65536,
          uint64_t{1} << 36,
          "Hard cap of the GOP cache of one stream, bytes; also caps one oversized GOP."),
      number<In<&Config::live, &LiveConfig::gop_cache_gops>>("live.gop_cache_gops", 1, 100,
          "Whole GOPs the cache retains behind the newest keyframe."),
      number<In<&Config::live, &LiveConfig::subscriber_max_lag_ms>>("live.subscriber_max_lag_ms", 100, kMaxMs,
          "A subscriber further behind the newest packet than this skips to the newest keyframe, ms."),
      number<In<&Config::live, &LiveConfig::idle_timeout_ms>>("live.idle_timeout_ms", 0, kMaxMs,
          "A stream with neither publisher nor subscribers is removed after this time, ms."),
      flag<In<&Config::publish_auth, &PublishAuthConfig::require_publish_key>>("live.require_publish_key",
          "RTMP publish only with a room's publish key as stream name (rtmp://HOST/live/{publish_key})."),
      flag<In<&Config::publish_auth, &PublishAuthConfig::publish_takeover>>("live.publish_takeover",
          "Cluster mode: a publish of a stream another alive node publishes takes it over instead of being refused."),
      // database
      text<In<&Config::database, &DatabaseConfig::url>>("database.url", true,
          "sqlite:PATH (or a plain path) for SQLite; postgres://user:pass@host:port/db for PostgreSQL."),
      // auth
      number<In<&Config::auth, &AuthConfig::session_ttl_secs>>("auth.session_ttl_secs", 60, 315'360'000,
          "Lifetime of a login session (bearer token / cookie), s."),
      flag<In<&Config::auth, &AuthConfig::allow_registration>>("auth.allow_registration",
          "Anyone may create an account with POST /api/v1/auth/register."),
      number<In<&Config::auth, &AuthConfig::login_rate_per_min>>("auth.login_rate_per_min", 1, 10'000,
          "Login attempts per minute per username and client address (6x per client address)."),
      // rooms
      number<In<&Config::rooms, &RoomsConfig::chat_history>>("rooms.chat_history", 1, 100'000,
          "Chat messages kept per room (older ones are deleted)."),
      number<In<&Config::rooms, &RoomsConfig::ws_max_frame_bytes>>("rooms.ws_max_frame_bytes", 256, 16'777'216,
          "Largest WebSocket message accepted from a member; larger ones close the connection (1009), bytes."),
      number<In<&Config::rooms, &RoomsConfig::ws_rate_per_sec>>("rooms.ws_rate_per_sec", 1, 10'000,
          "Messages per second a connection may send (burst 2x); the excess is refused."),
      number<In<&Config::rooms, &RoomsConfig::kick_cooldown_secs>>("rooms.kick_cooldown_secs", 0, 31'536'000,
          "A kicked member may rejoin after this time unless the kick names another, s."),
      number<In<&Config::rooms, &RoomsConfig::ws_send_queue>>("rooms.ws_send_queue", 1, 1'000'000,
          "Messages queued for one connection; a member whose queue overflows is disconnected."),
      real<In<&Config::rooms, &RoomsConfig::live_target_offset_secs>>("rooms.live_target_offset_secs", 0, 600,
          "Live items: every member is held this far behind the live edge, s."),
      // web
      text<In<&Config::web, &WebConfig::root>>("web.root", false,
          "Directory of the built browser UI served at / (empty = no UI)."),
      // cluster
      flag<In<&Config::cluster, &ClusterConfig::enabled>>("cluster.enabled",
          "Cluster mode: needs redis.url, a postgres:// database.url and server.cluster_secret(_file)."),
      text<In<&Config::cluster, &ClusterConfig::node_id>>("cluster.node_id", false,
          "This node's id, [A-Za-z0-9._-]{1,64} (empty = $POD_NAME when set, else host name + random suffix)."),
      text<In<&Config::cluster, &ClusterConfig::advertise_addr>>("cluster.advertise_addr", false,
          "host:port where other nodes reach this node's inter-node API (empty = host name + cluster.listen port)."),
      text<In<&Config::cluster, &ClusterConfig::node_group>>("cluster.node_group", true,
          "Region label of this node."),
      text<In<&Config::cluster, &ClusterConfig::listen>>("cluster.listen", true,
          "host:port of the inter-node API listener (signed requests only)."),
      choice<In<&Config::cluster, &ClusterConfig::discovery_mode>>("cluster.discovery_mode",
          {"redis", "static", "k8s_dns"},
          "How nodes find each other: Redis registry, cluster.peers, or DNS A records of a headless service."),
      list<In<&Config::cluster, &ClusterConfig::peers>>("cluster.peers",
          "static discovery: the other nodes' inter-node API addresses, host[:port] (no port = server.port)."),
      text<In<&Config::cluster, &ClusterConfig::dns_server>>("cluster.dns_server", false,
          "k8s_dns discovery: DNS server ip[:port] to ask (empty = the system resolver)."),
      real<In<&Config::cluster, &ClusterConfig::heartbeat_interval>>("cluster.heartbeat_interval", 0.1, 3600,
          "Time between two heartbeats of a node, s."),
      number<In<&Config::cluster, &ClusterConfig::suspect_threshold>>("cluster.suspect_threshold", 1, 1000,
          "Heartbeat intervals without a heartbeat after which a node is suspect."),
      number<In<&Config::cluster, &ClusterConfig::offline_threshold>>("cluster.offline_threshold", 2, 1000,
          "Heartbeat intervals without a heartbeat after which a node is offline (its sessions are dropped)."),
      number<In<&Config::cluster, &ClusterConfig::stream_max_length>>("cluster.stream_max_length", 100, 100'000'000,
          "Events kept in the Redis stream for catch-up (approximate trim)."),
      number<In<&Config::cluster, &ClusterConfig::critical_channel_capacity>>("cluster.critical_channel_capacity", 1,
          10'000'000, "Critical events (kicks, permission changes) queued for Redis; beyond it requests fail (503)."),
      number<In<&Config::cluster, &ClusterConfig::publish_channel_capacity>>("cluster.publish_channel_capacity", 1,
          10'000'000, "Normal events queued for Redis; beyond it events are dropped with a warning."),
      number<In<&Config::cluster, &ClusterConfig::catchup_window_secs>>("cluster.catchup_window_secs", 0, 86400,
          "On (re)connecting to Redis a node replays the events of this last period, s."),
      choice<In<&Config::cluster, &ClusterConfig::leader_election_mode>>("cluster.leader_election_mode",
          {"redis", "k8s_lease"},
          "Leader election: a Redis lease with a fencing epoch, or a coordination.k8s.io/v1 Lease."),
      real<In<&Config::cluster, &ClusterConfig::leader_lease_secs>>("cluster.leader_lease_secs", 1, 3600,
          "Leader lease length, s; renewed every third of it, leader work stops before it can expire."),
      text<In<&Config::cluster, &ClusterConfig::k8s_api_url>>("cluster.k8s_api_url", true,
          "k8s_lease: URL of the Kubernetes API server."),
      // redis
      text<In<&Config::redis, &RedisConfig::url>>("redis.url", false,
          "redis://[:password@]host[:port][/db]; required in cluster mode."),
      text<In<&Config::redis, &RedisConfig::key_prefix>>("redis.key_prefix", true,
          "Every Redis key and channel castmesh uses starts with '{prefix}:'."),
      // relay
      real<In<&Config::relay, &RelayConfig::establish_timeout>>("relay.establish_timeout", 0.1, 3600,
          "An edge's pull from the publishing node must connect and answer within this time, s."),
      number<In<&Config::relay, &RelayConfig::max_retry_attempts>>("relay.max_retry_attempts", 1, 1000,
          "Failed pulls in a row before a relay gives up."),
      real<In<&Config::relay, &RelayConfig::retry_delay>>("relay.retry_delay", 0, 3600,
          "Wait between failed pulls, s."),
      real<In<&Config::relay, &RelayConfig::release_delay>>("relay.release_delay", 0, 86400,
          "A relay stops this long after its last local player left, s."),
      real<In<&Config::relay, &RelayConfig::health_check_interval>>("relay.health_check_interval", 0.1, 3600,
          "A relay that received no media for this long reconnects, s."),
      number<In<&Config::relay, &RelayConfig::max_waiting_players>>("relay.max_waiting_players", 1, 1000000,
          "Players that may wait for one relay's first media; further HTTP-FLV players get 503."),
  };
  return kKeys;
}

const Key* find_key(std::string_view section, std::string_view name) {
  for (const Key& k : keys()) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

bool is_section(std::string_view name) {
  for (const Section& s : sections()) {
    if (s.name == name) return true;
  }
  return false;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// " (did you mean 'X'?)" for the candidate closest to `word`, or "" when none is close.
std::string suggest(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string w = lower(word);
  size_t best = std::numeric_limits<size_t>::max();
  const std::string* pick = nullptr;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(w, lower(c));
    if (d < best) {
      best = d;
      pick = &c;
    }
  }
  const size_t limit = std::max<size_t>(2, w.size() / 3);
  if (pick == nullptr || best > limit) return "";
  return " (did you mean '" + *pick + "'?)";
}

std::vector<std::string> all_full_keys() {
  std::vector<std::string> out;
  for (const Key& k : keys()) out.push_back(k.full());
  return out;
}

std::string describe_node_type(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "no value";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "a scalar";
  }
}

bool is_wildcard_host(const std::string& h) { return h.empty() || h == "0.0.0.0" || h == "::" || h == "[::]"; }

std::string normal_host(const std::string& h) { return h == "localhost" ? "127.0.0.1" : h; }

bool hosts_overlap(const std::string& a, const std::string& b) {
  return is_wildcard_host(a) || is_wildcard_host(b) || normal_host(a) == normal_host(b);
}

// ---------------------------------------------------------------------------------------------

/// Applies sources in order onto one Config and collects every problem.
class Loader {
 public:
  void load_file(const std::string& path) {
    std::error_code fs_ec;
    if (std::filesystem::is_directory(path, fs_ec)) {
      errors_.push_back(path + ": cannot read config file: it is a directory");
      return;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      errors_.push_back(path + ": cannot read config file: " + std::strerror(errno));
      return;
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) {
      errors_.push_back(path + ": cannot read config file: read error");
      return;
    }
    // yaml-cpp reports problems by exception; they are caught here and become error values.
    try {
      const YAML::Node root = YAML::Load(text.str());
      walk(path, root);
    } catch (const YAML::Exception& e) {
      errors_.push_back(where(path, e.mark) + ": YAML syntax error: " + e.msg);
    }
  }

  void load_env(const std::map<std::string, std::string>& env) {
    std::vector<std::string> env_names;
    for (const Key& k : keys()) env_names.push_back(k.env());
    for (const auto& [name, value] : env) {
      if (name.rfind(kEnvPrefix, 0) != 0) continue;
      const std::string rest = name.substr(kEnvPrefix.size());
      const auto sep = rest.find("__");
      if (sep == std::string::npos) continue;  // not a config key (e.g. CASTMESH_SOURCE_DIR)
      const std::string section = lower(rest.substr(0, sep));
      std::string key = lower(rest.substr(sep + 2));
      for (size_t p; (p = key.find("__")) != std::string::npos;) key.replace(p, 2, ".");
      const Key* k = find_key(section, key);
      if (k == nullptr || k->env() != name) {
        errors_.push_back(name + ": unknown configuration variable" + suggest(name, env_names));
        continue;
      }
      set(*k, value, name);
    }
  }

  void cross_check() {
    const Config& c = cfg_;
    if (c.hls.shared_storage && c.hls.store != hls::StoreKind::file && !failed({"hls.shared_storage", "hls.store"})) {
      errors_.push_back(origin({"hls.shared_storage", "hls.store"}) +
                        ": hls.shared_storage: true is valid only with hls.store: file (hls.store is " +
                        find_key("hls", "store")->show(c, *find_key("hls", "store")) + ")");
    }
    if (c.hls.store == hls::StoreKind::oss && !failed({"hls.store", "hls.oss.endpoint", "hls.oss.bucket"})) {
      if (c.hls.oss.endpoint.empty() || c.hls.oss.bucket.empty()) {
        errors_.push_back(origin({"hls.oss.endpoint", "hls.oss.bucket", "hls.store"}) +
                          ": hls.oss.endpoint and hls.oss.bucket: required with hls.store: oss");
      } else if (!c.hls.oss.endpoint.starts_with("http://") && !c.hls.oss.endpoint.starts_with("https://")) {
        errors_.push_back(origin({"hls.oss.endpoint"}) + ": hls.oss.endpoint: want http(s)://host[:port], got " +
                          yaml_quote(c.hls.oss.endpoint));
      }
    }
    if (c.rtmp.enabled && c.rtmp.port != 0 && c.rtmp.port == c.server.port &&
        hosts_overlap(c.rtmp.host, c.server.host) &&
        !failed({"rtmp.enabled", "rtmp.port", "rtmp.host", "server.port", "server.host"})) {
      errors_.push_back(origin({"rtmp.port", "server.port", "rtmp.host", "server.host"}) + ": rtmp.port: " +
                        std::to_string(c.rtmp.port) + " is also server.port on overlapping hosts (rtmp.host " +
                        yaml_quote(c.rtmp.host) + ", server.host " + yaml_quote(c.server.host) + ")");
    }
  }

  void cross_check_cluster() {
    const Config& c = cfg_;
    const auto& cl = c.cluster;
    if (cl.enabled && !failed({"cluster.enabled"})) {
      if (c.redis.url.empty() && !failed({"redis.url"})) {
        errors_.push_back(origin({"redis.url", "cluster.enabled"}) + ": redis.url: required when cluster.enabled is true");
      }
      const std::string& db = c.database.url;
      if (!db.starts_with("postgres://") && !db.starts_with("postgresql://") && !failed({"database.url"})) {
        errors_.push_back(origin({"database.url", "cluster.enabled"}) +
                          ": database.url: cluster mode needs PostgreSQL (postgres://...), not SQLite");
      }
      if (cl.secret.empty() && cl.secret_file.empty() &&
          !failed({"server.cluster_secret", "server.cluster_secret_file"})) {
        errors_.push_back(origin({"server.cluster_secret", "server.cluster_secret_file", "cluster.enabled"}) +
                          ": server.cluster_secret: required when cluster.enabled is true (or set "
                          "server.cluster_secret_file)");
      }
    }
    if (cl.offline_threshold <= cl.suspect_threshold &&
        !failed({"cluster.offline_threshold", "cluster.suspect_threshold"})) {
      errors_.push_back(origin({"cluster.offline_threshold", "cluster.suspect_threshold"}) +
                        ": cluster.offline_threshold: must be greater than cluster.suspect_threshold (" +
                        std::to_string(cl.offline_threshold) + " <= " + std::to_string(cl.suspect_threshold) + ")");
    }
    if (!cl.node_id.empty() && !cluster::valid_node_id(cl.node_id) && !failed({"cluster.node_id"})) {
      errors_.push_back(origin({"cluster.node_id"}) + ": cluster.node_id: " + yaml_quote(cl.node_id) +
                        " is not 1..64 characters of [A-Za-z0-9._-]");
    }
    if (!cluster::parse_host_port(cl.listen) && !failed({"cluster.listen"})) {
      errors_.push_back(origin({"cluster.listen"}) + ": cluster.listen: " + yaml_quote(cl.listen) +
                        " is not host:port");
    }
    if (!cl.advertise_addr.empty() && !cluster::parse_host_port(cl.advertise_addr) &&
        !failed({"cluster.advertise_addr"})) {
      errors_.push_back(origin({"cluster.advertise_addr"}) + ": cluster.advertise_addr: " +
                        yaml_quote(cl.advertise_addr) + " is not host:port");
    }
    for (const auto& p : cl.peers) {
      if (!cluster::parse_host_port(p, uint16_t{1}) && !failed({"cluster.peers"})) {
        errors_.push_back(origin({"cluster.peers"}) + ": cluster.peers: " + yaml_quote(p) + " is not host[:port]");
      }
    }
    if (cl.enabled && cl.discovery_mode == cluster::DiscoveryMode::static_ && cl.peers.empty() &&
        !failed({"cluster.peers", "cluster.discovery_mode"})) {
      errors_.push_back(origin({"cluster.peers", "cluster.discovery_mode"}) +
                        ": cluster.peers: static discovery needs at least one peer");
    }
    if (!cl.dns_server.empty() && !cluster::parse_host_port(cl.dns_server, uint16_t{53}) &&
        !failed({"cluster.dns_server"})) {
      errors_.push_back(origin({"cluster.dns_server"}) + ": cluster.dns_server: " + yaml_quote(cl.dns_server) +
                        " is not ip[:port]");
    }
  }

  Result<Config> finish() {
    cross_check();
    cross_check_cluster();
    if (errors_.empty()) return std::move(cfg_);
    std::string detail;
    for (const auto& e : errors_) {
      if (!detail.empty()) detail += '\n';
      detail += e;
    }
    return Error{Errc::config_invalid, std::move(detail)};
  }

 private:
  static std::string where(const std::string& path, const YAML::Mark& m) {
    if (m.is_null() || m.line < 0) return path;
    return path + ":" + std::to_string(m.line + 1);
  }

  void set(const Key& k, std::string_view value, const std::string& source) {
    const std::string problem = k.apply(cfg_, k, value);
    if (!problem.empty()) {
      errors_.push_back(source + ": " + k.full() + ": " + problem);
      failed_.insert(k.full());
      return;
    }
    origin_[k.full()] = source;
  }

  bool failed(std::initializer_list<const char*> ks) const {
    return std::any_of(ks.begin(), ks.end(), [&](const char* k) { return failed_.count(k) != 0; });
  }

  /// Where the first of `ks` that was set explicitly came from (the environment wins).
  std::string origin(std::initializer_list<const char*> ks) const {
    for (const char* k : ks) {
      auto it = origin_.find(k);
      if (it != origin_.end()) return it->second;
    }
    return "configuration";
  }

  void walk(const std::string& path, const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) return;  // empty file: all defaults
    if (!root.IsMap()) {
      errors_.push_back(where(path, root.Mark()) + ": the top level must be a mapping of sections, got " +
                        describe_node_type(root));
      return;
    }
    std::vector<std::string> section_names;
    for (const Section& s : sections()) section_names.emplace_back(s.name);
    std::set<std::string> seen_sections;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const YAML::Node& kn = it->first;
      const YAML::Node& vn = it->second;
      const std::string at = where(path, kn.Mark());
      if (!kn.IsScalar()) {
        errors_.push_back(at + ": a section name must be a plain word");
        continue;
      }
      const std::string section = kn.Scalar();
      if (!is_section(section)) {
        errors_.push_back(at + ": unknown section '" + section + "'" + suggest(section, section_names));
        continue;
      }
      if (!seen_sections.insert(section).second) {
        errors_.push_back(at + ": duplicate section '" + section + "'");
        continue;
      }
      if (vn.IsNull()) continue;
      if (!vn.IsMap()) {
        errors_.push_back(at + ": section '" + section + "' must be a mapping of keys, got " +
                          describe_node_type(vn));
        continue;
      }
      walk_section(path, section, vn);
    }
  }

  /// True when some key of `section` starts with `prefix` (a sub-section such as "oss.").
  static bool has_subsection(std::string_view section, const std::string& prefix) {
    for (const Key& k : keys())
      if (k.section == section && k.name.starts_with(prefix)) return true;
    return false;
  }

  void walk_section(const std::string& path, const std::string& section, const YAML::Node& node,
                    const std::string& prefix = "") {
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node& kn = it->first;
      const YAML::Node& vn = it->second;
      const std::string at = where(path, kn.Mark());
      if (!kn.IsScalar()) {
        errors_.push_back(at + ": a key in section '" + section + "' must be a plain word");
        continue;
      }
      const std::string name = prefix + kn.Scalar();
      // A sub-section written as a nested mapping (hls: {oss: {endpoint: ...}}).
      if (vn.IsMap() && find_key(section, name) == nullptr && has_subsection(section, name + ".")) {
        if (!seen.insert(name).second) {
          errors_.push_back(at + ": duplicate key '" + section + "." + name + "'");
          continue;
        }
        walk_section(path, section, vn, name + ".");
        continue;
      }
      const std::string full = section + "." + name;
      const Key* k = find_key(section, name);
      if (k == nullptr) {
        errors_.push_back(at + ": unknown key '" + full + "'" + suggest(full, all_full_keys()));
        continue;
      }
      if (!seen.insert(name).second) {
        errors_.push_back(at + ": duplicate key '" + full + "'");
        failed_.insert(full);
        continue;
      }
      if (k->kind == Kind::list && (vn.IsSequence() || vn.IsNull())) {
        std::string joined;
        bool bad = false;
        for (const auto& item : vn) {
          if (!item.IsScalar() || item.Scalar().find(',') != std::string::npos) bad = true;
          else joined += (joined.empty() ? "" : ",") + item.Scalar();
        }
        if (bad) {
          errors_.push_back(at + ": " + full + ": expected a list of plain strings without ','");
          failed_.insert(full);
          continue;
        }
        set(*k, joined, at);
        continue;
      }
      if (!vn.IsScalar()) {
        errors_.push_back(at + ": " + full + ": expected " +
                          (k->kind == Kind::boolean ? std::string("a boolean")
                           : k->kind == Kind::uint  ? "an integer"
                           : k->kind == Kind::real  ? "a number"
                           : k->kind == Kind::choice ? "one of " + k->range()
                           : k->kind == Kind::list   ? "a list"
                                                    : std::string("a string")) +
                          ", got " + describe_node_type(vn));
        failed_.insert(full);
        continue;
      }
      const std::string vat = vn.Mark().is_null() ? at : where(path, vn.Mark());
      set(*k, vn.Scalar(), vat);
    }
  }

  Config cfg_;
  std::vector<std::string> errors_;
  std::map<std::string, std::string> origin_;  // key -> source that set it last
  std::set<std::string> failed_;               // keys with a rejected value
};

std::string type_and_range(const Key& k) {
  const std::string r = k.range();
  if (k.kind == Kind::boolean || k.kind == Kind::choice) return r;
  if (k.kind == Kind::string || k.kind == Kind::list) return r.empty() ? std::string(k.type) : std::string(k.type) + ", " + r;
  return std::string(k.type) + " " + r;
}

}  // namespace

std::vector<KeyInfo> config_keys() {
  const Config defaults;
  std::vector<KeyInfo> out;
  for (const Key& k : keys()) {
    out.push_back(KeyInfo{k.full(), k.env(), std::string(k.type), k.range(), k.show(defaults, k),
                          std::string(k.description)});
  }
  return out;
}

Result<Config> load_config(const std::string* path, const std::map<std::string, std::string>& env) {
  Loader loader;
  if (path != nullptr) loader.load_file(*path);
  loader.load_env(env);
  return loader.finish();
}

Result<Config> load_config(const std::string* path) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.rfind(kEnvPrefix, 0) != 0) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return load_config(path, env);
}

std::string describe_keys() {
  const Config defaults;
  std::string out =
      "Configuration keys: set them in the YAML file given with -c (section, then key: value) or\n"
      "with the environment variable shown, which wins over the file. Check a file with\n"
      "`castmesh config check FILE`; castmesh.example.yaml lists every key.\n"
      "Each entry: key = default, then type/range and environment variable, then meaning.\n";
  std::string_view section;
  for (const Key& k : keys()) {
    if (k.section != section) {
      section = k.section;
      for (const Section& s : sections()) {
        if (s.name == section) out += "\n" + std::string(s.name) + ": " + std::string(s.description) + "\n";
      }
    }
    out += "  " + k.full() + " = " + k.show(defaults, k) + "\n";
    out += "      " + type_and_range(k) + "; env " + k.env() + "\n";
    out += "      " + std::string(k.description) + "\n";
  }
  return out;
}

std::string render_example_yaml() {
  const Config defaults;
  std::string out =
      "# castmesh example configuration: every key, set to its default value.\n"
      "# Generated from the key table in src/app/config.cpp (render_example_yaml); a unit test\n"
      "# keeps this file equal to it. `castmesh --help` prints the same reference.\n"
      "#\n"
      "# Every key is optional. Each can also be set by the environment variable named in its\n"
      "# comment (CASTMESH_<SECTION>__<KEY>), which wins over this file.\n"
      "# Check a file with: castmesh config check FILE\n";
  std::string_view section;
  for (const Key& k : keys()) {
    if (k.section != section) {
      section = k.section;
      out += "\n";
      for (const Section& s : sections()) {
        if (s.name == section) out += "# " + std::string(s.description) + "\n";
      }
      out += std::string(section) + ":\n";
    } else {
      out += "\n";
    }
    out += "  # " + std::string(k.description) + "\n";
    out += "  # " + type_and_range(k) + "; default " + k.show(defaults, k) + "; env " + k.env() + "\n";
    out += "  " + std::string(k.name) + ": " + k.show(defaults, k) + "\n";
  }
  return out;
}

std::string check_config_file(const std::string& path) {
  auto r = load_config(&path, {});
  if (r.ok()) return "";
  return r.error().detail + "\n";
}

}  // namespace castmesh::app
