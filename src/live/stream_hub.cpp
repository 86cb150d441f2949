#include "live/stream_hub.hpp"

#include <algorithm>
#include <cstdlib>
#include <deque>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "media/codec/aac.hpp"
#include "media/codec/h264.hpp"

namespace castmesh::live {

Status validate_name(std::string_view name) {
  if (name.empty()) return Error{Errc::bad_name, "empty name"};
  if (name.size() > 128) return Error{Errc::bad_name, "name longer than 128 characters"};
  if (name.front() == '.') return Error{Errc::bad_name, "name starts with '.'"};
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return Error{Errc::bad_name, "name contains a character outside [A-Za-z0-9_.-]"};
  }
  return ok_status();
}

namespace {
/// Per-second buckets for the bitrate estimate over the last few seconds (wall clock).
class RateWindow {
 public:
  static constexpr int kBuckets = 6;
  void add(int64_t now_ms, uint64_t bytes) {
    const int64_t sec = now_ms / 1000;
    auto& b = buckets_[sec % kBuckets];
    if (b.sec != sec) b = {sec, 0};
    b.bytes += bytes;
  }
  /// Averages over the complete seconds in the window (the current second is partial).
  double bytes_per_s(int64_t now_ms) const {
    const int64_t sec = now_ms / 1000;
    uint64_t bytes = 0;
    int n = 0;
    for (const auto& b : buckets_) {
      if (b.sec < sec && b.sec >= sec - (kBuckets - 1)) {
        bytes += b.bytes;
        ++n;
      }
    }
    return n ? double(bytes) / n : 0;
  }

 private:
  struct Bucket {
    int64_t sec = -1;
    uint64_t bytes = 0;
  };
  Bucket buckets_[kBuckets];
};
/// Frame rate from the media timestamps of the last video frames: the stream's own rate,
/// whatever the network or the encoder's speed does to arrival times.
class FrameRate {
 public:
  static constexpr size_t kFrames = 64;
  void add(uint32_t dts_ms) {
    dts_[next_ % kFrames] = dts_ms;
    ++next_;
  }
  void reset() { next_ = 0; }
  double fps() const {
    const size_t n = std::min(next_, kFrames);
    if (n < 2) return 0;
    const uint32_t newest = dts_[(next_ - 1) % kFrames];
    const uint32_t oldest = dts_[(next_ - n) % kFrames];
    return newest > oldest ? double(n - 1) * 1000.0 / double(newest - oldest) : 0;
  }

 private:
  uint32_t dts_[kFrames] = {};
  size_t next_ = 0;
};
}  // namespace

/// One stream: publisher state, the GOP ring and the subscriber list. All fields below `mu_`
/// are guarded by it; observers are called under `obs_mu_` on the publisher's thread.
class Source : public std::enable_shared_from_this<Source> {
 public:
  Source(StreamHub& hub, StreamKey key, std::vector<std::unique_ptr<SourceObserver>> observers)
      : hub_(hub), cfg_(hub.cfg_), metrics_(hub.metrics_), key_(std::move(key)),
        observers_(std::move(observers)), idle_since_ms_(mono_ms()) {}

  const StreamKey& key() const { return key_; }

  // ---- publisher side ----------------------------------------------------------------------

