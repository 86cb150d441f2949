#include "proto/rtmp/chunk.hpp"

#include <algorithm>
#include <string>

namespace castmesh::rtmp {

namespace {
constexpr uint32_t kExtendedMarker = 0xFFFFFF;
constexpr uint32_t kMinCsid = 2;
constexpr uint32_t kMaxCsid = 65599;
// Payload memory reserved up front for one message; larger messages grow as bytes arrive, so
// a peer cannot make castmesh commit memory it has not sent.
constexpr size_t kMaxReserve = 1024 * 1024;
}  // namespace

ChunkReader::ChunkReader(ChunkLimits limits) : limits_(limits) {
  streams_.reserve(std::min<uint32_t>(limits_.max_chunk_streams, 16));
}

ChunkReader::Stream* ChunkReader::find(uint32_t csid) noexcept {
  for (auto& s : streams_)
    if (s.csid == csid) return &s;
  return nullptr;
}

Status ChunkReader::complete(Stream& s, std::vector<Message>& out) {
  s.in_message = false;
  Message m;
  m.type_id = s.type_id;
  m.timestamp = s.timestamp;
  m.stream_id = s.stream_id;
  m.csid = s.csid;
  buffered_ -= s.partial.size();
  m.payload = std::move(s.partial);
  s.partial = Bytes();

  // Protocol control messages that change how the following chunks are parsed (RTMP spec
  // 5.4.1, 5.4.2) take effect here, before the next chunk header is read.
  if (m.type_id == msg_type::kSetChunkSize) {
    ByteReader r(m.payload);
    uint32_t n = r.u32();
    if (r.failed()) return Error{Errc::malformed, "rtmp: short Set Chunk Size"};
    n &= 0x7FFFFFFF;  // the first bit must be zero; tolerate senders that set it
    if (n == 0) return Error{Errc::malformed, "rtmp: Set Chunk Size 0"};
    if (n > limits_.max_chunk_size)
      return Error{Errc::malformed, "rtmp: Set Chunk Size " + std::to_string(n) + " above limit"};
    chunk_size_ = n;
  } else if (m.type_id == msg_type::kAbort) {
    ByteReader r(m.payload);
    uint32_t csid = r.u32();
    if (r.failed()) return Error{Errc::malformed, "rtmp: short Abort message"};
    if (Stream* t = find(csid); t && t->in_message) {
      t->in_message = false;
      buffered_ -= t->partial.size();
      t->partial.clear();
    }
  }
  out.push_back(std::move(m));
  return ok_status();
}

Result<size_t> ChunkReader::feed(ByteView data, std::vector<Message>& out) {
  if (failed_) return Error{Errc::malformed, "rtmp: chunk stream already failed"};
  auto fail = [this](Error e) -> Result<size_t> {
    failed_ = true;
    return e;
  };
  size_t pos = 0;
  for (;;) {
    if (chunk_left_ > 0) {
      // Payload of the current chunk.
      Stream& s = streams_[cur_];
      size_t n = std::min<size_t>(chunk_left_, data.size() - pos);
      // All partial messages together stay within one message's limit: interleaving chunk
      // streams must not multiply the memory a connection can hold.
      buffered_ += n;
      if (buffered_ > limits_.max_message_bytes)
        return fail(Error{Errc::too_large, "rtmp: partial messages exceed " +
                                               std::to_string(limits_.max_message_bytes) + " bytes"});
      s.partial.insert(s.partial.end(), data.begin() + pos, data.begin() + pos + n);
      pos += n;
      chunk_left_ -= static_cast<uint32_t>(n);
      if (chunk_left_ > 0) return pos;
      if (s.partial.size() == s.length) {
        if (auto st = complete(s, out); !st) return fail(st.error());
      }
      continue;
    }
    if (pos == data.size()) return pos;

    // Basic header (5.3.1.1).
    ByteReader r(data.subspan(pos));
    const uint8_t b0 = r.u8();
    const uint8_t fmt = b0 >> 6;
    uint32_t csid = b0 & 0x3F;
    if (csid == 0) {
      csid = 64 + r.u8();
    } else if (csid == 1) {
      uint32_t lo = r.u8();
      uint32_t hi = r.u8();
      csid = 64 + lo + hi * 256;
    }
    if (r.failed()) return pos;

    Stream* s = find(csid);
    if (fmt != 0 && (s == nullptr || !s->has_header))
      return fail(Error{Errc::malformed, "rtmp: chunk type " + std::to_string(fmt) + " on chunk stream " +
                                             std::to_string(csid) + " without a prior header"});

    // Message header (5.3.1.2) and extended timestamp (5.3.1.3).
    uint32_t ts_field = 0, length = 0, stream_id = 0;
    uint8_t type_id = 0;
    if (fmt <= 2) ts_field = r.u24();
    if (fmt <= 1) {
      length = r.u24();
      type_id = r.u8();
    }
    if (fmt == 0) stream_id = r.u32le();
    const bool extended = fmt <= 2 ? ts_field == kExtendedMarker : s->extended;
    uint32_t ext = 0;
    if (extended) ext = r.u32();
    if (r.failed()) return pos;  // incomplete header: wait for more bytes

    if (s == nullptr) {
      if (streams_.size() >= limits_.max_chunk_streams)
        return fail(Error{Errc::too_large, "rtmp: more than " + std::to_string(limits_.max_chunk_streams) +
                                               " chunk streams"});
      streams_.push_back(Stream{});
      s = &streams_.back();
      s->csid = csid;
    }
    if (fmt != 3 && s->in_message)
      return fail(Error{Errc::malformed, "rtmp: new message header on chunk stream " + std::to_string(csid) +
                                             " before the previous message completed"});
    const uint32_t ts_value = extended ? ext : ts_field;
    switch (fmt) {
      case 0:
        s->timestamp = ts_value;
        s->delta = ts_value;
        s->length = length;
        s->type_id = type_id;
        s->stream_id = stream_id;
        s->extended = extended;
        s->has_header = true;
        break;
      case 1:
        s->delta = ts_value;
        s->timestamp += ts_value;
        s->length = length;
        s->type_id = type_id;
        s->extended = extended;
        break;
      case 2:
        s->delta = ts_value;
        s->timestamp += ts_value;
        s->extended = extended;
        break;
      default:
        // Type 3 continuing a message: the extended timestamp (if any) repeats the message's
        // and is ignored. Type 3 starting a new message: same length/type/stream, the time
        // advances by the last delta.
        if (!s->in_message) s->timestamp += s->delta;
        break;
    }
    if (!s->in_message) {
      if (s->length > limits_.max_message_bytes)
        return fail(Error{Errc::too_large, "rtmp: message length " + std::to_string(s->length) + " above limit"});
      s->in_message = true;
      s->partial.clear();
      s->partial.reserve(std::min<size_t>(s->length, kMaxReserve));
    }
    pos += r.position();
    cur_ = static_cast<size_t>(s - streams_.data());
    chunk_left_ = std::min<uint32_t>(chunk_size_, s->length - static_cast<uint32_t>(s->partial.size()));
    if (chunk_left_ == 0) {  // zero-length message: complete with its header
      if (auto st = complete(*s, out); !st) return fail(st.error());
    }
  }
}

// --- ChunkWriter ---------------------------------------------------------------------------

namespace {

size_t basic_header_size(uint32_t csid) noexcept {
  if (csid < 64) return 1;
  if (csid < 320) return 2;
  return 3;
}

void put_basic_header(Bytes& out, uint8_t fmt, uint32_t csid) {
  csid = std::clamp(csid, kMinCsid, kMaxCsid);
  if (csid < 64) {
    out.push_back(static_cast<uint8_t>(fmt << 6 | csid));
  } else if (csid < 320) {
    out.push_back(static_cast<uint8_t>(fmt << 6));
    out.push_back(static_cast<uint8_t>(csid - 64));
  } else {
    out.push_back(static_cast<uint8_t>(fmt << 6 | 1));
    out.push_back(static_cast<uint8_t>((csid - 64) & 0xFF));
    out.push_back(static_cast<uint8_t>((csid - 64) >> 8));
  }
}

}  // namespace

ChunkWriter::ChunkWriter(uint32_t chunk_size) : chunk_size_(std::max<uint32_t>(chunk_size, 1)) {}

void ChunkWriter::set_chunk_size(uint32_t n) { chunk_size_ = std::clamp<uint32_t>(n, 1, 0x7FFFFFFF); }

size_t ChunkWriter::header_bytes(uint32_t csid, uint32_t timestamp, size_t len) const noexcept {
  const size_t chunks = len == 0 ? 1 : (len + chunk_size_ - 1) / chunk_size_;
  const size_t ext = timestamp >= kExtendedMarker ? 4 : 0;
  const size_t basic = basic_header_size(csid);
  return (basic + 11 + ext) + (chunks - 1) * (basic + ext);
}

size_t ChunkWriter::write_headers(uint32_t csid, uint8_t type_id, uint32_t timestamp, uint32_t stream_id,
                                  size_t len, Bytes& hdr, std::vector<size_t>& offsets) const {
  const bool ext = timestamp >= kExtendedMarker;
  const size_t chunks = len == 0 ? 1 : (len + chunk_size_ - 1) / chunk_size_;
  hdr.reserve(hdr.size() + header_bytes(csid, timestamp, len));
  offsets.reserve(offsets.size() + chunks + 1);
  for (size_t i = 0; i < chunks; ++i) {
    offsets.push_back(hdr.size());
    if (i == 0) {
      put_basic_header(hdr, 0, csid);
      ByteWriter w(hdr);
      w.u24(ext ? kExtendedMarker : timestamp);
      w.u24(static_cast<uint32_t>(len));
      w.u8(type_id);
      w.u32le(stream_id);
    } else {
      put_basic_header(hdr, 3, csid);
    }
    if (ext) ByteWriter(hdr).u32(timestamp);
  }
  offsets.push_back(hdr.size());
  return chunks;
}

void ChunkWriter::write(const Message& msg, Bytes& out) const {
  const size_t len = msg.payload.size();
  const bool ext = msg.timestamp >= kExtendedMarker;
  out.reserve(out.size() + len + header_bytes(msg.csid, msg.timestamp, len));
  size_t off = 0;
  bool first = true;
  do {
    if (first) {
      put_basic_header(out, 0, msg.csid);
      ByteWriter w(out);
      w.u24(ext ? kExtendedMarker : msg.timestamp);
      w.u24(static_cast<uint32_t>(len));
      w.u8(msg.type_id);
      w.u32le(msg.stream_id);
      first = false;
    } else {
      put_basic_header(out, 3, msg.csid);
    }
    if (ext) ByteWriter(out).u32(msg.timestamp);
    const size_t n = std::min<size_t>(chunk_size_, len - off);
    out.insert(out.end(), msg.payload.begin() + off, msg.payload.begin() + off + n);
    off += n;
  } while (off < len);
}

}  // namespace castmesh::rtmp
