// The sync endpoint without sockets: enrollment, signing, replay, idempotence,
// validation, technician scope (assignment, eviction, smuggled ops), paging.
#include "sync_fixture.hpp"

#include "otsync/view.hpp"
#include "procedure/procedure.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

using namespace otsync;
using otsync::test::Fixture;

namespace {

std::vector<OpStatus> statuses(const SyncResponse& r) {
    std::vector<OpStatus> out;
    for (const auto& x : r.results) {
        out.push_back(x.status);
    }
    return out;
}

bool has_entity(const crdt::Replica& r, EntityType t, const Id& id) {
    return r.entity(t, id) != nullptr;
}

/// Runs `body` in a child process on the fixture's database (its store and service opened
/// there), which SIGKILLs itself at the start of its `n`-th commit; requires it was killed.
/// The fixture's store and service are closed when it returns.
void killed_at_commit(Fixture& f, int n, const std::function<void()>& body) {
    f.service.reset();
    f.store.reset();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int commits = 0;
        server::SqliteOptions o;
        o.path = (f.dir.path / "otsync.db").string();
        o.before_commit = [&commits, n] {
            if (++commits == n) {
                ::raise(SIGKILL);
            }
        };
        f.store = server::open_sqlite_store(o);
        f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
        body();
        std::this_thread::sleep_for(std::chrono::seconds(5)); // a commit after it kills
        ::_exit(3);                                           // not killed: the test proves nothing
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "not killed at commit " << n << " (status " << status << ")");
}

/// The Anexo 4 row ops a technician makes for one collected serial.
std::vector<Op> collect(test::Device& d, const Id& ot, const std::string& serial) {
    const Id row = Id::collected_item(ot, serial);
    std::vector<Op> ops;
    // Rows are recorded on site: the technician arrives first, when not there yet.
    const Value* status = d.state.get(EntityType::work_order, ot, "status");
    if (status && *status != Value{std::string("on_site")}) {
        ops.push_back(
            d.maker->set_status(d.state, EntityType::work_order, ot, "status", text("on_site")));
    }
    ops.push_back(d.maker->set(EntityType::collected_item, row, "work_order", ot));
    ops.push_back(d.maker->set(EntityType::collected_item, row, "serial", text(serial)));
    ops.push_back(d.maker->set(EntityType::collected_item, row, "reason", text("migration")));
    ops.push_back(
        d.maker->set(EntityType::collected_item, row, "description", text("ONT Huawei HG8245")));
    for (const auto& op : ops) {
        d.state.apply(op);
    }
    return ops;
}

} // namespace

TEST_CASE("enrollment codes are single use; bad input gets a clear error") {
    Fixture f;
    const Id tech = f.add_user("tec.mamani", Role::technician);
    auto d = f.enroll(tech);
    CHECK(d->replica > 0);
    const std::string code = f.service->new_enroll_code(tech);
    const std::string body = "{\"code\":\"" + code + "\",\"public_key\":\"" +
                             to_base64(d->key.public_key) + "\",\"label\":\"x\"}";
    CHECK(server::reply_of(f.service->enroll(body)).status == 200);
    CHECK(server::reply_of(f.service->enroll(body)).status == 401); // used
    CHECK(server::reply_of(f.service->enroll("{\"code\":\"AAAA-BBBB-CCCC\",\"public_key\":\"" +
                                             to_base64(d->key.public_key) + "\",\"label\":\"x\"}"))
              .status == 401);
    CHECK(server::reply_of(f.service->enroll("not json")).status == 400);
    CHECK(server::reply_of(
              f.service->enroll("{\"code\":\"x\",\"public_key\":\"short\",\"label\":\"x\"}"))
              .status == 400);
    const auto extra = server::reply_of(
        f.service->enroll("{\"code\":\"x\",\"public_key\":\"x\",\"label\":\"x\",\"admin\":true}"));
    CHECK(extra.status == 400);
    CHECK(extra.body.find("unknown_field") != std::string::npos);
}

TEST_CASE("a technician's day syncs both ways, in binary and in JSON, with a signed receipt") {
    for (const bool json : {false, true}) {
        CAPTURE(json);
        Fixture f;
        const Id tech = f.add_user("tec.quispe", Role::technician);
        auto d = f.enroll(tech);
        const Id the_case = Id::random();
        const Id ot = f.issue_ot(tech, the_case, {"ZTEG00000001", "ZTEG00000002"});

        f.sync(*d, {}, json);
        CHECK(d->state.get(EntityType::work_order, ot, "kind") != nullptr);
        CHECK(d->state.elements(EntityType::work_order, ot, "expected_equipment").size() == 2);
        CHECK(d->state.get(EntityType::case_file, the_case, "customer_name") != nullptr);
        CHECK(d->state.get(EntityType::case_file, the_case, "fee") == nullptr); // not in scope

        auto ops = collect(*d, ot, "ZTEG00000001"); // arrives, then records the row
        // The second serial stays with the customer; the customer signs; the OT completes.
        ops.push_back(d->maker->event(EntityType::work_order, ot, "missing_reasons",
                                      text("ZTEG00000002: el cliente lo conserva")));
        ops.push_back(d->maker->set(EntityType::work_order, ot, "signature_ref", Id::random()));
        for (auto& op : ops) {
            d->state.apply(op);
        }
        ops.push_back(d->maker->set_status(d->state, EntityType::work_order, ot, "status",
                                           text("completed")));
        d->state.apply(ops.back());
        const auto resp = f.sync(*d, ops, json);
        REQUIRE(resp.results.size() == ops.size());
        for (const auto& r : resp.results) {
            CHECK_MESSAGE(r.status == OpStatus::accepted, r.message);
        }
        std::vector<OpId> ids;
        for (const auto& op : ops) {
            ids.push_back(op.id);
        }
        Signature sig{};
        REQUIRE(resp.receipt.size() == 64);
        std::copy(resp.receipt.begin(), resp.receipt.end(), sig.begin());
        CHECK(verify(sig, receipt_message(d->replica, d->request_counter, ids),
                     f.service->server_public_key()));

        f.service->read_state([&](const crdt::Replica& s) {
            CHECK(std::get<std::string>(*s.get(EntityType::work_order, ot, "status")) ==
                  "completed");
            CHECK(
                has_entity(s, EntityType::collected_item, Id::collected_item(ot, "ZTEG00000001")));
        });
        CHECK(f.store->op_count() ==
              7 + 2 + ops.size()); // issued (5 + 2 serials), assigned, device
    }
}

