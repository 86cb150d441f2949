#include "auth/accounts.hpp"

#include <algorithm>

#include "auth/crypto.hpp"
#include "base/clock.hpp"

namespace castmesh::auth {

namespace {

/// Code points of UTF-8 text (continuation bytes are not counted).
size_t utf8_length(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

bool username_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
         c == '-';
}

store::User without_hash(store::User u) {
  u.password_hash.clear();
  return u;
}

constexpr const char* kBadLogin = "invalid username or password";

}  // namespace

Status validate_username(std::string_view username) {
  if (username.size() < kUsernameMin || username.size() > kUsernameMax) {
    return Error{Errc::malformed, "username must be 3..32 characters"};
  }
  if (!std::all_of(username.begin(), username.end(), username_char)) {
    return Error{Errc::malformed, "username may contain only letters, digits, '_', '.' and '-'"};
  }
  return ok_status();
}

Status validate_password(std::string_view password) {
  const size_t n = utf8_length(password);
  if (n < kPasswordMin || n > kPasswordMax || password.size() > 4 * kPasswordMax) {
    return Error{Errc::malformed, "password must be 8..256 characters"};
  }
  return ok_status();
}

Accounts::Accounts(store::Store& store, const AuthConfig& cfg, Clock wall_clock, Clock mono_clock)
    : store_(store),
      cfg_(cfg),
      wall_(wall_clock ? std::move(wall_clock) : Clock([] { return wall_ms(); })),
      per_user_(std::max<uint32_t>(cfg.login_rate_per_min, 1) / 60.0, std::max<uint32_t>(cfg.login_rate_per_min, 1),
                100'000, mono_clock),
      per_client_(std::max<uint32_t>(cfg.login_rate_per_min, 1) * 6 / 60.0,
                  std::max<uint32_t>(cfg.login_rate_per_min, 1) * 6.0, 100'000, mono_clock) {}

const std::string& Accounts::dummy_hash() {
  std::call_once(dummy_once_, [this] {
    auto h = hash_password("castmesh-timing-equalizer");
    dummy_hash_ = h ? *h : std::string();
  });
  return dummy_hash_;
}

bool Accounts::take(RateLimiter& limiter, std::string_view key, int64_t* retry_after_ms) {
  const auto d = limiter.try_acquire(key);
  if (!d.allowed && retry_after_ms != nullptr) *retry_after_ms = d.retry_after_ms;
  return d.allowed;
}

Result<Login> Accounts::open_session(store::User user) {
  Login out;
  out.token = new_token();
  const int64_t now = wall_();
  store::Session s;
  s.token_hash = token_hash(out.token);
  s.user_id = user.id;
  s.created_at_ms = now;
  s.expires_at_ms = now + static_cast<int64_t>(std::min<uint64_t>(cfg_.session_ttl_secs, 100ull * 365 * 86400)) * 1000;
  if (auto st = store_.create_session(s); !st) return st.error();
  out.user = without_hash(std::move(user));
  out.expires_at_ms = s.expires_at_ms;
  return out;
}

Result<Login> Accounts::register_user(std::string_view username, std::string_view password, std::string_view client,
                                      int64_t* retry_after_ms) {
  if (!cfg_.allow_registration) return Error{Errc::forbidden, "registration is disabled"};
  if (auto st = validate_username(username); !st) return st.error();
  if (auto st = validate_password(password); !st) return st.error();
  if (!take(per_client_, client, retry_after_ms)) return Error{Errc::rate_limited, "too many attempts"};
  auto hash = hash_password(password);
  if (!hash) return hash.error();
  store::User u;
  u.username = std::string(username);
  u.password_hash = std::move(*hash);
  u.role = store::kRoleUser;
  auto created = store_.create_user(u);
  if (!created) {
    if (created.code() == Errc::conflict) return Error{Errc::conflict, "username is taken"};
    return created.error();
  }
  return open_session(std::move(*created));
}

Result<Login> Accounts::login(std::string_view username, std::string_view password, std::string_view client,
                              int64_t* retry_after_ms) {
  if (!take(per_client_, client, retry_after_ms)) return Error{Errc::rate_limited, "too many login attempts"};
  std::string user_key = std::string(client) + "\n" + std::string(username);
  if (!take(per_user_, user_key, retry_after_ms)) return Error{Errc::rate_limited, "too many login attempts"};

  const bool well_formed = validate_username(username).ok() && password.size() <= 4 * kPasswordMax;
  Result<store::User> user = Error{Errc::not_found, "no such user"};
  if (well_formed) user = store_.user_by_name(std::string(username));
  if (!user && user.code() != Errc::not_found) return user.error();
  if (!user || user->password_hash.empty() || user->role == store::kRoleGuest) {
    // Same work as a real check, so timing does not tell which usernames exist.
    (void)verify_password(dummy_hash(), password.substr(0, 4 * kPasswordMax));
    return Error{Errc::unauthorized, kBadLogin};
  }
  if (!verify_password(user->password_hash, password)) return Error{Errc::unauthorized, kBadLogin};
  return open_session(std::move(*user));
}

Status Accounts::logout(std::string_view token) {
  if (token.empty()) return ok_status();
  auto st = store_.delete_session(token_hash(token));
  if (!st && st.code() != Errc::not_found) return st.error();
  return ok_status();
}

Result<Identity> Accounts::authenticate(std::string_view token) {
  if (token.empty() || token.size() > 256) return Error{Errc::unauthorized, "missing or invalid token"};
  Identity id;
  id.token_hash = token_hash(token);
  auto s = store_.session_by_token_hash(id.token_hash);
  if (!s) {
    if (s.code() == Errc::not_found) return Error{Errc::unauthorized, "invalid or expired token"};
    return s.error();
  }
  if (s->expires_at_ms <= wall_()) {
    (void)store_.delete_session(id.token_hash);
    return Error{Errc::unauthorized, "invalid or expired token"};
  }
  auto u = store_.user_by_id(s->user_id);
  if (!u) {
    if (u.code() == Errc::not_found) return Error{Errc::unauthorized, "invalid or expired token"};
    return u.error();
  }
  id.user = without_hash(std::move(*u));
  id.expires_at_ms = s->expires_at_ms;
  return id;
}

Result<Login> Accounts::create_guest(std::string_view display_name, std::string_view client,
                                     int64_t* retry_after_ms) {
  const size_t n = utf8_length(display_name);
  if (n < 1 || n > kGuestNameMax || display_name.size() > 4 * kGuestNameMax) {
    return Error{Errc::malformed, "name must be 1..24 characters"};
  }
  if (std::any_of(display_name.begin(), display_name.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7F;
      })) {
    return Error{Errc::malformed, "name must not contain control characters"};
  }
  if (display_name.find_first_not_of(' ') == std::string_view::npos) {
    return Error{Errc::malformed, "name must not be blank"};
  }
  if (!take(per_client_, client, retry_after_ms)) return Error{Errc::rate_limited, "too many attempts"};
  for (int attempt = 0; attempt < 5; ++attempt) {
    store::User u;
    u.username = std::string(display_name) + "#" + random_base62(6);
    u.role = store::kRoleGuest;
    auto created = store_.create_user(u);
    if (created) return open_session(std::move(*created));
    if (created.code() != Errc::conflict) return created.error();
  }
  return Error{Errc::conflict, "could not pick a free guest name"};
}

Result<store::User> Accounts::create_user(std::string_view username, std::string_view password,
                                          std::string_view role) {
  if (role != store::kRoleRoot && role != store::kRoleAdmin && role != store::kRoleUser) {
    return Error{Errc::malformed, "role must be root, admin or user"};
  }
  if (auto st = validate_username(username); !st) return st.error();
  if (auto st = validate_password(password); !st) return st.error();
  auto hash = hash_password(password);
  if (!hash) return hash.error();
  store::User u;
  u.username = std::string(username);
  u.password_hash = std::move(*hash);
  u.role = std::string(role);
  auto created = store_.create_user(u);
  if (!created) {
    if (created.code() == Errc::conflict) return Error{Errc::conflict, "username '" + u.username + "' is taken"};
    return created.error();
  }
  return without_hash(std::move(*created));
}

bool Accounts::allow_attempt(std::string_view client, int64_t* retry_after_ms) {
  return take(per_client_, client, retry_after_ms);
}

Result<int64_t> Accounts::purge_expired_sessions() { return store_.delete_expired_sessions(wall_()); }

Result<int64_t> Accounts::purge_idle_guests() {
  const int64_t now = wall_();
  return store_.delete_idle_guests(now - 3'600'000, now);
}

}  // namespace castmesh::auth
