#pragma once
/// \file RTMP chunk stream: reassembles messages from chunks and splits messages into chunks
/// (RTMP specification 1.0, section 5.3). Pure byte code: no sockets, no Asio.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/bytes.hpp"
#include "base/result.hpp"

namespace castmesh::rtmp {

/// RTMP message type ids (RTMP spec 5.4, 6.2, 7.1).
namespace msg_type {
inline constexpr uint8_t kSetChunkSize = 1;
inline constexpr uint8_t kAbort = 2;
inline constexpr uint8_t kAcknowledgement = 3;
inline constexpr uint8_t kUserControl = 4;
inline constexpr uint8_t kWindowAckSize = 5;
inline constexpr uint8_t kSetPeerBandwidth = 6;
inline constexpr uint8_t kAudio = 8;
inline constexpr uint8_t kVideo = 9;
inline constexpr uint8_t kDataAmf3 = 15;
inline constexpr uint8_t kSharedObjectAmf3 = 16;
inline constexpr uint8_t kCommandAmf3 = 17;
inline constexpr uint8_t kDataAmf0 = 18;
inline constexpr uint8_t kSharedObjectAmf0 = 19;
inline constexpr uint8_t kCommandAmf0 = 20;
inline constexpr uint8_t kAggregate = 22;
}  // namespace msg_type

/// One complete RTMP message (RTMP spec 6.1). `timestamp` is in milliseconds (32-bit,
/// wrapping); `stream_id` is the message stream id; `csid` the chunk stream it arrived on or
/// is to be sent on (2..65599).
struct Message {
  uint8_t type_id = 0;
  uint32_t timestamp = 0;
  uint32_t stream_id = 0;
  uint32_t csid = 0;
  Bytes payload;
};

/// Limits applied by ChunkReader to untrusted input.
struct ChunkLimits {
  /// Largest chunk size accepted in a Set Chunk Size message, bytes.
  uint32_t max_chunk_size = 16 * 1024 * 1024;
  /// Largest message length accepted in a chunk message header, bytes.
  uint32_t max_message_bytes = 8 * 1024 * 1024;
  /// Largest number of distinct chunk stream ids one peer may use.
  uint32_t max_chunk_streams = 64;
};

/// Incremental chunk stream parser (RTMP spec 5.3.1). One per connection, one thread.
///
/// Handles basic headers of 1, 2 and 3 bytes (csid 2..65599), message headers of type 0-3,
/// timestamp deltas (a type-0 header's timestamp also serves as the delta for a following
/// type-3 chunk that starts a new message, as in the spec's examples 5.3.2), extended
/// timestamps (also on type-3 chunks when the chunk stream's last type 0/1/2 header had one),
/// interleaved chunk streams, Set Chunk Size (applied before the next chunk is parsed) and
/// Abort (drops the partial message of the named chunk stream).
class ChunkReader {
 public:
  explicit ChunkReader(ChunkLimits limits = {});

  /// Parses as many chunks as `data` holds; appends each completed message (including Set
  /// Chunk Size and Abort, after applying them) to `out`; returns the bytes consumed. The
  /// caller keeps the unconsumed rest (at most one incomplete chunk header, < 19 bytes) and
  /// passes it again, followed by new bytes, on the next call: payload bytes are consumed as
  /// they arrive, so the caller never needs to buffer a whole chunk.
  /// Errors (the reader is then unusable): Errc::malformed (type 1-3 header on a chunk
  /// stream with no prior header, a new header in the middle of a message, Set Chunk Size
  /// 0 or > max_chunk_size, short control payloads), Errc::too_large (message length >
  /// max_message_bytes, more than max_chunk_streams chunk streams).
  Result<size_t> feed(ByteView data, std::vector<Message>& out);

  /// Current incoming chunk size, bytes (128 until the peer sends Set Chunk Size).
  uint32_t chunk_size() const noexcept { return chunk_size_; }

 private:
  struct Stream {
    uint32_t csid = 0;
    bool has_header = false;
    bool extended = false;      // last type 0/1/2 header carried an extended timestamp
    bool in_message = false;    // a message is partially assembled
    uint8_t type_id = 0;
    uint32_t length = 0;
    uint32_t stream_id = 0;
    uint32_t timestamp = 0;     // of the current / last message
    uint32_t delta = 0;         // last timestamp field (absolute for type 0)
    Bytes partial;
  };

  Stream* find(uint32_t csid) noexcept;
  Status complete(Stream& s, std::vector<Message>& out);

  ChunkLimits limits_;
  uint32_t chunk_size_ = 128;
  std::vector<Stream> streams_;
  size_t cur_ = 0;             // index in streams_ of the chunk whose payload is being read
  size_t buffered_ = 0;        // bytes held in all partial messages
  uint32_t chunk_left_ = 0;    // payload bytes of the current chunk not yet received
  bool failed_ = false;
};

/// Splits messages into chunks (RTMP spec 5.3.1): a type-0 header on the first chunk, type-3
/// headers on continuation chunks, the extended timestamp (on every chunk of the message)
/// when the timestamp is >= 0xFFFFFF.
class ChunkWriter {
 public:
  explicit ChunkWriter(uint32_t chunk_size = 128);

  /// Sets the outgoing chunk size, bytes (1..0x7FFFFFFF; 0 is treated as 1). Announce it to
  /// the peer with a Set Chunk Size message written before the change.
  void set_chunk_size(uint32_t n);
  uint32_t chunk_size() const noexcept { return chunk_size_; }

  /// Appends `msg` (payload length < 2^24) as chunks on chunk stream `msg.csid` to `out`.
  void write(const Message& msg, Bytes& out) const;

  /// Zero-copy variant: appends to `hdr` only the header bytes that precede each chunk of a
  /// payload of `len` bytes, and appends to `offsets` one entry per chunk: the offset in
  /// `hdr` where that chunk's header starts, followed by one final entry = hdr.size() at the
  /// end. Chunk i then goes out as hdr[offsets[k+i] .. offsets[k+i+1]) followed by
  /// payload[i*chunk_size .. min(len, (i+1)*chunk_size)), k = offsets.size() before the call.
  /// Offsets rather than pointers, so `hdr` may grow (reallocate) between calls.
  /// Returns the number of chunks (>= 1; a zero-length payload is one header-only chunk).
  size_t write_headers(uint32_t csid, uint8_t type_id, uint32_t timestamp, uint32_t stream_id,
                       size_t len, Bytes& hdr, std::vector<size_t>& offsets) const;

  /// Header bytes write_headers() appends for one message of `len` bytes on `csid`.
  size_t header_bytes(uint32_t csid, uint32_t timestamp, size_t len) const noexcept;

 private:
  uint32_t chunk_size_;
};

}  // namespace castmesh::rtmp
