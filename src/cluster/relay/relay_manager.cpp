#include "cluster/relay/relay_manager.hpp"

#include <map>
#include <mutex>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "media/format/flv.hpp"

namespace castmesh::cluster {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {
live::StreamKey key_of(const std::string& stream) {
  const auto slash = stream.find('/');
  return live::StreamKey{stream.substr(0, slash), stream.substr(slash + 1)};
}
}  // namespace

/// One relay: everything is touched on the manager's io_context only.
struct Relay {
  explicit Relay(asio::io_context& ctx, std::string s) : stream(std::move(s)), key(key_of(stream)), wake(ctx) {}
  std::string stream;
  live::StreamKey key;
  asio::steady_timer wake;             // retry wait; cancelled on a registry change or stop
  tcp::socket* upstream = nullptr;     // the socket of the pull in progress
  uint64_t upstream_epoch = 0;
  bool stopped = false;
  bool restart = false;                // the registry named a new owner: reconnect now
  bool delivered = false;              // some media reached the local Source
  int64_t release_at_ms = 0;           // 0: players present
  std::unique_ptr<live::Publisher> pub;
};

struct RelayManager::Impl : std::enable_shared_from_this<RelayManager::Impl> {
  Impl(RelayConfig c, live::StreamHub& h, StreamDirectory& d, internode::Signer s, asio::io_context& x, Metrics& m)
      : cfg(c), hub(h), dir(d), signer(std::move(s)), ctx(x), metrics(m), sweeper(x) {}

  RelayConfig cfg;
  live::StreamHub& hub;
  StreamDirectory& dir;
  internode::Signer signer;
  asio::io_context& ctx;
  Metrics& metrics;
  RelayMetrics rm;
  asio::steady_timer sweeper;
  std::map<std::string, std::shared_ptr<Relay>> relays;  // ctx thread only
  mutable std::mutex names_mu;
  std::map<std::string, bool> names;                    // streams relaying (for relaying())
  std::atomic<bool> stopping{false};

  uint64_t local_players(const live::StreamKey& k) const {
    return hub.subscriber_count(k, Proto::rtmp) + hub.subscriber_count(k, Proto::httpflv);
  }

  /// A player arrived or the registry changed: start a relay when the stream is remote.
  void ensure(const std::string& stream) {
    if (stopping) return;
    auto k = key_of(stream);
    if (auto it = relays.find(stream); it != relays.end()) {
      it->second->release_at_ms = 0;
      return;
    }
    Proto p = Proto::rtmp;
    if (hub.is_publishing(k, &p) && p != Proto::relay) return;  // published here
    auto owner = dir.owner(stream);
    if (!owner || owner->node_id == signer.node_id) return;      // nobody (RTMP players wait) or us
    if (local_players(k) == 0) return;
    auto r = std::make_shared<Relay>(ctx, stream);
    relays[stream] = r;
    {
      std::lock_guard lk(names_mu);
      names[stream] = true;
    }
    rm.active.fetch_add(1, std::memory_order_relaxed);
    rm.started_total.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("relay {}: starting, owner {} ({}) epoch {}", stream, owner->node_id, owner->addr, owner->epoch);
    asio::co_spawn(ctx, run(shared_from_this(), r), asio::detached);
  }

  void finish(const std::shared_ptr<Relay>& r) {
    r->pub.reset();
    if (auto it = relays.find(r->stream); it != relays.end() && it->second == r) {
      relays.erase(it);
      std::lock_guard lk(names_mu);
      names.erase(r->stream);
    }
    rm.active.fetch_sub(1, std::memory_order_relaxed);
  }

  void stop_relay(const std::shared_ptr<Relay>& r) {
    r->stopped = true;
    if (r->upstream) {
      boost::system::error_code ignored;
      r->upstream->close(ignored);
    }
    r->wake.cancel();
  }

  void on_change(const std::string& stream, const std::optional<PublisherEntry>& e) {
    auto it = relays.find(stream);
    if (it == relays.end()) {
      if (e) ensure(stream);  // players were waiting for a publisher somewhere
      return;
    }
    auto& r = it->second;
    if (e && e->node_id == signer.node_id) {
      stop_relay(r);  // published here now
      return;
    }
    if (e && e->epoch != r->upstream_epoch) {
      // Failover or takeover: follow the new owner now instead of after the retry delay.
      spdlog::info("relay {}: owner changed to {} (epoch {}), switching", stream, e->node_id, e->epoch);
      r->restart = true;
      if (r->upstream) {
        boost::system::error_code ignored;
        r->upstream->close(ignored);
      }
      r->wake.cancel();
    }
  }

