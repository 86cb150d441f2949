/// \file castmesh-loadgen: opens N players (RTMP or HTTP-FLV) on one stream, or N RTMP
/// publishers each pushing an FLV file in real time, and prints one JSON line of results.
///
/// Few threads (one io_context each, default 1), one coroutine per client, fixed-size
/// per-client buffers, media payloads never copied. Connects only to 127.0.0.1.

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/clock.hpp"
#include "loadgen_wire.hpp"

namespace castmesh::bench {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto kTok = asio::as_tuple(asio::use_awaitable);

enum class Mode { rtmp_play, flv_play, rtmp_publish };

struct Options {
  Mode mode = Mode::rtmp_play;
  std::string mode_name = "rtmp-play";
  std::string url;
  uint32_t n = 1;
  double ramp_per_sec = 200;
  double duration_s = 30;
  std::string file;
  uint32_t threads = 1;
  uint32_t read_buf = 64 * 1024;
  uint32_t read_pause_ms = 0;
  uint32_t rcvlowat = 0;
  uint32_t batch_ms = 10;
  uint32_t chunk_size = 4096;
  double lag_limit_s = 2.0;
  std::string ready_file;
  std::string keyframe_log;
  std::string label;
  bool progress = true;
};

/// A parsed rtmp:// or http:// URL on the loopback host.
struct Target {
  bool rtmp = true;
  uint16_t port = 0;
  std::string path;    ///< http: request target
  std::string app;     ///< rtmp: first path segment
  std::string stream;  ///< rtmp: the rest (may contain "{i}")
  std::string tc_url;
};

std::optional<Target> parse_url(const std::string& url, std::string& why) {
  Target t;
  std::string rest;
  if (url.rfind("rtmp://", 0) == 0) { t.rtmp = true; rest = url.substr(7); t.port = 1935; }
  else if (url.rfind("http://", 0) == 0) { t.rtmp = false; rest = url.substr(7); t.port = 80; }
  else { why = "URL must start with rtmp:// or http://"; return std::nullopt; }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = hostport;
  size_t colon = hostport.rfind(':');
  if (colon != std::string::npos) {
    host = hostport.substr(0, colon);
    try {
      int p = std::stoi(hostport.substr(colon + 1));
      if (p <= 0 || p > 65535) throw std::out_of_range("port");
      t.port = static_cast<uint16_t>(p);
    } catch (...) { why = "bad port in URL"; return std::nullopt; }
  }
  if (host != "127.0.0.1" && host != "localhost") {
    why = "refusing to connect to '" + host + "': the load generator only talks to 127.0.0.1";
    return std::nullopt;
  }
  t.path = path;
  if (t.rtmp) {
    std::string p = path.substr(1);
    size_t s2 = p.find('/');
    if (s2 == std::string::npos || s2 == 0 || s2 + 1 >= p.size()) { why = "RTMP URL must be rtmp://127.0.0.1:PORT/APP/STREAM"; return std::nullopt; }
    t.app = p.substr(0, s2);
    t.stream = p.substr(s2 + 1);
    t.tc_url = "rtmp://127.0.0.1:" + std::to_string(t.port) + "/" + t.app;
  }
  return t;
}

std::string substitute_index(std::string s, uint32_t i) {
  size_t pos;
  while ((pos = s.find("{i}")) != std::string::npos) s.replace(pos, 3, std::to_string(i));
  return s;
}

/// What one client saw. Written only by the client's own coroutine; read after the run.
struct ClientStats {
  int64_t start_us = -1, first_media_us = -1, first_key_us = -1, started_us = -1, end_us = -1;
  uint64_t bytes = 0;
  int64_t first_ts = -1, last_ts = 0;
  int64_t max_ahead_ms = INT64_MIN;  ///< max over tags of (media ts - wall ms)
  std::array<int64_t, 2> last_type_ts{-1, -1};
  uint32_t gaps = 0;
  int64_t lag_ms = -1;      ///< set at the end
  int64_t max_lag_ms = 0;   ///< publishers: worst lateness against the schedule
  std::string error;
  void fail(std::string e) {
    if (error.empty()) error = std::move(e);
  }
};

/// Process-wide counters for the progress line (relaxed atomics; one writer thread each).
struct Progress {
  std::atomic<uint64_t> connected{0}, failed{0}, bytes{0};
};

/// Media timing of a player: startup, live-edge lag, timestamp gaps. `now_us` is the time the
/// bytes holding the tag were read.
void track_media(ClientStats& st, int64_t now_us, uint8_t type, uint32_t ts, std::array<uint8_t, 2> head,
                 Progress& prog) {
  if (st.first_media_us < 0) {
    st.first_media_us = now_us;
    prog.connected.fetch_add(1, std::memory_order_relaxed);
  }
  if (type == kTypeVideo && st.first_key_us < 0 && is_video_keyframe(head)) st.first_key_us = now_us;
  // Sequence headers carry whatever timestamp the server chose (often 0): not part of the timeline.
  if (is_codec_config(type, head)) return;
  const int64_t t = ts;
  if (st.first_ts < 0) st.first_ts = t;
  int64_t& prev = st.last_type_ts[type == kTypeVideo ? 1 : 0];
  // A jump of more than 1 s between consecutive frames of one track means frames were dropped.
  if (prev >= 0 && (t - prev > 1000 || prev - t > 1000)) ++st.gaps;
  prev = t;
  st.last_ts = std::max(st.last_ts, t);
  st.max_ahead_ms = std::max(st.max_ahead_ms, t - now_us / 1000);
}

/// Once a player has its first keyframe, optionally raise SO_RCVLOWAT so the kernel signals
/// readability (and wakes this process) only when that many bytes are queued.
void maybe_set_rcvlowat(tcp::socket& s, const Options& o, const ClientStats& st, bool& done) {
  if (done || o.rcvlowat == 0 || st.first_key_us < 0) return;
  done = true;
  int v = static_cast<int>(o.rcvlowat);
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v);
}

