// PostgreSQL implementation of Store, on libpq (postgres_store.hpp).
//
// Queries: every one is a prepared statement (prepared once per connection, cached by the
// address of its SQL literal) executed with typed, binary parameters and binary results:
// ids, keys and op bodies are bytea, integers int8, text raw UTF-8. No value is ever put
// into SQL text.
//
// Concurrency: one connection behind a recursive mutex, as the SQLite store: every call is
// atomic and waits for a commit in progress (docs/architecture.md §7). open_reader gives
// another store on a connection of its own (the sync service's pulls use a few).
//
// Writes and the write lock: every write runs in a transaction that first takes one
// transaction-scoped advisory lock (k_write_lock), and in_transaction(write) holds the same
// lock (session-scoped, taken before its snapshot). So writers are one at a time across
// every process on the database, like SQLite's BEGIN IMMEDIATE, and nothing commits between
// a write transaction's reads and its writes.
//
// Op sequences: max(seq)+1 read under that lock, in the committing transaction, not a
// BIGINT sequence. A sequence hands numbers out outside transactions: with two writers, the
// transaction that took 9 can commit after the one that took 10, and a reader that already
// moved past 10 never sees 9 (a sequence gap); a rollback also burns numbers. Under the
// write lock, seq order is commit order, so `seq > cursor` never skips a later commit, at
// the price of one writer at a time: writes are serialised through the database, and the
// sync service of each instance catches up with the log inside that lock before it merges
// (shared() is true; docs/architecture.md §7).
//
// Durability: synchronous_commit=on for the session (set explicitly at connect, whatever
// the server's default): COMMIT returns once the WAL is flushed. Every commit is
// synchronous but claim_counter's (a pull's counter and cursor: no field fact, flushed by
// the next synchronous commit).
#include "store/postgres_store.hpp"

#include "otsync/codec.hpp"
#include "otsync/error.hpp"

#include <libpq-fe.h>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace otsync::server {

namespace {

// Type OIDs of the parameters we send (pg_type.dat): fixed since PostgreSQL 7.
constexpr Oid k_bytea = 17;
constexpr Oid k_int8 = 20;
constexpr Oid k_text = 25;
constexpr Oid k_int8_array = 1016;

/// The advisory lock every writer takes ("otsync" in ASCII).
constexpr std::int64_t k_write_lock = 0x6f7473796e63;

struct ConnCloser {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClearer {
    void operator()(PGresult* r) const { PQclear(r); }
};

/// A statement failed: the SQLSTATE tells a unique violation (23505) from the rest.
class SqlError : public Error {
public:
    SqlError(std::string sqlstate, const std::string& message)
        : Error(ErrorCode::internal, message), m_sqlstate(std::move(sqlstate)) {}
    const std::string& sqlstate() const { return m_sqlstate; }

private:
    std::string m_sqlstate;
};

/// Typed parameters in libpq's binary format (text arrays in text format).
class Params {
public:
    Params& i64(std::int64_t v) {
        std::string b(8, '\0');
        auto u = static_cast<std::uint64_t>(v);
        for (int i = 7; i >= 0; --i) {
            b[static_cast<std::size_t>(i)] = static_cast<char>(u & 0xff);
            u >>= 8;
        }
        return push(k_int8, std::move(b), 1);
    }
    Params& u64(std::uint64_t v) { return i64(static_cast<std::int64_t>(v)); }
    Params& text(std::string_view s) { return push(k_text, std::string(s), 1); }
    Params& bytes(const void* p, std::size_t n) {
        return push(k_bytea, std::string(static_cast<const char*>(p), n), 1);
    }
    Params& id(const Id& id) { return bytes(id.bytes.data(), id.bytes.size()); }
    Params& null(Oid type) {
        m_types.push_back(type);
        m_values.emplace_back();
        m_null.push_back(true);
        m_formats.push_back(1);
        return *this;
    }
    /// A bigint[] in the text array format ("{1,2,3}"): a parameter value, not SQL.
    Params& int8_array(const std::vector<std::uint64_t>& v) {
        std::string s = "{";
        for (std::size_t i = 0; i < v.size(); ++i) {
            s += (i ? "," : "") + std::to_string(static_cast<std::int64_t>(v[i]));
        }
        return push(k_int8_array, s + "}", 0);
    }

