// The JSON string writer; see json_string.hpp.
#include "otsync/json_string.hpp"

#include <cstddef>

namespace otsync {

namespace {

constexpr char k_hex[] = "0123456789abcdef";

/// A byte copied as it is: printable ASCII other than '"' and '\'.
bool plain(unsigned char c) {
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

struct Sequence {
    std::size_t length; // bytes taken: the whole sequence, or its maximal invalid subpart
    bool valid;
};

/// The UTF-8 sequence that starts at s[i] (s[i] >= 0x80), by the well-formed byte
/// ranges of Unicode Table 3-7; an ill-formed one is as long as its maximal subpart (the
/// longest prefix of a well-formed sequence), at least one byte.
Sequence utf8_at(std::string_view s, std::size_t i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t trail = 0;
    unsigned char lo = 0x80, hi = 0xBF; // range of the first trailing byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        trail = 1;
    } else if (b0 == 0xE0) {
        trail = 2;
        lo = 0xA0; // no overlong forms
    } else if (b0 == 0xED) {
        trail = 2;
        hi = 0x9F; // no surrogates
    } else if (b0 >= 0xE1 && b0 <= 0xEF) {
        trail = 2;
    } else if (b0 == 0xF0) {
        trail = 3;
        lo = 0x90; // no overlong forms
    } else if (b0 == 0xF4) {
        trail = 3;
        hi = 0x8F; // nothing above U+10FFFF
    } else if (b0 >= 0xF1 && b0 <= 0xF3) {
        trail = 3;
    } else {
        return {1, false}; // a continuation byte, C0, C1 or F5..FF
    }
    for (std::size_t n = 1; n <= trail; ++n) {
        if (i + n >= s.size()) {
            return {n, false};
        }
        const auto b = static_cast<unsigned char>(s[i + n]);
        if (b < lo || b > hi) {
            return {n, false};
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return {trail + 1, true};
}

void append_u00(std::string& out, unsigned char c) {
    out += "\\u00";
    out += k_hex[c >> 4];
    out += k_hex[c & 0x0F];
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
    out.reserve(out.size() + s.size() + 2);
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (plain(c)) {
            std::size_t j = i + 1;
            while (j < s.size() && plain(static_cast<unsigned char>(s[j]))) {
                ++j;
            }
            out.append(s.substr(i, j - i));
            i = j;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default: // the other C0 controls and DEL
                append_u00(out, c);
            }
            ++i;
            continue;
        }
        const Sequence seq = utf8_at(s, i);
        if (!seq.valid) {
            out += "\\ufffd";
        } else if (seq.length == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {
            append_u00(out, static_cast<unsigned char>(s[i + 1])); // C1 control, U+0080..U+009F
        } else if (seq.length == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
            out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
        } else {
            out.append(s.substr(i, seq.length));
        }
        i += seq.length;
    }
    out += '"';
}

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

} // namespace otsync
