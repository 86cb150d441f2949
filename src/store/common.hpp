#pragma once
/// \file Small rules shared by both Store backends, so they agree on defaults and validation.
/// Internal to src/store.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "base/result.hpp"

namespace castmesh::store {

/// `ms` when set, else the current Unix time in ms (creation timestamps default to "now").
inline int64_t or_now(int64_t ms) { return ms != 0 ? ms : wall_ms(); }

/// The permission bit sets are unsigned 64-bit; SQL BIGINT is signed. The bit pattern is kept
/// (two's complement, well-defined since C++20), so every bit round-trips.
inline int64_t bits_to_sql(uint64_t v) { return static_cast<int64_t>(v); }
inline uint64_t bits_from_sql(int64_t v) { return static_cast<uint64_t>(v); }

/// Checks that `wanted` is exactly a permutation of `current` (the room's item ids).
/// Errors: Errc::malformed when `wanted` repeats an id; Errc::conflict when the sets differ
/// (an id that is not the room's, or one of the room's items missing — typically a stale view
/// of a playlist that changed meanwhile).
inline Status check_reorder(std::vector<int64_t> current, std::vector<int64_t> wanted) {
  std::sort(wanted.begin(), wanted.end());
  if (std::adjacent_find(wanted.begin(), wanted.end()) != wanted.end()) {
    return Error{Errc::malformed, "reorder lists an item twice"};
  }
  std::sort(current.begin(), current.end());
  if (current != wanted) {
    return Error{Errc::conflict, "reorder must list exactly the room's current playlist items"};
  }
  return ok_status();
}

}  // namespace castmesh::store
