/// \file castmesh-ws-loadgen: M WebSocket members in one room; one member issues seeks and every
/// member timestamps the resulting `state` frame. Prints one JSON line of results.
///
/// Two server dialects:
///  - `castmesh`: the room protocol of docs/protocol.md (users registered or read from a
///    tokens file, room created by the first user, `POST /api/v1/rooms/{id}/join` per user,
///    `GET /api/v1/rooms/{id}/ws?token=...`).
///  - `socketio`: Engine.IO v4 / Socket.IO v5 over a WebSocket (`/socket.io/?EIO=4&transport=websocket`)
///    against bench/peer/server.js (events `join`, `welcome`, `seek`, `state`).
///
/// One thread, one coroutine per member, all latencies from one steady_clock. Phases:
///  1. latency rounds: the seeker sends `seek` for the current version, the round ends when
///     every live member received the `state` frame of the new version (or after --round-timeout-ms);
///  2. throughput: seeks are pipelined (at most --window versions not yet delivered to every
///     member) for --throughput-s seconds; delivered state frames per second are reported.
/// Connects only to 127.0.0.1.
///
/// Several nodes (--member-ports P0,P1,...): setup runs against --port; member i connects to
/// P[i % n] (member 0, the seeker, to P0, which should be the --port node). Latencies are then
/// also reported per port ("groups") and pooled over every port but P0 ("cross": members on
/// other nodes than the seeker's).

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>

namespace castmesh::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using asio::awaitable;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto kTok = asio::as_tuple(asio::use_awaitable);

/// Command-line options (see main for the flags).
struct Options {
  std::string dialect = "castmesh";
  uint16_t port = 8080;
  uint32_t members = 100;
  uint32_t users = 1;
  std::string tokens_file;
  std::string password = "bench-password-1";
  uint32_t rounds = 50;
  uint32_t interval_ms = 100;
  uint32_t round_timeout_ms = 3000;
  double throughput_s = 5;
  uint32_t window = 4;
  uint32_t concurrency = 64;
  double ramp_per_sec = 1000;
  double settle_s = 2;
  std::string ready_file;
  std::string baseline_file;
  double hold_s = 0;
  std::string label;
  std::vector<uint16_t> member_ports;  ///< empty: every member on `port`
};

double ms_since(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// Nearest-rank percentile of `v` (sorted in place), p in [0, 100]; 0 when empty.
double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  k = std::clamp<size_t>(k, 1, v.size());
  return v[k - 1];
}

/// Integer after the first `"version":` at or after `from` in `s`; nullopt when absent.
std::optional<int64_t> find_version(std::string_view s, size_t from = 0) {
  constexpr std::string_view kKey = "\"version\":";
  const size_t at = s.find(kKey, from);
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + kKey.size();
  while (i < s.size() && s[i] == ' ') ++i;
  int64_t v = 0;
  bool any = false;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + (s[i] - '0');
    any = true;
    ++i;
  }
  return any ? std::optional<int64_t>(v) : std::nullopt;
}

// ---- setup over HTTP (synchronous, before the measured phases) ----

struct HttpReply {
  unsigned status = 0;
  json::value body;
};

