// A server-side sync fixture without sockets: a temporary SQLite store, the sync
// service, users, and simulated devices that enroll and sign like a handheld.
#pragma once

#include "../temp_dir.hpp"
#include "api/app.hpp"
#include "procedure/procedure.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/codec.hpp"
#include "otsync/crypto.hpp"
#include "otsync/session.hpp"

#include <doctest/doctest.h>

#include <sodium.h>

#include <filesystem>
#include <random>

namespace otsync::test {

/// One handheld: its key, replica id, counters and local clock.
struct Device {
    SigningKeyPair key = SigningKeyPair::generate();
    std::uint64_t replica = 0;
    Id user;
    std::uint64_t request_counter = 0;
    std::uint64_t cursor = 0;
    FakeClock clock{1'795'000'000'000};
    std::unique_ptr<Hlc> hlc = std::make_unique<Hlc>(clock);
    std::unique_ptr<crdt::OpMaker> maker;
    crdt::Replica state;
};

struct Fixture {
    explicit Fixture(server::SyncConfig config = {}) {
        server::SqliteOptions o;
        o.path = (dir.path / "otsync.db").string();
        store = server::open_sqlite_store(o);
        service = std::make_unique<server::SyncService>(*store, clock, config);
        back_office = add_user("bo.rojas", Role::back_office);
    }
    /// On a store opened elsewhere (a PostgreSQL database that other fixtures share: one
    /// fixture per server instance); the back office user is added once.
    explicit Fixture(std::unique_ptr<server::Store> shared_store, server::SyncConfig config = {})
        : store(std::move(shared_store)) {
        service = std::make_unique<server::SyncService>(*store, clock, config);
        back_office = Id::natural("user", "bo.rojas");
        if (!store->user_by_id(back_office)) {
            add_user("bo.rojas", Role::back_office);
        }
    }

    Id add_user(const std::string& name, Role role) {
        server::User u;
        u.id = Id::natural("user", name);
        u.name = name;
        u.role = role;
        u.created_at = static_cast<std::int64_t>(clock.now_ms());
        store->add_user(u);
        return u.id;
    }

    std::unique_ptr<Device> enroll(const Id& user) {
        auto d = std::make_unique<Device>();
        const std::string code = service->new_enroll_code(user);
        const auto reply = server::reply_of(
            service->enroll("{\"code\":\"" + code + "\",\"public_key\":\"" +
                            to_base64(d->key.public_key) + "\",\"label\":\"Samsung A14\"}"));
        REQUIRE(reply.status == 200);
        const auto pos = reply.body.find("\"replica\":");
        d->replica = std::stoull(reply.body.substr(pos + 10));
        d->user = user;
        d->maker = std::make_unique<crdt::OpMaker>(d->replica, *d->hlc, user);
        return d;
    }

    /// The headers of a request signed by `d` with its last counter (or `counter`).
    std::map<std::string, std::string>
    headers(Device& d, const std::string& body, bool json,
            std::optional<std::uint64_t> counter = std::nullopt) const {
        const std::uint64_t c = counter.value_or(d.request_counter);
        const Signature sig = sign(sync_signing_string("POST", "/v1/sync", c, body), d.key.secret);
        return {{"content-type", json ? k_content_type_json : k_content_type_binary},
                {"x-otsync-replica", std::to_string(d.replica)},
                {"x-otsync-counter", std::to_string(c)},
                {"x-otsync-signature", to_base64(sig)}};
    }

    /// Signs and posts a request; returns the raw reply.
    server::Reply post(Device& d, const std::string& body, bool json,
                       std::optional<std::uint64_t> counter_override = std::nullopt) {
        return server::reply_of(
            service->sync("/v1/sync", headers(d, body, json, counter_override), body));
    }

    SyncRequest request(Device& d, std::vector<Op> ops, std::uint32_t page = 0) {
        SyncRequest r;
        r.replica = d.replica;
        r.request_counter = ++d.request_counter;
        r.cursor = d.cursor;
        r.hlc = d.hlc->now();
        r.page_size = page;
        r.ops = std::move(ops);
        session::sign_ops(r, d.key.secret);
        return r;
    }

