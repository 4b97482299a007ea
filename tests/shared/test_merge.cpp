// The merge rules with named replicas: registers, OR-sets, logs, lifecycles, and the
// guarantees around them (idempotence, reuse detection, natural keys).
#include "replica_node.hpp"

#include "otsync/error.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>

using namespace otsync;
using otsync::test::Node;

namespace {
constexpr std::uint64_t k_now = 1'795'000'000'000;
constexpr auto OT = EntityType::work_order;
constexpr auto CASE = EntityType::case_file;

std::vector<std::string> texts(const std::vector<Value>& values) {
    std::vector<std::string> out;
    for (const auto& v : values) {
        out.push_back(std::get<std::string>(v));
    }
    return out;
}

std::string text_of(const Value* v) {
    return v ? std::get<std::string>(*v) : "<unset>";
}
} // namespace

TEST_CASE("register: the later write wins on every replica, in either delivery order") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now + 10);
    const Id ot = Id::random();
    alice.set(OT, ot, "address", text("Av. Blanco Galindo km 4"));
    bob.set(OT, ot, "address", text("Calle Jordán 123")); // 10 ms later
    alice.receive(bob);
    bob.receive(alice);
    CHECK(text_of(alice.state.get(OT, ot, "address")) == "Calle Jordán 123");
    CHECK(alice.state.digest() == bob.state.digest());
}

TEST_CASE("register: equal HLCs are broken by replica id, then counter") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now); // same millisecond, same logical counter
    const Id ot = Id::random();
    const Op& a = alice.set(OT, ot, "outcome", text("alice"));
    const Op& b = bob.set(OT, ot, "outcome", text("bob"));
    REQUIRE(a.hlc == b.hlc);
    alice.receive(bob);
    bob.receive(alice);
    CHECK(text_of(alice.state.get(OT, ot, "outcome")) == "bob");
    CHECK(text_of(bob.state.get(OT, ot, "outcome")) == "bob");
    CHECK(alice.state.digest() == bob.state.digest());
}

TEST_CASE("OR-set: concurrent add and remove of the same element, add wins") {
    Node server("server", 0, k_now);
    Node alice("alice", 1, k_now + 1);
    Node bob("bob", 2, k_now + 2);
    const Id ot = Id::random();
    server.add(OT, ot, "expected_equipment", text("ZTEG00000001"));
    alice.receive(server);
    bob.receive(server);
    // alice removes the element she saw; bob, concurrently, adds it again.
    alice.remove(OT, ot, "expected_equipment", text("ZTEG00000001"));
    bob.add(OT, ot, "expected_equipment", text("ZTEG00000001"));
    for (Node* n : {&server, &alice, &bob}) {
        n->receive(alice);
        n->receive(bob);
    }
    for (Node* n : {&server, &alice, &bob}) {
        CAPTURE(n->name);
        CHECK(texts(n->state.elements(OT, ot, "expected_equipment")) ==
              std::vector<std::string>{"ZTEG00000001"});
    }
    CHECK(alice.state.digest() == bob.state.digest());
    CHECK(server.state.digest() == bob.state.digest());
}

TEST_CASE("OR-set: a remove only removes the adds it observed") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now);
    const Id ot = Id::random();
    alice.add(OT, ot, "expected_equipment", text("DECO0001"));
    bob.add(OT, ot, "expected_equipment", text("DECO0001")); // unseen by alice
    alice.remove(OT, ot, "expected_equipment", text("DECO0001"));
    CHECK(alice.state.elements(OT, ot, "expected_equipment").empty());
    alice.receive(bob);
    bob.receive(alice);
    CHECK(texts(alice.state.elements(OT, ot, "expected_equipment")) ==
          std::vector<std::string>{"DECO0001"});
    CHECK(alice.state.digest() == bob.state.digest());
    // Once alice has seen bob's add, a remove takes both.
    alice.remove(OT, ot, "expected_equipment", text("DECO0001"));
    bob.receive(alice);
    CHECK(bob.state.elements(OT, ot, "expected_equipment").empty());
}

