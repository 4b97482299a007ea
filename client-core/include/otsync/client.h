/* otsync client-core C API: the offline replica of a technician's handheld, for
 * Android (JNI) and iOS (Swift) bindings and for otsync-tech.
 *
 * Conventions:
 *  - Opaque handles; every function is safe to call with NULL handles (it fails).
 *  - Every function that can fail takes an `otsync_error*` (may be NULL) that is
 *    filled only on failure; the return value says whether it failed (0 = ok for int
 *    returns, NULL for pointer returns).
 *  - Strings in and out are UTF-8. Returned strings are JSON documents owned by the
 *    caller: free them with otsync_string_free.
 *  - Destroy functions take T** and set it to NULL.
 *  - Ids (OTs, items, handovers) are 32 lowercase hex digits.
 *  - Nothing here blocks on the network except otsync_client_enroll and
 *    otsync_client_sync.
 *  - Threads: one handle may be used from several threads at once. Calls are serialized
 *    on the handle's lock, which a sync or an enrollment releases while it waits for the
 *    network, so the technician can go on recording during a sync. Syncs run one at a
 *    time; the progress callback runs without the lock and may call this API.
 *  - One handle per database file: a second otsync_client_open of a file that is open
 *    (in this process or another) fails with OTSYNC_ERR_BUSY. */
#ifndef OTSYNC_CLIENT_H
#define OTSYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "otsync/version.h"

/* OTSYNC_API marks the exported functions: the shared library is built with hidden
 * visibility and exports these alone (docs/client-api.md, "Versioning and ABI"). */
#ifndef OTSYNC_API
#if defined(__GNUC__) || defined(__clang__)
#define OTSYNC_API __attribute__((visibility("default")))
#else
#define OTSYNC_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: the same numbers and meanings as otsync::ErrorCode (error.hpp) and the
 * "code" of the server's JSON errors; client-only conditions follow from 100. */
typedef enum otsync_error_code {
    OTSYNC_OK = 0,
    OTSYNC_ERR_INTERNAL = 1,
    OTSYNC_ERR_INVALID_ARGUMENT = 2,
    OTSYNC_ERR_TRUNCATED = 3,
    OTSYNC_ERR_MALFORMED = 4,
    OTSYNC_ERR_TOO_LARGE = 5,
    OTSYNC_ERR_WRONG_TYPE = 6,
    OTSYNC_ERR_UNKNOWN_FIELD = 7,
    OTSYNC_ERR_MISSING_FIELD = 8,
    OTSYNC_ERR_INVALID_UTF8 = 9,
    OTSYNC_ERR_OUT_OF_RANGE = 10,
    OTSYNC_ERR_UNKNOWN_ENTITY_TYPE = 11,
    OTSYNC_ERR_UNKNOWN_ENTITY_FIELD = 12,
    OTSYNC_ERR_KIND_MISMATCH = 13,
    OTSYNC_ERR_VALUE_TYPE_MISMATCH = 14,
    OTSYNC_ERR_OP_ID_REUSED = 15,
    OTSYNC_ERR_PERMISSION_DENIED = 16,
    OTSYNC_ERR_INVALID_TRANSITION = 17,
    OTSYNC_ERR_CLOCK_SKEW = 18,
    OTSYNC_ERR_UNSUPPORTED_PROTOCOL = 19,
    OTSYNC_ERR_INVALID_VALUE = 20,
    OTSYNC_ERR_UNAUTHENTICATED = 21,
    OTSYNC_ERR_SERVER_NOT_FOUND = 22, /* the server has no such record */
    OTSYNC_ERR_CONFLICT = 23,
    OTSYNC_ERR_RATE_LIMITED = 24,
    OTSYNC_ERR_REQUIREMENTS_INCOMPLETE = 25,
    /* Refusals of a sync request (see otsync_client_sync): nothing is deleted on any. */
    OTSYNC_ERR_DEVICE_REVOKED = 26, /* "revoked" without a valid proof: nothing was deleted */
    OTSYNC_ERR_UNKNOWN_DEVICE = 27, /* the server does not know this device: re-enroll */
    OTSYNC_ERR_BAD_SIGNATURE = 28,  /* the server does not accept this device's signature */
    OTSYNC_ERR_USER_DISABLED = 29,  /* the technician's user is disabled: retry when enabled */
    OTSYNC_ERR_REPLAYED = 30,       /* request counter reused (retried by the library itself) */
    OTSYNC_ERR_SIGNED_ROWS = 31,    /* the OT's rows are signed: reopen the signature first */
    /* The server's 405 (the path takes another method) and 415 (a body type it does not read). */
    OTSYNC_ERR_METHOD_NOT_ALLOWED = 32,
    OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE = 33,
    OTSYNC_ERR_SESSION_EXPIRED = 34, /* the sync session ended (handled by the library itself) */
    OTSYNC_ERR_NOT_ENROLLED = 100,   /* enroll first */
    OTSYNC_ERR_NOT_FOUND = 101,      /* no such OT / item in this device's scope */
    OTSYNC_ERR_NETWORK = 102,        /* server unreachable or the connection was cut: retry later */
    OTSYNC_ERR_REVOKED = 103,        /* a proven revocation: this device's data was wiped */
    OTSYNC_ERR_WRONG_KEY = 104,      /* the database key does not open this database */
    OTSYNC_ERR_BUSY = 105,           /* the database is open in another handle or process */
    OTSYNC_ERR_TIMEOUT = 106,        /* the server did not answer within the deadline */
    OTSYNC_ERR_CANCELLED = 107,      /* otsync_client_cancel ended the call: nothing was lost */
    OTSYNC_ERR_TLS = 108             /* the TLS handshake failed or the certificate is refused */
} otsync_error_code;

