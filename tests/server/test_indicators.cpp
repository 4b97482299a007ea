// The indicators (docs/api.md §7.3) for a generated month of cases, against figures the test
// computes on its own from the scenario it generated: each case's outcome (rejected and
// told, completed, completed after a failed visit, completed with a missing serial explained,
// cancelled, still open) and the hours from opening to its first final action. The
// events of all cases run interleaved on one timeline with a fake clock, through the
// procedure's actions and the technician's ops, as the real server would see them.
#include "api/office.hpp"
#include "procedure/procedure.hpp"
#include "sync_fixture.hpp"

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <thread>

using namespace otsync;
using namespace otsync::test;

namespace {

enum class Outcome {
    rejected,
    completed,
    failed_then_completed,
    explained_missing,
    cancelled,
    open
};

struct Scenario {
    Outcome outcome;
    std::int64_t opened_at;
    std::int64_t final_at; // the first final action (rejection told, OT completed)
    std::string contract;
    Id case_id;
    Id ot;
};

struct Event {
    std::int64_t at;
    int order; // ties: the order the steps of one case must run in
    std::function<void()> run;
};

server::User make_user(Fixture& f, const std::string& name, Role role) {
    server::User u;
    u.id = f.add_user(name, role);
    u.name = name;
    u.role = role;
    return u;
}

/// The people a case meets on its way to its OTs, as users of `f`.
struct Staff {
    explicit Staff(Fixture& f)
        : atc(make_user(f, "atc", Role::customer_service)),
          jac(make_user(f, "jac", Role::commercial_head)),
          ev(make_user(f, "ev", Role::sales_executive)), bo(make_user(f, "bo", Role::back_office)),
          tech(make_user(f, "tec", Role::technician)) {}
    server::User atc, jac, ev, bo, tech;
};

} // namespace

