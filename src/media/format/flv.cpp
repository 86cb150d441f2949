#include "media/format/flv.hpp"

#include <algorithm>

namespace castmesh::media::flv {
namespace {
constexpr size_t kHeaderBytes = 9;
constexpr size_t kTagHeaderBytes = 11;
constexpr size_t kPrevSizeBytes = 4;
// A DataOffset beyond this is not a real FLV header; it bounds what we buffer before tags.
constexpr uint32_t kMaxDataOffset = 1024;
}  // namespace

std::array<uint8_t, 13> file_header(bool has_audio, bool has_video) {
  const uint8_t flags = static_cast<uint8_t>((has_audio ? 0x04 : 0) | (has_video ? 0x01 : 0));
  return {'F', 'L', 'V', 0x01, flags, 0, 0, 0, 9, 0, 0, 0, 0};
}

std::array<uint8_t, 11> tag_header(PacketType type, uint32_t data_size, uint32_t timestamp_ms) {
  std::array<uint8_t, 11> h{};
  h[0] = static_cast<uint8_t>(type);
  put_be(&h[1], data_size & 0xFFFFFF, 3);
  put_be(&h[4], timestamp_ms & 0xFFFFFF, 3);
  h[7] = static_cast<uint8_t>(timestamp_ms >> 24);
  // h[8..10]: StreamID, always 0.
  return h;
}

std::array<uint8_t, 4> prev_tag_size(uint32_t data_size) {
  std::array<uint8_t, 4> p{};
  put_be(p.data(), uint64_t{data_size} + kTagHeaderBytes, 4);
  return p;
}

Demuxer::Demuxer(uint32_t max_tag_bytes) : max_tag_bytes_(max_tag_bytes) {}

Status Demuxer::fail(Errc code, std::string detail) {
  state_ = State::failed;
  error_ = Error{code, std::move(detail)};
  buf_.clear();
  buf_.shrink_to_fit();
  return error_;
}

Status Demuxer::feed(ByteView data, std::vector<Tag>& out) {
  if (state_ == State::failed) return error_;
  buf_.insert(buf_.end(), data.begin(), data.end());
  size_t pos = 0;
  for (;;) {
    ByteView avail = ByteView(buf_).subspan(pos);
    if (state_ == State::header) {
      if (avail.size() < kHeaderBytes) break;
      ByteReader r(avail);
      if (r.take_string(3) != "FLV") return fail(Errc::malformed, "FLV: bad signature");
      if (r.u8() != 1) return fail(Errc::malformed, "FLV: unsupported version");
      const uint8_t flags = r.u8();
      const uint32_t offset = r.u32();
      if (offset < kHeaderBytes || offset > kMaxDataOffset) return fail(Errc::malformed, "FLV: bad DataOffset");
      // DataOffset bytes of header, then PreviousTagSize0.
      if (avail.size() < offset + kPrevSizeBytes) break;
      has_audio_ = (flags & 0x04) != 0;
      has_video_ = (flags & 0x01) != 0;
      pos += offset + kPrevSizeBytes;
      state_ = State::tags;
      continue;
    }
    // State::tags: TagHeader(11) + body(DataSize) + PreviousTagSize(4).
    if (avail.size() < kTagHeaderBytes) break;
    ByteReader r(avail);
    const uint8_t type_byte = r.u8();
    const uint32_t size = r.u24();
    const uint32_t ts_low = r.u24();
    const uint8_t ts_ext = r.u8();
    r.skip(3);  // StreamID
    const uint8_t type = type_byte & 0x1F;  // upper bits: reserved + Filter
    if (type != uint8_t(PacketType::audio) && type != uint8_t(PacketType::video) &&
        type != uint8_t(PacketType::data))
      return fail(Errc::malformed, "FLV: unknown tag type");
    if (size > max_tag_bytes_) return fail(Errc::too_large, "FLV: tag larger than the limit");
    const size_t total = kTagHeaderBytes + size_t{size} + kPrevSizeBytes;
    if (avail.size() < total) break;
    ByteView body = r.take(size);
    const uint32_t prev = r.u32();
    if (prev != 0 && prev != size + kTagHeaderBytes)
      return fail(Errc::malformed, "FLV: PreviousTagSize does not match the tag");
    out.push_back(Tag{static_cast<PacketType>(type), (uint32_t{ts_ext} << 24) | ts_low,
                      Bytes(body.begin(), body.end())});
    pos += total;
  }
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  return ok_status();
}

}  // namespace castmesh::media::flv
