// What only the PostgreSQL store has (server/store/postgres_store.hpp), on a real
// PostgreSQL 15 cluster this process starts (tests/pg_cluster.hpp), a fresh database per
// test case: the schema version check, directory_version moved by another connection, an
// immediate stop of the cluster losing no committed op, a failed commit_many leaving
// nothing, the write lock, enrollment racing on two connections, and the procedure end to
// end on a Server whose store_url names the cluster. The Store contract itself is the
// backend-independent suite's (test_store).
#include "../pg_cluster.hpp"
#include "server.hpp"
#include "store/postgres_store.hpp"
#include "sync_fixture.hpp"

#include "otsync/view.hpp"

#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

using namespace otsync;
using namespace otsync::test;

namespace {

std::unique_ptr<server::Store> open_pg(const std::string& conninfo) {
    server::PostgresOptions o;
    o.conninfo = conninfo;
    return server::open_postgres_store(o);
}

/// Runs fixed SQL on a connection of its own (what another process would do).
void run_sql(const std::string& conninfo, const char* sql) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    REQUIRE(PQstatus(c) == CONNECTION_OK);
    PGresult* r = PQexec(c, sql);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    const std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    REQUIRE_MESSAGE(ok, msg);
}

server::User add_user(server::Store& s, const std::string& name, Role role) {
    server::User u;
    u.id = Id::natural("user", name);
    u.name = name;
    u.role = role;
    u.created_at = 1;
    s.add_user(u);
    return u;
}

/// `n` ops of replica `replica` from counter `first` on one case.
std::vector<server::StoredOp> ops_of(std::uint64_t replica, std::uint64_t first, int n) {
    FakeClock clock{1'795'000'000'000};
    Hlc hlc(clock);
    crdt::OpMaker m(replica, hlc, Id::natural("user", "x"), first - 1);
    std::vector<server::StoredOp> out;
    const Id c = Id::natural("case", std::to_string(replica));
    for (int i = 0; i < n; ++i) {
        server::StoredOp so;
        so.op = m.set(EntityType::case_file, c, "customer_name", text("n" + std::to_string(i)));
        so.received_at = 5;
        out.push_back(std::move(so));
    }
    return out;
}

} // namespace

TEST_CASE("postgres: a database from a newer schema is refused with a clear error") {
    const std::string db = fresh_pg_database();
    { auto s = open_pg(db); }     // creates the schema at k_schema_version
    { auto again = open_pg(db); } // opening a current database changes nothing
    run_sql(db, "UPDATE schema_version SET version = 99");
    try {
        (void)open_pg(db);
        FAIL("a newer schema was opened");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::unsupported_protocol);
        CHECK(std::string(e.what()).find("schema version 99, newer than this otsync") !=
              std::string::npos);
    }
}

TEST_CASE("postgres: unreachable database and the conninfo forms") {
    CHECK_THROWS_AS((void)open_pg("host=/nonexistent-otsync dbname=x connect_timeout=2"), Error);
    CHECK(server::is_postgres_url("postgres://u@h/db"));
    CHECK(server::is_postgres_url("postgresql:///otsync?host=/run/postgresql"));
    CHECK(server::is_postgres_url("host=/tmp dbname=otsync"));
    CHECK(server::is_postgres_url("dbname=otsync"));
    CHECK(!server::is_postgres_url("var/otsync.db"));
    CHECK(!server::is_postgres_url("/srv/ghost=1/otsync.db"));
    server::ServerConfig cfg;
    cfg.store_url = "var/otsync.db";
    CHECK_THROWS_AS((void)server::open_store(cfg), Error);
}

