// The Store contract (server/store/store.hpp), backend by backend: every case runs once per
// backend in its own subcase on a fresh folder, so a new backend passes the very same tests.
// Users, sessions, the fee table, inventory, enrollment and devices, the op log, feeds,
// projections, transactions, the server key, backups, and the all-or-nothing group commit.
#include "../pg_cluster.hpp"
#include "../temp_dir.hpp"
#include "store/postgres_store.hpp"
#include "store/store.hpp"

#include "otsync/crdt.hpp"
#include "otsync/crypto.hpp"
#include "otsync/error.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace otsync;
using namespace otsync::server;

namespace {

// ---- the backends -----------------------------------------------------------------------

struct Backend {
    const char* name;
    /// Opens the database that belongs to `dir`: a new, empty one on the first call for a
    /// fresh folder, the same database again on a later call (a second process beside the
    /// server, as otsync-admin is).
    std::function<std::unique_ptr<Store>(const std::filesystem::path& dir)> open;
    /// Where backup_to writes a copy so that open(dir) then opens the copy.
    std::function<std::filesystem::path(const std::filesystem::path& dir)> file_in;
};

/// Every implementation of Store; each case below runs once for each. The PostgreSQL backend
/// joins this list.
const std::vector<Backend>& backends() {
    static const std::vector<Backend> list{
        {"sqlite",
         [](const std::filesystem::path& dir) {
             SqliteOptions o;
             o.path = (dir / "otsync.db").string();
             o.synchronous_full = false; // crash safety is test_durability's; speed here
             return open_sqlite_store(o);
         },
         [](const std::filesystem::path& dir) { return dir / "otsync.db"; }},
        // On the test process's own PostgreSQL 15 cluster (tests/pg_cluster.hpp): a fresh
        // database for each folder, the same one when the folder is opened again. Its
        // backups are pg_dump's (backup_to throws): no file_in.
        {"postgres",
         [](const std::filesystem::path& dir) {
             static std::mutex m;
             static std::map<std::filesystem::path, std::string> databases;
             std::string conninfo;
             {
                 std::lock_guard lock(m);
                 auto [it, fresh] = databases.try_emplace(dir);
                 if (fresh) {
                     it->second = test::fresh_pg_database();
                 }
                 conninfo = it->second;
             }
             PostgresOptions o;
             o.conninfo = conninfo;
             return open_postgres_store(o);
         },
         nullptr},
    };
    return list;
}

/// What a case gets: its backend, its folder and the store opened on it.
struct Env {
    const Backend& backend;
    std::filesystem::path dir;
    Store& store;
    /// A second store on the same database (another process).
    std::unique_ptr<Store> open_again() const { return backend.open(dir); }
};

/// Runs `body` once per backend, each in its own subcase on a fresh folder and store.
template <class F>
void for_each_backend(F&& body) {
    for (const Backend& b : backends()) {
        SUBCASE(b.name) {
            test::TempDir dir("otsync-store-");
            const auto store = b.open(dir.path);
            REQUIRE(store);
            body(Env{b, dir.path, *store});
        }
    }
}

// ---- data -------------------------------------------------------------------------------

constexpr std::int64_t k_now = 1'795'000'000'000;
constexpr std::int64_t k_hour = 3'600'000;

User user_named(const std::string& name, Role role = Role::technician) {
    User u;
    u.id = Id::natural("user", name);
    u.name = name;
    u.role = role;
    u.created_at = k_now;
    u.password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$" + name;
    u.full_name = "Nombre de " + name;
    u.unit = "Cochabamba";
    return u;
}

Id add_user(Store& s, const std::string& name, Role role = Role::technician) {
    const User u = user_named(name, role);
    s.add_user(u);
    return u.id;
}

void check_same_user(const User& a, const User& b) {
    CHECK(a.id == b.id);
    CHECK(a.name == b.name);
    CHECK(a.role == b.role);
    CHECK(a.disabled == b.disabled);
    CHECK(a.created_at == b.created_at);
    CHECK(a.password_hash == b.password_hash);
    CHECK(a.full_name == b.full_name);
    CHECK(a.unit == b.unit);
}

std::vector<std::string> names_of(const std::vector<User>& users) {
    std::vector<std::string> out;
    for (const auto& u : users) {
        out.push_back(u.name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

PublicKey key_of(std::uint8_t b) {
    PublicKey k{};
    k.fill(b);
    return k;
}

Hash256 code_hash(const std::string& code) {
    return blake2b_256("enroll code " + code);
}

/// Issues a one-hour code to `user` and enrolls a device with it.
Device enroll_device(Store& s, const Id& user, std::uint8_t key = 1,
                     const std::string& label = "Samsung A14", std::int64_t now = k_now) {
    const Hash256 code = code_hash(Id::random().hex());
    s.add_enroll_code(code, user, now + k_hour);
    const auto d = s.enroll(code, key_of(key), label, now);
    REQUIRE(d);
    return *d;
}

void check_same_device(const Device& a, const Device& b) {
    CHECK(a.replica == b.replica);
    CHECK(a.user == b.user);
    CHECK(a.public_key == b.public_key);
    CHECK(a.label == b.label);
    CHECK(a.status == b.status);
    CHECK(a.last_counter == b.last_counter);
    CHECK(a.cursor == b.cursor);
    CHECK(a.last_seen == b.last_seen);
    CHECK(a.enrolled_at == b.enrolled_at);
    CHECK(a.revoked_at == b.revoked_at);
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Makes ops as one replica would, on a fake clock.
struct OpSource {
    explicit OpSource(std::uint64_t replica, const Id& author = Id::natural("user", "tec"))
        : hlc(clock), maker(replica, hlc, author) {}

    Op note(const Id& ot, const std::string& text_) {
        return maker.event(EntityType::work_order, ot, "notes", text(text_));
    }
    Op name(const Id& case_file, const std::string& text_) {
        return maker.set(EntityType::case_file, case_file, "customer_name", text(text_));
    }

    FakeClock clock{static_cast<std::uint64_t>(k_now)};
    Hlc hlc;
    crdt::OpMaker maker;
};

/// One request's write of `ops` by `replica`, received now with no skew.
SyncWrite write_of(std::uint64_t replica, const std::vector<Op>& ops) {
    SyncWrite w;
    w.replica = replica;
    w.now = k_now;
    for (const auto& op : ops) {
        StoredOp so;
        so.op = op;
        so.received_at = k_now;
        w.ops.push_back(so);
    }
    return w;
}

/// Commits one write alone; returns its sequences.
std::vector<std::uint64_t> commit(Store& s, const SyncWrite& w) {
    const auto out = s.commit_many({&w});
    REQUIRE(out.size() == 1);
    return out.front();
}

SyncWrite::FeedAdd feed_new(const Id& user, std::size_t index, bool history = false) {
    return {user, index, std::nullopt, std::nullopt, history};
}
SyncWrite::FeedAdd feed_old(const Id& user, std::uint64_t seq) {
    return {user, std::nullopt, seq, std::nullopt, true};
}
SyncWrite::FeedAdd feed_evict(const Id& user, EntityType t, const Id& id) {
    return {user, std::nullopt, std::nullopt, std::make_pair(t, id), false};
}

std::vector<std::uint64_t> seqs_of(const std::vector<StoredOp>& ops) {
    std::vector<std::uint64_t> out;
    for (const auto& o : ops) {
        out.push_back(o.seq);
    }
    return out;
}

std::vector<std::uint64_t> fseqs_of(const std::vector<FeedRow>& rows) {
    std::vector<std::uint64_t> out;
    for (const auto& r : rows) {
        out.push_back(r.fseq);
    }
    return out;
}

bool strictly_ascending(const std::vector<std::uint64_t>& v) {
    return std::adjacent_find(v.begin(), v.end(), std::greater_equal<>()) == v.end();
}

/// Projections as comparable tuples, in one order whatever order the store returns.
std::vector<std::tuple<int, Id, std::string>>
sorted(const std::vector<SyncWrite::Projection>& rows) {
    std::vector<std::tuple<int, Id, std::string>> out;
    for (const auto& p : rows) {
        out.emplace_back(static_cast<int>(p.type), p.id, p.json);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> serials_of(std::vector<InventoryItem> items) {
    std::vector<std::string> out;
    for (const auto& i : items) {
        out.push_back(i.serial);
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

// ---- a new store ----------------------------------------------------------------------

TEST_CASE("a new store is healthy and empty but for the shipped fee table") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        CHECK(s.healthy());
        CHECK(s.users().empty());
        CHECK(s.devices().empty());
        CHECK(s.op_count() == 0);
        CHECK(s.last_seq() == 0);
        CHECK(s.ops_after(0, 0).empty());
        CHECK(s.projections().empty());
        CHECK(s.inventory_count() == 0);
        CHECK_FALSE(s.server_key());
        CHECK(s.feed_count_after(Id::random(), 0) == 0);
        CHECK_FALSE(s.fee_records().empty());
    });
}

// ---- users --------------------------------------------------------------------------------

TEST_CASE("a user reads back whole by name, by id and in the list") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const User quispe = user_named("tec.quispe");
        User rojas = user_named("sup.rojas", Role::supervisor);
        rojas.disabled = true;
        rojas.password_hash.clear(); // cannot log in
        rojas.full_name.clear();
        rojas.unit.clear();
        s.add_user(quispe);
        s.add_user(rojas);

        const auto by_name = s.user_by_name("tec.quispe");
        REQUIRE(by_name);
        check_same_user(*by_name, quispe);
        const auto by_id = s.user_by_id(rojas.id);
        REQUIRE(by_id);
        check_same_user(*by_id, rojas);
        CHECK(names_of(s.users()) == std::vector<std::string>{"sup.rojas", "tec.quispe"});

        CHECK_FALSE(s.user_by_name("tec.nadie"));
        CHECK_FALSE(s.user_by_name("TEC.QUISPE")); // names are exact
        CHECK_FALSE(s.user_by_id(Id::random()));
    });
}

TEST_CASE("a user with a taken name or id is refused with Error and changes nothing") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const User first = user_named("tec.quispe");
        s.add_user(first);

        User same_name = user_named("tec.quispe", Role::supervisor);
        same_name.id = Id::random();
        try {
            s.add_user(same_name);
            FAIL("a second user named tec.quispe was stored");
        } catch (const Error& err) {
            CHECK(err.code() == ErrorCode::invalid_argument);
        }
        User same_id = user_named("tec.mamani");
        same_id.id = first.id;
        CHECK_THROWS_AS(s.add_user(same_id), Error);

        REQUIRE(s.users().size() == 1);
        check_same_user(s.users().front(), first);
        CHECK_FALSE(s.user_by_name("tec.mamani"));
    });
}

