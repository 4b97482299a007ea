// The OT routes (/v1/ots..., /v1/items/{id}/resolve): list, detail, assignment, missing reasons;
// docs/api.md.
#include "api/route.hpp"

namespace otsync::server::api {

void add_ot_routes(std::vector<Route>& out) {
    using P = Procedure;
    const auto act = [](std::string (WorkOrders::*fn)(const User&, const Id&, const std::string&),
                        const char* what) {
        return [fn, what](P& p, Ctx& c) {
            return json((p.ots().*fn)(c.user, c.id(what), c.req.body));
        };
    };
    out.insert(
        out.end(),
        {
            {"GET", "/v1/ots", k_office,
             [](P& p, Ctx& c) { return json(p.ots().list_ots(c.query)); }},
            {"GET", "/v1/ots/{id}", k_office,
             [](P& p, Ctx& c) { return json(p.ots().ot_detail(c.id("OT"))); }},
            {"POST", "/v1/ots/{id}/assign", k_dispatch, act(&WorkOrders::assign_ot, "OT")},
            {"POST", "/v1/ots/{id}/cancel", k_dispatch, act(&WorkOrders::cancel_ot, "OT")},
            {"POST", "/v1/ots/{id}/missing", k_dispatch, act(&WorkOrders::missing_reason, "OT")},
            {"GET", "/v1/ots/{id}/reconciliation", k_office,
             [](P& p, Ctx& c) { return json(p.ots().ot_reconciliation(c.id("OT"))); }},
            {"POST", "/v1/items/{id}/resolve", k_dispatch, act(&WorkOrders::resolve_item, "item")},
        });
}

} // namespace otsync::server::api
