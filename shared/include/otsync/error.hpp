// otsync::Error: the one error type of the project, and the one list of codes.
// The C API's enum and the HTTP error body's "code" mirror ErrorCode one to one,
// so a code's spelling (to_string) is part of the wire contract: never rename one.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace otsync {

enum class ErrorCode : std::uint16_t {
    internal = 1,         // a bug or an unexpected library failure
    invalid_argument = 2, // a caller passed something that makes no sense
    truncated = 3,        // input ended before the message did
    malformed = 4,        // input is not a valid encoding at all
    too_large = 5,        // input or a part of it exceeds a configured limit
    wrong_type = 6,       // a JSON member or value has the wrong type
    unknown_field = 7,    // a JSON member that the message does not have
    missing_field = 8,    // a required JSON member is absent
    invalid_utf8 = 9,     // text that is not valid UTF-8
    out_of_range = 10,    // a number outside what the field accepts
    unknown_entity_type = 11,
    unknown_entity_field = 12,
    kind_mismatch = 13,       // op kind does not fit the field (e.g. add on a register)
    value_type_mismatch = 14, // op value does not fit the field's type
    op_id_reused = 15,        // an op id seen before with different content
    permission_denied = 16,
    invalid_transition = 17,
    clock_skew = 18,
    unsupported_protocol = 19,
    invalid_value = 20,           // value of the right type but not an allowed one
    unauthenticated = 21,         // no session, or an expired, unknown or revoked one
    not_found = 22,               // no such case, OT, handover, user, contract...
    conflict = 23,                // the state changed under the request (e.g. already received)
    rate_limited = 24,            // too many attempts: wait and retry
    requirements_incomplete = 25, // Anexo 2 checklist not complete and no supervisor override
    // Why the server refused a device's sync request (401/409): each asks for a different
    // remedy, and only a proven revocation lets a device delete anything.
    device_revoked = 26, // revoked by an operator; the answer carries the server's signed proof
    unknown_device = 27, // no enrolled device has this replica (e.g. a server restored from backup)
    bad_signature = 28,  // the request's signature does not verify with the device's key
    user_disabled = 29,  // the device's user is disabled (for now)
    replayed = 30,       // the request counter is not above the last one seen
    signed_rows = 31,    // the OT's rows are signed by the customer: re-sign to change them
    // HTTP requests the server cannot take in that form (405, 415): the method is not one
    // the path answers; the body's Content-Type is not one the route reads.
    method_not_allowed = 32,
    unsupported_media_type = 33,
    // A device's session (protocol 2) is unknown to the server or past its expiry: open a
    // new one with the handshake and send the request again; nothing of it was stored.
    session_expired = 34,
};

/// The highest code: every number from 1 to it is a code (error.cpp checks the names).
inline constexpr ErrorCode k_last_error_code = ErrorCode::session_expired;

/// The stable wire spelling of a code ("op_id_reused", ...).
std::string_view to_string(ErrorCode code) noexcept;
/// The inverse of to_string; nullopt for an unknown spelling.
std::optional<ErrorCode> error_code_from_string(std::string_view s) noexcept;

/// Thrown for failures that end an operation (bad input, broken invariant).
/// `field` names the offending JSON member path ("ops[3].value") when known.
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string message, std::string field = {});

    ErrorCode code() const noexcept { return m_code; }
    const std::string& field() const noexcept { return m_field; }
    /// The message without the field prefix.
    const std::string& message() const noexcept { return m_message; }

private:
    ErrorCode m_code;
    std::string m_message;
    std::string m_field;
};

} // namespace otsync
