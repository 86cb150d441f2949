#include "app/server.hpp"

#include <csignal>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "net/http_server.hpp"
#include "net/io_pool.hpp"
#include "app/cluster_node.hpp"
#include "app/static_files.hpp"
#include "auth/accounts.hpp"
#include "cluster/internode/async_client.hpp"
#include "cluster/internode/internode_server.hpp"
#include "cluster/memory/memory_event_bus.hpp"
#include "cluster/memory/memory_publisher_registry.hpp"
#include "cluster/redis/redis_publisher_registry.hpp"
#include "cluster/relay/hls_proxy.hpp"
#include "cluster/relay/relay_manager.hpp"
#include "cluster/relay/stream_directory.hpp"
#include "proto/api/api.hpp"
#include "proto/api/auth_api.hpp"
#include "proto/api/rooms_api.hpp"
#include "proto/ws/room_gateway.hpp"
#include "room/room_manager.hpp"
#include "store/store.hpp"
#include "proto/hls/hls_service.hpp"
#include "proto/hls/viewer_tracker.hpp"
#include "proto/httpflv/httpflv_service.hpp"
#include "proto/rtmp/rtmp_server.hpp"

namespace castmesh::app {

namespace asio = boost::asio;

namespace {

/// Splits an HLS path_param "app/name" into the stream key and the file name. For segments
/// ("app/stream-12" with suffix ".ts") the stream is the part before the last '-'.
std::optional<std::pair<live::StreamKey, std::string>> split_hls(std::string_view param, std::string_view suffix,
                                                                 bool segment) {
  const auto slash = param.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string app(param.substr(0, slash));
  std::string file(param.substr(slash + 1));
  std::string stream = file;
  if (segment) {
    const auto dash = file.rfind('-');
    if (dash == std::string::npos || dash == 0 || dash + 1 == file.size()) return std::nullopt;
    for (size_t i = dash + 1; i < file.size(); ++i)
      if (file[i] < '0' || file[i] > '9') return std::nullopt;
    stream = file.substr(0, dash);
  }
  live::StreamKey key{std::move(app), std::move(stream)};
  if (!live::validate_name(key.app) || !live::validate_name(key.stream)) return std::nullopt;
  return std::make_pair(std::move(key), file + std::string(suffix));
}

}  // namespace

struct Server::Impl {
  explicit Impl(Config c)
      : cfg(std::move(c)),
        hls(cfg.hls, metrics),
        hub(cfg.live, metrics),
        flv(cfg.httpflv, hub, metrics),
        hls_viewers(std::max<int64_t>(10000, int64_t(cfg.hls.target_duration_secs) * 3000)),
        pool(cfg.server.threads) {}

  // Declaration order is construction order, destruction runs backwards: the HLS service
  // outlives the hub whose Sources hold its segmenters; the I/O pool (and with it any session
  // coroutine still suspended after the grace period) goes before everything sessions use.
  Config cfg;
  Metrics metrics;
  hls::HlsService hls;
  live::StreamHub hub;
  httpflv::HttpFlvService flv;
  hls::ViewerTracker hls_viewers;
  // Watch-together services, created by start() once the database is open.
  std::unique_ptr<store::Store> db;
  // Single node: the in-process bus. Cluster mode: the Redis bus of `cluster_node`. `bus`
  // points at the one in use. The cluster node is stopped explicitly in stop() before the
  // pool; it is declared here so it outlives the room manager subscribed to its bus.
  cluster::MemoryEventBus memory_bus;
  std::unique_ptr<ClusterNode> cluster_node;
  cluster::EventBus* bus = &memory_bus;
  std::unique_ptr<auth::Accounts> accounts;
  std::unique_ptr<room::RoomManager> rooms;
  std::unique_ptr<ws::RoomGateway> gateway;
  std::unique_ptr<StaticFiles> web;
  // Which node publishes which stream: the memory registry on a single node, Redis in a cluster.
  std::unique_ptr<cluster::PublisherRegistry> publishers;
  std::unique_ptr<cluster::StreamDirectory> directory;
  net::Router router;
  net::IoPool pool;
  // Cluster mode: edge relays (on one of the pool's contexts) and the HLS proxy of other nodes'
  // streams; declared after the pool so they go first.
  std::unique_ptr<cluster::RelayManager> relays;
  std::unique_ptr<cluster::HlsProxy> hls_proxy;
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<rtmp::RtmpServer> rtmp;
  std::unique_ptr<asio::steady_timer> housekeeping;
  std::unique_ptr<asio::steady_timer> presence_flush;
  std::atomic<int64_t> last_session_purge_ms{0};
  int64_t started_ms = wall_ms();
  std::atomic<bool> ready{false};
  bool stopped = false;

