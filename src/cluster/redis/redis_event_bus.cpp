#include "cluster/redis/redis_event_bus.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace castmesh::cluster::redis {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kMinBackoff{100};
constexpr milliseconds kMaxBackoff{5000};
constexpr size_t kPublishBatch = 64;         // events per pipelined round trip
constexpr int kMaxScriptFailures = 3;        // error replies before an event is given up
constexpr const char* kReplayCount = "500";  // XRANGE COUNT
constexpr size_t kReplayCountN = 500;
constexpr milliseconds kLiveReadSlice{200};  // stop() latency of the subscriber
constexpr milliseconds kPingAfterIdle{1000};

// KEYS[1] = stream, ARGV[1] = MAXLEN, ARGV[2] = channel, ARGV[3] = envelope. The channel is an
// argument, not a key: it does not name a key slot.
constexpr const char* kPublishLua = R"(local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
redis.call('PUBLISH', ARGV[2], id .. '\n' .. ARGV[3])
return id)";

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t lane_index(Lane l) { return l == Lane::critical ? 0 : 1; }

}  // namespace

// CLIENT SETNAME "{prefix}:{node}:events-{role}" so operators (and tests) can tell the
// connections apart in CLIENT LIST. Best effort: a refused name changes nothing.
void RedisEventBus::name_connection(RedisConnection& c, const char* role) const {
  (void)c.command({"CLIENT", "SETNAME", config_.key_prefix + ":" + config_.node_id + ":events-" + role});
}

struct RedisEventBus::SubState {
  struct Sub {
    uint64_t id;
    std::string prefix;
    std::shared_ptr<Handler> handler;
  };
  std::mutex mu;
  uint64_t next_id = 1;
  std::vector<Sub> subs;  // subscription order
};

// Recently delivered EventIds: per origin node a bounded set of seqs (oldest evicted), and a
// bounded number of origin nodes (least recently seen evicted).
struct RedisEventBus::Dedup {
  static constexpr size_t kPerNode = 65536;
  static constexpr size_t kMaxNodes = 256;
  struct PerNode {
    std::unordered_set<uint64_t> seen;
    std::deque<uint64_t> order;
    uint64_t last_use = 0;
  };
  std::unordered_map<std::string, PerNode> nodes;
  uint64_t tick = 0;

  // True when (node, seq) was seen before; otherwise records it.
  bool check_and_insert(const std::string& node, uint64_t seq) {
    auto [it, inserted] = nodes.try_emplace(node);
    PerNode& p = it->second;
    p.last_use = ++tick;
    if (!p.seen.insert(seq).second) return true;
    p.order.push_back(seq);
    if (p.order.size() > kPerNode) {
      p.seen.erase(p.order.front());
      p.order.pop_front();
    }
    if (inserted && nodes.size() > kMaxNodes) {
      auto victim = nodes.end();
      for (auto n = nodes.begin(); n != nodes.end(); ++n) {
        if (n != it && (victim == nodes.end() || n->second.last_use < victim->second.last_use)) victim = n;
      }
      if (victim != nodes.end()) nodes.erase(victim);
    }
    return false;
  }
};

RedisEventBus::RedisEventBus(RedisBusConfig config)
    : config_(std::move(config)),
      stream_key_(config_.key_prefix + ":events:stream"),
      channel_(config_.key_prefix + ":events"),
      subs_(std::make_shared<SubState>()),
      // Unique across restarts of one node id: a restarted process starts above every seq the
      // previous one could have used (unless it published > 1e6 events per ms).
      next_seq_(static_cast<uint64_t>(unix_ms()) * 1'000'000ull + 1),
      dedup_(std::make_unique<Dedup>()) {}

RedisEventBus::~RedisEventBus() { stop(); }