TEST_CASE("a batch sent twice is applied once and acknowledged twice; a reused op id is refused") {
    Fixture f;
    const Id tech = f.add_user("tec.flores", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync(*d);
    const auto ops = collect(*d, ot, "DECO0001");
    const auto count_before = f.store->op_count();
    CHECK(statuses(f.sync(*d, ops)) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    CHECK(statuses(f.sync(*d, ops)) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    CHECK(f.store->op_count() == count_before + ops.size());

    Op reused = ops[2];
    reused.value = text("damaged"); // a restored backup reusing counters
    const auto r = f.sync(*d, {reused});
    REQUIRE(r.results.size() == 1);
    CHECK(r.results[0].status == OpStatus::rejected);
    CHECK(r.results[0].code == ErrorCode::op_id_reused);
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(std::get<std::string>(*s.get(EntityType::collected_item,
                                           Id::collected_item(ot, "DECO0001"), "reason")) ==
              "migration");
    });
}

TEST_CASE("replayed counters, flipped bits, revoked devices and unknown versions are refused") {
    Fixture f;
    const Id tech = f.add_user("tec.vargas", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync(*d);
    const std::string body = encode_binary(f.request(*d, collect(*d, ot, "MODEM0001")));
    CHECK(f.post(*d, body, false).status == 200);
    CHECK(f.post(*d, body, false).status == 409); // same counter again: replay
    const auto before = f.store->op_count();

    // One flipped bit anywhere in a signed batch: the signature no longer verifies.
    const SyncRequest fresh = f.request(*d, collect(*d, ot, "MODEM0002"));
    const std::string good = encode_binary(fresh);
    const Signature sig =
        sign(sync_signing_string("POST", "/v1/sync", fresh.request_counter, good), d->key.secret);
    for (std::size_t i = 0; i < good.size() * 8; ++i) {
        std::string bad = good;
        bad[i / 8] = static_cast<char>(bad[i / 8] ^ (1 << (i % 8)));
        std::map<std::string, std::string> h{
            {"content-type", k_content_type_binary},
            {"x-otsync-replica", std::to_string(d->replica)},
            {"x-otsync-counter", std::to_string(fresh.request_counter)},
            {"x-otsync-signature", to_base64(sig)}};
        const auto reply = server::reply_of(f.service->sync("/v1/sync", h, bad));
        if (reply.status != 401) {
            FAIL_CHECK("bit " << i << " flipped got " << reply.status);
            break;
        }
    }
    CHECK(f.store->op_count() == before);

    // An unsupported protocol version: 426 with the range; nothing stored.
    SyncRequest future = f.request(*d, {});
    future.protocol_version = 99;
    const auto upgrade = f.post(*d, encode_binary(future), false);
    CHECK(upgrade.status == 426);
    CHECK(upgrade.body.find("\"supported\":{\"min\":1") != std::string::npos);

    // Revocation takes effect on the next request.
    REQUIRE(f.store->revoke_device(d->replica));
    const auto revoked = f.post(*d, encode_binary(f.request(*d, {})), false);
    CHECK(revoked.status == 401);
    CHECK(revoked.body.find("revoked") != std::string::npos);
}

TEST_CASE("technician B neither receives nor can write technician A's OT") {
    Fixture f;
    const Id a = f.add_user("tec.a", Role::technician);
    const Id b = f.add_user("tec.b", Role::technician);
    auto da = f.enroll(a);
    auto db = f.enroll(b);
    const Id ot_a = f.issue_ot(a, Id::random(), {"ZTEGAAAA0001"});
    f.sync(*da);
    f.sync(*db);
    CHECK(has_entity(da->state, EntityType::work_order, ot_a));
    CHECK_FALSE(has_entity(db->state, EntityType::work_order, ot_a));

    auto ops = collect(*db, ot_a, "ZTEGAAAA0001");
    ops.push_back(db->maker->set(EntityType::work_order, ot_a, "outcome", text("no es mío")));
    // Smuggled: an op claiming to be device A's inside B's signed batch.
    Op smuggled = da->maker->set(EntityType::work_order, ot_a, "outcome", text("smuggled"));
    ops.push_back(smuggled);
    const auto r = f.sync(*db, ops);
    for (const auto& res : r.results) {
        CHECK(res.status == OpStatus::rejected);
        CHECK(res.code == ErrorCode::permission_denied);
    }
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(s.get(EntityType::work_order, ot_a, "outcome") == nullptr);
        CHECK_FALSE(
            has_entity(s, EntityType::collected_item, Id::collected_item(ot_a, "ZTEGAAAA0001")));
    });
    // A technician cannot touch the case's office fields either.
    const auto c =
        f.sync(*da, {da->maker->set(EntityType::case_file, Id::random(), "fee", Money{1})});
    CHECK(c.results[0].code == ErrorCode::permission_denied);
}

TEST_CASE("reassignment: pending ops still land (flagged), A is evicted, B gets the OT whole") {
    Fixture f;
    const Id a = f.add_user("tec.a", Role::technician);
    const Id b = f.add_user("tec.b", Role::technician);
    auto da = f.enroll(a);
    auto db = f.enroll(b);
    const Id the_case = Id::random();
    const Id ot = f.issue_ot(a, the_case, {"ZTEG0000BEEF"});
    f.sync(*da);
    f.sync(*db);
    // A works offline and records an item; meanwhile back office reassigns to B.
    const auto pending = collect(*da, ot, "ZTEG0000BEEF");
    f.assign(ot, b);
    const auto ra = f.sync(*da, pending);
    for (const auto& res : ra.results) {
        CHECK_MESSAGE(res.status == OpStatus::flagged, res.message);
    }
    const bool evicted = std::any_of(ra.evicted.begin(), ra.evicted.end(), [&](const EntityRef& e) {
        return e.type == EntityType::work_order && e.id == ot;
    });
    CHECK(evicted);
    f.sync_all(*db);
    CHECK(has_entity(db->state, EntityType::work_order, ot));
    CHECK(has_entity(db->state, EntityType::case_file, the_case));
    CHECK(db->state.elements(EntityType::work_order, ot, "expected_equipment").size() == 1);
    CHECK(
        has_entity(db->state, EntityType::collected_item, Id::collected_item(ot, "ZTEG0000BEEF")));
    // An outsider who never had the OT is still refused.
    const Id c = f.add_user("tec.c", Role::technician);
    auto dc = f.enroll(c);
    const auto rc = f.sync(*dc, collect(*dc, ot, "ZTEG0000CAFE"));
    CHECK(rc.results[0].code == ErrorCode::permission_denied);
}

TEST_CASE("validation: transitions by role and from the status the writer saw, clock skew") {
    Fixture f;
    const Id tech = f.add_user("tec.skew", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync(*d);
    // issued -> completed is no move of the table for a technician.
    Op jump = d->maker->set(EntityType::work_order, ot, "status", text("completed"));
    auto r = f.sync(*d, {jump});
    CHECK(r.results[0].code == ErrorCode::invalid_transition);
    // A device one year ahead.
    d->clock.advance(365LL * 24 * 3600 * 1000);
    Op ahead = d->maker->set(EntityType::work_order, ot, "outcome", text("futuro"));
    r = f.sync(*d, {ahead});
    CHECK(r.results[0].code == ErrorCode::clock_skew);
    CHECK(r.results[0].message.find("ahead") != std::string::npos);
}

TEST_CASE("a 10,000-op first download comes in pages with progress") {
    Fixture f;
    const Id tech = f.add_user("tec.paging", Role::technician);
    const Id ot = f.issue_ot(tech, Id::random());
    f.service->submit(f.back_office, Role::back_office,
                      [&](crdt::OpMaker& m, const crdt::Replica&) {
                          std::vector<Op> ops;
                          for (int i = 0; i < 10'000; ++i) {
                              ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                                  text("SN" + std::to_string(i))));
                          }
                          return ops;
                      });
    auto d = f.enroll(tech);
    std::uint64_t pages = 0;
    std::uint64_t last_remaining = UINT64_MAX;
    for (;;) {
        const auto resp = f.sync(*d, {}, false, 1000);
        ++pages;
        CHECK(resp.remaining < last_remaining);
        last_remaining = resp.remaining;
        if (!resp.more) {
            CHECK(resp.remaining == 0);
            break;
        }
        REQUIRE(pages < 100);
    }
    CHECK(pages >= 10);
    CHECK(d->state.elements(EntityType::work_order, ot, "expected_equipment").size() == 10'000);
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(entity_json(s, EntityType::work_order, ot, true) ==
              entity_json(d->state, EntityType::work_order, ot, true));
    });
}

