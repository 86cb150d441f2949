#include "proto/rtmp/rtmp_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "proto/rtmp/chunk.hpp"
#include "proto/rtmp/handshake.hpp"
#include "proto/rtmp/messages.hpp"

namespace castmesh::rtmp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// Socket read buffer of a session: small for players (they send little), larger once publishing.
constexpr size_t kReadBufPlayer = 4 * 1024;  // players send only acks and small commands
constexpr size_t kReadBufPublisher = 64 * 1024;
// Largest backlog of serialized control/command replies waiting for the socket, bytes.
constexpr size_t kMaxControlBacklog = 1024 * 1024;

class Session;

void log_coroutine_end(std::exception_ptr e, const std::string& remote, const char* what) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::warn("rtmp {}: {} ended by exception: {}", remote, what, ex.what());
  } catch (...) {
    spdlog::warn("rtmp {}: {} ended by an unknown exception", remote, what);
  }
}

std::string endpoint_string(const tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6()) return "[" + addr.to_string() + "]:" + std::to_string(ep.port());
  return addr.to_string() + ":" + std::to_string(ep.port());
}

// "name?query" -> "name"; also drops trailing '/' (some encoders send "live/").
std::string strip_query(std::string s) {
  if (auto q = s.find('?'); q != std::string::npos) s.resize(q);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

struct RtmpServer::State : std::enable_shared_from_this<RtmpServer::State> {
  State(std::vector<asio::io_context*> c, const RtmpConfig& cfg, live::StreamHub& hub, Metrics& m)
      : ctxs(std::move(c)), cfg(cfg), hub(hub), metrics(m) {}

  std::vector<asio::io_context*> ctxs;
  const RtmpConfig cfg;
  live::StreamHub& hub;
  Metrics& metrics;

  // The acceptor is owned by the accept loop's coroutine frame, so it never outlives ctxs[0]
  // (even when that frame is destroyed with the io_context). While the loop lives this points
  // at it; touched only on ctxs[0]'s thread.
  tcp::acceptor* acceptor = nullptr;
  std::atomic<bool> listening{false};
  std::atomic<uint16_t> port{0};
  std::atomic<bool> stopping{false};
  std::atomic<size_t> next_ctx{0};
  std::atomic<size_t> active{0};

  std::mutex mu;  // guards sessions and next_id
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
  uint64_t next_id = 0;

  asio::awaitable<void> accept_loop(tcp::acceptor acc);
  void start_session(tcp::socket sock);
  void unregister(uint64_t id);
};

namespace {

// One RTMP connection. Every member is touched only on the thread of the socket's io_context.
// Three coroutines share it: run() (handshake, then reading and handling messages),
// write_loop() (the only writer of the socket: queued control messages and, for a player,
// media read from the subscription) and watchdog() (timeouts).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<RtmpServer::State> st, uint64_t id, tcp::socket sock, std::string remote)
      : st_(std::move(st)),
        cfg_(st_->cfg),
        id_(id),
        sock_(std::move(sock)),
        ex_(sock_.get_executor()),
        remote_(std::move(remote)),
        wake_(ex_),
        merge_(ex_),
        watchdog_(ex_),
        reader_(ChunkLimits{cfg_.max_chunk_size, cfg_.max_message_bytes, 64}),
        writer_(128),
        ack_(cfg_.window_ack_size) {}

  ~Session() {
    publisher_.reset();
    sub_.reset();
    st_->unregister(id_);
  }

  asio::any_io_executor executor() const { return ex_; }

  void start() {
    started_ms_ = mono_ms();
    last_read_ms_ = started_ms_;
    auto self = shared_from_this();
    asio::co_spawn(ex_, run(), [self](std::exception_ptr e) { log_coroutine_end(e, self->remote_, "session"); });
    asio::co_spawn(ex_, watchdog(), [self](std::exception_ptr e) { log_coroutine_end(e, self->remote_, "watchdog"); });
  }

  /// Closes the socket, ends the coroutines and releases the stream (unpublish / unsubscribe).
  void close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    wake_.cancel();
    merge_.cancel();
    watchdog_.cancel();
    if (publisher_) {
      spdlog::info("rtmp {}: unpublish {} (connection closed)", remote_, publisher_->key().str());
      publisher_.reset();
    }
    sub_.reset();
  }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> watchdog();

  Status on_message(Message& m);
  Status on_command(const Message& m);
  Status on_data(const Message& m, ByteView body);
  Status on_aggregate(const Message& m);
  void on_connect(const Command& c);
  void on_publish(const Command& c);
  void on_play(const Command& c);
  void stop_publishing(bool notify_client);
  /// The hub ended this connection's publish (StreamHub::revoke_publisher): BadName, then close.
  void on_revoked(const std::string& reason) {
    if (!publisher_ || closed_) return;
    spdlog::info("rtmp {}: publish {} ended: {}", remote_, publisher_->key().str(), reason);
    publisher_.reset();
    send(on_status_message(kMediaStreamId, "error", status::kPublishBadName,
                           std::string(status::kPublishBadName) + ": " + reason));
    close_after_flush_ = true;
  }
  void stop_playing();

  /// Serializes `m` into the control queue and wakes the writer.
  void send(const Message& m) {
    if (closed_) return;
    writer_.write(m, ctl_out_);
    if (ctl_out_.size() > kMaxControlBacklog) {
      // A peer that sends requests (pings, commands) but does not read the replies.
      protocol_error(Error{Errc::too_large, "peer does not read its control replies"});
      return;
    }
    notify(false);
  }
  void notify(bool media) {
    signaled_ = true;
    if (media) media_signaled_ = true;
    wake_.cancel();
  }
  void protocol_error(const Error& e) {
    if (!error_logged_) {
      error_logged_ = true;
      spdlog::warn("rtmp {}: protocol error, closing: {}", remote_, e.message());
    }
    st_->metrics.add(st_->metrics.protocol_errors_total, Proto::rtmp, 1);
    close();
  }
  int64_t read_idle_ms(int64_t now) const { return now - last_read_ms_; }

  std::shared_ptr<RtmpServer::State> st_;
  const RtmpConfig& cfg_;
  const uint64_t id_;
  tcp::socket sock_;
  asio::any_io_executor ex_;
  std::string remote_;
  asio::steady_timer wake_;      // the writer sleeps on it; notify() cancels it
  asio::steady_timer merge_;     // merge window of a player's writer
  asio::steady_timer watchdog_;

  ChunkReader reader_;
  ChunkWriter writer_;
  AckCounter ack_;
  Bytes rbuf_;
  std::vector<Message> msgs_;

  bool closed_ = false;
  bool error_logged_ = false;
  bool handshake_done_ = false;
  bool close_after_flush_ = false;
  int64_t started_ms_ = 0;
  int64_t last_read_ms_ = 0;

  // Writer state.
  bool signaled_ = false;
  bool media_signaled_ = false;
  bool writing_ = false;
  int64_t write_started_ms_ = 0;
  Bytes ctl_out_;       // serialized control/command messages waiting for the next write
  Bytes ctl_sending_;   // the ones in the write in progress
  std::vector<media::PacketPtr> pkts_;  // packets in the write in progress (kept alive by it)
  Bytes hdr_;                           // chunk headers of pkts_
  std::vector<size_t> offsets_;
  struct Entry {
    size_t first;   // index in offsets_
    size_t chunks;
    const media::MediaPacket* pkt;
  };
  std::vector<Entry> entries_;
  std::vector<asio::const_buffer> bufs_;

  // Stream state.
  std::string app_;
  bool connected_ = false;
  std::unique_ptr<live::Publisher> publisher_;
  std::unique_ptr<live::Subscription> sub_;
  bool publishing_seen_ = false;  // player: the source had a publisher at the last check
};

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  auto& metrics = st_->metrics;

  // Handshake (RTMP spec 5.2): C0, C1 -> S0 S1 S2 -> C2.
  std::array<uint8_t, 1 + kHandshakeSize> c0c1;
  {
    auto [ec, n] = co_await asio::async_read(sock_, asio::buffer(c0c1.data(), 1), kUseTuple);
    if (ec) {
      close();
      co_return;
    }
    metrics.add(metrics.bytes_in_total, Proto::rtmp, n);
    if (c0c1[0] != kRtmpVersion) {
      protocol_error(Error{Errc::unsupported, "handshake version byte " + std::to_string(c0c1[0])});
      co_return;
    }
  }
  {
    auto [ec, n] = co_await asio::async_read(sock_, asio::buffer(c0c1.data() + 1, kHandshakeSize), kUseTuple);
    metrics.add(metrics.bytes_in_total, Proto::rtmp, n);
    if (ec || closed_) {
      close();
      co_return;
    }
  }
  auto s0s1s2 = server_response(c0c1);
  if (!s0s1s2) {
    protocol_error(s0s1s2.error());
    co_return;
  }
  {
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(*s0s1s2), kUseTuple);
    metrics.add(metrics.bytes_out_total, Proto::rtmp, n);
    if (ec || closed_) {
      close();
      co_return;
    }
  }
  {
    // C2 is not validated: clients send an echo of S1 or a digest; neither matters to us.
    auto [ec, n] = co_await asio::async_read(sock_, asio::buffer(c0c1.data(), kHandshakeSize), kUseTuple);
    metrics.add(metrics.bytes_in_total, Proto::rtmp, n);
    if (ec || closed_) {
      close();
      co_return;
    }
  }
  handshake_done_ = true;
  last_read_ms_ = mono_ms();
  ack_.on_received(1 + 2 * kHandshakeSize);
  asio::co_spawn(ex_, write_loop(), [self](std::exception_ptr e) { log_coroutine_end(e, self->remote_, "writer"); });

  // Chunk stream. rbuf_ holds [carry | new bytes]; the carry is the unconsumed tail of the
  // previous read (at most one incomplete chunk header).
  rbuf_.resize(kReadBufPlayer);
  size_t carry = 0;
  while (!closed_) {
    if (publisher_ && rbuf_.size() < kReadBufPublisher) rbuf_.resize(kReadBufPublisher);
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(rbuf_.data() + carry, rbuf_.size() - carry), kUseTuple);
    if (ec || closed_) break;
    last_read_ms_ = mono_ms();
    metrics.add(metrics.bytes_in_total, Proto::rtmp, n);
    if (auto seq = ack_.on_received(n)) send(acknowledgement_message(*seq));

    msgs_.clear();
    auto used = reader_.feed(ByteView(rbuf_.data(), carry + n), msgs_);
    // Messages completed before an error are still handled (e.g. a deleteStream).
    for (auto& m : msgs_) {
      if (auto st = on_message(m); !st) {
        protocol_error(st.error());
        co_return;
      }
      if (closed_) co_return;
    }
    if (!used) {
      protocol_error(used.error());
      co_return;
    }
    carry = carry + n - *used;
    if (carry) std::memmove(rbuf_.data(), rbuf_.data() + *used, carry);
  }
  close();
}

