// The office routes: fees, the inventory import and contracts, reports, conflicts, users and
// devices; docs/api.md.
#include "api/route.hpp"

namespace otsync::server::api {

namespace {

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

} // namespace

void add_office_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(
        out.end(),
        {
            // ---- fees and inventory ----
            {"GET", "/v1/fees", k_office,
             [](P& p, Ctx& c) { return json(p.office().fees(c.query)); }},
            {"POST", "/v1/fees", k_supervisor,
             [](P& p, Ctx& c) { return json(p.office().put_fee(c.user, c.req.body), 201); }},
            {"POST", "/v1/inventory/import", k_dispatch,
             [](P& p, Ctx& c) { return import_reply(p.office().import_inventory(c.req.body)); }},
            {"GET", "/v1/inventory/contracts/{id}", k_office,
             [](P& p, Ctx& c) { return json(p.office().contract_detail(c.params[0])); }},
            // ---- reports and conflicts ----
            {"GET", "/v1/reports/indicators", k_reports,
             [](P& p, Ctx& c) {
                 const bool csv = c.q("format") == "csv";
                 return csv ? Reply{200, "text/csv; charset=utf-8",
                                    p.office().indicators(c.query, true)}
                            : json(p.office().indicators(c.query, false));
             }},
            {"GET", "/v1/reports/discrepancies", k_warehouse_read,
             [](P& p, Ctx& c) { return json(p.office().discrepancies(c.query)); }},
            {"GET", "/v1/conflicts", k_warehouse_read,
             [](P& p, Ctx&) { return json(p.office().conflicts()); }},
            {"POST", "/v1/conflicts/resolve", k_warehouse_read,
             [](P& p, Ctx& c) { return json(p.office().resolve_conflict(c.user, c.req.body)); }},
            // ---- people and devices ----
            {"GET", "/v1/users", k_office,
             [](P& p, Ctx&) { return json(p.office().users_json()); }},
            {"GET", "/v1/devices", k_supervisor,
             [](P& p, Ctx&) { return json(p.office().devices_json()); }},
        });
}

} // namespace otsync::server::api