  /// Starts a publish; returns its epoch, 0 when refused (already publishing or closed).
  uint64_t begin_publish(Proto proto, std::string remote) {
    bool republish = false;
    uint64_t epoch = 0;
    {
      std::lock_guard lk(mu_);
      if (publishing_ || closed_) return false;
      publishing_ = true;
      republish = epoch_ > 0;
      epoch = ++epoch_;
      on_revoked_ = nullptr;
      revoked_ = false;
      publisher_proto_ = proto;
      publisher_remote_ = std::move(remote);
      publish_started_ms_ = mono_ms();
      bytes_in_ = 0;
      metadata_.reset();
      video_sh_.reset();
      audio_sh_.reset();
      video_info_ = {};
      audio_info_ = {};
      has_video_ = false;
      frame_rate_.reset();
      first_raw_ts_.reset();
      first_frame_seen_ = false;
      // Packets of the previous publish are stale: subscribers resync on the new epoch.
      base_seq_ += ring_.size();
      ring_.clear();
      keyframes_.clear();
      ring_bytes_ = 0;
      // Continue after the last output timestamp so players never see time go backwards.
      ts_offset_ = republish ? last_out_ts_ + 40 : 0;
    }
    // A relay republishes another node's stream: not a stream published here.
    if (proto != Proto::relay) {
      metrics_.streams.fetch_add(1, std::memory_order_relaxed);
      metrics_.publishes_total.fetch_add(1, std::memory_order_relaxed);
    }
    {
      std::lock_guard ol(obs_mu_);
      active_.assign(observers_.size(), false);
      for (size_t i = 0; i < observers_.size(); ++i) {
        active_[i] = observers_[i]->accepts(proto);
        if (active_[i]) observers_[i]->on_publish(republish);
      }
    }
    hub_.emit_event(StreamEvent{StreamEvent::Kind::publish, key_, epoch, proto});
    return epoch;
  }

  /// Ends the publish of `epoch` (a later publish is left alone).
  void end_publish(uint64_t epoch) {
    Proto proto;
    {
      std::lock_guard lk(mu_);
      if (!publishing_ || epoch_ != epoch) return;
      publishing_ = false;
      proto = publisher_proto_;
      idle_since_ms_ = mono_ms();
      wake_armed_locked();  // waiting players notice the unpublish
    }
    if (proto != Proto::relay) metrics_.streams.fetch_sub(1, std::memory_order_relaxed);
    {
      std::lock_guard ol(obs_mu_);
      for (size_t i = 0; i < observers_.size(); ++i)
        if (i < active_.size() && active_[i]) observers_[i]->on_unpublish();
    }
    hub_.emit_event(StreamEvent{StreamEvent::Kind::unpublish, key_, epoch, proto});
  }

  /// Ends the publish of `epoch` and tells its publisher why. False when not live.
  bool revoke(uint64_t epoch, const std::string& reason) {
    std::function<void(const std::string&)> cb;
    {
      std::lock_guard lk(mu_);
      if (!publishing_ || epoch_ != epoch) return false;
      revoked_ = true;
      cb = std::move(on_revoked_);
      on_revoked_ = nullptr;
    }
    end_publish(epoch);
    if (cb) cb(reason);
    return true;
  }

  void set_on_revoked(uint64_t epoch, std::function<void(const std::string&)> f) {
    std::lock_guard lk(mu_);
    if (epoch_ == epoch && publishing_) on_revoked_ = std::move(f);
  }

  bool revoked(uint64_t epoch) const {
    std::lock_guard lk(mu_);
    return epoch_ != epoch || revoked_;
  }

  uint64_t subscriber_count(Proto p) const {
    std::lock_guard lk(mu_);
    return sub_counts_[Metrics::idx(p)];
  }

  bool publishing(Proto* proto) const {
    std::lock_guard lk(mu_);
    if (publishing_ && proto) *proto = publisher_proto_;
    return publishing_;
  }

  uint64_t epoch() const {
    std::lock_guard lk(mu_);
    return epoch_;
  }