TEST_CASE("postgres: directory_version moves for users and device identity from another "
          "connection, not for a sync's counter, cursor or last seen") {
    const std::string db = fresh_pg_database();
    auto server_side = open_pg(db);
    auto admin = open_pg(db); // another process on the same database
    auto v = server_side->directory_version();
    const auto moved = [&] {
        const auto now = server_side->directory_version();
        const bool m = now != v;
        v = now;
        return m;
    };
    const auto tech = add_user(*admin, "tec", Role::technician);
    CHECK(moved());
    admin->set_user_profile(tech.id, "Juan Mamani", "Cercado");
    CHECK(moved());
    admin->set_password_hash(tech.id, "$argon2id$x");
    CHECK(moved());
    const Hash256 code{1, 2, 3};
    admin->add_enroll_code(code, tech.id, 1000);
    CHECK(!moved());
    const PublicKey key{9};
    const auto d = admin->enroll(code, key, "A14", 10);
    REQUIRE(d);
    CHECK(moved());
    // A sync's bookkeeping: no move.
    server::SyncWrite w;
    w.replica = d->replica;
    w.request_counter = 7;
    w.cursor = 3;
    w.now = 99;
    (void)admin->commit_many({&w});
    CHECK(!moved());
    CHECK(server_side->device(d->replica)->last_counter == 7);
    CHECK(admin->revoke_device(d->replica));
    CHECK(moved());
    CHECK(server_side->device(d->replica)->status == server::DeviceStatus::revoked);
    // Even a plain SQL update by hand moves it (the triggers are in the database).
    run_sql(db, "UPDATE users SET disabled = 1");
    CHECK(moved());
    run_sql(db, "UPDATE devices SET last_seen = last_seen + 1, cursor = cursor + 1");
    CHECK(!moved());
}

