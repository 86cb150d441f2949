#pragma once
/// \file Logging: spdlog's default logger, configured once by app/ at start-up.

#include <spdlog/spdlog.h>

namespace castmesh::log {

/// Sets the level by name (trace, debug, info, warn, error, off) and the line format.
/// Returns false when the name is unknown.
bool configure(std::string_view level);

}  // namespace castmesh::log