  void on_players_changed(const std::string& stream) {
    auto k = key_of(stream);
    auto it = relays.find(stream);
    if (local_players(k) > 0) {
      if (it != relays.end()) it->second->release_at_ms = 0;
      else ensure(stream);
    } else if (it != relays.end() && it->second->release_at_ms == 0) {
      it->second->release_at_ms = mono_ms() + RelayConfig::ms(cfg.release_delay);
    }
  }

  asio::awaitable<void> sweep_loop(std::shared_ptr<Impl> self) {
    for (;;) {
      sweeper.expires_after(std::chrono::milliseconds(std::clamp<uint32_t>(RelayConfig::ms(cfg.release_delay) / 4, 50, 1000)));
      auto [ec] = co_await sweeper.async_wait(kTuple);
      if (ec || stopping) co_return;
      const int64_t now = mono_ms();
      std::vector<std::shared_ptr<Relay>> expired;
      for (auto& [s, r] : relays)
        if (r->release_at_ms != 0 && now >= r->release_at_ms && local_players(r->key) == 0) expired.push_back(r);
      for (auto& r : expired) {
        spdlog::info("relay {}: no players for {} ms, releasing", r->stream, RelayConfig::ms(cfg.release_delay));
        stop_relay(r);
      }
    }
  }

  /// State of one upstream connection, shared with its health-check coroutine.
  struct Pull {
    explicit Pull(asio::io_context& ctx) : sock(ctx), deadline(ctx) {}
    tcp::socket sock;
    asio::steady_timer deadline;
    int64_t last_media_ms = mono_ms();
    bool timed_out = false;
    bool done = false;
  };

  /// One upstream connection; true when media arrived.
  asio::awaitable<bool> pull(std::shared_ptr<Relay> r, PublisherEntry owner) {
    auto p = std::make_shared<Pull>(ctx);
    Bytes buf;
    const std::string target = "/internal/v1/relay/" + r->stream + ".flv?epoch=" + std::to_string(owner.epoch);
    r->upstream = &p->sock;
    auto opened = co_await internode::async_open_stream(signer, p->sock, owner.addr, target,
                                                        std::chrono::milliseconds(RelayConfig::ms(cfg.establish_timeout)), buf);
    if (!opened || *opened != 200 || r->stopped || r->restart) {
      r->upstream = nullptr;
      if (!opened) spdlog::warn("relay {}: {}", r->stream, opened.error().message());
      else if (*opened != 200) spdlog::warn("relay {}: owner {} answered {}", r->stream, owner.node_id, *opened);
      co_return false;
    }
    media::flv::Demuxer demux;
    std::vector<media::flv::Tag> tags;
    bool got_media = false;
    // Health check: a pull that brings no media for the interval is closed and reconnected.
    asio::co_spawn(
        ctx,
        [p, interval = RelayConfig::ms(cfg.health_check_interval)]() -> asio::awaitable<void> {
          while (!p->done) {
            p->deadline.expires_after(std::chrono::milliseconds(std::max<uint32_t>(interval / 4, 20)));
            co_await p->deadline.async_wait(kTuple);
            if (p->done) co_return;
            if (mono_ms() - p->last_media_ms > int64_t(interval)) {
              p->timed_out = true;
              boost::system::error_code ignored;
              p->sock.close(ignored);
              co_return;
            }
          }
        },
        asio::detached);
    const size_t head = buf.size();
    buf.resize(std::max<size_t>(head, 64 * 1024));
    size_t have = head;
    for (;;) {
      if (have > 0) {
        tags.clear();
        auto st = demux.feed(ByteView(buf.data(), have), tags);
        if (!st) {
          spdlog::warn("relay {}: bad FLV from {}: {}; reconnecting", r->stream, owner.node_id, st.error().message());
          metrics.add(metrics.protocol_errors_total, Proto::relay, 1);
          break;
        }
        for (auto& t : tags) {
          if (!r->pub) {
            auto pub = hub.publish(r->key, Proto::relay, owner.node_id + "@" + owner.addr);
            if (!pub) {
              spdlog::info("relay {}: local publish refused ({}); stopping", r->stream, pub.error().message());
              r->stopped = true;
              break;
            }
            r->pub = std::move(*pub);
          }
          if (t.type != media::PacketType::data) {
            got_media = true;
            r->delivered = true;
            p->last_media_ms = mono_ms();
          }
          r->pub->push(t.type, t.timestamp_ms, std::move(t.data));
        }
      }
      if (r->stopped || r->restart) break;
      auto [ec, n] = co_await p->sock.async_read_some(asio::buffer(buf.data(), buf.size()), kTuple);
      if (ec) {
        if (p->timed_out) {
          spdlog::warn("relay {}: no media from {} for {} ms; reconnecting", r->stream, owner.node_id,
                       RelayConfig::ms(cfg.health_check_interval));
        } else if (!r->stopped && !r->restart) {
          spdlog::info("relay {}: upstream {} ended: {}", r->stream, owner.node_id, ec.message());
        }
        break;
      }
      have = n;
      rm.bytes_total.fetch_add(n, std::memory_order_relaxed);
      metrics.add(metrics.bytes_in_total, Proto::relay, n);
    }
    p->done = true;
    p->deadline.cancel();
    r->upstream = nullptr;
    boost::system::error_code ignored;
    p->sock.close(ignored);
    co_return got_media;
  }

