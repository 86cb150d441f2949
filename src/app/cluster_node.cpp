#include "app/cluster_node.hpp"

#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "app/server.hpp"
#include "auth/crypto.hpp"
#include "base/clock.hpp"
#include "base/log.hpp"
#include "cluster/internode/dns_resolver.hpp"
#include "cluster/internode/internode_client.hpp"
#include "cluster/internode/internode_server.hpp"
#include "cluster/internode/k8s_lease.hpp"
#include "cluster/membership/membership.hpp"
#include "cluster/membership/redis_leader.hpp"
#include "cluster/redis/redis_event_bus.hpp"
#include "net/http_server.hpp"
#include "net/io_pool.hpp"
#include "proto/api/api.hpp"


namespace castmesh::app {

namespace json = boost::json;
namespace ms = cluster::membership;

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "node";
  return buf;
}

json::object node_view_json(const ms::NodeView& v) {
  json::object o;
  o["node_id"] = v.info.node_id;
  o["advertise_addr"] = v.info.advertise_addr;
  o["group"] = v.info.group;
  o["state"] = ms::state_name(v.state);
  o["version"] = v.info.version;
  o["epoch"] = v.info.epoch;
  o["started_ms"] = v.info.started_ms;
  o["load"] = ms::load_to_json(v.info.load);
  o["last_seen_ms_ago"] = v.last_seen_ms_ago;
  o["self"] = v.is_self;
  o["leader"] = v.is_leader;
  return o;
}

}  // namespace

std::string derive_node_id() {
  std::string h;
  for (char c : host_name()) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (ok) h += c;
  }
  if (h.empty()) h = "node";
  if (h.size() > 57) h.resize(57);
  return h + "-" + auth::random_base62(6);
}

Result<std::string> load_cluster_secret(const cluster::ClusterConfig& c) {
  if (!c.secret.empty()) return c.secret;
  if (c.secret_file.empty()) {
    return Error{Errc::config_invalid, "server.cluster_secret: required in cluster mode (or server.cluster_secret_file)"};
  }
  std::ifstream in(c.secret_file, std::ios::binary);
  if (!in) return Error{Errc::config_invalid, "server.cluster_secret_file: cannot read " + c.secret_file};
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  if (s.empty()) return Error{Errc::config_invalid, "server.cluster_secret_file: " + c.secret_file + " is empty"};
  return s;
}

std::string single_node_json(const ms::NodeInfo& self) {
  ms::NodeView v;
  v.info = self;
  v.is_self = true;
  v.is_leader = true;
  json::object o;
  o["enabled"] = false;
  o["node_id"] = self.node_id;
  o["is_leader"] = true;
  o["leader_epoch"] = 0;
  o["leader"] = nullptr;
  o["redis"] = "off";
  o["discovery"] = "none";
  json::array nodes;
  nodes.push_back(node_view_json(v));
  o["nodes"] = std::move(nodes);
  return json::serialize(o);
}

struct ClusterNode::Impl {
  const Config& cfg;
  std::string secret;
  std::string node_id;
  std::string advertise;
  cluster::redis::RedisUrl redis_url;
  cluster::HostPort listen;
  std::unique_ptr<cluster::redis::RedisEventBus> bus;
  std::unique_ptr<cluster::internode::InternodeClient> client;
  std::unique_ptr<cluster::internode::InternodeServer> server;
  std::unique_ptr<ms::Membership> membership;
  std::function<void(const std::string&)> offline;
  std::function<void(const std::string&)> back;
  std::function<void()> bus_up;
  std::function<void()> leader_task;
  std::function<ms::Load()> load;
  bool started = false;
  bool stopped = false;

  explicit Impl(const Config& c) : cfg(c) {}

  net::HttpResponse node_reply() const {
    net::HttpResponse r;
    r.content_type = "application/json";
    r.body = ms::to_json_text(membership->self_info());
    return r;
  }
};

ClusterNode::ClusterNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ClusterNode::~ClusterNode() { stop(); }