TEST_CASE("postgres: a commit_many that fails mid-way leaves nothing, and no sequence gap") {
    const std::string db = fresh_pg_database();
    auto s = open_pg(db);
    const auto tech = add_user(*s, "tec", Role::technician);
    const Hash256 code{4};
    s->add_enroll_code(code, tech.id, 1000);
    const auto d = s->enroll(code, PublicKey{1}, "A14", 10);
    REQUIRE(d);
    server::SyncWrite first;
    first.replica = d->replica;
    first.request_counter = 1;
    first.cursor = 0;
    first.now = 20;
    first.ops = ops_of(d->replica, 1, 3);
    first.feed.push_back({tech.id, 0, std::nullopt, std::nullopt, false});
    first.projections.push_back({EntityType::case_file, Id::natural("case", "p"), "{}"});
    server::SyncWrite second = first; // the same op ids again: a unique violation
    second.request_counter = 2;
    CHECK_THROWS_AS((void)s->commit_many({&first, &second}), Error);
    CHECK(s->op_count() == 0);
    CHECK(s->last_seq() == 0);
    CHECK(s->feed_count_after(tech.id, 0) == 0);
    CHECK(s->projections().empty());
    CHECK(s->device(d->replica)->last_counter == 0);
    // The store is usable after the failure and the sequence starts at 1 (max + 1).
    const auto seqs = s->commit_many({&first});
    REQUIRE(seqs.size() == 1);
    CHECK(seqs[0] == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(s->feed_count_after(tech.id, 0) == 1);
    CHECK(s->device(d->replica)->last_counter == 1);
}

TEST_CASE("postgres: every committed op survives an immediate stop of the cluster") {
    const std::string db = fresh_pg_database();
    std::vector<std::uint64_t> committed;
    auto s = open_pg(db);
    {
        std::mutex m;
        std::vector<std::thread> writers;
        for (std::uint64_t t = 1; t <= 4; ++t) {
            writers.emplace_back([&, t] {
                for (std::uint64_t i = 0; i < 10; ++i) {
                    server::SyncWrite w;
                    w.replica = k_server_replica;
                    w.ops = ops_of(100 + t, 1 + 3 * i, 3);
                    const auto seqs = s->commit_many({&w});
                    std::lock_guard lock(m);
                    committed.insert(committed.end(), seqs[0].begin(), seqs[0].end());
                }
            });
        }
        for (auto& w : writers) {
            w.join();
        }
    }
    REQUIRE(committed.size() == 120);
    pg_cluster().restart_immediate();
    auto reopened = open_pg(db);
    CHECK(reopened->op_count() == 120);
    const auto ops = reopened->ops_after(0, 0);
    REQUIRE(ops.size() == 120);
    std::sort(committed.begin(), committed.end());
    for (std::size_t i = 0; i < ops.size(); ++i) {
        CHECK(ops[i].seq == committed[i]);
        CHECK(ops[i].seq == i + 1); // writers one at a time: no gap
    }
    // The old store's connection broke with the restart: the call that meets it fails,
    // the next one reconnects.
    const bool healthy = s->healthy() || s->healthy();
    CHECK(healthy);
    CHECK(s->op_count() == 120);
}

TEST_CASE("postgres: in_transaction(write) keeps another connection's commit out until it ends") {
    const std::string db = fresh_pg_database();
    auto a = open_pg(db);
    auto b = open_pg(db);
    std::atomic<bool> b_done{false};
    std::thread other;
    a->in_transaction(true, [&] {
        const auto before = a->op_count();
        other = std::thread([&] {
            server::SyncWrite w;
            w.ops = ops_of(7, 1, 2);
            (void)b->commit_many({&w});
            b_done = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        CHECK(!b_done);
        CHECK(a->op_count() == before);
        a->replace_projections({{EntityType::case_file, Id::natural("case", "r"), "{}"}});
    });
    other.join();
    CHECK(b_done);
    CHECK(a->op_count() == 2);
    // A read transaction sees one snapshot, whatever commits meanwhile.
    a->in_transaction(false, [&] {
        const auto before = a->op_count();
        server::SyncWrite w;
        w.ops = ops_of(8, 1, 1);
        std::thread([&] { (void)b->commit_many({&w}); }).join();
        CHECK(a->op_count() == before);
    });
    CHECK(a->op_count() == 3);
}

TEST_CASE("postgres: two devices racing for one code on two connections: one device") {
    const std::string db = fresh_pg_database();
    auto s1 = open_pg(db);
    auto s2 = open_pg(db);
    const auto tech = add_user(*s1, "tec", Role::technician);
    for (int round = 0; round < 5; ++round) {
        const Hash256 code{static_cast<std::uint8_t>(round + 1)};
        s1->add_enroll_code(code, tech.id, 1000);
        std::atomic<int> won{0};
        std::thread t1([&] { won += s1->enroll(code, PublicKey{1}, "a", 10) ? 1 : 0; });
        std::thread t2([&] { won += s2->enroll(code, PublicKey{2}, "b", 10) ? 1 : 0; });
        t1.join();
        t2.join();
        CHECK(won == 1);
    }
    CHECK(s1->devices().size() == 5);
    CHECK(!s1->enroll(Hash256{1}, PublicKey{3}, "c", 10)); // used
}

TEST_CASE("postgres: backup_to says to use pg_dump or base backups and writes nothing") {
    const std::string db = fresh_pg_database();
    auto s = open_pg(db);
    TempDir dir;
    const auto path = (dir.path / "copy.db").string();
    try {
        s->backup_to(path);
        FAIL("backup_to returned");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("pg_dump") != std::string::npos);
        CHECK(std::string(e.what()).find("base backups") != std::string::npos);
    }
    CHECK(!std::filesystem::exists(path));
    CHECK(s->healthy());
}

TEST_CASE("postgres: the procedure end to end on a Server whose store is PostgreSQL: the case "
          "closes at the warehouse receipt and custody moves, and a restart folds it back") {
    server::ServerConfig cfg;
    cfg.store_url = fresh_pg_database();
    cfg.auth.pwhash_opslimit = 1;
    cfg.auth.pwhash_memlimit = 8192;
    FakeClock clock{1'795'000'000'000};
    Id c, ot;
    const Id handover = Id::random();
    const Id ont = Id::natural("equipment", "SK1A");
    {
        server::Server root(cfg, clock);
        auto& s = root.store();
        const auto atc = add_user(s, "atc", Role::customer_service);
        const auto jac = add_user(s, "jac", Role::commercial_head);
        const auto ev = add_user(s, "ev", Role::sales_executive);
        const auto bo = add_user(s, "bo", Role::back_office);
        const auto tech = add_user(s, "tec", Role::technician);
        const auto clerk = add_user(s, "almacen", Role::warehouse_clerk);
        auto& proc = root.procedure();
        REQUIRE(proc.office()
                    .import_inventory(
                        "contract,customer_name,person_type,tax_id,address,serial,kind,model,"
                        "description\n"
                        "K-1,Ana,natural,1 CB,Calle 1,SK1A,gpon_ont,HG8245,ONT\n"
                        "K-1,Ana,natural,1 CB,Calle 1,SK1B,decoder,DX,Decodificador\n")
                    .items.size() == 2);
        c = proc.cases().open_case(atc, case_opening(1, "K-1", "Cercado", "Ana"));
        proc.cases().route_case(jac, c, {"ev"});
        record_feasible(proc, ev, c);
        meet_and_approve(proc, ev, c);
        ot = issue_to(proc, bo, c, "tec");
        const auto accepted = [](const std::vector<OpResult>& results) {
            for (const auto& r : results) {
                REQUIRE_MESSAGE(r.status == OpStatus::accepted, r.message);
            }
        };
        // The technician on site (modality 1: the copper equipment is collected): both
        // serials collected, signed, completed, handed over.
        const Id row1 = Id::collected_item(ot, "SK1A");
        const Id row2 = Id::collected_item(ot, "SK1B");
        accepted(root.sync().submit(
            tech.id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                std::vector<Op> ops{
                    m.set_status(r, EntityType::work_order, ot, "status", text("on_site"))};
                for (const auto& [row, serial] : {std::pair{row1, "SK1A"}, {row2, "SK1B"}}) {
                    ops.push_back(m.set(EntityType::collected_item, row, "work_order", ot));
                    ops.push_back(m.set(EntityType::collected_item, row, "serial", text(serial)));
                    ops.push_back(
                        m.set(EntityType::collected_item, row, "reason", text("migration")));
                }
                return ops;
            }));
        accepted(root.sync().submit(
            tech.id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                const Hash256 h = rows_hash(r, ot);
                return std::vector<Op>{
                    m.set(EntityType::work_order, ot, "signature_ref", Id::random()),
                    m.set(EntityType::work_order, ot, "signed_rows_hash",
                          Bytes{{h.begin(), h.end()}})};
            }));
        accepted(root.sync().submit(
            tech.id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                return std::vector<Op>{
                    m.set_status(r, EntityType::work_order, ot, "status", text("completed")),
                    m.add(EntityType::handover, handover, "rows", row1),
                    m.add(EntityType::handover, handover, "rows", row2),
                    m.set(EntityType::handover, handover, "technician", tech.id),
                    m.set_status(r, EntityType::handover, handover, "status", text("draft"))};
            }));
        root.sync().read_state([&](const crdt::Replica& r) {
            CHECK(text_of(r, EntityType::case_file, c, "status") == "in_progress");
            const auto* custody = r.log(EntityType::equipment, ont, "custody");
            REQUIRE(custody);
            CHECK(custody->events.rbegin()->second == Value{std::string("technician")});
        });
        // The warehouse receives the ONT: custody moves, nothing blocks the case: closed.
        const auto receipt = proc.handovers().receive_handover(
            clerk, handover, {{{"SK1A", "received", ""}, {"SK1B", "received", ""}}});
        CHECK(receipt.received_by == "almacen");
        CHECK(!receipt.received_rows_hash.empty());
        for (const auto& why : proc.cases().case_detail(c).closing_blockers) {
            FAIL_CHECK("the case cannot close: " << why);
        }
        root.sync().read_state([&](const crdt::Replica& r) {
            CHECK(text_of(r, EntityType::handover, handover, "status") == "received");
            CHECK(text_of(r, EntityType::case_file, c, "status") == "closed");
            const auto* custody = r.log(EntityType::equipment, ont, "custody");
            REQUIRE(custody);
            CHECK(custody->events.rbegin()->second == Value{std::string("warehouse")});
        });
        CHECK(root.store().op_count() > 0);
        CHECK(!root.store().projections().empty());
    }
    // A new server on the same database folds the log back: the same outcome.
    server::Server again(cfg, clock);
    again.sync().read_state([&](const crdt::Replica& r) {
        CHECK(text_of(r, EntityType::case_file, c, "status") == "closed");
        CHECK(text_of(r, EntityType::work_order, ot, "status") == "completed");
        const auto* custody = r.log(EntityType::equipment, ont, "custody");
        REQUIRE(custody);
        CHECK(custody->events.rbegin()->second == Value{std::string("warehouse")});
    });
    CHECK(again.store().healthy());
}

