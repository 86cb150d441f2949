#pragma once
/// \file A small blocking RTMP client for tests (and a model for load generators): handshake,
/// chunked messages both ways, the usual command sequence. Not used by the server.
///
/// Every read waits at most the given timeout (poll(2) on the socket), so a test never hangs.

#include <poll.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "base/clock.hpp"
#include "proto/rtmp/chunk.hpp"
#include "proto/rtmp/handshake.hpp"
#include "proto/rtmp/messages.hpp"

namespace castmesh::rtmp::test {

class TestClient {
 public:
  explicit TestClient(uint16_t port) : sock_(io_) {
    boost::system::error_code ec;
    sock_.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    connected_ = !ec;
  }

  bool connected() const { return connected_; }
  bool closed() const { return closed_; }

  /// Sends raw bytes; false when the connection is gone.
  bool send_raw(ByteView b) {
    boost::system::error_code ec;
    boost::asio::write(sock_, boost::asio::buffer(b.data(), b.size()), ec);
    return !ec;
  }

  /// C0C1 -> S0S1S2 -> C2. Returns S0S1S2 (empty on failure).
  Bytes handshake(int timeout_ms = 3000) {
    Bytes c0c1 = client_c0c1();
    if (!send_raw(c0c1)) return {};
    Bytes s;
    if (!read_exact(1 + 2 * kHandshakeSize, s, timeout_ms)) return {};
    Bytes c2 = client_c2(ByteView(s).subspan(1, kHandshakeSize));
    if (!send_raw(c2)) return {};
    return s;
  }

  bool send(const Message& m) {
    Bytes out;
    writer_.write(m, out);
    return send_raw(out);
  }
  bool set_chunk_size(uint32_t n) {
    bool ok = send(set_chunk_size_message(n));
    writer_.set_chunk_size(n);
    return ok;
  }
  bool command(uint32_t stream_id, std::vector<amf0::Value> values, uint32_t cs = 3) {
    return send(command_message(stream_id, values, cs));
  }

  /// Reads until a message satisfying `pred` arrives (searching messages already received but
  /// not yet returned first). nullopt on timeout or close.
  std::optional<Message> wait_for(const std::function<bool(const Message&)>& pred, int timeout_ms = 5000) {
    const int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
      for (size_t i = cursor_; i < received_.size(); ++i) {
        if (pred(received_[i])) {
          Message m = received_[i];
          received_.erase(received_.begin() + static_cast<std::ptrdiff_t>(i));
          return m;
        }
      }
      const int64_t left = deadline - mono_ms();
      if (left <= 0 || closed_) return std::nullopt;
      pump(static_cast<int>(left));
    }
  }

  /// Waits for a command message named `name` (e.g. "_result", "onStatus").
  std::optional<Command> wait_command(std::string_view name, int timeout_ms = 5000) {
    auto m = wait_for(
        [&](const Message& m) {
          if (m.type_id != msg_type::kCommandAmf0) return false;
          auto c = parse_command(m);
          return c && c->name == name;
        },
        timeout_ms);
    if (!m) return std::nullopt;
    return *parse_command(*m);
  }

  /// Waits for an onStatus and returns its info object's code ("" on timeout).
  std::string wait_status(int timeout_ms = 5000) {
    auto c = wait_command("onStatus", timeout_ms);
    if (!c || c->args.empty()) return {};
    return c->args[0].get_string("code");
  }

  /// True when the server closes the connection within `timeout_ms` (input is discarded).
  bool wait_closed(int timeout_ms) {
    const int64_t deadline = mono_ms() + timeout_ms;
    while (!closed_) {
      const int64_t left = deadline - mono_ms();
      if (left <= 0) return false;
      pump(static_cast<int>(left));
    }
    return true;
  }

  // ---- the usual sequences ----

  /// connect + createStream; true when both got their _result.
  bool connect_app(std::string_view app, int port = 1935) {
    using amf0::Value;
    command(0, {Value::string("connect"), Value::number(1),
                Value::object({{"app", Value::string(std::string(app))},
                               {"type", Value::string("nonprivate")},
                               {"tcUrl", Value::string("rtmp://127.0.0.1:" + std::to_string(port) + "/" +
                                                       std::string(app))},
                               {"objectEncoding", Value::number(0)}})});
    auto r = wait_command("_result");
    if (!r || r->args.empty() || r->args[0].get_string("code") != status::kConnectSuccess) return false;
    command(0, {Value::string("createStream"), Value::number(2), Value::null()});
    auto cs = wait_command("_result");
    return cs && cs->transaction_id == 2 && !cs->args.empty() && cs->args[0].as_number() == 1;
  }

  /// releaseStream, FCPublish, publish; returns the onStatus code.
  std::string publish(std::string_view name) {
    using amf0::Value;
    command(0, {Value::string("releaseStream"), Value::number(3), Value::null(), Value::string(std::string(name))});
    command(0, {Value::string("FCPublish"), Value::number(4), Value::null(), Value::string(std::string(name))});
    command(1, {Value::string("publish"), Value::number(5), Value::null(), Value::string(std::string(name)),
                Value::string("live")}, 8);
    return wait_status();
  }

  /// play; returns the code of the first onStatus (NetStream.Play.Reset on success).
  std::string play(std::string_view name) {
    using amf0::Value;
    command(1, {Value::string("play"), Value::number(4), Value::null(), Value::string(std::string(name)),
                Value::number(-2000)}, 8);
    return wait_status();
  }

  bool send_media(uint8_t type, uint32_t ts, Bytes payload, uint32_t cs = 6) {
    Message m;
    m.type_id = type;
    m.timestamp = ts;
    m.stream_id = 1;
    m.csid = cs;
    m.payload = std::move(payload);
    return send(m);
  }

  std::vector<Message>& received() { return received_; }

 private:
  bool read_exact(size_t n, Bytes& out, int timeout_ms) {
    const int64_t deadline = mono_ms() + timeout_ms;
    out.clear();
    while (out.size() < n) {
      const int64_t left = deadline - mono_ms();
      if (left <= 0 || !wait_readable(static_cast<int>(left))) return false;
      uint8_t buf[4096];
      boost::system::error_code ec;
      size_t got = sock_.read_some(boost::asio::buffer(buf, std::min(sizeof(buf), n - out.size())), ec);
      if (ec) {
        closed_ = true;
        return false;
      }
      out.insert(out.end(), buf, buf + got);
    }
    return true;
  }

  bool wait_readable(int timeout_ms) {
    pollfd p{sock_.native_handle(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }

  // Reads what arrives within `timeout_ms` and parses it into received_.
  void pump(int timeout_ms) {
    if (!wait_readable(timeout_ms)) return;
    uint8_t buf[65536];
    boost::system::error_code ec;
    size_t got = sock_.read_some(boost::asio::buffer(buf), ec);
    if (ec) {
      closed_ = true;
      return;
    }
    inbuf_.insert(inbuf_.end(), buf, buf + got);
    auto used = reader_.feed(inbuf_, received_);
    if (!used) {
      closed_ = true;  // treat a broken stream like a close
      return;
    }
    inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<std::ptrdiff_t>(*used));
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket sock_;
  bool connected_ = false;
  bool closed_ = false;
  ChunkReader reader_;
  ChunkWriter writer_{128};
  Bytes inbuf_;
  std::vector<Message> received_;
  size_t cursor_ = 0;
};

}  // namespace castmesh::rtmp::test
