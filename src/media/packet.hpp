#pragma once
/// \file MediaPacket: one published audio/video/data message, immutable once built and shared
/// by every subscriber (std::shared_ptr<const MediaPacket>).

#include <cstdint>
#include <memory>

#include "base/bytes.hpp"

namespace castmesh::media {

/// Message kind; the numeric values are the RTMP message type ids / FLV tag types
/// (RTMP spec 7.1.4, 7.1.5; FLV spec E.4.1).
enum class PacketType : uint8_t { audio = 8, video = 9, data = 18 };

/// Codec ids as carried in FLV tag headers (FLV spec E.4.2.1, E.4.3.1).
enum class VideoCodec : uint8_t { none = 0, h264 = 7, hevc = 12 };
enum class AudioCodec : uint8_t { none = 0, mp3 = 2, aac = 10 };

/// One published message.
///
/// `payload` is the FLV tag body, which is byte for byte the RTMP message payload:
/// for video `[frame_type|codec_id][avc_packet_type][cts:24][data...]` (FLV E.4.3.1),
/// for audio `[sound_format|rate|size|type][aac_packet_type][data...]` (FLV E.4.2.1),
/// for data an AMF0 encoded script message (e.g. "onMetaData", object).
struct MediaPacket {
  PacketType type = PacketType::video;
  /// Decoding timestamp in milliseconds, monotonic within one Source (castmesh rebases
  /// timestamps across republish so outputs never go backwards).
  uint32_t dts_ms = 0;
  /// Composition time offset (pts - dts) in milliseconds; video only.
  int32_t cts_ms = 0;
  /// Video frame that starts a GOP (FLV frame type 1, not a sequence header).
  bool keyframe = false;
  /// AVC/HEVC decoder configuration record or AAC AudioSpecificConfig.
  bool sequence_header = false;
  VideoCodec video_codec = VideoCodec::none;
  AudioCodec audio_codec = AudioCodec::none;
  Bytes payload;

  bool is_video() const noexcept { return type == PacketType::video; }
  bool is_audio() const noexcept { return type == PacketType::audio; }
  bool is_data() const noexcept { return type == PacketType::data; }
  /// Timestamp in 90 kHz ticks (MPEG-TS clock) of the decode time.
  uint64_t dts_90k() const noexcept { return uint64_t(dts_ms) * 90; }
  /// Presentation timestamp in 90 kHz ticks; a negative composition offset that would put
  /// the PTS before 0 is clamped to 0.
  uint64_t pts_90k() const noexcept {
    const int64_t pts = int64_t(dts_ms) + cts_ms;
    return pts < 0 ? 0 : uint64_t(pts) * 90;
  }
};

using PacketPtr = std::shared_ptr<const MediaPacket>;

/// Builds a MediaPacket from an FLV tag body / RTMP message payload, filling the codec,
/// keyframe, sequence-header and composition-time fields from the first bytes.
/// Returns nullptr when the payload is empty or too short for its declared codec.
PacketPtr make_packet(PacketType type, uint32_t dts_ms, Bytes payload);

}  // namespace castmesh::media
