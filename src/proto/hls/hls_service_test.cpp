#include "proto/hls/hls_service.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "media/format/flv.hpp"
#include "proto/hls/hls_test_util.hpp"

namespace castmesh::hls {
namespace {

using namespace castmesh::hls::testing;
using media::PacketType;

std::string text(const Blob& b) { return b ? std::string(b->begin(), b->end()) : std::string(); }

struct ServiceRig {
  explicit ServiceRig(HlsConfig c = {}) : cfg(c), svc(cfg, metrics, store, [this] { return now; }) {}
  HlsConfig cfg;
  Metrics metrics;
  std::shared_ptr<MemoryStore> store = std::make_shared<MemoryStore>();
  int64_t now = 5'000'000;
  HlsService svc;
};

void feed_gops(live::SourceObserver& o, uint32_t from, uint32_t to) {
  o.on_packet(packet(PacketType::video, from, avc_sequence_header()));
  o.on_packet(packet(PacketType::audio, from, aac_sequence_header()));
  for (uint32_t t = from; t < to; t += 40) {
    o.on_packet(packet(PacketType::video, t, avc_frame((t - from) % 1000 == 0)));
    o.on_packet(packet(PacketType::audio, t, aac_frame()));
  }
}

TEST(HlsService, ServesPlaylistAndSegments) {
  ServiceRig r;
  const live::StreamKey key{"live", "cam-1"};
  auto obs = r.svc.observer_factory()(key);
  ASSERT_NE(obs, nullptr);
  EXPECT_FALSE(r.svc.get(key, "cam-1.m3u8").has_value());  // nothing yet: 404
  obs->on_publish(false);
  feed_gops(*obs, 0, 4001);

  auto pl = r.svc.get(key, "cam-1.m3u8");
  ASSERT_TRUE(pl.has_value());
  EXPECT_EQ(pl->content_type, "application/vnd.apple.mpegurl");
  EXPECT_EQ(pl->cache_control, "no-cache");
  EXPECT_NE(text(pl->body).find("\ncam-1-0.ts\n"), std::string::npos) << text(pl->body);

  auto seg = r.svc.get(key, "cam-1-0.ts");
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->content_type, "video/mp2t");
  EXPECT_EQ(seg->body.get(), r.store->get("live/cam-1/cam-1-0.ts").get());  // shared, not copied
  EXPECT_TRUE(read_ts(*seg->body).aligned);

