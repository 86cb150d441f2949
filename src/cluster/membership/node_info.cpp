#include "cluster/membership/node_info.hpp"

#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace castmesh::cluster::membership {
namespace json = boost::json;

namespace {

constexpr size_t kMaxText = 64 * 1024;
constexpr size_t kMaxField = 1024;  // addr, group, version: generous but bounded

Error field_error(std::string_view key, std::string_view what) {
  return Error{Errc::malformed, "node info: \"" + std::string(key) + "\" must be " + std::string(what)};
}

Result<std::string> get_string(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return field_error(key, "a string");
  if (v->get_string().size() > kMaxField) return field_error(key, "at most 1024 bytes");
  return std::string(v->get_string());
}

// Accepts JSON integers only (no doubles, no strings); range-checked to [min, max].
Result<int64_t> get_int(const json::object& o, std::string_view key, int64_t min) {
  const json::value* v = o.if_contains(key);
  if (!v) return field_error(key, "present");
  if (v->is_int64()) {
    if (v->get_int64() < min) return field_error(key, "at least " + std::to_string(min));
    return v->get_int64();
  }
  if (v->is_uint64()) return field_error(key, "within the int64 range");
  return field_error(key, "an integer");
}

}  // namespace

const char* state_name(NodeState s) noexcept {
  switch (s) {
    case NodeState::alive: return "alive";
    case NodeState::suspect: return "suspect";
    case NodeState::offline: return "offline";
  }
  return "unknown";
}

json::object load_to_json(const Load& load) {
  json::object o;
  o["connections"] = load.connections;
  o["rooms"] = load.rooms;
  o["streams"] = load.streams;
  return o;
}

Result<Load> load_from_json(const json::value& v) {
  if (!v.is_object()) return field_error("load", "an object");
  const auto& o = v.get_object();
  Load load;
  auto c = get_int(o, "connections", 0);
  if (!c) return c.error();
  auto r = get_int(o, "rooms", 0);
  if (!r) return r.error();
  auto s = get_int(o, "streams", 0);
  if (!s) return s.error();
  load.connections = *c;
  load.rooms = *r;
  load.streams = *s;
  return load;
}

json::object to_json(const NodeInfo& info) {
  json::object o;
  o["node_id"] = info.node_id;
  o["advertise_addr"] = info.advertise_addr;
  o["group"] = info.group;
  o["version"] = info.version;
  o["epoch"] = info.epoch;
  o["started_ms"] = info.started_ms;
  o["load"] = load_to_json(info.load);
  return o;
}

std::string to_json_text(const NodeInfo& info) { return json::serialize(to_json(info)); }

Result<NodeInfo> node_info_from_json(const json::value& v) {
  if (!v.is_object()) return Error{Errc::malformed, "node info: not a JSON object"};
  const auto& o = v.get_object();
  NodeInfo info;
  auto id = get_string(o, "node_id");
  if (!id) return id.error();
  if (!valid_node_id(*id)) return field_error("node_id", "[A-Za-z0-9._-]{1,64}");
  info.node_id = std::move(*id);
  auto addr = get_string(o, "advertise_addr");
  if (!addr) return addr.error();
  info.advertise_addr = std::move(*addr);
  auto group = get_string(o, "group");
  if (!group) return group.error();
  info.group = std::move(*group);
  auto version = get_string(o, "version");
  if (!version) return version.error();
  info.version = std::move(*version);

  const json::value* epoch = o.if_contains("epoch");
  if (!epoch) return field_error("epoch", "present");
  if (epoch->is_uint64()) {
    info.epoch = epoch->get_uint64();
  } else if (epoch->is_int64() && epoch->get_int64() >= 0) {
    info.epoch = static_cast<uint64_t>(epoch->get_int64());
  } else {
    return field_error("epoch", "a non-negative integer");
  }
  auto started = get_int(o, "started_ms", 0);
  if (!started) return started.error();
  info.started_ms = *started;

  const json::value* load = o.if_contains("load");
  if (!load) return field_error("load", "present");
  auto l = load_from_json(*load);
  if (!l) return l.error();
  info.load = *l;
  return info;
}

Result<NodeInfo> parse_node_info(std::string_view text) {
  if (text.size() > kMaxText) return Error{Errc::too_large, "node info: body exceeds 64 KiB"};
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return Error{Errc::malformed, "node info: invalid JSON: " + ec.message()};
  return node_info_from_json(v);
}

}  // namespace castmesh::cluster::membership
