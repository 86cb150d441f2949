#pragma once
/// \file cluster::redis::RedisPublisherRegistry — the publisher registry in Redis
/// (P = redis.key_prefix):
/// - hash `P:pub:{app/stream}`: stream, node, addr, epoch, gen, started_ms, codecs; expires after
///   the lease unless refreshed;
/// - counter `P:pub_epoch:{app/stream}`: INCR per claim, the fencing epoch (kept 7 days after
///   the last claim, far beyond any lease);
/// - index set `P:pubs` of the streams with an entry;
/// - string `P:pub_cont:{app/stream}`: the last holder's continuation (refresh()), kept an hour.
/// Claim, refresh, release and node removal are one Lua script each, so each is atomic.
///
/// Owns one RedisConnection, reconnected on the next call after a failure. Not thread-safe:
/// one owner thread (cluster::StreamDirectory's worker).

#include <chrono>
#include <memory>
#include <string>

#include "cluster/publisher_registry.hpp"
#include "cluster/redis/redis_client.hpp"

namespace castmesh::cluster::redis {

class RedisPublisherRegistry final : public PublisherRegistry {
 public:
  /// `timeout` bounds connect and each command.
  RedisPublisherRegistry(RedisUrl url, std::string key_prefix, std::chrono::milliseconds timeout);
  ~RedisPublisherRegistry() override;

  Result<ClaimResult> claim(const PublisherEntry& want, ClaimMode mode, const std::optional<PublisherEntry>& expect,
                            int64_t ttl_ms) override;
  Status refresh(const PublisherEntry& held, int64_t ttl_ms, std::string_view continuation) override;
  Status release(const PublisherEntry& held) override;
  Result<std::optional<PublisherEntry>> lookup(const std::string& stream) override;
  Result<std::vector<PublisherEntry>> list() override;
  Result<std::vector<PublisherEntry>> remove_node(const std::string& node_id) override;

  /// Key names (tests, diagnostics).
  std::string entry_key(const std::string& stream) const { return prefix_ + "pub:" + stream; }
  std::string epoch_key(const std::string& stream) const { return prefix_ + "pub_epoch:" + stream; }
  std::string index_key() const { return prefix_ + "pubs"; }
  std::string continuation_key(const std::string& stream) const { return prefix_ + "pub_cont:" + stream; }

 private:
  Result<RedisConnection*> conn();
  template <typename T>
  Result<T> note(Result<T> r);

  RedisUrl url_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<RedisConnection> conn_;
};

}  // namespace castmesh::cluster::redis
