#include "proto/ws/room_gateway.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket/stream.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "proto/ws/message_limiter.hpp"
#include "proto/ws/upgrade.hpp"

namespace castmesh::ws {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;

namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kRelaxed = std::memory_order_relaxed;

// The server's socket stays owned by net::HttpServer (it closes it on stop()); the WebSocket
// layer borrows it for the session.
using WsStream = websocket::stream<tcp::socket&>;
}  // namespace

struct GatewayCounters {
  std::atomic<int64_t> connections{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> refused_total{0};
  std::atomic<uint64_t> messages_in_total{0};
  std::atomic<uint64_t> messages_out_total{0};
  std::atomic<uint64_t> bytes_in_total{0};
  std::atomic<uint64_t> bytes_out_total{0};
  std::atomic<uint64_t> rate_limited_total{0};
  std::atomic<uint64_t> flood_closed_total{0};
  std::atomic<uint64_t> too_large_total{0};
  std::atomic<uint64_t> binary_closed_total{0};
  std::atomic<uint64_t> slow_closed_total{0};
  std::atomic<uint64_t> ping_timeouts_total{0};
};

namespace {

/// One upgraded socket: the room::Connection handed to the room layer plus the state its
/// reader (RoomGateway::serve), writer and keeper coroutines share.
///
/// Threads: send()/close() may run on any thread and touch only the fields guarded by `mu_`
/// (then post to `ex_`). Everything else runs on `ex_`, a single-threaded io_context.
class WsSession final : public room::Connection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(asio::any_io_executor ex, const WsConfig& cfg, std::shared_ptr<GatewayCounters> counters,
            Metrics& metrics, std::string remote)
      : ex_(std::move(ex)), cfg_(cfg), counters_(std::move(counters)), metrics_(metrics), remote_(std::move(remote)) {}

  // ---- room::Connection (any thread) ----

  void send(std::shared_ptr<const std::string> json_text) override {
    if (!json_text) return;
    bool wake = false;
    bool overflow = false;
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
      if (queue_.size() >= std::max<uint32_t>(cfg_.send_queue, 1)) {
        // The member does not keep up: drop what it has not received and close it. The
        // queue is emptied so a stalled socket holds no more memory than its kernel buffer.
        overflow = true;
        closing_ = true;
        close_code_ = kClosePolicy;
        close_reason_ = "send queue overflow";
        queue_.clear();
      } else {
        queue_.push_back(std::move(json_text));
        wake = !wake_posted_;
        wake_posted_ = true;
      }
    }
    if (overflow) {
      counters_->slow_closed_total.fetch_add(1, kRelaxed);
      metrics_.slow_subscribers_closed_total.fetch_add(1, kRelaxed);
      spdlog::info("ws {}: send queue overflow ({} messages), closing slow member", remote_, cfg_.send_queue);
      asio::post(ex_, [self = shared_from_this()] { self->on_closing(); });
    } else if (wake) {
      asio::post(ex_, [self = shared_from_this()] { self->on_wake(); });
    }
  }