Result<std::unique_ptr<ClusterNode>> ClusterNode::create(const Config& cfg, net::IoPool& pool, Metrics& metrics) {
  const auto& cc = cfg.cluster;
  auto impl = std::make_unique<Impl>(cfg);
  auto secret = load_cluster_secret(cc);
  if (!secret) return secret.error();
  impl->secret = std::move(*secret);
  // In Kubernetes the pod name is the natural node id (and the Lease holder identity).
  const std::string pod = env_or_empty("POD_NAME");
  impl->node_id = !cc.node_id.empty()              ? cc.node_id
                  : cluster::valid_node_id(pod)    ? pod
                                                   : derive_node_id();
  auto url = cluster::redis::parse_redis_url(cfg.redis.url);
  if (!url) return Error{Errc::config_invalid, "redis.url: " + url.error().message()};
  auto listen = cluster::parse_host_port(cc.listen);
  if (!listen) return Error{Errc::config_invalid, "cluster.listen: not host:port"};
  impl->listen = *listen;

  cluster::redis::RedisBusConfig bc;
  bc.url = *url;
  bc.key_prefix = cfg.redis.key_prefix;
  bc.node_id = impl->node_id;
  bc.stream_max_length = cc.stream_max_length;
  bc.critical_capacity = cc.critical_channel_capacity;
  bc.normal_capacity = cc.publish_channel_capacity;
  bc.catchup_window_ms = int64_t(cc.catchup_window_secs) * 1000;
  impl->bus = std::make_unique<cluster::redis::RedisEventBus>(bc);

  impl->client = std::make_unique<cluster::internode::InternodeClient>(impl->secret, impl->node_id);
  impl->server = std::make_unique<cluster::internode::InternodeServer>(pool, metrics, impl->secret);

  ms::MembershipConfig mc;
  mc.mode = static_cast<ms::Discovery>(cc.discovery_mode);
  mc.interval = std::chrono::milliseconds(int64_t(cc.heartbeat_interval * 1000));
  mc.suspect_threshold = cc.suspect_threshold;
  mc.offline_threshold = cc.offline_threshold;
  mc.lease = std::chrono::milliseconds(int64_t(cc.leader_lease_secs * 1000));
  mc.self.node_id = impl->node_id;
  mc.self.advertise_addr =
      cc.advertise_addr.empty() ? host_name() + ":" + std::to_string(listen->port) : cc.advertise_addr;
  impl->advertise = mc.self.advertise_addr;
  impl->redis_url = *url;
  mc.self.group = cc.node_group;
  mc.self.version = version();
  mc.self.started_ms = wall_ms();
  for (const auto& p : cc.peers) {
    auto hp = cluster::parse_host_port(p, cfg.server.port);
    if (hp) mc.peers.push_back(hp->host + ":" + std::to_string(hp->port));
  }
  mc.redis = *url;
  mc.key_prefix = cfg.redis.key_prefix;

  ms::MembershipDeps deps;
  const auto hb_timeout = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(50), mc.interval / 2);
  auto* client = impl->client.get();
  deps.send_heartbeat = [client, hb_timeout](const std::string& addr, const ms::NodeInfo& self) -> Result<ms::NodeInfo> {
    auto body = client->request(addr, "POST", "/internal/v1/heartbeat", ms::to_json_text(self), hb_timeout);
    if (!body) return body.error();
    return ms::parse_node_info(*body);
  };
  if (cc.discovery_mode == cluster::DiscoveryMode::k8s_dns) {
    const std::string svc = env_or_empty("HEADLESS_SERVICE_NAME");
    const std::string ns = env_or_empty("POD_NAMESPACE");
    if (svc.empty() || ns.empty()) {
      return Error{Errc::config_invalid,
                   "cluster.discovery_mode: k8s_dns needs the environment variables HEADLESS_SERVICE_NAME and "
                   "POD_NAMESPACE"};
    }
    mc.dns_name = svc + "." + ns + ".svc";
    const std::string dns_server = cc.dns_server;
    const uint16_t port = listen->port;
    deps.resolve = [dns_server, port, hb_timeout](const std::string& name) -> Result<std::vector<std::string>> {
      auto ips = cluster::internode::resolve_a(name, dns_server, hb_timeout);
      if (!ips) return ips.error();
      std::vector<std::string> out;
      for (auto& ip : *ips) out.push_back(ip + ":" + std::to_string(port));
      return out;
    };
  }
  if (cc.leader_election_mode == cluster::LeaderElectionMode::redis) {
    ms::RedisLeaderConfig lc;
    lc.key_prefix = cfg.redis.key_prefix;
    lc.node_id = impl->node_id;
    lc.lease = mc.lease;
    deps.elector = std::make_unique<ms::RedisLeaderElector>(*url, lc);
  } else {
    cluster::internode::K8sLeaseConfig kc;
    kc.api_url = cc.k8s_api_url;
    kc.ns = env_or_empty("POD_NAMESPACE");
    kc.identity = impl->node_id;  // the Lease holder is shown as the leader's node id
    if (kc.ns.empty()) {
      return Error{Errc::config_invalid,
                   "cluster.leader_election_mode: k8s_lease needs the environment variable POD_NAMESPACE"};
    }
    kc.lease = mc.lease;
    deps.elector = std::make_unique<cluster::internode::K8sLeaseElector>(kc);
  }
  deps.load = [raw = impl.get()]() { return raw->load ? raw->load() : ms::Load{}; };
  impl->membership = std::make_unique<ms::Membership>(std::move(mc), std::move(deps));

  auto* raw = impl.get();
  impl->server->add("POST", "/internal/v1/heartbeat", [raw](const net::HttpRequest& req, const std::string& sender) {
    auto peer = ms::parse_node_info(req.body);
    if (!peer) return net::json_error(400, peer.error().message());
    if (peer->node_id != sender) return net::json_error(400, "heartbeat node_id differs from X-Castmesh-Node");
    raw->membership->on_heartbeat(*peer);
    return raw->node_reply();
  });
  impl->server->add("GET", "/internal/v1/node",
                    [raw](const net::HttpRequest&, const std::string&) { return raw->node_reply(); });
  return std::unique_ptr<ClusterNode>(new ClusterNode(std::move(impl)));
}

