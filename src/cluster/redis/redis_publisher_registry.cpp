#include "cluster/redis/redis_publisher_registry.hpp"

#include <algorithm>
#include <charconv>

namespace castmesh::cluster::redis {
namespace {

constexpr int64_t kEpochKeyTtlMs = int64_t(7) * 24 * 3600 * 1000;

// KEYS: entry, epoch counter, index, continuation. ARGV: stream, node, addr, gen, started_ms,
// codecs, ttl ms, mode ('x' exclusive | 't' takeover), expected node, expected epoch, epoch key
// ttl ms. Returns {1, HGETALL of the new entry, continuation or ''} or {0, HGETALL of the holder}.
const Script& claim_script() {
  static const Script s(R"lua(
local cur = redis.call('HGETALL', KEYS[1])
if #cur > 0 then
  local h = {}
  for i = 1, #cur, 2 do h[cur[i]] = cur[i + 1] end
  if not (ARGV[8] == 't' and h['node'] == ARGV[9] and h['epoch'] == ARGV[10]) then
    return {0, cur}
  end
  redis.call('DEL', KEYS[1])
end
local e = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[11])
redis.call('HSET', KEYS[1], 'stream', ARGV[1], 'node', ARGV[2], 'addr', ARGV[3], 'epoch', e, 'gen', ARGV[4],
           'started_ms', ARGV[5], 'codecs', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('SADD', KEYS[3], ARGV[1])
return {1, redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[4]) or ''}
)lua");
  return s;
}

// KEYS: entry, continuation. ARGV: node, epoch, gen, ttl ms, codecs, continuation, its ttl ms.
// 1 = renewed, 0 = fenced (not ours).
const Script& refresh_script() {
  static const Script s(R"lua(
local h = redis.call('HMGET', KEYS[1], 'node', 'epoch', 'gen')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'codecs', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[6] ~= '' then redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7]) end
return 1
)lua");
  return s;
}

// KEYS: entry, index. ARGV: node, epoch, gen, stream. 1 = removed, 0 = not ours.
const Script& release_script() {
  static const Script s(R"lua(
local h = redis.call('HMGET', KEYS[1], 'node', 'epoch', 'gen')
if h[1] ~= ARGV[1] or h[2] ~= ARGV[2] or h[3] ~= ARGV[3] then
  if h[1] == false then redis.call('SREM', KEYS[2], ARGV[4]) end
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[4])
return 1
)lua");
  return s;
}

// KEYS: index. ARGV: "P:pub:", node. Returns the HGETALL of every removed entry; index entries
// whose hash expired are dropped on the way.
const Script& remove_node_script() {
  static const Script s(R"lua(
local out = {}
for _, stream in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. stream
  local node = redis.call('HGET', key, 'node')
  if node == false then
    redis.call('SREM', KEYS[1], stream)
  elseif node == ARGV[2] then
    table.insert(out, redis.call('HGETALL', key))
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], stream)
  end
end
return out
)lua");
  return s;
}

Error unexpected(std::string_view what, const Reply& r) { return unexpected_reply("publisher registry", what, r); }

/// One HGETALL reply as an entry; Errc::not_found when empty, Errc::malformed when incomplete.
Result<PublisherEntry> parse_entry(const Reply& r) {
  if (r.type != Reply::Type::array || r.elements.size() % 2 != 0) return unexpected("HGETALL", r);
  if (r.elements.empty()) return Error{Errc::not_found, "no entry"};
  PublisherEntry e;
  bool have_epoch = false;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    const std::string& k = r.elements[i].str;
    const std::string& v = r.elements[i + 1].str;
    if (k == "stream") e.stream = v;
    else if (k == "node") e.node_id = v;
    else if (k == "addr") e.addr = v;
    else if (k == "epoch") have_epoch = parse_decimal(v, e.epoch);
    else if (k == "gen") e.generation = v;
    else if (k == "started_ms") { if (!parse_decimal(v, e.started_ms)) e.started_ms = 0; }
    else if (k == "codecs") e.codecs = v;
  }
  if (!have_epoch || e.stream.empty() || e.node_id.empty()) {
    return Error{Errc::malformed, "publisher entry is incomplete"};
  }
  return e;
}

}  // namespace

RedisPublisherRegistry::RedisPublisherRegistry(RedisUrl url, std::string key_prefix, std::chrono::milliseconds timeout)
    : url_(std::move(url)), prefix_(std::move(key_prefix) + ":"), timeout_(timeout) {}

RedisPublisherRegistry::~RedisPublisherRegistry() = default;

Result<RedisConnection*> RedisPublisherRegistry::conn() {
  if (conn_ && !conn_->broken()) return conn_.get();
  conn_.reset();
  auto c = RedisConnection::connect(url_, timeout_);
  if (!c) return c.error();
  conn_ = std::move(*c);
  return conn_.get();
}

