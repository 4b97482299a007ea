// The REST routes and their role table; see api.hpp and docs/api.md.
#include "api/routes.hpp"

#include "api/office.hpp"
#include "api/route.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <vector>

namespace otsync::server {

namespace {

using namespace api;

const std::vector<Route>& table() {
    static const std::vector<Route> k = [] {
        std::vector<Route> out;
        add_case_routes(out);
        add_ot_routes(out);
        add_handover_routes(out);
        add_office_routes(out);
        add_model_routes(out);
        add_attachment_routes(out);
        return out;
    }();
    return k;
}

/// Matches "/v1/cases/{id}/approve" against a path; fills the {..} captures.
bool match(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
    params.clear();
    while (!pattern.empty() || !path.empty()) {
        if (pattern.empty() || path.empty()) {
            return false;
        }
        if (pattern.front() != '/' || path.front() != '/') {
            return false;
        }
        pattern.remove_prefix(1);
        path.remove_prefix(1);
        const auto pe = std::min(pattern.find('/'), pattern.size());
        const auto se = std::min(path.find('/'), path.size());
        const auto pseg = pattern.substr(0, pe);
        const auto sseg = path.substr(0, se);
        if (pseg.size() > 2 && pseg.front() == '{') {
            if (sseg.empty() || sseg.size() > 200) {
                return false;
            }
            params.emplace_back(sseg);
        } else if (pseg != sseg) {
            return false;
        }
        pattern.remove_prefix(pe);
        path.remove_prefix(se);
    }
    return true;
}

std::string header(const RouteRequest& r, const std::string& name) {
    auto it = r.headers.find(name);
    return it == r.headers.end() ? std::string() : it->second;
}

std::string user_json(const User& u) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("id");
    w.String(u.id.hex());
    w.Key("name");
    w.String(u.name);
    w.Key("full_name");
    w.String(u.full_name);
    w.Key("role");
    w.String(std::string(to_string(u.role)));
    w.Key("role_label");
    w.String(std::string(label_es(u.role)));
    w.Key("unit");
    w.String(u.unit);
    w.EndObject();
    return sb.GetString();
}

} // namespace

std::map<std::string, std::string> parse_query(std::string_view q) {
    std::map<std::string, std::string> out;
    auto decode = [](std::string_view s) {
        std::string o;
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (s[i] == '+') {
                o += ' ';
            } else if (s[i] == '%' && i + 2 < s.size() &&
                       std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
                       std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
                o += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
                i += 2;
            } else {
                o += s[i];
            }
        }
        return o;
    };
    while (!q.empty()) {
        const auto amp = std::min(q.find('&'), q.size());
        const auto part = q.substr(0, amp);
        const auto eq = part.find('=');
        if (!part.empty()) {
            out[decode(part.substr(0, eq))] =
                eq == std::string_view::npos ? std::string() : decode(part.substr(eq + 1));
        }
        q.remove_prefix(std::min(amp + 1, q.size()));
    }
    return out;
}

const std::vector<RouteInfo>& Api::routes() {
    static const std::vector<RouteInfo> k = [] {
        std::vector<RouteInfo> out{{"POST", "/v1/auth/login", 0},
                                   {"POST", "/v1/auth/logout", k_people},
                                   {"GET", "/v1/auth/session", k_people},
                                   {"POST", "/v1/devices/{id}/revoke", k_supervisor}};
        for (const auto& r : table()) {
            out.push_back({r.method, r.pattern, r.roles});
        }
        return out;
    }();
    return k;
}

bool route_matches(std::string_view pattern, std::string_view path) {
    std::vector<std::string> ignored;
    return match(pattern, path, ignored);
}

namespace {

Reply sign_in_first() {
    Reply reply = error_reply(
        Error(ErrorCode::unauthenticated, "sign in first (your session is missing or expired)"));
    reply.headers.emplace_back("WWW-Authenticate", "Bearer");
    return reply;
}

} // namespace

std::optional<Reply> Api::before_body(const RouteRequest& r) {
    if (r.path == "/v1/auth/login" || m_auth.authenticate(r.headers)) {
        return std::nullopt;
    }
    return sign_in_first();
}