// ---- several instances on one database ----------------------------------------------------------

TEST_CASE("postgres: stale scope: an OT reassigned on instance A while instance B accepts the "
          "former technician's note on it: the new technician receives both, either order") {
    for (const bool assign_first : {true, false}) {
        CAPTURE(assign_first);
        const std::string db = fresh_pg_database();
        Fixture a(open_pg(db));
        const Id uno = a.add_user("tec.uno", Role::technician);
        const Id dos = a.add_user("tec.dos", Role::technician);
        const Id case_id = Id::random();
        const Id ot = a.issue_ot(uno, case_id);
        auto d1 = a.enroll(uno);
        auto d2 = a.enroll(dos);
        a.sync_all(*d1);
        REQUIRE(d1->state.entity(EntityType::work_order, ot));
        // Instance B starts now: it knows the OT is tec.uno's.
        Fixture b(open_pg(db));
        const auto note = [&] {
            const auto resp = b.sync(*d1, {d1->maker->event(EntityType::work_order, ot, "notes",
                                                            text("cliente ausente 10:00"))});
            REQUIRE(resp.results.size() == 1);
            CHECK(resp.results[0].status != OpStatus::rejected);
        };
        if (assign_first) {
            a.assign(ot, dos); // on A; B has not seen it when the note reaches it
            note();
        } else {
            note();
            a.assign(ot, dos); // A has not seen the note when it reassigns
        }
        // tec.dos's device, through either instance, gets the OT, its reassignment and the
        // note, whichever instance wrote which.
        auto& via = assign_first ? a : b;
        via.sync_all(*d2);
        const auto* tech = d2->state.get(EntityType::work_order, ot, "technician");
        REQUIRE(tech);
        CHECK(*tech == Value{dos});
        const auto* notes = d2->state.log(EntityType::work_order, ot, "notes");
        REQUIRE(notes);
        REQUIRE(notes->events.size() == 1);
        CHECK(notes->events.begin()->second == Value{std::string("cliente ausente 10:00")});
        // Both instances hold the same state, equal to a fold of the log by a third.
        Fixture c(open_pg(db));
        const auto sa = a.service->state_summary();
        const auto sb = b.service->state_summary();
        const auto sc = c.service->state_summary();
        CHECK(sa.digest == sb.digest);
        CHECK(sb.digest == sc.digest);
        CHECK(sa.applied_seq == a.store->last_seq());
    }
}

