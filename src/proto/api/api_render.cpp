// Pure rendering of API bodies (JSON, Prometheus text): no sockets, no hub access.

#include <unistd.h>

#include <cmath>
#include <fstream>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include "proto/api/api.hpp"

namespace castmesh::api {

namespace json = boost::json;

namespace {

json::value fps_value(double fps) {
  if (!std::isfinite(fps) || fps <= 0) return json::value(static_cast<int64_t>(0));
  double rounded = std::round(fps * 100.0) / 100.0;
  if (rounded == std::floor(rounded)) return json::value(static_cast<int64_t>(rounded));
  return json::value(rounded);
}

json::object stream_object(const live::StreamStats& s) {
  json::object o;
  o["key"] = s.key.str();
  o["app"] = s.key.app;
  o["stream"] = s.key.stream;
  o["publishing"] = s.publishing;

  json::object video;
  video["codec"] = s.video_codec;
  video["width"] = s.width;
  video["height"] = s.height;
  video["fps"] = fps_value(s.fps);
  o["video"] = std::move(video);

  json::object audio;
  audio["codec"] = s.audio_codec;
  audio["sample_rate"] = s.audio_sample_rate;
  audio["channels"] = s.audio_channels;
  o["audio"] = std::move(audio);

  o["bitrate_kbps"] = s.bitrate_kbps;

  json::object subs;
  uint64_t total = 0;
  for (Proto p : {Proto::rtmp, Proto::httpflv, Proto::hls}) {
    uint64_t n = s.subscribers[Metrics::idx(p)];
    subs[proto_name(p)] = n;
    total += n;
  }
  subs["total"] = total;
  o["subscribers"] = std::move(subs);

  o["uptime_ms"] = s.uptime_ms < 0 ? int64_t{0} : s.uptime_ms;
  o["bytes_in"] = s.bytes_in;
  o["dropped_gops"] = s.dropped_gops;
  return o;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  metric_family(out, name, type, help);
}

template <typename T>
void sample(std::string& out, std::string_view name, T value) {
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

template <typename T>
void per_proto(std::string& out, std::string_view name, std::string_view type, std::string_view help,
               const std::atomic<T>* values) {
  family(out, name, type, help);
  for (size_t i = 0; i < Metrics::kProtos; ++i) {
    fmt::format_to(std::back_inserter(out), "{}{{protocol=\"{}\"}} {}\n", name, proto_name(static_cast<Proto>(i)),
                   values[i].load(std::memory_order_relaxed));
  }
}

template <typename T>
void scalar(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            const std::atomic<T>& value) {
  family(out, name, type, help);
  sample(out, name, value.load(std::memory_order_relaxed));
}

}  // namespace

void metric_family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void metric_sample(std::string& out, std::string_view name, std::string_view labels, uint64_t value) {
  fmt::format_to(std::back_inserter(out), "{}{} {}\n", name, labels, value);
}

std::string stream_json(const live::StreamStats& s) { return json::serialize(stream_object(s)); }

std::string streams_json(const std::vector<live::StreamStats>& streams) {
  json::array arr;
  arr.reserve(streams.size());
  for (const auto& s : streams) arr.emplace_back(stream_object(s));
  json::object o;
  o["streams"] = std::move(arr);
  return json::serialize(o);
}

std::string prometheus_text(const Metrics& m, uint64_t rss_bytes) {
  std::string out;
  out.reserve(4096);
  per_proto(out, "castmesh_connections", "gauge", "Open client connections.", m.connections);
  per_proto(out, "castmesh_connections_total", "counter", "Accepted client connections.", m.connections_total);
  per_proto(out, "castmesh_bytes_received_total", "counter", "Bytes received from clients.", m.bytes_in_total);
  per_proto(out, "castmesh_bytes_sent_total", "counter", "Bytes sent to clients.", m.bytes_out_total);
  scalar(out, "castmesh_streams", "gauge", "Streams with a live publisher.", m.streams);
  scalar(out, "castmesh_publishes_total", "counter", "Accepted publish requests.", m.publishes_total);
  scalar(out, "castmesh_publish_rejected_total", "counter", "Refused publish requests.", m.publish_rejected_total);
  scalar(out, "castmesh_dropped_gops_total", "counter", "GOPs skipped for lagging subscribers.",
         m.dropped_gops_total);
  scalar(out, "castmesh_slow_subscribers_closed_total", "counter", "Subscribers closed on send timeout.",
         m.slow_subscribers_closed_total);
  per_proto(out, "castmesh_protocol_errors_total", "counter", "Malformed client input refused.",
            m.protocol_errors_total);
  scalar(out, "castmesh_hls_segments_total", "counter", "HLS segments produced.", m.hls_segments_total);
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  sample(out, "process_resident_memory_bytes", rss_bytes);
  return out;
}

uint64_t resident_memory_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(in >> size_pages >> resident_pages)) return 0;
  long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? resident_pages * static_cast<uint64_t>(page) : 0;
}

}  // namespace castmesh::api
