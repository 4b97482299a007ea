// The sync endpoint without sockets: enrollment, signing, replay, idempotence,
// validation, technician scope (assignment, eviction, smuggled ops), paging.
#include "sync_fixture.hpp"

#include "otsync/view.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

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

/// The Anexo 4 row ops a technician makes for one collected serial.
std::vector<Op> collect(test::Device& d, const Id& ot, const std::string& serial) {
    const Id row = Id::collected_item(ot, serial);
    std::vector<Op> ops;
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
    CHECK(f.service->enroll(body).status == 200);
    CHECK(f.service->enroll(body).status == 401); // used
    CHECK(f.service
              ->enroll("{\"code\":\"AAAA-BBBB-CCCC\",\"public_key\":\"" +
                       to_base64(d->key.public_key) + "\",\"label\":\"x\"}")
              .status == 401);
    CHECK(f.service->enroll("not json").status == 400);
    CHECK(f.service->enroll("{\"code\":\"x\",\"public_key\":\"short\",\"label\":\"x\"}").status ==
          400);
    const auto extra =
        f.service->enroll("{\"code\":\"x\",\"public_key\":\"x\",\"label\":\"x\",\"admin\":true}");
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

        auto ops = collect(*d, ot, "ZTEG00000001");
        for (const char* s : {"on_site", "completed"}) {
            ops.push_back(
                d->maker->set_status(d->state, EntityType::work_order, ot, "status", text(s)));
            d->state.apply(ops.back());
        }
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
        const auto reply = f.service->sync("/v1/sync", h, bad);
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
    CHECK(accepted == k_devices * 10 * 4);
    CHECK(f.store->op_count() == before + static_cast<std::uint64_t>(accepted.load()));
}
