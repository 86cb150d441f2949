#pragma once
/// \file Test helpers for the HLS tests: synthetic H.264/AAC MediaPackets, a small MPEG-TS
/// reader, temporary directories and command execution.

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "media/packet.hpp"

namespace castmesh::hls::testing {

namespace fs = std::filesystem;

/// AVC sequence header tag body (FLV E.4.3.1 + ISO/IEC 14496-15 5.3.3.1): a 1280x720 High
/// profile SPS and a PPS, NAL length size 4.
inline Bytes avc_sequence_header() {
  const Bytes sps = {0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
                     0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60};
  const Bytes pps = {0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
  Bytes b = {0x17, 0x00, 0x00, 0x00, 0x00, 0x01, sps[1], sps[2], sps[3], 0xff, 0xe1};
  b.push_back(uint8_t(sps.size() >> 8));
  b.push_back(uint8_t(sps.size()));
  b.insert(b.end(), sps.begin(), sps.end());
  b.push_back(0x01);
  b.push_back(uint8_t(pps.size() >> 8));
  b.push_back(uint8_t(pps.size()));
  b.insert(b.end(), pps.begin(), pps.end());
  return b;
}

/// One AVC NALU tag body holding a single IDR (keyframe) or non-IDR slice of `size` bytes.
inline Bytes avc_frame(bool keyframe, size_t size = 200, int32_t cts_ms = 0) {
  Bytes b = {uint8_t(keyframe ? 0x17 : 0x27), 0x01, uint8_t(cts_ms >> 16), uint8_t(cts_ms >> 8), uint8_t(cts_ms)};
  size = std::max<size_t>(size, 2);
  b.push_back(uint8_t(size >> 24));
  b.push_back(uint8_t(size >> 16));
  b.push_back(uint8_t(size >> 8));
  b.push_back(uint8_t(size));
  b.push_back(keyframe ? 0x65 : 0x41);
  for (size_t i = 1; i < size; ++i) b.push_back(uint8_t(0x80 | (i & 0x3f)));
  return b;
}

/// AAC sequence header tag body: AudioSpecificConfig AAC LC, 44100 Hz, stereo.
inline Bytes aac_sequence_header() { return {0xaf, 0x00, 0x12, 0x10}; }

/// One raw AAC frame tag body of `size` bytes.
inline Bytes aac_frame(size_t size = 100) {
  Bytes b = {0xaf, 0x01};
  for (size_t i = 0; i < size; ++i) b.push_back(uint8_t(i * 7));
  return b;
}

inline media::PacketPtr packet(media::PacketType type, uint32_t dts_ms, Bytes payload) {
  return media::make_packet(type, dts_ms, std::move(payload));
}

/// TS packets of `pid` in a segment.
struct TsSummary {
  size_t packets = 0;
  std::vector<uint16_t> pids;            // pid of each packet in order
  std::vector<Bytes> video_pes;          // PES packets (header included) of pid 0x100
  size_t audio_pes = 0;                  // PES starts on pid 0x101
  bool aligned = false;                  // size multiple of 188 and every sync byte 0x47
};

/// Splits a TS byte string into packets and reassembles the video PES packets.
inline TsSummary read_ts(const Bytes& ts) {
  TsSummary s;
  s.aligned = ts.size() % 188 == 0 && !ts.empty();
  for (size_t off = 0; off + 188 <= ts.size(); off += 188) {
    const uint8_t* p = &ts[off];
    if (p[0] != 0x47) s.aligned = false;
    const uint16_t pid = uint16_t((p[1] & 0x1f) << 8 | p[2]);
    const bool pusi = p[1] & 0x40;
    const uint8_t afc = (p[3] >> 4) & 3;
    size_t pos = 4;
    if (afc & 2) pos += 1 + p[4];
    s.pids.push_back(pid);
    ++s.packets;
    if (!(afc & 1) || pos > 188) continue;
    if (pid == 0x100) {
      if (pusi) s.video_pes.emplace_back();
      if (!s.video_pes.empty()) s.video_pes.back().insert(s.video_pes.back().end(), p + pos, p + 188);
    } else if (pid == 0x101 && pusi) {
      ++s.audio_pes;
    }
  }
  return s;
}

/// NAL unit types found in an Annex B byte string (after 3- or 4-byte start codes).
inline std::vector<uint8_t> nal_types(const Bytes& annexb) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 3 < annexb.size(); ++i) {
    if (annexb[i] == 0 && annexb[i + 1] == 0 && annexb[i + 2] == 1) {
      out.push_back(annexb[i + 3] & 0x1f);
      i += 2;
    }
  }
  return out;
}

/// A directory removed with its contents at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() /
            ("castmesh-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  fs::path path_;
};

/// Runs `cmd` through /bin/sh; returns {exit status, combined stdout+stderr}.
inline std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return {-1, "popen failed"};
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int rc = ::pclose(f);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

inline bool have_program(const std::string& name) { return run("command -v " + name).first == 0; }

}  // namespace castmesh::hls::testing
