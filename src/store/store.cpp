#include "store/store.hpp"

#include <string_view>

#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace castmesh::store {

Result<std::unique_ptr<Store>> open_store(const std::string& url) {
  const std::string_view u(url);
  if (u.starts_with("postgres://") || u.starts_with("postgresql://")) {
    auto s = PostgresStore::open(url);
    if (!s) return s.error();
    return std::unique_ptr<Store>(std::move(*s));
  }
  std::string path;
  if (u.starts_with("sqlite:")) {
    std::string_view rest = u.substr(7);
    if (rest.starts_with("//")) rest.remove_prefix(2);  // sqlite:///abs/path, sqlite://rel/path
    path = std::string(rest);
  } else if (u.find("://") != std::string_view::npos) {
    return Error{Errc::config_invalid,
                 "database.url: unknown scheme in \"" + std::string(u.substr(0, u.find("://"))) +
                     "://...\" (use sqlite:PATH or postgres://...)"};
  } else {
    path = url;
  }
  if (path.empty()) return Error{Errc::config_invalid, "database.url: empty SQLite path"};
  auto s = SqliteStore::open(path);
  if (!s) return s.error();
  return std::unique_ptr<Store>(std::move(*s));
}

}  // namespace castmesh::store
