#include "proto/httpflv/httpflv_service.hpp"

#include <array>
#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "media/format/flv.hpp"

namespace castmesh::httpflv {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::optional<live::StreamKey> parse_stream_path(std::string_view p) {
  const auto slash = p.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  live::StreamKey key{std::string(p.substr(0, slash)), std::string(p.substr(slash + 1))};
  if (!live::validate_name(key.app) || !live::validate_name(key.stream)) return std::nullopt;
  return key;
}

HttpFlvService::HttpFlvService(const HttpFlvConfig& cfg, live::StreamHub& hub, Metrics& metrics)
    : cfg_(cfg), hub_(hub), metrics_(metrics) {}

net::StreamHandler HttpFlvService::handler() {
  return [this](tcp::socket& s, const net::HttpRequest& r) { return serve(s, r); };
}

namespace {


/// State shared between the writer, the socket watcher and wakers posted by the publisher.
struct PlayerState {
  explicit PlayerState(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;       // wake-up / merge-window timer of the writer
  int64_t write_started_ms = 0;   // 0 when no write is pending
  bool done = false;
};

}  // namespace

asio::awaitable<void> HttpFlvService::serve(tcp::socket& socket, const net::HttpRequest& req) {
  auto key = parse_stream_path(req.path_param);
  if (!key) {
    co_await net::write_json_error(socket, 400, "malformed stream name");
    co_return;
  }
  co_await play(socket, req, *key, Proto::httpflv);
}

asio::awaitable<void> HttpFlvService::play(tcp::socket& socket, const net::HttpRequest& req, const live::StreamKey& key_in,
                                           Proto proto) {
  const live::StreamKey* key = &key_in;
  auto sub_r = hub_.subscribe(*key, proto, /*wait_for_publisher=*/false);
  if (!sub_r) {
    if (sub_r.code() == Errc::not_found)
      co_await net::write_json_error(socket, 404, "stream not found");
    else
      co_await net::write_json_error(socket, 503, "unavailable");
    co_return;
  }

  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<PlayerState>(ex);
  std::unique_ptr<live::Subscription> sub = std::move(sub_r.value());
  sub->set_waker([st, ex] { asio::post(ex, [st] { st->timer.cancel(); }); });

  metrics_.connections[Metrics::idx(proto)].fetch_add(1, std::memory_order_relaxed);
  metrics_.add(metrics_.connections_total, proto, 1);
  struct Gauge {
    Metrics& m;
    Proto p;
    ~Gauge() { m.connections[Metrics::idx(p)].fetch_sub(1, std::memory_order_relaxed); }
  } gauge{metrics_, proto};

  // Watches the socket: a player that closes its side (or sends anything unexpected after
  // the request) ends the session even while the stream is idle. It also enforces the send
  // timeout once per second.
  asio::co_spawn(
      ex,
      [&socket, st]() -> asio::awaitable<void> {
        std::array<char, 512> buf;
        for (;;) {
          auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kTuple);
          if (ec || st->done) break;
        }
        st->done = true;
        st->timer.cancel();
      },
      asio::detached);
  asio::co_spawn(
      ex,
      [&socket, st, timeout = cfg_.send_timeout_ms, &metrics = metrics_, remote = req.remote]() -> asio::awaitable<void> {
        asio::steady_timer tick(co_await asio::this_coro::executor);
        while (!st->done) {
          tick.expires_after(std::chrono::seconds(1));
          co_await tick.async_wait(kTuple);
          if (st->done) break;
          if (st->write_started_ms != 0 && mono_ms() - st->write_started_ms > int64_t(timeout)) {
            spdlog::info("httpflv {}: send timeout ({} ms), closing slow player", remote, timeout);
            metrics.slow_subscribers_closed_total.fetch_add(1, std::memory_order_relaxed);
            st->done = true;
            boost::system::error_code ignored;
            socket.close(ignored);
            st->timer.cancel();
          }
        }
      },
      asio::detached);

  static constexpr char kHead[] =
      "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\n"
      "Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n";
  const auto file_header = media::flv::file_header(true, true);

  std::vector<media::PacketPtr> batch;
  std::vector<media::PacketPtr> inflight;  // keeps payloads alive while a write is pending
  std::vector<std::array<uint8_t, 15>> heads;  // tag header (11) + previous tag size (4)
  std::vector<asio::const_buffer> bufs;
  bool first = true;

  while (!st->done) {
    batch.clear();
    const auto rs = sub->read(batch);
    if (rs == live::Subscription::ReadStatus::ended) break;
    if (rs == live::Subscription::ReadStatus::wait) {
      st->timer.expires_at(asio::steady_timer::time_point::max());
      co_await st->timer.async_wait(kTuple);
      if (st->done) break;
      // The merge window batches later frames; the first data a player waits for goes out at once.
      if (cfg_.merge_window_ms > 0 && !first) {
        st->timer.expires_after(std::chrono::milliseconds(cfg_.merge_window_ms));
        co_await st->timer.async_wait(kTuple);
      }
      continue;
    }
    heads.resize(batch.size());
    bufs.clear();
    if (first) {
      bufs.emplace_back(kHead, sizeof(kHead) - 1);
      bufs.emplace_back(file_header.data(), file_header.size());
      first = false;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& p = *batch[i];
      const auto size = static_cast<uint32_t>(p.payload.size());
      const auto th = media::flv::tag_header(p.type, size, p.dts_ms);
      const auto pts = media::flv::prev_tag_size(size);
      std::copy(th.begin(), th.end(), heads[i].begin());
      std::copy(pts.begin(), pts.end(), heads[i].begin() + 11);
      bufs.emplace_back(heads[i].data(), 11);
      bufs.emplace_back(p.payload.data(), p.payload.size());
      bufs.emplace_back(heads[i].data() + 11, 4);
    }
    inflight.swap(batch);
    st->write_started_ms = mono_ms();
    auto [ec, n] = co_await asio::async_write(socket, bufs, kTuple);
    st->write_started_ms = 0;
    inflight.clear();
    if (ec) break;
    metrics_.add(metrics_.bytes_out_total, proto, n);
  }
  st->done = true;
  sub.reset();  // detach before the state goes away; no waker can run after this
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  st->timer.cancel();
}

}  // namespace castmesh::httpflv
