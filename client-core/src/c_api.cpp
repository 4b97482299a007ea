// The C API: every function is noexcept, runs its body in try_catch (as LiteCore's
// c4ExceptionUtils), fills otsync_error only on failure and accepts NULL handles.
#include "otsync/client.h"
#include "otsync/client.hpp"

#include "otsync/error.hpp"

#include <cstring>
#include <new>

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