Status RedisEventBus::start() {
  auto bad = [](const std::string& s) { return s.empty() || s.find('\n') != std::string::npos; };
  if (bad(config_.node_id)) {
    return Error{Errc::config_invalid, "cluster.node_id must be non-empty without line breaks"};
  }
  if (bad(config_.key_prefix)) {
    return Error{Errc::config_invalid, "redis.key_prefix must be non-empty without line breaks"};
  }
  if (config_.critical_capacity == 0 || config_.normal_capacity == 0) {
    return Error{Errc::config_invalid, "cluster event channel capacities must be > 0"};
  }
  if (config_.stream_max_length == 0) {
    return Error{Errc::config_invalid, "cluster.stream_max_length must be > 0"};
  }
  std::lock_guard lk(mu_);
  if (stopping_) return Error{Errc::closed, "event bus already stopped"};
  if (started_) return ok_status();
  started_ = true;
  resume_from_ = StreamId{static_cast<uint64_t>(std::max<int64_t>(0, unix_ms() - config_.catchup_window_ms)), 0};
  publisher_ = std::thread([this] { publisher_main(); });
  subscriber_ = std::thread([this] { subscriber_main(); });
  return ok_status();
}

void RedisEventBus::stop() {
  std::lock_guard stop_lk(stop_mu_);
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  stop_requested_.store(true);
  cv_.notify_all();
  stop_cv_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (subscriber_.joinable()) subscriber_.join();
  metrics_.redis_up.store(0, std::memory_order_relaxed);
}

size_t RedisEventBus::queued(Lane lane) const {
  std::lock_guard lk(mu_);
  return queues_[lane_index(lane)].size();
}

void RedisEventBus::set_link_listener(std::function<void(bool up)> listener) {
  std::lock_guard lk(listener_mu_);
  listener_ = std::move(listener);
}

Status RedisEventBus::publish(Lane lane, const std::string& topic, std::shared_ptr<const std::string> payload) {
  if (!payload) return Error{Errc::malformed, "event payload is null"};
  if (topic.empty()) return Error{Errc::malformed, "event topic is empty"};
  if (topic.find('\n') != std::string::npos) return Error{Errc::malformed, "event topic contains a line break"};
  const size_t li = lane_index(lane);
  uint64_t seq = 0;
  bool queued = false;
  bool stopped = false;
  size_t depth = 0;
  {
    std::lock_guard lk(mu_);
    auto& q = queues_[li];
    const size_t cap = lane == Lane::critical ? config_.critical_capacity : config_.normal_capacity;
    depth = q.size();
    if (stopping_ || depth >= cap) {
      if (lane == Lane::critical) {
        metrics_.dropped_total[0].fetch_add(1, std::memory_order_relaxed);
        if (stopping_) return Error{Errc::unavailable, "cluster event bus is stopped"};
        return Error{Errc::unavailable,
                     "cluster critical event queue is full (" + std::to_string(depth) + " events waiting for Redis)"};
      }
      seq = next_seq_++;
      stopped = stopping_;
    } else {
      seq = next_seq_++;
      q.push_back(Queued{seq, lane, topic, payload});
      queued = true;
    }
  }
  if (queued) {
    cv_.notify_one();
  } else {
    // Normal lane full (or bus stopped): local delivery only.
    uint64_t dropped = metrics_.dropped_total[1].fetch_add(1, std::memory_order_relaxed) + 1;
    int64_t now = unix_ms();
    int64_t last = last_drop_warn_ms_.load(std::memory_order_relaxed);
    if (!stopped && now - last >= 1000 && last_drop_warn_ms_.compare_exchange_strong(last, now)) {
      spdlog::warn("cluster: normal event queue full ({} events waiting for Redis); event on '{}' "
                   "delivered on this node only ({} dropped so far)",
                   depth, topic, dropped);
    }
  }
  deliver(Event{EventId{config_.node_id, seq}, lane, topic, std::move(payload)}, false);
  return ok_status();
}

Subscription RedisEventBus::subscribe(const std::string& topic_prefix, Handler h) {
  uint64_t id = 0;
  {
    std::lock_guard lk(subs_->mu);
    id = subs_->next_id++;
    subs_->subs.push_back(SubState::Sub{id, topic_prefix, std::make_shared<Handler>(std::move(h))});
  }
  std::weak_ptr<SubState> weak = subs_;
  return Subscription([weak, id] {
    if (auto st = weak.lock()) {
      std::lock_guard lk(st->mu);
      std::erase_if(st->subs, [id](const SubState::Sub& s) { return s.id == id; });
    }
  });
}