asio::awaitable<void> Session::write_loop() {
  auto self = shared_from_this();
  auto& metrics = st_->metrics;
  bool more = false;  // the last read returned data: read again before sleeping
  while (!closed_) {
    if (!signaled_ && !more) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(kUseTuple);
      if (closed_) break;
    }
    const bool media_wake = media_signaled_;
    signaled_ = false;
    media_signaled_ = false;
    // The merge window batches later frames; a player's first media goes out at once.
    if (media_wake && !more && sub_ && publishing_seen_ && cfg_.merge_window_ms > 0) {
      // Let a few frames accumulate so one write carries them all.
      merge_.expires_after(std::chrono::milliseconds(cfg_.merge_window_ms));
      co_await merge_.async_wait(kUseTuple);
      if (closed_) break;
    }
    more = false;

    if (sub_) {
      const auto rs = sub_->read(pkts_);
      if (rs == live::Subscription::ReadStatus::ok) {
        more = true;
        if (!publishing_seen_) {
          publishing_seen_ = true;
          send(user_control_message(UserControlEvent::stream_begin, kMediaStreamId));
          send(on_status_message(kMediaStreamId, "status", status::kPlayPublishNotify, "Stream is now published"));
        }
      } else if (rs == live::Subscription::ReadStatus::wait) {
        if (publishing_seen_ && !sub_->publishing()) {
          publishing_seen_ = false;
          send(on_status_message(kMediaStreamId, "status", status::kPlayUnpublishNotify,
                                 "Stream is now unpublished"));
          send(user_control_message(UserControlEvent::stream_eof, kMediaStreamId));
        }
      } else {
        send(user_control_message(UserControlEvent::stream_eof, kMediaStreamId));
        sub_.reset();
        close_after_flush_ = true;
      }
    }
    signaled_ = false;  // send() above only queued what this write carries
    if (ctl_out_.empty() && pkts_.empty()) {
      if (close_after_flush_) break;
      continue;
    }

    // One gather write: queued control bytes, then per packet its chunk headers interleaved
    // with zero-copy slices of the shared payload.
    std::swap(ctl_out_, ctl_sending_);
    hdr_.clear();
    offsets_.clear();
    entries_.clear();
    bufs_.clear();
    for (const auto& p : pkts_) {
      const uint32_t cs = p->is_audio() ? csid::kAudio : p->is_video() ? csid::kVideo : csid::kData;
      const size_t first = offsets_.size();
      const size_t chunks = writer_.write_headers(cs, static_cast<uint8_t>(p->type), p->dts_ms, kMediaStreamId,
                                                  p->payload.size(), hdr_, offsets_);
      entries_.push_back({first, chunks, p.get()});
    }
    if (!ctl_sending_.empty()) bufs_.push_back(asio::buffer(ctl_sending_));
    const size_t cs = writer_.chunk_size();
    for (const auto& e : entries_) {
      for (size_t i = 0; i < e.chunks; ++i) {
        const size_t h0 = offsets_[e.first + i], h1 = offsets_[e.first + i + 1];
        bufs_.push_back(asio::const_buffer(hdr_.data() + h0, h1 - h0));
        const size_t b = i * cs;
        const size_t len = std::min(cs, e.pkt->payload.size() - b);
        if (len) bufs_.push_back(asio::const_buffer(e.pkt->payload.data() + b, len));
      }
    }
    writing_ = true;
    write_started_ms_ = mono_ms();
    auto [ec, n] = co_await asio::async_write(sock_, bufs_, kUseTuple);
    writing_ = false;
    metrics.add(metrics.bytes_out_total, Proto::rtmp, n);
    bufs_.clear();
    pkts_.clear();  // releases the packets only now that the kernel has the bytes
    ctl_sending_.clear();
    if (ec) {
      close();
      break;
    }
    if (close_after_flush_ && ctl_out_.empty()) {
      close();
      break;
    }
  }
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  // Check often enough for the shortest timeout to be honoured within ~25%.
  const uint32_t shortest = std::min({cfg_.handshake_timeout_ms, cfg_.idle_timeout_ms, cfg_.send_timeout_ms});
  const auto period = std::chrono::milliseconds(std::clamp<uint32_t>(shortest / 4, 20, 1000));
  while (!closed_) {
    watchdog_.expires_after(period);
    co_await watchdog_.async_wait(kUseTuple);
    if (closed_) break;
    const int64_t now = mono_ms();
    if (!handshake_done_) {
      if (now - started_ms_ > int64_t(cfg_.handshake_timeout_ms)) {
        spdlog::debug("rtmp {}: handshake timeout", remote_);
        close();
      }
      continue;
    }
    if (writing_ && now - write_started_ms_ > int64_t(cfg_.send_timeout_ms)) {
      if (sub_) {
        st_->metrics.slow_subscribers_closed_total.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("rtmp {}: player of {} too slow (write pending {} ms), closing", remote_, sub_->key().str(),
                     now - write_started_ms_);
      } else {
        spdlog::info("rtmp {}: send timeout, closing", remote_);
      }
      close();
      continue;
    }
    // Players may legitimately send nothing for a long time; everybody else must not.
    if (!sub_ && read_idle_ms(now) > int64_t(cfg_.idle_timeout_ms)) {
      spdlog::info("rtmp {}: idle for {} ms, closing", remote_, read_idle_ms(now));
      close();
    }
  }
}

