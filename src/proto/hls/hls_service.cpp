#include "proto/hls/hls_service.hpp"

#include <charconv>

#include <fmt/format.h>

#include "base/clock.hpp"

namespace castmesh::hls {

namespace {

/// The observer handed to a Source: forwards to the stream's shared Segmenter. The
/// Segmenter's use count tells the service whether any Source still holds it.
class SegmenterHandle final : public live::SourceObserver {
 public:
  explicit SegmenterHandle(std::shared_ptr<Segmenter> seg) : seg_(std::move(seg)) {}
  void on_publish(bool republish) override { seg_->on_publish(republish); }
  void on_packet(const media::PacketPtr& pkt) override { seg_->on_packet(pkt); }
  void on_unpublish() override { seg_->on_unpublish(); }
  void on_close() override { seg_->on_close(); }
  // A relayed stream is segmented by its owner only: other nodes serve the owner's playlist and
  // segments (the same names and bytes everywhere), so a relay must not write its own.
  bool accepts(Proto publisher) const override { return publisher != Proto::relay; }

 private:
  std::shared_ptr<Segmenter> seg_;
};

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

HlsService::HlsService(const HlsConfig& cfg, Metrics& metrics) : HlsService(cfg, metrics, make_store(cfg), {}) {}

HlsService::HlsService(const HlsConfig& cfg, Metrics& metrics, std::shared_ptr<Store> store, Clock clock)
    : cfg_(cfg),
      metrics_(metrics),
      store_(store ? std::move(store) : make_store(cfg)),
      clock_(clock ? std::move(clock) : Clock(&mono_ms)) {}

HlsService::~HlsService() = default;

live::StreamHub::ObserverFactory HlsService::observer_factory() {
  return [this](const live::StreamKey& key) { return make_observer(key); };
}

std::unique_ptr<live::SourceObserver> HlsService::make_observer(const live::StreamKey& key) {
  if (!cfg_.enabled) return nullptr;
  std::lock_guard lk(mu_);
  auto& seg = segmenters_[key];
  if (!seg) seg = std::make_shared<Segmenter>(key, cfg_, store_, metrics_, clock_);
  return std::make_unique<SegmenterHandle>(seg);
}

std::optional<HlsService::HlsFile> HlsService::get(const live::StreamKey& key, std::string_view file_name) const {
  return lookup(key, file_name, true);
}

std::optional<HlsService::HlsFile> HlsService::peek(const live::StreamKey& key, std::string_view file_name) const {
  return lookup(key, file_name, false);
}

std::optional<HlsService::HlsFile> HlsService::lookup(const live::StreamKey& key, std::string_view file_name,
                                                      bool may_block) const {
  if (!validate_store_path(key.app) || !validate_store_path(key.stream) || !validate_store_path(file_name))
    return std::nullopt;
  const std::string_view stream = key.stream;
  bool segment = false;
  if (file_name.size() == stream.size() + 5 && file_name.starts_with(stream) && file_name.ends_with(".m3u8")) {
    segment = false;
  } else if (file_name.size() > stream.size() + 4 && file_name.starts_with(stream) &&
             file_name[stream.size()] == '-' && file_name.ends_with(".ts") &&
             all_digits(file_name.substr(stream.size() + 1, file_name.size() - stream.size() - 4))) {
    segment = true;
  } else {
    return std::nullopt;
  }
  const std::string path = fmt::format("{}/{}/{}", key.app, key.stream, file_name);
  Blob body = may_block ? store_->get(path) : store_->peek(path);
  if (!body) return std::nullopt;
  return make_file(segment, std::move(body));
}

HlsService::HlsFile HlsService::make_file(bool segment, Blob body) const {
  HlsFile file;
  file.body = std::move(body);
  if (segment) {
    file.content_type = "video/mp2t";
    file.cache_control = fmt::format("max-age={}", std::max<uint32_t>(cfg_.target_duration_secs, 1) * 10);
  } else {
    file.content_type = "application/vnd.apple.mpegurl";
    file.cache_control = "no-cache";
  }
  return file;
}

void HlsService::sweep() {
  std::lock_guard lk(mu_);
  for (auto it = segmenters_.begin(); it != segmenters_.end();) {
    const bool expired = it->second->sweep();
    // use_count 1: only this map holds it (handles are created under mu_, so a handle
    // cannot appear between this check and the erase).
    if (expired && it->second.use_count() == 1)
      it = segmenters_.erase(it);
    else
      ++it;
  }
}

void HlsService::stop() {
  std::lock_guard lk(mu_);
  for (auto& [key, seg] : segmenters_) seg->shutdown();
  segmenters_.clear();
}

size_t HlsService::stream_count() const {
  std::lock_guard lk(mu_);
  return segmenters_.size();
}

std::string HlsService::continuation(const live::StreamKey& key) const {
  std::lock_guard lk(mu_);
  auto it = segmenters_.find(key);
  if (it == segmenters_.end()) return {};
  const auto c = it->second->continuation();
  return fmt::format("{}:{}", c.next_sequence, c.discontinuities);
}

bool HlsService::continue_from(const live::StreamKey& key, std::string_view text, uint64_t margin) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  Segmenter::Continuation c;
  const auto a = text.substr(0, colon), b = text.substr(colon + 1);
  if (std::from_chars(a.data(), a.data() + a.size(), c.next_sequence).ptr != a.data() + a.size() || a.empty())
    return false;
  if (std::from_chars(b.data(), b.data() + b.size(), c.discontinuities).ptr != b.data() + b.size() || b.empty())
    return false;
  c.next_sequence += margin;
  std::shared_ptr<Segmenter> seg;
  {
    std::lock_guard lk(mu_);
    auto it = segmenters_.find(key);
    if (it == segmenters_.end()) return false;
    seg = it->second;
  }
  return seg->continue_from(c);
}

}  // namespace castmesh::hls