void RedisEventBus::deliver(const Event& ev, bool catch_exceptions) {
  // Snapshot the matching handlers, then call them without the lock (handlers may publish,
  // subscribe or unsubscribe).
  std::vector<std::shared_ptr<Handler>> targets;
  {
    std::lock_guard lk(subs_->mu);
    for (const auto& s : subs_->subs) {
      if (ev.topic.compare(0, s.prefix.size(), s.prefix) == 0) targets.push_back(s.handler);
    }
  }
  for (const auto& h : targets) {
    bool still = false;  // skip a handler unsubscribed by an earlier handler of this event
    {
      std::lock_guard lk(subs_->mu);
      for (const auto& s : subs_->subs) {
        if (s.handler == h) {
          still = true;
          break;
        }
      }
    }
    if (!still) continue;
    if (!catch_exceptions) {
      (*h)(ev);
      continue;
    }
    try {
      (*h)(ev);
    } catch (const std::exception& e) {
      spdlog::error("cluster: event handler for '{}' threw: {}", ev.topic, e.what());
    } catch (...) {
      spdlog::error("cluster: event handler for '{}' threw", ev.topic);
    }
  }
}

bool RedisEventBus::wait_backoff(std::condition_variable& cv, milliseconds d) {
  std::unique_lock lk(mu_);
  cv.wait_for(lk, d, [this] { return stopping_; });
  return !stopping_;
}

// ---- publisher thread ----------------------------------------------------------------------

