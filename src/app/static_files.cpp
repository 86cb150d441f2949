#include "app/static_files.hpp"

#include <filesystem>
#include <fstream>

namespace castmesh::app {

namespace fs = std::filesystem;

StaticFiles::StaticFiles(const std::string& root, size_t max_total_bytes) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    error_ = "web UI directory '" + root + "' not found (build it with scripts/web-build)";
    return;
  }
  size_t total = 0;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const auto size = static_cast<size_t>(it->file_size(ec));
    if (ec) break;
    total += size;
    if (total > max_total_bytes) {
      files_.clear();
      error_ = "web UI directory '" + root + "' is larger than " + std::to_string(max_total_bytes) + " bytes";
      return;
    }
    std::ifstream in(it->path(), std::ios::binary);
    auto body = std::make_shared<Bytes>(size);
    if (size && !in.read(reinterpret_cast<char*>(body->data()), static_cast<std::streamsize>(size))) continue;
    std::string rel = "/" + fs::relative(it->path(), root, ec).generic_string();
    files_[rel] = File{std::move(body), content_type(rel)};
  }
  if (ec) error_ = "reading web UI directory '" + root + "': " + ec.message();
}

std::string StaticFiles::content_type(const std::string& name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
      {".json", "application/json"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
      {".ico", "image/x-icon"}, {".woff2", "font/woff2"}, {".webp", "image/webp"},
      {".map", "application/json"}, {".txt", "text/plain; charset=utf-8"}};
  for (auto& [ext, type] : kTypes) {
    const std::string e(ext);
    if (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) return type;
  }
  return "application/octet-stream";
}

net::HttpResponse StaticFiles::serve(const std::string& path) const {
  net::HttpResponse res;
  std::string key = path == "/" ? "/index.html" : path;
  auto it = files_.find(key);
  const bool has_ext = path != "/" && path.find('.', path.rfind('/')) != std::string::npos;
  if (it == files_.end() && !has_ext) it = files_.find("/index.html");  // SPA route
  if (it == files_.end()) {
    if (files_.empty() && !has_ext) {
      res.content_type = "text/html; charset=utf-8";
      res.body = "<!doctype html><title>castmesh</title><p>castmesh is running. The web UI is not built: "
                 "run <code>scripts/web-build</code>.</p>";
      return res;
    }
    return net::json_error(404, "not found");
  }
  res.content_type = it->second.type;
  res.shared_body = it->second.body;
  // Vite puts content hashes in asset names: cache them for long; never cache index.html.
  res.headers.emplace_back("Cache-Control", it->first.rfind("/assets/", 0) == 0 ? "public, max-age=31536000, immutable"
                                                                                 : "no-cache");
  return res;
}

}  // namespace castmesh::app