  bool push(uint64_t epoch, media::PacketType type, uint32_t raw_ts, Bytes payload) {
    const size_t size = payload.size();
    // Rebase: out = offset + (raw - first_raw), computed without unsigned wrap surprises. The
    // base is the first packet, unless metadata and sequence headers sent ahead of the first
    // frame carry a timestamp far from it (a relayed stream's headers keep their original 0
    // while its frames are minutes in): then the first frame is the base, so the output does
    // not jump by the stream's age.
    const bool header = is_header(type, payload);
    if (!first_raw_ts_) first_raw_ts_ = raw_ts;
    if (!header && !first_frame_seen_) {
      first_frame_seen_ = true;
      if (std::abs(int64_t(raw_ts) - int64_t(*first_raw_ts_)) > kDetachedHeadersMs) first_raw_ts_ = raw_ts;
    }
    int64_t rel = int64_t(raw_ts) - int64_t(*first_raw_ts_);
    if (rel < 0) rel = 0;
    const uint32_t out_ts = static_cast<uint32_t>(int64_t(ts_offset_) + rel);
    auto pkt = media::make_packet(type, out_ts, std::move(payload));
    if (!pkt) return false;

    const int64_t now = mono_ms();
    {
      std::lock_guard lk(mu_);
      if (!publishing_ || closed_ || epoch_ != epoch) return false;
      bytes_in_ += size;
      rate_.add(now, size);
      if (pkt->is_video() && !pkt->sequence_header) frame_rate_.add(pkt->dts_ms);
      if (out_ts > last_out_ts_) last_out_ts_ = out_ts;
      if (pkt->sequence_header) {
        if (pkt->is_video()) {
          video_sh_ = pkt;
          update_video_info_locked(*pkt);
        } else {
          audio_sh_ = pkt;
          update_audio_info_locked(*pkt);
        }
      } else if (pkt->is_data()) {
        metadata_ = pkt;
      }
      if (pkt->is_video()) has_video_ = true;
      append_locked(pkt);
      wake_armed_locked();
    }
    {
      std::lock_guard ol(obs_mu_);
      for (size_t i = 0; i < observers_.size(); ++i)
        if (i < active_.size() && active_[i]) observers_[i]->on_packet(pkt);
    }
    return true;
  }

  // ---- subscriber side ---------------------------------------------------------------------

  void attach(Subscription* s) {
    std::lock_guard lk(mu_);
    s->min_epoch_ = publishing_ ? epoch_ : epoch_ + 1;
    subs_.push_back(s);
    ++sub_counts_[Metrics::idx(s->proto_)];
  }

  void detach(Subscription* s) {
    detach_locked(s);
    hub_.emit_event(StreamEvent{StreamEvent::Kind::unsubscribe, key_, epoch(), s->proto_});
  }

  void detach_locked(Subscription* s) {
    std::lock_guard lk(mu_);
    if (auto it = std::find(subs_.begin(), subs_.end(), s); it != subs_.end()) {
      *it = subs_.back();
      subs_.pop_back();
      --sub_counts_[Metrics::idx(s->proto_)];
    }
    if (s->armed_) {
      if (auto it = std::find(armed_.begin(), armed_.end(), s); it != armed_.end()) {
        *it = armed_.back();
        armed_.pop_back();
      }
      s->armed_ = false;
    }
    dropped_gops_ += s->dropped_gops_;
    if (subs_.empty() && !publishing_) idle_since_ms_ = mono_ms();
  }

