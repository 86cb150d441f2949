#include "media/format/mpegts.hpp"

#include <algorithm>
#include <array>

namespace castmesh::media::ts {
namespace {

constexpr size_t kTsHeaderBytes = 4;
constexpr size_t kMaxPayload = kPacketSize - kTsHeaderBytes;  // 184
// A PCR at least this often (in 90 kHz ticks of DTS) keeps gaps under the 100 ms of 2.7.2
// as long as frames arrive at least every 50 ms.
constexpr uint64_t kPcrIntervalTicks = 4500;
// PES_packet_length counts bytes after itself: 3 fixed header bytes + optional fields + data.
constexpr size_t kMaxPesPacketLength = 0xFFFF;

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i << 24;
    for (int k = 0; k < 8; ++k) c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : (c << 1);
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

/// Returns a PSI section (table_id .. CRC_32) with section_length and CRC filled in.
/// `body` is everything after the 3-byte table_id/section_length prefix, without the CRC.
Bytes finish_section(uint8_t table_id, const Bytes& body) {
  Bytes s;
  ByteWriter w(s);
  w.u8(table_id);
  // section_syntax_indicator=1, '0', reserved '11', 12-bit section_length (body + CRC).
  w.u16(static_cast<uint16_t>(0xB000 | ((body.size() + 4) & 0x0FFF)));
  w.bytes(body);
  w.u32(crc32_mpeg2(s));
  return s;
}

/// PES header (2.4.3.6) for a PES whose data is `data_len` bytes. `dts` is written when
/// `with_dts`; no timestamps when `!with_pts`.
Bytes pes_header(uint8_t stream_id, size_t data_len, bool with_pts, uint64_t pts, bool with_dts, uint64_t dts,
                 bool allow_unbounded) {
  const uint8_t hdr_data_len = with_pts ? (with_dts ? 10 : 5) : 0;
  size_t pes_len = 3 + hdr_data_len + data_len;
  if (pes_len > kMaxPesPacketLength) pes_len = allow_unbounded ? 0 : kMaxPesPacketLength;
  Bytes h;
  h.reserve(19);
  ByteWriter w(h);
  w.u24(0x000001);  // packet_start_code_prefix
  w.u8(stream_id);
  w.u16(static_cast<uint16_t>(pes_len));
  // '10', scrambling 00, priority 0, data_alignment_indicator (set when the data starts with
  // an access unit, i.e. every PES here but an audio continuation), copyright 0, original 0.
  w.u8(with_pts ? 0x84 : 0x80);
  w.u8(with_pts ? (with_dts ? 0xC0 : 0x80) : 0x00);  // PTS_DTS_flags, other flags 0
  w.u8(hdr_data_len);
  if (with_pts) {
    uint8_t t[5];
    put_pes_timestamp(t, with_dts ? 0x3 : 0x2, pts);
    w.bytes(ByteView(t, 5));
    if (with_dts) {
      put_pes_timestamp(t, 0x1, dts);
      w.bytes(ByteView(t, 5));
    }
  }
  return h;
}

}  // namespace

uint32_t crc32_mpeg2(ByteView data) noexcept {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : data) crc = (crc << 8) ^ kCrcTable[((crc >> 24) ^ b) & 0xFF];
  return crc;
}

void put_pes_timestamp(uint8_t out[5], uint8_t prefix, uint64_t ts) noexcept {
  ts &= kTimestampMask;
  out[0] = static_cast<uint8_t>(((prefix & 0x0F) << 4) | (((ts >> 30) & 0x07) << 1) | 0x01);
  out[1] = static_cast<uint8_t>(ts >> 22);
  out[2] = static_cast<uint8_t>((((ts >> 15) & 0x7F) << 1) | 0x01);
  out[3] = static_cast<uint8_t>(ts >> 7);
  out[4] = static_cast<uint8_t>(((ts & 0x7F) << 1) | 0x01);
}