Status Session::on_message(Message& m) {
  switch (m.type_id) {
    case msg_type::kSetChunkSize:  // applied by the ChunkReader
    case msg_type::kAbort:
    case msg_type::kAcknowledgement:
    case msg_type::kSetPeerBandwidth:
      return ok_status();
    case msg_type::kWindowAckSize: {
      auto v = parse_u32_control(m.payload);
      if (!v) return v.error();
      ack_.set_window(*v);
      return ok_status();
    }
    case msg_type::kUserControl: {
      auto uc = parse_user_control(m.payload);
      if (!uc) return uc.error();
      if (uc->event == static_cast<uint16_t>(UserControlEvent::ping_request))
        send(user_control_message(UserControlEvent::ping_response, uc->value));
      return ok_status();
    }
    case msg_type::kAudio:
    case msg_type::kVideo:
      // Media of a connection that is not publishing (or was refused) are dropped. Payloads
      // too short for their codec are dropped by the hub.
      if (publisher_ && !m.payload.empty())
        publisher_->push(static_cast<media::PacketType>(m.type_id), m.timestamp, std::move(m.payload));
      return ok_status();
    case msg_type::kDataAmf0:
      return on_data(m, m.payload);
    case msg_type::kDataAmf3:
      if (m.payload.empty()) return ok_status();
      return on_data(m, ByteView(m.payload).subspan(1));
    case msg_type::kCommandAmf0:
    case msg_type::kCommandAmf3:
      return on_command(m);
    case msg_type::kAggregate:
      return on_aggregate(m);
    default:
      spdlog::debug("rtmp {}: ignoring message type {}", remote_, m.type_id);
      return ok_status();
  }
}

