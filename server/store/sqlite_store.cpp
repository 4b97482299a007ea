// SQLite implementation of Store.
//
// Pragmas (set at open, commented where set): WAL so readers never block the writer;
// synchronous=FULL by default because an acknowledged op must survive power loss, not
// only a process crash (docs/architecture.md §6); foreign_keys on; a busy timeout so a second
// process (otsync-admin) waits instead of failing.
#include "store/store.hpp"

#include "otsync/codec.hpp"
#include "otsync/error.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>

namespace otsync::server {

namespace {

/// Pages are read through a memory map (256 MiB) instead of copied with pread.
constexpr const char* k_mmap_on = "PRAGMA mmap_size=268435456";

[[noreturn]] void sql_fail(sqlite3* db, const std::string& what) {
    throw Error(ErrorCode::internal, what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

/// A prepared statement; bind by 1-based index, step, read columns.
class Stmt {
public:
    /// Borrows a statement prepared once and cached by the store: reset on release.
    Stmt(sqlite3* db, sqlite3_stmt* cached) : m_db(db), m_stmt(cached) {}
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    ~Stmt() { reset(); }

    Stmt& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(m_stmt, i, v));
        return *this;
    }
    Stmt& bind_u64(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt& bind(int i, const std::string& v) {
        check(sqlite3_bind_text(m_stmt, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& bind_blob(int i, const void* p, std::size_t n) {
        check(sqlite3_bind_blob(m_stmt, i, p, static_cast<int>(n), SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& bind(int i, const Id& id) { return bind_blob(i, id.bytes.data(), id.bytes.size()); }
    Stmt& bind_null(int i) {
        check(sqlite3_bind_null(m_stmt, i));
        return *this;
    }

    /// True while a row is available.
    bool step() {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc == SQLITE_DONE) {
            return false;
        }
        sql_fail(m_db, "step");
    }
    void run() {
        while (step()) {
        }
        reset();
    }
    void reset() {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
    }

    std::int64_t i64(int col) { return sqlite3_column_int64(m_stmt, col); }
    std::uint64_t u64(int col) { return static_cast<std::uint64_t>(i64(col)); }
    bool is_null(int col) { return sqlite3_column_type(m_stmt, col) == SQLITE_NULL; }
    std::string text(int col) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col)))
                 : std::string();
    }
    std::string blob(int col) {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(m_stmt, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, col)))
                 : std::string();
    }
    Id id(int col) {
        const std::string b = blob(col);
        if (b.size() != 16) {
            throw Error(ErrorCode::internal, "stored id is not 16 bytes");
        }
        Id id;
        std::copy(b.begin(), b.end(), id.bytes.begin());
        return id;
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            sql_fail(m_db, "bind");
        }
    }
    sqlite3* m_db;
    sqlite3_stmt* m_stmt = nullptr;
};

// Migrations, in order; migration i brings the schema from version i to i+1.
const char* const k_migrations[] = {
    // 0 -> 1
    R"sql(
    CREATE TABLE users(
        id BLOB PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL);
    -- Enrollment codes are stored hashed (BLAKE2b-256): a leaked database leaks no code.
    CREATE TABLE enroll_codes(
        code_hash BLOB PRIMARY KEY,
        user_id BLOB NOT NULL REFERENCES users(id),
        expires_at INTEGER NOT NULL,
        used_at INTEGER);
    CREATE TABLE devices(
        replica INTEGER PRIMARY KEY AUTOINCREMENT, -- replica ids are never reused
        user_id BLOB NOT NULL REFERENCES users(id),
        public_key BLOB NOT NULL,
        label TEXT NOT NULL,
        status INTEGER NOT NULL DEFAULT 0,
        last_counter INTEGER NOT NULL DEFAULT 0,
        cursor INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER NOT NULL DEFAULT 0,
        enrolled_at INTEGER NOT NULL);
    -- The op log. seq is the server sequence; (replica, counter) is the op id.
    CREATE TABLE ops(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        replica INTEGER NOT NULL,
        counter INTEGER NOT NULL,
        entity_type INTEGER NOT NULL,
        entity BLOB NOT NULL,
        body BLOB NOT NULL,            -- the op in the binary codec, as received
        received_at INTEGER NOT NULL,
        skew_ms INTEGER NOT NULL,
        flagged INTEGER NOT NULL DEFAULT 0,
        UNIQUE(replica, counter));
    CREATE INDEX ops_by_entity ON ops(entity_type, entity, seq);
    -- Per-user delivery feed: what each technician's devices must receive, in order.
    CREATE TABLE feed(
        user_id BLOB NOT NULL,
        fseq INTEGER NOT NULL,
        op_seq INTEGER REFERENCES ops(seq),
        evict_type INTEGER,
        evict_id BLOB,
        PRIMARY KEY(user_id, fseq)) WITHOUT ROWID;
    CREATE TABLE feed_heads(user_id BLOB PRIMARY KEY, last_fseq INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE projections(
        entity_type INTEGER NOT NULL,
        entity BLOB NOT NULL,
        state TEXT NOT NULL,
        updated_seq INTEGER NOT NULL,
        PRIMARY KEY(entity_type, entity)) WITHOUT ROWID;
    CREATE TABLE server_key(
        id INTEGER PRIMARY KEY CHECK (id = 1),
        public_key BLOB NOT NULL,
        secret_key BLOB NOT NULL);
    )sql",
    // 1 -> 2: people and the procedure's reference data (issue: the procedure end to end).
    R"sql(
    ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN unit TEXT NOT NULL DEFAULT '';
    -- Sessions: the token is 32 random bytes given to the client; only its hash is kept.
    CREATE TABLE sessions(
        token_hash BLOB PRIMARY KEY,
        user_id BLOB NOT NULL REFERENCES users(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX sessions_by_user ON sessions(user_id);
    -- The dated transfer fee table (Anexo 2). Money in centavos, dates in ms UTC.
    CREATE TABLE fee_table(
        product TEXT NOT NULL,
        effective_from INTEGER NOT NULL,
        centavos INTEGER NOT NULL CHECK (centavos >= 0),
        set_by BLOB,
        set_at INTEGER NOT NULL,
        PRIMARY KEY(product, effective_from)) WITHOUT ROWID;
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
        imported_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE inventory(
        serial TEXT PRIMARY KEY,
        contract TEXT NOT NULL REFERENCES contracts(contract),
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        description TEXT NOT NULL,
        imported_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE INDEX inventory_by_contract ON inventory(contract);
    )sql",
    // 2 -> 3: when a device was revoked (the server signs it as the device's proof).
    R"sql(
    ALTER TABLE devices ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 3 -> 4: feed rows that replay an entity's history on arrival reach the op's author
    // too. Rows written before cannot be told apart from live echoes: they are all
    // delivered (a device merges a duplicate as a no-op; it may lack the op).
    R"sql(
    ALTER TABLE feed ADD COLUMN history INTEGER NOT NULL DEFAULT 0;
    UPDATE feed SET history=1 WHERE op_seq IS NOT NULL;
    )sql",
    // 4 -> 5: a counter that every change to users, and to who a device is (its user, key,
    // status), bumps, whichever process makes it (otsync-admin beside a running server):
    // the server's in-memory directory reloads when it moved. A sync's own bookkeeping
    // (counter, cursor, last seen) does not move it.
    R"sql(
    CREATE TABLE directory_version(id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);
    INSERT INTO directory_version VALUES(1, 1);
    CREATE TRIGGER directory_user_insert AFTER INSERT ON users
        BEGIN UPDATE directory_version SET v = v + 1; END;
    CREATE TRIGGER directory_user_update AFTER UPDATE ON users
        BEGIN UPDATE directory_version SET v = v + 1; END;
    CREATE TRIGGER directory_user_delete AFTER DELETE ON users
        BEGIN UPDATE directory_version SET v = v + 1; END;
    CREATE TRIGGER directory_device_insert AFTER INSERT ON devices
        BEGIN UPDATE directory_version SET v = v + 1; END;
    CREATE TRIGGER directory_device_update
        AFTER UPDATE OF user_id, public_key, label, status, revoked_at ON devices
        BEGIN UPDATE directory_version SET v = v + 1; END;
    CREATE TRIGGER directory_device_delete AFTER DELETE ON devices
        BEGIN UPDATE directory_version SET v = v + 1; END;
    )sql",
    // 5 -> 6: closed cases out of memory: each archived case's figure for the reports, and
    // which group each of its entities belongs to (brought back together when touched).
    R"sql(
    CREATE TABLE archived_cases(
        case_id BLOB PRIMARY KEY,
        opened_at INTEGER NOT NULL,
        figure TEXT NOT NULL,
        contract TEXT NOT NULL,
        status TEXT NOT NULL,
        modality INTEGER NOT NULL
    );
    CREATE INDEX archived_cases_by_opening ON archived_cases(opened_at, case_id);
    CREATE INDEX archived_cases_by_contract ON archived_cases(contract, opened_at);
    CREATE TABLE archive(
        entity BLOB PRIMARY KEY,
        entity_type INTEGER NOT NULL,
        case_id BLOB NOT NULL
    );
    CREATE INDEX archive_by_case ON archive(case_id);
    )sql",
    // 6 -> 7: protocol 2: devices' sync sessions, and each request's signed ops (the
    // device's signature and the hash of every op it covered).
    R"sql(
    CREATE TABLE device_sessions(
        id BLOB PRIMARY KEY,
        replica INTEGER NOT NULL,
        mac_key BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX device_sessions_by_expiry ON device_sessions(expires_at);
    CREATE TABLE op_batches(
        replica INTEGER NOT NULL,
        request_counter INTEGER NOT NULL,
        signature BLOB NOT NULL,
        leaves BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY(replica, request_counter)
    );
    )sql",
    // 7 -> 8: attachments: whole blobs by hash, the chunks of uploads under way, and
    // which entity references each blob (what serving it is decided by).
    R"sql(
    CREATE TABLE blobs(
        hash BLOB PRIMARY KEY,
        media INTEGER NOT NULL,
        size INTEGER NOT NULL,
        data BLOB NOT NULL,
        stored_at INTEGER NOT NULL
    );
    CREATE TABLE blob_chunks(
        hash BLOB NOT NULL,
        start INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY(hash, start)
    );
    CREATE TABLE blob_refs(
        hash BLOB NOT NULL,
        kind INTEGER NOT NULL,
        entity_type INTEGER NOT NULL,
        entity BLOB NOT NULL,
        label TEXT NOT NULL,
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

// ==== the whole database as rows (Store::export_rows, import_rows; otsync-admin migrate) ====

/// The SQL of one dump table (k_dump_tables, same index). Built once and kept for the life of
/// the program, so prepared() may key its cache by the strings' addresses.
struct DumpSql {
    std::string select; // every row, in key order (BINARY: byte order)
    std::string insert;
    std::string any;                    // 1 when a row other than a shipped one exists
    std::string unship;                 // removes the shipped row with a key; empty: none
    std::vector<std::size_t> key_cells; // unship's parameters: those cells of a row
};

const std::vector<DumpSql>& dump_sql() {
    static const std::vector<DumpSql> all = [] {
        std::vector<DumpSql> out;
        for (const DumpTable& t : k_dump_tables) {
            const std::string name(t.name), columns(t.columns), shipped(t.shipped);
            const auto names = dump_columns(t.columns);
            DumpSql q;
            q.select = "SELECT " + columns + " FROM " + name + " ORDER BY " + std::string(t.key);
            std::string marks;
            for (std::size_t i = 0; i < names.size(); ++i) {
                marks += i ? ",?" : "?";
            }
            q.insert = "INSERT INTO " + name + "(" + columns + ") VALUES(" + marks + ")";
            q.any = "SELECT EXISTS(SELECT 1 FROM " + name +
                    (shipped.empty() ? "" : " WHERE NOT (" + shipped + ")") + ")";
            if (!shipped.empty()) {
                q.unship = "DELETE FROM " + name + " WHERE (" + shipped + ")";
                for (const auto k : dump_columns(t.key)) {
                    q.key_cells.push_back(static_cast<std::size_t>(
                        std::find(names.begin(), names.end(), k) - names.begin()));
                    q.unship += " AND " + std::string(k) + "=?";
                }
            }
            out.push_back(std::move(q));
        }
        return out;
    }();
    return all;
}

// ==== end of the whole database as rows ====

/// What a writer connection and the readers it opened share in the process: how many
/// commits the writer has made visible, so a reader drops what it cached at once rather
/// than at its next look at PRAGMA data_version.
struct SqliteCommits {
    std::atomic<std::uint64_t> visible{0};
};

/// WAL frames after which a commit checkpoints (SQLite's own default, which our commit hook
/// replaces).
constexpr int k_wal_autocheckpoint = 1000;

class SqliteStore final : public Store {
public:
    /// The writer (`commits` null: it creates and migrates the database), or one of its
    /// readers: a read-only connection to the same file, for reads beside the writer's
    /// commits (WAL: a reader sees every commit made before its statement began).
    explicit SqliteStore(const SqliteOptions& o, std::shared_ptr<SqliteCommits> commits = {})
        : m_options(o), m_reader(commits != nullptr), m_full(o.synchronous_full),
          m_before_commit(o.before_commit),
          m_commits(commits ? std::move(commits) : std::make_shared<SqliteCommits>()),
          m_others_check(std::chrono::milliseconds(o.others_check_ms)) {
        const int flags = m_reader
                              ? SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
        if (sqlite3_open_v2(o.path.c_str(), &m_db, flags, nullptr) != SQLITE_OK) {
            const std::string msg = m_db ? sqlite3_errmsg(m_db) : "out of memory";
            sqlite3_close(m_db);
            throw Error(ErrorCode::internal, "cannot open database " + o.path + ": " + msg);
        }
        try {
            sqlite3_busy_timeout(m_db, o.busy_timeout_ms);
            if (m_reader) {
                exec(k_mmap_on);
                m_seen_commits = m_commits->visible.load(std::memory_order_acquire);
                return;
            }
            exec("PRAGMA journal_mode=WAL"); // readers do not block the writer
            // After each commit, once it is visible: the readers' caches go, and the WAL is
            // checkpointed as SQLite's default hook would.
            sqlite3_wal_hook(m_db, &SqliteStore::on_wal_commit, this);
            // FULL: fsync at every commit (survives power loss); NORMAL: crash-safe only.
            exec(o.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
            exec("PRAGMA foreign_keys=ON");
            // Read pages through a memory map instead of copying them with pread.
            exec(k_mmap_on);
            migrate(o.path);
        } catch (...) {
            // A throwing constructor runs no destructor.
            for (auto& [sql, stmt] : m_statements) {
                sqlite3_finalize(stmt);
            }
            sqlite3_close(m_db);
            throw;
        }
    }
    ~SqliteStore() override {
        for (auto& [sql, stmt] : m_statements) {
            sqlite3_finalize(stmt);
        }
        sqlite3_close(m_db);
    }

    std::unique_ptr<Store> open_reader() override {
        if (m_reader || m_options.path.empty() || m_options.path == ":memory:" ||
            m_options.path.rfind("file:", 0) == 0) {
            return nullptr; // an in-memory database has no second connection
        }
        return std::make_unique<SqliteStore>(m_options, m_commits);
    }

    void add_user(const User& u) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("INSERT INTO users(id, name, role, disabled, created_at, password_hash, "
                          "full_name, unit) VALUES(?,?,?,?,?,?,?,?)");
        s.bind(1, u.id).bind(2, u.name).bind(3, std::string(to_string(u.role)));
        s.bind(4, u.disabled ? 1 : 0).bind(5, u.created_at);
        if (u.password_hash.empty()) {
            s.bind_null(6);
        } else {
            s.bind(6, u.password_hash);
        }
        s.bind(7, u.full_name).bind(8, u.unit);
        if (sqlite3_step_checked(s) == SQLITE_CONSTRAINT) {
            throw Error(ErrorCode::invalid_argument,
                        "a user named '" + u.name + "' already exists");
        }
    }

    std::optional<User> user_by_name(const std::string& name) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT id, name, role, disabled, created_at, password_hash, full_name, "
                          "unit FROM users WHERE name=?");
        s.bind(1, name);
        return s.step() ? std::optional<User>(read_user(s)) : std::nullopt;
    }

