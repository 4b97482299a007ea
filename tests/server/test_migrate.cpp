// `otsync-admin migrate --to URL` (tools/admin/otsync_admin.cpp): a SQLite database with real
// content (the demo, a handheld that enrolled and synced, a revoked device, a pending code, a
// session, a fee row set by a person) copied by the real binary into an empty PostgreSQL
// database of the cluster this process starts (tests/pg_cluster.hpp), while the source
// server runs. Then the copy read through the Store matches the source row for row, a
// server on it answers the migrated handheld's next sync where it left off, and migrating
// into a database that is not empty, to something that is not PostgreSQL, or from
// PostgreSQL is refused without writing anything.
#include "../pg_cluster.hpp"
#include "demo.hpp"
#include "server.hpp"
#include "store/postgres_store.hpp"
#include "sync_fixture.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

using namespace otsync;
using namespace otsync::test;

namespace {

constexpr std::int64_t k_now = 1'795'000'000'000;

/// What a run of otsync-admin gave.
struct Run {
    int status = -1;
    std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Runs the real otsync-admin with `args`, its stdout and stderr in files of `dir`.
Run admin(const std::filesystem::path& dir, const std::vector<std::string>& args) {
    const auto out = dir / "admin.out", err = dir / "admin.err";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> argv{OTSYNC_ADMIN_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) {
        raw.push_back(a.data());
    }
    raw.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, raw[0], &fa, nullptr, raw.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

/// The row count migrate's summary gives for `table` ("  ops   378"); -1 when it names none.
long long copied_rows(const std::string& out, const std::string& table) {
    std::istringstream in(out);
    std::string name;
    long long n = -1;
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        if (words >> name >> n && name == table && words.eof()) {
            return n;
        }
        n = -1;
    }
    return -1;
}

std::size_t lines_in(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::unique_ptr<server::Store> open_pg(const std::string& conninfo) {
    server::PostgresOptions o;
    o.conninfo = conninfo;
    return server::open_postgres_store(o);
}

// ---- a handheld on a server in process (as sync_fixture.hpp's, on a Server's service) ----

std::unique_ptr<Device> enroll(server::SyncService& sync, const Id& user, const std::string& code) {
    auto d = std::make_unique<Device>();
    const auto reply = server::reply_of(sync.enroll("{\"code\":\"" + code + "\",\"public_key\":\"" +
                                                    to_base64(d->key.public_key) +
                                                    "\",\"label\":\"Samsung A14\"}"));
    REQUIRE_MESSAGE(reply.status == 200, reply.body);
    d->replica = std::stoull(reply.body.substr(reply.body.find("\"replica\":") + 10));
    d->user = user;
    d->maker = std::make_unique<crdt::OpMaker>(d->replica, *d->hlc, user);
    return d;
}

/// Posts `body` signed with request counter `counter`; the raw reply.
server::Reply post(server::SyncService& sync, Device& d, const std::string& body,
                   std::uint64_t counter) {
    const Signature sig =
        sign(sync_signing_string("POST", "/v1/sync", counter, body), d.key.secret);
    const std::map<std::string, std::string> h{{"content-type", k_content_type_binary},
                                               {"x-otsync-replica", std::to_string(d.replica)},
                                               {"x-otsync-counter", std::to_string(counter)},
                                               {"x-otsync-signature", to_base64(sig)}};
    return server::reply_of(sync.sync("/v1/sync", h, body));
}

/// One round trip with the next counter and the device's cursor; applies what comes back.
SyncResponse sync_once(server::SyncService& sync, Device& d, std::vector<Op> ops = {}) {
    SyncRequest r;
    r.replica = d.replica;
    r.request_counter = ++d.request_counter;
    r.cursor = d.cursor;
    r.hlc = d.hlc->now();
    r.ops = std::move(ops);
    session::sign_ops(r, d.key.secret);
    const auto reply = post(sync, d, encode_binary(r), r.request_counter);
    REQUIRE_MESSAGE(reply.status == 200, reply.body);
    SyncResponse resp = decode_sync_response(reply.body);
    for (const auto& s : resp.ops) {
        d.hlc->receive(s.op.hlc);
        d.state.apply(s.op);
    }
    d.hlc->receive(resp.server_hlc);
    d.cursor = resp.cursor;
    return resp;
}

/// A note from the technician on an OT the handheld holds.
Op note_on_ot(Device& d, const std::string& note) {
    const auto ots = d.state.entities(EntityType::work_order);
    REQUIRE(!ots.empty());
    Op op = d.maker->event(EntityType::work_order, ots.front(), "missing_reasons", text(note));
    d.state.apply(op);
    return op;
}

// ---- what a store holds, read through the Store interface ----

struct Snapshot {
    std::vector<server::StoredOp> ops;
    std::uint64_t op_count = 0, last_seq = 0;
    std::vector<server::User> users;
    std::vector<server::Device> devices;
    std::map<Id, std::vector<server::FeedRow>> feeds; // every user's
    std::optional<std::pair<PublicKey, std::vector<std::uint8_t>>> server_key;
    std::vector<server::FeeRecord> fees;
    std::size_t projections = 0;
    std::uint64_t inventory = 0;
};

Snapshot snapshot(server::Store& s) {
    Snapshot x;
    x.ops = s.ops_after(0, 0);
    x.op_count = s.op_count();
    x.last_seq = s.last_seq();
    x.users = s.users();
    x.devices = s.devices();
    for (const auto& u : x.users) {
        x.feeds[u.id] = s.feed_after(u.id, 0, 1'000'000);
    }
    x.server_key = s.server_key();
    x.fees = s.fee_records();
    x.projections = s.projections().size();
    x.inventory = s.inventory_count();
    return x;
}

void check_same(const Snapshot& a, const Snapshot& b) {
    CHECK(a.op_count == b.op_count);
    CHECK(a.last_seq == b.last_seq);
    REQUIRE(a.ops.size() == b.ops.size());
    for (std::size_t i = 0; i < a.ops.size(); ++i) {
        CAPTURE(i);
        CHECK(a.ops[i].seq == b.ops[i].seq);
        CHECK(encode_binary(std::span<const Op>(&a.ops[i].op, 1)) ==
              encode_binary(std::span<const Op>(&b.ops[i].op, 1)));
        CHECK(a.ops[i].received_at == b.ops[i].received_at);
        CHECK(a.ops[i].skew_ms == b.ops[i].skew_ms);
        CHECK(a.ops[i].flagged == b.ops[i].flagged);
    }
    REQUIRE(a.users.size() == b.users.size());
    for (std::size_t i = 0; i < a.users.size(); ++i) {
        const auto &u = a.users[i], &v = b.users[i];
        CHECK(u.id == v.id);
        CHECK(u.name == v.name);
        CHECK(u.role == v.role);
        CHECK(u.disabled == v.disabled);
        CHECK(u.created_at == v.created_at);
        CHECK(u.password_hash == v.password_hash);
        CHECK(u.full_name == v.full_name);
        CHECK(u.unit == v.unit);
    }
    REQUIRE(a.devices.size() == b.devices.size());
    for (std::size_t i = 0; i < a.devices.size(); ++i) {
        const auto &d = a.devices[i], &e = b.devices[i];
        CHECK(d.replica == e.replica);
        CHECK(d.user == e.user);
        CHECK(d.public_key == e.public_key);
        CHECK(d.label == e.label);
        CHECK(d.status == e.status);
        CHECK(d.last_counter == e.last_counter);
        CHECK(d.cursor == e.cursor);
        CHECK(d.last_seen == e.last_seen);
        CHECK(d.enrolled_at == e.enrolled_at);
        CHECK(d.revoked_at == e.revoked_at);
    }
    REQUIRE(a.feeds.size() == b.feeds.size());
    for (const auto& [user, rows] : a.feeds) {
        const auto& other = b.feeds.at(user);
        REQUIRE(rows.size() == other.size());
        for (std::size_t i = 0; i < rows.size(); ++i) {
            CHECK(rows[i].fseq == other[i].fseq);
            CHECK(rows[i].op_seq == other[i].op_seq);
            CHECK(rows[i].op_replica == other[i].op_replica);
            CHECK(rows[i].evict == other[i].evict);
            CHECK(rows[i].history == other[i].history);
        }
    }
    REQUIRE(a.server_key);
    REQUIRE(b.server_key);
    CHECK(a.server_key->first == b.server_key->first);
    CHECK(a.server_key->second == b.server_key->second);
    REQUIRE(a.fees.size() == b.fees.size());
    for (std::size_t i = 0; i < a.fees.size(); ++i) {
        CHECK(a.fees[i].product == b.fees[i].product);
        CHECK(a.fees[i].effective_from == b.fees[i].effective_from);
        CHECK(a.fees[i].centavos == b.fees[i].centavos);
        CHECK(a.fees[i].set_by == b.fees[i].set_by);
        CHECK(a.fees[i].set_at == b.fees[i].set_at);
    }
    CHECK(a.projections == b.projections);
    CHECK(a.inventory == b.inventory);
}

server::ServerConfig config_in(const std::filesystem::path& dir) {
    server::ServerConfig cfg;
    cfg.data_dir = dir;
    cfg.auth.pwhash_opslimit = 1; // libsodium's MIN cost: tests only
    cfg.auth.pwhash_memlimit = 8192;
    return cfg;
}

} // namespace

TEST_CASE("migrate copies a running server's SQLite database into an empty PostgreSQL one, "
          "and a server on the copy carries on with the migrated handheld") {
    ::unsetenv("OTSYNC_STORE"); // the source is named by --data-dir alone
    ::unsetenv("OTSYNC_DATA_DIR");
    TempDir dir("otsync-migrate-");
    const std::string pg = fresh_pg_database();
    FakeClock clock{static_cast<std::uint64_t>(k_now)};
    server::Server source(config_in(dir.path), clock);
    REQUIRE(server::seed_demo(source).seeded);
    server::Store& src = source.store();

    // A handheld of tec.mamani enrolls and syncs: it pulls its OTs and pushes a note.
    const auto tech = src.user_by_name("tec.mamani");
    REQUIRE(tech);
    auto handheld = enroll(source.sync(), tech->id, source.sync().new_enroll_code(tech->id));
    sync_once(source.sync(), *handheld);
    while (sync_once(source.sync(), *handheld).more) {
    }
    const auto pushed =
        sync_once(source.sync(), *handheld, {note_on_ot(*handheld, "cliente ausente")});
    REQUIRE(pushed.results.size() == 1);
    REQUIRE(pushed.results[0].status == OpStatus::accepted);
    REQUIRE(handheld->cursor > 0);
    // More of what a live database holds: a revoked device, a code not used yet, a web
    // session, a price set by a person.
    const auto quispe = src.user_by_name("tec.quispe");
    REQUIRE(quispe);
    std::uint64_t quispe_device = 0;
    for (const auto& d : src.devices()) {
        quispe_device = d.user == quispe->id ? d.replica : quispe_device;
    }
    REQUIRE(src.revoke_device(quispe_device));
    const std::string pending_code = source.sync().new_enroll_code(tech->id);
    const Hash256 token = blake2b_256("a session token");
    src.add_session({token, src.user_by_name("bo.demo")->id, k_now, k_now + 3'600'000});
    src.put_fee_record(
        {"internet", k_now - 86'400'000, 25000, src.user_by_name("bo.demo")->id, k_now});
    const Snapshot before = snapshot(src);
    REQUIRE(before.op_count > 10);
    REQUIRE(before.devices.size() == 3);

    // The server keeps running (its SQLite file open) while otsync-admin copies.
    const Run run = admin(dir.path, {"--data-dir", dir.path.string(), "migrate", "--to", pg});
    INFO("stdout: " << run.out);
    INFO("stderr: " << run.err);
    REQUIRE(run.status == 0);
    CHECK(run.out.find("verified: equal") != std::string::npos);
    CHECK(copied_rows(run.out, "ops") == static_cast<long long>(before.op_count));
    CHECK(copied_rows(run.out, "devices") == 3);
    CHECK(run.err.empty());

    auto copy = open_pg(pg);
    const Snapshot after = snapshot(*copy);
    check_same(before, after);
    CHECK(copy->session(token));
    CHECK(copy->tables_with_rows() == src.tables_with_rows());
    CHECK(copy->tables_with_rows().size() >= 12); // every table of the demo and the handheld

    SUBCASE("migrating into the copy again is refused and changes nothing") {
        const Run again = admin(dir.path, {"--data-dir", dir.path.string(), "migrate", "--to", pg});
        CHECK(again.status != 0);
        CHECK(lines_in(again.err) == 1);
        CHECK(again.err.find("not empty") != std::string::npos);
        CHECK(again.out.empty());
        check_same(after, snapshot(*open_pg(pg)));
    }

    SUBCASE("a destination that is not PostgreSQL, or a PostgreSQL source, is refused") {
        const auto file = dir.path / "other.db";
        const Run sqlite_to =
            admin(dir.path, {"--data-dir", dir.path.string(), "migrate", "--to", file.string()});
        CHECK(sqlite_to.status != 0);
        CHECK(lines_in(sqlite_to.err) == 1);
        CHECK(sqlite_to.err.find("PostgreSQL") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(file));

        const std::string empty = fresh_pg_database();
        const Run from_pg = admin(dir.path, {"--store", pg, "migrate", "--to", empty});
        CHECK(from_pg.status != 0);
        CHECK(lines_in(from_pg.err) == 1);
        CHECK(from_pg.err.find("SQLite") != std::string::npos);
        CHECK(open_pg(empty)->tables_with_rows().empty());
    }

    SUBCASE("a server on the copy answers the handheld's next sync where it left off") {
        copy.reset();
        server::ServerConfig cfg = config_in(dir.path);
        cfg.store_url = pg;
        server::Server moved(cfg, clock);
        // The server key the handheld pinned at enrollment.
        CHECK(moved.sync().server_public_key() == source.sync().server_public_key());

        const std::uint64_t cursor = handheld->cursor;
        const std::uint64_t last_counter = handheld->request_counter;
        const Op note = note_on_ot(*handheld, "vuelve mañana");
        const auto resp = sync_once(moved.sync(), *handheld, {note});
        REQUIRE(resp.results.size() == 1);
        CHECK(resp.results[0].status == OpStatus::accepted);
        // Nothing it already holds comes again: its own op is not echoed, old ops not replayed.
        for (const auto& s : resp.ops) {
            CHECK(s.seq > before.last_seq);
        }
        CHECK(resp.cursor >= cursor);
        CHECK(resp.remaining == 0);
        // Signed with the same key; the op continues the log's sequence.
        Signature sig{};
        REQUIRE(resp.receipt.size() == 64);
        std::copy(resp.receipt.begin(), resp.receipt.end(), sig.begin());
        const std::vector<OpId> ids{note.id};
        CHECK(verify(sig, receipt_message(handheld->replica, handheld->request_counter, ids),
                     source.sync().server_public_key()));
        CHECK(moved.store().last_seq() == before.last_seq + 1);
        const auto stored = moved.store().ops_after(before.last_seq, 0);
        REQUIRE(stored.size() == 1);
        CHECK(stored[0].op == note);

        // The replay guard came along: a counter the source saw is refused.
        SyncRequest replayed;
        replayed.replica = handheld->replica;
        replayed.request_counter = last_counter;
        replayed.cursor = handheld->cursor;
        replayed.hlc = handheld->hlc->now();
        CHECK(post(moved.sync(), *handheld, encode_binary(replayed), last_counter).status == 409);

        // The code issued before the move enrolls a device numbered above every copied one.
        const auto fresh = enroll(moved.sync(), tech->id, pending_code);
        for (const auto& d : before.devices) {
            CHECK(fresh->replica > d.replica);
        }
        // The revoked device stays revoked.
        CHECK(moved.store().device(quispe_device)->status == server::DeviceStatus::revoked);
    }
}