    int size() const { return static_cast<int>(m_values.size()); }
    const Oid* types() const { return m_types.data(); }
    const int* formats() const { return m_formats.data(); }
    /// Pointers and lengths, valid while this object is unchanged.
    std::vector<const char*> values() const {
        std::vector<const char*> out;
        for (std::size_t i = 0; i < m_values.size(); ++i) {
            out.push_back(m_null[i] ? nullptr : m_values[i].data());
        }
        return out;
    }
    std::vector<int> lengths() const {
        std::vector<int> out;
        for (const auto& v : m_values) {
            out.push_back(static_cast<int>(v.size()));
        }
        return out;
    }

private:
    Params& push(Oid type, std::string v, int format) {
        m_types.push_back(type);
        m_values.push_back(std::move(v));
        m_null.push_back(false);
        m_formats.push_back(format);
        return *this;
    }
    std::vector<Oid> m_types;
    std::vector<std::string> m_values;
    std::vector<bool> m_null;
    std::vector<int> m_formats;
};

/// A result in binary format: rows and typed columns.
class Result {
public:
    explicit Result(PGresult* r) : m_r(r) {}
    int rows() const { return PQntuples(m_r.get()); }
    bool is_null(int row, int col) const { return PQgetisnull(m_r.get(), row, col) != 0; }
    /// Any integer column (int2, int4, int8, bool), big-endian on the wire.
    std::int64_t i64(int row, int col) const {
        if (is_null(row, col)) {
            return 0;
        }
        const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(m_r.get(), row, col));
        const int n = PQgetlength(m_r.get(), row, col);
        if (n != 1 && n != 2 && n != 4 && n != 8) {
            throw Error(ErrorCode::internal, "unexpected integer width from PostgreSQL");
        }
        std::uint64_t u = (p[0] & 0x80) && n > 1 ? ~std::uint64_t{0} : 0; // sign-extend
        for (int i = 0; i < n; ++i) {
            u = (u << 8) | p[i];
        }
        return static_cast<std::int64_t>(u);
    }
    std::uint64_t u64(int row, int col) const { return static_cast<std::uint64_t>(i64(row, col)); }
    /// text or bytea: the raw bytes ("" for NULL).
    std::string bytes(int row, int col) const {
        if (is_null(row, col)) {
            return {};
        }
        return std::string(PQgetvalue(m_r.get(), row, col),
                           static_cast<std::size_t>(PQgetlength(m_r.get(), row, col)));
    }
    Id id(int row, int col) const {
        const std::string b = bytes(row, col);
        if (b.size() != 16) {
            throw Error(ErrorCode::internal, "stored id is not 16 bytes");
        }
        Id id;
        std::copy(b.begin(), b.end(), id.bytes.begin());
        return id;
    }
    /// Rows an INSERT/UPDATE/DELETE touched.
    std::size_t affected() const {
        const char* n = PQcmdTuples(m_r.get());
        return n && *n ? static_cast<std::size_t>(std::strtoull(n, nullptr, 10)) : 0;
    }

private:
    std::unique_ptr<PGresult, ResultClearer> m_r;
};

// Migrations, in order; migration i brings the schema from version i to i+1. The same
// versions as SQLite's (sqlite_store.cpp), each the PostgreSQL form of the same change, so
// a schema version means one schema on either backend.
const char* const k_migrations[] = {
    // 0 -> 1
    R"sql(
    CREATE TABLE users(
        id BYTEA PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT,
        disabled BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL);
    -- Enrollment codes are stored hashed (BLAKE2b-256): a leaked database leaks no code.
    CREATE TABLE enroll_codes(
        code_hash BYTEA PRIMARY KEY,
        user_id BYTEA NOT NULL REFERENCES users(id),
        expires_at BIGINT NOT NULL,
        used_at BIGINT);
    CREATE TABLE devices(
        -- replica ids are never reused: an identity's sequence never goes back
        replica BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id BYTEA NOT NULL REFERENCES users(id),
        public_key BYTEA NOT NULL,
        label TEXT NOT NULL,
        status BIGINT NOT NULL DEFAULT 0,
        last_counter BIGINT NOT NULL DEFAULT 0,
        cursor BIGINT NOT NULL DEFAULT 0,
        last_seen BIGINT NOT NULL DEFAULT 0,
        enrolled_at BIGINT NOT NULL);
    -- The op log. seq is the server sequence (max+1 under the write lock, see the top of
    -- postgres_store.cpp); (replica, counter) is the op id.
    CREATE TABLE ops(
        seq BIGINT PRIMARY KEY,
        replica BIGINT NOT NULL,
        counter BIGINT NOT NULL,
        entity_type BIGINT NOT NULL,
        entity BYTEA NOT NULL,
        body BYTEA NOT NULL,           -- the op in the binary codec, as received
        received_at BIGINT NOT NULL,
        skew_ms BIGINT NOT NULL,
        flagged BIGINT NOT NULL DEFAULT 0,
        UNIQUE(replica, counter));
    CREATE INDEX ops_by_entity ON ops(entity_type, entity, seq);
    -- Per-user delivery feed: what each technician's devices must receive, in order.
    CREATE TABLE feed(
        user_id BYTEA NOT NULL,
        fseq BIGINT NOT NULL,
        op_seq BIGINT REFERENCES ops(seq),
        evict_type BIGINT,
        evict_id BYTEA,
        PRIMARY KEY(user_id, fseq));
    CREATE TABLE feed_heads(user_id BYTEA PRIMARY KEY, last_fseq BIGINT NOT NULL);
    CREATE TABLE projections(
        entity_type BIGINT NOT NULL,
        entity BYTEA NOT NULL,
        state TEXT NOT NULL,
        updated_seq BIGINT NOT NULL,
        PRIMARY KEY(entity_type, entity));
    CREATE TABLE server_key(
        id BIGINT PRIMARY KEY CHECK (id = 1),
        public_key BYTEA NOT NULL,
        secret_key BYTEA NOT NULL);
    )sql",
    // 1 -> 2: people and the procedure's reference data.
    R"sql(
    ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN unit TEXT NOT NULL DEFAULT '';
    -- Sessions: the token is 32 random bytes given to the client; only its hash is kept.
    CREATE TABLE sessions(
        token_hash BYTEA PRIMARY KEY,
        user_id BYTEA NOT NULL REFERENCES users(id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL);
    CREATE INDEX sessions_by_user ON sessions(user_id);
    -- The dated transfer fee table (Anexo 2). Money in centavos, dates in ms UTC.
    CREATE TABLE fee_table(
        product TEXT NOT NULL,
        effective_from BIGINT NOT NULL,
        centavos BIGINT NOT NULL CHECK (centavos >= 0),
        set_by BYTEA,
        set_at BIGINT NOT NULL,
        PRIMARY KEY(product, effective_from));
    -- Prices of April 2019 (2019-04-01T00:00:00-04:00, Bolivia).
    INSERT INTO fee_table(product, effective_from, centavos, set_at) VALUES
        ('telefonia_fija', 1554091200000, 14628, 0),
        ('internet', 1554091200000, 20000, 0),
        ('tv_cable', 1554091200000, 20000, 0),
        ('duo_multipack', 1554091200000, 20000, 0);
    -- Contracts and their equipment, from the inventory import.
    CREATE TABLE contracts(
        contract TEXT PRIMARY KEY,
        customer_name TEXT NOT NULL,
        person_type TEXT NOT NULL,
        tax_id TEXT NOT NULL,
        address TEXT NOT NULL,
        imported_at BIGINT NOT NULL);
    CREATE TABLE inventory(
        serial TEXT PRIMARY KEY,
        contract TEXT NOT NULL REFERENCES contracts(contract),
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        description TEXT NOT NULL,
        imported_at BIGINT NOT NULL);
    CREATE INDEX inventory_by_contract ON inventory(contract);
    )sql",
    // 2 -> 3: when a device was revoked (the server signs it as the device's proof).
    R"sql(
    ALTER TABLE devices ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;
    )sql",
    // 3 -> 4: feed rows that replay an entity's history on arrival reach the op's author.
    R"sql(
    ALTER TABLE feed ADD COLUMN history BIGINT NOT NULL DEFAULT 0;
    UPDATE feed SET history=1 WHERE op_seq IS NOT NULL;
    )sql",
    // 4 -> 5: a counter that every change to users, and to who a device is (its user, key,
    // label, status), bumps, whichever process or connection makes it; a sync's own
    // bookkeeping (counter, cursor, last seen) does not. Row triggers, as SQLite's.
    R"sql(
    CREATE TABLE directory_version(id BIGINT PRIMARY KEY CHECK (id = 1), v BIGINT NOT NULL);
    INSERT INTO directory_version VALUES(1, 1);
    CREATE FUNCTION otsync_directory_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE directory_version SET v = v + 1; RETURN NULL; END $$;
    CREATE TRIGGER directory_user AFTER INSERT OR UPDATE OR DELETE ON users
        FOR EACH ROW EXECUTE FUNCTION otsync_directory_bump();
    CREATE TRIGGER directory_device_insert_delete AFTER INSERT OR DELETE ON devices
        FOR EACH ROW EXECUTE FUNCTION otsync_directory_bump();
    CREATE TRIGGER directory_device_update
        AFTER UPDATE OF user_id, public_key, label, status, revoked_at ON devices
        FOR EACH ROW EXECUTE FUNCTION otsync_directory_bump();
    )sql",
    // 5 -> 6: closed cases out of memory, as SQLite's.
    R"sql(
    CREATE TABLE archived_cases(
        case_id BYTEA PRIMARY KEY,
        opened_at BIGINT NOT NULL,
        figure TEXT NOT NULL,
        contract TEXT COLLATE "C" NOT NULL,
        status TEXT COLLATE "C" NOT NULL,
        modality BIGINT NOT NULL
    );
    CREATE INDEX archived_cases_by_opening ON archived_cases(opened_at, case_id);
    CREATE INDEX archived_cases_by_contract ON archived_cases(contract, opened_at);
    CREATE TABLE archive(
        entity BYTEA PRIMARY KEY,
        entity_type BIGINT NOT NULL,
        case_id BYTEA NOT NULL
    );
    CREATE INDEX archive_by_case ON archive(case_id);
    )sql",
    // 6 -> 7: protocol 2, as SQLite's.
    R"sql(
    CREATE TABLE device_sessions(
        id BYTEA PRIMARY KEY,
        replica BIGINT NOT NULL,
        mac_key BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX device_sessions_by_expiry ON device_sessions(expires_at);
    CREATE TABLE op_batches(
        replica BIGINT NOT NULL,
        request_counter BIGINT NOT NULL,
        signature BYTEA NOT NULL,
        leaves BYTEA NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY(replica, request_counter)
    );
    )sql",
    // 7 -> 8: attachments, as SQLite's.
    R"sql(
    CREATE TABLE blobs(
        hash BYTEA PRIMARY KEY,
        media BIGINT NOT NULL,
        size BIGINT NOT NULL,
        data BYTEA NOT NULL,
        stored_at BIGINT NOT NULL
    );
    CREATE TABLE blob_chunks(
        hash BYTEA NOT NULL,
        start BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY(hash, start)
    );
    CREATE TABLE blob_refs(
        hash BYTEA NOT NULL,
        kind BIGINT NOT NULL,
        entity_type BIGINT NOT NULL,
        entity BYTEA NOT NULL,
        label TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY(hash, kind, entity_type, entity, label)
    );
    )sql",
};
static_assert(std::size(k_migrations) == k_schema_version);

Op decode_one(const std::string& body) {
    auto ops = decode_ops(body);
    if (ops.size() != 1) {
        throw Error(ErrorCode::internal,
                    "stored op body holds " + std::to_string(ops.size()) + " ops");
    }
    return std::move(ops.front());
}

std::string without_password(const std::string& conninfo) {
    // Error messages name the database, never a password in the string.
    const auto p = conninfo.find("password");
    const auto at = conninfo.find('@');
    if (p != std::string::npos) {
        return "(a connection string with a password)";
    }
    if (conninfo.rfind("postgres", 0) == 0 && at != std::string::npos) {
        const auto colon = conninfo.find(':', conninfo.find("//") + 2);
        if (colon != std::string::npos && colon < at) {
            return conninfo.substr(0, colon) + ":***" + conninfo.substr(at);
        }
    }
    return conninfo;
}

// ==== the whole database as rows (Store::export_rows, import_rows; otsync-admin migrate) ====

/// The SQL of one dump table (k_dump_tables, same index). Built once and kept for the life of
/// the program, so exec() may key its prepared statements by the strings' addresses.
struct DumpSql {
    std::string select; // every row, in key order (text keys COLLATE "C": byte order)
    std::string insert;
    std::string any;                    // true when a row other than a shipped one exists
    std::string unship;                 // removes the shipped row with a key; empty: none
    std::vector<std::size_t> key_cells; // unship's parameters: those cells of a row
};

const std::vector<DumpSql>& dump_sql() {
    static const std::vector<DumpSql> all = [] {
        std::vector<DumpSql> out;
        for (const DumpTable& t : k_dump_tables) {
            const std::string name(t.name), columns(t.columns), shipped(t.shipped);
            const auto names = dump_columns(t.columns);
            auto cell_of = [&](std::string_view column) {
                return static_cast<std::size_t>(std::find(names.begin(), names.end(), column) -
                                                names.begin());
            };
            DumpSql q;
            std::string order;
            for (const auto k : dump_columns(t.key)) {
                order += (order.empty() ? "" : ", ") + std::string(k) +
                         (t.kinds[cell_of(k)] == 't' ? " COLLATE \"C\"" : "");
            }
            q.select = "SELECT " + columns + " FROM " + name + " ORDER BY " + order;
            std::string marks;
            for (std::size_t i = 0; i < names.size(); ++i) {
                marks += (i ? ",$" : "$") + std::to_string(i + 1);
            }
            q.insert = "INSERT INTO " + name + "(" + columns + ") VALUES(" + marks + ")";
            q.any = "SELECT EXISTS(SELECT 1 FROM " + name +
                    (shipped.empty() ? "" : " WHERE NOT (" + shipped + ")") + ")";
            if (!shipped.empty()) {
                q.unship = "DELETE FROM " + name + " WHERE (" + shipped + ")";
                for (const auto k : dump_columns(t.key)) {
                    q.key_cells.push_back(cell_of(k));
                    q.unship +=
                        " AND " + std::string(k) + "=$" + std::to_string(q.key_cells.size());
                }
            }
            out.push_back(std::move(q));
        }
        return out;
    }();
    return all;
}

