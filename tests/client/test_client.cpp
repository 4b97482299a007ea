// client-core against the real server code in-process (no socket): a fault-injecting
// transport drops requests, drops answers after the server committed, duplicates and
// delays; the device must lose nothing, double nothing, and end equal to the server.
#include "client_fixture.hpp"

#include "otsync/client.hpp"

#include "api/app.hpp"
#include "procedure/procedure.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/view.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <thread>

using namespace otsync;
using namespace otsync::client;

using namespace otsync::client::testing;

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
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
    }
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
    const auto* png = reinterpret_cast<const std::uint8_t*>(tiny_png().data());
    for (std::size_t o = 0; o < ots.size(); ++o) {
        // The fourth expected serial stays with the customer; the customer signs the rows.
        c.report_missing(ots[o].hex(), "ZTEG" + std::to_string(o) + "-3", "el cliente lo tiene");
        c.sign(ots[o].hex(), png, tiny_png().size());
        c.set_status(ots[o].hex(), "completed", "");
    }
    const std::size_t made = c.pending();
    const auto server_ops_before = s.store->op_count();

    LoopbackTransport faulty(*s.app, 42, 15);
    c.set_retry_policy(fast_retries());
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
    // The batches travelled deflated: fewer bytes on the wire than in the signed messages.
    CHECK(faulty.deflated_requests > 0);
    CHECK(faulty.wire_bytes * 10 < faulty.message_bytes * 8);
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
    c.report_missing(ot, "CLK0-2", "extraviado");
    c.report_missing(ot, "CLK0-3", "extraviado");
    c.sign(ot, reinterpret_cast<const std::uint8_t*>(tiny_png().data()), tiny_png().size());
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
    c.create_handover("Cercado");
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
    for (int k = 0; k < 4; ++k) {
        c.report_missing(ot, "MIN0-" + std::to_string(k), "el cliente no lo tiene");
    }
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
    a.set_status(ots[0].hex(), "on_site", ""); // the technician arrives; both devices see it
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
    a.set_status(ots[0].hex(), "on_site", "");
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
        c.set_status(ots[0].hex(), "on_site", "");
        c.collect(ots[0].hex(), "SECRET0-0", "", "migration", "", "");
        const std::string png = otsync::testing::png_with_text("FIRMA-DEL-CLIENTE-0123456789");
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

