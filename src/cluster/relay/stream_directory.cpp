#include "cluster/relay/stream_directory.hpp"

#include <openssl/rand.h>

#include <boost/json.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "net/digest.hpp"

namespace castmesh::cluster {

namespace json = boost::json;

std::string stream_topic(const std::string& stream) { return "stream:" + stream; }

namespace {

std::string random_generation() {
  unsigned char b[8];
  if (RAND_bytes(b, sizeof b) != 1) {
    // Not a secret: uniqueness per node is all that matters; fall back to the clock.
    const auto t = static_cast<uint64_t>(mono_ms()) ^ static_cast<uint64_t>(wall_ms());
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(t >> (8 * i));
  }
  return net::to_hex(b, sizeof b);
}

}  // namespace

StreamDirectory::StreamDirectory(StreamDirectoryConfig cfg, PublisherRegistry& registry, live::StreamHub& hub,
                                 EventBus& bus)
    : cfg_(std::move(cfg)), registry_(registry), hub_(hub), bus_(bus) {}

StreamDirectory::~StreamDirectory() { stop(); }

void StreamDirectory::set_node_alive(std::function<bool(const std::string&)> f) { node_alive_ = std::move(f); }

void StreamDirectory::on_change(std::function<void(const std::string&, const std::optional<PublisherEntry>&)> f) {
  changed_ = std::move(f);
}

void StreamDirectory::set_continuation(std::function<std::string(const live::StreamKey&)> get,
                                       std::function<void(const live::StreamKey&, const std::string&)> apply) {
  cont_get_ = std::move(get);
  cont_apply_ = std::move(apply);
}

bool StreamDirectory::alive(const std::string& node_id) const {
  return node_id == cfg_.node_id || !node_alive_ || node_alive_(node_id);
}

void StreamDirectory::start() {
  if (started_) return;
  started_ = true;
  hub_.add_event_listener([this](const live::StreamEvent& ev) { on_stream_event(ev); });
  bus_sub_ = bus_.subscribe("stream:", [this](const Event& ev) { on_bus_event(ev); });
  // Entries this node id held in an earlier life are stale: nothing publishes them any more.
  post([this] {
    auto removed = registry_.remove_node(cfg_.node_id);
    if (removed && !removed->empty()) {
      spdlog::info("streams: cleared {} stale registry entries of this node", removed->size());
      for (const auto& e : *removed) announce("release", e);
    }
    reload_now();
  });
  worker_ = std::thread([this] { run(); });
}

void StreamDirectory::stop() {
  if (!started_) return;
  {
    std::lock_guard lk(q_mu_);
    if (stopping_) return;
    // Unpublish at shutdown: release what we hold so other nodes see the streams end at once.
    queue_.push_back([this] {
      std::map<std::string, Held> held;
      {
        std::lock_guard lk2(mu_);
        held = held_;
      }
      for (auto& [s, h] : held) {
        (void)registry_.release(h.entry);
        announce("release", h.entry);
      }
    });
    stopping_ = true;
  }
  q_cv_.notify_all();
  bus_sub_.reset();
  if (worker_.joinable()) worker_.join();
}

void StreamDirectory::post(std::function<void()> task) {
  {
    std::lock_guard lk(q_mu_);
    if (stopping_) return;
    queue_.push_back(std::move(task));
  }
  q_cv_.notify_one();
}

void StreamDirectory::run() {
  int64_t next_refresh = mono_ms() + cfg_.refresh_interval_ms;
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lk(q_mu_);
      q_cv_.wait_until(lk, std::chrono::steady_clock::now() + std::chrono::milliseconds(
                                                                   std::max<int64_t>(1, next_refresh - mono_ms())),
                       [this] { return !queue_.empty() || stopping_; });
      if (!queue_.empty()) {
        task = std::move(queue_.front());
        queue_.pop_front();
      } else if (stopping_) {
        return;
      }
    }
    if (task) {
      task();
      continue;  // drain the queue first (stop's release task runs before the exit)
    }
    if (mono_ms() >= next_refresh) {
      next_refresh = mono_ms() + cfg_.refresh_interval_ms;
      refresh_all();
      reload_now();
    }
  }
}

