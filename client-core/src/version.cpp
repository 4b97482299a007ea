// otsync_version and otsync_error_name: the library's version and the stable spelling of
// the C API's error codes (client.h). The spellings are part of the contract
// (docs/client-api.md, "Versioning and ABI"): never rename one, only add.
#include "otsync/version.h"
#include "otsync/client.h"
#include "otsync/error.hpp"

#include <string_view>

namespace {

// The client-only codes (100 and up): not on the wire, so not in otsync::ErrorCode.
const char* client_error_name(int code) noexcept {
    switch (code) {
    case OTSYNC_ERR_NOT_ENROLLED:
        return "not_enrolled";
    case OTSYNC_ERR_NOT_FOUND:
        // Not "not_found": that is OTSYNC_ERR_SERVER_NOT_FOUND (22), the server's code.
        return "not_found_on_device";
    case OTSYNC_ERR_NETWORK:
        return "network";
    case OTSYNC_ERR_REVOKED:
        return "revoked";
    case OTSYNC_ERR_WRONG_KEY:
        return "wrong_key";
    case OTSYNC_ERR_BUSY:
        return "busy";
    case OTSYNC_ERR_TIMEOUT:
        return "timeout";
    case OTSYNC_ERR_CANCELLED:
        return "cancelled";
    case OTSYNC_ERR_TLS:
        return "tls";
    default:
        return "unknown";
    }
}

} // namespace

extern "C" {

const char* otsync_version(void) {
    return OTSYNC_VERSION_STRING;
}

const char* otsync_error_name(int code) {
    if (code == OTSYNC_OK) {
        return "ok";
    }
    if (code > 0 && code < 100) {
        // The wire spelling, when the code is one otsync::ErrorCode has: to_string falls
        // back to "internal" for a number it does not know, so check the round trip. The
        // spellings are string literals, hence NUL-terminated.
        const auto ec = static_cast<otsync::ErrorCode>(code);
        const std::string_view name = otsync::to_string(ec);
        if (otsync::error_code_from_string(name) == ec) {
            return name.data();
        }
        return "unknown";
    }
    return client_error_name(code);
}

} // extern "C"