// ==== end of the whole database as rows ====

/// The channel on which every commit_many announces its feeds (notifications are sent
/// with the commit, never for a rolled-back one), and the longest payload sent: past it,
/// "*" (PostgreSQL takes at most 8000 bytes).
constexpr const char* k_commit_channel = "otsync_commits";
constexpr std::size_t k_notify_max_bytes = 7000;

/// The payload of a commit's notification: "o" when it appended ops ("-" otherwise), then
/// ",HEX" per user whose feed moved; "*" when that would be too long.
std::string commit_payload(const std::vector<const SyncWrite*>& ws) {
    std::vector<Id> users;
    bool any_op = false;
    for (const SyncWrite* w : ws) {
        any_op = any_op || !w->ops.empty();
        for (const auto& f : w->feed) {
            users.push_back(f.user);
        }
    }
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
    if (users.empty() && !any_op) {
        return "";
    }
    std::string payload = any_op ? "o" : "-";
    for (const Id& u : users) {
        payload += ',' + u.hex();
        if (payload.size() > k_notify_max_bytes) {
            return "*";
        }
    }
    return payload;
}

/// Adds one notification's payload to `n`; an unreadable one wakes everything.
void read_payload(const std::string& payload, CommitNotice& n) {
    if (payload.empty() || payload == "*" || (payload[0] != 'o' && payload[0] != '-')) {
        n.all = true;
        return;
    }
    n.any_op = n.any_op || payload[0] == 'o';
    for (std::size_t at = payload.find(','); at != std::string::npos;) {
        const std::size_t end = payload.find(',', at + 1);
        const std::string hex =
            payload.substr(at + 1, end == std::string::npos ? end : end - at - 1);
        try {
            n.users.push_back(Id::from_hex(hex));
        } catch (const Error&) {
            n.all = true;
        }
        at = end;
    }
}

/// LISTEN on a connection of its own. Notifications sent by `own_backend` (the writing
/// connection of the same instance, whose committer already woke its waits) are skipped.
class PostgresCommitListener final : public CommitListener {
public:
    PostgresCommitListener(std::string conninfo, int own_backend)
        : m_conninfo(std::move(conninfo)), m_own_backend(own_backend) {
        open(); // a failure is retried by wait()
    }

    std::optional<CommitNotice> wait(int timeout_ms) override {
        if (!m_conn && !open()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
            return std::nullopt;
        }
        if (m_reopened) { // commits may have come while no connection listened
            m_reopened = false;
            return CommitNotice{.all = true, .any_op = true, .users = {}};
        }
        pollfd p{PQsocket(m_conn.get()), POLLIN, 0};
        if (::poll(&p, 1, timeout_ms) < 0) {
            return std::nullopt; // a signal: the caller asks again
        }
        if (PQconsumeInput(m_conn.get()) == 0) {
            m_conn.reset(); // opened again at the next wait, which then wakes every wait
            return std::nullopt;
        }
        std::optional<CommitNotice> out;
        while (PGnotify* n = PQnotifies(m_conn.get())) {
            if (n->be_pid != m_own_backend) {
                if (!out) {
                    out.emplace();
                }
                read_payload(n->extra ? n->extra : "", *out);
            }
            PQfreemem(n);
        }
        return out;
    }

private:
    bool open() {
        m_conn.reset(PQconnectdb(m_conninfo.c_str()));
        if (!m_conn || PQstatus(m_conn.get()) != CONNECTION_OK) {
            m_conn.reset();
            return false;
        }
        PQsetNoticeProcessor(
            m_conn.get(), [](void*, const char*) {}, nullptr);
        const std::unique_ptr<PGresult, ResultClearer> r(
            PQexec(m_conn.get(), (std::string("LISTEN ") + k_commit_channel).c_str()));
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
            m_conn.reset();
            return false;
        }
        m_reopened = m_opened_once;
        m_opened_once = true;
        return true;
    }

    std::string m_conninfo;
    int m_own_backend;
    std::unique_ptr<PGconn, ConnCloser> m_conn;
    bool m_opened_once = false;
    bool m_reopened = false;
};

class PostgresStore final : public Store {
public:
    /// `reader`: another connection of a store that opened (and migrated) the database.
    explicit PostgresStore(const PostgresOptions& o, bool reader = false)
        : m_options(o), m_where(without_password(o.conninfo)) {
        m_conn.reset(PQconnectdb(o.conninfo.c_str()));
        if (!m_conn || PQstatus(m_conn.get()) != CONNECTION_OK) {
            throw Error(ErrorCode::internal,
                        "cannot connect to PostgreSQL " + m_where + ": " +
                            (m_conn ? PQerrorMessage(m_conn.get()) : "out of memory"));
        }
        // Notices (a backend told to terminate) would go to stderr: the failing call says it.
        PQsetNoticeProcessor(
            m_conn.get(), [](void*, const char*) {}, nullptr);
        setup_session();
        if (!reader) {
            migrate();
        }
    }

    std::unique_ptr<Store> open_reader() override {
        return std::make_unique<PostgresStore>(m_options, true);
    }

    // ---- users ----
    void add_user(const User& u) override {
        std::lock_guard lock(m_mutex);
        Params p;
        p.id(u.id).text(u.name).text(to_string(u.role)).i64(u.disabled ? 1 : 0).i64(u.created_at);
        if (u.password_hash.empty()) {
            p.null(k_text);
        } else {
            p.text(u.password_hash);
        }
        p.text(u.full_name).text(u.unit);
        try {
            write("INSERT INTO users(id, name, role, disabled, created_at, password_hash, "
                  "full_name, unit) VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
                  p);
        } catch (const SqlError& e) {
            if (e.sqlstate() == "23505") {
                throw Error(ErrorCode::invalid_argument,
                            "a user named '" + u.name + "' already exists");
            }
            throw;
        }
    }