cluster::EventBus& ClusterNode::bus() { return *impl_->bus; }
const std::string& ClusterNode::node_id() const { return impl_->node_id; }
void ClusterNode::on_node_offline(std::function<void(const std::string&)> f) { impl_->offline = std::move(f); }
void ClusterNode::on_node_back(std::function<void(const std::string&)> f) { impl_->back = std::move(f); }
void ClusterNode::on_bus_reconnected(std::function<void()> f) { impl_->bus_up = std::move(f); }
void ClusterNode::set_leader_task(std::function<void()> t) { impl_->leader_task = std::move(t); }
void ClusterNode::set_load(std::function<ms::Load()> f) { impl_->load = std::move(f); }
bool ClusterNode::redis_up() const { return impl_->bus->redis_up(); }
cluster::internode::InternodeServer& ClusterNode::internode() { return *impl_->server; }
const std::string& ClusterNode::secret() const { return impl_->secret; }
const std::string& ClusterNode::advertise_addr() const { return impl_->advertise; }
const cluster::redis::RedisUrl& ClusterNode::redis_url() const { return impl_->redis_url; }
bool ClusterNode::is_leader() const { return impl_->membership->leader().is_leader; }

bool ClusterNode::node_alive(const std::string& id) const {
  if (id == impl_->node_id) return true;
  for (const auto& v : impl_->membership->nodes())
    if (v.info.node_id == id) return v.state == ms::NodeState::alive;
  return false;
}

bool ClusterNode::node_offline(const std::string& id) const {
  if (id == impl_->node_id) return false;
  for (const auto& v : impl_->membership->nodes())
    if (v.info.node_id == id) return v.state == ms::NodeState::offline;
  return true;
}

std::vector<std::pair<std::string, std::string>> ClusterNode::alive_nodes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& v : impl_->membership->nodes())
    if (v.is_self || v.state == ms::NodeState::alive) out.emplace_back(v.info.node_id, v.info.advertise_addr);
  return out;
}

Status ClusterNode::start() {
  auto& d = *impl_;
  if (d.started) return ok_status();
  d.started = true;
  d.bus->set_link_listener([raw = impl_.get()](bool up) {
    if (up) {
      spdlog::info("cluster: event bus connected to Redis");
      if (raw->bus_up) raw->bus_up();
    } else {
      spdlog::warn("cluster: event bus lost Redis; events are queued until it returns");
    }
  });
  if (auto st = d.bus->start(); !st) return st;
  if (auto st = d.server->listen(d.listen.host, d.listen.port); !st) {
    return Error{st.code(), "cluster.listen " + d.cfg.cluster.listen + ": " + st.error().message()};
  }
  spdlog::info("cluster: node {} ({}), inter-node API on {}:{}, discovery {}", d.node_id, d.cfg.cluster.node_group,
               d.listen.host, d.server->port(), ms::discovery_name(d.membership->config().mode));
  d.membership->on_state_change([raw = impl_.get()](const std::string& id, ms::NodeState from, ms::NodeState to) {
    // Membership logs every transition itself.
    if (to == ms::NodeState::offline && raw->offline) raw->offline(id);
    if (from == ms::NodeState::offline && to == ms::NodeState::alive && raw->back) raw->back(id);
  });
  d.membership->set_leader_task([raw = impl_.get()] {
    if (raw->leader_task) raw->leader_task();
  });
  return d.membership->start();
}

