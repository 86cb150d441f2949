#include "media/format/amf0.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace castmesh::media::amf0 {
namespace {

Bytes enc(const Value& v) {
  Bytes b;
  encode(v, b);
  return b;
}

Value round_trip(const Value& v) {
  Bytes b = enc(v);
  ByteReader r(b);
  auto d = decode(r);
  EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message());
  EXPECT_TRUE(r.empty());
  return d.ok() ? *d : Value::undefined();
}

TEST(Amf0, NumberWireFormat) {
  // AMF0 spec 2.2: marker 0x00 then IEEE-754 double, big-endian. 1.0 = 3FF0000000000000.
  Bytes b = enc(Value::number(1.0));
  Bytes want = {0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(b, want);
  EXPECT_EQ(round_trip(Value::number(-12345.5)).as_number(), -12345.5);
}

TEST(Amf0, BooleanNullUndefined) {
  EXPECT_EQ(enc(Value::boolean(true)), (Bytes{0x01, 0x01}));
  EXPECT_EQ(enc(Value::null()), (Bytes{0x05}));
  EXPECT_EQ(enc(Value::undefined()), (Bytes{0x06}));
  EXPECT_TRUE(round_trip(Value::boolean(true)).as_bool());
  EXPECT_FALSE(round_trip(Value::boolean(false)).as_bool());
  EXPECT_TRUE(round_trip(Value::null()).is_null());
  EXPECT_TRUE(round_trip(Value::undefined()).is_undefined());
}

TEST(Amf0, StringWireFormat) {
  Bytes b = enc(Value::string("connect"));
  Bytes want = {0x02, 0x00, 0x07, 'c', 'o', 'n', 'n', 'e', 'c', 't'};
  EXPECT_EQ(b, want);
  EXPECT_EQ(round_trip(Value::string("")).as_string(), "");
}

TEST(Amf0, LongStringChosenAbove65535AndRoundTrips) {
  std::string big(70000, 'x');
  big[69999] = 'y';
  Bytes b = enc(Value::string(big));
  ASSERT_EQ(b[0], 0x0C);
  EXPECT_EQ(b.size(), 1u + 4 + 70000);
  EXPECT_EQ(b[1], 0x00);
  EXPECT_EQ(b[2], 0x01);
  EXPECT_EQ(b[3], 0x11);
  EXPECT_EQ(b[4], 0x70);  // 70000 = 0x00011170
  Value v = round_trip(Value::string(big));
  EXPECT_EQ(v.as_string(), big);
  // Exactly 65535 stays a short string.
  EXPECT_EQ(enc(Value::string(std::string(65535, 'a')))[0], 0x02);
}

TEST(Amf0, DecodesLongStringMarkerForShortText) {
  Bytes b = {0x0C, 0, 0, 0, 3, 'a', 'b', 'c'};
  ByteReader r(b);
  auto v = decode(r);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is_string());
  EXPECT_EQ(v->as_string(), "abc");
}

TEST(Amf0, ObjectWireFormatAndLookup) {
  Value o = Value::object({{"app", Value::string("live")}, {"fpad", Value::boolean(false)}});
  Bytes b = enc(o);
  Bytes want = {0x03, 0x00, 0x03, 'a', 'p', 'p', 0x02, 0x00, 0x04, 'l', 'i', 'v', 'e',
                0x00, 0x04, 'f', 'p', 'a', 'd', 0x01, 0x00, 0x00, 0x00, 0x09};
  EXPECT_EQ(b, want);
  Value d = round_trip(o);
  EXPECT_EQ(d.type(), Value::Type::object);
  ASSERT_EQ(d.properties().size(), 2u);
  EXPECT_EQ(d.get_string("app"), "live");
  ASSERT_NE(d.get("fpad"), nullptr);
  EXPECT_FALSE(d.get("fpad")->as_bool());
  EXPECT_EQ(d.get("missing"), nullptr);
  EXPECT_EQ(d.get_number("app", 7), 7);  // wrong type -> fallback
  EXPECT_EQ(d, o);
}

TEST(Amf0, EcmaArrayRoundTripAndCount) {
  Value a = Value::ecma_array({{"duration", Value::number(0)}, {"width", Value::number(1280)},
                               {"encoder", Value::string("Lavf")}});
  Bytes b = enc(a);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(b[4], 3);  // associative count
  EXPECT_EQ(b[b.size() - 1], 0x09);
  Value d = round_trip(a);
  EXPECT_EQ(d.type(), Value::Type::ecma_array);
  EXPECT_EQ(d.get_number("width"), 1280);
  EXPECT_EQ(d, a);
}

TEST(Amf0, EcmaArrayWithoutEndMarkerAccepted) {
  // Some encoders end an ECMA array at the end of the message without 00 00 09.
  Bytes b = {0x08, 0, 0, 0, 1, 0x00, 0x01, 'w', 0x00, 0x40, 0x59, 0, 0, 0, 0, 0, 0};
  auto v = decode_all(b);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 1u);
  EXPECT_EQ((*v)[0].get_number("w"), 100);
}

TEST(Amf0, ObjectWithoutEndMarkerIsMalformed) {
  Bytes b = {0x03, 0x00, 0x01, 'w', 0x05};
  auto v = decode_all(b);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.code(), Errc::malformed);
}

TEST(Amf0, EmptyKeyNotFollowedByEndIsMalformed) {
  Bytes b = {0x03, 0x00, 0x00, 0x05};
  EXPECT_EQ(decode_all(b).code(), Errc::malformed);
}