TEST_CASE("a password hash, the disabled flag and a profile change one user only") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const User quispe = user_named("tec.quispe");
        const User mamani = user_named("tec.mamani");
        s.add_user(quispe);
        s.add_user(mamani);

        s.set_password_hash(quispe.id, "$argon2id$new");
        s.set_user_disabled(quispe.id, true);
        s.set_user_profile(quispe.id, "Juana Quispe Mamani", "Quillacollo");
        auto q = s.user_by_id(quispe.id);
        REQUIRE(q);
        CHECK(q->password_hash == "$argon2id$new");
        CHECK(q->disabled);
        CHECK(q->full_name == "Juana Quispe Mamani");
        CHECK(q->unit == "Quillacollo");
        CHECK(q->name == quispe.name);
        CHECK(q->role == quispe.role);
        CHECK(q->created_at == quispe.created_at);

        s.set_user_disabled(quispe.id, false);
        q = s.user_by_id(quispe.id);
        REQUIRE(q);
        CHECK_FALSE(q->disabled);

        const auto m = s.user_by_id(mamani.id);
        REQUIRE(m);
        check_same_user(*m, mamani);
    });
}

TEST_CASE("the directory version moves with every change to users and devices, from any "
          "process") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        auto v = s.directory_version();
        // The server compares versions for equality: "moved" means "differs".
        const auto moved = [&] {
            const auto now = s.directory_version();
            const bool m = now != v;
            v = now;
            return m;
        };
        const Id tech = add_user(s, "tec.quispe");
        CHECK(moved());
        s.set_password_hash(tech, "$argon2id$other");
        CHECK(moved());
        s.set_user_disabled(tech, true);
        CHECK(moved());
        s.set_user_disabled(tech, false);
        CHECK(moved());
        s.set_user_profile(tech, "Juana Quispe", "Sacaba");
        CHECK(moved());
        const Device d = enroll_device(s, tech);
        CHECK(moved());
        REQUIRE(s.revoke_device(d.replica));
        CHECK(moved());
        CHECK_FALSE(moved()); // reading it moves nothing

        // Another process on the same database (otsync-admin beside the server).
        const auto other = e.open_again();
        add_user(*other, "tec.mamani");
        CHECK(moved());
        enroll_device(*other, tech);
        CHECK(moved());
    });
}

TEST_CASE("a sync's counter, cursor and last-seen updates leave the directory version alone") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, tech);
        const auto v = s.directory_version();

        SyncWrite pull;
        pull.replica = d.replica;
        pull.request_counter = 1;
        pull.cursor = 0;
        pull.now = k_now + 1000;
        commit(s, pull);
        const auto after_pull = s.device(d.replica);
        REQUIRE(after_pull);
        REQUIRE(after_pull->last_counter == 1); // the write did touch the device
        REQUIRE(after_pull->last_seen == k_now + 1000);
        CHECK(s.directory_version() == v);

        // Nor do ops, feed rows and projections: they are not the directory.
        OpSource src(d.replica, tech);
        const Id ot = Id::random();
        SyncWrite push = write_of(d.replica, {src.note(ot, "llegué")});
        push.request_counter = 2;
        push.cursor = 0;
        push.now = k_now + 2000;
        push.feed = {feed_new(tech, 0)};
        push.projections = {{EntityType::work_order, ot, "{}"}};
        commit(s, push);
        CHECK(s.device(d.replica)->last_counter == 2);
        CHECK(s.directory_version() == v);
    });
}

TEST_CASE("claim_counter takes a pull's counter only above the stored one, from any "
          "connection, and moves cursor and last seen forward only") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, tech);
        const auto v = s.directory_version();
        CHECK(s.locked_counter(d.replica) == 0);
        CHECK(s.claim_counter(d.replica, 3, 40, k_now + 1000));
        auto got = s.device(d.replica);
        REQUIRE(got);
        CHECK(got->last_counter == 3);
        CHECK(got->cursor == 40);
        CHECK(got->last_seen == k_now + 1000);
        CHECK(s.locked_counter(d.replica) == 3);
        // The same counter again, or a lower one: a replay, nothing written.
        CHECK_FALSE(s.claim_counter(d.replica, 3, 99, k_now + 2000));
        CHECK_FALSE(s.claim_counter(d.replica, 2, 99, k_now + 2000));
        got = s.device(d.replica);
        CHECK(got->last_counter == 3);
        CHECK(got->cursor == 40);
        CHECK(got->last_seen == k_now + 1000);
        // Another connection (another instance) sees it and is refused the same.
        const auto other = e.open_again();
        CHECK_FALSE(other->claim_counter(d.replica, 3, 41, k_now + 3000));
        CHECK(other->claim_counter(d.replica, 4, 10, k_now + 3000));
        got = s.device(d.replica);
        CHECK(got->last_counter == 4);
        CHECK(got->cursor == 40); // a cursor never goes back
        CHECK(got->last_seen == k_now + 3000);
        // A commit of ops after it keeps the higher of the two counters.
        SyncWrite w;
        w.replica = d.replica;
        w.request_counter = 2;
        w.now = k_now + 4000;
        commit(s, w);
        CHECK(s.device(d.replica)->last_counter == 4);
        CHECK_FALSE(s.claim_counter(999'999, 1, 0, k_now)); // no such device
        CHECK(s.directory_version() == v);                  // counters are not the directory
    });
}

// ---- sessions -----------------------------------------------------------------------------

TEST_CASE("a session reads back by its token hash until it is deleted") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Session x{blake2b_256("token a"), tech, k_now, k_now + 8 * k_hour};
        s.add_session(x);
        s.add_session({blake2b_256("token b"), tech, k_now, k_now + k_hour});

        const auto got = s.session(x.token_hash);
        REQUIRE(got);
        CHECK(got->token_hash == x.token_hash);
        CHECK(got->user == tech);
        CHECK(got->created_at == x.created_at);
        CHECK(got->expires_at == x.expires_at);
        CHECK_FALSE(s.session(blake2b_256("token c")));

        s.delete_session(x.token_hash);
        CHECK_FALSE(s.session(x.token_hash));
        CHECK(s.session(blake2b_256("token b"))); // the other one stays
        s.delete_session(blake2b_256("token c")); // an unknown one: nothing to do
    });
}

TEST_CASE("ending a user's sessions counts them and leaves other users' sessions") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id quispe = add_user(s, "tec.quispe");
        const Id mamani = add_user(s, "tec.mamani");
        for (const char* t : {"q1", "q2", "q3"}) {
            s.add_session({blake2b_256(t), quispe, k_now, k_now + k_hour});
        }
        s.add_session({blake2b_256("m1"), mamani, k_now, k_now + k_hour});

        CHECK(s.delete_sessions_of(quispe) == 3);
        CHECK_FALSE(s.session(blake2b_256("q2")));
        CHECK(s.delete_sessions_of(quispe) == 0);
        CHECK(s.session(blake2b_256("m1")));
        CHECK(s.delete_sessions_of(Id::random()) == 0);
    });
}

TEST_CASE("expired sessions are deleted, a session expiring at `now` included") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        s.add_session({blake2b_256("past"), tech, k_now - 2 * k_hour, k_now - k_hour});
        // Sessions are valid while expires_at > now (auth.cpp): at `now` it has expired.
        s.add_session({blake2b_256("at now"), tech, k_now - k_hour, k_now});
        s.add_session({blake2b_256("future"), tech, k_now, k_now + 1});

        CHECK(s.delete_expired_sessions(k_now) == 2);
        CHECK_FALSE(s.session(blake2b_256("past")));
        CHECK_FALSE(s.session(blake2b_256("at now")));
        CHECK(s.session(blake2b_256("future")));
        CHECK(s.delete_expired_sessions(k_now) == 0);
    });
}

// ---- the fee table ------------------------------------------------------------------------

namespace {
bool fee_order(const FeeRecord& a, const FeeRecord& b) {
    return std::tie(a.product, a.effective_from) < std::tie(b.product, b.effective_from);
}
const FeeRecord* find_fee(const std::vector<FeeRecord>& rows, const std::string& product,
                          std::int64_t from) {
    const auto it = std::find_if(rows.begin(), rows.end(), [&](const FeeRecord& r) {
        return r.product == product && r.effective_from == from;
    });
    return it == rows.end() ? nullptr : &*it;
}
constexpr std::int64_t k_april_2019 = 1'554'091'200'000; // 2019-04-01T00:00:00-04:00
} // namespace