TEST_CASE("postgres: sequence gap: while instance A's write transaction is open, instance B's "
          "commit waits, and a follower reading the log never passes a seq that commits later") {
    const std::string db = fresh_pg_database();
    auto sa = open_pg(db);
    auto sb = open_pg(db);
    auto follower = open_pg(db);
    std::atomic<bool> a_holds{false}, b_done{false}, stop{false};
    std::vector<std::uint64_t> a_seqs, b_seqs;
    // The follower reads what is past its cursor, as a device feed or an instance's catch-up
    // does; a gap shows as a read that does not start right after the cursor (seqs are
    // dense: no number is handed out outside the committing transaction).
    std::vector<std::uint64_t> seen;
    std::thread reader([&] {
        std::uint64_t cursor = 0;
        while (!stop) {
            for (const auto& so : follower->ops_after(cursor, 0)) {
                seen.push_back(so.seq);
                cursor = so.seq;
            }
        }
        for (const auto& so : follower->ops_after(cursor, 0)) {
            seen.push_back(so.seq);
        }
    });
    std::thread b_writer;
    sa->in_transaction(true, [&] {
        server::SyncWrite w;
        w.ops = ops_of(7, 1, 3);
        a_seqs = sa->commit_many({&w})[0];
        a_holds = true;
        b_writer = std::thread([&] {
            server::SyncWrite wb;
            wb.ops = ops_of(8, 1, 2);
            b_seqs = sb->commit_many({&wb})[0];
            b_done = true;
        });
        // A keeps its transaction open; B cannot have committed meanwhile.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        CHECK(!b_done);
    });
    b_writer.join();
    stop = true;
    reader.join();
    REQUIRE(a_seqs.size() == 3);
    REQUIRE(b_seqs.size() == 2);
    CHECK(b_seqs.front() > a_seqs.back()); // B's seqs come after A's: commit order
    REQUIRE(seen.size() == 5);
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CHECK(seen[i] == i + 1); // every seq seen, in order, none passed over
    }
}

