#include "cluster/membership/redis_registry.hpp"

#include <algorithm>
#include <charconv>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace castmesh::cluster::membership {
namespace {

using redis::Reply;
using redis::Script;

// The registration epoch key outlives any node hash by far; it is refreshed on every heartbeat
// so that it only disappears for node ids unused for a week (random ids of past processes).
constexpr std::chrono::milliseconds kEpochKeyTtl = std::chrono::hours(24 * 7);

// KEYS[1] = P:node_epoch:{id}; ARGV[1] = its TTL (ms). Returns the new epoch.
const Script& register_script() {
  static const Script s(R"lua(
local e = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return e
)lua");
  return s;
}

// KEYS[1] = P:node:{id}, KEYS[2] = P:nodes, KEYS[3] = P:node_epoch:{id}
// ARGV = id, addr, group, version, epoch, started_ms, load JSON, hash TTL ms, epoch key TTL ms.
// Returns the new hb counter, or "stale" when a newer process owns the id.
const Script& heartbeat_script() {
  static const Script s(R"lua(
local mine = tonumber(ARGV[5])
local latest = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
if latest > mine then return 'stale' end
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') or 0
if cur > mine then return 'stale' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'addr', ARGV[2], 'group', ARGV[3], 'version', ARGV[4],
           'epoch', ARGV[5], 'started_ms', ARGV[6], 'load', ARGV[7])
local hb = redis.call('HINCRBY', KEYS[1], 'hb', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
return hb
)lua");
  return s;
}

// KEYS[1] = P:nodes; ARGV[1] = "P:node:". Returns how many ids were removed.
const Script& remove_stale_script() {
  static const Script s(R"lua(
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    n = n + 1
  end
end
return n
)lua");
  return s;
}

// KEYS[1] = P:node:{id}, KEYS[2] = P:nodes; ARGV = id, epoch. 1 = removed, 0 = not ours.
const Script& deregister_script() {
  static const Script s(R"lua(
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
return 0
)lua");
  return s;
}

Error unexpected(std::string_view what, const Reply& r) { return redis::unexpected_reply("redis registry", what, r); }

// Parses one HGETALL reply (field, value, field, value...). nullopt-like error when unusable.
Result<RegisteredNode> parse_hash(const std::string& id, const Reply& r) {
  if (r.type != Reply::Type::array || r.elements.size() % 2 != 0) return unexpected("HGETALL", r);
  if (r.elements.empty()) return Error{Errc::not_found, "node " + id + " has no hash"};
  RegisteredNode n;
  bool have_id = false, have_epoch = false, have_hb = false;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const std::string& k = r.elements[i].str;
    const std::string& v = r.elements[i + 1].str;
    if (k == "id") {
      n.info.node_id = v;
      have_id = true;
    } else if (k == "addr") {
      n.info.advertise_addr = v;
    } else if (k == "group") {
      n.info.group = v;
    } else if (k == "version") {
      n.info.version = v;
    } else if (k == "epoch") {
      have_epoch = redis::parse_decimal(v, n.info.epoch);
    } else if (k == "hb") {
      have_hb = redis::parse_decimal(v, n.heartbeat);
    } else if (k == "started_ms") {
      if (!redis::parse_decimal(v, n.info.started_ms)) n.info.started_ms = 0;
    } else if (k == "load") {
      boost::system::error_code ec;
      auto j = boost::json::parse(v, ec);
      if (!ec) {
        auto l = load_from_json(j);
        if (l) n.info.load = *l;
      }
    }
  }
  if (!have_id || n.info.node_id != id || !valid_node_id(id) || !have_epoch || !have_hb) {
    return Error{Errc::malformed, "node hash of " + id + " is incomplete"};
  }
  return n;
}

}  // namespace

RedisRegistry::RedisRegistry(redis::RedisUrl url, RedisRegistryConfig config)
    : url_(std::move(url)), config_(std::move(config)), prefix_(config_.key_prefix + ":") {}

RedisRegistry::~RedisRegistry() = default;

std::chrono::milliseconds RedisRegistry::hash_ttl() const noexcept {
  return config_.interval * (static_cast<int64_t>(config_.offline_threshold) + 2);
}

