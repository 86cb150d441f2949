#pragma once
/// \file FLV-payload MediaPacket stream -> MPEG-TS (H.264 + AAC), used by the HLS segmenter.

#include <optional>

#include "base/bytes.hpp"
#include "base/result.hpp"
#include "media/codec/aac.hpp"
#include "media/codec/h264.hpp"
#include "media/format/mpegts.hpp"
#include "media/packet.hpp"

namespace castmesh::media::ts {

/// Converts MediaPackets (FLV tag bodies, see media/packet.hpp) to TS packets.
///
/// Video: the AVC sequence header's AVCDecoderConfigurationRecord is kept; each AVC NALU
/// packet is converted to Annex B (AUD, and SPS/PPS before keyframes) and written as one PES.
/// Audio: the AAC sequence header's AudioSpecificConfig is kept; each raw AAC frame is
/// wrapped in an ADTS header and written as one PES.
/// Timestamps: DTS = dts_ms * 90 + kTimestampOffset, PTS = (dts_ms + cts_ms) * 90 +
/// kTimestampOffset (90 kHz ticks), with PTS clamped to >= DTS. The offset keeps the first
/// timestamps away from 0 so a negative composition offset never wraps the 33-bit clock.
/// Not thread-safe.
class FlvToTs {
 public:
  /// 1 s in 90 kHz ticks, added to every PTS/DTS.
  static constexpr uint64_t kTimestampOffset = 90000;

  explicit FlvToTs(TsMuxer::Options opts = {});

  /// Appends TS packets for `pkt` to `out` (nothing for sequence headers and data packets;
  /// a new sequence header replaces the stored config).
  /// Errors (the packet is skipped, `out` unchanged; the caller logs once):
  ///  - Errc::malformed: truncated tag header, bad AVCDecoderConfigurationRecord or ASC,
  ///    bad NAL lengths, a coded frame before its sequence header;
  ///  - Errc::unsupported: a codec other than H.264 / AAC.
  Status write(const MediaPacket& pkt, Bytes& out);

  /// Appends PAT + PMT (call at the start of every segment).
  void write_tables(Bytes& out);

  bool has_video_config() const { return avc_.has_value(); }
  bool has_audio_config() const { return asc_.has_value(); }
  /// The stored configs (nullptr before their sequence header arrived).
  const h264::AvcConfig* video_config() const { return avc_ ? &*avc_ : nullptr; }
  const aac::AudioSpecificConfig* audio_config() const { return asc_ ? &*asc_ : nullptr; }

 private:
  Status write_video(const MediaPacket& pkt, Bytes& out);
  Status write_audio(const MediaPacket& pkt, Bytes& out);

  TsMuxer muxer_;
  std::optional<h264::AvcConfig> avc_;
  std::optional<aac::AudioSpecificConfig> asc_;
  Bytes scratch_;
};

}  // namespace castmesh::media::ts
