#include "room/sync.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace castmesh::room {
namespace {

constexpr int64_t T0 = 1'700'000'000'000;

const std::vector<PlaylistEntry> kList{{10, false}, {20, false}, {30, true}};

PlaybackSync at_item(int64_t item, bool playing = false, bool pause_on_buffering = false) {
  PlaybackState s;
  s.item_id = item;
  s.playing = playing;
  s.updated_at_ms = T0;
  return PlaybackSync(s, false, pause_on_buffering, true);
}

TEST(PositionAt, ExtrapolatesOnlyWhilePlaying) {
  PlaybackState s{1, 10.0, 1.0, true, T0, 3};
  EXPECT_DOUBLE_EQ(position_at(s, T0), 10.0);
  EXPECT_DOUBLE_EQ(position_at(s, T0 + 2500), 12.5);
  s.rate = 2.0;
  EXPECT_DOUBLE_EQ(position_at(s, T0 + 2500), 15.0);
  s.rate = 0.25;
  EXPECT_DOUBLE_EQ(position_at(s, T0 + 4000), 11.0);
  s.playing = false;
  EXPECT_DOUBLE_EQ(position_at(s, T0 + 60'000), 10.0);
}

TEST(PositionAt, NeverNegativeEvenForClockSkew) {
  PlaybackState s{1, 1.0, 1.0, true, T0, 0};
  EXPECT_DOUBLE_EQ(position_at(s, T0 - 5000), 0.0);
  EXPECT_DOUBLE_EQ(position_at(s, T0 - 500), 0.5);
}

TEST(PlaybackSync, PlayPauseReanchorAndBumpVersion) {
  auto p = at_item(10);
  ASSERT_TRUE(p.play(0, std::nullopt, T0 + 1000).ok());
  EXPECT_TRUE(p.state().playing);
  EXPECT_EQ(p.state().version, 1u);
  EXPECT_EQ(p.state().updated_at_ms, T0 + 1000);
  EXPECT_DOUBLE_EQ(p.state().position_s, 0.0);  // was paused: no time passed in the media
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 4000), 3.0);

  ASSERT_TRUE(p.pause(1, std::nullopt, T0 + 6000).ok());
  EXPECT_FALSE(p.state().playing);
  EXPECT_EQ(p.state().version, 2u);
  EXPECT_DOUBLE_EQ(p.state().position_s, 5.0);  // frozen where it was
  EXPECT_EQ(p.state().updated_at_ms, T0 + 6000);
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 100'000), 5.0);
}

TEST(PlaybackSync, PlayAndPauseWithExplicitPosition) {
  auto p = at_item(10);
  ASSERT_TRUE(p.play(0, 42.0, T0).ok());
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 1000), 43.0);
  ASSERT_TRUE(p.pause(1, 7.5, T0 + 5000).ok());
  EXPECT_DOUBLE_EQ(p.state().position_s, 7.5);
  EXPECT_FALSE(p.state().playing);
}

TEST(PlaybackSync, StaleVersionChangesNothing) {
  auto p = at_item(10);
  ASSERT_TRUE(p.play(0, std::nullopt, T0).ok());
  const PlaybackState before = p.state();
  for (uint64_t v : {0ull, 2ull, 100ull}) {
    EXPECT_EQ(p.pause(v, std::nullopt, T0 + 1000).code(), Errc::conflict);
    EXPECT_EQ(p.play(v, 1.0, T0 + 1000).code(), Errc::conflict);
    EXPECT_EQ(p.seek(v, 3.0, T0 + 1000).code(), Errc::conflict);
    EXPECT_EQ(p.set_rate(v, 2.0, T0 + 1000).code(), Errc::conflict);
    EXPECT_EQ(p.next(v, kList, T0 + 1000).code(), Errc::conflict);
    EXPECT_EQ(p.set_item(v, 20, kList, T0 + 1000).code(), Errc::conflict);
  }
  EXPECT_EQ(p.state(), before);
  EXPECT_EQ(p.pause(0, std::nullopt, T0).error().detail, "stale_version");
}

TEST(PlaybackSync, TwoClientsSameVersionOnlyFirstWins) {
  auto p = at_item(10);
  ASSERT_TRUE(p.seek(0, 30.0, T0).ok());
  EXPECT_EQ(p.seek(0, 60.0, T0).code(), Errc::conflict);
  EXPECT_DOUBLE_EQ(p.state().position_s, 30.0);
}

