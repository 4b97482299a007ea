// The C API: every function is noexcept, runs its body in try_catch (as LiteCore's
// c4ExceptionUtils), fills otsync_error only on failure and accepts NULL handles.
#include "otsync/client.h"
#include "otsync/client.hpp"

#include "otsync/error.hpp"

#include <cstring>
#include <new>

// The C enum mirrors otsync::ErrorCode one to one: a code added on one side only fails
// the build here.
#define OTSYNC_SAME_CODE(c, e) static_assert(c == static_cast<int>(otsync::ErrorCode::e), #e)
OTSYNC_SAME_CODE(OTSYNC_ERR_INTERNAL, internal);
OTSYNC_SAME_CODE(OTSYNC_ERR_INVALID_ARGUMENT, invalid_argument);
OTSYNC_SAME_CODE(OTSYNC_ERR_TRUNCATED, truncated);
OTSYNC_SAME_CODE(OTSYNC_ERR_MALFORMED, malformed);
OTSYNC_SAME_CODE(OTSYNC_ERR_TOO_LARGE, too_large);
OTSYNC_SAME_CODE(OTSYNC_ERR_WRONG_TYPE, wrong_type);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNKNOWN_FIELD, unknown_field);
OTSYNC_SAME_CODE(OTSYNC_ERR_MISSING_FIELD, missing_field);
OTSYNC_SAME_CODE(OTSYNC_ERR_INVALID_UTF8, invalid_utf8);
OTSYNC_SAME_CODE(OTSYNC_ERR_OUT_OF_RANGE, out_of_range);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNKNOWN_ENTITY_TYPE, unknown_entity_type);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNKNOWN_ENTITY_FIELD, unknown_entity_field);
OTSYNC_SAME_CODE(OTSYNC_ERR_KIND_MISMATCH, kind_mismatch);
OTSYNC_SAME_CODE(OTSYNC_ERR_VALUE_TYPE_MISMATCH, value_type_mismatch);
OTSYNC_SAME_CODE(OTSYNC_ERR_OP_ID_REUSED, op_id_reused);
OTSYNC_SAME_CODE(OTSYNC_ERR_PERMISSION_DENIED, permission_denied);
OTSYNC_SAME_CODE(OTSYNC_ERR_INVALID_TRANSITION, invalid_transition);
OTSYNC_SAME_CODE(OTSYNC_ERR_CLOCK_SKEW, clock_skew);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNSUPPORTED_PROTOCOL, unsupported_protocol);
OTSYNC_SAME_CODE(OTSYNC_ERR_INVALID_VALUE, invalid_value);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNAUTHENTICATED, unauthenticated);
OTSYNC_SAME_CODE(OTSYNC_ERR_SERVER_NOT_FOUND, not_found);
OTSYNC_SAME_CODE(OTSYNC_ERR_CONFLICT, conflict);
OTSYNC_SAME_CODE(OTSYNC_ERR_RATE_LIMITED, rate_limited);
OTSYNC_SAME_CODE(OTSYNC_ERR_REQUIREMENTS_INCOMPLETE, requirements_incomplete);
OTSYNC_SAME_CODE(OTSYNC_ERR_DEVICE_REVOKED, device_revoked);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNKNOWN_DEVICE, unknown_device);
OTSYNC_SAME_CODE(OTSYNC_ERR_BAD_SIGNATURE, bad_signature);
OTSYNC_SAME_CODE(OTSYNC_ERR_USER_DISABLED, user_disabled);
OTSYNC_SAME_CODE(OTSYNC_ERR_REPLAYED, replayed);
OTSYNC_SAME_CODE(OTSYNC_ERR_SIGNED_ROWS, signed_rows);
#undef OTSYNC_SAME_CODE

struct otsync_client {
    std::unique_ptr<otsync::client::Client> impl;
};

namespace {

void set_error(otsync_error* err, int code, const char* message) noexcept {
    if (!err) {
        return;
    }
    err->code = code;
    std::strncpy(err->message, message ? message : "", sizeof err->message - 1);
    err->message[sizeof err->message - 1] = '\0';
}

/// Runs `body`; maps every exception to an otsync_error. Returns false on failure.
template <class F>
bool try_catch(otsync_error* err, F&& body) noexcept {
    try {
        body();
        return true;
    } catch (const otsync::client::ClientError& e) {
        set_error(err, e.code(), e.what());
    } catch (const otsync::Error& e) {
        set_error(err, static_cast<int>(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        set_error(err, OTSYNC_ERR_INTERNAL, "out of memory");
    } catch (const std::exception& e) {
        set_error(err, OTSYNC_ERR_INTERNAL, e.what());
    } catch (...) {
        set_error(err, OTSYNC_ERR_INTERNAL, "unknown failure");
    }
    return false;
}

otsync::client::Client& need(otsync_client_t* c) {
    if (!c || !c->impl) {
        throw otsync::client::ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "no client (NULL handle)");
    }
    return *c->impl;
}

std::string str(const char* s) {
    return s ? std::string(s) : std::string();
}

std::string need_str(const char* s, const char* what) {
    if (!s || !*s) {
        throw otsync::client::ClientError(OTSYNC_ERR_MISSING_FIELD,
                                          std::string(what) + " is required");
    }
    return s;
}

char* dup(const std::string& s) {
    char* out = static_cast<char*>(std::malloc(s.size() + 1));
    if (!out) {
        throw std::bad_alloc();
    }
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

} // namespace

extern "C" {

otsync_client_t* otsync_client_open(const char* db_path, const uint8_t key[32], otsync_error* err) {
    otsync_client_t* out = nullptr;
    try_catch(err, [&] {
        if (!key) {
            throw otsync::client::ClientError(OTSYNC_ERR_MISSING_FIELD,
                                              "the database key is required");
        }
        std::array<std::uint8_t, 32> k{};
        std::memcpy(k.data(), key, k.size());
        auto c = std::make_unique<otsync_client>();
        c->impl =
            std::make_unique<otsync::client::Client>(need_str(db_path, "the database path"), k);
        out = c.release();
    });
    return out;
}

void otsync_client_close(otsync_client_t** client) {
    if (client && *client) {
        delete *client;
        *client = nullptr;
    }
}

int otsync_client_enroll(otsync_client_t* client, const char* server_url, const char* code,
                         const char* label, otsync_error* err) {
    return try_catch(err,
                     [&] {
                         auto& c = need(client);
                         const std::string url = need_str(server_url, "the server address");
                         auto transport = otsync::client::make_http_transport(url);
                         c.enroll(*transport, url, need_str(code, "the enrollment code"),
                                  str(label));
                     })
               ? 0
               : -1;
}

char* otsync_client_list_ots(otsync_client_t* client, const char* status, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] { out = dup(need(client).list_ots_json(str(status))); });
    return out;
}

char* otsync_client_list_ots_between(otsync_client_t* client, const char* status, int64_t from_ms,
                                     int64_t to_ms, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] { out = dup(need(client).list_ots_json(str(status), from_ms, to_ms)); });
    return out;
}