  Subscription::ReadStatus read(Subscription& s, std::vector<media::PacketPtr>& out, size_t max_bytes) {
    std::lock_guard lk(mu_);
    if (closed_) return Subscription::ReadStatus::ended;
    const size_t initial = out.size();
    const uint64_t head = base_seq_ + ring_.size();
    bool resync = false;
    if (!s.started_ || s.seen_epoch_ != epoch_) {
      // First read, or a new publish began since the last one: start at the newest keyframe.
      // What the ring kept of a publish that had ended before the player attached is not
      // played to it (stale frames): it waits for the next publisher.
      if (epoch_ < s.min_epoch_ || (!publishing_ && ring_.empty())) return arm_locked(s);
      resync = true;
    } else if (s.cursor_ < base_seq_) {
      resync = true;  // fell out of the ring
      ++s.dropped_gops_;
      metrics_.dropped_gops_total.fetch_add(1, std::memory_order_relaxed);
    } else if (!keyframes_.empty() && s.cursor_ < keyframes_.back() && s.cursor_ < head) {
      const auto& cur = ring_[s.cursor_ - base_seq_];
      if (last_out_ts_ > cur->dts_ms && last_out_ts_ - cur->dts_ms > cfg_.subscriber_max_lag_ms) {
        // Too far behind: drop the GOPs between the cursor and the newest keyframe.
        // GOPs skipped: those starting in [cursor, newest keyframe), plus the partial one the
        // cursor is in.
        auto skipped = std::count_if(keyframes_.begin(), keyframes_.end(), [&](uint64_t k) {
          return k >= s.cursor_ && k < keyframes_.back();
        });
        if (!cur->keyframe) ++skipped;
        s.dropped_gops_ += static_cast<uint64_t>(skipped);
        metrics_.dropped_gops_total.fetch_add(static_cast<uint64_t>(skipped), std::memory_order_relaxed);
        resync = true;
      }
    }
    if (resync) {
      if (!publishing_ && ring_.empty()) return arm_locked(s);
      if (metadata_) out.push_back(metadata_);
      if (video_sh_) out.push_back(video_sh_);
      if (audio_sh_) out.push_back(audio_sh_);
      s.cursor_ = start_seq_locked();
      s.started_ = true;
      s.seen_epoch_ = epoch_;
    }
    size_t bytes = 0;
    while (s.cursor_ < head && bytes < max_bytes) {
      const auto& p = ring_[s.cursor_ - base_seq_];
      ++s.cursor_;
      // Headers already sent by the resync above are skipped when met again in the ring.
      if (resync && (p == video_sh_ || p == audio_sh_ || p == metadata_)) continue;
      bytes += p->payload.size();
      out.push_back(p);
    }
    if (out.size() == initial) return arm_locked(s);
    return Subscription::ReadStatus::ok;
  }

  void set_waker(Subscription& s, std::function<void()> w) {
    std::lock_guard lk(mu_);
    s.waker_ = std::move(w);
  }

  // ---- hub side ----------------------------------------------------------------------------

  /// True when the Source has neither publisher nor subscribers and has been idle long enough.
  bool idle_expired(int64_t now) const {
    std::lock_guard lk(mu_);
    return !publishing_ && subs_.empty() && now - idle_since_ms_ >= int64_t(cfg_.idle_timeout_ms);
  }

  void close() {
    {
      std::lock_guard lk(mu_);
      if (closed_) return;
      closed_ = true;
      ring_.clear();
      keyframes_.clear();
      ring_bytes_ = 0;
      wake_armed_locked();  // waiting subscribers then read `ended`
    }
    std::lock_guard ol(obs_mu_);
    for (auto& o : observers_) o->on_close();
  }

  StreamStats stats() const {
    std::lock_guard lk(mu_);
    StreamStats st;
    st.key = key_;
    st.publishing = publishing_;
    if (publishing_) {
      st.publisher_protocol = proto_name(publisher_proto_);
      st.publisher_remote = publisher_remote_;
      st.uptime_ms = mono_ms() - publish_started_ms_;
    }
    st.video_codec = video_info_.codec;
    st.width = video_info_.width;
    st.height = video_info_.height;
    st.audio_codec = audio_info_.codec;
    st.audio_sample_rate = audio_info_.sample_rate;
    st.audio_channels = audio_info_.channels;
    const double bps = rate_.bytes_per_s(mono_ms());
    const double fps = frame_rate_.fps();
    if (publishing_) {
      st.bitrate_kbps = static_cast<uint32_t>(bps * 8 / 1000 + 0.5);
      st.fps = fps > 0 ? fps : video_info_.sps_fps;
    }
    st.bytes_in = bytes_in_;
    for (size_t i = 0; i < Metrics::kProtos; ++i) st.subscribers[i] = sub_counts_[i];
    uint64_t dropped = dropped_gops_;
    for (const auto* s : subs_) dropped += s->dropped_gops_;
    st.dropped_gops = dropped;
    return st;
  }

