// Small text helpers the server's HTTP-facing code shares (cookies, authorization and
// transfer headers).
#pragma once

#include <string_view>

namespace otsync {

/// `s` without the spaces and tabs around it (HTTP's optional whitespace, RFC 9110 §5.6.3).
constexpr std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

} // namespace otsync