TEST_CASE("the fee table ships with the prices of April 2019, ordered by product then date") {
    for_each_backend([](const Env& e) {
        const auto rows = e.store.fee_records();
        CHECK(std::is_sorted(rows.begin(), rows.end(), fee_order));
        const std::pair<const char*, std::int64_t> shipped[] = {{"telefonia_fija", 14628},
                                                                {"internet", 20000},
                                                                {"tv_cable", 20000},
                                                                {"duo_multipack", 20000}};
        CHECK(rows.size() == std::size(shipped));
        for (const auto& [product, centavos] : shipped) {
            CAPTURE(product);
            const FeeRecord* r = find_fee(rows, product, k_april_2019);
            REQUIRE(r);
            CHECK(r->centavos == centavos);
            CHECK_FALSE(r->set_by); // nobody set the shipped table
        }
    });
}

TEST_CASE("a fee row is added in order, and one with the same product and date replaces it") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id sup = add_user(s, "sup.rojas", Role::supervisor);
        const std::size_t shipped = s.fee_records().size();
        const std::int64_t may_2024 = 1'714'536'000'000;
        s.put_fee_record({"internet", may_2024, 25000, sup, k_now});
        s.put_fee_record({"internet", 1'500'000'000'000, 18000, std::nullopt, k_now});
        s.put_fee_record({"alarma", may_2024, 5000, sup, k_now}); // sorts first

        auto rows = s.fee_records();
        CHECK(rows.size() == shipped + 3);
        CHECK(std::is_sorted(rows.begin(), rows.end(), fee_order));
        CHECK(rows.front().product == "alarma");
        const FeeRecord* r = find_fee(rows, "internet", may_2024);
        REQUIRE(r);
        CHECK(r->centavos == 25000);
        CHECK(r->set_by == sup);
        CHECK(r->set_at == k_now);

        const Id other = add_user(s, "sup.vargas", Role::supervisor);
        s.put_fee_record({"internet", may_2024, 26000, other, k_now + 1});
        rows = s.fee_records();
        CHECK(rows.size() == shipped + 3);
        r = find_fee(rows, "internet", may_2024);
        REQUIRE(r);
        CHECK(r->centavos == 26000);
        CHECK(r->set_by == other);
        CHECK(r->set_at == k_now + 1);
        r = find_fee(rows, "internet", k_april_2019); // other dates of the product stay
        REQUIRE(r);
        CHECK(r->centavos == 20000);
    });
}

// ---- inventory ----------------------------------------------------------------------------

namespace {
Contract contract_of(const std::string& number, const std::string& name) {
    return {number, name, "natural", "1234567", "Av. América 123", k_now};
}
InventoryItem item_of(const std::string& serial, const std::string& contract,
                      std::int64_t at = k_now) {
    return {serial, contract, "gpon_ont", "ZTE F660", "ONT " + serial, at};
}
} // namespace

TEST_CASE("an inventory import upserts contracts and equipment") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        Contract legal = contract_of("100201", "Comercial Andina SRL");
        legal.person_type = "legal";
        legal.tax_id = "102030405";
        s.import_inventory({contract_of("100200", "Juan Pérez"), legal},
                           {item_of("ZTEG00000001", "100200"), item_of("ZTEG00000002", "100200"),
                            item_of("HWTC00000003", "100201")});
        CHECK(s.inventory_count() == 3);
        const auto c = s.contract("100201");
        REQUIRE(c);
        CHECK(c->contract == "100201");
        CHECK(c->customer_name == "Comercial Andina SRL");
        CHECK(c->person_type == "legal");
        CHECK(c->tax_id == "102030405");
        CHECK(c->address == legal.address);
        CHECK(c->imported_at == k_now);
        CHECK(serials_of(s.inventory_of("100200")) ==
              std::vector<std::string>{"ZTEG00000001", "ZTEG00000002"});
        const auto item = s.inventory_item("HWTC00000003");
        REQUIRE(item);
        CHECK(item->contract == "100201");
        CHECK(item->kind == "gpon_ont");
        CHECK(item->model == "ZTE F660");
        CHECK(item->description == "ONT HWTC00000003");
        CHECK(item->imported_at == k_now);
        CHECK_FALSE(s.contract("999999"));
        CHECK(s.inventory_of("999999").empty());
        CHECK_FALSE(s.inventory_item("NOSUCHSERIAL"));

        // A later import: a renamed contract, an item moved to another contract, a new one.
        Contract renamed = contract_of("100200", "Juan Pérez Rojas");
        renamed.imported_at = k_now + 1;
        InventoryItem moved = item_of("ZTEG00000002", "100201", k_now + 1);
        moved.kind = "decoder";
        s.import_inventory({renamed}, {moved, item_of("ZTEG00000004", "100201", k_now + 1)});
        CHECK(s.inventory_count() == 4);
        CHECK(s.contract("100200")->customer_name == "Juan Pérez Rojas");
        CHECK(s.contract("100200")->imported_at == k_now + 1);
        CHECK(s.contract("100201")->customer_name == "Comercial Andina SRL"); // not in it: kept
        CHECK(serials_of(s.inventory_of("100200")) == std::vector<std::string>{"ZTEG00000001"});
        CHECK(serials_of(s.inventory_of("100201")) ==
              std::vector<std::string>{"HWTC00000003", "ZTEG00000002", "ZTEG00000004"});
        CHECK(s.inventory_item("ZTEG00000002")->kind == "decoder");
    });
}

TEST_CASE("an inventory import with equipment on an unknown contract stores nothing") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        s.import_inventory({contract_of("100200", "Juan Pérez")},
                           {item_of("ZTEG00000001", "100200")});
        // The one failure the interface can provoke: equipment on a contract that is neither
        // stored nor in the import. The valid contract and items before it must not stay.
        CHECK_THROWS_AS(
            s.import_inventory(
                {contract_of("100300", "Ana Vargas"), contract_of("100200", "Juan Pérez Renamed")},
                {item_of("ZTEG00000005", "100300"), item_of("ZTEG00000001", "100300"),
                 item_of("ZTEG00000006", "999999")}),
            Error);
        CHECK_FALSE(s.contract("100300"));
        CHECK(s.contract("100200")->customer_name == "Juan Pérez");
        CHECK_FALSE(s.inventory_item("ZTEG00000005"));
        CHECK(s.inventory_item("ZTEG00000001")->contract == "100200");
        CHECK(s.inventory_count() == 1);
    });
}

// ---- enrollment and devices ---------------------------------------------------------------

TEST_CASE("an enrollment code enrolls one active device, and only once") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Hash256 code = code_hash("ABCD-EFGH-JKLM");
        s.add_enroll_code(code, tech, k_now + k_hour);

        const auto d = s.enroll(code, key_of(7), "Samsung A14", k_now);
        REQUIRE(d);
        CHECK(d->replica > 0);
        CHECK(d->user == tech);
        CHECK(d->public_key == key_of(7));
        CHECK(d->label == "Samsung A14");
        CHECK(d->status == DeviceStatus::active);
        CHECK(d->enrolled_at == k_now);
        CHECK(d->revoked_at == 0);
        CHECK(d->last_counter == 0);
        CHECK(d->cursor == 0);
        const auto stored = s.device(d->replica);
        REQUIRE(stored);
        check_same_device(*stored, *d); // what enroll answers is what is stored

        CHECK_FALSE(s.enroll(code, key_of(8), "second use", k_now + 1));
        REQUIRE(s.devices().size() == 1);
        check_same_device(s.devices().front(), *d);
        CHECK_FALSE(s.device(d->replica + 1000));
    });
}

TEST_CASE("an unknown or expired enrollment code enrolls nothing") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        CHECK_FALSE(s.enroll(code_hash("never issued"), key_of(1), "x", k_now));

        s.add_enroll_code(code_hash("expired"), tech, k_now - 1);
        CHECK_FALSE(s.enroll(code_hash("expired"), key_of(1), "x", k_now));
        // Like a session, a code is valid while expires_at > now: at its time it has expired.
        s.add_enroll_code(code_hash("expires now"), tech, k_now);
        CHECK_FALSE(s.enroll(code_hash("expires now"), key_of(1), "x", k_now));
        CHECK(s.devices().empty());

        // A failed attempt does not use up a good code.
        s.add_enroll_code(code_hash("good"), tech, k_now + 1);
        CHECK(s.enroll(code_hash("good"), key_of(1), "x", k_now));
        CHECK(s.devices().size() == 1);
    });
}

TEST_CASE("devices racing for one code, in one process or two, get exactly one device") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const auto other = e.open_again();
        constexpr int k_rounds = 20;
        constexpr int k_racers = 4;
        for (int round = 0; round < k_rounds; ++round) {
            CAPTURE(round);
            const Hash256 code = code_hash("race " + std::to_string(round));
            s.add_enroll_code(code, tech, k_now + k_hour);
            std::atomic<bool> go{false};
            std::atomic<int> enrolled{0};
            std::atomic<int> failed{0};
            std::vector<std::thread> racers;
            for (int i = 0; i < k_racers; ++i) {
                Store* target = i % 2 == 0 ? &s : other.get();
                racers.emplace_back([&, target, i] {
                    while (!go) {
                        std::this_thread::yield();
                    }
                    try {
                        if (target->enroll(code, key_of(static_cast<std::uint8_t>(i)), "racer",
                                           k_now)) {
                            ++enrolled;
                        }
                    } catch (...) {
                        ++failed;
                    }
                });
            }
            go = true;
            for (auto& t : racers) {
                t.join();
            }
            CHECK(enrolled == 1);
            CHECK(failed == 0);
        }
        CHECK(s.devices().size() == k_rounds);
    });
}