template <typename T>
Result<T> RedisPublisherRegistry::note(Result<T> r) {
  if (!r.ok() && r.code() == Errc::unavailable) conn_.reset();
  return r;
}

Result<ClaimResult> RedisPublisherRegistry::claim(const PublisherEntry& want, ClaimMode mode,
                                                  const std::optional<PublisherEntry>& expect, int64_t ttl_ms) {
  auto c = conn();
  if (!c) return c.error();
  const bool takeover = mode == ClaimMode::takeover && expect.has_value();
  auto r = note((*c)->eval(claim_script(),
                           {entry_key(want.stream), epoch_key(want.stream), index_key(), continuation_key(want.stream)},
                           {want.stream, want.node_id, want.addr, want.generation, std::to_string(want.started_ms),
                            want.codecs, std::to_string(std::max<int64_t>(ttl_ms, 1)), takeover ? "t" : "x",
                            takeover ? expect->node_id : "", takeover ? std::to_string(expect->epoch) : "",
                            std::to_string(kEpochKeyTtlMs)}));
  if (!r) return r.error();
  if (r->type != Reply::Type::array || r->elements.size() < 2 || r->elements[0].type != Reply::Type::integer) {
    return unexpected("the claim script", *r);
  }
  auto e = parse_entry(r->elements[1]);
  if (!e) return e.error();
  const bool won = r->elements[0].integer == 1;
  std::string cont = won && r->elements.size() > 2 ? r->elements[2].str : std::string();
  return ClaimResult{won, std::move(*e), std::move(cont)};
}

Status RedisPublisherRegistry::refresh(const PublisherEntry& held, int64_t ttl_ms, std::string_view continuation) {
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(refresh_script(), {entry_key(held.stream), continuation_key(held.stream)},
                           {held.node_id, std::to_string(held.epoch), held.generation,
                            std::to_string(std::max<int64_t>(ttl_ms, 1)), held.codecs,
                            std::string(continuation.substr(0, 256)), std::to_string(kContinuationTtlMs)}));
  if (!r) return r.error();
  if (r->type != Reply::Type::integer) return unexpected("the refresh script", *r);
  if (r->integer != 1) {
    return Error{Errc::conflict, held.stream + ": the registry names another publisher (epoch fenced)"};
  }
  return ok_status();
}

Status RedisPublisherRegistry::release(const PublisherEntry& held) {
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(release_script(), {entry_key(held.stream), index_key()},
                           {held.node_id, std::to_string(held.epoch), held.generation, held.stream}));
  if (!r) return r.error();
  if (r->type != Reply::Type::integer) return unexpected("the release script", *r);
  return ok_status();
}

Result<std::optional<PublisherEntry>> RedisPublisherRegistry::lookup(const std::string& stream) {
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->command({"HGETALL", entry_key(stream)}));
  if (!r) return r.error();
  auto e = parse_entry(*r);
  if (!e) {
    if (e.code() == Errc::not_found) return std::optional<PublisherEntry>();
    return e.error();
  }
  return std::optional<PublisherEntry>(std::move(*e));
}

Result<std::vector<PublisherEntry>> RedisPublisherRegistry::list() {
  auto c = conn();
  if (!c) return c.error();
  auto members = note((*c)->command({"SMEMBERS", index_key()}));
  if (!members) return members.error();
  if (members->type != Reply::Type::array) return unexpected("SMEMBERS", *members);
  std::vector<std::string> streams;
  for (const auto& m : members->elements)
    if (m.type == Reply::Type::string) streams.push_back(m.str);
  std::sort(streams.begin(), streams.end());
  std::vector<PublisherEntry> out;
  if (streams.empty()) return out;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& s : streams) cmds.push_back({"HGETALL", entry_key(s)});
  auto replies = note((*c)->pipeline(cmds));
  if (!replies) return replies.error();
  if (replies->size() != cmds.size()) return Error{Errc::io_error, "publisher registry: short pipeline reply"};
  for (const auto& rep : *replies) {
    auto e = parse_entry(rep);
    if (e) out.push_back(std::move(*e));  // expired meanwhile, or unreadable: skipped
  }
  return out;
}

Result<std::vector<PublisherEntry>> RedisPublisherRegistry::remove_node(const std::string& node_id) {
  auto c = conn();
  if (!c) return c.error();
  auto r = note((*c)->eval(remove_node_script(), {index_key()}, {prefix_ + "pub:", node_id}));
  if (!r) return r.error();
  if (r->type != Reply::Type::array) return unexpected("the node removal script", *r);
  std::vector<PublisherEntry> out;
  for (const auto& rep : r->elements) {
    auto e = parse_entry(rep);
    if (e) out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace castmesh::cluster::redis
