#pragma once
/// \file H.264 / AVC helpers: decoder configuration record, SPS parsing and AVCC -> Annex B.

#include <cstdint>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::media::h264 {

/// NAL unit types used here (ITU-T H.264 Table 7-1).
enum class NalType : uint8_t { slice = 1, idr = 5, sei = 6, sps = 7, pps = 8, aud = 9 };

/// NAL unit type of a NAL unit whose first byte is `header` (ITU-T H.264 7.3.1).
inline uint8_t nal_type(uint8_t header) noexcept { return header & 0x1f; }

/// AVCDecoderConfigurationRecord contents. `sps` / `pps` hold whole NAL units (header byte
/// included, no start code, no length prefix). `nal_length_size` is 1, 2 or 4 bytes.
struct AvcConfig {
  uint8_t profile = 0, compatibility = 0, level = 0;
  uint8_t nal_length_size = 4;
  std::vector<Bytes> sps, pps;
};

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), as carried in the
/// FLV/RTMP AVC sequence header after the 5-byte video tag header. Trailing high-profile
/// extension bytes are ignored. Errors: Errc::malformed (truncated, version != 1, NAL length
/// size of 3, an empty SPS, no SPS at all), never reads out of bounds.
Result<AvcConfig> parse_decoder_config(ByteView record);

/// Fields of a sequence parameter set. `width`/`height` are the displayed size in pixels
/// after frame cropping; `fps` is frames per second from VUI timing (0 when absent).
struct SpsInfo {
  uint32_t width = 0, height = 0;
  uint8_t profile_idc = 0, level_idc = 0;
  double fps = 0;
};

/// Parses a sequence parameter set NAL unit (header byte included, emulation prevention
/// bytes still present; they are removed here). ITU-T H.264 7.3.2.1.1 and E.1.1.
/// Errors: Errc::malformed (not an SPS, truncated, out-of-range values),
/// Errc::unsupported (dimensions that cannot be computed).
Result<SpsInfo> parse_sps(ByteView sps_nal);

/// Removes emulation prevention bytes (00 00 03 -> 00 00) from a NAL unit payload
/// (ITU-T H.264 7.4.1). Returns the RBSP.
Bytes remove_emulation_prevention(ByteView nal);

/// Converts one AVCC access unit (NAL units each preceded by a big-endian length of
/// `cfg.nal_length_size` bytes, ISO/IEC 14496-15 5.3.4.2) to Annex B byte-stream format
/// (ITU-T H.264 Annex B, every NAL behind a 4-byte start code) and appends it to `out`:
/// an access unit delimiter first (7.3.2.4, primary_pic_type 7), then, when `keyframe` and
/// `cfg` has an SPS, all of cfg's SPS and PPS, then the AU's own NAL units in order. AUDs in
/// the AU are dropped (one was written), and so are in-band SPS/PPS when cfg's were inserted,
/// to avoid duplicates. Zero-length NAL units are skipped.
/// Errors: Errc::malformed when a length prefix is truncated or a NAL length runs past the
/// end of `avcc`, or `cfg.nal_length_size` is not 1..4; `out` is left unchanged on error.
Status avcc_to_annexb(ByteView avcc, const AvcConfig& cfg, bool keyframe, Bytes& out);

}  // namespace castmesh::media::h264