  EXPECT_TRUE(r.svc.get(key, "cam-1-1.ts").has_value());
  EXPECT_FALSE(r.svc.get(key, "cam-1-2.ts").has_value());  // still open
  // Names of another shape, other streams and traversal attempts are refused.
  for (std::string_view bad : {"cam-1.ts", "cam-1-.ts", "cam-1-x.ts", "cam-1-0.ts.tmp", "cam-1-1-0.ts", "cam-2.m3u8",
                               "cam-1.m3u", "../cam-1/cam-1.m3u8", "cam-1-0.m3u8", ".cam-1.m3u8", ""}) {
    EXPECT_FALSE(r.svc.get(key, bad).has_value()) << bad;
  }
  EXPECT_FALSE(r.svc.get({"..", "cam-1"}, "cam-1.m3u8").has_value());
  EXPECT_FALSE(r.svc.get({"live", "x"}, "x.m3u8").has_value());
}

TEST(HlsService, SuccessiveSourcesShareOnePlaylistWithinGrace) {
  HlsConfig cfg;
  cfg.window = 10;
  ServiceRig r(cfg);
  const live::StreamKey key{"live", "s"};
  auto first = r.svc.observer_factory()(key);
  first->on_publish(false);
  feed_gops(*first, 0, 4001);
  first->on_unpublish();
  first->on_close();
  first.reset();  // the hub dropped the idle Source
  EXPECT_EQ(r.svc.stream_count(), 1u);
  r.svc.sweep();
  EXPECT_EQ(r.svc.stream_count(), 1u);  // files still in their grace period

  auto second = r.svc.observer_factory()(key);  // a new Source: republish flag is false
  second->on_publish(false);
  feed_gops(*second, 0, 4001);  // timestamps restart
  std::string pl = text(r.svc.get(key, "s.m3u8")->body);
  EXPECT_NE(pl.find("s-2.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\ns-3.ts\n"), std::string::npos) << pl;
  EXPECT_NE(pl.find("#EXT-X-MEDIA-SEQUENCE:0\n"), std::string::npos) << pl;
}

TEST(HlsService, SweepRemovesFilesAfterGraceAndForgetsStreams) {
  HlsConfig cfg;
  cfg.cleanup_grace_secs = 5;
  ServiceRig r(cfg);
  const live::StreamKey key{"live", "s"};
  auto obs = r.svc.observer_factory()(key);
  obs->on_publish(false);
  feed_gops(*obs, 0, 4001);
  obs->on_unpublish();
  r.now += 4'999;
  r.svc.sweep();
  EXPECT_TRUE(r.svc.get(key, "s.m3u8").has_value());
  r.now += 1;
  r.svc.sweep();
  EXPECT_FALSE(r.svc.get(key, "s.m3u8").has_value());
  EXPECT_EQ(r.store->size(), 0u);
  EXPECT_EQ(r.svc.stream_count(), 1u);  // the Source still holds its observer
  obs.reset();
  r.svc.sweep();
  EXPECT_EQ(r.svc.stream_count(), 0u);
  EXPECT_GT(r.metrics.hls_segments_total.load(), 0u);
}

TEST(HlsService, UnusedObserversAreForgotten) {
  ServiceRig r;
  auto obs = r.svc.observer_factory()({"live", "never"});
  obs.reset();  // a Source created for a waiting player, dropped without publishing
  r.svc.sweep();
  EXPECT_EQ(r.svc.stream_count(), 0u);
}

TEST(HlsService, DisabledMakesNoObservers) {
  HlsConfig cfg;
  cfg.enabled = false;
  ServiceRig r(cfg);
  EXPECT_EQ(r.svc.observer_factory()({"live", "s"}), nullptr);
}

TEST(HlsService, StopRemovesEverything) {
  ServiceRig r;
  auto obs = r.svc.observer_factory()({"live", "s"});
  obs->on_publish(false);
  feed_gops(*obs, 0, 4001);
  EXPECT_GT(r.store->size(), 0u);
  r.svc.stop();
  EXPECT_EQ(r.store->size(), 0u);
  feed_gops(*obs, 4040, 8001);
  EXPECT_EQ(r.store->size(), 0u);
}

TEST(HlsService, FileStoreBackend) {
  TempDir dir("hls-svc");
  HlsConfig cfg;
  cfg.store = StoreKind::file;
  cfg.dir = (dir.path() / "hls").string();
  Metrics metrics;
  HlsService svc(cfg, metrics);
  const live::StreamKey key{"live", "f"};
  auto obs = svc.observer_factory()(key);
  obs->on_publish(false);
  feed_gops(*obs, 0, 4001);
  EXPECT_TRUE(fs::exists(dir.path() / "hls/live/f/f.m3u8"));
  EXPECT_TRUE(fs::exists(dir.path() / "hls/live/f/f-0.ts"));
  auto seg = svc.get(key, "f-0.ts");
  ASSERT_TRUE(seg.has_value());
  EXPECT_EQ(seg->body->size(), fs::file_size(dir.path() / "hls/live/f/f-0.ts"));
  svc.stop();
  EXPECT_FALSE(fs::exists(dir.path() / "hls/live/f"));
}

TEST(HlsService, WorksBehindStreamHub) {
  ServiceRig r;
  live::LiveConfig lc;
  live::StreamHub hub(lc, r.metrics);
  hub.add_observer_factory(r.svc.observer_factory());
  const live::StreamKey key{"live", "hub"};
  auto pub = hub.publish(key, Proto::rtmp, "127.0.0.1:1");
  ASSERT_TRUE(pub.ok());
  (*pub)->push(PacketType::video, 0, avc_sequence_header());
  (*pub)->push(PacketType::audio, 0, aac_sequence_header());
  for (uint32_t t = 0; t <= 4000; t += 40) {
    (*pub)->push(PacketType::video, t, avc_frame(t % 1000 == 0));
    (*pub)->push(PacketType::audio, t, aac_frame());
  }
  auto pl = r.svc.get(key, "hub.m3u8");
  ASSERT_TRUE(pl.has_value());
  EXPECT_NE(text(pl->body).find("hub-1.ts"), std::string::npos);
  pub->reset();  // unpublish: the partial segment is flushed
  EXPECT_TRUE(r.svc.get(key, "hub-2.ts").has_value());
  hub.stop();
  r.svc.stop();
  EXPECT_EQ(r.store->size(), 0u);
}

// ---------------------------------------------------------------- end to end with ffmpeg

class HlsEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_program("ffmpeg") || !have_program("ffprobe")) return;
    dir_ = new TempDir("hls-e2e");
    flv_ = (dir_->path() / "in.flv").string();
    // 1280x720 H.264 with B-frames (composition offsets) and a 1 s GOP, AAC stereo, 9 s.
    auto [rc, out] = run(
        "ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=25 "
        "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 9 "
        "-c:v libx264 -preset ultrafast -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p "
        "-c:a aac -b:a 64k -ac 2 -f flv -y " + flv_);
    if (rc != 0) {
      ADD_FAILURE() << "ffmpeg could not make the test input: " << out;
      flv_.clear();
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::vector<media::flv::Tag> read_flv() {
    std::ifstream in(flv_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    media::flv::Demuxer demux;
    std::vector<media::flv::Tag> tags;
    auto st = demux.feed(ByteView(reinterpret_cast<const uint8_t*>(data.data()), data.size()), tags);
    EXPECT_TRUE(st.ok());
    return tags;
  }

  /// Writes the store's objects of `key` to `out` (playlist with EXT-X-ENDLIST appended so
  /// ffmpeg reads it as a finished presentation instead of waiting for more segments).
  static void export_stream(HlsService& svc, MemoryStore& store, const live::StreamKey& key, const fs::path& out) {
    std::string pl = text(svc.get(key, key.stream + ".m3u8")->body);
    ASSERT_EQ(pl.find("ENDLIST"), std::string::npos);
    std::ofstream(out / (key.stream + ".m3u8")) << pl << "#EXT-X-ENDLIST\n";
    std::istringstream lines(pl);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty() || line[0] == '#') continue;
      auto seg = svc.get(key, line);
      ASSERT_TRUE(seg.has_value()) << line;
      std::ofstream f(out / line, std::ios::binary);
      f.write(reinterpret_cast<const char*>(seg->body->data()), std::streamsize(seg->body->size()));
    }
  }

  static TempDir* dir_;
  static std::string flv_;
};