TEST_CASE("replica ids are distinct and above zero, and devices() lists every device") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id quispe = add_user(s, "tec.quispe");
        const Id mamani = add_user(s, "tec.mamani");
        std::map<std::uint64_t, Id> owner; // replica -> user
        for (std::uint8_t i = 0; i < 6; ++i) {
            const Id user = i % 2 ? quispe : mamani;
            const Device d = enroll_device(s, user, i);
            CHECK(d.replica > 0);
            CHECK(d.replica != k_server_replica);
            owner.emplace(d.replica, user);
        }
        CHECK(owner.size() == 6);
        std::map<std::uint64_t, Id> listed;
        for (const auto& d : s.devices()) {
            listed.emplace(d.replica, d.user);
        }
        CHECK(listed == owner);
    });
}

TEST_CASE("revoking a device marks it revoked with the time of its first revocation") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, tech, 1);
        const Device kept = enroll_device(s, tech, 2);

        const std::int64_t before = wall_ms();
        CHECK(s.revoke_device(d.replica));
        const std::int64_t after = wall_ms();
        const auto revoked = s.device(d.replica);
        REQUIRE(revoked);
        CHECK(revoked->status == DeviceStatus::revoked);
        // The server's wall clock at revocation (the signed proof names it); 1 s of slack.
        CHECK(revoked->revoked_at >= before - 1000);
        CHECK(revoked->revoked_at <= after + 1000);
        CHECK(revoked->public_key == d.public_key);
        CHECK(revoked->user == tech);

        // Again later: the device exists, so true (callers read false as "no such device"),
        // and the first time is kept.
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        CHECK(s.revoke_device(d.replica));
        CHECK(s.device(d.replica)->revoked_at == revoked->revoked_at);
        CHECK(s.device(d.replica)->status == DeviceStatus::revoked);

        CHECK_FALSE(s.revoke_device(kept.replica + d.replica + 1000));
        const auto other = s.device(kept.replica);
        REQUIRE(other);
        CHECK(other->status == DeviceStatus::active);
        CHECK(other->revoked_at == 0);
    });
}

// ---- the op log ---------------------------------------------------------------------------

TEST_CASE("a group commit assigns ascending sequences in the order given and returns them "
          "per write") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource a(11);
        OpSource b(12);
        const Id ot = Id::random();
        const SyncWrite first = write_of(11, {a.note(ot, "1"), a.note(ot, "2"), a.note(ot, "3")});
        const SyncWrite empty = write_of(12, {});
        const SyncWrite second = write_of(12, {b.note(ot, "4"), b.note(ot, "5")});
        const auto out = s.commit_many({&first, &empty, &second});
        REQUIRE(out.size() == 3);
        REQUIRE(out[0].size() == 3);
        CHECK(out[1].empty());
        REQUIRE(out[2].size() == 2);
        std::vector<std::uint64_t> all(out[0]);
        all.insert(all.end(), out[2].begin(), out[2].end());
        CHECK(strictly_ascending(all));
        CHECK(all.front() > 0);
        CHECK(s.op_count() == 5);
        CHECK(s.last_seq() == all.back());

        const auto log = s.ops_after(0, 0);
        CHECK(seqs_of(log) == all);
        REQUIRE(log.size() == 5);
        CHECK(log[0].op == first.ops[0].op);
        CHECK(log[2].op == first.ops[2].op);
        CHECK(log[3].op == second.ops[0].op);
        CHECK(log[4].op == second.ops[1].op);

        // The next commit goes on above.
        const auto next = commit(s, write_of(11, {a.note(ot, "6")}));
        REQUIRE(next.size() == 1);
        CHECK(next[0] > all.back());
        CHECK(s.last_seq() == next[0]);
        CHECK(s.op_count() == 6);
    });
}

TEST_CASE("a stored op reads back with its receipt time, skew and flag") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource src(21, Id::natural("user", "tec.quispe"));
        const Id ot = Id::random();
        const Id case_file = Id::random();
        crdt::Replica state;
        std::vector<Op> ops;
        ops.push_back(
            src.maker.add(EntityType::work_order, ot, "expected_equipment", text("ZTEG00000001")));
        state.apply(ops.back());
        ops.push_back(src.maker.remove(state, EntityType::work_order, ot, "expected_equipment",
                                       text("ZTEG00000001")));
        ops.push_back(src.maker.set(EntityType::case_file, case_file, "fee", Money{14628}));
        ops.push_back(src.note(ot, "el cliente no está — volver mañana"));
        REQUIRE_FALSE(ops[1].observed.empty()); // the remove carries its observed tags

        SyncWrite w = write_of(21, ops);
        w.ops[0].received_at = k_now + 5;
        w.ops[0].skew_ms = -1500;
        w.ops[1].flagged = true;
        w.ops[1].skew_ms = 250;
        w.ops[2].received_at = k_now + 7;
        w.ops[3].flagged = true;
        w.ops[3].skew_ms = -86'400'000;
        const auto seqs = commit(s, w);

        for (const auto& got : {s.ops_after(0, 0), s.ops_by_seq(seqs)}) {
            REQUIRE(got.size() == ops.size());
            for (std::size_t i = 0; i < ops.size(); ++i) {
                CAPTURE(i);
                CHECK(got[i].seq == seqs[i]);
                CHECK(got[i].op == w.ops[i].op);
                CHECK(got[i].received_at == w.ops[i].received_at);
                CHECK(got[i].skew_ms == w.ops[i].skew_ms);
                CHECK(got[i].flagged == w.ops[i].flagged);
            }
        }
    });
}

TEST_CASE("ops_after gives the ops above a sequence, ascending, at most `limit` of them") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource src(31);
        const Id ot = Id::random();
        std::vector<Op> ops;
        for (int i = 0; i < 10; ++i) {
            ops.push_back(src.note(ot, std::to_string(i)));
        }
        const auto seqs = commit(s, write_of(31, ops));
        REQUIRE(seqs.size() == 10);

        const auto page = s.ops_after(seqs[2], 4);
        CHECK(seqs_of(page) == std::vector<std::uint64_t>(seqs.begin() + 3, seqs.begin() + 7));
        REQUIRE(page.size() == 4);
        CHECK(page[0].op == ops[3]);
        CHECK(seqs_of(s.ops_after(seqs[2], 0)) ==
              std::vector<std::uint64_t>(seqs.begin() + 3, seqs.end())); // 0: no limit
        CHECK(seqs_of(s.ops_after(0, 1)) == std::vector<std::uint64_t>{seqs[0]});
        CHECK(seqs_of(s.ops_after(seqs[7], 100)) ==
              std::vector<std::uint64_t>(seqs.begin() + 8, seqs.end()));
        CHECK(s.ops_after(seqs.back(), 0).empty());
        CHECK(s.ops_after(seqs.back() + 1000, 5).empty());

        // Paging with a small limit walks the whole log once, in order.
        std::vector<std::uint64_t> walked;
        for (std::uint64_t after = 0;;) {
            const auto p = s.ops_after(after, 3);
            if (p.empty()) {
                break;
            }
            CHECK(p.size() <= 3);
            for (const auto& o : p) {
                walked.push_back(o.seq);
            }
            after = p.back().seq;
        }
        CHECK(walked == seqs);
    });
}

TEST_CASE("ops_by_seq gives each known op once, ascending, whatever the order asked") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource src(41);
        const Id ot = Id::random();
        std::vector<Op> ops;
        for (int i = 0; i < 40; ++i) {
            ops.push_back(src.note(ot, std::to_string(i)));
        }
        const auto seqs = commit(s, write_of(41, ops));
        REQUIRE(seqs.size() == 40);
        const std::uint64_t last = seqs.back();

        // Unsorted, repeated, far apart and close together, and seqs that name no op.
        const auto got = s.ops_by_seq(
            {seqs[39], seqs[2], 0, seqs[20], seqs[2], last + 1, seqs[21], last + 100, seqs[0]});
        CHECK(seqs_of(got) ==
              std::vector<std::uint64_t>{seqs[0], seqs[2], seqs[20], seqs[21], seqs[39]});
        REQUIRE(got.size() == 5);
        CHECK(got[0].op == ops[0]);
        CHECK(got[1].op == ops[2]);
        CHECK(got[2].op == ops[20]);
        CHECK(got[3].op == ops[21]);
        CHECK(got[4].op == ops[39]);

        CHECK(s.ops_by_seq({}).empty());
        CHECK(s.ops_by_seq({0, last + 1, last + 2}).empty());
        CHECK(seqs_of(s.ops_by_seq(seqs)) == seqs);
        std::vector<std::uint64_t> backwards(seqs.rbegin(), seqs.rend());
        CHECK(seqs_of(s.ops_by_seq(backwards)) == seqs);
    });
}

TEST_CASE("op_seqs_of_entity lists one entity's ops ascending, by type and id") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource src(51);
        const Id x = Id::random();
        const Id y = Id::random();
        // The same id under two types is two entities.
        const auto first =
            commit(s, write_of(51, {src.note(x, "a"), src.name(x, "Juan"), src.note(y, "b")}));
        const auto second = commit(s, write_of(51, {src.note(x, "c"), src.name(x, "Juana")}));
        CHECK(s.op_seqs_of_entity(EntityType::work_order, x) ==
              std::vector<std::uint64_t>{first[0], second[0]});
        CHECK(s.op_seqs_of_entity(EntityType::case_file, x) ==
              std::vector<std::uint64_t>{first[1], second[1]});
        CHECK(s.op_seqs_of_entity(EntityType::work_order, y) ==
              std::vector<std::uint64_t>{first[2]});
        CHECK(s.op_seqs_of_entity(EntityType::case_file, y).empty());
        CHECK(s.op_seqs_of_entity(EntityType::work_order, Id::random()).empty());
        // Their ids, in the same order, as the log holds them.
        std::vector<OpId> ids;
        for (const auto& so : s.ops_by_seq({first[0], second[0]})) {
            ids.push_back(so.op.id);
        }
        CHECK(s.op_ids_of_entity(EntityType::work_order, x) == ids);
        CHECK(s.op_ids_of_entity(EntityType::case_file, y).empty());
    });
}

