#pragma once
/// \file Clocks. Monotonic time for timeouts and delays; wall time only for display.

#include <chrono>
#include <cstdint>

namespace castmesh {

/// Monotonic milliseconds since an arbitrary epoch (std::chrono::steady_clock).
inline int64_t mono_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Monotonic microseconds since an arbitrary epoch.
inline int64_t mono_us() noexcept {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Unix time in milliseconds (system_clock), for display and APIs only.
inline int64_t wall_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace castmesh