TempDir* HlsEndToEnd::dir_ = nullptr;
std::string HlsEndToEnd::flv_;

TEST_F(HlsEndToEnd, SegmentsPlayInFfmpeg) {
  if (flv_.empty()) GTEST_SKIP() << "ffmpeg/ffprobe not available";
  HlsConfig cfg;
  cfg.window = 20;
  Metrics metrics;
  auto store = std::make_shared<MemoryStore>();
  HlsService svc(cfg, metrics, store, {});
  const live::StreamKey key{"live", "e2e"};
  auto obs = svc.observer_factory()(key);
  obs->on_publish(false);
  size_t fed = 0;
  for (auto& tag : read_flv()) {
    if (auto p = media::make_packet(tag.type, tag.timestamp_ms, std::move(tag.data))) {
      obs->on_packet(p);
      ++fed;
    }
  }
  ASSERT_GT(fed, 600u);
  obs->on_unpublish();

  std::string pl = text(svc.get(key, "e2e.m3u8")->body);
  // 1 s GOPs, target 2 s, 9 s of media: 4 segments of 2 s and the flushed last second.
  EXPECT_EQ(metrics.hls_segments_total.load(), 5u) << pl;
  EXPECT_NE(pl.find("#EXT-X-TARGETDURATION:2\n"), std::string::npos) << pl;
  EXPECT_NE(pl.find("#EXTINF:2.000,\ne2e-0.ts\n"), std::string::npos) << pl;
  EXPECT_NE(pl.find("#EXTINF:1.000,\ne2e-4.ts\n"), std::string::npos) << pl;

  TempDir out("hls-e2e-out");
  export_stream(svc, *store, key, out.path());
  const std::string m3u8 = (out.path() / "e2e.m3u8").string();

  auto [rc, errors] = run("ffmpeg -nostdin -v error -i " + m3u8 + " -f null -");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(errors, "") << "ffmpeg reported errors decoding the segments";

  auto [prc, probe] = run("ffprobe -v error -show_entries stream=codec_name,width,height,channels -of compact=p=0 " + m3u8);
  EXPECT_EQ(prc, 0) << probe;
  EXPECT_NE(probe.find("codec_name=h264|width=1280|height=720"), std::string::npos) << probe;
  EXPECT_NE(probe.find("codec_name=aac"), std::string::npos) << probe;
  EXPECT_NE(probe.find("channels=2"), std::string::npos) << probe;

  auto [drc, dur] = run("ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 " + m3u8);
  ASSERT_EQ(drc, 0) << dur;
  EXPECT_NEAR(std::stod(dur), 9.0, 0.3) << dur;

  // Every segment on its own starts decodable (PAT/PMT + IDR first).
  auto [src, seg_err] = run("ffmpeg -nostdin -v error -i " + (out.path() / "e2e-2.ts").string() + " -f null -");
  EXPECT_EQ(src, 0);
  EXPECT_EQ(seg_err, "");
}

