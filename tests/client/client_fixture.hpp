// The in-process fixture of client-core's tests: the real server code (store, sync
// service, routes) behind a loopback transport that can drop, duplicate and delay,
// helpers to issue and reassign OTs as back office does, and a count of the device
// database's flushes.
#pragma once

#include "otsync/client.hpp"

#include "../temp_dir.hpp"
#include "../test_images.hpp"
#include "http/content_coding.hpp"
#include "server.hpp"

#include "otsync/view.hpp"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

namespace otsync::client::testing {

using namespace otsync;

/// A folder for one test (a device's database, a server's).
struct TempDir : otsync::test::TempDir {
    TempDir() : otsync::test::TempDir("otsync-client-") {}
};

/// The server's routes called directly; optionally unreliable.
class LoopbackTransport : public Transport {
public:
    explicit LoopbackTransport(server::App& app, std::uint64_t seed = 0, int fault_percent = 0)
        : m_app(app), m_rng(seed), m_faults(fault_percent) {}

    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        const auto call = [&] {
            // As the HTTP layer does first: the body decoded from its Content-Encoding.
            auto h = headers;
            auto b = body;
            const bool deflated = h.contains("content-encoding");
            if (auto refused = server::decode_request(h, b, k_max_body)) {
                return HttpReply{refused->status, refused->body};
            }
            deflated_requests += deflated ? 1 : 0;
            wire_bytes += body.size();
            message_bytes += b.size();
            const server::RouteRequest r{"POST", path, h, b};
            const auto reply = m_app.handle(r);
            return HttpReply{reply.status, reply.body};
        };
        if (roll()) { // the request never arrives
            ++dropped_requests;
            return {};
        }
        if (roll()) { // the network duplicates the request
            ++duplicated;
            call();
        }
        HttpReply reply = call();
        if (roll()) { // a slow network
            ++delayed;
            std::this_thread::sleep_for(std::chrono::milliseconds(1 + m_rng() % 5));
        }
        if (roll()) { // the server committed, but the answer is lost
            ++dropped_answers;
            return {};
        }
        return reply;
    }

    int dropped_requests = 0, dropped_answers = 0, duplicated = 0, delayed = 0;
    int deflated_requests = 0;                          // sent with Content-Encoding
    std::size_t wire_bytes = 0, message_bytes = 0;      // request bodies, as sent and decoded
    static constexpr std::size_t k_max_body = 8u << 20; // the server's default sync limit

private:
    bool roll() { return m_faults > 0 && static_cast<int>(m_rng() % 100) < m_faults; }
    server::App& m_app;
    std::mt19937_64 m_rng;
    int m_faults;
};

inline std::array<std::uint8_t, 32> key_of(std::uint8_t b) {
    std::array<std::uint8_t, 32> k{};
    k.fill(b);
    return k;
}

/// The system clock moved by a fixed offset: a server whose date differs from the phone's.
class OffsetClock final : public ClockSource {
public:
    explicit OffsetClock(std::int64_t offset_ms) : m_offset(offset_ms) {}
    std::uint64_t now_ms() override {
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(m_system.now_ms()) + m_offset);
    }

private:
    SystemClock m_system;
    std::int64_t m_offset;
};