/// One HTTP/1.1 request to 127.0.0.1:port with a JSON body; status 0 on transport errors.
HttpReply http_call(uint16_t port, http::verb method, const std::string& target, const std::string& body,
                    const std::string& token) {
  HttpReply out;
  try {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    req.body() = body;
    req.prepare_payload();
    http::write(s, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(s, buf, res);
    out.status = res.result_int();
    boost::system::error_code ec;
    out.body = json::parse(res.body(), ec);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http %s: %s\n", target.c_str(), e.what());
  }
  return out;
}

// ---- the run ----

/// One member connection: a WebSocket plus a serialized write queue.
struct Member {
  explicit Member(asio::io_context& io) : ws(io) {}
  websocket::stream<tcp::socket> ws;
  std::deque<std::string> outq;
  bool writing = false;
  bool alive = false;
  int64_t last_version = -1;
  uint32_t group = 0;  ///< index into Options::member_ports (0 when not given)
};

/// Shared state of the run (single-threaded: no locks).
struct Run {
  Run(asio::io_context& io_, const Options& o_) : io(io_), o(o_), round_done(io_) {}
  asio::io_context& io;
  const Options& o;
  std::string ws_target;        ///< castmesh: ends with "token=", the member's token is appended
  std::vector<std::string> tokens;  ///< castmesh: member i uses tokens[i % size]
  std::string room_name = "bench";
  std::vector<std::unique_ptr<Member>> members;
  uint32_t connected = 0;
  uint32_t alive = 0;
  uint32_t in_flight = 0;  ///< connects in progress (ramp concurrency)
  uint32_t connect_failures = 0;
  uint32_t disconnects = 0;
  int64_t seeker_version = -1;  ///< latest version the seeker saw

  // Measurement: version -> sent time and receipts.
  int64_t base_version = -1;  ///< versions base..base+sent-1 were (or will be) produced by our seeks
  std::vector<Clock::time_point> sent_at;  ///< by version - base - 1 (the version a seek produces)
  std::vector<std::vector<float>> receipts;  ///< latency ms per member receipt, same index
  std::vector<uint32_t> received;  ///< receipts count per index
  /// Several member ports: latency ms per receipt, by [index][group]; empty otherwise.
  std::vector<std::vector<std::vector<float>>> group_receipts;
  uint32_t groups = 1;
  int64_t waiting_index = -1;  ///< latency phase: index whose completion wakes the driver
  uint64_t frames_in = 0;
  asio::steady_timer round_done;
};

void enqueue(Run& r, Member& m, std::string msg);

/// Drains `m->outq` with one outstanding write at a time (Beast allows one writer per stream).
awaitable<void> writer(Run& r, Member* m) {
  while (!m->outq.empty() && m->alive) {
    std::string msg = std::move(m->outq.front());
    m->outq.pop_front();
    auto [ec, n] = co_await m->ws.async_write(asio::buffer(msg), kTok);
    if (ec) break;
  }
  m->writing = false;
}

/// Queues a text frame for member `m`, starting its writer when idle.
void enqueue(Run& r, Member& m, std::string msg) {
  m.outq.push_back(std::move(msg));
  if (!m.writing) {
    m.writing = true;
    asio::co_spawn(r.io, writer(r, &m), asio::detached);
  }
}

/// Records a `state` frame of `version` received by member `m` at `t`.
void on_state(Run& r, const Member& m, int64_t version, Clock::time_point t) {
  if (r.base_version < 0) return;
  const int64_t idx = version - r.base_version - 1;
  if (idx < 0 || idx >= static_cast<int64_t>(r.sent_at.size())) return;
  const float ms = static_cast<float>(ms_since(r.sent_at[idx], t));
  r.receipts[idx].push_back(ms);
  if (r.groups > 1) r.group_receipts[idx][m.group].push_back(ms);
  if (++r.received[idx] >= r.alive && idx == r.waiting_index) r.round_done.cancel();
}

/// The `type` of a castmesh frame: the string after the first `"type":"` within its first 64
/// bytes (broadcast frames may start with `"seq":N` before it); empty when absent.
std::string_view castmesh_frame_type(std::string_view f) {
  constexpr std::string_view kKey = "\"type\":\"";
  const size_t at = f.substr(0, 64).find(kKey);
  if (at == std::string_view::npos) return {};
  const size_t b = at + kKey.size();
  const size_t e = f.find('"', b);
  return e == std::string_view::npos ? std::string_view{} : f.substr(b, e - b);
}

/// Handles one text frame; returns the version of a state/welcome frame, if any.
void handle_frame(Run& r, Member& m, std::string_view f, Clock::time_point t, bool& welcomed) {
  ++r.frames_in;
  if (r.o.dialect == "castmesh") {
    const std::string_view type = castmesh_frame_type(f);
    if (type == "state") {
      if (auto v = find_version(f)) {
        m.last_version = *v;
        on_state(r, m, *v, t);
      }
    } else if (type == "welcome") {
      const size_t st = f.find("\"state\":{");
      if (auto v = find_version(f, st == std::string_view::npos ? 0 : st)) m.last_version = *v;
      welcomed = true;
    } else if (type == "error") {
      const size_t st = f.find("\"state\":{");
      if (st != std::string_view::npos) {
        if (auto v = find_version(f, st)) m.last_version = *v;
      }
      std::fprintf(stderr, "server error frame: %.*s\n", static_cast<int>(std::min<size_t>(f.size(), 200)), f.data());
    }
    return;
  }
  // Engine.IO: "2" ping -> "3" pong; "42[...]" Socket.IO event.
  if (f == "2") {
    enqueue(r, m, "3");
    return;
  }
  if (f.starts_with("42[\"state\"")) {
    if (auto v = find_version(f)) {
      m.last_version = *v;
      on_state(r, m, *v, t);
    }
  } else if (f.starts_with("42[\"welcome\"")) {
    if (auto v = find_version(f)) m.last_version = *v;
    welcomed = true;
  }
}

/// Accounts a member that never got its welcome (once).
void connect_failed(Run& r, uint32_t idx, bool& counted_in_flight, const char* what,
                    const boost::system::error_code& ec) {
  if (!counted_in_flight) return;
  --r.in_flight;
  counted_in_flight = false;
  ++r.connect_failures;
  if (r.connect_failures <= 5) std::fprintf(stderr, "member %u: %s: %s\n", idx, what, ec.message().c_str());
}

/// One member: connect, WebSocket handshake (and Socket.IO connect + join), then read frames
/// until the connection ends, timestamping `state` frames.
awaitable<void> member_main(Run& r, uint32_t idx, std::string target) {
  Member& m = *r.members[idx];
  bool counted_in_flight = true;
  const uint16_t port = r.o.member_ports.empty() ? r.o.port : r.o.member_ports[m.group];
  const tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
  auto [ec] = co_await beast::get_lowest_layer(m.ws).async_connect(server, kTok);
  if (ec) {
    connect_failed(r, idx, counted_in_flight, "connect", ec);
    co_return;
  }
  beast::get_lowest_layer(m.ws).set_option(tcp::no_delay(true));
  m.ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  std::tie(ec) = co_await m.ws.async_handshake("127.0.0.1", target, kTok);
  if (ec) {
    connect_failed(r, idx, counted_in_flight, "handshake", ec);
    co_return;
  }
  m.ws.text(true);
  m.alive = true;
  bool welcomed = false;
  bool sio_open = false;
  beast::flat_buffer buf;
  if (r.o.dialect == "socketio") {
    // Engine.IO open packet "0{...}", then Socket.IO connect "40" -> "40{...}", then join.
    auto [e1, n1] = co_await m.ws.async_read(buf, kTok);
    if (e1) {
      m.alive = false;
      connect_failed(r, idx, counted_in_flight, "eio open", e1);
      co_return;
    }
    buf.consume(buf.size());
    enqueue(r, m, "40");
  }
  for (;;) {
    auto [e, n] = co_await m.ws.async_read(buf, kTok);
    const auto t = Clock::now();
    if (e) {
      m.alive = false;
      if (counted_in_flight) {
        connect_failed(r, idx, counted_in_flight, "read", e);
      } else {
        --r.alive;
        ++r.disconnects;
        if (r.disconnects <= 5) std::fprintf(stderr, "member %u closed: %s\n", idx, e.message().c_str());
        // A dead member can no longer complete a round.
        if (r.waiting_index >= 0 && r.received[r.waiting_index] >= r.alive) r.round_done.cancel();
      }
      co_return;
    }
    std::string_view f(static_cast<const char*>(buf.data().data()), buf.size());
    if (r.o.dialect == "socketio" && !sio_open && f.starts_with("40")) {
      sio_open = true;
      enqueue(r, m, "42[\"join\",{\"room\":\"" + r.room_name + "\"}]");
    } else {
      handle_frame(r, m, f, t, welcomed);
    }
    buf.consume(buf.size());
    if (welcomed && counted_in_flight) {
      counted_in_flight = false;
      --r.in_flight;
      ++r.connected;
      ++r.alive;
    }
  }
}

std::string seek_msg(const Options& o, int64_t version, double pos) {
  char b[160];
  if (o.dialect == "castmesh") {
    std::snprintf(b, sizeof b, "{\"type\":\"seek\",\"version\":%lld,\"position_s\":%.3f}",
                  static_cast<long long>(version), pos);
  } else {
    std::snprintf(b, sizeof b, "42[\"seek\",{\"version\":%lld,\"position_s\":%.3f}]",
                  static_cast<long long>(version), pos);
  }
  return b;
}

/// Registers a new seek producing version `produced`; returns its index.
int64_t add_seek(Run& r, int64_t produced) {
  const int64_t idx = produced - r.base_version - 1;
  if (idx != static_cast<int64_t>(r.sent_at.size())) return -1;
  r.sent_at.push_back(Clock::now());
  r.receipts.emplace_back();
  r.receipts.back().reserve(r.members.size());
  r.received.push_back(0);
  if (r.groups > 1) r.group_receipts.emplace_back(r.groups);
  return idx;
}

awaitable<void> sleep_ms(asio::io_context& io, double ms) {
  asio::steady_timer t(io, std::chrono::microseconds(static_cast<int64_t>(ms * 1000)));
  co_await t.async_wait(kTok);
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/// Per-round latencies of one set of members (a port, or every port but the seeker's).
struct GroupRounds {
  std::vector<double> first, median, last;  ///< ms from seek written, one entry per complete round

  /// Adds one round's receipts (ms; unsorted, consumed). Nothing when `v` is empty.
  void add(std::vector<double>& v) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    first.push_back(v.front());
    median.push_back(percentile(v, 50));
    last.push_back(v.back());
  }

  /// {"rounds","first_ms_p50","median_receipt_ms_p50","median_receipt_ms_p99","last_ms_p50","last_ms_p99","last_ms_max"}.
  json::object to_json() const {
    auto f = first, m = median, l = last;
    json::object o;
    o["rounds"] = l.size();
    o["first_ms_p50"] = std::round(percentile(f, 50) * 100) / 100;
    o["median_receipt_ms_p50"] = std::round(percentile(m, 50) * 100) / 100;
    o["median_receipt_ms_p99"] = std::round(percentile(m, 99) * 100) / 100;
    o["last_ms_p50"] = std::round(percentile(l, 50) * 100) / 100;
    o["last_ms_p99"] = std::round(percentile(l, 99) * 100) / 100;
    o["last_ms_max"] = l.empty() ? 0.0 : std::round(l.back() * 100) / 100;
    return o;
  }
};

/// Ramps the members, runs the latency rounds and the throughput phase, fills `result` (JSON).
awaitable<void> driver(Run& r, std::string& result) {
  const Options& o = r.o;
  if (!o.baseline_file.empty()) {  // setup done, nothing connected yet: the idle RSS sample point
    std::ofstream(o.baseline_file) << "0\n";
    co_await sleep_ms(r.io, o.hold_s * 1000);
  }
  const auto t_ramp0 = Clock::now();
  // Ramp: start members at ramp_per_sec with at most `concurrency` connecting at once.
  const double gap_ms = 1000.0 / std::max(1.0, o.ramp_per_sec);
  for (uint32_t i = 0; i < o.members; ++i) {
    while (r.in_flight >= o.concurrency) co_await sleep_ms(r.io, 1);
    ++r.in_flight;
    std::string target = r.ws_target;
    if (!r.tokens.empty()) target += r.tokens[i % r.tokens.size()];
    asio::co_spawn(r.io, member_main(r, i, std::move(target)), asio::detached);
    const double due = gap_ms * (i + 1);
    const double now = ms_since(t_ramp0, Clock::now());
    if (due > now) co_await sleep_ms(r.io, due - now);
  }
  while (r.in_flight > 0) co_await sleep_ms(r.io, 5);
  const double ramp_ms = ms_since(t_ramp0, Clock::now());
  std::fprintf(stderr, "connected %u/%u in %.0f ms (failures %u)\n", r.connected, o.members, ramp_ms, r.connect_failures);
  co_await sleep_ms(r.io, o.settle_s * 1000);
  if (!o.ready_file.empty()) {
    std::ofstream(o.ready_file) << r.connected << "\n";
    co_await sleep_ms(r.io, o.hold_s * 1000);
  }
  Member& seeker = *r.members[0];
  if (!seeker.alive) {
    result = "{\"error\":\"seeker not connected\"}";
    co_return;
  }
  r.base_version = seeker.last_version;
  int64_t next_version = r.base_version;  // version the next seek is issued against
  double pos = 10;

  // Phase 1: sequential latency rounds.
  std::vector<double> last_ms, p50_ms;
  std::vector<GroupRounds> by_group(r.groups);  // per port
  GroupRounds cross;                            // every port but the seeker's
  uint32_t incomplete = 0;
  uint64_t missing = 0;
  const double cpu0 = cpu_seconds();
  const auto lat0 = Clock::now();
  for (uint32_t k = 0; k < o.rounds; ++k) {
    const int64_t idx = add_seek(r, next_version + 1);
    r.waiting_index = idx;
    enqueue(r, seeker, seek_msg(o, next_version, pos += 1.5));
    r.round_done.expires_after(std::chrono::milliseconds(o.round_timeout_ms));
    if (r.received[idx] < r.alive) co_await r.round_done.async_wait(kTok);
    r.waiting_index = -1;
    auto& rc = r.receipts[idx];
    if (r.received[idx] < r.alive || rc.empty()) {
      ++incomplete;
      missing += r.alive - std::min(r.alive, r.received[idx]);
    } else {
      std::vector<double> v(rc.begin(), rc.end());
      last_ms.push_back(*std::max_element(v.begin(), v.end()));
      p50_ms.push_back(percentile(v, 50));
      if (r.groups > 1) {
        std::vector<double> pooled;
        for (uint32_t g = 0; g < r.groups; ++g) {
          const auto& gr = r.group_receipts[idx][g];
          std::vector<double> gv(gr.begin(), gr.end());
          if (g > 0) pooled.insert(pooled.end(), gv.begin(), gv.end());
          by_group[g].add(gv);
        }
        cross.add(pooled);
      }
      ++next_version;
    }
    if (r.o.interval_ms) co_await sleep_ms(r.io, o.interval_ms);
    // The seeker's view is authoritative (a lost or refused seek leaves the version unchanged).
    if (next_version != seeker.last_version) next_version = seeker.last_version;
    // Versions must stay contiguous with our index; resync the base if the server diverged.
    if (next_version != r.base_version + static_cast<int64_t>(r.sent_at.size())) {
      std::fprintf(stderr, "version resync at round %u\n", k);
      r.base_version = next_version;
      r.sent_at.clear();
      r.receipts.clear();
      r.received.clear();
      r.group_receipts.clear();
    }
  }
  const double lat_cpu = cpu_seconds() - cpu0;
  const double lat_wall = ms_since(lat0, Clock::now()) / 1000;

  // Phase 2: pipelined seeks, at most `window` versions not yet delivered to everyone.
  uint64_t tp_frames = 0;
  double tp_wall = 0, tp_cpu = 0;
  uint64_t tp_seeks = 0, tp_complete = 0;
  if (o.throughput_s > 0) {
    co_await sleep_ms(r.io, 200);
    r.base_version = seeker.last_version;
    r.sent_at.clear();
    r.receipts.clear();
    r.received.clear();
    r.group_receipts.clear();
    next_version = r.base_version;
    size_t oldest = 0;  // index of the oldest seek not yet fully delivered
    const double c0 = cpu_seconds();
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::microseconds(static_cast<int64_t>(o.throughput_s * 1e6));
    while (Clock::now() < end) {
      while (oldest < r.sent_at.size() && r.received[oldest] >= r.alive) ++oldest;
      if (r.sent_at.size() - oldest < o.window) {
        add_seek(r, next_version + 1);
        enqueue(r, seeker, seek_msg(o, next_version, pos += 0.5));
        ++next_version;
        continue;
      }
      const size_t idx = oldest;
      r.waiting_index = static_cast<int64_t>(idx);
      r.round_done.expires_after(std::chrono::milliseconds(o.round_timeout_ms));
      if (r.received[idx] < r.alive) {
        auto [e] = co_await r.round_done.async_wait(kTok);
        if (!e) {  // timed out: give up on this version
          ++oldest;
        }
      }
      r.waiting_index = -1;
    }
    // Drain what is in flight (bounded).
    const auto drain_end = Clock::now() + std::chrono::milliseconds(o.round_timeout_ms);
    while (Clock::now() < drain_end) {
      while (oldest < r.sent_at.size() && r.received[oldest] >= r.alive) ++oldest;
      if (oldest >= r.sent_at.size()) break;
      co_await sleep_ms(r.io, 1);
    }
    tp_wall = ms_since(t0, Clock::now()) / 1000;
    tp_cpu = cpu_seconds() - c0;
    tp_seeks = r.sent_at.size();
    for (size_t i = 0; i < r.received.size(); ++i) {
      tp_frames += r.received[i];
      if (r.received[i] >= r.alive) ++tp_complete;
    }
  }

  std::vector<double> l = last_ms, p = p50_ms;
  const double l50 = percentile(l, 50), l99 = percentile(l, 99);
  const double lmax = l.empty() ? 0.0 : l.back(), lmin = l.empty() ? 0.0 : l.front();
  const double p50 = percentile(p, 50);
  char b[2048];
  std::snprintf(
      b, sizeof b,
      "{\"label\":\"%s\",\"dialect\":\"%s\",\"members\":%u,\"users\":%u,\"connected\":%u,\"connect_failures\":%u,"
      "\"ramp_ms\":%.0f,\"rounds\":%u,\"rounds_complete\":%zu,\"rounds_incomplete\":%u,\"missing_receipts\":%llu,"
      "\"last_ms_p50\":%.2f,\"last_ms_p99\":%.2f,\"last_ms_max\":%.2f,\"last_ms_min\":%.2f,"
      "\"median_receipt_ms_p50\":%.2f,\"latency_phase_client_cpu_pct\":%.1f,"
      "\"tp_seconds\":%.2f,\"tp_seeks\":%llu,\"tp_seeks_complete\":%llu,\"tp_msgs_per_sec\":%.0f,"
      "\"tp_client_cpu_pct\":%.1f,\"disconnects\":%u,\"alive_at_end\":%u}",
      o.label.c_str(), o.dialect.c_str(), o.members, o.dialect == "castmesh" ? o.users : 0, r.connected,
      r.connect_failures, ramp_ms, o.rounds, last_ms.size(), incomplete, static_cast<unsigned long long>(missing),
      l50, l99, lmax, lmin, p50,
      lat_wall > 0 ? 100 * lat_cpu / lat_wall : 0.0, tp_wall, static_cast<unsigned long long>(tp_seeks),
      static_cast<unsigned long long>(tp_complete), tp_wall > 0 ? static_cast<double>(tp_frames) / tp_wall : 0.0,
      tp_wall > 0 ? 100 * tp_cpu / tp_wall : 0.0, r.disconnects, r.alive);
  result = b;
  // Additions (kept out of the fixed-size line above): events/s and the per-port breakdown.
  json::object extra;
  extra["tp_events_per_sec"] = tp_wall > 0 ? std::round(static_cast<double>(tp_complete) / tp_wall) : 0.0;
  if (r.groups > 1) {
    json::array groups;
    for (uint32_t g = 0; g < r.groups; ++g) {
      json::object go = by_group[g].to_json();
      go["port"] = o.member_ports[g];
      uint32_t n = 0;
      for (const auto& m : r.members) n += m->group == g ? 1 : 0;
      go["members"] = n;
      groups.push_back(std::move(go));
    }
    extra["groups"] = std::move(groups);
    extra["local"] = by_group[0].to_json();
    extra["cross"] = cross.to_json();
  }
  std::string tail = json::serialize(extra);  // "{...}"
  result.pop_back();
  result += "," + tail.substr(1);
}

/// castmesh setup: tokens (registered or from a file), a room, memberships. Returns the ws target.
std::optional<std::string> castmesh_setup(const Options& o) {
  std::vector<std::string> tokens;
  if (!o.tokens_file.empty()) {
    std::ifstream in(o.tokens_file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) tokens.push_back(line);
    }
  } else {
    const long pid = static_cast<long>(getpid());
    for (uint32_t i = 0; i < o.users; ++i) {
      json::object b;
      b["username"] = "bench" + std::to_string(pid) + "u" + std::to_string(i);
      b["password"] = o.password;
      auto rep = http_call(o.port, http::verb::post, "/api/v1/auth/register", json::serialize(b), "");
      if (rep.status / 100 != 2 || !rep.body.is_object() || !rep.body.as_object().contains("token")) {
        std::fprintf(stderr, "register failed: %u %s\n", rep.status, json::serialize(rep.body).c_str());
        return std::nullopt;
      }
      tokens.emplace_back(rep.body.at("token").as_string());
    }
  }
  if (tokens.empty()) return std::nullopt;
  auto created = http_call(o.port, http::verb::post, "/api/v1/rooms", R"({"name":"bench"})", tokens[0]);
  if (created.status != 201) {
    std::fprintf(stderr, "create room failed: %u %s\n", created.status, json::serialize(created.body).c_str());
    return std::nullopt;
  }
  const json::value& idv = created.body.at("room").at("id");
  const std::string id = idv.is_string() ? std::string(idv.as_string()) : json::serialize(idv);
  for (size_t i = 1; i < tokens.size(); ++i) {
    auto j = http_call(o.port, http::verb::post, "/api/v1/rooms/" + id + "/join", "{}", tokens[i]);
    if (j.status / 100 != 2) {
      std::fprintf(stderr, "join failed: %u %s\n", j.status, json::serialize(j.body).c_str());
      return std::nullopt;
    }
  }
  // Returned as "target\ntoken\ntoken...": members are assigned tokens round-robin.
  std::string all;
  for (auto& t : tokens) all += t + "\n";
  return "/api/v1/rooms/" + id + "/ws?token=\n" + all;
}

}  // namespace
}  // namespace castmesh::bench

