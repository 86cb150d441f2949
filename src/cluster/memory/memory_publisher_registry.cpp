#include "cluster/memory/memory_publisher_registry.hpp"

#include "base/clock.hpp"

namespace castmesh::cluster {

namespace {
bool same_holder(const PublisherEntry& a, const PublisherEntry& b) {
  return a.node_id == b.node_id && a.epoch == b.epoch && a.generation == b.generation;
}
}  // namespace

MemoryPublisherRegistry::MemoryPublisherRegistry(std::function<int64_t()> now_ms)
    : now_(now_ms ? std::move(now_ms) : std::function<int64_t()>([] { return mono_ms(); })) {}

void MemoryPublisherRegistry::expire_locked() {
  const int64_t now = now_();
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires_ms <= now) it = entries_.erase(it);
    else ++it;
  }
}

Result<ClaimResult> MemoryPublisherRegistry::claim(const PublisherEntry& want, ClaimMode mode,
                                                   const std::optional<PublisherEntry>& expect, int64_t ttl_ms) {
  std::lock_guard lk(mu_);
  expire_locked();
  auto it = entries_.find(want.stream);
  if (it != entries_.end()) {
    const auto& cur = it->second.entry;
    const bool replace = mode == ClaimMode::takeover && expect && cur.node_id == expect->node_id &&
                         cur.epoch == expect->epoch;
    if (!replace) return ClaimResult{false, cur, {}};
  }
  PublisherEntry e = want;
  e.epoch = ++epochs_[want.stream];
  entries_[want.stream] = Slot{e, now_() + ttl_ms};
  std::string cont;
  if (auto c = continuations_.find(want.stream); c != continuations_.end() && c->second.second > now_())
    cont = c->second.first;
  return ClaimResult{true, e, cont};
}

Status MemoryPublisherRegistry::refresh(const PublisherEntry& held, int64_t ttl_ms, std::string_view continuation) {
  std::lock_guard lk(mu_);
  expire_locked();
  auto it = entries_.find(held.stream);
  if (it == entries_.end() || !same_holder(it->second.entry, held)) {
    return Error{Errc::conflict, held.stream + ": the registry names another publisher (epoch fenced)"};
  }
  it->second.entry.codecs = held.codecs;
  it->second.expires_ms = now_() + ttl_ms;
  if (!continuation.empty())
    continuations_[held.stream] = {std::string(continuation.substr(0, 256)), now_() + kContinuationTtlMs};
  return ok_status();
}

Status MemoryPublisherRegistry::release(const PublisherEntry& held) {
  std::lock_guard lk(mu_);
  auto it = entries_.find(held.stream);
  if (it != entries_.end() && same_holder(it->second.entry, held)) entries_.erase(it);
  return ok_status();
}

Result<std::optional<PublisherEntry>> MemoryPublisherRegistry::lookup(const std::string& stream) {
  std::lock_guard lk(mu_);
  expire_locked();
  auto it = entries_.find(stream);
  if (it == entries_.end()) return std::optional<PublisherEntry>();
  return std::optional<PublisherEntry>(it->second.entry);
}

Result<std::vector<PublisherEntry>> MemoryPublisherRegistry::list() {
  std::lock_guard lk(mu_);
  expire_locked();
  std::vector<PublisherEntry> out;
  for (auto& [k, s] : entries_) out.push_back(s.entry);
  return out;
}

Result<std::vector<PublisherEntry>> MemoryPublisherRegistry::remove_node(const std::string& node_id) {
  std::lock_guard lk(mu_);
  std::vector<PublisherEntry> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.entry.node_id == node_id) {
      out.push_back(it->second.entry);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace castmesh::cluster