TEST_CASE("on SQLite a pull commits nothing of its own: its counter goes with the next commit, "
          "in time, or at stop, and a replayed pull stays refused across a restart") {
    server::SyncConfig config;
    config.pull_mark_flush_ms = 60'000; // no flush by time in this part
    Fixture f(config);
    // The same database with a commit counter.
    f.service.reset();
    f.store.reset();
    std::atomic<int> commits{0};
    server::SqliteOptions o;
    o.path = (f.dir.path / "otsync.db").string();
    o.before_commit = [&commits] { ++commits; };
    f.store = server::open_sqlite_store(o);
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, config);
    const Id tech = f.add_user("tec.pulls", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync_all(*d);
    const auto stored_counter = [&] { return f.store->device(d->replica)->last_counter; };
    // The OT's projections are written in a commit of their own just after its
    // acknowledgement: let it land before counting.
    for (int i = 0; i < 1000 && f.store->projected_seq() != f.store->last_seq(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(f.store->projected_seq() == f.store->last_seq());

    commits = 0;
    for (int i = 0; i < 5; ++i) {
        CHECK(f.sync(*d).ops.empty());
    }
    CHECK(commits == 0);
    CHECK(stored_counter() < d->request_counter);
    // A replayed pull is refused from memory.
    SyncRequest replay = f.request(*d, {});
    replay.request_counter = d->request_counter - 1;
    --d->request_counter;
    CHECK(f.post(*d, encode_binary(replay), false, replay.request_counter).status == 409);

    // The next commit (a recorded item) writes the pulls' counters with it.
    f.sync(*d, collect(*d, ot, "ONT-PULL-1"));
    CHECK(commits >= 1);
    CHECK(stored_counter() == d->request_counter);

    // Pulls again, then a stop: their counter is written before the service goes.
    f.sync(*d);
    f.sync(*d);
    const std::uint64_t last = d->request_counter;
    f.service.reset();
    CHECK(stored_counter() == last);
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, config);
    replay = f.request(*d, {});
    replay.request_counter = last;
    CHECK(f.post(*d, encode_binary(replay), false, last).status == 409);
    f.service.reset();

    // With a short flush interval the counter is written alone, in time.
    config.pull_mark_flush_ms = 20;
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, config);
    f.sync(*d);
    for (int i = 0; i < 500 && stored_counter() != d->request_counter; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(stored_counter() == d->request_counter);
}

TEST_CASE("projections are written after the acknowledging commit, and rendered again at start "
          "when a kill came between") {
    Fixture f;
    const Id tech = f.add_user("tec.proj", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync_all(*d);
    const auto projection_of = [&](EntityType t, const Id& id) -> std::optional<std::string> {
        for (auto& p : f.store->projections()) {
            if (p.type == t && p.id == id) {
                return p.json;
            }
        }
        return std::nullopt;
    };
    const auto state_json = [&](EntityType t, const Id& id) {
        std::string json;
        f.service->read_state([&](const crdt::Replica& s) { json = entity_json(s, t, id); });
        return json;
    };
    // Idle server: written right after the acknowledgement.
    f.sync(*d, collect(*d, ot, "ONT-P-1"));
    const Id row1 = Id::collected_item(ot, "ONT-P-1");
    for (int i = 0; i < 500 && f.store->projected_seq() != f.store->last_seq(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(f.store->projected_seq() == f.store->last_seq());
    CHECK(projection_of(EntityType::collected_item, row1) ==
          state_json(EntityType::collected_item, row1));

    // Killed at the commit after the one that acknowledged a row: the projections' own.
    const auto ops = collect(*d, ot, "ONT-P-2");
    killed_at_commit(f, 2, [&] {
        if (f.post(*d, encode_binary(f.request(*d, ops)), false).status != 200) {
            ::_exit(2);
        }
    });
    const Id row2 = Id::collected_item(ot, "ONT-P-2");
    server::SqliteOptions o;
    o.path = (f.dir.path / "otsync.db").string();
    f.store = server::open_sqlite_store(o);
    // The acknowledged row is in the log; its projection is not written yet.
    CHECK(f.store->projected_seq() < f.store->last_seq());
    CHECK_FALSE(projection_of(EntityType::collected_item, row2));
    // The start renders what the log has passed.
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
    CHECK(f.store->projected_seq() == f.store->last_seq());
    CHECK(projection_of(EntityType::collected_item, row2) ==
          state_json(EntityType::collected_item, row2));
    CHECK(projection_of(EntityType::work_order, ot) == state_json(EntityType::work_order, ot));
}

TEST_CASE("the service folds the op log again on restart") {
    Fixture f;
    const Id tech = f.add_user("tec.restart", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync(*d);
    f.sync(*d, collect(*d, ot, "ONT0001"));
    crdt::Digest before{};
    f.service->read_state([&](const crdt::Replica& s) { before = s.digest(); });
    f.service.reset();
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
    f.service->read_state([&](const crdt::Replica& s) { CHECK(s.digest() == before); });
    // And the device carries on where it was.
    const auto r = f.sync(*d, collect(*d, ot, "ONT0002"));
    CHECK(r.results[0].status == OpStatus::accepted);
}

TEST_CASE("concurrent devices share commits and every op lands once") {
    Fixture f;
    constexpr int k_devices = 8;
    std::vector<std::unique_ptr<test::Device>> devices;
    std::vector<Id> ots;
    for (int i = 0; i < k_devices; ++i) {
        const Id tech = f.add_user("tec.par" + std::to_string(i), Role::technician);
        devices.push_back(f.enroll(tech));
        ots.push_back(f.issue_ot(tech, Id::random()));
        f.sync(*devices.back()); // the device knows its OT before it arrives on site
    }
    const auto before = f.store->op_count();
    std::vector<std::thread> threads;
    std::atomic<int> accepted{0};
    for (int i = 0; i < k_devices; ++i) {
        threads.emplace_back([&, i] {
            auto& d = *devices[static_cast<std::size_t>(i)];
            for (int round = 0; round < 10; ++round) {
                std::vector<Op> ops =
                    collect(d, ots[static_cast<std::size_t>(i)],
                            "PAR" + std::to_string(i) + "-" + std::to_string(round));
                const SyncRequest req = f.request(d, ops);
                const auto reply = f.post(d, encode_binary(req), false);
                if (reply.status != 200) {
                    continue;
                }
                for (const auto& r : decode_sync_response(reply.body).results) {
                    accepted += r.status == OpStatus::accepted ? 1 : 0;
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(accepted == k_devices * (1 + 10 * 4)); // arriving on site, then 10 rows of 4 ops
    CHECK(f.store->op_count() == before + static_cast<std::uint64_t>(accepted.load()));
}

namespace {

/// A SQLite store whose commits can be held at their start, or made to fail, by the test;
/// and an executor that keeps what it is given until the test runs it.
struct HeldCommits {
    HeldCommits() {
        server::SqliteOptions o;
        o.path = (dir.path / "otsync.db").string();
        o.before_commit = [this] {
            std::unique_lock l(m);
            ++commits;
            in_commit = true;
            cv.notify_all();
            cv.wait(l, [this] { return !hold; });
            if (fail) {
                throw Error(ErrorCode::internal, "disk I/O error (the test's)");
            }
        };
        server::SyncConfig config;
        // Projections wait while pushes are queued: the commits counted are the pushes'.
        config.projection_lag_ms = 600'000;
        f.emplace(server::open_sqlite_store(o), config);
        f->service->set_executor([this](std::function<void()> fn) {
            std::lock_guard l(m);
            posted.push_back(std::move(fn));
            posted_at.push_back(commits);
            cv.notify_all();
        });
    }
    ~HeldCommits() {
        {
            std::lock_guard l(m);
            fail = false;
        }
        release();
        f.reset(); // its committer may wait on the hook
    }

    /// From now on each commit waits at its start until release(); the projections of what
    /// came before are written first (their commit is not one of the test's).
    void hold_commits() {
        for (int i = 0; i < 1000 && f->store->projected_seq() != f->store->last_seq(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        REQUIRE(f->store->projected_seq() == f->store->last_seq());
        std::lock_guard l(m);
        hold = true;
        in_commit = false;
        commits = 0;
    }
    void release() {
        std::lock_guard l(m);
        hold = false;
        cv.notify_all();
    }
    /// Waits until a commit has started (held), or 30 s: then the test fails, not hangs.
    bool wait_in_commit() {
        std::unique_lock l(m);
        return cv.wait_for(l, std::chrono::seconds(30), [this] { return in_commit; });
    }
    bool wait_posted(std::size_t n) {
        std::unique_lock l(m);
        return cv.wait_for(l, std::chrono::seconds(30), [&] { return posted.size() >= n; });
    }
    /// Runs what the executor was given, on this thread.
    void run_posted() {
        std::vector<std::function<void()>> run;
        {
            std::lock_guard l(m);
            run.swap(posted);
        }
        for (auto& fn : run) {
            fn();
        }
    }

    test::TempDir dir;
    std::mutex m;
    std::condition_variable cv;
    bool hold = false;
    bool fail = false;
    bool in_commit = false;
    int commits = 0;
    std::vector<std::function<void()>> posted;
    std::vector<int> posted_at; // the commits counted when each answer was posted
    std::optional<Fixture> f;
};

} // namespace

TEST_CASE("a push is answered on the executor once its commit ends: no thread waits for the disk, "
          "and the pushes that arrive meanwhile share the next commit") {
    HeldCommits h;
    Fixture& f = *h.f;
    constexpr int k_devices = 6;
    std::vector<std::unique_ptr<test::Device>> devices;
    std::vector<Id> ots;
    for (int i = 0; i < k_devices; ++i) {
        const Id tech = f.add_user("tec.asy" + std::to_string(i), Role::technician);
        devices.push_back(f.enroll(tech));
        ots.push_back(f.issue_ot(tech, Id::random()));
        f.sync_all(*devices.back());
    }
    const auto before = f.store->op_count();
    h.hold_commits();
    std::mutex am;
    std::vector<std::optional<server::Reply>> answers(k_devices);
    std::size_t ops_sent = 0;
    // One thread sends every push: each call returns before its commit ends. Were it to
    // wait for its commit, the first push would wait for the held commit and the test
    // would stop at wait_in_commit below, failing rather than hanging.
    std::thread release_valve;
    for (int i = 0; i < k_devices; ++i) {
        auto& d = *devices[static_cast<std::size_t>(i)];
        const auto ops = collect(d, ots[static_cast<std::size_t>(i)], "ASY" + std::to_string(i));
        ops_sent += ops.size();
        const std::string body = encode_binary(f.request(d, ops));
        if (i == 0) {
            // A commit held from the side, in case the push waits for it (it must not).
            release_valve = std::thread([&h] {
                std::unique_lock l(h.m);
                if (!h.cv.wait_for(l, std::chrono::seconds(20), [&] { return h.commits > 1; })) {
                    h.hold = false; // the first push waited: let it go so the test can fail
                    h.cv.notify_all();
                }
            });
        }
        f.service->sync_async("/v1/sync", f.headers(d, body, false), body,
                              [&am, &answers, i](server::EndpointAnswer a) {
                                  std::lock_guard l(am);
                                  answers[static_cast<std::size_t>(i)] =
                                      server::reply_of(std::move(a));
                              });
        if (i == 0) {
            REQUIRE(h.wait_in_commit()); // the first push's commit has started and is held
        }
    }
    {
        std::lock_guard l(am);
        for (const auto& a : answers) {
            CHECK(!a); // nothing answered while the commit is held
        }
    }
    h.release();
    release_valve.join();
    REQUIRE(h.wait_posted(k_devices)); // every answer is finished on the executor
    {
        std::lock_guard l(am);
        for (const auto& a : answers) {
            CHECK(!a); // not on the committer's thread
        }
    }
    h.run_posted();
    std::size_t accepted = 0;
    for (const auto& a : answers) {
        REQUIRE(a);
        REQUIRE_MESSAGE(a->status == 200, a->body);
        const auto resp = decode_sync_response(a->body);
        CHECK(!resp.receipt.empty());
        for (const auto& r : resp.results) {
            accepted += r.status == OpStatus::accepted ? 1 : 0;
        }
    }
    CHECK(accepted == ops_sent);
    CHECK(f.store->op_count() == before + ops_sent);
    // The first push's commit, then one for the five that arrived while it was held.
    std::lock_guard l(h.m);
    std::string at;
    for (const int c : h.posted_at) {
        at += std::to_string(c) + " ";
    }
    const std::vector<int> expected{1, 2, 2, 2, 2, 2};
    CHECK_MESSAGE(h.posted_at == expected, at);
}

TEST_CASE("a push whose commit fails is answered through the executor with an internal error, "
          "keeps nothing, and lands when the device sends it again") {
    HeldCommits h;
    Fixture& f = *h.f;
    const Id tech = f.add_user("tec.falla", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync_all(*d);
    const auto before = f.store->op_count();
    const auto ops = collect(*d, ot, "FAIL0001");
    h.hold_commits(); // the push's own commit is the one that fails
    std::optional<server::Reply> answer;
    std::mutex am;
    const std::string body = encode_binary(f.request(*d, ops));
    f.service->sync_async("/v1/sync", f.headers(*d, body, false), body,
                          [&](server::EndpointAnswer a) {
                              std::lock_guard l(am);
                              answer = server::reply_of(std::move(a));
                          });
    REQUIRE(h.wait_in_commit());
    {
        std::lock_guard l(h.m);
        h.fail = true;
    }
    h.release();
    REQUIRE(h.wait_posted(1));
    {
        std::lock_guard l(h.m);
        h.fail = false;
    }
    h.run_posted();
    {
        std::lock_guard l(am);
        REQUIRE(answer);
        CHECK(answer->status == 500);
        rapidjson::Document doc;
        doc.Parse(answer->body.c_str());
        REQUIRE(doc.IsObject());
        CHECK(doc.HasMember("error"));
    }
    CHECK(f.store->op_count() == before);
    // The handheld kept its ops: the next request (a new counter) carries them and they land.
    const auto resp = f.sync(*d, ops);
    CHECK(statuses(resp) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    CHECK(f.store->op_count() == before + ops.size());
}

namespace {

/// Back office moves an OT to a technician; the results, without asserting on them.
std::vector<OpResult> reassign(Fixture& f, const Id& ot, const Id& technician) {
    return f.service->submit(
        f.back_office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica& r) {
            std::vector<Op> ops;
            ops.push_back(m.set(EntityType::work_order, ot, "technician", technician));
            ops.push_back(m.set_status(r, EntityType::work_order, ot, "status", text("assigned")));
            return ops;
        });
}

std::string status_of(const crdt::Replica& r, const Id& ot) {
    const Value* v = r.get(EntityType::work_order, ot, "status");
    return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : "";
}

std::size_t events_of(const crdt::Replica& r, const Id& ot, std::string_view field) {
    const auto* log = r.log(EntityType::work_order, ot, field);
    return log ? log->events.size() : 0;
}

} // namespace

TEST_CASE("a former assignee's status write is kept for the office, not merged into the OT") {
    Fixture f;
    const Id quispe = f.add_user("tec.quispe", Role::technician);
    const Id mamani = f.add_user("tec.mamani", Role::technician);
    auto dq = f.enroll(quispe);
    auto dm = f.enroll(mamani);
    const Id ot = f.issue_ot(quispe, Id::random());
    f.sync(*dq); // Quispe's device has the OT, then goes offline
    REQUIRE(status_of(dq->state, ot) == "assigned");
    f.assign(ot, mamani);
    f.sync_all(*dm);
    REQUIRE(status_of(dm->state, ot) == "assigned");

    // Offline and unaware, Quispe's device records that it is on its way, an outcome, a
    // note and an installed ONT.
    const Op en_route =
        dq->maker->set_status(dq->state, EntityType::work_order, ot, "status", text("en_route"));
    const Op outcome = dq->maker->set(EntityType::work_order, ot, "outcome", text("sin acceso"));
    const Op note = dq->maker->event(EntityType::work_order, ot, "notes", text("portón cerrado"));
    const Op installed =
        dq->maker->add(EntityType::work_order, ot, "installed_equipment", text("ZTEG0000Q001"));
    const auto rq = f.sync(*dq, {en_route, outcome, note, installed});
    REQUIRE(rq.results.size() == 4);
    for (const auto& r : rq.results) {
        CHECK_MESSAGE(r.status == OpStatus::flagged, r.message);
        CHECK(r.code == ErrorCode::permission_denied);
    }

    // The OT keeps the new assignee's status and registers; the note and the ONT (field
    // facts) are merged.
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(status_of(s, ot) == "assigned");
        CHECK(s.get(EntityType::work_order, ot, "outcome") == nullptr);
        CHECK(events_of(s, ot, "notes") == 1);
        CHECK(s.elements(EntityType::work_order, ot, "installed_equipment").size() == 1);
    });
    // What Mamani's device receives: the note and the ONT, not the status or the outcome.
    const auto rm = f.sync(*dm);
    for (const auto& so : rm.ops) {
        CHECK(so.op.id != en_route.id);
        CHECK(so.op.id != outcome.id);
    }
    CHECK(status_of(dm->state, ot) == "assigned");
    CHECK(dm->state.get(EntityType::work_order, ot, "outcome") == nullptr);
    CHECK(events_of(dm->state, ot, "notes") == 1);
    CHECK(dm->state.elements(EntityType::work_order, ot, "installed_equipment").size() == 1);

    // Back office can still move the OT (assigned -> assigned).
    for (const auto& r : reassign(f, ot, mamani)) {
        CHECK_MESSAGE(r.status == OpStatus::accepted, r.message);
    }

    // The fact is recorded on the OT, attributed: user, device replica, the op verbatim.
    REQUIRE(find_field(EntityType::work_order, "flagged_writes") != nullptr);
    const auto recorded = [&] {
        std::vector<std::pair<Op, std::string>> out; // (op, whole record)
        f.service->read_state([&](const crdt::Replica& s) {
            const auto* log = s.log(EntityType::work_order, ot, "flagged_writes");
            REQUIRE(log != nullptr);
            for (const auto& [key, v] : log->events) {
                REQUIRE(std::holds_alternative<std::string>(v));
                const std::string& record = std::get<std::string>(v);
                rapidjson::Document doc;
                doc.Parse(record.data(), record.size());
                REQUIRE_MESSAGE(!doc.HasParseError(), record);
                CHECK(doc["user"].GetString() == quispe.hex());
                CHECK(doc["replica"].GetUint64() == dq->replica);
                CHECK(doc["received_at"].GetInt64() > 0);
                rapidjson::StringBuffer sb;
                rapidjson::Writer<rapidjson::StringBuffer> w(sb);
                doc["op"].Accept(w);
                out.emplace_back(op_from_json(std::string(sb.GetString(), sb.GetSize())), record);
            }
        });
        return out;
    };
    auto facts = recorded();
    REQUIRE(facts.size() == 2);
    CHECK(to_json(facts[0].first) == to_json(en_route));
    CHECK(to_json(facts[1].first) == to_json(outcome));
    // The office reads it in the OT's JSON (GET /v1/ots/{id}); technicians never get it.
    {
        server::Procedure proc(*f.store, *f.service, f.clock, {});
        const auto detail = proc.ots().ot_detail(ot);
        REQUIRE(detail.state.has_value());
        const std::string office = fields_json(EntityType::work_order, &*detail.state);
        CHECK(office.find("\"flagged_writes\"") != std::string::npos);
        CHECK(office.find("en_route") != std::string::npos);
        CHECK(office.find(quispe.hex()) != std::string::npos);
    }
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(fields_json(s, EntityType::work_order, ot, true).find("flagged_writes") ==
              std::string::npos);
    });
    CHECK(dm->state.log(EntityType::work_order, ot, "flagged_writes") == nullptr);

    // After a restart, the same op sent again (a lost answer) is answered flagged and not
    // recorded twice; the same id with other content is refused.
    f.service.reset();
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
    const auto again = f.sync(*dq, {en_route});
    REQUIRE(again.results.size() == 1);
    CHECK(again.results[0].status == OpStatus::flagged);
    CHECK(again.receipt.size() == 64);
    Op reused = en_route;
    reused.value = text("on_site");
    const auto other = f.sync(*dq, {reused});
    REQUIRE(other.results.size() == 1);
    CHECK(other.results[0].status == OpStatus::rejected);
    CHECK(other.results[0].code == ErrorCode::op_id_reused);
    CHECK(recorded().size() == 2);
    f.service->read_state([&](const crdt::Replica& s) { CHECK(status_of(s, ot) == "assigned"); });
}

TEST_CASE("an OT that comes back brings the device's own acknowledged ops with it") {
    Fixture f;
    const Id tech = f.add_user("tec.rocha", Role::technician);
    const Id other = f.add_user("tec.other", Role::technician);
    auto d = f.enroll(tech);
    const Id the_case = Id::random();
    const Id ot = f.issue_ot(tech, the_case, {"ZTEG0000AB01"});
    f.sync_all(*d);
    const Id row = Id::collected_item(ot, "ZTEG0000AB01");
    auto ops = collect(*d, ot, "ZTEG0000AB01");
    ops.push_back(d->maker->event(EntityType::work_order, ot, "notes", text("medidor al fondo")));
    d->state.apply(ops.back());
    // The visit fails (the office may then give the OT to another technician).
    ops.push_back(
        d->maker->set_status(d->state, EntityType::work_order, ot, "status", text("failed")));
    d->state.apply(ops.back());
    const auto pushed = f.sync(*d, ops);
    CHECK(statuses(pushed) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    for (const auto& so : pushed.ops) {
        CHECK(so.op.id.replica != d->replica); // live echoes of its own ops are still skipped
    }

    // Reassigned away: the device pulls the evictions and, as protocol.md §3.5 says,
    // deletes the entities' local state. It held nothing else, so its client model from
    // here on is a fresh replica fed only with what it pulls.
    REQUIRE(reassign(f, ot, other).size() == 2);
    std::set<std::pair<EntityType, Id>> evicted;
    for (bool more = true; more;) {
        const auto r = f.sync(*d);
        for (const auto& e : r.evicted) {
            evicted.insert({e.type, e.id});
        }
        more = r.more;
    }
    CHECK(evicted.contains({EntityType::work_order, ot}));
    CHECK(evicted.contains({EntityType::case_file, the_case}));
    CHECK(evicted.contains({EntityType::collected_item, row}));
    d->state = crdt::Replica{};

    // Assigned back: the whole OT arrives again, the device's own note and row included.
    f.assign(ot, tech);
    f.sync_all(*d);
    f.service->read_state([&](const crdt::Replica& s) {
        for (const auto& entity :
             std::vector<std::pair<EntityType, Id>>{{EntityType::work_order, ot},
                                                    {EntityType::case_file, the_case},
                                                    {EntityType::collected_item, row}}) {
            const EntityType t = entity.first; // a variable: CAPTURE's lambda takes it (clang 14)
            const Id& id = entity.second;
            CAPTURE(to_string(t));
            CHECK(entity_json(s, t, id, true) == entity_json(d->state, t, id, true));
        }
    });
    CHECK(events_of(d->state, ot, "notes") == 1);
    CHECK(d->state.get(EntityType::collected_item, row, "serial") != nullptr);
}

TEST_CASE("schema 4: feed rows written before it reach their op's author too") {
    Fixture f;
    const Id tech = f.add_user("tec.upgrade", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync_all(*d);
    const auto ops = collect(*d, ot, "ZTEG0000UP01");
    CHECK(statuses(f.sync(*d, ops)) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    // The database as schema 3 left it: no history column, so no way to tell a live echo
    // from an op replayed on arrival.
    f.service.reset();
    f.store.reset();
    const std::string path = (f.dir.path / "otsync.db").string();
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        // (and without what later schemas added: the directory's version counter of schema 5,
        // the archive of schema 6, the sessions and signed batches of schema 7, the
        // attachments of schema 8)
        CHECK(sqlite3_exec(
                  db,
                  "ALTER TABLE feed DROP COLUMN history; DROP TABLE directory_version; "
                  "DROP TRIGGER directory_user_insert; DROP TRIGGER directory_user_update; "
                  "DROP TRIGGER directory_user_delete; DROP TRIGGER directory_device_insert; "
                  "DROP TRIGGER directory_device_update; "
                  "DROP TRIGGER directory_device_delete; DROP TABLE archived_cases; "
                  "DROP TABLE archive; DROP TABLE device_sessions; DROP TABLE op_batches; "
                  "DROP TABLE blobs; DROP TABLE blob_chunks; DROP TABLE blob_refs; "
                  "PRAGMA user_version=3;",
                  nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    server::SqliteOptions o;
    o.path = path;
    f.store = server::open_sqlite_store(o);
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
    // Migrated: every op row already in the feed is delivered to every device, so a device
    // that lost its state gets its own ops back from a pull of the whole feed.
    const auto rows = f.store->feed_after(tech, 0, 10'000);
    CHECK(std::any_of(rows.begin(), rows.end(), [&](const server::FeedRow& r) {
        return r.op_seq && r.op_replica == d->replica;
    }));
    for (const auto& r : rows) {
        CHECK(r.history == r.op_seq.has_value());
    }
    d->state = crdt::Replica{};
    d->cursor = 0;
    f.sync_all(*d);
    f.service->read_state([&](const crdt::Replica& s) {
        const Id row = Id::collected_item(ot, "ZTEG0000UP01");
        CHECK(entity_json(s, EntityType::collected_item, row, true) ==
              entity_json(d->state, EntityType::collected_item, row, true));
    });
    // New rows are told apart again: the device's next ops are not echoed to it.
    const auto next = f.sync(*d, collect(*d, ot, "ZTEG0000UP02"));
    for (const auto& so : next.ops) {
        CHECK(so.op.id.replica != d->replica);
    }
}

TEST_CASE("custody follows the collector: the row stays on her device and only she hands it over") {
    Fixture f;
    const Id a = f.add_user("tec.mamani", Role::technician);
    const Id b = f.add_user("tec.quispe", Role::technician);
    const Id clerk = f.add_user("alm.vargas", Role::warehouse_clerk);
    auto da = f.enroll(a);
    auto db = f.enroll(b);
    const Id ot = f.issue_ot(a, Id::random(), {"CPR-AD3005051"});
    f.sync(*da);
    f.sync(*db);
    Op arrive =
        da->maker->set_status(da->state, EntityType::work_order, ot, "status", text("on_site"));
    da->state.apply(arrive);
    REQUIRE(f.sync(*da, {arrive}).results[0].status == OpStatus::accepted);
    const auto CI = EntityType::collected_item;
    const Id row = Id::collected_item(ot, "CPR-AD3005051");
    auto by = [&](test::Device& d, const Id& item, const Id& user, std::uint64_t replica) {
        return std::vector<Op>{
            d.maker->set(CI, item, "collected_by", user),
            d.maker->set(CI, item, "collected_device", static_cast<std::int64_t>(replica))};
    };
    // A technician names only herself and her own device as the collector.
    const Id other = Id::collected_item(ot, "PWR-AD3005051");
    auto lies = collect(*da, ot, "PWR-AD3005051");
    for (auto& op : by(*da, other, b, da->replica)) {
        lies.push_back(op);
    }
    lies.push_back(by(*da, other, a, db->replica)[1]);
    const auto rl = f.sync(*da, lies);
    REQUIRE(rl.results.size() == lies.size());
    CHECK(rl.results[4].status == OpStatus::rejected); // collected_by: another user
    CHECK(rl.results[4].code == ErrorCode::permission_denied);
    CHECK(rl.results[5].status == OpStatus::accepted);
    CHECK(rl.results[6].status == OpStatus::rejected); // collected_device: another replica
    CHECK(rl.results[6].code == ErrorCode::permission_denied);

    // Both rows reach the server while the OT is hers; the visit fails and the office
    // gives the OT to Quispe.
    const Id synced = Id::collected_item(ot, "ADP-AD3005051");
    auto first = collect(*da, ot, "ADP-AD3005051");
    for (auto& op : by(*da, synced, a, da->replica)) {
        first.push_back(op);
    }
    for (auto& op : collect(*da, ot, "CPR-AD3005051")) {
        first.push_back(op);
    }
    for (auto& op : by(*da, row, a, da->replica)) {
        first.push_back(op);
    }
    first.push_back(
        da->maker->set_status(da->state, EntityType::work_order, ot, "status", text("failed")));
    da->state.apply(first.back());
    for (const auto& res : f.sync(*da, first).results) {
        CHECK_MESSAGE(res.status == OpStatus::accepted, res.message);
    }
    f.assign(ot, b);
    const auto ra = f.sync(*da);
    auto evicted = [](const SyncResponse& r, EntityType t, const Id& id) {
        return std::any_of(r.evicted.begin(), r.evicted.end(),
                           [&](const EntityRef& e) { return e.type == t && e.id == id; });
    };
    CHECK(evicted(ra, EntityType::work_order, ot));
    CHECK_FALSE(evicted(ra, CI, row)); // both are still in her hands
    CHECK_FALSE(evicted(ra, CI, synced));
    CHECK(evicted(ra, CI, other)); // a row without a collector goes with its OT, as before
    f.sync_all(*db);
    CHECK(has_entity(db->state, CI, row)); // the OT's new technician sees its rows

    // Quispe cannot hand over what Mamani holds; Mamani can, as her own (not flagged).
    const Id hb = Id::random();
    const auto rb = f.sync(*db, {db->maker->set(EntityType::handover, hb, "technician", b),
                                 db->maker->add(EntityType::handover, hb, "rows", row),
                                 db->maker->set(CI, row, "handover", hb)});
    CHECK(rb.results[0].status == OpStatus::accepted);
    for (std::size_t i : {1u, 2u}) {
        CHECK(rb.results[i].status == OpStatus::rejected);
        CHECK(rb.results[i].code == ErrorCode::permission_denied);
    }
    // Nor void it, nor name himself its collector while she holds it.
    const auto rv = f.sync(
        *db, {db->maker->set(CI, row, "voided", true), db->maker->set(CI, row, "collected_by", b)});
    for (const auto& res : rv.results) {
        CHECK(res.status == OpStatus::rejected);
        CHECK(res.code == ErrorCode::permission_denied);
    }
    const Id ha = Id::random();
    const auto rh = f.sync(*da, {da->maker->set(EntityType::handover, ha, "technician", a),
                                 da->maker->add(EntityType::handover, ha, "rows", row),
                                 da->maker->set(CI, row, "handover", ha)});
    for (const auto& res : rh.results) {
        CHECK_MESSAGE(res.status == OpStatus::accepted, res.message);
    }

    // Received at the warehouse: out of her custody, the row leaves her device only.
    const auto rr = f.service->submit(
        clerk, Role::warehouse_clerk, [&](crdt::OpMaker& m, const crdt::Replica&) {
            return std::vector<Op>{m.set(CI, row, "receipt", text("received"))};
        });
    REQUIRE(rr.size() == 1);
    CHECK(rr[0].status == OpStatus::accepted);
    CHECK(evicted(f.sync(*da), CI, row));
    CHECK_FALSE(evicted(f.sync(*db), CI, row));
}

TEST_CASE("the server applies the handheld's field rules and flags a signature the rows break") {
    Fixture f;
    const Id tech = f.add_user("tec.reglas", Role::technician);
    auto d = f.enroll(tech);
    const Id the_case = Id::random();
    const Id ot = f.issue_ot(tech, the_case, {"ONT-R1", "PWR-R1"});
    f.sync_all(*d);
    const auto CI = EntityType::collected_item;
    const auto one = [&](const Op& op) { // sent alone; kept locally only when taken
        const auto r = f.sync(*d, {op});
        REQUIRE(r.results.size() == 1);
        if (r.results[0].status != OpStatus::rejected) {
            d->state.apply(op);
        }
        return r.results[0];
    };
    const auto row_of = [&](const std::string& serial) {
        return d->maker->set(CI, Id::collected_item(ot, serial), "work_order", ot);
    };
    // A row while the OT is only assigned: not on site.
    auto r = one(row_of("ONT-R1"));
    CHECK(r.status == OpStatus::rejected);
    CHECK(r.code == ErrorCode::invalid_transition);
    REQUIRE(
        one(d->maker->set_status(d->state, EntityType::work_order, ot, "status", text("on_site")))
            .status == OpStatus::accepted);
    // A serial with control characters.
    Op bad = d->maker->set(CI, Id::collected_item(ot, "AB\nCD\t1"), "serial", text("AB\nCD\t1"));
    r = one(bad);
    CHECK(r.status == OpStatus::rejected);
    CHECK(r.code == ErrorCode::invalid_value);
    for (auto& op : collect(*d, ot, "ONT-R1")) {
        REQUIRE(f.sync(*d, {op}).results[0].status == OpStatus::accepted);
    }
    const auto complete = [&] {
        return d->maker->set_status(d->state, EntityType::work_order, ot, "status",
                                    text("completed"));
    };
    // Completion: PWR-R1 unexplained, then no signature.
    Op c1 = complete();
    r = f.sync(*d, {c1}).results[0];
    CHECK(r.code == ErrorCode::requirements_incomplete);
    CHECK(r.message.find("PWR-R1") != std::string::npos);
    REQUIRE(one(d->maker->event(EntityType::work_order, ot, "missing_reasons",
                                text("PWR-R1: el cliente la conserva")))
                .status == OpStatus::accepted);
    r = f.sync(*d, {complete()}).results[0];
    CHECK(r.code == ErrorCode::requirements_incomplete);
    CHECK(r.message.find("signed") != std::string::npos);
    const Hash256 h = rows_hash(d->state, ot);
    REQUIRE(one(d->maker->set(EntityType::work_order, ot, "signature_ref", Id::random())).status ==
            OpStatus::accepted);
    REQUIRE(one(d->maker->set(EntityType::work_order, ot, "signed_rows_hash",
                              Bytes{{h.begin(), h.end()}}))
                .status == OpStatus::accepted);
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK_FALSE(server::reconcile_ot(s, ot, {}).signature_mismatch);
    });
    // A device that ignores the freeze adds a row after the customer signed: accepted (a
    // field fact), and the office sees that the signature no longer matches the rows.
    for (auto& op : collect(*d, ot, "EXTRA-R1")) {
        REQUIRE(f.sync(*d, {op}).results[0].status == OpStatus::accepted);
    }
    f.service->read_state([&](const crdt::Replica& s) {
        const auto rec = server::reconcile_ot(s, ot, {});
        CHECK(rec.signature_mismatch);
    });
    CHECK(one(complete()).status == OpStatus::accepted); // signed, every serial accounted for

    // Verification is for modalities 2 and 3.
    const Id ot4 = f.issue_ot(tech, Id::random(), {"DEC-R4"});
    f.service->submit(
        f.back_office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica& s) {
            const Id c4 = std::get<Id>(*s.get(EntityType::work_order, ot4, "case"));
            return std::vector<Op>{m.set(EntityType::case_file, c4, "modality", std::int64_t{4})};
        });
    f.sync_all(*d);
    r = one(d->maker->add(EntityType::work_order, ot4, "verified_equipment", text("DEC-R4")));
    CHECK(r.status == OpStatus::rejected);
    CHECK(r.code == ErrorCode::invalid_value);
}

TEST_CASE("killed right after a device's commit, the server restarts with the case closed and "
          "custody moved: the follow-ups were in that commit, nothing repairs them") {
    Fixture f;
    const auto person = [&](const std::string& name, Role role) {
        server::User u;
        u.id = f.add_user(name, role);
        u.name = name;
        u.role = role;
        return u;
    };
    const auto atc = person("atc", Role::customer_service);
    const auto jac = person("jac", Role::commercial_head);
    const auto ev = person("ev", Role::sales_executive);
    const auto bo = person("bo", Role::back_office);
    const auto tech = person("tec", Role::technician);
    // Two cases of modality 2: on K-1 the technician collects the ONT (it waits for the
    // warehouse then), on K-2 both serials stay with the customer, seen (it closes now).
    Id the_case, ot, case2, ot2;
    {
        server::Procedure proc(*f.store, *f.service, f.clock, {});
        REQUIRE(proc.office()
                    .import_inventory(
                        "contract,customer_name,person_type,tax_id,address,serial,kind,model,"
                        "description\n"
                        "K-1,Ana,natural,1 CB,Calle 1,SK1A,gpon_ont,HG8245,ONT\n"
                        "K-1,Ana,natural,1 CB,Calle 1,SK1B,decoder,DX,Decodificador\n"
                        "K-2,Luis,natural,2 CB,Calle 2,SK2A,gpon_ont,HG8245,ONT\n"
                        "K-2,Luis,natural,2 CB,Calle 2,SK2B,decoder,DX,Decodificador\n")
                    .items.size() == 4);
        const auto open = [&](const std::string& contract, Id& c, Id& o) {
            c = proc.cases().open_case(atc, test::case_opening(2, contract, "Cercado", "Ana"));
            proc.cases().route_case(jac, c, {"ev"});
            test::record_feasible(proc, ev, c);
            test::meet_and_approve(proc, ev, c);
            o = test::issue_to(proc, bo, c, "tec");
        };
        open("K-1", the_case, ot);
        open("K-2", case2, ot2);
    }
    auto d = f.enroll(tech.id);
    f.sync_all(*d);
    // The visit: the ONT collected, the decoder seen at the customer's, signed, completed.
    auto ops = collect(*d, ot, "SK1A");
    const auto more = [&](Op op) {
        d->state.apply(op);
        ops.push_back(std::move(op));
    };
    more(d->maker->add(EntityType::work_order, ot, "verified_equipment", text("SK1B")));
    more(d->maker->set(EntityType::work_order, ot, "signature_ref", Id::random()));
    const Hash256 h = rows_hash(d->state, ot);
    more(
        d->maker->set(EntityType::work_order, ot, "signed_rows_hash", Bytes{{h.begin(), h.end()}}));
    more(d->maker->set_status(d->state, EntityType::work_order, ot, "status", text("completed")));
    more(d->maker->set_status(d->state, EntityType::work_order, ot2, "status", text("on_site")));
    more(d->maker->add(EntityType::work_order, ot2, "verified_equipment", text("SK2A")));
    more(d->maker->add(EntityType::work_order, ot2, "verified_equipment", text("SK2B")));
    more(d->maker->set_status(d->state, EntityType::work_order, ot2, "status", text("completed")));

    // The server restarts as a child process that SIGKILLs itself at the start of the commit
    // after the one that holds the device's ops (what used to be the follow-ups' own commit;
    // now the projections' write).
    killed_at_commit(f, 2, [&] {
        server::Procedure proc(*f.store, *f.service, f.clock, {});
        if (f.post(*d, encode_binary(f.request(*d, ops)), false).status != 200) {
            ::_exit(2);
        }
    });
    server::SqliteOptions o;
    o.path = (f.dir.path / "otsync.db").string();

    // Restarted: no repair step exists; the state on disk already has the follow-ups.
    f.store = server::open_sqlite_store(o);
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, server::SyncConfig{});
    server::Procedure proc(*f.store, *f.service, f.clock, {});
    f.service->read_state([&](const crdt::Replica& s) {
        CHECK(server::text_of(s, EntityType::work_order, ot, "status") == "completed");
        CHECK(server::text_of(s, EntityType::work_order, ot2, "status") == "completed");
        // Nothing of K-2 left to do: closed. K-1's ONT is on its way to the warehouse.
        CHECK(server::text_of(s, EntityType::case_file, case2, "status") == "closed");
        CHECK(server::text_of(s, EntityType::case_file, the_case, "status") == "in_progress");
        const auto* custody =
            s.log(EntityType::equipment, Id::natural("equipment", "SK1A"), "custody");
        REQUIRE(custody);
        REQUIRE(!custody->events.empty());
        CHECK(custody->events.rbegin()->second == Value{std::string("technician")});
        for (const Id& c : {the_case, case2}) {
            bool step = false;
            if (const auto* steps = s.log(EntityType::case_file, c, "steps")) {
                for (const auto& [k, v] : steps->events) {
                    step = step || v == Value{std::string("m2.13")};
                }
            }
            CHECK(step); // the technician's step of modality 2, on both
        }
    });
}

namespace {

/// A handshake as client-core makes it; the session and its key, or the refusal's reply.
struct Opened {
    server::Reply reply;
    SessionId id{};
    MacKey key;
    std::int64_t expires_at = 0;
};

Opened open_session(Fixture& f, test::Device& d, std::optional<std::uint64_t> counter = {}) {
    const std::uint64_t c = counter.value_or(++d.request_counter);
    const KxKeyPair kx = KxKeyPair::generate();
    const Signature hello = sign(session_hello_message(d.replica, c, kx.public_key), d.key.secret);
    Opened o;
    o.reply = server::reply_of(f.service->open_session(
        "{\"protocol_version\":2,\"replica\":" + std::to_string(d.replica) +
        ",\"counter\":" + std::to_string(c) + ",\"device_key\":\"" + to_base64(kx.public_key) +
        "\",\"signature\":\"" + to_base64(hello) + "\"}"));
    if (o.reply.status != 200) {
        return o;
    }
    rapidjson::Document doc;
    doc.Parse(o.reply.body.c_str());
    REQUIRE(doc.IsObject());
    const auto b64 = [&](const char* name) {
        const auto v = from_base64(doc[name].GetString(), 64);
        REQUIRE(v);
        return *v;
    };
    const auto id = b64("session");
    const auto server_kx = b64("server_key");
    const auto signature = b64("signature");
    REQUIRE(id.size() == 16);
    REQUIRE(server_kx.size() == 32);
    REQUIRE(signature.size() == 64);
    std::copy(id.begin(), id.end(), o.id.begin());
    PublicKey skx{};
    std::copy(server_kx.begin(), server_kx.end(), skx.begin());
    Signature sig{};
    std::copy(signature.begin(), signature.end(), sig.begin());
    o.expires_at = doc["expires_at"].GetInt64();
    // The server signed the exchange with its key of enrollment.
    CHECK(verify(sig, session_accept_message(d.replica, c, kx.public_key, skx, o.id, o.expires_at),
                 f.service->server_public_key()));
    const auto key = device_session_key(kx, skx);
    REQUIRE(key);
    o.key = *key;
    return o;
}

/// Posts `req` MACed in the session.
server::Reply post_in_session(Fixture& f, const test::Device& d, const Opened& s,
                              const SyncRequest& req) {
    const std::string body = encode_binary(req);
    const auto e =
        session::mac_request(d.replica, req.request_counter, "/v1/sync", body, s.id, s.key);
    return server::reply_of(f.service->sync("/v1/sync", session::headers_of(e), body));
}

std::string code_of(const server::Reply& r) {
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    return doc.IsObject() && doc.HasMember("error") ? doc["error"]["code"].GetString() : "";
}

} // namespace

TEST_CASE("a session: one handshake signed both ways, then requests with a MAC, until it expires "
          "or the device is revoked") {
    server::SyncConfig config;
    config.session_ttl_ms = 60'000;
    Fixture f(config);
    const Id tech = f.add_user("tec.sesion", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    const Opened s = open_session(f, *d);
    REQUIRE(s.reply.status == 200);
    CHECK(s.expires_at == static_cast<std::int64_t>(f.clock.now_ms()) + 60'000);

    // Pulls and pushes with the MAC: the OT arrives, the row is stored.
    auto pulled = post_in_session(f, *d, s, f.request(*d, {}));
    REQUIRE(pulled.status == 200);
    const auto page = decode_sync_response(pulled.body);
    CHECK_FALSE(page.ops.empty());
    for (const auto& op : page.ops) {
        d->hlc->receive(op.op.hlc);
        d->state.apply(op.op);
    }
    d->cursor = page.cursor;
    const auto row = collect(*d, ot, "SES0001");
    const auto pushed = post_in_session(f, *d, s, f.request(*d, row));
    REQUIRE(pushed.status == 200);
    CHECK(statuses(decode_sync_response(pushed.body)) ==
          std::vector<OpStatus>(row.size(), OpStatus::accepted));
    // The same counter again is a replay, in a session too.
    SyncRequest again = f.request(*d, {});
    CHECK(post_in_session(f, *d, s, again).status == 200);
    CHECK(post_in_session(f, *d, s, again).status == 409);

    // A MAC made with another key, or over other bytes: the session cannot be used.
    Opened forged = s;
    forged.key.bytes[0] ^= 1;
    const auto bad_mac = post_in_session(f, *d, forged, f.request(*d, {}));
    CHECK(bad_mac.status == 401);
    CHECK(code_of(bad_mac) == "session_expired");
    // Another device cannot use this session.
    auto other = f.enroll(tech);
    const auto stolen = post_in_session(f, *other, s, f.request(*other, {}));
    CHECK(stolen.status == 401);
    CHECK(code_of(stolen) == "session_expired");
    // A handshake replaying a counter already used is refused; one not signed by the
    // device's key too.
    CHECK(open_session(f, *d, again.request_counter).reply.status == 409);
    {
        test::Device impostor; // same replica, another key
        impostor.replica = d->replica;
        impostor.user = tech;
        const auto o = open_session(f, impostor, ++d->request_counter);
        CHECK(o.reply.status == 401);
        CHECK(code_of(o.reply) == "bad_signature");
    }
    // A restarted service knows the session from the store.
    f.service.reset();
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, config);
    CHECK(post_in_session(f, *d, s, f.request(*d, {})).status == 200);

    // Past its expiry: session_expired, nothing stored; a new handshake goes on.
    f.clock.advance(61'000);
    const auto before = f.store->op_count();
    const auto expired = post_in_session(f, *d, s, f.request(*d, collect(*d, ot, "SES0002")));
    CHECK(expired.status == 401);
    CHECK(code_of(expired) == "session_expired");
    CHECK(f.store->op_count() == before);
    const Opened s2 = open_session(f, *d);
    REQUIRE(s2.reply.status == 200);
    CHECK(post_in_session(f, *d, s2, f.request(*d, collect(*d, ot, "SES0002"))).status == 200);
    CHECK(f.store->op_count() > before);

    // Revoked: the live session ends at once, with the signed proof; no new one opens.
    REQUIRE(f.store->revoke_device(d->replica));
    const auto revoked = post_in_session(f, *d, s2, f.request(*d, {}));
    CHECK(revoked.status == 401);
    CHECK(code_of(revoked) == "device_revoked");
    CHECK(revoked.body.find("\"revocation\"") != std::string::npos);
    CHECK(code_of(open_session(f, *d).reply) == "device_revoked");
}

TEST_CASE("protocol 2 ops carry the device's signature over them, kept with the batch; protocol "
          "1 goes on until the operator turns it off") {
    Fixture f;
    const Id tech = f.add_user("tec.firma", Role::technician);
    auto d = f.enroll(tech);
    const Id ot = f.issue_ot(tech, Id::random());
    f.sync_all(*d);
    const auto ops = collect(*d, ot, "SIG0001");
    // Without the signature, or with one over other ops: refused whole, nothing stored.
    const auto before = f.store->op_count();
    SyncRequest unsigned_req = f.request(*d, ops);
    unsigned_req.ops_signature.clear();
    const auto missing = f.post(*d, encode_binary(unsigned_req), false);
    CHECK(missing.status == 400);
    CHECK(code_of(missing) == "missing_field");
    SyncRequest wrong = f.request(*d, ops);
    wrong.ops.pop_back(); // the signature covered one op more
    const auto mismatch = f.post(*d, encode_binary(wrong), false);
    CHECK(mismatch.status == 400);
    CHECK(code_of(mismatch) == "invalid_value");
    CHECK(f.store->op_count() == before);
    // Signed: stored, and the batch with it, each op's hash in order.
    CHECK(statuses(f.sync(*d, ops)) == std::vector<OpStatus>(ops.size(), OpStatus::accepted));
    std::vector<server::OpBatch> batches;
    f.store->for_each_op_batch([&](const server::OpBatch& b) { batches.push_back(b); });
    REQUIRE(batches.size() == 1);
    CHECK(batches[0].replica == d->replica);
    REQUIRE(batches[0].leaves.size() == ops.size());
    std::vector<Hash256> leaves;
    for (std::size_t i = 0; i < ops.size(); ++i) {
        CHECK(batches[0].leaves[i].first == ops[i].id);
        CHECK(batches[0].leaves[i].second == op_leaf(ops[i]));
        leaves.push_back(batches[0].leaves[i].second);
    }
    CHECK(verify(batches[0].signature, ops_signing_string(leaves), d->key.public_key));

    // A protocol 1 request still works (no signature over its ops)...
    SyncRequest v1 = f.request(*d, collect(*d, ot, "SIG0002"));
    v1.protocol_version = 1;
    const auto old = f.post(*d, encode_binary(v1), false);
    REQUIRE(old.status == 200);
    CHECK(decode_sync_response(old.body).protocol_version == 1); // its own version's answer
    // ...until the operator turns protocol 1 off: 426, with the range the server takes.
    server::SyncConfig v2_only;
    v2_only.min_protocol = 2;
    f.service.reset();
    f.service = std::make_unique<server::SyncService>(*f.store, f.clock, v2_only);
    SyncRequest v1_again = f.request(*d, collect(*d, ot, "SIG0003"));
    v1_again.protocol_version = 1;
    const auto refused = f.post(*d, encode_binary(v1_again), false);
    CHECK(refused.status == 426);
    CHECK(refused.body.find("\"supported\":{\"min\":2,\"max\":2}") != std::string::npos);
    CHECK(f.post(*d, encode_binary(f.request(*d, collect(*d, ot, "SIG0003"))), false).status ==
          200);
}
