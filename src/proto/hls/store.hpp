#pragma once
/// \file HLS object stores: where segments and playlists live between the segmenter that
/// writes them and the HTTP handlers that read them.
///
/// Paths are relative, '/'-separated, e.g. "live/test/test-12.ts" or "live/test/test.m3u8".
/// Every component must be 1..128 characters of [A-Za-z0-9_.-] and must not start with '.',
/// so no path can name a parent directory, an absolute location or a hidden temporary file.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/bytes.hpp"
#include "base/result.hpp"
#include "proto/hls/hls_config.hpp"

namespace castmesh::hls {

/// Immutable, shared object contents (a whole segment or playlist).
using Blob = std::shared_ptr<const Bytes>;

/// Checks a store path as described in the file comment. Errc::bad_name when refused.
Status validate_store_path(std::string_view path);

/// Key-value store of whole objects. Implementations are thread-safe: the segmenter writes
/// on publisher threads while HTTP handlers read on I/O threads. A reader sees either the
/// previous or the new object, never a partial one.
class Store {
 public:
  virtual ~Store() = default;
  /// Stores (or replaces) the object at `path`. Errors: Errc::bad_name (path refused),
  /// Errc::io_error (file store write failure).
  virtual Status put(std::string_view path, Blob data) = 0;
  /// The object at `path`, or nullptr when absent or when the path is refused.
  virtual Blob get(std::string_view path) const = 0;
  /// The object at `path` when it can be had without blocking (memory), else nullptr. Stores
  /// whose reads do not block answer as get().
  virtual Blob peek(std::string_view path) const { return reads_block() ? nullptr : get(path); }
  /// True when get() may block on the network (callers on I/O threads then use peek() and run
  /// get() on a blocking-work executor).
  virtual bool reads_block() const { return false; }
  /// Removes the object at `path` (absent or refused paths are ignored).
  virtual void remove(std::string_view path) = 0;
  /// Removes every object under directory `dir` (e.g. "live/test"); refused paths are ignored.
  virtual void remove_prefix(std::string_view dir) = 0;
};

/// Objects held in memory as shared buffers; get() copies no bytes.
class MemoryStore final : public Store {
 public:
  Status put(std::string_view path, Blob data) override;
  Blob get(std::string_view path) const override;
  void remove(std::string_view path) override;
  void remove_prefix(std::string_view dir) override;
  /// Number of objects stored.
  size_t size() const;
  /// Total bytes stored.
  size_t bytes() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Blob, std::less<>> objects_;
};

/// Objects held as files under a root directory (`HlsConfig::dir`), e.g.
/// "{root}/live/test/test-12.ts". put() writes a hidden temporary file beside the target and
/// renames it over the target (atomic on POSIX file systems), so readers — this process or
/// another node sharing the directory — never see a partial file.
class FileStore final : public Store {
 public:
  /// `root` is created on first put when missing.
  explicit FileStore(std::string root);
  Status put(std::string_view path, Blob data) override;
  /// Reads the whole file (nullptr when absent, not a regular file, or unreadable).
  Blob get(std::string_view path) const override;
  void remove(std::string_view path) override;
  void remove_prefix(std::string_view dir) override;
  const std::string& root() const noexcept { return root_; }

 private:
  std::string root_;
  std::atomic<uint64_t> tmp_counter_{0};  // distinguishes concurrent writers' temporary files
};

/// The store selected by `cfg.store` (MemoryStore, FileStore rooted at `cfg.dir`, or S3Store).
std::shared_ptr<Store> make_store(const HlsConfig& cfg);

}  // namespace castmesh::hls
