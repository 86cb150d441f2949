#include "proto/api/api.hpp"

#include <utility>

namespace castmesh::api {

namespace {

net::HttpResponse json_ok(std::string body, unsigned status = 200) {
  net::HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

net::HttpResponse api_error(unsigned status, std::string_view msg) {
  net::HttpResponse r = net::json_error(status, msg);
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  return r;
}

net::HttpResponse api_ok(std::string body) {
  net::HttpResponse r = json_ok(std::move(body));
  // Read-only JSON: dashboards on other origins may poll it.
  r.headers.emplace_back("Access-Control-Allow-Origin", "*");
  return r;
}

}  // namespace

void register_api(net::Router& r, live::StreamHub& hub, Metrics& m, std::function<bool()> ready,
                  std::function<std::string()> extra_metrics) {
  r.add("GET", "/api/v1/streams", [&hub](const net::HttpRequest&) { return api_ok(streams_json(hub.list())); });

  r.add("GET", "/api/v1/streams/", "", [&hub](const net::HttpRequest& req) {
    // path_param is "{app}/{stream}" (percent-decoded).
    std::string_view p = req.path_param;
    size_t slash = p.find('/');
    if (slash == std::string_view::npos || p.find('/', slash + 1) != std::string_view::npos) {
      return api_error(404, "stream not found");
    }
    live::StreamKey key{std::string(p.substr(0, slash)), std::string(p.substr(slash + 1))};
    if (!live::validate_name(key.app).ok() || !live::validate_name(key.stream).ok()) {
      return api_error(400, "bad stream name");
    }
    auto st = hub.stats(key);
    if (!st) return api_error(404, "stream not found");
    return api_ok(stream_json(*st));
  });

  r.add("GET", "/healthz", [](const net::HttpRequest&) { return json_ok(R"({"status":"ok"})"); });

  r.add("GET", "/readyz", [ready = std::move(ready)](const net::HttpRequest&) {
    if (!ready || ready()) return json_ok(R"({"status":"ready"})");
    return json_ok(R"({"status":"not ready"})", 503);
  });

  r.add("GET", "/metrics", [&m, extra = std::move(extra_metrics)](const net::HttpRequest&) {
    net::HttpResponse res;
    res.content_type = std::string(kPrometheusContentType);
    res.body = prometheus_text(m, resident_memory_bytes());
    if (extra) res.body += extra();
    res.headers.emplace_back("Cache-Control", "no-store");
    return res;
  });
}

}  // namespace castmesh::api
