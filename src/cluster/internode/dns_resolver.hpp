#pragma once
/// \file cluster::internode::resolve_a — DNS A-record lookup for Kubernetes headless-service
/// discovery (cluster.discovery_mode k8s_dns), with an optional explicit DNS server
/// (cluster.dns_server). Uses glibc's libresolv on a private resolver state (res_ninit), so
/// lookups are thread-safe and never touch the process-wide `_res`.

#include <chrono>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace castmesh::cluster::internode {

/// Looks up the IPv4 addresses (class IN, type A; RFC 1035 3.4.1) of `name` and returns them
/// as dotted-quad strings, sorted by numeric value, without duplicates. CNAMEs followed by the
/// server are honoured (only the A records of the answer section are read).
///
/// `dns_server`: "" = the system resolver (/etc/resolv.conf: its servers, and its search list
/// and ndots, so a Kubernetes short name like "svc.ns.svc" is completed to
/// "svc.ns.svc.cluster.local" as in a pod); otherwise "ipv4[:port]" (port default 53): that one
/// server is queried for exactly `name` (no search list), e.g. a test DNS server.
/// `timeout`: per attempt; libresolv counts in whole seconds, so it is rounded up to a whole
/// second (minimum 1 s); one attempt per server (and per search-list candidate).
///
/// Blocks the calling thread. Errors: Errc::malformed for an empty/invalid name or a bad
/// `dns_server`; Errc::not_found for NXDOMAIN or an answer without A records (NODATA);
/// Errc::unavailable for a timeout, SERVFAIL, REFUSED or another server failure.
Result<std::vector<std::string>> resolve_a(const std::string& name, const std::string& dns_server,
                                           std::chrono::milliseconds timeout);

}  // namespace castmesh::cluster::internode
