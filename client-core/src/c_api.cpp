// The C API: every function is noexcept, runs its body in try_catch (as LiteCore's
// c4ExceptionUtils), fills otsync_error only on failure and accepts NULL handles.
#include "otsync/client.h"
#include "otsync/client.hpp"

#include "otsync/error.hpp"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>

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
OTSYNC_SAME_CODE(OTSYNC_ERR_METHOD_NOT_ALLOWED, method_not_allowed);
OTSYNC_SAME_CODE(OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE, unsupported_media_type);
OTSYNC_SAME_CODE(OTSYNC_ERR_SESSION_EXPIRED, session_expired);
// ... and nothing after the last one: a code added to ErrorCode without its constant
// above fails here too.
static_assert(OTSYNC_ERR_SESSION_EXPIRED == static_cast<int>(otsync::k_last_error_code),
              "client.h must mirror every otsync::ErrorCode");
#undef OTSYNC_SAME_CODE

/// One request handed to an app's transport: the library's reference and the app's; the
/// last one released frees it, so a late answer after a deadline is harmless.
struct otsync_http_call {
    std::string method = "POST";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false; // cancelled or past its deadline
    otsync::client::HttpReply reply;
    std::atomic<int> refs{2};
};

namespace {

void release(otsync_http_call* call) {
    if (--call->refs == 0) {
        delete call;
    }
}

void finish(otsync_http_call* call, otsync::client::HttpReply reply) {
    {
        std::lock_guard lock(call->mu);
        if (!call->done) {
            call->done = true;
            call->reply = std::move(reply);
        }
    }
    call->cv.notify_all();
    release(call);
}

/// The app's transport behind the engine's Transport: sends, then waits for the answer,
/// the deadline or a cancel.
class HostTransport final : public otsync::client::Transport {
public:
    HostTransport(const otsync_transport& t, std::string base_url, std::uint32_t deadline_ms)
        : m_t(t), m_base(std::move(base_url)), m_deadline_ms(deadline_ms) {}

    otsync::client::HttpReply post(const std::string& path,
                                   const std::map<std::string, std::string>& headers,
                                   const std::string& body) override {
        auto* call = new otsync_http_call;
        call->url = m_base + path;
        call->headers.assign(headers.begin(), headers.end());
        call->body = body;
        {
            std::lock_guard lock(m_mu);
            m_current = call;
        }
        m_t.send(m_t.user, call);
        otsync::client::HttpReply reply;
        bool gave_up = false;
        {
            std::unique_lock lock(call->mu);
            const bool answered = call->cv.wait_for(lock, std::chrono::milliseconds(m_deadline_ms),
                                                    [&] { return call->done || call->abandoned; });
            if (call->done) {
                reply = call->reply;
            } else {
                gave_up = true;
                const bool cancelled = answered; // abandoned by cancel(), else the deadline
                call->abandoned = true;
                reply.error = cancelled ? OTSYNC_ERR_CANCELLED : OTSYNC_ERR_TIMEOUT;
                reply.error_message = cancelled
                                          ? std::string("cancelled")
                                          : "no answer within " + std::to_string(m_deadline_ms) +
                                                " ms from the app's transport";
            }
        }
        if (gave_up && m_t.cancel) {
            m_t.cancel(m_t.user, call);
        }
        {
            std::lock_guard lock(m_mu);
            m_current = nullptr;
        }
        release(call);
        return reply;
    }

    void cancel() override {
        std::lock_guard lock(m_mu);
        if (m_current) {
            {
                std::lock_guard c(m_current->mu);
                m_current->abandoned = true;
            }
            m_current->cv.notify_all();
        }
    }

private:
    otsync_transport m_t;
    std::string m_base;
    std::uint32_t m_deadline_ms;
    std::mutex m_mu;
    otsync_http_call* m_current = nullptr;
};

} // namespace

struct otsync_client {
    std::unique_ptr<otsync::client::Client> impl;
    // The transport: the app's, or the built-in one kept (with its connection) across
    // calls while the address and the options stay the same.
    std::mutex mu;
    std::optional<otsync_transport> host;
    otsync::client::HttpOptions http;
    std::shared_ptr<otsync::client::Transport> transport;
    std::string transport_url;