struct Server {
    /// A server on a new database, or on `db_path` (a restored backup); its clock runs
    /// `clock_offset_ms` from the system's.
    explicit Server(const std::string& db_path = {}, std::int64_t clock_offset_ms = 0,
                    server::SyncConfig sync_config = {})
        : clock(clock_offset_ms) {
        server::ServerConfig config;
        config.data_dir = dir.path;
        config.db_path = db_path;
        config.sync = sync_config;
        root = std::make_unique<server::Server>(config, clock);
        store = &root->store();
        sync = &root->sync();
        app = &root->app();
        if (db_path.empty()) {
            office = add_user("bo", Role::back_office);
        } else {
            for (const auto& u : store->users()) {
                if (u.role == Role::back_office) {
                    office = u.id;
                }
            }
        }
    }
    Id add_user(const std::string& name, Role role) {
        server::User u{Id::random(), name, role, false, 0, {}, {}, {}};
        store->add_user(u);
        return u.id;
    }
    /// Issues `n` OTs to `tech`, each with 4 expected serials; returns their ids.
    std::vector<Id> issue(const Id& tech, int n, const std::string& prefix) {
        std::vector<Id> ots;
        sync->submit(office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica& r) {
            std::vector<Op> ops;
            for (int i = 0; i < n; ++i) {
                const Id ot = Id::random();
                const Id c = Id::random();
                ots.push_back(ot);
                ops.push_back(m.set(EntityType::case_file, c, "customer_name",
                                    text("Cliente " + std::to_string(i))));
                ops.push_back(m.set(EntityType::case_file, c, "tax_id",
                                    text("CI-" + prefix + std::to_string(4400000 + i))));
                ops.push_back(m.set(EntityType::work_order, ot, "case", c));
                ops.push_back(m.set(EntityType::work_order, ot, "kind", text("withdraw_boot")));
                ops.push_back(m.set(EntityType::work_order, ot, "technician", tech));
                Op issued = m.set(EntityType::work_order, ot, "status", text("issued"));
                Op assigned = m.set(EntityType::work_order, ot, "status", text("assigned"));
                assigned.observed = {issued.id};
                ops.push_back(issued);
                ops.push_back(assigned);
                for (int k = 0; k < 4; ++k) {
                    ops.push_back(
                        m.add(EntityType::work_order, ot, "expected_equipment",
                              text(prefix + std::to_string(i) + "-" + std::to_string(k))));
                }
            }
            (void)r;
            return ops;
        });
        return ots;
    }
    void reassign(const Id& ot, const Id& tech) {
        sync->submit(office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
            return std::vector<Op>{m.set(EntityType::work_order, ot, "technician", tech)};
        });
    }
    std::string code(const Id& user) { return sync->new_enroll_code(user); }

    TempDir dir;
    OffsetClock clock;
    std::unique_ptr<server::Server> root; // the server's composition root, as main builds it
    server::Store* store = nullptr;
    server::SyncService* sync = nullptr;
    server::App* app = nullptr;
    Id office;
};

/// Counts the flushes (xSync) of every SQLite file opened while it lives: a VFS that
/// forwards everything to the default one and becomes the default itself. One at a time.
class SyncCountingVfs {
public:
    SyncCountingVfs() {
        s_real = sqlite3_vfs_find(nullptr);
        REQUIRE(s_real);
        m_vfs = *s_real;
        m_vfs.zName = "otsync-sync-counting";
        m_vfs.szOsFile = static_cast<int>(sizeof(File)) + s_real->szOsFile;
        m_vfs.xOpen = &open;
        REQUIRE(sqlite3_vfs_register(&m_vfs, 1) == SQLITE_OK);
        s_syncs = 0;
    }
    ~SyncCountingVfs() { sqlite3_vfs_unregister(&m_vfs); }
    SyncCountingVfs(const SyncCountingVfs&) = delete;
    SyncCountingVfs& operator=(const SyncCountingVfs&) = delete;

    /// Flushes so far, of any file (database, WAL, journal).
    static std::uint64_t syncs() { return s_syncs.load(); }

private:
    struct File {
        sqlite3_file base;
        sqlite3_file* real; // follows this struct in the same allocation
    };
    static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

