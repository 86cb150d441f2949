#include "proto/hls/viewer_tracker.hpp"

namespace castmesh::hls {

void ViewerTracker::touch(const live::StreamKey& key, const std::string& client, int64_t now_ms) {
  std::lock_guard lk(mu_);
  auto& clients = seen_[key];
  auto [it, inserted] = clients.try_emplace(client, now_ms);
  if (!inserted) {
    it->second = now_ms;
    return;
  }
  if (++entries_ <= max_clients_) return;
  // Over the bound (a hostile client inventing User-Agents): drop this stream's oldest entry.
  auto oldest = clients.begin();
  for (auto c = clients.begin(); c != clients.end(); ++c)
    if (c->second < oldest->second) oldest = c;
  clients.erase(oldest);
  --entries_;
}

uint64_t ViewerTracker::count(const live::StreamKey& key, int64_t now_ms) const {
  std::lock_guard lk(mu_);
  auto it = seen_.find(key);
  if (it == seen_.end()) return 0;
  uint64_t n = 0;
  for (const auto& [client, last] : it->second)
    if (now_ms - last <= window_ms_) ++n;
  return n;
}

void ViewerTracker::prune(int64_t now_ms) {
  std::lock_guard lk(mu_);
  for (auto s = seen_.begin(); s != seen_.end();) {
    auto& clients = s->second;
    for (auto c = clients.begin(); c != clients.end();) {
      if (now_ms - c->second > window_ms_) {
        c = clients.erase(c);
        --entries_;
      } else {
        ++c;
      }
    }
    s = clients.empty() ? seen_.erase(s) : std::next(s);
  }
}

size_t ViewerTracker::size() const {
  std::lock_guard lk(mu_);
  return entries_;
}

}  // namespace castmesh::hls
