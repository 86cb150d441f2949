#include "media/packet.hpp"

namespace castmesh::media {

PacketPtr make_packet(PacketType type, uint32_t dts_ms, Bytes payload) {
  if (payload.empty()) return nullptr;
  auto p = std::make_shared<MediaPacket>();
  p->type = type;
  p->dts_ms = dts_ms;
  const uint8_t b0 = payload[0];
  if (type == PacketType::video) {
    // FLV spec E.4.3.1: FrameType(4) CodecID(4); for AVC/HEVC: AVCPacketType(8) CTS(SI24).
    const bool ex_header = (b0 & 0x80) != 0;  // enhanced RTMP (FourCC); not decoded yet
    if (ex_header) return nullptr;
    p->video_codec = static_cast<VideoCodec>(b0 & 0x0f);
    const uint8_t frame_type = b0 >> 4;
    if (p->video_codec == VideoCodec::h264 || p->video_codec == VideoCodec::hevc) {
      if (payload.size() < 5) return nullptr;
      const uint8_t pkt_type = payload[1];
      int32_t cts = (int32_t(payload[2]) << 16) | (int32_t(payload[3]) << 8) | int32_t(payload[4]);
      if (cts & 0x800000) cts -= 0x1000000;  // sign-extend SI24
      p->cts_ms = cts;
      p->sequence_header = pkt_type == 0;
      p->keyframe = frame_type == 1 && pkt_type == 1;
    } else {
      p->keyframe = frame_type == 1;
    }
  } else if (type == PacketType::audio) {
    // FLV spec E.4.2.1: SoundFormat(4) SoundRate(2) SoundSize(1) SoundType(1).
    p->audio_codec = static_cast<AudioCodec>(b0 >> 4);
    if (p->audio_codec == AudioCodec::aac) {
      if (payload.size() < 2) return nullptr;
      p->sequence_header = payload[1] == 0;
    }
  }
  p->payload = std::move(payload);
  return p;
}

}  // namespace castmesh::media