  const std::string& self_id() const {
    static const std::string kLocal = "local";
    return cluster_node ? cluster_node->node_id() : kLocal;
  }

  net::HttpResponse hls_response(const hls::HlsService::HlsFile& file) {
    net::HttpResponse res;
    res.content_type = file.content_type;
    res.shared_body = file.body;
    res.headers.emplace_back("Access-Control-Allow-Origin", "*");
    res.headers.emplace_back("Cache-Control", file.cache_control);
    metrics.add(metrics.bytes_out_total, Proto::hls, file.body->size());
    return res;
  }

  /// An HLS read: the local store, or — in a cluster without shared storage — the owner's
  /// objects through the proxy cache (for the cleanup grace also after the owner left).
  /// Blocking-work executor for store reads that may block (the oss store's S3 GETs): at most
  /// kMaxBlocking reads queued or running; beyond that the request gets 503 + Retry-After.
  static constexpr int kMaxBlocking = 256;
  std::unique_ptr<asio::thread_pool> blocking;
  std::atomic<int> blocking_inflight{0};

  static net::HttpResponse busy_response() {
    auto r = net::json_error(503, "busy, retry");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }

  /// This node's HLS object: from memory at once, or — when the store's reads block (S3) — on
  /// the blocking-work executor, so the I/O thread never waits. `busy` is set when that
  /// executor is full.
  asio::awaitable<std::optional<hls::HlsService::HlsFile>> local_hls(const live::StreamKey& key,
                                                                     const std::string& file_name,
                                                                     bool* busy = nullptr) {
    auto f = hls.peek(key, file_name);
    if (f || !hls.store().reads_block() || !blocking) co_return f;
    if (blocking_inflight.fetch_add(1) >= kMaxBlocking) {
      blocking_inflight.fetch_sub(1);
      if (busy) *busy = true;
      co_return std::nullopt;
    }
    // A named awaitable, not a lambda temporary: GCC 12 destroys temporaries of a co_await
    // full-expression twice when the coroutine suspends inside it.
    auto read = blocking_get(key, file_name);
    f = co_await asio::co_spawn(*blocking, std::move(read), asio::use_awaitable);
    blocking_inflight.fetch_sub(1);
    co_return f;
  }

  asio::awaitable<std::optional<hls::HlsService::HlsFile>> blocking_get(live::StreamKey key, std::string file_name) {
    co_return hls.get(key, file_name);
  }

  asio::awaitable<net::HttpResponse> serve_hls(const net::HttpRequest& req, std::string_view suffix, bool segment) {
    auto parsed = split_hls(req.path_param, suffix, segment);
    if (!parsed) co_return net::json_error(400, "malformed stream name");
    const auto& [key, file_name] = *parsed;
    std::optional<hls::HlsService::HlsFile> file;
    bool unreachable = false;
    bool blocking_busy = false;
    if (hls_proxy) {
      const int64_t grace = int64_t(cfg.hls.cleanup_grace_secs) * 1000;
      const std::string path = key.app + "/" + key.stream + "/" + file_name;
      auto from_node = [&](const cluster::PublisherEntry& owner) -> asio::awaitable<void> {
        auto blob = co_await hls_proxy->get(owner, path, !segment);
        if (!blob) {
          unreachable = true;
          co_return;
        }
        if (*blob) file = hls.make_file(segment, std::move(*blob));
      };
      auto owner = directory->owner_or_recent(key.str(), grace);
      if (owner && owner->node_id != self_id()) co_await from_node(*owner);
      else file = co_await local_hls(key, file_name);
      // A new owner without the object yet (its first segment is still being cut after a
      // failover, or a player asks for the old owner's last segments): the previous owner's.
      if (!file) {
        if (auto prev = directory->previous_owner(key.str(), grace); prev && prev->node_id != self_id()) {
          unreachable = false;
          co_await from_node(*prev);
        }
      }
    }
    if (!file) file = co_await local_hls(key, file_name, &blocking_busy);
    if (!file && blocking_busy) co_return busy_response();
    if (!file && unreachable) co_return net::json_error(503, "the publishing node cannot be reached");
    if (!file) co_return net::json_error(404, "not found");
    // A viewer is a client address + User-Agent (HLS has no connection to count).
    const auto colon = req.remote.rfind(':');
    hls_viewers.touch(key, req.remote.substr(0, colon) + "|" + req.header("User-Agent"), mono_ms());
    co_return hls_response(*file);
  }