TEST_CASE("indicators of a generated month match figures computed independently") {
    Fixture f;
    const Staff staff(f);
    server::ProcedureConfig pc;
    pc.tz_offset_minutes = -240;
    server::Procedure proc(*f.store, *f.service, f.clock, pc);

    // November 2026 in Bolivia (UTC-4): 2026-11-01T00:00-04:00.
    const std::int64_t month = *server::parse_local_date("2026-11-01", -240);
    REQUIRE(month == 1'793'505'600'000); // 2026-11-01T04:00:00Z
    REQUIRE(server::format_local_date(month, -240) == "2026-11-01");
    REQUIRE(server::format_local_date(month - 1, -240) == "2026-10-31");
    const std::int64_t hour = 3'600'000;
    std::mt19937 rng(20261129);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

    std::string inventory =
        "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n";
    std::vector<Scenario> cases;
    for (int i = 0; i < 90; ++i) {
        Scenario s;
        const int r = pick(0, 99);
        s.outcome = r < 12   ? Outcome::rejected
                    : r < 70 ? Outcome::completed
                    : r < 78 ? Outcome::failed_then_completed
                    : r < 85 ? Outcome::explained_missing
                    : r < 92 ? Outcome::cancelled
                             : Outcome::open;
        s.opened_at = month + pick(0, 29) * 86400000ll + pick(7, 18) * hour + pick(0, 59) * 60000;
        // Hours to the first final action: mostly within the day, some later.
        const int hours = pick(0, 9) < 8 ? pick(1, 22) : pick(25, 60);
        s.final_at = s.opened_at + hours * hour + pick(0, 59) * 60000;
        s.contract = "M-" + std::to_string(1000 + i);
        inventory += s.contract + ",Cliente " + std::to_string(i) + ",natural,1 CB,Calle " +
                     std::to_string(i) + ",S" + std::to_string(i) + "A,gpon_ont,M,D\n" +
                     s.contract + ",Cliente " + std::to_string(i) + ",natural,1 CB,Calle " +
                     std::to_string(i) + ",S" + std::to_string(i) + "B,decoder,M,D\n";
        cases.push_back(s);
    }
    REQUIRE(proc.office().import_inventory(inventory).items.size() == 180);

    // The technician's ops, as a device would send them (role technician, scope checked).
    auto tech_ops = [&](Scenario& s, const std::function<void(crdt::OpMaker&, const crdt::Replica&,
                                                              std::vector<Op>&)>& make) {
        const auto results = f.service->submit(staff.tech.id, Role::technician,
                                               [&](crdt::OpMaker& m, const crdt::Replica& r) {
                                                   std::vector<Op> ops;
                                                   make(m, r, ops);
                                                   return ops;
                                               });
        for (const auto& res : results) {
            REQUIRE_MESSAGE(res.status == OpStatus::accepted, res.message);
        }
        proc.close_ready({s.case_id});
    };
    auto status = [](crdt::OpMaker& m, const crdt::Replica& r, std::vector<Op>& ops, const Id& ot,
                     const char* to) {
        Op op = m.set_status(r, EntityType::work_order, ot, "status", text(to));
        if (!ops.empty()) {
            op.observed = {ops.back().id}; // the status written just before, in this batch
        }
        ops.push_back(std::move(op));
    };

    std::vector<Event> events;
    for (auto& s : cases) {
        Scenario* c = &s;
        const std::int64_t t0 = s.opened_at;
        events.push_back({t0, 0, [&, c] {
                              c->case_id = proc.cases().open_case(
                                  staff.atc, case_opening(2, c->contract, "Cercado"));
                              proc.cases().route_case(staff.jac, c->case_id, {"ev"});
                          }});
        if (s.outcome == Outcome::rejected) {
            events.push_back({s.final_at, 1, [&, c] {
                                  proc.cases().reject(staff.ev, c->case_id, {"sin factibilidad"});
                              }});
            continue;
        }
        events.push_back({t0 + 10 * 60000, 1, [&, c] {
                              record_feasible(proc, staff.ev, c->case_id);
                              meet_and_approve(proc, staff.ev, c->case_id);
                              c->ot = issue_to(proc, staff.bo, c->case_id, "tec");
                          }});
        if (s.outcome == Outcome::cancelled) {
            events.push_back({s.final_at, 2, [&, c] {
                                  proc.cases().cancel_case(staff.bo, c->case_id, {"desiste"});
                              }});
            continue;
        }
        if (s.outcome == Outcome::open) {
            continue;
        }
        if (s.outcome == Outcome::failed_then_completed) {
            events.push_back({s.opened_at + 20 * 60000, 2, [&, c] {
                                  tech_ops(*c, [&](crdt::OpMaker& m, const crdt::Replica& r,
                                                   std::vector<Op>& ops) {
                                      status(m, r, ops, c->ot, "on_site");
                                      status(m, r, ops, c->ot, "failed");
                                  });
                                  proc.ots().assign_ot(staff.bo, c->ot, server::AssignOtCmd{"tec"});
                              }});
        }
        events.push_back(
            {s.final_at, 3, [&, c] {
                 tech_ops(*c, [&](crdt::OpMaker& m, const crdt::Replica& r, std::vector<Op>& ops) {
                     const std::string n = c->contract.substr(2);
                     const int i = std::stoi(n) - 1000;
                     ops.push_back(m.add(EntityType::work_order, c->ot, "verified_equipment",
                                         text("S" + std::to_string(i) + "A")));
                     if (c->outcome != Outcome::explained_missing) {
                         ops.push_back(m.add(EntityType::work_order, c->ot, "verified_equipment",
                                             text("S" + std::to_string(i) + "B")));
                     } else { // the OT completes only with the missing serial explained
                         ops.push_back(m.event(
                             EntityType::work_order, c->ot, "missing_reasons",
                             text("S" + std::to_string(i) + "B: el cliente no lo encuentra")));
                     }
                     std::vector<Op> st;
                     status(m, r, st, c->ot, "on_site");
                     status(m, r, st, c->ot, "completed");
                     ops.insert(ops.end(), st.begin(), st.end());
                 });
             }});
    }
    std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
        return std::tie(a.at, a.order) < std::tie(b.at, b.order);
    });
    for (auto& e : events) {
        f.clock.set(static_cast<std::uint64_t>(e.at));
        e.run();
    }
    f.clock.set(static_cast<std::uint64_t>(month + 35 * 86400000ll));

    // The figures, computed here from the scenario alone.
    int total = 0, effective = 0, timely = 0;
    std::map<std::string, std::array<int, 3>> days;
    for (const auto& s : cases) {
        ++total;
        // A missing serial the technician explained does not keep the case from closing.
        const bool eff = s.outcome == Outcome::rejected || s.outcome == Outcome::completed ||
                         s.outcome == Outcome::explained_missing;
        const bool attended = s.outcome != Outcome::cancelled && s.outcome != Outcome::open;
        const bool tim = attended && s.final_at - s.opened_at < 24 * hour;
        effective += eff;
        timely += tim;
        auto& d = days[server::format_local_date(s.opened_at, -240)];
        d[0]++;
        d[1] += eff;
        d[2] += tim;
    }
    REQUIRE(effective < total); // the month has every kind of case
    REQUIRE(timely < total);

    std::map<std::string, std::string> q{{"from", "2026-11-01"}, {"to", "2026-11-30"}};
    const auto tz = proc.config().tz_offset_minutes;
    const std::string json =
        server::api::indicators_json(proc.office().indicators(server::api::indicator_query(q, tz)));
    rapidjson::Document d;
    d.Parse(json.data(), json.size());
    REQUIRE(!d.HasParseError());
    CHECK(d["total"].GetInt() == total);
    CHECK(d["efficacy"]["count"].GetInt() == effective);
    CHECK(d["timeliness"]["count"].GetInt() == timely);
    CHECK(d["efficacy"]["percent"].GetDouble() == doctest::Approx(100.0 * effective / total));
    CHECK(d["timeliness"]["percent"].GetDouble() == doctest::Approx(100.0 * timely / total));
    CHECK(d["efficacy"]["pass"].GetBool() == (100.0 * effective / total > 98.0));
    CHECK(d["efficacy"]["cases"].Size() == static_cast<unsigned>(effective));
    std::map<std::string, std::array<int, 3>> got;
    for (const auto& day : d["days"].GetArray()) {
        got[day["date"].GetString()] = {day["total"].GetInt(), day["effective"].GetInt(),
                                        day["timely"].GetInt()};
    }
    CHECK(got == days);
    // The cases behind each number are the ones the scenario says.
    std::set<std::string> want_effective, got_effective;
    for (const auto& s : cases) {
        if (s.outcome == Outcome::rejected || s.outcome == Outcome::completed ||
            s.outcome == Outcome::explained_missing) {
            want_effective.insert(s.case_id.hex());
        }
    }
    for (const auto& c : d["efficacy"]["cases"].GetArray()) {
        got_effective.insert(c.GetString());
    }
    CHECK(got_effective == want_effective);

    // The report computed from the state alone gives what the route served.
    {
        server::IndicatorQuery scan;
        scan.from_ms = month;
        scan.to_ms = *server::parse_local_date("2026-11-30", -240) + 86400000;
        scan.tz_offset_minutes = -240;
        scan.now_ms = static_cast<std::int64_t>(f.clock.now_ms());
        scan.reconcile.now_ms = scan.now_ms;
        scan.reconcile.custody_limit_ms = pc.custody_limit_ms;
        std::string scanned;
        f.service->read_state([&](const crdt::Replica& r) {
            scanned = server::api::indicators_json(server::compute_indicators(r, scan));
        });
        CHECK(scanned == json);
    }

    // A unit filter and a one-day window select subsets; a perfect day passes.
    q["unit"] = "Otra";
    rapidjson::Document none;
    const std::string none_json =
        server::api::indicators_json(proc.office().indicators(server::api::indicator_query(q, tz)));
    none.Parse(none_json.data(), none_json.size());
    CHECK(none["total"].GetInt() == 0);
    CHECK(none["efficacy"]["pass"].GetBool() == false);
    const std::string csv = server::api::indicators_csv(proc.office().indicators(
        server::api::indicator_query({{"from", "2026-11-01"}, {"to", "2026-11-30"}}, tz)));
    CHECK(static_cast<int>(std::count(csv.begin(), csv.end(), '\n')) == total + 1);
    CHECK_THROWS_AS(proc.office().indicators(server::api::indicator_query(
                        {{"from", "2026-11-31"}, {"to", "2026-11-30"}}, tz)),
                    Error);
}

