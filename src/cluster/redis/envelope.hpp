#pragma once
/// \file Wire format of cluster events in Redis (docs/design.md "Cluster mode", event bus).
///
/// Envelope (binary-safe, fields separated by '\n', the payload last and taken verbatim):
///   `v1\n{node_id}\n{seq}\n{lane 0|1}\n{topic}\n{payload bytes...}`
/// Stream entry `P:events:stream`: one field "e" = envelope.
/// Live message on channel `P:events`: `{stream id}\n{envelope}`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "cluster/event_bus.hpp"

namespace castmesh::cluster::redis {

/// A Redis stream entry id "ms-seq" (both unsigned 64-bit decimals). Ordered like Redis orders
/// them.
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;

  friend auto operator<=>(const StreamId&, const StreamId&) = default;
  /// "ms-seq".
  std::string str() const;
  /// The smallest id greater than this one (for an exclusive XRANGE start).
  StreamId next() const noexcept;
};

/// Parses "ms-seq". Errors: Errc::malformed.
Result<StreamId> parse_stream_id(std::string_view s);

/// Encodes `ev` (node id and topic must not contain '\n'; payload non-null) as an envelope.
std::string encode_envelope(const EventId& id, Lane lane, std::string_view topic, std::string_view payload);

/// Decodes an envelope. Errors: Errc::malformed whose detail starts with the failing part
/// ("version", "header", "node_id", "seq", "lane", "topic"), usable as a log-once key.
Result<Event> decode_envelope(std::string_view bytes);

/// A live message split into its stream id and its envelope (a view into the message).
struct LiveMessage {
  StreamId stream_id;
  std::string_view envelope;
};

/// Splits `{stream id}\n{envelope}`. Errors: Errc::malformed ("stream id ...").
Result<LiveMessage> split_live_message(std::string_view message);

}  // namespace castmesh::cluster::redis
