// Field facts recorded on the handheld are never lost, misattributed or altered: every
// refusal of a sync keeps the device's work (only a proven revocation wipes it), one
// database has one handle, a handle serves several threads, field dates follow the
// server-aligned clock, the signed Anexo 4 is frozen, and bad input is refused.
#include "client_fixture.hpp"

#include "otsync/codec.hpp"
#include "otsync/crypto.hpp"

#include <atomic>

using namespace otsync;
using namespace otsync::client;
using namespace otsync::client::testing;

namespace {

/// Forwards to another transport after taking the X-Otsync-* headers off, as a
/// misconfigured reverse proxy does.
class StrippingProxy : public ForwardingTransport {
public:
    using ForwardingTransport::ForwardingTransport;
    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        std::map<std::string, std::string> kept;
        for (const auto& [k, v] : headers) {
            if (k.rfind("x-otsync-", 0) != 0) {
                kept.emplace(k, v);
            }
        }
        return ForwardingTransport::post(path, kept, body);
    }
};

/// Answers every request with a fixed reply, as a hostile or broken middlebox could.
class FixedReply : public Transport {
public:
    explicit FixedReply(HttpReply reply) : m_reply(std::move(reply)) {}
    HttpReply post(const std::string&, const std::map<std::string, std::string>&,
                   const std::string&) override {
        return m_reply;
    }

private:
    HttpReply m_reply;
};

int sync_error(Client& c, Transport& t) {
    try {
        c.sync(t);
    } catch (const ClientError& e) {
        return e.code();
    }
    return OTSYNC_OK;
}

int error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ClientError& e) {
        return e.code();
    }
    return OTSYNC_OK;
}

/// A technician's device with one OT on site and two rows recorded offline (unsent).
struct FieldDay {
    explicit FieldDay(Server& server, const std::string& name, const std::string& prefix)
        : s(server), tech(s.add_user(name, Role::technician)), ot(s.issue(tech, 1, prefix)[0]),
          loop(*s.app),
          c((dev.path / "device.db").string(), key_of(5)), serials{prefix + "0-0", prefix + "0-1"} {
        c.enroll(loop, "http://loopback", s.code(tech), "Samsung A14");
        c.sync(loop);
        c.set_status(ot.hex(), "on_site", "");
        c.collect(ot.hex(), prefix + "0-0", "ONT", "migration", "", "");
        c.collect(ot.hex(), prefix + "0-1", "Fuente", "damaged", "no enciende", "");
        unsent = c.pending();
    }
    bool server_has_rows() {
        bool both = true;
        s.sync->read_state([&](const crdt::Replica& st) {
            for (const auto& serial : serials) {
                both = both && st.entity(EntityType::collected_item,
                                         Id::collected_item(ot, serial)) != nullptr;
            }
        });
        return both;
    }
    Server& s;
    Id tech;
    Id ot;
    LoopbackTransport loop;
    TempDir dev;
    Client c;
    std::size_t unsent = 0;
    std::vector<std::string> serials;
};

} // namespace

TEST_CASE("a proxy that strips the signature headers: refused, nothing lost, delivered later") {
    Server s;
    FieldDay d(s, "tec.proxy", "PRX");
    StrippingProxy proxy(d.loop);
    CHECK(sync_error(d.c, proxy) == OTSYNC_ERR_UNAUTHENTICATED);
    CHECK(d.c.enrolled());
    CHECK(d.c.pending() == d.unsent);
    CHECK(d.c.show_ot_json(d.ot.hex()).find("PRX0-1") != std::string::npos);
    CHECK(d.c.status_json().find("proxy") != std::string::npos); // told what to do
    CHECK_FALSE(d.server_has_rows());
    d.c.sync(d.loop);
    CHECK(d.c.pending() == 0);
    CHECK(d.server_has_rows());
}

TEST_CASE("a disabled user's device keeps its work and delivers it once enabled") {
    Server s;
    FieldDay d(s, "tec.pausa", "DIS");
    s.store->set_user_disabled(d.tech, true);
    CHECK(sync_error(d.c, d.loop) == OTSYNC_ERR_USER_DISABLED);
    CHECK(d.c.enrolled());
    CHECK(d.c.pending() == d.unsent);
    CHECK(d.c.status_json().find("deshabilitado") != std::string::npos);
    s.store->set_user_disabled(d.tech, false);
    d.c.sync(d.loop);
    CHECK(d.c.pending() == 0);
    CHECK(d.server_has_rows());
}