Status Session::on_data(const Message& m, ByteView body) {
  if (!publisher_) return ok_status();
  auto inner = strip_set_data_frame(body);
  if (!inner) return inner.error();
  // Only the stream metadata is kept (players get it first); other script data is dropped.
  if (data_message_name(*inner) != "onMetaData") return ok_status();
  publisher_->push(media::PacketType::data, m.timestamp, Bytes(inner->begin(), inner->end()));
  return ok_status();
}

Status Session::on_aggregate(const Message& m) {
  // RTMP spec 7.1.6: FLV-style sub-messages [type][size:24][ts:24][ts_ext:8][stream:24][data]
  // [back pointer:32]; sub-message times are relative to the first one's.
  ByteReader r(m.payload);
  bool first = true;
  uint32_t base = 0;
  while (!r.empty()) {
    const uint8_t type = r.u8();
    const uint32_t size = r.u24();
    uint32_t ts = r.u24();
    ts |= uint32_t(r.u8()) << 24;
    r.skip(3);
    ByteView body = r.take(size);
    r.skip(4);
    if (r.failed()) return Error{Errc::malformed, "rtmp: truncated aggregate message"};
    if (first) {
      base = ts;
      first = false;
    }
    Message sub;
    sub.type_id = type;
    sub.timestamp = m.timestamp + (ts - base);
    sub.stream_id = m.stream_id;
    sub.csid = m.csid;
    if (type == msg_type::kAudio || type == msg_type::kVideo) {
      sub.payload.assign(body.begin(), body.end());
      if (auto st = on_message(sub); !st) return st;
    } else if (type == msg_type::kDataAmf0) {
      if (auto st = on_data(sub, body); !st) return st;
    }
  }
  return ok_status();
}

