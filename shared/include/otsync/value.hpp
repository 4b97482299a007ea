// Field values: the scalar types a field of the case model can hold.
#pragma once

#include "otsync/id.hpp"

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace otsync {

/// Money in integer centavos (Bs 146.28 = 14628): never floating point.
struct Money {
    std::int64_t centavos = 0;
    auto operator<=>(const Money&) const = default;
};

/// Wall time in milliseconds since the Unix epoch (UTC).
struct Timestamp {
    std::int64_t ms = 0;
    auto operator<=>(const Timestamp&) const = default;
};

/// Opaque bytes (e.g. a hash of signed rows); bounded by the field's limit.
struct Bytes {
    std::vector<std::uint8_t> data;
    auto operator<=>(const Bytes&) const = default;
};

/// The value of a field. Text is std::string holding valid UTF-8.
/// The alternative index is the wire tag: never reorder.
using Value =
    std::variant<std::monostate, bool, std::int64_t, Money, std::string, Bytes, Id, Timestamp>;

enum class ValueType : std::uint8_t {
    null = 0,
    boolean = 1,
    int64 = 2,
    money = 3,
    text = 4,
    bytes = 5,
    id = 6,
    timestamp = 7,
};
constexpr std::uint8_t k_value_type_count = 8;

inline ValueType type_of(const Value& v) noexcept {
    return static_cast<ValueType>(v.index());
}
std::string_view to_string(ValueType t) noexcept;

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

/// Text value helper for readable literals in code and tests.
inline Value text(std::string s) {
    return Value{std::move(s)};
}

} // namespace otsync