typedef struct otsync_error {
    int code;          /* otsync_error_code */
    char message[512]; /* one line, UTF-8, for logs; user-facing text comes from the app */
} otsync_error;

typedef struct otsync_client otsync_client_t;

/* The verdict of a scanned serial against the OT's expected equipment. */
typedef enum otsync_verdict {
    OTSYNC_VERDICT_MATCHED = 0,         /* expected on this OT, first time recorded */
    OTSYNC_VERDICT_UNEXPECTED = 1,      /* not on the expected list: recorded anyway */
    OTSYNC_VERDICT_ALREADY_RECORDED = 2 /* this serial was already recorded on this OT */
} otsync_verdict;

/* Opens (creating if needed) the device database at `db_path`, exclusively
 * (OTSYNC_ERR_BUSY while another handle holds it). `key` is the 32-byte
 * database key from the platform keystore; it encrypts the device's secret key and
 * every stored op at rest (XChaCha20-Poly1305). The caller may wipe `key` afterwards. */
OTSYNC_API otsync_client_t* otsync_client_open(const char* db_path, const uint8_t key[32],
                                               otsync_error* err);
OTSYNC_API void otsync_client_close(otsync_client_t** client);

/* Enrolls this device with the server at `server_url` (e.g. "http://127.0.0.1:8080")
 * using a one-time code from otsync-admin. An enrolled device may enroll again (after
 * OTSYNC_ERR_UNKNOWN_DEVICE or OTSYNC_ERR_BAD_SIGNATURE: a server restored from a backup,
 * a lost key): it gets a new key and replica, pulls its scope anew, and the ops it had
 * not delivered are made again under the new replica (same content, new ids), so each
 * reaches the server once. A code for another user is refused while ops are unsent. */
OTSYNC_API int otsync_client_enroll(otsync_client_t* client, const char* server_url,
                                    const char* code, const char* label, otsync_error* err);

/* My OTs as a JSON array of {"id","kind","status","address","window_start","window_end",
 * "customer_name","modality"}; `status` filters when not NULL (an OT status, else
 * OTSYNC_ERR_INVALID_VALUE). */
OTSYNC_API char* otsync_client_list_ots(otsync_client_t* client, const char* status,
                                        otsync_error* err);

/* The same, only OTs whose visit window overlaps [from_ms, to_ms) (Unix ms; 0 = open end):
 * "my OTs for today". Negative times or from_ms > to_ms: OTSYNC_ERR_INVALID_ARGUMENT. */
