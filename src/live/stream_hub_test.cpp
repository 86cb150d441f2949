#include "live/stream_hub.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace castmesh::live {
namespace {

using media::PacketPtr;
using media::PacketType;

Bytes video(bool key, size_t n = 100, uint8_t pkt_type = 1) {
  Bytes b(5 + n, 0xAB);
  b[0] = key ? 0x17 : 0x27;
  b[1] = pkt_type;
  b[2] = b[3] = b[4] = 0;
  return b;
}
Bytes audio(size_t n = 20, uint8_t pkt_type = 1) {
  Bytes b(2 + n, 0xCD);
  b[0] = 0xAF;
  b[1] = pkt_type;
  return b;
}

struct HubTest : ::testing::Test {
  LiveConfig cfg;
  Metrics metrics;
  std::unique_ptr<StreamHub> hub;
  StreamKey key{"live", "test"};
  void SetUp() override { hub = std::make_unique<StreamHub>(cfg, metrics); }

  std::unique_ptr<Publisher> publish() {
    auto r = hub->publish(key, Proto::rtmp, "127.0.0.1:1");
    EXPECT_TRUE(r.ok());
    return r.ok() ? std::move(r.value()) : nullptr;
  }
  std::unique_ptr<Subscription> subscribe(bool wait = true) {
    auto r = hub->subscribe(key, Proto::httpflv, wait);
    EXPECT_TRUE(r.ok());
    return r.ok() ? std::move(r.value()) : nullptr;
  }
};

TEST(ValidateName, AcceptsAndRefuses) {
  EXPECT_TRUE(validate_name("live").ok());
  EXPECT_TRUE(validate_name("cam_1-a.b").ok());
  EXPECT_EQ(validate_name("").code(), Errc::bad_name);
  EXPECT_EQ(validate_name("..").code(), Errc::bad_name);
  EXPECT_EQ(validate_name("../x").code(), Errc::bad_name);
  EXPECT_EQ(validate_name("a/b").code(), Errc::bad_name);
  EXPECT_EQ(validate_name(std::string(4096, 'a')).code(), Errc::bad_name);
  EXPECT_EQ(validate_name(std::string("a\0b", 3)).code(), Errc::bad_name);
}

TEST_F(HubTest, SecondPublisherIsRefused) {
  auto p1 = publish();
  auto r = hub->publish(key, Proto::rtmp, "127.0.0.1:2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Errc::already_publishing);
  EXPECT_EQ(metrics.publish_rejected_total.load(), 1u);
  EXPECT_EQ(hub->publishing_count(), 1u);
  p1.reset();
  EXPECT_EQ(hub->publishing_count(), 0u);
  EXPECT_TRUE(hub->publish(key, Proto::rtmp, "127.0.0.1:3").ok());
}

TEST_F(HubTest, EmitsStreamEvents) {
  std::vector<std::string> events;
  std::mutex mu;
  hub->add_event_listener([&](const StreamEvent& ev) {
    static const char* kNames[] = {"publish", "unpublish", "subscribe", "unsubscribe"};
    std::lock_guard lk(mu);
    events.push_back(std::string(kNames[int(ev.kind)]) + " " + ev.key.str() + " " + std::to_string(ev.epoch) + " " +
                     proto_name(ev.proto));
  });
  {
    auto pub = publish();
    auto sub = subscribe();
  }
  EXPECT_EQ(events, (std::vector<std::string>{"publish live/test 1 rtmp", "subscribe live/test 1 httpflv",
                                                "unsubscribe live/test 1 httpflv", "unpublish live/test 1 rtmp"}));
}

TEST_F(HubTest, RevokeEndsOnlyThatPublish) {
  auto p1 = publish();
  std::string reason;
  p1->set_on_revoked([&](const std::string& r) { reason = r; });
  auto sub = subscribe();
  EXPECT_FALSE(hub->revoke_publisher(key, p1->epoch() + 1, "wrong epoch"));
  EXPECT_FALSE(p1->revoked());
  EXPECT_TRUE(hub->revoke_publisher(key, p1->epoch(), "lost the claim"));
  EXPECT_EQ(reason, "lost the claim");
  EXPECT_TRUE(p1->revoked());
  EXPECT_EQ(hub->publishing_count(), 0u);
  EXPECT_FALSE(p1->push(media::PacketType::audio, 0, Bytes{0xaf, 0x01, 0x00})) << "a revoked publisher is ignored";
  // A new publisher takes the key; destroying the revoked one leaves it alone.
  auto p2 = hub->publish(key, Proto::rtmp, "127.0.0.1:9");
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ((*p2)->epoch(), p1->epoch() + 1);
  p1.reset();
  EXPECT_EQ(hub->publishing_count(), 1u);
}

TEST_F(HubTest, RemoteLocatorMakesPlayersWait) {
  // Without a locator (or when it says no) a non-waiting subscribe is refused at once.
  EXPECT_EQ(hub->subscribe(key, Proto::httpflv, false).code(), Errc::not_found);
  StreamHub::Remote remote = StreamHub::Remote::none;
  hub->set_remote_locator([&](const StreamKey&) { return remote; });
  EXPECT_EQ(hub->subscribe(key, Proto::httpflv, false).code(), Errc::not_found);
  remote = StreamHub::Remote::full;
  EXPECT_EQ(hub->subscribe(key, Proto::httpflv, false).code(), Errc::unavailable);
  remote = StreamHub::Remote::remote;
  auto sub = hub->subscribe(key, Proto::httpflv, false);
  ASSERT_TRUE(sub.ok()) << "another node publishes it: the player waits for the relay";
  EXPECT_EQ(hub->subscriber_count(key, Proto::httpflv), 1u);
  std::vector<media::PacketPtr> out;
  EXPECT_EQ((*sub)->read(out), Subscription::ReadStatus::wait);
  // A relay (skipping the authorizer) feeds it.
  hub->set_publish_authorizer([](const StreamKey&, std::string_view) -> Result<StreamKey> {
    return Error{Errc::forbidden, "no"};
  });
  auto relay = hub->publish(key, Proto::relay, "10.0.0.1:7000");
  ASSERT_TRUE(relay.ok());
  EXPECT_EQ(metrics.streams.load(), 0) << "a relay is not a stream published here";
  Proto p = Proto::rtmp;
  EXPECT_TRUE(hub->is_publishing(key, &p));
  EXPECT_EQ(p, Proto::relay);
  relay->reset();
  // Nobody publishes any more: the waiting players are released.
  EXPECT_TRUE(hub->close_unpublished(key));
  EXPECT_EQ((*sub)->read(out), Subscription::ReadStatus::ended);
}

TEST_F(HubTest, PublishAuthorizerRefuses) {
  hub->set_publish_authorizer([](const StreamKey& k, std::string_view) -> Result<StreamKey> {
    if (k.stream == "secret-key") return StreamKey{"live", "room-abc"};
    return Error{Errc::forbidden, "unknown publish key"};
  });
  auto bad = hub->publish(key, Proto::rtmp, "127.0.0.1:1");
  EXPECT_EQ(bad.code(), Errc::forbidden);
  EXPECT_EQ(metrics.publish_rejected_total.load(), 1u);
  EXPECT_EQ(hub->publishing_count(), 0u);
  auto good = hub->publish(StreamKey{"live", "secret-key"}, Proto::rtmp, "127.0.0.1:1");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value()->key().str(), "live/room-abc") << "published under the room's public stream";
  EXPECT_TRUE(hub->stats(StreamKey{"live", "room-abc"}).has_value());
  EXPECT_FALSE(hub->stats(StreamKey{"live", "secret-key"}).has_value());
}

TEST_F(HubTest, FrameRateComesFromMediaTimestamps) {
  auto pub = publish();
  // 100 frames 40 ms apart, pushed as fast as possible: the stream is 25 fps whatever the
  // arrival rate.
  for (uint32_t i = 0; i < 100; ++i) pub->push(PacketType::video, i * 40, video(i % 25 == 0));
  auto st = hub->stats(key);
  ASSERT_TRUE(st.has_value());
  EXPECT_NEAR(st->fps, 25.0, 0.01);
  EXPECT_GT(st->bytes_in, 0u);
}

TEST_F(HubTest, SubscribeWithoutPublisher) {
  auto r = hub->subscribe(key, Proto::httpflv, false);
  EXPECT_EQ(r.code(), Errc::not_found);
  auto sub = subscribe(true);
  std::atomic<int> wakes{0};
  sub->set_waker([&] { ++wakes; });
  std::vector<PacketPtr> out;
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::wait);
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));  // sequence header
  EXPECT_EQ(wakes.load(), 1);
  pub->push(PacketType::video, 0, video(true));
  EXPECT_EQ(wakes.load(), 1) << "waker fires once per arm";
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0]->sequence_header);
  EXPECT_TRUE(out[1]->keyframe);
}

