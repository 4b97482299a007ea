// The sync session layer both ends use: the signed envelope and the reaction table.
#include "otsync/session.hpp"

#include <doctest/doctest.h>

using namespace otsync;
using namespace otsync::session;

TEST_CASE("session: an envelope signs the exact body and reads back from its headers") {
    const auto kp = SigningKeyPair::generate();
    const std::string body = "the request body";
    const Envelope e = sign_request(7, 42, "/v1/sync", body, kp.secret);
    auto headers = headers_of(e);
    headers["content-type"] += "; charset=utf-8"; // parameters are not the media type
    const auto back = read_envelope(headers);
    REQUIRE(back);
    CHECK(back->content_type == "application/x-otsync");
    CHECK(back->replica == 7);
    CHECK(back->counter == 42);
    CHECK(verify_envelope(*back, "/v1/sync", body, kp.public_key));
    CHECK_FALSE(verify_envelope(*back, "/v1/sync", body + " ", kp.public_key));
    CHECK_FALSE(verify_envelope(*back, "/v1/other", body, kp.public_key));
    CHECK_FALSE(verify_envelope(*back, "/v1/sync", body, SigningKeyPair::generate().public_key));

    for (const char* name : {"x-otsync-replica", "x-otsync-counter", "x-otsync-signature"}) {
        CAPTURE(name);
        auto stripped = headers_of(e);
        stripped.erase(name);
        CHECK_FALSE(read_envelope(stripped));
    }
    auto bad = headers_of(e);
    bad["x-otsync-replica"] = "+7";
    CHECK_FALSE(read_envelope(bad));
    bad = headers_of(e);
    bad["x-otsync-counter"] = "18446744073709551616"; // 2^64
    CHECK_FALSE(read_envelope(bad));
}

TEST_CASE("session: every refusal the server makes maps to the reaction the device takes") {
    CHECK(reaction_of(200, std::nullopt) == Reaction::apply);
    CHECK(reaction_of(0, std::nullopt) == Reaction::retry);
    CHECK(reaction_of(503, ErrorCode::internal) == Reaction::retry);
    const struct {
        ErrorCode code;
        Reaction reaction;
    } table[] = {
        {ErrorCode::device_revoked, Reaction::wipe_if_proven},
        {ErrorCode::unknown_device, Reaction::re_enroll},
        {ErrorCode::bad_signature, Reaction::re_enroll},
        {ErrorCode::user_disabled, Reaction::wait},
        {ErrorCode::unauthenticated, Reaction::wait},
        {ErrorCode::replayed, Reaction::retry},
        {ErrorCode::unsupported_protocol, Reaction::update_app},
        {ErrorCode::too_large, Reaction::smaller_batch},
        {ErrorCode::malformed, Reaction::client_bug},
    };
    for (const auto& row : table) {
        CAPTURE(to_string(row.code));
        // The server's status for the code, read back by the device: the same table.
        CHECK(reaction_of(status_of_refusal(row.code), row.code) == row.reaction);
    }
    // Only a revocation may wipe, and only with its proof (checked by the client).
    for (int c = 1; c <= static_cast<int>(k_last_error_code); ++c) {
        const auto code = static_cast<ErrorCode>(c);
        if (code != ErrorCode::device_revoked) {
            CHECK(reaction_of(status_of_refusal(code), code) != Reaction::wipe_if_proven);
        }
    }
}
