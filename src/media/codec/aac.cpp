#include "media/codec/aac.hpp"

#include <array>

namespace castmesh::media::aac {
namespace {

constexpr std::array<uint32_t, 13> kRates{96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                          22050, 16000, 12000, 11025, 8000,  7350};

/// MSB-first bit reader; reading past the end sets failed() and yields zeros.
class BitReader {
 public:
  explicit BitReader(ByteView data) noexcept : data_(data) {}
  bool failed() const noexcept { return failed_; }
  uint32_t bits(int n) noexcept {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (pos_ >= data_.size() * 8) {
        failed_ = true;
        return 0;
      }
      v = (v << 1) | ((data_[pos_ / 8] >> (7 - pos_ % 8)) & 1u);
      ++pos_;
    }
    return v;
  }

 private:
  ByteView data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

uint8_t nearest_index(uint32_t rate) {
  uint8_t best = 4;
  uint32_t best_diff = UINT32_MAX;
  for (size_t i = 0; i < kRates.size(); ++i) {
    const uint32_t d = rate > kRates[i] ? rate - kRates[i] : kRates[i] - rate;
    if (d < best_diff) {
      best_diff = d;
      best = static_cast<uint8_t>(i);
    }
  }
  return best;
}

}  // namespace

uint32_t sample_rate_of(uint8_t index) noexcept { return index < kRates.size() ? kRates[index] : 0; }

Result<AudioSpecificConfig> parse_asc(ByteView asc) {
  BitReader br(asc);
  AudioSpecificConfig out;
  uint32_t aot = br.bits(5);
  if (aot == 31) aot = 32 + br.bits(6);  // audioObjectTypeExt (1.6.2.1, GetAudioObjectType)
  const uint32_t index = br.bits(4);
  uint32_t rate = 0;
  if (index == 15) {
    rate = br.bits(24);
  } else {
    rate = sample_rate_of(static_cast<uint8_t>(index));
  }
  const uint32_t channels = br.bits(4);
  if (br.failed()) return {Errc::malformed, "ASC: truncated"};
  if (aot == 0) return {Errc::malformed, "ASC: audio object type 0"};
  if (index == 13 || index == 14) return {Errc::malformed, "ASC: reserved samplingFrequencyIndex"};
  if (rate == 0) return {Errc::malformed, "ASC: sample rate 0"};
  if (channels > 7) return {Errc::malformed, "ASC: reserved channelConfiguration"};
  out.object_type = static_cast<uint8_t>(aot);
  out.sampling_index = static_cast<uint8_t>(index);
  out.sample_rate = rate;
  out.channels = static_cast<uint8_t>(channels);
  return out;
}

void write_adts_header(const AudioSpecificConfig& asc, size_t raw_len, uint8_t out[7]) {
  // ADTS profile_ObjectType is 2 bits: AOT 1..4 (Main, LC, SSR, LTP). HE-AAC (5, 29) is
  // signalled implicitly inside an LC stream, so anything else is written as LC.
  const uint8_t profile = (asc.object_type >= 1 && asc.object_type <= 4) ? asc.object_type - 1 : 1;
  const uint8_t index = asc.sampling_index < kRates.size() ? asc.sampling_index : nearest_index(asc.sample_rate);
  const uint32_t frame_len = static_cast<uint32_t>((raw_len + 7) & 0x1FFF);
  const uint8_t ch = asc.channels & 0x07;
  out[0] = 0xFF;                                 // syncword 12 bits
  out[1] = 0xF1;                                 // syncword, ID=0 (MPEG-4), layer=00, protection_absent=1
  out[2] = static_cast<uint8_t>((profile << 6) | (index << 2) | (ch >> 2));  // private_bit 0
  out[3] = static_cast<uint8_t>(((ch & 0x3) << 6) | (frame_len >> 11));      // orig/home/copyright bits 0
  out[4] = static_cast<uint8_t>((frame_len >> 3) & 0xFF);
  out[5] = static_cast<uint8_t>(((frame_len & 0x7) << 5) | 0x1F);  // buffer fullness 0x7FF (VBR)
  out[6] = 0xFC;                                                    // fullness low bits, 1 raw block
}

}  // namespace castmesh::media::aac
