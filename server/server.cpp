// See server.hpp.
#include "server.hpp"

#include "store/postgres_store.hpp"

#include "otsync/error.hpp"

namespace otsync::server {

std::unique_ptr<Store> open_store(const ServerConfig& config) {
    if (!config.store_url.empty()) {
        if (!is_postgres_url(config.store_url)) {
            throw Error(ErrorCode::invalid_argument,
                        "the store is a PostgreSQL URL (postgres://... or postgresql://...) or "
                        "a libpq string with host= or dbname=; for SQLite leave it empty and "
                        "use the data folder");
        }
        PostgresOptions pg;
        pg.conninfo = config.store_url;
        return open_postgres_store(pg);
    }
    SqliteOptions o;
    if (config.db_path.empty()) {
        std::filesystem::create_directories(config.data_dir);
        o.path = (config.data_dir / "otsync.db").string();
    } else {
        o.path = config.db_path;
    }
    o.synchronous_full = config.sync_full;
    return open_sqlite_store(o);
}

Server::Server(const ServerConfig& config, ClockSource& clock)
    : Server(open_store(config), config, clock) {}

Server::Server(std::unique_ptr<Store> store, const ServerConfig& config, ClockSource& clock)
    : m_config(config), m_clock(clock), m_store(std::move(store)),
      m_sync(*m_store, clock, config.sync), m_auth(*m_store, clock, config.auth),
      m_procedure(*m_store, m_sync, clock, config.procedure), m_api(*m_store, m_auth, m_procedure),
      m_app(*m_store, m_sync, clock) {
    m_api.trust_proxy(config.trust_proxy);
    m_app.set_api(&m_api);
    if (!config.web_dir.empty()) {
        m_app.set_web_dir(config.web_dir);
    }
}

} // namespace otsync::server
