#include "cluster/internode/k8s_lease.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "base/log.hpp"
#include "cluster/internode/internode_client.hpp"

namespace castmesh::cluster::internode {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// ---------------------------------------------------------------------------------------------
// MicroTime

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::string format_micro_time(int64_t unix_us) {
  int64_t secs = unix_us / 1000000;
  int64_t frac = unix_us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  const time_t t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];  // ample for any int year the format could print
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
  return buf;
}

Result<int64_t> parse_micro_time(std::string_view s) {
  const Error bad{Errc::malformed, "bad RFC 3339 time"};
  int year, mon, day, hour, min, sec;
  if (!digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, &mon) || s[7] != '-' ||
      !digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, &hour) || s[13] != ':' ||
      !digits(s, 14, 2, &min) || s[16] != ':' || !digits(s, 17, 2, &sec)) {
    return bad;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return bad;
  size_t pos = 19;
  int64_t frac_us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n < 6) frac_us = frac_us * 10 + (s[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return bad;
    for (size_t i = n; i < 6; ++i) frac_us *= 10;
  }
  int64_t offset_secs = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(s, pos + 4, 2, &om) ||
        oh > 23 || om > 59) {
      return bad;
    }
    offset_secs = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad;
  }
  if (pos != s.size()) return bad;
  const int64_t days = days_from_civil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + min * 60 + std::min(sec, 59) - offset_secs;
  return secs * 1000000 + frac_us;
}

// ---------------------------------------------------------------------------------------------
// Lease JSON

Result<LeaseRecord> parse_lease(std::string_view text) {
  error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) return Error{Errc::malformed, "Lease is not a JSON object"};
  const auto& obj = v.get_object();
  LeaseRecord rec;
  const auto* meta = obj.if_contains("metadata");
  const json::value* rv = meta && meta->is_object() ? meta->get_object().if_contains("resourceVersion") : nullptr;
  if (!rv || !rv->is_string() || rv->get_string().empty()) {
    return Error{Errc::malformed, "Lease has no metadata.resourceVersion"};
  }
  rec.resource_version = std::string(rv->get_string());
  const auto* spec_v = obj.if_contains("spec");
  if (!spec_v || spec_v->is_null()) return rec;
  if (!spec_v->is_object()) return Error{Errc::malformed, "Lease spec is not an object"};
  const auto& spec = spec_v->get_object();

  if (const auto* h = spec.if_contains("holderIdentity"); h && !h->is_null()) {
    if (!h->is_string()) return Error{Errc::malformed, "spec.holderIdentity is not a string"};
    rec.holder = std::string(h->get_string());
  }
  if (const auto* d = spec.if_contains("leaseDurationSeconds"); d && !d->is_null()) {
    if (!d->is_int64() && !d->is_uint64()) return Error{Errc::malformed, "spec.leaseDurationSeconds is not an integer"};
    rec.duration_secs = d->is_int64() ? d->get_int64() : static_cast<int64_t>(d->get_uint64());
  }
  if (const auto* t = spec.if_contains("leaseTransitions"); t && !t->is_null()) {
    if (t->is_int64() && t->get_int64() >= 0) {
      rec.transitions = static_cast<uint64_t>(t->get_int64());
    } else if (t->is_uint64()) {
      rec.transitions = t->get_uint64();
    } else {
      return Error{Errc::malformed, "spec.leaseTransitions is not a non-negative integer"};
    }
  }
  for (auto [key, field] : {std::pair{"acquireTime", &rec.acquire_us}, std::pair{"renewTime", &rec.renew_us}}) {
    const auto* t = spec.if_contains(key);
    if (!t || t->is_null()) continue;
    if (!t->is_string()) return Error{Errc::malformed, std::string("spec.") + key + " is not a string"};
    auto us = parse_micro_time(std::string_view(t->get_string().data(), t->get_string().size()));
    if (!us) return Error{Errc::malformed, std::string("spec.") + key + ": " + us.error().detail};
    *field = *us;
  }
  return rec;
}

LeaseAction decide_lease_action(const std::optional<LeaseRecord>& current, std::string_view identity,
                                int64_t now_us) {
  if (!current) return LeaseAction::create;
  if (!current->holder.empty() && current->holder == identity) return LeaseAction::renew;
  if (current->holder.empty()) return LeaseAction::take_over;
  const auto last = current->renew_us ? current->renew_us : current->acquire_us;
  if (!last || current->duration_secs <= 0) return LeaseAction::take_over;
  if (*last + current->duration_secs * 1000000 < now_us) return LeaseAction::take_over;
  return LeaseAction::wait;
}