 private:
  struct VideoInfo {
    std::string codec;
    uint32_t width = 0, height = 0;
    double sps_fps = 0;
  };
  struct AudioInfo {
    std::string codec;
    uint32_t sample_rate = 0, channels = 0;
  };

  void update_video_info_locked(const media::MediaPacket& p) {
    video_info_.codec = p.video_codec == media::VideoCodec::h264   ? "H264"
                        : p.video_codec == media::VideoCodec::hevc ? "HEVC"
                                                                   : "";
    if (p.video_codec != media::VideoCodec::h264 || p.payload.size() <= 5) return;
    auto cfg = media::h264::parse_decoder_config(ByteView(p.payload).subspan(5));
    if (!cfg || cfg->sps.empty()) return;
    auto sps = media::h264::parse_sps(cfg->sps.front());
    if (!sps) return;
    video_info_.width = sps->width;
    video_info_.height = sps->height;
    video_info_.sps_fps = sps->fps;
  }

  void update_audio_info_locked(const media::MediaPacket& p) {
    audio_info_.codec = p.audio_codec == media::AudioCodec::aac ? "AAC"
                        : p.audio_codec == media::AudioCodec::mp3 ? "MP3"
                                                                  : "";
    if (p.audio_codec != media::AudioCodec::aac || p.payload.size() <= 2) return;
    auto asc = media::aac::parse_asc(ByteView(p.payload).subspan(2));
    if (!asc) return;
    audio_info_.sample_rate = asc->sample_rate;
    audio_info_.channels = asc->channels;
  }

  /// Metadata, or an AVC/HEVC/AAC sequence header (FLV spec E.4.2.1, E.4.3.1).
  static bool is_header(media::PacketType type, const Bytes& p) {
    if (type == media::PacketType::data) return true;
    if (p.size() < 2) return false;
    if (type == media::PacketType::video) {
      const uint8_t codec = p[0] & 0x0f;
      return (codec == 7 || codec == 12) && p[1] == 0;
    }
    return (p[0] >> 4) == 10 && p[1] == 0;
  }

  uint64_t start_seq_locked() const {
    if (!keyframes_.empty()) return keyframes_.back();
    // No keyframe retained: audio-only streams start at the ring (already trimmed to the lag
    // limit); a video stream without a keyframe yet starts at the head.
    return has_video_ ? base_seq_ + ring_.size() : base_seq_;
  }

  void append_locked(const media::PacketPtr& pkt) {
    const uint64_t seq = base_seq_ + ring_.size();
    ring_.push_back(pkt);
    ring_bytes_ += pkt->payload.size();
    if (pkt->keyframe) {
      keyframes_.push_back(seq);
      // Keep `gop_cache_gops` whole GOPs: drop everything before the oldest retained keyframe.
      while (keyframes_.size() > std::max<uint32_t>(1, cfg_.gop_cache_gops)) keyframes_.pop_front();
      drop_front_until_locked(keyframes_.front());
    }
    if (!has_video_) {
      // Audio-only: retain just the lag window.
      while (!ring_.empty() && pkt->dts_ms > ring_.front()->dts_ms &&
             pkt->dts_ms - ring_.front()->dts_ms > cfg_.subscriber_max_lag_ms)
        pop_front_locked();
    }
    // Hard byte cap, even inside one oversized GOP.
    while (ring_bytes_ > cfg_.gop_cache_max_bytes && ring_.size() > 1) pop_front_locked();
  }

  void drop_front_until_locked(uint64_t seq) {
    while (base_seq_ < seq && !ring_.empty()) pop_front_locked();
  }

  void pop_front_locked() {
    ring_bytes_ -= ring_.front()->payload.size();
    ring_.pop_front();
    ++base_seq_;
    while (!keyframes_.empty() && keyframes_.front() < base_seq_) keyframes_.pop_front();
  }

