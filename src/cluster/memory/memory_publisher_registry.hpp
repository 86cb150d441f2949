#pragma once
/// \file cluster::MemoryPublisherRegistry — the publisher registry of a single node (and the
/// test fake of the Redis one): the same claim, fencing and lease rules, held in a map.

#include <functional>
#include <map>
#include <mutex>

#include "cluster/publisher_registry.hpp"

namespace castmesh::cluster {

/// Thread-safe; never fails with Errc::unavailable. Leases expire on the monotonic clock given
/// (default mono_ms): an entry older than its ttl reads as absent.
class MemoryPublisherRegistry final : public PublisherRegistry {
 public:
  explicit MemoryPublisherRegistry(std::function<int64_t()> now_ms = {});

  Result<ClaimResult> claim(const PublisherEntry& want, ClaimMode mode, const std::optional<PublisherEntry>& expect,
                            int64_t ttl_ms) override;
  Status refresh(const PublisherEntry& held, int64_t ttl_ms, std::string_view continuation) override;
  Status release(const PublisherEntry& held) override;
  Result<std::optional<PublisherEntry>> lookup(const std::string& stream) override;
  Result<std::vector<PublisherEntry>> list() override;
  Result<std::vector<PublisherEntry>> remove_node(const std::string& node_id) override;

 private:
  struct Slot {
    PublisherEntry entry;
    int64_t expires_ms = 0;
  };
  void expire_locked();

  std::function<int64_t()> now_;
  std::mutex mu_;
  std::map<std::string, Slot> entries_;
  std::map<std::string, uint64_t> epochs_;  // per stream, never reset (the fencing counter)
  std::map<std::string, std::pair<std::string, int64_t>> continuations_;  // text, expiry
};

}  // namespace castmesh::cluster
