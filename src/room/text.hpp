#pragma once
/// \file Validation of user-supplied text in rooms: room names, guest names, passwords, chat
/// messages, playlist items. Lengths count Unicode code points of valid UTF-8. Nothing is
/// escaped or rewritten here: text is stored and sent verbatim (JSON escaping only); the UI
/// renders it as text.

#include <string_view>

#include "base/result.hpp"

namespace castmesh::room {

inline constexpr size_t kMaxChatChars = 2000;
inline constexpr size_t kMaxRoomNameChars = 64;
inline constexpr size_t kMaxGuestNameChars = 24;
inline constexpr size_t kMaxTitleChars = 200;
inline constexpr size_t kMaxUrlBytes = 2048;
inline constexpr size_t kMinPasswordChars = 8;
inline constexpr size_t kMaxPasswordChars = 256;

/// Number of code points of `s`, or -1 when `s` is not valid UTF-8 (overlong forms, surrogates
/// and values above U+10FFFF are invalid, RFC 3629 section 4).
long utf8_length(std::string_view s) noexcept;

/// True when `s` holds a C0 control character (U+0000..U+001F) or DEL (U+007F).
bool has_control_chars(std::string_view s) noexcept;

/// Chat text: valid UTF-8, 1..2000 code points (newlines and tabs allowed). Errors: malformed.
Status validate_chat_text(std::string_view text);
/// Room name: valid UTF-8, 1..64 code points, no control characters. Errors: malformed.
Status validate_room_name(std::string_view name);
/// Guest display name: valid UTF-8, 1..24 code points, no control characters, no '#'.
Status validate_guest_name(std::string_view name);
/// Room password: 8..256 code points. Errors: malformed.
Status validate_password(std::string_view password);
/// Playlist item: kind "url" with an http://, https:// or /-relative url (1..2048 bytes, no
/// whitespace or control characters), or kind "live" with url "app/stream" (each part 1..128 of
/// [A-Za-z0-9_.-], not "." or ".."); title 0..200 code points without control characters.
Status validate_playlist_item(std::string_view kind, std::string_view url, std::string_view title);

}  // namespace castmesh::room
