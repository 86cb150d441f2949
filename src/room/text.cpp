#include "room/text.hpp"

#include <string>

namespace castmesh::room {

long utf8_length(std::string_view s) noexcept {
  long n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xE0) == 0xC0) {
      len = 2;
      cp = b & 0x1F;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3;
      cp = b & 0x0F;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return -1;
    }
    if (i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    i += len;
    ++n;
  }
  return n;
}

bool has_control_chars(std::string_view s) noexcept {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

namespace {

Status check_len(std::string_view what, std::string_view s, size_t min, size_t max) {
  long n = utf8_length(s);
  if (n < 0) return Error{Errc::malformed, std::string(what) + " is not valid UTF-8"};
  if (static_cast<size_t>(n) < min || static_cast<size_t>(n) > max) {
    return Error{Errc::malformed,
                 std::string(what) + " must be " + std::to_string(min) + ".." + std::to_string(max) + " characters"};
  }
  return ok_status();
}

bool name_part_ok(std::string_view p) {
  if (p.empty() || p.size() > 128 || p == "." || p == "..") return false;
  for (char c : p) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Status validate_chat_text(std::string_view text) { return check_len("chat text", text, 1, kMaxChatChars); }

Status validate_room_name(std::string_view name) {
  if (auto st = check_len("room name", name, 1, kMaxRoomNameChars); !st) return st;
  if (has_control_chars(name)) return Error{Errc::malformed, "room name must not contain control characters"};
  return ok_status();
}

Status validate_guest_name(std::string_view name) {
  if (auto st = check_len("guest name", name, 1, kMaxGuestNameChars); !st) return st;
  if (has_control_chars(name)) return Error{Errc::malformed, "guest name must not contain control characters"};
  if (name.find('#') != std::string_view::npos) return Error{Errc::malformed, "guest name must not contain '#'"};
  return ok_status();
}

Status validate_password(std::string_view password) {
  return check_len("password", password, kMinPasswordChars, kMaxPasswordChars);
}

Status validate_playlist_item(std::string_view kind, std::string_view url, std::string_view title) {
  if (auto st = check_len("title", title, 0, kMaxTitleChars); !st) return st;
  if (has_control_chars(title)) return Error{Errc::malformed, "title must not contain control characters"};
  if (kind == "url") {
    if (url.empty() || url.size() > kMaxUrlBytes) return Error{Errc::malformed, "url must be 1..2048 bytes"};
    if (!(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("/"))) {
      return Error{Errc::malformed, "url must start with http://, https:// or /"};
    }
    for (char ch : url) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c == 0x7F) return Error{Errc::malformed, "url must not contain spaces or control characters"};
    }
    if (utf8_length(url) < 0) return Error{Errc::malformed, "url is not valid UTF-8"};
    return ok_status();
  }
  if (kind == "live") {
    auto slash = url.find('/');
    if (slash == std::string_view::npos || !name_part_ok(url.substr(0, slash)) ||
        !name_part_ok(url.substr(slash + 1))) {
      return Error{Errc::malformed, "a live item's url must be \"app/stream\""};
    }
    return ok_status();
  }
  return Error{Errc::malformed, "kind must be \"url\" or \"live\""};
}

}  // namespace castmesh::room