TEST_CASE("postgres: two instances writing at once: replay counters are checked in the "
          "database, every op is stored once, and both states equal a fold of the log") {
    const std::string db = fresh_pg_database();
    Fixture a(open_pg(db));
    Fixture b(open_pg(db));
    const Id tec = a.add_user("tec.uno", Role::technician);
    const Id ot = a.issue_ot(tec, Id::random());
    auto d = a.enroll(tec);
    a.sync_all(*d);
    // One request replayed on the other instance: refused there, counter checked in the
    // database rather than in each instance's memory.
    const SyncRequest req =
        a.request(*d, {d->maker->event(EntityType::work_order, ot, "notes", text("uno"))});
    const std::string body = encode_binary(req);
    CHECK(a.post(*d, body, false).status == 200);
    const auto replay = b.post(*d, body, false);
    CHECK(replay.status == 409);
    CHECK(replay.body.find("replayed") != std::string::npos);
    // Office commands on both instances at once, and the device's notes through both.
    std::vector<std::thread> writers;
    constexpr int k_rounds = 20;
    for (auto* f : {&a, &b}) {
        writers.emplace_back([f, ot] {
            for (int i = 0; i < k_rounds; ++i) {
                (void)f->service->submit(
                    f->back_office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
                        return std::vector<Op>{m.add(
                            EntityType::work_order, ot, "expected_equipment",
                            text("S" + std::to_string(i) + "-" + std::to_string(m.counter())))};
                    });
            }
        });
    }
    for (int i = 0; i < k_rounds; ++i) {
        auto& via = i % 2 ? a : b;
        const auto resp = via.sync(
            *d, {d->maker->event(EntityType::work_order, ot, "notes", text(std::to_string(i)))});
        REQUIRE(resp.results.size() == 1);
        CHECK(resp.results[0].status == OpStatus::accepted);
    }
    for (auto& t : writers) {
        t.join();
    }
    // Every op once: no op id twice in the log.
    std::set<OpId> ids;
    std::uint64_t n = 0;
    for (const auto& so : a.store->ops_after(0, 0)) {
        ids.insert(so.op.id);
        ++n;
    }
    CHECK(ids.size() == n);
    // The technician's device receives every office write of both instances; each instance
    // holds every note (the device does not get its own back).
    a.sync_all(*d);
    CHECK(d->state.elements(EntityType::work_order, ot, "expected_equipment").size() ==
          2 * k_rounds);
    for (auto* f : {&a, &b}) {
        f->service->read_state([&](const crdt::Replica& r) {
            const auto* notes = r.log(EntityType::work_order, ot, "notes");
            REQUIRE(notes);
            CHECK(notes->events.size() == k_rounds + 1);
            CHECK(r.elements(EntityType::work_order, ot, "expected_equipment").size() ==
                  2 * k_rounds);
        });
    }
    Fixture c(open_pg(db));
    CHECK(a.service->state_summary().digest == b.service->state_summary().digest);
    CHECK(b.service->state_summary().digest == c.service->state_summary().digest);
}

