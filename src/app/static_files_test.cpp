#include "app/static_files.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace castmesh::app {
namespace {

namespace fs = std::filesystem;

struct StaticFilesTest : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("castmesh-static-" + std::to_string(::getpid()));
    fs::create_directories(dir / "assets");
    std::ofstream(dir / "index.html") << "<html>index</html>";
    std::ofstream(dir / "assets" / "app-1a2b.js") << "console.log(1)";
  }
  void TearDown() override { fs::remove_all(dir); }
  static std::string body(const net::HttpResponse& r) {
    return r.shared_body ? std::string(r.shared_body->begin(), r.shared_body->end()) : r.body;
  }
};

TEST_F(StaticFilesTest, ServesFilesAndSpaFallback) {
  StaticFiles sf(dir.string());
  EXPECT_EQ(sf.file_count(), 2u);
  auto root = sf.serve("/");
  EXPECT_EQ(root.status, 200u);
  EXPECT_EQ(body(root), "<html>index</html>");
  EXPECT_EQ(root.content_type, "text/html; charset=utf-8");
  auto js = sf.serve("/assets/app-1a2b.js");
  EXPECT_EQ(body(js), "console.log(1)");
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(body(sf.serve("/rooms/abc")), "<html>index</html>") << "client-side route";
  EXPECT_EQ(sf.serve("/missing.js").status, 404u);
}

TEST_F(StaticFilesTest, MissingDirectoryServesNotice) {
  StaticFiles sf((dir / "nope").string());
  EXPECT_FALSE(sf.load_error().empty());
  auto r = sf.serve("/");
  EXPECT_EQ(r.status, 200u);
  EXPECT_NE(r.body.find("scripts/web-build"), std::string::npos);
}

TEST_F(StaticFilesTest, SizeCapRefusesHugeTrees) {
  StaticFiles sf(dir.string(), 10);
  EXPECT_EQ(sf.file_count(), 0u);
  EXPECT_NE(sf.load_error().find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace castmesh::app