OTSYNC_API char* otsync_client_list_ots_between(otsync_client_t* client, const char* status,
                                                int64_t from_ms, int64_t to_ms, otsync_error* err);

/* One OT with its case summary, address, contact, expected equipment and recorded rows,
 * as a JSON object. */
OTSYNC_API char* otsync_client_show_ot(otsync_client_t* client, const char* ot_id,
                                       otsync_error* err);

/* Moves my OT: "en_route" (start), "on_site" (arrive), "completed", or "failed" with a
 * reason (required for failed). "completed" needs every expected serial collected,
 * verified or explained (otsync_client_report_missing) and, when rows were recorded, the
 * customer's signature: else OTSYNC_ERR_REQUIREMENTS_INCOMPLETE. The server applies the
 * same rules. */
OTSYNC_API int otsync_client_set_status(otsync_client_t* client, const char* ot_id,
                                        const char* status, const char* reason, otsync_error* err);

/* Records a collected item: the Anexo 4 row, on site only (the OT "on_site", else
 * OTSYNC_ERR_INVALID_TRANSITION) and not after the customer signed (OTSYNC_ERR_SIGNED_ROWS).
 * The serial may not hold control characters (OTSYNC_ERR_INVALID_VALUE). `reason` is "migration" or
 * "damaged"; `defect` is required for "damaged"; `description` and `observations` may be NULL. The
 * verdict against the expected list is immediate and local. */
OTSYNC_API int otsync_client_collect(otsync_client_t* client, const char* ot_id, const char* serial,
                                     const char* description, const char* reason,
                                     const char* defect, const char* observations,
                                     otsync_verdict* verdict, otsync_error* err);

/* Voids a mistaken row: it stays on record, marked void (field facts are never deleted).
 * Not after the customer signed (OTSYNC_ERR_SIGNED_ROWS). */
OTSYNC_API int otsync_client_void_item(otsync_client_t* client, const char* ot_id,
                                       const char* serial, otsync_error* err);

/* Records that equipment the customer carried (modalities 2 and 3; other modalities get
 * OTSYNC_ERR_INVALID_VALUE) was verified. */
OTSYNC_API int otsync_client_verify(otsync_client_t* client, const char* ot_id, const char* serial,
                                    otsync_verdict* verdict, otsync_error* err);

/* Why an expected serial is missing from the OT (not collected or verified): "the
 * customer kept the remote", "lost". The case cannot close until every missing expected
 * serial has a reason. The serial must be on the OT's expected list and not recorded. */
OTSYNC_API int otsync_client_report_missing(otsync_client_t* client, const char* ot_id,
                                            const char* serial, const char* reason,
                                            otsync_error* err);

/* The customer's signature as PNG bytes (at most 256 KiB, else OTSYNC_ERR_TOO_LARGE; a
 * whole PNG, else OTSYNC_ERR_INVALID_VALUE), bound to a BLAKE2b-256 hash of the
 * exact rows recorded on the OT at this moment (docs/protocol.md says how; the server
 * recomputes it). From then on the rows are frozen: a second sign, collect or void gets
 * OTSYNC_ERR_SIGNED_ROWS. The image is kept encrypted and uploaded after the ops, by
 * chunks that resume where a cut left them. */
OTSYNC_API int otsync_client_sign(otsync_client_t* client, const char* ot_id, const uint8_t* png,
                                  size_t png_len, otsync_error* err);

/* A photo of an item of the OT (a damaged or missing one), by its serial, expected on the
 * OT or collected on it (else OTSYNC_ERR_NOT_FOUND): a whole JPEG or PNG of at most 4 MiB
 * (OTSYNC_ERR_TOO_LARGE; another type OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE), at most 20 per
 * OT. Kept encrypted and uploaded after the ops, signatures first. Returns the photo's
 * BLAKE2b-256 as a JSON string ("<64 hex digits>") to free with otsync_string_free. */
OTSYNC_API char* otsync_client_photo(otsync_client_t* client, const char* ot_id, const char* serial,
                                     const uint8_t* data, size_t len, otsync_error* err);

/* Reopens a signed OT's rows, on site, saying why (required): the earlier signature and
 * hash stay on record in the OT's notes; rows can change again and the customer signs
 * anew. */
