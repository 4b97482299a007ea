// The real otsync-server process on a loopback port: quick start with demo data,
// enrollment and sync over HTTP in both encodings, admin commands against a running
// server, bad input answered with JSON errors, graceful shutdown.
#include "server_process.hpp"

#include "otsync/crdt.hpp"

#include <sqlite3.h>

#include <array>
#include <sstream>
#include <thread>

using namespace otsync;
using namespace otsync::test;

namespace {} // namespace

namespace {

std::uint64_t system_now_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

/// Back office's ops that issue an OT and assign it to `tech`.
std::vector<Op> assign_ot(crdt::OpMaker& bo, const Id& ot, const Id& tech) {
    std::vector<Op> ops{bo.set(EntityType::work_order, ot, "kind", text("install_copper")),
                        bo.set(EntityType::work_order, ot, "technician", tech)};
    ops.push_back(bo.set(EntityType::work_order, ot, "status", text("issued")));
    Op assigned = bo.set(EntityType::work_order, ot, "status", text("assigned"));
    assigned.observed = {ops.back().id};
    ops.push_back(assigned);
    return ops;
}

} // namespace

TEST_CASE("quick start: demo data, health, metrics, devices") {
    DataDir dir;
    ServerProcess server(dir.path, {"--demo"});
    server.start();
    const auto health = http_call(server.port, "GET", "/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == "{\"status\":\"ok\"}");
    // A request is counted when its access-log line is written, just after its response
    // has gone out: the next request may overtake that by a moment, so look again.
    const std::string healthz_line =
        "otsync_http_requests_total{route=\"/healthz\",status=\"200\"} 1";
    auto metrics = http_call(server.port, "GET", "/metrics");
    for (int i = 0; i < 100 && metrics.body.find(healthz_line) == std::string::npos; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        metrics = http_call(server.port, "GET", "/metrics");
    }
    CHECK(metrics.status == 200);
    CHECK(metrics.body.find("otsync_oplog_ops ") != std::string::npos);
    CHECK(metrics.body.find("otsync_devices{state=\"known\"} 2") != std::string::npos);
    CHECK(metrics.body.find(healthz_line) != std::string::npos);
    const auto missing = http_call(server.port, "GET", "/nope");
    CHECK(missing.status == 404);
    CHECK(missing.body.find("\"error\":{\"code\":") != std::string::npos);
    const std::string devices = admin(dir.path, {"device", "list"});
    CHECK(devices.find("tec.mamani") != std::string::npos);
    CHECK(devices.find("tec.quispe") != std::string::npos);
    CHECK(std::filesystem::exists(dir.path / "demo-devices" / "tec.mamani.json"));
    CHECK(server.stop() == 0); // SIGTERM: graceful
}

TEST_CASE("enroll and sync over HTTP; admin revokes a device of a running server") {
    DataDir dir;
    ServerProcess server(dir.path);
    server.start();
    admin(dir.path, {"user", "add", "--role", "back_office", "bo.ana"});
    admin(dir.path, {"user", "add", "--role", "technician", "tec.luis"});
    admin(dir.path, {"user", "add", "--role", "wizard", "x"}, 2);
    admin(dir.path, {"device", "enroll-code", "nobody"}, 1);
    HttpDevice office, tech;
    REQUIRE(office.enroll(server.port, admin(dir.path, {"device", "enroll-code", "bo.ana"})));
    const std::string code = admin(dir.path, {"device", "enroll-code", "tec.luis"});
    REQUIRE(tech.enroll(server.port, code));
    CHECK_FALSE(HttpDevice{}.enroll(server.port, code)); // single use

    // Back office issues and assigns an OT from its device, in JSON.
    FakeClock wall(system_now_ms());
    Hlc hlc(wall);
    crdt::Replica office_state;
    crdt::OpMaker bo(office.replica, hlc, office.user);
    const Id ot = Id::random();
    std::vector<Op> ops{
        bo.set(EntityType::work_order, ot, "kind", text("install_copper")),
        bo.add(EntityType::work_order, ot, "expected_equipment", text("HWTC00000001")),
        bo.set(EntityType::work_order, ot, "technician", tech.user)};
    ops.push_back(bo.set(EntityType::work_order, ot, "status", text("issued")));
    Op assigned = bo.set(EntityType::work_order, ot, "status", text("assigned"));
    assigned.observed = {ops.back().id};
    ops.push_back(assigned);
    auto r = office.post(server.port, office.request(ops, hlc.now()), true);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    const auto office_resp = sync_response_from_json(r.body);
    for (const auto& res : office_resp.results) {
        CHECK_MESSAGE(res.status == OpStatus::accepted, res.message);
    }

    // The technician pulls it in binary.
    r = tech.post(server.port, tech.request({}, hlc.now()), false);
    REQUIRE(r.status == 200);
    CHECK(r.content_type == k_content_type_binary);
    const auto pulled = decode_sync_response(r.body);
    crdt::Replica tech_state;
    for (const auto& s : pulled.ops) {
        tech_state.apply(s.op);
    }
    CHECK(tech_state.elements(EntityType::work_order, ot, "expected_equipment").size() == 1);

    // What otsync-admin changes in the database beside the running server counts at the
    // server's next request: a disabled user's device is refused, enabled again it syncs.
    admin(dir.path, {"user", "disable", "tec.luis"});
    r = tech.post(server.port, tech.request({}, hlc.now()), false);
    CHECK(r.status == 401);
    CHECK(r.body.find("\"user_disabled\"") != std::string::npos);
    admin(dir.path, {"user", "enable", "tec.luis"});
    r = tech.post(server.port, tech.request({}, hlc.now()), false);
    CHECK(r.status == 200);
    // A password set by otsync-admin logs in; the one it replaced does not.
    const auto login = [&](const std::string& password) {
        return http_call(server.port, "POST", "/v1/auth/login",
                         "{\"name\":\"bo.ana\",\"password\":\"" + password + "\"}",
                         {{"Content-Type", "application/json"}})
            .status;
    };
    const auto set_password = [&](const std::string& password) {
        const auto [rc, out] = run_command(
            {"/bin/sh", "-c",
             "printf '%s\\n' \"$1\" | \"$2\" --data-dir \"$3\" user set-password bo.ana", "sh",
             password, OTSYNC_ADMIN_BIN, dir.path.string()});
        REQUIRE_MESSAGE(rc == 0, out);
    };
    set_password("clave-de-prueba-uno");
    CHECK(login("clave-de-prueba-uno") == 200);
    set_password("clave-de-prueba-dos");
    CHECK(login("clave-de-prueba-uno") == 401);
    CHECK(login("clave-de-prueba-dos") == 200);

    // Garbage, properly signed: a clear 400, and the server keeps answering.
    for (const bool json : {false, true}) {
        const std::string garbage =
            json ? "{\"protocol_version\":1,\"ops\":" : std::string("\x01Q\x01\x00\x00\x00zz", 9);
        tech.counter++;
        const Signature sig =
            sign(sync_signing_string("POST", "/v1/sync", tech.counter, garbage), tech.key.secret);
        const auto bad =
            http_call(server.port, "POST", "/v1/sync", garbage,
                      {{"Content-Type", json ? k_content_type_json : k_content_type_binary},
                       {"X-Otsync-Replica", std::to_string(tech.replica)},
                       {"X-Otsync-Counter", std::to_string(tech.counter)},
                       {"X-Otsync-Signature", to_base64(sig)}});
        CHECK(bad.status == 400);
        CHECK(bad.body.find("\"code\":") != std::string::npos);
        CHECK(http_call(server.port, "GET", "/healthz").status == 200);
    }

    admin(dir.path, {"device", "revoke", std::to_string(tech.replica)});
    r = tech.post(server.port, tech.request({}, hlc.now()), false);
    CHECK(r.status == 401);
    CHECK(http_call(server.port, "GET", "/healthz").status == 200);
    CHECK(server.stop() == 0);
}

TEST_CASE("otsync-admin rebuild --verify: projections equal the refolded log, or say which not") {
    DataDir dir;
    ServerProcess server(dir.path, {"--demo"});
    server.start();
    // While the server runs: a consistent snapshot, nothing to report.
    CHECK(admin(dir.path, {"rebuild", "--verify"}).find("all equal") != std::string::npos);
    CHECK(server.stop() == 0);
    // Damage one projection row and drop another: both are named, exit 1.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir.path / "otsync.db").c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "UPDATE projections SET state='{}' WHERE rowid IN (SELECT rowid FROM "
                       "projections LIMIT 1)",
                       nullptr, nullptr, nullptr) != SQLITE_OK); // WITHOUT ROWID: no rowid
    CHECK(sqlite3_exec(db,
                       "UPDATE projections SET state='{}' WHERE entity IN (SELECT entity FROM "
                       "projections WHERE entity_type=2 LIMIT 1);"
                       "DELETE FROM projections WHERE entity IN (SELECT entity FROM projections "
                       "WHERE entity_type=1 LIMIT 1);",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
    admin(dir.path, {"rebuild", "--verify"}, 1);
    // A rebuild rewrites them from the log; then they verify again.
    CHECK(admin(dir.path, {"rebuild"}).find("rebuilt") != std::string::npos);
    CHECK(admin(dir.path, {"rebuild", "--verify"}).find("all equal") != std::string::npos);
    admin(dir.path, {"rebuild", "--now"}, 2);
}

TEST_CASE("otsync-admin backup: a consistent copy of a running server's database") {
    DataDir dir, restored;
    ServerProcess server(dir.path, {"--demo"});
    server.start();
    const auto copy = restored.path / "otsync.db";
    CHECK(admin(dir.path, {"backup", copy.string()}).find("integrity_check ok") !=
          std::string::npos);
    admin(dir.path, {"backup", copy.string()}, 1); // never over an existing file
    CHECK(server.stop() == 0);
    // The copy is a whole data folder's database: it verifies, and a server starts on it.
    CHECK(admin(restored.path, {"rebuild", "--verify"}).find("all equal") != std::string::npos);
    CHECK(admin(restored.path, {"user", "list"}).find("almacen.demo") != std::string::npos);
    ServerProcess again(restored.path);
    again.start();
    CHECK(http_call(again.port, "GET", "/healthz").status == 200);
    CHECK(again.stop() == 0);
}

TEST_CASE("a database from a newer schema is refused with a clear message") {
    DataDir dir;
    {
        ServerProcess server(dir.path);
        server.start();
        CHECK(server.stop() == 0);
    }
    // Pretend a newer otsync wrote it.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir.path / "otsync.db").c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
    const auto [admin_code, admin_out] =
        run_command({OTSYNC_ADMIN_BIN, "--data-dir", dir.path.string(), "user", "list"});
    CHECK(admin_code == 1);
    CHECK(admin_out.empty());
    const auto [server_code, server_out] = run_command(
        {OTSYNC_SERVER_BIN, "--data-dir", dir.path.string(), "--listen", "127.0.0.1:0"});
    CHECK(server_code == 1);
}

TEST_CASE("otsync-admin verify: every op a device signed matches the log, or the difference is "
          "named") {
    DataDir dir;
    ServerProcess server(dir.path);
    server.start();
    admin(dir.path, {"user", "add", "--role", "back_office", "bo.firma"});
    HttpDevice office;
    REQUIRE(office.enroll(server.port, admin(dir.path, {"device", "enroll-code", "bo.firma"})));
    FakeClock wall(system_now_ms());
    Hlc hlc(wall);
    crdt::OpMaker bo(office.replica, hlc, office.user);
    const Id case_id = Id::random();
    // Protocol 2 in JSON (signed ops), then protocol 2 in binary, then protocol 1 (none).
    auto r = office.post(server.port,
                         office.request({bo.set(EntityType::case_file, case_id, "customer_name",
                                                text("Rosa Choque"))},
                                        hlc.now()),
                         true);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    r = office.post(
        server.port,
        office.request({bo.set(EntityType::case_file, case_id, "contract", text("C-4410")),
                        bo.set(EntityType::case_file, case_id, "reference_cell", text("70712345"))},
                       hlc.now()),
        false);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    SyncRequest old = office.request(
        {bo.set(EntityType::case_file, case_id, "contact_hours", text("tardes"))}, hlc.now());
    old.protocol_version = 1;
    old.ops_signature.clear();
    REQUIRE(office.post(server.port, old, false).status == 200);

    const std::string ok = admin(dir.path, {"verify"});
    CHECK(ok.find("2 signed batches; 3 ops of the log match") != std::string::npos);
    CHECK(ok.find("1 device ops carry no signature") != std::string::npos);
    CHECK(ok.find("verified") != std::string::npos);
    CHECK(server.stop() == 0);

    // An op of the log changed after it was signed: named, exit 1.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open((dir.path / "otsync.db").c_str(), &db) == SQLITE_OK);
    Op forged = bo.set(EntityType::case_file, case_id, "contract", text("C-9999"));
    forged.id = {office.replica, 2}; // the contract op of the binary batch
    const std::string body = encode_binary(std::span<const Op>(&forged, 1));
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "UPDATE ops SET body=? WHERE replica=? AND counter=2", -1, &st,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_blob(st, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(office.replica));
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    CHECK(sqlite3_changes(db) == 1);
    sqlite3_close(db);
    const std::string bad = admin(dir.path, {"verify"}, 1);
    CHECK(bad.find("op " + std::to_string(office.replica) +
                   ":2 in the log differs from what the device signed") != std::string::npos);
    admin(dir.path, {"verify", "--now"}, 2);
}

TEST_CASE("long-poll: a waiting pull is answered when an OT is assigned to its device, an idle one "
          "at its wait, never past the server's bound") {
    DataDir dir;
    ServerProcess server(dir.path, {"--max-wait-ms", "20000"});
    server.start();
    admin(dir.path, {"user", "add", "--role", "back_office", "bo.espera"});
    admin(dir.path, {"user", "add", "--role", "technician", "tec.espera"});
    HttpDevice office, tech;
    REQUIRE(office.enroll(server.port, admin(dir.path, {"device", "enroll-code", "bo.espera"})));
    REQUIRE(tech.enroll(server.port, admin(dir.path, {"device", "enroll-code", "tec.espera"})));
    FakeClock wall(system_now_ms());
    Hlc hlc(wall);
    crdt::OpMaker bo(office.replica, hlc, office.user);
    // The client's own deadline is below the server's bound: a pull that was not woken
    // would fail here with no answer rather than pass late.
    client::HttpOptions patient;
    patient.request_timeout_ms = 15'000;
    patient.io_timeout_ms = 15'000;

    // An idle pull with nothing for it: answered empty at its wait, the cursor unchanged.
    SyncRequest idle = tech.request({}, hlc.now());
    idle.wait_ms = 300;
    auto r = tech.post(server.port, idle, false, patient);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    auto page = decode_sync_response(r.body);
    CHECK(page.ops.empty());
    CHECK(page.cursor == idle.cursor);

    // A pull that waits (longer than the client would) while back office assigns an OT.
    SyncRequest waiting = tech.request({}, hlc.now());
    waiting.wait_ms = 60'000; // the server holds it at most its --max-wait-ms
    HttpResult woken;
    std::thread puller([&] { woken = tech.post(server.port, waiting, true, patient); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // let it wait (either way works)
    const Id ot = Id::random();
    REQUIRE(office.post(server.port, office.request(assign_ot(bo, ot, tech.user), hlc.now()), false)
                .status == 200);
    puller.join();
    REQUIRE_MESSAGE(woken.status == 200, woken.body);
    page = sync_response_from_json(woken.body);
    CHECK(std::any_of(page.ops.begin(), page.ops.end(),
                      [&](const SeqOp& s) { return s.op.entity == ot; }));
    CHECK(page.cursor > waiting.cursor);

    // Protocol 1 has no wait: answered at once.
    SyncRequest v1 = tech.request({}, hlc.now());
    v1.protocol_version = 1;
    v1.cursor = page.cursor;
    r = tech.post(server.port, v1, false, patient);
    REQUIRE(r.status == 200);
    CHECK(decode_sync_response(r.body).protocol_version == 1);
    // A stop answers what still waits, then ends.
    SyncRequest last = tech.request({}, hlc.now());
    last.cursor = page.cursor;
    last.wait_ms = 60'000;
    HttpResult at_stop;
    std::thread stopper([&] { at_stop = tech.post(server.port, last, false, patient); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(server.stop() == 0);
    stopper.join();
    CHECK(at_stop.status == 200);
}

TEST_CASE("a handheld's background sync waits on the server for its next OT: one request, "
          "answered when the OT is assigned") {
    DataDir dir;
    ServerProcess server(dir.path);
    server.start();
    admin(dir.path, {"user", "add", "--role", "back_office", "bo.fondo"});
    admin(dir.path, {"user", "add", "--role", "technician", "tec.fondo"});
    HttpDevice office;
    REQUIRE(office.enroll(server.port, admin(dir.path, {"device", "enroll-code", "bo.fondo"})));
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port);
    client::HttpOptions patient;
    patient.io_timeout_ms = 15'000; // a wait not woken would end here, with no answer
    patient.request_timeout_ms = 15'000;
    const auto transport = client::make_http_transport(url, patient);
    TempDir handheld("otsync-fondo-");
    std::array<std::uint8_t, 32> key{};
    key.fill(4);
    client::Client c((handheld.path / "device.db").string(), key);
    c.enroll(*transport, url, admin(dir.path, {"device", "enroll-code", "tec.fondo"}), "A14");
    c.sync(*transport);
    const Id ot = Id::random();
    CHECK(c.list_ots_json("assigned").find(ot.hex()) == std::string::npos);

    client::SyncStats waited{};
    std::thread background([&] { waited = c.sync(*transport, {}, 60'000); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // either order works
    FakeClock wall(system_now_ms());
    Hlc hlc(wall);
    crdt::OpMaker bo(office.replica, hlc, office.user);
    const Id tech_id = [&] {
        const std::string users = admin(dir.path, {"user", "list"});
        const auto at = users.find("\ntec.fondo\t");
        REQUIRE(at != std::string::npos);
        std::istringstream line(users.substr(at + 1));
        std::string name, role, state, hex;
        std::getline(line, name, '\t');
        std::getline(line, role, '\t');
        std::getline(line, state, '\t');
        std::getline(line, hex, '\t');
        return Id::from_hex(hex);
    }();
    REQUIRE(office.post(server.port, office.request(assign_ot(bo, ot, tech_id), hlc.now()), false)
                .status == 200);
    background.join();
    CHECK(waited.received > 0);
    CHECK(c.list_ots_json("assigned").find(ot.hex()) != std::string::npos);
    CHECK(server.stop() == 0);
}
