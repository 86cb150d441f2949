#include "loadgen_wire.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace castmesh::bench {

bool is_video_keyframe(std::array<uint8_t, 2> head) {
  const uint8_t frame_type = head[0] >> 4;
  const uint8_t codec = head[0] & 0x0f;
  if (frame_type != 1) return false;
  // AVC (7) and HEVC (12, the de-facto id) carry a packet type; 0 = sequence header.
  if (codec == 7 || codec == 12) return head[1] == 1;
  return true;
}

bool is_codec_config(uint8_t type, std::array<uint8_t, 2> head) {
  if (type == kTypeVideo) {
    const uint8_t codec = head[0] & 0x0f;
    return (codec == 7 || codec == 12) && head[1] == 0;
  }
  if (type == kTypeAudio) return (head[0] >> 4) == 10 && head[1] == 0;
  return false;
}

// ---------------------------------------------------------------- FLV scanner

Status FlvScanner::feed(ByteView data, MediaSink& sink) {
  size_t i = 0;
  const size_t n = data.size();
  while (i < n) {
    switch (state_) {
      case State::file_header: {
        size_t take = std::min(n - i, size_t{9} - hdr_len_);
        std::memcpy(hdr_.data() + hdr_len_, data.data() + i, take);
        hdr_len_ += take;
        i += take;
        if (hdr_len_ < 9) break;
        if (hdr_[0] != 'F' || hdr_[1] != 'L' || hdr_[2] != 'V') return Status(Errc::malformed, "not FLV");
        uint32_t offset = uint32_t(hdr_[5]) << 24 | uint32_t(hdr_[6]) << 16 | uint32_t(hdr_[7]) << 8 | hdr_[8];
        if (offset < 9) return Status(Errc::malformed, "FLV data offset < 9");
        skip_ = offset - 9 + 4;  // rest of header + PreviousTagSize0
        hdr_len_ = 0;
        state_ = State::skip_header_rest;
        break;
      }
      case State::skip_header_rest: {
        size_t take = std::min<size_t>(n - i, skip_);
        i += take;
        skip_ -= static_cast<uint32_t>(take);
        if (skip_ == 0) state_ = State::tag_header;
        break;
      }
      case State::tag_header: {
        size_t take = std::min(n - i, size_t{11} - hdr_len_);
        std::memcpy(hdr_.data() + hdr_len_, data.data() + i, take);
        hdr_len_ += take;
        i += take;
        if (hdr_len_ < 11) break;
        hdr_len_ = 0;
        type_ = hdr_[0] & 0x1f;
        size_ = uint32_t(hdr_[1]) << 16 | uint32_t(hdr_[2]) << 8 | hdr_[3];
        ts_ = uint32_t(hdr_[4]) << 16 | uint32_t(hdr_[5]) << 8 | hdr_[6] | uint32_t(hdr_[7]) << 24;
        got_ = 0;
        head_ = {0, 0};
        state_ = State::tag_data;
        if (size_ == 0) {
          if (type_ == kTypeAudio || type_ == kTypeVideo) sink.on_media(type_, ts_, head_, 0);
          state_ = State::prev_size;
          skip_ = 4;
        }
        break;
      }
      case State::tag_data: {
        size_t take = std::min<size_t>(n - i, size_ - got_);
        for (size_t k = 0; got_ + k < 2 && k < take; ++k) head_[got_ + k] = data[i + k];
        got_ += static_cast<uint32_t>(take);
        i += take;
        if (got_ == size_) {
          if (type_ == kTypeAudio || type_ == kTypeVideo) sink.on_media(type_, ts_, head_, size_);
          state_ = State::prev_size;
          skip_ = 4;
        }
        break;
      }
      case State::prev_size: {
        size_t take = std::min<size_t>(n - i, skip_);
        i += take;
        skip_ -= static_cast<uint32_t>(take);
        if (skip_ == 0) state_ = State::tag_header;
        break;
      }
    }
  }
  return ok_status();
}

// ---------------------------------------------------------------- HTTP chunked

Status HttpChunkDecoder::parse_size() {
  uint64_t v = 0;
  size_t digits = 0;
  for (char c : line_) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c == ';' || c == ' ' || c == '\t') break;
    else return Status(Errc::malformed, "bad chunk size");
    if (++digits > 12) return Status(Errc::malformed, "chunk size too long");
    v = v * 16 + static_cast<uint64_t>(d);
  }
  if (digits == 0) return Status(Errc::malformed, "empty chunk size");
  left_ = v;
  return ok_status();
}