TEST(PlaybackSync, SeekKeepsPlayingAndValidates) {
  auto p = at_item(10);
  ASSERT_TRUE(p.play(0, std::nullopt, T0).ok());
  ASSERT_TRUE(p.seek(1, 100.0, T0 + 3000).ok());
  EXPECT_TRUE(p.state().playing);
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 5000), 102.0);
  const auto v = p.state().version;
  EXPECT_EQ(p.seek(v, -1.0, T0).code(), Errc::malformed);
  EXPECT_EQ(p.seek(v, std::numeric_limits<double>::infinity(), T0).code(), Errc::malformed);
  EXPECT_EQ(p.seek(v, std::nan(""), T0).code(), Errc::malformed);
  EXPECT_EQ(p.seek(v, 2e7, T0).code(), Errc::malformed);
  EXPECT_EQ(p.play(v, -3.0, T0).code(), Errc::malformed);
  EXPECT_EQ(p.state().version, v);
  ASSERT_TRUE(p.seek(v, 0.0, T0 + 5000).ok());
}

TEST(PlaybackSync, RateChangeReanchorsAtOldRate) {
  auto p = at_item(10);
  ASSERT_TRUE(p.play(0, 0.0, T0).ok());
  ASSERT_TRUE(p.set_rate(1, 2.0, T0 + 10'000).ok());  // 10 s at 1x
  EXPECT_DOUBLE_EQ(p.state().position_s, 10.0);
  EXPECT_EQ(p.state().updated_at_ms, T0 + 10'000);
  EXPECT_DOUBLE_EQ(p.state().rate, 2.0);
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 15'000), 20.0);  // +5 s at 2x
  ASSERT_TRUE(p.pause(2, std::nullopt, T0 + 15'000).ok());
  EXPECT_DOUBLE_EQ(p.state().position_s, 20.0);
  EXPECT_DOUBLE_EQ(p.state().rate, 2.0);  // pause keeps the rate
}

TEST(PlaybackSync, RateLimitsInclusive) {
  auto p = at_item(10);
  EXPECT_TRUE(p.set_rate(0, 0.25, T0).ok());
  EXPECT_TRUE(p.set_rate(1, 4.0, T0).ok());
  EXPECT_EQ(p.set_rate(2, 0.2499, T0).code(), Errc::malformed);
  EXPECT_EQ(p.set_rate(2, 4.01, T0).code(), Errc::malformed);
  EXPECT_EQ(p.set_rate(2, 0.0, T0).code(), Errc::malformed);
  EXPECT_EQ(p.set_rate(2, -1.0, T0).code(), Errc::malformed);
  EXPECT_EQ(p.set_rate(2, std::nan(""), T0).code(), Errc::malformed);
  EXPECT_DOUBLE_EQ(p.state().rate, 4.0);
}

TEST(PlaybackSync, NextWalksThePlaylistAndStopsAtTheEnd) {
  auto p = at_item(0);
  ASSERT_TRUE(p.play(0, std::nullopt, T0).ok());
  ASSERT_TRUE(p.next(1, kList, T0 + 1000).ok());  // nothing selected -> first
  EXPECT_EQ(p.state().item_id, 10);
  ASSERT_TRUE(p.seek(2, 50.0, T0 + 1000).ok());
  ASSERT_TRUE(p.next(3, kList, T0 + 2000).ok());
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_DOUBLE_EQ(p.state().position_s, 0.0);
  EXPECT_TRUE(p.state().playing);  // intent unchanged
  ASSERT_TRUE(p.next(4, kList, T0 + 3000).ok());
  EXPECT_EQ(p.state().item_id, 30);
  EXPECT_TRUE(p.current_live());
  const auto before = p.state();
  EXPECT_EQ(p.next(5, kList, T0 + 4000).code(), Errc::not_found);  // end of playlist
  EXPECT_EQ(p.state(), before);
}

TEST(PlaybackSync, NextOnEmptyPlaylistOrRemovedCurrent) {
  auto p = at_item(99);
  EXPECT_EQ(p.next(0, {}, T0).code(), Errc::not_found);
  ASSERT_TRUE(p.next(0, kList, T0).ok());  // 99 is not in the list -> first
  EXPECT_EQ(p.state().item_id, 10);
}

TEST(PlaybackSync, SetItem) {
  auto p = at_item(10);
  ASSERT_TRUE(p.seek(0, 12.0, T0).ok());
  EXPECT_EQ(p.set_item(1, 77, kList, T0).code(), Errc::not_found);
  EXPECT_EQ(p.state().version, 1u);
  ASSERT_TRUE(p.set_item(1, 20, kList, T0 + 500).ok());
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_DOUBLE_EQ(p.state().position_s, 0.0);
  EXPECT_EQ(p.state().updated_at_ms, T0 + 500);
  EXPECT_FALSE(p.state().playing);
}

TEST(PlaybackSync, LiveItemsRefuseSeekAndRate) {
  auto p = at_item(10);
  ASSERT_TRUE(p.set_rate(0, 2.0, T0).ok());
  ASSERT_TRUE(p.set_item(1, 30, kList, T0).ok());
  EXPECT_TRUE(p.current_live());
  EXPECT_DOUBLE_EQ(p.state().rate, 1.0);  // live always plays at 1x
  EXPECT_EQ(p.seek(2, 5.0, T0).code(), Errc::unsupported);
  EXPECT_EQ(p.set_rate(2, 2.0, T0).code(), Errc::unsupported);
  ASSERT_TRUE(p.play(2, 17.0, T0).ok());  // a position is ignored for live
  EXPECT_DOUBLE_EQ(p.state().position_s, 0.0);
  EXPECT_TRUE(p.state().playing);
  EXPECT_EQ(p.ended(30, kList, T0 + 10'000), EndedOutcome::ignored);  // a live stream does not "end"
}

TEST(PlaybackSync, AutoAdvanceOnEndedOnlyOnce) {
  auto p = at_item(10, true);
  EXPECT_EQ(p.ended(20, kList, T0 + 1000), EndedOutcome::ignored);  // not the current item
  EXPECT_EQ(p.state().version, 0u);
  EXPECT_EQ(p.ended(10, kList, T0 + 1000), EndedOutcome::advanced);
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_EQ(p.state().version, 1u);
  EXPECT_TRUE(p.state().playing);
  // every other client reports the same end: ignored
  EXPECT_EQ(p.ended(10, kList, T0 + 1100), EndedOutcome::ignored);
  EXPECT_EQ(p.ended(10, kList, T0 + 1200), EndedOutcome::ignored);
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_EQ(p.state().version, 1u);
}

TEST(PlaybackSync, EndedOnLastItemStopsOnce) {
  const std::vector<PlaylistEntry> list{{10, false}, {20, false}};
  auto p = at_item(20, true);
  EXPECT_EQ(p.ended(20, list, T0 + 5000), EndedOutcome::stopped);
  EXPECT_FALSE(p.state().playing);
  EXPECT_FALSE(p.want_playing());
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_DOUBLE_EQ(p.state().position_s, 5.0);
  EXPECT_EQ(p.ended(20, list, T0 + 5100), EndedOutcome::ignored);
  EXPECT_EQ(p.state().version, 1u);
  // restarting the item by selecting it again re-arms ended
  ASSERT_TRUE(p.set_item(1, 20, list, T0 + 6000).ok());
  ASSERT_TRUE(p.play(2, std::nullopt, T0 + 6000).ok());
  EXPECT_EQ(p.ended(20, list, T0 + 9000), EndedOutcome::stopped);
  // seeking back into the stopped item and playing it to the end stops again
  const auto v = p.state().version;
  ASSERT_TRUE(p.seek(v, 0.0, T0 + 10'000).ok());
  ASSERT_TRUE(p.play(v + 1, std::nullopt, T0 + 10'000).ok());
  EXPECT_EQ(p.ended(20, list, T0 + 13'000), EndedOutcome::stopped);
  EXPECT_EQ(p.ended(20, list, T0 + 13'100), EndedOutcome::ignored);
}

TEST(PlaybackSync, EndedIgnoredWithoutAutoAdvance) {
  auto p = at_item(10, true);
  p.set_auto_advance(false);
  EXPECT_EQ(p.ended(10, kList, T0), EndedOutcome::ignored);
  EXPECT_EQ(p.state().item_id, 10);
  EXPECT_EQ(p.state().version, 0u);
}

TEST(PlaybackSync, BufferingHasNoEffectWhenSettingOff) {
  auto p = at_item(10, true, /*pause_on_buffering=*/false);
  EXPECT_FALSE(p.set_buffering(1, true, T0 + 1000));
  EXPECT_TRUE(p.state().playing);
  EXPECT_EQ(p.state().version, 0u);
  EXPECT_EQ(p.buffering_count(), 1u);
}

TEST(PlaybackSync, BufferingWaitPausesUntilEveryoneIsReady) {
  auto p = at_item(10, true, /*pause_on_buffering=*/true);
  // connection 1 buffers at 2 s: effective pause, position frozen at 2 s
  EXPECT_TRUE(p.set_buffering(1, true, T0 + 2000));
  EXPECT_FALSE(p.state().playing);
  EXPECT_TRUE(p.waiting());
  EXPECT_DOUBLE_EQ(p.state().position_s, 2.0);
  EXPECT_EQ(p.state().version, 1u);
  // connection 2 buffers too: nothing changes
  EXPECT_FALSE(p.set_buffering(2, true, T0 + 2500));
  EXPECT_EQ(p.state().version, 1u);
  // a repeated report changes nothing
  EXPECT_FALSE(p.set_buffering(1, true, T0 + 2600));
  // 1 ready, 2 still buffering: still waiting
  EXPECT_FALSE(p.set_buffering(1, false, T0 + 3000));
  EXPECT_FALSE(p.state().playing);
  // 2 ready: resume from the frozen position, anchored at the resume time
  EXPECT_TRUE(p.set_buffering(2, false, T0 + 4000));
  EXPECT_TRUE(p.state().playing);
  EXPECT_FALSE(p.waiting());
  EXPECT_EQ(p.state().version, 2u);
  EXPECT_DOUBLE_EQ(p.state().position_s, 2.0);
  EXPECT_EQ(p.state().updated_at_ms, T0 + 4000);
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 5000), 3.0);
}

TEST(PlaybackSync, BufferingConnectionLeavingResumes) {
  auto p = at_item(10, true, true);
  EXPECT_TRUE(p.set_buffering(7, true, T0));
  EXPECT_FALSE(p.remove_connection(8, T0 + 100));  // someone else leaving changes nothing
  EXPECT_TRUE(p.remove_connection(7, T0 + 1000));
  EXPECT_TRUE(p.state().playing);
}

TEST(PlaybackSync, PauseWhileWaitingStaysPausedAfterBuffering) {
  auto p = at_item(10, true, true);
  EXPECT_TRUE(p.set_buffering(1, true, T0 + 1000));
  ASSERT_TRUE(p.pause(1, std::nullopt, T0 + 1500).ok());
  EXPECT_FALSE(p.waiting());
  EXPECT_FALSE(p.set_buffering(1, false, T0 + 2000));  // intent is paused: nothing to resume
  EXPECT_FALSE(p.state().playing);
  EXPECT_DOUBLE_EQ(p.state().position_s, 1.0);
}

TEST(PlaybackSync, PlayWhileSomeoneBuffersWaits) {
  auto p = at_item(10, false, true);
  EXPECT_FALSE(p.set_buffering(1, true, T0));  // paused anyway: no change
  ASSERT_TRUE(p.play(0, std::nullopt, T0 + 1000).ok());
  EXPECT_FALSE(p.state().playing);
  EXPECT_TRUE(p.waiting());
  EXPECT_EQ(p.state().version, 1u);
  ASSERT_TRUE(p.seek(1, 30.0, T0 + 1500).ok());  // seeking while waiting works
  EXPECT_TRUE(p.set_buffering(1, false, T0 + 3000));
  EXPECT_TRUE(p.state().playing);
  EXPECT_DOUBLE_EQ(p.position_at(T0 + 4000), 31.0);
}

TEST(PlaybackSync, TogglingTheSettingReevaluates) {
  auto p = at_item(10, true, false);
  EXPECT_FALSE(p.set_buffering(1, true, T0));
  EXPECT_TRUE(p.set_pause_on_buffering(true, T0 + 1000));
  EXPECT_FALSE(p.state().playing);
  EXPECT_DOUBLE_EQ(p.state().position_s, 1.0);
  EXPECT_TRUE(p.set_pause_on_buffering(false, T0 + 2000));
  EXPECT_TRUE(p.state().playing);
  EXPECT_FALSE(p.set_pause_on_buffering(false, T0 + 3000));
}

TEST(PlaybackSync, ReplaceCurrent) {
  auto p = at_item(10, true);
  p.replace_current(20, false, T0 + 1000);
  EXPECT_EQ(p.state().item_id, 20);
  EXPECT_TRUE(p.state().playing);
  EXPECT_EQ(p.state().version, 1u);
  p.replace_current(0, false, T0 + 2000);
  EXPECT_EQ(p.state().item_id, 0);
  EXPECT_FALSE(p.state().playing);
  EXPECT_FALSE(p.want_playing());
  EXPECT_EQ(p.state().version, 2u);
}

TEST(PlaybackSync, InitialStateIsSanitized) {
  PlaybackState s{5, -3.0, 99.0, true, T0, 8};
  PlaybackSync p(s);
  EXPECT_DOUBLE_EQ(p.state().rate, 1.0);
  EXPECT_DOUBLE_EQ(p.state().position_s, 0.0);
  EXPECT_EQ(p.state().version, 8u);
  EXPECT_TRUE(p.want_playing());
}

}  // namespace
}  // namespace castmesh::room