/// Sockets of one io_context, so the end-of-run closer can close them from that thread.
struct Worker {
  // Each io_context is run by one thread and its sockets are touched only from that thread.
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<tcp::socket*> socks;
  std::vector<size_t> free_slots;
  bool stopping = false;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{asio::make_work_guard(io)};

  size_t add(tcp::socket* s) {
    if (!free_slots.empty()) {
      size_t i = free_slots.back();
      free_slots.pop_back();
      socks[i] = s;
      return i;
    }
    socks.push_back(s);
    return socks.size() - 1;
  }
  void remove(size_t i) {
    socks[i] = nullptr;
    free_slots.push_back(i);
  }
};

struct SocketReg {
  Worker& w;
  size_t slot;
  SocketReg(Worker& worker, tcp::socket* s) : w(worker), slot(worker.add(s)) {}
  ~SocketReg() { w.remove(slot); }
  SocketReg(const SocketReg&) = delete;
  SocketReg& operator=(const SocketReg&) = delete;
};

std::string io_error(const char* what, const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return std::string(what) + ": closed by server";
  return std::string(what) + ": " + ec.message();
}

awaitable<bool> tcp_connect(tcp::socket& s, uint16_t port, ClientStats& st, Worker& w) {
  tcp::endpoint ep(asio::ip::address_v4::loopback(), port);
  auto [ec] = co_await s.async_connect(ep, kTok);
  if (ec) {
    st.fail(w.stopping ? "not connected before the end" : io_error("connect", ec));
    co_return false;
  }
  boost::system::error_code ignored;
  s.set_option(tcp::no_delay(true), ignored);
  co_return true;
}

// ------------------------------------------------------------------ RTMP client protocol

/// Client side of the RTMP command exchange (RTMP spec 7.2): connect, createStream, then play or
/// releaseStream/FCPublish/publish. Replies (acknowledgements, ping responses, commands) are
/// appended to `out` for the caller to send.
class RtmpClient : public RtmpSink {
 public:
  RtmpClient(bool publish, const Target& t, std::string stream, uint32_t chunk_size, ClientStats& st, Progress& prog)
      : publish_(publish), target_(t), stream_(std::move(stream)), chunk_(chunk_size), st_(st), prog_(prog) {}

  int64_t now_us = 0;
  Bytes out;
  bool started = false;
  uint32_t stream_id = 0;
  uint32_t chunk_size() const { return chunk_; }

  void start() {
    Bytes b;
    ByteWriter(b).u32(chunk_);
    write_rtmp_message(out, 2, 1, 0, 0, b, 128);  // Set Chunk Size, RTMP spec 5.4.1
    Bytes c;
    amf::put_string(c, "connect");
    amf::put_number(c, 1);
    amf::begin_object(c);
    amf::put_key(c, "app"); amf::put_string(c, target_.app);
    if (publish_) { amf::put_key(c, "type"); amf::put_string(c, "nonprivate"); }
    amf::put_key(c, "flashVer"); amf::put_string(c, publish_ ? "FMLE/3.0 (compatible; castmesh-loadgen)" : "LNX 9,0,124,2");
    amf::put_key(c, "tcUrl"); amf::put_string(c, target_.tc_url);
    if (!publish_) {
      amf::put_key(c, "fpad"); amf::put_bool(c, false);
      amf::put_key(c, "capabilities"); amf::put_number(c, 15);
      amf::put_key(c, "audioCodecs"); amf::put_number(c, 4071);
      amf::put_key(c, "videoCodecs"); amf::put_number(c, 252);
      amf::put_key(c, "videoFunction"); amf::put_number(c, 1);
    }
    amf::end_object(c);
    command(c, 0);
  }

  /// Parses received bytes; returns bytes consumed (see RtmpChunkScanner::feed).
  Result<size_t> feed(ByteView data) {
    auto r = scanner_.feed(data, *this);
    if (!r.ok()) return r;
    received_ += *r;
    if (ack_window_ > 0 && received_ - last_ack_ >= ack_window_) {  // RTMP spec 5.4.3
      Bytes b;
      ByteWriter(b).u32(static_cast<uint32_t>(received_));
      write_rtmp_message(out, 2, 3, 0, 0, b, chunk_);
      last_ack_ = received_;
    }
    return r;
  }