// ---------------------------------------------------------------- RTMP chunks

Result<size_t> RtmpChunkScanner::feed(ByteView data, RtmpSink& sink) {
  size_t pos = 0;
  const size_t n = data.size();
  while (pos < n) {
    if (chunk_left_ > 0) {
      ChunkStream& cs = streams_[cur_];
      uint32_t take = static_cast<uint32_t>(std::min<size_t>(chunk_left_, n - pos));
      for (uint32_t k = 0; cs.got + k < 2 && k < take; ++k) cs.head[cs.got + k] = data[pos + k];
      if (cs.keep) cs.body.insert(cs.body.end(), data.begin() + pos, data.begin() + pos + take);
      cs.got += take;
      cs.left -= take;
      chunk_left_ -= take;
      pos += take;
      if (cs.left == 0) {
        auto st = complete(cs, sink);
        if (!st.ok()) return st.error();
      }
      continue;
    }
    // Chunk header: basic header (RTMP spec 5.3.1.1) + message header (5.3.1.2).
    size_t p = pos;
    const uint8_t b0 = data[p++];
    const uint8_t fmt = b0 >> 6;
    uint32_t csid = b0 & 0x3f;
    if (csid == 0) {
      if (n - p < 1) break;
      csid = 64 + data[p++];
    } else if (csid == 1) {
      if (n - p < 2) break;
      csid = 64 + data[p] + 256u * data[p + 1];
      p += 2;
    }
    static constexpr size_t kMsgHdr[4] = {11, 7, 3, 0};
    if (n - p < kMsgHdr[fmt]) break;
    size_t idx = streams_.size();
    for (size_t k = 0; k < streams_.size(); ++k)
      if (streams_[k].csid == csid) { idx = k; break; }
    if (idx == streams_.size()) {
      if (fmt != 0) return Error{Errc::malformed, "fmt " + std::to_string(fmt) + " on new chunk stream " + std::to_string(csid)};
      if (streams_.size() >= 64) return Error{Errc::too_large, "too many chunk streams"};
    }
    ByteReader r(data.subspan(p, kMsgHdr[fmt]));
    uint32_t field = 0, length = 0, stream_id = 0;
    uint8_t type = 0;
    if (fmt <= 2) field = r.u24();
    if (fmt <= 1) { length = r.u24(); type = r.u8(); }
    if (fmt == 0) stream_id = r.u32le();
    p += kMsgHdr[fmt];
    bool extended = fmt <= 2 ? field == 0xFFFFFF : (idx < streams_.size() && streams_[idx].extended);
    if (extended) {
      if (n - p < 4) break;
      uint32_t ext = uint32_t(data[p]) << 24 | uint32_t(data[p + 1]) << 16 | uint32_t(data[p + 2]) << 8 | data[p + 3];
      p += 4;
      if (fmt <= 2) field = ext;
    }
    // The header is complete: commit it.
    if (idx == streams_.size()) {
      streams_.emplace_back();
      streams_.back().csid = csid;
    }
    ChunkStream& cs = streams_[idx];
    if (fmt <= 2) { cs.extended = extended; }
    if (cs.left == 0) {  // first chunk of a new message
      switch (fmt) {
        case 0: cs.timestamp = field; cs.ts_field = field; cs.length = length; cs.type = type; cs.stream_id = stream_id; break;
        case 1: cs.timestamp += field; cs.ts_field = field; cs.length = length; cs.type = type; break;
        case 2: cs.timestamp += field; cs.ts_field = field; break;
        default: cs.timestamp += cs.ts_field; break;
      }
      cs.left = cs.length;
      cs.got = 0;
      cs.head = {0, 0};
      cs.keep = cs.type != kTypeAudio && cs.type != kTypeVideo && cs.type != kTypeData && cs.length <= 64 * 1024;
      cs.body.clear();
    }
    pos = p;
    cur_ = idx;
    chunk_left_ = std::min(in_chunk_, cs.left);
    if (cs.left == 0) {  // zero-length message
      auto st = complete(cs, sink);
      if (!st.ok()) return st.error();
    }
  }
  return pos;
}

