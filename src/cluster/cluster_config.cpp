#include "cluster/cluster_config.hpp"

#include <charconv>

namespace castmesh::cluster {

std::optional<HostPort> parse_host_port(std::string_view text, std::optional<uint16_t> default_port) {
  std::string_view host = text;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (!rest.starts_with(':')) return std::nullopt;
      port = rest.substr(1);
      if (port.empty()) return std::nullopt;
    }
  } else if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty() || host.find(':') != std::string_view::npos) return std::nullopt;
  }
  if (host.empty()) return std::nullopt;
  HostPort hp{std::string(host), 0};
  if (port.empty()) {
    if (!default_port) return std::nullopt;
    hp.port = *default_port;
    return hp;
  }
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (ec != std::errc{} || end != port.data() + port.size() || v == 0 || v > 65535) return std::nullopt;
  hp.port = static_cast<uint16_t>(v);
  return hp;
}

bool valid_node_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace castmesh::cluster