Result<redis::RedisConnection*> RedisRegistry::conn() {
  if (conn_ && !conn_->broken()) return conn_.get();
  conn_.reset();
  auto c = redis::RedisConnection::connect(url_, config_.timeout);
  if (!c) {
    ok_ = false;
    return c.error();
  }
  conn_ = std::move(*c);
  return conn_.get();
}

template <typename T>
Result<T> RedisRegistry::note(Result<T> r) {
  ok_ = r.ok() || r.code() != Errc::unavailable;
  if (!r.ok() && r.code() == Errc::unavailable) conn_.reset();
  return r;
}

Result<uint64_t> RedisRegistry::register_node(const NodeInfo& self) {
  if (!valid_node_id(self.node_id)) return Error{Errc::malformed, "invalid node id \"" + self.node_id + "\""};
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(register_script(), {epoch_key(self.node_id)}, {std::to_string(kEpochKeyTtl.count())}));
  if (!r) return r.error();
  if (r->type != Reply::Type::integer || r->integer <= 0) return unexpected("INCR of the node epoch", *r);
  epoch_ = static_cast<uint64_t>(r->integer);
  auto hb = heartbeat(self);
  if (!hb) return hb.error();
  return epoch_;
}

Status RedisRegistry::heartbeat(const NodeInfo& self) {
  if (epoch_ == 0) {
    auto e = register_node(self);
    if (!e) return e.error();
    return ok_status();
  }
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(heartbeat_script(), {node_key(self.node_id), index_key(), epoch_key(self.node_id)},
                           {self.node_id, self.advertise_addr, self.group, self.version, std::to_string(epoch_),
                            std::to_string(self.started_ms), boost::json::serialize(load_to_json(self.load)),
                            std::to_string(hash_ttl().count()), std::to_string(kEpochKeyTtl.count())}));
  if (!r) return r.error();
  if (r->is("stale")) {
    return Error{Errc::conflict, "a newer process registered node id " + self.node_id};
  }
  if (r->type != Reply::Type::integer) return unexpected("the heartbeat script", *r);
  return ok_status();
}

Result<std::vector<RegisteredNode>> RedisRegistry::list() {
  auto c = conn();
  if (!c) return c.error();
  auto members = note((*c)->command({"SMEMBERS", index_key()}));
  if (!members) return members.error();
  if (members->type != Reply::Type::array) return unexpected("SMEMBERS", *members);
  std::vector<std::string> ids;
  for (const auto& m : members->elements) {
    if (m.type == Reply::Type::string) ids.push_back(m.str);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<RegisteredNode> out;
  if (ids.empty()) return out;
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(ids.size() * 2);
  for (const auto& id : ids) {
    cmds.push_back({"HGETALL", node_key(id)});
    cmds.push_back({"PTTL", node_key(id)});
  }
  auto replies = note((*c)->pipeline(cmds));
  if (!replies) return replies.error();
  if (replies->size() != cmds.size()) return Error{Errc::io_error, "redis registry: short pipeline reply"};
  const int64_t ttl = hash_ttl().count();
  for (size_t i = 0; i < ids.size(); ++i) {
    auto n = parse_hash(ids[i], (*replies)[2 * i]);
    if (!n) continue;  // expired between SMEMBERS and HGETALL, or not ours to read
    const Reply& pttl = (*replies)[2 * i + 1];
    if (pttl.type == Reply::Type::integer && pttl.integer >= 0) {
      n->age_ms = std::clamp<int64_t>(ttl - pttl.integer, 0, ttl);
    }
    out.push_back(std::move(*n));
  }
  return out;
}

Result<size_t> RedisRegistry::remove_stale() {
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(remove_stale_script(), {index_key()}, {prefix_ + "node:"}));
  if (!r) return r.error();
  if (r->type != Reply::Type::integer || r->integer < 0) return unexpected("the stale-removal script", *r);
  return static_cast<size_t>(r->integer);
}

Status RedisRegistry::deregister(const std::string& node_id) {
  if (epoch_ == 0) return ok_status();
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(deregister_script(), {node_key(node_id), index_key()}, {node_id, std::to_string(epoch_)}));
  if (!r) return r.error();
  if (r->type != Reply::Type::integer) return unexpected("the deregistration script", *r);
  return ok_status();
}

}  // namespace castmesh::cluster::membership