  asio::awaitable<void> run(std::shared_ptr<Impl> self, std::shared_ptr<Relay> r) {
    uint32_t failures = 0;
    bool first = true;
    while (!r->stopped && !stopping) {
      r->restart = false;
      auto owner = dir.owner(r->stream);
      if (owner && owner->node_id == signer.node_id) break;  // published here now
      bool ok = false;
      if (owner) {
        if (!first) rm.reconnects_total.fetch_add(1, std::memory_order_relaxed);
        first = false;
        r->upstream_epoch = owner->epoch;
        ok = co_await pull(r, *owner);
      }
      if (r->stopped || stopping) break;
      // The local publish ends with the upstream: players stay attached and wait; the next
      // upstream starts a new epoch, so they resync on its first keyframe.
      r->pub.reset();
      if (r->restart) continue;
      if (ok) {
        failures = 0;
      } else {
        ++failures;
        rm.failures_total.fetch_add(1, std::memory_order_relaxed);
      }
      if (failures >= cfg.max_retry_attempts) {
        spdlog::warn("relay {}: giving up after {} failed attempts", r->stream, failures);
        if (!r->delivered) hub.close_unpublished(r->key);  // release players that never got media
        break;
      }
      r->wake.expires_after(std::chrono::milliseconds(RelayConfig::ms(cfg.retry_delay)));
      co_await r->wake.async_wait(kTuple);
    }
    spdlog::info("relay {}: stopped", r->stream);
    finish(r);
  }
};

RelayManager::RelayManager(RelayConfig cfg, live::StreamHub& hub, StreamDirectory& directory, internode::Signer signer,
                           asio::io_context& ctx, Metrics& metrics)
    : impl_(std::make_shared<Impl>(cfg, hub, directory, std::move(signer), ctx, metrics)) {}

RelayManager::~RelayManager() { stop(); }

void RelayManager::start() {
  std::weak_ptr<Impl> weak = impl_;
  auto& ctx = impl_->ctx;
  impl_->hub.add_event_listener([weak, &ctx](const live::StreamEvent& ev) {
    if (ev.proto == Proto::relay || ev.proto == Proto::hls) return;
    const bool players = ev.kind == live::StreamEvent::Kind::subscribe || ev.kind == live::StreamEvent::Kind::unsubscribe;
    const bool local_unpublish = ev.kind == live::StreamEvent::Kind::unpublish;
    if (!players && !local_unpublish) return;
    asio::post(ctx, [weak, stream = ev.key.str()] {
      if (auto d = weak.lock()) d->on_players_changed(stream);
    });
  });
  impl_->dir.on_change([weak, &ctx](const std::string& stream, const std::optional<PublisherEntry>& e) {
    asio::post(ctx, [weak, stream, e] {
      if (auto d = weak.lock()) d->on_change(stream, e);
    });
  });
  impl_->hub.set_remote_locator([weak](const live::StreamKey& k) {
    using R = live::StreamHub::Remote;
    auto d = weak.lock();
    if (!d || d->stopping || !d->dir.remote(k.str())) return R::none;
    return d->hub.subscriber_count(k, Proto::httpflv) + d->hub.subscriber_count(k, Proto::rtmp) <
                   d->cfg.max_waiting_players
               ? R::remote
               : R::full;
  });
  asio::co_spawn(ctx, impl_->sweep_loop(impl_), asio::detached);
}

void RelayManager::stop() {
  if (impl_->stopping.exchange(true)) return;
  std::weak_ptr<Impl> weak = impl_;
  asio::post(impl_->ctx, [weak] {
    auto d = weak.lock();
    if (!d) return;
    d->sweeper.cancel();
    for (auto& [s, r] : d->relays) d->stop_relay(r);
  });
}

bool RelayManager::relaying(const std::string& stream) const {
  std::lock_guard lk(impl_->names_mu);
  return impl_->names.count(stream) > 0;
}

const RelayMetrics& RelayManager::metrics() const noexcept { return impl_->rm; }
const RelayConfig& RelayManager::config() const noexcept { return impl_->cfg; }

}  // namespace castmesh::cluster
