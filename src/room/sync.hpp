#pragma once
/// \file The server-authoritative playback anchor of a room (DESIGN.md section 5,
/// docs/protocol.md "Playback state") as a pure state machine: no clock, no I/O. Every function
/// takes the server time `now_ms` (Unix ms) explicitly.
///
/// Rules (each tested in sync_test.cpp):
/// - position_at(now) = position_s + (now - updated_at_ms)/1000 * rate while playing, else
///   position_s; never negative.
/// - Every accepted command increments `version` by exactly one and re-anchors
///   (position_s = position_at(now), updated_at_ms = now) before applying its change.
///   A command whose `version` differs from the current one is refused (Errc::conflict, detail
///   "stale_version") and changes nothing. Refused commands never change the version.
/// - play/pause set the *intent* `want_playing`; an optional position re-anchors there.
/// - seek: position >= 0 (finite, <= kMaxPosition); refused on live items.
/// - rate: 0.25..4 inclusive (finite); refused on live items.
/// - next: the item after the current one in the playlist order (the first item when nothing
///   is selected or the current item is no longer in the playlist); Errc::not_found at the end of
///   the playlist or on an empty playlist. Position 0, intent unchanged.
/// - set_item: an item of the playlist (Errc::not_found otherwise), position 0, intent unchanged.
///   Selecting the current item again restarts it.
/// - Buffering wait: each connection (opaque key) may report buffering. With
///   pause_on_buffering on, the effective `playing` = want_playing && no connection buffering;
///   otherwise effective `playing` = want_playing. Whenever a buffering report, a removal or a
///   setting change flips the effective `playing`, the anchor is re-anchored and the version
///   incremented (reason "buffering"); reports that flip nothing change nothing. While the room
///   waits (`waiting()`), play/pause/seek still work: they change the intent and the anchor;
///   playback resumes by itself when the last buffering connection becomes ready or leaves.
/// - ended(item): with auto_advance on and `item` the current, non-live item, handled at most
///   once per selection of that item (a seek, or a play with a position, re-arms it): moves to the next item (position 0, intent unchanged) or,
///   at the end of the playlist, stops (want_playing = false, position frozen). Any other
///   `ended` (another item, a duplicate, a live item, auto_advance off) is ignored.
/// - Live items: the anchor keeps item_id, position 0 and rate 1; clients hold themselves
///   `live_target_offset_s` behind the live edge instead of following position_s.

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_set>

#include "base/result.hpp"

namespace castmesh::room {

/// Largest accepted position, seconds (about 115 days; rejects absurd values and infinities).
inline constexpr double kMaxPosition = 1e7;
inline constexpr double kMinRate = 0.25;
inline constexpr double kMaxRate = 4.0;

/// The anchor as sent on the wire (`state` object) and stored (store::RoomState).
struct PlaybackState {
  int64_t item_id = 0;        ///< 0 = nothing selected
  double position_s = 0;      ///< seconds into the item at updated_at_ms
  double rate = 1.0;          ///< playback rate, kMinRate..kMaxRate
  bool playing = false;       ///< effective: false while waiting for buffering members
  int64_t updated_at_ms = 0;  ///< server Unix ms of the anchor
  uint64_t version = 0;       ///< +1 per accepted change

  friend bool operator==(const PlaybackState&, const PlaybackState&) = default;
};

/// Extrapolated position (seconds, >= 0) of `s` at server time `now_ms`.
double position_at(const PlaybackState& s, int64_t now_ms) noexcept;

/// One playlist item as the state machine sees it, in playlist order.
struct PlaylistEntry {
  int64_t id = 0;
  bool live = false;  ///< kind "live"
};

/// Outcome of ended().
enum class EndedOutcome {
  ignored,   ///< nothing changed
  advanced,  ///< moved to the next item (reason "auto")
  stopped,   ///< last item finished: paused (reason "ended")
};

/// The state machine of one room. Not thread-safe: the owning room serializes calls.
class PlaybackSync {
 public:
  /// Starts from a stored anchor. `initial.playing` becomes the intent; with nobody buffering
  /// the effective state equals it. `current_live` tells whether initial.item_id is a live item.
  explicit PlaybackSync(const PlaybackState& initial = {}, bool current_live = false,
                        bool pause_on_buffering = false, bool auto_advance = true);

  const PlaybackState& state() const noexcept { return state_; }
  double position_at(int64_t now_ms) const noexcept { return room::position_at(state_, now_ms); }
  bool want_playing() const noexcept { return want_playing_; }
  /// True when the intent is to play but a buffering connection holds playback paused.
  bool waiting() const noexcept { return want_playing_ && !state_.playing; }
  bool current_live() const noexcept { return current_live_; }
  size_t buffering_count() const noexcept { return buffering_.size(); }
  bool pause_on_buffering() const noexcept { return pause_on_buffering_; }
  bool auto_advance() const noexcept { return auto_advance_; }

  // Versioned commands (docs/protocol.md "Client -> server"). Errors: Errc::conflict
  // ("stale_version"), Errc::malformed (value out of range), Errc::not_found (no such / no next
  // item), Errc::unsupported (seek or rate on a live item).
  Status play(uint64_t version, std::optional<double> position_s, int64_t now_ms);
  Status pause(uint64_t version, std::optional<double> position_s, int64_t now_ms);
  Status seek(uint64_t version, double position_s, int64_t now_ms);
  Status set_rate(uint64_t version, double rate, int64_t now_ms);
  Status next(uint64_t version, std::span<const PlaylistEntry> playlist, int64_t now_ms);
  Status set_item(uint64_t version, int64_t item_id, std::span<const PlaylistEntry> playlist, int64_t now_ms);

  // Unversioned inputs. Each returns true when the anchor changed (version incremented).

  /// Connection `key` reports buffering (true) or ready (false).
  bool set_buffering(uint64_t key, bool buffering, int64_t now_ms);
  /// Connection `key` left: forget its buffering report.
  bool remove_connection(uint64_t key, int64_t now_ms);
  /// Room setting changed.
  bool set_pause_on_buffering(bool on, int64_t now_ms);
  void set_auto_advance(bool on) noexcept { auto_advance_ = on; }
  /// A client's media ended (see the rules above).
  EndedOutcome ended(int64_t item_id, std::span<const PlaylistEntry> playlist, int64_t now_ms);
  /// Selects `item_id` (0 = nothing) without a version check, position 0, e.g. when the current
  /// item was removed or the first item was added to an empty selection. Clearing to 0 also
  /// clears the intent. Always changes the anchor.
  void replace_current(int64_t item_id, bool live, int64_t now_ms);

 private:
  Status check_version(uint64_t version) const;
  void reanchor(int64_t now_ms);
  void select(int64_t item_id, bool live, int64_t now_ms);
  void update_effective();
  bool effective_playing() const noexcept;

  PlaybackState state_;
  bool want_playing_ = false;
  bool current_live_ = false;
  bool pause_on_buffering_ = false;
  bool auto_advance_ = true;
  bool ended_handled_ = false;  // ended() already acted on the current selection
  std::unordered_set<uint64_t> buffering_;
};

}  // namespace castmesh::room
