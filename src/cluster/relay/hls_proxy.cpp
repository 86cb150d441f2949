#include "cluster/relay/hls_proxy.hpp"

#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"

namespace castmesh::cluster {

namespace asio = boost::asio;

/// One upstream fetch in progress and the requests waiting for it. Guarded by the proxy's mutex.
struct HlsProxy::Flight {
  bool done = false;
  Result<Blob> result = Blob{};
  std::vector<std::shared_ptr<asio::steady_timer>> waiters;
};

HlsProxy::HlsProxy(HlsProxyConfig cfg, internode::Signer signer) : cfg_(cfg), signer_(std::move(signer)) {}

HlsProxy::~HlsProxy() = default;

void HlsProxy::store_locked(const std::string& key, Cached c) {
  const size_t size = c.body ? c.body->size() : 0;
  if (auto it = cache_.find(key); it != cache_.end()) {
    bytes_ -= it->second.body ? it->second.body->size() : 0;
    it->second = std::move(c);
  } else {
    cache_.emplace(key, std::move(c));
    order_.push_back(key);
  }
  bytes_ += size;
  // Oldest first: live segments are read in order, so the oldest are the ones players are done with.
  while (bytes_ > cfg_.max_bytes && !order_.empty()) {
    auto it = cache_.find(order_.front());
    order_.pop_front();
    if (it == cache_.end()) continue;
    bytes_ -= it->second.body ? it->second.body->size() : 0;
    cache_.erase(it);
  }
  // Keys of replaced playlists stay once in order_; bound the deque by the map's size.
  if (order_.size() > 2 * cache_.size() + 64) {
    std::deque<std::string> fresh;
    for (auto& k : order_)
      if (cache_.count(k)) fresh.push_back(k);
    order_.swap(fresh);
  }
}

asio::awaitable<Result<HlsProxy::Blob>> HlsProxy::get(const PublisherEntry& owner, std::string path, bool playlist) {
  const std::string key = owner.node_id + "#" + std::to_string(owner.epoch) + "/" + path;
  const int64_t now = mono_ms();
  std::shared_ptr<Flight> flight;
  std::shared_ptr<asio::steady_timer> wait;
  {
    std::lock_guard lk(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      const bool fresh = !it->second.playlist && it->second.body
                             ? true
                             : now - it->second.fetched_ms < int64_t(cfg_.playlist_ttl_ms);
      if (fresh) {
        m_.hits.fetch_add(1, std::memory_order_relaxed);
        co_return it->second.body;
      }
    }
    if (auto it = flights_.find(key); it != flights_.end()) {
      flight = it->second;
      wait = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
      wait->expires_after(std::chrono::milliseconds(cfg_.fetch_timeout_ms + 1000));
      flight->waiters.push_back(wait);
    } else {
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
    }
  }
  if (wait) {
    // The fetcher cancels the timer through this executor, which runs nothing else until this
    // coroutine suspends here, so the wake-up cannot be lost.
    co_await wait->async_wait(asio::as_tuple(asio::use_awaitable));
    std::lock_guard lk(mu_);
    if (!flight->done) co_return Error{Errc::unavailable, "HLS fetch from " + owner.node_id + " timed out"};
    m_.hits.fetch_add(1, std::memory_order_relaxed);
    co_return flight->result;
  }

  m_.misses.fetch_add(1, std::memory_order_relaxed);
  // Named, not a temporary of the co_await expression (see app::Server::Impl::local_hls).
  const std::string target = "/internal/v1/hls/" + path;
  auto reply = co_await internode::async_fetch(signer_, owner.addr, target,
                                               std::chrono::milliseconds(cfg_.fetch_timeout_ms), cfg_.max_object_bytes);
  Result<Blob> result = Blob{};
  if (!reply) {
    result = Error{Errc::unavailable, reply.error().message()};
  } else if (reply->status == 200) {
    m_.bytes_fetched.fetch_add(reply->body.size(), std::memory_order_relaxed);
    result = std::make_shared<const Bytes>(std::move(reply->body));
  } else if (reply->status == 404) {
    result = Blob{};
  } else {
    result = Error{Errc::unavailable, "HLS fetch from " + owner.node_id + ": HTTP " + std::to_string(reply->status)};
  }
  if (!result) m_.errors.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::shared_ptr<asio::steady_timer>> waiters;
  {
    std::lock_guard lk(mu_);
    // Stale if error: an owner that cannot be reached (it died; its successor has no playlist
    // yet) still has its last playlist served from the cache, so players keep their place.
    if (!result) {
      if (auto it = cache_.find(key); it != cache_.end() && it->second.body) {
        m_.stale_served.fetch_add(1, std::memory_order_relaxed);
        result = it->second.body;
      }
    }
    // A 404 is kept only as long as a playlist, so a segment cut a moment later is found.
    if (result && reply) store_locked(key, Cached{*result, mono_ms(), playlist || !*result});
    flight->done = true;
    flight->result = result;
    waiters.swap(flight->waiters);
    flights_.erase(key);
  }
  for (auto& t : waiters) asio::post(t->get_executor(), [t] { t->cancel(); });
  co_return result;
}

size_t HlsProxy::objects() const {
  std::lock_guard lk(mu_);
  return cache_.size();
}

size_t HlsProxy::bytes() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

}  // namespace castmesh::cluster
