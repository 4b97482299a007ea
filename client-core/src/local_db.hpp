// The device's SQLite file: a thin layer over the C API for client-core, and the
// at-rest encryption (XChaCha20-Poly1305 under the host app's key) of what it stores.
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace otsync::client {

/// One SQL statement run with positional arguments; rows go to a callback.
class LocalDb {
public:
    using Arg = std::variant<std::monostate, std::int64_t, std::string, std::vector<std::uint8_t>>;
    struct Row {
        sqlite3_stmt* stmt;
        std::int64_t i64(int col) const { return sqlite3_column_int64(stmt, col); }
        std::string text(int col) const;
        std::vector<std::uint8_t> blob(int col) const;
        bool null(int col) const { return sqlite3_column_type(stmt, col) == SQLITE_NULL; }
    };

    explicit LocalDb(const std::string& path);
    ~LocalDb();
    LocalDb(const LocalDb&) = delete;
    LocalDb& operator=(const LocalDb&) = delete;

    void exec(const char* sql);
    void run(const char* sql, const std::vector<Arg>& args = {},
             const std::function<void(const Row&)>& row = {});
    /// How a transaction's commit reaches the disk.
    enum class Durability {
        durable, // fsync before COMMIT returns (the device's own ops: synchronous=FULL)
        // Written in order but not flushed: a power loss may drop it and any later relaxed
        // commit, never an earlier one nor half of one (WAL with synchronous=NORMAL); the
        // next durable commit flushes it too. For what the server sends again when lost.
        relaxed,
    };
    /// Runs `body` in BEGIN IMMEDIATE … COMMIT; rolls back if it throws.
    void transaction(const std::function<void()>& body, Durability d = Durability::durable);
    std::int64_t changes() const { return sqlite3_changes(m_db); }

private:
    sqlite3_stmt* prepared(const char* sql);
    sqlite3* m_db = nullptr;
    std::vector<std::pair<const char*, sqlite3_stmt*>> m_cache;
};

/// XChaCha20-Poly1305 with a random nonce prepended; open() returns nullopt when the key
/// is wrong or the bytes were altered.
std::vector<std::uint8_t> seal(const std::array<std::uint8_t, 32>& key, std::string_view plain);
std::optional<std::string> unseal(const std::array<std::uint8_t, 32>& key,
                                  const std::vector<std::uint8_t>& sealed);

} // namespace otsync::client