  Subscription::ReadStatus arm_locked(Subscription& s) {
    if (!s.armed_) {
      s.armed_ = true;
      armed_.push_back(&s);
    }
    return Subscription::ReadStatus::wait;
  }

  // Wakers are called under mu_: they are cheap posts, and holding the lock guarantees the
  // Subscription (which detaches under mu_) is alive.
  void wake_armed_locked() {
    for (Subscription* s : armed_) {
      s->armed_ = false;
      if (s->waker_) s->waker_();
    }
    armed_.clear();
  }

  StreamHub& hub_;
  const LiveConfig& cfg_;
  Metrics& metrics_;
  const StreamKey key_;

  std::mutex obs_mu_;
  std::vector<std::unique_ptr<SourceObserver>> observers_;
  std::vector<bool> active_;  // observers that accepted the current publish (obs_mu_)

  mutable std::mutex mu_;
  bool publishing_ = false;
  bool closed_ = false;
  uint64_t epoch_ = 0;
  Proto publisher_proto_ = Proto::rtmp;
  std::string publisher_remote_;
  int64_t publish_started_ms_ = 0;
  std::function<void(const std::string&)> on_revoked_;
  bool revoked_ = false;
  int64_t idle_since_ms_;
  uint64_t bytes_in_ = 0;
  RateWindow rate_;
  FrameRate frame_rate_;
  VideoInfo video_info_;
  AudioInfo audio_info_;
  bool has_video_ = false;

  std::optional<uint32_t> first_raw_ts_;  // publisher thread only
  bool first_frame_seen_ = false;         // publisher thread only
  /// Headers this far (ms) from the first frame do not set the timestamp base.
  static constexpr int64_t kDetachedHeadersMs = 1000;
  uint32_t ts_offset_ = 0;
  uint32_t last_out_ts_ = 0;

  media::PacketPtr metadata_, video_sh_, audio_sh_;
  std::deque<media::PacketPtr> ring_;  // sequence numbers base_seq_ .. base_seq_ + size - 1
  uint64_t base_seq_ = 0;
  size_t ring_bytes_ = 0;
  std::deque<uint64_t> keyframes_;  // sequence numbers of retained keyframes, ascending

  std::vector<Subscription*> subs_;
  std::vector<Subscription*> armed_;
  uint64_t sub_counts_[Metrics::kProtos] = {};
  uint64_t dropped_gops_ = 0;  // of subscribers that left
};

// ---- Publisher -------------------------------------------------------------------------------

Publisher::~Publisher() { unpublish(); }

bool Publisher::push(media::PacketType type, uint32_t timestamp_ms, Bytes payload) {
  return src_ && src_->push(epoch_, type, timestamp_ms, std::move(payload));
}

void Publisher::unpublish() {
  if (src_) {
    src_->end_publish(epoch_);
    src_.reset();
  }
}

bool Publisher::revoked() const { return !src_ || src_->revoked(epoch_); }

void Publisher::set_on_revoked(std::function<void(const std::string&)> f) {
  if (src_) src_->set_on_revoked(epoch_, std::move(f));
}

const StreamKey& Publisher::key() const noexcept {
  static const StreamKey kNone;  // immutable placeholder after unpublish
  return src_ ? src_->key() : kNone;
}

// ---- Subscription ----------------------------------------------------------------------------

Subscription::~Subscription() {
  if (src_) src_->detach(this);
}

Subscription::ReadStatus Subscription::read(std::vector<media::PacketPtr>& out, size_t max_bytes) {
  return src_->read(*this, out, max_bytes);
}

void Subscription::set_waker(std::function<void()> waker) { src_->set_waker(*this, std::move(waker)); }

const StreamKey& Subscription::key() const noexcept { return src_->key(); }

bool Subscription::publishing() const { return src_->publishing(nullptr); }

// ---- StreamHub -------------------------------------------------------------------------------

StreamHub::StreamHub(const LiveConfig& cfg, Metrics& metrics) : cfg_(cfg), metrics_(metrics) {}

