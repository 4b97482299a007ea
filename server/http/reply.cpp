// The error model; see reply.hpp.
#include "http/reply.hpp"

#include "otsync/json_string.hpp"

namespace otsync::server {

unsigned http_status(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::internal:
        return 500;
    case ErrorCode::unauthenticated:
    case ErrorCode::device_revoked:
    case ErrorCode::unknown_device:
    case ErrorCode::bad_signature:
    case ErrorCode::user_disabled:
        return 401;
    case ErrorCode::permission_denied:
        return 403;
    case ErrorCode::not_found:
        return 404;
    case ErrorCode::method_not_allowed:
        return 405;
    case ErrorCode::conflict:
    case ErrorCode::invalid_transition:
    case ErrorCode::requirements_incomplete:
    case ErrorCode::replayed:
        return 409;
    case ErrorCode::too_large:
        return 413;
    case ErrorCode::unsupported_media_type:
        return 415;
    case ErrorCode::unsupported_protocol:
        return 426;
    case ErrorCode::rate_limited:
        return 429;
    case ErrorCode::invalid_argument:
    case ErrorCode::truncated:
    case ErrorCode::malformed:
    case ErrorCode::wrong_type:
    case ErrorCode::unknown_field:
    case ErrorCode::missing_field:
    case ErrorCode::invalid_utf8:
    case ErrorCode::out_of_range:
    case ErrorCode::unknown_entity_type:
    case ErrorCode::unknown_entity_field:
    case ErrorCode::kind_mismatch:
    case ErrorCode::value_type_mismatch:
    case ErrorCode::op_id_reused:
    case ErrorCode::clock_skew:
    case ErrorCode::invalid_value:
    case ErrorCode::signed_rows:
        return 400;
    }
    return 400; // not a code at all
}

std::string error_message(const Error& e) {
    if (e.code() == ErrorCode::internal) {
        return "the server could not complete the request; retry later";
    }
    if (!e.field().empty() && e.message().find(e.field()) == std::string::npos) {
        return e.field() + ": " + e.message();
    }
    return e.message();
}

std::string error_body(ErrorCode code, std::string_view message, std::string_view field,
                       std::string_view extra_members) {
    std::string out = "{\"error\":{\"code\":";
    append_json_string(out, to_string(code));
    out += ",\"message\":";
    append_json_string(out, message);
    if (!field.empty()) {
        out += ",\"field\":";
        append_json_string(out, field);
    }
    out += '}';
    if (!extra_members.empty()) {
        out += ',';
        out += extra_members;
    }
    out += '}';
    return out;
}

Reply error_reply(const Error& e, std::string_view extra_members) {
    const std::string_view field =
        e.code() == ErrorCode::internal ? std::string_view() : std::string_view(e.field());
    return Reply{http_status(e.code()), "application/json",
                 error_body(e.code(), error_message(e), field, extra_members)};
}

} // namespace otsync::server