std::string build_lease_body(std::string_view ns, std::string_view name, std::string_view resource_version,
                             std::string_view holder, int64_t duration_secs, int64_t acquire_us, int64_t renew_us,
                             uint64_t transitions) {
  json::object meta;
  meta["name"] = json::string_view(name.data(), name.size());
  meta["namespace"] = json::string_view(ns.data(), ns.size());
  if (!resource_version.empty()) meta["resourceVersion"] = json::string_view(resource_version.data(), resource_version.size());
  json::object spec;
  spec["holderIdentity"] = json::string_view(holder.data(), holder.size());
  spec["leaseDurationSeconds"] = duration_secs;
  spec["acquireTime"] = format_micro_time(acquire_us);
  spec["renewTime"] = format_micro_time(renew_us);
  spec["leaseTransitions"] = transitions;
  json::object root;
  root["apiVersion"] = "coordination.k8s.io/v1";
  root["kind"] = "Lease";
  root["metadata"] = std::move(meta);
  root["spec"] = std::move(spec);
  return json::serialize(root);
}

// ---------------------------------------------------------------------------------------------
// Transport

namespace {

struct ApiUrl {
  bool tls = true;
  std::string host;
  uint16_t port = 443;
};

Result<ApiUrl> parse_api_url(std::string_view url) {
  ApiUrl out;
  if (url.rfind("https://", 0) == 0) {
    url.remove_prefix(8);
  } else if (url.rfind("http://", 0) == 0) {
    url.remove_prefix(7);
    out.tls = false;
    out.port = 80;
  } else {
    return Error{Errc::config_invalid, "cluster.k8s_api_url must start with https:// or http://"};
  }
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (url.empty() || url.find('/') != std::string_view::npos) {
    return Error{Errc::config_invalid, "cluster.k8s_api_url must be scheme://host[:port] without a path"};
  }
  const bool bracketed = url.front() == '[';
  const size_t colon = url.rfind(':');
  const bool has_port = bracketed ? (url.find("]:") != std::string_view::npos) : colon != std::string_view::npos;
  if (has_port) {
    auto hp = split_host_port(url);
    if (!hp) return Error{Errc::config_invalid, "cluster.k8s_api_url: " + hp.error().detail};
    out.host = hp->first;
    out.port = hp->second;
  } else {
    out.host = bracketed ? std::string(url.substr(1, url.size() - 2)) : std::string(url);
  }
  if (out.host.empty()) return Error{Errc::config_invalid, "cluster.k8s_api_url has no host"};
  return out;
}

std::string read_token(const std::string& path) {
  std::ifstream f(path);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

std::string describe(const error_code& ec) {
  return ec == beast::error::timeout ? std::string("timeout") : ec.message();
}

void run_once(asio::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

// Write `req` and read the response on a connected (and, for TLS, handshaken) stream.
template <typename Stream>
Result<std::pair<unsigned, std::string>> exchange(asio::io_context& ioc, Stream& stream,
                                                  http::request<http::string_body>& req) {
  error_code ec;
  http::async_write(stream, req, [&](error_code e, size_t) { ec = e; });
  run_once(ioc);
  if (ec) return Error{Errc::unavailable, "Kubernetes API: send: " + describe(ec)};
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(4 * 1024 * 1024);
  http::async_read(stream, buf, parser, [&](error_code e, size_t) { ec = e; });
  run_once(ioc);
  if (ec) return Error{Errc::unavailable, "Kubernetes API: response: " + describe(ec)};
  return std::pair<unsigned, std::string>{parser.get().result_int(), std::move(parser.get().body())};
}

std::string snippet(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// K8sLeaseElector

K8sLeaseElector::K8sLeaseElector(K8sLeaseConfig config)
    : config_(std::move(config)),
      timeout_(config_.timeout.count() > 0 ? config_.timeout
                                           : std::min<std::chrono::milliseconds>(std::chrono::milliseconds(2000),
                                                                                 config_.lease / 5)),
      duration_secs_(std::max<int64_t>(1, (config_.lease.count() + 999) / 1000)) {
  if (timeout_.count() <= 0) timeout_ = std::chrono::milliseconds(100);
}

K8sLeaseElector::~K8sLeaseElector() = default;

std::string K8sLeaseElector::lease_path() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + config_.ns + "/leases/" + config_.lease_name;
}

int64_t K8sLeaseElector::now_us() const {
  if (config_.wall_us) return config_.wall_us();
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<K8sLeaseElector::Reply> K8sLeaseElector::api(std::string_view method, const std::string& target,
                                                    const std::string& body) {
  auto url = parse_api_url(config_.api_url);
  if (!url) return url.error();

  asio::io_context ioc(1);
  error_code ec;
  std::vector<tcp::endpoint> endpoints;
  auto literal = asio::ip::make_address(url->host, ec);
  const bool host_is_ip = !ec;
  if (host_is_ip) {
    endpoints.emplace_back(literal, url->port);
  } else {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(url->host, std::to_string(url->port), ec);
    if (ec) return Error{Errc::unavailable, "Kubernetes API: resolve " + url->host + ": " + ec.message()};
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }

  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(target);
  req.version(11);
  req.set(http::field::host, url->host);
  req.set(http::field::user_agent, "castmesh");
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  const std::string token = read_token(config_.token_path);
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();

  Result<std::pair<unsigned, std::string>> res = Error{Errc::io_error, ""};
  if (url->tls) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    ctx.load_verify_file(config_.ca_path, ec);
    if (ec) return Error{Errc::config_invalid, "Kubernetes CA " + config_.ca_path + ": " + ec.message()};
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    stream.set_verify_callback(asio::ssl::host_name_verification(url->host));
    // SNI only for names (RFC 6066 section 3 forbids literal addresses).
    if (!host_is_ip) SSL_set_tlsext_host_name(stream.native_handle(), url->host.c_str());
    beast::get_lowest_layer(stream).expires_after(timeout_);
    beast::get_lowest_layer(stream).async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
    run_once(ioc);
    if (ec) return Error{Errc::unavailable, "Kubernetes API: connect " + url->host + ": " + describe(ec)};
    stream.async_handshake(asio::ssl::stream_base::client, [&](error_code e) { ec = e; });
    run_once(ioc);
    if (ec) return Error{Errc::unavailable, "Kubernetes API: TLS handshake: " + describe(ec)};
    res = exchange(ioc, stream, req);
  } else {
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout_);
    stream.async_connect(endpoints, [&](error_code e, const tcp::endpoint&) { ec = e; });
    run_once(ioc);
    if (ec) return Error{Errc::unavailable, "Kubernetes API: connect " + url->host + ": " + describe(ec)};
    res = exchange(ioc, stream, req);
  }
  if (!res) return res.error();
  return Reply{res->first, std::move(res->second)};
}

Result<std::optional<LeaseRecord>> K8sLeaseElector::get_lease() {
  auto r = api("GET", lease_path(), "");
  if (!r) return r.error();
  if (r->status == 404) return std::optional<LeaseRecord>{};
  if (r->status == 401 || r->status == 403) {
    return Error{Errc::forbidden, "Kubernetes API refused GET " + lease_path() + ": HTTP " + std::to_string(r->status)};
  }
  if (r->status != 200) {
    return Error{Errc::io_error, "Kubernetes API: GET " + lease_path() + ": HTTP " + std::to_string(r->status) + ": " +
                                     snippet(r->body)};
  }
  auto rec = parse_lease(r->body);
  if (!rec) return Error{Errc::io_error, "Kubernetes API: " + rec.error().detail};
  return std::optional<LeaseRecord>(std::move(*rec));
}

void K8sLeaseElector::lose() {
  holding_ = false;
  epoch_ = 0;
  valid_until_ = {};
}

void K8sLeaseElector::observe(const std::optional<LeaseRecord>& rec, int64_t now) {
  // The holder as observed; an expired or released Lease has none.
  if (!rec || rec->holder.empty() || decide_lease_action(rec, "", now) == LeaseAction::take_over) {
    holder_.clear();
    holder_epoch_ = 0;
    return;
  }
  holder_ = rec->holder;
  holder_epoch_ = rec->transitions;
}

Status K8sLeaseElector::step() {
  const auto start = Clock::now();
  const int64_t now = now_us();
  auto cur = get_lease();
  if (!cur) return cur.error();

  const LeaseAction action = decide_lease_action(*cur, config_.identity, now);
  if (action == LeaseAction::wait) {
    std::lock_guard lk(mu_);
    if (holding_) {
      spdlog::warn("cluster: leadership lost (Lease {} now held by {})", lease_path(), (*cur)->holder);
      lose();
    }
    observe(*cur, now);
    return ok_status();
  }

  std::string method = "PUT";
  std::string target = lease_path();
  std::string body;
  uint64_t transitions = 1;
  if (action == LeaseAction::create) {
    method = "POST";
    target = "/apis/coordination.k8s.io/v1/namespaces/" + config_.ns + "/leases";
    body = build_lease_body(config_.ns, config_.lease_name, "", config_.identity, duration_secs_, now, now, 1);
  } else if (action == LeaseAction::renew) {
    const auto& rec = **cur;
    transitions = std::max<uint64_t>(rec.transitions, 1);
    body = build_lease_body(config_.ns, config_.lease_name, rec.resource_version, config_.identity, duration_secs_,
                            rec.acquire_us.value_or(now), now, transitions);
  } else {  // take_over
    const auto& rec = **cur;
    transitions = rec.transitions + 1;
    body = build_lease_body(config_.ns, config_.lease_name, rec.resource_version, config_.identity, duration_secs_,
                            now, now, transitions);
  }

  auto r = api(method, target, body);
  if (!r) return r.error();
  if (r->status == 409) {
    // Another node wrote the Lease since our GET (optimistic concurrency): it won this round.
    std::lock_guard lk(mu_);
    if (holding_) spdlog::warn("cluster: leadership lost (conflict writing Lease {})", lease_path());
    lose();
    return ok_status();
  }
  if (r->status == 401 || r->status == 403) {
    return Error{Errc::forbidden, "Kubernetes API refused " + method + " " + target + ": HTTP " + std::to_string(r->status)};
  }
  if (r->status != 200 && r->status != 201) {
    return Error{Errc::io_error, "Kubernetes API: " + method + " " + target + ": HTTP " + std::to_string(r->status) +
                                     ": " + snippet(r->body)};
  }
  auto written = parse_lease(r->body);
  if (!written) return Error{Errc::io_error, "Kubernetes API: " + written.error().detail};

  std::lock_guard lk(mu_);
  const bool was_leader = holding_ && epoch_ == written->transitions;
  holding_ = true;
  epoch_ = written->transitions;
  valid_until_ = start + config_.lease - config_.lease / 5;
  holder_ = config_.identity;
  holder_epoch_ = epoch_;
  if (!was_leader) spdlog::info("cluster: {} is leader (Lease {}, term {})", config_.identity, lease_path(), epoch_);
  return ok_status();
}

membership::LeaderStatus K8sLeaseElector::status() const {
  std::lock_guard lk(mu_);
  membership::LeaderStatus s;
  s.is_leader = holding_ && Clock::now() < valid_until_;
  s.epoch = s.is_leader ? epoch_ : 0;
  s.leader_node_id = holder_;
  s.leader_epoch = holder_epoch_;
  return s;
}

bool K8sLeaseElector::is_leader() const {
  std::lock_guard lk(mu_);
  return holding_ && Clock::now() < valid_until_;
}

Result<bool> K8sLeaseElector::fenced_check() {
  uint64_t epoch;
  {
    std::lock_guard lk(mu_);
    if (!(holding_ && Clock::now() < valid_until_)) return false;
    epoch = epoch_;
  }
  auto cur = get_lease();
  if (!cur) return cur.error();
  const bool ours = cur->has_value() && (*cur)->holder == config_.identity && (*cur)->transitions == epoch;
  std::lock_guard lk(mu_);
  if (!ours && holding_ && epoch_ == epoch) {
    spdlog::warn("cluster: fenced check failed: Lease {} is no longer ours (term {})", lease_path(), epoch);
    lose();
    observe(*cur, now_us());
  }
  return ours && holding_ && Clock::now() < valid_until_;
}

void K8sLeaseElector::resign() {
  uint64_t epoch;
  bool was;
  {
    std::lock_guard lk(mu_);
    was = holding_;
    epoch = epoch_;
    lose();
    if (holder_ == config_.identity) {
      holder_.clear();
      holder_epoch_ = 0;
    }
  }
  if (!was) return;
  auto cur = get_lease();
  if (!cur || !cur->has_value() || (*cur)->holder != config_.identity || (*cur)->transitions != epoch) return;
  const auto& rec = **cur;
  const int64_t now = now_us();
  // Empty holder: any node may take over at once (with transitions + 1).
  auto r = api("PUT", lease_path(),
               build_lease_body(config_.ns, config_.lease_name, rec.resource_version, "", duration_secs_,
                                rec.acquire_us.value_or(now), now, rec.transitions));
  if (!r) {
    spdlog::warn("cluster: releasing Lease {} failed: {}", lease_path(), r.error().message());
  } else if (r->status != 200) {
    spdlog::warn("cluster: releasing Lease {} failed: HTTP {}", lease_path(), r->status);
  }
}

}  // namespace castmesh::cluster::internode