StreamHub::~StreamHub() { stop(); }

Result<std::unique_ptr<Publisher>> StreamHub::publish(const StreamKey& requested, Proto proto, std::string remote) {
  if (auto st = validate_name(requested.app); !st) return st.error();
  if (auto st = validate_name(requested.stream); !st) return st.error();
  PublishAuthorizer authorize;
  {
    std::lock_guard lk(mu_);
    authorize = authorizer_;
  }
  StreamKey key = requested;
  if (authorize && proto != Proto::relay) {
    auto mapped = authorize(requested, remote);
    if (!mapped) {
      metrics_.publish_rejected_total.fetch_add(1, std::memory_order_relaxed);
      return mapped.error();
    }
    key = std::move(mapped.value());
    if (auto st = validate_name(key.app); !st) return st.error();
    if (auto st = validate_name(key.stream); !st) return st.error();
  }
  auto found = find_or_create(key, /*create=*/true);
  if (!found) return found.error();
  std::shared_ptr<Source> src = std::move(found.value());
  const uint64_t epoch = src->begin_publish(proto, std::move(remote));
  if (epoch == 0) {
    metrics_.publish_rejected_total.fetch_add(1, std::memory_order_relaxed);
    return Error{Errc::already_publishing, key.str() + " is already being published"};
  }
  return std::unique_ptr<Publisher>(new Publisher(std::move(src), epoch));
}

Result<std::unique_ptr<Subscription>> StreamHub::subscribe(const StreamKey& key, Proto proto,
                                                           bool wait_for_publisher) {
  if (auto st = validate_name(key.app); !st) return st.error();
  if (auto st = validate_name(key.stream); !st) return st.error();
  bool wait = wait_for_publisher;
  if (!wait) {
    auto existing = find(key);
    if (!existing || !existing->publishing(nullptr)) {
      RemoteLocator locate;
      {
        std::lock_guard lk(mu_);
        locate = locator_;
      }
      const Remote where = locate ? locate(key) : Remote::none;
      if (where == Remote::full) return Error{Errc::unavailable, key.str() + ": too many players wait for its relay"};
      if (where != Remote::remote) return Error{Errc::not_found, key.str() + " is not being published"};
      wait = true;  // another node publishes it: wait for the relay
    }
  }
  auto found = find_or_create(key, /*create=*/wait);
  if (!found) return found.error();
  std::shared_ptr<Source> src = std::move(found.value());
  if (!wait && !src->publishing(nullptr)) return Error{Errc::not_found, key.str() + " is not being published"};
  std::unique_ptr<Subscription> sub(new Subscription(src, proto));
  src->attach(sub.get());
  emit_event(StreamEvent{StreamEvent::Kind::subscribe, key, src->epoch(), proto});
  return sub;
}

Result<std::shared_ptr<Source>> StreamHub::find_or_create(const StreamKey& key, bool create) {
  std::vector<ObserverFactory> factories;
  {
    std::lock_guard lk(mu_);
    if (stopped_) return Error{Errc::closed, "server is stopping"};
    if (auto it = sources_.find(key); it != sources_.end()) return it->second;
    if (!create) return Error{Errc::not_found, key.str() + " is not being published"};
    factories = observer_factories_;
  }
  // Observers are made outside the hub lock (a factory may take its own locks).
  std::vector<std::unique_ptr<SourceObserver>> observers;
  for (auto& f : factories)
    if (auto o = f(key)) observers.push_back(std::move(o));
  auto fresh = std::make_shared<Source>(*this, key, std::move(observers));
  std::lock_guard lk(mu_);
  auto [it, inserted] = sources_.emplace(key, fresh);
  return it->second;  // another thread may have created it meanwhile
}

void StreamHub::set_publish_authorizer(PublishAuthorizer f) {
  std::lock_guard lk(mu_);
  authorizer_ = std::move(f);
}