std::optional<Reply> Api::handle(const RouteRequest& r) {
    const std::string path(r.path);
    try {
        // ---- login: the one route without a session ----
        if (path == "/v1/auth/login") {
            if (r.method != "POST") {
                return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
            }
            JsonBody j(r.body);
            const std::string name = j.req_text("name", 200);
            const std::string password = j.req_text("password", 1024);
            j.done();
            // The peer's address, "ip:port": AuthService keeps the IP and drops the port.
            std::string ip(r.remote);
            if (m_trust_proxy) {
                // The proxy appends the address it saw: the last entry is the one to trust.
                const std::string xff = header(r, "x-forwarded-for");
                const auto comma = xff.rfind(',');
                std::string last = xff.substr(comma == std::string::npos ? 0 : comma + 1);
                last.erase(0, last.find_first_not_of(" \t"));
                last.erase(last.find_last_not_of(" \t") + 1);
                if (!last.empty() && last.size() <= 64) {
                    ip = last;
                }
            }
            try {
                const auto res = m_auth.login(name, password, ip);
                Reply reply = json("{\"token\":\"" + res.token + "\",\"csrf\":\"" + res.csrf +
                                   "\",\"expires_at\":" + std::to_string(res.expires_at) +
                                   ",\"user\":" + user_json(res.user) + "}");
                reply.headers.emplace_back("Set-Cookie", m_auth.session_cookie(res.token));
                reply.headers.emplace_back("Cache-Control", "no-store");
                return reply;
            } catch (const Error& e) {
                if (e.code() == ErrorCode::rate_limited) {
                    Reply reply = error_reply(e);
                    reply.headers.emplace_back(
                        "Retry-After", std::to_string(m_auth.retry_after_seconds(name, ip)));
                    return reply;
                }
                throw;
            }
        }

        // ---- everything else needs a session ----
        const auto principal = m_auth.authenticate(r.headers);
        std::vector<std::string> params;
        const Route* route = nullptr;
        bool path_known = path == "/v1/auth/logout" || path == "/v1/auth/session";
        bool revoke = false;
        if (match("/v1/devices/{id}/revoke", path, params)) {
            path_known = revoke = true;
        }
        for (const auto& candidate : table()) {
            std::vector<std::string> p;
            if (match(candidate.pattern, path, p)) {
                path_known = true;
                if (candidate.method == r.method) {
                    route = &candidate;
                    params = std::move(p);
                    break;
                }
            }
        }
        if (!path_known) {
            return std::nullopt;
        }
        if (!principal) {
            return sign_in_first();
        }
        const User& user = principal->user;
        const bool write = r.method != "GET" && r.method != "HEAD";
        if (write && !m_auth.csrf_ok(*principal, r.headers)) {
            return error_reply(Error(ErrorCode::permission_denied,
                                     "missing or wrong X-CSRF-Token for a cookie session"));
        }
        if (path == "/v1/auth/logout") {
            if (r.method != "POST") {
                return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
            }
            m_auth.logout(principal->token_hash);
            Reply reply = json("{\"ok\":true}");
            reply.headers.emplace_back("Set-Cookie", AuthService::clear_cookie());
            return reply;
        }
        if (path == "/v1/auth/session") {
            if (r.method != "GET") {
                return error_reply(Error(ErrorCode::method_not_allowed, "use GET"));
            }
            return json("{\"user\":" + user_json(user) +
                        ",\"expires_at\":" + std::to_string(principal->expires_at) +
                        ",\"csrf\":\"" + principal->csrf + "\"}");
        }
        if (revoke) {
            if (r.method != "POST") {
                return error_reply(Error(ErrorCode::method_not_allowed, "use POST"));
            }
            if (user.role != Role::supervisor) {
                return error_reply(
                    Error(ErrorCode::permission_denied, "only a supervisor revokes devices"));
            }
            char* end = nullptr;
            const auto replica = std::strtoull(params[0].c_str(), &end, 10);
            if (params[0].empty() || *end || !m_store.revoke_device(replica)) {
                return error_reply(Error(ErrorCode::not_found, "no device " + params[0]));
            }
            return json(devices_json(m_procedure.office().devices()));
        }
        if (!route) {
            return error_reply(Error(ErrorCode::method_not_allowed,
                                     "method " + std::string(r.method) + " is not allowed here"));
        }
        // Deny by default: the role must be in the route's row of the table.
        if ((route->roles & role_bit(user.role)) == 0) {
            return error_reply(Error(ErrorCode::permission_denied,
                                     std::string(label_es(user.role)) + " may not " +
                                         std::string(r.method) + " " + route->pattern));
        }
        if (write && path != "/v1/inventory/import") {
            const std::string ct = header(r, "content-type");
            if (!r.body.empty() && ct.rfind("application/json", 0) != 0) {
                return error_reply(
                    Error(ErrorCode::unsupported_media_type, "send the body as application/json"));
            }
        }
        Ctx ctx{r, user, std::move(params), parse_query(r.query)};
        return route->handler(m_procedure, ctx);
    } catch (const Error& e) {
        return error_reply(e); // internal: a generic message, nothing of ours leaks
    }
}

} // namespace otsync::server
