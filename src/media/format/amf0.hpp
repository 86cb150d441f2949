#pragma once
/// \file AMF0 values, decoder and encoder (Action Message Format AMF0 specification, section 2).
///
/// Used by RTMP command messages (type 20), data messages (type 18, e.g. onMetaData) and FLV
/// script tags. Decoding never throws and never reads past its input; nesting is limited to
/// kMaxDepth levels so hostile input cannot exhaust the stack.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::media::amf0 {

/// AMF0 type markers (AMF0 spec 2.1).
enum class Marker : uint8_t {
  number = 0x00,
  boolean = 0x01,
  string = 0x02,
  object = 0x03,
  movieclip = 0x04,  ///< reserved, not supported
  null = 0x05,
  undefined = 0x06,
  reference = 0x07,  ///< not supported (Errc::unsupported)
  ecma_array = 0x08,
  object_end = 0x09,
  strict_array = 0x0A,
  date = 0x0B,
  long_string = 0x0C,
  unsupported = 0x0D,  ///< decoded as undefined
  recordset = 0x0E,    ///< reserved, not supported
  xml_document = 0x0F, ///< not supported
  typed_object = 0x10, ///< not supported
  avmplus = 0x11,      ///< switch to AMF3, not supported
};

/// Nesting levels accepted by decode(): a top-level value is level 1.
inline constexpr int kMaxDepth = 32;

class Value;
/// One named member of an object or ECMA array, in wire order.
using Property = std::pair<std::string, Value>;

/// A decoded AMF0 value. A string decoded from a long string (0x0C) is a plain string; the
/// encoder picks the long form by itself for strings longer than 65535 bytes.
class Value {
 public:
  enum class Type : uint8_t { number, boolean, string, object, null, undefined, ecma_array, strict_array, date };

  /// Default: undefined.
  Value() = default;

  static Value number(double v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value null();
  static Value undefined();
  static Value object(std::vector<Property> props);
  static Value ecma_array(std::vector<Property> props);
  static Value strict_array(std::vector<Value> items);
  /// Date (AMF0 spec 2.13): milliseconds since the Unix epoch (UTC) and a time-zone field
  /// (minutes; the spec says senders should write 0 and readers ignore it).
  static Value date(double ms, int16_t tz_minutes = 0);

  Type type() const noexcept { return type_; }
  bool is_number() const noexcept { return type_ == Type::number; }
  bool is_bool() const noexcept { return type_ == Type::boolean; }
  bool is_string() const noexcept { return type_ == Type::string; }
  bool is_null() const noexcept { return type_ == Type::null; }
  bool is_undefined() const noexcept { return type_ == Type::undefined; }
  /// Object or ECMA array (both hold named properties).
  bool is_object_like() const noexcept { return type_ == Type::object || type_ == Type::ecma_array; }

  /// The number (or a date's milliseconds); 0 for other types.
  double as_number() const noexcept { return num_; }
  /// The boolean; false for other types.
  bool as_bool() const noexcept { return bool_; }
  /// The string; empty for other types.
  const std::string& as_string() const noexcept { return str_; }
  /// Date time-zone field in minutes (0 for other types).
  int16_t tz_minutes() const noexcept { return tz_; }
  /// Properties of an object or ECMA array (empty for other types), in wire order.
  const std::vector<Property>& properties() const noexcept { return props_; }
  std::vector<Property>& properties() noexcept { return props_; }
  /// Items of a strict array (empty for other types).
  const std::vector<Value>& items() const noexcept { return items_; }

  /// First property named `key` of an object/ECMA array, or nullptr.
  const Value* get(std::string_view key) const noexcept;
  /// get(key)->as_string() when it is a string, else `fallback`.
  std::string get_string(std::string_view key, std::string_view fallback = {}) const;
  /// get(key)->as_number() when it is a number, else `fallback`.
  double get_number(std::string_view key, double fallback = 0) const;

  bool operator==(const Value& o) const;

 private:
  Type type_ = Type::undefined;
  bool bool_ = false;
  int16_t tz_ = 0;
  double num_ = 0;
  std::string str_;
  std::vector<Property> props_;
  std::vector<Value> items_;
};

/// Decodes one value at the reader's position and advances past it.
/// Errors: Errc::malformed (truncated input, object property without its end marker,
/// unknown marker), Errc::unsupported (reference, typed object, AMF3 switch, XML, movieclip,
/// recordset), Errc::too_large (nesting deeper than kMaxDepth).
Result<Value> decode(ByteReader& in, int depth = 0);

/// Decodes a sequence of values filling the whole of `data` (an RTMP command/data message
/// body). Errors as decode().
Result<std::vector<Value>> decode_all(ByteView data);

/// Appends the AMF0 encoding of `v` to `out`. Strings longer than 65535 bytes are written as
/// long strings (0x0C); object keys longer than 65535 bytes are truncated.
void encode(const Value& v, Bytes& out);

/// Appends the encodings of all `values` in order.
void encode_all(const std::vector<Value>& values, Bytes& out);

}  // namespace castmesh::media::amf0