TEST_CASE("a server restored from a backup before enrollment: re-enroll, every unsent op once") {
    Server s;
    const Id tech = s.add_user("tec.copia", Role::technician);
    const Id ot = s.issue(tech, 1, "BAK")[0];
    const auto backup = (s.dir.path / "backup.db").string();
    s.store->backup_to(backup); // before the device enrolls

    TempDir dev;
    LoopbackTransport t(*s.app);
    Client c((dev.path / "device.db").string(), key_of(6));
    c.enroll(t, "http://loopback", s.code(tech), "Moto G");
    c.sync(t);
    c.set_status(ot.hex(), "on_site", "");
    c.collect(ot.hex(), "BAK0-0", "ONT", "migration", "", "");
    c.collect(ot.hex(), "BAK0-3", "Control", "migration", "", "");
    const std::size_t unsent = c.pending();
    REQUIRE(unsent > 0);

    // The server's machine is lost; the operator restores the backup.
    s.app = nullptr;
    s.sync = nullptr;
    s.store = nullptr;
    s.root.reset();
    Server restored(backup);
    LoopbackTransport rt(*restored.app);
    const auto ops_before = restored.store->op_count();
    CHECK(sync_error(c, rt) == OTSYNC_ERR_UNKNOWN_DEVICE);
    CHECK(c.enrolled());
    CHECK(c.pending() == unsent);
    CHECK(c.show_ot_json(ot.hex()).find("BAK0-3") != std::string::npos);

    c.enroll(rt, "http://loopback", restored.code(tech), "Moto G");
    c.sync(rt);
    CHECK(c.pending() == 0);
    CHECK(restored.store->op_count() == ops_before + unsent); // each op once
    restored.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entity(EntityType::collected_item, Id::collected_item(ot, "BAK0-0")));
        CHECK(st.entity(EntityType::collected_item, Id::collected_item(ot, "BAK0-3")));
        CHECK(std::get<std::string>(*st.get(EntityType::work_order, ot, "status")) == "on_site");
    });
    check_equal_scope(restored, c);
}

TEST_CASE("a forged or unsigned revocation wipes nothing; the server's signed one wipes") {
    Server s;
    FieldDay d(s, "tec.revoca", "REV");
    const std::string replica = std::to_string(d.c.replica());
    const std::string error =
        R"({"error":{"code":"device_revoked","message":"this device has been revoked"})";
    FixedReply unsigned_answer({401, error + "}"});
    CHECK(sync_error(d.c, unsigned_answer) == OTSYNC_ERR_DEVICE_REVOKED);

    // Signed, but by a key that is not the server's.
    const auto mallory = SigningKeyPair::generate();
    const Signature forged = otsync::sign(revocation_message(d.c.replica(), 1), mallory.secret);
    FixedReply forged_answer({401, error + R"(,"revocation":{"replica":)" + replica +
                                       R"(,"revoked_at":1,"signature":")" + to_base64(forged) +
                                       "\"}}"});
    CHECK(sync_error(d.c, forged_answer) == OTSYNC_ERR_DEVICE_REVOKED);
    // The server's signature, but for another replica.
    const Signature other =
        s.sync->sign(revocation_message(d.c.replica() + 1, 1)); // a real key, wrong device
    FixedReply other_answer({401, error + R"(,"revocation":{"replica":)" + replica +
                                      R"(,"revoked_at":1,"signature":")" + to_base64(other) +
                                      "\"}}"});
    CHECK(sync_error(d.c, other_answer) == OTSYNC_ERR_DEVICE_REVOKED);
    CHECK(d.c.enrolled());
    CHECK(d.c.pending() == d.unsent);
    CHECK(d.c.show_ot_json(d.ot.hex()).find("REV0-1") != std::string::npos);

    d.c.sync(d.loop); // still delivers
    CHECK(d.server_has_rows());
    REQUIRE(s.store->revoke_device(d.c.replica()));
    CHECK(sync_error(d.c, d.loop) == OTSYNC_ERR_REVOKED);
    CHECK_FALSE(d.c.enrolled());
    CHECK(d.c.state().entity_count() == 0);
}

