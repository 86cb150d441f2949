#include "proto/hls/s3_store.hpp"

#include <chrono>
#include <cstdlib>
#include <ctime>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/vector_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "base/log.hpp"
#include "net/digest.hpp"

namespace castmesh::hls {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

using net::hmac_sha256;
using net::sha256_hex;

std::string_view as_text(ByteView b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string amz_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  std::string host_header;  // host[:port] as sent
};

Result<Endpoint> parse_endpoint(const std::string& url) {
  Endpoint e;
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    e.tls = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return Error{Errc::config_invalid, "hls.oss.endpoint: want http(s)://host[:port]"};
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find('/') != std::string_view::npos)
    return Error{Errc::config_invalid, "hls.oss.endpoint: want http(s)://host[:port] without a path"};
  e.host_header = std::string(rest);
  const auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && rest.find(']') == std::string_view::npos) {
    e.host = std::string(rest.substr(0, colon));
    e.port = std::string(rest.substr(colon + 1));
  } else {
    e.host = std::string(rest);
    e.port = e.tls ? "443" : "80";
  }
  return e;
}

/// Values of every <tag>...</tag> in `xml` (S3's XML replies; our keys need no entity decoding).
std::vector<std::string> xml_values(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string_view::npos) {
    const size_t start = pos + open.size();
    const size_t end = xml.find(close, start);
    if (end == std::string_view::npos) break;
    out.emplace_back(xml.substr(start, end - start));
    pos = end + close.size();
  }
  return out;
}

}  // namespace

std::string s3_uri_encode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                       c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
    if (plain) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kUpperHex[] = "0123456789ABCDEF";
      out += '%';
      out += kUpperHex[c >> 4];
      out += kUpperHex[c & 15];
    }
  }
  return out;
}

std::string sigv4_canonical_request(const SigV4Request& r) {
  std::string out = r.method + "\n" + r.canonical_uri + "\n" + r.canonical_query + "\n";
  std::string signed_headers;
  for (const auto& [k, v] : r.headers) {
    out += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }
  out += "\n" + signed_headers + "\n" + r.payload_sha256;
  return out;
}

std::string sigv4_authorization(const SigV4Request& r, const std::string& access_key_id,
                                const std::string& secret_access_key) {
  const std::string date = r.amz_date.substr(0, 8);
  const std::string scope = date + "/" + r.region + "/" + r.service + "/aws4_request";
  const std::string canonical = sigv4_canonical_request(r);
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + r.amz_date + "\n" + scope + "\n" + sha256_hex(canonical);
  std::string key = hmac_sha256("AWS4" + secret_access_key, date);
  key = hmac_sha256(key, r.region);
  key = hmac_sha256(key, r.service);
  key = hmac_sha256(key, "aws4_request");
  const std::string sig = hmac_sha256(key, to_sign);
  std::string signed_headers;
  for (const auto& [k, v] : r.headers) {
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }
  return "AWS4-HMAC-SHA256 Credential=" + access_key_id + "/" + scope + ", SignedHeaders=" + signed_headers +
         ", Signature=" + net::to_hex(sig);
}

// ---- S3Client --------------------------------------------------------------------------------

S3Client::S3Client(OssConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.access_key_id.empty()) {
    if (const char* v = std::getenv("AWS_ACCESS_KEY_ID")) cfg_.access_key_id = v;
  }
  if (cfg_.secret_access_key.empty()) {
    if (const char* v = std::getenv("AWS_SECRET_ACCESS_KEY")) cfg_.secret_access_key = v;
  }
}

