// LocalDb and the at-rest encryption; see local_db.hpp.
#include "local_db.hpp"

#include "otsync/client.h"
#include "otsync/client.hpp"
#include "otsync/id.hpp"

#include <sodium.h>

namespace otsync::client {

std::string LocalDb::Row::text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, col)))
             : std::string();
}

std::vector<std::uint8_t> LocalDb::Row::blob(int col) const {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, col));
    return p ? std::vector<std::uint8_t>(p, p + sqlite3_column_bytes(stmt, col))
             : std::vector<std::uint8_t>();
}

LocalDb::LocalDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK) {
        const std::string msg = m_db ? sqlite3_errmsg(m_db) : "out of memory";
        sqlite3_close(m_db);
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "cannot open " + path + ": " + msg);
    }
    // One handle owns the file: two handles folding and writing the same replica would
    // each keep their own state and counters, and one's acknowledged writes would be
    // lost. EXCLUSIVE locking mode keeps the lock from the first write until close; the
    // empty exclusive transaction takes it now, so a second open fails at once.
    const auto fail = [&](int code, const std::string& msg) {
        sqlite3_close(m_db);
        m_db = nullptr;
        throw ClientError(code, msg);
    };
    const auto step = [&](const char* sql) {
        char* err = nullptr;
        const int rc = sqlite3_exec(m_db, sql, nullptr, nullptr, &err);
        const std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
            fail(OTSYNC_ERR_BUSY, path + " is open in another handle or process: close it first");
        }
        if (rc != SQLITE_OK) {
            fail(OTSYNC_ERR_INTERNAL, "database: " + msg);
        }
    };
    step("PRAGMA locking_mode=EXCLUSIVE");
    step("PRAGMA journal_mode=WAL"); // a crash mid-write keeps the last commit
    step("BEGIN EXCLUSIVE; COMMIT");
    step("PRAGMA synchronous=FULL"); // a recorded item survives power loss too
    step("PRAGMA foreign_keys=ON");
}

LocalDb::~LocalDb() {
    for (auto& [sql, stmt] : m_cache) {
        sqlite3_finalize(stmt);
    }
    sqlite3_close(m_db);
}

void LocalDb::exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(m_db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        const std::string msg = err ? err : "unknown";
        sqlite3_free(err);
        throw ClientError(OTSYNC_ERR_INTERNAL, std::string("database: ") + msg);
    }
}

sqlite3_stmt* LocalDb::prepared(const char* sql) {
    for (auto& [s, stmt] : m_cache) {
        if (s == sql) {
            return stmt;
        }
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(m_db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
        throw ClientError(OTSYNC_ERR_INTERNAL, std::string("database: ") + sqlite3_errmsg(m_db));
    }
    m_cache.emplace_back(sql, stmt);
    return stmt;
}

void LocalDb::run(const char* sql, const std::vector<Arg>& args,
                  const std::function<void(const Row&)>& row) {
    sqlite3_stmt* st = prepared(sql);
    struct Reset {
        sqlite3_stmt* s;
        ~Reset() {
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
        }
    } reset{st};
    for (std::size_t i = 0; i < args.size(); ++i) {
        const int at = static_cast<int>(i + 1);
        std::visit(
            [&](const auto& a) {
                using A = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<A, std::monostate>) {
                    sqlite3_bind_null(st, at);
                } else if constexpr (std::is_same_v<A, std::int64_t>) {
                    sqlite3_bind_int64(st, at, a);
                } else if constexpr (std::is_same_v<A, std::string>) {
                    sqlite3_bind_text(st, at, a.data(), static_cast<int>(a.size()),
                                      SQLITE_TRANSIENT);
                } else {
                    sqlite3_bind_blob(st, at, a.data(), static_cast<int>(a.size()),
                                      SQLITE_TRANSIENT);
                }
            },
            args[i]);
    }
    for (;;) {
        const int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            return;
        }
        if (rc != SQLITE_ROW) {
            throw ClientError(OTSYNC_ERR_INTERNAL,
                              std::string("database: ") + sqlite3_errmsg(m_db));
        }
        if (row) {
            row(Row{st});
        }
    }
}

void LocalDb::transaction(const std::function<void()>& body, Durability d) {
    // The mode is the connection's, read at COMMIT: set for this one, FULL again after.
    const bool relaxed = d == Durability::relaxed;
    if (relaxed) {
        exec("PRAGMA synchronous=NORMAL");
    }
    const auto restore = [&] {
        if (relaxed) {
            sqlite3_exec(m_db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
        }
    };
    exec("BEGIN IMMEDIATE");
    try {
        body();
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
        restore();
        throw;
    }
    restore();
}

std::vector<std::uint8_t> seal(const std::array<std::uint8_t, 32>& key, std::string_view plain) {
    ensure_sodium();
    std::vector<std::uint8_t> out(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plain.size() +
                                  crypto_aead_xchacha20poly1305_ietf_ABYTES);
    randombytes_buf(out.data(), crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out.data() + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &len,
        reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), nullptr, 0, nullptr,
        out.data(), key.data());
    out.resize(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len);
    return out;
}

std::optional<std::string> unseal(const std::array<std::uint8_t, 32>& key,
                                  const std::vector<std::uint8_t>& sealed) {
    ensure_sodium();
    constexpr std::size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    constexpr std::size_t a = crypto_aead_xchacha20poly1305_ietf_ABYTES;
    if (sealed.size() < n + a) {
        return std::nullopt;
    }
    std::string out(sealed.size() - n - a, '\0');
    unsigned long long len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            reinterpret_cast<unsigned char*>(out.data()), &len, nullptr, sealed.data() + n,
            sealed.size() - n, nullptr, 0, sealed.data(), key.data()) != 0) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

} // namespace otsync::client