void put_pcr(uint8_t out[6], uint64_t base_90k, uint16_t ext) noexcept {
  const uint64_t base = base_90k & kTimestampMask;
  ext &= 0x1FF;
  out[0] = static_cast<uint8_t>(base >> 25);
  out[1] = static_cast<uint8_t>(base >> 17);
  out[2] = static_cast<uint8_t>(base >> 9);
  out[3] = static_cast<uint8_t>(base >> 1);
  out[4] = static_cast<uint8_t>(((base & 1) << 7) | 0x7E | (ext >> 8));
  out[5] = static_cast<uint8_t>(ext);
}

TsMuxer::TsMuxer(Options opts) : opts_(opts) {}

uint16_t TsMuxer::pcr_pid() const noexcept {
  if (opts_.has_video) return kVideoPid;
  if (opts_.has_audio) return kAudioPid;
  return 0x1FFF;  // no PCR (2.4.4.9)
}

void TsMuxer::write_section(Bytes& out, uint16_t pid, uint8_t& cc, ByteView section) {
  // Sections here are far below 183 bytes, so one packet each.
  const size_t start = out.size();
  out.resize(start + kPacketSize, 0xFF);
  uint8_t* p = out.data() + start;
  p[0] = kSyncByte;
  p[1] = static_cast<uint8_t>(0x40 | (pid >> 8));  // payload_unit_start_indicator
  p[2] = static_cast<uint8_t>(pid);
  p[3] = static_cast<uint8_t>(0x10 | (cc & 0x0F));  // payload only
  cc = (cc + 1) & 0x0F;
  p[4] = 0;  // pointer_field
  std::copy_n(section.begin(), std::min(section.size(), kPacketSize - 5), p + 5);
}

void TsMuxer::write_tables(Bytes& out) {
  // PAT (2.4.4.3).
  Bytes pat;
  {
    ByteWriter w(pat);
    w.u16(1);     // transport_stream_id
    w.u8(0xC1);   // reserved '11', version_number 0, current_next_indicator 1
    w.u8(0);      // section_number
    w.u8(0);      // last_section_number
    w.u16(kProgramNumber);
    w.u16(static_cast<uint16_t>(0xE000 | kPmtPid));  // reserved '111' + program_map_PID
  }
  write_section(out, kPatPid, cc_pat_, finish_section(0x00, pat));

  // PMT (2.4.4.8).
  Bytes pmt;
  {
    ByteWriter w(pmt);
    w.u16(kProgramNumber);
    w.u8(0xC1);
    w.u8(0);
    w.u8(0);
    w.u16(static_cast<uint16_t>(0xE000 | pcr_pid()));  // reserved + PCR_PID
    w.u16(0xF000);                                      // reserved + program_info_length 0
    if (opts_.has_video) {
      w.u8(kStreamTypeH264);
      w.u16(static_cast<uint16_t>(0xE000 | kVideoPid));
      w.u16(0xF000);  // ES_info_length 0
    }
    if (opts_.has_audio) {
      w.u8(kStreamTypeAac);
      w.u16(static_cast<uint16_t>(0xE000 | kAudioPid));
      w.u16(0xF000);
    }
  }
  write_section(out, kPmtPid, cc_pmt_, finish_section(0x02, pmt));
}

bool TsMuxer::want_pcr(bool keyframe, uint64_t dts_90k) {
  const uint64_t dts = dts_90k & kTimestampMask;
  const bool due = !have_pcr_ || ((dts - last_pcr_) & kTimestampMask) >= kPcrIntervalTicks;
  if (!keyframe && !due) return false;
  have_pcr_ = true;
  last_pcr_ = dts;
  return true;
}

