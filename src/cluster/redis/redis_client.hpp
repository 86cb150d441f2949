#pragma once
/// \file cluster::redis — a small synchronous Redis client over hiredis 0.14 (RESP2).
///
/// One RedisConnection is one TCP connection with one owner thread (not thread-safe). Every call
/// is bounded by the timeout given to connect(). A transport failure (connection refused or
/// reset, timeout, protocol error) marks the connection broken: the caller drops it and
/// connects again. Error *replies* of the server ("-ERR ...") are values (Reply::Type::error),
/// not transport failures.

#include <charconv>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

struct redisContext;

namespace castmesh::cluster::redis {

/// Where and how to reach a Redis server (from `redis://[[user]:password@]host[:port][/db]`).
struct RedisUrl {
  std::string host = "127.0.0.1";  ///< host name or IP literal (IPv6 without brackets)
  uint16_t port = 6379;
  std::string username;            ///< ACL user (Redis 6+); empty = AUTH with password only
  std::string password;            ///< empty = no AUTH; never logged
  int db = 0;                      ///< SELECTed after connecting when non-zero

  /// "host:port/db" — safe to log (no credentials).
  std::string display() const;
};

/// Parses `redis://[[user]:password@]host[:port][/db]`. The user and password are
/// percent-decoded; an IPv6 host is written in brackets (`redis://[::1]:6379`). Port 1..65535,
/// db 0..2^31-1 (decimal).
/// Errors: Errc::malformed naming what is wrong (the password never appears in the message);
/// Errc::unsupported for `rediss://` (TLS) and `unix://`.
Result<RedisUrl> parse_redis_url(std::string_view url);

/// One RESP2 reply.
struct Reply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  int64_t integer = 0;          ///< Type::integer
  std::string str;              ///< Type::string (bulk, binary-safe), status, error (the message)
  std::vector<Reply> elements;  ///< Type::array

  bool is_error() const noexcept { return type == Type::error; }
  bool is_nil() const noexcept { return type == Type::nil; }
  /// True for a bulk or status string equal to `s`.
  bool is(std::string_view s) const noexcept {
    return (type == Type::string || type == Type::status) && str == s;
  }
};

/// Parses a whole decimal string (a hash field) into `out`; false when empty, not a number or
/// out of T's range.
template <typename T>
bool parse_decimal(const std::string& s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

/// Errc::io_error "{who}: unexpected reply to {what}[: server error]" for a reply of the wrong shape.
Error unexpected_reply(std::string_view who, std::string_view what, const Reply& r);

/// A Lua script run with EVALSHA (falling back to EVAL when the server answers NOSCRIPT).
class Script {
 public:
  /// `lua`: the script body. The SHA-1 is computed here (40 lowercase hex digits).
  explicit Script(std::string lua);
  const std::string& lua() const noexcept { return lua_; }
  const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string lua_;
  std::string sha1_;
};

/// One synchronous connection to Redis. Not thread-safe: one owner thread.
class RedisConnection {
 public:
  /// Connects (TCP, keep-alive), sends AUTH when the URL has a password and SELECT when db != 0.
  /// `timeout` bounds the connect and, afterwards, every command (send + reply).
  /// Errors: Errc::unavailable (cannot connect, timeout), Errc::unauthorized (AUTH refused),
  /// Errc::config_invalid (SELECT refused). Messages name host:port, never the password.
  static Result<std::unique_ptr<RedisConnection>> connect(const RedisUrl& url,
                                                          std::chrono::milliseconds timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  /// Runs one command (binary-safe arguments, e.g. {"SET", key, bytes}) and waits for its reply.
  /// Errors: Errc::unavailable on a transport failure (the connection becomes broken()) or when
  /// already broken; Errc::malformed for an empty argv. A server error reply is returned as a
  /// Reply of Type::error.
  Result<Reply> command(const std::vector<std::string>& argv);

  /// Sends all commands in one write, then reads one reply per command (same order).
  /// Errors as command(); on a transport failure no replies are returned.
  Result<std::vector<Reply>> pipeline(const std::vector<std::vector<std::string>>& commands);

  /// EVALSHA script.sha1 numkeys keys... args...; when the server answers NOSCRIPT, EVAL with
  /// the body (which also caches it). Errors as command(); a script error is a Type::error reply.
  Result<Reply> eval(const Script& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);

  /// Sends a command without waiting for its reply (read it with read_message()). For
  /// subscribed connections, e.g. {"PING"} as a health check. Errors as command().
  Status send(const std::vector<std::string>& argv);

  /// SUBSCRIBE `channel` and waits for the confirmation. Afterwards the connection is in
  /// subscribed mode: use read_message() (and send() for PING/SUBSCRIBE/UNSUBSCRIBE only).
  /// Errors: Errc::unavailable (transport; broken), Errc::malformed (unexpected reply).
  Status subscribe(const std::string& channel);

  /// Waits up to `timeout` for the next reply pushed by the server (on a subscribed connection:
  /// ["message", channel, payload], ["pong", ""], ...). Returns nullopt when nothing complete
  /// arrived in time; the connection stays usable (a partly received reply is kept).
  /// Errors: Errc::unavailable on a transport failure (broken).
  Result<std::optional<Reply>> read_message(std::chrono::milliseconds timeout);

  /// True after a transport failure; the connection cannot be used any more.
  bool broken() const noexcept { return broken_; }

  /// "host:port/db" of the server (no credentials).
  const std::string& peer() const noexcept { return peer_; }

 private:
  RedisConnection(redisContext* ctx, std::string peer);
  Error fail(std::string_view what);

  redisContext* ctx_ = nullptr;
  std::string peer_;
  bool broken_ = false;
};

}  // namespace castmesh::cluster::redis