TEST_CASE("OR-set: a remove delivered before its add still removes it") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now);
    const Id ot = Id::random();
    const Op add = alice.add(OT, ot, "installed_equipment", text("ONT1"));
    const Op rem = alice.remove(OT, ot, "installed_equipment", text("ONT1"));
    bob.receive(std::vector<Op>{rem});
    bob.receive(std::vector<Op>{add});
    CHECK(bob.state.elements(OT, ot, "installed_equipment").empty());
    CHECK(bob.state.digest() == alice.state.digest());
}

TEST_CASE("log: events are the union by op id, read in op order") {
    Node alice("alice", 1, k_now + 5);
    Node bob("bob", 2, k_now);
    const Id ot = Id::random();
    alice.event(OT, ot, "notes", text("cliente ausente, vuelvo 15:00"));
    bob.event(OT, ot, "notes", text("llamé al celular de referencia"));
    alice.receive(bob);
    bob.receive(alice);
    bob.receive(alice); // a duplicate delivery changes nothing
    const auto* log = bob.state.log(OT, ot, "notes");
    REQUIRE(log);
    REQUIRE(log->events.size() == 2);
    CHECK(std::get<std::string>(log->events.begin()->second) == "llamé al celular de referencia");
    CHECK(alice.state.digest() == bob.state.digest());
}

TEST_CASE("apply is idempotent, and a reused op id with other content is rejected") {
    Node alice("alice", 1, k_now);
    crdt::Replica server;
    const Id ot = Id::random();
    const Op op = alice.set(OT, ot, "outcome", text("instalado"));
    CHECK(server.apply(op).status == crdt::ApplyResult::Status::applied);
    const auto digest = server.digest();
    CHECK(server.apply(op).status == crdt::ApplyResult::Status::duplicate);
    CHECK(server.digest() == digest);

    // A device restored from a backup makes a different op under the same id.
    Op reused = op;
    reused.value = text("no instalado");
    const auto r = server.apply(reused);
    CHECK(r.status == crdt::ApplyResult::Status::rejected);
    REQUIRE(r.error);
    CHECK(r.error->code() == ErrorCode::op_id_reused);
    CHECK(server.digest() == digest);
    CHECK(text_of(server.get(OT, ot, "outcome")) == "instalado");
}

