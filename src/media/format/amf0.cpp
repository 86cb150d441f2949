#include "media/format/amf0.hpp"

#include <algorithm>

namespace castmesh::media::amf0 {

Value Value::number(double v) {
  Value r;
  r.type_ = Type::number;
  r.num_ = v;
  return r;
}
Value Value::boolean(bool v) {
  Value r;
  r.type_ = Type::boolean;
  r.bool_ = v;
  return r;
}
Value Value::string(std::string v) {
  Value r;
  r.type_ = Type::string;
  r.str_ = std::move(v);
  return r;
}
Value Value::null() {
  Value r;
  r.type_ = Type::null;
  return r;
}
Value Value::undefined() { return Value{}; }
Value Value::object(std::vector<Property> props) {
  Value r;
  r.type_ = Type::object;
  r.props_ = std::move(props);
  return r;
}
Value Value::ecma_array(std::vector<Property> props) {
  Value r;
  r.type_ = Type::ecma_array;
  r.props_ = std::move(props);
  return r;
}
Value Value::strict_array(std::vector<Value> items) {
  Value r;
  r.type_ = Type::strict_array;
  r.items_ = std::move(items);
  return r;
}
Value Value::date(double ms, int16_t tz_minutes) {
  Value r;
  r.type_ = Type::date;
  r.num_ = ms;
  r.tz_ = tz_minutes;
  return r;
}

const Value* Value::get(std::string_view key) const noexcept {
  for (const auto& [k, v] : props_)
    if (k == key) return &v;
  return nullptr;
}

std::string Value::get_string(std::string_view key, std::string_view fallback) const {
  const Value* v = get(key);
  if (v && v->is_string()) return v->as_string();
  return std::string(fallback);
}

double Value::get_number(std::string_view key, double fallback) const {
  const Value* v = get(key);
  if (v && v->is_number()) return v->as_number();
  return fallback;
}

bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::number: return num_ == o.num_;
    case Type::boolean: return bool_ == o.bool_;
    case Type::string: return str_ == o.str_;
    case Type::null:
    case Type::undefined: return true;
    case Type::object:
    case Type::ecma_array: return props_ == o.props_;
    case Type::strict_array: return items_ == o.items_;
    case Type::date: return num_ == o.num_ && tz_ == o.tz_;
  }
  return false;
}

namespace {

Error truncated(const char* what) { return Error{Errc::malformed, std::string("amf0: truncated ") + what}; }

// Reads `len`-prefixed UTF-8 (AMF0 spec 1.3 UTF-8 / UTF-8-long).
bool read_utf8(ByteReader& in, size_t len, std::string& out) {
  std::string_view s = in.take_string(len);
  if (in.failed()) return false;
  out.assign(s);
  return true;
}

// Reads object properties up to and including the object-end marker (AMF0 spec 2.5).
// `ecma_count` >= 0 for ECMA arrays: some encoders omit the end marker there, so input that
// ends exactly after `ecma_count` properties is accepted.
Status read_properties(ByteReader& in, int depth, std::vector<Property>& props, int64_t ecma_count) {
  for (;;) {
    if (ecma_count >= 0 && in.empty() && int64_t(props.size()) >= ecma_count) return ok_status();
    uint16_t klen = in.u16();
    if (in.failed()) return truncated("property name");
    if (klen == 0) {
      // Empty key: must be followed by the object-end marker.
      uint8_t m = in.u8();
      if (in.failed()) return truncated("object end");
      if (m != static_cast<uint8_t>(Marker::object_end))
        return Error{Errc::malformed, "amf0: empty property name without object end"};
      return ok_status();
    }
    std::string key;
    if (!read_utf8(in, klen, key)) return truncated("property name");
    auto v = decode(in, depth + 1);
    if (!v) return v.error();
    props.emplace_back(std::move(key), std::move(*v));
  }
}

}  // namespace

