#include "cluster/event_bus.hpp"

namespace castmesh::cluster {

const char* lane_name(Lane l) noexcept {
  switch (l) {
    case Lane::critical: return "critical";
    case Lane::normal: return "normal";
  }
  return "unknown";
}

}  // namespace castmesh::cluster
