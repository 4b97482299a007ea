// The server's routes as plain functions, request → reply, with no sockets: main.cpp
// hands them to the HTTP layer, tests call them directly. Also the metrics that
// GET /metrics renders in Prometheus text format.
#pragma once

#include "http/reply.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>

namespace otsync::server {

/// Request counts by route and status, and a latency histogram.
class Metrics {
public:
    static constexpr std::array<double, 10> k_buckets_ms{1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000};

    void observe(std::string_view route, unsigned status, double ms);
    void set_open_connections(std::size_t n) { m_connections = n; }
    std::string render(Store& store, SyncService& sync, std::int64_t now_ms);

private:
    std::mutex m_mutex;
    std::map<std::pair<std::string, unsigned>, std::uint64_t> m_requests;
    std::array<std::uint64_t, k_buckets_ms.size() + 1> m_latency{};
    double m_latency_sum_ms = 0;
    std::uint64_t m_latency_count = 0;
    std::atomic<std::size_t> m_connections{0};
};

/// The route label for metrics: a known path, or "other" (never the raw path).
std::string_view route_label(std::string_view path);

/// A sync endpoint's answer as HTTP: 200 with its body, or the refusal's status and body.
Reply reply_of(EndpointAnswer a);

class App {
public:
    App(Store& store, SyncService& sync, ClockSource& clock)
        : m_store(store), m_sync(sync), m_clock(clock) {}

    /// Never throws otsync::Error: an error is answered as error_reply(e) (http/reply.hpp).
    Reply handle(const RouteRequest& r);
    /// handle, answering through `done`; a sync pull that waits for its feed (long-poll)
    /// is answered later, from another thread.
    void handle_async(const RouteRequest& r, std::function<void(Reply)> done);
    /// Asked before a large body is read (HttpServer's BeforeBody): the refusal that needs
    /// no body (a sync request from no enrolled device, an import without a session), or
    /// nullopt to read it. Never throws otsync::Error.
    std::optional<Reply> before_body(const RouteRequest& r);
    /// The people's REST API (/v1/...), when the server offers it.
    void set_api(class Api* api) { m_api = api; }
    /// The web pages (server/web/): served under /web/, "/" redirects there. Empty: none.
    void set_web_dir(std::string dir) { m_web_dir = std::move(dir); }
    Metrics& metrics() { return m_metrics; }

    /// Body limit by route: sync gets `sync_limit`, everything else `default_limit`.
    static std::size_t body_limit(std::string_view path, std::size_t sync_limit,
                                  std::size_t default_limit) {
        // The sync endpoint and the inventory import take large bodies; nothing else does.
        // An attachment's chunk is bounded by the sync service (max_chunk_bytes) once the
        // envelope's headers passed (before_body).
        return path == "/v1/sync" || path == "/v1/inventory/import" ||
                       path.starts_with("/v1/blobs/")
                   ? sync_limit
                   : default_limit;
    }

private:
    Reply dispatch(const RouteRequest& r);

    Store& m_store;
    SyncService& m_sync;
    ClockSource& m_clock;
    Reply serve_web(std::string_view method, std::string_view path);

    Metrics m_metrics;
    class Api* m_api = nullptr;
    std::string m_web_dir;
};

} // namespace otsync::server
