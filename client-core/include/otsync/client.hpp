// client-core's C++ API: the offline replica of a technician's handheld. The C API
// (client.h) wraps it one to one; otsync-tech and the Android/iOS apps use that.
//
// A Client owns a local SQLite database: every op of the device's scope (encrypted at
// rest), the outbox of ops not yet acknowledged, rejections, receipts, the enrollment
// (replica id, Ed25519 secret key — encrypted) and the clocks. The merged state is
// folded in memory from those ops with the same crdt::Replica the server runs.
//
// The sync engine opens no sockets: it speaks through a Transport (the built-in HTTP
// one, or a test's). An op leaves the outbox only when the server acknowledged it.
#pragma once

#include "otsync/client.h"
#include "otsync/crdt.hpp"
#include "otsync/crypto.hpp"
#include "otsync/hlc.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace otsync::client {

/// An error of the client layer, with the C API's code.
class ClientError : public std::runtime_error {
public:
    ClientError(int code, const std::string& message) : std::runtime_error(message), m_code(code) {}
    int code() const noexcept { return m_code; }

private:
    int m_code;
};

struct HttpReply {
    HttpReply() = default;
    HttpReply(unsigned s, std::string b) : status(s), body(std::move(b)) {}
    unsigned status = 0; // 0: no answer (connection failed or cut, timed out, cancelled)
    std::string body;
    std::string content_type; // the answer's Content-Type, when the transport reports it
    // The answer's Content-Encoding, when the transport reports it. The body is handed as
    // received: the sync engine decodes it (an unreported deflate body is recognised by
    // its zlib header, which no sync message or JSON body starts with).
    std::string content_encoding;
    /// When status is 0: OTSYNC_ERR_NETWORK, OTSYNC_ERR_TIMEOUT, OTSYNC_ERR_TLS or
    /// OTSYNC_ERR_CANCELLED, and a one-line description.
    int error = OTSYNC_ERR_NETWORK;
    std::string error_message;
    /// Times the transport sent this request again by itself (a kept connection found
    /// closed as the request began, before any byte of it left): its time does not measure
    /// the link. 0 when not reported.
    unsigned resent = 0;
    /// The HTTP bytes (request line, headers and body; status line, headers and body) this
    /// post wrote and read, its resends and a cut attempt's part included. 0 when the
    /// transport does not report them: the sync then counts the bodies.
    std::uint64_t wire_bytes_up = 0;
    std::uint64_t wire_bytes_down = 0;
};

/// Moves bytes to the server; the sync engine knows nothing of sockets.
class Transport {
public:
    virtual ~Transport() = default;
    virtual HttpReply post(const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) = 0;
    /// Any method (GET, PATCH...), for tools and tests that speak to the REST API through
    /// the same client. Sync needs only post(); a transport that offers no more answers
    /// every other method with status 0 and OTSYNC_ERR_NETWORK.
    virtual HttpReply request(const std::string& method, const std::string& path,
                              const std::map<std::string, std::string>& headers,
                              const std::string& body);
    /// Ends the post in flight, from any thread: it returns soon with status 0 and
    /// OTSYNC_ERR_CANCELLED. A post that starts after cancel() runs normally.
    virtual void cancel() {}
};

/// The built-in transport's limits and TLS settings.
struct HttpOptions {
    int connect_timeout_ms = 10'000; // resolving and connecting (and the TLS handshake)
    int io_timeout_ms = 30'000;      // no byte moved for this long
    int request_timeout_ms = 60'000; // one whole request and its answer
    std::string ca_file;             // PEM file of CAs to trust instead of the system's
    std::string pinned_sha256;       // hex SHA-256 of the server certificate's DER, or ""
    std::size_t max_response_bytes = 64u << 20;
};

/// The built-in HTTP/1.1 transport (Boost.Beast; https:// with OpenSSL): one kept-alive
/// connection, reopened when the server closes it; every limit of HttpOptions enforced.
std::unique_ptr<Transport> make_http_transport(const std::string& base_url,
                                               const HttpOptions& options = {});

struct SyncStats {
    std::uint64_t requests = 0;
    std::uint64_t pushed = 0;   // ops acknowledged (accepted or flagged)
    std::uint64_t flagged = 0;  // of those, taken as field facts on an OT no longer ours
    std::uint64_t rejected = 0; // ops the server refused (kept, with the reason)
    std::uint64_t received = 0; // ops pulled
    std::uint64_t reissued = 0; // refused for a clock far ahead, made again in server time
    std::uint64_t retries = 0;  // requests sent again after no answer
    // The HTTP bytes the transport reports (HttpReply::wire_bytes_*), else the bodies.
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
    std::vector<std::string> evicted_ots;  // OTs that left this device in this sync (hex)
    std::uint64_t attachments_sent = 0;    // attachments now whole on the server
    std::uint64_t attachment_bytes = 0;    // attachment bytes the server took in this sync
    std::uint64_t attachments_refused = 0; // refused by the server (kept, in the status)
};

/// How a sync waits out a link that does not answer: exponential back-off with jitter,
/// from `initial_delay_ms` doubling up to `max_delay_ms`, until `max_elapsed_ms` of
/// retrying (0: until cancelled). The default rides out a tunnel or a lift (minutes).
/// A request whose connection was cut, on a link that had answered a request of this
/// sync, is retried once at once (a new connection) before the back-off starts.
struct RetryPolicy {
    std::uint32_t initial_delay_ms = 1'000;
    std::uint32_t max_delay_ms = 60'000;
    std::uint32_t max_elapsed_ms = 300'000;
    std::uint32_t jitter_percent = 20; // each delay is shortened by up to this share
    /// A request carries at most the ops the link, as measured by the last answered
    /// request, sends in this long (and at most 500): on a slow link a cut loses less.
    std::uint32_t batch_target_ms = 2'000;
};