TEST_CASE("archive: a case's group and figure, found by any member, listed by opening time; "
          "unarchive drops the figure and keeps the group") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id c1 = Id::random(), c2 = Id::random(), ot = Id::random(), row = Id::random();
        CHECK(s.archived_count() == 0);
        CHECK(!s.archived_group_of(ot));
        CHECK(s.archived_group(c1).empty());
        s.archive({c1, 2000, "{\"f\":1}", "K-1", "closed", 1}, {{EntityType::case_file, c1},
                                                                {EntityType::work_order, ot},
                                                                {EntityType::collected_item, row}});
        s.archive({c2, 1000, "{\"f\":2}", "K-2", "rejected", 3}, {{EntityType::case_file, c2}});
        CHECK(s.archived_count() == 2);
        CHECK(s.archived_group_of(row) == c1);
        CHECK(s.archived_group_of(c2) == c2);
        CHECK(s.archived_group(c1).size() == 3);
        const auto in_range = s.archived_cases(0, 5000);
        REQUIRE(in_range.size() == 2);
        CHECK(in_range[0].case_id == c2); // by opening time
        CHECK(in_range[1].figure == "{\"f\":1}");
        CHECK(s.archived_cases(1500, 5000).size() == 1);
        CHECK(s.archived_entities().size() == 4);
        // A case list's page: the filter's matches, newest first, and their count.
        server::ArchivedCaseQuery q;
        q.limit = 1;
        auto page = s.archived_case_page(q);
        CHECK(page.total == 2);
        REQUIRE(page.cases.size() == 1);
        CHECK(page.cases[0].case_id == c1);
        CHECK(page.cases[0].contract == "K-1");
        CHECK(page.cases[0].modality == 1);
        q.limit = 10;
        q.status = "rejected";
        page = s.archived_case_page(q);
        REQUIRE(page.cases.size() == 1);
        CHECK(page.cases[0].case_id == c2);
        q.status.clear();
        q.modality = 1;
        CHECK(s.archived_case_page(q).total == 1);
        q.modality.reset();
        q.contract = "K-2";
        CHECK(s.archived_case_page(q).cases.at(0).status == "rejected");
        q.contract = "K-3";
        CHECK(s.archived_case_page(q).total == 0);
        // Archived again: the figure is replaced, the group grows.
        const Id h = Id::random();
        s.archive({c1, 2000, "{\"f\":3}", "K-1", "closed", 1}, {{EntityType::handover, h}});
        CHECK(s.archived_cases(1500, 5000)[0].figure == "{\"f\":3}");
        CHECK(s.archived_group_of(h) == c1);
        s.unarchive(c1);
        CHECK(s.archived_count() == 1);
        CHECK(s.archived_group_of(ot) == c1); // the group stays for other instances
        CHECK(s.archived_entities().size() == 1);
    });
}

TEST_CASE("a device's request counter and cursor only move forward; last seen follows its "
          "syncs") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, tech, 1);
        const Device bystander = enroll_device(s, tech, 2);
        const auto sync = [&](std::uint64_t counter, std::uint64_t cursor, std::int64_t now) {
            SyncWrite w;
            w.replica = d.replica;
            w.request_counter = counter;
            w.cursor = cursor;
            w.now = now;
            return w;
        };
        const auto check_device = [&](std::uint64_t counter, std::uint64_t cursor,
                                      std::int64_t seen) {
            const auto got = s.device(d.replica);
            REQUIRE(got);
            CHECK(got->last_counter == counter);
            CHECK(got->cursor == cursor);
            CHECK(got->last_seen == seen);
        };

        commit(s, sync(5, 10, k_now + 1000));
        check_device(5, 10, k_now + 1000);
        commit(s, sync(3, 4, k_now + 2000)); // lower counter and cursor: kept
        check_device(5, 10, k_now + 2000);
        commit(s, sync(6, 10, k_now + 3000));
        check_device(6, 10, k_now + 3000);

        // Two requests of the device in one group commit, the later one first.
        const SyncWrite later = sync(9, 12, k_now + 4000);
        const SyncWrite earlier = sync(8, 11, k_now + 4000);
        s.commit_many({&later, &earlier});
        check_device(9, 12, k_now + 4000);

        // The server's own writes (replica 0) store ops and touch no device.
        OpSource server(k_server_replica);
        SyncWrite own = write_of(k_server_replica, {server.note(Id::random(), "issued")});
        own.request_counter = 100;
        own.cursor = 100;
        own.now = k_now + 5000;
        CHECK(commit(s, own).size() == 1);
        check_device(9, 12, k_now + 4000);
        const auto other = s.device(bystander.replica);
        REQUIRE(other);
        check_same_device(*other, bystander);
    });
}

// ---- feeds --------------------------------------------------------------------------------

TEST_CASE("a user's feed as one connection reads it follows what it wrote, a rolled-back write "
          "and another connection's commits") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id quispe = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, quispe);
        OpSource src(d.replica, quispe);
        const Id ot = Id::random();
        CHECK(s.feed_count_after(quispe, 0) == 0); // read (and known) before any row
        CHECK(s.feed_after(quispe, 0, 10).empty());

        SyncWrite first = write_of(d.replica, {src.note(ot, "a")});
        first.feed = {feed_new(quispe, 0)};
        commit(s, first);
        CHECK(s.feed_count_after(quispe, 0) == 1);
        const auto rows = s.feed_after(quispe, 0, 10);
        REQUIRE(rows.size() == 1);
        const std::uint64_t head = rows[0].fseq;
        CHECK(s.feed_after(quispe, head, 10).empty());

        // A write that rolls back leaves the feed as it was.
        SyncWrite broken = write_of(d.replica, {src.note(ot, "b")});
        broken.feed = {feed_new(quispe, 0)};
        CHECK_THROWS(s.in_transaction(true, [&] {
            s.commit_many({&broken});
            throw std::runtime_error("the caller gives up");
        }));
        CHECK(s.feed_count_after(quispe, head) == 0);
        CHECK(s.feed_after(quispe, head, 10).empty());

        // Another connection (a second instance, or a tool) appends: seen here too.
        const auto other = e.open_again();
        SyncWrite theirs = write_of(d.replica, {src.note(ot, "c")});
        theirs.feed = {feed_new(quispe, 0)};
        commit(*other, theirs);
        (void)s.directory_version(); // a request's first read
        CHECK(s.feed_count_after(quispe, head) == 1);
        const auto after = s.feed_after(quispe, head, 10);
        REQUIRE(after.size() == 1);
        CHECK(after[0].fseq > head);
    });
}

TEST_CASE("a reader connection sees each of the writer's commits at once: its feed, and the "
          "directory's version") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const auto reader = s.open_reader();
        REQUIRE(reader);
        const Id quispe = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, quispe);
        OpSource src(d.replica, quispe);
        const Id ot = Id::random();
        const std::uint64_t version = reader->directory_version();
        CHECK(reader->feed_after(quispe, 0, 10).empty()); // read, and known, before any row
        CHECK(reader->feed_count_after(quispe, 0) == 0);

        SyncWrite first = write_of(d.replica, {src.note(ot, "a")});
        first.feed = {feed_new(quispe, 0)};
        commit(s, first);
        // No wait for a periodic look at the database: the very next read has the row.
        CHECK(reader->feed_after(quispe, 0, 10).size() == 1);
        CHECK(reader->feed_count_after(quispe, 0) == 1);
        add_user(s, "tec.mamani");
        CHECK(reader->directory_version() > version);
    });
}

TEST_CASE("a user's feed holds new ops, replayed history and evictions in order, apart from "
          "other users' feeds") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id quispe = add_user(s, "tec.quispe");
        const Id mamani = add_user(s, "tec.mamani");
        const Device d = enroll_device(s, quispe);
        OpSource src(d.replica, quispe);
        const Id ot = Id::random();

        SyncWrite push = write_of(d.replica, {src.note(ot, "a"), src.note(ot, "b")});
        push.request_counter = 1;
        push.feed = {feed_new(quispe, 0), feed_new(mamani, 1), feed_new(quispe, 1),
                     feed_evict(quispe, EntityType::work_order, ot)};
        const auto pushed = commit(s, push);

        OpSource server(k_server_replica);
        SyncWrite own = write_of(k_server_replica, {server.note(ot, "c")});
        own.feed = {feed_old(quispe, pushed[0]), feed_new(mamani, 0)};
        const auto issued = commit(s, own);

        const auto rows = s.feed_after(quispe, 0, 100);
        REQUIRE(rows.size() == 4);
        CHECK(strictly_ascending(fseqs_of(rows)));
        CHECK(rows[0].op_seq == pushed[0]);
        CHECK(rows[0].op_replica == d.replica);
        CHECK_FALSE(rows[0].history);
        CHECK_FALSE(rows[0].evict);
        CHECK(rows[1].op_seq == pushed[1]);
        CHECK_FALSE(rows[1].history);
        CHECK_FALSE(rows[2].op_seq);
        REQUIRE(rows[2].evict);
        CHECK(rows[2].evict->first == EntityType::work_order);
        CHECK(rows[2].evict->second == ot);
        CHECK_FALSE(rows[2].history);
        CHECK(rows[3].op_seq == pushed[0]); // history: an op of an earlier commit
        CHECK(rows[3].op_replica == d.replica);
        CHECK(rows[3].history);
        CHECK_FALSE(rows[3].evict);

        const auto theirs = s.feed_after(mamani, 0, 100);
        REQUIRE(theirs.size() == 2);
        CHECK(strictly_ascending(fseqs_of(theirs)));
        CHECK(theirs[0].op_seq == pushed[1]);
        CHECK(theirs[0].op_replica == d.replica);
        CHECK(theirs[1].op_seq == issued[0]);
        CHECK(theirs[1].op_replica == k_server_replica);

        CHECK(s.feed_count_after(quispe, 0) == 4);
        CHECK(s.feed_count_after(quispe, rows[1].fseq) == 2);
        CHECK(s.feed_count_after(quispe, rows[3].fseq) == 0);
        CHECK(s.feed_after(quispe, rows[3].fseq, 100).empty());
        CHECK(s.feed_count_after(mamani, 0) == 2);
        const Id nobody = Id::random();
        CHECK(s.feed_after(nobody, 0, 100).empty());
        CHECK(s.feed_count_after(nobody, 0) == 0);
    });
}

