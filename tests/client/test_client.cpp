// client-core against the real server code in-process (no socket): a fault-injecting
// transport drops requests, drops answers after the server committed, duplicates and
// delays; the device must lose nothing, double nothing, and end equal to the server.
#include "otsync/client.hpp"

#include "app.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/view.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

using namespace otsync;
using namespace otsync::client;

namespace {

struct TempDir {
    TempDir() {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               ("otsync-client-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::filesystem::path path;
};

/// The server's routes called directly; optionally unreliable.
class LoopbackTransport : public Transport {
public:
    explicit LoopbackTransport(server::App& app, std::uint64_t seed = 0, int fault_percent = 0)
        : m_app(app), m_rng(seed), m_faults(fault_percent) {}

    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        const auto call = [&] {
            const server::RouteRequest r{"POST", path, headers, body};
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

private:
    bool roll() { return m_faults > 0 && static_cast<int>(m_rng() % 100) < m_faults; }
    server::App& m_app;
    std::mt19937_64 m_rng;
    int m_faults;
};

std::array<std::uint8_t, 32> key_of(std::uint8_t b) {
    std::array<std::uint8_t, 32> k{};
    k.fill(b);
    return k;
}

struct Server {
    Server() {
        server::SqliteOptions o;
        o.path = (dir.path / "server.db").string();
        store = server::open_sqlite_store(o);
        sync = std::make_unique<server::SyncService>(*store, clock, server::SyncConfig{});
        app = std::make_unique<server::App>(*store, *sync, clock);
        office = add_user("bo", Role::back_office);
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
    SystemClock clock;
    std::unique_ptr<server::Store> store;
    std::unique_ptr<server::SyncService> sync;
    std::unique_ptr<server::App> app;
    Id office;
};

/// Every entity the device holds equals the server's technician view of it.
void check_equal_scope(Server& s, const Client& c) {
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

std::size_t sync_until_done(Client& c, Transport& t) {
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

} // namespace

TEST_CASE(
    "an offline day over a faulty network: nothing lost, nothing doubled, equal to the server") {
    Server s;
    const Id tech = s.add_user("tec.dia", Role::technician);
    const auto ots = s.issue(tech, 50, "ZTEG");
    TempDir dev;
    LoopbackTransport good(*s.app);
    Client c((dev.path / "device.db").string(), key_of(7));
    c.enroll(good, "http://loopback", s.code(tech), "Samsung A14");
    c.sync(good);
    REQUIRE(c.list_ots_json("assigned").find(ots[0].hex()) != std::string::npos);
    CHECK(c.list_ots_json("", 1, 2).find(ots[0].hex()) != std::string::npos); // no window: listed

    // Offline: 200 items across the OTs, every OT completed.
    int matched = 0;
    for (int i = 0; i < 200; ++i) {
        const int o = i % 50;
        const std::string serial = i < 150
                                       ? "ZTEG" + std::to_string(o) + "-" + std::to_string(i / 50)
                                       : "EXTRA" + std::to_string(i);
        const auto v = c.collect(ots[static_cast<std::size_t>(o)].hex(), serial, "equipo",
                                 "migration", "", "");
        matched += v == OTSYNC_VERDICT_MATCHED ? 1 : 0;
        CHECK(v != OTSYNC_VERDICT_ALREADY_RECORDED);
    }
    CHECK(matched == 150);
    CHECK(c.collect(ots[0].hex(), "ZTEG0-0", "", "migration", "", "") ==
          OTSYNC_VERDICT_ALREADY_RECORDED);
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
        c.set_status(ot.hex(), "completed", "");
    }
    const std::size_t made = c.pending();
    const auto server_ops_before = s.store->op_count();

    LoopbackTransport faulty(*s.app, 42, 15);
    sync_until_done(c, faulty);
    for (int i = 0; i < 40; ++i) { // more round trips, so every kind of fault happens
        try {
            c.sync(faulty);
        } catch (const ClientError& e) {
            REQUIRE_MESSAGE(e.code() == OTSYNC_ERR_NETWORK, e.what());
        }
    }
    CHECK(faulty.dropped_requests > 0);
    CHECK(faulty.dropped_answers > 0);
    CHECK(faulty.duplicated > 0);
    CHECK(faulty.delayed > 0);
    CHECK(c.pending() == 0);
    CHECK(s.store->op_count() == server_ops_before + made); // each op stored exactly once
    s.sync->read_state([&](const crdt::Replica& st) {
        std::size_t items = 0;
        for (const Id& item : st.entities(EntityType::collected_item)) {
            items += st.get(EntityType::collected_item, item, "serial") ? 1 : 0;
        }
        CHECK(items == 200);
    });
    c.sync(good);
    check_equal_scope(s, c);
}

TEST_CASE("a device whose clock jumps a year ahead: its field facts still reach the server") {
    Server s;
    const Id tech = s.add_user("tec.fecha", Role::technician);
    const auto ots = s.issue(tech, 1, "CLK");
    TempDir dev;
    LoopbackTransport t(*s.app);
    SystemClock real;
    FakeClock phone(real.now_ms());
    Client c((dev.path / "device.db").string(), key_of(9), &phone);
    c.enroll(t, "http://loopback", s.code(tech), "Moto G");
    c.sync(t);
    const std::string ot = ots[0].hex();
    c.set_status(ot, "en_route", "");

    // Somebody sets the phone a year ahead; the technician works on, offline.
    phone.advance(365ll * 24 * 3600 * 1000);
    c.set_status(ot, "on_site", "");
    CHECK(c.collect(ot, "CLK0-0", "ONT", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(c.collect(ot, "CLK0-1", "Fuente", "damaged", "no enciende", "") ==
          OTSYNC_VERDICT_MATCHED);
    const auto stats = c.sync(t);
    // The server refused the stamps a year ahead; the device made the same facts again
    // in the server's time, and they landed, in the same sync.
    CHECK(stats.reissued > 0);
    CHECK(stats.rejected == 0);
    CHECK(c.pending() == 0);
    CHECK(c.status_json().find("clock_skew") == std::string::npos);
    s.sync->read_state([&](const crdt::Replica& st) {
        for (const char* serial : {"CLK0-0", "CLK0-1"}) {
            CHECK(st.entity(EntityType::collected_item, Id::collected_item(ots[0], serial)) !=
                  nullptr);
        }
        const Value* defect =
            st.get(EntityType::collected_item, Id::collected_item(ots[0], "CLK0-1"), "defect");
        REQUIRE(defect);
        CHECK(std::get<std::string>(*defect) == "no enciende");
        const Value* status = st.get(EntityType::work_order, ots[0], "status");
        REQUIRE(status);
        CHECK(std::get<std::string>(*status) == "on_site");
    });
    // Work after the correction is stamped in the server's time too, and the device shows
    // what the server has (no refused copy winning locally).
    c.set_status(ot, "completed", "");
    const auto after = c.sync(t);
    CHECK(after.rejected == 0);
    CHECK(after.reissued == 0);
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(std::get<std::string>(*st.get(EntityType::work_order, ots[0], "status")) ==
              "completed");
    });
    CHECK(std::get<std::string>(*c.state().get(EntityType::work_order, ots[0], "status")) ==
          "completed");
    check_equal_scope(s, c);

    // The phone's date is fixed again: the correction goes away, nothing is refused.
    phone.set(real.now_ms());
    c.sync(t);
    CHECK(c.collect(ot, "CLK0-2", "", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(c.sync(t).rejected == 0);
}

TEST_CASE("a device a few minutes ahead: accepted, and its later changes still win") {
    Server s;
    const Id tech = s.add_user("tec.minutos", Role::technician);
    const auto ots = s.issue(tech, 1, "MIN");
    TempDir dev;
    LoopbackTransport t(*s.app);
    SystemClock real;
    FakeClock phone(real.now_ms() + 5 * 60 * 1000); // inside the server's 10 minutes
    Client c((dev.path / "device.db").string(), key_of(10), &phone);
    c.enroll(t, "http://loopback", s.code(tech), "Nokia");
    c.sync(t);
    const std::string ot = ots[0].hex();
    c.set_status(ot, "on_site", "");
    CHECK(c.sync(t).rejected == 0); // accepted with stamps five minutes ahead
    // The device now stamps in the server's time; what it does next must still order
    // after what it did before.
    c.set_status(ot, "completed", "");
    CHECK(c.sync(t).rejected == 0);
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(std::get<std::string>(*st.get(EntityType::work_order, ots[0], "status")) ==
              "completed");
    });
    check_equal_scope(s, c);
}

TEST_CASE("two devices collecting the same serial make one row") {
    Server s;
    const Id tech = s.add_user("tec.dos", Role::technician);
    const auto ots = s.issue(tech, 1, "DUP");
    TempDir dev;
    LoopbackTransport t(*s.app);
    Client a((dev.path / "a.db").string(), key_of(1));
    Client b((dev.path / "b.db").string(), key_of(2));
    a.enroll(t, "http://loopback", s.code(tech), "a");
    b.enroll(t, "http://loopback", s.code(tech), "b");
    a.sync(t);
    b.sync(t);
    CHECK(a.collect(ots[0].hex(), "DUP0-1", "", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(b.collect(ots[0].hex(), "dup0-1 ", "", "damaged", "no enciende", "") ==
          OTSYNC_VERDICT_MATCHED);
    a.sync(t);
    b.sync(t);
    a.sync(t);
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entities(EntityType::collected_item).size() == 1);
    });
    CHECK(a.state().entities(EntityType::collected_item).size() == 1);
    check_equal_scope(s, a);
    check_equal_scope(s, b);
}

TEST_CASE("reassignment while offline: pending ops land, then the OT leaves the device") {
    Server s;
    const Id a_user = s.add_user("tec.a", Role::technician);
    const Id b_user = s.add_user("tec.b", Role::technician);
    const auto ots = s.issue(a_user, 1, "RE");
    TempDir dev;
    LoopbackTransport t(*s.app);
    Client a((dev.path / "a.db").string(), key_of(3));
    a.enroll(t, "http://loopback", s.code(a_user), "a");
    a.sync(t);
    a.collect(ots[0].hex(), "RE0-0", "", "migration", "", "");
    s.reassign(ots[0], b_user);
    const auto stats = a.sync(t);
    CHECK(stats.rejected == 0);
    CHECK(a.pending() == 0);
    CHECK(a.list_ots_json("").find(ots[0].hex()) == std::string::npos); // evicted
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entity(EntityType::collected_item, Id::collected_item(ots[0], "RE0-0")) !=
              nullptr);
    });
}

TEST_CASE(
    "at rest: wrong key refused, no CI number or signature bytes in clear; revoked device wiped") {
    Server s;
    const Id tech = s.add_user("tec.rest", Role::technician);
    const auto ots = s.issue(tech, 2, "SECRET");
    TempDir dev;
    const auto path = (dev.path / "device.db").string();
    LoopbackTransport t(*s.app);
    std::uint64_t replica = 0;
    {
        Client c(path, key_of(9));
        c.enroll(t, "http://loopback", s.code(tech), "x");
        c.sync(t);
        c.collect(ots[0].hex(), "SECRET0-0", "", "migration", "", "");
        const std::string png = "\x89PNG-FIRMA-DEL-CLIENTE-0123456789";
        c.sign(ots[0].hex(), reinterpret_cast<const std::uint8_t*>(png.data()), png.size());
        c.sync(t);
        replica = c.replica();
        CHECK(c.show_ot_json(ots[0].hex()).find("CI-SECRET4400000") != std::string::npos);
    }
    CHECK_THROWS_AS(Client(path, key_of(8)), ClientError);
    // Read every byte of the database and its WAL: the secrets are not there in clear.
    std::string all;
    for (const auto& f : std::filesystem::directory_iterator(dev.path)) {
        std::ifstream in(f.path(), std::ios::binary);
        all.append(std::istreambuf_iterator<char>(in), {});
    }
    CHECK(all.find("CI-SECRET44000") == std::string::npos);
    CHECK(all.find("FIRMA-DEL-CLIENTE") == std::string::npos);

    REQUIRE(s.store->revoke_device(replica));
    Client c(path, key_of(9));
    try {
        c.sync(t);
        FAIL("a revoked device must not sync");
    } catch (const ClientError& e) {
        CHECK(e.code() == OTSYNC_ERR_REVOKED);
    }
    CHECK_FALSE(c.enrolled());
    CHECK(c.state().entity_count() == 0);
    CHECK(c.status_json().find("revoked") != std::string::npos);
}