TEST_CASE("two clerks confirming the same handover at the same time: exactly one receipt") {
    Fixture f;
    const Staff staff(f);
    const auto clerk1 = make_user(f, "almacen.1", Role::warehouse_clerk);
    const auto clerk2 = make_user(f, "almacen.2", Role::warehouse_clerk);
    server::Procedure proc(*f.store, *f.service, f.clock, {});
    proc.office().import_inventory(
        "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n"
        "C-1,Cliente,natural,1,Calle,ONT-1,gpon_ont,M,D\nC-1,Cliente,natural,1,Calle,PWR-1,"
        "power_adapter,M,D\n");
    const Id c = proc.cases().open_case(staff.atc, case_opening(1, "C-1"));
    proc.cases().route_case(staff.jac, c, {"ev"});
    record_feasible(proc, staff.ev, c);
    proc.cases().override_requirements(make_user(f, "sup", Role::supervisor), c,
                                       {"cliente conocido"});
    proc.cases().approve(staff.ev, c, {});
    const Id ot = issue_to(proc, staff.bo, c, "tec");
    const Id handover = Id::random();
    f.service->submit(
        staff.tech.id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
            // On site, the technician records both rows and hands them over.
            std::vector<Op> ops{
                m.set_status(r, EntityType::work_order, ot, "status", text("on_site"))};
            for (const char* serial : {"ONT-1", "PWR-1"}) {
                const Id item = Id::collected_item(ot, serial);
                ops.push_back(m.set(EntityType::collected_item, item, "work_order", ot));
                ops.push_back(m.set(EntityType::collected_item, item, "serial", text(serial)));
                ops.push_back(m.set(EntityType::collected_item, item, "reason", text("migration")));
                ops.push_back(m.add(EntityType::handover, handover, "rows", item));
            }
            ops.push_back(m.set(EntityType::handover, handover, "technician", staff.tech.id));
            ops.push_back(m.set_status(r, EntityType::handover, handover, "status", text("draft")));
            return ops;
        });
    const server::ReceiptCmd rows{{{"ONT-1", "received", ""}, {"pwr-1", "received", ""}}};
    std::atomic<int> ok{0}, refused{0};
    std::vector<std::thread> clerks;
    for (const auto* clerk : {&clerk1, &clerk2}) {
        clerks.emplace_back([&, clerk] {
            try {
                proc.handovers().receive_handover(*clerk, handover, rows);
                ok++;
            } catch (const Error& e) {
                CHECK(e.code() == ErrorCode::conflict);
                refused++;
            }
        });
    }
    for (auto& t : clerks) {
        t.join();
    }
    CHECK(ok == 1);
    CHECK(refused == 1);
    const auto h = proc.handovers().handover_detail(handover);
    CHECK(h.status == "received");
    // The receipt hash is over the rows exactly as received: recomputable, 32 bytes.
    CHECK(h.received_rows_hash.size() == 64);
}
