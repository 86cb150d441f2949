#pragma once
/// \file Versioned schema of the durable store, one SQL text per version, shared by SQLite and
/// PostgreSQL where the dialects agree (the only difference is how an auto-increment primary key
/// is spelled). Applied by each backend at open, in one transaction, recorded in
/// `schema_migrations(version, name, applied_at_ms)`.

#include <string>
#include <vector>

namespace castmesh::store {

/// The SQL dialect a migration is rendered for.
enum class Dialect { sqlite, postgres };

/// One schema version: statements to run, in order, to move from `version - 1` to `version`.
struct Migration {
  int version = 0;                      ///< 1, 2, 3 ... without gaps
  std::string name;                     ///< short description, stored in schema_migrations
  std::vector<std::string> statements;  ///< one SQL statement each, no trailing ';'
};

/// All migrations known to this binary, ascending by version, rendered for `dialect`.
std::vector<Migration> migrations(Dialect dialect);

/// The newest schema version this binary knows (the last entry of migrations()). A database
/// whose schema_migrations holds a larger version was written by a newer castmesh and is refused.
int latest_schema_version();

/// SQL creating the bookkeeping table (idempotent: CREATE TABLE IF NOT EXISTS).
std::string schema_migrations_ddl();

}  // namespace castmesh::store
