#pragma once
/// \file Project error codes and Result<T>, the value-or-error type returned by parsers.

#include <cassert>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace castmesh {

/// Error conditions raised by castmesh's own code. Values are stable; they appear in logs.
enum class Errc {
  ok = 0,
  need_more_data,       ///< parser: input ends before the unit is complete (not an error for streams)
  malformed,            ///< input violates the format's spec
  unsupported,          ///< valid input castmesh does not handle (codec, AMF type, ...)
  too_large,            ///< a length field or accumulated size exceeds a configured limit
  bad_name,             ///< app/stream name fails validation
  already_publishing,   ///< stream key is live with another publisher
  not_found,
  timeout,
  closed,
  forbidden,
  config_invalid,
  io_error,
  conflict,             ///< a unique key is already taken
  unavailable,          ///< a dependency (database, Redis) cannot be reached right now
  rate_limited,         ///< too many requests from this client
  unauthorized,         ///< missing or invalid credentials
};

/// The std::error_category of Errc ("castmesh").
const std::error_category& castmesh_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), castmesh_category()};
}

/// An error: a code plus a human-readable detail naming what was wrong.
struct Error {
  Errc code = Errc::malformed;
  std::string detail;

  std::string message() const;
};

/// Either a T or an Error. Minimal stand-in for std::expected (C++23).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}          // NOLINT
  Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}          // NOLINT
  Result(Errc code, std::string detail = {}) : v_(std::in_place_index<1>, Error{code, std::move(detail)}) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  Errc code() const noexcept { return ok() ? Errc::ok : std::get<1>(v_).code; }

 private:
  std::variant<T, Error> v_;
};

/// Result of an operation with no value.
struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

}  // namespace castmesh

template <>
struct std::is_error_code_enum<castmesh::Errc> : std::true_type {};