Result<Value> decode(ByteReader& in, int depth) {
  if (depth >= kMaxDepth) return Error{Errc::too_large, "amf0: nesting too deep"};
  uint8_t m = in.u8();
  if (in.failed()) return truncated("marker");
  switch (static_cast<Marker>(m)) {
    case Marker::number: {
      double d = in.f64();
      if (in.failed()) return truncated("number");
      return Value::number(d);
    }
    case Marker::boolean: {
      uint8_t b = in.u8();
      if (in.failed()) return truncated("boolean");
      return Value::boolean(b != 0);
    }
    case Marker::string: {
      uint16_t len = in.u16();
      std::string s;
      if (in.failed() || !read_utf8(in, len, s)) return truncated("string");
      return Value::string(std::move(s));
    }
    case Marker::long_string: {
      uint32_t len = in.u32();
      if (in.failed()) return truncated("long string");
      if (len > in.remaining()) return truncated("long string");
      std::string s;
      if (!read_utf8(in, len, s)) return truncated("long string");
      return Value::string(std::move(s));
    }
    case Marker::object: {
      std::vector<Property> props;
      auto st = read_properties(in, depth, props, -1);
      if (!st) return st.error();
      return Value::object(std::move(props));
    }
    case Marker::ecma_array: {
      uint32_t count = in.u32();
      if (in.failed()) return truncated("ecma array");
      std::vector<Property> props;
      // The count is advisory (AMF0 spec 2.10); reserve no more than the input could hold.
      props.reserve(std::min<size_t>(count, in.remaining() / 3));
      auto st = read_properties(in, depth, props, count);
      if (!st) return st.error();
      return Value::ecma_array(std::move(props));
    }
    case Marker::strict_array: {
      uint32_t count = in.u32();
      if (in.failed()) return truncated("strict array");
      if (count > in.remaining()) return truncated("strict array");  // every item is >= 1 byte
      std::vector<Value> items;
      items.reserve(count);
      for (uint32_t i = 0; i < count; ++i) {
        auto v = decode(in, depth + 1);
        if (!v) return v.error();
        items.push_back(std::move(*v));
      }
      return Value::strict_array(std::move(items));
    }
    case Marker::date: {
      double ms = in.f64();
      uint16_t tz = in.u16();
      if (in.failed()) return truncated("date");
      return Value::date(ms, static_cast<int16_t>(tz));
    }
    case Marker::null: return Value::null();
    case Marker::undefined:
    case Marker::unsupported: return Value::undefined();
    case Marker::object_end: return Error{Errc::malformed, "amf0: unexpected object end marker"};
    case Marker::reference:
    case Marker::movieclip:
    case Marker::recordset:
    case Marker::xml_document:
    case Marker::typed_object:
    case Marker::avmplus:
      return Error{Errc::unsupported, "amf0: unsupported type marker " + std::to_string(m)};
  }
  return Error{Errc::malformed, "amf0: unknown type marker " + std::to_string(m)};
}

Result<std::vector<Value>> decode_all(ByteView data) {
  ByteReader in(data);
  std::vector<Value> out;
  while (!in.empty()) {
    auto v = decode(in);
    if (!v) return v.error();
    out.push_back(std::move(*v));
  }
  return out;
}

namespace {

void write_key(ByteWriter& w, const std::string& k) {
  size_t n = std::min<size_t>(k.size(), 0xFFFF);
  w.u16(static_cast<uint16_t>(n));
  w.bytes(std::string_view(k.data(), n));
}

void write_props(ByteWriter& w, Bytes& out, const std::vector<Property>& props) {
  for (const auto& [k, v] : props) {
    if (k.empty()) continue;  // an empty key would read as the object end
    write_key(w, k);
    encode(v, out);
  }
  w.u16(0);
  w.u8(static_cast<uint8_t>(Marker::object_end));
}

}  // namespace

void encode(const Value& v, Bytes& out) {
  ByteWriter w(out);
  switch (v.type()) {
    case Value::Type::number:
      w.u8(static_cast<uint8_t>(Marker::number));
      w.f64(v.as_number());
      break;
    case Value::Type::boolean:
      w.u8(static_cast<uint8_t>(Marker::boolean));
      w.u8(v.as_bool() ? 1 : 0);
      break;
    case Value::Type::string: {
      const std::string& s = v.as_string();
      if (s.size() > 0xFFFF) {
        w.u8(static_cast<uint8_t>(Marker::long_string));
        w.u32(static_cast<uint32_t>(s.size()));
      } else {
        w.u8(static_cast<uint8_t>(Marker::string));
        w.u16(static_cast<uint16_t>(s.size()));
      }
      w.bytes(s);
      break;
    }
    case Value::Type::object:
      w.u8(static_cast<uint8_t>(Marker::object));
      write_props(w, out, v.properties());
      break;
    case Value::Type::ecma_array: {
      w.u8(static_cast<uint8_t>(Marker::ecma_array));
      uint32_t n = 0;
      for (const auto& p : v.properties()) n += p.first.empty() ? 0 : 1;
      w.u32(n);
      write_props(w, out, v.properties());
      break;
    }
    case Value::Type::strict_array:
      w.u8(static_cast<uint8_t>(Marker::strict_array));
      w.u32(static_cast<uint32_t>(v.items().size()));
      for (const auto& item : v.items()) encode(item, out);
      break;
    case Value::Type::date:
      w.u8(static_cast<uint8_t>(Marker::date));
      w.f64(v.as_number());
      w.u16(static_cast<uint16_t>(v.tz_minutes()));
      break;
    case Value::Type::null: w.u8(static_cast<uint8_t>(Marker::null)); break;
    case Value::Type::undefined: w.u8(static_cast<uint8_t>(Marker::undefined)); break;
  }
}

void encode_all(const std::vector<Value>& values, Bytes& out) {
  for (const auto& v : values) encode(v, out);
}

}  // namespace castmesh::media::amf0
