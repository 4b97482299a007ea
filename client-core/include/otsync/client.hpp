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
    unsigned status = 0; // 0: no answer (connection failed or cut)
    std::string body;
};

/// Moves bytes to the server; the sync engine knows nothing of sockets.
class Transport {
public:
    virtual ~Transport() = default;
    virtual HttpReply post(const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) = 0;
};

/// The built-in HTTP/1.1 transport (Boost.Beast), with connect and I/O timeouts.
std::unique_ptr<Transport> make_http_transport(const std::string& base_url, int timeout_ms = 15000);

struct SyncStats {
    std::uint64_t requests = 0;
    std::uint64_t pushed = 0;   // ops acknowledged
    std::uint64_t rejected = 0; // ops the server refused (kept, with the reason)
    std::uint64_t received = 0; // ops pulled
    std::uint64_t reissued = 0; // refused for a clock far ahead, made again in server time
};

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
    void sign(const std::string& ot_hex, const std::uint8_t* png, std::size_t len);
    /// Reopens a signed OT's rows (on site, before completion), saying why; the earlier
    /// signature and hash are kept in the OT's notes. Sign again afterwards.
    void reopen_signature(const std::string& ot_hex, const std::string& reason);
    std::string create_handover(const std::string& zone);
    std::string status_json() const;

    /// Pushes the outbox and pulls every page; throws ClientError (network, revoked,
    /// unsupported protocol). Resumable: a cut keeps what was applied.
    SyncStats sync(Transport& transport,
                   const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

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
