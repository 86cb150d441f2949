#include "media/codec/h264.hpp"

#include <array>

namespace castmesh::media::h264 {
namespace {

/// MSB-first bit reader over an RBSP with Exp-Golomb codes (ITU-T H.264 7.2, 9.1).
/// Reading past the end sets failed() and yields zeros.
class BitReader {
 public:
  explicit BitReader(ByteView data) noexcept : data_(data) {}

  bool failed() const noexcept { return failed_; }

  uint32_t bit() noexcept {
    if (pos_ >= data_.size() * 8) {
      failed_ = true;
      return 0;
    }
    const uint32_t b = (data_[pos_ / 8] >> (7 - pos_ % 8)) & 1u;
    ++pos_;
    return b;
  }
  uint32_t bits(int n) noexcept {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 1) | bit();
    return v;
  }
  /// ue(v): unsigned Exp-Golomb (9.1). More than 31 leading zeros is invalid.
  uint32_t ue() noexcept {
    int zeros = 0;
    while (bit() == 0) {
      if (failed_ || ++zeros > 31) {
        failed_ = true;
        return 0;
      }
    }
    if (zeros == 0) return 0;
    return static_cast<uint32_t>((uint64_t{1} << zeros) - 1 + bits(zeros));
  }
  /// se(v): signed Exp-Golomb (9.1.1).
  int32_t se() noexcept {
    const uint32_t k = ue();
    const int64_t mag = (int64_t{k} + 1) / 2;
    return static_cast<int32_t>((k & 1) ? mag : -mag);
  }

 private:
  ByteView data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

/// scaling_list() syntax (7.3.2.1.1.1); only consumed, values are not needed.
bool skip_scaling_list(BitReader& br, int size) {
  int last = 8, next = 8;
  for (int j = 0; j < size; ++j) {
    if (next != 0) {
      const int32_t delta = br.se();
      if (br.failed() || delta < -128 || delta > 127) return false;
      next = (last + delta + 256) % 256;
    }
    last = next == 0 ? last : next;
  }
  return true;
}

bool is_high_profile(uint8_t p) {
  switch (p) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86:
    case 118: case 128: case 138: case 139: case 134: case 135:
      return true;
    default:
      return false;
  }
}

void put_start_code(Bytes& out) {
  static constexpr std::array<uint8_t, 4> kStart{0, 0, 0, 1};
  out.insert(out.end(), kStart.begin(), kStart.end());
}

}  // namespace

Result<AvcConfig> parse_decoder_config(ByteView record) {
  ByteReader r(record);
  AvcConfig cfg;
  const uint8_t version = r.u8();
  cfg.profile = r.u8();
  cfg.compatibility = r.u8();
  cfg.level = r.u8();
  const uint8_t len_byte = r.u8();
  const uint8_t num_sps_byte = r.u8();
  if (r.failed()) return {Errc::malformed, "avcC: truncated header"};
  if (version != 1) return {Errc::malformed, "avcC: configurationVersion != 1"};
  cfg.nal_length_size = static_cast<uint8_t>((len_byte & 0x03) + 1);
  if (cfg.nal_length_size == 3) return {Errc::malformed, "avcC: lengthSizeMinusOne == 2"};
  const int num_sps = num_sps_byte & 0x1f;
  for (int i = 0; i < num_sps; ++i) {
    const uint16_t n = r.u16();
    ByteView nal = r.take(n);
    if (r.failed()) return {Errc::malformed, "avcC: truncated SPS"};
    if (n == 0 || nal_type(nal[0]) != uint8_t(NalType::sps)) return {Errc::malformed, "avcC: bad SPS NAL"};
    cfg.sps.emplace_back(nal.begin(), nal.end());
  }
  const uint8_t num_pps = r.u8();
  if (r.failed()) return {Errc::malformed, "avcC: missing PPS count"};
  for (int i = 0; i < num_pps; ++i) {
    const uint16_t n = r.u16();
    ByteView nal = r.take(n);
    if (r.failed()) return {Errc::malformed, "avcC: truncated PPS"};
    if (n == 0 || nal_type(nal[0]) != uint8_t(NalType::pps)) return {Errc::malformed, "avcC: bad PPS NAL"};
    cfg.pps.emplace_back(nal.begin(), nal.end());
  }
  if (cfg.sps.empty()) return {Errc::malformed, "avcC: no SPS"};
  // The high-profile extension (chroma_format, bit depths, SPS ext) that may follow is
  // redundant with the SPS itself and is ignored.
  return cfg;
}