void RedisEventBus::publisher_main() {
  const Script script(kPublishLua);
  const std::string maxlen = std::to_string(config_.stream_max_length);
  std::unique_ptr<RedisConnection> conn;
  milliseconds backoff = kMinBackoff;
  bool reported_down = false;
  int head_failures = 0;
  std::optional<Clock::time_point> drain_deadline;
  bool drain_connect_failed = false;
  std::vector<Queued> batch;
  std::vector<std::vector<std::string>> commands;

  for (;;) {
    batch.clear();
    size_t n_critical = 0;
    {
      std::unique_lock lk(mu_);
      // Connects eagerly (no event needed), so that stop() can flush at once.
      cv_.wait(lk, [&] { return stopping_ || !conn || !queues_[0].empty() || !queues_[1].empty(); });
      if (stopping_) {
        if (!drain_deadline) drain_deadline = Clock::now() + config_.drain_timeout;
        if ((queues_[0].empty() && queues_[1].empty()) || (!conn && drain_connect_failed) ||
            Clock::now() >= *drain_deadline) {
          size_t left = queues_[0].size() + queues_[1].size();
          if (left > 0) spdlog::warn("cluster: event bus stopped with {} events not sent to Redis", left);
          return;
        }
      }
      for (const auto& q : queues_[0]) {
        if (batch.size() == kPublishBatch) break;
        batch.push_back(q);
      }
      n_critical = batch.size();
      for (const auto& q : queues_[1]) {
        if (batch.size() == kPublishBatch) break;
        batch.push_back(q);
      }
    }

    if (!conn) {
      auto c = RedisConnection::connect(config_.url, config_.io_timeout);
      if (!c) {
        drain_connect_failed = stop_requested_.load();
        if (!reported_down) {
          spdlog::warn("cluster: event publisher cannot reach Redis ({}); events are queued", c.error().message());
          reported_down = true;
        }
        wait_backoff(cv_, backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      conn = std::move(*c);
      name_connection(*conn, "pub");
      backoff = kMinBackoff;
      if (reported_down) {
        spdlog::info("cluster: event publisher reconnected to Redis {}", conn->peer());
        reported_down = false;
      }
    }

    if (batch.empty()) continue;
    commands.clear();
    for (const auto& q : batch) {
      commands.push_back({"EVALSHA", script.sha1(), "1", stream_key_, maxlen, channel_,
                          encode_envelope(EventId{config_.node_id, q.seq}, q.lane, q.topic, *q.payload)});
    }
    auto replies = conn->pipeline(commands);
    if (!replies) {
      // Resent after reconnecting: a script that ran before the link broke runs twice, which
      // receivers de-duplicate by EventId.
      spdlog::debug("cluster: event publish failed: {}", replies.error().message());
      conn.reset();
      continue;
    }
    size_t done = 0;
    while (done < replies->size() && !(*replies)[done].is_error()) ++done;
    {
      std::lock_guard lk(mu_);
      size_t c_done = std::min(done, n_critical);
      size_t n_done = done - c_done;
      for (size_t i = 0; i < c_done; ++i) queues_[0].pop_front();
      for (size_t i = 0; i < n_done; ++i) queues_[1].pop_front();
      metrics_.published_total[0].fetch_add(c_done, std::memory_order_relaxed);
      metrics_.published_total[1].fetch_add(n_done, std::memory_order_relaxed);
    }
    if (done == replies->size()) {
      head_failures = 0;
      continue;
    }
    const Reply& err = (*replies)[done];
    if (err.str.rfind("NOSCRIPT", 0) == 0) {
      auto load = conn->command({"SCRIPT", "LOAD", script.lua()});
      if (!load) {
        conn.reset();
      } else if (load->is_error()) {
        spdlog::error("cluster: SCRIPT LOAD refused by Redis: {}", load->str);
        wait_backoff(cv_, backoff);
      }
      continue;
    }
    ++head_failures;
    spdlog::warn("cluster: Redis refused an event ({}), attempt {}/{}", err.str, head_failures, kMaxScriptFailures);
    if (head_failures >= kMaxScriptFailures) {
      std::lock_guard lk(mu_);
      size_t li = done < n_critical ? 0 : 1;
      queues_[li].pop_front();
      metrics_.dropped_total[li].fetch_add(1, std::memory_order_relaxed);
      head_failures = 0;
    } else {
      wait_backoff(cv_, backoff);
    }
  }
}

// ---- subscriber thread ---------------------------------------------------------------------

void RedisEventBus::note_malformed(const Error& e) {
  metrics_.malformed_total.fetch_add(1, std::memory_order_relaxed);
  std::string kind = e.detail.substr(0, e.detail.find(':'));
  std::lock_guard lk(malformed_mu_);
  if (std::find(malformed_kinds_logged_.begin(), malformed_kinds_logged_.end(), kind) !=
      malformed_kinds_logged_.end()) {
    return;
  }
  malformed_kinds_logged_.push_back(kind);
  spdlog::warn("cluster: skipping malformed event from Redis ({}); further ones of this kind are "
               "only counted",
               e.detail);
}

void RedisEventBus::on_remote(const StreamId& sid, std::string_view envelope, bool replay) {
  if (resume_from_ <= sid) resume_from_ = sid.next();
  auto ev = decode_envelope(envelope);
  if (!ev) {
    note_malformed(ev.error());
    return;
  }
  if (ev->id.node_id == config_.node_id) return;  // delivered locally by publish()
  if (dedup_->check_and_insert(ev->id.node_id, ev->id.seq)) {
    metrics_.duplicate_total.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  metrics_.received_total.fetch_add(1, std::memory_order_relaxed);
  if (replay) metrics_.replayed_total.fetch_add(1, std::memory_order_relaxed);
  deliver(*ev, true);
}

void RedisEventBus::set_link(bool up) {
  metrics_.redis_up.store(up ? 1 : 0, std::memory_order_relaxed);
  if (up == link_reported_up_) return;
  link_reported_up_ = up;
  if (up) {
    spdlog::info("cluster: event bus linked to Redis {} and caught up", config_.url.display());
  } else {
    spdlog::warn("cluster: event bus lost Redis {}; reconnecting", config_.url.display());
  }
  std::function<void(bool)> l;
  {
    std::lock_guard lk(listener_mu_);
    l = listener_;
  }
  if (l) l(up);
}

void RedisEventBus::subscriber_main() {
  milliseconds backoff = kMinBackoff;
  bool was_up = false;
  bool reported_failure = false;
  while (!stop_requested_.load()) {
    // One session: connect, subscribe, replay, then live messages until the link breaks.
    std::optional<Error> failure;
    // Two connections: a subscribed one cannot run XRANGE (RESP2).
    Result<std::unique_ptr<RedisConnection>> sub = RedisConnection::connect(config_.url, config_.io_timeout);
    Result<std::unique_ptr<RedisConnection>> query = Error{Errc::unavailable, "not connected"};
    if (sub) query = RedisConnection::connect(config_.url, config_.io_timeout);
    if (!sub) {
      failure = sub.error();
    } else if (!query) {
      failure = query.error();
    } else {
      name_connection(**sub, "sub");
      name_connection(**query, "query");
      if (auto s = (*sub)->subscribe(channel_); !s) failure = s.error();
    }

    // Catch-up: XRANGE from resume_from_ in batches; live messages that arrive meanwhile are
    // held and delivered afterwards.
    std::vector<std::string> held;
    // Live messages below the last id replayed in this session were replayed already (one
    // server, increasing ids). Across sessions only the EventId de-dup applies: a replaced,
    // empty server may number its entries lower.
    StreamId replayed_upto{0, 0};
    auto hold_live = [&]() -> bool {
      for (;;) {
        auto m = (*sub)->read_message(milliseconds(0));
        if (!m) {
          failure = m.error();
          return false;
        }
        if (!m->has_value()) return true;
        const Reply& r = **m;
        if (r.type == Reply::Type::array && r.elements.size() == 3 && r.elements[0].is("message")) {
          held.push_back(std::move((*m)->elements[2].str));
        }
      }
    };
    while (!failure && !stop_requested_.load()) {
      auto r = (*query)->command({"XRANGE", stream_key_, resume_from_.str(), "+", "COUNT", kReplayCount});
      if (!r) {
        failure = r.error();
        break;
      }
      if (r->is_error()) {
        failure = Error{Errc::unavailable, "XRANGE " + stream_key_ + " refused: " + r->str};
        break;
      }
      for (const Reply& entry : r->elements) {
        if (entry.type != Reply::Type::array || entry.elements.size() != 2) continue;
        auto sid = parse_stream_id(entry.elements[0].str);
        if (!sid) {
          note_malformed(sid.error());
          continue;
        }
        const auto& fields = entry.elements[1].elements;
        const std::string* envelope = nullptr;
        for (size_t i = 0; i + 1 < fields.size(); i += 2) {
          if (fields[i].is("e")) envelope = &fields[i + 1].str;
        }
        if (!envelope) {
          if (resume_from_ <= *sid) resume_from_ = sid->next();
          note_malformed(Error{Errc::malformed, "stream entry: no field 'e'"});
          continue;
        }
        on_remote(*sid, *envelope, true);
        replayed_upto = sid->next();
      }
      if (!hold_live()) break;
      if (r->elements.size() < kReplayCountN) break;
    }
    if (!failure && !stop_requested_.load()) {
      for (const auto& msg : held) {
        auto live = split_live_message(msg);
        if (!live) {
          note_malformed(live.error());
          continue;
        }
        if (live->stream_id < replayed_upto) continue;  // already replayed
        on_remote(live->stream_id, live->envelope, false);
      }
      held.clear();
      if (was_up) metrics_.reconnects_total.fetch_add(1, std::memory_order_relaxed);
      was_up = true;
      reported_failure = false;
      backoff = kMinBackoff;
      set_link(true);

      // Live: messages until the link breaks. An idle link is checked with PING.
      auto last_activity = Clock::now();
      Clock::time_point ping_sent{};
      bool ping_outstanding = false;
      while (!stop_requested_.load()) {
        auto m = (*sub)->read_message(kLiveReadSlice);
        if (!m) {
          failure = m.error();
          break;
        }
        auto now = Clock::now();
        if (!m->has_value()) {
          if (ping_outstanding && now - ping_sent > config_.io_timeout) {
            failure = Error{Errc::timeout, "no PONG from Redis within the timeout"};
            break;
          }
          if (!ping_outstanding && now - last_activity > kPingAfterIdle) {
            if (auto s = (*sub)->send({"PING"}); !s) {
              failure = s.error();
              break;
            }
            ping_sent = now;
            ping_outstanding = true;
          }
          continue;
        }
        last_activity = now;
        ping_outstanding = false;
        const Reply& r = **m;
        if (r.type == Reply::Type::array && r.elements.size() == 3 && r.elements[0].is("message")) {
          auto live = split_live_message(r.elements[2].str);
          if (!live) {
            note_malformed(live.error());
            continue;
          }
          if (live->stream_id < replayed_upto) continue;  // already replayed
          on_remote(live->stream_id, live->envelope, false);
        }
      }
    }
    if (stop_requested_.load()) break;
    set_link(false);
    if (failure && !reported_failure) {
      spdlog::warn("cluster: event subscriber: {}", failure->message());
      reported_failure = true;
    }
    if (!wait_backoff(stop_cv_, backoff)) break;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace castmesh::cluster::redis
