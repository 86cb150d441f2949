#include "cluster/redis/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <poll.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace castmesh::cluster::redis {

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 2.1 percent-decoding of the user-info part.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool valid_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

template <typename Int>
bool parse_decimal(std::string_view s, Int& out) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::nil;
      break;
  }
  return out;
}

struct ReplyFree {
  void operator()(void* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<void, ReplyFree>;

struct ArgvView {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit ArgvView(const std::vector<std::string>& argv) {
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
};

timeval to_timeval(std::chrono::milliseconds ms) {
  if (ms.count() < 1) ms = std::chrono::milliseconds(1);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string url_display(const RedisUrl& u) {
  std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  return host + ":" + std::to_string(u.port) + "/" + std::to_string(u.db);
}

}  // namespace

std::string RedisUrl::display() const { return url_display(*this); }

Result<RedisUrl> parse_redis_url(std::string_view url) {
  // Never echo `url` itself: it may carry the password.
  constexpr std::string_view kScheme = "redis://";
  if (iequals_prefix(url, "rediss://")) {
    return Error{Errc::unsupported, "redis url: rediss:// (TLS) is not supported"};
  }
  if (iequals_prefix(url, "unix://")) {
    return Error{Errc::unsupported, "redis url: unix:// sockets are not supported"};
  }
  if (!iequals_prefix(url, kScheme)) {
    return Error{Errc::malformed, "redis url must start with redis://"};
  }
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return Error{Errc::malformed, "redis url: query strings and fragments are not supported"};
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);

  RedisUrl out;
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return Error{Errc::malformed,
                   "redis url: credentials must be written as ':password@' or 'user:password@'"};
    }
    auto user = percent_decode(userinfo.substr(0, colon));
    auto pass = percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) {
      return Error{Errc::malformed, "redis url: bad percent-encoding in the credentials"};
    }
    out.username = std::move(*user);
    out.password = std::move(*pass);
  }

  std::string_view host;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Error{Errc::malformed, "redis url: unterminated '[' in the host"};
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error{Errc::malformed, "redis url: unexpected text after ']'"};
      port = after.substr(1);
      if (port.empty()) return Error{Errc::malformed, "redis url: empty port"};
    }
    if (host.empty()) return Error{Errc::malformed, "redis url: empty host"};
    for (char c : host) {
      if (hex_value(c) < 0 && c != ':' && c != '.') {
        return Error{Errc::malformed, "redis url: bad IPv6 host"};
      }
    }
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return Error{Errc::malformed, "redis url: empty port"};
    }
    if (host.empty()) return Error{Errc::malformed, "redis url: empty host"};
    for (char c : host) {
      if (!valid_host_char(c)) {
        return Error{Errc::malformed, "redis url: bad character in the host '" + std::string(host) + "'"};
      }
    }
  }
  out.host = std::string(host);
  if (!port.empty()) {
    uint32_t p = 0;
    if (!parse_decimal(port, p) || p == 0 || p > 65535) {
      return Error{Errc::malformed, "redis url: port must be 1..65535"};
    }
    out.port = static_cast<uint16_t>(p);
  }
  if (!path.empty()) {
    int64_t db = 0;
    if (!parse_decimal(path, db) || db > INT32_MAX) {
      return Error{Errc::malformed, "redis url: database must be a number (redis://host:port/N)"};
    }
    out.db = static_cast<int>(db);
  }
  return out;
}

Script::Script(std::string lua) : lua_(std::move(lua)) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(lua_.data(), lua_.size(), md, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  sha1_.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    sha1_.push_back(kHex[md[i] >> 4]);
    sha1_.push_back(kHex[md[i] & 15]);
  }
}

RedisConnection::RedisConnection(redisContext* ctx, std::string peer)
    : ctx_(ctx), peer_(std::move(peer)) {}

RedisConnection::~RedisConnection() {
  if (ctx_) redisFree(ctx_);
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::connect(const RedisUrl& url,
                                                                  std::chrono::milliseconds timeout) {
  std::string peer = url.display();
  redisContext* ctx = redisConnectWithTimeout(url.host.c_str(), url.port, to_timeval(timeout));
  if (!ctx) return Error{Errc::unavailable, "redis " + peer + ": out of memory"};
  if (ctx->err) {
    std::string why = ctx->errstr;
    redisFree(ctx);
    return Error{Errc::unavailable, "redis " + peer + ": cannot connect: " + why};
  }
  std::unique_ptr<RedisConnection> conn(new RedisConnection(ctx, peer));
  if (redisSetTimeout(ctx, to_timeval(timeout)) != REDIS_OK) {
    return conn->fail("cannot set the socket timeout");
  }
  redisEnableKeepAlive(ctx);  // best effort: detects a silently dead peer eventually
  if (!url.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!url.username.empty()) auth.push_back(url.username);
    auth.push_back(url.password);
    auto r = conn->command(auth);
    if (!r) return r.error();
    if (r->is_error()) return Error{Errc::unauthorized, "redis " + peer + ": AUTH refused: " + r->str};
  }
  if (url.db != 0) {
    auto r = conn->command({"SELECT", std::to_string(url.db)});
    if (!r) return r.error();
    if (r->is_error()) {
      return Error{Errc::config_invalid, "redis " + peer + ": SELECT refused: " + r->str};
    }
  }
  return conn;
}

