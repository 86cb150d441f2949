#pragma once
/// \file RTMP protocol control, user control and command messages: builders for what a server
/// sends and parsers for what it receives (RTMP specification 1.0, sections 5.4, 6.2 and 7).
/// Pure byte code: no sockets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"
#include "media/format/amf0.hpp"
#include "proto/rtmp/chunk.hpp"

namespace castmesh::rtmp {

namespace amf0 = media::amf0;

/// Chunk stream ids castmesh sends on. Protocol control must use 2 (RTMP spec 5.4); the others
/// are conventions shared with common servers.
namespace csid {
inline constexpr uint32_t kControl = 2;
inline constexpr uint32_t kCommand = 3;
inline constexpr uint32_t kAudio = 4;
inline constexpr uint32_t kData = 5;
inline constexpr uint32_t kVideo = 6;
}  // namespace csid

/// The message stream id castmesh gives a client's createStream.
inline constexpr uint32_t kMediaStreamId = 1;

// ---- protocol control (RTMP spec 5.4) --------------------------------------------------------

/// Set Chunk Size (5.4.1): `size` bytes, 1..0x7FFFFFFF.
Message set_chunk_size_message(uint32_t size);
/// Abort Message (5.4.2) for chunk stream `csid`.
Message abort_message(uint32_t csid);
/// Acknowledgement (5.4.3): `sequence` = bytes received so far (mod 2^32).
Message acknowledgement_message(uint32_t sequence);
/// Window Acknowledgement Size (5.4.4), bytes.
Message window_ack_size_message(uint32_t size);
/// Set Peer Bandwidth (5.4.5): `size` bytes; limit type 0 = hard, 1 = soft, 2 = dynamic.
Message set_peer_bandwidth_message(uint32_t size, uint8_t limit_type = 2);

// ---- user control (RTMP spec 6.2, 7.1.7) -----------------------------------------------------

enum class UserControlEvent : uint16_t {
  stream_begin = 0,
  stream_eof = 1,
  stream_dry = 2,
  set_buffer_length = 3,  ///< value = stream id, value2 = buffer length in ms
  stream_is_recorded = 4,
  ping_request = 6,       ///< value = timestamp
  ping_response = 7,      ///< value = the timestamp of the ping request
};

/// A decoded User Control message body: event type and its one or two 32-bit values.
struct UserControl {
  uint16_t event = 0;
  uint32_t value = 0;
  uint32_t value2 = 0;  ///< set_buffer_length only
};

/// User Control message (type 4, chunk stream 2, message stream 0) with one 32-bit value.
Message user_control_message(UserControlEvent event, uint32_t value);
/// Parses a User Control message body. Errc::malformed when shorter than 6 bytes (or 10 for
/// set_buffer_length).
Result<UserControl> parse_user_control(ByteView payload);

/// Parses the 4-byte big-endian value of Set Chunk Size / Acknowledgement / Window Ack Size
/// (and the size of Set Peer Bandwidth). Errc::malformed when shorter than 4 bytes.
Result<uint32_t> parse_u32_control(ByteView payload);

// ---- commands (RTMP spec 7.2) ----------------------------------------------------------------

/// A decoded command message: name, transaction id, command object (null when absent) and
/// the remaining arguments.
struct Command {
  std::string name;
  double transaction_id = 0;
  amf0::Value command_object;
  std::vector<amf0::Value> args;