void StreamDirectory::on_stream_event(const live::StreamEvent& ev) {
  if (ev.proto == Proto::relay) return;  // a relay republishes the owner's stream: never claimed
  if (ev.kind == live::StreamEvent::Kind::publish) {
    live::StreamKey key = ev.key;
    const uint64_t epoch = ev.epoch;
    post([this, key, epoch] { claim(key, epoch); });
  } else if (ev.kind == live::StreamEvent::Kind::unpublish) {
    const std::string stream = ev.key.str();
    const uint64_t epoch = ev.epoch;
    post([this, stream, epoch] { release(stream, epoch); });
  }
}

std::string StreamDirectory::codecs_of(const live::StreamKey& key) const {
  auto st = hub_.stats(key);
  return st ? codec_list(st->video_codec, st->audio_codec) : std::string();
}

void StreamDirectory::claim(const live::StreamKey& key, uint64_t local_epoch) {
  const std::string stream = key.str();
  Proto proto = Proto::rtmp;
  if (!hub_.is_publishing(key, &proto) || proto == Proto::relay) return;  // already gone
  PublisherEntry want;
  want.stream = stream;
  want.node_id = cfg_.node_id;
  want.addr = cfg_.addr;
  want.generation = random_generation();
  want.started_ms = wall_ms();
  want.codecs = codecs_of(key);
  auto r = registry_.claim(want, ClaimMode::exclusive, std::nullopt, cfg_.lease_ms);
  // A held entry of ours (stale), of a node that is not alive, or any with takeover enabled is
  // replaced, naming exactly the entry seen so a concurrent change is not overwritten.
  for (int attempt = 0; r && !r->won && attempt < 3; ++attempt) {
    const auto& cur = r->entry;
    const bool ours = cur.node_id == cfg_.node_id;
    if (!ours && !cfg_.publish_takeover && alive(cur.node_id)) break;
    spdlog::info("streams: {} taking over {} from node {} (epoch {}): {}", cfg_.node_id, stream, cur.node_id, cur.epoch,
                 ours ? "stale entry of this node" : cfg_.publish_takeover ? "live.publish_takeover" : "node not alive");
    r = registry_.claim(want, ClaimMode::takeover, cur, cfg_.lease_ms);
    if (r && r->won) {
      std::lock_guard lk(mu_);
      ++stats_.takeovers;
    }
  }
  if (!r) {
    spdlog::warn("streams: cannot claim {} in the registry ({}); publishing locally, retrying", stream,
                 r.error().message());
    std::lock_guard lk(mu_);
    ++stats_.registry_errors;
    pending_[stream] = local_epoch;
    return;
  }
  if (!r->won) {
    {
      std::lock_guard lk(mu_);
      ++stats_.claims_lost;
    }
    spdlog::info("streams: publish of {} refused: node {} publishes it (epoch {})", stream, r->entry.node_id,
                 r->entry.epoch);
    hub_.revoke_publisher(key, local_epoch, "stream already publishing on node " + r->entry.node_id);
    apply(stream, r->entry, false);
    return;
  }
  {
    std::lock_guard lk(mu_);
    ++stats_.claims_won;
    held_[stream] = Held{r->entry, local_epoch};
    pending_.erase(stream);
  }
  // The publish may have ended while the claim ran: the queued release then drops it.
  spdlog::info("streams: {} owns {} (epoch {})", cfg_.node_id, stream, r->entry.epoch);
  if (!r->continuation.empty() && cont_apply_) cont_apply_(key, r->continuation);
  apply(stream, r->entry, false);
  announce("claim", r->entry);
}

void StreamDirectory::release(const std::string& stream, uint64_t local_epoch) {
  std::optional<Held> h;
  {
    std::lock_guard lk(mu_);
    if (auto it = pending_.find(stream); it != pending_.end() && it->second == local_epoch) pending_.erase(it);
    auto it = held_.find(stream);
    if (it == held_.end() || it->second.local_epoch != local_epoch) return;
    h = it->second;
    held_.erase(it);
  }
  // The successor continues from this publish's last state (e.g. the HLS media sequence).
  if (cont_get_) {
    auto slash = stream.find('/');
    const std::string cont = cont_get_(live::StreamKey{stream.substr(0, slash), stream.substr(slash + 1)});
    if (!cont.empty()) (void)registry_.refresh(h->entry, cfg_.lease_ms, cont);
  }
  if (auto st = registry_.release(h->entry); !st) {
    spdlog::warn("streams: release of {} failed ({}); the lease expires by itself", stream, st.error().message());
  }
  apply(stream, std::nullopt, false);
  announce("release", h->entry);
}

