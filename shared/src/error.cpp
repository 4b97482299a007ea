// Spellings of the error codes; the order of k_names follows ErrorCode.
#include "otsync/error.hpp"

#include <array>
#include <utility>

namespace otsync {

namespace {
constexpr std::size_t k_count = static_cast<std::size_t>(k_last_error_code);
constexpr std::array<std::pair<ErrorCode, std::string_view>, k_count> k_names{{
    {ErrorCode::internal, "internal"},
    {ErrorCode::invalid_argument, "invalid_argument"},
    {ErrorCode::truncated, "truncated"},
    {ErrorCode::malformed, "malformed"},
    {ErrorCode::too_large, "too_large"},
    {ErrorCode::wrong_type, "wrong_type"},
    {ErrorCode::unknown_field, "unknown_field"},
    {ErrorCode::missing_field, "missing_field"},
    {ErrorCode::invalid_utf8, "invalid_utf8"},
    {ErrorCode::out_of_range, "out_of_range"},
    {ErrorCode::unknown_entity_type, "unknown_entity_type"},
    {ErrorCode::unknown_entity_field, "unknown_entity_field"},
    {ErrorCode::kind_mismatch, "kind_mismatch"},
    {ErrorCode::value_type_mismatch, "value_type_mismatch"},
    {ErrorCode::op_id_reused, "op_id_reused"},
    {ErrorCode::permission_denied, "permission_denied"},
    {ErrorCode::invalid_transition, "invalid_transition"},
    {ErrorCode::clock_skew, "clock_skew"},
    {ErrorCode::unsupported_protocol, "unsupported_protocol"},
    {ErrorCode::invalid_value, "invalid_value"},
    {ErrorCode::unauthenticated, "unauthenticated"},
    {ErrorCode::not_found, "not_found"},
    {ErrorCode::conflict, "conflict"},
    {ErrorCode::rate_limited, "rate_limited"},
    {ErrorCode::requirements_incomplete, "requirements_incomplete"},
    {ErrorCode::device_revoked, "device_revoked"},
    {ErrorCode::unknown_device, "unknown_device"},
    {ErrorCode::bad_signature, "bad_signature"},
    {ErrorCode::user_disabled, "user_disabled"},
    {ErrorCode::replayed, "replayed"},
    {ErrorCode::signed_rows, "signed_rows"},
    {ErrorCode::method_not_allowed, "method_not_allowed"},
    {ErrorCode::unsupported_media_type, "unsupported_media_type"},
    {ErrorCode::session_expired, "session_expired"},
}};

/// One name per code, in the order of the numbers 1..k_last_error_code.
constexpr bool names_in_order() {
    for (std::size_t i = 0; i < k_names.size(); ++i) {
        if (static_cast<std::size_t>(k_names[i].first) != i + 1 || k_names[i].second.empty()) {
            return false;
        }
    }
    return true;
}
static_assert(names_in_order(), "k_names must list every ErrorCode from 1 to k_last_error_code");
} // namespace

std::string_view to_string(ErrorCode code) noexcept {
    for (const auto& [c, name] : k_names) {
        if (c == code) {
            return name;
        }
    }
    return "internal";
}

std::optional<ErrorCode> error_code_from_string(std::string_view s) noexcept {
    for (const auto& [c, name] : k_names) {
        if (name == s) {
            return c;
        }
    }
    return std::nullopt;
}

static std::string compose(ErrorCode code, const std::string& message, const std::string& field) {
    std::string out{to_string(code)};
    out += ": ";
    if (!field.empty()) {
        out += field;
        out += ": ";
    }
    out += message;
    return out;
}

Error::Error(ErrorCode code, std::string message, std::string field)
    : std::runtime_error(compose(code, message, field)), m_code(code),
      m_message(std::move(message)), m_field(std::move(field)) {}

} // namespace otsync