TEST_CASE("a reassigned OT's equipment stays with the technician who collected it") {
    // Mamani collects CPR-AD3005051 offline; back office reassigns the OT to Quispe; Mamani
    // syncs. The modem is in Mamani's hands: her Anexo 4, her custody, her name on the views.
    Server s;
    server::Procedure& proc = s.root->procedure();
    auto person = [&](const std::string& name, const std::string& full, Role role) {
        server::User u{Id::random(), name, role, false, 0, {}, full, {}};
        s.store->add_user(u);
        return u;
    };
    const auto mamani = person("tec.mamani", "Juan Mamani", Role::technician);
    const auto quispe = person("tec.quispe", "Pedro Quispe", Role::technician);
    const auto bo = person("bo.rojas", "Ana Rojas", Role::back_office);
    const auto clerk = person("alm.vargas", "Rosa Vargas", Role::warehouse_clerk);
    const std::string modem = "CPR-AD3005051", adapter = "PWR-AD3005051";
    const std::string contract = "BT-3005051";
    proc.office().import_inventory(
        "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n" +
        contract + ",Cliente BOOT,natural,123456 CB,\"Calle 1, Zona\"," + modem +
        ",copper_modem,ZTE 831,Modem ADSL\n");
    const Id ot = Id::random(), kase = Id::random(), eq = Id::natural("equipment", modem);
    s.sync->submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
        std::vector<Op> ops;
        ops.push_back(m.set(EntityType::equipment, eq, "serial", text(modem)));
        ops.push_back(m.set(EntityType::equipment, eq, "kind", text("copper_modem")));
        ops.push_back(m.set(EntityType::equipment, eq, "contract", text(contract)));
        ops.push_back(m.event(EntityType::equipment, eq, "custody", text("customer")));
        ops.push_back(m.set(EntityType::case_file, kase, "customer_name", text("Cliente BOOT")));
        ops.push_back(m.set(EntityType::case_file, kase, "contract", text(contract)));
        ops.push_back(m.set(EntityType::work_order, ot, "case", kase));
        ops.push_back(m.set(EntityType::work_order, ot, "kind", text("withdraw_boot")));
        ops.push_back(
            m.set(EntityType::work_order, ot, "address", text("Av. Blanco Galindo 1234")));
        ops.push_back(m.set(EntityType::work_order, ot, "technician", mamani.id));
        Op issued = m.set(EntityType::work_order, ot, "status", text("issued"));
        Op assigned = m.set(EntityType::work_order, ot, "status", text("assigned"));
        assigned.observed = {issued.id};
        ops.push_back(issued);
        ops.push_back(assigned);
        ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment", text(modem)));
        return ops;
    });
    TempDir dev;
    LoopbackTransport t(*s.app);
    Client m((dev.path / "mamani.db").string(), key_of(21));
    Client q((dev.path / "quispe.db").string(), key_of(22));
    m.enroll(t, "http://loopback", s.code(mamani.id), "Samsung A14");
    q.enroll(t, "http://loopback", s.code(quispe.id), "Moto G");
    m.sync(t);
    q.sync(t);

    // Offline at the customer's: the modem, and an adapter that was not on the list.
    m.set_status(ot.hex(), "on_site", "");
    CHECK(m.collect(ot.hex(), modem, "Modem ADSL", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(m.collect(ot.hex(), adapter, "Fuente 12V", "migration", "", "") ==
          OTSYNC_VERDICT_UNEXPECTED);
    const Id row = Id::collected_item(ot, modem), row2 = Id::collected_item(ot, adapter);
    proc.ots().assign_ot(bo, ot, server::AssignOtCmd{"tec.quispe"});
    CHECK(m.sync(t).rejected == 0);
    CHECK(m.pending() == 0);
    CHECK(m.list_ots_json("").find(ot.hex()) == std::string::npos);      // the OT left her device
    CHECK(m.state().entity(EntityType::collected_item, row) != nullptr); // the modem did not
    q.sync(t);
    CHECK(q.list_ots_json("").find(ot.hex()) != std::string::npos);
    CHECK(q.state().entity(EntityType::collected_item, row) != nullptr); // he sees the OT's rows

    // The device says what happened to the OT instead of letting it vanish.
    const std::string status = m.status_json();
    CHECK(status.find("\"notices\":[{") != std::string::npos);
    CHECK(status.find("reasignada") != std::string::npos);
    CHECK(status.find("sus 2 filas llegaron al servidor") != std::string::npos);

    // The office sees Mamani as the one answerable for the rows.
    {
        const auto rec = proc.ots().ot_reconciliation(ot);
        const auto& lines = rec.reconciliation.lines;
        CHECK(std::any_of(lines.begin(), lines.end(), [&](const server::SerialLine& l) {
            return l.collected_by && rec.names->label(*l.collected_by) == "Juan Mamani";
        }));
    }
    // The discrepancies' serials, and who answers for them.
    const auto serials = [](const server::DiscrepancyList& l) {
        std::set<std::string> out;
        for (const auto& d : l.items) {
            out.insert(d.line.serial);
        }
        return out;
    };
    const auto technicians = [](const server::DiscrepancyList& l) {
        std::set<std::string> out;
        for (const auto& d : l.items) {
            out.insert(d.technician);
        }
        return out;
    };
    const auto open = proc.office().discrepancies({});
    CHECK(serials(open).contains(adapter));
    CHECK(technicians(open).contains("Juan Mamani"));
    CHECK(!technicians(open).contains("Pedro Quispe"));
    const auto held = proc.office().contract_detail(contract);
    REQUIRE(held.equipment.size() == 1);
    CHECK(held.equipment[0].custody == "technician");
    CHECK(held.equipment[0].held_by == "Juan Mamani");

    // Quispe has nothing to hand over; Mamani hands over both rows.
    try {
        q.create_handover("Zona Norte");
        FAIL_CHECK("Quispe's handover took rows Mamani collected");
    } catch (const ClientError& e) {
        CHECK(e.code() == OTSYNC_ERR_NOT_FOUND);
    }
    const Id h = Id::from_hex(m.create_handover("Zona Sud"));
    const auto rows = m.state().elements(EntityType::handover, h, "rows");
    CHECK(rows.size() == 2);
    CHECK(std::find(rows.begin(), rows.end(), Value{row}) != rows.end());
    CHECK(m.sync(t).rejected == 0);
    CHECK(m.pending() == 0);
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.elements(EntityType::handover, h, "rows").size() == 2);
    });
    proc.handovers().receive_handover(
        clerk, h, server::ReceiptCmd{{{modem, "received", ""}, {adapter, "received", ""}}});
    CHECK(proc.office().contract_detail(contract).equipment.at(0).custody == "warehouse");
    {
        // The Anexo 4 names Mamani, who delivers the rows, and never Quispe.
        const auto anexo4 = proc.handovers().anexo4_form(h);
        CHECK(anexo4.technician == "Juan Mamani");
        CHECK(anexo4.delivered_by == "Juan Mamani");
        CHECK(anexo4.received_by == "Rosa Vargas");
        REQUIRE(anexo4.rows.size() == 2);
        for (const auto& r : anexo4.rows) {
            CHECK(r.collected_by == "Juan Mamani");
        }
    }
    const auto all = proc.office().discrepancies({.all = true});
    CHECK(serials(all).contains(adapter));
    CHECK(technicians(all).contains("Juan Mamani"));

    // Received: out of her custody, the rows leave her device; the OT's technician keeps them.
    m.sync(t);
    q.sync(t);
    CHECK(m.state().entity(EntityType::collected_item, row) == nullptr);
    CHECK(m.state().entity(EntityType::collected_item, row2) == nullptr);
    CHECK(m.state().entity(EntityType::handover, h) != nullptr);
    CHECK(q.state().entity(EntityType::collected_item, row) != nullptr);
    // Her proof of delivery: the warehouse's receipt, signed by the server, checks on the
    // device with the key it got at enrollment.
    const std::string handovers = m.handovers_json();
    CHECK(handovers.find("\"received_by\":\"Rosa Vargas\"") != std::string::npos);
    CHECK(handovers.find("\"received_by_user\":\"" + clerk.id.hex() + "\"") != std::string::npos);
    CHECK(handovers.find("\"verified\":true") != std::string::npos);
    CHECK_NOTHROW(m.verify_receipt(h.hex()));
    CHECK_THROWS_AS(q.verify_receipt(h.hex()), ClientError); // not Quispe's handover
    check_equal_scope(s, m);
    check_equal_scope(s, q);
}

