#include "cluster/membership/membership.hpp"

#include <algorithm>

#include "base/log.hpp"
#include "cluster/membership/redis_registry.hpp"

namespace castmesh::cluster::membership {
namespace {

using std::chrono::milliseconds;

void advance(SteadyTime& next, milliseconds period, SteadyTime now) {
  next += period;
  if (next <= now) next = now + period;
}

}  // namespace

const char* discovery_name(Discovery d) noexcept {
  switch (d) {
    case Discovery::redis: return "redis";
    case Discovery::static_: return "static";
    case Discovery::k8s_dns: return "k8s_dns";
  }
  return "unknown";
}

Membership::Membership(MembershipConfig config, MembershipDeps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      tracker_(config_.interval, config_.suspect_threshold, config_.offline_threshold),
      self_(config_.self) {
  self_.epoch = 0;
}

Membership::~Membership() { stop(); }

Status Membership::start() {
  auto invalid = [](std::string detail) { return Error{Errc::config_invalid, std::move(detail)}; };
  if (!valid_node_id(config_.self.node_id)) {
    return invalid("cluster.node_id \"" + config_.self.node_id + "\" must match [A-Za-z0-9._-]{1,64}");
  }
  if (config_.interval < milliseconds(100)) return invalid("cluster.heartbeat_interval must be at least 0.1 s");
  if (config_.suspect_threshold < 1) return invalid("cluster.suspect_threshold must be at least 1");
  if (config_.offline_threshold <= config_.suspect_threshold) {
    return invalid("cluster.offline_threshold must be greater than cluster.suspect_threshold");
  }
  if (deps_.elector && config_.lease < milliseconds(100)) {
    return invalid("cluster.leader_lease_secs must be at least 0.1 s");
  }
  switch (config_.mode) {
    case Discovery::redis:
      if (config_.redis.host.empty()) return invalid("redis.url is required for cluster.discovery_mode redis");
      break;
    case Discovery::static_:
      if (!config_.peers.empty() && !deps_.send_heartbeat) {
        return invalid("cluster.peers is set but no heartbeat client was provided");
      }
      break;
    case Discovery::k8s_dns:
      if (config_.dns_name.empty()) {
        return invalid("cluster.discovery_mode k8s_dns needs a DNS name (HEADLESS_SERVICE_NAME and POD_NAMESPACE)");
      }
      if (!deps_.resolve || !deps_.send_heartbeat) {
        return invalid("cluster.discovery_mode k8s_dns needs a DNS resolver and a heartbeat client");
      }
      break;
  }
  std::lock_guard run_lk(run_mu_);
  if (started_) return Error{Errc::conflict, "membership already started"};
  if (config_.mode == Discovery::redis) {
    RedisRegistryConfig rc;
    rc.key_prefix = config_.key_prefix;
    rc.interval = config_.interval;
    rc.offline_threshold = config_.offline_threshold;
    rc.timeout = std::clamp(config_.interval / 2, milliseconds(50), milliseconds(1000));
    registry_ = std::make_unique<RedisRegistry>(config_.redis, rc);
  } else {
    std::lock_guard lk(mu_);
    redis_ok_ = true;
    for (const auto& p : config_.peers) {
      if (p != config_.self.advertise_addr &&
          std::find(addresses_.begin(), addresses_.end(), p) == addresses_.end()) {
        addresses_.push_back(p);
      }
    }
  }
  started_ = true;
  stopping_ = false;
  spdlog::info("cluster: membership of {} started (discovery {}, heartbeat every {} ms)", config_.self.node_id,
               discovery_name(config_.mode), config_.interval.count());
  thread_ = std::thread([this] { run(); });
  return ok_status();
}

void Membership::stop() {
  std::thread t;
  {
    std::lock_guard run_lk(run_mu_);
    stopping_ = true;
    t = std::move(thread_);  // only the first caller gets the thread to join
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

void Membership::run() {
  const milliseconds tick = std::max(
      milliseconds(10), deps_.elector ? std::min(config_.interval / 4, config_.lease / 5) : config_.interval / 4);
  const milliseconds step_every = std::max(milliseconds(10), config_.lease / 5);
  auto now = Clock::now();
  SteadyTime next_hb = now, next_poll = now, next_step = now, next_task = now, next_eval = now;

  for (;;) {
    {
      std::unique_lock run_lk(run_mu_);
      if (stopping_) break;
    }
    now = Clock::now();
    reap_requests(false);
    if (deps_.elector && now >= next_step) {
      auto st = deps_.elector->step();
      if (!st) spdlog::debug("cluster: leader election step failed: {}", st.error().message());
      note_leader();
      advance(next_step, step_every, Clock::now());
    }
    if (now >= next_hb) {
      heartbeat_round(now);
      advance(next_hb, config_.interval, now);
    }
    if (registry_ && now >= next_poll) {
      redis_poll(Clock::now());
      advance(next_poll, config_.interval / 4, now);
    }
    if (now >= next_task) {
      leader_work();
      advance(next_task, config_.interval, now);
    }
    now = Clock::now();
    if (now >= next_eval) {
      evaluate(now);
      advance(next_eval, tick, now);
    }
    SteadyTime wake = std::min({next_hb, next_task, next_eval});
    if (deps_.elector) wake = std::min(wake, next_step);
    if (registry_) wake = std::min(wake, next_poll);
    std::unique_lock run_lk(run_mu_);
    cv_.wait_until(run_lk, wake, [this] { return stopping_; });
  }

  reap_requests(true);
  if (deps_.elector) {
    deps_.elector->resign();
    note_leader();
  }
  if (registry_ && !conflict_.load()) {
    auto st = registry_->deregister(config_.self.node_id);
    if (!st) spdlog::warn("cluster: could not deregister {}: {}", config_.self.node_id, st.error().message());
  }
}

void Membership::heartbeat_round(SteadyTime /*now*/) {
  {
    Load load = deps_.load ? deps_.load() : Load{};
    std::lock_guard lk(mu_);
    self_.load = load;
  }
  if (registry_) {
    redis_heartbeat();
  } else {
    push_heartbeats();
  }
}

void Membership::redis_heartbeat() {
  if (conflict_.load()) return;
  NodeInfo me = self_info();
  auto st = registry_->heartbeat(me);
  bool was_ok;
  {
    std::lock_guard lk(mu_);
    was_ok = redis_ok_;
    redis_ok_ = registry_->ok();
    if (registry_->epoch() != 0) self_.epoch = registry_->epoch();
  }
  if (st) {
    hb_sent_.fetch_add(1, std::memory_order_relaxed);
    if (!was_ok) spdlog::info("cluster: registered {} in Redis (epoch {})", me.node_id, registry_->epoch());
    return;
  }
  hb_failed_.fetch_add(1, std::memory_order_relaxed);
  if (st.code() == Errc::conflict) {
    conflict_.store(true);
    spdlog::error("cluster: {}; this process stops heartbeating", st.error().message());
  } else if (was_ok || hb_failed_.load() == 1) {
    spdlog::warn("cluster: registry heartbeat failed: {}", st.error().message());
  }
}

void Membership::redis_poll(SteadyTime now) {
  // While Redis is unreachable only the heartbeat (once per interval) tries to reconnect, so a
  // black-holed server costs one connect timeout per interval, not four.
  if (!registry_->ok()) return;
  auto nodes = registry_->list();
  {
    std::lock_guard lk(mu_);
    redis_ok_ = registry_->ok();
    if (!nodes) return;
    for (const auto& n : *nodes) {
      if (n.info.node_id == config_.self.node_id) continue;
      tracker_.observe(n.info, n.heartbeat, now, now - milliseconds(n.age_ms));
    }
  }
}

void Membership::push_heartbeats() {
  if (config_.mode == Discovery::k8s_dns) {
    auto addrs = deps_.resolve(config_.dns_name);
    if (addrs) {
      std::vector<std::string> list = std::move(*addrs);
      std::sort(list.begin(), list.end());
      list.erase(std::unique(list.begin(), list.end()), list.end());
      std::lock_guard lk(mu_);
      addresses_ = std::move(list);
    } else {
      spdlog::warn("cluster: resolving {} failed: {}", config_.dns_name, addrs.error().message());
    }
  }
  NodeInfo me;
  std::vector<std::string> targets;
  {
    std::lock_guard lk(mu_);
    me = self_;
    for (const auto& a : addresses_) {
      if (!self_addrs_.count(a)) targets.push_back(a);
    }
  }
  for (const auto& addr : targets) {
    if (requests_.count(addr)) continue;  // the previous request to it is still running
    requests_[addr] = std::async(std::launch::async, [this, addr, me] {
      auto reply = deps_.send_heartbeat(addr, me);
      if (!reply) {
        hb_failed_.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("cluster: heartbeat to {} failed: {}", addr, reply.error().message());
        return;
      }
      hb_sent_.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lk(mu_);
      if (reply->node_id == config_.self.node_id) {
        self_addrs_.insert(addr);  // our own address (k8s_dns lists every pod, us included)
        return;
      }
      tracker_.observe(*reply, 0, Clock::now());
    });
  }
}

void Membership::reap_requests(bool wait) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    if (wait || it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      it->second.wait();
      it = requests_.erase(it);
    } else {
      ++it;
    }
  }
}

void Membership::leader_work() {
  if (!deps_.elector || !deps_.elector->is_leader()) return;
  auto fenced = deps_.elector->fenced_check();
  if (!fenced) {
    spdlog::debug("cluster: fenced check failed: {}", fenced.error().message());
    return;
  }
  if (!*fenced) return;
  leader_tasks_.fetch_add(1, std::memory_order_relaxed);
  if (registry_) {
    auto removed = registry_->remove_stale();
    if (removed && *removed > 0) spdlog::info("cluster: removed {} expired node(s) from the registry index", *removed);
  }
  std::function<void()> task;
  {
    std::lock_guard lk(mu_);
    task = leader_task_;
  }
  if (task) task();
}

void Membership::note_leader() {
  LeaderStatus s = deps_.elector->status();
  std::string cur = s.leader_node_id.empty() ? std::string() : s.leader_node_id + ":" + std::to_string(s.leader_epoch);
  std::lock_guard lk(mu_);
  if (!cur.empty() && cur != last_leader_) {
    leader_changes_.fetch_add(1, std::memory_order_relaxed);
    last_leader_ = cur;
  }
}

void Membership::evaluate(SteadyTime now) {
  std::vector<Transition> changes;
  std::vector<StateChangeListener> listeners;
  {
    std::lock_guard lk(mu_);
    changes = tracker_.evaluate(now);
    if (changes.empty()) return;
    listeners = listeners_;
  }
  for (const auto& t : changes) {
    auto level = t.to == NodeState::alive ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(level, "cluster: node {} {} -> {}", t.node_id, state_name(t.from), state_name(t.to));
    for (const auto& l : listeners) l(t.node_id, t.from, t.to);
  }
}

void Membership::on_heartbeat(const NodeInfo& peer) {
  if (peer.node_id.empty() || peer.node_id == config_.self.node_id) return;
  hb_received_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lk(mu_);
  tracker_.observe(peer, 0, Clock::now());
}

NodeInfo Membership::self_info() const {
  std::lock_guard lk(mu_);
  return self_;
}

std::vector<NodeView> Membership::nodes() const {
  LeaderStatus ls = leader();
  auto now = Clock::now();
  std::vector<NodeView> out;
  std::lock_guard lk(mu_);
  NodeView me;
  me.info = self_;
  me.state = NodeState::alive;
  me.is_self = true;
  me.is_leader = ls.is_leader;
  out.push_back(std::move(me));
  for (auto& n : tracker_.snapshot(now)) {
    if (n.info.node_id == config_.self.node_id) continue;
    NodeView v;
    v.is_leader = !ls.leader_node_id.empty() && n.info.node_id == ls.leader_node_id;
    v.info = std::move(n.info);
    v.state = n.state;
    v.last_seen_ms_ago = n.last_seen_ms_ago;
    out.push_back(std::move(v));
  }
  return out;
}

LeaderStatus Membership::leader() const { return deps_.elector ? deps_.elector->status() : LeaderStatus{}; }

bool Membership::redis_ok() const {
  std::lock_guard lk(mu_);
  return redis_ok_;
}

void Membership::on_state_change(StateChangeListener listener) {
  std::lock_guard lk(mu_);
  listeners_.push_back(std::move(listener));
}

void Membership::set_leader_task(std::function<void()> task) {
  std::lock_guard lk(mu_);
  leader_task_ = std::move(task);
}

MembershipStats Membership::stats() const {
  MembershipStats s;
  s.nodes_alive = 1;  // self
  auto now = Clock::now();
  {
    std::lock_guard lk(mu_);
    for (const auto& n : tracker_.snapshot(now)) {
      switch (n.state) {
        case NodeState::alive: ++s.nodes_alive; break;
        case NodeState::suspect: ++s.nodes_suspect; break;
        case NodeState::offline: ++s.nodes_offline; break;
      }
    }
  }
  s.leader = deps_.elector && deps_.elector->is_leader() ? 1 : 0;
  s.heartbeats_sent_total = hb_sent_.load(std::memory_order_relaxed);
  s.heartbeats_failed_total = hb_failed_.load(std::memory_order_relaxed);
  s.heartbeats_received_total = hb_received_.load(std::memory_order_relaxed);
  s.leader_changes_total = leader_changes_.load(std::memory_order_relaxed);
  s.leader_tasks_total = leader_tasks_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace castmesh::cluster::membership