Bytes remove_emulation_prevention(ByteView nal) {
  Bytes out;
  out.reserve(nal.size());
  int zeros = 0;
  for (uint8_t b : nal) {
    if (zeros >= 2 && b == 0x03) {
      zeros = 0;
      continue;
    }
    zeros = b == 0 ? zeros + 1 : 0;
    out.push_back(b);
  }
  return out;
}

Result<SpsInfo> parse_sps(ByteView sps_nal) {
  if (sps_nal.size() < 4) return {Errc::malformed, "SPS: too short"};
  if (nal_type(sps_nal[0]) != uint8_t(NalType::sps) || (sps_nal[0] & 0x80))
    return {Errc::malformed, "SPS: not an SPS NAL unit"};
  const Bytes rbsp = remove_emulation_prevention(sps_nal.subspan(1));
  BitReader br(rbsp);
  SpsInfo info;
  info.profile_idc = static_cast<uint8_t>(br.bits(8));
  br.bits(8);  // constraint_set flags + reserved_zero_2bits
  info.level_idc = static_cast<uint8_t>(br.bits(8));
  if (br.ue() > 31) return {Errc::malformed, "SPS: seq_parameter_set_id > 31"};

  uint32_t chroma_format_idc = 1;  // 4:2:0 when absent (7.4.2.1.1)
  bool separate_colour_plane = false;
  if (is_high_profile(info.profile_idc)) {
    chroma_format_idc = br.ue();
    if (chroma_format_idc > 3) return {Errc::malformed, "SPS: chroma_format_idc > 3"};
    if (chroma_format_idc == 3) separate_colour_plane = br.bit() != 0;
    if (br.ue() > 6) return {Errc::malformed, "SPS: bit_depth_luma_minus8 > 6"};
    if (br.ue() > 6) return {Errc::malformed, "SPS: bit_depth_chroma_minus8 > 6"};
    br.bit();  // qpprime_y_zero_transform_bypass_flag
    if (br.bit()) {  // seq_scaling_matrix_present_flag
      const int lists = chroma_format_idc != 3 ? 8 : 12;
      for (int i = 0; i < lists; ++i) {
        if (br.bit() && !skip_scaling_list(br, i < 6 ? 16 : 64))
          return {Errc::malformed, "SPS: bad scaling list"};
      }
    }
  }
  if (br.ue() > 12) return {Errc::malformed, "SPS: log2_max_frame_num_minus4 > 12"};
  const uint32_t poc_type = br.ue();
  if (poc_type == 0) {
    if (br.ue() > 12) return {Errc::malformed, "SPS: log2_max_pic_order_cnt_lsb_minus4 > 12"};
  } else if (poc_type == 1) {
    br.bit();  // delta_pic_order_always_zero_flag
    br.se();   // offset_for_non_ref_pic
    br.se();   // offset_for_top_to_bottom_field
    const uint32_t cycle = br.ue();
    if (cycle > 255) return {Errc::malformed, "SPS: num_ref_frames_in_pic_order_cnt_cycle > 255"};
    for (uint32_t i = 0; i < cycle && !br.failed(); ++i) br.se();
  } else if (poc_type != 2) {
    return {Errc::malformed, "SPS: pic_order_cnt_type > 2"};
  }
  br.ue();   // max_num_ref_frames
  br.bit();  // gaps_in_frame_num_value_allowed_flag
  const uint32_t width_mbs = br.ue() + 1;
  const uint32_t height_map_units = br.ue() + 1;
  const uint32_t frame_mbs_only = br.bit();
  if (!frame_mbs_only) br.bit();  // mb_adaptive_frame_field_flag
  br.bit();                       // direct_8x8_inference_flag
  uint32_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
  if (br.bit()) {  // frame_cropping_flag
    crop_l = br.ue();
    crop_r = br.ue();
    crop_t = br.ue();
    crop_b = br.ue();
  }
  if (br.failed()) return {Errc::malformed, "SPS: truncated"};
  // Level 6.2 allows at most 139264 macroblocks per frame; anything far larger is garbage.
  if (width_mbs > 1024 || height_map_units > 1024) return {Errc::unsupported, "SPS: picture too large"};

  // Frame cropping units (7.4.2.1.1, Table 6-1).
  const uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
  uint32_t sub_width_c = 1, sub_height_c = 1;
  if (chroma_array_type == 1) sub_width_c = sub_height_c = 2;
  if (chroma_array_type == 2) sub_width_c = 2;
  const uint32_t crop_unit_x = chroma_array_type == 0 ? 1 : sub_width_c;
  const uint32_t crop_unit_y = (chroma_array_type == 0 ? 1 : sub_height_c) * (2 - frame_mbs_only);
  const uint64_t full_w = uint64_t{width_mbs} * 16;
  const uint64_t full_h = uint64_t{2 - frame_mbs_only} * height_map_units * 16;
  const uint64_t cut_w = uint64_t{crop_unit_x} * (uint64_t{crop_l} + crop_r);
  const uint64_t cut_h = uint64_t{crop_unit_y} * (uint64_t{crop_t} + crop_b);
  if (cut_w >= full_w || cut_h >= full_h) return {Errc::malformed, "SPS: cropping exceeds picture"};
  info.width = static_cast<uint32_t>(full_w - cut_w);
  info.height = static_cast<uint32_t>(full_h - cut_h);

  // VUI (E.1.1): only timing is needed; a VUI truncated after the timing info is tolerated.
  if (br.bit()) {  // vui_parameters_present_flag
    if (br.bit()) {  // aspect_ratio_info_present_flag
      if (br.bits(8) == 255) br.bits(32);  // Extended_SAR: sar_width, sar_height
    }
    if (br.bit()) br.bit();  // overscan_info_present_flag -> overscan_appropriate_flag
    if (br.bit()) {          // video_signal_type_present_flag
      br.bits(4);            // video_format, video_full_range_flag
      if (br.bit()) br.bits(24);  // colour_primaries, transfer_characteristics, matrix_coefficients
    }
    if (br.bit()) {  // chroma_loc_info_present_flag
      br.ue();
      br.ue();
    }
    if (br.bit()) {  // timing_info_present_flag
      const uint32_t num_units_in_tick = br.bits(32);
      const uint32_t time_scale = br.bits(32);
      if (!br.failed() && num_units_in_tick != 0 && time_scale != 0)
        info.fps = double(time_scale) / (2.0 * double(num_units_in_tick));
    }
    if (br.failed()) info.fps = 0;
  }
  return info;
}

