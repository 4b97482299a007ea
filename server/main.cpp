// otsync-server: parses options, opens the store, starts the HTTP loop, and shuts
// down gracefully on SIGTERM/SIGINT (stop accepting, finish in-flight requests,
// close the store). Everything else lives in otsync_server_lib.
//
// Options (flags override OTSYNC_* environment variables):
//   --listen HOST:PORT      OTSYNC_LISTEN       127.0.0.1:8080
//   --data-dir DIR          OTSYNC_DATA_DIR     ./var
//   --store URL             OTSYNC_STORE        SQLite in DATA_DIR; postgres://... or
//                                               postgresql://... (or a libpq string with
//                                               host= or dbname=) for PostgreSQL
//   --threads N             OTSYNC_THREADS      16 (a login's hash or an office commit holds one)
//   --demo                  OTSYNC_DEMO=1       seed demo data into an empty database
//   --sync-mode full|normal OTSYNC_SYNC_MODE    full (fsync every commit)
//   --max-body-sync BYTES   OTSYNC_MAX_BODY_SYNC      8 MiB
//   --max-body BYTES        OTSYNC_MAX_BODY           64 KiB
//   --max-header BYTES      OTSYNC_MAX_HEADER         8 KiB
//   --max-connections N     OTSYNC_MAX_CONNECTIONS    10000
//   --max-inflight-body-bytes BYTES OTSYNC_MAX_INFLIGHT_BODY_BYTES 256 MiB (request bodies
//                                   read or held at once; beyond: 503 with Retry-After)
//   --compress-min-bytes N  OTSYNC_COMPRESS_MIN_BYTES 256 (answers this large are sent with
//                                                     zstd or deflate when offered; 0: never)
//   --header-timeout-ms MS  OTSYNC_HEADER_TIMEOUT_MS  10000
//   --body-timeout-ms MS    OTSYNC_BODY_TIMEOUT_MS    60000
//   --idle-timeout-ms MS    OTSYNC_IDLE_TIMEOUT_MS    60000
//   --max-clock-skew-ms MS  OTSYNC_MAX_CLOCK_SKEW_MS  600000
//   --page-size N           OTSYNC_PAGE_SIZE          500
//   --max-ops N             OTSYNC_MAX_OPS            10000 (ops per request)
//   --pwhash-opslimit N     OTSYNC_PWHASH_OPSLIMIT    2 (argon2id, libsodium INTERACTIVE)
//   --pwhash-memlimit BYTES OTSYNC_PWHASH_MEMLIMIT    67108864 (64 MiB)
//   --session-ttl-ms MS     OTSYNC_SESSION_TTL_MS     43200000 (12 h)
//   --login-max-failures N  OTSYNC_LOGIN_MAX_FAILURES 5 per user name (4× per address)
//   --login-window-ms MS    OTSYNC_LOGIN_WINDOW_MS    900000 (15 min)
//   --custody-days N        OTSYNC_CUSTODY_DAYS       3 (flag items held longer by a technician)
//   --archive-after-days N  OTSYNC_ARCHIVE_AFTER_DAYS 0 = never (cases final longer ago leave
//                                                     memory; the log and reports keep them)
//   --device-session-ttl-ms MS OTSYNC_DEVICE_SESSION_TTL_MS 3600000 (a device's sync session)
//   --min-protocol N        OTSYNC_MIN_PROTOCOL       1 (2: protocol 1 devices get 426)
//   --max-wait-ms MS        OTSYNC_MAX_WAIT_MS        25000 (long-poll bound; 0: pulls never wait)
//   --pull-flush-ms MS      OTSYNC_PULL_FLUSH_MS      1000 (SQLite: pulls' counters written
//                                                     with the next commit or after this long)
//   --projection-lag-ms MS  OTSYNC_PROJECTION_LAG_MS  200 (SQLite: projections written after
//                                                     the acknowledging commit, at most this late
//                                                     under load)
//   --read-connections N    OTSYNC_READ_CONNECTIONS   4 (PostgreSQL: connections for pulls,
//                                                     beside the one that writes)
//   --tz-offset-minutes N   OTSYNC_TZ_OFFSET_MINUTES  -240 (Bolivia; report days)
//   --web-dir DIR           OTSYNC_WEB_DIR            the pages (server/web of the source tree)
//   --cookie-secure         OTSYNC_COOKIE_SECURE=1    session cookie only over HTTPS (behind TLS)
//   --trust-proxy           OTSYNC_TRUST_PROXY=1      login throttling by X-Forwarded-For's last
//   hop
#include "demo.hpp"
#include "http/http_server.hpp"
#include "server.hpp"

