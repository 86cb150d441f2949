#include "media/format/flv_to_ts.hpp"

#include <algorithm>

namespace castmesh::media::ts {
namespace {
// FLV spec E.4.3.1 / E.4.2.1: bytes before the codec data in a tag body.
constexpr size_t kAvcTagHeader = 5;  // FrameType|CodecID, AVCPacketType, CompositionTime(24)
constexpr size_t kAacTagHeader = 2;  // SoundFormat|..., AACPacketType
constexpr uint8_t kAvcSequenceHeader = 0, kAvcNalu = 1;
constexpr size_t kMaxAdtsPayload = 0x1FFF - 7;  // 13-bit aac_frame_length includes the header
}  // namespace

FlvToTs::FlvToTs(TsMuxer::Options opts) : muxer_(opts) {}

void FlvToTs::write_tables(Bytes& out) { muxer_.write_tables(out); }

Status FlvToTs::write(const MediaPacket& pkt, Bytes& out) {
  switch (pkt.type) {
    case PacketType::video:
      return write_video(pkt, out);
    case PacketType::audio:
      return write_audio(pkt, out);
    case PacketType::data:
      return ok_status();
  }
  return ok_status();
}

Status FlvToTs::write_video(const MediaPacket& pkt, Bytes& out) {
  const ByteView p(pkt.payload);
  if (p.empty()) return {Errc::malformed, "video: empty payload"};
  if ((p[0] & 0x0F) != uint8_t(VideoCodec::h264) || (p[0] & 0x80))
    return {Errc::unsupported, "video: codec is not H.264"};
  if (p.size() < kAvcTagHeader) return {Errc::malformed, "video: truncated AVC tag header"};
  const uint8_t avc_type = p[1];
  const ByteView body = p.subspan(kAvcTagHeader);
  if (avc_type == kAvcSequenceHeader) {
    auto cfg = h264::parse_decoder_config(body);
    if (!cfg) return cfg.error();
    avc_ = std::move(*cfg);
    return ok_status();
  }
  if (avc_type != kAvcNalu) return ok_status();  // 2 = end of sequence: nothing to write
  if (!avc_) return {Errc::malformed, "video: coded frame before the AVC sequence header"};
  // The FLV header's CompositionTime, not pkt.cts_ms, is authoritative for this payload, but
  // make_packet fills cts_ms from it, so both agree.
  const bool keyframe = (p[0] >> 4) == 1;
  scratch_.clear();
  if (auto st = h264::avcc_to_annexb(body, *avc_, keyframe, scratch_); !st) return st;
  const uint64_t dts = uint64_t{pkt.dts_ms} * 90 + kTimestampOffset;
  const int64_t pts_signed = (int64_t{pkt.dts_ms} + pkt.cts_ms) * 90 + int64_t(kTimestampOffset);
  const uint64_t pts = std::max<int64_t>(pts_signed, int64_t(dts));
  muxer_.write_video(out, pts, dts, keyframe, scratch_);
  return ok_status();
}

Status FlvToTs::write_audio(const MediaPacket& pkt, Bytes& out) {
  const ByteView p(pkt.payload);
  if (p.empty()) return {Errc::malformed, "audio: empty payload"};
  if ((p[0] >> 4) != uint8_t(AudioCodec::aac)) return {Errc::unsupported, "audio: codec is not AAC"};
  if (p.size() < kAacTagHeader) return {Errc::malformed, "audio: truncated AAC tag header"};
  const ByteView body = p.subspan(kAacTagHeader);
  if (p[1] == 0) {
    auto asc = aac::parse_asc(body);
    if (!asc) return asc.error();
    asc_ = *asc;
    return ok_status();
  }
  if (!asc_) return {Errc::malformed, "audio: raw frame before the AAC sequence header"};
  if (body.empty()) return ok_status();
  if (body.size() > kMaxAdtsPayload) return {Errc::malformed, "audio: AAC frame too large for ADTS"};
  scratch_.resize(7);
  aac::write_adts_header(*asc_, body.size(), scratch_.data());
  scratch_.insert(scratch_.end(), body.begin(), body.end());
  muxer_.write_audio(out, uint64_t{pkt.dts_ms} * 90 + kTimestampOffset, scratch_);
  return ok_status();
}

}  // namespace castmesh::media::ts
