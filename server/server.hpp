// The composition root (docs/architecture.md §1): the one place that builds the server's
// layers on each other, for otsync-server's main, the demo, the tests and the benchmarks:
// the store of a data folder, the sync service on it, authentication, the procedure (which
// registers its follow-up rules with the sync service), the REST API and the app that routes
// every request. otsync-admin, which runs beside a live server on the same database, opens
// the store the same way (open_store) and builds no service on it.
#pragma once

#include "api/app.hpp"
#include "api/routes.hpp"
#include "auth/auth.hpp"
#include "procedure/procedure.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace otsync::server {

struct ServerConfig {
    std::filesystem::path data_dir = "var"; // holds otsync.db (created when missing)
    std::string db_path;                    // a database elsewhere (a restored backup)
    /// A PostgreSQL database instead of SQLite: a postgres:// or postgresql:// URI, or a
    /// libpq keyword/value string with host= or dbname= (is_postgres_url). Empty: SQLite
    /// (db_path, else data_dir/otsync.db).
    std::string store_url;
    bool sync_full = true; // fsync every commit (SQLite synchronous=FULL)
    SyncConfig sync;
    AuthConfig auth;
    ProcedureConfig procedure;
    bool trust_proxy = false;             // login throttling by X-Forwarded-For's last hop
    std::string web_dir;                  // the pages; empty: the API only
    std::size_t max_body_sync = 8u << 20; // /v1/sync and the inventory import
    std::size_t max_body = 64u << 10;     // every other route
};

/// The database of `config`, migrated to the current schema: PostgreSQL when store_url is
/// set (anything else there is refused), else SQLite at db_path when set, else at
/// data_dir/otsync.db (the folder is created).
std::unique_ptr<Store> open_store(const ServerConfig& config);

class Server {
public:
    Server(const ServerConfig& config, ClockSource& clock);
    /// On a store opened elsewhere (a test's store with a commit hook).
    Server(std::unique_ptr<Store> store, const ServerConfig& config, ClockSource& clock);
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Answers one request (never throws an otsync::Error: it becomes its error reply).
    Reply handle(const RouteRequest& r) { return m_app.handle(r); }
    void handle_async(const RouteRequest& r, std::function<void(Reply)> done) {
        m_app.handle_async(r, std::move(done));
    }
    /// Before a large body is read: a refusal that needs no body (App::before_body).
    std::optional<Reply> before_body(const RouteRequest& r) { return m_app.before_body(r); }
    /// The body limit of a request to `path` (the HTTP layer asks before reading a body).
    std::size_t body_limit(std::string_view path) const {
        return App::body_limit(path, m_config.max_body_sync, m_config.max_body);
    }

    Store& store() { return *m_store; }
    SyncService& sync() { return m_sync; }
    AuthService& auth() { return m_auth; }
    Procedure& procedure() { return m_procedure; }
    App& app() { return m_app; }
    ClockSource& clock() { return m_clock; }
    const ServerConfig& config() const { return m_config; }

private:
    ServerConfig m_config;
    ClockSource& m_clock;
    std::unique_ptr<Store> m_store;
    SyncService m_sync;
    AuthService m_auth;
    Procedure m_procedure;
    Api m_api;
    App m_app;
};

} // namespace otsync::server