  /// Cluster mode: the routes of the inter-node API that serve streams to other nodes.
  void add_internode_stream_routes() {
    auto& in = cluster_node->internode();
    // An edge's relay pull: the owner streams FLV while it publishes the stream itself under the
    // epoch the edge names; anything else is 404 so the edge re-reads the registry.
    in.add_stream("GET", "/internal/v1/relay/", ".flv",
                  [this](asio::ip::tcp::socket& s, const net::HttpRequest& req,
                         const std::string& sender) -> asio::awaitable<void> {
                    auto key = httpflv::parse_stream_path(req.path_param);
                    auto owner = key ? directory->owner(key->str()) : std::nullopt;
                    Proto p = Proto::rtmp;
                    bool mine = key && owner && owner->node_id == self_id() && hub.is_publishing(*key, &p) &&
                                p != Proto::relay;
                    if (mine && req.query.starts_with("epoch=") && req.query.substr(6) != std::to_string(owner->epoch))
                      mine = false;
                    if (!mine) {
                      co_await net::write_json_error(s, 404, "not the stream's owner");
                      co_return;
                    }
                    spdlog::info("relay: node {} pulls {}", sender, key->str());
                    co_await flv.play(s, req, *key, Proto::relay);
                  });
    // The owner's HLS objects for other nodes' proxies: /internal/v1/hls/{app}/{stream}/{file}.
    in.add_async("GET", "/internal/v1/hls/", "",
                 [this](const net::HttpRequest& req, const std::string&) -> asio::awaitable<net::HttpResponse> {
                   const std::string& p = req.path_param;
                   const auto a = p.find('/');
                   const auto b = a == std::string::npos ? a : p.find('/', a + 1);
                   if (b == std::string::npos) co_return net::json_error(400, "want app/stream/file");
                   live::StreamKey key{p.substr(0, a), p.substr(a + 1, b - a - 1)};
                   if (!live::validate_name(key.app) || !live::validate_name(key.stream))
                     co_return net::json_error(400, "malformed stream name");
                   auto file = hls.peek(key, p.substr(b + 1));
                   if (!file) co_return net::json_error(404, "not found");
                   net::HttpResponse res;
                   res.content_type = file->content_type;
                   res.shared_body = file->body;
                   co_return res;
                 });
    // This node's share of /api/v1/streams: per registry entry, its players here and whether it relays.
    in.add("GET", "/internal/v1/streams", [this](const net::HttpRequest&, const std::string&) {
      net::HttpResponse res;
      res.content_type = "application/json";
      res.body = local_stream_share();
      return res;
    });
  }

  /// {"node_id", "streams":[{"key", "relay", "publishing", "viewers":{"rtmp","httpflv","hls","total"},
  ///  "stats": <the /api/v1/streams object when the stream has a Source here>}]}
  std::string local_stream_share() {
    namespace json = boost::json;
    json::array arr;
    const int64_t now = mono_ms();
    for (const auto& e : directory->entries()) {
      const auto slash = e.stream.find('/');
      live::StreamKey k{e.stream.substr(0, slash), e.stream.substr(slash + 1)};
      json::object o;
      o["key"] = e.stream;
      o["relay"] = relays && relays->relaying(e.stream);
      Proto p = Proto::rtmp;
      o["publishing"] = hub.is_publishing(k, &p) && p != Proto::relay;
      const uint64_t rtmp_n = hub.subscriber_count(k, Proto::rtmp), flv_n = hub.subscriber_count(k, Proto::httpflv),
                     hls_n = cfg.hls.enabled ? hls_viewers.count(k, now) : 0;
      o["viewers"] = json::object{{"rtmp", rtmp_n}, {"httpflv", flv_n}, {"hls", hls_n}, {"total", rtmp_n + flv_n + hls_n}};
      if (auto st = hub.stats(k)) o["stats"] = json::parse(api::stream_json(*st));
      arr.push_back(std::move(o));
    }
    return json::serialize(json::object{{"node_id", self_id()}, {"streams", std::move(arr)}});
  }

