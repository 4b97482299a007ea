// Memory that follows open work (SyncService::start_archiving, Procedure::archive_groups), on
// SQLite and on a PostgreSQL 15 cluster this process starts: a log of closed cases written
// straight into the store, a server that takes them out of memory at start, the reports
// still counting them, an old case opened and touched again, a restart that leaves the
// archived ones out, and the next sweep taking the touched one out again.
#include "../pg_cluster.hpp"
#include "../temp_dir.hpp"
#include "server.hpp"
#include "store/postgres_store.hpp"

#include "otsync/view.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace otsync;
using namespace otsync::test;

namespace {

constexpr std::int64_t k_day = 24ll * 3600 * 1000;
constexpr std::int64_t k_start = 1'790'000'000'000; // when the history was recorded

server::User add_user(server::Store& s, const std::string& name, Role role) {
    server::User u;
    u.id = Id::natural("user", name);
    u.name = name;
    u.role = role;
    u.created_at = 1;
    s.add_user(u);
    return u;
}

/// One closed case as the server's ops would leave it: the case through its lifecycle, its
/// OT completed by `tech`, one row received at the warehouse, its equipment's custody, and
/// the handover; appended to `out`.
struct History {
    FakeClock clock{k_start};
    Hlc hlc{clock};
    crdt::Replica scratch;
    std::unique_ptr<crdt::OpMaker> maker;

    Id last_ot; // the OT of the last closed_case

    explicit History(const Id& author)
        : maker(std::make_unique<crdt::OpMaker>(k_server_replica, hlc, author)) {}

    void add(std::vector<server::StoredOp>& out, const Op& op) {
        scratch.apply(op);
        server::StoredOp so;
        so.op = op;
        so.received_at = static_cast<std::int64_t>(clock.now_ms());
        out.push_back(std::move(so));
    }

    Id closed_case(std::vector<server::StoredOp>& out, int i, const Id& tech) {
        auto& m = *maker;
        constexpr auto C = EntityType::case_file, W = EntityType::work_order,
                       I = EntityType::collected_item, E = EntityType::equipment,
                       H = EntityType::handover;
        const Id c = Id::random(), ot = Id::random(), h = Id::random();
        last_ot = ot;
        const std::string serial = "ARC" + std::to_string(i);
        const Id row = Id::collected_item(ot, serial);
        const auto now = Timestamp{static_cast<std::int64_t>(clock.now_ms())};
        add(out, m.set(C, c, "modality", std::int64_t{1}));
        add(out, m.set(C, c, "contract", text("K-" + std::to_string(i))));
        add(out, m.set(C, c, "customer_name", text("Cliente " + std::to_string(i))));
        add(out, m.set(C, c, "unit", text("Cercado")));
        add(out, m.set(C, c, "opened_at", now));
        for (const char* s : {"opened", "routed", "in_review", "approved", "in_progress"}) {
            add(out, m.set_status(scratch, C, c, "status", text(s)));
        }
        add(out, m.set(W, ot, "case", c));
        add(out, m.set(W, ot, "technician", tech));
        for (const char* s : {"issued", "assigned", "on_site", "completed"}) {
            add(out, m.set_status(scratch, W, ot, "status", text(s)));
        }
        add(out, m.set(I, row, "work_order", ot));
        add(out, m.set(I, row, "serial", text(serial)));
        add(out, m.set(I, row, "receipt", text("received")));
        add(out, m.event(E, Id::natural("equipment", serial), "custody", text("warehouse")));
        add(out, m.add(H, h, "rows", row));
        add(out, m.set(H, h, "technician", tech));
        add(out, m.set_status(scratch, C, c, "status", text("closed")));
        clock.advance(1000);
        return c;
    }
};

struct Backend {
    const char* name;
    std::function<server::ServerConfig()> config;
};

std::vector<Backend> backends(const std::filesystem::path& dir) {
    return {{"sqlite",
             [dir] {
                 server::ServerConfig c;
                 c.data_dir = dir;
                 c.sync_full = false;
                 return c;
             }},
            {"postgres", [] {
                 server::ServerConfig c;
                 c.store_url = fresh_pg_database();
                 return c;
             }}};
}

} // namespace