    std::optional<User> user_by_id(const Id& id) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT id, name, role, disabled, created_at, password_hash, full_name, "
                          "unit FROM users WHERE id=?");
        s.bind(1, id);
        return s.step() ? std::optional<User>(read_user(s)) : std::nullopt;
    }

    std::vector<User> users() override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT id, name, role, disabled, created_at, password_hash, full_name, "
                          "unit FROM users ORDER BY name");
        std::vector<User> out;
        while (s.step()) {
            out.push_back(read_user(s));
        }
        return out;
    }

    void add_enroll_code(const Hash256& code_hash, const Id& user,
                         std::int64_t expires_at) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("INSERT INTO enroll_codes(code_hash, user_id, expires_at) VALUES(?,?,?)");
        s.bind_blob(1, code_hash.data(), code_hash.size()).bind(2, user).bind(3, expires_at);
        s.run();
    }

    std::optional<Device> enroll(const Hash256& code_hash, const PublicKey& key,
                                 const std::string& label, std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        Stmt find =
            prepared("SELECT user_id FROM enroll_codes WHERE code_hash=? AND used_at IS NULL "
                     "AND expires_at>?");
        find.bind_blob(1, code_hash.data(), code_hash.size()).bind(2, now);
        if (!find.step()) {
            return std::nullopt;
        }
        const Id user = find.id(0);
        Stmt use = prepared("UPDATE enroll_codes SET used_at=? WHERE code_hash=?");
        use.bind(1, now).bind_blob(2, code_hash.data(), code_hash.size()).run();
        Stmt add =
            prepared("INSERT INTO devices(user_id, public_key, label, enrolled_at, last_seen) "
                     "VALUES(?,?,?,?,?)");
        add.bind(1, user)
            .bind_blob(2, key.data(), key.size())
            .bind(3, label)
            .bind(4, now)
            .bind(5, now);
        add.run();
        const auto replica = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(m_db));
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
        Stmt s =
            prepared("SELECT replica, user_id, public_key, label, status, last_counter, cursor, "
                     "last_seen, enrolled_at, revoked_at FROM devices WHERE replica=?");
        s.bind_u64(1, replica);
        return s.step() ? std::optional<Device>(read_device(s)) : std::nullopt;
    }

    bool claim_counter(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                       std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("UPDATE devices SET last_seen=?, cursor=max(cursor, ?), last_counter=? "
                          "WHERE replica=? AND last_counter<?");
        s.bind(1, now).bind_u64(2, cursor).bind_u64(3, counter).bind_u64(4, replica);
        s.bind_u64(5, counter).run();
        return sqlite3_changes(m_db) > 0;
    }

    std::uint64_t locked_counter(std::uint64_t replica) override {
        std::lock_guard lock(m_mutex); // one writer at a time: BEGIN IMMEDIATE holds it
        Stmt s = prepared("SELECT last_counter FROM devices WHERE replica=?");
        s.bind_u64(1, replica);
        return s.step() ? s.u64(0) : 0;
    }

    std::vector<Device> devices() override {
        std::lock_guard lock(m_mutex);
        Stmt s =
            prepared("SELECT replica, user_id, public_key, label, status, last_counter, cursor, "
                     "last_seen, enrolled_at, revoked_at FROM devices ORDER BY replica");
        std::vector<Device> out;
        while (s.step()) {
            out.push_back(read_device(s));
        }
        return out;
    }

    bool revoke_device(std::uint64_t replica) override {
        std::lock_guard lock(m_mutex);
        // The first revocation's time is kept: it is what the signed proof names.
        Stmt s = prepared("UPDATE devices SET status=1, revoked_at=CASE WHEN status=1 THEN "
                          "revoked_at ELSE CAST((julianday('now') - 2440587.5) * 86400000 AS "
                          "INTEGER) END WHERE replica=?");
        s.bind_u64(1, replica).run();
        return sqlite3_changes(m_db) > 0;
    }

    std::vector<std::vector<std::uint64_t>>
    commit_many(const std::vector<const SyncWrite*>& ws) override {
        std::lock_guard lock(m_mutex);
        if (m_before_commit) {
            m_before_commit();
        }
        // Requests that carry no op acknowledge nothing: their commit (counter, cursor,
        // last seen) need not wait for fsync. WAL keeps commits in order, so the next
        // FULL commit makes it durable too.
        const bool relaxed = m_full && std::all_of(ws.begin(), ws.end(), [](const SyncWrite* w) {
                                 return w->ops.empty();
                             });
        if (relaxed) {
            exec("PRAGMA synchronous=NORMAL");
        }
        struct Restore {
            SqliteStore& s;
            bool on;
            ~Restore() {
                if (on) {
                    sqlite3_exec(s.m_db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
                }
            }
        } restore{*this, relaxed};
        Tx tx(*this);
        std::vector<std::vector<std::uint64_t>> out;
        out.reserve(ws.size());
        for (const SyncWrite* w : ws) {
            out.push_back(write_one(*w));
        }
        tx.commit();
        return out;
    }

    /// One request's writes, inside the caller's transaction.
    std::vector<std::uint64_t> write_one(const SyncWrite& w) {
        std::vector<std::uint64_t> seqs;
        seqs.reserve(w.ops.size());
        Stmt ins =
            prepared("INSERT INTO ops(replica, counter, entity_type, entity, body, received_at, "
                     "skew_ms, flagged) VALUES(?,?,?,?,?,?,?,?)");
        for (const auto& so : w.ops) {
            const std::string body = encode_binary(std::span<const Op>(&so.op, 1));
            ins.bind_u64(1, so.op.id.replica).bind_u64(2, so.op.id.counter);
            ins.bind(3, static_cast<std::int64_t>(so.op.entity_type)).bind(4, so.op.entity);
            ins.bind_blob(5, body.data(), body.size()).bind(6, so.received_at).bind(7, so.skew_ms);
            ins.bind(8, so.flagged ? 1 : 0);
            ins.run();
            seqs.push_back(static_cast<std::uint64_t>(sqlite3_last_insert_rowid(m_db)));
        }
        Stmt head_get = prepared("SELECT last_fseq FROM feed_heads WHERE user_id=?");
        Stmt head_put = prepared("INSERT INTO feed_heads(user_id, last_fseq) VALUES(?,?) "
                                 "ON CONFLICT(user_id) DO UPDATE SET last_fseq=excluded.last_fseq");
        Stmt feed =
            prepared("INSERT INTO feed(user_id, fseq, op_seq, evict_type, evict_id, history) "
                     "VALUES(?,?,?,?,?,?)");
        // Feed sequences per user: read each user's head once, write it back once.
        std::unordered_map<Id, std::uint64_t> heads;
        for (const auto& f : w.feed) {
            auto [head, fresh] = heads.try_emplace(f.user, 0);
            if (fresh) {
                head_get.bind(1, f.user);
                head->second = head_get.step() ? head_get.u64(0) : 0;
                head_get.reset();
            }
            const std::uint64_t fseq = ++head->second;
            feed.bind(1, f.user).bind_u64(2, fseq);
            if (f.new_op) {
                feed.bind_u64(3, seqs.at(*f.new_op)).bind_null(4).bind_null(5);
            } else if (f.old_seq) {
                feed.bind_u64(3, *f.old_seq).bind_null(4).bind_null(5);
            } else {
                feed.bind_null(3)
                    .bind(4, static_cast<std::int64_t>(f.evict->first))
                    .bind(5, f.evict->second);
            }
            feed.bind(6, f.history ? 1 : 0);
            feed.run();
        }
        for (const auto& [user, fseq] : heads) {
            head_put.bind(1, user).bind_u64(2, fseq).run();
            m_heads[user] = fseq; // dropped again if the transaction rolls back
        }
        const std::uint64_t last =
            w.projections_seq ? w.projections_seq : (seqs.empty() ? 0 : seqs.back());
        Stmt proj = prepared("INSERT INTO projections(entity_type, entity, state, updated_seq) "
                             "VALUES(?,?,?,?) ON CONFLICT(entity_type, entity) DO UPDATE SET "
                             "state=excluded.state, updated_seq=excluded.updated_seq");
        for (const auto& p : w.projections) {
            proj.bind(1, static_cast<std::int64_t>(p.type))
                .bind(2, p.id)
                .bind(3, p.json)
                .bind_u64(4, last);
            proj.run();
        }
        if (w.batch) {
            const std::string leaves = leaves_blob(w.batch->leaves);
            Stmt b = prepared("INSERT INTO op_batches(replica, request_counter, signature, leaves, "
                              "received_at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING");
            b.bind_u64(1, w.batch->replica).bind_u64(2, w.batch->request_counter);
            b.bind_blob(3, w.batch->signature.data(), w.batch->signature.size());
            b.bind_blob(4, leaves.data(), leaves.size()).bind(5, w.batch->received_at).run();
        }
        if (w.replica != k_server_replica) {
            Stmt dev = prepared("UPDATE devices SET last_seen=?, cursor=max(cursor, ?), "
                                "last_counter=max(last_counter, ?) WHERE replica=?");
            dev.bind(1, w.now).bind_u64(2, w.cursor).bind_u64(3, w.request_counter);
            dev.bind_u64(4, w.replica).run();
        }
        return seqs;
    }

    std::vector<StoredOp> ops_after(std::uint64_t after, std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT seq, body, received_at, skew_ms, flagged FROM ops WHERE seq>? "
                          "ORDER BY seq LIMIT ?");
        s.bind_u64(1, after).bind(2, limit ? static_cast<std::int64_t>(limit) : -1);
        std::vector<StoredOp> out;
        while (s.step()) {
            out.push_back(read_op(s));
        }
        return out;
    }

    std::vector<StoredOp> ops_by_seq(const std::vector<std::uint64_t>& seqs) override {
        if (seqs.empty()) {
            return {}; // and no wait for a commit in progress
        }
        std::lock_guard lock(m_mutex);
        // Read as runs: seqs close to each other (a feed page, an entity's history) are one
        // forward scan of the ops table instead of one B-tree seek per op.
        constexpr std::uint64_t k_gap = 16; // a longer gap starts a new run
        std::vector<std::uint64_t> want(seqs);
        std::sort(want.begin(), want.end());
        want.erase(std::unique(want.begin(), want.end()), want.end());
        Stmt s = prepared("SELECT seq, body, received_at, skew_ms, flagged FROM ops "
                          "WHERE seq>=? AND seq<=? ORDER BY seq");
        std::vector<StoredOp> out;
        out.reserve(want.size());
        for (std::size_t i = 0; i < want.size();) {
            std::size_t j = i;
            while (j + 1 < want.size() && want[j + 1] - want[j] <= k_gap) {
                ++j;
            }
            s.bind_u64(1, want[i]).bind_u64(2, want[j]);
            std::size_t k = i;
            while (k <= j && s.step()) {
                const std::uint64_t seq = s.u64(0);
                while (k <= j && want[k] < seq) {
                    ++k; // a seq with no op
                }
                if (k <= j && want[k] == seq) {
                    out.push_back(read_op(s));
                    ++k;
                }
            }
            s.reset();
            i = j + 1;
        }
        return out;
    }

    std::vector<std::uint64_t> op_seqs_of_entity(EntityType t, const Id& id) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT seq FROM ops WHERE entity_type=? AND entity=? ORDER BY seq");
        s.bind(1, static_cast<std::int64_t>(t)).bind(2, id);
        std::vector<std::uint64_t> out;
        while (s.step()) {
            out.push_back(s.u64(0));
        }
        return out;
    }

    // ---- archive ----
    void archive(const ArchivedCase& c,
                 const std::vector<std::pair<EntityType, Id>>& entities) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        prepared("INSERT INTO archived_cases(case_id, opened_at, figure, contract, status, "
                 "modality) VALUES(?,?,?,?,?,?) ON CONFLICT(case_id) DO UPDATE SET "
                 "opened_at=excluded.opened_at, figure=excluded.figure, "
                 "contract=excluded.contract, status=excluded.status, modality=excluded.modality")
            .bind(1, c.case_id)
            .bind(2, c.opened_at)
            .bind(3, c.figure)
            .bind(4, c.contract)
            .bind(5, c.status)
            .bind(6, c.modality)
            .run();
        for (const auto& [t, id] : entities) {
            prepared("INSERT INTO archive(entity, entity_type, case_id) VALUES(?,?,?) "
                     "ON CONFLICT(entity) DO UPDATE SET entity_type=excluded.entity_type, "
                     "case_id=excluded.case_id")
                .bind(1, id)
                .bind(2, static_cast<std::int64_t>(t))
                .bind(3, c.case_id)
                .run();
        }
        tx.commit();
    }

    std::optional<Id> archived_group_of(const Id& entity) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT case_id FROM archive WHERE entity=?");
        s.bind(1, entity);
        if (!s.step()) {
            return std::nullopt;
        }
        return s.id(0);
    }

    std::vector<std::pair<EntityType, Id>> archived_group(const Id& case_id) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT entity_type, entity FROM archive WHERE case_id=? "
                          "ORDER BY entity_type, entity");
        s.bind(1, case_id);
        std::vector<std::pair<EntityType, Id>> out;
        while (s.step()) {
            const auto t = s.i64(0);
            if (t != (t & 0xff) || !is_valid_entity_type(static_cast<std::uint8_t>(t))) {
                throw Error(ErrorCode::internal, "an archive row has an unknown entity type");
            }
            out.emplace_back(static_cast<EntityType>(t), s.id(1));
        }
        return out;
    }

    std::vector<ArchivedCase> archived_cases(std::int64_t from_ms, std::int64_t to_ms) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT case_id, opened_at, figure, contract, status, modality FROM "
                          "archived_cases WHERE opened_at>=? AND opened_at<? "
                          "ORDER BY opened_at, case_id");
        s.bind(1, from_ms).bind(2, to_ms);
        std::vector<ArchivedCase> out;
        while (s.step()) {
            out.push_back({s.id(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.i64(5)});
        }
        return out;
    }

    ArchivedCasePage archived_case_page(const ArchivedCaseQuery& q) override {
        std::lock_guard lock(m_mutex);
        // An empty filter value matches every row (one statement for every combination).
        const auto bind = [&](Stmt& s) {
            s.bind(1, q.status);
            if (q.modality) {
                s.bind(2, *q.modality);
            } else {
                s.bind_null(2);
            }
            s.bind(3, q.contract);
        };
        ArchivedCasePage out;
        {
            Stmt s = prepared(
                "SELECT count(*) FROM archived_cases WHERE (?1='' OR status=?1) AND (?2 IS NULL "
                "OR modality=?2) AND (?3='' OR contract=?3)");
            bind(s);
            if (s.step()) {
                out.total = s.u64(0);
            }
        }
        Stmt s = prepared("SELECT case_id, opened_at, figure, contract, status, modality FROM "
                          "archived_cases WHERE (?1='' OR status=?1) AND (?2 IS NULL OR "
                          "modality=?2) AND (?3='' OR contract=?3) "
                          "ORDER BY opened_at DESC, case_id DESC LIMIT ?4");
        bind(s);
        s.bind(4, static_cast<std::int64_t>(q.limit));
        while (s.step()) {
            out.cases.push_back({s.id(0), s.i64(1), s.text(2), s.text(3), s.text(4), s.i64(5)});
        }
        return out;
    }

    std::uint64_t archived_count() override {
        return scalar("SELECT count(*) FROM archived_cases");
    }

    std::vector<Id> archived_entities() override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT entity FROM archive WHERE case_id IN "
                          "(SELECT case_id FROM archived_cases)");
        std::vector<Id> out;
        while (s.step()) {
            out.push_back(s.id(0));
        }
        return out;
    }

    void unarchive(const Id& case_id) override {
        std::lock_guard lock(m_mutex);
        prepared("DELETE FROM archived_cases WHERE case_id=?").bind(1, case_id).run();
    }

    std::vector<OpId> op_ids_of_entity(EntityType t, const Id& id) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared(
            "SELECT replica, counter FROM ops WHERE entity_type=? AND entity=? ORDER BY seq");
        s.bind(1, static_cast<std::int64_t>(t)).bind(2, id);
        std::vector<OpId> out;
        while (s.step()) {
            out.push_back({s.u64(0), s.u64(1)});
        }
        return out;
    }

    std::uint64_t directory_version() override {
        // Read again when this connection changed rows (a trigger moves the version) or
        // another one committed (otsync-admin); otherwise a pull reads no table for it.
        std::lock_guard lock(m_mutex);
        drop_caches_if_others_wrote(true);
        const auto changes = sqlite3_total_changes64(m_db);
        if (!m_directory_version || changes != m_directory_changes) {
            Stmt s = prepared("SELECT v FROM directory_version");
            m_directory_version = s.step() ? s.u64(0) : 0;
            m_directory_changes = changes;
        }
        return *m_directory_version;
    }
    std::uint64_t op_count() override { return scalar("SELECT count(*) FROM ops"); }
    std::uint64_t last_seq() override { return scalar("SELECT coalesce(max(seq), 0) FROM ops"); }

    std::vector<FeedRow> feed_after(const Id& user, std::uint64_t after,
                                    std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        if (feed_head(user) <= after) {
            return {}; // the device holds its whole feed (a no-op pull's usual answer)
        }
        Stmt s = prepared("SELECT f.fseq, f.op_seq, f.evict_type, f.evict_id, o.replica, f.history "
                          "FROM feed f LEFT JOIN ops o ON o.seq = f.op_seq "
                          "WHERE f.user_id=? AND f.fseq>? ORDER BY f.fseq LIMIT ?");
        s.bind(1, user).bind_u64(2, after).bind(3, static_cast<std::int64_t>(limit));
        std::vector<FeedRow> out;
        while (s.step()) {
            FeedRow r;
            r.fseq = s.u64(0);
            if (!s.is_null(1)) {
                r.op_seq = s.u64(1);
                r.op_replica = s.u64(4);
                r.history = s.i64(5) != 0;
            } else {
                r.evict = std::make_pair(static_cast<EntityType>(s.i64(2)), s.id(3));
            }
            out.push_back(r);
        }
        return out;
    }

    std::uint64_t feed_count_after(const Id& user, std::uint64_t after) override {
        std::lock_guard lock(m_mutex);
        const std::uint64_t head = feed_head(user);
        return head > after ? head - after : 0;
    }

    /// A user's last feed sequence: only this connection appends to the feed, so the
    /// heads it wrote or read stay exact until another connection commits.
    std::uint64_t feed_head(const Id& user) {
        drop_caches_if_others_wrote();
        if (const auto it = m_heads.find(user); it != m_heads.end()) {
            return it->second;
        }
        Stmt s = prepared("SELECT coalesce((SELECT last_fseq FROM feed_heads WHERE user_id=?), 0)");
        s.bind(1, user);
        s.step();
        const std::uint64_t head = s.u64(0);
        if (sqlite3_get_autocommit(m_db) != 0) { // read inside a transaction: not kept
            m_heads.emplace(user, head);
        }
        return head;
    }

    /// PRAGMA data_version moves when another connection (another process) commits: what
    /// this connection cached of the database is then read again. Looked at every
    /// others_check_ms unless `now` (a read transaction costs file-lock system calls).
    /// A reader also looks at its writer's commits, at every read (an atomic load).
    void drop_caches_if_others_wrote(bool now_anyway = false) {
        const auto now = std::chrono::steady_clock::now();
        const std::uint64_t commits = m_commits->visible.load(std::memory_order_acquire);
        if (commits != m_seen_commits) {
            m_heads.clear();
            m_directory_version.reset();
        }
        if (!now_anyway && now < m_next_others_check) {
            m_seen_commits = commits;
            return;
        }
        m_next_others_check = now + m_others_check;
        m_seen_commits = commits;
        Stmt s = prepared("PRAGMA data_version");
        const std::uint64_t v = s.step() ? s.u64(0) : 0;
        if (v != m_data_version) {
            m_data_version = v;
            m_heads.clear();
            m_directory_version.reset();
        }
    }

    // ==== attachments ====

    std::optional<StoredBlob> blob_info(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT media, size, stored_at FROM blobs WHERE hash=?");
        s.bind_blob(1, hash.data(), hash.size());
        if (!s.step()) {
            return std::nullopt;
        }
        return stored_blob_of(s.i64(0), s.i64(1), s.i64(2));
    }

    std::optional<std::string> blob_data(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT data FROM blobs WHERE hash=?");
        s.bind_blob(1, hash.data(), hash.size());
        if (!s.step()) {
            return std::nullopt;
        }
        return s.blob(0);
    }

    std::uint64_t staged_bytes(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s =
            prepared("SELECT COALESCE(MAX(start + length(data)), 0) FROM blob_chunks WHERE hash=?");
        s.bind_blob(1, hash.data(), hash.size());
        return s.step() ? s.u64(0) : 0;
    }

    void stage_chunk(const Hash256& hash, std::uint64_t offset, std::string_view data) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("INSERT OR IGNORE INTO blob_chunks(hash, start, data) VALUES(?,?,?)");
        s.bind_blob(1, hash.data(), hash.size())
            .bind_u64(2, offset)
            .bind_blob(3, data.data(), data.size());
        s.run();
    }

    std::string staged_blob(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT data FROM blob_chunks WHERE hash=? ORDER BY start");
        s.bind_blob(1, hash.data(), hash.size());
        std::string out;
        while (s.step()) {
            out += s.blob(0);
        }
        return out;
    }

    void drop_staged(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("DELETE FROM blob_chunks WHERE hash=?");
        s.bind_blob(1, hash.data(), hash.size()).run();
    }

    void store_blob(const Hash256& hash, const StoredBlob& info, std::string_view data,
                    const std::vector<BlobRef>& refs) override {
        in_transaction(true, [&] {
            Stmt s = prepared("INSERT OR IGNORE INTO blobs(hash, media, size, data, stored_at) "
                              "VALUES(?,?,?,?,?)");
            s.bind_blob(1, hash.data(), hash.size())
                .bind(2, static_cast<std::int64_t>(info.media))
                .bind_u64(3, info.size)
                .bind_blob(4, data.data(), data.size())
                .bind(5, info.stored_at)
                .run();
            add_blob_refs(refs);
            drop_staged(hash);
        });
    }

    void add_blob_refs(const std::vector<BlobRef>& refs) override {
        std::lock_guard lock(m_mutex);
        for (const BlobRef& r : refs) {
            Stmt s = prepared("INSERT OR IGNORE INTO blob_refs(hash, kind, entity_type, entity, "
                              "label) VALUES(?,?,?,?,?)");
            s.bind_blob(1, r.hash.data(), r.hash.size())
                .bind(2, static_cast<std::int64_t>(r.kind))
                .bind(3, static_cast<std::int64_t>(r.entity_type))
                .bind(4, r.entity)
                .bind(5, r.label)
                .run();
        }
    }

    std::vector<BlobRef> blob_refs(const Hash256& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT kind, entity_type, entity, label FROM blob_refs WHERE hash=? "
                          "ORDER BY kind, entity_type, entity, label");
        s.bind_blob(1, hash.data(), hash.size());
        std::vector<BlobRef> out;
        const std::string h(hash.begin(), hash.end());
        while (s.step()) {
            out.push_back(blob_ref_of(h, s.i64(0), s.i64(1), s.blob(2), s.text(3)));
        }
        return out;
    }

    std::optional<std::pair<PublicKey, std::vector<std::uint8_t>>> server_key() override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT public_key, secret_key FROM server_key WHERE id=1");
        if (!s.step()) {
            return std::nullopt;
        }
        const std::string pk = s.blob(0);
        const std::string sk = s.blob(1);
        if (pk.size() != 32 || sk.size() != 64) {
            throw Error(ErrorCode::internal, "stored server key is damaged");
        }
        PublicKey p{};
        std::copy(pk.begin(), pk.end(), p.begin());
        return std::make_pair(p, std::vector<std::uint8_t>(sk.begin(), sk.end()));
    }

    void set_server_key(const PublicKey& pk, const SecretKey& sk) override {
        std::lock_guard lock(m_mutex);
        Stmt s =
            prepared("INSERT OR REPLACE INTO server_key(id, public_key, secret_key) VALUES(1,?,?)");
        s.bind_blob(1, pk.data(), pk.size())
            .bind_blob(2, sk.bytes().data(), sk.bytes().size())
            .run();
    }

    void set_password_hash(const Id& user, const std::string& hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("UPDATE users SET password_hash=? WHERE id=?");
        s.bind(1, hash).bind(2, user).run();
    }

    void set_user_disabled(const Id& user, bool disabled) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("UPDATE users SET disabled=? WHERE id=?");
        s.bind(1, disabled ? 1 : 0).bind(2, user).run();
    }

    void set_user_profile(const Id& user, const std::string& full_name,
                          const std::string& unit) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("UPDATE users SET full_name=?, unit=? WHERE id=?");
        s.bind(1, full_name).bind(2, unit).bind(3, user).run();
    }

    void add_session(const Session& x) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared(
            "INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES(?,?,?,?)");
        s.bind_blob(1, x.token_hash.data(), x.token_hash.size()).bind(2, x.user);
        s.bind(3, x.created_at).bind(4, x.expires_at).run();
    }

    std::optional<Session> session(const Hash256& token_hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s =
            prepared("SELECT user_id, created_at, expires_at FROM sessions WHERE token_hash=?");
        s.bind_blob(1, token_hash.data(), token_hash.size());
        if (!s.step()) {
            return std::nullopt;
        }
        Session x;
        x.token_hash = token_hash;
        x.user = s.id(0);
        x.created_at = s.i64(1);
        x.expires_at = s.i64(2);
        return x;
    }

    void delete_session(const Hash256& token_hash) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("DELETE FROM sessions WHERE token_hash=?");
        s.bind_blob(1, token_hash.data(), token_hash.size()).run();
    }

    std::size_t delete_sessions_of(const Id& user) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("DELETE FROM sessions WHERE user_id=?");
        s.bind(1, user).run();
        return static_cast<std::size_t>(sqlite3_changes(m_db));
    }

    std::size_t delete_expired_sessions(std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("DELETE FROM sessions WHERE expires_at<=?");
        s.bind(1, now).run();
        return static_cast<std::size_t>(sqlite3_changes(m_db));
    }

    void add_device_session(const DeviceSession& x) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("INSERT INTO device_sessions(id, replica, mac_key, created_at, "
                          "expires_at) VALUES(?,?,?,?,?)");
        s.bind_blob(1, x.id.data(), x.id.size()).bind_u64(2, x.replica);
        s.bind_blob(3, x.key.bytes.data(), x.key.bytes.size());
        s.bind(4, x.created_at).bind(5, x.expires_at).run();
    }

    std::optional<DeviceSession> device_session(const SessionId& id) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared(
            "SELECT replica, mac_key, created_at, expires_at FROM device_sessions WHERE id=?");
        s.bind_blob(1, id.data(), id.size());
        if (!s.step()) {
            return std::nullopt;
        }
        DeviceSession x;
        x.id = id;
        x.replica = s.u64(0);
        const std::string key = s.blob(1);
        if (key.size() != x.key.bytes.size()) {
            throw Error(ErrorCode::internal, "a stored session key is damaged");
        }
        std::copy(key.begin(), key.end(), x.key.bytes.begin());
        x.created_at = s.i64(2);
        x.expires_at = s.i64(3);
        return x;
    }

    std::size_t delete_expired_device_sessions(std::int64_t now) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("DELETE FROM device_sessions WHERE expires_at<=?");
        s.bind(1, now).run();
        return static_cast<std::size_t>(sqlite3_changes(m_db));
    }

    std::vector<OpBatch>
    op_batches_after(std::optional<std::pair<std::uint64_t, std::uint64_t>> after,
                     std::size_t limit) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT replica, request_counter, signature, leaves, received_at FROM "
                          "op_batches WHERE ? OR (replica, request_counter) > (?, ?) ORDER BY "
                          "replica, request_counter LIMIT ?");
        s.bind(1, static_cast<std::int64_t>(after ? 0 : 1));
        s.bind_u64(2, after ? after->first : 0).bind_u64(3, after ? after->second : 0);
        s.bind_u64(4, limit);
        std::vector<OpBatch> out;
        while (s.step()) {
            out.push_back(op_batch_of(s.u64(0), s.u64(1), s.blob(2), s.blob(3), s.i64(4)));
        }
        return out;
    }

    std::vector<FeeRecord> fee_records() override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT product, effective_from, centavos, set_by, set_at FROM fee_table "
                          "ORDER BY product, effective_from");
        std::vector<FeeRecord> out;
        while (s.step()) {
            FeeRecord r;
            r.product = s.text(0);
            r.effective_from = s.i64(1);
            r.centavos = s.i64(2);
            if (!s.is_null(3)) {
                r.set_by = s.id(3);
            }
            r.set_at = s.i64(4);
            out.push_back(std::move(r));
        }
        return out;
    }

    void put_fee_record(const FeeRecord& r) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("INSERT OR REPLACE INTO fee_table(product, effective_from, centavos, "
                          "set_by, set_at) VALUES(?,?,?,?,?)");
        s.bind(1, r.product).bind(2, r.effective_from).bind(3, r.centavos);
        if (r.set_by) {
            s.bind(4, *r.set_by);
        } else {
            s.bind_null(4);
        }
        s.bind(5, r.set_at).run();
    }

    void import_inventory(const std::vector<Contract>& contracts,
                          const std::vector<InventoryItem>& items) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this);
        {
            Stmt c = prepared("INSERT INTO contracts(contract, customer_name, person_type, tax_id, "
                              "address, imported_at) VALUES(?,?,?,?,?,?) ON CONFLICT(contract) DO "
                              "UPDATE SET customer_name=excluded.customer_name, "
                              "person_type=excluded.person_type, tax_id=excluded.tax_id, "
                              "address=excluded.address, imported_at=excluded.imported_at");
            for (const auto& x : contracts) {
                c.bind(1, x.contract).bind(2, x.customer_name).bind(3, x.person_type);
                c.bind(4, x.tax_id).bind(5, x.address).bind(6, x.imported_at).run();
            }
        }
        {
            Stmt e = prepared("INSERT INTO inventory(serial, contract, kind, model, description, "
                              "imported_at) VALUES(?,?,?,?,?,?) ON CONFLICT(serial) DO UPDATE SET "
                              "contract=excluded.contract, kind=excluded.kind, "
                              "model=excluded.model, description=excluded.description, "
                              "imported_at=excluded.imported_at");
            for (const auto& x : items) {
                e.bind(1, x.serial).bind(2, x.contract).bind(3, x.kind).bind(4, x.model);
                e.bind(5, x.description).bind(6, x.imported_at).run();
            }
        }
        tx.commit();
    }

    std::optional<Contract> contract(const std::string& number) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT contract, customer_name, person_type, tax_id, address, "
                          "imported_at FROM contracts WHERE contract=?");
        s.bind(1, number);
        if (!s.step()) {
            return std::nullopt;
        }
        return Contract{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5)};
    }

    std::vector<InventoryItem> inventory_of(const std::string& contract) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT serial, contract, kind, model, description, imported_at FROM "
                          "inventory WHERE contract=? ORDER BY serial");
        s.bind(1, contract);
        std::vector<InventoryItem> out;
        while (s.step()) {
            out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5)});
        }
        return out;
    }

    std::optional<InventoryItem> inventory_item(const std::string& serial) override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT serial, contract, kind, model, description, imported_at FROM "
                          "inventory WHERE serial=?");
        s.bind(1, serial);
        if (!s.step()) {
            return std::nullopt;
        }
        return InventoryItem{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5)};
    }

    std::uint64_t inventory_count() override { return scalar("SELECT count(*) FROM inventory"); }

    std::vector<SyncWrite::Projection> projections() override {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared("SELECT entity_type, entity, state FROM projections "
                          "ORDER BY entity_type, entity");
        std::vector<SyncWrite::Projection> out;
        while (s.step()) {
            const auto t = s.i64(0);
            if (!is_valid_entity_type(static_cast<std::uint8_t>(t)) || t != (t & 0xff)) {
                throw Error(ErrorCode::internal, "a projection row has an unknown entity type");
            }
            out.push_back({static_cast<EntityType>(t), s.id(1), s.text(2)});
        }
        return out;
    }

    std::uint64_t projected_seq() override {
        return scalar("SELECT coalesce(max(updated_seq), 0) FROM projections");
    }

    void replace_projections(const std::vector<SyncWrite::Projection>& rows) override {
        std::lock_guard lock(m_mutex);
        Tx tx(*this); // joins in_transaction's when inside one
        exec("DELETE FROM projections");
        const std::uint64_t last = [&] {
            Stmt q = prepared("SELECT coalesce(max(seq), 0) FROM ops");
            return q.step() ? q.u64(0) : 0;
        }();
        Stmt ins = prepared("INSERT INTO projections(entity_type, entity, state, updated_seq) "
                            "VALUES(?,?,?,?)");
        for (const auto& p : rows) {
            ins.bind(1, static_cast<std::int64_t>(p.type)).bind(2, p.id).bind(3, p.json);
            ins.bind_u64(4, last).run();
        }
        tx.commit();
    }

    void in_transaction(bool write, const std::function<void()>& f) override {
        std::lock_guard lock(m_mutex);
        exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
        try {
            f();
            exec("COMMIT");
        } catch (...) {
            sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
            m_heads.clear(); // heads the transaction wrote
            throw;
        }
    }

    // ==== the whole database as rows (export_rows, import_rows; otsync-admin migrate) ====

    std::vector<std::string_view> tables_with_rows() override {
        std::lock_guard lock(m_mutex);
        std::vector<std::string_view> out;
        for (std::size_t t = 0; t < std::size(k_dump_tables); ++t) {
            Stmt s = prepared(dump_sql()[t].any.c_str());
            if (s.step() && s.i64(0) != 0) {
                out.push_back(k_dump_tables[t].name);
            }
        }
        return out;
    }

    void export_rows(const std::function<void(const DumpRows&)>& sink, std::size_t batch) override {
        std::lock_guard lock(m_mutex);
        if (sqlite3_get_autocommit(m_db) != 0) { // not inside in_transaction: a snapshot of its own
            in_transaction(false, [&] { export_rows(sink, batch); });
            return;
        }
        batch = std::max<std::size_t>(batch, 1);
        for (std::size_t t = 0; t < std::size(k_dump_tables); ++t) {
            const DumpTable& table = k_dump_tables[t];
            Stmt s = prepared(dump_sql()[t].select.c_str());
            DumpRows out{table.name, {}};
            while (s.step()) {
                std::vector<DumpCell> row(table.kinds.size());
                for (std::size_t c = 0; c < row.size(); ++c) {
                    const int col = static_cast<int>(c);
                    if (s.is_null(col)) {
                        continue;
                    }
                    if (table.kinds[c] == 'i') {
                        row[c].kind = DumpCell::Kind::integer;
                        row[c].integer = s.i64(col);
                    } else if (table.kinds[c] == 't') {
                        row[c].kind = DumpCell::Kind::text;
                        row[c].data = s.text(col);
                    } else {
                        row[c].kind = DumpCell::Kind::bytes;
                        row[c].data = s.blob(col);
                    }
                }
                out.rows.push_back(std::move(row));
                if (out.rows.size() == batch) {
                    sink(out);
                    out.rows.clear();
                }
            }
            if (!out.rows.empty()) {
                sink(out);
            }
        }
    }

    void import_rows(const DumpRows& rows) override {
        const auto t = dump_table_of(rows);
        if (!t) {
            throw Error(ErrorCode::invalid_argument,
                        "rows that do not fit the table " + std::string(rows.table));
        }
        const DumpSql& q = dump_sql()[*t];
        auto bind = [](Stmt& s, int i, const DumpCell& cell) {
            switch (cell.kind) {
            case DumpCell::Kind::null:
                s.bind_null(i);
                break;
            case DumpCell::Kind::integer:
                s.bind(i, cell.integer);
                break;
            case DumpCell::Kind::text:
                s.bind(i, cell.data);
                break;
            case DumpCell::Kind::bytes:
                s.bind_blob(i, cell.data.data(), cell.data.size());
                break;
            }
        };
        std::lock_guard lock(m_mutex);
        Tx tx(*this);    // joins in_transaction's when inside one
        m_heads.clear(); // rows may carry feed heads
        for (const auto& row : rows.rows) {
            if (!q.unship.empty()) {
                Stmt del = prepared(q.unship.c_str());
                for (std::size_t k = 0; k < q.key_cells.size(); ++k) {
                    bind(del, static_cast<int>(k + 1), row.at(q.key_cells[k]));
                }
                del.run();
            }
            // An explicit seq or replica moves AUTOINCREMENT's counter (sqlite_sequence)
            // up to it: later ones continue above.
            Stmt ins = prepared(q.insert.c_str());
            for (std::size_t c = 0; c < row.size(); ++c) {
                bind(ins, static_cast<int>(c + 1), row[c]);
            }
            ins.run();
        }
        tx.commit();
    }

    // ==== end of the whole database as rows ====

    void backup_to(const std::string& path) override {
        sqlite3* dst = nullptr;
        auto fail = [&](const std::string& why) {
            if (dst) {
                sqlite3_close(dst);
            }
            std::remove(path.c_str());
            throw Error(ErrorCode::internal, "backup to " + path + " failed: " + why);
        };
        // A new file only: an existing one is somebody's, perhaps the last good backup.
        if (FILE* f = std::fopen(path.c_str(), "rb")) {
            std::fclose(f);
            throw Error(ErrorCode::invalid_argument, path + " already exists");
        }
        if (sqlite3_open_v2(path.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) != SQLITE_OK) {
            fail(dst ? sqlite3_errmsg(dst) : "out of memory");
        }
        {
            std::lock_guard lock(m_mutex);
            // One step copies every page from one read snapshot: the copy is consistent even
            // while the server commits (WAL readers do not block the writer).
            sqlite3_backup* b = sqlite3_backup_init(dst, "main", m_db, "main");
            if (!b) {
                fail(sqlite3_errmsg(dst));
            }
            const int rc = sqlite3_backup_step(b, -1);
            sqlite3_backup_finish(b);
            if (rc != SQLITE_DONE) {
                fail(sqlite3_errstr(rc));
            }
        }
        std::string verdict;
        sqlite3_exec(
            dst, "PRAGMA integrity_check",
            [](void* out, int, char** values, char**) {
                *static_cast<std::string*>(out) += values[0] ? values[0] : "";
                return 0;
            },
            &verdict, nullptr);
        if (verdict != "ok") {
            fail("the copy does not pass integrity_check: " + verdict);
        }
        sqlite3_close(dst);
    }

    void release_memory() override {
        std::lock_guard lock(m_mutex);
        if (sqlite3_get_autocommit(m_db) == 0) {
            return; // inside a transaction: SQLite keeps the map while pages are out
        }
        // Unmapped, the file pages a fold read through the map leave the process (they stay
        // in the kernel's page cache); the map is made again, empty, by the next read.
        exec("PRAGMA mmap_size=0");
        exec(k_mmap_on);
        sqlite3_db_release_memory(m_db);
    }

    bool healthy() override {
        try {
            return scalar("SELECT 1") == 1;
        } catch (const Error&) {
            return false;
        }
    }

