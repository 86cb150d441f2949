#pragma once
/// \file cluster::internode::K8sLeaseElector — leader election with a Kubernetes
/// coordination.k8s.io/v1 Lease (cluster.leader_election_mode k8s_lease).
///
/// The Lease `{namespace}/{name}` holds spec.holderIdentity (this node's identity, normally
/// POD_NAME), spec.leaseDurationSeconds, spec.acquireTime / spec.renewTime (RFC 3339 with
/// microseconds, "MicroTime") and spec.leaseTransitions, which serves as the fencing epoch
/// (the first term is 1; every change of holder adds 1). Writes use optimistic concurrency on
/// metadata.resourceVersion: a 409 Conflict means another node wrote first and won.
///
/// A node may take the lease when it is absent (POST), released (empty holder), expired
/// (renewTime + leaseDurationSeconds < now, by this node's wall clock) or already its own (a
/// renew). Expiry compares wall clocks of different nodes: the nodes' clocks must agree within
/// the safety margin lease/5 (NTP), as with any Lease-based election.
/// Safety rule (membership/leader.hpp): this node acts as leader only while
/// steady now < valid_until = (start of the last successful acquire/renew) + lease - lease/5.
///
/// Transport: HTTPS with the service-account bearer token (re-read before every request, as
/// Kubernetes rotates it) and the cluster CA (peer and host-name verification), or plain HTTP
/// for an `http://` api_url (kubectl proxy, tests).
///
/// Testing: the pure parts (Lease JSON parsing, request bodies, the acquire/renew/wait decision,
/// MicroTime formatting) are unit-tested with fixed JSON; the step()/fenced_check()/resign()
/// flow is tested over plain HTTP against an in-process fake of the Lease endpoints; the HTTPS
/// transport (CA and host-name verification, bearer token) against a local TLS endpoint with a
/// throwaway certificate. It has NOT been run against a real Kubernetes API server (none can be
/// run in this environment): RBAC (get/create/update on leases.coordination.k8s.io) and the
/// API server's exact responses are assumed from the API reference.

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "cluster/membership/leader.hpp"

namespace castmesh::cluster::internode {

/// Settings of a K8sLeaseElector.
struct K8sLeaseConfig {
  /// cluster.k8s_api_url: "https://host[:port]" (default port 443) or "http://host[:port]"
  /// (default port 80), no path.
  std::string api_url = "https://kubernetes.default.svc";
  std::string ns;                            ///< namespace (POD_NAMESPACE)
  std::string lease_name = "castmesh-leader";
  std::string identity;                      ///< holderIdentity (POD_NAME; should equal the node id)
  std::chrono::milliseconds lease{15000};    ///< cluster.leader_lease_secs; sent rounded up to whole s
  std::string token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_path = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  /// Per API request (connect + TLS + write + read); 0 = min(2 s, lease/5).
  std::chrono::milliseconds timeout{0};
  /// Unix time in µs for renewTime/acquireTime and the expiry test; default: system clock.
  std::function<int64_t()> wall_us;
};

/// The fields of a Lease that election uses.
struct LeaseRecord {
  std::string resource_version;     ///< metadata.resourceVersion (opaque)
  std::string holder;               ///< spec.holderIdentity ("" = released / none)
  int64_t duration_secs = 0;        ///< spec.leaseDurationSeconds (0 = absent)
  std::optional<int64_t> acquire_us;  ///< spec.acquireTime, Unix µs
  std::optional<int64_t> renew_us;    ///< spec.renewTime, Unix µs
  uint64_t transitions = 0;         ///< spec.leaseTransitions (the fencing epoch)
};

/// What to do with a Lease as observed.
enum class LeaseAction {
  create,     ///< absent: POST a new Lease (transitions 1)
  renew,      ///< ours: PUT with a new renewTime, same transitions
  take_over,  ///< released or expired: PUT with us as holder, transitions + 1
  wait,       ///< held by another node and not expired
};

/// Parses a Lease object (JSON of GET/PUT/POST responses). Missing spec fields take the
/// LeaseRecord defaults. Errors: Errc::malformed (not JSON, not an object, no
/// metadata.resourceVersion, a field of the wrong type, a bad MicroTime).
Result<LeaseRecord> parse_lease(std::string_view json);

/// Decides the action for `current` (nullopt = the Lease does not exist) seen by `identity`
/// at Unix time `now_us`. Expired means renewTime (or acquireTime when absent) +
/// leaseDurationSeconds < now; a Lease without a time or a duration counts as expired.
LeaseAction decide_lease_action(const std::optional<LeaseRecord>& current, std::string_view identity, int64_t now_us);

/// The Lease body to write. `resource_version` "" omits metadata.resourceVersion (POST).
std::string build_lease_body(std::string_view ns, std::string_view name, std::string_view resource_version,
                             std::string_view holder, int64_t duration_secs, int64_t acquire_us, int64_t renew_us,
                             uint64_t transitions);

/// Unix µs as Kubernetes MicroTime, "2006-01-02T15:04:05.000000Z" (UTC, 6 fraction digits).
std::string format_micro_time(int64_t unix_us);

/// Parses RFC 3339 date-time ("YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)", any number of fraction
/// digits, truncated to µs) into Unix µs. Errors: Errc::malformed.
Result<int64_t> parse_micro_time(std::string_view text);

/// LeaderElector over a Kubernetes Lease. step(), fenced_check() and resign() from one thread;
/// status() and is_leader() from any thread.
class K8sLeaseElector : public membership::LeaderElector {
 public:
  explicit K8sLeaseElector(K8sLeaseConfig config);
  ~K8sLeaseElector() override;

  /// GET the Lease, then POST/PUT according to decide_lease_action(). A 409 on the write means
  /// another node won this round (not an error; this node is then not leader). Errors:
  /// Errc::unavailable (API unreachable or timed out; leadership lapses at valid_until),
  /// Errc::forbidden (401/403: token or RBAC), Errc::io_error (other statuses, bad JSON),
  /// Errc::config_invalid (bad api_url).
  Status step() override;
  membership::LeaderStatus status() const override;
  bool is_leader() const override;
  /// GET the Lease and compare holder and leaseTransitions with our term. False without a
  /// request when not leader. Errors as step().
  Result<bool> fenced_check() override;
  /// PUT the Lease with an empty holder when it is still ours (best effort); local leadership
  /// ends at once.
  void resign() override;

  /// "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}".
  std::string lease_path() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Reply {
    unsigned status = 0;
    std::string body;
  };
  Result<Reply> api(std::string_view method, const std::string& target, const std::string& body);
  Result<std::optional<LeaseRecord>> get_lease();
  int64_t now_us() const;
  void observe(const std::optional<LeaseRecord>& rec, int64_t now);  // mutex held
  void lose();                                                      // mutex held

  K8sLeaseConfig config_;
  std::chrono::milliseconds timeout_;
  int64_t duration_secs_;

  mutable std::mutex mu_;
  bool holding_ = false;
  uint64_t epoch_ = 0;
  Clock::time_point valid_until_{};
  std::string holder_;
  uint64_t holder_epoch_ = 0;
};

}  // namespace castmesh::cluster::internode
