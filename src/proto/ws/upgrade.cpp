#include "proto/ws/upgrade.hpp"

#include <cctype>

namespace castmesh::ws {

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// True when the comma-separated list `value` (RFC 9110 5.6.1) has an element equal to
/// `token`, ignoring case.
bool list_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = value.find(',');
    const auto item = trim(value.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Decodes a query component (%XX, '+' as space); malformed escapes are kept verbatim.
std::string decode_query_component(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

const char* reason_phrase(unsigned status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}

}  // namespace

std::optional<Refusal> check_upgrade(const net::HttpRequest& req) {
  if (req.method != "GET") return Refusal{400, "bad_request", "WebSocket handshake must be GET"};
  if (!list_has_token(req.header("Upgrade"), "websocket"))
    return Refusal{400, "bad_request", "expected Upgrade: websocket"};
  if (!list_has_token(req.header("Connection"), "upgrade"))
    return Refusal{400, "bad_request", "expected Connection: Upgrade"};
  if (trim(req.header("Sec-WebSocket-Version")) != "13")
    return Refusal{426, "upgrade_required", "Sec-WebSocket-Version must be 13"};
  // 16 bytes in base64 are 22 characters and "==" (RFC 4648 4).
  const std::string key_field = req.header("Sec-WebSocket-Key");
  const auto key = trim(key_field);
  bool key_ok = key.size() == 24 && key[22] == '=' && key[23] == '=';
  for (size_t i = 0; key_ok && i < 22; ++i) key_ok = is_base64_char(key[i]);
  if (!key_ok) return Refusal{400, "bad_request", "bad Sec-WebSocket-Key"};
  return std::nullopt;
}

Credentials find_token(const net::HttpRequest& req) {
  // 1. ?token=
  std::string_view q = req.query;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto pair = q.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == "token") {
      auto v = decode_query_component(pair.substr(eq + 1));
      if (!v.empty()) return {std::move(v), TokenSource::query};
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  // 2. Authorization: Bearer
  const std::string auth_field = req.header("Authorization");
  const auto auth = trim(auth_field);
  if (auth.size() > 7 && iequals(auth.substr(0, 6), "bearer") && (auth[6] == ' ' || auth[6] == '\t')) {
    const auto tok = trim(auth.substr(7));
    if (!tok.empty()) return {std::string(tok), TokenSource::header};
  }
  // 3. Cookie: castmesh_token=
  for (const auto& [name, value] : req.headers) {
    if (!iequals(name, "cookie")) continue;
    std::string_view c = value;
    while (!c.empty()) {
      const auto semi = c.find(';');
      const auto pair = trim(c.substr(0, semi));
      const auto eq = pair.find('=');
      if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == "castmesh_token") {
        auto v = trim(pair.substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        if (!v.empty()) return {std::string(v), TokenSource::cookie};
      }
      if (semi == std::string_view::npos) break;
      c.remove_prefix(semi + 1);
    }
  }
  return {};
}

bool same_origin(const net::HttpRequest& req) {
  const std::string origin_field = req.header("Origin");
  const auto origin = trim(origin_field);
  if (origin.empty()) return true;
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return false;  // includes the opaque origin "null"
  auto host = origin.substr(scheme_end + 3);
  if (const auto slash = host.find('/'); slash != std::string_view::npos) host = host.substr(0, slash);
  const std::string host_field = req.header("Host");
  return !host.empty() && iequals(host, trim(host_field));
}

bool valid_room_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Refusal refusal_for(const Error& e) {
  auto make = [&](unsigned status, const char* code, const char* fallback) {
    return Refusal{status, code, e.detail.empty() ? std::string(fallback) : e.detail};
  };
  switch (e.code) {
    case Errc::unauthorized: return make(401, "unauthorized", "authentication required");
    case Errc::forbidden: return make(403, "forbidden", "not allowed in this room");
    case Errc::not_found: return make(404, "not_found", "no such room");
    case Errc::conflict: return make(409, "conflict", "conflict");
    case Errc::rate_limited: return make(429, "rate_limited", "too many requests");
    case Errc::unavailable:
    case Errc::io_error:
    case Errc::timeout: return make(503, "unavailable", "temporarily unavailable");
    default: return make(500, "internal", "internal error");
  }
}

std::string render_refusal(const Refusal& r) {
  const std::string body =
      "{\"error\":\"" + net::json_escape(r.message) + "\",\"code\":\"" + net::json_escape(r.code) + "\"}";
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  out += "Server: castmesh\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n";
  if (r.status == 401) out += "WWW-Authenticate: Bearer\r\n";
  if (r.status == 426) out += "Sec-WebSocket-Version: 13\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  out += body;
  return out;
}

}  // namespace castmesh::ws
