#pragma once
/// \file cluster::PublisherRegistry — which node publishes which live stream (DESIGN.md
/// section 6, docs/design.md "Clustered live streaming").
///
/// One entry per stream key ("app/stream"): the owner node, the address of its inter-node API,
/// a lease epoch and a generation. The epoch is the fencing token: it is taken from a counter
/// per stream key that only grows (Redis INCR), so every claim — also a takeover — gets a
/// larger epoch than any earlier holder. Every later write (refresh, release, codecs) names the
/// epoch and generation it holds and is refused when the stored entry is not that one, so a
/// partitioned old owner can neither renew nor remove its successor's entry.
///
/// Implementations: MemoryPublisherRegistry (single node, also the test fake) and
/// RedisPublisherRegistry. Calls are synchronous and may block on the network: callers run
/// them off the I/O threads (cluster::StreamDirectory owns the worker that does).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace castmesh::cluster {

/// One registry entry.
struct PublisherEntry {
  std::string stream;        ///< "app/stream" (both parts valid live names)
  std::string node_id;       ///< owner node
  std::string addr;          ///< owner's inter-node API "host:port"
  uint64_t epoch = 0;        ///< lease epoch, the fencing token (>= 1 once claimed)
  std::string generation;    ///< random id of this publish on its node (distinguishes republishes)
  int64_t started_ms = 0;    ///< Unix ms when the publish started
  std::string codecs;        ///< "H264,AAC" style list, "" until known

  friend bool operator==(const PublisherEntry&, const PublisherEntry&) = default;
};

/// How a claim treats an entry held by someone else.
enum class ClaimMode : uint8_t {
  /// Refused while any entry exists (SET NX semantics).
  exclusive,
  /// Replaces exactly the entry `expect` names (node and epoch), e.g. one whose node is
  /// offline or suspect, or any holder with live.publish_takeover; refused if it changed since.
  takeover,
};

/// What a claim returns.
struct ClaimResult {
  bool won = false;
  /// won: our entry with its new epoch. Lost: the current holder.
  PublisherEntry entry;
  /// won: the continuation the stream's previous holder stored last (see refresh()), "" when
  /// none is kept.
  std::string continuation;
};

/// How long a stored continuation outlives its holder's last write, ms.
inline constexpr int64_t kContinuationTtlMs = 3600 * 1000;

class PublisherRegistry {
 public:
  virtual ~PublisherRegistry() = default;

  /// Claims `want.stream` for `want` (its epoch is ignored; a new one is taken). `ttl_ms` is
  /// the lease: without a refresh the entry disappears after it. With ClaimMode::takeover the
  /// entry named by `expect` (node_id + epoch) is replaced; an absent entry is claimed as with
  /// exclusive. Errors: Errc::unavailable (Redis away), Errc::io_error (unexpected reply).
  virtual Result<ClaimResult> claim(const PublisherEntry& want, ClaimMode mode,
                                    const std::optional<PublisherEntry>& expect, int64_t ttl_ms) = 0;

  /// Renews the lease of `held` (and stores its codecs). A non-empty `continuation` (at most
  /// 256 bytes of the holder's output state, e.g. the next HLS media sequence) is kept for
  /// kContinuationTtlMs, also after a release, and handed to the next claim of the stream, so a
  /// publisher that moves to another node continues where this one left off. Errc::conflict
  /// when the stored entry is not `held` (other node, epoch or generation — fenced, or expired);
  /// the holder must stop publishing and nothing is stored. Errors otherwise as claim().
  virtual Status refresh(const PublisherEntry& held, int64_t ttl_ms, std::string_view continuation) = 0;

  /// Removes the entry when it is still `held` (an unpublish). Removing an entry that is gone or
  /// belongs to someone else is not an error (returns ok, changes nothing).
  virtual Status release(const PublisherEntry& held) = 0;

  /// The entry of `stream`, or nullopt when nobody publishes it.
  virtual Result<std::optional<PublisherEntry>> lookup(const std::string& stream) = 0;

  /// Every entry, ordered by stream.
  virtual Result<std::vector<PublisherEntry>> list() = 0;

  /// Removes every entry of `node_id` (the leader, when that node went offline; a node at start
  /// for its own stale entries). Returns the removed entries.
  virtual Result<std::vector<PublisherEntry>> remove_node(const std::string& node_id) = 0;
};

/// "H264,AAC" from the two codec names ("" parts are left out).
std::string codec_list(std::string_view video, std::string_view audio);

/// PublisherEntry as JSON {"stream","node_id","addr","epoch","generation","started_ms","codecs"}
/// (bus events and the inter-node API), and back. Errors: Errc::malformed.
std::string entry_to_json(const PublisherEntry& e);
Result<PublisherEntry> entry_from_json(std::string_view text);

}  // namespace castmesh::cluster
