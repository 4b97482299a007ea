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
    return json_object([&](JsonWriter& w) {
        objects_member(w, "ots", list.ots, [&](const OtSummary& o) {
            member(w, "id", o.id);
            member(w, "case", o.case_id ? o.case_id->hex() : std::string());
            member(w, "contract", o.contract);
            member(w, "kind", o.kind);
            member(w, "status", o.status);
            member(w, "address", o.address);
            member(w, "technician", o.technician);
            member(w, "issued_at", o.issued_at);
        });
        member(w, "total", list.total);
    });
}

std::string ot_detail_json(const OtDetail& d) {
    return json_object([&](JsonWriter& w) {
        member(w, "id", d.id);
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
    });
}

std::string reconciliation_json(const OtReconciliationView& v) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    write_reconciliation(w, v.reconciliation, *v.names);
    return sb.GetString();
}

/// The item's entity JSON, as entity_json (otsync/view.hpp) writes it.
std::string item_json(const CollectedItemView& v) {
    return json_object([&](JsonWriter& w) {
        member(w, "type", to_string(EntityType::collected_item));
        member(w, "id", v.id);
        w.Key("fields");
        raw(w, fields_json(EntityType::collected_item, v.state ? &*v.state : nullptr));
    });
}

AssignOtCmd assign_cmd(JsonBody& j) {
    return {j.req_text("technician", 200)};
}

MissingReasonCmd missing_cmd(JsonBody& j) {
    MissingReasonCmd cmd;
    cmd.serial = j.req_text("serial", 64);
    cmd.reason = j.req_text("reason", 400);
    return cmd;
}

ResolveItemCmd resolve_cmd(JsonBody& j) {
    return {j.req_text("resolution", 500)};
}

/// An OT action: answers the OT's detail as the action leaves it.
template <typename Cmd>
std::function<Reply(Procedure&, Ctx&)>
ot_action(void (WorkOrders::*fn)(const User&, const Id&, const Cmd&), Cmd (*parse)(JsonBody&)) {
    return action(&Procedure::ots, fn, "OT", parse,
                  [](Procedure& p, const Id& ot) { return ot_detail_json(p.ots().ot_detail(ot)); });
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
             ot_action(&WorkOrders::assign_ot, assign_cmd)},
            {"POST", "/v1/ots/{id}/cancel", k_dispatch,
             ot_action(&WorkOrders::cancel_ot, reason_cmd<CancelOtCmd>)},
            {"POST", "/v1/ots/{id}/missing", k_dispatch,
             ot_action(&WorkOrders::missing_reason, missing_cmd)},
            {"GET", "/v1/ots/{id}/reconciliation", k_office,
             [](P& p, Ctx& c) {
                 return json(reconciliation_json(p.ots().ot_reconciliation(c.id("OT"))));
             }},
            {"POST", "/v1/items/{id}/resolve", k_dispatch,
             action(&Procedure::ots, &WorkOrders::resolve_item, "item", resolve_cmd,
                    [](P& p, const Id& item) { return item_json(p.ots().item_detail(item)); })},
        });
}

} // namespace otsync::server::api