Error RedisConnection::fail(std::string_view what) {
  broken_ = true;
  std::string msg = "redis " + peer_ + ": " + std::string(what);
  if (ctx_ && ctx_->err) {
    msg += ": ";
    msg += ctx_->errstr;
  }
  return Error{Errc::unavailable, std::move(msg)};
}

Result<Reply> RedisConnection::command(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error{Errc::malformed, "redis: empty command"};
  if (broken_) return Error{Errc::unavailable, "redis " + peer_ + ": connection is broken"};
  ArgvView v(argv);
  ReplyPtr r(redisCommandArgv(ctx_, static_cast<int>(argv.size()), v.ptrs.data(), v.lens.data()));
  if (!r) return fail("command " + argv.front() + " failed");
  return convert(static_cast<redisReply*>(r.get()));
}

Result<std::vector<Reply>> RedisConnection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (broken_) return Error{Errc::unavailable, "redis " + peer_ + ": connection is broken"};
  for (const auto& argv : commands) {
    if (argv.empty()) return Error{Errc::malformed, "redis: empty command in a pipeline"};
  }
  for (const auto& argv : commands) {
    ArgvView v(argv);
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), v.ptrs.data(), v.lens.data()) !=
        REDIS_OK) {
      return fail("pipeline append failed");
    }
  }
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) return fail("pipeline failed");
    ReplyPtr r(raw);
    out.push_back(convert(static_cast<redisReply*>(raw)));
  }
  return out;
}

Result<Reply> RedisConnection::eval(const Script& script, const std::vector<std::string>& keys,
                                    const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(script.sha1());
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = command(argv);
  if (!r || !r->is_error() || r->str.rfind("NOSCRIPT", 0) != 0) return r;
  argv[0] = "EVAL";
  argv[1] = script.lua();
  return command(argv);
}

Status RedisConnection::send(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error{Errc::malformed, "redis: empty command"};
  if (broken_) return Error{Errc::unavailable, "redis " + peer_ + ": connection is broken"};
  ArgvView v(argv);
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), v.ptrs.data(), v.lens.data()) != REDIS_OK) {
    return fail("append failed");
  }
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return fail("write failed");
  }
  return ok_status();
}

Status RedisConnection::subscribe(const std::string& channel) {
  if (auto s = send({"SUBSCRIBE", channel}); !s) return s;
  // The confirmation is ["subscribe", channel, count]; the socket timeout bounds each read.
  for (int i = 0; i < 1000; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || !raw) return fail("SUBSCRIBE failed");
    ReplyPtr holder(raw);
    Reply r = convert(static_cast<redisReply*>(raw));
    if (r.is_error()) return Error{Errc::malformed, "redis " + peer_ + ": SUBSCRIBE refused: " + r.str};
    if (r.type == Reply::Type::array && r.elements.size() == 3 && r.elements[0].is("subscribe")) {
      if (r.elements[1].is(channel)) return ok_status();
      continue;  // confirmation of another channel
    }
    // A message of a channel subscribed earlier: this connection only supports one
    // subscribe-then-read sequence, so such messages cannot be kept in order; refuse loudly.
    return Error{Errc::malformed, "redis " + peer_ + ": unexpected reply while subscribing"};
  }
  return Error{Errc::malformed, "redis " + peer_ + ": no SUBSCRIBE confirmation"};
}

Result<std::optional<Reply>> RedisConnection::read_message(std::chrono::milliseconds timeout) {
  if (broken_) return Error{Errc::unavailable, "redis " + peer_ + ": connection is broken"};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) return fail("protocol error");
    if (raw) {
      ReplyPtr holder(raw);
      return std::optional<Reply>(convert(static_cast<redisReply*>(raw)));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int wait_ms = left.count() > 0 ? static_cast<int>(left.count()) : 0;
    pollfd p{};
    p.fd = ctx_->fd;
    p.events = POLLIN;
    int n = ::poll(&p, 1, wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(std::string("poll failed: ") + std::strerror(errno));
    }
    if (n == 0) return std::optional<Reply>{};
    // Readable (data, EOF or error): redisBufferRead does not block here.
    if (redisBufferRead(ctx_) != REDIS_OK) return fail("read failed");
  }
}

Error unexpected_reply(std::string_view who, std::string_view what, const Reply& r) {
  std::string detail = std::string(who) + ": unexpected reply to " + std::string(what);
  if (r.is_error()) detail += ": " + r.str;
  return Error{Errc::io_error, std::move(detail)};
}

}  // namespace castmesh::cluster::redis
