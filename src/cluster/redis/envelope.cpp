#include "cluster/redis/envelope.hpp"

#include <charconv>
#include <limits>

namespace castmesh::cluster::redis {

namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

// Takes the text up to the next '\n' from `rest` (the '\n' is consumed).
std::optional<std::string_view> take_line(std::string_view& rest) {
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  std::string_view line = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  return line;
}

}  // namespace

std::string StreamId::str() const { return std::to_string(ms) + "-" + std::to_string(seq); }

StreamId StreamId::next() const noexcept {
  if (seq == std::numeric_limits<uint64_t>::max()) return StreamId{ms + 1, 0};
  return StreamId{ms, seq + 1};
}

Result<StreamId> parse_stream_id(std::string_view s) {
  size_t dash = s.find('-');
  StreamId id;
  if (dash == std::string_view::npos || !parse_u64(s.substr(0, dash), id.ms) ||
      !parse_u64(s.substr(dash + 1), id.seq)) {
    return Error{Errc::malformed, "stream id is not 'ms-seq'"};
  }
  return id;
}

std::string encode_envelope(const EventId& id, Lane lane, std::string_view topic, std::string_view payload) {
  std::string seq = std::to_string(id.seq);
  std::string out;
  out.reserve(3 + id.node_id.size() + 1 + seq.size() + 3 + topic.size() + 1 + payload.size());
  out += "v1\n";
  out += id.node_id;
  out += '\n';
  out += seq;
  out += '\n';
  out += lane == Lane::critical ? '0' : '1';
  out += '\n';
  out += topic;
  out += '\n';
  out += payload;
  return out;
}

Result<Event> decode_envelope(std::string_view bytes) {
  std::string_view rest = bytes;
  auto version = take_line(rest);
  if (!version || *version != "v1") return Error{Errc::malformed, "version: not a v1 envelope"};
  auto node = take_line(rest);
  auto seq = node ? take_line(rest) : std::nullopt;
  auto lane = seq ? take_line(rest) : std::nullopt;
  auto topic = lane ? take_line(rest) : std::nullopt;
  if (!topic) return Error{Errc::malformed, "header: envelope ends inside the header"};
  if (node->empty()) return Error{Errc::malformed, "node_id: empty"};
  Event ev;
  if (!parse_u64(*seq, ev.id.seq) || ev.id.seq == 0) {
    return Error{Errc::malformed, "seq: not a positive decimal number"};
  }
  if (*lane == "0") {
    ev.lane = Lane::critical;
  } else if (*lane == "1") {
    ev.lane = Lane::normal;
  } else {
    return Error{Errc::malformed, "lane: not 0 or 1"};
  }
  if (topic->empty()) return Error{Errc::malformed, "topic: empty"};
  ev.id.node_id = std::string(*node);
  ev.topic = std::string(*topic);
  ev.payload = std::make_shared<const std::string>(rest);
  return ev;
}

Result<LiveMessage> split_live_message(std::string_view message) {
  size_t nl = message.find('\n');
  if (nl == std::string_view::npos) return Error{Errc::malformed, "stream id: missing in live message"};
  auto id = parse_stream_id(message.substr(0, nl));
  if (!id) return Error{Errc::malformed, "stream id: bad in live message"};
  return LiveMessage{*id, message.substr(nl + 1)};
}

}  // namespace castmesh::cluster::redis
