// The OT routes (/v1/ots..., /v1/items/{id}/resolve): list, detail, assignment, missing reasons;
// docs/api.md.
#include "api/render.hpp"
#include "api/route.hpp"

namespace otsync::server::api {

namespace {

/// GET /v1/ots's query: status, case (32 hex), technician (a user name), limit.
OtFilter ot_filter(const Ctx& c) {
    OtFilter f;
    f.status = c.q("status");
    if (const std::string s = c.q("case"); !s.empty()) {
        // A case that is not an id (32 lower-case hex) names no case: the zero id, which no
        // case has, so the list is empty as for any case without OTs.
        f.case_id = Id{};
        try {
            if (const Id id = Id::from_hex(s); id.hex() == s) {
                f.case_id = id;
            }
        } catch (const Error&) {
        }
    }
    f.technician = c.q("technician");
    f.limit = parse_limit(c.query);
    return f;
}

std::string ot_list_json(const OtList& list) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("ots");
    w.StartArray();
    for (const OtSummary& o : list.ots) {
        w.StartObject();
        w.Key("id");
        str(w, o.id.hex());
        w.Key("case");
        str(w, o.case_id ? o.case_id->hex() : std::string());
        w.Key("contract");
        str(w, o.contract);
        w.Key("kind");
        str(w, o.kind);
        w.Key("status");
        str(w, o.status);
        w.Key("address");
        str(w, o.address);
        w.Key("technician");
        if (o.technician) {
            str(w, *o.technician);
        } else {
            w.Null();
        }
        w.Key("issued_at");
        w.Int64(o.issued_at);
        w.EndObject();
    }
    w.EndArray();
    w.Key("total");
    w.Uint64(list.total);
    w.EndObject();
    return sb.GetString();
}

std::string ot_detail_json(const OtDetail& d) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("id");
    str(w, d.id.hex());
    w.Key("fields");
    raw(w, fields_json(EntityType::work_order, d.state ? &*d.state : nullptr));
    w.Key("technician_name");
    if (d.technician) {
        str(w, d.names->label(*d.technician));
    } else {
        w.Null();
    }
    w.Key("reconciliation");
    write_reconciliation(w, d.reconciliation, *d.names);
    w.EndObject();
    return sb.GetString();
}

std::string reconciliation_json(const OtReconciliationView& v) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    write_reconciliation(w, v.reconciliation, *v.names);
    return sb.GetString();
}

/// The item's entity JSON, as entity_json (otsync/view.hpp) writes it.
std::string item_json(const CollectedItemView& v) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("type");
    str(w, to_string(EntityType::collected_item));
    w.Key("id");
    str(w, v.id.hex());
    w.Key("fields");
    raw(w, fields_json(EntityType::collected_item, v.state ? &*v.state : nullptr));
    w.EndObject();
    return sb.GetString();
}

} // namespace

void add_ot_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(
        out.end(),
        {
            {"GET", "/v1/ots", k_office,
             [](P& p, Ctx& c) { return json(ot_list_json(p.ots().list_ots(ot_filter(c)))); }},
            {"GET", "/v1/ots/{id}", k_office,
             [](P& p, Ctx& c) { return json(ot_detail_json(p.ots().ot_detail(c.id("OT")))); }},
            {"POST", "/v1/ots/{id}/assign", k_dispatch,
             [](P& p, Ctx& c) {
                 const Id ot = c.id("OT");
                 JsonBody j(c.req.body);
                 AssignOtCmd cmd;
                 cmd.technician = j.req_text("technician", 200);
                 j.done();
                 p.ots().assign_ot(c.user, ot, cmd);
                 return json(ot_detail_json(p.ots().ot_detail(ot)));
             }},
            {"POST", "/v1/ots/{id}/cancel", k_dispatch,
             [](P& p, Ctx& c) {
                 const Id ot = c.id("OT");
                 JsonBody j(c.req.body);
                 CancelOtCmd cmd;
                 cmd.reason = j.req_text("reason", 500);
                 j.done();
                 p.ots().cancel_ot(c.user, ot, cmd);
                 return json(ot_detail_json(p.ots().ot_detail(ot)));
             }},
            {"POST", "/v1/ots/{id}/missing", k_dispatch,
             [](P& p, Ctx& c) {
                 const Id ot = c.id("OT");
                 JsonBody j(c.req.body);
                 MissingReasonCmd cmd;
                 cmd.serial = j.req_text("serial", 64);
                 cmd.reason = j.req_text("reason", 400);
                 j.done();
                 p.ots().missing_reason(c.user, ot, cmd);
                 return json(ot_detail_json(p.ots().ot_detail(ot)));
             }},
            {"GET", "/v1/ots/{id}/reconciliation", k_office,
             [](P& p, Ctx& c) {
                 return json(reconciliation_json(p.ots().ot_reconciliation(c.id("OT"))));
             }},
            {"POST", "/v1/items/{id}/resolve", k_dispatch,
             [](P& p, Ctx& c) {
                 const Id item = c.id("item");
                 JsonBody j(c.req.body);
                 ResolveItemCmd cmd;
                 cmd.resolution = j.req_text("resolution", 500);
                 j.done();
                 p.ots().resolve_item(c.user, item, cmd);
                 return json(item_json(p.ots().item_detail(item)));
             }},
        });
}

} // namespace otsync::server::api