  /// GET /api/v1/streams in a cluster: every stream of the registry, with its owner, epoch and,
  /// per alive node, its viewers and whether it relays (each node answers for itself).
  asio::awaitable<net::HttpResponse> cluster_streams(const net::HttpRequest&) {
    namespace json = boost::json;
    cluster::internode::Signer signer{cluster_node->secret(), cluster_node->node_id()};
    std::vector<std::pair<std::string, json::object>> shares;  // node id, its share
    for (const auto& [id, addr] : cluster_node->alive_nodes()) {
      std::string body;
      if (id == self_id()) {
        body = local_stream_share();
      } else {
        const std::string target = "/internal/v1/streams";
        auto r = co_await cluster::internode::async_fetch(signer, addr, target, std::chrono::milliseconds(1000), 4 << 20);
        if (!r || r->status != 200) continue;
        body.assign(r->body.begin(), r->body.end());
      }
      boost::system::error_code ec;
      auto v = json::parse(body, ec);
      if (!ec && v.is_object()) shares.emplace_back(id, std::move(v.as_object()));
    }
    json::array out;
    for (const auto& e : directory->entries()) {
      json::object o;
      json::array nodes;
      for (auto& [id, share] : shares) {
        const auto* streams = share.if_contains("streams");
        if (!streams || !streams->is_array()) continue;
        for (const auto& s : streams->as_array()) {
          if (!s.is_object() || s.as_object().if_contains("key") == nullptr || s.at("key") != json::value(e.stream))
            continue;
          const auto& so = s.as_object();
          if (id == e.node_id && so.if_contains("stats")) o = so.at("stats").as_object();
          json::object n;
          n["node_id"] = id;
          n["viewers"] = so.if_contains("viewers") ? so.at("viewers") : json::value(json::object{});
          n["relay"] = so.if_contains("relay") ? so.at("relay") : json::value(false);
          nodes.push_back(std::move(n));
        }
      }
      if (o.empty()) {
        const auto slash = e.stream.find('/');
        o["key"] = e.stream;
        o["app"] = e.stream.substr(0, slash);
        o["stream"] = e.stream.substr(slash + 1);
        o["publishing"] = true;
      }
      // Players on every node (relays are not players), so a load balancer's view of the stream
      // is whole; `nodes` splits them.
      json::object total{{"rtmp", 0}, {"httpflv", 0}, {"hls", 0}, {"total", 0}};
      uint64_t relaying = 0;
      for (const auto& n : nodes) {
        const auto& no = n.as_object();
        if (no.at("relay").is_bool() && no.at("relay").as_bool()) ++relaying;
        if (!no.at("viewers").is_object()) continue;
        for (auto& [k, v] : total) {
          const auto* x = no.at("viewers").as_object().if_contains(k);
          if (x && x->is_number()) v = v.to_number<uint64_t>() + x->to_number<uint64_t>();
        }
      }
      o["subscribers"] = std::move(total);
      o["relays"] = relaying;
      o["owner"] = e.node_id;
      o["epoch"] = e.epoch;
      o["codecs"] = e.codecs;
      o["started_ms"] = e.started_ms;
      o["nodes"] = std::move(nodes);
      out.push_back(std::move(o));
    }
    net::HttpResponse res;
    res.content_type = "application/json";
    res.headers.emplace_back("Cache-Control", "no-store");
    res.body = json::serialize(json::object{{"streams", std::move(out)}});
    co_return res;
  }

