// The PostgreSQL backend of Store (docs/architecture.md §2, §6, §8), on libpq. Same contract
// and the same durability promise as the SQLite one: every commit is made with
// synchronous_commit on (set for the session at connect), so an acknowledged op is in
// PostgreSQL's flushed WAL before the answer leaves.
//
// What differs from SQLite:
// - backup_to throws: a PostgreSQL database is backed up with pg_dump (a logical copy) or
//   base backups with WAL archiving (pg_basebackup, point-in-time recovery), not by the
//   server copying a file.
// - The connection is re-established at the next call when it broke (PostgreSQL restarted);
//   the call that met the broken connection fails with ErrorCode::internal.
// - --sync-mode does not apply: every commit is synchronous (but a pull's counter claim,
//   which records no field fact).
// - open_reader: further connections for reads beside the writer's transaction.
#pragma once

#include "store/store.hpp"

#include <memory>
#include <string>
#include <string_view>

namespace otsync::server {

struct PostgresOptions {
    /// A libpq connection string: keyword/value ("host=/run/postgresql dbname=otsync") or a
    /// URI ("postgresql://user@host:5432/otsync"), as libpq's PQconnectdb reads it.
    std::string conninfo;
    /// statement_timeout of the session: a statement running longer fails (0: no limit).
    int statement_timeout_ms = 30000;
    /// lock_timeout of the session: waiting longer for a lock fails (0: no limit).
    int lock_timeout_ms = 30000;
    /// Called at the start of every commit_many, before anything is written: a seam for
    /// tests (as SqliteOptions::before_commit). Empty in production.
    std::function<void()> before_commit{};
};

/// Opens (creating or migrating the schema of) a PostgreSQL store. Throws otsync::Error
/// with a clear message when the database cannot be reached or holds a newer schema.
std::unique_ptr<Store> open_postgres_store(const PostgresOptions& options);

/// True when `url` names a PostgreSQL database rather than a SQLite file: it starts with
/// postgres:// or postgresql://, or is a keyword/value string holding host= or dbname=.
bool is_postgres_url(std::string_view url);

} // namespace otsync::server