TEST_CASE("archive: 10,000 closed cases leave memory, the reports still count them, one "
          "touched again comes back, a restart leaves the rest out, the next sweep takes it") {
    TempDir dir;
    for (const auto& backend : backends(dir.path)) {
        CAPTURE(backend.name);
        auto cfg = backend.config();
        cfg.auth.pwhash_opslimit = 1;
        cfg.auth.pwhash_memlimit = 8192;
        const int n = 10'000;
        Id tech_id, bo_id, touched;
        std::uint64_t logged = 0;
        {
            auto store = server::open_store(cfg);
            const auto bo = add_user(*store, "bo", Role::back_office);
            const auto tech = add_user(*store, "tec", Role::technician);
            bo_id = bo.id;
            tech_id = tech.id;
            History history(bo.id);
            std::vector<server::StoredOp> ops;
            for (int i = 0; i < n; ++i) {
                const Id c = history.closed_case(ops, i, tech.id);
                if (i == n / 2) {
                    touched = c;
                }
                if (ops.size() >= 5000 || i == n - 1) {
                    server::SyncWrite w;
                    w.ops = std::move(ops);
                    ops.clear();
                    store->commit_many({&w});
                }
            }
            logged = store->op_count();
        }
        FakeClock clock{k_start + 40 * k_day};
        cfg.procedure.archive_after_days = 30;
        std::string digest_before_restart;
        {
            server::Server root(cfg, clock);
            // Taken out by the sweep that starts with the server: nothing of the history
            // stays in memory.
            root.sync().await_sweeps(1);
            CHECK(root.store().archived_count() == n);
            const auto summary = root.sync().state_summary();
            CHECK(summary.entities == 0);
            CHECK(summary.applied_seq == logged);
            // The indicators of the history's days still count every case, effective.
            server::IndicatorQuery q;
            q.from_ms = k_start - k_day;
            q.to_ms = k_start + 2 * k_day;
            const auto ind = root.procedure().office().indicators(q);
            CHECK(ind.total == n);
            CHECK(ind.effective == n);
            CHECK(ind.timely == n); // each OT completed within seconds of the opening
            // The board's list still finds them: newest first, filtered by contract.
            server::CaseFilter all;
            all.limit = 5;
            const auto page = root.procedure().cases().list_cases(all);
            CHECK(page.total == n);
            REQUIRE(page.cases.size() == 5);
            CHECK(page.cases[0].archived);
            CHECK(page.cases[0].contract == "K-" + std::to_string(n - 1));
            CHECK(page.cases[0].opened_at > page.cases[4].opened_at);
            server::CaseFilter by_contract;
            by_contract.contract = "K-" + std::to_string(n / 2);
            const auto one = root.procedure().cases().list_cases(by_contract);
            REQUIRE(one.cases.size() == 1);
            CHECK(one.total == 1);
            CHECK(one.cases[0].id == touched);
            CHECK(one.cases[0].status == "closed");
            CHECK(one.cases[0].customer_name == "Cliente " + std::to_string(n / 2));
            by_contract.status = "in_progress";
            CHECK(root.procedure().cases().list_cases(by_contract).total == 0);
            // A page opens one old case: it comes back, complete.
            const auto detail = root.procedure().cases().case_detail(touched);
            CHECK(detail.status == "closed");
            REQUIRE(detail.ots.size() == 1);
            const Id ot = detail.ots[0].id;
            // In memory and still archived: listed once.
            CHECK(root.procedure().cases().list_cases(all).total == n);
            by_contract.status.clear();
            CHECK(root.procedure().cases().list_cases(by_contract).total == 1);
            // Touched again: the technician's late note on its OT, and the office's resend of
            // one of its old ops (acknowledged once, stored once).
            const auto results = root.sync().submit(
                tech_id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica&) {
                    return std::vector<Op>{
                        m.event(EntityType::work_order, ot, "notes", text("el cliente llamó"))};
                });
            REQUIRE(results.size() == 1);
            CHECK(results[0].status != OpStatus::rejected);
            CHECK(root.store().op_count() == logged + 1);
            CHECK(root.store().archived_count() == n - 1); // its figure went: it changed
            const auto old = root.store().ops_after(0, 1);
            REQUIRE(old.size() == 1);
            const auto again = root.sync().submit(
                bo_id, Role::back_office,
                [&](crdt::OpMaker&, const crdt::Replica&) { return std::vector<Op>{old[0].op}; });
            REQUIRE(again.size() == 1);
            CHECK(again[0].status == OpStatus::accepted);
            CHECK(root.store().op_count() == logged + 1);
            // That resend touched the first case: it is back in memory too, out of the
            // archive until the next sweep.
            CHECK(root.store().archived_count() == n - 2);
            root.sync().read_state([&](const crdt::Replica& r) {
                CHECK(r.entity(EntityType::case_file, touched));
                const auto* notes = r.log(EntityType::work_order, ot, "notes");
                REQUIRE(notes);
                CHECK(notes->events.size() == 1);
            });
            // Still counted once, by the reports and by the list, from memory now.
            CHECK(root.procedure().office().indicators(q).total == n);
            CHECK(root.procedure().cases().list_cases(all).total == n);
            const auto back = root.procedure().cases().list_cases(by_contract);
            REQUIRE(back.cases.size() == 1);
            CHECK(!back.cases[0].archived);
            CHECK(back.total == 1);
            digest_before_restart = root.sync().state_summary().digest;
        }
        {
            // A restart (without sweeping) folds the log but leaves the archived groups out:
            // the same state as before it, the touched cases' groups only.
            auto no_sweep = cfg;
            no_sweep.procedure.archive_after_days = 0;
            server::Server root(no_sweep, clock);
            const auto summary = root.sync().state_summary();
            CHECK(summary.digest == digest_before_restart);
            CHECK(summary.entities > 0);
            CHECK(root.store().archived_count() == n - 2);
        }
        {
            // With archiving on, the start's sweep takes the touched case out again.
            server::Server root(cfg, clock);
            root.sync().await_sweeps(1);
            CHECK(root.sync().state_summary().entities == 0);
            CHECK(root.store().archived_count() == n);
        }
    }
}

