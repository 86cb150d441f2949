#include "proto/api/auth_api.hpp"

#include <cmath>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "auth/crypto.hpp"

namespace castmesh::api {

namespace json = boost::json;

namespace {

std::string field_name(std::string_view f) { return std::string(f); }

Error bad_field(std::string_view field, std::string_view what) {
  return Error{Errc::malformed, "'" + field_name(field) + "' " + std::string(what)};
}

}  // namespace

std::string session_cookie(std::string_view token, uint64_t max_age_secs) {
  return std::string(auth::kTokenCookie) + "=" + std::string(token) +
         "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age_secs);
}

net::HttpResponse error_response(unsigned status, std::string_view code, std::string_view message) {
  json::object o;
  o["error"] = message;
  o["code"] = code;
  return json_response(o, status);
}

net::HttpResponse error_response(const Error& e, int64_t retry_after_ms) {
  switch (e.code) {
    case Errc::malformed:
    case Errc::bad_name: return error_response(400, "bad_request", e.detail);
    case Errc::unauthorized: return error_response(401, "unauthorized", e.detail.empty() ? "unauthorized" : e.detail);
    case Errc::forbidden: return error_response(403, "forbidden", e.detail.empty() ? "forbidden" : e.detail);
    case Errc::not_found: return error_response(404, "not_found", e.detail.empty() ? "not found" : e.detail);
    case Errc::conflict: return error_response(409, "conflict", e.detail.empty() ? "conflict" : e.detail);
    case Errc::too_large: return error_response(413, "too_large", e.detail.empty() ? "too large" : e.detail);
    case Errc::rate_limited: {
      auto r = error_response(429, "rate_limited", e.detail.empty() ? "too many requests" : e.detail);
      const int64_t secs = std::max<int64_t>(1, (retry_after_ms + 999) / 1000);
      r.headers.emplace_back("Retry-After", std::to_string(secs));
      return r;
    }
    case Errc::unavailable: {
      spdlog::warn("api: database unavailable: {}", e.detail);
      return error_response(503, "unavailable", "the database is unavailable, try again later");
    }
    default:
      spdlog::error("api: internal error: {}", e.message());
      return error_response(500, "internal", "internal error");
  }
}

net::HttpResponse json_response(const json::value& v, unsigned status) {
  net::HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = json::serialize(v);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Result<json::object> parse_body(const net::HttpRequest& req, bool empty_ok) {
  const auto first = req.body.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    if (empty_ok) return json::object{};
    return Error{Errc::malformed, "a JSON object body is required"};
  }
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec) return Error{Errc::malformed, "malformed JSON: " + ec.message()};
  if (!v.is_object()) return Error{Errc::malformed, "the body must be a JSON object"};
  return std::move(v.as_object());
}

Result<std::string> required_string(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return bad_field(field, "is required");
  if (!v->is_string()) return bad_field(field, "must be a string");
  return std::string(v->as_string());
}