int main(int argc, char** argv) {
  using namespace castmesh::bench;
  Options o;
  CLI::App app{"castmesh-ws-loadgen: room WebSocket fan-out latency (castmesh or Socket.IO peer)"};
  app.add_option("--dialect", o.dialect, "castmesh | socketio")->check(CLI::IsMember({"castmesh", "socketio"}));
  app.add_option("--port", o.port, "server port on 127.0.0.1")->required();
  app.add_option("-m,--members", o.members, "WebSocket members in the room");
  app.add_option("--users", o.users, "castmesh: distinct users registered; members use them round-robin");
  app.add_option("--tokens-file", o.tokens_file, "castmesh: bearer tokens, one per line (skips registration)");
  app.add_option("--rounds", o.rounds, "latency rounds");
  app.add_option("--interval-ms", o.interval_ms, "pause between latency rounds, ms");
  app.add_option("--round-timeout-ms", o.round_timeout_ms, "a round not delivered to everyone by then is incomplete");
  app.add_option("--throughput-s", o.throughput_s, "pipelined-seek phase length, s (0 = skip)");
  app.add_option("--window", o.window, "throughput phase: seeks not yet delivered to every member");
  app.add_option("--concurrency", o.concurrency, "connects in progress at once");
  app.add_option("--ramp-per-sec", o.ramp_per_sec, "members started per second");
  app.add_option("--settle-s", o.settle_s, "pause after the ramp, s");
  app.add_option("--ready-file", o.ready_file, "written (connected count) after the ramp and settle");
  app.add_option("--baseline-file", o.baseline_file, "written after setup, before the first connect");
  app.add_option("--hold-s", o.hold_s, "pause after writing --baseline-file / --ready-file (for RSS sampling), s");
  app.add_option("--label", o.label, "copied into the JSON");
  std::string member_ports;
  app.add_option("--member-ports", member_ports,
                 "P0,P1,...: member i connects to P[i % n] (P0 = the seeker's node); latencies also per port");
  CLI11_PARSE(app, argc, argv);
  if (o.members < 1) return 2;
  for (size_t a = 0; a < member_ports.size();) {
    size_t e = member_ports.find(',', a);
    if (e == std::string::npos) e = member_ports.size();
    const std::string one = member_ports.substr(a, e - a);
    const long v = std::strtol(one.c_str(), nullptr, 10);
    if (v < 1 || v > 65535) {
      std::fprintf(stderr, "--member-ports: bad port '%s'\n", one.c_str());
      return 2;
    }
    o.member_ports.push_back(static_cast<uint16_t>(v));
    a = e + 1;
  }

  std::vector<std::string> tokens;
  std::string ws_base;
  if (o.dialect == "castmesh") {
    auto setup = castmesh_setup(o);
    if (!setup) {
      std::printf("{\"label\":\"%s\",\"error\":\"setup failed\"}\n", o.label.c_str());
      return 1;
    }
    const size_t nl = setup->find('\n');
    ws_base = setup->substr(0, nl);
    std::string rest = setup->substr(nl + 1);
    for (size_t a = 0; a < rest.size();) {
      size_t e = rest.find('\n', a);
      tokens.push_back(rest.substr(a, e - a));
      a = e + 1;
    }
  } else {
    ws_base = "/socket.io/?EIO=4&transport=websocket";
  }

  boost::asio::io_context io(1);
  Run r(io, o);
  r.ws_target = ws_base;
  r.tokens = std::move(tokens);
  r.groups = o.member_ports.empty() ? 1 : static_cast<uint32_t>(o.member_ports.size());
  for (uint32_t i = 0; i < o.members; ++i) {
    r.members.push_back(std::make_unique<Member>(io));
    r.members.back()->group = i % r.groups;
  }
  std::string result;
  boost::asio::co_spawn(io, driver(r, result), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "driver: %s\n", ex.what());
      }
    }
    io.stop();
  });
  io.run();
  std::printf("%s\n", result.c_str());
  std::fflush(stdout);
  return result.empty() || result.find("\"error\"") != std::string::npos ? 1 : 0;
}