char* otsync_client_show_ot(otsync_client_t* client, const char* ot_id, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] { out = dup(need(client).show_ot_json(need_str(ot_id, "the OT"))); });
    return out;
}

int otsync_client_set_status(otsync_client_t* client, const char* ot_id, const char* status,
                             const char* reason, otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client).set_status(need_str(ot_id, "the OT"),
                                                 need_str(status, "the status"), str(reason));
                     })
               ? 0
               : -1;
}

int otsync_client_collect(otsync_client_t* client, const char* ot_id, const char* serial,
                          const char* description, const char* reason, const char* defect,
                          const char* observations, otsync_verdict* verdict, otsync_error* err) {
    return try_catch(err,
                     [&] {
                         const auto v = need(client).collect(
                             need_str(ot_id, "the OT"), need_str(serial, "the serial"),
                             str(description), need_str(reason, "the reason"), str(defect),
                             str(observations));
                         if (verdict) {
                             *verdict = v;
                         }
                     })
               ? 0
               : -1;
}

int otsync_client_report_missing(otsync_client_t* client, const char* ot_id, const char* serial,
                                 const char* reason, otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client).report_missing(need_str(ot_id, "the OT"),
                                                     need_str(serial, "the serial"),
                                                     need_str(reason, "the reason"));
                     })
               ? 0
               : -1;
}

int otsync_client_void_item(otsync_client_t* client, const char* ot_id, const char* serial,
                            otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client).void_item(need_str(ot_id, "the OT"),
                                                need_str(serial, "the serial"));
                     })
               ? 0
               : -1;
}

int otsync_client_verify(otsync_client_t* client, const char* ot_id, const char* serial,
                         otsync_verdict* verdict, otsync_error* err) {
    return try_catch(err,
                     [&] {
                         const auto v = need(client).verify(need_str(ot_id, "the OT"),
                                                            need_str(serial, "the serial"));
                         if (verdict) {
                             *verdict = v;
                         }
                     })
               ? 0
               : -1;
}

int otsync_client_sign(otsync_client_t* client, const char* ot_id, const uint8_t* png,
                       size_t png_len, otsync_error* err) {
    return try_catch(err, [&] { need(client).sign(need_str(ot_id, "the OT"), png, png_len); }) ? 0
                                                                                               : -1;
}

int otsync_client_reopen_signature(otsync_client_t* client, const char* ot_id, const char* reason,
                                   otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client).reopen_signature(need_str(ot_id, "the OT"),
                                                       need_str(reason, "the reason"));
                     })
               ? 0
               : -1;
}

char* otsync_client_create_handover(otsync_client_t* client, const char* zone, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] {
        std::string quoted(1, '"'); // built by appends: GCC 12 -O3 misreads "\"" + s (-Wrestrict)
        quoted.append(need(client).create_handover(str(zone))).push_back('"');
        out = dup(quoted);
    });
    return out;
}

int otsync_client_sync(otsync_client_t* client, otsync_progress_fn progress, void* user,
                       otsync_error* err) {
    return try_catch(err,
                     [&] {
                         auto& c = need(client);
                         if (!c.enrolled()) {
                             throw otsync::client::ClientError(OTSYNC_ERR_NOT_ENROLLED,
                                                               "this device is not enrolled");
                         }
                         auto transport = otsync::client::make_http_transport(c.server_url());
                         c.sync(*transport, [&](std::uint64_t received, std::uint64_t remaining) {
                             if (progress) {
                                 progress(received, remaining, user);
                             }
                         });
                     })
               ? 0
               : -1;
}

char* otsync_client_status(otsync_client_t* client, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] { out = dup(need(client).status_json()); });
    return out;
}

void otsync_string_free(char** s) {
    if (s && *s) {
        std::free(*s);
        *s = nullptr;
    }
}

} // extern "C"