  void on_media(uint8_t type, uint32_t ts, std::array<uint8_t, 2> head, uint32_t) override {
    if (!publish_) track_media(st_, now_us, type, ts, head, prog_);
  }

  void on_message(const RtmpMessage& m) override {
    switch (m.type) {
      case 5: {  // Window Acknowledgement Size
        ByteReader r(m.payload);
        ack_window_ = r.u32();
        break;
      }
      case 4: {  // User Control: answer PingRequest (event 6) with PingResponse (7)
        ByteReader r(m.payload);
        if (r.u16() == 6) {
          uint32_t t = r.u32();
          Bytes b;
          ByteWriter w(b);
          w.u16(7);
          w.u32(t);
          write_rtmp_message(out, 2, 4, 0, 0, b, chunk_);
        }
        break;
      }
      case 20: on_command(amf::decode(m.payload)); break;
      default: break;
    }
  }

 private:
  void command(const Bytes& body, uint32_t sid, uint8_t csid = 3) { write_rtmp_message(out, csid, 20, 0, sid, body, chunk_); }

  void on_command(const std::vector<amf::Lite>& v) {
    if (v.empty()) return;
    const std::string& name = v[0].str;
    const double txn = v.size() > 1 ? v[1].number : 0;
    if (name == "_result" && txn == 1) {
      Bytes c;
      if (publish_) {
        c.clear(); amf::put_string(c, "releaseStream"); amf::put_number(c, 2); amf::put_null(c); amf::put_string(c, stream_); command(c, 0);
        c.clear(); amf::put_string(c, "FCPublish"); amf::put_number(c, 3); amf::put_null(c); amf::put_string(c, stream_); command(c, 0);
      }
      c.clear(); amf::put_string(c, "createStream"); amf::put_number(c, 4); amf::put_null(c); command(c, 0);
    } else if (name == "_result" && txn == 4) {
      stream_id = v.size() > 3 ? static_cast<uint32_t>(v[3].number) : 1;
      Bytes c;
      if (publish_) {
        amf::put_string(c, "publish"); amf::put_number(c, 5); amf::put_null(c); amf::put_string(c, stream_); amf::put_string(c, "live");
        command(c, stream_id, 8);
      } else {
        amf::put_string(c, "play"); amf::put_number(c, 5); amf::put_null(c); amf::put_string(c, stream_); amf::put_number(c, -2);
        command(c, stream_id, 8);
        Bytes b;  // User Control SetBufferLength (event 3), 1000 ms
        ByteWriter w(b);
        w.u16(3);
        w.u32(stream_id);
        w.u32(1000);
        write_rtmp_message(out, 2, 4, 0, 0, b, chunk_);
      }
    } else if (name == "_error") {
      std::string code = v.size() > 3 ? v[3].prop("code") : "";
      st_.fail("rtmp _error " + (code.empty() ? std::string("(txn ") + std::to_string(int(txn)) + ")" : code));
    } else if (name == "onStatus") {
      const amf::Lite* info = v.size() > 3 ? &v[3] : nullptr;
      std::string code = info ? info->prop("code") : "";
      std::string level = info ? info->prop("level") : "";
      if (level == "error" || code.find("Failed") != std::string::npos || code.find("NotFound") != std::string::npos ||
          code.find("BadName") != std::string::npos)
        st_.fail("rtmp " + code);
      if (code == "NetStream.Publish.Start" || code == "NetStream.Play.Start") {
        if (!started && publish_) prog_.connected.fetch_add(1, std::memory_order_relaxed);
        started = true;
        if (st_.started_us < 0) st_.started_us = now_us;
      }
    } else if (name == "close") {
      st_.fail("rtmp close command");
    }
  }

  bool publish_;
  const Target& target_;
  std::string stream_;
  uint32_t chunk_;
  ClientStats& st_;
  Progress& prog_;
  RtmpChunkScanner scanner_;
  uint64_t received_ = 0, last_ack_ = 0;
  uint32_t ack_window_ = 0;
};

/// Simple handshake (RTMP spec 5.2): C0+C1 with zero version field, then C2 = echo of S1.
awaitable<bool> rtmp_handshake(tcp::socket& s, ClientStats& st, uint64_t seed) {
  Bytes c0c1(1 + 1536);
  c0c1[0] = 3;
  std::mt19937_64 rng(seed);
  for (size_t i = 9; i < c0c1.size(); ++i) c0c1[i] = static_cast<uint8_t>(rng());
  auto [ec1, n1] = co_await asio::async_write(s, asio::buffer(c0c1), kTok);
  if (ec1) { st.fail(io_error("handshake write", ec1)); co_return false; }
  Bytes s012(1 + 1536 + 1536);
  auto [ec2, n2] = co_await asio::async_read(s, asio::buffer(s012), kTok);
  if (ec2) { st.fail(io_error("handshake read", ec2)); co_return false; }
  if (s012[0] != 3) { st.fail("handshake: S0 version " + std::to_string(s012[0])); co_return false; }
  auto [ec3, n3] = co_await asio::async_write(s, asio::buffer(s012.data() + 1, 1536), kTok);
  if (ec3) { st.fail(io_error("handshake write", ec3)); co_return false; }
  co_return true;
}