    static int open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out) {
        auto* file = reinterpret_cast<File*>(f);
        file->real = reinterpret_cast<sqlite3_file*>(file + 1);
        file->base.pMethods = nullptr;
        const int rc = s_real->xOpen(s_real, name, file->real, flags, out);
        if (rc == SQLITE_OK && file->real->pMethods) {
            s_methods = *file->real->pMethods;
            s_methods.xClose = [](sqlite3_file* x) { return real(x)->pMethods->xClose(real(x)); };
            s_methods.xRead = [](sqlite3_file* x, void* b, int n, sqlite3_int64 o) {
                return real(x)->pMethods->xRead(real(x), b, n, o);
            };
            s_methods.xWrite = [](sqlite3_file* x, const void* b, int n, sqlite3_int64 o) {
                return real(x)->pMethods->xWrite(real(x), b, n, o);
            };
            s_methods.xTruncate = [](sqlite3_file* x, sqlite3_int64 n) {
                return real(x)->pMethods->xTruncate(real(x), n);
            };
            s_methods.xSync = [](sqlite3_file* x, int sync_flags) {
                ++s_syncs;
                return real(x)->pMethods->xSync(real(x), sync_flags);
            };
            s_methods.xFileSize = [](sqlite3_file* x, sqlite3_int64* n) {
                return real(x)->pMethods->xFileSize(real(x), n);
            };
            s_methods.xLock = [](sqlite3_file* x, int l) {
                return real(x)->pMethods->xLock(real(x), l);
            };
            s_methods.xUnlock = [](sqlite3_file* x, int l) {
                return real(x)->pMethods->xUnlock(real(x), l);
            };
            s_methods.xCheckReservedLock = [](sqlite3_file* x, int* r) {
                return real(x)->pMethods->xCheckReservedLock(real(x), r);
            };
            s_methods.xFileControl = [](sqlite3_file* x, int op, void* a) {
                return real(x)->pMethods->xFileControl(real(x), op, a);
            };
            s_methods.xSectorSize = [](sqlite3_file* x) {
                return real(x)->pMethods->xSectorSize(real(x));
            };
            s_methods.xDeviceCharacteristics = [](sqlite3_file* x) {
                return real(x)->pMethods->xDeviceCharacteristics(real(x));
            };
            s_methods.xShmMap = [](sqlite3_file* x, int i, int sz, int e, void volatile** p) {
                return real(x)->pMethods->xShmMap(real(x), i, sz, e, p);
            };
            s_methods.xShmLock = [](sqlite3_file* x, int o, int n, int fl) {
                return real(x)->pMethods->xShmLock(real(x), o, n, fl);
            };
            s_methods.xShmBarrier = [](sqlite3_file* x) {
                real(x)->pMethods->xShmBarrier(real(x));
            };
            s_methods.xShmUnmap = [](sqlite3_file* x, int d) {
                return real(x)->pMethods->xShmUnmap(real(x), d);
            };
            s_methods.xFetch = [](sqlite3_file* x, sqlite3_int64 o, int n, void** p) {
                return real(x)->pMethods->xFetch(real(x), o, n, p);
            };
            s_methods.xUnfetch = [](sqlite3_file* x, sqlite3_int64 o, void* p) {
                return real(x)->pMethods->xUnfetch(real(x), o, p);
            };
            file->base.pMethods = &s_methods;
        }
        return rc;
    }

    sqlite3_vfs m_vfs{};
    static inline sqlite3_vfs* s_real = nullptr;
    static inline sqlite3_io_methods s_methods{};
    static inline std::atomic<std::uint64_t> s_syncs{0};
};

/// Every entity the device holds equals the server's technician view of it.
inline void check_equal_scope(Server& s, const Client& c) {
    for (std::uint8_t t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        const auto type = static_cast<EntityType>(t);
        for (const Id& id : c.state().entities(type)) {
            s.sync->read_state([&](const crdt::Replica& server_state) {
                CHECK(entity_json(c.state(), type, id, true) ==
                      entity_json(server_state, type, id, true));
            });
        }
    }
}

inline std::size_t sync_until_done(Client& c, Transport& t) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        try {
            c.sync(t);
            if (c.pending() == 0) {
                return static_cast<std::size_t>(attempt);
            }
        } catch (const ClientError& e) {
            REQUIRE_MESSAGE(e.code() == OTSYNC_ERR_NETWORK, e.what());
        }
    }
    FAIL("sync never drained the outbox");
    return 0;
}

/// Retries in milliseconds, so tests over a faulty link stay quick.
inline RetryPolicy fast_retries() {
    return RetryPolicy{5, 40, 3'000, 20};
}

using otsync::testing::tiny_png;

/// A transport in front of another: a test overrides post() to look at, change, delay or
/// drop requests, and calls ForwardingTransport::post to send one on.
class ForwardingTransport : public Transport {
public:
    explicit ForwardingTransport(Transport& next) : m_next(next) {}
    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        return m_next.post(path, headers, body);
    }

private:
    Transport& m_next;
};

} // namespace otsync::client::testing
