#include "net/http_server.hpp"

#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "base/log.hpp"
#include "net/io_pool.hpp"

namespace castmesh::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------------------------
// Helpers

namespace {

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string endpoint_string(const tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

// True when one '/'-separated segment of the decoded path is "..".
bool has_dot_dot_segment(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (path.substr(start, end - start) == "..") return true;
    start = end + 1;
  }
  return false;
}

// Errors that mean "the peer went away or the connection timed out": closed silently.
bool is_quiet_close(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == beast::error::timeout ||
         ec == asio::error::operation_aborted || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::bad_descriptor || ec == http::error::partial_message;
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

std::string json_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  return out;
}

HttpResponse json_error(unsigned status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = "{\"error\":\"" + json_escape(message) + "\"}";
  return r;
}

asio::awaitable<void> write_json_error(tcp::socket& socket, unsigned status, std::string_view message) {
  const HttpResponse r = json_error(status, message);
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  const std::string msg = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason.data(), reason.size()) +
                          "\r\nContent-Type: " + r.content_type + "\r\nContent-Length: " + std::to_string(r.body.size()) +
                          "\r\nConnection: close\r\n\r\n" + r.body;
  co_await asio::async_write(socket, asio::buffer(msg), kUseTuple);
}

Result<std::string> percent_decode_path(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) {
        return Error{Errc::malformed, "truncated percent escape"};
      }
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return Error{Errc::malformed, "bad percent escape"};
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return Error{Errc::malformed, "NUL in path"};
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Router

bool Router::path_matches(const Route& r, std::string_view path) {
  if (r.exact) return path == r.prefix;
  return path.size() > r.prefix.size() + r.suffix.size() && path.starts_with(r.prefix) &&
         path.ends_with(r.suffix);
}

void Router::add(std::string method, std::string prefix, std::string suffix, Handler h) {
  routes_.push_back(Route{std::move(method), std::move(prefix), std::move(suffix), false, std::move(h), {}, {}});
}

void Router::add(std::string method, std::string path, Handler h) {
  routes_.push_back(Route{std::move(method), std::move(path), {}, true, std::move(h), {}, {}});
}

void Router::add_stream(std::string method, std::string prefix, std::string suffix, StreamHandler h) {
  routes_.push_back(Route{std::move(method), std::move(prefix), std::move(suffix), false, {}, std::move(h), {}});
}

void Router::add_async(std::string method, std::string path, AsyncHandler h) {
  routes_.push_back(Route{std::move(method), std::move(path), {}, true, {}, {}, std::move(h)});
}

void Router::add_async(std::string method, std::string prefix, std::string suffix, AsyncHandler h) {
  routes_.push_back(Route{std::move(method), std::move(prefix), std::move(suffix), false, {}, {}, std::move(h)});
}