TEST_F(HubTest, LateSubscriberStartsAtNewestKeyframeWithHeaders) {
  auto pub = publish();
  pub->push(PacketType::data, 0, Bytes{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'});
  pub->push(PacketType::video, 0, video(true, 10, 0));
  pub->push(PacketType::audio, 0, audio(2, 0));
  for (int g = 0; g < 3; ++g) {
    pub->push(PacketType::video, g * 1000, video(true));
    for (int i = 1; i < 30; ++i) {
      pub->push(PacketType::video, g * 1000 + i * 33, video(false));
      pub->push(PacketType::audio, g * 1000 + i * 33, audio());
    }
  }
  auto sub = subscribe();
  std::vector<PacketPtr> out;
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_GE(out.size(), 4u);
  EXPECT_TRUE(out[0]->is_data());
  EXPECT_TRUE(out[1]->is_video() && out[1]->sequence_header);
  EXPECT_TRUE(out[2]->is_audio() && out[2]->sequence_header);
  EXPECT_TRUE(out[3]->keyframe);
  EXPECT_EQ(out[3]->dts_ms, 2000u);
  EXPECT_EQ(out.size(), 3u + 1 + 29 * 2);
  out.clear();
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::wait);
}

TEST_F(HubTest, SlowSubscriberDropsWholeGops) {
  cfg.subscriber_max_lag_ms = 1500;
  cfg.gop_cache_gops = 10;
  hub = std::make_unique<StreamHub>(cfg, metrics);
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));
  auto sub = subscribe();
  std::vector<PacketPtr> out;
  pub->push(PacketType::video, 0, video(true));
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  out.clear();
  // Five more GOPs of one second each while the subscriber does not read.
  for (int g = 1; g <= 5; ++g) {
    pub->push(PacketType::video, g * 1000, video(true));
    for (int i = 1; i < 10; ++i) pub->push(PacketType::video, g * 1000 + i * 100, video(false));
  }
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_GE(out.size(), 2u);
  EXPECT_TRUE(out[0]->sequence_header) << "headers are re-sent after a skip";
  EXPECT_TRUE(out[1]->keyframe);
  EXPECT_EQ(out[1]->dts_ms, 5000u) << "resumes on the newest keyframe";
  EXPECT_EQ(sub->dropped_gops(), 4u) << "GOPs 1-4 were skipped";
  EXPECT_EQ(metrics.dropped_gops_total.load(), 4u);
}

