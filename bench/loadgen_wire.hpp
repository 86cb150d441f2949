#pragma once
/// \file Wire-level pieces of the load generator: streaming FLV and RTMP chunk scanners that
/// look only at tag/message headers (payloads are skipped, never copied), an HTTP/1.1 chunked
/// transfer decoder, a minimal AMF0 encoder/decoder for RTMP commands, an RTMP chunk writer and
/// an FLV file loader for the publisher.
///
/// These are written independently of src/media and src/proto/rtmp on purpose: the load
/// generator is the referee of the server, so a bug shared by both sides must not cancel out.
/// No sockets here; everything is bytes in, callbacks out.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::bench {

/// FLV / RTMP media type ids (FLV spec E.4.1, RTMP spec 7.1.4/7.1.5).
inline constexpr uint8_t kTypeAudio = 8;
inline constexpr uint8_t kTypeVideo = 9;
inline constexpr uint8_t kTypeData = 18;

/// Receives every complete media tag/message seen by a scanner.
class MediaSink {
 public:
  virtual ~MediaSink() = default;
  /// `type` is 8 (audio) or 9 (video); `ts_ms` the tag timestamp in ms; `head` the first two
  /// payload bytes (zero when the payload is shorter); `len` the payload length in bytes.
  virtual void on_media(uint8_t type, uint32_t ts_ms, std::array<uint8_t, 2> head, uint32_t len) = 0;
};

/// True when a video tag's first two payload bytes mark a coded keyframe (frame type 1 and,
/// for AVC/HEVC-in-FLV, packet type 1 = NALU, i.e. not a sequence header). FLV spec E.4.3.1.
bool is_video_keyframe(std::array<uint8_t, 2> head);

/// True when an audio/video tag payload starting with `head` is a codec configuration record
/// (AVC/HEVC sequence header, AAC AudioSpecificConfig), not a coded frame. FLV spec E.4.2/E.4.3.
bool is_codec_config(uint8_t type, std::array<uint8_t, 2> head);

/// Incremental FLV stream scanner (FLV spec E.2-E.4): consumes an FLV byte stream in pieces
/// of any size, reports each complete audio/video tag to a MediaSink. Only headers are
/// buffered (<= 13 bytes); payloads are skipped. Errors: Errc::malformed (bad signature).
class FlvScanner {
 public:
  Status feed(ByteView data, MediaSink& sink);

 private:
  enum class State { file_header, skip_header_rest, tag_header, tag_data, prev_size };
  State state_ = State::file_header;
  std::array<uint8_t, 16> hdr_{};
  size_t hdr_len_ = 0;
  uint32_t skip_ = 0;
  uint8_t type_ = 0;
  uint32_t size_ = 0, ts_ = 0, got_ = 0;
  std::array<uint8_t, 2> head_{};
};

/// Incremental decoder of HTTP/1.1 chunked transfer coding (RFC 9112 7.1). Calls `out(view)`
/// for each piece of body data. Chunk-size lines are limited to 64 bytes; extensions ignored.
/// Errors: Errc::malformed. After the last (zero) chunk it reports Errc::closed.
class HttpChunkDecoder {
 public:
  template <typename F>
  Status feed(ByteView data, F&& out) {
    size_t i = 0;
    while (i < data.size()) {
      switch (state_) {
        case State::size_line: {
          uint8_t c = data[i++];
          if (c == '\n') {
            if (line_.empty()) break;  // the CRLF after a chunk's data
            auto r = parse_size();
            if (!r.ok()) return r.error();
            line_.clear();
            if (left_ == 0) return Status(Errc::closed, "last chunk");
            state_ = State::data;
          } else if (c != '\r') {
            if (line_.size() >= 64) return Status(Errc::malformed, "chunk size line too long");
            line_.push_back(static_cast<char>(c));
          }
          break;
        }
        case State::data: {
          size_t take = std::min<uint64_t>(left_, data.size() - i);
          out(data.subspan(i, take));
          i += take;
          left_ -= take;
          if (left_ == 0) state_ = State::size_line;
          break;
        }
      }
    }
    return ok_status();
  }

 private:
  Status parse_size();
  enum class State { size_line, data };
  State state_ = State::size_line;
  std::string line_;
  uint64_t left_ = 0;
};