Status avcc_to_annexb(ByteView avcc, const AvcConfig& cfg, bool keyframe, Bytes& out) {
  const size_t ls = cfg.nal_length_size;
  if (ls == 0 || ls > 4) return {Errc::malformed, "AVCC: bad NAL length size"};
  const size_t original_size = out.size();
  // Access unit delimiter, primary_pic_type 7 (any slice type) + stop bit (7.3.2.4).
  put_start_code(out);
  out.push_back(uint8_t(NalType::aud));
  out.push_back(0xF0);
  const bool insert_params = keyframe && !cfg.sps.empty();
  if (insert_params) {
    for (const Bytes& s : cfg.sps) {
      put_start_code(out);
      out.insert(out.end(), s.begin(), s.end());
    }
    for (const Bytes& p : cfg.pps) {
      put_start_code(out);
      out.insert(out.end(), p.begin(), p.end());
    }
  }
  ByteReader r(avcc);
  while (!r.empty()) {
    uint32_t n = 0;
    for (size_t i = 0; i < ls; ++i) n = (n << 8) | r.u8();
    ByteView nal = r.take(n);
    if (r.failed()) {
      out.resize(original_size);
      return {Errc::malformed, "AVCC: NAL length runs past the access unit"};
    }
    if (nal.empty()) continue;
    const uint8_t t = nal_type(nal[0]);
    if (t == uint8_t(NalType::aud)) continue;
    if (insert_params && (t == uint8_t(NalType::sps) || t == uint8_t(NalType::pps))) continue;
    put_start_code(out);
    out.insert(out.end(), nal.begin(), nal.end());
  }
  return ok_status();
}

}  // namespace castmesh::media::h264
