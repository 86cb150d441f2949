#pragma once
/// \file MPEG-2 transport stream muxer (ISO/IEC 13818-1) for one program of H.264 + AAC.

#include <cstdint>

#include "base/bytes.hpp"

namespace castmesh::media::ts {

constexpr size_t kPacketSize = 188;
constexpr uint8_t kSyncByte = 0x47;
constexpr uint16_t kPatPid = 0x0000;
constexpr uint16_t kPmtPid = 0x1000;
constexpr uint16_t kVideoPid = 0x0100;
constexpr uint16_t kAudioPid = 0x0101;
constexpr uint16_t kProgramNumber = 1;
constexpr uint8_t kStreamTypeH264 = 0x1B;  ///< ISO/IEC 13818-1 Table 2-34
constexpr uint8_t kStreamTypeAac = 0x0F;   ///< ADTS AAC
constexpr uint8_t kVideoStreamId = 0xE0;   ///< Table 2-22
constexpr uint8_t kAudioStreamId = 0xC0;
/// 33-bit PTS/DTS/PCR-base clock, 90 kHz (2.4.3.7).
constexpr uint64_t kTimestampMask = (uint64_t{1} << 33) - 1;

/// CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor) as used by
/// PSI sections (ISO/IEC 13818-1 Annex A).
uint32_t crc32_mpeg2(ByteView data) noexcept;

/// Writes a 5-byte PES PTS or DTS field: `prefix` (4 bits: 0b0010 PTS only, 0b0011 PTS with
/// DTS, 0b0001 DTS) then the 33-bit 90 kHz value `ts` split 3/15/15 with marker bits
/// (ISO/IEC 13818-1 2.4.3.7). Bits above 33 are dropped (wrap).
void put_pes_timestamp(uint8_t out[5], uint8_t prefix, uint64_t ts) noexcept;

/// Writes a 6-byte PCR: 33-bit base (90 kHz, wraps), 6 reserved bits, 9-bit extension
/// (27 MHz remainder) (ISO/IEC 13818-1 2.4.3.5).
void put_pcr(uint8_t out[6], uint64_t base_90k, uint16_t ext = 0) noexcept;

/// Muxes one program into 188-byte TS packets: PAT on PID 0, PMT on PID 0x1000, H.264 on
/// PID 0x100 (stream_type 0x1B), ADTS AAC on PID 0x101 (stream_type 0x0F). Each PES starts a
/// new TS packet (payload_unit_start_indicator) and its last packet is padded with
/// adaptation-field stuffing. The PCR is carried on the video PID (the audio PID when there is
/// no video) in the first packet of a PES, on every video keyframe and at least every 50 ms of
/// DTS; PCR base = DTS. Continuity counters are kept per PID across calls.
/// Not thread-safe; output bytes are appended to `out` and are a whole number of packets.
class TsMuxer {
 public:
  struct Options {
    bool has_video = true;
    bool has_audio = true;
  };

  explicit TsMuxer(Options opts);

  /// Appends one PAT packet and one PMT packet (each a single section with CRC-32/MPEG-2).
  void write_tables(Bytes& out);

  /// Appends one video PES (stream_id 0xE0) holding one Annex B access unit. `pts_90k` and
  /// `dts_90k` are 90 kHz ticks (wrapped to 33 bits); the DTS is written only when it differs
  /// from the PTS. When `keyframe`, the first packet carries random_access_indicator and a PCR.
  /// PES_packet_length is 0 (unbounded, allowed for video) when the PES exceeds 65535 bytes.
  void write_video(Bytes& out, uint64_t pts_90k, uint64_t dts_90k, bool keyframe, ByteView annexb);

  /// Appends audio PES packets (stream_id 0xC0) holding ADTS frames with PTS `pts_90k`.
  /// Audio PES must have a bounded length, so a payload over ~64 KiB is split into several PES,
  /// only the first carrying the PTS.
  void write_audio(Bytes& out, uint64_t pts_90k, ByteView adts_frames);

  uint16_t pcr_pid() const noexcept;

 private:
  /// Packetizes one complete PES (header + payload) on `pid`.
  void write_pes(Bytes& out, uint16_t pid, uint8_t& cc, ByteView pes_header, ByteView payload, bool pcr,
                 uint64_t pcr_base, bool random_access);
  void write_section(Bytes& out, uint16_t pid, uint8_t& cc, ByteView section);
  bool want_pcr(bool keyframe, uint64_t dts_90k);

  Options opts_;
  uint8_t cc_pat_ = 0, cc_pmt_ = 0, cc_video_ = 0, cc_audio_ = 0;
  bool have_pcr_ = false;
  uint64_t last_pcr_ = 0;
};

}  // namespace castmesh::media::ts
