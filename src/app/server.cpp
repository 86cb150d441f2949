#include "app/server.hpp"

#include <csignal>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "net/http_server.hpp"
#include "net/io_pool.hpp"
#include "app/cluster_node.hpp"
#include "app/static_files.hpp"
#include "auth/accounts.hpp"
#include "cluster/memory/memory_event_bus.hpp"
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
  net::Router router;
  net::IoPool pool;
  std::unique_ptr<net::HttpServer> http;
  std::unique_ptr<rtmp::RtmpServer> rtmp;
  std::unique_ptr<asio::steady_timer> housekeeping;
  std::unique_ptr<asio::steady_timer> presence_flush;
  std::atomic<int64_t> last_session_purge_ms{0};
  int64_t started_ms = wall_ms();
  std::atomic<bool> ready{false};
  bool stopped = false;

  void add_routes() {
    router.add_stream("GET", "/live/", ".flv", flv.handler());
    auto hls_route = [this](std::string_view suffix, bool segment) {
      return [this, suffix, segment](const net::HttpRequest& req) -> net::HttpResponse {
        auto parsed = split_hls(req.path_param, suffix, segment);
        if (!parsed) return net::json_error(400, "malformed stream name");
        auto file = hls.get(parsed->first, parsed->second);
        if (!file) return net::json_error(404, "not found");
        // A viewer is a client address + User-Agent (HLS has no connection to count).
        const auto colon = req.remote.rfind(':');
        hls_viewers.touch(parsed->first, req.remote.substr(0, colon) + "|" + req.header("User-Agent"), mono_ms());
        net::HttpResponse res;
        res.content_type = file->content_type;
        res.shared_body = file->body;
        res.headers.emplace_back("Access-Control-Allow-Origin", "*");
        res.headers.emplace_back("Cache-Control", file->cache_control);
        metrics.add(metrics.bytes_out_total, Proto::hls, file->body->size());
        return res;
      };
    };
    if (cfg.hls.enabled) {
      router.add("GET", "/live/", ".m3u8", hls_route(".m3u8", false));
      router.add("GET", "/live/", ".ts", hls_route(".ts", true));
    }
    api::register_api(router, hub, metrics, [this] { return ready.load(); },
                      [this] { return cluster_node ? cluster_node->metrics_text() : std::string(); });
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
    hub.add_event_listener([this](std::string_view kind, const live::StreamKey& k) {
      if (kind != "publish" || k.app != "live" || !k.stream.starts_with("room-")) return;
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

  /// Cluster mode: hooks between the cluster node and the room manager, then starts it.
  Status start_cluster() {
    if (!cluster_node) return ok_status();
    // A node gone offline: its members leave every room's presence ("sessions invalidated").
    cluster_node->on_node_offline([this](const std::string& id) { rooms->drop_node(id); });
    // A node back (also a new one): presence shares are exchanged again.
    cluster_node->on_node_back([this](const std::string&) { rooms->exchange_presence(); });
    // Back from a Redis outage: re-read the rooms from the database (off the bus thread).
    cluster_node->on_bus_reconnected([this] { asio::post(pool.next(), [this] { rooms->resync(); }); });
    // Global work runs on the leader only.
    cluster_node->set_leader_task([this] { purge(60'000); });
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
  if (d.cfg.hls.enabled) {
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