    std::optional<User> user_by_name(const std::string& name) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT id, name, role, disabled, created_at, password_hash, "
                              "full_name, unit FROM users WHERE name=$1",
                              Params().text(name));
        return r.rows() ? std::optional<User>(read_user(r, 0)) : std::nullopt;
    }

    std::optional<User> user_by_id(const Id& id) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT id, name, role, disabled, created_at, password_hash, "
                              "full_name, unit FROM users WHERE id=$1",
                              Params().id(id));
        return r.rows() ? std::optional<User>(read_user(r, 0)) : std::nullopt;
    }

    std::vector<User> users() override {
        std::lock_guard lock(m_mutex);
        // COLLATE "C": byte order, as SQLite's BINARY, whatever the database's locale.
        const Result r = exec("SELECT id, name, role, disabled, created_at, password_hash, "
                              "full_name, unit FROM users ORDER BY name COLLATE \"C\"");
        std::vector<User> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(read_user(r, i));
        }
        return out;
    }

    std::uint64_t directory_version() override {
        return scalar("SELECT v FROM directory_version WHERE id=1");
    }

    void set_password_hash(const Id& user, const std::string& hash) override {
        std::lock_guard lock(m_mutex);
        write("UPDATE users SET password_hash=$1 WHERE id=$2", Params().text(hash).id(user));
    }

    void set_user_disabled(const Id& user, bool disabled) override {
        std::lock_guard lock(m_mutex);
        write("UPDATE users SET disabled=$1 WHERE id=$2", Params().i64(disabled ? 1 : 0).id(user));
    }

    void set_user_profile(const Id& user, const std::string& full_name,
                          const std::string& unit) override {
        std::lock_guard lock(m_mutex);
        write("UPDATE users SET full_name=$1, unit=$2 WHERE id=$3",
              Params().text(full_name).text(unit).id(user));
    }

    // ---- sessions ----
    void add_session(const Session& x) override {
        std::lock_guard lock(m_mutex);
        write("INSERT INTO sessions(token_hash, user_id, created_at, expires_at) "
              "VALUES($1,$2,$3,$4)",
              Params()
                  .bytes(x.token_hash.data(), x.token_hash.size())
                  .id(x.user)
                  .i64(x.created_at)
                  .i64(x.expires_at));
    }

    std::optional<Session> session(const Hash256& token_hash) override {
        std::lock_guard lock(m_mutex);
        const Result r =
            exec("SELECT user_id, created_at, expires_at FROM sessions WHERE token_hash=$1",
                 Params().bytes(token_hash.data(), token_hash.size()));
        if (!r.rows()) {
            return std::nullopt;
        }
        Session x;
        x.token_hash = token_hash;
        x.user = r.id(0, 0);
        x.created_at = r.i64(0, 1);
        x.expires_at = r.i64(0, 2);
        return x;
    }

    void delete_session(const Hash256& token_hash) override {
        std::lock_guard lock(m_mutex);
        write("DELETE FROM sessions WHERE token_hash=$1",
              Params().bytes(token_hash.data(), token_hash.size()));
    }

    std::size_t delete_sessions_of(const Id& user) override {
        std::lock_guard lock(m_mutex);
        return write("DELETE FROM sessions WHERE user_id=$1", Params().id(user)).affected();
    }

    std::size_t delete_expired_sessions(std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        return write("DELETE FROM sessions WHERE expires_at<=$1", Params().i64(now)).affected();
    }

    void add_device_session(const DeviceSession& x) override {
        std::lock_guard lock(m_mutex);
        write("INSERT INTO device_sessions(id, replica, mac_key, created_at, expires_at) "
              "VALUES($1,$2,$3,$4,$5)",
              Params()
                  .bytes(x.id.data(), x.id.size())
                  .u64(x.replica)
                  .bytes(x.key.bytes.data(), x.key.bytes.size())
                  .i64(x.created_at)
                  .i64(x.expires_at));
    }

    std::optional<DeviceSession> device_session(const SessionId& id) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT replica, mac_key, created_at, expires_at FROM "
                              "device_sessions WHERE id=$1",
                              Params().bytes(id.data(), id.size()));
        if (!r.rows()) {
            return std::nullopt;
        }
        DeviceSession x;
        x.id = id;
        x.replica = r.u64(0, 0);
        const std::string key = r.bytes(0, 1);
        if (key.size() != x.key.bytes.size()) {
            throw Error(ErrorCode::internal, "a stored session key is damaged");
        }
        std::copy(key.begin(), key.end(), x.key.bytes.begin());
        x.created_at = r.i64(0, 2);
        x.expires_at = r.i64(0, 3);
        return x;
    }

    std::size_t delete_expired_device_sessions(std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        return write("DELETE FROM device_sessions WHERE expires_at<=$1", Params().i64(now))
            .affected();
    }

    std::vector<OpBatch>
    op_batches_after(std::optional<std::pair<std::uint64_t, std::uint64_t>> after,
                     std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT replica, request_counter, signature, leaves, received_at "
                              "FROM op_batches WHERE $1 = 1 OR (replica, request_counter) > "
                              "($2, $3) ORDER BY replica, request_counter LIMIT $4",
                              Params()
                                  .i64(after ? 0 : 1)
                                  .u64(after ? after->first : 0)
                                  .u64(after ? after->second : 0)
                                  .u64(limit));
        std::vector<OpBatch> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(
                op_batch_of(r.u64(i, 0), r.u64(i, 1), r.bytes(i, 2), r.bytes(i, 3), r.i64(i, 4)));
        }
        return out;
    }

    // ---- transfer fee table ----
    std::vector<FeeRecord> fee_records() override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT product, effective_from, centavos, set_by, set_at FROM "
                              "fee_table ORDER BY product COLLATE \"C\", effective_from");
        std::vector<FeeRecord> out;
        for (int i = 0; i < r.rows(); ++i) {
            FeeRecord f;
            f.product = r.bytes(i, 0);
            f.effective_from = r.i64(i, 1);
            f.centavos = r.i64(i, 2);
            if (!r.is_null(i, 3)) {
                f.set_by = r.id(i, 3);
            }
            f.set_at = r.i64(i, 4);
            out.push_back(std::move(f));
        }
        return out;
    }

    void put_fee_record(const FeeRecord& f) override {
        std::lock_guard lock(m_mutex);
        Params p;
        p.text(f.product).i64(f.effective_from).i64(f.centavos);
        if (f.set_by) {
            p.id(*f.set_by);
        } else {
            p.null(k_bytea);
        }
        p.i64(f.set_at);
        write("INSERT INTO fee_table(product, effective_from, centavos, set_by, set_at) "
              "VALUES($1,$2,$3,$4,$5) ON CONFLICT(product, effective_from) DO UPDATE SET "
              "centavos=excluded.centavos, set_by=excluded.set_by, set_at=excluded.set_at",
              p);
    }

    // ---- inventory ----
    void import_inventory(const std::vector<Contract>& contracts,
                          const std::vector<InventoryItem>& items) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        for (const auto& x : contracts) {
            exec("INSERT INTO contracts(contract, customer_name, person_type, tax_id, address, "
                 "imported_at) VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(contract) DO UPDATE SET "
                 "customer_name=excluded.customer_name, person_type=excluded.person_type, "
                 "tax_id=excluded.tax_id, address=excluded.address, "
                 "imported_at=excluded.imported_at",
                 Params()
                     .text(x.contract)
                     .text(x.customer_name)
                     .text(x.person_type)
                     .text(x.tax_id)
                     .text(x.address)
                     .i64(x.imported_at));
        }
        for (const auto& x : items) {
            exec("INSERT INTO inventory(serial, contract, kind, model, description, imported_at) "
                 "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(serial) DO UPDATE SET "
                 "contract=excluded.contract, kind=excluded.kind, model=excluded.model, "
                 "description=excluded.description, imported_at=excluded.imported_at",
                 Params()
                     .text(x.serial)
                     .text(x.contract)
                     .text(x.kind)
                     .text(x.model)
                     .text(x.description)
                     .i64(x.imported_at));
        }
        tx.commit();
    }

    std::optional<Contract> contract(const std::string& number) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT contract, customer_name, person_type, tax_id, address, "
                              "imported_at FROM contracts WHERE contract=$1",
                              Params().text(number));
        if (!r.rows()) {
            return std::nullopt;
        }
        return Contract{r.bytes(0, 0), r.bytes(0, 1), r.bytes(0, 2),
                        r.bytes(0, 3), r.bytes(0, 4), r.i64(0, 5)};
    }

    std::vector<InventoryItem> inventory_of(const std::string& contract) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT serial, contract, kind, model, description, imported_at "
                              "FROM inventory WHERE contract=$1 ORDER BY serial COLLATE \"C\"",
                              Params().text(contract));
        std::vector<InventoryItem> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(read_item(r, i));
        }
        return out;
    }

    std::optional<InventoryItem> inventory_item(const std::string& serial) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT serial, contract, kind, model, description, imported_at "
                              "FROM inventory WHERE serial=$1",
                              Params().text(serial));
        return r.rows() ? std::optional<InventoryItem>(read_item(r, 0)) : std::nullopt;
    }

    std::uint64_t inventory_count() override { return scalar("SELECT count(*) FROM inventory"); }

    // ---- enrollment and devices ----
    void add_enroll_code(const Hash256& code_hash, const Id& user,
                         std::int64_t expires_at) override {
        std::lock_guard lock(m_mutex);
        write("INSERT INTO enroll_codes(code_hash, user_id, expires_at) VALUES($1,$2,$3)",
              Params().bytes(code_hash.data(), code_hash.size()).id(user).i64(expires_at));
    }

    std::optional<Device> enroll(const Hash256& code_hash, const PublicKey& key,
                                 const std::string& label, std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        // A conditional UPDATE: of two transactions racing for one code, the second waits
        // for the first's row lock, then re-checks `used_at IS NULL` and matches nothing.
        const Result used =
            exec("UPDATE enroll_codes SET used_at=$2 WHERE code_hash=$1 AND used_at IS NULL "
                 "AND expires_at>$2 RETURNING user_id",
                 Params().bytes(code_hash.data(), code_hash.size()).i64(now));
        if (!used.rows()) {
            return std::nullopt; // rolled back: nothing changed
        }
        const Id user = used.id(0, 0);
        const Result added =
            exec("INSERT INTO devices(user_id, public_key, label, enrolled_at, last_seen) "
                 "VALUES($1,$2,$3,$4,$4) RETURNING replica",
                 Params().id(user).bytes(key.data(), key.size()).text(label).i64(now));
        const std::uint64_t replica = added.u64(0, 0);
        tx.commit();
        Device d;
        d.replica = replica;
        d.user = user;
        d.public_key = key;
        d.label = label;
        d.enrolled_at = now;
        d.last_seen = now;
        return d;
    }

    std::optional<Device> device(std::uint64_t replica) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT replica, user_id, public_key, label, status, last_counter, "
                              "cursor, last_seen, enrolled_at, revoked_at FROM devices WHERE "
                              "replica=$1",
                              Params().u64(replica));
        return r.rows() ? std::optional<Device>(read_device(r, 0)) : std::nullopt;
    }

    bool claim_counter(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                       std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        if (m_in_transaction) {
            throw Error(ErrorCode::internal, "claim_counter inside a transaction");
        }
        // Without the write lock: the row's lock orders it against a write transaction
        // that read the counter with locked_counter (READ COMMITTED: the update waits for
        // that commit, then tests the counter it wrote). Asynchronous commit: a pull's
        // counter becomes durable with the next synchronous commit; what a crash can lose
        // is below every acknowledged request's counter.
        simple("BEGIN; SET LOCAL synchronous_commit TO off");
        try {
            const Result r =
                exec("UPDATE devices SET last_seen=$1, cursor=greatest(cursor, $2), "
                     "last_counter=$3 WHERE replica=$4 AND last_counter<$3 RETURNING replica",
                     Params().i64(now).u64(cursor).u64(counter).u64(replica));
            commit();
            return r.rows() > 0;
        } catch (...) {
            rollback();
            throw;
        }
    }

    std::uint64_t locked_counter(std::uint64_t replica) override {
        std::lock_guard lock(m_mutex);
        return u64_of(exec("SELECT last_counter FROM devices WHERE replica=$1 FOR UPDATE",
                           Params().u64(replica)));
    }

    std::vector<Device> devices() override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT replica, user_id, public_key, label, status, last_counter, "
                              "cursor, last_seen, enrolled_at, revoked_at FROM devices ORDER BY "
                              "replica");
        std::vector<Device> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(read_device(r, i));
        }
        return out;
    }

    bool revoke_device(std::uint64_t replica) override {
        std::lock_guard lock(m_mutex);
        // The first revocation's time is kept: it is what the signed proof names.
        return write("UPDATE devices SET status=1, revoked_at=CASE WHEN status=1 THEN "
                     "revoked_at ELSE (extract(epoch FROM clock_timestamp()) * 1000)::bigint "
                     "END WHERE replica=$1",
                     Params().u64(replica))
                   .affected() > 0;
    }

    // ---- op log ----
    std::vector<std::vector<std::uint64_t>>
    commit_many(const std::vector<const SyncWrite*>& ws) override {
        std::lock_guard lock(m_mutex);
        if (m_options.before_commit) {
            m_options.before_commit();
        }
        Tx tx(*this); // the write lock: seq order is commit order (top of this file)
        std::uint64_t next = u64_of(exec("SELECT coalesce(max(seq), 0) FROM ops"));
        std::vector<std::vector<std::uint64_t>> out;
        out.reserve(ws.size());
        for (const SyncWrite* w : ws) {
            out.push_back(write_one(*w, next));
        }
        // Other instances' waiting pulls hear of it when (and only if) it commits.
        if (const std::string payload = commit_payload(ws); !payload.empty()) {
            exec("SELECT pg_notify($1, $2)", Params().text(k_commit_channel).text(payload));
        }
        tx.commit(); // synchronous_commit=on: durable when this returns
        return out;
    }

    std::vector<StoredOp> ops_after(std::uint64_t after, std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        Params p;
        p.u64(after);
        if (limit) {
            p.u64(limit);
        } else {
            p.null(k_int8); // LIMIT NULL: all
        }
        return read_ops(exec("SELECT seq, body, received_at, skew_ms, flagged FROM ops WHERE "
                             "seq>$1 ORDER BY seq LIMIT $2",
                             p));
    }

    std::vector<StoredOp> ops_by_seq(const std::vector<std::uint64_t>& seqs) override {
        std::lock_guard lock(m_mutex);
        // One round trip per chunk (an index probe per seq on the server side) rather than
        // SQLite's runs of range scans: here a round trip costs more than a probe.
        constexpr std::size_t k_chunk = 2000;
        std::vector<std::uint64_t> want(seqs);
        std::sort(want.begin(), want.end());
        want.erase(std::unique(want.begin(), want.end()), want.end());
        std::vector<StoredOp> out;
        out.reserve(want.size());
        for (std::size_t i = 0; i < want.size(); i += k_chunk) {
            const std::vector<std::uint64_t> part(
                want.begin() + static_cast<std::ptrdiff_t>(i),
                want.begin() + static_cast<std::ptrdiff_t>(std::min(want.size(), i + k_chunk)));
            auto ops = read_ops(exec("SELECT seq, body, received_at, skew_ms, flagged FROM ops "
                                     "WHERE seq = ANY($1) ORDER BY seq",
                                     Params().int8_array(part)));
            std::move(ops.begin(), ops.end(), std::back_inserter(out));
        }
        return out;
    }

    std::vector<std::uint64_t> op_seqs_of_entity(EntityType t, const Id& id) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT seq FROM ops WHERE entity_type=$1 AND entity=$2 ORDER BY seq",
                              Params().i64(static_cast<std::int64_t>(t)).id(id));
        std::vector<std::uint64_t> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(r.u64(i, 0));
        }
        return out;
    }

    std::vector<OpId> op_ids_of_entity(EntityType t, const Id& id) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT replica, counter FROM ops WHERE entity_type=$1 AND "
                              "entity=$2 ORDER BY seq",
                              Params().i64(static_cast<std::int64_t>(t)).id(id));
        std::vector<OpId> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back({r.u64(i, 0), r.u64(i, 1)});
        }
        return out;
    }

    std::uint64_t op_count() override { return scalar("SELECT count(*) FROM ops"); }
    std::uint64_t last_seq() override { return scalar("SELECT coalesce(max(seq), 0) FROM ops"); }

    // ---- feeds ----
    std::vector<FeedRow> feed_after(const Id& user, std::uint64_t after,
                                    std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        const Result r =
            exec("SELECT f.fseq, f.op_seq, f.evict_type, f.evict_id, o.replica, f.history "
                 "FROM feed f LEFT JOIN ops o ON o.seq = f.op_seq "
                 "WHERE f.user_id=$1 AND f.fseq>$2 ORDER BY f.fseq LIMIT $3",
                 Params().id(user).u64(after).u64(limit));
        std::vector<FeedRow> out;
        for (int i = 0; i < r.rows(); ++i) {
            FeedRow row;
            row.fseq = r.u64(i, 0);
            if (!r.is_null(i, 1)) {
                row.op_seq = r.u64(i, 1);
                row.op_replica = r.u64(i, 4);
                row.history = r.i64(i, 5) != 0;
            } else {
                row.evict = std::make_pair(static_cast<EntityType>(r.i64(i, 2)), r.id(i, 3));
            }
            out.push_back(row);
        }
        return out;
    }

    std::uint64_t feed_count_after(const Id& user, std::uint64_t after) override {
        std::lock_guard lock(m_mutex);
        const std::uint64_t head =
            u64_of(exec("SELECT coalesce((SELECT last_fseq FROM feed_heads WHERE user_id=$1), 0)",
                        Params().id(user)));
        return head > after ? head - after : 0;
    }

    // ---- projections ----
    std::uint64_t projected_seq() override {
        std::lock_guard lock(m_mutex);
        return u64_of(exec("SELECT coalesce(max(updated_seq), 0) FROM projections"));
    }

    std::vector<SyncWrite::Projection> projections() override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT entity_type, entity, state FROM projections "
                              "ORDER BY entity_type, entity");
        std::vector<SyncWrite::Projection> out;
        for (int i = 0; i < r.rows(); ++i) {
            const auto t = r.i64(i, 0);
            if (t != (t & 0xff) || !is_valid_entity_type(static_cast<std::uint8_t>(t))) {
                throw Error(ErrorCode::internal, "a projection row has an unknown entity type");
            }
            out.push_back({static_cast<EntityType>(t), r.id(i, 1), r.bytes(i, 2)});
        }
        return out;
    }

    void replace_projections(const std::vector<SyncWrite::Projection>& rows) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this); // joins in_transaction's when inside one
        exec("DELETE FROM projections");
        const std::uint64_t last = u64_of(exec("SELECT coalesce(max(seq), 0) FROM ops"));
        for (const auto& p : rows) {
            exec("INSERT INTO projections(entity_type, entity, state, updated_seq) "
                 "VALUES($1,$2,$3,$4)",
                 Params().i64(static_cast<std::int64_t>(p.type)).id(p.id).text(p.json).u64(last));
        }
        tx.commit();
    }

    /// Without `write`: REPEATABLE READ, one snapshot for everything `f` reads. With it, the
    /// write lock is taken (session-scoped) before the transaction starts, so everything
    /// `f` reads was committed by writers that finished, and none commits until this one
    /// does.
    void in_transaction(bool write, const std::function<void()>& f) override {
        std::lock_guard lock(m_mutex);
        if (m_in_transaction) {
            throw Error(ErrorCode::internal, "in_transaction inside a transaction");
        }
        struct Unlock {
            PostgresStore* s = nullptr;
            ~Unlock() {
                if (s) {
                    try {
                        s->exec("SELECT pg_advisory_unlock($1)", Params().i64(k_write_lock));
                    } catch (const Error&) {
                        // A broken connection released it with the session.
                    }
                }
            }
        } unlock;
        if (write) {
            exec("SELECT pg_advisory_lock($1)", Params().i64(k_write_lock));
            unlock.s = this;
        }
        // A write transaction reads at READ COMMITTED: under the write lock no other writer
        // commits, and the only rows changed meanwhile are devices' counters claimed by
        // pulls (claim_counter, without the lock), which must wait on the row, not fail
        // the transaction with a serialization error.
        simple(write ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                     : "BEGIN ISOLATION LEVEL REPEATABLE READ");
        struct Inside {
            bool& flag;
            explicit Inside(bool& f) : flag(f) { flag = true; }
            ~Inside() { flag = false; }
        };
        try {
            const Inside inside(m_in_transaction);
            f();
            commit();
        } catch (...) {
            rollback();
            throw;
        }
    }

    // ---- server key ----
    // ==== attachments ====

    std::optional<StoredBlob> blob_info(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT media, size, stored_at FROM blobs WHERE hash=$1",
                              Params().bytes(hash.data(), hash.size()));
        if (!r.rows()) {
            return std::nullopt;
        }
        return stored_blob_of(r.i64(0, 0), r.i64(0, 1), r.i64(0, 2));
    }

    std::optional<std::string> blob_data(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        const Result r =
            exec("SELECT data FROM blobs WHERE hash=$1", Params().bytes(hash.data(), hash.size()));
        if (!r.rows()) {
            return std::nullopt;
        }
        return r.bytes(0, 0);
    }

    std::uint64_t staged_bytes(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT COALESCE(MAX(start + length(data)), 0)::BIGINT FROM "
                              "blob_chunks WHERE hash=$1",
                              Params().bytes(hash.data(), hash.size()));
        return r.u64(0, 0);
    }

    void stage_chunk(const Hash256& hash, std::uint64_t offset, std::string_view data) override {
        std::lock_guard lock(m_mutex);
        write("INSERT INTO blob_chunks(hash, start, data) VALUES($1,$2,$3) ON CONFLICT DO NOTHING",
              Params().bytes(hash.data(), hash.size()).u64(offset).bytes(data.data(), data.size()));
    }

    std::string staged_blob(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT data FROM blob_chunks WHERE hash=$1 ORDER BY start",
                              Params().bytes(hash.data(), hash.size()));
        std::string out;
        for (int i = 0; i < r.rows(); ++i) {
            out += r.bytes(i, 0);
        }
        return out;
    }

    void drop_staged(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        write("DELETE FROM blob_chunks WHERE hash=$1", Params().bytes(hash.data(), hash.size()));
    }

    void store_blob(const Hash256& hash, const StoredBlob& info, std::string_view data,
                    const std::vector<BlobRef>& refs) override {
        in_transaction(true, [&] {
            write("INSERT INTO blobs(hash, media, size, data, stored_at) VALUES($1,$2,$3,$4,$5) "
                  "ON CONFLICT DO NOTHING",
                  Params()
                      .bytes(hash.data(), hash.size())
                      .i64(static_cast<std::int64_t>(info.media))
                      .u64(info.size)
                      .bytes(data.data(), data.size())
                      .i64(info.stored_at));
            add_blob_refs(refs);
            drop_staged(hash);
        });
    }

    void add_blob_refs(const std::vector<BlobRef>& refs) override {
        std::lock_guard lock(m_mutex);
        for (const BlobRef& r : refs) {
            write("INSERT INTO blob_refs(hash, kind, entity_type, entity, label) "
                  "VALUES($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                  Params()
                      .bytes(r.hash.data(), r.hash.size())
                      .i64(static_cast<std::int64_t>(r.kind))
                      .i64(static_cast<std::int64_t>(r.entity_type))
                      .bytes(r.entity.bytes.data(), r.entity.bytes.size())
                      .text(r.label));
        }
    }

    std::vector<BlobRef> blob_refs(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT kind, entity_type, entity, label FROM blob_refs WHERE "
                              "hash=$1 ORDER BY kind, entity_type, entity, label",
                              Params().bytes(hash.data(), hash.size()));
        std::vector<BlobRef> out;
        const std::string h(hash.begin(), hash.end());
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(blob_ref_of(h, r.i64(i, 0), r.i64(i, 1), r.bytes(i, 2), r.bytes(i, 3)));
        }
        return out;
    }

    std::optional<std::pair<PublicKey, std::vector<std::uint8_t>>> server_key() override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT public_key, secret_key FROM server_key WHERE id=1");
        if (!r.rows()) {
            return std::nullopt;
        }
        const std::string pk = r.bytes(0, 0);
        const std::string sk = r.bytes(0, 1);
        if (pk.size() != 32 || sk.size() != 64) {
            throw Error(ErrorCode::internal, "stored server key is damaged");
        }
        PublicKey p{};
        std::copy(pk.begin(), pk.end(), p.begin());
        return std::make_pair(p, std::vector<std::uint8_t>(sk.begin(), sk.end()));
    }

    void set_server_key(const PublicKey& pk, const SecretKey& sk) override {
        std::lock_guard lock(m_mutex);
        write("INSERT INTO server_key(id, public_key, secret_key) VALUES(1,$1,$2) "
              "ON CONFLICT(id) DO UPDATE SET public_key=excluded.public_key, "
              "secret_key=excluded.secret_key",
              Params().bytes(pk.data(), pk.size()).bytes(sk.bytes().data(), sk.bytes().size()));
    }

    // ==== the whole database as rows (export_rows, import_rows; otsync-admin migrate) ====

    std::vector<std::string_view> tables_with_rows() override {
        std::lock_guard lock(m_mutex);
        std::vector<std::string_view> out;
        for (std::size_t t = 0; t < std::size(k_dump_tables); ++t) {
            if (u64_of(exec(dump_sql()[t].any.c_str())) != 0) {
                out.push_back(k_dump_tables[t].name);
            }
        }
        return out;
    }

    void export_rows(const std::function<void(const DumpRows&)>& sink, std::size_t batch) override {
        std::lock_guard lock(m_mutex);
        if (!m_in_transaction) { // a snapshot of its own
            in_transaction(false, [&] { export_rows(sink, batch); });
            return;
        }
        // A cursor in in_transaction's snapshot, read `batch` rows at a time: a table is
        // never held in memory whole. FETCH is not a statement PREPARE takes; it runs
        // unnamed, its rows in binary as every other result here.
        const std::string fetch = "FETCH FORWARD " +
                                  std::to_string(std::max<std::size_t>(batch, 1)) +
                                  " FROM otsync_dump";
        for (std::size_t t = 0; t < std::size(k_dump_tables); ++t) {
            const DumpTable& table = k_dump_tables[t];
            simple(("DECLARE otsync_dump NO SCROLL CURSOR FOR " + dump_sql()[t].select).c_str());
            for (;;) {
                PGresult* raw = PQexecParams(m_conn.get(), fetch.c_str(), 0, nullptr, nullptr,
                                             nullptr, nullptr, 1);
                if (!raw || PQresultStatus(raw) != PGRES_TUPLES_OK) {
                    fail(raw, "FETCH FROM otsync_dump");
                }
                const Result r(raw);
                if (r.rows() == 0) {
                    break;
                }
                DumpRows out{table.name, {}};
                out.rows.reserve(static_cast<std::size_t>(r.rows()));
                for (int i = 0; i < r.rows(); ++i) {
                    std::vector<DumpCell> row(table.kinds.size());
                    for (std::size_t c = 0; c < row.size(); ++c) {
                        const int col = static_cast<int>(c);
                        if (r.is_null(i, col)) {
                            continue;
                        }
                        if (table.kinds[c] == 'i') {
                            row[c].kind = DumpCell::Kind::integer;
                            row[c].integer = r.i64(i, col);
                        } else {
                            row[c].kind = table.kinds[c] == 't' ? DumpCell::Kind::text
                                                                : DumpCell::Kind::bytes;
                            row[c].data = r.bytes(i, col);
                        }
                    }
                    out.rows.push_back(std::move(row));
                }
                sink(out);
            }
            simple("CLOSE otsync_dump");
        }
    }

    void import_rows(const DumpRows& rows) override {
        const auto t = dump_table_of(rows);
        if (!t) {
            throw Error(ErrorCode::invalid_argument,
                        "rows that do not fit the table " + std::string(rows.table));
        }
        const DumpTable& table = k_dump_tables[*t];
        const DumpSql& q = dump_sql()[*t];
        // Typed by the column, not the cell, so one statement's parameter types never vary.
        auto add = [&](Params& p, std::size_t c, const DumpCell& cell) {
            const char kind = table.kinds[c];
            if (cell.kind == DumpCell::Kind::null) {
                p.null(kind == 'i' ? k_int8 : kind == 't' ? k_text : k_bytea);
            } else if (kind == 'i') {
                p.i64(cell.integer);
            } else if (kind == 't') {
                p.text(cell.data);
            } else {
                p.bytes(cell.data.data(), cell.data.size());
            }
        };
        std::lock_guard lock(m_mutex);
        Tx tx(*this); // joins in_transaction's when inside one
        for (const auto& row : rows.rows) {
            if (!q.unship.empty()) {
                Params key;
                for (const std::size_t c : q.key_cells) {
                    add(key, c, row[c]);
                }
                exec(q.unship.c_str(), key);
            }
            Params p;
            for (std::size_t c = 0; c < row.size(); ++c) {
                add(p, c, row[c]);
            }
            exec(q.insert.c_str(), p);
        }
        if (table.name == "devices") {
            // The one identity column: the next enrolled device gets a replica above every
            // imported one (op seqs are max+1 already).
            exec("SELECT setval(pg_get_serial_sequence('devices', 'replica'), max(replica)) "
                 "FROM devices HAVING count(*) > 0");
        }
        tx.commit();
    }

    // ==== end of the whole database as rows ====

    void backup_to(const std::string& path) override {
        throw Error(ErrorCode::invalid_argument,
                    "a PostgreSQL store is not backed up by otsync (nothing written to " + path +
                        "): use pg_dump (e.g. pg_dump -Fc -f otsync.dump DBNAME) for a "
                        "consistent logical copy, or base backups with WAL archiving "
                        "(pg_basebackup) for point-in-time recovery");
    }

    bool shared() const override { return true; }

    std::unique_ptr<CommitListener> listen_commits() override {
        std::lock_guard lock(m_mutex);
        return std::make_unique<PostgresCommitListener>(m_options.conninfo,
                                                        PQbackendPID(m_conn.get()));
    }

    // ---- archive ----
    void archive(const ArchivedCase& c,
                 const std::vector<std::pair<EntityType, Id>>& entities) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        exec("INSERT INTO archived_cases(case_id, opened_at, figure, contract, status, modality) "
             "VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT(case_id) DO UPDATE SET "
             "opened_at=excluded.opened_at, figure=excluded.figure, "
             "contract=excluded.contract, status=excluded.status, modality=excluded.modality",
             Params()
                 .id(c.case_id)
                 .i64(c.opened_at)
                 .text(c.figure)
                 .text(c.contract)
                 .text(c.status)
                 .i64(c.modality));
        for (const auto& [t, id] : entities) {
            exec("INSERT INTO archive(entity, entity_type, case_id) VALUES($1,$2,$3) "
                 "ON CONFLICT(entity) DO UPDATE SET entity_type=excluded.entity_type, "
                 "case_id=excluded.case_id",
                 Params().id(id).i64(static_cast<std::int64_t>(t)).id(c.case_id));
        }
        tx.commit();
    }

    std::optional<Id> archived_group_of(const Id& entity) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT case_id FROM archive WHERE entity=$1", Params().id(entity));
        if (!r.rows()) {
            return std::nullopt;
        }
        return r.id(0, 0);
    }

    std::vector<std::pair<EntityType, Id>> archived_group(const Id& case_id) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT entity_type, entity FROM archive WHERE case_id=$1 "
                              "ORDER BY entity_type, entity",
                              Params().id(case_id));
        std::vector<std::pair<EntityType, Id>> out;
        for (int i = 0; i < r.rows(); ++i) {
            const auto t = r.i64(i, 0);
            if (t != (t & 0xff) || !is_valid_entity_type(static_cast<std::uint8_t>(t))) {
                throw Error(ErrorCode::internal, "an archive row has an unknown entity type");
            }
            out.emplace_back(static_cast<EntityType>(t), r.id(i, 1));
        }
        return out;
    }

    std::vector<ArchivedCase> archived_cases(std::int64_t from_ms, std::int64_t to_ms) override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT case_id, opened_at, figure, contract, status, modality "
                              "FROM archived_cases WHERE opened_at>=$1 AND opened_at<$2 "
                              "ORDER BY opened_at, case_id",
                              Params().i64(from_ms).i64(to_ms));
        return archived_rows(r);
    }

    ArchivedCasePage archived_case_page(const ArchivedCaseQuery& q) override {
        std::lock_guard lock(m_mutex);
        Params p;
        p.text(q.status);
        if (q.modality) {
            p.i64(*q.modality);
        } else {
            p.null(k_int8);
        }
        p.text(q.contract);
        ArchivedCasePage out;
        out.total = u64_of(exec("SELECT count(*) FROM archived_cases WHERE ($1='' OR status=$1) "
                                "AND ($2::bigint IS NULL OR modality=$2) AND ($3='' OR "
                                "contract=$3)",
                                p));
        p.i64(static_cast<std::int64_t>(q.limit));
        out.cases = archived_rows(
            exec("SELECT case_id, opened_at, figure, contract, status, modality FROM "
                 "archived_cases WHERE ($1='' OR status=$1) AND ($2::bigint IS NULL OR "
                 "modality=$2) AND ($3='' OR contract=$3) "
                 "ORDER BY opened_at DESC, case_id DESC LIMIT $4",
                 p));
        return out;
    }

    static std::vector<ArchivedCase> archived_rows(const Result& r) {
        std::vector<ArchivedCase> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back({r.id(i, 0), r.i64(i, 1), r.bytes(i, 2), r.bytes(i, 3), r.bytes(i, 4),
                           r.i64(i, 5)});
        }
        return out;
    }

    std::uint64_t archived_count() override {
        return scalar("SELECT count(*) FROM archived_cases");
    }

    std::vector<Id> archived_entities() override {
        std::lock_guard lock(m_mutex);
        const Result r = exec("SELECT entity FROM archive WHERE case_id IN "
                              "(SELECT case_id FROM archived_cases)");
        std::vector<Id> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back(r.id(i, 0));
        }
        return out;
    }

    void unarchive(const Id& case_id) override {
        std::lock_guard lock(m_mutex);
        write("DELETE FROM archived_cases WHERE case_id=$1", Params().id(case_id));
    }

    bool healthy() override {
        try {
            return scalar("SELECT 1") == 1;
        } catch (const Error&) {
            return false;
        }
    }