  void add_routes() {
    router.add_stream("GET", "/live/", ".flv", flv.handler());
    if (cfg.hls.enabled) {
      router.add_async("GET", "/live/", ".m3u8",
                       [this](const net::HttpRequest& r) { return serve_hls(r, ".m3u8", false); });
      router.add_async("GET", "/live/", ".ts", [this](const net::HttpRequest& r) { return serve_hls(r, ".ts", true); });
    }
    if (cluster_node) {
      router.add_async("GET", "/api/v1/streams", [this](const net::HttpRequest& r) { return cluster_streams(r); });
    }
    api::register_api(router, hub, metrics, [this] { return ready.load(); },
                      [this] { return cluster_node ? cluster_node->metrics_text() + stream_metrics_text() : std::string(); });
    router.add("GET", "/api/v1/cluster/nodes", [this](const net::HttpRequest&) {
      net::HttpResponse res;
      res.content_type = "application/json";
      res.headers.emplace_back("Cache-Control", "no-store");
      res.body = cluster_node ? cluster_node->nodes_json() : single_node_json(self_info());
      return res;
    });
    // The WebSocket route must precede the rooms API, which matches every /api/v1/rooms/ path.
    router.add_stream("GET", ws::kRoutePrefix, ws::kRouteSuffix, gateway->handler());
    api::register_auth_api(router, *accounts);
    api::register_rooms_api(router, *rooms, *accounts, api::RoomsApiConfig{"", cfg.rtmp.port});
    if (!cfg.web.root.empty()) {
      web = std::make_unique<StaticFiles>(cfg.web.root);
      if (!web->load_error().empty()) spdlog::warn("web: {}", web->load_error());
      else spdlog::info("web: serving {} files from {}", web->file_count(), cfg.web.root);
      auto serve = [this](const net::HttpRequest& req) { return web->serve(req.path); };
      router.add("GET", "/", serve);
      router.add("GET", "/", "", serve);  // last: everything no other route matched
    }
  }

  /// Publishing with a room's secret publish key puts the stream under the room's public
  /// name (`live/room-{id}`), so viewers never learn the key. With
  /// live.require_publish_key, other names are refused.
  Result<live::StreamKey> authorize_publish(const live::StreamKey& k) {
    auto room = rooms->room_for_publish_key(k.stream);
    if (room) {
      const std::string name = room::room_stream_name(room->id);  // "live/room-{id}"
      return live::StreamKey{name.substr(0, name.find('/')), name.substr(name.find('/') + 1)};
    }
    if (room.code() == Errc::unavailable) return Error{Errc::unavailable, "database unavailable"};
    if (cfg.publish_auth.require_publish_key) return Error{Errc::forbidden, "not a room publish key"};
    return k;
  }

  Status open_watch_together() {
    auto opened = store::open_store(cfg.database.url);
    if (!opened) return Error{opened.code(), "database.url: " + opened.error().message()};
    db = std::move(opened.value());
    accounts = std::make_unique<auth::Accounts>(*db, cfg.auth);
    rooms = std::make_unique<room::RoomManager>(*db, *bus, cfg.rooms, metrics, api::argon2_room_passwords());
    gateway = std::make_unique<ws::RoomGateway>(*rooms, api::room_authenticator(*accounts),
                                                ws::ws_config_from(cfg.rooms), metrics);
    hub.set_publish_authorizer([this](const live::StreamKey& k, std::string_view) { return authorize_publish(k); });
    // A room's own stream going live shows up in that room's playlist (one store write per publish).
    hub.add_event_listener([this](const live::StreamEvent& ev) {
      const auto& k = ev.key;
      if (ev.kind != live::StreamEvent::Kind::publish || ev.proto == Proto::relay || k.app != "live" ||
          !k.stream.starts_with("room-"))
        return;
      if (auto st = rooms->on_room_stream_published(k.stream.substr(5)); !st) {
        spdlog::warn("room stream {}: {}", k.str(), st.error().message());
      }
    });
    return ok_status();
  }

  /// This node's load as shown to the other nodes.
  cluster::membership::Load load() const {
    cluster::membership::Load l;
    if (rooms) {
      const auto rs = rooms->stats();
      l.connections = rs.connections;
      l.rooms = rs.rooms_loaded;
    }
    l.streams = metrics.streams.load();
    return l;
  }

