// The handover routes (/v1/handovers...): the warehouse's list, the receipt, the Anexo 4 print
// page; docs/api.md.
#include "api/route.hpp"

namespace otsync::server::api {

void add_handover_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(
        out.end(),
        {
            {"GET", "/v1/handovers", k_warehouse_read,
             [](P& p, Ctx& c) { return json(p.handovers().list_handovers(c.query)); }},
            {"GET", "/v1/handovers/{id}", k_warehouse_read,
             [](P& p, Ctx& c) { return json(p.handovers().handover_detail(c.id("handover"))); }},
            {"POST", "/v1/handovers/{id}/receipt", k_receivers,
             [](P& p, Ctx& c) {
                 return json(p.handovers().receive_handover(c.user, c.id("handover"), c.req.body));
             }},
            {"GET", "/v1/handovers/{id}/anexo4", k_warehouse_read,
             [](P& p, Ctx& c) {
                 return Reply{200, "text/html; charset=utf-8",
                              p.handovers().anexo4_html(c.id("handover"))};
             }},
        });
}

} // namespace otsync::server::api