TEST_F(HubTest, RingIsBoundedByGopsAndBytes) {
  cfg.gop_cache_gops = 1;
  cfg.gop_cache_max_bytes = 64 * 1024;
  hub = std::make_unique<StreamHub>(cfg, metrics);
  auto pub = publish();
  // One huge GOP: the byte cap must hold even without keyframes.
  pub->push(PacketType::video, 0, video(true, 1000));
  for (int i = 1; i < 2000; ++i) pub->push(PacketType::video, i, video(false, 1000));
  auto sub = subscribe();
  std::vector<PacketPtr> out;
  sub->read(out, SIZE_MAX);
  size_t bytes = 0;
  for (auto& p : out) bytes += p->payload.size();
  EXPECT_LE(bytes, cfg.gop_cache_max_bytes + 2000);
  // The evicted keyframe is not replaced by a mid-GOP start: the subscriber waits for the next.
  pub->push(PacketType::video, 3000, video(true, 1000));
  out.clear();
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_FALSE(out.empty());
  EXPECT_TRUE(out.back()->keyframe);
  EXPECT_EQ(out.back()->dts_ms, 3000u);
}

TEST_F(HubTest, RepublishContinuesTimestampsAndResyncs) {
  auto sub = subscribe();
  std::vector<PacketPtr> out;
  {
    auto pub = publish();
    pub->push(PacketType::video, 0, video(true, 10, 0));
    pub->push(PacketType::video, 0, video(true));
    pub->push(PacketType::video, 5000, video(false));
  }
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  EXPECT_FALSE(sub->publishing());
  out.clear();
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::wait);
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));
  pub->push(PacketType::video, 0, video(true));
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0]->sequence_header);
  EXPECT_GT(out[1]->dts_ms, 5000u) << "timestamps never go backwards across republish";
}

