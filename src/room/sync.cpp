#include "room/sync.hpp"

#include <cmath>

namespace castmesh::room {
namespace {

Status check_position(double p) {
  if (!std::isfinite(p) || p < 0 || p > kMaxPosition) {
    return Error{Errc::malformed, "position_s must be a number in 0..1e7"};
  }
  return ok_status();
}

}  // namespace

double position_at(const PlaybackState& s, int64_t now_ms) noexcept {
  double p = s.position_s;
  if (s.playing) p += static_cast<double>(now_ms - s.updated_at_ms) / 1000.0 * s.rate;
  return p < 0 ? 0 : p;
}

PlaybackSync::PlaybackSync(const PlaybackState& initial, bool current_live, bool pause_on_buffering,
                           bool auto_advance)
    : state_(initial),
      want_playing_(initial.playing),
      current_live_(current_live),
      pause_on_buffering_(pause_on_buffering),
      auto_advance_(auto_advance) {
  if (!std::isfinite(state_.rate) || state_.rate < kMinRate || state_.rate > kMaxRate) state_.rate = 1.0;
  if (!std::isfinite(state_.position_s) || state_.position_s < 0) state_.position_s = 0;
}

Status PlaybackSync::check_version(uint64_t version) const {
  if (version != state_.version) return Error{Errc::conflict, "stale_version"};
  return ok_status();
}

bool PlaybackSync::effective_playing() const noexcept {
  return want_playing_ && !(pause_on_buffering_ && !buffering_.empty());
}

void PlaybackSync::reanchor(int64_t now_ms) {
  state_.position_s = position_at(now_ms);
  state_.updated_at_ms = now_ms;
}

void PlaybackSync::update_effective() { state_.playing = effective_playing(); }

void PlaybackSync::select(int64_t item_id, bool live, int64_t now_ms) {
  state_.item_id = item_id;
  state_.position_s = 0;
  state_.updated_at_ms = now_ms;
  current_live_ = live && item_id != 0;
  if (current_live_) state_.rate = 1.0;
  ended_handled_ = false;
}

Status PlaybackSync::play(uint64_t version, std::optional<double> position_s, int64_t now_ms) {
  if (position_s) {
    if (auto st = check_position(*position_s); !st) return st;
  }
  if (auto st = check_version(version); !st) return st;
  reanchor(now_ms);
  if (position_s && !current_live_) {
    state_.position_s = *position_s;
    ended_handled_ = false;
  }
  want_playing_ = true;
  update_effective();
  ++state_.version;
  return ok_status();
}

Status PlaybackSync::pause(uint64_t version, std::optional<double> position_s, int64_t now_ms) {
  if (position_s) {
    if (auto st = check_position(*position_s); !st) return st;
  }
  if (auto st = check_version(version); !st) return st;
  reanchor(now_ms);
  if (position_s && !current_live_) state_.position_s = *position_s;
  want_playing_ = false;
  update_effective();
  ++state_.version;
  return ok_status();
}

Status PlaybackSync::seek(uint64_t version, double position_s, int64_t now_ms) {
  if (auto st = check_position(position_s); !st) return st;
  if (auto st = check_version(version); !st) return st;
  if (current_live_) return Error{Errc::unsupported, "cannot seek in a live item"};
  reanchor(now_ms);
  state_.position_s = position_s;
  ended_handled_ = false;  // the item can end again
  ++state_.version;
  return ok_status();
}

Status PlaybackSync::set_rate(uint64_t version, double rate, int64_t now_ms) {
  if (!std::isfinite(rate) || rate < kMinRate || rate > kMaxRate) {
    return Error{Errc::malformed, "rate must be in 0.25..4"};
  }
  if (auto st = check_version(version); !st) return st;
  if (current_live_) return Error{Errc::unsupported, "cannot change the rate of a live item"};
  reanchor(now_ms);  // at the old rate, then continue at the new one from here
  state_.rate = rate;
  ++state_.version;
  return ok_status();
}

Status PlaybackSync::next(uint64_t version, std::span<const PlaylistEntry> playlist, int64_t now_ms) {
  if (auto st = check_version(version); !st) return st;
  size_t idx = playlist.size();
  for (size_t i = 0; i < playlist.size(); ++i) {
    if (playlist[i].id == state_.item_id) {
      idx = i;
      break;
    }
  }
  size_t target = idx == playlist.size() ? 0 : idx + 1;
  if (target >= playlist.size()) return Error{Errc::not_found, "no next item in the playlist"};
  select(playlist[target].id, playlist[target].live, now_ms);
  update_effective();
  ++state_.version;
  return ok_status();
}

Status PlaybackSync::set_item(uint64_t version, int64_t item_id, std::span<const PlaylistEntry> playlist,
                              int64_t now_ms) {
  if (auto st = check_version(version); !st) return st;
  for (const auto& e : playlist) {
    if (e.id == item_id) {
      select(e.id, e.live, now_ms);
      update_effective();
      ++state_.version;
      return ok_status();
    }
  }
  return Error{Errc::not_found, "no such playlist item"};
}

bool PlaybackSync::set_buffering(uint64_t key, bool buffering, int64_t now_ms) {
  if (buffering) buffering_.insert(key);
  else buffering_.erase(key);
  if (effective_playing() == state_.playing) return false;
  reanchor(now_ms);
  update_effective();
  ++state_.version;
  return true;
}

bool PlaybackSync::remove_connection(uint64_t key, int64_t now_ms) { return set_buffering(key, false, now_ms); }

bool PlaybackSync::set_pause_on_buffering(bool on, int64_t now_ms) {
  pause_on_buffering_ = on;
  if (effective_playing() == state_.playing) return false;
  reanchor(now_ms);
  update_effective();
  ++state_.version;
  return true;
}

EndedOutcome PlaybackSync::ended(int64_t item_id, std::span<const PlaylistEntry> playlist, int64_t now_ms) {
  if (!auto_advance_ || current_live_ || item_id == 0 || item_id != state_.item_id || ended_handled_) {
    return EndedOutcome::ignored;
  }
  size_t idx = playlist.size();
  for (size_t i = 0; i < playlist.size(); ++i) {
    if (playlist[i].id == item_id) {
      idx = i;
      break;
    }
  }
  reanchor(now_ms);
  if (idx + 1 < playlist.size()) {
    select(playlist[idx + 1].id, playlist[idx + 1].live, now_ms);
    update_effective();
    ++state_.version;
    return EndedOutcome::advanced;
  }
  want_playing_ = false;
  update_effective();
  ended_handled_ = true;
  ++state_.version;
  return EndedOutcome::stopped;
}

void PlaybackSync::replace_current(int64_t item_id, bool live, int64_t now_ms) {
  reanchor(now_ms);
  select(item_id, live, now_ms);
  if (item_id == 0) want_playing_ = false;
  update_effective();
  ++state_.version;
}

}  // namespace castmesh::room