private:
    /// A write transaction (BEGIN IMMEDIATE), or the caller's when one is open
    /// (in_transaction): then commit and rollback are the caller's. Rolls back when
    /// destroyed uncommitted.
    class Tx {
    public:
        explicit Tx(SqliteStore& s) : m_s(s), m_own(sqlite3_get_autocommit(s.m_db) != 0) {
            if (m_own) {
                m_s.exec("BEGIN IMMEDIATE");
            }
        }
        Tx(const Tx&) = delete;
        Tx& operator=(const Tx&) = delete;
        void commit() {
            if (m_own) {
                m_s.exec("COMMIT");
            }
            m_done = true;
        }
        ~Tx() {
            if (m_own && !m_done) {
                sqlite3_exec(m_s.m_db, "ROLLBACK", nullptr, nullptr, nullptr);
                m_s.m_heads.clear(); // heads the transaction wrote
            }
        }

    private:
        SqliteStore& m_s;
        bool m_own;
        bool m_done = false;
    };

    static int sqlite3_step_checked(Stmt& s) {
        try {
            s.run();
            return SQLITE_OK;
        } catch (const Error&) {
            return SQLITE_CONSTRAINT;
        }
    }

    void exec(const char* sql) {
        char* err = nullptr;
        if (sqlite3_exec(m_db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            const std::string msg = err ? err : "unknown error";
            sqlite3_free(err);
            throw Error(ErrorCode::internal, std::string(sql).substr(0, 60) + ": " + msg);
        }
    }

    std::uint64_t scalar(const char* sql) {
        std::lock_guard lock(m_mutex);
        Stmt s = prepared(sql);
        return s.step() ? s.u64(0) : 0;
    }

    void migrate(const std::string& path) {
        Stmt v = prepared("PRAGMA user_version");
        v.step();
        const auto version = v.i64(0);
        v.reset();
        if (version > k_schema_version) {
            throw Error(ErrorCode::unsupported_protocol,
                        "database " + path + " has schema version " + std::to_string(version) +
                            ", newer than this otsync (" + std::to_string(k_schema_version) +
                            "); upgrade otsync instead of opening it with an older one");
        }
        for (auto i = version; i < k_schema_version; ++i) {
            exec("BEGIN IMMEDIATE");
            try {
                exec(k_migrations[i]);
                exec(("PRAGMA user_version=" + std::to_string(i + 1)).c_str());
                exec("COMMIT");
            } catch (...) {
                sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        }
    }

    static User read_user(Stmt& s) {
        User u;
        u.id = s.id(0);
        u.name = s.text(1);
        const auto role = role_from_string(s.text(2));
        if (!role) {
            throw Error(ErrorCode::internal, "stored user has an unknown role");
        }
        u.role = *role;
        u.disabled = s.i64(3) != 0;
        u.created_at = s.i64(4);
        u.password_hash = s.text(5);
        u.full_name = s.text(6);
        u.unit = s.text(7);
        return u;
    }

    static Device read_device(Stmt& s) {
        Device d;
        d.replica = s.u64(0);
        d.user = s.id(1);
        const std::string pk = s.blob(2);
        if (pk.size() != d.public_key.size()) {
            throw Error(ErrorCode::internal, "stored device key is damaged");
        }
        std::copy(pk.begin(), pk.end(), d.public_key.begin());
        d.label = s.text(3);
        d.status = s.i64(4) == 0 ? DeviceStatus::active : DeviceStatus::revoked;
        d.last_counter = s.u64(5);
        d.cursor = s.u64(6);
        d.last_seen = s.i64(7);
        d.enrolled_at = s.i64(8);
        d.revoked_at = s.i64(9);
        return d;
    }

    static StoredOp read_op(Stmt& s) {
        StoredOp o;
        o.seq = s.u64(0);
        o.op = decode_one(s.blob(1));
        o.received_at = s.i64(2);
        o.skew_ms = s.i64(3);
        o.flagged = s.i64(4) != 0;
        return o;
    }

    /// Each SQL text is prepared once per connection and reused (keyed by the literal's
    /// address: every statement here is a string literal).
    Stmt prepared(const char* sql) {
        auto& stmt = m_statements[sql];
        if (!stmt && sqlite3_prepare_v2(m_db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
            stmt = nullptr;
            sql_fail(m_db, std::string("prepare ") + sql);
        }
        return Stmt(m_db, stmt);
    }

    static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames) {
        static_cast<SqliteStore*>(self)->m_commits->visible.fetch_add(1, std::memory_order_release);
        if (frames >= k_wal_autocheckpoint) {
            sqlite3_wal_checkpoint(db, name);
        }
        return SQLITE_OK;
    }

    SqliteOptions m_options; // what open_reader opens again
    bool m_reader = false;
    sqlite3* m_db = nullptr;
    bool m_full = true;
    std::function<void()> m_before_commit;
    std::shared_ptr<SqliteCommits> m_commits;
    std::uint64_t m_seen_commits = 0; // m_commits->visible when the caches were last checked
    std::recursive_mutex m_mutex;
    std::unordered_map<const char*, sqlite3_stmt*> m_statements;
    // What this connection knows of the database without reading it (m_mutex), until
    // another connection commits (drop_caches_if_others_wrote).
    std::uint64_t m_data_version = 0;
    std::chrono::steady_clock::duration m_others_check;
    std::chrono::steady_clock::time_point m_next_others_check{};
    std::unordered_map<Id, std::uint64_t> m_heads;    // feed_heads rows
    std::optional<std::uint64_t> m_directory_version; // as of m_directory_changes
    sqlite3_int64 m_directory_changes = 0;            // sqlite3_total_changes64 then
};

} // namespace

std::unique_ptr<Store> open_sqlite_store(const SqliteOptions& options) {
    return std::make_unique<SqliteStore>(options);
}

} // namespace otsync::server
