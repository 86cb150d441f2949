#pragma once
/// \file HTTP-FLV settings (config section `httpflv`).

#include <cstdint>

namespace castmesh::httpflv {

struct HttpFlvConfig {
  bool enabled = true;
  /// A player whose pending write does not complete within this time is closed, ms.
  uint32_t send_timeout_ms = 10000;
  /// The writer waits up to this long to merge frames into one write, ms (0 = none).
  uint32_t merge_window_ms = 20;
};

}  // namespace castmesh::httpflv