  void close(uint16_t ws_code, std::string reason) override {
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
      closing_ = true;
      close_code_ = ws_code;
      // A close frame's payload is at most 125 bytes: 2 for the code, the rest for the
      // reason (RFC 6455 5.5). Cut at a byte count; a split UTF-8 sequence is trimmed below.
      if (reason.size() > 123) {
        reason.resize(123);
        while (!reason.empty() && (static_cast<unsigned char>(reason.back()) & 0xC0) == 0x80) reason.pop_back();
        if (!reason.empty() && (static_cast<unsigned char>(reason.back()) & 0x80)) reason.pop_back();
      }
      close_reason_ = std::move(reason);
    }
    asio::post(ex_, [self = shared_from_this()] { self->on_closing(); });
  }

  // ---- io thread ----

  bool closing() {
    std::lock_guard lock(mu_);
    return closing_;
  }

  /// The reader is done: no more sends are queued; the writer and keeper stop.
  void end() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
      queue_.clear();
    }
    ended_ = true;
    if (writer_timer_) writer_timer_->cancel();
    if (keeper_timer_) keeper_timer_->cancel();
  }

  void task_started() { ++tasks_; }
  void task_done() {
    --tasks_;
    if (join_timer_) join_timer_->cancel();
  }

  /// Waits until the writer, the keeper and any ping have finished (they hold `ws`).
  asio::awaitable<void> join() {
    asio::steady_timer timer(ex_);
    join_timer_ = &timer;
    while (tasks_ > 0) {
      timer.expires_at(asio::steady_timer::time_point::max());
      co_await timer.async_wait(kTuple);
    }
    join_timer_ = nullptr;
  }

  void note_received(int64_t now_ms) { last_rx_ms_ = now_ms; }

  /// Sends queued messages back-to-back; when close() was requested, sends the close frame
  /// after them and stops.
  asio::awaitable<void> run_writer(WsStream& ws) {
    asio::steady_timer timer(ex_);
    writer_timer_ = &timer;
    std::vector<std::shared_ptr<const std::string>> batch;
    bool ok = true;
    while (ok && !ended_) {
      bool do_close = false;
      uint16_t code = 0;
      std::string reason;
      {
        std::lock_guard lock(mu_);
        if (queue_.empty() && !closing_) {
          // The next send() posts a wake-up; it cannot run before we wait (single thread).
          wake_posted_ = false;
        } else {
          batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
          queue_.clear();
          if (closing_) {
            do_close = true;
            code = close_code_;
            reason = close_reason_;
          }
        }
      }
      if (batch.empty() && !do_close) {
        timer.expires_at(asio::steady_timer::time_point::max());
        co_await timer.async_wait(kTuple);
        continue;
      }
      for (const auto& m : batch) {
        auto [ec, n] = co_await ws.async_write(asio::buffer(*m), kTuple);
        if (ec || ended_) {
          ok = false;
          break;
        }
        counters_->messages_out_total.fetch_add(1, kRelaxed);
        counters_->bytes_out_total.fetch_add(m->size(), kRelaxed);
      }
      batch.clear();
      if (ok && do_close && !ended_) {
        auto [ec] = co_await ws.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason), kTuple);
        if (ec && ec != websocket::error::closed && ec != asio::error::operation_aborted)
          spdlog::debug("ws {}: close: {}", remote_, ec.message());
        break;
      }
    }
    writer_timer_ = nullptr;
  }

  /// Pings every ping_interval_ms, closes after pong_timeout_ms of silence, and closes the
  /// socket when a requested close has not completed within close_timeout_ms.
  asio::awaitable<void> run_keeper(WsStream& ws) {
    asio::steady_timer timer(ex_);
    keeper_timer_ = &timer;
    const int64_t ping_every = std::max<int64_t>(cfg_.ping_interval_ms, 1);
    const int64_t silence_limit = std::max<int64_t>(cfg_.pong_timeout_ms, 1);
    int64_t next_ping = mono_ms() + ping_every;
    int64_t close_deadline = 0;
    while (!ended_) {
      const int64_t now = mono_ms();
      if (close_deadline == 0 && closing()) close_deadline = now + cfg_.close_timeout_ms;
      if (close_deadline != 0) {
        if (now >= close_deadline) {
          spdlog::debug("ws {}: closing handshake not finished in {} ms, closing socket", remote_,
                        cfg_.close_timeout_ms);
          boost::system::error_code ignored;
          ws.next_layer().close(ignored);
          break;
        }
      } else if (now - last_rx_ms_ >= silence_limit) {
        counters_->ping_timeouts_total.fetch_add(1, kRelaxed);
        spdlog::info("ws {}: nothing received for {} ms, closing", remote_, silence_limit);
        close(kClosePolicy, "ping timeout");
        continue;
      } else if (now >= next_ping) {
        if (!ping_inflight_) {
          ping_inflight_ = true;
          task_started();
          ws.async_ping({}, [self = shared_from_this()](boost::system::error_code) {
            self->ping_inflight_ = false;
            self->task_done();
          });
        }
        next_ping = now + ping_every;
      }
      const int64_t wake_at = close_deadline != 0 ? close_deadline : std::min(next_ping, last_rx_ms_ + silence_limit);
      timer.expires_after(std::chrono::milliseconds(std::max<int64_t>(wake_at - now, 0)));
      co_await timer.async_wait(kTuple);
    }
    keeper_timer_ = nullptr;
  }

 private:
  void on_wake() {
    if (writer_timer_) writer_timer_->cancel();
  }
  void on_closing() {
    if (writer_timer_) writer_timer_->cancel();
    if (keeper_timer_) keeper_timer_->cancel();
  }

  const asio::any_io_executor ex_;
  const WsConfig cfg_;  // a copy: the room layer may keep the connection past the gateway
  const std::shared_ptr<GatewayCounters> counters_;
  Metrics& metrics_;
  const std::string remote_;

  std::mutex mu_;
  std::deque<std::shared_ptr<const std::string>> queue_;  // guarded by mu_
  bool wake_posted_ = false;                              // guarded by mu_
  bool closing_ = false;                                  // guarded by mu_: no more sends
  uint16_t close_code_ = 0;                               // guarded by mu_
  std::string close_reason_;                              // guarded by mu_

  // io thread only
  bool ended_ = false;
  bool ping_inflight_ = false;
  int tasks_ = 0;
  int64_t last_rx_ms_ = 0;
  asio::steady_timer* writer_timer_ = nullptr;
  asio::steady_timer* keeper_timer_ = nullptr;
  asio::steady_timer* join_timer_ = nullptr;
};

