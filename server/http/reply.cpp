// The error model; see reply.hpp.
#include "http/reply.hpp"

#include "otsync/json_string.hpp"
#include "otsync/session.hpp"

namespace otsync::server {

unsigned http_status(ErrorCode code) noexcept {
    // The table is the devices' too: one definition, in the shared session layer.
    return session::status_of_refusal(code);
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