awaitable<bool> flush(tcp::socket& s, Bytes& out, ClientStats& st) {
  if (out.empty()) co_return true;
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(out), kTok);
  out.clear();
  if (ec) { st.fail(io_error("write", ec)); co_return false; }
  co_return true;
}

// ------------------------------------------------------------------ players

awaitable<void> rtmp_player(Worker& w, const Options& o, const Target& t, ClientStats& st, Progress& prog, uint32_t idx) {
  tcp::socket s(w.io);
  SocketReg reg(w, &s);
  st.start_us = mono_us();
  if (co_await tcp_connect(s, t.port, st, w) && co_await rtmp_handshake(s, st, idx + 1)) {
    RtmpClient c(false, t, substitute_index(t.stream, idx), o.chunk_size, st, prog);
    c.start();
    Bytes buf(o.read_buf);
    size_t have = 0;
    bool lowat_set = false;
    asio::steady_timer pause(w.io);
    if (co_await flush(s, c.out, st)) {
      for (;;) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), kTok);
        if (ec) {
          if (!w.stopping) st.fail(io_error("read", ec));
          break;
        }
        c.now_us = mono_us();
        st.bytes += n;
        prog.bytes.fetch_add(n, std::memory_order_relaxed);
        have += n;
        auto r = c.feed(ByteView(buf.data(), have));
        if (!r.ok()) { st.fail("rtmp: " + r.error().message()); break; }
        if (*r > 0) std::memmove(buf.data(), buf.data() + *r, have - *r);
        have -= *r;
        if (!st.error.empty()) break;
        if (!co_await flush(s, c.out, st)) break;
        maybe_set_rcvlowat(s, o, st, lowat_set);
        if (o.read_pause_ms > 0 && st.first_key_us >= 0) {
          pause.expires_after(std::chrono::milliseconds(o.read_pause_ms));
          co_await pause.async_wait(kTok);
          if (w.stopping) break;
        }
      }
    }
  }
  st.end_us = mono_us();
}

awaitable<void> flv_player(Worker& w, const Options& o, const Target& t, ClientStats& st, Progress& prog, uint32_t idx) {
  tcp::socket s(w.io);
  SocketReg reg(w, &s);
  st.start_us = mono_us();
  struct Sink : MediaSink {
    ClientStats& st;
    Progress& prog;
    int64_t now_us = 0;
    Sink(ClientStats& s, Progress& p) : st(s), prog(p) {}
    void on_media(uint8_t type, uint32_t ts, std::array<uint8_t, 2> head, uint32_t) override {
      track_media(st, now_us, type, ts, head, prog);
    }
  } sink(st, prog);
  if (co_await tcp_connect(s, t.port, st, w)) {
    std::string req = "GET " + substitute_index(t.path, idx) + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(t.port) +
                      "\r\nUser-Agent: castmesh-loadgen\r\nAccept: */*\r\n\r\n";
    auto [ec, n] = co_await asio::async_write(s, asio::buffer(req), kTok);
    if (ec) st.fail(io_error("write", ec));
    Bytes buf(o.read_buf);
    size_t have = 0;
    bool in_body = false, chunked = false, lowat_set = false;
    FlvScanner flv;
    HttpChunkDecoder dechunk;
    asio::steady_timer pause(w.io);
    while (st.error.empty()) {
      auto [rec, rn] = co_await s.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), kTok);
      if (rec) {
        if (!w.stopping) st.fail(io_error(in_body ? "read" : "read response head", rec));
        break;
      }
      sink.now_us = mono_us();
      st.bytes += rn;
      prog.bytes.fetch_add(rn, std::memory_order_relaxed);
      ByteView body;
      if (!in_body) {
        have += rn;
        std::string_view head(reinterpret_cast<const char*>(buf.data()), have);
        size_t end = head.find("\r\n\r\n");
        if (end == std::string_view::npos) {
          if (have >= 16 * 1024) { st.fail("response head larger than 16 KiB"); break; }
          continue;
        }
        std::string_view status = head.substr(0, head.find("\r\n"));
        if (status.size() < 12 || status.substr(0, 5) != "HTTP/" || status.substr(9, 3) != "200") {
          st.fail("http status: " + std::string(status.substr(0, 64)));
          break;
        }
        std::string lower(head.substr(0, end));
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        chunked = lower.find("transfer-encoding: chunked") != std::string::npos;
        in_body = true;
        body = ByteView(buf.data() + end + 4, have - end - 4);
        have = 0;
      } else {
        body = ByteView(buf.data(), rn);
      }
      Status fs = ok_status();
      if (chunked) {
        Status ds = dechunk.feed(body, [&](ByteView piece) {
          if (fs.ok()) fs = flv.feed(piece, sink);
        });
        if (!ds.ok()) { st.fail(ds.code() == Errc::closed ? "http: stream ended" : "http chunked: " + ds.error().message()); break; }
      } else {
        fs = flv.feed(body, sink);
      }
      if (!fs.ok()) { st.fail("flv: " + fs.error().message()); break; }
      maybe_set_rcvlowat(s, o, st, lowat_set);
      if (o.read_pause_ms > 0 && st.first_key_us >= 0) {
        pause.expires_after(std::chrono::milliseconds(o.read_pause_ms));
        co_await pause.async_wait(kTok);
        if (w.stopping) break;
      }
    }
  }
  st.end_us = mono_us();
}

