// Routes and metrics; see app.hpp.
#include "api/app.hpp"

#include "api/routes.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace otsync::server {

std::string_view route_label(std::string_view path) {
    for (std::string_view known :
         {"/v1/sync", "/v1/sessions", "/v1/devices/enroll", "/healthz", "/metrics"}) {
        if (path == known) {
            return known;
        }
    }
    if (path.rfind("/web/", 0) == 0 || path == "/") {
        return "/web/";
    }
    if (path.starts_with("/v1/blobs/")) {
        return "/v1/blobs/{hash}/{size}/{offset}";
    }
    // API routes by their pattern, so ids never become label values.
    for (const auto& route : Api::routes()) {
        if (route_matches(route.pattern, path)) {
            return route.pattern;
        }
    }
    return "other";
}

void Metrics::observe(std::string_view route, unsigned status, double ms) {
    std::lock_guard lock(m_mutex);
    m_requests[{std::string(route), status}]++;
    std::size_t i = 0;
    while (i < k_buckets_ms.size() && ms > k_buckets_ms[i]) {
        ++i;
    }
    m_latency[i]++;
    m_latency_sum_ms += ms;
    m_latency_count++;
}

std::string Metrics::render(Store& store, SyncService& sync, std::int64_t now_ms) {
    std::string out;
    char line[1024];
    {
        std::lock_guard lock(m_mutex);
        out += "# HELP otsync_http_requests_total HTTP requests by route and status.\n"
               "# TYPE otsync_http_requests_total counter\n";
        for (const auto& [key, n] : m_requests) {
            std::snprintf(line, sizeof line,
                          "otsync_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                          key.first.c_str(), key.second, static_cast<unsigned long long>(n));
            out += line;
        }
        out += "# HELP otsync_http_request_duration_seconds Request latency.\n"
               "# TYPE otsync_http_request_duration_seconds histogram\n";
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < k_buckets_ms.size(); ++i) {
            cumulative += m_latency[i];
            std::snprintf(line, sizeof line,
                          "otsync_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                          k_buckets_ms[i] / 1000.0, static_cast<unsigned long long>(cumulative));
            out += line;
        }
        cumulative += m_latency.back();
        std::snprintf(line, sizeof line,
                      "otsync_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                      "otsync_http_request_duration_seconds_sum %.6f\n"
                      "otsync_http_request_duration_seconds_count %llu\n",
                      static_cast<unsigned long long>(cumulative), m_latency_sum_ms / 1000.0,
                      static_cast<unsigned long long>(m_latency_count));
        out += line;
    }
    const SyncCounters c = sync.counters();
    out += "# HELP otsync_ops_total Ops received by outcome (rejected by code).\n"
           "# TYPE otsync_ops_total counter\n";
    std::snprintf(line, sizeof line,
                  "otsync_ops_total{outcome=\"accepted\"} %llu\n"
                  "otsync_ops_total{outcome=\"flagged\"} %llu\n"
                  "otsync_ops_total{outcome=\"duplicate\"} %llu\n",
                  static_cast<unsigned long long>(c.accepted),
                  static_cast<unsigned long long>(c.flagged),
                  static_cast<unsigned long long>(c.duplicates));
    out += line;
    for (const auto& [code, n] : c.rejected) {
        std::snprintf(line, sizeof line,
                      "otsync_ops_total{outcome=\"rejected\",code=\"%s\"} %llu\n",
                      std::string(to_string(code)).c_str(), static_cast<unsigned long long>(n));
        out += line;
    }
    std::snprintf(line, sizeof line,
                  "# HELP otsync_archive_sweeps_total Archive sweeps ended since start (the "
                  "first is the start's).\n"
                  "# TYPE otsync_archive_sweeps_total counter\n"
                  "otsync_archive_sweeps_total %llu\n"
                  "# HELP otsync_archived_cases_total Closed cases this instance took out of "
                  "memory since start.\n"
                  "# TYPE otsync_archived_cases_total counter\n"
                  "otsync_archived_cases_total %llu\n",
                  static_cast<unsigned long long>(c.archive_sweeps),
                  static_cast<unsigned long long>(c.archived_cases));
    out += line;
    std::uint64_t known = 0, recent = 0;
    for (const auto& d : store.devices()) {
        if (d.status == DeviceStatus::active) {
            ++known;
            if (now_ms - d.last_seen < 5 * 60 * 1000) {
                ++recent;
            }
        }
    }
    std::snprintf(
        line, sizeof line,
        "# HELP otsync_devices Enrolled active devices, and those seen in the last 5 minutes.\n"
        "# TYPE otsync_devices gauge\n"
        "otsync_devices{state=\"known\"} %llu\n"
        "otsync_devices{state=\"connected\"} %llu\n"
        "# HELP otsync_http_connections Open HTTP connections.\n"
        "# TYPE otsync_http_connections gauge\n"
        "otsync_http_connections %llu\n"
        "# HELP otsync_oplog_ops Ops in the server's log (its last sequence number: every "
        "op has one, in order, and none is ever removed).\n"
        "# TYPE otsync_oplog_ops gauge\n"
        "otsync_oplog_ops %llu\n",
        static_cast<unsigned long long>(known), static_cast<unsigned long long>(recent),
        static_cast<unsigned long long>(m_connections.load()),
        static_cast<unsigned long long>(store.last_seq())); // not count(*): a scan of the log
    out += line;
    return out;
}

Reply reply_of(EndpointAnswer a) {
    if (a.refusal) {
        return error_reply(*a.refusal, a.refusal_members);
    }
    Reply r{200, std::move(a.content_type), std::move(a.body)};
    r.may_compress = true; // ops and receipts: no secret of the session rides along
    return r;
}

std::optional<Reply> App::before_body(const RouteRequest& r) {
    try {
        if (r.path == "/v1/sync" && r.method == "POST") {
            if (auto refused = m_sync.check_headers(r.headers)) {
                return reply_of(std::move(*refused));
            }
        } else if (r.path.starts_with("/v1/blobs/") && r.method == "POST") {
            if (auto refused = m_sync.check_headers(r.headers, false)) {
                return reply_of(std::move(*refused));
            }
        } else if (r.path == "/v1/sessions" || r.path == "/v1/devices/enroll") {
            return std::nullopt; // their own checks, on bodies of a few hundred bytes
        } else if (m_api && r.path.rfind("/v1/", 0) == 0) {
            return m_api->before_body(r);
        }
        return std::nullopt;
    } catch (const Error& e) {
        return error_reply(e);
    }
}

void App::handle_async(const RouteRequest& r, std::function<void(Reply)> done) {
    if (r.path == "/v1/sync" && r.method == "POST") {
        try {
            m_sync.sync_async(std::string(r.path), r.headers, r.body,
                              [done](EndpointAnswer a) { done(reply_of(std::move(a))); });
        } catch (const Error& e) {
            done(error_reply(e));
        }
        return;
    }
    done(handle(r));
}

Reply App::handle(const RouteRequest& r) {
    try {
        return dispatch(r);
    } catch (const Error& e) {
        // The code's status (http/reply.hpp). A failure of ours (the store, a bug) is
        // internal: a 5xx with a generic message, and the device retries later.
        return error_reply(e);
    }
}

Reply App::serve_web(std::string_view method, std::string_view path) {
    if (method != "GET" && method != "HEAD") {
        return error_reply(Error(ErrorCode::method_not_allowed, "use GET"));
    }
    std::string rel(path.substr(5)); // after "/web/"
    if (rel.empty()) {
        rel = "index.html";
    }
    // Only plain names below the folder: letters, digits, '-', '_', '.', '/'; no "..".
    const bool plain = rel.size() <= 200 && rel.find("..") == std::string::npos &&
                       rel.front() != '/' && std::all_of(rel.begin(), rel.end(), [](char c) {
                           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
                                  c == '_' || c == '.' || c == '/';
                       });
    static const std::map<std::string, std::string> k_types{
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"}};
    const auto dot = rel.rfind('.');
    const auto type = dot == std::string::npos ? k_types.end() : k_types.find(rel.substr(dot));
    if (!plain || type == k_types.end()) {
        return error_reply(Error(ErrorCode::not_found, "no such page"));
    }
    std::ifstream in(m_web_dir + "/" + rel, std::ios::binary);
    if (!in) {
        return error_reply(Error(ErrorCode::not_found, "no such page: " + rel));
    }
    std::ostringstream body;
    body << in.rdbuf();
    Reply reply{200, type->second, body.str()};
    reply.may_compress = true; // static files
    // Pages load only their own scripts and styles; no framing, no sniffing.
    reply.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
    reply.headers.emplace_back("Referrer-Policy", "no-referrer");
    reply.headers.emplace_back("Cache-Control", "no-cache");
    return reply;
}

Reply App::dispatch(const RouteRequest& r) {
    if (!m_web_dir.empty()) {
        if (r.path == "/" || r.path == "/web") {
            Reply reply{302, "text/plain; charset=utf-8", "see /web/\n"};
            reply.headers.emplace_back("Location", "/web/");
            return reply;
        }
        if (r.path.rfind("/web/", 0) == 0) {
            return serve_web(r.method, r.path);
        }
        if (r.path == "/favicon.ico") {
            return serve_web(r.method, "/web/favicon.svg"); // browsers ask on every page
        }
    }
    if (r.path == "/healthz") {
        if (r.method != "GET" && r.method != "HEAD") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use GET"));
        }
        return m_store.healthy() ? Reply{200, "application/json", "{\"status\":\"ok\"}"}
                                 : error_reply(Error(ErrorCode::internal, "store unreachable"));
    }
    if (r.path == "/metrics") {
        if (r.method != "GET") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use GET"));
        }
        return Reply{
            200, "text/plain; version=0.0.4",
            m_metrics.render(m_store, m_sync, static_cast<std::int64_t>(m_clock.now_ms()))};
    }
    if (r.path == "/v1/sync") {
        if (r.method != "POST") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
        }
        return reply_of(m_sync.sync(std::string(r.path), r.headers, r.body));
    }
    if (r.path.starts_with("/v1/blobs/")) {
        if (r.method != "POST") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
        }
        return reply_of(m_sync.upload_blob(std::string(r.path), r.headers, r.body));
    }
    if (r.path == "/v1/devices/enroll") {
        if (r.method != "POST") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
        }
        return reply_of(m_sync.enroll(r.body));
    }
    if (r.path == "/v1/sessions") {
        if (r.method != "POST") {
            return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
        }
        return reply_of(m_sync.open_session(r.body));
    }
    if (m_api && r.path.rfind("/v1/", 0) == 0) {
        if (auto reply = m_api->handle(r)) {
            return std::move(*reply);
        }
    }
    return error_reply(Error(ErrorCode::not_found, "no such route: " + std::string(r.path)));
}

} // namespace otsync::server
