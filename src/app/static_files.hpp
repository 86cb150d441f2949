#pragma once
/// \file Serves the built web UI (web/dist) from memory: every file under the root is loaded
/// once at start-up and answered zero-copy; unknown paths that are not API or media paths get
/// index.html (single-page app routing).

#include <map>
#include <memory>
#include <string>

#include "base/bytes.hpp"
#include "net/http_server.hpp"

namespace castmesh::app {

class StaticFiles {
 public:
  /// Loads every regular file under `root` (at most `max_total_bytes` in all; larger trees
  /// are refused with an error in `load_error()` and nothing is served but a notice page).
  explicit StaticFiles(const std::string& root, size_t max_total_bytes = 64 * 1024 * 1024);

  /// Answers GET/HEAD for `path` ("/" or "/assets/x.js", already percent-decoded): the file,
  /// or index.html for paths without a file extension, or 404.
  net::HttpResponse serve(const std::string& path) const;

  size_t file_count() const noexcept { return files_.size(); }
  const std::string& load_error() const noexcept { return error_; }

  /// Content-Type for a file name by its extension ("application/octet-stream" if unknown).
  static std::string content_type(const std::string& name);

 private:
  struct File {
    std::shared_ptr<const Bytes> body;
    std::string type;
  };
  std::map<std::string, File> files_;  // "/index.html", "/assets/app-123.js"
  std::string error_;
};

}  // namespace castmesh::app