bool quiet_error(const boost::system::error_code& ec) {
  return ec == websocket::error::closed || ec == asio::error::operation_aborted || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == beast::error::timeout;
}

}  // namespace

WsConfig ws_config_from(const room::RoomsConfig& rooms) {
  WsConfig c;
  c.max_frame_bytes = static_cast<uint32_t>(std::clamp<int64_t>(rooms.ws_max_frame_bytes, 1, UINT32_MAX));
  c.rate_per_sec = static_cast<uint32_t>(std::clamp<int64_t>(rooms.ws_rate_per_sec, 1, UINT32_MAX / 2));
  c.burst = 2 * c.rate_per_sec;
  c.send_queue = static_cast<uint32_t>(std::clamp<int64_t>(rooms.ws_send_queue, 1, UINT32_MAX));
  return c;
}

RoomGateway::RoomGateway(room::RoomManager& rooms, Authenticator auth, const WsConfig& cfg, Metrics& metrics)
    : owned_(make_room_backend(rooms)),
      rooms_(*owned_),
      auth_(std::move(auth)),
      cfg_(cfg),
      metrics_(metrics),
      counters_(std::make_shared<GatewayCounters>()),
      rate_limited_frame_(std::make_shared<const std::string>(
          R"({"type":"error","code":"rate_limited","message":"too many messages; excess dropped"})")) {}

RoomGateway::RoomGateway(RoomBackend& rooms, Authenticator auth, const WsConfig& cfg, Metrics& metrics)
    : rooms_(rooms),
      auth_(std::move(auth)),
      cfg_(cfg),
      metrics_(metrics),
      counters_(std::make_shared<GatewayCounters>()),
      rate_limited_frame_(std::make_shared<const std::string>(
          R"({"type":"error","code":"rate_limited","message":"too many messages; excess dropped"})")) {}

RoomGateway::~RoomGateway() = default;

net::StreamHandler RoomGateway::handler() {
  return [this](tcp::socket& s, const net::HttpRequest& r) { return serve(s, r); };
}

WsStats RoomGateway::stats() const {
  const auto& c = *counters_;
  WsStats s;
  s.connections = c.connections.load(kRelaxed);
  s.connections_total = c.connections_total.load(kRelaxed);
  s.refused_total = c.refused_total.load(kRelaxed);
  s.messages_in_total = c.messages_in_total.load(kRelaxed);
  s.messages_out_total = c.messages_out_total.load(kRelaxed);
  s.bytes_in_total = c.bytes_in_total.load(kRelaxed);
  s.bytes_out_total = c.bytes_out_total.load(kRelaxed);
  s.rate_limited_total = c.rate_limited_total.load(kRelaxed);
  s.flood_closed_total = c.flood_closed_total.load(kRelaxed);
  s.too_large_total = c.too_large_total.load(kRelaxed);
  s.binary_closed_total = c.binary_closed_total.load(kRelaxed);
  s.slow_closed_total = c.slow_closed_total.load(kRelaxed);
  s.ping_timeouts_total = c.ping_timeouts_total.load(kRelaxed);
  return s;
}