  cluster::membership::NodeInfo self_info() const {
    cluster::membership::NodeInfo i;
    i.node_id = "local";
    i.version = version();
    i.advertise_addr = cfg.server.host + ":" + std::to_string(http ? http->port() : cfg.server.port);
    i.group = cfg.cluster.node_group;
    i.started_ms = started_ms;
    i.load = load();
    return i;
  }

  /// Cluster mode: builds the cluster node (its Redis bus replaces the in-process one).
  Status open_cluster() {
    if (!cfg.cluster.enabled) return ok_status();
    auto node = ClusterNode::create(cfg, pool, metrics);
    if (!node) return node.error();
    cluster_node = std::move(*node);
    bus = &cluster_node->bus();
    return ok_status();
  }

  /// The publisher registry and this node's directory of it; in a cluster also the edge relays
  /// and the HLS proxy, with their inter-node routes. Started by start_streams().
  void open_streams() {
    cluster::StreamDirectoryConfig dc;
    dc.node_id = self_id();
    if (cluster_node) {
      dc.addr = cluster_node->advertise_addr();
      dc.refresh_interval_ms = std::max<int64_t>(int64_t(cfg.cluster.heartbeat_interval * 1000), 100);
      dc.lease_ms = dc.refresh_interval_ms * (int64_t(cfg.cluster.offline_threshold) + 2);
      dc.publish_takeover = cfg.publish_auth.publish_takeover;
      publishers = std::make_unique<cluster::redis::RedisPublisherRegistry>(cluster_node->redis_url(),
                                                                            cfg.redis.key_prefix,
                                                                            std::chrono::milliseconds(1000));
    } else {
      publishers = std::make_unique<cluster::MemoryPublisherRegistry>();
    }
    directory = std::make_unique<cluster::StreamDirectory>(dc, *publishers, hub, *bus);
    if (cfg.hls.enabled) {
      // A publisher that moves to another node continues the HLS playlist there: the sequence
      // goes on (skipping what the old owner may have cut after its last report, one refresh
      // interval) after an EXT-X-DISCONTINUITY.
      const uint64_t margin =
          uint64_t(dc.refresh_interval_ms / (std::max<uint32_t>(cfg.hls.target_duration_secs, 1) * 1000)) + 2;
      directory->set_continuation([this](const live::StreamKey& k) { return hls.continuation(k); },
                                  [this, margin](const live::StreamKey& k, const std::string& text) {
                                    if (hls.continue_from(k, text, margin))
                                      spdlog::info("hls {}: continuing the playlist of the previous owner ({} + {})",
                                                   k.str(), text, margin);
                                  });
    }
    if (!cluster_node) return;
    directory->set_node_alive([this](const std::string& id) { return cluster_node->node_alive(id); });
    cluster::internode::Signer signer{cluster_node->secret(), cluster_node->node_id()};
    relays = std::make_unique<cluster::RelayManager>(cfg.relay, hub, *directory, signer, pool.next(), metrics);
    // Shared stores (a shared file directory, S3) are read directly by every node.
    if (cfg.hls.enabled && !cfg.hls.shared_storage && cfg.hls.store != hls::StoreKind::oss) {
      cluster::HlsProxyConfig pc;
      pc.playlist_ttl_ms = cfg.hls.proxy_playlist_ttl_ms;
      pc.max_bytes = cfg.hls.proxy_cache_bytes;
      hls_proxy = std::make_unique<cluster::HlsProxy>(pc, signer);
    }
    add_internode_stream_routes();
  }

  void start_streams() {
    directory->start();
    if (relays) relays->start();
  }