void ClusterNode::stop() {
  auto& d = *impl_;
  if (d.stopped) return;
  d.stopped = true;
  if (d.membership) d.membership->stop();
  if (d.server) d.server->stop();
  if (d.bus) d.bus->stop();
}

std::string ClusterNode::nodes_json() const {
  auto& d = *impl_;
  const auto leader = d.membership->leader();
  json::object o;
  o["enabled"] = true;
  o["node_id"] = d.node_id;
  o["is_leader"] = leader.is_leader;
  o["leader_epoch"] = leader.is_leader ? leader.epoch : 0;
  if (leader.leader_node_id.empty()) {
    o["leader"] = nullptr;
  } else {
    o["leader"] = json::object{{"node_id", leader.leader_node_id}, {"epoch", leader.leader_epoch}};
  }
  o["redis"] = d.bus->redis_up() ? "up" : "down";
  o["discovery"] = ms::discovery_name(d.membership->config().mode);
  json::array nodes;
  for (const auto& v : d.membership->nodes()) nodes.push_back(node_view_json(v));
  o["nodes"] = std::move(nodes);
  return json::serialize(o);
}

std::string ClusterNode::metrics_text() const {
  using api::metric_family;
  using api::metric_sample;
  auto& d = *impl_;
  std::string out;
  auto one = [&](const char* name, const char* type, const char* help, uint64_t value) {
    metric_family(out, name, type, help);
    metric_sample(out, name, "", value);
  };
  auto lanes = [&](const char* name, const char* type, const char* help, uint64_t critical, uint64_t normal) {
    metric_family(out, name, type, help);
    metric_sample(out, name, "{lane=\"critical\"}", critical);
    metric_sample(out, name, "{lane=\"normal\"}", normal);
  };
  const auto& bm = d.bus->metrics();
  lanes("castmesh_cluster_events_published_total", "counter", "Events written to Redis.",
        bm.published_total[0].load(), bm.published_total[1].load());
  lanes("castmesh_cluster_events_dropped_total", "counter", "Events dropped because the lane's queue was full.",
        bm.dropped_total[0].load(), bm.dropped_total[1].load());
  lanes("castmesh_cluster_events_queued", "gauge", "Events waiting for Redis.", d.bus->queued(cluster::Lane::critical),
        d.bus->queued(cluster::Lane::normal));
  one("castmesh_cluster_events_received_total", "counter", "Events from other nodes delivered.",
      bm.received_total.load());
  one("castmesh_cluster_events_replayed_total", "counter", "Events delivered from the Redis stream on catch-up.",
      bm.replayed_total.load());
  one("castmesh_cluster_events_duplicate_total", "counter", "Events seen twice and dropped.", bm.duplicate_total.load());
  one("castmesh_cluster_events_malformed_total", "counter", "Malformed events read from Redis.",
      bm.malformed_total.load());
  one("castmesh_cluster_redis_reconnects_total", "counter", "Reconnections of the event bus to Redis.",
      bm.reconnects_total.load());
  one("castmesh_cluster_redis_up", "gauge", "1 while the event bus is connected to Redis.", d.bus->redis_up() ? 1 : 0);
  const auto st = d.membership->stats();
  metric_family(out, "castmesh_cluster_nodes", "gauge", "Nodes by liveness state, this node included.");
  metric_sample(out, "castmesh_cluster_nodes", "{state=\"alive\"}", uint64_t(st.nodes_alive));
  metric_sample(out, "castmesh_cluster_nodes", "{state=\"suspect\"}", uint64_t(st.nodes_suspect));
  metric_sample(out, "castmesh_cluster_nodes", "{state=\"offline\"}", uint64_t(st.nodes_offline));
  one("castmesh_cluster_leader", "gauge", "1 while this node holds the leader lease.", uint64_t(st.leader));
  one("castmesh_cluster_leader_changes_total", "counter", "Leader changes observed.", st.leader_changes_total);
  one("castmesh_cluster_heartbeats_failed_total", "counter", "Heartbeats that failed.", st.heartbeats_failed_total);
  const auto& v = d.server->verifier();
  using cluster::internode::Refusal;
  metric_family(out, "castmesh_internode_requests_refused_total", "counter",
                "Inter-node requests refused (401), by reason.");
  for (auto r : {Refusal::missing, Refusal::bad_signature, Refusal::expired, Refusal::replay, Refusal::bad_node}) {
    metric_sample(out, "castmesh_internode_requests_refused_total",
                  std::string("{reason=\"") + cluster::internode::refusal_name(r) + "\"}", v.refused_total(r));
  }
  return out;
}

}  // namespace castmesh::app
