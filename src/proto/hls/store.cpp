#include "proto/hls/store.hpp"

#include "proto/hls/s3_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace castmesh::hls {

namespace fs = std::filesystem;

namespace {

bool valid_component(std::string_view c) noexcept {
  if (c.empty() || c.size() > 128 || c.front() == '.') return false;
  for (char ch : c) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Status validate_store_path(std::string_view path) {
  if (path.empty() || path.size() > 1024) return Error{Errc::bad_name, "store path length"};
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    std::string_view comp = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!valid_component(comp)) return Error{Errc::bad_name, fmt::format("store path component '{}'", comp)};
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return ok_status();
}

// ---------------------------------------------------------------- MemoryStore

Status MemoryStore::put(std::string_view path, Blob data) {
  if (auto st = validate_store_path(path); !st) return st;
  if (!data) data = std::make_shared<const Bytes>();
  std::lock_guard lk(mu_);
  auto it = objects_.find(path);
  if (it != objects_.end())
    it->second = std::move(data);
  else
    objects_.emplace(std::string(path), std::move(data));
  return ok_status();
}

Blob MemoryStore::get(std::string_view path) const {
  std::lock_guard lk(mu_);
  auto it = objects_.find(path);
  return it == objects_.end() ? nullptr : it->second;
}

void MemoryStore::remove(std::string_view path) {
  Blob victim;  // released outside the lock
  std::lock_guard lk(mu_);
  auto it = objects_.find(path);
  if (it == objects_.end()) return;
  victim = std::move(it->second);
  objects_.erase(it);
}

void MemoryStore::remove_prefix(std::string_view dir) {
  if (!validate_store_path(dir)) return;
  std::string prefix = std::string(dir) + "/";
  std::lock_guard lk(mu_);
  auto it = objects_.lower_bound(prefix);
  while (it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0) it = objects_.erase(it);
}

size_t MemoryStore::size() const {
  std::lock_guard lk(mu_);
  return objects_.size();
}

size_t MemoryStore::bytes() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [k, v] : objects_) n += v->size();
  return n;
}

// ---------------------------------------------------------------- FileStore

FileStore::FileStore(std::string root) : root_(std::move(root)) {}

Status FileStore::put(std::string_view path, Blob data) {
  if (auto st = validate_store_path(path); !st) return st;
  fs::path target = fs::path(root_) / fs::path(std::string(path));
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return Error{Errc::io_error, fmt::format("mkdir {}: {}", target.parent_path().string(), ec.message())};

  // Hidden name: validate_store_path refuses a leading '.', so a reader can never ask for it.
  fs::path tmp = target.parent_path() /
                 fmt::format(".{}.{}.{:x}.{}.tmp", target.filename().string(), ::getpid(),
                             reinterpret_cast<uintptr_t>(this),
                             tmp_counter_.fetch_add(1, std::memory_order_relaxed));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error{Errc::io_error, fmt::format("open {}: {}", tmp.string(), std::strerror(errno))};
  const uint8_t* p = data ? data->data() : nullptr;
  size_t left = data ? data->size() : 0;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{Errc::io_error, fmt::format("write {}: {}", tmp.string(), std::strerror(err))};
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error{Errc::io_error, fmt::format("close {}: {}", tmp.string(), std::strerror(err))};
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error{Errc::io_error, fmt::format("rename {}: {}", target.string(), std::strerror(err))};
  }
  return ok_status();
}

Blob FileStore::get(std::string_view path) const {
  if (!validate_store_path(path)) return nullptr;
  fs::path target = fs::path(root_) / fs::path(std::string(path));
  int fd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return nullptr;
  }
  auto out = std::make_shared<Bytes>();
  out->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out->size()) {
    ssize_t n = ::read(fd, out->data() + got, out->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out->resize(got);  // a file is replaced by rename, never truncated in place
  return out;
}

void FileStore::remove(std::string_view path) {
  if (!validate_store_path(path)) return;
  std::error_code ec;
  fs::remove(fs::path(root_) / fs::path(std::string(path)), ec);
}

void FileStore::remove_prefix(std::string_view dir) {
  if (!validate_store_path(dir)) return;
  std::error_code ec;
  fs::remove_all(fs::path(root_) / fs::path(std::string(dir)), ec);
}

std::shared_ptr<Store> make_store(const HlsConfig& cfg) {
  if (cfg.store == StoreKind::file) return std::make_shared<FileStore>(cfg.dir);
  if (cfg.store == StoreKind::oss) return std::make_shared<S3Store>(cfg.oss);
  return std::make_shared<MemoryStore>();
}

}  // namespace castmesh::hls
