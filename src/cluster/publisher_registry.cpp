#include "cluster/publisher_registry.hpp"

#include <boost/json.hpp>

namespace castmesh::cluster {

namespace json = boost::json;

std::string codec_list(std::string_view video, std::string_view audio) {
  std::string out(video);
  if (!audio.empty()) {
    if (!out.empty()) out += ',';
    out += audio;
  }
  return out;
}

std::string entry_to_json(const PublisherEntry& e) {
  json::object o;
  o["stream"] = e.stream;
  o["node_id"] = e.node_id;
  o["addr"] = e.addr;
  o["epoch"] = e.epoch;
  o["generation"] = e.generation;
  o["started_ms"] = e.started_ms;
  o["codecs"] = e.codecs;
  return json::serialize(o);
}

Result<PublisherEntry> entry_from_json(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return Error{Errc::malformed, "publisher entry: not a JSON object"};
  const auto& o = v.as_object();
  PublisherEntry e;
  auto str = [&](const char* k, std::string& out) {
    auto* p = o.if_contains(k);
    if (!p || !p->is_string()) return false;
    out = std::string(p->as_string());
    return true;
  };
  auto num = [&](const char* k, auto& out) {
    auto* p = o.if_contains(k);
    if (!p) return false;
    if (p->is_uint64()) out = static_cast<std::decay_t<decltype(out)>>(p->as_uint64());
    else if (p->is_int64() && p->as_int64() >= 0) out = static_cast<std::decay_t<decltype(out)>>(p->as_int64());
    else return false;
    return true;
  };
  if (!str("stream", e.stream) || !str("node_id", e.node_id) || !str("addr", e.addr) ||
      !str("generation", e.generation) || !str("codecs", e.codecs) || !num("epoch", e.epoch) ||
      !num("started_ms", e.started_ms)) {
    return Error{Errc::malformed, "publisher entry: missing or mistyped field"};
  }
  return e;
}

}  // namespace castmesh::cluster