TEST_CASE("archive: requests go on during the start's sweep, and memory ends as the log "
          "without the archived groups") {
    TempDir dir;
    for (const auto& backend : backends(dir.path)) {
        CAPTURE(backend.name);
        auto cfg = backend.config();
        cfg.auth.pwhash_opslimit = 1;
        cfg.auth.pwhash_memlimit = 8192;
        const int n = 3'000; // a dozen chunks of the sweep
        Id tech_id;
        std::vector<Id> ots;
        std::uint64_t logged = 0;
        {
            auto store = server::open_store(cfg);
            const auto bo = add_user(*store, "bo", Role::back_office);
            tech_id = add_user(*store, "tec", Role::technician).id;
            History history(bo.id);
            std::vector<server::StoredOp> ops;
            for (int i = 0; i < n; ++i) {
                history.closed_case(ops, i, tech_id);
                ots.push_back(history.last_ot);
            }
            server::SyncWrite w;
            w.ops = std::move(ops);
            store->commit_many({&w});
            logged = store->op_count();
        }
        FakeClock clock{k_start + 40 * k_day};
        cfg.procedure.archive_after_days = 30;
        std::string digest;
        std::uint64_t notes = 0;
        {
            server::Server root(cfg, clock);
            // Late notes on old OTs while the start's sweep runs: before their group's
            // chunk, after it (the group comes back), or after the sweep.
            std::atomic<bool> stop{false};
            std::thread toucher([&] {
                for (int i = 0; i < 300 && !stop; ++i) {
                    const Id ot = ots[static_cast<std::size_t>(i) * 7919 % ots.size()];
                    const auto r = root.sync().submit(
                        tech_id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica&) {
                            return std::vector<Op>{m.event(EntityType::work_order, ot, "notes",
                                                           text("nota " + std::to_string(i)))};
                        });
                    REQUIRE(r.size() == 1);
                    CHECK(r[0].status != OpStatus::rejected);
                    ++notes;
                }
            });
            root.sync().await_sweeps(1);
            stop = true;
            toucher.join();
            CHECK(notes > 0);
            CHECK(root.store().op_count() == logged + notes); // every note, once
            const auto archived = root.store().archived_count();
            CHECK(archived > 0);
            CHECK(archived <= static_cast<std::uint64_t>(n));
            digest = root.sync().state_summary().digest;
            CHECK(root.sync().counters().archived_cases >= archived);
        }
        {
            // A start without sweeping folds the log without the archived groups: the same
            // state the sweep left in memory.
            auto no_sweep = cfg;
            no_sweep.procedure.archive_after_days = 0;
            server::Server root(no_sweep, clock);
            CHECK(root.sync().state_summary().digest == digest);
            CHECK(root.store().op_count() == logged + notes);
        }
    }
}
