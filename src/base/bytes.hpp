#pragma once
/// \file Bounds-checked big-endian byte reading and writing, used by every parser.

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace castmesh {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

/// Reads big-endian integers from a byte span. Every read checks bounds: on underflow it
/// returns false (or 0) and sets failed(); it never reads past the end.
class ByteReader {
 public:
  explicit ByteReader(ByteView data) noexcept : data_(data) {}

  size_t remaining() const noexcept { return data_.size() - pos_; }
  size_t position() const noexcept { return pos_; }
  bool failed() const noexcept { return failed_; }
  bool empty() const noexcept { return remaining() == 0; }
  ByteView rest() const noexcept { return data_.subspan(pos_); }

  bool skip(size_t n) noexcept {
    if (!need(n)) return false;
    pos_ += n;
    return true;
  }
  uint8_t u8() noexcept { return need(1) ? data_[pos_++] : 0; }
  uint16_t u16() noexcept { return static_cast<uint16_t>(be(2)); }
  uint32_t u24() noexcept { return static_cast<uint32_t>(be(3)); }
  uint32_t u32() noexcept { return static_cast<uint32_t>(be(4)); }
  uint64_t u64() noexcept { return be(8); }
  /// Little-endian 32-bit (RTMP message stream id, RTMP spec 5.3.1.2.1).
  uint32_t u32le() noexcept {
    if (!need(4)) return 0;
    uint32_t v = uint32_t(data_[pos_]) | uint32_t(data_[pos_ + 1]) << 8 | uint32_t(data_[pos_ + 2]) << 16 |
                 uint32_t(data_[pos_ + 3]) << 24;
    pos_ += 4;
    return v;
  }
  double f64() noexcept {
    uint64_t u = be(8);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  /// n bytes as a view into the underlying data (empty view and failed() on underflow).
  ByteView take(size_t n) noexcept {
    if (!need(n)) return {};
    ByteView v = data_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view take_string(size_t n) noexcept {
    ByteView v = take(n);
    return {reinterpret_cast<const char*>(v.data()), v.size()};
  }

 private:
  bool need(size_t n) noexcept {
    if (failed_ || remaining() < n) {
      failed_ = true;
      return false;
    }
    return true;
  }
  uint64_t be(size_t n) noexcept {
    if (!need(n)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + i];
    pos_ += n;
    return v;
  }

  ByteView data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

/// Appends big-endian integers to a Bytes buffer.
class ByteWriter {
 public:
  explicit ByteWriter(Bytes& out) noexcept : out_(out) {}

  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { be(v, 2); }
  void u24(uint32_t v) { be(v, 3); }
  void u32(uint32_t v) { be(v, 4); }
  void u64(uint64_t v) { be(v, 8); }
  void u32le(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void f64(double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    be(u, 8);
  }
  void bytes(ByteView v) { out_.insert(out_.end(), v.begin(), v.end()); }
  void bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  size_t size() const noexcept { return out_.size(); }

 private:
  void be(uint64_t v, size_t n) {
    for (size_t i = n; i-- > 0;) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  Bytes& out_;
};

/// Writes a big-endian value into dst[0..n).
inline void put_be(uint8_t* dst, uint64_t v, size_t n) noexcept {
  for (size_t i = n; i-- > 0;) {
    dst[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

}  // namespace castmesh
