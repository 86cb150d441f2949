#pragma once
/// \file Database settings (config section `database`).

#include <string>

namespace castmesh::store {

/// Section `database` of the configuration.
struct DatabaseConfig {
  /// Which store open_store() opens: "sqlite:PATH" (or a plain path) selects SQLite,
  /// "postgres://user:pass@host:port/db" (or "postgresql://...") selects PostgreSQL.
  std::string url = "sqlite:data/castmesh.db";
};

}  // namespace castmesh::store