Status Session::on_command(const Message& m) {
  auto parsed = parse_command(m);
  if (!parsed) {
    if (parsed.code() == Errc::unsupported) {
      spdlog::debug("rtmp {}: ignoring command: {}", remote_, parsed.error().message());
      return ok_status();
    }
    return parsed.error();
  }
  const Command& c = *parsed;
  using amf0::Value;
  if (c.name == "connect") {
    on_connect(c);
  } else if (c.name == "createStream") {
    send(create_stream_result_message(c.transaction_id, kMediaStreamId));
  } else if (c.name == "releaseStream" || c.name == "FCPublish") {
    send(result_message(c.transaction_id, Value::null(), Value::undefined()));
    if (c.name == "FCPublish") send(on_fc_publish_message(c.arg_string(0)));
  } else if (c.name == "FCUnpublish") {
    send(on_fc_unpublish_message(c.arg_string(0)));
    send(result_message(c.transaction_id, Value::null(), Value::undefined()));
    stop_publishing(true);
  } else if (c.name == "publish") {
    on_publish(c);
  } else if (c.name == "play") {
    on_play(c);
  } else if (c.name == "deleteStream" || c.name == "closeStream") {
    stop_publishing(false);
    stop_playing();
  } else if (c.name == "getStreamLength") {
    send(result_message(c.transaction_id, Value::null(), Value::number(0)));
  } else if (c.name == "_checkbw") {
    send(result_message(c.transaction_id, Value::null(), Value::undefined()));
  } else {
    spdlog::debug("rtmp {}: ignoring command {}", remote_, c.name);
  }
  return ok_status();
}