TEST_CASE("feed_after is ascending and bounded by its limit, across the writes of a group "
          "commit") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        OpSource a(61);
        OpSource b(62);
        const Id ot = Id::random();
        const auto feed_all = [&](SyncWrite& w) {
            for (std::size_t i = 0; i < w.ops.size(); ++i) {
                w.feed.push_back(feed_new(tech, i, i % 2 == 0));
            }
        };
        SyncWrite w1 = write_of(61, {a.note(ot, "1"), a.note(ot, "2"), a.note(ot, "3")});
        SyncWrite w2 = write_of(62, {b.note(ot, "4"), b.note(ot, "5"), b.note(ot, "6")});
        feed_all(w1);
        feed_all(w2);
        const auto out = s.commit_many({&w1, &w2});
        SyncWrite w3 =
            write_of(61, {a.note(ot, "7"), a.note(ot, "8"), a.note(ot, "9"), a.note(ot, "10")});
        feed_all(w3);
        const auto more = commit(s, w3);

        std::vector<std::uint64_t> want(out[0]);
        want.insert(want.end(), out[1].begin(), out[1].end());
        want.insert(want.end(), more.begin(), more.end());
        const auto rows = s.feed_after(tech, 0, 100);
        REQUIRE(rows.size() == 10);
        CHECK(strictly_ascending(fseqs_of(rows)));
        for (std::size_t i = 0; i < rows.size(); ++i) {
            CAPTURE(i);
            CHECK(rows[i].op_seq == want[i]);
        }
        CHECK(rows[0].history); // the flag as written, per row
        CHECK_FALSE(rows[1].history);
        CHECK(rows[3].op_replica == 62);

        const auto page = s.feed_after(tech, rows[2].fseq, 4);
        REQUIRE(page.size() == 4);
        for (std::size_t i = 0; i < page.size(); ++i) {
            CHECK(page[i].fseq == rows[3 + i].fseq);
        }
        CHECK(fseqs_of(s.feed_after(tech, 0, 1)) == std::vector<std::uint64_t>{rows[0].fseq});
        CHECK(s.feed_count_after(tech, rows[2].fseq) == 7);

        std::vector<std::uint64_t> walked;
        for (std::uint64_t after = 0;;) {
            const auto p = s.feed_after(tech, after, 3);
            if (p.empty()) {
                break;
            }
            CHECK(p.size() <= 3);
            for (const auto& r : p) {
                walked.push_back(r.fseq);
            }
            after = p.back().fseq;
        }
        CHECK(walked == fseqs_of(rows));
    });
}

// ---- projections --------------------------------------------------------------------------

TEST_CASE("projections are upserted by commits and replaced whole by replace_projections") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        OpSource src(71);
        const Id ot = Id::random();
        const Id case_file = Id::random();
        const Id row = Id::collected_item(ot, "ZTEG00000001");
        SyncWrite w1 = write_of(71, {src.note(ot, "a")});
        w1.projections = {{EntityType::work_order, ot, R"({"status":"issued"})"},
                          {EntityType::case_file, case_file, R"({"customer_name":"Juan"})"}};
        commit(s, w1);
        CHECK(sorted(s.projections()) == sorted(w1.projections));

        SyncWrite w2 = write_of(71, {src.note(ot, "b")});
        w2.projections = {{EntityType::work_order, ot, R"({"status":"on_site"})"},
                          {EntityType::collected_item, row, R"({"serial":"ZTEG00000001"})"}};
        commit(s, w2);
        CHECK(sorted(s.projections()) ==
              sorted({{EntityType::work_order, ot, R"({"status":"on_site"})"},
                      {EntityType::case_file, case_file, R"({"customer_name":"Juan"})"},
                      {EntityType::collected_item, row, R"({"serial":"ZTEG00000001"})"}}));

        // A write without ops may carry projections too.
        SyncWrite w3 = write_of(71, {});
        w3.projections = {{EntityType::case_file, case_file, R"({"customer_name":"Juana"})"}};
        commit(s, w3);
        CHECK(s.projections().size() == 3);

        const std::vector<SyncWrite::Projection> rebuilt{
            {EntityType::equipment, Id::random(), R"({"serial":"X"})"},
            {EntityType::work_order, ot, R"({"status":"completed"})"}};
        s.replace_projections(rebuilt);
        CHECK(sorted(s.projections()) == sorted(rebuilt));
        s.replace_projections({});
        CHECK(s.projections().empty());
    });
}

// ---- transactions -------------------------------------------------------------------------

TEST_CASE("a read transaction sees one snapshot while another process commits") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const auto other = e.open_again();
        OpSource src(k_server_replica);
        const Id ot = Id::random();
        commit(s, write_of(k_server_replica, {src.note(ot, "before")}));

        std::uint64_t inside_first = 0, inside_second = 0;
        std::size_t users_first = 0, users_second = 0;
        s.in_transaction(false, [&] {
            inside_first = s.op_count();
            users_first = s.users().size();
            commit(*other, write_of(k_server_replica, {src.note(ot, "during")}));
            add_user(*other, "tec.quispe");
            inside_second = s.op_count();
            users_second = s.users().size();
        });
        CHECK(inside_first == 1);
        CHECK(inside_second == inside_first);
        CHECK(users_second == users_first);
        CHECK(s.op_count() == 2); // seen once the transaction ends
        CHECK(s.users().size() == 1);
    });
}

TEST_CASE("a write transaction holds off other writers until it ends") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const auto other = e.open_again();
        std::atomic<bool> written{false};
        std::atomic<bool> failed{false};
        bool written_inside = true;
        std::thread writer;
        const auto join = [&] {
            if (writer.joinable()) {
                writer.join();
            }
        };
        try {
            s.in_transaction(true, [&] {
                CHECK(s.users().empty());
                writer = std::thread([&] {
                    try {
                        add_user(*other, "tec.mamani");
                        written = true;
                    } catch (...) {
                        failed = true;
                    }
                });
                std::this_thread::sleep_for(std::chrono::milliseconds(300));
                written_inside = written; // must still wait for our transaction
                add_user(s, "tec.quispe");
            });
        } catch (...) {
            join();
            throw;
        }
        join();
        CHECK_FALSE(written_inside);
        CHECK_FALSE(failed);
        CHECK(written);
        CHECK(names_of(s.users()) == std::vector<std::string>{"tec.mamani", "tec.quispe"});
    });
}

TEST_CASE("a transaction that throws leaves none of its writes behind") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const std::vector<SyncWrite::Projection> kept{
            {EntityType::work_order, Id::random(), R"({"status":"issued"})"}};
        s.replace_projections(kept);
        struct Abort {};
        CHECK_THROWS_AS(s.in_transaction(true,
                                         [&] {
                                             add_user(s, "tec.quispe");
                                             s.set_server_key(key_of(1), SecretKey{});
                                             s.replace_projections({});
                                             CHECK(s.user_by_name("tec.quispe"));
                                             throw Abort{};
                                         }),
                        Abort);
        CHECK_FALSE(s.user_by_name("tec.quispe"));
        CHECK_FALSE(s.server_key());
        CHECK(sorted(s.projections()) == sorted(kept));

        // The store is usable afterwards, and a transaction that returns commits.
        s.in_transaction(true, [&] { add_user(s, "tec.mamani"); });
        CHECK(s.user_by_name("tec.mamani"));
    });
}

// ---- the server key -----------------------------------------------------------------------

TEST_CASE("there is no server key at first; a set one reads back and a later one replaces it") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        CHECK_FALSE(s.server_key());
        const auto put = [&](std::uint8_t pk_byte, std::uint8_t sk_byte) {
            SecretKey sk;
            std::fill(sk.bytes().begin(), sk.bytes().end(), sk_byte);
            s.set_server_key(key_of(pk_byte), sk);
        };
        put(3, 7);
        auto got = s.server_key();
        REQUIRE(got);
        CHECK(got->first == key_of(3));
        CHECK(got->second == std::vector<std::uint8_t>(64, 7));

        put(4, 9);
        got = s.server_key();
        REQUIRE(got);
        CHECK(got->first == key_of(4));
        CHECK(got->second == std::vector<std::uint8_t>(64, 9));
        // Another process reads the same key.
        CHECK(e.open_again()->server_key()->first == key_of(4));
    });
}

// ---- backups ------------------------------------------------------------------------------