TEST_CASE("postgres: a pull waits for no write transaction, and a pull carrying the counter of a "
          "request that another instance is committing is refused once that commits") {
    const std::string db = fresh_pg_database();
    std::atomic<bool> armed{false}, in_commit{false}, release{false};
    server::PostgresOptions oa;
    oa.conninfo = db;
    oa.before_commit = [&] {
        if (armed) {
            in_commit = true;
            while (!release) {
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
    };
    Fixture a(server::open_postgres_store(oa));
    Fixture b(open_pg(db));
    const Id uno = a.add_user("tec.uno", Role::technician);
    const Id dos = a.add_user("tec.dos", Role::technician);
    const Id ot = a.issue_ot(uno, Id::random());
    (void)a.issue_ot(dos, Id::random());
    auto d1 = a.enroll(uno);
    auto d2 = a.enroll(dos);
    a.sync_all(*d1);
    a.sync_all(*d2);
    // tec.uno's note goes to A, which stops inside its write transaction, before writing:
    // the device's counter has been read there.
    armed = true;
    const SyncRequest push =
        a.request(*d1, {d1->maker->event(EntityType::work_order, ot, "notes", text("llegué"))});
    std::atomic<unsigned> push_status{0};
    std::thread pusher([&] { push_status = a.post(*d1, encode_binary(push), false).status; });
    for (int i = 0; i < 3000 && !in_commit; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(in_commit);
    // Another device's pull on B is answered meanwhile: no write lock, no commit to wait for.
    std::atomic<bool> pulled{false};
    std::thread other([&] {
        const auto resp = b.sync(*d2);
        CHECK(resp.ops.empty());
        pulled = true;
    });
    for (int i = 0; i < 3000 && !pulled; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(pulled);
    // A pull signed with the very counter A is committing, sent to B: it waits for A's
    // transaction, then finds the counter taken.
    SyncRequest same;
    same.replica = d1->replica;
    same.request_counter = push.request_counter;
    same.cursor = d1->cursor;
    same.hlc = d1->hlc->now();
    std::atomic<unsigned> same_status{0};
    std::string same_body;
    std::thread replayer([&] {
        const auto reply = b.post(*d1, encode_binary(same), false, push.request_counter);
        same_body = reply.body;
        same_status = reply.status;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(same_status == 0); // still waiting for A's transaction
    release = true;
    pusher.join();
    replayer.join();
    other.join();
    CHECK(push_status == 200);
    CHECK(same_status == 409);
    CHECK(same_body.find("replayed") != std::string::npos);
    CHECK(a.store->device(d1->replica)->last_counter == push.request_counter);
    // Pulls keep working after, on both, and the note reached the log once.
    a.sync_all(*d2);
    b.sync_all(*d1);
    std::size_t notes = 0;
    for (const auto& so : a.store->ops_after(0, 0)) {
        notes += so.op.id.replica == d1->replica;
    }
    CHECK(notes == 1);
}

TEST_CASE("postgres: a pull waiting on instance B is answered when instance A writes to its "
          "feed: B is notified (LISTEN/NOTIFY), it does not wait for a look at the log") {
    const std::string db = fresh_pg_database();
    Fixture a(open_pg(db));
    const Id uno = a.add_user("tec.uno", Role::technician);
    const Id dos = a.add_user("tec.dos", Role::technician);
    (void)a.issue_ot(uno, Id::random());
    auto d1 = a.enroll(uno);
    a.sync_all(*d1);
    // B never looks at the log's end during the test: only a notification can wake it.
    server::SyncConfig quiet;
    quiet.shared_wait_poll_ms = 600'000;
    quiet.shared_wait_backstop_ms = 600'000;
    quiet.max_wait_ms = 120'000; // the pull's own 60 s are not cut to the default 25 s
    Fixture b(open_pg(db), quiet);
    const auto wait_on_b = [&](Device& d) {
        SyncRequest req = b.request(d, {});
        req.wait_ms = 60'000;
        const std::string body = encode_binary(req);
        auto answered = std::make_shared<std::promise<server::Reply>>();
        auto reply = answered->get_future();
        b.service->sync_async("/v1/sync", b.headers(d, body, false), body,
                              [answered](server::EndpointAnswer e) {
                                  answered->set_value(server::reply_of(std::move(e)));
                              });
        return reply;
    };
    auto waiting = wait_on_b(*d1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    REQUIRE(waiting.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
    // Another technician's OT, written on A: tec.uno's pull is not woken for it.
    (void)a.issue_ot(dos, Id::random());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(waiting.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
    // An OT for tec.uno, written on A: the pull on B is answered with it, long before its
    // 60 s (the bound below is only there so that a failure ends the test).
    const Id ot = a.issue_ot(uno, Id::random());
    REQUIRE(waiting.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    const server::Reply r = waiting.get();
    REQUIRE_MESSAGE(r.status == 200, r.body);
    const SyncResponse resp = decode_sync_response(r.body);
    bool has_ot = false;
    for (const auto& so : resp.ops) {
        has_ot = has_ot || (so.op.entity_type == EntityType::work_order && so.op.entity == ot);
    }
    CHECK(has_ot);
}