    std::shared_ptr<otsync::client::Transport> transport_for(const std::string& url) {
        std::lock_guard lock(mu);
        if (!transport || transport_url != url) {
            if (host) {
                transport = std::make_shared<HostTransport>(
                    *host, url, static_cast<std::uint32_t>(http.request_timeout_ms));
            } else {
                transport = otsync::client::make_http_transport(url, http);
            }
            transport_url = url;
        }
        return transport;
    }
    void reset_transport() {
        std::lock_guard lock(mu);
        transport.reset();
        transport_url.clear();
    }
};

namespace {

void set_error(otsync_error* err, int code, const char* message) noexcept {
    if (!err) {
        return;
    }
    err->code = code;
    const char* text = message ? message : "";
    std::size_t n = std::strlen(text);
    if (n > sizeof err->message - 1) {
        // Cut at a character boundary: a binding decodes the message as UTF-8.
        n = sizeof err->message - 1;
        while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
            --n; // text[n] continues a character: the cut goes before that character
        }
    }
    std::memcpy(err->message, text, n);
    err->message[n] = '\0';
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
                         const auto transport = client->transport_for(url);
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

char* otsync_client_photo(otsync_client_t* client, const char* ot_id, const char* serial,
                          const uint8_t* data, size_t len, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] {
        std::string quoted(1, '"');
        quoted
            .append(need(client).photo(need_str(ot_id, "the OT"), need_str(serial, "the serial"),
                                       data, len))
            .push_back('"');
        out = dup(quoted);
    });
    return out;
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

int otsync_client_deliver_handover(otsync_client_t* client, const char* handover_id,
                                   const char* delivered_by, const uint8_t* png, size_t png_len,
                                   otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client).deliver_handover(need_str(handover_id, "the handover"),
                                                       str(delivered_by), png, png_len);
                     })
               ? 0
               : -1;
}

int otsync_client_sync(otsync_client_t* client, otsync_progress_fn progress, void* user,
                       otsync_error* err) {
    struct Old {
        otsync_progress_fn fn;
        void* user;
    } old{progress, user};
    const auto adapt = [](const otsync_sync_progress* p, void* u) {
        const auto* o = static_cast<const Old*>(u);
        if (o->fn && p->retry_in_ms == 0) {
            o->fn(p->received, p->remaining, o->user);
        }
        return 0;
    };
    return otsync_client_sync_ex(client, adapt, &old, nullptr, err);
}

int otsync_client_sync_ex(otsync_client_t* client, otsync_sync_progress_fn progress, void* user,
                          char** result, otsync_error* err) {
    return otsync_client_sync_wait(client, 0, progress, user, result, err);
}

int otsync_client_sync_wait(otsync_client_t* client, uint32_t wait_ms,
                            otsync_sync_progress_fn progress, void* user, char** result,
                            otsync_error* err) {
    return try_catch(err,
                     [&] {
                         auto& c = need(client);
                         if (!c.enrolled()) {
                             throw otsync::client::ClientError(OTSYNC_ERR_NOT_ENROLLED,
                                                               "this device is not enrolled");
                         }
                         const auto transport = client->transport_for(c.server_url());
                         otsync::client::ProgressFn fn;
                         if (progress) {
                             fn = [&](const otsync::client::SyncProgress& p) {
                                 otsync_sync_progress out{};
                                 out.sent = p.sent;
                                 out.pending = p.pending;
                                 out.received = p.received;
                                 out.remaining = p.remaining;
                                 out.bytes_up = p.bytes_up;
                                 out.bytes_down = p.bytes_down;
                                 out.attempt = p.attempt;
                                 out.retry_in_ms = p.retry_in_ms;
                                 out.last_error = p.last_error;
                                 out.last_error_message = p.last_error_message.c_str();
                                 return progress(&out, user) == 0;
                             };
                         }
                         const auto stats = c.sync(*transport, fn, wait_ms);
                         if (result) {
                             *result = dup(c.sync_result_json(stats));
                         }
                     })
               ? 0
               : -1;
}

int otsync_client_set_http_options(otsync_client_t* client, const otsync_http_options* options,
                                   otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client);
                         if (!options) {
                             throw otsync::client::ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                                                               "no options (NULL)");
                         }
                         otsync::client::HttpOptions o;
                         if (options->connect_timeout_ms) {
                             o.connect_timeout_ms = static_cast<int>(options->connect_timeout_ms);
                         }
                         if (options->io_timeout_ms) {
                             o.io_timeout_ms = static_cast<int>(options->io_timeout_ms);
                         }
                         if (options->request_timeout_ms) {
                             o.request_timeout_ms = static_cast<int>(options->request_timeout_ms);
                         }
                         o.ca_file = str(options->ca_file);
                         o.pinned_sha256 = str(options->pinned_sha256);
                         {
                             std::lock_guard lock(client->mu);
                             client->http = o;
                         }
                         client->reset_transport();
                     })
               ? 0
               : -1;
}