void Session::on_connect(const Command& c) {
  using amf0::Value;
  std::string app = strip_query(c.command_object.get_string("app"));
  const double encoding = c.command_object.get_number("objectEncoding", 0);
  if (auto st = live::validate_name(app); !st) {
    spdlog::info("rtmp {}: connect refused, app '{}': {}", remote_, app, st.error().message());
    send(error_message(c.transaction_id, Value::null(),
                       status_object("error", status::kConnectRejected, "Invalid application name")));
    close_after_flush_ = true;
    return;
  }
  app_ = std::move(app);
  connected_ = true;
  spdlog::debug("rtmp {}: connect app={} tcUrl={}", remote_, app_, c.command_object.get_string("tcUrl"));
  send(window_ack_size_message(cfg_.window_ack_size));
  send(set_peer_bandwidth_message(cfg_.window_ack_size, 2));
  send(set_chunk_size_message(cfg_.out_chunk_size));
  writer_.set_chunk_size(cfg_.out_chunk_size);
  send(connect_result_message(c.transaction_id, encoding));
}

void Session::on_publish(const Command& c) {
  const std::string name = strip_query(c.arg_string(0));
  auto refuse = [&](std::string_view why) {
    spdlog::info("rtmp {}: publish {}/{} refused: {}", remote_, app_, name, why);
    send(on_status_message(kMediaStreamId, "error", status::kPublishBadName,
                           std::string(status::kPublishBadName) + ": " + std::string(why)));
  };
  if (!connected_ || publisher_ || sub_) {
    st_->metrics.publish_rejected_total.fetch_add(1, std::memory_order_relaxed);
    return refuse(connected_ ? "connection already publishing or playing" : "publish before connect");
  }
  live::StreamKey key{app_, name};
  auto pub = st_->hub.publish(key, Proto::rtmp, remote_);
  if (!pub) {
    // The hub counts publish_rejected_total for a stream already being published.
    if (pub.code() != Errc::already_publishing)
      st_->metrics.publish_rejected_total.fetch_add(1, std::memory_order_relaxed);
    return refuse(pub.code() == Errc::already_publishing ? "stream already publishing" : pub.error().message());
  }
  publisher_ = std::move(*pub);
  // The cluster's publisher registry may refuse the stream after the fact (another node holds
  // it) or a takeover may end it: answer BadName and close.
  {
    std::weak_ptr<Session> weak = weak_from_this();
    auto ex = ex_;
    publisher_->set_on_revoked([weak, ex](const std::string& reason) {
      asio::post(ex, [weak, reason] {
        if (auto s = weak.lock()) s->on_revoked(reason);
      });
    });
  }
  spdlog::info("rtmp {}: publish {}", remote_, key.str());
  send(on_status_message(kMediaStreamId, "status", status::kPublishStart, key.str() + " is now published."));
}

