// Internal to shared/: writes a Value as a plain JSON value (text as a string, money as
// centavos, ids as hex, bytes as base64, timestamps as ms). The codec wraps it in
// {"<type>": ...}; views write it as is.
#pragma once

#include "otsync/crypto.hpp"
#include "otsync/value.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace otsync::detail {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline void write_json_string(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

inline void write_plain_value(JsonWriter& w, const Value& v) {
    std::visit(
        [&](const auto& x) {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, std::monostate>) {
                w.Null();
            } else if constexpr (std::is_same_v<X, bool>) {
                w.Bool(x);
            } else if constexpr (std::is_same_v<X, std::int64_t>) {
                w.Int64(x);
            } else if constexpr (std::is_same_v<X, Money>) {
                w.Int64(x.centavos);
            } else if constexpr (std::is_same_v<X, Timestamp>) {
                w.Int64(x.ms);
            } else if constexpr (std::is_same_v<X, std::string>) {
                write_json_string(w, x);
            } else if constexpr (std::is_same_v<X, Bytes>) {
                write_json_string(w, to_base64(x.data));
            } else if constexpr (std::is_same_v<X, Id>) {
                write_json_string(w, x.hex());
            }
        },
        v);
}

} // namespace otsync::detail