#include "otsync/error.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

using namespace otsync;
using namespace otsync::server;

namespace {

struct Options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;
    std::string data_dir = "var";
    std::string store_url; // empty: SQLite in data_dir
    unsigned threads = 16; // a sync push waits for its commit on none; a login's hash holds one
    bool demo = false;
    bool sync_full = true;
    HttpLimits http;
    std::size_t max_body_sync = 8u << 20;
    std::size_t max_body = 64u << 10;
    SyncConfig sync;
    AuthConfig auth;
    ProcedureConfig procedure;
    std::string web_dir = OTSYNC_DEFAULT_WEB_DIR;
    bool trust_proxy = false;
};

[[noreturn]] void fail(const std::string& why) {
    std::cerr << "otsync-server: " << why << "\n";
    std::exit(2);
}

std::uint64_t number(const std::string& name, const std::string& v, std::uint64_t min,
                     std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const auto n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || errno || *end || v[0] == '-' || n < min || n > max) {
        fail(name + " must be a whole number from " + std::to_string(min) + " to " +
             std::to_string(max));
    }
    return n;
}

Options parse(int argc, char** argv) {
    // Environment first, flags after: a flag wins.
    std::vector<std::pair<std::string, std::string>> settings;
    const std::map<std::string, std::string> env_names{
        {"OTSYNC_LISTEN", "--listen"},
        {"OTSYNC_DATA_DIR", "--data-dir"},
        {"OTSYNC_STORE", "--store"},
        {"OTSYNC_THREADS", "--threads"},
        {"OTSYNC_SYNC_MODE", "--sync-mode"},
        {"OTSYNC_MAX_BODY_SYNC", "--max-body-sync"},
        {"OTSYNC_MAX_BODY", "--max-body"},
        {"OTSYNC_MAX_HEADER", "--max-header"},
        {"OTSYNC_MAX_CONNECTIONS", "--max-connections"},
        {"OTSYNC_MAX_INFLIGHT_BODY_BYTES", "--max-inflight-body-bytes"},
        {"OTSYNC_COMPRESS_MIN_BYTES", "--compress-min-bytes"},
        {"OTSYNC_HEADER_TIMEOUT_MS", "--header-timeout-ms"},
        {"OTSYNC_BODY_TIMEOUT_MS", "--body-timeout-ms"},
        {"OTSYNC_IDLE_TIMEOUT_MS", "--idle-timeout-ms"},
        {"OTSYNC_MAX_CLOCK_SKEW_MS", "--max-clock-skew-ms"},
        {"OTSYNC_PAGE_SIZE", "--page-size"},
        {"OTSYNC_MAX_OPS", "--max-ops"},
        {"OTSYNC_PWHASH_OPSLIMIT", "--pwhash-opslimit"},
        {"OTSYNC_PWHASH_MEMLIMIT", "--pwhash-memlimit"},
        {"OTSYNC_SESSION_TTL_MS", "--session-ttl-ms"},
        {"OTSYNC_LOGIN_MAX_FAILURES", "--login-max-failures"},
        {"OTSYNC_LOGIN_WINDOW_MS", "--login-window-ms"},
        {"OTSYNC_CUSTODY_DAYS", "--custody-days"},
        {"OTSYNC_ARCHIVE_AFTER_DAYS", "--archive-after-days"},
        {"OTSYNC_READ_CONNECTIONS", "--read-connections"},
        {"OTSYNC_DEVICE_SESSION_TTL_MS", "--device-session-ttl-ms"},
        {"OTSYNC_MIN_PROTOCOL", "--min-protocol"},
        {"OTSYNC_MAX_WAIT_MS", "--max-wait-ms"},
        {"OTSYNC_PULL_FLUSH_MS", "--pull-flush-ms"},
        {"OTSYNC_PROJECTION_LAG_MS", "--projection-lag-ms"},
        {"OTSYNC_TZ_OFFSET_MINUTES", "--tz-offset-minutes"},
        {"OTSYNC_WEB_DIR", "--web-dir"},
        {"OTSYNC_MAX_RECEIPT_ROWS", "--max-receipt-rows"},
        {"OTSYNC_MAX_IMPORT_ROWS", "--max-import-rows"},
    };
    for (const auto& [env, flag] : env_names) {
        if (const char* v = std::getenv(env.c_str())) {
            settings.emplace_back(flag, v);
        }
    }
    if (const char* v = std::getenv("OTSYNC_DEMO"); v && std::string(v) == "1") {
        settings.emplace_back("--demo", "");
    }
    if (const char* v = std::getenv("OTSYNC_COOKIE_SECURE"); v && std::string(v) == "1") {
        settings.emplace_back("--cookie-secure", "");
    }
    if (const char* v = std::getenv("OTSYNC_TRUST_PROXY"); v && std::string(v) == "1") {
        settings.emplace_back("--trust-proxy", "");
    }
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--demo" || a == "--cookie-secure" || a == "--trust-proxy") {
            settings.emplace_back(a, "");
        } else if (a == "-h" || a == "--help") {
            std::cout << "usage: otsync-server [--listen HOST:PORT] [--data-dir DIR] [--store URL] "
                         "[--threads N] "
                         "[--demo] [--sync-mode full|normal] [limits...]\n(see the header of "
                         "server/main.cpp or README.md for every option)\n";
            std::exit(0);
        } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
            settings.emplace_back(a, argv[++i]);
        } else {
            fail("unknown or incomplete option '" + a + "'");
        }
    }
    Options o;
    for (const auto& [k, v] : settings) {
        if (k == "--listen") {
            const auto colon = v.rfind(':');
            if (colon == std::string::npos || colon == 0) {
                fail("--listen takes HOST:PORT");
            }
            o.host = v.substr(0, colon);
            o.port =
                static_cast<unsigned short>(number("--listen port", v.substr(colon + 1), 0, 65535));
        } else if (k == "--data-dir") {
            o.data_dir = v;
        } else if (k == "--store") {
            o.store_url = v;
        } else if (k == "--threads") {
            o.threads = static_cast<unsigned>(number(k, v, 1, 256));
        } else if (k == "--demo") {
            o.demo = true;
        } else if (k == "--sync-mode") {
            if (v != "full" && v != "normal") {
                fail("--sync-mode is full or normal");
            }
            o.sync_full = v == "full";
        } else if (k == "--max-body-sync") {
            o.max_body_sync = number(k, v, 1024, 1u << 30);
        } else if (k == "--max-body") {
            o.max_body = number(k, v, 1024, 1u << 30);
        } else if (k == "--max-header") {
            o.http.header_bytes = number(k, v, 1024, 1u << 20);
        } else if (k == "--max-connections") {
            o.http.max_connections = number(k, v, 1, 1'000'000);
        } else if (k == "--max-inflight-body-bytes") {
            o.http.max_inflight_body_bytes = number(k, v, 1024, 1ull << 40);
        } else if (k == "--compress-min-bytes") {
            o.http.compress_min_bytes = number(k, v, 0, 1u << 30);
        } else if (k == "--header-timeout-ms") {
            o.http.header_timeout = std::chrono::milliseconds(number(k, v, 10, 3'600'000));
        } else if (k == "--body-timeout-ms") {
            o.http.body_timeout = std::chrono::milliseconds(number(k, v, 10, 3'600'000));
        } else if (k == "--idle-timeout-ms") {
            o.http.idle_timeout = std::chrono::milliseconds(number(k, v, 10, 3'600'000));
        } else if (k == "--max-clock-skew-ms") {
            o.sync.max_clock_skew_ms = number(k, v, 0, 365ull * 24 * 3600 * 1000);
        } else if (k == "--page-size") {
            o.sync.default_page = static_cast<std::uint32_t>(number(k, v, 1, 100'000));
            o.sync.max_page = std::max(o.sync.max_page, o.sync.default_page);
        } else if (k == "--max-ops") {
            o.sync.limits.max_ops = number(k, v, 1, 1'000'000);
        } else if (k == "--pwhash-opslimit") {
            o.auth.pwhash_opslimit = number(k, v, 1, 100);
        } else if (k == "--pwhash-memlimit") {
            o.auth.pwhash_memlimit = number(k, v, 8192, 4ull << 30);
        } else if (k == "--session-ttl-ms") {
            o.auth.session_ttl_ms = static_cast<std::int64_t>(number(k, v, 1000, 31ull * 86400000));
        } else if (k == "--login-max-failures") {
            o.auth.max_failures_per_user = static_cast<unsigned>(number(k, v, 1, 1000));
            o.auth.max_failures_per_address = 4 * o.auth.max_failures_per_user;
        } else if (k == "--login-window-ms") {
            o.auth.failure_window_ms = static_cast<std::int64_t>(number(k, v, 1000, 86400000));
        } else if (k == "--custody-days") {
            o.procedure.custody_limit_ms =
                static_cast<std::int64_t>(number(k, v, 1, 365)) * 86400000;
        } else if (k == "--archive-after-days") {
            o.procedure.archive_after_days = static_cast<int>(number(k, v, 0, 36500));
        } else if (k == "--device-session-ttl-ms") {
            o.sync.session_ttl_ms = static_cast<std::int64_t>(number(k, v, 1000, 7ull * 86400000));
        } else if (k == "--max-wait-ms") {
            o.sync.max_wait_ms = static_cast<std::uint32_t>(number(k, v, 0, 600'000));
        } else if (k == "--pull-flush-ms") {
            o.sync.pull_mark_flush_ms = static_cast<std::uint32_t>(number(k, v, 1, 60'000));
        } else if (k == "--projection-lag-ms") {
            o.sync.projection_lag_ms = static_cast<std::uint32_t>(number(k, v, 0, 60'000));
        } else if (k == "--min-protocol") {
            o.sync.min_protocol =
                static_cast<std::uint32_t>(number(k, v, k_protocol_min, k_protocol_version));
        } else if (k == "--read-connections") {
            o.sync.read_connections = number(k, v, 1, 256);
        } else if (k == "--cookie-secure") {
            o.auth.cookie_secure = true;
        } else if (k == "--trust-proxy") {
            o.trust_proxy = true;
        } else if (k == "--max-receipt-rows") {
            o.procedure.max_rows_per_receipt = number(k, v, 1, 100000);
        } else if (k == "--max-import-rows") {
            o.procedure.import_limits.max_rows = number(k, v, 1, 10'000'000);
        } else if (k == "--web-dir") {
            o.web_dir = v;
        } else if (k == "--tz-offset-minutes") {
            const bool neg = !v.empty() && v[0] == '-';
            const auto m = static_cast<int>(number(k, neg ? v.substr(1) : v, 0, 14 * 60));
            o.procedure.tz_offset_minutes = neg ? -m : m;
        } else {
            fail("unknown option '" + k + "'");
        }
    }
    if (o.http.max_inflight_body_bytes < std::max(o.max_body_sync, o.max_body)) {
        fail("--max-inflight-body-bytes must be at least --max-body-sync and --max-body");
    }
    o.sync.limits.max_message_bytes = o.max_body_sync;
    // An inventory file arrives as one request body: its limit is the body's.
    o.procedure.import_limits.max_bytes = o.max_body_sync;
    o.http.read_buffer_max = o.http.header_bytes + o.max_body_sync + 16 * 1024;
    return o;
}

/// The access log on stdout, one JSON line per request, written in blocks: when 64 KiB
/// are waiting, 200 ms after the first line waiting, and at stop (a write per request
/// cost the pulls a system call each).
class AccessLog {
public:
    explicit AccessLog(boost::asio::io_context& ioc) : m_timer(ioc) {}
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;
    ~AccessLog() { flush(); }

    void add(const std::string& line) {
        std::lock_guard lock(m_mutex);
        const bool first = m_waiting.empty();
        m_waiting += line;
        if (m_waiting.size() >= 64 * 1024) {
            write_out();
        } else if (first && !m_stopped) {
            m_timer.expires_after(std::chrono::milliseconds(200));
            m_timer.async_wait([this](const boost::system::error_code& ec) {
                if (!ec) {
                    flush();
                }
            });
        }
    }

    /// Writes what waits; after stop() every line is written at once.
    void flush() {
        std::lock_guard lock(m_mutex);
        write_out();
    }

    void stop() {
        std::lock_guard lock(m_mutex);
        m_stopped = true;
        m_timer.cancel();
        write_out();
    }

private:
    void write_out() {
        if (!m_waiting.empty()) {
            std::fwrite(m_waiting.data(), 1, m_waiting.size(), stdout);
            std::fflush(stdout);
            m_waiting.clear();
        }
    }

    std::mutex m_mutex;
    std::string m_waiting;
    boost::asio::steady_timer m_timer; // with m_mutex
    bool m_stopped = false;
};

} // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        ServerConfig config;
        config.data_dir = o.data_dir;
        config.store_url = o.store_url;
        config.sync_full = o.sync_full;
        config.sync = o.sync;
        config.auth = o.auth;
        config.auth.max_concurrent_hashes = std::max(1u, o.threads);
        config.procedure = o.procedure;
        config.trust_proxy = o.trust_proxy;
        config.max_body_sync = o.max_body_sync;
        config.max_body = o.max_body;
        if (std::filesystem::is_regular_file(std::filesystem::path(o.web_dir) / "index.html")) {
            config.web_dir = o.web_dir;
        } else {
            std::cerr << "otsync-server: no web pages in " << o.web_dir
                      << " (pass --web-dir); serving the API only" << std::endl;
        }
        SystemClock clock;
        // Before the server: a push answered when its commit ends is posted here, and the
        // committer may still finish one while the server closes.
        boost::asio::io_context ioc(static_cast<int>(o.threads));
        Server root(config, clock);
        App& app = root.app();
        if (o.demo) {
            const auto summary = seed_demo(root);
            for (const auto& line : summary.lines) {
                std::cerr << "demo: " << line << "\n";
            }
        }

        // A push is answered on the io threads once its group commit ends: no thread waits
        // for the disk meanwhile.
        root.sync().set_executor(
            [&ioc](std::function<void()> f) { boost::asio::post(ioc, std::move(f)); });
        AccessLog access_log(ioc);
        HttpServer* server_ptr = nullptr;
        HttpServer server(
            ioc, o.host, o.port, o.http,
            [&root](std::string_view, std::string_view path) { return root.body_limit(path); },
            route_handler([&root](const RouteRequest& r) { return root.handle(r); }),
            [&](const AccessLogLine& l) {
                app.metrics().observe(route_label(l.path), l.status, l.ms);
                if (server_ptr) {
                    app.metrics().set_open_connections(server_ptr->connections());
                }
                // One structured line per request, JSON (valid whatever the request held), on
                // stdout.
                access_log.add(access_log_json(l) + "\n");
            });
        server.set_before_body(
            route_before_body([&root](const RouteRequest& r) { return root.before_body(r); }));
        server.set_async_handler(
            route_async_handler([&root](const RouteRequest& r, std::function<void(Reply)> done) {
                root.handle_async(r, std::move(done));
            }));
        // Signals first, so a SIGTERM right after start-up is already graceful.
        boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
        boost::asio::steady_timer grace(ioc);
        std::function<void(int)> poll = [&](int left) {
            // In-flight requests finish; idle keep-alive connections are closed by
            // stop_accepting. Bounded: at most 10 s, then the loop stops anyway.
            if (server.connections() == 0 || left == 0) {
                ioc.stop();
                return;
            }
            grace.expires_after(std::chrono::milliseconds(100));
            grace.async_wait([&poll, left](const boost::system::error_code&) { poll(left - 1); });
        };
        signals.async_wait([&](const boost::system::error_code&, int sig) {
            std::cerr << "otsync-server: signal " << sig << ", stopping: no new connections, "
                      << "finishing requests in flight" << std::endl;
            server.stop_accepting();
            root.sync().end_waits(); // long-polling pulls are answered now, then close
            poll(100);
        });
        server_ptr = &server;
        server.start();
        std::cerr << "otsync-server listening on http://" << o.host << ":" << server.port()
                  << " (data in " << o.data_dir << ", " << o.threads
                  << " threads, synchronous=" << (o.sync_full ? "FULL" : "NORMAL") << ")"
                  << std::endl;

        std::vector<std::thread> pool;
        for (unsigned i = 1; i < o.threads; ++i) {
            pool.emplace_back([&] { ioc.run(); });
        }
        ioc.run();
        for (auto& t : pool) {
            t.join();
        }
        root.sync().end_waits(); // answers that can no longer be sent go with the io_context
        access_log.stop();
        std::cerr << "otsync-server: stopped; store closed cleanly" << std::endl;
        return 0;
    } catch (const Error& e) {
        std::cerr << "otsync-server: " << e.message() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "otsync-server: " << e.what() << "\n";
        return 1;
    }
}
