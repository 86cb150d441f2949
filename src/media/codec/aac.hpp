#pragma once
/// \file AAC helpers: AudioSpecificConfig parsing and ADTS header writing.

#include <cstddef>
#include <cstdint>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::media::aac {

/// The fields of an AudioSpecificConfig needed to frame raw AAC as ADTS.
/// `object_type` is the MPEG-4 Audio Object Type (2 = AAC LC), `sampling_index` the
/// samplingFrequencyIndex (15 = explicit; then `sample_rate` holds the explicit rate in Hz),
/// `channels` the channelConfiguration (0 = defined in-band by a PCE).
struct AudioSpecificConfig {
  uint8_t object_type = 2;
  uint8_t sampling_index = 4;
  uint32_t sample_rate = 44100;
  uint8_t channels = 2;
};

/// Sample rate in Hz of samplingFrequencyIndex `index` (ISO/IEC 14496-3 Table 1.18);
/// 0 for reserved/escape values (13..15).
uint32_t sample_rate_of(uint8_t index) noexcept;

/// Parses an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), as carried in the FLV/RTMP AAC
/// sequence header after the 2-byte audio tag header. Handles the escape object type (31) and
/// the explicit 24-bit frequency (index 15). Errors: Errc::malformed (truncated, object type
/// 0, reserved frequency index 13/14, explicit rate 0, channelConfiguration > 7, which ADTS
/// cannot carry).
Result<AudioSpecificConfig> parse_asc(ByteView asc);

/// Writes a 7-byte ADTS header (no CRC) for one raw AAC frame of `raw_len` bytes
/// (ISO/IEC 13818-7 6.2). The ADTS profile is object_type - 1 (MPEG-4 AOTs 1..4 map to the
/// ADTS profiles); an explicit rate (index 15), which ADTS cannot carry, is replaced by the
/// nearest standard index. frame_length = raw_len + 7 must fit in 13 bits (callers pass
/// raw frames, which are at most 6144 bits per channel).
void write_adts_header(const AudioSpecificConfig& asc, size_t raw_len, uint8_t out[7]);

}  // namespace castmesh::media::aac
