#include "proto/hls/store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace castmesh::hls {
namespace {

namespace fs = std::filesystem;

Blob blob(std::string_view s) { return std::make_shared<const Bytes>(s.begin(), s.end()); }
std::string text(const Blob& b) { return b ? std::string(b->begin(), b->end()) : std::string("<null>"); }

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("castmesh-hls-store-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(StorePath, Validation) {
  EXPECT_TRUE(validate_store_path("live/test/test-12.ts").ok());
  EXPECT_TRUE(validate_store_path("live/test/test.m3u8").ok());
  EXPECT_TRUE(validate_store_path("live").ok());
  for (std::string_view bad : {"", "/etc/passwd", "live/../../etc/passwd", "..", "live/./x", "live//x", "live/x/",
                               "live/.hidden", "live/a b", "live\\x", "live/x\n"}) {
    EXPECT_EQ(validate_store_path(bad).code(), Errc::bad_name) << bad;
  }
  EXPECT_EQ(validate_store_path(std::string(129, 'a')).code(), Errc::bad_name);
}

void exercise(Store& store) {
  EXPECT_EQ(store.get("live/test/test.m3u8"), nullptr);
  ASSERT_TRUE(store.put("live/test/test.m3u8", blob("v1")).ok());
  EXPECT_EQ(text(store.get("live/test/test.m3u8")), "v1");
  ASSERT_TRUE(store.put("live/test/test.m3u8", blob("v2")).ok());
  EXPECT_EQ(text(store.get("live/test/test.m3u8")), "v2");
  ASSERT_TRUE(store.put("live/test/test-0.ts", blob("seg0")).ok());
  ASSERT_TRUE(store.put("live/test2/test2-0.ts", blob("other")).ok());
  ASSERT_TRUE(store.put("live/test/test-1.ts", blob("")).ok());
  EXPECT_EQ(text(store.get("live/test/test-1.ts")), "");
  store.remove("live/test/test-0.ts");
  EXPECT_EQ(store.get("live/test/test-0.ts"), nullptr);
  store.remove("live/test/absent.ts");  // no effect, no crash
  EXPECT_EQ(store.put("live/../escape.ts", blob("x")).code(), Errc::bad_name);
  EXPECT_EQ(store.put("/abs.ts", blob("x")).code(), Errc::bad_name);
  EXPECT_EQ(store.get("live/test/../test/test.m3u8"), nullptr);
  store.remove_prefix("live/test");
  EXPECT_EQ(store.get("live/test/test.m3u8"), nullptr);
  EXPECT_EQ(store.get("live/test/test-1.ts"), nullptr);
  EXPECT_EQ(text(store.get("live/test2/test2-0.ts")), "other");  // a sibling with a common prefix stays
  store.remove_prefix("..");  // refused, no effect
  EXPECT_EQ(text(store.get("live/test2/test2-0.ts")), "other");
}

TEST(MemoryStore, PutGetRemove) {
  MemoryStore store;
  exercise(store);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.bytes(), 5u);
}

TEST(MemoryStore, GetSharesTheBuffer) {
  MemoryStore store;
  Blob b = blob("segment");
  ASSERT_TRUE(store.put("a/b/c.ts", b).ok());
  EXPECT_EQ(store.get("a/b/c.ts").get(), b.get());
}

TEST(FileStore, PutGetRemove) {
  TempDir dir;
  FileStore store((dir.path() / "root").string());
  exercise(store);
  EXPECT_TRUE(fs::exists(dir.path() / "root/live/test2/test2-0.ts"));
  EXPECT_FALSE(fs::exists(dir.path() / "root/live/test"));
  EXPECT_FALSE(fs::exists(dir.path() / "escape.ts"));
  EXPECT_FALSE(fs::exists(dir.path() / "root/escape.ts"));
}

TEST(FileStore, LeavesNoTemporaryFiles) {
  TempDir dir;
  FileStore store(dir.path().string());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store.put("live/s/s.m3u8", blob(std::string(1000 + i, 'x'))).ok());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path() / "live/s")) {
    ++files;
    EXPECT_EQ(e.path().filename(), "s.m3u8");
  }
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(store.get("live/s/s.m3u8")->size(), 1004u);
}

TEST(FileStore, RefusesToFollowSymlinkOutOfRoot) {
  TempDir dir;
  fs::create_directories(dir.path() / "root/live/s");
  { std::ofstream(dir.path() / "secret.txt") << "secret"; }
  fs::create_symlink(dir.path() / "secret.txt", dir.path() / "root/live/s/s.m3u8");
  FileStore store((dir.path() / "root").string());
  EXPECT_EQ(store.get("live/s/s.m3u8"), nullptr);
}

TEST(FileStore, ReadersNeverSeePartialObjects) {
  TempDir dir;
  FileStore store(dir.path().string());
  const std::string a(200000, 'a'), b(300000, 'b');
  ASSERT_TRUE(store.put("live/s/s-0.ts", blob(a)).ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 50; ++i) (void)store.put("live/s/s-0.ts", blob(i % 2 ? a : b));
    stop = true;
  });
  size_t reads = 0, bad = 0;
  while (!stop.load()) {
    Blob got = store.get("live/s/s-0.ts");
    ++reads;
    if (!got || !(got->size() == a.size() || got->size() == b.size())) ++bad;
    else if (std::count(got->begin(), got->end(), (*got)[0]) != static_cast<long>(got->size())) ++bad;
  }
  writer.join();
  EXPECT_GT(reads, 0u);
  EXPECT_EQ(bad, 0u);
}

TEST(Store, Factory) {
  HlsConfig cfg;
  EXPECT_NE(dynamic_cast<MemoryStore*>(make_store(cfg).get()), nullptr);
  cfg.store = StoreKind::file;
  cfg.dir = "/tmp/x";
  auto s = make_store(cfg);
  auto* f = dynamic_cast<FileStore*>(s.get());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->root(), "/tmp/x");
}

}  // namespace
}  // namespace castmesh::hls