TEST_F(HubTest, StopEndsSubscriptionsAndSweepRemovesIdle) {
  cfg.idle_timeout_ms = 0;
  hub = std::make_unique<StreamHub>(cfg, metrics);
  {
    auto pub = publish();
  }
  hub->sweep();
  EXPECT_EQ(hub->subscribe(key, Proto::rtmp, false).code(), Errc::not_found);
  auto sub = subscribe();
  std::atomic<int> wakes{0};
  sub->set_waker([&] { ++wakes; });
  std::vector<PacketPtr> out;
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::wait);
  hub->stop();
  EXPECT_EQ(wakes.load(), 1);
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::ended);
}

TEST_F(HubTest, ConcurrentPublisherAndSubscribers) {
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));
  constexpr uint32_t kPackets = 20000;
  std::vector<std::unique_ptr<Subscription>> subs;
  for (int r = 0; r < 4; ++r) subs.push_back(subscribe());
  std::atomic<bool> done{false};
  std::vector<uint32_t> last_seen(subs.size(), 0);
  std::vector<std::thread> readers;
  for (size_t r = 0; r < subs.size(); ++r) {
    readers.emplace_back([&, r] {
      std::vector<PacketPtr> out;
      uint32_t last = 0;
      for (;;) {
        const bool finished = done.load();  // read once more after the publisher finished
        out.clear();
        if (subs[r]->read(out) == Subscription::ReadStatus::ok) {
          for (auto& p : out) {
            if (p->sequence_header) continue;
            EXPECT_GE(p->dts_ms, last) << "timestamps go backwards";
            last = p->dts_ms;
          }
        } else if (finished) {
          break;
        } else {
          std::this_thread::yield();
        }
      }
      last_seen[r] = last;
    });
  }
  for (uint32_t i = 1; i <= kPackets; ++i) pub->push(PacketType::video, i, video(i % 30 == 0, 50));
  done = true;
  for (auto& t : readers) t.join();
  for (size_t r = 0; r < subs.size(); ++r) EXPECT_EQ(last_seen[r], kPackets) << "reader " << r << " reached the end";
}

TEST_F(HubTest, PlayerAfterUnpublishGetsNoStaleFrames) {
  {
    auto pub = publish();
    pub->push(PacketType::video, 0, video(true, 10, 0));
    pub->push(PacketType::video, 0, video(true));
    pub->push(PacketType::video, 40, video(false));
  }
  // Attached after the publish ended: nothing of it, the next publish from its keyframe.
  auto sub = subscribe();
  std::vector<PacketPtr> out;
  EXPECT_EQ(sub->read(out), Subscription::ReadStatus::wait);
  EXPECT_TRUE(out.empty());
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));
  pub->push(PacketType::video, 0, video(true));
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0]->sequence_header);
  EXPECT_TRUE(out[1]->keyframe);
}

TEST_F(HubTest, HeadersBeforeTheFirstFrameDoNotMoveTheTimestampBase) {
  // A relay re-publishing into an existing Source: the owner's headers carry 0, its frames are
  // minutes in. Output continues right after the previous publish, without a jump.
  {
    auto pub = publish();
    pub->push(PacketType::video, 0, video(true, 10, 0));
    pub->push(PacketType::video, 0, video(true));
    pub->push(PacketType::video, 1000, video(false));
  }
  auto sub = subscribe();
  auto pub = publish();
  pub->push(PacketType::video, 0, video(true, 10, 0));  // sequence header, raw 0
  pub->push(PacketType::video, 270000, video(true));    // first frame, raw 270 s
  pub->push(PacketType::video, 270040, video(false));
  std::vector<PacketPtr> out;
  ASSERT_EQ(sub->read(out), Subscription::ReadStatus::ok);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1]->dts_ms, 1040u) << "continues after the last output timestamp (1000) + 40";
  EXPECT_EQ(out[2]->dts_ms, 1080u);
}

}  // namespace
}  // namespace castmesh::live