  /// Prometheus lines of the publisher registry, relays and HLS proxy (cluster mode).
  std::string stream_metrics_text() const {
    std::string out;
    auto one = [&](const char* name, const char* type, const char* help, uint64_t v) {
      api::metric_family(out, name, type, help);
      api::metric_sample(out, name, "", v);
    };
    const auto ds = directory->stats();
    one("castmesh_registry_streams", "gauge", "Streams in the publisher registry (this node's copy).", ds.entries);
    one("castmesh_registry_held", "gauge", "Registry entries this node holds.", ds.held);
    one("castmesh_registry_claims_lost_total", "counter", "Publishes refused because another node holds the stream.",
        ds.claims_lost);
    one("castmesh_registry_takeovers_total", "counter", "Claims that replaced another holder.", ds.takeovers);
    one("castmesh_registry_fenced_total", "counter", "Local publishes ended because another node took the stream.",
        ds.fenced);
    one("castmesh_registry_errors_total", "counter", "Registry calls that failed.", ds.registry_errors);
    if (relays) {
      const auto& rm = relays->metrics();
      one("castmesh_relays_active", "gauge", "Edge relays pulling a stream from its owner.",
          uint64_t(std::max<int64_t>(0, rm.active.load())));
      one("castmesh_relay_started_total", "counter", "Edge relays started.", rm.started_total.load());
      one("castmesh_relay_reconnects_total", "counter", "Upstream reconnections of edge relays.",
          rm.reconnects_total.load());
      one("castmesh_relay_failures_total", "counter", "Upstream pulls that failed.", rm.failures_total.load());
      one("castmesh_relay_bytes_total", "counter", "Bytes edge relays received from owners.", rm.bytes_total.load());
    }
    if (hls_proxy) {
      const auto& pm = hls_proxy->metrics();
      one("castmesh_hls_proxy_hits_total", "counter", "HLS reads of other nodes' streams served from the cache.",
          pm.hits.load());
      one("castmesh_hls_proxy_misses_total", "counter", "HLS reads of other nodes' streams fetched from the owner.",
          pm.misses.load());
      one("castmesh_hls_proxy_errors_total", "counter", "HLS fetches from owners that failed.", pm.errors.load());
      one("castmesh_hls_proxy_cache_bytes", "gauge", "Bytes in the HLS proxy cache.", hls_proxy->bytes());
    }
    return out;
  }