void TsMuxer::write_pes(Bytes& out, uint16_t pid, uint8_t& cc, ByteView hdr, ByteView payload, bool pcr,
                        uint64_t pcr_base, bool random_access) {
  const size_t total = hdr.size() + payload.size();
  size_t offset = 0;  // position in the virtual concatenation hdr ++ payload
  bool first = true;
  out.reserve(out.size() + (total / kMaxPayload + 2) * kPacketSize);
  while (offset < total || first) {
    // Adaptation field content (after its length byte): flags (+ PCR) on the first packet.
    const bool want_af = first && (pcr || random_access);
    size_t af_content = want_af ? 1 + (pcr ? 6 : 0) : 0;
    bool has_af = want_af;
    size_t space = kMaxPayload - (has_af ? 1 + af_content : 0);
    const size_t remaining = total - offset;
    size_t af_len = af_content;  // adaptation_field_length
    if (remaining < space) {
      // Stuff the adaptation field so the payload ends exactly at the packet end (2.4.3.5).
      has_af = true;
      af_len = kMaxPayload - 1 - remaining;
      space = remaining;
    }
    const size_t start = out.size();
    out.resize(start + kPacketSize, 0xFF);
    uint8_t* p = out.data() + start;
    p[0] = kSyncByte;
    p[1] = static_cast<uint8_t>((first ? 0x40 : 0) | ((pid >> 8) & 0x1F));
    p[2] = static_cast<uint8_t>(pid);
    p[3] = static_cast<uint8_t>((has_af ? 0x30 : 0x10) | (cc & 0x0F));
    cc = (cc + 1) & 0x0F;
    size_t pos = kTsHeaderBytes;
    if (has_af) {
      p[pos++] = static_cast<uint8_t>(af_len);
      if (af_len > 0) {
        uint8_t flags = 0;
        if (want_af && random_access) flags |= 0x40;
        if (want_af && pcr) flags |= 0x10;
        p[pos] = flags;
        if (want_af && pcr) put_pcr(p + pos + 1, pcr_base);
        pos += af_len;  // the rest was pre-filled with 0xFF stuffing
      }
    }
    // Copy `space` bytes of hdr ++ payload.
    size_t n = space;
    while (n > 0) {
      if (offset < hdr.size()) {
        const size_t k = std::min(n, hdr.size() - offset);
        std::copy_n(hdr.data() + offset, k, p + pos);
        pos += k, offset += k, n -= k;
      } else {
        const size_t k = std::min(n, total - offset);
        std::copy_n(payload.data() + (offset - hdr.size()), k, p + pos);
        pos += k, offset += k, n -= k;
      }
    }
    first = false;
  }
}

void TsMuxer::write_video(Bytes& out, uint64_t pts_90k, uint64_t dts_90k, bool keyframe, ByteView annexb) {
  const uint64_t pts = pts_90k & kTimestampMask, dts = dts_90k & kTimestampMask;
  const Bytes hdr = pes_header(kVideoStreamId, annexb.size(), true, pts, pts != dts, dts, true);
  const bool pcr = pcr_pid() == kVideoPid && want_pcr(keyframe, dts);
  write_pes(out, kVideoPid, cc_video_, hdr, annexb, pcr, dts, keyframe);
}

void TsMuxer::write_audio(Bytes& out, uint64_t pts_90k, ByteView adts_frames) {
  const uint64_t pts = pts_90k & kTimestampMask;
  // Largest data per PES: PES_packet_length (65535) - 3 fixed bytes - 5 PTS bytes.
  constexpr size_t kMaxChunk = kMaxPesPacketLength - 8;
  size_t offset = 0;
  bool first = true;
  while (first || offset < adts_frames.size()) {
    const size_t n = std::min(kMaxChunk, adts_frames.size() - offset);
    ByteView chunk = adts_frames.subspan(offset, n);
    const Bytes hdr = pes_header(kAudioStreamId, n, first, pts, false, pts, false);
    const bool pcr = first && pcr_pid() == kAudioPid && want_pcr(false, pts);
    write_pes(out, kAudioPid, cc_audio_, hdr, chunk, pcr, pts, pcr);
    offset += n;
    first = false;
  }
}

}  // namespace castmesh::media::ts