/// What a sync reports as it goes; the callback returns false to stop (as a cancel).
struct SyncProgress {
    std::uint64_t sent = 0;      // ops acknowledged so far
    std::uint64_t pending = 0;   // ops still in the outbox
    std::uint64_t received = 0;  // ops pulled so far
    std::uint64_t remaining = 0; // the server's estimate of ops still to pull
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
    std::uint64_t attachment_bytes_sent = 0;    // attachment bytes the server took so far
    std::uint64_t attachment_bytes_pending = 0; // attachment bytes still to upload
    std::uint32_t attempt = 0;                  // failed tries in a row (0: the link answers)
    std::uint32_t retry_in_ms = 0;              // > 0: waiting this long before trying again
    int last_error = 0;                         // the failure that caused the wait (OTSYNC_ERR_*)
    std::string last_error_message;
};
using ProgressFn = std::function<bool(const SyncProgress&)>;

class Client {
public:
    /// Opens or creates the database; `key` encrypts secrets and ops at rest. `device_clock`
    /// is the device's wall clock (the system's when null; tests pass a fake one).
    Client(const std::string& db_path, const std::array<std::uint8_t, 32>& key,
           ClockSource* device_clock = nullptr);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    void enroll(Transport& transport, const std::string& server_url, const std::string& code,
                const std::string& label);
    bool enrolled() const;
    std::string server_url() const;

    /// My OTs; `status_filter` empty = all; a window [from_ms, to_ms) keeps OTs whose
    /// visit window overlaps it (0 = open end).
    std::string list_ots_json(const std::string& status_filter, std::int64_t from_ms = 0,
                              std::int64_t to_ms = 0) const;
    std::string show_ot_json(const std::string& ot_hex) const;
    void set_status(const std::string& ot_hex, const std::string& status,
                    const std::string& reason);
    otsync_verdict collect(const std::string& ot_hex, const std::string& serial,
                           const std::string& description, const std::string& reason,
                           const std::string& defect, const std::string& observations);
    void void_item(const std::string& ot_hex, const std::string& serial);
    otsync_verdict verify(const std::string& ot_hex, const std::string& serial);
    /// Why an expected serial is not handed over (the customer kept it, lost it...): the
    /// missing item's reason, which the case needs before it can close.
    void report_missing(const std::string& ot_hex, const std::string& serial,
                        const std::string& reason);
    /// The customer's signature (a whole PNG, attachment.hpp's limits): it binds the rows
    /// recorded now; the image is kept encrypted and uploaded after the ops.
    void sign(const std::string& ot_hex, const std::uint8_t* png, std::size_t len);
    /// A photo (JPEG or PNG) of an item of the OT, expected or collected, by serial (a
    /// damaged or missing one); kept encrypted, uploaded after the ops. Its hash (hex).
    std::string photo(const std::string& ot_hex, const std::string& serial,
                      const std::uint8_t* data, std::size_t len);
    /// Reopens a signed OT's rows (on site, before completion), saying why; the earlier
    /// signature and hash are kept in the OT's notes. Sign again afterwards.
    void reopen_signature(const std::string& ot_hex, const std::string& reason);
    std::string create_handover(const std::string& zone);
    /// The delivery act: the technician hands a draft handover of his to the warehouse and
    /// signs it (a whole PNG, the technician_signature limits) over its rows, named
    /// `delivered_by` (may be empty). It is then `delivered`: its rows are frozen.
    void deliver_handover(const std::string& handover_hex, const std::string& delivered_by,
                          const std::uint8_t* png, std::size_t len);
    /// My handovers (Anexo 4) with their rows and, once the warehouse received them, the
    /// receipt with the server's signature checked (client.h, otsync_client_handovers).
    std::string handovers_json() const;
    /// Throws unless the handover was received and the server's signature over its
    /// receipt verifies with the key stored at enrollment.
    void verify_receipt(const std::string& handover_hex) const;
    std::string status_json() const;

    /// Pushes the outbox and pulls every page; throws ClientError (network after the
    /// retry policy gave up, timeout, cancelled, refused, unsupported protocol).
    /// Resumable: a cut, a cancel or a timeout keeps what was applied.
    /// With `wait_ms` > 0 (protocol 2's long-poll), once everything is sent and pulled, one
    /// more pull waits up to that long for the server to have something for this device (an
    /// OT assigned, a change on one of its OTs), which it then applies: an idle handheld
    /// syncing in the background costs one request per wait. Keep it under the transport's
    /// deadlines (the built-in one: 30 s without a byte); the server bounds it too (25 s).
    SyncStats sync(Transport& transport, const ProgressFn& progress = {},
                   std::uint32_t wait_ms = 0);
    /// A sync's result as the JSON object of client.h (otsync_client_sync_ex).
    std::string sync_result_json(const SyncStats& stats) const;
    void set_retry_policy(const RetryPolicy& policy);
    RetryPolicy retry_policy() const;
    /// Ends the sync or enrollment in progress (any thread): it throws OTSYNC_ERR_CANCELLED
    /// soon, having kept everything. Does nothing when none is running.
    void cancel();

    // For tests and benchmarks: state() is not synchronized; call it only while no other
    // thread uses the client.
    const crdt::Replica& state() const;
    std::size_t pending() const;
    Id user() const;
    std::uint64_t replica() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m;
};

} // namespace otsync::client