// ------------------------------------------------------------------ publisher

struct KeyframeLog {
  std::FILE* f = nullptr;
  ~KeyframeLog() {
    if (f) std::fclose(f);
  }
};

awaitable<void> publisher_reader(tcp::socket& s, RtmpClient& c, ClientStats& st, Worker& w) {
  Bytes buf(16 * 1024);
  size_t have = 0;
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), kTok);
    if (ec) {
      if (!w.stopping && ec != asio::error::operation_aborted) st.fail(io_error("read", ec));
      co_return;
    }
    c.now_us = mono_us();
    have += n;
    auto r = c.feed(ByteView(buf.data(), have));
    if (!r.ok()) { st.fail("rtmp: " + r.error().message()); co_return; }
    if (*r > 0) std::memmove(buf.data(), buf.data() + *r, have - *r);
    have -= *r;
    if (!st.error.empty()) co_return;
  }
}

awaitable<void> publisher_writer(tcp::socket& s, RtmpClient& c, const FlvFile& f, const Options& o, ClientStats& st,
                                 Worker& w, Progress& prog, std::FILE* kflog, uint32_t idx) {
  asio::steady_timer timer(w.io);
  Bytes out;
  out.reserve(256 * 1024);
  const int64_t t0_us = mono_us();
  st.started_us = st.started_us < 0 ? t0_us : st.started_us;
  // Metadata and sequence headers first (timestamp 0).
  if (!f.metadata.empty()) {
    Bytes d;
    amf::put_string(d, "@setDataFrame");
    d.insert(d.end(), f.metadata.begin(), f.metadata.end());
    write_rtmp_message(out, 5, kTypeData, 0, c.stream_id, d, c.chunk_size());
  }
  if (!f.video_config.empty()) write_rtmp_message(out, 6, kTypeVideo, 0, c.stream_id, f.video_config, c.chunk_size());
  if (!f.audio_config.empty()) write_rtmp_message(out, 4, kTypeAudio, 0, c.stream_id, f.audio_config, c.chunk_size());
  size_t i = 0;
  uint64_t loop_off = 0;
  int64_t last_due_ms = 0;
  while (!w.stopping && st.error.empty()) {
    const int64_t now_ms = (mono_us() - t0_us) / 1000;
    out.insert(out.end(), c.out.begin(), c.out.end());
    c.out.clear();
    bool key_in_batch = false;
    // Everything due by now, capped at 4 MiB per write so a stalled server cannot grow `out`.
    while (out.size() < 4 * 1024 * 1024) {
      const FlvFile::Tag& tag = f.media[i];
      const int64_t due = static_cast<int64_t>(tag.ts_ms + loop_off);
      if (due > now_ms) break;
      write_rtmp_message(out, tag.type == kTypeVideo ? 6 : 4, tag.type, static_cast<uint32_t>(due), c.stream_id,
                         f.payload(tag), c.chunk_size());
      key_in_batch |= tag.keyframe;
      last_due_ms = due;
      if (++i == f.media.size()) {
        i = 0;
        loop_off += f.loop_ms;
      }
    }
    if (!out.empty()) {
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(out), kTok);
      if (ec) {
        if (!w.stopping) st.fail(io_error("write", ec));
        break;
      }
      st.bytes += n;
      prog.bytes.fetch_add(n, std::memory_order_relaxed);
      out.clear();
      if (key_in_batch && kflog != nullptr) {
        const double wall = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        std::fprintf(kflog, "%u %.6f %" PRId64 "\n", idx, wall, last_due_ms);
        std::fflush(kflog);
      }
    }
    const int64_t after_ms = (mono_us() - t0_us) / 1000;
    st.max_lag_ms = std::max(st.max_lag_ms, after_ms - last_due_ms - static_cast<int64_t>(o.batch_ms) - 50);
    const int64_t next_due = static_cast<int64_t>(f.media[i].ts_ms + loop_off);
    const int64_t wake = std::max(next_due, after_ms + static_cast<int64_t>(o.batch_ms));
    timer.expires_at(std::chrono::steady_clock::time_point(std::chrono::microseconds(t0_us + wake * 1000)));
    // steady_clock and mono_us() share an epoch (both std::chrono::steady_clock).
    auto [tec] = co_await timer.async_wait(kTok);
    if (tec) break;
  }
  // Lateness at the end against the real-time schedule: how far the sent timeline trails.
  const int64_t end_ms = (mono_us() - t0_us) / 1000;
  const int64_t next_due = static_cast<int64_t>(f.media[i].ts_ms + loop_off);
  st.lag_ms = std::max<int64_t>(0, end_ms - next_due);
  st.last_ts = last_due_ms;
  co_return;
}