TEST_CASE("a backup opens as a store holding the same users, devices, ops and feeds") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        add_user(s, "sup.rojas", Role::supervisor);
        const Device d = enroll_device(s, tech);
        OpSource src(d.replica, tech);
        const Id ot = Id::random();
        SyncWrite w = write_of(d.replica, {src.note(ot, "a"), src.name(Id::random(), "Juan")});
        w.request_counter = 1;
        w.feed = {feed_new(tech, 0), feed_new(tech, 1)};
        w.projections = {{EntityType::work_order, ot, "{}"}};
        commit(s, w);

        const auto copy_dir = e.dir / "copy";
        std::filesystem::create_directories(copy_dir);
        if (!e.backend.file_in) { // backed up by other tools (PostgreSQL: pg_dump): says so
            CHECK_THROWS_AS(s.backup_to((copy_dir / "copy.db").string()), Error);
            CHECK_FALSE(std::filesystem::exists(copy_dir / "copy.db"));
            return;
        }
        const auto file = e.backend.file_in(copy_dir);
        s.backup_to(file.string());
        CHECK(std::filesystem::exists(file));
        add_user(s, "tec.late"); // after the backup: not in it

        const auto copy = e.backend.open(copy_dir);
        REQUIRE(copy);
        CHECK(copy->healthy());
        CHECK(names_of(copy->users()) == std::vector<std::string>{"sup.rojas", "tec.quispe"});
        check_same_user(*copy->user_by_id(tech), *s.user_by_id(tech));
        REQUIRE(copy->devices().size() == 1);
        check_same_device(copy->devices().front(), *s.device(d.replica));
        const auto ops = s.ops_after(0, 0);
        const auto copied = copy->ops_after(0, 0);
        CHECK(seqs_of(copied) == seqs_of(ops));
        REQUIRE(copied.size() == ops.size());
        for (std::size_t i = 0; i < ops.size(); ++i) {
            CHECK(copied[i].op == ops[i].op);
        }
        CHECK(fseqs_of(copy->feed_after(tech, 0, 100)) == fseqs_of(s.feed_after(tech, 0, 100)));
        CHECK(sorted(copy->projections()) == sorted(s.projections()));
        CHECK(copy->last_seq() == s.last_seq());
    });
}

TEST_CASE("a backup into a missing folder or onto an existing file throws and leaves no new "
          "file") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        add_user(s, "tec.quispe");
        const auto missing = e.dir / "no-such-folder" / "copy.db";
        CHECK_THROWS_AS(s.backup_to(missing.string()), Error);
        CHECK_FALSE(std::filesystem::exists(missing));
        CHECK_FALSE(std::filesystem::exists(missing.parent_path()));

        // An existing file may be the last good backup: it is left as it was.
        const auto existing = e.dir / "last-good.db";
        std::ofstream(existing) << "the last good backup";
        CHECK_THROWS_AS(s.backup_to(existing.string()), Error);
        std::ifstream in(existing);
        std::stringstream content;
        content << in.rdbuf();
        CHECK(content.str() == "the last good backup");
        CHECK(s.healthy());
    });
}

// ---- the whole database as rows (export_rows, import_rows) -------------------------------

namespace {

/// Every row export_rows gives, per table, and the batches' tables and sizes in order.
struct Exported {
    std::map<std::string, std::vector<std::vector<DumpCell>>> rows;
    std::vector<std::pair<std::string, std::size_t>> batches;
};

/// A second, empty database of the case's backend, in a folder `name` of its own.
std::unique_ptr<Store> open_other(const Env& e, const std::string& name) {
    std::filesystem::create_directories(e.dir / name);
    return e.backend.open(e.dir / name);
}

Exported export_all(Store& s, std::size_t batch = 1000) {
    Exported x;
    s.export_rows(
        [&](const DumpRows& r) {
            x.batches.emplace_back(std::string(r.table), r.rows.size());
            auto& rows = x.rows[std::string(r.table)];
            rows.insert(rows.end(), r.rows.begin(), r.rows.end());
        },
        batch);
    return x;
}

/// Some of everything: users, codes, devices (one revoked), a session, fee rows (one of the
/// shipped ones changed), inventory, ops with feeds (history and an eviction), projections,
/// the server key.
struct Filled {
    Id tech, office;
    Device device, revoked;
};

Filled fill(Store& s) {
    Filled f;
    f.tech = add_user(s, "tec.quispe");
    f.office = add_user(s, "bo.rojas", Role::back_office);
    s.set_user_disabled(add_user(s, "tec.ido"), true);
    f.device = enroll_device(s, f.tech, 1);
    f.revoked = enroll_device(s, f.tech, 2, "Moto G");
    REQUIRE(s.revoke_device(f.revoked.replica));
    s.add_enroll_code(code_hash("pending"), f.tech, k_now + k_hour);
    s.add_session({blake2b_256("token"), f.office, k_now, k_now + k_hour});
    s.put_fee_record({"internet", 1554091200000, 21000, f.office, k_now}); // a shipped key
    s.put_fee_record({"internet", k_now, 25000, f.office, k_now});
    s.import_inventory({{"CT-1", "Ana", "natural", "1 CB", "Calle 1", k_now},
                        {"ct-0", "Juan", "natural", "2 CB", "Calle 2", k_now}},
                       {{"ZTEG1", "CT-1", "gpon_ont", "F660", "ONT", k_now},
                        {"DEC1", "CT-1", "decoder", "K", "Decodificador", k_now}});
    OpSource src(f.device.replica, f.tech);
    const Id ot = Id::random();
    SyncWrite w = write_of(f.device.replica, {src.note(ot, "a"), src.name(Id::random(), "Juan")});
    w.request_counter = 3;
    w.cursor = 1;
    w.ops[1].flagged = true;
    w.ops[1].skew_ms = -40;
    w.feed = {feed_new(f.tech, 0), feed_new(f.office, 1, true)};
    w.projections = {{EntityType::work_order, ot, R"({"status":"issued"})"}};
    const auto seqs = commit(s, w);
    SyncWrite w2 = write_of(k_server_replica, {});
    w2.feed = {feed_old(f.tech, seqs[1]), feed_evict(f.tech, EntityType::work_order, ot)};
    commit(s, w2);
    const auto key = SigningKeyPair::generate();
    s.set_server_key(key.public_key, key.secret);
    return f;
}

/// The tables fill() puts rows in, in k_dump_tables order.
std::vector<std::string_view> filled_tables() {
    static const std::vector<std::string_view> filled{
        "users",     "enroll_codes", "devices", "sessions",   "fee_table",   "contracts",
        "inventory", "ops",          "feed",    "feed_heads", "projections", "server_key"};
    std::vector<std::string_view> out;
    for (const DumpTable& t : k_dump_tables) {
        if (std::find(filled.begin(), filled.end(), t.name) != filled.end()) {
            out.push_back(t.name);
        }
    }
    REQUIRE(out.size() == filled.size());
    return out;
}

} // namespace

TEST_CASE("a new store has no table with rows but the fee table it ships, which does not count") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        CHECK(s.tables_with_rows().empty());
        add_user(s, "tec.quispe");
        CHECK(s.tables_with_rows() == std::vector<std::string_view>{"users"});
        s.put_fee_record({"internet", k_now, 25000, std::nullopt, k_now});
        CHECK(s.tables_with_rows() == std::vector<std::string_view>{"users", "fee_table"});
        const auto full = open_other(e, "full");
        fill(*full);
        CHECK(full->tables_with_rows() == filled_tables());
    });
}

TEST_CASE("export_rows gives every table in order, rows in key order, in batches; import_rows "
          "into an empty store gives back the same rows, and sequences continue above them") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Filled f = fill(s);
        const Exported x = export_all(s, 2);
        // Tables in k_dump_tables order, each batch 1 or 2 rows.
        std::vector<std::string> order;
        for (const auto& [table, n] : x.batches) {
            CHECK(n >= 1);
            CHECK(n <= 2);
            if (order.empty() || order.back() != table) {
                order.push_back(table);
            }
        }
        std::vector<std::string> want;
        for (const auto t : filled_tables()) {
            want.emplace_back(t);
        }
        CHECK(order == want);
        CHECK(x.rows.at("ops").size() == 2);
        CHECK(x.rows.at("feed").size() == 4);
        CHECK(x.rows.at("fee_table").size() == 5);
        // Text keys in byte order: upper case before lower case.
        CHECK(x.rows.at("contracts")[0][0].data == "CT-1");
        CHECK(x.rows.at("contracts")[1][0].data == "ct-0");
        CHECK(x.rows.at("ops")[1][8].integer == 1); // flagged
        CHECK(x.rows.at("users")[0][3].kind != DumpCell::Kind::null);

        const auto copy = open_other(e, "copy");
        copy->in_transaction(
            true, [&] { s.export_rows([&](const DumpRows& r) { copy->import_rows(r); }, 3); });
        CHECK(export_all(*copy).rows == x.rows);
        CHECK(copy->tables_with_rows() == filled_tables());
        // Read back through the store as the source reads.
        check_same_device(*copy->device(f.revoked.replica), *s.device(f.revoked.replica));
        CHECK(copy->device(f.device.replica)->last_counter == 3);
        check_same_user(*copy->user_by_name("tec.ido"), *s.user_by_name("tec.ido"));
        CHECK(copy->session(blake2b_256("token")));
        CHECK(copy->fee_records().size() == s.fee_records().size());
        CHECK(fseqs_of(copy->feed_after(f.tech, 0, 100)) == std::vector<std::uint64_t>{1, 2, 3});
        CHECK(copy->server_key()->second == s.server_key()->second);

        // What comes next continues above what was imported.
        const Device next = enroll_device(*copy, f.tech, 3);
        CHECK(next.replica > f.revoked.replica);
        OpSource src(next.replica, f.tech);
        SyncWrite w = write_of(next.replica, {src.note(Id::random(), "b")});
        w.feed = {feed_new(f.tech, 0)};
        CHECK(commit(*copy, w) == std::vector<std::uint64_t>{3});
        CHECK(fseqs_of(copy->feed_after(f.tech, 3, 100)) == std::vector<std::uint64_t>{4});
        CHECK(copy->feed_count_after(f.tech, 0) == 4);
        // The pending code enrolls on the copy.
        CHECK(copy->enroll(code_hash("pending"), key_of(4), "Nuevo", k_now));
    });
}

