// The session layer of POST /v1/sync, once for both ends (docs/protocol.md §2.2, §2.3):
// the signed envelope that travels in the headers beside the body, and the table that
// turns an answer (HTTP status and error code) into what a device does about it. The
// server builds its refusals from the same table the client reads them with.
#pragma once

#include "otsync/crypto.hpp"
#include "otsync/error.hpp"
#include "otsync/protocol.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace otsync::session {

/// What a sync request carries besides its body: the device's Ed25519 signature (every
/// protocol version), or the session it opened and a MAC with the session's key
/// (protocol 2).
struct Envelope {
    std::string content_type; // the media type, without parameters
    std::uint64_t replica = 0;
    std::uint64_t counter = 0;
    std::optional<Signature> signature; // X-Otsync-Signature
    std::optional<SessionId> session;   // X-Otsync-Session, with `mac` (X-Otsync-Mac)
    MacTag mac{};
};

/// Signs `body` for `path` as device `replica` with request counter `counter`.
Envelope sign_request(std::uint64_t replica, std::uint64_t counter, std::string_view path,
                      std::string_view body, const SecretKey& key,
                      std::string content_type = "application/x-otsync");
/// MACs `body` for `path` in `session` with the session's key.
Envelope mac_request(std::uint64_t replica, std::uint64_t counter, std::string_view path,
                     std::string_view body, const SessionId& session, const MacKey& key,
                     std::string content_type = "application/x-otsync");
/// The request headers (lower-case names) of an envelope.
std::map<std::string, std::string> headers_of(const Envelope& e);

/// Reads an envelope from request headers (lower-case names): nullopt when the replica or
/// the counter is missing or malformed, or when neither a signature nor a session and its
/// MAC are there (or both are), well formed (the content type may be empty).
std::optional<Envelope> read_envelope(const std::map<std::string, std::string>& headers);
/// Whether the envelope's signature covers `path` and these exact body bytes.
bool verify_envelope(const Envelope& e, std::string_view path, std::string_view body,
                     const PublicKey& device_key);
/// Whether the envelope's MAC covers `path`, its session and these exact body bytes.
bool verify_envelope_mac(const Envelope& e, std::string_view path, std::string_view body,
                         const MacKey& key);

/// Protocol 2: the device's signature over the request's ops (ops_signature; none when it
/// has no ops, or for an older version).
void sign_ops(SyncRequest& r, const SecretKey& key);

/// What a device does with an answer to a sync request.
enum class Reaction : std::uint8_t {
    apply,          // 200: process results, ops, evictions, cursor
    retry,          // no answer, 5xx, a replayed counter: resend later as a new request
    wipe_if_proven, // device_revoked: wipe only when the signed proof verifies
    re_enroll,      // unknown_device, bad_signature: keep everything; enroll again
    new_session,    // session_expired: open a new session, then resend as a new request
    wait,           // user_disabled, unauthenticated: keep everything; sync again later
    update_app,     // 426: keep everything; a newer app is needed
    smaller_batch,  // 413: send fewer ops per request
    client_bug,     // other 4xx: log it, do not resend the same body
};

/// The device's reaction to an answer: `status` 0 is no answer at all.
Reaction reaction_of(unsigned status, std::optional<ErrorCode> code);
/// The HTTP status of an error with `code`: the whole table, the same as the server's
/// http_status (a test checks every code), so a device reads a refusal as it was sent.
unsigned status_of_refusal(ErrorCode code) noexcept;

} // namespace otsync::session
