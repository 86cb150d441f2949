#pragma once
/// \file Account and session settings (config section `auth`).

#include <cstdint>

namespace castmesh::auth {

/// Section `auth` of the configuration.
struct AuthConfig {
  /// Lifetime of a login session (bearer token), s. Default 30 days.
  uint64_t session_ttl_secs = 2'592'000;
  /// Whether POST /api/v1/auth/register creates accounts (admins can always be created with
  /// `castmesh admin create-user`).
  bool allow_registration = true;
  /// Login attempts per minute allowed per username + client address (token bucket, burst of
  /// the same size). Each client address also gets 6x this per minute over all usernames.
  uint32_t login_rate_per_min = 5;
};

}  // namespace castmesh::auth
