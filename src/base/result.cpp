#include "base/result.hpp"

namespace castmesh {
namespace {
class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "castmesh"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::ok: return "ok";
      case Errc::need_more_data: return "need more data";
      case Errc::malformed: return "malformed input";
      case Errc::unsupported: return "unsupported";
      case Errc::too_large: return "too large";
      case Errc::bad_name: return "bad name";
      case Errc::already_publishing: return "already publishing";
      case Errc::not_found: return "not found";
      case Errc::timeout: return "timeout";
      case Errc::closed: return "closed";
      case Errc::forbidden: return "forbidden";
      case Errc::config_invalid: return "invalid configuration";
      case Errc::io_error: return "I/O error";
      case Errc::conflict: return "conflict";
      case Errc::unavailable: return "unavailable";
      case Errc::rate_limited: return "rate limited";
      case Errc::unauthorized: return "unauthorized";
    }
    return "unknown error";
  }
};
}  // namespace

const std::error_category& castmesh_category() noexcept {
  static const Category c;  // function-local constant, not mutable global state
  return c;
}

std::string Error::message() const {
  std::string m = make_error_code(code).message();
  if (!detail.empty()) {
    m += ": ";
    m += detail;
  }
  return m;
}
}  // namespace castmesh
