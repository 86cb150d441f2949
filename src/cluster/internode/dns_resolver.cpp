#include "cluster/internode/dns_resolver.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace castmesh::cluster::internode {

namespace {

bool valid_dns_name(const std::string& name) {
  if (name.empty() || name.size() > 254 || name == ".") return false;
  if (name.size() == 254 && name.back() != '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
  });
}

Result<sockaddr_in> parse_server(const std::string& s) {
  std::string host = s;
  uint32_t port = 53;
  const size_t colon = s.find(':');
  if (colon != std::string::npos) {
    host = s.substr(0, colon);
    const std::string p = s.substr(colon + 1);
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Error{Errc::malformed, "dns server port is not a number: " + s};
    }
    port = static_cast<uint32_t>(std::stoul(p));
    if (port == 0 || port > 65535) return Error{Errc::malformed, "dns server port out of range: " + s};
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return Error{Errc::malformed, "dns server must be an IPv4 address[:port]: " + s};
  }
  return sa;
}

// Owns a private resolver state; res_nclose frees what res_ninit allocated.
struct ResolverState {
  struct __res_state st;
  bool initialised = false;
  ResolverState() { std::memset(&st, 0, sizeof st); }
  ~ResolverState() {
    if (initialised) res_nclose(&st);
  }
};

}  // namespace

Result<std::vector<std::string>> resolve_a(const std::string& name, const std::string& dns_server,
                                           std::chrono::milliseconds timeout) {
  if (!valid_dns_name(name)) return Error{Errc::malformed, "invalid DNS name"};
  auto rs = std::make_unique<ResolverState>();  // ~0.5 KiB, keep it off small stacks
  if (res_ninit(&rs->st) != 0) return Error{Errc::unavailable, "resolver initialisation failed"};
  rs->initialised = true;
  const auto secs = std::max<int64_t>(1, (timeout.count() + 999) / 1000);
  rs->st.retrans = static_cast<int>(std::min<int64_t>(secs, 300));
  rs->st.retry = 1;

  std::vector<unsigned char> answer(65536);
  int len;
  if (!dns_server.empty()) {
    auto sa = parse_server(dns_server);
    if (!sa) return sa.error();
    // Documented override of a res_ninit'ed state: glibc uses nsaddr_list[n] when its family
    // is set (the user changed it) and then ignores the resolv.conf copy.
    rs->st.nsaddr_list[0] = *sa;
    rs->st.nscount = 1;
    len = res_nquery(&rs->st, name.c_str(), ns_c_in, ns_t_a, answer.data(), static_cast<int>(answer.size()));
  } else {
    len = res_nsearch(&rs->st, name.c_str(), ns_c_in, ns_t_a, answer.data(), static_cast<int>(answer.size()));
  }
  const int err = errno;
  if (len < 0) {
    switch (rs->st.res_h_errno) {
      case HOST_NOT_FOUND: return Error{Errc::not_found, name + ": no such domain (NXDOMAIN)"};
      case NO_DATA: return Error{Errc::not_found, name + ": no A records"};
      case TRY_AGAIN:
        return Error{Errc::unavailable,
                     name + (err == ETIMEDOUT ? ": DNS query timed out" : ": DNS server failure (SERVFAIL)")};
      default: return Error{Errc::unavailable, name + ": DNS query failed (refused or unrecoverable)"};
    }
  }
  if (static_cast<size_t>(len) > answer.size()) len = static_cast<int>(answer.size());  // truncated answer

  ns_msg msg;
  if (ns_initparse(answer.data(), len, &msg) != 0) return Error{Errc::unavailable, name + ": malformed DNS answer"};
  std::vector<in_addr_t> addrs;
  const int count = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) return Error{Errc::unavailable, name + ": malformed DNS record"};
    if (ns_rr_type(rr) != ns_t_a || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) != 4) continue;
    in_addr_t a;
    std::memcpy(&a, ns_rr_rdata(rr), 4);
    addrs.push_back(ntohl(a));
  }
  if (addrs.empty()) return Error{Errc::not_found, name + ": no A records"};
  std::sort(addrs.begin(), addrs.end());
  addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
  std::vector<std::string> out;
  out.reserve(addrs.size());
  for (in_addr_t a : addrs) {
    in_addr ia{htonl(a)};
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &ia, buf, sizeof buf);
    out.emplace_back(buf);
  }
  return out;
}

}  // namespace castmesh::cluster::internode