    /// One round trip; applies what comes back to the device's replica.
    SyncResponse sync(Device& d, std::vector<Op> ops = {}, bool json = false,
                      std::uint32_t page = 0) {
        const SyncRequest req = request(d, std::move(ops), page);
        const auto reply = post(d, json ? to_json(req) : encode_binary(req), json);
        REQUIRE_MESSAGE(reply.status == 200, reply.body);
        SyncResponse resp =
            json ? sync_response_from_json(reply.body) : decode_sync_response(reply.body);
        for (const auto& s : resp.ops) {
            d.hlc->receive(s.op.hlc);
            d.state.apply(s.op);
        }
        d.hlc->receive(resp.server_hlc);
        d.cursor = resp.cursor;
        return resp;
    }

    /// Pulls until `more` is false.
    void sync_all(Device& d) {
        for (int i = 0; i < 10'000; ++i) {
            if (!sync(d).more) {
                return;
            }
        }
        FAIL("sync never finished");
    }

    /// Back office issues an OT of a case and assigns it; returns the OT id.
    Id issue_ot(const Id& technician, const Id& case_id, std::vector<std::string> expected = {}) {
        const Id ot = Id::random();
        const auto results = service->submit(
            back_office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                std::vector<Op> ops;
                ops.push_back(
                    m.set(EntityType::case_file, case_id, "customer_name", text("Juana Pérez")));
                ops.push_back(m.set(EntityType::case_file, case_id, "fee", Money{20000}));
                ops.push_back(m.set(EntityType::work_order, ot, "case", case_id));
                ops.push_back(m.set(EntityType::work_order, ot, "kind", text("withdraw_boot")));
                ops.push_back(
                    m.set_status(r, EntityType::work_order, ot, "status", text("issued")));
                for (const auto& s : expected) {
                    ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment", text(s)));
                }
                return ops;
            });
        for (const auto& r : results) {
            REQUIRE_MESSAGE(r.status == OpStatus::accepted, r.message);
        }
        assign(ot, technician);
        return ot;
    }

    void assign(const Id& ot, const Id& technician) {
        const auto results = service->submit(
            back_office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                std::vector<Op> ops;
                ops.push_back(m.set(EntityType::work_order, ot, "technician", technician));
                ops.push_back(
                    m.set_status(r, EntityType::work_order, ot, "status", text("assigned")));
                return ops;
            });
        for (const auto& r : results) {
            REQUIRE_MESSAGE(r.status == OpStatus::accepted, r.message);
        }
    }

    TempDir dir;
    FakeClock clock{1'795'000'000'000};
    std::unique_ptr<server::Store> store;
    std::unique_ptr<server::SyncService> service;
    Id back_office;
};

/// What opening a case of `contract` records in the tests: a customer, one product.
inline server::OpenCaseCmd case_opening(int modality, const std::string& contract,
                                        std::optional<std::string> unit = std::nullopt,
                                        const std::string& customer = "X") {
    server::OpenCaseCmd cmd;
    cmd.modality = modality;
    cmd.contract = contract;
    cmd.customer_name = customer;
    cmd.person_type = "natural";
    cmd.tax_id = "1";
    cmd.reference_cell = "7";
    cmd.contact_hours = "8-12";
    cmd.products = {"internet"};
    cmd.old_address = "a";
    cmd.new_address = "b";
    cmd.unit = std::move(unit);
    return cmd;
}

/// The reviewer records a positive technical feasibility.
inline void record_feasible(server::Procedure& p, const server::User& reviewer, const Id& c) {
    server::FeasibilityCmd feasible;
    feasible.feasible = true;
    p.cases().feasibility(reviewer, c, feasible);
}

/// Every Anexo 2 requirement of a natural person's modality 1 or 2 case is met; approved.
inline void meet_and_approve(server::Procedure& p, const server::User& reviewer, const Id& c) {
    server::RequirementsCmd met;
    met.met = {"titular", "ci_vigente", "cuentas_al_dia", "direccion_croquis", "pago_traslado"};
    p.cases().requirements(reviewer, c, met);
    p.cases().approve(reviewer, c, {});
}

/// The office issues the case's OTs to `technician`; returns the first OT.
inline Id issue_to(server::Procedure& p, const server::User& office, const Id& c,
                   const std::string& technician) {
    server::IssueOtsCmd issue;
    issue.technician = technician;
    p.cases().issue_ots(office, c, issue);
    const auto detail = p.cases().case_detail(c);
    REQUIRE(!detail.ots.empty());
    return detail.ots.front().id;
}

} // namespace otsync::test