/// One RTMP message whose payload was kept (commands and protocol control; not media).
struct RtmpMessage {
  uint8_t type = 0;
  uint32_t timestamp = 0;
  uint32_t stream_id = 0;
  ByteView payload;
};

/// Receives the output of RtmpChunkScanner.
class RtmpSink : public MediaSink {
 public:
  /// A complete non-media message (payload <= 64 KiB; larger ones are dropped).
  virtual void on_message(const RtmpMessage& msg) = 0;
};

/// Incremental RTMP chunk stream parser (RTMP spec 5.3.1): fmt 0-3 headers, 1-3 byte basic
/// headers, extended timestamps (also on fmt 3 chunks of a message that used one), Set Chunk
/// Size applied before the next chunk. Media payloads (types 8/9) are not copied: only their
/// first two bytes are kept. feed() returns the number of bytes consumed; an incomplete chunk
/// header at the end is left unconsumed for the caller to present again with more bytes.
/// Errors: Errc::malformed (fmt 1-3 on an unused chunk stream, bad chunk size),
/// Errc::too_large (more than 64 chunk streams).
class RtmpChunkScanner {
 public:
  Result<size_t> feed(ByteView data, RtmpSink& sink);
  uint32_t in_chunk_size() const { return in_chunk_; }

 private:
  struct ChunkStream {
    uint32_t csid = 0;
    uint32_t timestamp = 0, ts_field = 0, length = 0, stream_id = 0;
    uint8_t type = 0;
    bool extended = false;
    uint32_t left = 0;  ///< bytes of the current message not yet received
    uint32_t got = 0;
    std::array<uint8_t, 2> head{};
    bool keep = false;
    Bytes body;
  };
  Status complete(ChunkStream& cs, RtmpSink& sink);

  std::vector<ChunkStream> streams_;
  uint32_t in_chunk_ = 128;
  uint32_t chunk_left_ = 0;
  size_t cur_ = 0;
};

/// Minimal AMF0 (AMF0 spec 2.x) for RTMP commands.
namespace amf {
void put_number(Bytes& out, double v);
void put_bool(Bytes& out, bool v);
void put_string(Bytes& out, std::string_view s);
void put_null(Bytes& out);
void begin_object(Bytes& out);
void put_key(Bytes& out, std::string_view key);  ///< followed by one put_* value
void end_object(Bytes& out);

/// A decoded top-level value: number, string, boolean, null or an object/array of which only
/// the string- and number-valued properties are kept (flat, depth-limited to 8).
struct Lite {
  uint8_t marker = 5;
  double number = 0;
  std::string str;
  std::vector<std::pair<std::string, std::string>> props;
  std::string prop(std::string_view key) const;
};
/// Decodes consecutive AMF0 values until the data ends or an unsupported marker.
std::vector<Lite> decode(ByteView data);
}  // namespace amf

/// Appends one RTMP message as chunks (fmt 0, then fmt 3 continuations; extended timestamp
/// when >= 0xFFFFFF, repeated on continuations). csid must be 2..63. RTMP spec 5.3.1.
void write_rtmp_message(Bytes& out, uint8_t csid, uint8_t type, uint32_t timestamp,
                        uint32_t stream_id, ByteView payload, uint32_t chunk_size);

/// An FLV file loaded into memory for publishing.
struct FlvFile {
  struct Tag {
    uint8_t type;
    uint32_t ts_ms;  ///< relative to the first media tag
    uint32_t offset, size;
    bool keyframe;
  };
  Bytes data;
  ByteView metadata;          ///< onMetaData script tag payload (may be empty)
  ByteView video_config;      ///< AVC sequence header tag payload (may be empty)
  ByteView audio_config;      ///< AAC sequence header tag payload (may be empty)
  std::vector<Tag> media;     ///< coded frames in file order
  uint32_t loop_ms = 0;       ///< timestamp advance applied per loop
  ByteView payload(const Tag& t) const { return ByteView(data).subspan(t.offset, t.size); }

  /// Reads and indexes an FLV file (<= 1 GiB). Errors: io_error, malformed, too_large.
  static Result<FlvFile> load(const std::string& path);
};

}  // namespace castmesh::bench