private:
    /// A transaction that takes the write lock first; joins the caller's when one is open
    /// (in_transaction). Rolls back when destroyed uncommitted.
    class Tx {
    public:
        explicit Tx(PostgresStore& s) : m_s(s), m_own(!s.m_in_transaction) {
            if (m_own) {
                m_s.simple("BEGIN");
            }
            try {
                m_s.exec("SELECT pg_advisory_xact_lock($1)", Params().i64(k_write_lock));
            } catch (...) {
                if (m_own) {
                    m_s.rollback();
                }
                throw;
            }
        }
        Tx(const Tx&) = delete;
        Tx& operator=(const Tx&) = delete;
        void commit() {
            if (m_own) {
                m_s.commit();
            }
            m_done = true;
        }
        ~Tx() {
            if (m_own && !m_done) {
                m_s.rollback();
            }
        }

    private:
        PostgresStore& m_s;
        bool m_own;
        bool m_done = false;
    };

    /// One request's writes, inside commit_many's transaction; `next` is the last seq used.
    std::vector<std::uint64_t> write_one(const SyncWrite& w, std::uint64_t& next) {
        std::vector<std::uint64_t> seqs;
        seqs.reserve(w.ops.size());
        for (const auto& so : w.ops) {
            const std::string body = encode_binary(std::span<const Op>(&so.op, 1));
            const std::uint64_t seq = ++next;
            exec("INSERT INTO ops(seq, replica, counter, entity_type, entity, body, received_at, "
                 "skew_ms, flagged) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                 Params()
                     .u64(seq)
                     .u64(so.op.id.replica)
                     .u64(so.op.id.counter)
                     .i64(static_cast<std::int64_t>(so.op.entity_type))
                     .id(so.op.entity)
                     .bytes(body.data(), body.size())
                     .i64(so.received_at)
                     .i64(so.skew_ms)
                     .i64(so.flagged ? 1 : 0));
            seqs.push_back(seq);
        }
        // Feed sequences per user: read each user's head once, write it back once.
        std::unordered_map<Id, std::uint64_t> heads;
        for (const auto& f : w.feed) {
            auto [head, fresh] = heads.try_emplace(f.user, 0);
            if (fresh) {
                head->second = u64_of(exec("SELECT coalesce((SELECT last_fseq FROM feed_heads "
                                           "WHERE user_id=$1), 0)",
                                           Params().id(f.user)));
            }
            Params p;
            p.id(f.user).u64(++head->second);
            if (f.new_op) {
                p.u64(seqs.at(*f.new_op)).null(k_int8).null(k_bytea);
            } else if (f.old_seq) {
                p.u64(*f.old_seq).null(k_int8).null(k_bytea);
            } else {
                p.null(k_int8).i64(static_cast<std::int64_t>(f.evict->first)).id(f.evict->second);
            }
            p.i64(f.history ? 1 : 0);
            exec("INSERT INTO feed(user_id, fseq, op_seq, evict_type, evict_id, history) "
                 "VALUES($1,$2,$3,$4,$5,$6)",
                 p);
        }
        for (const auto& [user, fseq] : heads) {
            exec("INSERT INTO feed_heads(user_id, last_fseq) VALUES($1,$2) ON CONFLICT(user_id) "
                 "DO UPDATE SET last_fseq=excluded.last_fseq",
                 Params().id(user).u64(fseq));
        }
        const std::uint64_t last =
            w.projections_seq ? w.projections_seq : (seqs.empty() ? 0 : seqs.back());
        for (const auto& p : w.projections) {
            exec("INSERT INTO projections(entity_type, entity, state, updated_seq) "
                 "VALUES($1,$2,$3,$4) ON CONFLICT(entity_type, entity) DO UPDATE SET "
                 "state=excluded.state, updated_seq=excluded.updated_seq",
                 Params().i64(static_cast<std::int64_t>(p.type)).id(p.id).text(p.json).u64(last));
        }
        if (w.batch) {
            const std::string leaves = leaves_blob(w.batch->leaves);
            exec("INSERT INTO op_batches(replica, request_counter, signature, leaves, received_at) "
                 "VALUES($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
                 Params()
                     .u64(w.batch->replica)
                     .u64(w.batch->request_counter)
                     .bytes(w.batch->signature.data(), w.batch->signature.size())
                     .bytes(leaves.data(), leaves.size())
                     .i64(w.batch->received_at));
        }
        if (w.replica != k_server_replica) {
            // Counter, cursor and last seen only move forward; none of these columns moves
            // directory_version (its trigger names the others).
            exec("UPDATE devices SET last_seen=$1, cursor=greatest(cursor, $2), "
                 "last_counter=greatest(last_counter, $3) WHERE replica=$4",
                 Params().i64(w.now).u64(w.cursor).u64(w.request_counter).u64(w.replica));
        }
        return seqs;
    }

    /// The session's settings, at connect and after a reconnect.
    void setup_session() {
        exec("SELECT set_config('synchronous_commit', 'on', false), "
             "set_config('statement_timeout', $1, false), "
             "set_config('lock_timeout', $2, false), "
             "set_config('default_transaction_isolation', 'read committed', false), "
             "set_config('client_min_messages', 'warning', false)",
             Params()
                 .text(std::to_string(std::max(0, m_options.statement_timeout_ms)))
                 .text(std::to_string(std::max(0, m_options.lock_timeout_ms))));
    }

    /// A connection that broke (PostgreSQL restarted) is re-established before the next
    /// statement outside a transaction; inside one, the transaction is lost anyway.
    void ensure_connected() {
        if (PQstatus(m_conn.get()) == CONNECTION_OK && !m_broken) {
            return;
        }
        PQreset(m_conn.get());
        m_broken = false;
        m_prepared.clear();
        if (PQstatus(m_conn.get()) != CONNECTION_OK) {
            throw Error(ErrorCode::internal, "lost the connection to PostgreSQL " + m_where + ": " +
                                                 PQerrorMessage(m_conn.get()));
        }
        setup_session();
    }

    [[noreturn]] void fail(PGresult* r, const char* sql) {
        const char* field = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
        const std::string state = field ? field : "";
        // No SQLSTATE (libpq's own error), a connection exception (08) or the server
        // shutting down (57P): the connection is gone, though libpq may not say so yet.
        if (state.empty() || state.starts_with("08") || state.starts_with("57P")) {
            m_broken = true;
        }
        std::string msg = r ? PQresultErrorMessage(r) : "";
        if (msg.empty()) {
            msg = PQerrorMessage(m_conn.get());
        }
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
            msg.pop_back();
        }
        std::string what(sql);
        what = what.substr(0, 60);
        if (r) {
            PQclear(r);
        }
        throw SqlError(state, "PostgreSQL: " + what + ": " + msg);
    }

    /// Inside a transaction begun on this connection (a broken connection is in none).
    bool in_own_transaction() const {
        const auto t = PQtransactionStatus(m_conn.get());
        return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
    }

    /// Runs a prepared statement with binary parameters and results.
    Result exec(const char* sql, const Params& p = {}) {
        if (!m_in_transaction && !in_own_transaction()) {
            ensure_connected();
        }
        auto [it, fresh] = m_prepared.try_emplace(sql);
        if (fresh) {
            it->second = "s" + std::to_string(m_prepared.size());
            PGresult* r = PQprepare(m_conn.get(), it->second.c_str(), sql, p.size(), p.types());
            if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
                m_prepared.erase(it);
                fail(r, sql);
            }
            PQclear(r);
        }
        const auto values = p.values();
        const auto lengths = p.lengths();
        PGresult* r = PQexecPrepared(m_conn.get(), it->second.c_str(), p.size(), values.data(),
                                     lengths.data(), p.formats(), 1);
        const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            fail(r, sql);
        }
        return Result(r);
    }

    /// A statement without parameters (transaction control, migrations: several statements).
    void simple(const char* sql) {
        if (!m_in_transaction && !in_own_transaction()) {
            ensure_connected();
        }
        PGresult* r = PQexec(m_conn.get(), sql);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            fail(r, sql);
        }
        PQclear(r);
    }

    /// COMMIT, checked: on a transaction that failed, PostgreSQL answers COMMIT with a
    /// ROLLBACK and no error, which must not pass for a commit.
    void commit() {
        PGresult* r = PQexec(m_conn.get(), "COMMIT");
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            fail(r, "COMMIT");
        }
        const bool committed = std::strcmp(PQcmdStatus(r), "COMMIT") == 0;
        PQclear(r);
        if (!committed) {
            throw Error(ErrorCode::internal, "PostgreSQL rolled the transaction back");
        }
    }

    void rollback() noexcept {
        if (PQstatus(m_conn.get()) == CONNECTION_OK &&
            PQtransactionStatus(m_conn.get()) != PQTRANS_IDLE) {
            PQclear(PQexec(m_conn.get(), "ROLLBACK"));
        }
    }

    /// A single-statement write in its own transaction under the write lock (or in the
    /// caller's, inside in_transaction).
    Result write(const char* sql, const Params& p) {
        Tx tx(*this);
        Result r = exec(sql, p);
        tx.commit();
        return r;
    }

    static std::uint64_t u64_of(const Result& r) { return r.rows() ? r.u64(0, 0) : 0; }

    std::uint64_t scalar(const char* sql) {
        std::lock_guard lock(m_mutex);
        return u64_of(exec(sql));
    }

    void migrate() {
        // Each migration in its own transaction, under a lock of its own so two processes
        // opening one new database do not both migrate it. The version table is the first
        // thing made, in the same transaction.
        for (;;) {
            simple("BEGIN");
            try {
                exec("SELECT pg_advisory_xact_lock($1)", Params().i64(k_write_lock + 1));
                simple("CREATE TABLE IF NOT EXISTS schema_version("
                       "id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)");
                simple("INSERT INTO schema_version VALUES(1, 0) ON CONFLICT(id) DO NOTHING");
                const auto version =
                    static_cast<std::int64_t>(u64_of(exec("SELECT version FROM schema_version")));
                if (version > k_schema_version) {
                    throw Error(ErrorCode::unsupported_protocol,
                                "PostgreSQL database " + m_where + " has schema version " +
                                    std::to_string(version) + ", newer than this otsync (" +
                                    std::to_string(k_schema_version) +
                                    "); upgrade otsync instead of opening it with an older one");
                }
                if (version == k_schema_version) {
                    commit();
                    return;
                }
                simple(k_migrations[version]);
                exec("UPDATE schema_version SET version=$1", Params().i64(version + 1));
                commit();
            } catch (...) {
                rollback();
                throw;
            }
        }
    }

    static User read_user(const Result& r, int i) {
        User u;
        u.id = r.id(i, 0);
        u.name = r.bytes(i, 1);
        const auto role = role_from_string(r.bytes(i, 2));
        if (!role) {
            throw Error(ErrorCode::internal, "stored user has an unknown role");
        }
        u.role = *role;
        u.disabled = r.i64(i, 3) != 0;
        u.created_at = r.i64(i, 4);
        u.password_hash = r.bytes(i, 5);
        u.full_name = r.bytes(i, 6);
        u.unit = r.bytes(i, 7);
        return u;
    }

    static InventoryItem read_item(const Result& r, int i) {
        return {r.bytes(i, 0), r.bytes(i, 1), r.bytes(i, 2),
                r.bytes(i, 3), r.bytes(i, 4), r.i64(i, 5)};
    }

    static Device read_device(const Result& r, int i) {
        Device d;
        d.replica = r.u64(i, 0);
        d.user = r.id(i, 1);
        const std::string pk = r.bytes(i, 2);
        if (pk.size() != d.public_key.size()) {
            throw Error(ErrorCode::internal, "stored device key is damaged");
        }
        std::copy(pk.begin(), pk.end(), d.public_key.begin());
        d.label = r.bytes(i, 3);
        d.status = r.i64(i, 4) == 0 ? DeviceStatus::active : DeviceStatus::revoked;
        d.last_counter = r.u64(i, 5);
        d.cursor = r.u64(i, 6);
        d.last_seen = r.i64(i, 7);
        d.enrolled_at = r.i64(i, 8);
        d.revoked_at = r.i64(i, 9);
        return d;
    }

    static std::vector<StoredOp> read_ops(const Result& r) {
        std::vector<StoredOp> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) {
            StoredOp o;
            o.seq = r.u64(i, 0);
            o.op = decode_one(r.bytes(i, 1));
            o.received_at = r.i64(i, 2);
            o.skew_ms = r.i64(i, 3);
            o.flagged = r.i64(i, 4) != 0;
            out.push_back(std::move(o));
        }
        return out;
    }

    PostgresOptions m_options;
    std::string m_where; // the conninfo for messages, without a password
    std::unique_ptr<PGconn, ConnCloser> m_conn;
    std::recursive_mutex m_mutex;
    bool m_in_transaction = false; // inside in_transaction's f
    bool m_broken = false;         // a statement failed as a lost connection does
    /// Statement names per SQL literal (keyed by its address: every statement is a
    /// literal), valid for the current connection.
    std::unordered_map<const char*, std::string> m_prepared;
};

} // namespace

std::unique_ptr<Store> open_postgres_store(const PostgresOptions& options) {
    return std::make_unique<PostgresStore>(options);
}

bool is_postgres_url(std::string_view url) {
    if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return true;
    }
    // The keyword/value form: a host= or dbname= keyword at the start or after a space.
    for (const std::string_view key : {"host=", "dbname="}) {
        for (auto pos = url.find(key); pos != std::string_view::npos;
             pos = url.find(key, pos + 1)) {
            if (pos == 0 || url[pos - 1] == ' ') {
                return true;
            }
        }
    }
    return false;
}

} // namespace otsync::server
