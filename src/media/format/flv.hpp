#pragma once
/// \file FLV container: header/tag writers and an incremental demuxer (FLV spec v10.1, Annex E).

#include <array>
#include <cstdint>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"
#include "media/packet.hpp"

namespace castmesh::media::flv {

/// The 9-byte FLV header (FLV spec E.2: "FLV", version 1, TypeFlags, DataOffset 9) followed by
/// PreviousTagSize0 (4 zero bytes).
std::array<uint8_t, 13> file_header(bool has_audio, bool has_video);

/// An 11-byte FLV tag header (FLV spec E.4.1): TagType, DataSize (24-bit, bytes of the tag
/// body), Timestamp (lower 24 bits of `timestamp_ms`) + TimestampExtended (upper 8 bits),
/// StreamID 0. `data_size` must be < 2^24.
std::array<uint8_t, 11> tag_header(PacketType type, uint32_t data_size, uint32_t timestamp_ms);

/// PreviousTagSize after a tag whose body is `data_size` bytes: 11 + data_size, big-endian
/// (FLV spec E.3).
std::array<uint8_t, 4> prev_tag_size(uint32_t data_size);

/// One demuxed FLV tag: its type, 32-bit timestamp in ms and body (`data`, the bytes after the
/// 11-byte tag header, i.e. the MediaPacket payload).
struct Tag {
  PacketType type;
  uint32_t timestamp_ms;
  Bytes data;
};

/// Incremental FLV file/stream demuxer: accepts bytes in pieces of any size (down to one byte)
/// and yields complete tags (audio, video and script data). Expects the stream to start with
/// the FLV header. Not thread-safe; one instance per stream.
class Demuxer {
 public:
  /// `max_tag_bytes` bounds one tag body (DataSize); larger tags fail with Errc::too_large.
  explicit Demuxer(uint32_t max_tag_bytes = 16 * 1024 * 1024);

  /// Consumes `data` and appends each tag it completes to `out` (partial input is kept).
  /// Errors (sticky: every later call returns the same error):
  ///  - Errc::malformed: bad signature/version/DataOffset, unknown tag type, a
  ///    PreviousTagSize that is neither 0 nor 11 + DataSize;
  ///  - Errc::too_large: DataSize > max_tag_bytes.
  Status feed(ByteView data, std::vector<Tag>& out);

  /// True once the FLV header has been read; then has_audio()/has_video() report its flags.
  bool header_done() const noexcept { return state_ != State::header; }
  bool has_audio() const noexcept { return has_audio_; }
  bool has_video() const noexcept { return has_video_; }

 private:
  enum class State { header, tags, failed };
  Status fail(Errc code, std::string detail);

  uint32_t max_tag_bytes_;
  State state_ = State::header;
  Bytes buf_;
  bool has_audio_ = false, has_video_ = false;
  Error error_;
};

}  // namespace castmesh::media::flv
