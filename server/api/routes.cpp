// The REST routes and their role table; see api.hpp and docs/api.md.
#include "api/routes.hpp"

#include "api/json_body.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <functional>
#include <span>
#include <vector>

namespace otsync::server {

namespace {

using R = Role;
constexpr RoleMask bits(std::initializer_list<Role> roles) {
    RoleMask m = 0;
    for (Role r : roles) {
        m = static_cast<RoleMask>(m | role_bit(r));
    }
    return m;
}

// Role groups of the route table.
constexpr RoleMask k_people = k_all_roles & ~role_bit(R::system); // any signed-in person
constexpr RoleMask k_office = k_people & ~role_bit(R::technician);
constexpr RoleMask k_openers = bits({R::customer_service, R::sales_executive, R::supervisor});
constexpr RoleMask k_editors = bits({R::customer_service, R::sales_executive, R::commercial_advisor,
                                     R::back_office, R::supervisor});
constexpr RoleMask k_steppers =
    bits({R::customer_service, R::commercial_head, R::sales_executive, R::platform_officer,
          R::commercial_advisor, R::back_office, R::supervisor});
constexpr RoleMask k_routers = bits({R::commercial_head, R::platform_officer, R::supervisor});
constexpr RoleMask k_reviewers = bits({R::sales_executive, R::commercial_advisor, R::supervisor});
constexpr RoleMask k_dispatch = bits({R::back_office, R::supervisor});
constexpr RoleMask k_supervisor = role_bit(R::supervisor);
constexpr RoleMask k_warehouse_read = bits({R::warehouse_clerk, R::back_office, R::supervisor});
constexpr RoleMask k_receivers = bits({R::warehouse_clerk, R::supervisor});
constexpr RoleMask k_reports = bits({R::supervisor, R::back_office, R::commercial_head,
                                     R::commercial_advisor, R::platform_officer});

struct Ctx {
    const RouteRequest& req;
    const User& user;
    std::vector<std::string> params;
    std::map<std::string, std::string> query;
};

struct Route {
    const char* method;
    const char* pattern;
    RoleMask roles;
    std::function<Reply(Procedure&, Ctx&)> handler;
};

Reply json(std::string body, unsigned status = 200) {
    return Reply{status, "application/json", std::move(body)};
}

Id parse_id(const std::string& s, const char* what) {
    try {
        return Id::from_hex(s);
    } catch (const Error&) {
        throw Error(ErrorCode::not_found, std::string("no ") + what + " '" + s + "'");
    }
}

using Act = std::string (Procedure::*)(const User&, const Id&, const std::string&);
using Show = std::string (Procedure::*)(const Id&);

/// A route acting on the record named by its {id}: the acting user, the id, the body.
std::function<Reply(Procedure&, Ctx&)> act(Act fn, const char* what, unsigned status = 200) {
    return [fn, what, status](Procedure& p, Ctx& c) {
        return json((p.*fn)(c.user, parse_id(c.params[0], what), c.req.body), status);
    };
}

/// A route showing the record named by its {id}.
std::function<Reply(Procedure&, Ctx&)> show(Show fn, const char* what) {
    return [fn, what](Procedure& p, Ctx& c) { return json((p.*fn)(parse_id(c.params[0], what))); };
}

// ---- GET /v1/model: shared/'s tables as JSON, rendered once ----------------------------

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void str(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void roles_array(JsonWriter& w, RoleMask mask) {
    w.StartArray();
    for (std::uint8_t i = 0; i < k_role_count; ++i) {
        if (mask & role_bit(static_cast<Role>(i))) {
            str(w, to_string(static_cast<Role>(i)));
        }
    }
    w.EndArray();
}

/// {"code","label","word"}: the pages show the label, otsync-tech prints the word.
void label_object(JsonWriter& w, std::string_view code, std::string_view label,
                  std::string_view word) {
    w.StartObject();
    w.Key("code");
    str(w, code);
    w.Key("label");
    str(w, label);
    w.Key("word");
    str(w, word);
    w.EndObject();
}

void labels_array(JsonWriter& w, std::span<const CodeLabel> table) {
    w.StartArray();
    for (const auto& l : table) {
        label_object(w, l.code, l.label_es, l.word_es);
    }
    w.EndArray();
}

/// Every entity type, in wire order.
std::vector<EntityType> all_entity_types() {
    std::vector<EntityType> out;
    for (auto t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        out.push_back(static_cast<EntityType>(t));
    }
    return out;
}

std::string render_model() {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("roles");
    w.StartArray();
    for (std::uint8_t i = 0; i < k_role_count; ++i) {
        const auto r = static_cast<Role>(i);
        w.StartObject();
        w.Key("code");
        str(w, to_string(r));
        w.Key("label");
        str(w, label_es(r));
        w.EndObject();
    }
    w.EndArray();

    w.Key("lifecycles");
    w.StartArray();
    for (const EntityType t : all_entity_types()) {
        const Lifecycle* lc = lifecycle_of(t);
        if (!lc) {
            continue;
        }
        const auto labels = state_labels(t);
        w.StartObject();
        w.Key("entity");
        str(w, to_string(t));
        w.Key("states");
        w.StartArray();
        for (const auto state : lc->states) {
            const CodeLabel* l = find_label(labels, state);
            label_object(w, state, l ? l->label_es : state, l ? l->word_es : state);
        }
        w.EndArray();
        w.Key("finals");
        w.StartArray();
        for (const auto f : lc->finals) {
            str(w, f);
        }
        w.EndArray();
        w.Key("transitions");
        w.StartArray();
        for (const auto& tr : lc->transitions) {
            w.StartObject();
            w.Key("from");
            str(w, tr.from);
            w.Key("to");
            str(w, tr.to);
            w.Key("roles");
            roles_array(w, tr.roles);
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();

    w.Key("ot_kinds");
    labels_array(w, ot_kind_labels());
    w.Key("products");
    labels_array(w, product_labels());
    w.Key("receipts");
    labels_array(w, receipt_labels());

    w.Key("modalities");
    w.StartArray();
    for (const auto& m : modality_labels()) {
        const int n = std::stoi(std::string(m.code));
        w.StartObject();
        w.Key("code");
        w.Int(n);
        w.Key("label");
        str(w, m.label_es);
        w.Key("word");
        str(w, m.word_es);
        w.Key("work_orders");
        w.StartArray();
        for (const auto kind : work_orders_for(n)) {
            str(w, kind);
        }
        w.EndArray();
        w.Key("steps");
        w.StartArray();
        for (const auto& step : steps_for(n)) {
            w.StartObject();
            w.Key("code");
            str(w, step.code);
            w.Key("role");
            str(w, to_string(step.role));
            w.Key("label");
            str(w, step.label_es);
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();

    w.Key("fields");
    w.StartObject();
    for (const EntityType t : all_entity_types()) {
        w.Key(to_string(t).data(), static_cast<rapidjson::SizeType>(to_string(t).size()));
        w.StartArray();
        for (const auto& f : fields_of(t)) {
            w.StartObject();
            w.Key("name");
            str(w, f.name);
            w.Key("label");
            str(w, f.label_es);
            w.Key("type");
            str(w, to_string(f.type));
            if (f.max_bytes) {
                w.Key("max_bytes");
                w.Uint(f.max_bytes);
            }
            w.Key("writers");
            roles_array(w, f.writers);
            w.EndObject();
        }
        w.EndArray();
    }
    w.EndObject();
    w.EndObject();
    return sb.GetString();
}

/// The model never changes while the server runs: rendered once, with its ETag.
Reply model_reply(const RouteRequest& req) {
    static const std::string body = render_model();
    static const std::string etag = [] {
        std::uint64_t h = 14695981039346656037ull; // FNV-1a
        for (const unsigned char c : body) {
            h = (h ^ c) * 1099511628211ull;
        }
        char buf[24];
        std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
        return std::string(buf);
    }();
    const auto inm = req.headers.find("if-none-match");
    Reply reply = inm != req.headers.end() && inm->second == etag
                      ? Reply{304, "application/json", ""}
                      : json(body);
    reply.headers.emplace_back("ETag", etag);
    reply.headers.emplace_back("Cache-Control", "private, max-age=600");
    return reply;
}

/// The import's counts, or a 400 that lists every problem by line; nothing was changed.
Reply import_reply(const ImportResult& result) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    if (result.problems.empty()) {
        w.Key("contracts");
        w.Uint64(result.contracts.size());
        w.Key("equipment");
        w.Uint64(result.items.size());
        w.EndObject();
        return json(sb.GetString());
    }
    w.Key("error");
    w.StartObject();
    w.Key("code");
    w.String("invalid_value");
    w.Key("message");
    str(w, "inventory not imported: " + std::to_string(result.problem_count()) +
               " problem(s); nothing was changed");
    w.Key("problems");
    w.StartArray();
    for (const auto& p : result.problems) {
        w.StartObject();
        w.Key("line");
        w.Uint64(p.line);
        w.Key("message");
        str(w, p.message);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndObject();
    return json(sb.GetString(), http_status(ErrorCode::invalid_value));
}

const std::vector<Route>& table() {
    using P = Procedure;
    static const std::vector<Route> k{
        // ---- cases ----
        {"POST", "/v1/cases", k_openers,
         [](P& p, Ctx& c) { return json(p.open_case(c.user, c.req.body), 201); }},
        {"GET", "/v1/cases", k_office, [](P& p, Ctx& c) { return json(p.list_cases(c.query)); }},
        {"GET", "/v1/cases/{id}", k_office, show(&P::case_detail, "case")},
        {"PATCH", "/v1/cases/{id}", k_editors, act(&P::edit_case, "case")},
        {"POST", "/v1/cases/{id}/steps", k_steppers, act(&P::record_step, "case")},
        {"POST", "/v1/cases/{id}/route", k_routers, act(&P::route_case, "case")},
        {"POST", "/v1/cases/{id}/contact", k_reviewers, act(&P::contact, "case")},
        {"POST", "/v1/cases/{id}/feasibility", k_reviewers, act(&P::feasibility, "case")},
        {"POST", "/v1/cases/{id}/requirements", k_reviewers, act(&P::requirements, "case")},
        {"POST", "/v1/cases/{id}/override", k_supervisor, act(&P::override_requirements, "case")},
        {"POST", "/v1/cases/{id}/approve", k_reviewers, act(&P::approve, "case")},
        {"POST", "/v1/cases/{id}/reject", k_reviewers, act(&P::reject, "case")},
        {"POST", "/v1/cases/{id}/cancel", k_dispatch, act(&P::cancel_case, "case")},
        {"POST", "/v1/cases/{id}/ots", k_dispatch, act(&P::issue_ots, "case", 201)},
        {"GET", "/v1/cases/{id}/reconciliation", k_office, show(&P::case_reconciliation, "case")},
        // ---- OTs and items ----
        {"GET", "/v1/ots", k_office, [](P& p, Ctx& c) { return json(p.list_ots(c.query)); }},
        {"GET", "/v1/ots/{id}", k_office, show(&P::ot_detail, "OT")},
        {"POST", "/v1/ots/{id}/assign", k_dispatch, act(&P::assign_ot, "OT")},
        {"POST", "/v1/ots/{id}/cancel", k_dispatch, act(&P::cancel_ot, "OT")},
        {"POST", "/v1/ots/{id}/missing", k_dispatch, act(&P::missing_reason, "OT")},
        {"GET", "/v1/ots/{id}/reconciliation", k_office, show(&P::ot_reconciliation, "OT")},
        {"POST", "/v1/items/{id}/resolve", k_dispatch, act(&P::resolve_item, "item")},
        // ---- handovers ----
        {"GET", "/v1/handovers", k_warehouse_read,
         [](P& p, Ctx& c) { return json(p.list_handovers(c.query)); }},
        {"GET", "/v1/handovers/{id}", k_warehouse_read, show(&P::handover_detail, "handover")},
        {"POST", "/v1/handovers/{id}/receipt", k_receivers, act(&P::receive_handover, "handover")},
        {"GET", "/v1/handovers/{id}/anexo4", k_warehouse_read,
         [](P& p, Ctx& c) {
             return Reply{200, "text/html; charset=utf-8",
                          p.anexo4_html(parse_id(c.params[0], "handover"))};
         }},
        // ---- fees and inventory ----
        {"GET", "/v1/fees", k_office, [](P& p, Ctx& c) { return json(p.fees(c.query)); }},
        {"POST", "/v1/fees", k_supervisor,
         [](P& p, Ctx& c) { return json(p.put_fee(c.user, c.req.body), 201); }},
        {"POST", "/v1/inventory/import", k_dispatch,
         [](P& p, Ctx& c) { return import_reply(p.import_inventory(c.req.body)); }},
        {"GET", "/v1/inventory/contracts/{id}", k_office,
         [](P& p, Ctx& c) { return json(p.contract_detail(c.params[0])); }},
        // ---- reports and conflicts ----
        {"GET", "/v1/reports/indicators", k_reports,
         [](P& p, Ctx& c) {
             const bool csv = c.query.count("format") && c.query.at("format") == "csv";
             return csv ? Reply{200, "text/csv; charset=utf-8", p.indicators(c.query, true)}
                        : json(p.indicators(c.query, false));
         }},
        {"GET", "/v1/reports/discrepancies", k_warehouse_read,
         [](P& p, Ctx& c) { return json(p.discrepancies(c.query)); }},
        {"GET", "/v1/conflicts", k_warehouse_read, [](P& p, Ctx&) { return json(p.conflicts()); }},
        {"POST", "/v1/conflicts/resolve", k_warehouse_read,
         [](P& p, Ctx& c) { return json(p.resolve_conflict(c.user, c.req.body)); }},
        // ---- the case model (shared/'s tables) ----
        {"GET", "/v1/model", k_people, [](P&, Ctx& c) { return model_reply(c.req); }},
        // ---- people and devices ----
        {"GET", "/v1/users", k_office, [](P& p, Ctx&) { return json(p.users_json()); }},
        {"GET", "/v1/devices", k_supervisor, [](P& p, Ctx&) { return json(p.devices_json()); }},
    };
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
            Reply reply = error_reply(Error(ErrorCode::unauthenticated,
                                            "sign in first (your session is missing or expired)"));
            reply.headers.emplace_back("WWW-Authenticate", "Bearer");
            return reply;
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
            return json(m_procedure.devices_json());
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