TEST_CASE("one database, one handle: a second open is refused with busy") {
    TempDir dev;
    const auto path = (dev.path / "device.db").string();
    {
        Client a(path, key_of(1));
        CHECK(error_of([&] { Client b(path, key_of(1)); }) == OTSYNC_ERR_BUSY);
        otsync_error err{};
        otsync_client_t* c = otsync_client_open(path.c_str(), key_of(1).data(), &err);
        CHECK(c == nullptr);
        CHECK(err.code == OTSYNC_ERR_BUSY);
    }
    Client again(path, key_of(1)); // the lock goes with the handle
    CHECK_FALSE(again.enrolled());
}

TEST_CASE("one handle, three threads: a reader, a writer and a sync") {
    Server s;
    const Id tech = s.add_user("tec.hilos", Role::technician);
    const auto ots = s.issue(tech, 4, "THR");
    TempDir dev;
    LoopbackTransport t(*s.app, 11, 5);
    Client c((dev.path / "device.db").string(), key_of(4));
    c.set_retry_policy(fast_retries());
    c.enroll(t, "http://loopback", s.code(tech), "x");
    sync_until_done(c, t);
    for (const auto& ot : ots) {
        c.set_status(ot.hex(), "on_site", "");
    }
    std::atomic<bool> writing{true};
    std::atomic<int> failures{0};
    std::string first_failure;
    std::mutex failure_mutex;
    const auto fail = [&](const std::string& what) {
        std::lock_guard lock(failure_mutex);
        if (failures++ == 0) {
            first_failure = what;
        }
    };
    std::thread writer([&] {
        try {
            for (int i = 0; i < 120; ++i) {
                c.collect(ots[static_cast<std::size_t>(i % 4)].hex(),
                          "THR-EXTRA-" + std::to_string(i), "", "migration", "", "");
            }
        } catch (const std::exception& e) {
            fail(std::string("writer: ") + e.what());
        }
        writing = false;
    });
    std::thread reader([&] {
        try {
            while (writing) {
                (void)c.list_ots_json("on_site");
                (void)c.show_ot_json(ots[0].hex());
                (void)c.status_json();
                (void)c.pending();
            }
        } catch (const std::exception& e) {
            fail(std::string("reader: ") + e.what());
        }
    });
    std::thread syncer([&] {
        while (writing) {
            try {
                c.sync(t);
            } catch (const ClientError& e) {
                if (e.code() != OTSYNC_ERR_NETWORK) { // the faulty link may give up
                    fail(std::string("sync: ") + e.what());
                }
            }
        }
    });
    writer.join();
    reader.join();
    syncer.join();
    CHECK_MESSAGE(failures == 0, first_failure);
    sync_until_done(c, t);
    s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entities(EntityType::collected_item).size() == 120);
    });
    check_equal_scope(s, c);
}

TEST_CASE("field dates come from the server-aligned clock, not the phone's raw one") {
    // The server's clock is 30 days behind the phone's (a phone set a month ahead).
    constexpr std::int64_t month = 30ll * 24 * 3600 * 1000;
    Server s({}, -month);
    const Id tech = s.add_user("tec.reloj", Role::technician);
    const Id ot = s.issue(tech, 1, "DAT")[0];
    TempDir dev;
    LoopbackTransport t(*s.app);
    Client c((dev.path / "device.db").string(), key_of(3));
    c.enroll(t, "http://loopback", s.code(tech), "x");
    c.sync(t); // learns the server's time
    c.set_status(ot.hex(), "on_site", "");
    c.collect(ot.hex(), "DAT0-0", "", "migration", "", "");
    for (const char* serial : {"DAT0-1", "DAT0-2", "DAT0-3"}) {
        c.report_missing(ot.hex(), serial, "el cliente no lo tiene");
    }
    c.sign(ot.hex(), reinterpret_cast<const std::uint8_t*>(tiny_png().data()), tiny_png().size());
    c.set_status(ot.hex(), "completed", "");
    const Id h = Id::from_hex(c.create_handover("Cercado"));
    const auto server_now = static_cast<std::int64_t>(s.clock.now_ms());
    const auto near_server = [&](const Value* v) {
        REQUIRE(v);
        REQUIRE(std::holds_alternative<Timestamp>(*v));
        return std::llabs(std::get<Timestamp>(*v).ms - server_now) < 3600 * 1000;
    };
    CHECK(near_server(c.state().get(EntityType::collected_item, Id::collected_item(ot, "DAT0-0"),
                                    "collected_at")));
    CHECK(near_server(c.state().get(EntityType::work_order, ot, "completed_at")));
    CHECK(near_server(c.state().get(EntityType::handover, h, "date")));
    c.sync(t);
    CHECK(c.pending() == 0);
}