void StreamDirectory::refresh_all() {
  std::map<std::string, Held> held;
  std::map<std::string, uint64_t> pending;
  {
    std::lock_guard lk(mu_);
    held = held_;
    pending = pending_;
  }
  for (auto& [stream, h] : held) {
    auto slash = stream.find('/');
    live::StreamKey key{stream.substr(0, slash), stream.substr(slash + 1)};
    h.entry.codecs = codecs_of(key);
    auto st = registry_.refresh(h.entry, cfg_.lease_ms, cont_get_ ? cont_get_(key) : std::string());
    if (st) {
      std::lock_guard lk(mu_);
      if (auto it = held_.find(stream); it != held_.end() && it->second.local_epoch == h.local_epoch)
        it->second.entry.codecs = h.entry.codecs;
      continue;
    }
    if (st.code() == Errc::conflict) {
      // Fenced: another node holds the key with a newer epoch (this node was partitioned, or a
      // takeover happened). Stop publishing here; players follow the registry's owner.
      {
        std::lock_guard lk(mu_);
        held_.erase(stream);
        ++stats_.fenced;
      }
      spdlog::warn("streams: lease of {} (epoch {}) was taken by another node; ending the local publish", stream,
                   h.entry.epoch);
      hub_.revoke_publisher(key, h.local_epoch, "stream taken over by another node");
    } else {
      std::lock_guard lk(mu_);
      ++stats_.registry_errors;
    }
  }
  for (auto& [stream, epoch] : pending) {
    auto slash = stream.find('/');
    claim(live::StreamKey{stream.substr(0, slash), stream.substr(slash + 1)}, epoch);
  }
}

void StreamDirectory::reload() {
  post([this] { reload_now(); });
}

void StreamDirectory::reload_now() {
  auto all = registry_.list();
  if (!all) {
    std::lock_guard lk(mu_);
    ++stats_.registry_errors;
    return;
  }
  std::map<std::string, PublisherEntry> fresh;
  for (auto& e : *all) fresh[e.stream] = e;
  std::vector<std::string> gone;
  {
    std::lock_guard lk(mu_);
    for (auto& [s, e] : mirror_)
      if (!fresh.count(s)) gone.push_back(s);
  }
  for (auto& s : gone) apply(s, std::nullopt, true);
  for (auto& [s, e] : fresh) apply(s, e, true);
}

void StreamDirectory::remove_node(const std::string& node_id) {
  post([this, node_id] {
    auto removed = registry_.remove_node(node_id);
    if (!removed) {
      spdlog::warn("streams: cannot remove the entries of offline node {}: {}", node_id, removed.error().message());
      return;
    }
    if (!removed->empty()) spdlog::info("streams: removed {} entries of offline node {}", removed->size(), node_id);
    for (const auto& e : *removed) {
      apply(e.stream, std::nullopt, false);
      announce("release", e);
    }
  });
}

void StreamDirectory::announce(const char* kind, const PublisherEntry& e) {
  json::object o;
  o["kind"] = kind;
  o["entry"] = json::parse(entry_to_json(e));
  auto st = bus_.publish(Lane::critical, stream_topic(e.stream), std::make_shared<const std::string>(json::serialize(o)));
  if (!st) spdlog::debug("streams: {} event for {} not sent: {}", kind, e.stream, st.error().message());
}