Router::Match Router::find(std::string_view method, std::string_view path) const {
  Match m;
  std::vector<std::string_view> allowed;
  auto allow = [&](std::string_view meth) {
    for (auto a : allowed) {
      if (a == meth) return;
    }
    allowed.push_back(meth);
  };
  for (const Route& r : routes_) {
    if (!path_matches(r, path)) continue;
    const bool plain = static_cast<bool>(r.handler) || static_cast<bool>(r.async);
    const bool method_ok = r.method == method || (method == "HEAD" && plain && r.method == "GET");
    if (method_ok) {
      if (!r.exact) {
        m.path_param = std::string(path.substr(r.prefix.size(), path.size() - r.prefix.size() - r.suffix.size()));
      }
      if (r.async) {
        m.kind = Match::Kind::async;
        m.async = &r.async;
      } else if (plain) {
        m.kind = Match::Kind::handler;
        m.handler = &r.handler;
      } else {
        m.kind = Match::Kind::stream;
        m.stream = &r.stream;
      }
      return m;
    }
    allow(r.method);
    if (plain && r.method == "GET") allow("HEAD");
  }
  if (!allowed.empty()) {
    m.kind = Match::Kind::method_not_allowed;
    for (size_t i = 0; i < allowed.size(); ++i) {
      if (i) m.allow += ", ";
      m.allow += allowed[i];
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// HttpServer

namespace {

// One accepted connection. Owned by its session coroutine (and, briefly, by the coroutine's
// completion handler); the server's registry holds only a weak_ptr. Touched only on the
// thread of the io_context its socket belongs to.
struct Conn {
  enum class State { reading, busy, streaming };

  Conn(std::shared_ptr<HttpServer::Impl> server, uint64_t id, tcp::socket sock)
      : server(std::move(server)), id(id), stream(std::move(sock)) {}
  ~Conn();

  std::shared_ptr<HttpServer::Impl> server;
  uint64_t id;
  beast::tcp_stream stream;
  asio::cancellation_signal cancel;  // terminal cancellation of the session on stop()
  State state = State::reading;
  std::string remote;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(IoPool& pool, const HttpConfig& cfg, Router& router, Metrics& metrics)
      : pool(pool), cfg(cfg), router(router), metrics(metrics) {}

  IoPool& pool;
  const HttpConfig cfg;
  Router& router;
  Metrics& metrics;

  // The accept loop owns the acceptor, so it is destroyed with its io_context at the latest
  // (objects of one context must not outlive it; this Impl may be released on another one).
  std::weak_ptr<tcp::acceptor> acceptor;
  std::optional<asio::any_io_executor> acceptor_ex;  // set once by listen()
  std::atomic<uint16_t> port{0};
  std::atomic<bool> stopping{false};
  std::atomic<size_t> active{0};

  mutable std::mutex mu;  // guards conns and next_id
  std::unordered_map<uint64_t, std::weak_ptr<Conn>> conns;
  uint64_t next_id = 0;

  void unregister(uint64_t id) {
    {
      std::lock_guard lock(mu);
      conns.erase(id);
    }
    active.fetch_sub(1, std::memory_order_relaxed);
    metrics.connections[Metrics::idx(Proto::http)].fetch_sub(1, std::memory_order_relaxed);
  }

  void start_session(tcp::socket sock);
  asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acc);
  asio::awaitable<void> session(std::shared_ptr<Conn> c);
  asio::awaitable<bool> write_response(Conn& c, HttpResponse res, unsigned version, bool head, bool keep_alive);
  void stop();
};

namespace {

Conn::~Conn() { server->unregister(id); }

void log_session_end(std::exception_ptr e, const char* what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    if (se.code() == asio::error::operation_aborted) {
      spdlog::debug("http {}: cancelled", what);
    } else {
      spdlog::warn("http {}: {}", what, se.what());
    }
  } catch (const std::exception& ex) {
    spdlog::warn("http {}: {}", what, ex.what());
  } catch (...) {
    spdlog::warn("http {}: unknown exception", what);
  }
}

asio::awaitable<void> reject_busy(tcp::socket sock) {
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
      "Connection: close\r\n\r\n{\"error\":\"too many connections\"}";
  co_await asio::async_write(sock, asio::buffer(kBusy), kUseTuple);
  error_code ec;
  sock.shutdown(tcp::socket::shutdown_send, ec);
  sock.close(ec);
}

}  // namespace

void HttpServer::Impl::start_session(tcp::socket sock) {
  if (active.load(std::memory_order_relaxed) >= cfg.max_connections) {
    auto ex = sock.get_executor();
    asio::co_spawn(ex, reject_busy(std::move(sock)), [](std::exception_ptr e) { log_session_end(e, "reject"); });
    return;
  }
  error_code ec;
  auto peer = sock.remote_endpoint(ec);
  std::shared_ptr<Conn> c;
  {
    std::lock_guard lock(mu);
    uint64_t id = ++next_id;
    active.fetch_add(1, std::memory_order_relaxed);
    metrics.connections[Metrics::idx(Proto::http)].fetch_add(1, std::memory_order_relaxed);
    metrics.add(metrics.connections_total, Proto::http, 1);
    c = std::make_shared<Conn>(shared_from_this(), id, std::move(sock));
    conns.emplace(id, c);
  }
  c->remote = ec ? std::string("?") : endpoint_string(peer);
  // stop() sets `stopping` before it snapshots `conns`: a session registered after the
  // snapshot sees the flag here or at the top of its loop.
  auto ex = c->stream.get_executor();
  auto slot = c->cancel.slot();
  asio::co_spawn(ex, session(c), asio::bind_cancellation_slot(slot, [c](std::exception_ptr e) mutable {
                   log_session_end(e, "session");
                   // The spawn machinery still touches the cancellation slot (inside
                   // c->cancel) after this call returns; release the connection later.
                   auto ex2 = c->stream.get_executor();
                   asio::post(ex2, [c = std::move(c)] {});
                 }));
}

asio::awaitable<void> HttpServer::Impl::accept_loop(std::shared_ptr<tcp::acceptor> acc) {
  auto self = shared_from_this();
  for (;;) {
    auto [ec, sock] = co_await acc->async_accept(pool.next(), kUseTuple);
    if (stopping.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      // Typically EMFILE/ENFILE: back off instead of spinning.
      spdlog::warn("http accept: {}", ec.message());
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await t.async_wait(kUseTuple);
      continue;
    }
    start_session(tcp::socket(std::move(sock)));
  }
}

namespace {

template <typename Body>
void set_head(http::response<Body>& out, HttpResponse& res, bool keep_alive, size_t content_length) {
  out.set(http::field::server, "castmesh");
  out.set(http::field::content_type, res.content_type);
  for (auto& [k, v] : res.headers) out.insert(k, v);
  out.keep_alive(keep_alive);
  out.content_length(content_length);
}

}  // namespace

asio::awaitable<bool> HttpServer::Impl::write_response(Conn& c, HttpResponse res, unsigned version, bool head,
                                                       bool keep_alive) {
  c.stream.expires_after(std::chrono::milliseconds(cfg.send_timeout_ms));
  c.state = Conn::State::busy;
  const auto status = static_cast<http::status>(res.status);
  error_code ec;
  size_t n = 0;
  if (res.shared_body) {
    // Zero-copy: the serializer reads straight from the shared buffer, which `res` (in this
    // coroutine frame) keeps alive until the write completes.
    http::response<http::buffer_body> out{status, version};
    set_head(out, res, keep_alive, res.shared_body->size());
    out.body().data = head ? nullptr : const_cast<uint8_t*>(res.shared_body->data());
    out.body().size = head ? 0 : res.shared_body->size();
    out.body().more = false;
    std::tie(ec, n) = co_await http::async_write(c.stream, out, kUseTuple);
  } else {
    http::response<http::string_body> out{status, version};
    set_head(out, res, keep_alive, res.body.size());
    if (!head) out.body() = std::move(res.body);
    std::tie(ec, n) = co_await http::async_write(c.stream, out, kUseTuple);
  }
  metrics.add(metrics.bytes_out_total, Proto::http, n);
  if (ec && !is_quiet_close(ec)) spdlog::debug("http {}: write: {}", c.remote, ec.message());
  co_return !ec;
}

asio::awaitable<void> HttpServer::Impl::session(std::shared_ptr<Conn> c) {
  beast::flat_buffer buf;
  const auto request_timeout = std::chrono::milliseconds(cfg.request_timeout_ms);

  for (;;) {
    if (stopping.load()) break;
    c->state = Conn::State::reading;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(kMaxHeaderBytes));
    parser.body_limit(cfg.max_body_bytes);
    c->stream.expires_after(request_timeout);
    auto [ec, n] = co_await http::async_read_header(c->stream, buf, parser, kUseTuple);
    metrics.add(metrics.bytes_in_total, Proto::http, n);
    c->state = Conn::State::busy;
    if (ec) {
      if (ec == http::error::header_limit) {
        co_await write_response(*c, json_error(431, "request header fields too large"), 11, false, false);
      } else if (ec == http::error::body_limit) {
        // Beast checks Content-Length against the body limit while parsing the head.
        co_await write_response(*c, json_error(413, "request body too large"), 11, false, false);
      } else if (ec.category() == http::make_error_code(http::error::bad_method).category() && !is_quiet_close(ec)) {
        metrics.add(metrics.protocol_errors_total, Proto::http, 1);
        co_await write_response(*c, json_error(400, "bad request"), 11, false, false);
      } else if (!is_quiet_close(ec)) {
        spdlog::debug("http {}: read: {}", c->remote, ec.message());
      }
      break;
    }

    auto& msg = parser.get();
    const unsigned version = msg.version();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.remote = c->remote;
    req.headers.reserve(16);
    for (const auto& f : msg) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    const bool head = req.method == "HEAD";
    bool keep_alive = msg.keep_alive();

    // Request-target: origin-form only (RFC 9112 3.2.1); split off the query, decode, refuse "..".
    std::string_view target = req.target;
    if (target.empty() || target.front() != '/') {
      co_await write_response(*c, json_error(400, "bad request target"), version, head, false);
      break;
    }
    size_t q = target.find('?');
    if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
    auto decoded = percent_decode_path(target.substr(0, q));
    if (!decoded.ok() || has_dot_dot_segment(*decoded)) {
      co_await write_response(*c, json_error(400, "bad request path"), version, head, false);
      break;
    }
    req.path = std::move(*decoded);

    Router::Match match = router.find(req.method, req.path);
    req.path_param = std::move(match.path_param);

    if (match.kind == Router::Match::Kind::stream) {
      c->state = Conn::State::streaming;
      if (stopping.load()) break;
      c->stream.expires_never();
      try {
        co_await (*match.stream)(c->stream.socket(), req);
      } catch (const boost::system::system_error& se) {
        if (se.code() != asio::error::operation_aborted) {
          spdlog::debug("http {}: stream handler {}: {}", c->remote, req.path, se.what());
        }
      } catch (const std::exception& e) {
        spdlog::warn("http {}: stream handler {}: {}", c->remote, req.path, e.what());
      }
      break;
    }

    HttpResponse res;
    if (match.kind == Router::Match::Kind::none) {
      res = json_error(404, "not found");
    } else if (match.kind == Router::Match::Kind::method_not_allowed) {
      res = json_error(405, "method not allowed");
      res.headers.emplace_back("Allow", match.allow);
    } else {
      // Read the body (bounded) before calling the handler.
      if (auto cl = parser.content_length(); cl && *cl > cfg.max_body_bytes) {
        co_await write_response(*c, json_error(413, "request body too large"), version, head, false);
        break;
      }
      if (!parser.is_done()) {
        if (iequals(req.header("Expect"), "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          c->stream.expires_after(std::chrono::milliseconds(cfg.send_timeout_ms));
          auto [wec, wn] = co_await asio::async_write(c->stream, asio::buffer(kContinue), kUseTuple);
          if (wec) break;
        }
        c->stream.expires_after(request_timeout);
        c->state = Conn::State::reading;  // stop() may cut an upload short
        auto [bec, bn] = co_await http::async_read(c->stream, buf, parser, kUseTuple);
        c->state = Conn::State::busy;
        metrics.add(metrics.bytes_in_total, Proto::http, bn);
        if (bec == http::error::body_limit) {
          co_await write_response(*c, json_error(413, "request body too large"), version, head, false);
          break;
        }
        if (bec) {
          if (!is_quiet_close(bec)) {
            metrics.add(metrics.protocol_errors_total, Proto::http, 1);
            co_await write_response(*c, json_error(400, "bad request body"), version, head, false);
          }
          break;
        }
        req.body = std::move(parser.get().body());
      }
      try {
        if (match.kind == Router::Match::Kind::async) res = co_await (*match.async)(req);
        else res = (*match.handler)(req);
      } catch (const std::exception& e) {
        spdlog::error("http {}: handler {} {}: {}", c->remote, req.method, req.path, e.what());
        res = json_error(500, "internal error");
      }
    }
    // An unread body would be taken for the next request: close instead.
    if (!parser.is_done()) keep_alive = false;
    if (stopping.load()) keep_alive = false;
    bool ok = co_await write_response(*c, std::move(res), version, head, keep_alive);
    if (!ok || !keep_alive || stopping.load()) break;
  }

  error_code ignored;
  c->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  c->stream.socket().close(ignored);
}

void HttpServer::Impl::stop() {
  if (stopping.exchange(true)) return;
  if (acceptor_ex) {
    asio::post(*acceptor_ex, [w = acceptor] {
      if (auto acc = w.lock()) {
        error_code ec;
        acc->close(ec);
      }
    });
  }
  std::vector<std::shared_ptr<Conn>> live;
  {
    std::lock_guard lock(mu);
    live.reserve(conns.size());
    for (auto& [id, w] : conns) {
      if (auto c = w.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) {
    auto ex = c->stream.get_executor();
    asio::post(ex, [c] {
      // A response being written finishes; the session sees `stopping` and closes after it.
      if (c->state == Conn::State::busy) return;
      if (c->state == Conn::State::streaming) c->cancel.emit(asio::cancellation_type::terminal);
      c->stream.close();
    });
  }
}

HttpServer::HttpServer(IoPool& pool, const HttpConfig& cfg, Router& router, Metrics& metrics)
    : impl_(std::make_shared<Impl>(pool, cfg, router, metrics)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::listen(const std::string& host, uint16_t port) {
  if (impl_->stopping.load()) return Error{Errc::closed, "http server stopped"};
  if (impl_->acceptor_ex) return Error{Errc::io_error, "http server already listening"};
  error_code ec;
  std::string h = host == "localhost" ? "127.0.0.1" : host;
  auto addr = asio::ip::make_address(h, ec);
  if (ec) return Error{Errc::io_error, "bad listen address '" + host + "': " + ec.message()};
  tcp::endpoint ep(addr, port);
  auto acc = std::make_shared<tcp::acceptor>(impl_->pool.next());
  std::string where = endpoint_string(ep);
  if (acc->open(ep.protocol(), ec); ec) return Error{Errc::io_error, "open " + where + ": " + ec.message()};
  if (acc->set_option(asio::socket_base::reuse_address(true), ec); ec) {
    return Error{Errc::io_error, "reuse_address " + where + ": " + ec.message()};
  }
  if (acc->bind(ep, ec); ec) return Error{Errc::io_error, "bind " + where + ": " + ec.message()};
  if (acc->listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Error{Errc::io_error, "listen " + where + ": " + ec.message()};
  }
  auto local = acc->local_endpoint(ec);
  if (ec) return Error{Errc::io_error, "local_endpoint " + where + ": " + ec.message()};
  impl_->port.store(local.port());
  impl_->acceptor = acc;
  impl_->acceptor_ex = acc->get_executor();
  asio::co_spawn(acc->get_executor(), impl_->accept_loop(acc),
                 [](std::exception_ptr e) { log_session_end(e, "accept loop"); });
  spdlog::info("http listening on {}", endpoint_string(local));
  return ok_status();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

void HttpServer::stop() { impl_->stop(); }

size_t HttpServer::connections() const { return impl_->active.load(std::memory_order_relaxed); }

}  // namespace castmesh::net