TEST_CASE("the signed Anexo 4 is frozen; changing it needs a reopened signature with a reason") {
    Server s;
    FieldDay d(s, "tec.firma", "SIG");
    const std::string ot = d.ot.hex();
    const auto* png = reinterpret_cast<const std::uint8_t*>(tiny_png().data());
    // Completion needs the signature and every expected serial accounted for.
    CHECK(error_of([&] { d.c.set_status(ot, "completed", ""); }) ==
          OTSYNC_ERR_REQUIREMENTS_INCOMPLETE);
    d.c.report_missing(ot, "SIG0-2", "el cliente se quedó con el control");
    d.c.report_missing(ot, "SIG0-3", "extraviado");
    CHECK(error_of([&] { d.c.set_status(ot, "completed", ""); }) ==
          OTSYNC_ERR_REQUIREMENTS_INCOMPLETE); // no signature yet
    d.c.sign(ot, png, tiny_png().size());
    const Value* hash = d.c.state().get(EntityType::work_order, d.ot, "signed_rows_hash");
    REQUIRE(hash);
    const Value signed_hash = *hash;
    CHECK(error_of([&] { d.c.collect(ot, "SIG-NEW", "", "migration", "", ""); }) ==
          OTSYNC_ERR_SIGNED_ROWS);
    CHECK(error_of([&] { d.c.void_item(ot, "SIG0-0"); }) == OTSYNC_ERR_SIGNED_ROWS);
    CHECK(error_of([&] { d.c.sign(ot, png, tiny_png().size()); }) == OTSYNC_ERR_SIGNED_ROWS);
    CHECK(*d.c.state().get(EntityType::work_order, d.ot, "signed_rows_hash") == signed_hash);

    // The customer asks to add a forgotten adapter: reopen, saying why, then sign again.
    CHECK(error_of([&] { d.c.reopen_signature(ot, " "); }) == OTSYNC_ERR_MISSING_FIELD);
    d.c.reopen_signature(ot, "el cliente entregó además el adaptador");
    d.c.collect(ot, "SIG-ADAPT", "Adaptador", "migration", "", "");
    d.c.sign(ot, png, tiny_png().size());
    CHECK_FALSE(*d.c.state().get(EntityType::work_order, d.ot, "signed_rows_hash") == signed_hash);
    const std::string shown = d.c.show_ot_json(ot);
    CHECK(shown.find("Firma reabierta: el cliente entregó además el adaptador") !=
          std::string::npos); // the history stays
    d.c.set_status(ot, "completed", "");
    CHECK(error_of([&] { d.c.collect(ot, "SIG-LATE", "", "migration", "", ""); }) != OTSYNC_OK);
    d.c.sync(d.loop);
    CHECK(d.c.pending() == 0);
    CHECK(d.c.status_json().find("\"rejections\":[]") != std::string::npos);
}