Result<S3Client::Response> S3Client::request(std::string_view method, const std::string& key, const std::string& query,
                                             ByteView body, std::string_view content_type) const {
  auto ep = parse_endpoint(cfg_.endpoint);
  if (!ep) return ep.error();
  SigV4Request sr;
  sr.method = std::string(method);
  sr.canonical_uri = "/" + s3_uri_encode(cfg_.bucket, false) + (key.empty() ? "" : "/" + s3_uri_encode(key, true));
  sr.canonical_query = query;
  sr.payload_sha256 = sha256_hex(as_text(body));
  sr.amz_date = amz_now();
  sr.region = cfg_.region;
  sr.headers["host"] = ep->host_header;
  sr.headers["x-amz-content-sha256"] = sr.payload_sha256;
  sr.headers["x-amz-date"] = sr.amz_date;
  if (!content_type.empty()) sr.headers["content-type"] = std::string(content_type);

  http::request<http::vector_body<uint8_t>> req;
  req.method_string(sr.method);
  req.target(sr.canonical_uri + (query.empty() ? "" : "?" + query));
  req.version(11);
  for (const auto& [k, v] : sr.headers) req.set(k, v);
  req.set(http::field::authorization, sigv4_authorization(sr, cfg_.access_key_id, cfg_.secret_access_key));
  req.set(http::field::connection, "close");
  req.body().assign(body.begin(), body.end());
  req.prepare_payload();

  asio::io_context ioc(1);
  tcp::resolver resolver(ioc);
  error_code ec;
  auto results = resolver.resolve(ep->host, ep->port, ec);
  if (ec) return Error{Errc::unavailable, "oss: resolve " + ep->host + ": " + ec.message()};
  const auto timeout = std::chrono::milliseconds(cfg_.timeout_ms);
  beast::flat_buffer buf;
  http::response_parser<http::vector_body<uint8_t>> parser;
  parser.body_limit(256ull * 1024 * 1024);
  auto exchange = [&](auto& stream, beast::tcp_stream& tcp_layer) -> error_code {
    error_code e;
    tcp_layer.expires_after(timeout);
    http::async_write(stream, req, [&](error_code x, size_t) { e = x; });
    ioc.run();
    ioc.restart();
    if (e) return e;
    tcp_layer.expires_after(timeout);
    http::async_read(stream, buf, parser, [&](error_code x, size_t) { e = x; });
    ioc.run();
    ioc.restart();
    return e;
  };
  if (ep->tls) {
    asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    ctx.set_default_verify_paths(ec);
    ctx.set_verify_mode(asio::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    stream.set_verify_callback(asio::ssl::host_name_verification(ep->host));
    SSL_set_tlsext_host_name(stream.native_handle(), ep->host.c_str());
    auto& tcp_layer = beast::get_lowest_layer(stream);
    tcp_layer.expires_after(timeout);
    tcp_layer.async_connect(results, [&](error_code x, const tcp::endpoint&) { ec = x; });
    ioc.run();
    ioc.restart();
    if (!ec) {
      tcp_layer.expires_after(timeout);
      stream.async_handshake(asio::ssl::stream_base::client, [&](error_code x) { ec = x; });
      ioc.run();
      ioc.restart();
    }
    if (!ec) ec = exchange(stream, tcp_layer);
  } else {
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    stream.async_connect(results, [&](error_code x, const tcp::endpoint&) { ec = x; });
    ioc.run();
    ioc.restart();
    if (!ec) ec = exchange(stream, stream);
  }
  if (ec) {
    return Error{Errc::unavailable, "oss: " + std::string(method) + " " + key + ": " +
                                        (ec == beast::error::timeout ? std::string("timeout") : ec.message())};
  }
  Response r;
  r.status = parser.get().result_int();
  r.body = std::move(parser.get().body());
  return r;
}

namespace {
Error s3_error(std::string_view what, unsigned status, const Bytes& body) {
  std::string text(body.begin(), body.end());
  auto code = xml_values(text, "Code");
  return Error{Errc::io_error, "oss: " + std::string(what) + ": HTTP " + std::to_string(status) +
                                   (code.empty() ? "" : " " + code.front())};
}
}  // namespace

Result<Bytes> S3Client::get(const std::string& key) const {
  auto r = request("GET", key, "", {}, "");
  if (!r) return r.error();
  if (r->status == 200) return std::move(r->body);
  if (r->status == 404) return Error{Errc::not_found, "oss: " + key + " not found"};
  return s3_error("GET " + key, r->status, r->body);
}

Status S3Client::put(const std::string& key, ByteView body, std::string_view content_type) const {
  auto r = request("PUT", key, "", body, content_type);
  if (!r) return r.error();
  if (r->status == 200) return ok_status();
  return s3_error("PUT " + key, r->status, r->body);
}

Status S3Client::remove(const std::string& key) const {
  auto r = request("DELETE", key, "", {}, "");
  if (!r) return r.error();
  if (r->status == 204 || r->status == 200 || r->status == 404) return ok_status();
  return s3_error("DELETE " + key, r->status, r->body);
}

Result<std::vector<std::string>> S3Client::list(const std::string& prefix) const {
  std::vector<std::string> keys;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    // Canonical query: parameters sorted by name, names and values URI-encoded.
    std::string q;
    if (!token.empty()) q += "continuation-token=" + s3_uri_encode(token, false) + "&";
    q += "list-type=2&prefix=" + s3_uri_encode(prefix, false);
    auto r = request("GET", "", q, {}, "");
    if (!r) return r.error();
    if (r->status != 200) return s3_error("list " + prefix, r->status, r->body);
    const std::string xml(r->body.begin(), r->body.end());
    for (auto& k : xml_values(xml, "Key")) keys.push_back(std::move(k));
    auto truncated = xml_values(xml, "IsTruncated");
    auto next = xml_values(xml, "NextContinuationToken");
    if (truncated.empty() || truncated.front() != "true" || next.empty()) break;
    token = next.front();
  }
  return keys;
}