OTSYNC_API int otsync_client_reopen_signature(otsync_client_t* client, const char* ot_id,
                                              const char* reason, otsync_error* err);

/* A handover (Anexo 4) of every item in my custody not yet handed over: the rows this
 * technician collected (collected_by), whoever has their OT now, never rows another
 * technician collected on an OT now assigned here (OTSYNC_ERR_NOT_FOUND when there are
 * none). Returns its id as a JSON string ("...") to free with otsync_string_free. */
OTSYNC_API char* otsync_client_create_handover(otsync_client_t* client, const char* zone,
                                               otsync_error* err);

/* The delivery act: the technician hands a draft handover of his (else OTSYNC_ERR_NOT_FOUND;
 * not a draft: OTSYNC_ERR_INVALID_TRANSITION) to the warehouse, signing it with a whole PNG
 * of at most 256 KiB over its rows ("Entregado por"; `delivered_by`, the name printed under
 * it, may be NULL). The handover is then "delivered" and its rows frozen: the server refuses
 * any change of them by the technician. The signature is uploaded after the ops. */
OTSYNC_API int otsync_client_deliver_handover(otsync_client_t* client, const char* handover_id,
                                              const char* delivered_by, const uint8_t* png,
                                              size_t png_len, otsync_error* err);

/* My handovers (Anexo 4), newest state first seen, as a JSON array of
 * {"id","status":"draft"|"delivered"|"received","zone","date","rows":[{"item","serial"}],
 *  "receipt": null | {"received_by","received_by_user","received_at","received_rows_hash",
 *  "signed_message","server_signature","verified"}}. "verified" is whether the server's
 * Ed25519 signature (base64) over "signed_message" checks with the key stored at
 * enrollment: the warehouse's receipt as the technician's proof of delivery. */
OTSYNC_API char* otsync_client_handovers(otsync_client_t* client, otsync_error* err);
/* 0 when the handover was received and its receipt's signature verifies; else
 * OTSYNC_ERR_NOT_FOUND, OTSYNC_ERR_INVALID_TRANSITION (not received yet) or
 * OTSYNC_ERR_BAD_SIGNATURE. */
OTSYNC_API int otsync_client_verify_receipt(otsync_client_t* client, const char* handover_id,
                                            otsync_error* err);

/* Progress of a sync: ops received so far, and the server's estimate of what remains. */
typedef void (*otsync_progress_fn)(uint64_t received, uint64_t remaining, void* user);

/* Pushes the outbox and pulls until the server has nothing more, over HTTP.
 * What the device does when the server refuses (the error code says which; the message
 * is a Spanish sentence for the technician, then the server's code and words):
 *  - OTSYNC_ERR_NETWORK: no answer, 5xx or a replayed counter after retries: keep, retry.
 *  - OTSYNC_ERR_REVOKED: the server proved the revocation (its Ed25519 signature over this
 *    replica and the revocation time, by the key received at enrollment): keys and data
 *    were wiped. The only refusal that deletes anything.
 *  - OTSYNC_ERR_DEVICE_REVOKED: "revoked" without a valid proof: nothing deleted.
 *  - OTSYNC_ERR_UNKNOWN_DEVICE, OTSYNC_ERR_BAD_SIGNATURE: everything kept; enroll again
 *    with a new code, and the unsent ops are delivered under the new replica.
 *  - OTSYNC_ERR_USER_DISABLED: everything kept; sync again once the user is enabled.
 *  - OTSYNC_ERR_UNAUTHENTICATED: the request arrived without its signature headers (a
 *    proxy stripping them): everything kept; retry on another network.
 *  - OTSYNC_ERR_UNSUPPORTED_PROTOCOL: everything kept; update the app.
 * On every refusal the outbox, the rows and the signatures stay as they were. */
OTSYNC_API int otsync_client_sync(otsync_client_t* client, otsync_progress_fn progress, void* user,
                                  otsync_error* err);

/* ---- Network: the built-in transport, a transport of the app's own, retries, cancel ---- */

