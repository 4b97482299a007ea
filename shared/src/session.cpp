// The sync session layer; see session.hpp.
#include "otsync/session.hpp"

#include "otsync/codec.hpp"

#include <algorithm>

namespace otsync::session {

namespace {

std::string header(const std::map<std::string, std::string>& h, const std::string& name) {
    const auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
}

/// Decimal ASCII digits only, 1 to 20 of them, at most 2^64 - 1 (protocol.md §2.2).
std::optional<std::uint64_t> parse_u64(const std::string& s) {
    if (s.empty() || s.size() > 20) {
        return std::nullopt;
    }
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return std::nullopt;
        }
        v = v * 10 + d;
    }
    return v;
}

} // namespace

Envelope sign_request(std::uint64_t replica, std::uint64_t counter, std::string_view path,
                      std::string_view body, const SecretKey& key, std::string content_type) {
    Envelope e;
    e.content_type = std::move(content_type);
    e.replica = replica;
    e.counter = counter;
    e.signature = sign(sync_signing_string("POST", path, counter, body), key);
    return e;
}

Envelope mac_request(std::uint64_t replica, std::uint64_t counter, std::string_view path,
                     std::string_view body, const SessionId& session, const MacKey& key,
                     std::string content_type) {
    Envelope e;
    e.content_type = std::move(content_type);
    e.replica = replica;
    e.counter = counter;
    e.session = session;
    e.mac = mac(sync_mac_string("POST", path, counter, session, body), key);
    return e;
}

std::map<std::string, std::string> headers_of(const Envelope& e) {
    std::map<std::string, std::string> h{{"content-type", e.content_type},
                                         {"x-otsync-replica", std::to_string(e.replica)},
                                         {"x-otsync-counter", std::to_string(e.counter)}};
    if (e.signature) {
        h["x-otsync-signature"] = to_base64(*e.signature);
    }
    if (e.session) {
        h["x-otsync-session"] = to_base64(*e.session);
        h["x-otsync-mac"] = to_base64(e.mac);
    }
    return h;
}

std::optional<Envelope> read_envelope(const std::map<std::string, std::string>& headers) {
    Envelope e;
    // The media type, without parameters such as "; charset=utf-8".
    e.content_type = header(headers, "content-type");
    e.content_type = e.content_type.substr(0, e.content_type.find(';'));
    while (!e.content_type.empty() && e.content_type.back() == ' ') {
        e.content_type.pop_back();
    }
    const auto replica = parse_u64(header(headers, "x-otsync-replica"));
    const auto counter = parse_u64(header(headers, "x-otsync-counter"));
    if (!replica || !counter) {
        return std::nullopt;
    }
    e.replica = *replica;
    e.counter = *counter;
    const bool signed_request = headers.contains("x-otsync-signature");
    const bool session_request = headers.contains("x-otsync-session");
    if (signed_request == session_request) {
        return std::nullopt; // neither, or both
    }
    // Exactly `out.size()` bytes of base64, into `out`.
    const auto fixed = [&](const char* name, auto& out) {
        const auto bytes = from_base64(header(headers, name), out.size());
        if (!bytes || bytes->size() != out.size()) {
            return false;
        }
        std::copy(bytes->begin(), bytes->end(), out.begin());
        return true;
    };
    if (signed_request) {
        Signature sig{};
        if (!fixed("x-otsync-signature", sig)) {
            return std::nullopt;
        }
        e.signature = sig;
        return e;
    }
    SessionId id{};
    if (!fixed("x-otsync-session", id) || !fixed("x-otsync-mac", e.mac)) {
        return std::nullopt;
    }
    e.session = id;
    return e;
}

bool verify_envelope(const Envelope& e, std::string_view path, std::string_view body,
                     const PublicKey& device_key) {
    return e.signature &&
           verify(*e.signature, sync_signing_string("POST", path, e.counter, body), device_key);
}

bool verify_envelope_mac(const Envelope& e, std::string_view path, std::string_view body,
                         const MacKey& key) {
    return e.session &&
           verify_mac(e.mac, sync_mac_string("POST", path, e.counter, *e.session, body), key);
}

void sign_ops(SyncRequest& r, const SecretKey& key) {
    r.ops_signature.clear();
    if (r.protocol_version >= 2 && !r.ops.empty()) {
        const Signature sig = sign(ops_signing_string(r.ops), key);
        r.ops_signature.assign(sig.begin(), sig.end());
    }
}

Reaction reaction_of(unsigned status, std::optional<ErrorCode> code) {
    if (status == 200) {
        return Reaction::apply;
    }
    if (status == 0 || status >= 500 || status == 409) {
        return Reaction::retry;
    }
    if (status == 426) {
        return Reaction::update_app;
    }
    if (status == 413) {
        return Reaction::smaller_batch;
    }
    if (status == 401 || status == 403) {
        switch (code.value_or(ErrorCode::unauthenticated)) {
        case ErrorCode::device_revoked:
            return Reaction::wipe_if_proven;
        case ErrorCode::unknown_device:
        case ErrorCode::bad_signature:
            return Reaction::re_enroll;
        case ErrorCode::session_expired:
            return Reaction::new_session;
        default:
            return Reaction::wait;
        }
    }
    return Reaction::client_bug;
}

unsigned status_of_refusal(ErrorCode code) noexcept {
    // One status per code: the server's whole table (server/http/reply.cpp's http_status
    // returns it). No default, so a new code without a status does not build.
    switch (code) {
    case ErrorCode::internal:
        return 500;
    case ErrorCode::unauthenticated:
    case ErrorCode::device_revoked:
    case ErrorCode::unknown_device:
    case ErrorCode::bad_signature:
    case ErrorCode::user_disabled:
    case ErrorCode::session_expired:
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

} // namespace otsync::session