int otsync_client_set_transport(otsync_client_t* client, const otsync_transport* transport,
                                otsync_error* err) {
    return try_catch(err,
                     [&] {
                         need(client);
                         if (transport && !transport->send) {
                             throw otsync::client::ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                                                               "a transport needs its send");
                         }
                         {
                             std::lock_guard lock(client->mu);
                             client->host = transport ? std::optional(*transport) : std::nullopt;
                         }
                         client->reset_transport();
                     })
               ? 0
               : -1;
}

int otsync_client_set_retry_policy(otsync_client_t* client, const otsync_retry_policy* policy,
                                   otsync_error* err) {
    return try_catch(err,
                     [&] {
                         auto& c = need(client);
                         if (!policy) {
                             throw otsync::client::ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                                                               "no retry policy (NULL)");
                         }
                         auto p = c.retry_policy(); // the batch target stays
                         p.initial_delay_ms = policy->initial_delay_ms;
                         p.max_delay_ms = policy->max_delay_ms;
                         p.max_elapsed_ms = policy->max_elapsed_ms;
                         p.jitter_percent = policy->jitter_percent;
                         c.set_retry_policy(p);
                     })
               ? 0
               : -1;
}

int otsync_client_set_batch_target(otsync_client_t* client, uint32_t batch_target_ms,
                                   otsync_error* err) {
    return try_catch(err,
                     [&] {
                         auto& c = need(client);
                         auto p = c.retry_policy();
                         p.batch_target_ms = batch_target_ms;
                         c.set_retry_policy(p);
                     })
               ? 0
               : -1;
}

char* otsync_client_handovers(otsync_client_t* client, otsync_error* err) {
    char* out = nullptr;
    try_catch(err, [&] { out = dup(need(client).handovers_json()); });
    return out;
}

int otsync_client_verify_receipt(otsync_client_t* client, const char* handover_id,
                                 otsync_error* err) {
    return try_catch(err,
                     [&] { need(client).verify_receipt(need_str(handover_id, "the handover")); })
               ? 0
               : -1;
}

void otsync_client_cancel(otsync_client_t* client) {
    if (client && client->impl) {
        client->impl->cancel();
    }
}

const char* otsync_http_call_method(const otsync_http_call* call) {
    return call ? call->method.c_str() : "";
}
const char* otsync_http_call_url(const otsync_http_call* call) {
    return call ? call->url.c_str() : "";
}
size_t otsync_http_call_header_count(const otsync_http_call* call) {
    return call ? call->headers.size() : 0;
}
const char* otsync_http_call_header_name(const otsync_http_call* call, size_t i) {
    return call && i < call->headers.size() ? call->headers[i].first.c_str() : nullptr;
}
const char* otsync_http_call_header_value(const otsync_http_call* call, size_t i) {
    return call && i < call->headers.size() ? call->headers[i].second.c_str() : nullptr;
}
const uint8_t* otsync_http_call_body(const otsync_http_call* call, size_t* len) {
    if (len) {
        *len = call ? call->body.size() : 0;
    }
    return call ? reinterpret_cast<const uint8_t*>(call->body.data()) : nullptr;
}
void otsync_http_call_complete(otsync_http_call* call, int status, const uint8_t* body,
                               size_t body_len) {
    if (!call) {
        return;
    }
    try {
        otsync::client::HttpReply r(
            status > 0 ? static_cast<unsigned>(status) : 0u,
            body ? std::string(reinterpret_cast<const char*>(body), body_len) : std::string());
        if (status <= 0) {
            r.error_message = "the app's transport completed with status " + std::to_string(status);
        }
        finish(call, std::move(r));
    } catch (...) {
        finish(call, {});
    }
}
void otsync_http_call_fail(otsync_http_call* call, int error_code, const char* message) {
    if (!call) {
        return;
    }
    otsync::client::HttpReply r;
    r.error = error_code == OTSYNC_ERR_TIMEOUT || error_code == OTSYNC_ERR_TLS ||
                      error_code == OTSYNC_ERR_CANCELLED
                  ? error_code
                  : OTSYNC_ERR_NETWORK;
    try {
        r.error_message = message ? message : "";
    } catch (...) {
    }
    finish(call, std::move(r));
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