void Session::on_play(const Command& c) {
  const std::string name = strip_query(c.arg_string(0));
  auto not_found = [&](std::string_view why) {
    spdlog::info("rtmp {}: play {}/{} refused: {}", remote_, app_, name, why);
    send(on_status_message(kMediaStreamId, "error", status::kPlayStreamNotFound,
                           std::string(status::kPlayStreamNotFound) + ": " + std::string(why)));
  };
  if (!connected_) return not_found("play before connect");
  if (publisher_) return not_found("connection is publishing");
  stop_playing();
  live::StreamKey key{app_, name};
  auto sub = st_->hub.subscribe(key, Proto::rtmp, /*wait_for_publisher=*/true);
  if (!sub) return not_found(sub.error().message());
  sub_ = std::move(*sub);
  spdlog::info("rtmp {}: play {}", remote_, key.str());
  send(user_control_message(UserControlEvent::stream_begin, kMediaStreamId));
  send(on_status_message(kMediaStreamId, "status", status::kPlayReset, "Playing and resetting " + key.str() + "."));
  send(on_status_message(kMediaStreamId, "status", status::kPlayStart, "Started playing " + key.str() + "."));
  send(sample_access_message(kMediaStreamId));
  if (closed_) return;  // send() may have closed a peer that does not read
  publishing_seen_ = sub_->publishing();
  std::weak_ptr<Session> weak = weak_from_this();
  auto ex = ex_;
  // Runs on the publisher's thread under the Source's lock: only a post.
  sub_->set_waker([weak, ex] {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) s->notify(true);
    });
  });
  // The first read takes the GOP cache at once; the merge window applies to later wake-ups.
  notify(false);
}

void Session::stop_publishing(bool notify_client) {
  if (!publisher_) return;
  spdlog::info("rtmp {}: unpublish {}", remote_, publisher_->key().str());
  publisher_.reset();
  if (notify_client)
    send(on_status_message(kMediaStreamId, "status", status::kUnpublishSuccess, "Stream is now unpublished."));
}

void Session::stop_playing() {
  if (!sub_) return;
  spdlog::info("rtmp {}: stop playing {}", remote_, sub_->key().str());
  sub_.reset();
}

}  // namespace

// ---- RtmpServer::State ------------------------------------------------------------------------

void RtmpServer::State::unregister(uint64_t id) {
  {
    std::lock_guard lk(mu);
    sessions.erase(id);
  }
  active.fetch_sub(1, std::memory_order_relaxed);
  metrics.connections[Metrics::idx(Proto::rtmp)].fetch_sub(1, std::memory_order_relaxed);
}

void RtmpServer::State::start_session(tcp::socket sock) {
  metrics.add(metrics.connections_total, Proto::rtmp, 1);
  error_code ec;
  const auto peer = sock.remote_endpoint(ec);
  std::string remote = ec ? std::string("?") : endpoint_string(peer);
  if (active.load(std::memory_order_relaxed) >= cfg.max_connections) {
    spdlog::warn("rtmp {}: refused, {} connections open (rtmp.max_connections)", remote, cfg.max_connections);
    sock.close(ec);
    return;
  }
  sock.set_option(tcp::no_delay(true), ec);
  std::shared_ptr<Session> s;
  {
    std::lock_guard lk(mu);
    const uint64_t id = ++next_id;
    active.fetch_add(1, std::memory_order_relaxed);
    metrics.connections[Metrics::idx(Proto::rtmp)].fetch_add(1, std::memory_order_relaxed);
    s = std::make_shared<Session>(shared_from_this(), id, std::move(sock), std::move(remote));
    sessions.emplace(id, s);
  }
  // The session's socket lives on another io_context: start it there.
  asio::post(s->executor(), [s] {
    s->start();
  });
  // stop() may have run between the check in accept_loop and the registration above.
  if (stopping.load()) asio::post(s->executor(), [w = std::weak_ptr<Session>(s)] {
    if (auto p = w.lock()) p->close();
  });
}