TEST(Amf0, StrictArrayAndDate) {
  Value a = Value::strict_array({Value::number(1), Value::string("two"), Value::null(),
                                 Value::strict_array({Value::boolean(true)})});
  Value d = round_trip(a);
  ASSERT_EQ(d.items().size(), 4u);
  EXPECT_EQ(d.items()[1].as_string(), "two");
  EXPECT_TRUE(d.items()[3].items()[0].as_bool());
  EXPECT_EQ(d, a);

  Value date = Value::date(1700000000123.0, -60);
  Bytes b = enc(date);
  ASSERT_EQ(b.size(), 11u);
  EXPECT_EQ(b[0], 0x0B);
  Value dd = round_trip(date);
  EXPECT_EQ(dd.type(), Value::Type::date);
  EXPECT_EQ(dd.as_number(), 1700000000123.0);
  EXPECT_EQ(dd.tz_minutes(), -60);
}

TEST(Amf0, ConnectCommandDecodeAll) {
  std::vector<Value> cmd = {
      Value::string("connect"), Value::number(1),
      Value::object({{"app", Value::string("live")},
                     {"tcUrl", Value::string("rtmp://127.0.0.1:1935/live")},
                     {"capabilities", Value::number(15)},
                     {"nested", Value::ecma_array({{"k", Value::date(0)}})}})};
  Bytes b;
  encode_all(cmd, b);
  auto d = decode_all(b);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 3u);
  EXPECT_EQ((*d)[0].as_string(), "connect");
  EXPECT_EQ((*d)[1].as_number(), 1);
  EXPECT_EQ((*d)[2].get_string("tcUrl"), "rtmp://127.0.0.1:1935/live");
  EXPECT_EQ(*d, cmd);
}

TEST(Amf0, EveryTruncationOfAValidMessageFailsCleanly) {
  std::vector<Value> cmd = {
      Value::string("onMetaData"),
      Value::ecma_array({{"width", Value::number(1280)}, {"title", Value::string("t")},
                         {"list", Value::strict_array({Value::number(1), Value::boolean(true)})},
                         {"when", Value::date(5)}, {"obj", Value::object({{"a", Value::null()}})}}),
      Value::string(std::string(70000, 'z'))};
  Bytes b;
  encode_all(cmd, b);
  ASSERT_TRUE(decode_all(b).ok());
  // Every strict prefix that cuts a value in the middle is an error; it must never crash or
  // read past the end (run under ASan to check the latter).
  size_t errors = 0;
  for (size_t n = 0; n < b.size(); ++n) {
    ByteView prefix(b.data(), n);
    auto d = decode_all(prefix);
    if (!d.ok()) {
      ++errors;
      EXPECT_TRUE(d.code() == Errc::malformed) << n;
    }
  }
  // Only the prefixes ending exactly at a value boundary decode (0, after "onMetaData",
  // and the ECMA array's end-marker-less cut points are the only valid ones).
  EXPECT_GT(errors, b.size() - 10);
}

TEST(Amf0, DepthLimit) {
  // 31 nested objects inside a top-level one: 32 levels, accepted.
  auto nested = [](int levels) {
    Value v = Value::null();
    for (int i = 0; i < levels; ++i) v = Value::object({{"o", v}});
    return v;
  };
  {
    Bytes b = enc(nested(kMaxDepth - 1));  // + the null leaf = kMaxDepth levels
    ByteReader r(b);
    EXPECT_TRUE(decode(r).ok());
  }
  {
    Bytes b = enc(nested(kMaxDepth));
    ByteReader r(b);
    auto d = decode(r);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.code(), Errc::too_large);
  }
  // A hostile stream of strict-array headers nested 100000 deep must not overflow the stack.
  Bytes deep;
  for (int i = 0; i < 100000; ++i) {
    deep.push_back(0x0A);
    deep.insert(deep.end(), {0, 0, 0, 1});
  }
  deep.push_back(0x05);
  EXPECT_EQ(decode_all(deep).code(), Errc::too_large);
}

TEST(Amf0, HugeCountsDoNotAllocate) {
  Bytes strict = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05};
  EXPECT_EQ(decode_all(strict).code(), Errc::malformed);
  Bytes ecma = {0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x09};
  auto d = decode_all(ecma);
  ASSERT_TRUE(d.ok());  // the count is advisory
  EXPECT_TRUE((*d)[0].properties().empty());
  Bytes longstr = {0x0C, 0xFF, 0xFF, 0xFF, 0xF0, 'a'};
  EXPECT_EQ(decode_all(longstr).code(), Errc::malformed);
}

TEST(Amf0, UnsupportedAndUnknownMarkers) {
  EXPECT_EQ(decode_all(Bytes{0x07, 0x00, 0x01}).code(), Errc::unsupported);  // reference
  EXPECT_EQ(decode_all(Bytes{0x10, 0x00}).code(), Errc::unsupported);        // typed object
  EXPECT_EQ(decode_all(Bytes{0x11, 0x00}).code(), Errc::unsupported);        // AMF3 switch
  EXPECT_EQ(decode_all(Bytes{0x09}).code(), Errc::malformed);                // stray end
  EXPECT_EQ(decode_all(Bytes{0x42}).code(), Errc::malformed);                // unknown
  auto u = decode_all(Bytes{0x0D});
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE((*u)[0].is_undefined());
}

TEST(Amf0, SpecialNumbers) {
  EXPECT_TRUE(std::isnan(round_trip(Value::number(NAN)).as_number()));
  EXPECT_TRUE(std::isinf(round_trip(Value::number(INFINITY)).as_number()));
}

}  // namespace
}  // namespace castmesh::media::amf0