Result<std::optional<std::string>> optional_string(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>{};
  if (!v->is_string()) return bad_field(field, "must be a string");
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::optional<bool>> optional_bool(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<bool>{};
  if (!v->is_bool()) return bad_field(field, "must be true or false");
  return std::optional<bool>(v->as_bool());
}

namespace {
std::optional<int64_t> as_int(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64()) {
    if (v.as_uint64() > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(v.as_uint64());
  }
  if (v.is_double()) {
    const double d = v.as_double();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}
}  // namespace

Result<std::optional<int64_t>> optional_int(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<int64_t>{};
  auto i = as_int(*v);
  if (!i) return bad_field(field, "must be an integer");
  return std::optional<int64_t>(*i);
}

Result<std::vector<std::string>> optional_string_array(const json::object& o, std::string_view field) {
  std::vector<std::string> out;
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return bad_field(field, "must be an array of strings");
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return bad_field(field, "must be an array of strings");
    out.emplace_back(e.as_string());
  }
  return out;
}

Result<std::vector<int64_t>> required_int_array(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return bad_field(field, "is required");
  if (!v->is_array()) return bad_field(field, "must be an array of integers");
  std::vector<int64_t> out;
  for (const auto& e : v->as_array()) {
    auto i = as_int(e);
    if (!i) return bad_field(field, "must be an array of integers");
    out.push_back(*i);
  }
  return out;
}

std::string request_token(const net::HttpRequest& req) {
  return auth::request_token(req.header("Authorization"), req.header("Cookie"));
}

Result<auth::Identity> authenticate(auth::Accounts& accounts, const net::HttpRequest& req) {
  const std::string token = request_token(req);
  if (token.empty()) return Error{Errc::unauthorized, "authentication required"};
  return accounts.authenticate(token);
}

std::string client_address(const net::HttpRequest& req) {
  std::string_view r = req.remote;
  if (!r.empty() && r.front() == '[') {
    const auto close = r.find(']');
    if (close != std::string_view::npos) return std::string(r.substr(1, close - 1));
  }
  const auto colon = r.rfind(':');
  if (colon != std::string_view::npos && r.find(':') == colon) return std::string(r.substr(0, colon));
  return std::string(r);
}

json::object user_json(const store::User& u) {
  json::object o;
  o["id"] = u.id;
  o["username"] = u.username;
  std::string display = u.username;
  if (u.role == store::kRoleGuest) {
    const auto hash = display.rfind('#');
    if (hash != std::string::npos && hash > 0) display.resize(hash);
  }
  o["display_name"] = display;
  o["role"] = u.role;
  o["created_at_ms"] = u.created_at_ms;
  return o;
}

net::HttpResponse login_response(const auth::Login& login, const auth::AuthConfig& cfg, unsigned status) {
  json::object o;
  o["user"] = user_json(login.user);
  o["token"] = login.token;
  o["expires_at_ms"] = login.expires_at_ms;
  auto r = json_response(o, status);
  r.headers.emplace_back("Set-Cookie", session_cookie(login.token, cfg.session_ttl_secs));
  return r;
}

void register_auth_api(net::Router& r, auth::Accounts& accounts) {
  r.add("POST", "/api/v1/auth/register", [&accounts](const net::HttpRequest& req) {
    auto body = parse_body(req);
    if (!body) return error_response(400, "bad_json", body.error().detail);
    auto username = required_string(*body, "username");
    if (!username) return error_response(username.error());
    auto password = required_string(*body, "password");
    if (!password) return error_response(password.error());
    int64_t retry_ms = 0;
    auto login = accounts.register_user(*username, *password, client_address(req), &retry_ms);
    if (!login) return error_response(login.error(), retry_ms);
    spdlog::info("auth: user '{}' registered (id {})", login->user.username, login->user.id);
    return login_response(*login, accounts.config(), 201);
  });

  r.add("POST", "/api/v1/auth/login", [&accounts](const net::HttpRequest& req) {
    auto body = parse_body(req);
    if (!body) return error_response(400, "bad_json", body.error().detail);
    auto username = required_string(*body, "username");
    if (!username) return error_response(username.error());
    auto password = required_string(*body, "password");
    if (!password) return error_response(password.error());
    int64_t retry_ms = 0;
    auto login = accounts.login(*username, *password, client_address(req), &retry_ms);
    if (!login) {
      if (login.code() == Errc::rate_limited) {
        spdlog::warn("auth: login rate limited for {} (user '{}')", client_address(req), *username);
      }
      return error_response(login.error(), retry_ms);
    }
    return login_response(*login, accounts.config(), 200);
  });

  r.add("POST", "/api/v1/auth/logout", [&accounts](const net::HttpRequest& req) {
    auto st = accounts.logout(request_token(req));
    if (!st) return error_response(st.error());
    net::HttpResponse res;
    res.status = 204;
    res.headers.emplace_back("Cache-Control", "no-store");
    res.headers.emplace_back("Set-Cookie", session_cookie("", 0));
    return res;
  });

  r.add("GET", "/api/v1/auth/me", [&accounts](const net::HttpRequest& req) {
    auto id = authenticate(accounts, req);
    if (!id) return error_response(id.error());
    json::object o;
    o["user"] = user_json(id->user);
    return json_response(o);
  });
}

}  // namespace castmesh::api