TEST_CASE("input the handheld refuses, each with its code") {
    Server s;
    const Id tech = s.add_user("tec.datos", Role::technician);
    const Id ot = s.issue(tech, 1, "INP")[0];
    TempDir dev;
    LoopbackTransport t(*s.app);
    Client c((dev.path / "device.db").string(), key_of(2));
    c.enroll(t, "http://loopback", s.code(tech), "x");
    c.sync(t);
    const std::string o = ot.hex();
    // Not on site yet.
    CHECK(error_of([&] { c.collect(o, "INP0-0", "", "migration", "", ""); }) ==
          OTSYNC_ERR_INVALID_TRANSITION);
    c.set_status(o, "on_site", "");
    CHECK(error_of([&] { c.collect(o, "AB\nCD\t1", "", "migration", "", ""); }) ==
          OTSYNC_ERR_INVALID_VALUE);
    const std::string hello = "hello world";
    CHECK(error_of([&] {
              c.sign(o, reinterpret_cast<const std::uint8_t*>(hello.data()), hello.size());
          }) == OTSYNC_ERR_INVALID_VALUE);
    CHECK(error_of([&] { (void)c.list_ots_json("flying"); }) == OTSYNC_ERR_INVALID_VALUE);
    CHECK(error_of([&] { (void)c.list_ots_json("", 2000, 1000); }) == OTSYNC_ERR_INVALID_ARGUMENT);
    CHECK(error_of([&] { (void)c.list_ots_json("", -5, 0); }) == OTSYNC_ERR_INVALID_ARGUMENT);
    // Equipment the customer carried is verified in modalities 2 and 3 only.
    const Id kase = std::get<Id>(*c.state().get(EntityType::work_order, ot, "case"));
    s.sync->submit(s.office, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
        return std::vector<Op>{m.set(EntityType::case_file, kase, "modality", std::int64_t{4})};
    });
    c.sync(t);
    CHECK(error_of([&] { (void)c.verify(o, "INP0-1"); }) == OTSYNC_ERR_INVALID_VALUE);
    CHECK(c.pending() == 0); // only the status change was recorded, and it was sent
}

namespace {

/// Runs `hook` once, just before the n-th request goes through.
class HookTransport : public Transport {
public:
    HookTransport(Transport& next, int n, std::function<void()> hook)
        : m_next(next), m_n(n), m_hook(std::move(hook)) {}
    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        if (++m_count == m_n) {
            m_hook();
        }
        return m_next.post(path, headers, body);
    }

private:
    Transport& m_next;
    int m_n;
    std::function<void()> m_hook;
    int m_count = 0;
};

} // namespace

TEST_CASE("an OT reassigned away and back during one long sync stays on the device") {
    Server s;
    const Id a = s.add_user("tec.ida", Role::technician);
    const Id b = s.add_user("tec.vuelta", Role::technician);
    const Id ot = s.issue(a, 1, "BCK")[0];
    TempDir dev;
    LoopbackTransport loop(*s.app);
    Client c((dev.path / "device.db").string(), key_of(8));
    c.enroll(loop, "http://loopback", s.code(a), "x");
    c.sync(loop);
    c.set_status(ot.hex(), "on_site", "");
    for (int i = 0; i < 90; ++i) { // more than one request's worth of ops
        c.collect(ot.hex(), "BCK-X" + std::to_string(i), "", "migration", "", "");
    }
    for (int k = 0; k < 4; ++k) { // ops on the OT itself, at the end of the outbox
        c.report_missing(ot.hex(), "BCK0-" + std::to_string(k), "el cliente no lo tiene");
    }
    REQUIRE(c.pending() > 500);
    // The office gives the OT to another technician, and back while the device syncs: the
    // first answer evicts the OT (held while its ops are pending), the second brings it back.
    s.reassign(ot, b);
    HookTransport back(loop, 2, [&] { s.reassign(ot, a); });
    c.sync(back);
    CHECK(c.pending() == 0);
    CHECK(c.list_ots_json("").find(ot.hex()) != std::string::npos);
    CHECK(c.show_ot_json(ot.hex()).find("BCK-X89") != std::string::npos);
    // Every row reached the server as recorded. The arrival on site, sent while the OT was
    // the other technician's, was kept for the office rather than applied (protocol.md
    // §3.6): the rows recorded after it still count as recorded on site.
    s.sync->read_state([&](const crdt::Replica& st) {
        for (const Id& item : c.state().entities(EntityType::collected_item)) {
            CHECK(entity_json(c.state(), EntityType::collected_item, item, true) ==
                  entity_json(st, EntityType::collected_item, item, true));
        }
        CHECK(st.entities(EntityType::collected_item).size() == 90);
        const auto* kept = st.log(EntityType::work_order, ot, "flagged_writes");
        REQUIRE(kept);
        CHECK(kept->events.size() == 1);
    });
    CHECK(c.status_json().find("\"rejections\":[]") != std::string::npos);
}