void StreamDirectory::on_bus_event(const Event& ev) {
  if (ev.id.node_id == bus_.node_id()) return;  // our own, already applied
  boost::system::error_code ec;
  auto v = json::parse(*ev.payload, ec);
  if (ec || !v.is_object()) return;
  const auto* kind = v.as_object().if_contains("kind");
  const auto* entry = v.as_object().if_contains("entry");
  if (!kind || !kind->is_string() || !entry) return;
  auto e = entry_from_json(json::serialize(*entry));
  if (!e || stream_topic(e->stream) != ev.topic) return;
  if (kind->as_string() == "claim") {
    // A newer claim of a stream this node publishes: we were taken over.
    std::optional<Held> mine;
    {
      std::lock_guard lk(mu_);
      if (auto it = held_.find(e->stream); it != held_.end() && it->second.entry.epoch < e->epoch) {
        mine = it->second;
        held_.erase(it);
        ++stats_.fenced;
      }
    }
    if (mine) {
      spdlog::warn("streams: node {} took over {} (epoch {} > {}); ending the local publish", e->node_id, e->stream,
                   e->epoch, mine->entry.epoch);
      auto slash = e->stream.find('/');
      hub_.revoke_publisher(live::StreamKey{e->stream.substr(0, slash), e->stream.substr(slash + 1)},
                            mine->local_epoch, "stream taken over by node " + e->node_id);
    }
    apply(e->stream, *e, false);
  } else if (kind->as_string() == "release") {
    bool current = false;
    {
      std::lock_guard lk(mu_);
      auto it = mirror_.find(e->stream);
      current = it != mirror_.end() && it->second.epoch == e->epoch;
    }
    if (current) apply(e->stream, std::nullopt, false);  // a newer claim stays
  }
}

void StreamDirectory::apply(const std::string& stream, const std::optional<PublisherEntry>& e, bool authoritative) {
  bool changed = false;
  {
    std::lock_guard lk(mu_);
    auto it = mirror_.find(stream);
    if (!e) {
      if (it != mirror_.end()) {
        departed_[stream] = {it->second, mono_ms()};
        if (departed_.size() > 4096) departed_.erase(departed_.begin());  // bounded
        mirror_.erase(it);
        changed = true;
      }
    } else if (it == mirror_.end()) {
      mirror_[stream] = *e;
      changed = true;
    } else if (authoritative || e->epoch >= it->second.epoch) {
      // An event may arrive after a newer listing: never go back to an older epoch unless the
      // registry itself says so.
      changed = it->second.epoch != e->epoch || it->second.node_id != e->node_id;
      if (changed) departed_[stream] = {it->second, mono_ms()};
      it->second = *e;
    }
    stats_.entries = mirror_.size();
    stats_.held = held_.size();
  }
  if (changed && changed_) changed_(stream, e);
}

std::optional<PublisherEntry> StreamDirectory::owner(const std::string& stream) const {
  std::lock_guard lk(mu_);
  auto it = mirror_.find(stream);
  if (it == mirror_.end()) return std::nullopt;
  return it->second;
}

std::optional<PublisherEntry> StreamDirectory::owner_or_recent(const std::string& stream, int64_t grace_ms) const {
  std::lock_guard lk(mu_);
  if (auto it = mirror_.find(stream); it != mirror_.end()) return it->second;
  if (auto it = departed_.find(stream); it != departed_.end() && mono_ms() - it->second.second < grace_ms)
    return it->second.first;
  return std::nullopt;
}

std::optional<PublisherEntry> StreamDirectory::previous_owner(const std::string& stream, int64_t grace_ms) const {
  std::lock_guard lk(mu_);
  auto it = departed_.find(stream);
  if (it == departed_.end() || mono_ms() - it->second.second >= grace_ms) return std::nullopt;
  if (auto cur = mirror_.find(stream); cur != mirror_.end() && cur->second.epoch == it->second.first.epoch)
    return std::nullopt;
  return it->second.first;
}

bool StreamDirectory::remote(const std::string& stream) const {
  std::lock_guard lk(mu_);
  auto it = mirror_.find(stream);
  return it != mirror_.end() && it->second.node_id != cfg_.node_id;
}

std::vector<PublisherEntry> StreamDirectory::entries() const {
  std::lock_guard lk(mu_);
  std::vector<PublisherEntry> out;
  for (auto& [s, e] : mirror_) out.push_back(e);
  return out;
}

DirectoryStats StreamDirectory::stats() const {
  std::lock_guard lk(mu_);
  DirectoryStats s = stats_;
  s.entries = mirror_.size();
  s.held = held_.size();
  return s;
}

}  // namespace castmesh::cluster