awaitable<void> rtmp_publisher(Worker& w, const Options& o, const Target& t, const FlvFile& f, ClientStats& st,
                               Progress& prog, uint32_t idx, std::FILE* kflog) {
  tcp::socket s(w.io);
  SocketReg reg(w, &s);
  st.start_us = mono_us();
  if (co_await tcp_connect(s, t.port, st, w) && co_await rtmp_handshake(s, st, idx + 1)) {
    std::string stream = t.stream;
    if (o.n > 1 && stream.find("{i}") == std::string::npos) stream += "-{i}";
    RtmpClient c(true, t, substitute_index(stream, idx), o.chunk_size, st, prog);
    c.start();
    bool ok = co_await flush(s, c.out, st);
    Bytes buf(16 * 1024);
    size_t have = 0;
    while (ok && !c.started && st.error.empty()) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), kTok);
      if (ec) {
        if (!w.stopping) st.fail(io_error("read", ec));
        ok = false;
        break;
      }
      c.now_us = mono_us();
      have += n;
      auto r = c.feed(ByteView(buf.data(), have));
      if (!r.ok()) { st.fail("rtmp: " + r.error().message()); ok = false; break; }
      if (*r > 0) std::memmove(buf.data(), buf.data() + *r, have - *r);
      have -= *r;
      ok = co_await flush(s, c.out, st);
    }
    if (ok && c.started && st.error.empty()) {
      co_await (publisher_reader(s, c, st, w) || publisher_writer(s, c, f, o, st, w, prog, kflog, idx));
    }
  }
  st.end_us = mono_us();
}

// ------------------------------------------------------------------ run

awaitable<void> closer(Worker& w) {
  w.stopping = true;
  boost::system::error_code ec;
  for (tcp::socket* s : w.socks)
    if (s != nullptr) s->close(ec);
  w.guard.reset();
  co_return;
}

awaitable<void> progress_loop(const Options& o, Progress& prog, int64_t t0_us, std::shared_ptr<asio::steady_timer> t,
                              const bool& done) {
  uint64_t last_bytes = 0;
  int64_t last_us = t0_us;
  while (!done) {
    t->expires_after(std::chrono::seconds(5));
    auto [ec] = co_await t->async_wait(kTok);
    if (ec || done) break;
    int64_t now = mono_us();
    uint64_t b = prog.bytes.load(std::memory_order_relaxed);
    std::fprintf(stderr, "[loadgen %.0fs] %s connected=%" PRIu64 " %.1f Mbit/s\n", (now - t0_us) / 1e6, o.mode_name.c_str(),
                 prog.connected.load(std::memory_order_relaxed), (b - last_bytes) * 8.0 / ((now - last_us) / 1e6) / 1e6);
    last_bytes = b;
    last_us = now;
  }
}

/// Starts clients at the ramp rate, then lets them run for the duration and stops them.
awaitable<void> spawner(std::vector<std::unique_ptr<Worker>>& workers, const Options& o, const Target& t, const FlvFile* f,
                        std::vector<ClientStats>& stats, Progress& prog, std::FILE* kflog, bool& done) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const int64_t t0 = mono_us();
  auto progress_timer = std::make_shared<asio::steady_timer>(workers[0]->io);
  if (o.progress) asio::co_spawn(workers[0]->io, progress_loop(o, prog, t0, progress_timer, done), asio::detached);
  for (uint32_t i = 0; i < o.n; ++i) {
    if (o.ramp_per_sec > 0) {
      const int64_t at = t0 + static_cast<int64_t>(i * 1e6 / o.ramp_per_sec);
      if (at > mono_us()) {
        timer.expires_at(std::chrono::steady_clock::time_point(std::chrono::microseconds(at)));
        co_await timer.async_wait(kTok);
      }
    }
    Worker& w = *workers[i % workers.size()];
    ClientStats& st = stats[i];
    switch (o.mode) {
      case Mode::rtmp_play: asio::co_spawn(w.io, rtmp_player(w, o, t, st, prog, i), asio::detached); break;
      case Mode::flv_play: asio::co_spawn(w.io, flv_player(w, o, t, st, prog, i), asio::detached); break;
      case Mode::rtmp_publish:
        asio::co_spawn(w.io, rtmp_publisher(w, o, t, *f, st, prog, i, i == 0 ? kflog : nullptr), asio::detached);
        break;
    }
  }
  if (!o.ready_file.empty()) std::ofstream(o.ready_file) << "ramped " << (mono_us() - t0) / 1000 << " ms\n";
  std::fprintf(stderr, "[loadgen] %u clients started in %.1f s; running %.0f s more\n", o.n, (mono_us() - t0) / 1e6, o.duration_s);
  timer.expires_after(std::chrono::microseconds(static_cast<int64_t>(o.duration_s * 1e6)));
  co_await timer.async_wait(kTok);
  done = true;
  progress_timer->cancel();
  for (auto& w : workers) asio::co_spawn(w->io, closer(*w), asio::detached);
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(q * (v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') { out += '\\'; out += c; }
    else if (static_cast<unsigned char>(c) < 0x20) out += ' ';
    else out += c;
  }
  return out;
}

