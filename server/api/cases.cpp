// The case routes (/v1/cases...): opening, the review, approval, OTs issued; docs/api.md.
#include "api/render.hpp"
#include "api/route.hpp"

#include <charconv>
#include <cstdint>

namespace otsync::server::api {

namespace {

using CF = EntityType;

// ---- requests -------------------------------------------------------------------------------

OpenCaseCmd open_case_cmd(const std::string& body) {
    JsonBody j(body);
    OpenCaseCmd cmd;
    cmd.modality = static_cast<int>(*j.integer("modality", 1, 4, true));
    cmd.contract = j.req_text("contract", 64);
    cmd.customer_name = j.req_text("customer_name", 200);
    cmd.person_type = j.req_text("person_type", 16);
    cmd.tax_id = j.req_text("tax_id", 64);
    cmd.reference_cell = j.req_text("reference_cell", 64);
    cmd.contact_hours = j.req_text("contact_hours", 200);
    cmd.products = j.texts("products", 4, 64, true);
    cmd.old_address = j.req_text("old_address", 500);
    cmd.new_address = j.req_text("new_address", 500);
    // The registry's own limit for each optional field, so the error names the member.
    const auto optional = [&](const char* name) {
        return j.text(name, field_def(CF::case_file, name).max_bytes);
    };
    cmd.old_geo_location = optional("old_geo_location");
    cmd.old_neighborhood = optional("old_neighborhood");
    cmd.old_reference = optional("old_reference");
    cmd.new_geo_location = optional("new_geo_location");
    cmd.new_neighborhood = optional("new_neighborhood");
    cmd.new_reference = optional("new_reference");
    cmd.observations = optional("observations");
    cmd.unit = optional("unit");
    j.done();
    return cmd;
}

/// `?status=&modality=&contract=&limit=`. A modality that is not a number names no modality,
/// and matches no case, as 0 does.
CaseFilter case_filter(const Ctx& c) {
    CaseFilter f;
    f.status = c.q("status");
    f.contract = c.q("contract");
    if (const std::string m = c.q("modality"); !m.empty()) {
        int n = 0;
        const auto [end, ec] = std::from_chars(m.data(), m.data() + m.size(), n);
        f.modality =
            ec == std::errc() && end == m.data() + m.size() && std::to_string(n) == m ? n : 0;
    }
    f.limit = parse_limit(c.query);
    return f;
}

/// The `fields` object of PATCH and of a step: each member a case field that may be set
/// here (the procedure's rule, asked first so that a refused field is refused whatever its
/// value), its JSON value of the registry's type of that field; null clears it.
CaseFieldValues case_fields(const rapidjson::Value* fields) {
    CaseFieldValues out;
    if (!fields) {
        return out;
    }
    for (auto it = fields->MemberBegin(); it != fields->MemberEnd(); ++it) {
        std::string name(it->name.GetString(), it->name.GetStringLength());
        check_settable_case_field(name);
        const FieldDef& f = field_def(CF::case_file, name);
        const rapidjson::Value& v = it->value;
        Value value;
        if (v.IsNull()) {
            value = std::monostate{};
        } else if (f.type == ValueType::text && v.IsString()) {
            value = std::string(v.GetString(), v.GetStringLength());
        } else if (f.type == ValueType::boolean && v.IsBool()) {
            value = v.GetBool();
        } else if (f.type == ValueType::timestamp && v.IsInt64()) {
            value = Timestamp{v.GetInt64()};
        } else if (f.type == ValueType::int64 && v.IsInt64()) {
            value = v.GetInt64();
        } else {
            const std::string at = "fields." + name;
            throw Error(ErrorCode::wrong_type, at + " takes " + std::string(to_string(f.type)), at);
        }
        out.emplace_back(std::move(name), std::move(value));
    }
    return out;
}

// ---- answers --------------------------------------------------------------------------------

std::string case_list_json(const CaseList& list) {
    return json_object([&](JsonWriter& w) {
        objects_member(w, "cases", list.cases, [&](const CaseSummary& s) {
            member(w, "id", s.id);
            member(w, "modality", s.modality);
            member(w, "contract", s.contract);
            member(w, "customer_name", s.customer_name);
            member(w, "status", s.status);
            member(w, "opened_at", s.opened_at);
            member(w, "unit", s.unit);
            member(w, "last_step", s.last_step);
            member(w, "requirements_missing", static_cast<int>(s.requirements_missing));
            member(w, "archived", s.archived);
        });
        member(w, "total", list.total);
    });
}

std::string case_detail_json(const CaseDetail& d) {
    return json_object([&](JsonWriter& w) {
        member(w, "id", d.id);
        member(w, "modality", d.modality);
        member(w, "status", d.status);
        w.Key("fields");
        raw(w, fields_json(CF::case_file, d.state ? &*d.state : nullptr));
        if (d.routed_to_name) {
            member(w, "routed_to_name", *d.routed_to_name);
        }
        objects_member(w, "requirements", d.requirements, [&](const CaseRequirement& req) {
            member(w, "code", req.code);
            member(w, "label", req.label);
            member(w, "met", req.met);
        });
        member(w, "requirements_complete", d.requirements_complete);
        objects_member(w, "steps", d.steps, [&](const CaseStep& s) {
            member(w, "code", s.code);
            if (s.seed) {
                member(w, "label", s.seed->label_es);
                member(w, "role", to_string(s.seed->role));
            }
            member(w, "at", s.at);
            member(w, "by", s.by);
        });
        objects_member(w, "template", steps_for(d.modality), [&](const Step& s) {
            member(w, "code", s.code);
            member(w, "role", to_string(s.role));
            member(w, "role_label", label_es(s.role));
            member(w, "label", s.label_es);
        });
        objects_member(w, "ots", d.ots, [&](const CaseOt& ot) {
            member(w, "id", ot.id);
            member(w, "kind", ot.kind);
            member(w, "status", ot.status);
            member(w, "technician", ot.technician);
        });
        w.Key("closing_blockers");
        w.StartArray();
        for (const auto& why : d.closing_blockers) {
            str(w, why);
        }
        w.EndArray();
    });
}

std::string case_reconciliation_json(const CaseReconciliation& rec) {
    return json_object([&](JsonWriter& w) {
        member(w, "case", rec.id);
        w.Key("ots");
        w.StartArray();
        for (const auto& ot : rec.ots) {
            write_reconciliation(w, ot, *rec.names);
        }
        w.EndArray();
        w.Key("closing_blockers");
        w.StartArray();
        for (const auto& why : rec.closing_blockers) {
            str(w, why);
        }
        w.EndArray();
    });
}

/// A case action: answers the case detail as the action leaves it.
template <typename Cmd>
std::function<Reply(Procedure&, Ctx&)> act(void (Cases::*fn)(const User&, const Id&, const Cmd&),
                                           Cmd (*parse)(JsonBody&), unsigned status = 200) {
    return action(
        &Procedure::cases, fn, "case", parse,
        [](Procedure& p, const Id& c) { return case_detail_json(p.cases().case_detail(c)); },
        status);
}

// The body's other members are checked before the fields' values, as they always were.
EditCaseCmd edit_case_cmd(JsonBody& j) {
    const auto* fields = j.object("fields", true);
    j.done();
    return {case_fields(fields)};
}

RecordStepCmd record_step_cmd(JsonBody& j) {
    RecordStepCmd cmd;
    cmd.step = j.req_text("step", 16);
    const auto* fields = j.object("fields");
    j.done();
    cmd.fields = case_fields(fields);
    return cmd;
}

RouteCaseCmd route_case_cmd(JsonBody& j) {
    return {j.req_text("to", 200)};
}

ContactCmd contact_cmd(JsonBody&) {
    return {};
}

FeasibilityCmd feasibility_cmd(JsonBody& j) {
    FeasibilityCmd cmd;
    cmd.feasible = *j.boolean("feasible", true);
    cmd.note = j.text("note", 500);
    return cmd;
}

RequirementsCmd requirements_cmd(JsonBody& j) {
    RequirementsCmd cmd;
    cmd.met = j.texts("met", 32, 64);
    cmd.unmet = j.texts("unmet", 32, 64);
    return cmd;
}

ApproveCmd approve_cmd(JsonBody&) {
    return {};
}

IssueOtsCmd issue_ots_cmd(JsonBody& j) {
    IssueOtsCmd cmd;
    cmd.technician = j.text("technician", 200);
    cmd.window_start = j.integer("window_start", 0, INT64_MAX / 2);
    cmd.window_end = j.integer("window_end", 0, INT64_MAX / 2);
    cmd.zone = j.text("zone", 64);
    return cmd;
}

} // namespace

void add_case_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(
        out.end(),
        {
            {"POST", "/v1/cases", k_openers,
             [](P& p, Ctx& c) {
                 const Id id = p.cases().open_case(c.user, open_case_cmd(c.req.body));
                 return json(case_detail_json(p.cases().case_detail(id)), 201);
             }},
            {"GET", "/v1/cases", k_office,
             [](P& p, Ctx& c) {
                 return json(case_list_json(p.cases().list_cases(case_filter(c))));
             }},
            {"GET", "/v1/cases/{id}", k_office,
             [](P& p, Ctx& c) {
                 return json(case_detail_json(p.cases().case_detail(c.id("case"))));
             }},
            {"PATCH", "/v1/cases/{id}", k_editors, act(&Cases::edit_case, &edit_case_cmd)},
            {"POST", "/v1/cases/{id}/steps", k_steppers,
             act(&Cases::record_step, &record_step_cmd)},
            {"POST", "/v1/cases/{id}/route", k_routers, act(&Cases::route_case, &route_case_cmd)},
            {"POST", "/v1/cases/{id}/contact", k_reviewers, act(&Cases::contact, &contact_cmd)},
            {"POST", "/v1/cases/{id}/feasibility", k_reviewers,
             act(&Cases::feasibility, &feasibility_cmd)},
            {"POST", "/v1/cases/{id}/requirements", k_reviewers,
             act(&Cases::requirements, &requirements_cmd)},
            {"POST", "/v1/cases/{id}/override", k_supervisor,
             act(&Cases::override_requirements, &reason_cmd<OverrideRequirementsCmd>)},
            {"POST", "/v1/cases/{id}/approve", k_reviewers, act(&Cases::approve, &approve_cmd)},
            {"POST", "/v1/cases/{id}/reject", k_reviewers,
             act(&Cases::reject, &reason_cmd<RejectCmd>)},
            {"POST", "/v1/cases/{id}/cancel", k_dispatch,
             act(&Cases::cancel_case, &reason_cmd<CancelCaseCmd>)},
            {"POST", "/v1/cases/{id}/ots", k_dispatch, act(&Cases::issue_ots, &issue_ots_cmd, 201)},
            {"GET", "/v1/cases/{id}/reconciliation", k_office,
             [](P& p, Ctx& c) {
                 return json(case_reconciliation_json(p.cases().case_reconciliation(c.id("case"))));
             }},
        });
}

} // namespace otsync::server::api