void StreamHub::add_observer_factory(ObserverFactory f) {
  std::lock_guard lk(mu_);
  observer_factories_.push_back(std::move(f));
}

void StreamHub::add_event_listener(EventListener f) {
  std::lock_guard lk(mu_);
  listeners_.push_back(std::move(f));
}

void StreamHub::emit_event(const StreamEvent& ev) {
  std::vector<EventListener> ls;
  {
    std::lock_guard lk(mu_);
    ls = listeners_;
  }
  for (auto& l : ls) l(ev);
}

std::shared_ptr<Source> StreamHub::find(const StreamKey& key) const {
  std::lock_guard lk(mu_);
  auto it = sources_.find(key);
  return it == sources_.end() ? nullptr : it->second;
}

void StreamHub::set_remote_locator(RemoteLocator f) {
  std::lock_guard lk(mu_);
  locator_ = std::move(f);
}

bool StreamHub::revoke_publisher(const StreamKey& key, uint64_t epoch, const std::string& reason) {
  auto src = find(key);
  return src && src->revoke(epoch, reason);
}

bool StreamHub::close_unpublished(const StreamKey& key) {
  std::shared_ptr<Source> src;
  {
    std::lock_guard lk(mu_);
    auto it = sources_.find(key);
    if (it == sources_.end()) return true;
    if (it->second->publishing(nullptr)) return false;
    src = it->second;
    sources_.erase(it);
  }
  src->close();
  return true;
}

uint64_t StreamHub::subscriber_count(const StreamKey& key, Proto proto) const {
  auto src = find(key);
  return src ? src->subscriber_count(proto) : 0;
}

bool StreamHub::is_publishing(const StreamKey& key, Proto* proto) const {
  auto src = find(key);
  return src && src->publishing(proto);
}

void StreamHub::set_subscriber_counter(Proto proto, SubscriberCounter counter) {
  std::lock_guard lk(mu_);
  counters_.emplace_back(proto, std::move(counter));
}

void StreamHub::add_external_counts(StreamStats& st) const {
  std::vector<std::pair<Proto, SubscriberCounter>> cs;
  {
    std::lock_guard lk(mu_);
    cs = counters_;
  }
  for (auto& [proto, fn] : cs) st.subscribers[Metrics::idx(proto)] += fn(st.key);
}

std::vector<StreamStats> StreamHub::list() const {
  std::vector<std::shared_ptr<Source>> srcs;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : sources_) srcs.push_back(s);
  }
  std::vector<StreamStats> out;
  for (auto& s : srcs) {
    auto st = s->stats();
    if (!st.publishing) continue;
    add_external_counts(st);
    out.push_back(std::move(st));
  }
  return out;
}

std::optional<StreamStats> StreamHub::stats(const StreamKey& key) const {
  std::shared_ptr<Source> src;
  {
    std::lock_guard lk(mu_);
    auto it = sources_.find(key);
    if (it == sources_.end()) return std::nullopt;
    src = it->second;
  }
  auto st = src->stats();
  if (!st.publishing) return std::nullopt;
  add_external_counts(st);
  return st;
}

size_t StreamHub::publishing_count() const {
  std::vector<std::shared_ptr<Source>> srcs;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : sources_) srcs.push_back(s);
  }
  return static_cast<size_t>(
      std::count_if(srcs.begin(), srcs.end(), [](auto& s) { return s->publishing(nullptr); }));
}

void StreamHub::sweep() {
  const int64_t now = mono_ms();
  std::vector<std::shared_ptr<Source>> expired;
  {
    std::lock_guard lk(mu_);
    for (auto it = sources_.begin(); it != sources_.end();) {
      if (it->second->idle_expired(now)) {
        expired.push_back(it->second);
        it = sources_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : expired) s->close();
}

void StreamHub::stop() {
  std::map<StreamKey, std::shared_ptr<Source>> all;
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
    all.swap(sources_);
  }
  for (auto& [k, s] : all) s->close();
}

}  // namespace castmesh::live
