#pragma once
/// \file cluster::internode — signed inter-node HTTP/1.1 requests as coroutines, for work that
/// runs on I/O threads (edge relays, the HLS proxy, the cluster stream list). The request is
/// signed as InternodeClient signs it (signing.hpp); nothing here blocks a thread.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::cluster::internode {

/// Who signs: the cluster secret (never logged) and this node's id.
struct Signer {
  std::string secret;
  std::string node_id;
};

/// A whole response: status and body.
struct FetchReply {
  unsigned status = 0;
  Bytes body;
};

/// GET `target` from `addr` ("host:port") and read the whole response (at most `max_body`
/// bytes; Content-Length or close-delimited). `timeout` bounds connect + write + read. Runs on
/// the calling coroutine's executor. Errors: Errc::unavailable (connect/send/read failure or
/// timeout), Errc::too_large (body over max_body), Errc::malformed (bad `addr` or response).
/// Any HTTP status is a reply (the caller judges it).
boost::asio::awaitable<Result<FetchReply>> async_fetch(const Signer& signer, std::string addr, std::string target,
                                                       std::chrono::milliseconds timeout, size_t max_body);

/// Opens a streaming GET: connects `socket` (a fresh socket of the caller's executor), sends the
/// signed request and reads the response head within `timeout`. Returns the status; the first
/// body bytes read together with the head are appended to `leftover`. The caller then reads the
/// body from `socket` itself. Errors as async_fetch (the socket is closed on error).
boost::asio::awaitable<Result<unsigned>> async_open_stream(const Signer& signer, boost::asio::ip::tcp::socket& socket,
                                                           std::string addr, std::string target,
                                                           std::chrono::milliseconds timeout, Bytes& leftover);

}  // namespace castmesh::cluster::internode