asio::awaitable<void> RtmpServer::State::accept_loop(tcp::acceptor acc) {
  auto self = shared_from_this();
  struct Registration {  // clears State::acceptor however the frame ends
    State& st;
    Registration(State& s, tcp::acceptor* a) : st(s) { st.acceptor = a; }
    ~Registration() { st.acceptor = nullptr; }
  } registration(*this, &acc);
  if (stopping.load()) co_return;  // stop() ran before the loop started
  tcp::acceptor* acceptor = &acc;
  for (;;) {
    asio::io_context& ctx = *ctxs[next_ctx.fetch_add(1, std::memory_order_relaxed) % ctxs.size()];
    auto [ec, sock] = co_await acceptor->async_accept(ctx, kUseTuple);
    if (stopping.load()) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
      // Typically EMFILE/ENFILE: back off instead of spinning.
      spdlog::warn("rtmp: accept: {}", ec.message());
      asio::steady_timer t(acceptor->get_executor(), std::chrono::milliseconds(100));
      co_await t.async_wait(kUseTuple);
      continue;
    }
    start_session(std::move(sock));
  }
}

// ---- RtmpServer -------------------------------------------------------------------------------

RtmpServer::RtmpServer(std::vector<asio::io_context*> ctxs, const RtmpConfig& cfg, live::StreamHub& hub, Metrics& m)
    : state_(std::make_shared<State>(std::move(ctxs), cfg, hub, m)) {}

RtmpServer::~RtmpServer() { stop(); }

Status RtmpServer::listen() {
  auto& st = *state_;
  if (st.ctxs.empty()) return Error{Errc::config_invalid, "rtmp: no io_context"};
  if (st.listening.exchange(true)) return Error{Errc::io_error, "rtmp: already listening"};
  error_code ec;
  const auto addr = asio::ip::make_address(st.cfg.host, ec);
  if (ec) return Error{Errc::io_error, "rtmp: bad listen address '" + st.cfg.host + "': " + ec.message()};
  const tcp::endpoint ep(addr, st.cfg.port);
  tcp::acceptor acc(*st.ctxs[0]);
  const std::string where = endpoint_string(ep);
  auto fail = [&](const char* what) -> Status {
    st.listening = false;
    return Error{Errc::io_error, std::string("rtmp: ") + what + " " + where + ": " + ec.message()};
  };
  if (acc.open(ep.protocol(), ec); ec) return fail("open");
  acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (acc.bind(ep, ec); ec) return fail("bind");
  if (acc.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
  st.port = acc.local_endpoint(ec).port();
  asio::co_spawn(*st.ctxs[0], st.accept_loop(std::move(acc)),
                 [](std::exception_ptr e) { log_coroutine_end(e, "-", "acceptor"); });
  return ok_status();
}

uint16_t RtmpServer::port() const { return state_->port.load(); }

size_t RtmpServer::connections() const { return state_->active.load(); }

void RtmpServer::stop() {
  auto st = state_;
  if (st->stopping.exchange(true)) return;
  if (!st->ctxs.empty()) {
    asio::post(*st->ctxs[0], [st] {
      error_code ec;
      if (st->acceptor) st->acceptor->close(ec);
    });
  }
  std::vector<std::weak_ptr<Session>> all;
  {
    std::lock_guard lk(st->mu);
    all.reserve(st->sessions.size());
    for (auto& [id, w] : st->sessions) all.push_back(w);
  }
  for (auto& w : all) {
    if (auto s = w.lock()) {
      asio::post(s->executor(), [w] {
        if (auto p = w.lock()) p->close();
      });
    }
  }
}

}  // namespace castmesh::rtmp