// ---- S3Store ---------------------------------------------------------------------------------

S3Store::S3Store(OssConfig cfg) : client_(std::move(cfg)) {
  std::string b = client_.config().base_path;
  while (!b.empty() && b.front() == '/') b.erase(0, 1);
  while (!b.empty() && b.back() == '/') b.pop_back();
  base_ = b.empty() ? "" : b + "/";
  worker_ = std::thread([this] { run(); });
}

S3Store::~S3Store() {
  flush(2000);
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::string S3Store::key_of(std::string_view path) const { return base_ + std::string(path); }

Status S3Store::put(std::string_view path, Blob data) {
  if (auto st = validate_store_path(path); !st) return st;
  std::lock_guard lk(mu_);
  local_[std::string(path)] = data;
  // A newer version of an object still waiting replaces it (playlists).
  for (auto& t : queue_) {
    if (t.op == Op::put && t.path == path) {
      t.data = std::move(data);
      return ok_status();
    }
  }
  if (queue_.size() >= kMaxQueued) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->op == Op::put && it->path.ends_with(".ts")) {
        spdlog::warn("oss: upload queue full; dropping the upload of {}", it->path);
        failed_.fetch_add(1);
        queue_.erase(it);
        break;
      }
    }
  }
  queue_.push_back(Task{Op::put, std::string(path), std::move(data)});
  cv_.notify_one();
  return ok_status();
}

Blob S3Store::peek(std::string_view path) const {
  if (!validate_store_path(path)) return nullptr;
  std::lock_guard lk(mu_);
  auto it = local_.find(path);
  return it == local_.end() ? nullptr : it->second;
}

Blob S3Store::get(std::string_view path) const {
  if (auto b = peek(path)) return b;
  if (!validate_store_path(path)) return nullptr;
  auto r = client_.get(key_of(path));
  if (!r) {
    if (r.code() != Errc::not_found) spdlog::debug("oss: {}", r.error().message());
    return nullptr;
  }
  return std::make_shared<const Bytes>(std::move(*r));
}

void S3Store::remove(std::string_view path) {
  if (!validate_store_path(path)) return;
  std::lock_guard lk(mu_);
  local_.erase(std::string(path));
  queue_.push_back(Task{Op::remove, std::string(path), nullptr});
  cv_.notify_one();
}

void S3Store::remove_prefix(std::string_view dir) {
  if (!validate_store_path(dir)) return;
  const std::string prefix = std::string(dir) + "/";
  std::lock_guard lk(mu_);
  for (auto it = local_.begin(); it != local_.end();) {
    if (it->first.starts_with(prefix)) it = local_.erase(it);
    else ++it;
  }
  std::erase_if(queue_, [&](const Task& t) { return t.path.starts_with(prefix); });
  queue_.push_back(Task{Op::remove_prefix, prefix, nullptr});
  cv_.notify_one();
}

bool S3Store::flush(int64_t timeout_ms) {
  std::unique_lock lk(mu_);
  return idle_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [this] { return queue_.empty() && !busy_; });
}

void S3Store::run() {
  int64_t last_warn = 0;
  for (;;) {
    Task t;
    {
      std::unique_lock lk(mu_);
      busy_ = false;
      if (queue_.empty()) idle_cv_.notify_all();
      cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      t = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    Status st = ok_status();
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (t.op == Op::put) {
        const bool playlist = t.path.ends_with(".m3u8");
        st = client_.put(key_of(t.path), *t.data, playlist ? "application/vnd.apple.mpegurl" : "video/mp2t");
      } else if (t.op == Op::remove) {
        st = client_.remove(key_of(t.path));
      } else {
        auto keys = client_.list(key_of(t.path));
        if (!keys) {
          st = keys.error();
        } else {
          for (const auto& k : *keys)
            if (auto r = client_.remove(k); !r) st = r;
        }
      }
      if (st) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
    }
    if (!st) {
      failed_.fetch_add(1);
      const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
      if (now - last_warn > 1000) {
        last_warn = now;
        spdlog::warn("oss: {} ({} failed so far)", st.error().message(), failed_.load());
      }
    }
  }
}

}  // namespace castmesh::hls
