#include "proto/hls/segmenter.hpp"

#include <algorithm>

#include "base/clock.hpp"
#include "base/log.hpp"

namespace castmesh::hls {

namespace {

bool usable_video(const media::MediaPacket& p) { return p.video_codec == media::VideoCodec::h264; }
bool usable_audio(const media::MediaPacket& p) { return p.audio_codec == media::AudioCodec::aac; }

}  // namespace

Segmenter::Segmenter(live::StreamKey key, const HlsConfig& cfg, std::shared_ptr<Store> store, Metrics& metrics,
                     Clock clock)
    : key_(std::move(key)),
      cfg_(cfg),
      store_(std::move(store)),
      metrics_(metrics),
      clock_(clock ? std::move(clock) : Clock(&mono_ms)),
      dir_(key_.app + "/" + key_.stream) {
  playlist_.target_duration_secs = std::max<uint32_t>(cfg_.target_duration_secs, 1);
}

Segmenter::~Segmenter() = default;

std::string Segmenter::playlist_path() const { return dir_ + "/" + playlist_file_name(key_.stream); }

std::string Segmenter::segment_path(uint64_t seq) const { return dir_ + "/" + segment_file_name(key_.stream, seq); }

void Segmenter::on_publish(bool republish) {
  std::lock_guard lk(mu_);
  if (publishing_ || shut_down_) return;
  publishing_ = true;
  warned_ = false;
  if (!files_present_) {
    // A fresh stream: drop whatever a previous process left under this name (file store).
    store_->remove_prefix(dir_);
  } else {
    // Segments of an earlier publisher are still listed (this Source's or, within the grace
    // period, an earlier Source's): the timestamps and codec parameters may change here.
    discontinuity_next_ = true;
  }
  (void)republish;
  reset_muxer_locked();
  video_sh_.reset();
  audio_sh_.reset();
}

void Segmenter::reset_muxer_locked() {
  ts_.reset();
  has_video_ = has_audio_ = false;
  reconfig_pending_ = false;
}

bool Segmenter::create_muxer_locked() {
  has_video_ = video_sh_ != nullptr;
  has_audio_ = audio_sh_ != nullptr;
  reconfig_pending_ = false;
  if (!has_video_ && !has_audio_) return false;
  ts_.emplace(media::ts::TsMuxer::Options{has_video_, has_audio_});
  Bytes ignored;
  if (video_sh_) (void)ts_->write(*video_sh_, ignored);
  if (audio_sh_) (void)ts_->write(*audio_sh_, ignored);
  return true;
}

void Segmenter::warn_once_locked(const std::string& what) {
  if (warned_) return;
  warned_ = true;
  spdlog::warn("hls {}: {}", key_.str(), what);
}

void Segmenter::on_packet(const media::PacketPtr& pkt) {
  if (!pkt) return;
  std::lock_guard lk(mu_);
  if (!publishing_ || pkt->is_data()) return;
  const media::MediaPacket& p = *pkt;

  if (p.is_video() && !usable_video(p)) {
    warn_once_locked("video codec is not H.264; HLS carries audio only");
    return;
  }
  if (p.is_audio() && !usable_audio(p)) {
    warn_once_locked("audio codec is not AAC; HLS carries video only");
    return;
  }

  if (p.sequence_header) {
    Bytes ignored;
    if (ts_) {
      if (auto st = ts_->write(p, ignored); !st) {
        warn_once_locked("bad sequence header: " + st.error().message());
        return;
      }
    } else {
      // Validate now so a broken header does not make a track that can never be muxed.
      media::ts::FlvToTs probe;
      if (auto st = probe.write(p, ignored); !st) {
        warn_once_locked("bad sequence header: " + st.error().message());
        return;
      }
    }
    (p.is_video() ? video_sh_ : audio_sh_) = pkt;
    if (ts_ && ((p.is_video() && !has_video_) || (p.is_audio() && !has_audio_))) reconfig_pending_ = true;
    return;
  }

  if (!ts_ && !create_muxer_locked()) return;  // a coded frame before any sequence header
  if ((p.is_video() && !has_video_) || (p.is_audio() && !has_audio_)) return;  // not in the PMT

  const bool cutting_track = has_video_ ? p.is_video() : p.is_audio();
  bool boundary = has_video_ ? (p.is_video() && p.keyframe) : p.is_audio();

  if (open_) {
    const int64_t elapsed = int64_t(p.dts_ms) - int64_t(start_dts_);
    if (boundary && (reconfig_pending_ || elapsed >= int64_t(cfg_.target_duration_secs) * 1000)) {
      close_segment_locked(elapsed);
      if (reconfig_pending_) {
        // The track set changed (e.g. audio arrived after video started): new PMT, and
        // players must reset their demuxer.
        create_muxer_locked();
        discontinuity_next_ = true;
        boundary = has_video_ ? (p.is_video() && p.keyframe) : p.is_audio();
      }
    } else if (buf_.size() + p.payload.size() > cfg_.max_segment_bytes && frames_ > 0) {
      // A stream without (frequent enough) keyframes: cut anyway to bound memory.
      close_segment_locked(elapsed);
      boundary = true;
    }
  }
  if (!open_) {
    if (!boundary) return;  // wait for a keyframe
    open_segment_locked(p.dts_ms);
  }

  if (auto st = ts_->write(p, buf_); !st) {
    warn_once_locked("packet skipped: " + st.error().message());
    return;
  }
  ++frames_;
  if (cutting_track) {
    if (p.dts_ms > last_dts_) last_delta_ = p.dts_ms - last_dts_;
    last_dts_ = std::max(last_dts_, p.dts_ms);
  }
}

void Segmenter::open_segment_locked(uint32_t dts_ms) {
  buf_.clear();
  ts_->write_tables(buf_);
  open_ = true;
  start_dts_ = last_dts_ = dts_ms;
  last_delta_ = 0;
  frames_ = 0;
  segment_discontinuity_ = discontinuity_next_;
  discontinuity_next_ = false;
}

void Segmenter::close_segment_locked(int64_t duration_ms) {
  open_ = false;
  if (frames_ == 0) {
    discontinuity_next_ = discontinuity_next_ || segment_discontinuity_;
    return;
  }
  const uint64_t seq = next_seq_++;
  const uint64_t duration = static_cast<uint64_t>(std::max<int64_t>(duration_ms, 1));
  auto data = std::make_shared<const Bytes>(std::move(buf_));
  buf_ = Bytes();
  buf_.reserve(data->size());  // the next segment is likely of the same size
  if (auto st = store_->put(segment_path(seq), std::move(data)); !st) {
    spdlog::error("hls {}: segment {} not stored: {}", key_.str(), seq, st.error().message());
    discontinuity_next_ = true;  // a gap in the listed media
    return;
  }
  files_present_ = true;
  metrics_.hls_segments_total.fetch_add(1, std::memory_order_relaxed);

  playlist_.segments.push_back(
      SegmentEntry{seq, duration, segment_discontinuity_, segment_file_name(key_.stream, seq)});
  // RFC 8216 4.3.3.1: the target duration covers every segment and, kept here, never shrinks.
  playlist_.target_duration_secs = std::max(playlist_.target_duration_secs, ceil_secs(duration));
  const size_t window = std::max<uint32_t>(cfg_.window, 1);
  while (playlist_.segments.size() > window) {
    // RFC 8216 6.2.2: removing a segment with a discontinuity tag advances the
    // discontinuity sequence number.
    if (playlist_.segments.front().discontinuity) ++playlist_.discontinuity_sequence;
    retired_.push_back(playlist_.segments.front().sequence);
    playlist_.segments.pop_front();
  }
  while (retired_.size() > kRetainedSegments) {
    store_->remove(segment_path(retired_.front()));
    retired_.pop_front();
  }
  const std::string text = render_media_playlist(playlist_);
  if (auto st = store_->put(playlist_path(), std::make_shared<const Bytes>(text.begin(), text.end())); !st)
    spdlog::error("hls {}: playlist not stored: {}", key_.str(), st.error().message());
}

void Segmenter::on_unpublish() {
  std::lock_guard lk(mu_);
  if (!publishing_) return;
  if (open_) {
    // The last frame lasts about as long as the one before it.
    close_segment_locked(int64_t(last_dts_) - int64_t(start_dts_) + last_delta_);
  }
  publishing_ = false;
  idle_since_ms_ = clock_();
  reset_muxer_locked();
  video_sh_.reset();
  audio_sh_.reset();
}

void Segmenter::on_close() { on_unpublish(); }

bool Segmenter::sweep() {
  std::lock_guard lk(mu_);
  if (publishing_) return false;
  if (files_present_ && clock_() - idle_since_ms_ >= int64_t(cfg_.cleanup_grace_secs) * 1000) {
    store_->remove_prefix(dir_);
    files_present_ = false;
    discontinuity_next_ = false;
    const uint64_t next = next_seq_;
    playlist_ = PlaylistState{};
    playlist_.target_duration_secs = std::max<uint32_t>(cfg_.target_duration_secs, 1);
    playlist_.media_sequence = next;
    retired_.clear();
    spdlog::debug("hls {}: removed after {} s without publisher", key_.str(), cfg_.cleanup_grace_secs);
  }
  return !files_present_;
}

void Segmenter::shutdown() {
  std::lock_guard lk(mu_);
  shut_down_ = true;
  publishing_ = false;
  open_ = false;
  buf_ = Bytes();
  reset_muxer_locked();
  store_->remove_prefix(dir_);
  files_present_ = false;
}

bool Segmenter::expired() const {
  std::lock_guard lk(mu_);
  return !publishing_ && !files_present_;
}

bool Segmenter::publishing() const {
  std::lock_guard lk(mu_);
  return publishing_;
}

PlaylistState Segmenter::playlist() const {
  std::lock_guard lk(mu_);
  return playlist_;
}

uint64_t Segmenter::next_sequence() const {
  std::lock_guard lk(mu_);
  return next_seq_;
}

Segmenter::Continuation Segmenter::continuation() const {
  std::lock_guard lk(mu_);
  Continuation c;
  c.next_sequence = next_seq_;
  c.discontinuities = playlist_.discontinuity_sequence;
  for (const auto& seg : playlist_.segments)
    if (seg.discontinuity) ++c.discontinuities;
  return c;
}

bool Segmenter::continue_from(const Continuation& c) {
  std::lock_guard lk(mu_);
  if (!playlist_.segments.empty() || shut_down_) return false;
  if (c.next_sequence > next_seq_) {
    next_seq_ = c.next_sequence;
    playlist_.media_sequence = c.next_sequence;
  }
  playlist_.discontinuity_sequence = std::max(playlist_.discontinuity_sequence, c.discontinuities);
  discontinuity_next_ = true;
  if (open_) segment_discontinuity_ = true;  // the segment being cut now is the first one listed
  return true;
}

}  // namespace castmesh::hls