  /// args[i] as a string when it is one, else empty.
  std::string arg_string(size_t i) const;
};

/// Decodes an AMF0 command (type 20) or an AMF3 command (type 17) whose body, after its
/// leading format byte, is AMF0 (as Flash sends). Errors: Errc::malformed (no name string,
/// bad AMF0), Errc::unsupported (AMF3 values, other message types).
Result<Command> parse_command(const Message& msg);

/// A command message (type 20) on chunk stream `csid` carrying `values` in order.
Message command_message(uint32_t stream_id, const std::vector<amf0::Value>& values,
                        uint32_t csid = csid::kCommand);
/// A data message (type 18) carrying `values` in order, on chunk stream 5.
Message data_message(uint32_t stream_id, const std::vector<amf0::Value>& values);

/// `_result` (7.2.1.1 ff): [ "_result", txn, props, info ] on message stream 0.
Message result_message(double txn, amf0::Value props, amf0::Value info);
/// `_error`: [ "_error", txn, props, info ] on message stream 0.
Message error_message(double txn, amf0::Value props, amf0::Value info);

/// The info object of onStatus / _result: { level, code, description }.
amf0::Value status_object(std::string_view level, std::string_view code, std::string_view description);

/// `_result` of connect (7.2.1.1): server properties (fmsVer, capabilities, mode) and
/// NetConnection.Connect.Success with the client's objectEncoding echoed.
Message connect_result_message(double txn, double object_encoding);
/// `_result` of createStream (7.2.1.3): [ "_result", txn, null, stream_id ].
Message create_stream_result_message(double txn, uint32_t stream_id);
/// `onStatus` (7.2.2) on message stream `stream_id`, transaction 0, null command object.
/// level is "status" or "error"; code e.g. "NetStream.Publish.Start".
Message on_status_message(uint32_t stream_id, std::string_view level, std::string_view code,
                          std::string_view description);
/// `onFCPublish` / `onFCUnpublish` notifications (Flash Media Live Encoder extension), with
/// code NetStream.Publish.Start / NetStream.Unpublish.Success.
Message on_fc_publish_message(std::string_view stream_name);
Message on_fc_unpublish_message(std::string_view stream_name);
/// `|RtmpSampleAccess` data message (true, true): lets Flash players read the media bytes.
Message sample_access_message(uint32_t stream_id);

/// onStatus codes used by castmesh.
namespace status {
inline constexpr std::string_view kConnectSuccess = "NetConnection.Connect.Success";
inline constexpr std::string_view kConnectRejected = "NetConnection.Connect.Rejected";
inline constexpr std::string_view kPublishStart = "NetStream.Publish.Start";
inline constexpr std::string_view kPublishBadName = "NetStream.Publish.BadName";
inline constexpr std::string_view kUnpublishSuccess = "NetStream.Unpublish.Success";
inline constexpr std::string_view kPlayReset = "NetStream.Play.Reset";
inline constexpr std::string_view kPlayStart = "NetStream.Play.Start";
inline constexpr std::string_view kPlayStreamNotFound = "NetStream.Play.StreamNotFound";
inline constexpr std::string_view kPlayUnpublishNotify = "NetStream.Play.UnpublishNotify";
inline constexpr std::string_view kPlayPublishNotify = "NetStream.Play.PublishNotify";
}  // namespace status

// ---- data messages -----------------------------------------------------------------------------

/// For a data message (type 18) body: when it starts with the string "@setDataFrame" returns
/// the rest (e.g. "onMetaData", {...}) as a view into `payload`; otherwise returns `payload`
/// itself. Errc::malformed when the first value is not valid AMF0.
Result<ByteView> strip_set_data_frame(ByteView payload);

/// Name of a data message (its first AMF0 value when that is a string), else empty.
std::string data_message_name(ByteView payload);

// ---- acknowledgement window (RTMP spec 5.4.3) ----------------------------------------------------

/// Counts received bytes and says when an Acknowledgement is due: one each time another
/// `window` bytes arrived since the last one.
class AckCounter {
 public:
  explicit AckCounter(uint32_t window) : window_(window) {}
  /// Changes the window (bytes; 0 disables acknowledgements), e.g. on the peer's Window
  /// Acknowledgement Size message.
  void set_window(uint32_t window) noexcept { window_ = window; }
  uint32_t window() const noexcept { return window_; }
  /// Adds `n` received bytes. Returns the sequence number (total bytes received, mod 2^32)
  /// to acknowledge when at least `window` bytes arrived since the last acknowledgement.
  std::optional<uint32_t> on_received(uint64_t n) noexcept;
  uint64_t total() const noexcept { return total_; }

 private:
  uint32_t window_;
  uint64_t total_ = 0;
  uint64_t acked_ = 0;
};

}  // namespace castmesh::rtmp
