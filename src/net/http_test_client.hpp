#pragma once
/// \file A blocking raw-socket HTTP/1.1 client for tests (loopback only, every read bounded
/// by a receive timeout). Not used by the server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace castmesh::net::testing {

/// A parsed response: status code, header fields with lower-cased names, body.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

/// One TCP connection to 127.0.0.1:port with send/receive timeouts of `timeout_ms`.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  /// Reads one response. With `head_request` no body is expected whatever Content-Length
  /// says. Bodies need Content-Length (or end at EOF). nullopt on timeout/EOF before a head.
  std::optional<RawResponse> read_response(bool head_request = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    RawResponse r;
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    r.status = std::atoi(status_line.c_str() + 9);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        r.headers[name] = line.substr(v);
      }
      pos = e + 2;
    }
    if (head_request || r.status == 100 || r.status == 204 || r.status == 304) return r;
    auto it = r.headers.find("content-length");
    if (it != r.headers.end()) {
      size_t len = std::strtoul(it->second.c_str(), nullptr, 10);
      while (buf_.size() < len) {
        if (!fill()) return std::nullopt;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    } else {
      while (fill()) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }

  /// Everything until the peer closes (or the timeout hits; then `timed_out` is set).
  std::string read_all(bool* timed_out = nullptr) {
    bool eof = false;
    while (fill(&eof)) {
    }
    if (timed_out) *timed_out = !eof;
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  /// True when the peer closed the connection (recv returned 0 or reset) before the timeout.
  bool wait_closed() {
    bool eof = false;
    while (fill(&eof)) {
    }
    return eof;
  }

 private:
  bool fill(bool* eof = nullptr) {
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (eof) *eof = (n == 0) || errno == ECONNRESET;
    return false;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

}  // namespace castmesh::net::testing
