#pragma once
/// \file auth::Accounts: registration, login/logout, bearer-token sessions, guests and the
/// admin CLI's user creation, over store::Store.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "auth/auth_config.hpp"
#include "auth/rate_limiter.hpp"
#include "base/result.hpp"
#include "store/store.hpp"

namespace castmesh::auth {

/// Username rules: 3..32 characters of [A-Za-z0-9_.-].
inline constexpr size_t kUsernameMin = 3;
inline constexpr size_t kUsernameMax = 32;
/// Password rules: 8..256 characters (Unicode code points of its UTF-8 text).
inline constexpr size_t kPasswordMin = 8;
inline constexpr size_t kPasswordMax = 256;
/// Guest display names: 1..24 characters (code points), no control characters.
inline constexpr size_t kGuestNameMax = 24;

/// Errc::malformed with a message naming the rule when `username` is not valid.
Status validate_username(std::string_view username);
/// Errc::malformed with a message naming the rule when `password` is not valid.
Status validate_password(std::string_view password);

/// The user behind a valid bearer token.
struct Identity {
  store::User user;            ///< password_hash cleared
  std::string token_hash;      ///< hex SHA-256 of the token (the session's key)
  int64_t expires_at_ms = 0;   ///< Unix ms
};

/// A new session: the token is shown to the client once and never stored.
struct Login {
  store::User user;            ///< password_hash cleared
  std::string token;           ///< bearer token (base64url, 43 chars)
  int64_t expires_at_ms = 0;   ///< Unix ms
};

/// Accounts and sessions. Every call is synchronous (it runs store calls and, for register,
/// login and create_user, one Argon2id computation of ~50 ms) and thread-safe.
///
/// Errors common to every call: Errc::unavailable (database unreachable; HTTP 503) and
/// Errc::io_error from the store.
class Accounts {
 public:
  /// Unix milliseconds (sessions) / monotonic milliseconds (rate limits). Empty = wall_ms() /
  /// mono_ms().
  using Clock = std::function<int64_t()>;

  /// `store` must outlive this object. Login limits: `cfg.login_rate_per_min` per
  /// username+address and 6x that per address, both as token buckets of that burst.
  Accounts(store::Store& store, const AuthConfig& cfg, Clock wall_clock = {}, Clock mono_clock = {});

  const AuthConfig& config() const { return cfg_; }

  /// Creates a user with role "user" and logs it in. `client` (the peer address) is rate
  /// limited like logins per address. Errors: Errc::forbidden when auth.allow_registration is
  /// false; Errc::malformed (username/password rules); Errc::conflict (username taken);
  /// Errc::rate_limited (then `*retry_after_ms` is set when given).
  Result<Login> register_user(std::string_view username, std::string_view password, std::string_view client,
                              int64_t* retry_after_ms = nullptr);

  /// Checks the password and opens a session of auth.session_ttl_secs. An unknown user (or a
  /// guest, which has no password) still costs one Argon2id verification, so response time
  /// does not reveal which usernames exist. Errors: Errc::unauthorized ("invalid username or
  /// password", also for malformed input); Errc::rate_limited (`*retry_after_ms` set when
  /// given) once `client` or `username`+`client` has no attempts left.
  Result<Login> login(std::string_view username, std::string_view password, std::string_view client,
                      int64_t* retry_after_ms = nullptr);

  /// Ends the session of `token`. Unknown tokens are not an error (idempotent).
  Status logout(std::string_view token);

  /// The identity behind `token`. Errors: Errc::unauthorized for an empty, unknown or
  /// expired token (an expired session is deleted) or a session whose user is gone.
  Result<Identity> authenticate(std::string_view token);

  /// Creates a guest (role "guest", no password) shown as `display_name` and logs it in.
  /// The stored username is `display_name` + "#" + 6 random base62 characters, which cannot
  /// collide with a registered username ('#' is not allowed there). Errors: Errc::malformed
  /// for an empty, too long (> kGuestNameMax) or control-character name; Errc::rate_limited
  /// per `client` (shared with logins).
  Result<Login> create_guest(std::string_view display_name, std::string_view client,
                             int64_t* retry_after_ms = nullptr);

  /// For `castmesh admin create-user`: a user with `role` ("root", "admin" or "user") and no
  /// session. Errors: Errc::malformed (rules, unknown role), Errc::conflict (name taken).
  Result<store::User> create_user(std::string_view username, std::string_view password, std::string_view role);

  /// Deletes sessions that expired before now; returns how many (call it periodically).
  Result<int64_t> purge_expired_sessions();
  /// Deletes guest users older than an hour that no longer have a valid session (their room
  /// memberships go with them); returns how many. Errors as the Store's.
  Result<int64_t> purge_idle_guests();

  /// Opens a session for an existing user (e.g. a room guest created by room::RoomManager).
  /// Errors: those of store::Store::create_session.
  Result<Login> open_session(store::User user);

  /// Takes one attempt from `client`'s bucket (the one logins and registrations use), for
  /// other unauthenticated actions that create state (guest creation). False when exhausted;
  /// then `*retry_after_ms` is set when given.
  bool allow_attempt(std::string_view client, int64_t* retry_after_ms = nullptr);

 private:
  bool take(RateLimiter& limiter, std::string_view key, int64_t* retry_after_ms);
  const std::string& dummy_hash();

  store::Store& store_;
  AuthConfig cfg_;
  Clock wall_;
  RateLimiter per_user_;
  RateLimiter per_client_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

}  // namespace castmesh::auth
