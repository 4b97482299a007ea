// Durability: kill -9 the server at random moments while several devices sync at
// once, 30 times (300 with OTSYNC_SOAK=1). After every kill, every op the server
// acknowledged is in the database exactly once and PRAGMA integrity_check is ok;
// devices keep unacknowledged ops and resend them, so at the end nothing is lost.
#include "server_process.hpp"

#include "otsync/crdt.hpp"

#include <sqlite3.h>

#include <atomic>
#include <mutex>
#include <set>

using namespace otsync;
using namespace otsync::test;

namespace {

struct FieldDevice {
    HttpDevice http;
    Id ot;
    SystemClock wall;
    std::unique_ptr<Hlc> hlc;
    std::unique_ptr<crdt::OpMaker> maker;
    std::vector<Op> outbox; // made, not yet acknowledged
    std::set<OpId> acked;   // acknowledged by the server
    std::uint64_t made = 0;
    std::uint64_t serial = 0;
};

/// Reads what the database holds, without the server: op ids and integrity.
struct DbView {
    std::set<OpId> ops;
    std::uint64_t rows = 0;
    std::string integrity;
};

DbView read_db(const std::filesystem::path& path) {
    DbView v;
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        v.integrity += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(db, "SELECT replica, counter FROM ops", -1, &st, nullptr) ==
            SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        v.ops.insert({static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)),
                      static_cast<std::uint64_t>(sqlite3_column_int64(st, 1))});
        ++v.rows;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

} // namespace

TEST_CASE("kill -9 during concurrent syncs loses no acknowledged op and applies none twice") {
    const bool soak = std::getenv("OTSYNC_SOAK") && std::string(std::getenv("OTSYNC_SOAK")) == "1";
    const int rounds = soak ? 300 : 30;
    DataDir dir;
    auto server = std::make_unique<ServerProcess>(dir.path);
    server->start();

    admin(dir.path, {"user", "add", "--role", "back_office", "bo"});
    HttpDevice office;
    REQUIRE(office.enroll(server->port, admin(dir.path, {"device", "enroll-code", "bo"})));
    SystemClock wall;
    Hlc office_hlc(wall);
    crdt::OpMaker bo(office.replica, office_hlc, office.user);

    std::vector<std::unique_ptr<FieldDevice>> devices;
    for (int i = 0; i < 3; ++i) {
        const std::string name = "tec" + std::to_string(i);
        admin(dir.path, {"user", "add", "--role", "technician", name});
        auto d = std::make_unique<FieldDevice>();
        REQUIRE(d->http.enroll(server->port, admin(dir.path, {"device", "enroll-code", name})));
        d->hlc = std::make_unique<Hlc>(d->wall);
        d->maker = std::make_unique<crdt::OpMaker>(d->http.replica, *d->hlc, d->http.user);
        d->ot = Id::random();
        Op issued = bo.set(EntityType::work_order, d->ot, "status", text("issued"));
        Op assigned = bo.set(EntityType::work_order, d->ot, "status", text("assigned"));
        assigned.observed = {issued.id};
        std::vector<Op> ops{bo.set(EntityType::work_order, d->ot, "technician", d->http.user),
                            issued, assigned};
        const auto r = office.post(server->port, office.request(ops, office_hlc.now()), false);
        REQUIRE(r.status == 200);
        // The technician arrives first: rows are recorded on site.
        Op arrive = d->maker->set(EntityType::work_order, d->ot, "status", text("on_site"));
        arrive.observed = {assigned.id};
        d->outbox.push_back(arrive);
        d->made += 1;
        devices.push_back(std::move(d));
    }

    std::atomic<unsigned short> port{server->port};
    std::atomic<bool> done{false};
    std::mutex mutex; // guards device outboxes/acks between the threads and the checks
    auto work = [&](FieldDevice& d) {
        std::mt19937 rng(static_cast<unsigned>(d.http.replica));
        while (!done) {
            std::vector<Op> batch;
            {
                std::lock_guard lock(mutex);
                // Record a few Anexo 4 rows, then send everything not yet acknowledged.
                for (int k = 0; k < 2; ++k) {
                    const std::string serial =
                        "SN" + std::to_string(d.http.replica) + "-" + std::to_string(++d.serial);
                    const Id row = Id::collected_item(d.ot, serial);
                    d.outbox.push_back(
                        d.maker->set(EntityType::collected_item, row, "work_order", d.ot));
                    d.outbox.push_back(
                        d.maker->set(EntityType::collected_item, row, "serial", text(serial)));
                    d.made += 2;
                }
                batch = d.outbox;
            }
            const auto r = d.http.post(port, d.http.request(batch, d.hlc->now()), false);
            if (r.status == 200) {
                const auto resp = decode_sync_response(r.body);
                std::lock_guard lock(mutex);
                for (const auto& res : resp.results) {
                    REQUIRE_MESSAGE(res.status == OpStatus::accepted, res.message);
                    d.acked.insert(res.id);
                }
                std::erase_if(d.outbox, [&](const Op& op) { return d.acked.contains(op.id); });
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 20));
            }
        }
    };
    std::vector<std::thread> threads;
    for (auto& d : devices) {
        threads.emplace_back(work, std::ref(*d));
    }

    std::mt19937 rng(20261129);
    for (int round = 0; round < rounds; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 300));
        server->kill(); // SIGKILL mid-whatever
        const DbView db = read_db(dir.path / "otsync.db");
        CHECK(db.integrity == "ok");
        CHECK(db.rows == db.ops.size()); // no op stored twice
        {
            std::lock_guard lock(mutex);
            for (const auto& d : devices) {
                for (const OpId& id : d->acked) {
                    if (!db.ops.contains(id)) {
                        FAIL_CHECK("round " << round << ": acknowledged op " << id.replica << ":"
                                            << id.counter << " lost");
                    }
                }
            }
        }
        server = std::make_unique<ServerProcess>(dir.path);
        server->start();
        port = server->port;
    }
    // Let every outbox drain, then stop cleanly and count.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::lock_guard lock(mutex);
        bool small = true;
        for (const auto& d : devices) {
            small = small && d->outbox.size() <= 4;
        }
        if (small || std::chrono::steady_clock::now() > deadline) {
            done = true;
            break;
        }
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(server->stop() == 0);
    const DbView db = read_db(dir.path / "otsync.db");
    std::uint64_t acked = 0, made = 0;
    for (const auto& d : devices) {
        acked += d->acked.size();
        made += d->made;
        CHECK(d->acked.size() + d->outbox.size() == d->made);
        for (const OpId& id : d->acked) {
            CHECK(db.ops.contains(id));
        }
    }
    CHECK(db.integrity == "ok");
    CHECK(db.rows == db.ops.size());
    MESSAGE("durability: " << rounds << " kills, " << made << " ops made, " << acked
                           << " acknowledged, " << db.rows << " rows stored, none lost or doubled");
}