TEST_CASE("an import that fails inside a write transaction leaves nothing, and rows that do not "
          "fit a table are refused") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        fill(s);
        const Exported x = export_all(s);
        const auto copy = open_other(e, "copy");
        // The feed before the ops it names: a broken reference, after users went in.
        CHECK_THROWS_AS(copy->in_transaction(true,
                                             [&] {
                                                 copy->import_rows({"users", x.rows.at("users")});
                                                 copy->import_rows({"feed", x.rows.at("feed")});
                                             }),
                        Error);
        CHECK(copy->tables_with_rows().empty());
        CHECK(copy->users().empty());

        auto bad = x.rows.at("users");
        bad[0][0] = {DumpCell::Kind::integer, 7, ""}; // an id must be bytes
        CHECK_THROWS_AS(copy->import_rows({"users", bad}), Error);
        bad = x.rows.at("users");
        bad[0].pop_back();
        CHECK_THROWS_AS(copy->import_rows({"users", bad}), Error);
        CHECK_THROWS_AS(copy->import_rows({"schema_version", {}}), Error);
        // A row twice breaks its key: the call is all or nothing.
        auto twice = x.rows.at("users");
        twice.push_back(twice.front());
        CHECK_THROWS_AS(copy->import_rows({"users", twice}), Error);
        CHECK(copy->tables_with_rows().empty());
    });
}

TEST_CASE("export_rows inside a read transaction reads its snapshot while another process "
          "commits") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const auto other = e.open_again();
        add_user(s, "tec.quispe");
        std::size_t first = 0, second = 0;
        s.in_transaction(false, [&] {
            first = export_all(s).rows["users"].size();
            add_user(*other, "tec.mamani");
            second = export_all(s).rows["users"].size();
        });
        CHECK(first == 1);
        CHECK(second == 1);
        CHECK(export_all(s).rows["users"].size() == 2);
    });
}

// ---- all or nothing -----------------------------------------------------------------------

TEST_CASE("a group commit with one invalid write stores nothing of any write") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.quispe");
        const Device d = enroll_device(s, tech);
        OpSource src(d.replica, tech);
        const Id ot = Id::random();
        const auto check_nothing_stored = [&] {
            CHECK(s.op_count() == 0);
            CHECK(s.last_seq() == 0);
            CHECK(s.ops_after(0, 0).empty());
            CHECK(s.op_seqs_of_entity(EntityType::work_order, ot).empty());
            CHECK(s.feed_count_after(tech, 0) == 0);
            CHECK(s.feed_after(tech, 0, 100).empty());
            CHECK(s.projections().empty());
            CHECK(s.device(d.replica)->last_counter == 0);
            CHECK(s.device(d.replica)->cursor == 0);
        };

        SyncWrite good = write_of(d.replica, {src.note(ot, "a"), src.note(ot, "b")});
        good.request_counter = 4;
        good.cursor = 0;
        good.feed = {feed_new(tech, 0), feed_new(tech, 1)};
        good.projections = {{EntityType::work_order, ot, "{}"}};

        SUBCASE("a feed row naming an op index the write does not have") {
            SyncWrite bad = write_of(d.replica, {src.note(ot, "c")});
            bad.request_counter = 5;
            bad.cursor = 3;
            bad.feed = {feed_new(tech, 0), feed_new(tech, 7)};
            CHECK_THROWS(s.commit_many({&good, &bad}));
            check_nothing_stored();
        }
        SUBCASE("an op whose id (replica, counter) is already in the batch") {
            Op twin = good.ops[0].op; // another op under the same id
            twin.value = text("not a");
            SyncWrite bad = write_of(d.replica, {src.note(ot, "c"), twin});
            bad.request_counter = 5;
            CHECK_THROWS(s.commit_many({&good, &bad}));
            check_nothing_stored();
        }

        // The store goes on: the valid write alone commits whole, and a twin of a stored op
        // is still refused.
        const auto seqs = commit(s, good);
        CHECK(seqs.size() == 2);
        CHECK(s.op_count() == 2);
        CHECK(s.feed_count_after(tech, 0) == 2);
        CHECK(s.device(d.replica)->last_counter == 4);
        Op twin = good.ops[1].op;
        twin.value = text("not b");
        const SyncWrite again = write_of(d.replica, {src.note(ot, "d"), twin});
        CHECK_THROWS(s.commit_many({&again}));
        CHECK(s.op_count() == 2);
        CHECK(s.op_seqs_of_entity(EntityType::work_order, ot) == seqs);
    });
}

TEST_CASE("devices' sessions and signed batches read back whole, from any connection, in order") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const Id tech = add_user(s, "tec.sesion");
        const Device d = enroll_device(s, tech);
        DeviceSession live;
        live.id.fill(0x11);
        live.replica = d.replica;
        live.key.bytes.fill(0x22);
        live.created_at = k_now;
        live.expires_at = k_now + 3'600'000;
        s.add_device_session(live);
        DeviceSession old = live;
        old.id.fill(0x33);
        old.expires_at = k_now - 1;
        s.add_device_session(old);
        const auto other = e.open_again();
        const auto got = other->device_session(live.id);
        REQUIRE(got);
        CHECK(got->replica == d.replica);
        CHECK(got->key.bytes == live.key.bytes);
        CHECK(got->expires_at == live.expires_at);
        CHECK_FALSE(other->device_session(SessionId{}));
        CHECK(s.delete_expired_device_sessions(k_now) == 1);
        CHECK_FALSE(s.device_session(old.id));
        CHECK(s.device_session(live.id));

        // 600 batches (more than one page), committed with their requests, read in order.
        std::vector<SyncWrite> writes(600);
        std::vector<const SyncWrite*> ptrs;
        for (std::size_t i = 0; i < writes.size(); ++i) {
            SyncWrite& w = writes[i];
            w.replica = d.replica;
            w.request_counter = 1000 - i; // committed out of order
            w.now = k_now;
            OpBatch b;
            b.replica = d.replica;
            b.request_counter = w.request_counter;
            b.signature.fill(static_cast<std::uint8_t>(i));
            b.leaves = {{OpId{d.replica, 2 * i + 1}, Hash256{}}, {OpId{d.replica, 2 * i + 2}, {}}};
            b.leaves[1].second.fill(static_cast<std::uint8_t>(i + 1));
            b.received_at = k_now + static_cast<std::int64_t>(i);
            w.batch = b;
            ptrs.push_back(&w);
        }
        s.commit_many(ptrs);
        std::vector<OpBatch> read;
        other->for_each_op_batch([&](const OpBatch& b) { read.push_back(b); });
        REQUIRE(read.size() == writes.size());
        for (std::size_t i = 0; i < read.size(); ++i) {
            CAPTURE(i);
            const SyncWrite& w = writes[writes.size() - 1 - i];
            CHECK(read[i].request_counter == w.request_counter);
            CHECK(read[i].signature == w.batch->signature);
            CHECK(read[i].leaves == w.batch->leaves);
            CHECK(read[i].received_at == w.batch->received_at);
        }
    });
}

TEST_CASE("an attachment's chunks stage in order and its whole blob is kept once, with its "
          "references, on one backend as on the other") {
    for_each_backend([](const Env& e) {
        Store& s = e.store;
        const std::string data = "\xff\xd8\xff" + std::string(5000, 'x') + "\xff\xd9";
        const Hash256 h = blake2b_256(data);
        CHECK(s.staged_bytes(h) == 0);
        CHECK_FALSE(s.blob_info(h));
        s.stage_chunk(h, 0, std::string_view(data).substr(0, 2000));
        s.stage_chunk(h, 0, std::string_view(data).substr(0, 1000)); // one already there stays
        s.stage_chunk(h, 2000, std::string_view(data).substr(2000, 2000));
        CHECK(s.staged_bytes(h) == 4000);
        s.stage_chunk(h, 4000, std::string_view(data).substr(4000));
        CHECK(s.staged_blob(h) == data);
        // Seen from another connection (another process, another instance) too.
        CHECK(e.open_again()->staged_bytes(h) == data.size());

        const Id ot = Id::random();
        const BlobRef ref{h, attachment::Kind::equipment_photo, EntityType::work_order, ot,
                          "ZTEG01"};
        s.store_blob(h, StoredBlob{attachment::MediaType::jpeg, data.size(), k_now}, data, {ref});
        CHECK(s.staged_bytes(h) == 0);
        const auto info = s.blob_info(h);
        REQUIRE(info);
        CHECK(info->media == attachment::MediaType::jpeg);
        CHECK(info->size == data.size());
        CHECK(info->stored_at == k_now);
        CHECK(s.blob_data(h) == data);
        // Kept again: the blob stays as it was, a new reference joins, a known one is not doubled.
        const BlobRef other{h, attachment::Kind::equipment_photo, EntityType::work_order,
                            Id::random(), "ZTEG02"};
        s.store_blob(h, StoredBlob{attachment::MediaType::png, 1, k_now + 1}, "y", {ref, other});
        CHECK(s.blob_data(h) == data);
        CHECK(s.blob_info(h)->stored_at == k_now);
        auto refs = s.blob_refs(h);
        CHECK(refs.size() == 2);
        CHECK(std::find(refs.begin(), refs.end(), ref) != refs.end());
        CHECK(std::find(refs.begin(), refs.end(), other) != refs.end());
        s.add_blob_refs({other});
        CHECK(s.blob_refs(h).size() == 2);

        // Staged chunks of another upload are dropped whole.
        const Hash256 g = blake2b_256("another");
        s.stage_chunk(g, 0, "abc");
        s.drop_staged(g);
        CHECK(s.staged_bytes(g) == 0);
        CHECK(s.blob_refs(g).empty());
        CHECK_FALSE(s.blob_data(g));
    });
}