TEST_CASE("ops that do not fit the registry are rejected and change nothing") {
    Node alice("alice", 1, k_now);
    crdt::Replica r;
    const Id ot = Id::random();
    const auto digest = r.digest();
    auto expect = [&](Op op, ErrorCode code) {
        const auto res = r.apply(op);
        CHECK(res.status == crdt::ApplyResult::Status::rejected);
        REQUIRE(res.error);
        CHECK(res.error->code() == code);
    };
    Op base = alice.maker.set(OT, ot, "outcome", text("ok"));
    Op op = base;
    op.field = 999;
    expect(op, ErrorCode::unknown_entity_field);
    op = base;
    op.entity_type = static_cast<EntityType>(42);
    expect(op, ErrorCode::unknown_entity_type);
    op = base;
    op.kind = OpKind::add;
    expect(op, ErrorCode::kind_mismatch);
    op = base;
    op.value = std::int64_t{5};
    expect(op, ErrorCode::value_type_mismatch);
    op = base;
    op.value = text(std::string("\xC3\x28", 2));
    expect(op, ErrorCode::invalid_utf8);
    op = base;
    op.value = text(std::string(10'000, 'x'));
    expect(op, ErrorCode::too_large);
    op = alice.maker.set(OT, ot, "status", text("teleported"));
    expect(op, ErrorCode::invalid_value);
    op = alice.maker.set(CASE, ot, "modality", Value{std::int64_t{5}});
    expect(op, ErrorCode::out_of_range);
    CHECK(r.digest() == digest);
    CHECK(r.op_count() == 0);
}

TEST_CASE(
    "lifecycle: completed by the technician vs cancelled by back office is kept as a conflict") {
    Node tech("alice", 1, k_now);
    Node office("server", 0, k_now + 1);
    const Id ot = Id::random();
    office.set(OT, ot, "status", text("assigned"));
    tech.receive(office);
    tech.set(OT, ot, "status", text("on_site"));
    // Offline: the technician completes; meanwhile back office cancels.
    tech.set(OT, ot, "status", text("completed"));
    office.set(OT, ot, "status", text("cancelled"));
    tech.receive(office);
    office.receive(tech);
    CHECK(tech.state.digest() == office.state.digest());
    const auto conflicts = office.state.conflicts();
    REQUIRE(conflicts.size() == 1);
    CHECK(conflicts[0].entity.id == ot);
    CHECK(conflicts[0].winner == text_of(office.state.get(OT, ot, "status")));
    REQUIRE(conflicts[0].finals.size() == 2);
    std::vector<std::string> both{conflicts[0].finals[0].second, conflicts[0].finals[1].second};
    std::sort(both.begin(), both.end());
    CHECK(both == std::vector<std::string>{"cancelled", "completed"});
}

TEST_CASE("lifecycle: a final state reopened and closed again is not a conflict") {
    Node sup("server", 0, k_now);
    const Id c = Id::random();
    sup.set(CASE, c, "status", text("in_review"));
    sup.set(CASE, c, "status", text("rejected"));
    sup.set(CASE, c, "status", text("in_review")); // supervisor reopens
    sup.set(CASE, c, "status", text("approved"));
    sup.set(CASE, c, "status", text("in_progress"));
    sup.set(CASE, c, "status", text("closed"));
    CHECK(sup.state.conflicts().empty());
}

TEST_CASE("two devices collecting the same serial on one OT make one row") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now + 3);
    const Id ot = Id::random();
    const Id row_a = Id::collected_item(ot, "ZTEG00A1B2C3");
    const Id row_b = Id::collected_item(ot, "zteg00a1b2c3");
    REQUIRE(row_a == row_b);
    alice.set(EntityType::collected_item, row_a, "serial", text("ZTEG00A1B2C3"));
    alice.set(EntityType::collected_item, row_a, "reason", text("damaged"));
    bob.set(EntityType::collected_item, row_b, "serial", text("ZTEG00A1B2C3"));
    bob.set(EntityType::collected_item, row_b, "reason", text("migration"));
    alice.receive(bob);
    bob.receive(alice);
    CHECK(alice.state.entities(EntityType::collected_item).size() == 1);
    CHECK(alice.state.digest() == bob.state.digest());
}

TEST_CASE("the same ops in any order, duplicated or batched, give one digest") {
    Node alice("alice", 1, k_now);
    Node bob("bob", 2, k_now + 7);
    Node server("server", 0, k_now + 3);
    const Id ot = Id::random();
    const Id c = Id::random();
    for (int i = 0; i < 20; ++i) {
        alice.set(OT, ot, "outcome", text("a" + std::to_string(i)));
        bob.add(OT, ot, "verified_equipment", text("S" + std::to_string(i % 5)));
        if (i % 3 == 0) {
            bob.remove(OT, ot, "verified_equipment", text("S" + std::to_string(i % 4)));
        }
        server.event(CASE, c, "steps", text("m1." + std::to_string(i)));
        server.set(CASE, c, "fee", Money{14628 + i});
    }
    std::vector<Op> all;
    for (Node* n : {&alice, &bob, &server}) {
        all.insert(all.end(), n->made.begin(), n->made.end());
    }
    crdt::Replica reference;
    for (const auto& op : all) {
        reference.apply(op);
    }
    std::mt19937_64 rng(7);
    for (int round = 0; round < 50; ++round) {
        auto shuffled = all;
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        crdt::Replica r;
        for (const auto& op : shuffled) {
            r.apply(op);
            if (rng() % 4 == 0) {
                r.apply(op);
            }
        }
        CHECK(r.digest() == reference.digest());
    }
}