  /// Cluster mode: hooks between the cluster node and the room manager, then starts it.
  Status start_cluster() {
    if (!cluster_node) return ok_status();
    // A node gone offline: its members leave every room's presence ("sessions invalidated").
    cluster_node->on_node_offline([this](const std::string& id) {
      rooms->drop_node(id);
      // "The node's publisher sessions are invalidated": the leader removes its registry entries.
      if (cluster_node->is_leader()) directory->remove_node(id);
    });
    // A node back (also a new one): presence shares are exchanged again.
    cluster_node->on_node_back([this](const std::string&) { rooms->exchange_presence(); });
    // Back from a Redis outage: re-read the rooms from the database (off the bus thread).
    cluster_node->on_bus_reconnected([this] { asio::post(pool.next(), [this] { rooms->resync(); }); });
    // Global work runs on the leader only.
    cluster_node->set_leader_task([this] {
      purge(60'000);
      // Entries of nodes that went offline while another node led (their leases also expire).
      std::set<std::string> gone;
      for (const auto& e : directory->entries())
        if (cluster_node->node_offline(e.node_id)) gone.insert(e.node_id);
      for (const auto& id : gone) directory->remove_node(id);
    });
    cluster_node->set_load([this] { return load(); });
    return cluster_node->start();
  }

  /// Global clean-up, at most once per `every_ms`: expired login sessions and idle guest
  /// users. A single node runs it hourly from housekeeping; in a cluster only the leader runs
  /// it, once a minute.
  void purge(int64_t every_ms) {
    if (mono_ms() - last_session_purge_ms < every_ms) return;
    last_session_purge_ms = mono_ms();
    if (auto n = accounts->purge_expired_sessions(); n && *n > 0) spdlog::info("auth: removed {} expired sessions", *n);
    if (auto n = accounts->purge_idle_guests(); n && *n > 0) spdlog::info("rooms: removed {} idle guest users", *n);
  }

  void start_housekeeping() {
    housekeeping = std::make_unique<asio::steady_timer>(pool.next());
    asio::co_spawn(
        housekeeping->get_executor(),
        [this]() -> asio::awaitable<void> {
          for (;;) {
            housekeeping->expires_after(std::chrono::seconds(1));
            auto [ec] = co_await housekeeping->async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            hub.sweep();
            hls.sweep();
            hls_viewers.prune(mono_ms());
            if (!cluster_node) purge(3'600'000);
          }
        },
        asio::detached);
  }

  /// Sends the room presence updates held back by coalescing (RoomManager::flush_presence).
  void start_presence_flush() {
    presence_flush = std::make_unique<asio::steady_timer>(pool.next());
    asio::co_spawn(
        presence_flush->get_executor(),
        [this]() -> asio::awaitable<void> {
          for (;;) {
            rooms->flush_presence();
            presence_flush->expires_after(std::chrono::milliseconds(room::RoomManager::kPresenceIntervalMs));
            auto [ec] = co_await presence_flush->async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
          }
        },
        asio::detached);
  }
};

Server::Server(Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}

Server::~Server() { stop(); }

Status Server::start() {
  auto& d = *impl_;
  if (auto st = d.open_cluster(); !st) return st;
  if (auto st = d.open_watch_together(); !st) return st;
  d.open_streams();
  if (d.cfg.hls.enabled) {
    if (d.hls.store().reads_block()) d.blocking = std::make_unique<asio::thread_pool>(4);
    d.hub.add_observer_factory(d.hls.observer_factory());
    d.hub.set_subscriber_counter(Proto::hls, [&d](const live::StreamKey& k) { return d.hls_viewers.count(k, mono_ms()); });
  }
  d.add_routes();
  d.pool.run();
  if (d.cfg.rtmp.enabled) {
    d.rtmp = std::make_unique<rtmp::RtmpServer>(d.pool.contexts(), d.cfg.rtmp, d.hub, d.metrics);
    if (auto st = d.rtmp->listen(); !st) return st;
    spdlog::info("rtmp: listening on {}:{}", d.cfg.rtmp.host, d.rtmp->port());
  }
  d.http = std::make_unique<net::HttpServer>(d.pool, d.cfg.server, d.router, d.metrics);
  if (auto st = d.http->listen(d.cfg.server.host, d.cfg.server.port); !st) return st;
  spdlog::info("http: listening on {}:{} (API, HTTP-FLV, HLS)", d.cfg.server.host, d.http->port());
  if (auto st = d.start_cluster(); !st) return st;
  d.start_streams();
  d.start_housekeeping();
  d.start_presence_flush();
  d.ready = true;
  return ok_status();
}

void Server::stop() {
  auto& d = *impl_;
  if (d.stopped) return;
  d.stopped = true;
  d.ready = false;
  const int64_t deadline = mono_ms() + int64_t(d.cfg.server.shutdown_grace_secs) * 1000;
  spdlog::info("stopping: closing listeners and sessions (grace {} s)", d.cfg.server.shutdown_grace_secs);
  if (d.rtmp) d.rtmp->stop();
  // Room members get a close frame (1001) first; then the HTTP server cuts what is left.
  if (d.rooms) d.rooms->stop();
  for (int i = 0; i < 50 && d.gateway && d.gateway->stats().connections > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (d.http) d.http->stop();
  if (d.relays) d.relays->stop();
  if (d.directory) d.directory->stop();  // releases this node's registry entries
  if (d.cluster_node) d.cluster_node->stop();
  d.hub.stop();
  d.hls.stop();
  if (d.housekeeping) asio::post(d.housekeeping->get_executor(), [t = d.housekeeping.get()] { t->cancel(); });
  if (d.presence_flush) asio::post(d.presence_flush->get_executor(), [t = d.presence_flush.get()] { t->cancel(); });
  // Let sessions notice and finish their last writes.
  while (mono_ms() < deadline) {
    const bool http_done = !d.http || d.http->connections() == 0;
    const bool rtmp_done = d.metrics.connections[Metrics::idx(Proto::rtmp)].load() <= 0;
    if (http_done && rtmp_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  d.pool.stop();
  d.pool.join();
  if (d.blocking) d.blocking->join();
  spdlog::info("stopped");
}

uint16_t Server::http_port() const { return impl_->http ? impl_->http->port() : 0; }
uint16_t Server::rtmp_port() const { return impl_->rtmp ? impl_->rtmp->port() : 0; }

const char* version() noexcept { return CASTMESH_VERSION; }

int run_until_signal(Config cfg) {
  // Block the stop signals in every thread (the I/O threads inherit the mask); this thread
  // waits for them synchronously.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Server server(std::move(cfg));
  if (auto st = server.start(); !st) {
    spdlog::error("start-up failed: {}", st.error().message());
    server.stop();
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.stop();
  return 0;
}

}  // namespace castmesh::app
