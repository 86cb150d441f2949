#pragma once
/// \file HTTP JSON API, health probes and Prometheus metrics.
///
/// Routes (all GET, HEAD too):
///   /api/v1/streams                 -> 200 {"streams":[<stream>...]} (sorted by key)
///   /api/v1/streams/{app}/{stream}  -> 200 <stream> | 400 bad name | 404 {"error":"stream not found"}
///   /healthz                        -> 200 {"status":"ok"} while the process serves HTTP
///   /readyz                         -> 200 {"status":"ready"} when ready(), else 503 {"status":"not ready"}
///   /metrics                        -> 200 Prometheus text exposition format 0.0.4
///
/// <stream> is
///   {"key":"app/stream","app":"app","stream":"stream","publishing":true,
///    "video":{"codec":"H264","width":1280,"height":720,"fps":30},
///    "audio":{"codec":"AAC","sample_rate":44100,"channels":2},
///    "bitrate_kbps":2500,"subscribers":{"rtmp":0,"httpflv":1,"hls":2,"total":3},
///    "uptime_ms":12345,"bytes_in":1234567,"dropped_gops":0}
/// Codecs are "" when unknown. fps is rounded to 0.01 (an integer when whole). All numbers
/// are non-negative.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/metrics.hpp"
#include "live/stream_hub.hpp"
#include "net/http_server.hpp"

namespace castmesh::api {

/// Content-Type of /metrics (Prometheus text format 0.0.4).
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

/// Adds the routes above to `r`. `hub`, `m` and `ready` must outlive the router's server.
/// `ready` is called on an io thread per /readyz request; it must be cheap and thread-safe
/// (an empty function means "always ready"). `extra_metrics` (optional) returns more
/// exposition lines (with their # HELP / # TYPE) appended to /metrics, e.g. the cluster's.
void register_api(net::Router& r, live::StreamHub& hub, Metrics& m, std::function<bool()> ready,
                  std::function<std::string()> extra_metrics = {});

/// One stream as the JSON object described above.
std::string stream_json(const live::StreamStats& s);

/// {"streams":[...]} in the given order.
std::string streams_json(const std::vector<live::StreamStats>& streams);

/// The /metrics body: every counter and gauge of `m` with `# HELP` and `# TYPE` lines,
/// per-protocol series labelled {protocol="rtmp|httpflv|hls|http"}, plus
/// process_resident_memory_bytes = `rss_bytes`. Lines end with '\n'.
std::string prometheus_text(const Metrics& m, uint64_t rss_bytes);

/// Appends the `# HELP` and `# TYPE` lines of one metric family (Prometheus text format 0.0.4).
void metric_family(std::string& out, std::string_view name, std::string_view type, std::string_view help);

/// Appends one sample line `name{labels} value`; `labels` is "" or `{key="value",...}`.
void metric_sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value);

/// Resident set size of this process in bytes, from /proc/self/statm (field 2 x page size);
/// 0 when it cannot be read.
uint64_t resident_memory_bytes();

}  // namespace castmesh::api
