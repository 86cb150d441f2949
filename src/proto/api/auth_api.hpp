#pragma once
/// \file Account endpoints of the HTTP JSON API, plus the request helpers every /api/v1 JSON
/// endpoint shares (authentication, body parsing, error shape).
///
/// Routes (all bodies and answers are JSON objects):
///   POST /api/v1/auth/register {username, password} -> 201 {user, token, expires_at_ms}
///        403 when auth.allow_registration is false, 409 username taken
///   POST /api/v1/auth/login    {username, password} -> 200 {user, token, expires_at_ms}
///        401 wrong username or password, 429 + Retry-After when rate limited
///   POST /api/v1/auth/logout   -> 204 (ends the session of the request's token, if any)
///   GET  /api/v1/auth/me       -> 200 {user} | 401
/// register and login set `Set-Cookie: castmesh_token=TOKEN; Path=/; HttpOnly; SameSite=Lax;
/// Max-Age=auth.session_ttl_secs`; logout expires the cookie.
///
/// `user` is {id, username, display_name, role, created_at_ms} (display_name = username
/// without a guest's "#xxxx" suffix). Errors: {"error": message, "code": code} with
/// 400 bad_json | bad_request, 401 unauthorized, 403 forbidden, 404 not_found, 409 conflict,
/// 413 too_large, 429 rate_limited (Retry-After in seconds), 503 unavailable (database
/// unreachable), 500 internal.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "auth/accounts.hpp"
#include "base/result.hpp"
#include "net/http_server.hpp"
#include "store/store.hpp"

namespace castmesh::api {

/// `{"error": message, "code": code}` with `status`, no-store caching.
net::HttpResponse error_response(unsigned status, std::string_view code, std::string_view message);

/// Maps an Error to its response: malformed 400 bad_request, unauthorized 401, forbidden 403,
/// not_found 404, conflict 409, too_large 413, rate_limited 429 (Retry-After from
/// `retry_after_ms`, rounded up to whole seconds, at least 1), unavailable 503, anything else 500
/// internal (detail logged, not sent).
net::HttpResponse error_response(const Error& e, int64_t retry_after_ms = 0);

/// A JSON response with `status` and no-store caching.
net::HttpResponse json_response(const boost::json::value& v, unsigned status = 200);

/// The request body as a JSON object. An empty body counts as `{}` when `empty_ok`. Errors:
/// Errc::malformed with "malformed JSON: ..." (parse error) or "the body must be a JSON
/// object".
Result<boost::json::object> parse_body(const net::HttpRequest& req, bool empty_ok = false);

/// Field readers for parse_body's object. They return Errc::malformed naming the field when it
/// is missing (required ones) or of the wrong type; an explicit `null` counts as absent for
/// optional fields.
Result<std::string> required_string(const boost::json::object& o, std::string_view field);
Result<std::optional<std::string>> optional_string(const boost::json::object& o, std::string_view field);
Result<std::optional<bool>> optional_bool(const boost::json::object& o, std::string_view field);
/// Integers only (a JSON number with a fraction is refused).
Result<std::optional<int64_t>> optional_int(const boost::json::object& o, std::string_view field);
Result<std::vector<std::string>> optional_string_array(const boost::json::object& o, std::string_view field);
Result<std::vector<int64_t>> required_int_array(const boost::json::object& o, std::string_view field);

/// The bearer token of `req` (Authorization: Bearer, else cookie castmesh_token), "" if none.
std::string request_token(const net::HttpRequest& req);

/// The identity behind `req`'s token. Errors: Errc::unauthorized (no/invalid/expired token),
/// Errc::unavailable.
Result<auth::Identity> authenticate(auth::Accounts& accounts, const net::HttpRequest& req);

/// The peer address of `req` without its port ("127.0.0.1", "::1"), the rate-limit key.
std::string client_address(const net::HttpRequest& req);

/// `{id, username, display_name, role, created_at_ms}`; never the password hash.
boost::json::object user_json(const store::User& u);

/// The Set-Cookie value for the session token: `castmesh_token=TOKEN; Path=/; HttpOnly;
/// SameSite=Lax; Max-Age=SECS` (an empty token with 0 expires the cookie).
std::string session_cookie(std::string_view token, uint64_t max_age_secs);

/// `{user, token, expires_at_ms}` with status `status` and the session cookie set.
net::HttpResponse login_response(const auth::Login& login, const auth::AuthConfig& cfg, unsigned status);

/// Adds the routes above. `accounts` must outlive the router's server.
void register_auth_api(net::Router& r, auth::Accounts& accounts);

}  // namespace castmesh::api
