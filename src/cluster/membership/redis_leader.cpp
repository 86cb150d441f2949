#include "cluster/membership/redis_leader.hpp"

#include <algorithm>
#include <charconv>

#include "base/log.hpp"

namespace castmesh::cluster::membership {
namespace {

using redis::Reply;
using redis::Script;

// KEYS[1] = P:leader, KEYS[2] = P:leader_epoch; ARGV = node id, lease ms.
// Returns {1, epoch} when acquired, {0, current holder value} when taken.
const Script& acquire_script() {
  static const Script s(R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local e = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
return {1, tostring(e)}
)lua");
  return s;
}

// KEYS[1] = P:leader; ARGV = "{node}:{epoch}", lease ms. 1 = renewed, else the holder value
// (false -> nil when none).
const Script& renew_script() {
  static const Script s(R"lua(
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return cur
)lua");
  return s;
}

// KEYS[1] = P:leader; ARGV[1] = "{node}:{epoch}". 1 when it matches.
const Script& check_script() {
  static const Script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
)lua");
  return s;
}

// KEYS[1] = P:leader; ARGV[1] = "{node}:{epoch}". 1 when deleted.
const Script& resign_script() {
  static const Script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
)lua");
  return s;
}

Error unexpected(std::string_view what, const Reply& r) {
  std::string detail = "leader election: unexpected reply to " + std::string(what);
  if (r.is_error()) detail += ": " + r.str;
  return Error{Errc::io_error, std::move(detail)};
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

RedisLeaderElector::RedisLeaderElector(redis::RedisUrl url, RedisLeaderConfig config)
    : url_(std::move(url)),
      config_(std::move(config)),
      prefix_(config_.key_prefix + ":"),
      timeout_(config_.timeout.count() > 0
                   ? config_.timeout
                   : std::clamp(config_.lease / 5, std::chrono::milliseconds(20), std::chrono::milliseconds(1000))) {}

RedisLeaderElector::~RedisLeaderElector() = default;

Result<redis::RedisConnection*> RedisLeaderElector::conn() {
  if (conn_ && !conn_->broken()) return conn_.get();
  conn_.reset();
  auto c = redis::RedisConnection::connect(url_, timeout_);
  if (!c) return c.error();
  conn_ = std::move(*c);
  return conn_.get();
}

std::string RedisLeaderElector::my_value() const { return config_.node_id + ":" + std::to_string(epoch_); }

void RedisLeaderElector::observe_holder(const std::string& value) {
  auto colon = value.rfind(':');
  uint64_t e = 0;
  if (colon == std::string::npos || !parse_u64(std::string_view(value).substr(colon + 1), e)) {
    holder_.clear();
    holder_epoch_ = 0;
    return;
  }
  holder_ = value.substr(0, colon);
  holder_epoch_ = e;
}

void RedisLeaderElector::lose() {
  holding_ = false;
  epoch_ = 0;
  valid_until_ = {};
}

Status RedisLeaderElector::step() {
  auto c = conn();
  if (!c) return c.error();
  const auto start = Clock::now();
  bool holding;
  std::string mine;
  {
    std::lock_guard lk(mu_);
    holding = holding_;
    mine = my_value();
  }
  const std::string lease_ms = std::to_string(config_.lease.count());

  if (holding) {
    auto r = (*c)->eval(renew_script(), {leader_key()}, {mine, lease_ms});
    if (!r) {
      conn_.reset();
      return r.error();
    }
    std::lock_guard lk(mu_);
    if (r->type == Reply::Type::integer && r->integer == 1) {
      valid_until_ = start + config_.lease - config_.lease / 5;
      observe_holder(mine);
      return ok_status();
    }
    // The key expired or belongs to another term: we are no longer leader.
    spdlog::warn("cluster: leadership lost (term {} of {} no longer holds {})", epoch_, config_.node_id, leader_key());
    lose();
    if (r->type == Reply::Type::string) {
      observe_holder(r->str);
      return ok_status();
    }
    // Key absent: fall through and try to take it again in this step.
  }

  auto r = (*c)->eval(acquire_script(), {leader_key(), epoch_key()}, {config_.node_id, lease_ms});
  if (!r) {
    conn_.reset();
    return r.error();
  }
  if (r->type != Reply::Type::array || r->elements.size() != 2 || r->elements[0].type != Reply::Type::integer ||
      r->elements[1].type != Reply::Type::string) {
    return unexpected("the acquire script", *r);
  }
  std::lock_guard lk(mu_);
  if (r->elements[0].integer == 1) {
    uint64_t e = 0;
    if (!parse_u64(r->elements[1].str, e)) return unexpected("the acquire script", *r);
    holding_ = true;
    epoch_ = e;
    valid_until_ = start + config_.lease - config_.lease / 5;
    holder_ = config_.node_id;
    holder_epoch_ = e;
    spdlog::info("cluster: {} is leader (term {})", config_.node_id, e);
  } else {
    observe_holder(r->elements[1].str);
  }
  return ok_status();
}

LeaderStatus RedisLeaderElector::status() const {
  std::lock_guard lk(mu_);
  LeaderStatus s;
  s.is_leader = holding_ && Clock::now() < valid_until_;
  s.epoch = s.is_leader ? epoch_ : 0;
  s.leader_node_id = holder_;
  s.leader_epoch = holder_epoch_;
  return s;
}

bool RedisLeaderElector::is_leader() const {
  std::lock_guard lk(mu_);
  return holding_ && Clock::now() < valid_until_;
}

Result<bool> RedisLeaderElector::fenced_check() {
  std::string mine;
  {
    std::lock_guard lk(mu_);
    if (!(holding_ && Clock::now() < valid_until_)) return false;
    mine = my_value();
  }
  auto c = conn();
  if (!c) return c.error();
  auto r = (*c)->eval(check_script(), {leader_key()}, {mine});
  if (!r) {
    conn_.reset();
    return r.error();
  }
  if (r->type != Reply::Type::integer) return unexpected("the fenced check", *r);
  return r->integer == 1;
}

void RedisLeaderElector::resign() {
  std::string mine;
  {
    std::lock_guard lk(mu_);
    if (!holding_) return;
    mine = my_value();
    lose();
    holder_.clear();
    holder_epoch_ = 0;
  }
  auto c = conn();
  if (!c) return;
  auto r = (*c)->eval(resign_script(), {leader_key()}, {mine});
  if (!r) conn_.reset();
}

}  // namespace castmesh::cluster::membership