/* Limits and TLS settings of the built-in HTTP(S) transport. Zero or NULL members keep
 * the default: connect 10 s (with the TLS handshake), 30 s without a byte moving, 60 s
 * for one whole request; the system's CA store; no pinning. */
typedef struct otsync_http_options {
    uint32_t connect_timeout_ms;
    uint32_t io_timeout_ms;
    uint32_t request_timeout_ms; /* also the deadline of a call to an app's transport */
    const char* ca_file;         /* PEM file of the CAs to trust instead of the system's */
    const char* pinned_sha256;   /* hex SHA-256 of the server certificate (DER), or NULL */
} otsync_http_options;
OTSYNC_API int otsync_client_set_http_options(otsync_client_t* client,
                                              const otsync_http_options* options,
                                              otsync_error* err);

/* One HTTP request the library asks an app's transport to carry (opaque). The app reads
 * it with the accessors, sends it its own way (OkHttp, URLSession, a proxy, pinning),
 * and then calls exactly one of otsync_http_call_complete / otsync_http_call_fail,
 * once, from any thread, even after a cancel or a deadline (the call stays valid until
 * then; the library ignores a late answer). */
typedef struct otsync_http_call otsync_http_call;
OTSYNC_API const char* otsync_http_call_method(const otsync_http_call* call); /* "POST" */
OTSYNC_API const char* otsync_http_call_url(const otsync_http_call* call); /* server URL + path */
OTSYNC_API size_t otsync_http_call_header_count(const otsync_http_call* call);
OTSYNC_API const char* otsync_http_call_header_name(const otsync_http_call* call, size_t i);
OTSYNC_API const char* otsync_http_call_header_value(const otsync_http_call* call, size_t i);
OTSYNC_API const uint8_t* otsync_http_call_body(const otsync_http_call* call, size_t* len);
/* The answer: HTTP status and body (the bytes are copied). */
OTSYNC_API void otsync_http_call_complete(otsync_http_call* call, int status, const uint8_t* body,
                                          size_t body_len);
/* No answer: OTSYNC_ERR_NETWORK, OTSYNC_ERR_TIMEOUT, OTSYNC_ERR_TLS or
 * OTSYNC_ERR_CANCELLED, and a line for logs. */
OTSYNC_API void otsync_http_call_fail(otsync_http_call* call, int error_code, const char* message);

typedef struct otsync_transport {
    void* user;
    /* Starts carrying `call`; may answer before returning or later, on any thread. */
    void (*send)(void* user, otsync_http_call* call);
    /* Optional (NULL): the library gave up on `call` (cancel or deadline); stop it. */
    void (*cancel)(void* user, otsync_http_call* call);
} otsync_transport;
/* The app's transport for every later enroll and sync (copied), or NULL for the
 * built-in one. */
OTSYNC_API int otsync_client_set_transport(otsync_client_t* client,
                                           const otsync_transport* transport, otsync_error* err);

/* How a sync waits out a link that does not answer: exponential back-off with jitter
 * from initial_delay_ms, doubling up to max_delay_ms, retrying for max_elapsed_ms (0:
 * until cancelled); then OTSYNC_ERR_NETWORK or OTSYNC_ERR_TIMEOUT. Default: 1 s, 60 s,
 * 5 minutes, 20 %. Each wait is reported to the progress callback first. */
typedef struct otsync_retry_policy {
    uint32_t initial_delay_ms;
    uint32_t max_delay_ms;
    uint32_t max_elapsed_ms;
    uint32_t jitter_percent; /* a wait is shortened by up to this share (0..100) */
} otsync_retry_policy;
OTSYNC_API int otsync_client_set_retry_policy(otsync_client_t* client,
                                              const otsync_retry_policy* policy, otsync_error* err);

/* A sync request carries at most the ops that the link, as the last answered request
 * measured it, sends in batch_target_ms (at least 50 ops, at most 500): on a slow link a
 * cut request loses less. Default 2,000 ms; 0 is refused (OTSYNC_ERR_INVALID_ARGUMENT).
 * Kept when otsync_client_set_retry_policy is called later. */
OTSYNC_API int otsync_client_set_batch_target(otsync_client_t* client, uint32_t batch_target_ms,
                                              otsync_error* err);

