#include "proto/hls/viewer_tracker.hpp"

#include <gtest/gtest.h>

namespace castmesh::hls {
namespace {

const live::StreamKey kA{"live", "a"};
const live::StreamKey kB{"live", "b"};

TEST(ViewerTracker, CountsDistinctClientsWithinWindow) {
  ViewerTracker t(6000);
  t.touch(kA, "1.1.1.1|ffmpeg", 1000);
  t.touch(kA, "1.1.1.1|ffmpeg", 2000);  // same client again
  t.touch(kA, "2.2.2.2|chrome", 2500);
  t.touch(kB, "1.1.1.1|ffmpeg", 2500);
  EXPECT_EQ(t.count(kA, 3000), 2u);
  EXPECT_EQ(t.count(kB, 3000), 1u);
  EXPECT_EQ(t.count(kA, 8200), 1u) << "first client last seen at 2000, outside the window";
  EXPECT_EQ(t.count(kA, 9000), 0u);
  t.prune(9000);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ViewerTracker, BoundedUnderManyClients) {
  ViewerTracker t(60000, 100);
  for (int i = 0; i < 1000; ++i) t.touch(kA, "client" + std::to_string(i), i);
  EXPECT_LE(t.size(), 100u);
  EXPECT_EQ(t.count(kA, 1000), t.size());
}

}  // namespace
}  // namespace castmesh::hls