TEST_F(HlsEndToEnd, RepublishedStreamPlaysAcrossDiscontinuity) {
  if (flv_.empty()) GTEST_SKIP() << "ffmpeg/ffprobe not available";
  HlsConfig cfg;
  cfg.window = 20;
  Metrics metrics;
  auto store = std::make_shared<MemoryStore>();
  HlsService svc(cfg, metrics, store, {});
  live::LiveConfig lc;
  live::StreamHub hub(lc, metrics);
  hub.add_observer_factory(svc.observer_factory());
  const live::StreamKey key{"live", "re"};
  auto tags = read_flv();
  for (int round = 0; round < 2; ++round) {
    auto pub = hub.publish(key, Proto::rtmp, "127.0.0.1:1");
    ASSERT_TRUE(pub.ok());
    for (const auto& tag : tags) (*pub)->push(tag.type, tag.timestamp_ms, tag.data);
  }  // each Publisher handle unpublishes when destroyed
  std::string pl = text(svc.get(key, "re.m3u8")->body);
  EXPECT_NE(pl.find("#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nre-5.ts\n"), std::string::npos) << pl;

  TempDir out("hls-e2e-re");
  export_stream(svc, *store, key, out.path());
  const std::string m3u8 = (out.path() / "re.m3u8").string();
  auto [rc, errors] = run("ffmpeg -nostdin -v error -i " + m3u8 + " -f null -");
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(errors, "") << "ffmpeg reported errors decoding the segments";
  auto [drc, dur] = run("ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 " + m3u8);
  ASSERT_EQ(drc, 0) << dur;
  EXPECT_NEAR(std::stod(dur), 18.0, 0.5) << dur;
  hub.stop();
}

}  // namespace
}  // namespace castmesh::hls