/* Ends the enroll or sync in progress, from any thread: it returns OTSYNC_ERR_CANCELLED
 * within a second, everything recorded kept; the next sync resumes. No-op when idle. */
OTSYNC_API void otsync_client_cancel(otsync_client_t* client);

/* What a sync reports as it goes. */
typedef struct otsync_sync_progress {
    uint64_t sent;      /* ops the server acknowledged so far */
    uint64_t pending;   /* ops still to send */
    uint64_t received;  /* ops pulled so far */
    uint64_t remaining; /* the server's estimate of ops still to pull */
    uint64_t bytes_up;
    uint64_t bytes_down;
    uint32_t attempt;               /* failed tries in a row; 0 while the link answers */
    uint32_t retry_in_ms;           /* > 0: the library waits this long, then tries again */
    int last_error;                 /* why it waits (OTSYNC_ERR_NETWORK, _TIMEOUT...) */
    const char* last_error_message; /* valid during the callback only */
} otsync_sync_progress;
/* Return 0 to go on, non-zero to stop the sync (as otsync_client_cancel). Runs on the
 * syncing thread, without the handle's lock. */
typedef int (*otsync_sync_progress_fn)(const otsync_sync_progress* progress, void* user);

/* otsync_client_sync with full progress and, when `result` is not NULL, the result as
 * JSON (free with otsync_string_free): {"requests","sent","flagged","rejected",
 * "received","reissued","retries","bytes_up","bytes_down","pending","evicted_ots":[hex],
 * "conflicts"}. */
OTSYNC_API int otsync_client_sync_ex(otsync_client_t* client, otsync_sync_progress_fn progress,
                                     void* user, char** result, otsync_error* err);
/* otsync_client_sync_ex, then, once everything is sent and pulled, one more pull that waits
 * up to `wait_ms` for the server to have something for this device (an OT assigned, a change
 * on one of its OTs) and applies it: for a background sync of an idle handheld, one request
 * per wait instead of one per poll. Keep `wait_ms` under the transport's deadlines (the
 * built-in one: 30 s without a byte); the server bounds it too (25 s by default). A cancel
 * ends the wait at once, nothing lost. */
OTSYNC_API int otsync_client_sync_wait(otsync_client_t* client, uint32_t wait_ms,
                                       otsync_sync_progress_fn progress, void* user, char** result,
                                       otsync_error* err);

/* {"enrolled","replica","pending","last_sync":{"at","result"},"notices":[...],
 *  "rejections":[...],"conflicts":[...]}
 * "notices": what became of OTs that left this device (reassigned by the office: the server
 * evicted them), oldest first, the latest 20 kept across syncs. Each is
 * {"ot": id hex, "text": Spanish, for the technician, "at": device ms}, e.g.
 * "OT 1a2b3c4d (Av. Blanco Galindo 1234) reasignada; sus 2 filas llegaron al servidor;
 * 2 siguen a su cargo hasta entregarlas en almacén": how many rows collected here reached
 * the server (the rest are sent at the next sync), and how many stay in the technician's
 * custody for the handover (collected items follow their collector, not the OT). */
OTSYNC_API char* otsync_client_status(otsync_client_t* client, otsync_error* err);

OTSYNC_API void otsync_string_free(char** s);

/* ---- Version and error names (docs/client-api.md, "Versioning and ABI") ---- */

/* The library's version, "MAJOR.MINOR.PATCH" (static storage, never NULL). The header's
 * own is OTSYNC_VERSION_STRING (otsync/version.h): an app may compare the two at start. */
OTSYNC_API const char* otsync_version(void);

/* The stable spelling of an error code, for logs and telemetry (static storage, never
 * NULL): "ok" for OTSYNC_OK; for 1..99 the server's wire "code" ("device_revoked",
 * "not_found", ...); for the client-only codes "not_enrolled", "not_found_on_device",
 * "network", "revoked", "wrong_key", "busy", "timeout", "cancelled", "tls"; "unknown" for
 * any other number. Names are never renamed. */
OTSYNC_API const char* otsync_error_name(int code);

#ifdef __cplusplus
}
#endif

#endif /* OTSYNC_CLIENT_H */
