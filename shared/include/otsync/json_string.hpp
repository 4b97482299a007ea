// The one JSON string writer for text that did not come from us (request paths, member
// names, messages that quote input): whatever the bytes, the result is a valid JSON
// string literal in valid UTF-8, so an error body or a log line built with it always
// parses. Values the codec writes go through rapidjson (codec_json.cpp) instead.
#pragma once

#include <string>
#include <string_view>

namespace otsync {

/// Appends `s` to `out` as a JSON string literal, quotes included:
///  - `"` and `\` are escaped; so are the control characters (U+0000–U+001F, U+007F and
///    U+0080–U+009F: \b \f \n \r \t or \u00XX) and U+2028/U+2029 (line separators to
///    JavaScript);
///  - every invalid UTF-8 sequence (a stray continuation byte, a truncated sequence, an
///    overlong form, a surrogate, anything above U+10FFFF) becomes one \ufffd (U+FFFD)
///    per maximal subpart, as Unicode §3.9 recommends and browsers decode;
///  - everything else is copied as it is.
void append_json_string(std::string& out, std::string_view s);

/// append_json_string into a new string.
std::string json_string(std::string_view s);

} // namespace otsync