TEST_CASE("a first download's pages are written without flushes of their own; a recorded item "
          "is flushed before it counts") {
    server::SyncConfig small_pages;
    small_pages.default_page = 25;
    Server s({}, 0, small_pages);
    const Id tech = s.add_user("tec.descarga", Role::technician);
    const auto ots = s.issue(tech, 40, "ZTEG"); // 11 ops each: about 18 pages
    TempDir dev;
    LoopbackTransport good(*s.app);
    const SyncCountingVfs vfs; // the device's files from here on
    Client c((dev.path / "device.db").string(), key_of(7));
    c.enroll(good, "http://loopback", s.code(tech), "Samsung A14");

    const auto before = SyncCountingVfs::syncs();
    const auto stats = c.sync(good);
    const auto during = SyncCountingVfs::syncs() - before;
    CHECK(stats.received >= 440);
    CHECK(stats.requests >= 17);
    CAPTURE(during);
    // Each page and its cursor commit together, written but not flushed: what a power loss
    // drops the server sends again. (Flushing each page made one or more per request.)
    CHECK(during < 3);
    REQUIRE(c.list_ots_json("assigned").find(ots[39].hex()) != std::string::npos);

    // The device's own field fact is flushed the moment it is recorded.
    const auto before_collect = SyncCountingVfs::syncs();
    c.set_status(ots[0].hex(), "on_site", "");
    CHECK(SyncCountingVfs::syncs() > before_collect);
    const auto before_item = SyncCountingVfs::syncs();
    CHECK(c.collect(ots[0].hex(), "ZTEG0-0", "ONT", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(SyncCountingVfs::syncs() > before_item);
}

namespace {

/// Counts how the requests it carries are authenticated.
class AuthCounter : public ForwardingTransport {
public:
    using ForwardingTransport::ForwardingTransport;
    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        if (path == "/v1/sessions") {
            ++handshakes;
        } else if (headers.contains("x-otsync-mac")) {
            ++with_mac;
        } else if (headers.contains("x-otsync-signature")) {
            ++signed_requests;
        }
        return ForwardingTransport::post(path, headers, body);
    }
    int handshakes = 0, with_mac = 0, signed_requests = 0;
};

} // namespace

TEST_CASE("the handheld opens one session and MACs its requests; an expired session is opened "
          "again without losing anything") {
    server::SyncConfig short_sessions;
    short_sessions.session_ttl_ms = 5 * 60'000;
    short_sessions.default_page = 20;
    Server s({}, 0, short_sessions);
    const Id tech = s.add_user("tec.sesion", Role::technician);
    const auto ots = s.issue(tech, 10, "SES");
    TempDir dev;
    LoopbackTransport loop(*s.app);
    AuthCounter t(loop);
    auto device = std::make_unique<Client>((dev.path / "device.db").string(), key_of(9));
    Client& c = *device;
    c.enroll(t, "http://loopback", s.code(tech), "Samsung A14");
    c.sync(t);
    CHECK(t.handshakes == 1);
    CHECK(t.with_mac >= 5); // the pages of the first download
    CHECK(t.signed_requests == 0);
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
    }
    CHECK(c.collect(ots[0].hex(), "SES0-0", "ONT", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    const auto ops_before = s.store->op_count();
    const std::size_t pending = c.pending();
    REQUIRE(pending > 0);

    // The server's sessions end (its clock moves past them) while the device thinks its own
    // is live: the first request is refused session_expired, a new session opens, the ops go.
    s.clock = OffsetClock(10 * 60'000);
    const int handshakes = t.handshakes;
    c.sync(t);
    CHECK(t.handshakes == handshakes + 1);
    CHECK(c.pending() == 0);
    CHECK(s.store->op_count() == ops_before + pending); // each op once
    // The app restarts: the stored session is used, no handshake.
    device.reset();
    Client again((dev.path / "device.db").string(), key_of(9));
    const int before_restart = t.handshakes;
    const int macs = t.with_mac;
    again.sync(t);
    CHECK(t.handshakes == before_restart);
    CHECK(t.with_mac > macs);
    CHECK(t.signed_requests == 0);
}

TEST_CASE("a server that opens no session: one handshake tried per sync, every request signed, "
          "nothing lost") {
    server::SyncConfig small_pages;
    small_pages.default_page = 20;
    Server s({}, 0, small_pages);
    const Id tech = s.add_user("tec.sinsesion", Role::technician);
    const auto ots = s.issue(tech, 10, "NOS");
    TempDir dev;
    LoopbackTransport loop(*s.app);
    // A server of protocol 1 only: no such route.
    class NoSessions : public ForwardingTransport {
    public:
        using ForwardingTransport::ForwardingTransport;
        HttpReply post(const std::string& path, const std::map<std::string, std::string>& h,
                       const std::string& body) override {
            if (path == "/v1/sessions") {
                return HttpReply{404, R"({"error":{"code":"not_found","message":"no route"}})"};
            }
            return ForwardingTransport::post(path, h, body);
        }

    } old_server(loop);
    AuthCounter t(old_server);
    Client c((dev.path / "device.db").string(), key_of(5));
    c.enroll(t, "http://loopback", s.code(tech), "Samsung A14");
    const auto stats = c.sync(t);
    CHECK(t.handshakes == 1);   // tried once, not once per page
    CHECK(stats.requests >= 5); // the pages of the first download
    CHECK(t.with_mac == 0);
    CHECK(t.signed_requests == static_cast<int>(stats.requests) - 1);
    REQUIRE(c.list_ots_json("assigned").find(ots[9].hex()) != std::string::npos);
    c.set_status(ots[0].hex(), "on_site", "");
    c.sync(t);
    CHECK(c.pending() == 0);
}

TEST_CASE("a request cut on a link that was answering is retried at once, once; then back-off") {
    Server s;
    const Id tech = s.add_user("tec.corte", Role::technician);
    const auto ots = s.issue(tech, 2, "CUT");
    TempDir dev;
    LoopbackTransport loop(*s.app);
    // Cuts the posts whose numbers are listed (no answer, as a connection lost).
    class Cutting : public ForwardingTransport {
    public:
        using ForwardingTransport::ForwardingTransport;
        HttpReply post(const std::string& path, const std::map<std::string, std::string>& h,
                       const std::string& body) override {
            if (cut.erase(++posts) > 0) {
                HttpReply r;
                r.error = OTSYNC_ERR_NETWORK;
                r.error_message = "the connection was cut";
                return r;
            }
            return ForwardingTransport::post(path, h, body);
        }
        std::set<int> cut;
        int posts = 0;

    } link(loop);
    Client c((dev.path / "device.db").string(), key_of(10));
    c.enroll(link, "http://loopback", s.code(tech), "Samsung A14");
    RetryPolicy policy;
    policy.initial_delay_ms = 200;
    c.set_retry_policy(policy);
    std::vector<std::uint32_t> waits;
    const ProgressFn seen = [&](const SyncProgress& p) {
        if (p.retry_in_ms > 0) {
            waits.push_back(p.retry_in_ms);
        }
        return true;
    };
    c.sync(link);
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
    }
    for (int i = 0; i < 150; ++i) { // about 750 ops: two requests at least
        c.collect(ots[static_cast<std::size_t>(i % 2)].hex(), "CUTX" + std::to_string(i), "equipo",
                  "migration", "", "");
    }
    // The first request is answered; then two cuts in a row.
    link.cut = {link.posts + 2, link.posts + 3};
    c.sync(link, seen);
    REQUIRE(waits.size() == 2);
    CHECK(waits[0] == 1);   // at once, on a new connection
    CHECK(waits[1] >= 320); // the second in a row backs off (400 ms less up to 20 % jitter)
    CHECK(c.pending() == 0);
    // A sync whose first request finds no link backs off from the first failure.
    waits.clear();
    c.collect(ots[0].hex(), "CUTY", "equipo", "migration", "", "");
    link.cut = {link.posts + 1};
    c.sync(link, seen);
    REQUIRE(waits.size() == 1);
    CHECK(waits[0] >= 160);
    CHECK(c.pending() == 0);
}

TEST_CASE("a sync counts the bytes its transport reports on the wire, else the bodies") {
    Server s;
    const Id tech = s.add_user("tec.bytes", Role::technician);
    const auto ots = s.issue(tech, 2, "BYTES");
    TempDir dev;
    LoopbackTransport loop(*s.app);
    // Reports headers of 300 bytes each way, as an HTTP transport would.
    class Reporting : public ForwardingTransport {
    public:
        using ForwardingTransport::ForwardingTransport;
        HttpReply post(const std::string& path, const std::map<std::string, std::string>& h,
                       const std::string& body) override {
            HttpReply r = ForwardingTransport::post(path, h, body);
            if (report) {
                r.wire_bytes_up = body.size() + 300;
                r.wire_bytes_down = r.body.size() + 300;
                up += r.wire_bytes_up;
                down += r.wire_bytes_down;
            } else {
                up += body.size();
                down += r.body.size();
            }
            return r;
        }
        bool report = true;
        std::uint64_t up = 0, down = 0;

    } link(loop);
    Client c((dev.path / "device.db").string(), key_of(8));
    c.enroll(link, "http://loopback", s.code(tech), "Samsung A14");
    c.sync(link);
    for (const bool report : {true, false}) {
        CAPTURE(report);
        link.report = report;
        link.up = link.down = 0;
        c.set_status(ots[report ? 0 : 1].hex(), "on_site", "");
        const SyncStats stats = c.sync(link);
        REQUIRE(stats.requests > 0);
        CHECK(stats.bytes_up == link.up);
        CHECK(stats.bytes_down == link.down);
    }
}

TEST_CASE("on a slow link the batches shrink to what it carries in the policy's target; every "
          "op lands once") {
    Server s;
    const Id tech = s.add_user("tec.lento", Role::technician);
    const auto ots = s.issue(tech, 20, "SLOW");
    TempDir dev;
    LoopbackTransport loop(*s.app);
    // A link of 20 KB/s: each request waits for its bytes; counts the ops of each.
    class Slow : public ForwardingTransport {
    public:
        using ForwardingTransport::ForwardingTransport;
        HttpReply post(const std::string& path, const std::map<std::string, std::string>& h,
                       const std::string& body) override {
            if (path == "/v1/sync") {
                auto headers = h;
                auto b = body;
                REQUIRE_FALSE(server::decode_request(headers, b, 8u << 20));
                if (const std::size_t n = decode_sync_request(b).ops.size(); n > 0) {
                    ops_per_request.push_back(n);
                }
            }
            HttpReply r = ForwardingTransport::post(path, h, body);
            if (slow) {
                std::this_thread::sleep_for(
                    std::chrono::microseconds(50 * (body.size() + r.body.size())));
            }
            return r;
        }
        bool slow = false;
        std::vector<std::size_t> ops_per_request;

    } link(loop);
    Client c((dev.path / "device.db").string(), key_of(9));
    c.enroll(link, "http://loopback", s.code(tech), "Samsung A14");
    c.sync(link);
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
    }
    for (int i = 0; i < 400; ++i) { // about 2,000 ops
        c.collect(ots[static_cast<std::size_t>(i % 20)].hex(), "SLOWX" + std::to_string(i),
                  "equipo", "migration", "", "");
    }
    REQUIRE(c.pending() > 1500);
    RetryPolicy policy;
    policy.batch_target_ms = 50; // about 1 KB of this link
    c.set_retry_policy(policy);
    link.slow = true;
    c.sync(link);
    CHECK(c.pending() == 0);
    const auto& sent = link.ops_per_request;
    REQUIRE(sent.size() >= 3);
    CHECK(sent[0] == 500); // nothing measured yet
    CHECK(sent[1] < 300);  // what 50 ms of the link carries (about 8 bytes an op, and headers)
    CHECK(*std::max_element(sent.begin() + 1, sent.end()) < 300);
    policy.batch_target_ms = 0;
    CHECK_THROWS_AS(c.set_retry_policy(policy), ClientError);
    // Every recorded item reached the server once.
    std::size_t rows = 0;
    s.sync->read_state([&](const crdt::Replica& st) {
        for (const Id& id : st.entities(EntityType::collected_item)) {
            const Value* serial = st.get(EntityType::collected_item, id, "serial");
            const auto* text = serial ? std::get_if<std::string>(serial) : nullptr;
            rows += text && text->rfind("SLOWX", 0) == 0 ? 1 : 0;
        }
    });
    CHECK(rows == 400);
}
