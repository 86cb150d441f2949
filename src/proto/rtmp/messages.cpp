#include "proto/rtmp/messages.hpp"

namespace castmesh::rtmp {

namespace {

Message control(uint8_t type, Bytes payload) {
  Message m;
  m.type_id = type;
  m.csid = csid::kControl;
  m.stream_id = 0;
  m.payload = std::move(payload);
  return m;
}

Bytes be32(uint32_t v) {
  Bytes b(4);
  put_be(b.data(), v, 4);
  return b;
}

}  // namespace

Message set_chunk_size_message(uint32_t size) { return control(msg_type::kSetChunkSize, be32(size & 0x7FFFFFFF)); }
Message abort_message(uint32_t cs) { return control(msg_type::kAbort, be32(cs)); }
Message acknowledgement_message(uint32_t sequence) { return control(msg_type::kAcknowledgement, be32(sequence)); }
Message window_ack_size_message(uint32_t size) { return control(msg_type::kWindowAckSize, be32(size)); }

Message set_peer_bandwidth_message(uint32_t size, uint8_t limit_type) {
  Bytes b = be32(size);
  b.push_back(limit_type);
  return control(msg_type::kSetPeerBandwidth, std::move(b));
}

Message user_control_message(UserControlEvent event, uint32_t value) {
  Bytes b(6);
  put_be(b.data(), static_cast<uint16_t>(event), 2);
  put_be(b.data() + 2, value, 4);
  return control(msg_type::kUserControl, std::move(b));
}

Result<UserControl> parse_user_control(ByteView payload) {
  ByteReader r(payload);
  UserControl uc;
  uc.event = r.u16();
  uc.value = r.u32();
  if (uc.event == static_cast<uint16_t>(UserControlEvent::set_buffer_length)) uc.value2 = r.u32();
  if (r.failed()) return Error{Errc::malformed, "rtmp: short User Control message"};
  return uc;
}

Result<uint32_t> parse_u32_control(ByteView payload) {
  ByteReader r(payload);
  uint32_t v = r.u32();
  if (r.failed()) return Error{Errc::malformed, "rtmp: short protocol control message"};
  return v;
}

std::string Command::arg_string(size_t i) const {
  if (i < args.size() && args[i].is_string()) return args[i].as_string();
  return {};
}

Result<Command> parse_command(const Message& msg) {
  ByteView body = msg.payload;
  if (msg.type_id == msg_type::kCommandAmf3) {
    // AMF3 command messages start with a format byte; Flash then writes AMF0 values.
    if (body.empty()) return Error{Errc::malformed, "rtmp: empty AMF3 command"};
    body = body.subspan(1);
  } else if (msg.type_id != msg_type::kCommandAmf0) {
    return Error{Errc::unsupported, "rtmp: not a command message"};
  }
  ByteReader r(body);
  auto name = amf0::decode(r);
  if (!name) return name.error();
  if (!name->is_string()) return Error{Errc::malformed, "rtmp: command name is not a string"};
  Command c;
  c.name = name->as_string();
  if (r.empty()) return c;
  auto txn = amf0::decode(r);
  if (!txn) return txn.error();
  c.transaction_id = txn->as_number();
  if (r.empty()) {
    c.command_object = amf0::Value::null();
    return c;
  }
  auto obj = amf0::decode(r);
  if (!obj) return obj.error();
  c.command_object = std::move(*obj);
  while (!r.empty()) {
    auto v = amf0::decode(r);
    if (!v) return v.error();
    c.args.push_back(std::move(*v));
  }
  return c;
}

Message command_message(uint32_t stream_id, const std::vector<amf0::Value>& values, uint32_t cs) {
  Message m;
  m.type_id = msg_type::kCommandAmf0;
  m.csid = cs;
  m.stream_id = stream_id;
  amf0::encode_all(values, m.payload);
  return m;
}

Message data_message(uint32_t stream_id, const std::vector<amf0::Value>& values) {
  Message m;
  m.type_id = msg_type::kDataAmf0;
  m.csid = csid::kData;
  m.stream_id = stream_id;
  amf0::encode_all(values, m.payload);
  return m;
}

amf0::Value status_object(std::string_view level, std::string_view code, std::string_view description) {
  return amf0::Value::object({{"level", amf0::Value::string(std::string(level))},
                              {"code", amf0::Value::string(std::string(code))},
                              {"description", amf0::Value::string(std::string(description))}});
}

Message result_message(double txn, amf0::Value props, amf0::Value info) {
  return command_message(0, {amf0::Value::string("_result"), amf0::Value::number(txn), std::move(props),
                              std::move(info)});
}

Message error_message(double txn, amf0::Value props, amf0::Value info) {
  return command_message(0, {amf0::Value::string("_error"), amf0::Value::number(txn), std::move(props),
                             std::move(info)});
}

Message connect_result_message(double txn, double object_encoding) {
  amf0::Value props = amf0::Value::object({{"fmsVer", amf0::Value::string("FMS/3,0,1,123")},
                                           {"capabilities", amf0::Value::number(31)},
                                           {"mode", amf0::Value::number(1)}});
  amf0::Value info = status_object("status", status::kConnectSuccess, "Connection succeeded.");
  info.properties().emplace_back("objectEncoding", amf0::Value::number(object_encoding));
  return result_message(txn, std::move(props), std::move(info));
}

Message create_stream_result_message(double txn, uint32_t stream_id) {
  return command_message(0, {amf0::Value::string("_result"), amf0::Value::number(txn), amf0::Value::null(),
                             amf0::Value::number(stream_id)});
}

Message on_status_message(uint32_t stream_id, std::string_view level, std::string_view code,
                          std::string_view description) {
  return command_message(stream_id, {amf0::Value::string("onStatus"), amf0::Value::number(0), amf0::Value::null(),
                                     status_object(level, code, description)},
                         csid::kData);
}

Message on_fc_publish_message(std::string_view stream_name) {
  return command_message(0, {amf0::Value::string("onFCPublish"), amf0::Value::number(0), amf0::Value::null(),
                             status_object("status", status::kPublishStart,
                                           std::string("Started publishing stream ") + std::string(stream_name))});
}

Message on_fc_unpublish_message(std::string_view stream_name) {
  return command_message(0, {amf0::Value::string("onFCUnpublish"), amf0::Value::number(0), amf0::Value::null(),
                             status_object("status", status::kUnpublishSuccess,
                                           std::string("Stopped publishing stream ") + std::string(stream_name))});
}

Message sample_access_message(uint32_t stream_id) {
  return data_message(stream_id, {amf0::Value::string("|RtmpSampleAccess"), amf0::Value::boolean(true),
                                  amf0::Value::boolean(true)});
}

Result<ByteView> strip_set_data_frame(ByteView payload) {
  ByteReader r(payload);
  auto first = amf0::decode(r);
  if (!first) return first.error();
  if (first->is_string() && first->as_string() == "@setDataFrame") return r.rest();
  return payload;
}

std::string data_message_name(ByteView payload) {
  ByteReader r(payload);
  auto first = amf0::decode(r);
  if (first && first->is_string()) return first->as_string();
  return {};
}

std::optional<uint32_t> AckCounter::on_received(uint64_t n) noexcept {
  total_ += n;
  if (window_ == 0 || total_ - acked_ < window_) return std::nullopt;
  acked_ = total_;
  return static_cast<uint32_t>(total_);
}

}  // namespace castmesh::rtmp
