// Value helpers: type names and the UTF-8 check every text value passes.
#include "otsync/value.hpp"
#include "otsync/op.hpp"

#include <array>

namespace otsync {

std::string_view to_string(ValueType t) noexcept {
    static constexpr std::array<std::string_view, k_value_type_count> names{
        "null", "bool", "int", "money", "text", "bytes", "id", "timestamp"};
    const auto i = static_cast<std::size_t>(t);
    return i < names.size() ? names[i] : std::string_view{"?"};
}

std::string_view to_string(OpKind k) noexcept {
    static constexpr std::array<std::string_view, k_op_kind_count> names{"set", "add", "remove",
                                                                         "event"};
    const auto i = static_cast<std::size_t>(k);
    return i < names.size() ? names[i] : std::string_view{"?"};
}

// RFC 3629 well-formed sequences (Unicode Table 3-7).
bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c == 0xE0) {
            n = 2;
            lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            n = 2;
        } else if (c == 0xED) {
            n = 2;
            hi = 0x9F; // no surrogates
        } else if (c == 0xF0) {
            n = 3;
            lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            n = 3;
        } else if (c == 0xF4) {
            n = 3;
            hi = 0x8F; // <= U+10FFFF
        } else {
            return false;
        }
        if (end - p < n + 1) {
            return false; // sequence cut short
        }
        if (p[1] < lo || p[1] > hi) {
            return false;
        }
        for (int i = 2; i <= n; ++i) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
        }
        p += n + 1;
    }
    return true;
}

} // namespace otsync