asio::awaitable<void> RoomGateway::serve(tcp::socket& socket, const net::HttpRequest& req) {
  // Cleanup below must still await the writer and keeper (they use the socket) after
  // HttpServer::stop() cancels this coroutine: cancelled awaits return errors, not throw.
  co_await asio::this_coro::throw_if_cancelled(false);

  std::optional<Refusal> refusal = check_upgrade(req);
  if (!refusal && !valid_room_id(req.path_param)) refusal = Refusal{404, "not_found", "no such room"};
  Credentials cred;
  if (!refusal) {
    cred = find_token(req);
    if (cred.source == TokenSource::none) {
      refusal = Refusal{401, "unauthorized", "missing token"};
    } else if (cred.source == TokenSource::cookie && cfg_.cookie_same_origin_only && !same_origin(req)) {
      refusal = Refusal{403, "forbidden", "cross-origin WebSocket with a cookie token"};
    }
  }
  std::optional<room::Identity> who;
  if (!refusal) {
    Result<room::Identity> r = auth_ ? auth_(cred.token) : Result<room::Identity>(Errc::unavailable, "no authenticator");
    if (r) {
      who = std::move(r.value());
    } else if (r.code() == Errc::unavailable || r.code() == Errc::io_error) {
      refusal = refusal_for(r.error());
    } else {
      refusal = Refusal{401, "unauthorized", "invalid or expired token"};
    }
  }

  auto ex = co_await asio::this_coro::executor;
  std::shared_ptr<WsSession> session;
  std::unique_ptr<RoomSession> room;
  if (!refusal) {
    session = std::make_shared<WsSession>(ex, cfg_, counters_, metrics_, req.remote);
    auto attached = rooms_.attach(req.path_param, *who, session);
    if (attached) {
      room = std::move(attached.value());
    } else {
      refusal = refusal_for(attached.error());
    }
  }
  if (refusal) {
    counters_->refused_total.fetch_add(1, kRelaxed);
    spdlog::debug("ws {}: handshake refused {} ({})", req.remote, refusal->status, refusal->message);
    const std::string out = render_refusal(*refusal);
    co_await asio::async_write(socket, asio::buffer(out), kTuple);
    co_return;
  }

  WsStream ws(socket);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "castmesh"); }));
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = std::chrono::milliseconds(cfg_.close_timeout_ms);  // also bounds closing
  timeouts.idle_timeout = websocket::stream_base::none();  // pings are the keeper's job
  timeouts.keep_alive_pings = false;
  ws.set_option(timeouts);
  ws.read_message_max(cfg_.max_frame_bytes);
  ws.auto_fragment(false);
  ws.text(true);

  http::request<http::empty_body> handshake{http::verb::get, req.target, 11};
  for (const auto& [name, value] : req.headers) handshake.insert(name, value);
  auto [aec] = co_await ws.async_accept(handshake, kTuple);
  if (aec) {
    spdlog::debug("ws {}: accept: {}", req.remote, aec.message());
    session->end();
    room.reset();
    co_return;
  }

  counters_->connections_total.fetch_add(1, kRelaxed);
  counters_->connections.fetch_add(1, kRelaxed);
  struct Gauge {
    GatewayCounters& c;
    ~Gauge() { c.connections.fetch_sub(1, kRelaxed); }
  } gauge{*counters_};

  session->note_received(mono_ms());
  ws.control_callback([s = session.get()](websocket::frame_type, beast::string_view) { s->note_received(mono_ms()); });

  auto log_task_end = [session, remote = req.remote](const char* what) {
    return [session, remote, what](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          spdlog::warn("ws {}: {}: {}", remote, what, x.what());
        }
      }
      session->task_done();
    };
  };
  session->task_started();
  asio::co_spawn(ex, session->run_writer(ws), log_task_end("writer"));
  session->task_started();
  asio::co_spawn(ex, session->run_keeper(ws), log_task_end("keeper"));

  MessageLimiter limiter(cfg_.rate_per_sec, cfg_.burst);
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf, kTuple);
    if (ec) {
      if (ec == websocket::error::message_too_big) {
        counters_->too_large_total.fetch_add(1, kRelaxed);
      } else if (!quiet_error(ec)) {
        spdlog::debug("ws {}: read: {}", req.remote, ec.message());
      }
      break;
    }
    const int64_t now = mono_ms();
    session->note_received(now);
    counters_->messages_in_total.fetch_add(1, kRelaxed);
    counters_->bytes_in_total.fetch_add(n, kRelaxed);
    if (!ws.got_text()) {
      if (!session->closing()) counters_->binary_closed_total.fetch_add(1, kRelaxed);
      session->close(kCloseUnsupportedData, "binary frames are not supported");
    } else if (!session->closing()) {
      switch (limiter.admit(now)) {
        case MessageLimiter::Verdict::accept:
          try {
            room->on_message(std::string_view(static_cast<const char*>(buf.data().data()), buf.size()));
          } catch (const std::exception& e) {
            // Unwinding here would destroy `ws` under the writer and keeper: close instead.
            spdlog::error("ws {}: room handler: {}", req.remote, e.what());
            session->close(kCloseInternal, "internal error");
          }
          break;
        case MessageLimiter::Verdict::drop_notify:
          session->send(rate_limited_frame_);
          counters_->rate_limited_total.fetch_add(1, kRelaxed);
          break;
        case MessageLimiter::Verdict::drop:
          counters_->rate_limited_total.fetch_add(1, kRelaxed);
          break;
        case MessageLimiter::Verdict::close:
          counters_->rate_limited_total.fetch_add(1, kRelaxed);
          counters_->flood_closed_total.fetch_add(1, kRelaxed);
          spdlog::info("ws {}: message flood, closing", req.remote);
          session->close(kClosePolicy, "rate limit exceeded");
          break;
      }
    }
    buf.consume(buf.size());
  }

  session->end();
  room.reset();  // detach (presence) before waiting for the socket work to finish
  boost::system::error_code ignored;
  socket.close(ignored);  // unblocks a writer or ping stuck on a peer that does not read
  co_await session->join();
}

}  // namespace castmesh::ws
