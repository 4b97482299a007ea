// The case routes (/v1/cases...): opening, the review, approval, OTs issued; docs/api.md.
#include "api/route.hpp"

namespace otsync::server::api {

void add_case_routes(std::vector<Route>& out) {
    using P = Procedure;
    const auto act = [](std::string (Cases::*fn)(const User&, const Id&, const std::string&),
                        unsigned status = 200) {
        return [fn, status](P& p, Ctx& c) {
            return json((p.cases().*fn)(c.user, c.id("case"), c.req.body), status);
        };
    };
    const auto show = [](std::string (Cases::*fn)(const Id&)) {
        return [fn](P& p, Ctx& c) { return json((p.cases().*fn)(c.id("case"))); };
    };
    out.insert(
        out.end(),
        {
            {"POST", "/v1/cases", k_openers,
             [](P& p, Ctx& c) { return json(p.cases().open_case(c.user, c.req.body), 201); }},
            {"GET", "/v1/cases", k_office,
             [](P& p, Ctx& c) { return json(p.cases().list_cases(c.query)); }},
            {"GET", "/v1/cases/{id}", k_office, show(&Cases::case_detail)},
            {"PATCH", "/v1/cases/{id}", k_editors, act(&Cases::edit_case)},
            {"POST", "/v1/cases/{id}/steps", k_steppers, act(&Cases::record_step)},
            {"POST", "/v1/cases/{id}/route", k_routers, act(&Cases::route_case)},
            {"POST", "/v1/cases/{id}/contact", k_reviewers, act(&Cases::contact)},
            {"POST", "/v1/cases/{id}/feasibility", k_reviewers, act(&Cases::feasibility)},
            {"POST", "/v1/cases/{id}/requirements", k_reviewers, act(&Cases::requirements)},
            {"POST", "/v1/cases/{id}/override", k_supervisor, act(&Cases::override_requirements)},
            {"POST", "/v1/cases/{id}/approve", k_reviewers, act(&Cases::approve)},
            {"POST", "/v1/cases/{id}/reject", k_reviewers, act(&Cases::reject)},
            {"POST", "/v1/cases/{id}/cancel", k_dispatch, act(&Cases::cancel_case)},
            {"POST", "/v1/cases/{id}/ots", k_dispatch, act(&Cases::issue_ots, 201)},
            {"GET", "/v1/cases/{id}/reconciliation", k_office, show(&Cases::case_reconciliation)},
        });
}

} // namespace otsync::server::api