Status RtmpChunkScanner::complete(ChunkStream& cs, RtmpSink& sink) {
  if (cs.type == kTypeAudio || cs.type == kTypeVideo) {
    sink.on_media(cs.type, cs.timestamp, cs.head, cs.length);
    return ok_status();
  }
  if (!cs.keep) return ok_status();
  if (cs.type == 1) {  // Set Chunk Size, RTMP spec 5.4.1
    if (cs.body.size() < 4) return Status(Errc::malformed, "short set chunk size");
    uint32_t v = (uint32_t(cs.body[0]) << 24 | uint32_t(cs.body[1]) << 16 | uint32_t(cs.body[2]) << 8 | cs.body[3]) & 0x7fffffff;
    if (v == 0 || v > 16 * 1024 * 1024) return Status(Errc::malformed, "bad chunk size " + std::to_string(v));
    in_chunk_ = v;
    return ok_status();
  }
  sink.on_message(RtmpMessage{cs.type, cs.timestamp, cs.stream_id, ByteView(cs.body)});
  return ok_status();
}

// ---------------------------------------------------------------- AMF0

namespace amf {

void put_number(Bytes& out, double v) {
  ByteWriter w(out);
  w.u8(0x00);
  w.f64(v);
}
void put_bool(Bytes& out, bool v) {
  out.push_back(0x01);
  out.push_back(v ? 1 : 0);
}
void put_string(Bytes& out, std::string_view s) {
  ByteWriter w(out);
  w.u8(0x02);
  w.u16(static_cast<uint16_t>(s.size()));
  w.bytes(s);
}
void put_null(Bytes& out) { out.push_back(0x05); }
void begin_object(Bytes& out) { out.push_back(0x03); }
void put_key(Bytes& out, std::string_view key) {
  ByteWriter w(out);
  w.u16(static_cast<uint16_t>(key.size()));
  w.bytes(key);
}
void end_object(Bytes& out) {
  out.push_back(0);
  out.push_back(0);
  out.push_back(0x09);
}

std::string Lite::prop(std::string_view key) const {
  for (const auto& [k, v] : props)
    if (k == key) return v;
  return {};
}

namespace {

// Reads one value; fills `v` when `v` is non-null, else only skips. Returns false on error.
bool read_value(ByteReader& r, Lite* v, std::string* scalar, int depth);

bool read_props(ByteReader& r, Lite* v, int depth) {
  for (int guard = 0; guard < 4096; ++guard) {
    uint16_t klen = r.u16();
    if (r.failed()) return false;
    std::string_view key = r.take_string(klen);
    if (r.failed()) return false;
    if (klen == 0) {
      if (r.remaining() >= 1 && r.rest()[0] == 0x09) {
        r.skip(1);
        return true;
      }
    }
    std::string scalar;
    if (!read_value(r, v, &scalar, depth + 1)) return false;
    if (v != nullptr && !scalar.empty() && v->props.size() < 64) v->props.emplace_back(std::string(key), scalar);
  }
  return false;
}

bool read_value(ByteReader& r, Lite* v, std::string* scalar, int depth) {
  if (depth > 8) return false;
  uint8_t m = r.u8();
  if (r.failed()) return false;
  switch (m) {
    case 0x00: {
      double d = r.f64();
      if (scalar) { char buf[32]; std::snprintf(buf, sizeof buf, "%.17g", d); *scalar = buf; }
      return !r.failed();
    }
    case 0x01: {
      uint8_t b = r.u8();
      if (scalar) *scalar = b ? "true" : "false";
      return !r.failed();
    }
    case 0x02: {
      uint16_t len = r.u16();
      std::string_view s = r.take_string(len);
      if (scalar) *scalar = std::string(s);
      return !r.failed();
    }
    case 0x0C: {
      uint32_t len = r.u32();
      std::string_view s = r.take_string(len);
      if (scalar) *scalar = std::string(s);
      return !r.failed();
    }
    case 0x05: case 0x06: return true;
    case 0x03: return read_props(r, v, depth);
    case 0x08: r.u32(); return !r.failed() && read_props(r, v, depth);
    case 0x0A: {
      uint32_t count = r.u32();
      if (r.failed() || count > 65536) return false;
      for (uint32_t k = 0; k < count; ++k)
        if (!read_value(r, nullptr, nullptr, depth + 1)) return false;
      return true;
    }
    case 0x0B: r.skip(10); return !r.failed();
    default: return false;
  }
}

}  // namespace

std::vector<Lite> decode(ByteView data) {
  std::vector<Lite> out;
  ByteReader r(data);
  while (!r.empty() && out.size() < 16) {
    Lite v;
    v.marker = r.rest()[0];
    ByteReader probe = r;
    if (v.marker == 0x00) {
      probe.u8();
      v.number = probe.f64();
      if (probe.failed()) break;
      r = probe;
    } else {
      std::string scalar;
      if (!read_value(r, &v, &scalar, 0)) break;
      v.str = std::move(scalar);
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace amf

// ---------------------------------------------------------------- RTMP writer

void write_rtmp_message(Bytes& out, uint8_t csid, uint8_t type, uint32_t timestamp,
                        uint32_t stream_id, ByteView payload, uint32_t chunk_size) {
  const bool ext = timestamp >= 0xFFFFFF;
  ByteWriter w(out);
  w.u8(csid & 0x3f);
  w.u24(ext ? 0xFFFFFF : timestamp);
  w.u24(static_cast<uint32_t>(payload.size()));
  w.u8(type);
  w.u32le(stream_id);
  if (ext) w.u32(timestamp);
  size_t off = 0;
  do {
    size_t take = std::min<size_t>(chunk_size, payload.size() - off);
    if (off > 0) {
      w.u8(0xC0 | (csid & 0x3f));
      if (ext) w.u32(timestamp);
    }
    w.bytes(payload.subspan(off, take));
    off += take;
  } while (off < payload.size());
}

// ---------------------------------------------------------------- FLV file

Result<FlvFile> FlvFile::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Error{Errc::io_error, "cannot open " + path};
  std::streamoff size = in.tellg();
  if (size < 0 || size > (std::streamoff(1) << 30)) return Error{Errc::too_large, path + " is larger than 1 GiB"};
  FlvFile f;
  f.data.resize(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(f.data.data()), size)) return Error{Errc::io_error, "cannot read " + path};

  ByteReader r{ByteView(f.data)};
  if (r.take_string(3) != "FLV") return Error{Errc::malformed, path + ": not an FLV file"};
  r.skip(2);
  uint32_t offset = r.u32();
  if (r.failed() || offset < 9 || !r.skip(offset - 9) || !r.skip(4)) return Error{Errc::malformed, "bad FLV header"};
  int64_t first_ts = -1;
  uint32_t last_ts = 0, last_video_delta = 33, prev_video_ts = 0;
  bool have_video = false;
  while (r.remaining() >= 11) {
    uint8_t type = r.u8() & 0x1f;
    uint32_t len = r.u24();
    uint32_t ts = r.u24();
    ts |= uint32_t(r.u8()) << 24;
    r.skip(3);
    size_t off = r.position();
    ByteView body = r.take(len);
    if (r.failed()) break;  // truncated last tag
    r.skip(4);
    if (type == kTypeData) {
      if (f.metadata.empty()) f.metadata = body;
      continue;
    }
    if (type != kTypeAudio && type != kTypeVideo) continue;
    if (body.size() >= 2) {
      if (type == kTypeVideo && (body[0] & 0x0f) == 7 && body[1] == 0) {
        if (f.video_config.empty()) f.video_config = body;
        continue;
      }
      if (type == kTypeAudio && (body[0] >> 4) == 10 && body[1] == 0) {
        if (f.audio_config.empty()) f.audio_config = body;
        continue;
      }
    }
    if (first_ts < 0) first_ts = ts;
    uint32_t rel = ts >= first_ts ? ts - static_cast<uint32_t>(first_ts) : 0;
    if (type == kTypeVideo) {
      if (have_video && rel > prev_video_ts) last_video_delta = rel - prev_video_ts;
      prev_video_ts = rel;
      have_video = true;
    }
    last_ts = std::max(last_ts, rel);
    bool key = type == kTypeVideo && body.size() >= 2 && is_video_keyframe({body[0], body[1]});
    f.media.push_back(Tag{type, rel, static_cast<uint32_t>(off), len, key});
  }
  if (f.media.empty()) return Error{Errc::malformed, path + ": no audio/video tags"};
  // Keep file order but make timestamps non-decreasing so pacing never goes backwards.
  std::stable_sort(f.media.begin(), f.media.end(), [](const Tag& a, const Tag& b) { return a.ts_ms < b.ts_ms; });
  f.loop_ms = last_ts + std::max<uint32_t>(last_video_delta, 1);
  return f;
}

}  // namespace castmesh::bench