void report(const Options& o, const std::vector<ClientStats>& stats, double wall_s) {
  const bool pub = o.mode == Mode::rtmp_publish;
  uint32_t connected = 0, failed = 0, kept_up = 0, kept_up_no_gaps = 0, with_gaps = 0;
  uint64_t bytes = 0, gaps = 0;
  std::vector<double> startup, first_byte, kbps, lag;
  std::map<std::string, uint32_t> errors;
  const int64_t lag_limit = static_cast<int64_t>(o.lag_limit_s * 1000);
  for (const ClientStats& st : stats) {
    bytes += st.bytes;
    const bool ok = pub ? st.started_us >= 0 : st.first_media_us >= 0;
    if (!st.error.empty()) {
      std::string key = st.error.substr(0, 80);
      if (errors.size() < 32 || errors.count(key)) ++errors[key];
      else ++errors["other"];
    }
    if (!ok) {
      ++failed;
      if (st.error.empty() && st.start_us >= 0) ++errors[pub ? "publish not started" : "no media received"];
      continue;
    }
    ++connected;
    const int64_t end = st.end_us > 0 ? st.end_us : mono_us();
    if (pub) {
      startup.push_back((st.started_us - st.start_us) / 1000.0);
      const double secs = (end - st.started_us) / 1e6;
      if (secs > 0.5) kbps.push_back(st.bytes * 8.0 / secs / 1000.0);
      lag.push_back(static_cast<double>(st.lag_ms));
      if (st.lag_ms >= 0 && st.lag_ms < lag_limit && st.error.empty()) {
        ++kept_up;
        ++kept_up_no_gaps;
      }
      continue;
    }
    first_byte.push_back((st.first_media_us - st.start_us) / 1000.0);
    if (st.first_key_us >= 0) startup.push_back((st.first_key_us - st.start_us) / 1000.0);
    const double secs = (end - st.first_media_us) / 1e6;
    if (secs > 0.5) kbps.push_back(st.bytes * 8.0 / secs / 1000.0);
    // Lag behind the live edge: the furthest ahead of wall time this client ever was, minus
    // where it is at the end.
    const int64_t l = st.max_ahead_ms - (st.last_ts - end / 1000);
    lag.push_back(static_cast<double>(l));
    gaps += st.gaps;
    if (st.gaps > 0) ++with_gaps;
    if (st.first_key_us >= 0 && l < lag_limit && st.error.empty()) {
      ++kept_up;
      if (st.gaps == 0) ++kept_up_no_gaps;
    }
  }
  std::string err_json;
  for (const auto& [k, v] : errors) {
    if (!err_json.empty()) err_json += ",";
    err_json += "\"" + json_escape(k) + "\":" + std::to_string(v);
  }
  std::printf(
      "{\"label\":\"%s\",\"mode\":\"%s\",\"url\":\"%s\",\"n\":%u,\"connected\":%u,\"failed\":%u,\"kept_up\":%u,"
      "\"kept_up_no_gaps\":%u,\"clients_with_gaps\":%u,\"gaps\":%" PRIu64 ","
      "\"startup_ms\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},\"first_byte_ms\":{\"p50\":%.1f,\"p99\":%.1f},"
      "\"bytes\":%" PRIu64 ",\"kbps\":{\"median\":%.1f,\"min\":%.1f,\"max\":%.1f},\"lag_ms\":{\"p50\":%.0f,\"p99\":%.0f,\"max\":%.0f},"
      "\"wall_s\":%.1f,\"errors\":{%s}}\n",
      json_escape(o.label).c_str(), o.mode_name.c_str(), json_escape(o.url).c_str(), o.n, connected, failed, kept_up,
      kept_up_no_gaps, with_gaps, gaps, percentile(startup, 0.5), percentile(startup, 0.99), percentile(startup, 1.0),
      percentile(first_byte, 0.5), percentile(first_byte, 0.99), bytes, percentile(kbps, 0.5), percentile(kbps, 0.0),
      percentile(kbps, 1.0), percentile(lag, 0.5), percentile(lag, 0.99), percentile(lag, 1.0), wall_s, err_json.c_str());
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{
      "castmesh-loadgen: N RTMP/HTTP-FLV players on one stream, or N real-time RTMP publishers.\n"
      "Prints one JSON line: connected, failed, kept_up (lag < limit at the end), startup_ms\n"
      "(connect to first video keyframe; publishers: to NetStream.Publish.Start), first_byte_ms,\n"
      "bytes, per-client kbit/s, lag_ms, errors. Only 127.0.0.1 is accepted as host."};
  app.add_option("--mode", o.mode_name, "rtmp-play | flv-play | rtmp-publish")
      ->check(CLI::IsMember({"rtmp-play", "flv-play", "rtmp-publish"}));
  app.add_option("--url", o.url,
                 "rtmp://127.0.0.1:PORT/APP/STREAM or http://127.0.0.1:PORT/live/APP/STREAM.flv; "
                 "'{i}' is replaced by the client index (publishers get '-{i}' appended when n > 1)")
      ->required();
  app.add_option("-n", o.n, "number of clients")->check(CLI::Range(1u, 50000u));
  app.add_option("--ramp-per-sec", o.ramp_per_sec, "clients started per second (0 = all at once)")->check(CLI::Range(0.0, 1e6));
  app.add_option("--duration", o.duration_s, "seconds to run after the last client started")->check(CLI::Range(0.0, 86400.0));
  app.add_option("--file", o.file, "FLV file to publish (rtmp-publish; looped, paced by its timestamps)");
  app.add_option("--threads", o.threads, "I/O threads (one io_context each)")->check(CLI::Range(1u, 64u));
  app.add_option("--read-buffer", o.read_buf, "per-client read buffer, bytes")->check(CLI::Range(4096u, 4u << 20));
  app.add_option("--read-pause-ms", o.read_pause_ms,
                 "players sleep this long after each read once the first keyframe arrived (fewer, larger reads; "
                 "the server's socket buffers absorb it)")
      ->check(CLI::Range(0u, 1000u));
  app.add_option("--rcvlowat", o.rcvlowat,
                 "players set SO_RCVLOWAT to this many bytes once the first keyframe arrived, so the kernel wakes "
                 "them per that much data instead of per packet (0 = off)")
      ->check(CLI::Range(0u, 1u << 20));
  app.add_option("--batch-ms", o.batch_ms, "publishers: minimum time between writes, ms")->check(CLI::Range(0u, 1000u));
  app.add_option("--chunk-size", o.chunk_size, "RTMP chunk size announced and used for sending")->check(CLI::Range(128u, 1u << 24));
  app.add_option("--lag-limit", o.lag_limit_s, "a client keeps up if its lag at the end is below this, seconds");
  app.add_option("--ready-file", o.ready_file, "written when every client has been started");
  app.add_option("--keyframe-log", o.keyframe_log,
                 "publisher 0 appends 'index unix_time_s media_ts_ms' after each write that carried a keyframe");
  app.add_option("--label", o.label, "copied into the JSON output");
  app.add_flag("!--no-progress", o.progress, "no progress lines on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.mode = o.mode_name == "flv-play" ? Mode::flv_play : o.mode_name == "rtmp-publish" ? Mode::rtmp_publish : Mode::rtmp_play;
  std::string why;
  auto target = parse_url(o.url, why);
  if (!target) {
    std::fprintf(stderr, "castmesh-loadgen: %s\n", why.c_str());
    return 2;
  }
  if (target->rtmp != (o.mode != Mode::flv_play)) {
    std::fprintf(stderr, "castmesh-loadgen: mode %s needs a%s URL\n", o.mode_name.c_str(), o.mode == Mode::flv_play ? "n http://" : " rtmp://");
    return 2;
  }
  std::optional<FlvFile> file;
  if (o.mode == Mode::rtmp_publish) {
    if (o.file.empty()) {
      std::fprintf(stderr, "castmesh-loadgen: rtmp-publish needs --file\n");
      return 2;
    }
    auto f = FlvFile::load(o.file);
    if (!f.ok()) {
      std::fprintf(stderr, "castmesh-loadgen: %s\n", f.error().message().c_str());
      return 2;
    }
    file = std::move(*f);
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && o.n + 64 > rl.rlim_cur)
      std::fprintf(stderr, "castmesh-loadgen: warning: %u clients but only %llu file descriptors\n", o.n,
                   static_cast<unsigned long long>(rl.rlim_cur));
  }
  KeyframeLog kflog;
  if (!o.keyframe_log.empty()) {
    kflog.f = std::fopen(o.keyframe_log.c_str(), "w");
    if (kflog.f == nullptr) {
      std::fprintf(stderr, "castmesh-loadgen: cannot open %s\n", o.keyframe_log.c_str());
      return 2;
    }
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < o.threads; ++i) workers.push_back(std::make_unique<Worker>());
  std::vector<ClientStats> stats(o.n);
  Progress prog;
  bool done = false;
  const int64_t t0 = mono_us();
  asio::co_spawn(workers[0]->io, spawner(workers, o, *target, file ? &*file : nullptr, stats, prog, kflog.f, done),
                 [](std::exception_ptr e) {
                   if (e) std::rethrow_exception(e);
                 });
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers.size(); ++i) threads.emplace_back([&w = *workers[i]] { w.io.run(); });
  workers[0]->io.run();
  for (auto& t : threads) t.join();
  report(o, stats, (mono_us() - t0) / 1e6);
  return 0;
}

}  // namespace
}  // namespace castmesh::bench

int main(int argc, char** argv) {
  try {
    return castmesh::bench::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "castmesh-loadgen: %s\n", e.what());
    return 1;
  }
}
