// Cases: opening, routing, the review and its Anexo 2 checklist, approval, OTs issued; see
// cases.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

// ---- cases --------------------------------------------------------------------------------------

std::string Cases::open_case(const User& actor, const std::string& body) {
    JsonBody j(body);
    const auto modality = static_cast<int>(*j.integer("modality", 1, 4, true));
    const std::string contract = j.req_text("contract", 64);
    const std::string customer = j.req_text("customer_name", 200);
    const std::string person = j.req_text("person_type", 16);
    if (person != "natural" && person != "legal") {
        throw Error(ErrorCode::invalid_value, "person_type is 'natural' or 'legal'", "person_type");
    }
    const std::string tax_id = j.req_text("tax_id", 64);
    const std::string cell = j.req_text("reference_cell", 64);
    const std::string hours = j.req_text("contact_hours", 200);
    const auto products = j.texts("products", 4, 64, true);
    if (products.empty()) {
        throw Error(ErrorCode::missing_field, "products must name at least one product",
                    "products");
    }
    const std::string old_address = j.req_text("old_address", 500);
    const std::string new_address = j.req_text("new_address", 500);
    std::map<std::string, std::string> optional;
    for (const char* name :
         {"old_geo_location", "old_neighborhood", "old_reference", "new_geo_location",
          "new_neighborhood", "new_reference", "observations", "unit"}) {
        // The registry's own limit for each field, so the error names the member.
        if (auto v = j.text(name, field_def(CF::case_file, name).max_bytes)) {
            optional[name] = *v;
        }
    }
    j.done();
    const auto first = steps_for(modality).front();
    if (actor.role != first.role && actor.role != Role::supervisor) {
        throw Error(ErrorCode::permission_denied, "a modality " + std::to_string(modality) +
                                                      " case is opened by " +
                                                      std::string(label_es(first.role)));
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const Money fee = fee_at(m_store, products, now);
    const Id c = Id::random();
    run(m_sync, actor, [&](Batch& b) {
        b.status(CF::case_file, c, "opened");
        b.set(CF::case_file, c, "modality", std::int64_t{modality});
        b.set(CF::case_file, c, "contract", text(contract));
        b.set(CF::case_file, c, "customer_name", text(customer));
        b.set(CF::case_file, c, "person_type", text(person));
        b.set(CF::case_file, c, "tax_id", text(tax_id));
        b.set(CF::case_file, c, "reference_cell", text(cell));
        b.set(CF::case_file, c, "contact_hours", text(hours));
        b.set(CF::case_file, c, "old_address", text(old_address));
        b.set(CF::case_file, c, "new_address", text(new_address));
        b.set(CF::case_file, c, "opened_at", Timestamp{now});
        std::set<std::string> seen;
        for (const auto& p : products) {
            if (seen.insert(p).second) {
                b.add(CF::case_file, c, "products", text(p));
            }
        }
        b.set(CF::case_file, c, "fee", fee);
        if (!optional.contains("unit") && !actor.unit.empty()) {
            optional["unit"] = actor.unit;
        }
        for (const auto& [k, v] : optional) {
            b.set(CF::case_file, c, k, text(v));
        }
        for (int n = 1; n <= 3; ++n) { // receives, gathers the data, sends it on
            if (auto code = step_code(modality, n)) {
                b.step(c, *code);
            }
        }
        for (const auto& op : b.ops) { // values outside the registry's limits: a 400
            if (auto err = check_op_schema(op)) {
                throw Error(err->code(), err->message());
            }
        }
    });
    return case_detail(c);
}

std::string Cases::list_cases(const std::map<std::string, std::string>& q) {
    const std::string want_status = query_of(q, "status");
    const std::string want_modality = query_of(q, "modality");
    const std::string want_contract = query_of(q, "contract");
    // The newest `limit` cases; `total` says how many matched.
    const std::size_t limit = parse_limit(q);
    std::size_t total = 0;
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("cases");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& c : r.entities(CF::case_file)) {
            if (modality_of(r, c) == 0) {
                continue;
            }
            if (!want_status.empty() && text_of(r, CF::case_file, c, "status") != want_status) {
                continue;
            }
            if (!want_modality.empty() && std::to_string(modality_of(r, c)) != want_modality) {
                continue;
            }
            if (!want_contract.empty() &&
                text_of(r, CF::case_file, c, "contract") != want_contract) {
                continue;
            }
            found.emplace_back(time_of(r, CF::case_file, c, "opened_at").value_or(0), c);
        }
        std::sort(found.rbegin(), found.rend()); // newest first
        total = found.size();
        if (found.size() > limit) {
            found.resize(limit);
        }
        for (const auto& [opened, c] : found) {
            w.StartObject();
            w.Key("id");
            str(w, c.hex());
            w.Key("modality");
            w.Int(modality_of(r, c));
            w.Key("contract");
            str(w, text_of(r, CF::case_file, c, "contract"));
            w.Key("customer_name");
            str(w, text_of(r, CF::case_file, c, "customer_name"));
            w.Key("status");
            str(w, text_of(r, CF::case_file, c, "status"));
            w.Key("opened_at");
            w.Int64(opened);
            w.Key("unit");
            str(w, text_of(r, CF::case_file, c, "unit"));
            const auto* log = r.log(CF::case_file, c, "steps");
            w.Key("last_step");
            if (log && !log->events.empty() &&
                std::holds_alternative<std::string>(log->events.rbegin()->second)) {
                str(w, std::get<std::string>(log->events.rbegin()->second));
            } else {
                w.Null();
            }
            w.Key("requirements_missing");
            w.Int(static_cast<int>(missing_requirements(r, c).size()));
            w.EndObject();
        }
    });
    w.EndArray();
    w.Key("total");
    w.Uint64(total);
    w.EndObject();
    return sb.GetString();
}

std::string Cases::case_detail(const Id& c) {
    // Who did each step comes from the op log (the author of each op is kept for audit).
    std::map<OpId, Id> authors;
    for (const auto& so : m_store.ops_by_seq(m_store.op_seqs_of_entity(CF::case_file, c))) {
        if (so.op.field == field_def(CF::case_file, "steps").id) {
            authors[so.op.id] = so.op.author;
        }
    }
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        const int modality = modality_of(r, c);
        w.StartObject();
        w.Key("id");
        str(w, c.hex());
        w.Key("modality");
        w.Int(modality);
        w.Key("status");
        str(w, text_of(r, CF::case_file, c, "status"));
        w.Key("fields");
        raw(w, fields_json(r, CF::case_file, c));
        if (auto routed = id_of(r, CF::case_file, c, "routed_to")) {
            w.Key("routed_to_name");
            str(w, names->label(*routed));
        }
        w.Key("requirements");
        w.StartArray();
        std::set<std::string> met;
        for (const auto& v : r.elements(CF::case_file, c, "requirements")) {
            met.insert(std::get<std::string>(v));
        }
        for (const auto& req : requirements_for(person_of(r, c), modality)) {
            w.StartObject();
            w.Key("code");
            str(w, req.code);
            w.Key("label");
            str(w, req.label_es);
            w.Key("met");
            w.Bool(met.contains(std::string(req.code)));
            w.EndObject();
        }
        w.EndArray();
        w.Key("requirements_complete");
        w.Bool(missing_requirements(r, c).empty());
        w.Key("steps");
        w.StartArray();
        if (const auto* log = r.log(CF::case_file, c, "steps")) {
            for (const auto& [key, v] : log->events) {
                const std::string code =
                    std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : "";
                w.StartObject();
                w.Key("code");
                str(w, code);
                for (const auto& s : steps_for(modality)) {
                    if (s.code == code) {
                        w.Key("label");
                        str(w, s.label_es);
                        w.Key("role");
                        str(w, to_string(s.role));
                    }
                }
                w.Key("at");
                w.Int64(static_cast<std::int64_t>(hlc_ms(key.hlc)));
                w.Key("by");
                auto a = authors.find(key.op_id());
                str(w, a == authors.end() ? std::string() : names->label(a->second));
                w.EndObject();
            }
        }
        w.EndArray();
        w.Key("template");
        w.StartArray();
        for (const auto& s : steps_for(modality)) {
            w.StartObject();
            w.Key("code");
            str(w, s.code);
            w.Key("role");
            str(w, to_string(s.role));
            w.Key("role_label");
            str(w, label_es(s.role));
            w.Key("label");
            str(w, s.label_es);
            w.EndObject();
        }
        w.EndArray();
        w.Key("ots");
        w.StartArray();
        for (const Id& ot : ots_of_case(r, c)) {
            w.StartObject();
            w.Key("id");
            str(w, ot.hex());
            w.Key("kind");
            str(w, text_of(r, CF::work_order, ot, "kind"));
            w.Key("status");
            str(w, text_of(r, CF::work_order, ot, "status"));
            w.Key("technician");
            if (auto t = id_of(r, CF::work_order, ot, "technician")) {
                str(w, names->label(*t));
            } else {
                w.Null();
            }
            w.EndObject();
        }
        w.EndArray();
        w.Key("closing_blockers");
        w.StartArray();
        if (text_of(r, CF::case_file, c, "status") == "in_progress") {
            for (const auto& why : closing_blockers(r, c, reconcile_options())) {
                str(w, why);
            }
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

std::string Cases::edit_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto* fields = j.object("fields", true);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const std::string s = b.status_of(CF::case_file, c);
        if (is_final(case_lifecycle(), s)) {
            throw Error(ErrorCode::invalid_transition, "the case is '" + s + "': it is final");
        }
        for (auto it = fields->MemberBegin(); it != fields->MemberEnd(); ++it) {
            set_case_field(b, c, std::string(it->name.GetString(), it->name.GetStringLength()),
                           it->value);
        }
    });
    return case_detail(c);
}

std::string Cases::record_step(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string code = j.req_text("step", 16);
    const auto* fields = j.object("fields");
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const int modality = modality_of(b.r, c);
        const Step* step = nullptr;
        for (const auto& s : steps_for(modality)) {
            if (s.code == code) {
                step = &s;
            }
        }
        if (!step) {
            throw Error(ErrorCode::invalid_value,
                        "modality " + std::to_string(modality) + " has no step '" + code + "'",
                        "step");
        }
        if (step->role == Role::technician) {
            throw Error(ErrorCode::invalid_value,
                        "the technician's step is recorded by the OT on the handheld", "step");
        }
        if (actor.role != step->role && actor.role != Role::supervisor) {
            throw Error(ErrorCode::permission_denied,
                        "step " + code + " is done by " + std::string(label_es(step->role)));
        }
        const std::string s = b.status_of(CF::case_file, c);
        if (is_final(case_lifecycle(), s) || s == "opened") {
            throw Error(ErrorCode::invalid_transition,
                        "the case is '" + s + "': step " + code + " does not apply now");
        }
        if (fields) {
            for (auto it = fields->MemberBegin(); it != fields->MemberEnd(); ++it) {
                set_case_field(b, c, std::string(it->name.GetString(), it->name.GetStringLength()),
                               it->value);
            }
        }
        b.step(c, step->code);
    });
    return case_detail(c);
}

std::string Cases::route_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string to = j.req_text("to", 200);
    j.done();
    std::optional<User> target;
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const int modality = modality_of(b.r, c);
        const Role router = modality <= 2 ? Role::commercial_head : Role::platform_officer;
        const Role handler = modality <= 2 ? Role::sales_executive : Role::commercial_advisor;
        if (actor.role != router && actor.role != Role::supervisor) {
            throw Error(ErrorCode::permission_denied, "a modality " + std::to_string(modality) +
                                                          " case is routed by " +
                                                          std::string(label_es(router)));
        }
        require_status(b, c, {"opened", "routed"}, "route it");
        target = find_user(*m_sync.directory().current(), to, handler, "to");
        if (b.status_of(CF::case_file, c) == "opened") {
            b.status(CF::case_file, c, "routed");
        }
        b.set(CF::case_file, c, "routed_to", target->id);
        if (auto code = step_code(modality, 4)) {
            b.step(c, *code);
        }
    });
    return case_detail(c);
}

std::string Cases::contact(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the contact");
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        b.set(CF::case_file, c, "contacted_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 5));
        }
    });
    return case_detail(c);
}

std::string Cases::feasibility(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const bool feasible = *j.boolean("feasible", true);
    const auto note = j.text("note", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the technical feasibility");
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        b.set(CF::case_file, c, "feasible", feasible);
        if (note) {
            b.set(CF::case_file, c, "feasibility_note", text(*note));
        }
        const int modality = modality_of(b.r, c);
        b.step(c, *step_code(modality, modality == 4 ? 10 : 6));
    });
    return case_detail(c);
}

std::string Cases::requirements(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto met = j.texts("met", 32, 64);
    const auto unmet = j.texts("unmet", 32, 64);
    j.done();
    if (met.empty() && unmet.empty()) {
        throw Error(ErrorCode::missing_field, "name requirements in 'met' or 'unmet'", "met");
    }
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review", "approved"}, "check requirements");
        const auto list = requirements_for(person_of(b.r, c), modality_of(b.r, c));
        auto known = [&](const std::string& code, const char* member) {
            for (const auto& req : list) {
                if (req.code == code) {
                    return;
                }
            }
            std::string all;
            for (const auto& req : list) {
                all += (all.empty() ? "" : ", ") + std::string(req.code);
            }
            throw Error(ErrorCode::invalid_value,
                        "'" + code + "' is not a requirement of this case (" + all + ")", member);
        };
        const bool was_complete = missing_requirements(b.r, c).empty();
        std::set<std::string> add(met.begin(), met.end()), del(unmet.begin(), unmet.end());
        for (const auto& code : add) {
            known(code, "met");
            if (del.contains(code)) {
                throw Error(ErrorCode::invalid_value, "'" + code + "' is both met and unmet",
                            "met");
            }
            const auto* current = b.r.set(CF::case_file, c, "requirements");
            if (!current || !set_contains(*current, text(code))) {
                b.add(CF::case_file, c, "requirements", text(code));
            }
        }
        for (const auto& code : del) {
            known(code, "unmet");
            b.remove(CF::case_file, c, "requirements", text(code));
        }
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        if (!was_complete && missing_requirements(b.r, c, add, del).empty()) {
            const int modality = modality_of(b.r, c);
            b.step(c, *step_code(modality, modality == 3 ? 5 : modality == 4 ? 9 : 7));
        }
    });
    return case_detail(c);
}

std::string Cases::override_requirements(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"opened", "routed", "in_review", "approved"},
                       "override its requirements");
        b.set(CF::case_file, c, "requirements_override", text(reason));
    });
    return case_detail(c);
}

std::string Cases::approve(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"in_review"}, "approve it");
        if (!is_true(b.r, CF::case_file, c, "feasible")) {
            throw Error(ErrorCode::invalid_transition,
                        "record a positive technical feasibility before approving");
        }
        b.status(CF::case_file, c, "approved");
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 8)); // the pre-sale is entered
        }
    });
    return case_detail(c);
}

std::string Cases::reject(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "reject it");
        b.status(CF::case_file, c, "rejected");
        b.set(CF::case_file, c, "rejection_reason", text(reason));
        // "Indica al cliente que no es posible realizar el traslado": told now.
        b.set(CF::case_file, c, "rejection_told_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 9));
        }
    });
    return case_detail(c);
}

std::string Cases::cancel_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        b.status(CF::case_file, c, "cancelled");
        b.set(CF::case_file, c, "cancel_reason", text(reason));
        for (const Id& ot : ots_of_case(b.r, c)) {
            if (!is_final(work_order_lifecycle(), b.status_of(CF::work_order, ot))) {
                b.status(CF::work_order, ot, "cancelled");
                b.event(CF::work_order, ot, "notes", text("Anulada con el caso: " + reason));
            }
        }
    });
    return case_detail(c);
}

std::string Cases::issue_ots(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto technician = j.text("technician", 200);
    const auto window_start = j.integer("window_start", 0, INT64_MAX / 2);
    const auto window_end = j.integer("window_end", 0, INT64_MAX / 2);
    const auto zone = j.text("zone", 64);
    j.done();
    if (window_start && window_end && *window_end <= *window_start) {
        throw Error(ErrorCode::invalid_value, "window_end must be after window_start",
                    "window_end");
    }
    std::optional<User> tech;
    if (technician) {
        tech =
            find_user(*m_sync.directory().current(), *technician, Role::technician, "technician");
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    // The contract's equipment is read from the store before the service lock.
    std::string contract;
    m_sync.read_state(
        [&](const crdt::Replica& r) { contract = text_of(r, CF::case_file, c, "contract"); });
    const auto inventory = m_store.inventory_of(contract);
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"approved"}, "issue its OTs");
        if (text_of(b.r, CF::case_file, c, "contract") != contract) {
            throw Error(ErrorCode::conflict, "the case's contract changed meanwhile: try again");
        }
        if (!ots_of_case(b.r, c).empty()) {
            throw Error(ErrorCode::conflict, "this case's OTs were already issued");
        }
        const auto missing = missing_requirements(b.r, c);
        if (!missing.empty() && text_of(b.r, CF::case_file, c, "requirements_override").empty()) {
            std::string list;
            for (const auto& m : missing) {
                list += (list.empty() ? "" : ", ") + m;
            }
            throw Error(ErrorCode::requirements_incomplete,
                        "requirements (Anexo 2) not met: " + list +
                            "; check them, or a supervisor records an override");
        }
        const int modality = modality_of(b.r, c);
        for (const auto kind : work_orders_for(modality)) {
            // Which OT carries the contract's equipment (docs/architecture.md §3).
            const bool carries = ot_equipment(modality, kind).carries;
            if (carries && inventory.empty()) {
                throw Error(ErrorCode::not_found,
                            "contract " + contract +
                                " has no equipment in the inventory; import it first");
            }
            const Id ot = Id::random();
            const auto W = CF::work_order;
            b.set(W, ot, "case", c);
            b.set(W, ot, "kind", text(std::string(kind)));
            const bool at_old = kind == "withdraw_boot";
            b.set(W, ot, "address",
                  text(text_of(b.r, CF::case_file, c, at_old ? "old_address" : "new_address")));
            if (zone) {
                b.set(W, ot, "zone", text(*zone));
            }
            b.set(W, ot, "issued_at", Timestamp{now});
            if (window_start) {
                b.set(W, ot, "window_start", Timestamp{*window_start});
            }
            if (window_end) {
                b.set(W, ot, "window_end", Timestamp{*window_end});
            }
            b.status(W, ot, "issued");
            if (carries) {
                for (const auto& item : inventory) {
                    const Id eq = Id::natural("equipment", item.serial);
                    const auto E = CF::equipment;
                    if (!b.r.entity(E, eq)) {
                        b.set(E, eq, "serial", text(item.serial));
                        b.set(E, eq, "kind", text(item.kind));
                        if (!item.model.empty()) {
                            b.set(E, eq, "model", text(item.model));
                        }
                        b.set(E, eq, "contract", text(item.contract));
                        if (!item.description.empty()) {
                            b.set(E, eq, "description", text(item.description));
                        }
                        b.event(E, eq, "custody", text("customer"));
                    }
                    b.add(W, ot, "expected_equipment", text(item.serial));
                }
            }
            if (tech) {
                b.set(W, ot, "technician", tech->id);
                b.status(W, ot, "assigned");
            }
        }
        b.status(CF::case_file, c, "in_progress");
        const int issue_step = modality == 1 ? 12 : modality == 2 ? 11 : modality == 3 ? 10 : 14;
        b.step(c, *step_code(modality, issue_step));
    });
    return case_detail(c);
}

std::string Cases::case_reconciliation(const Id& c) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        w.StartObject();
        w.Key("case");
        str(w, c.hex());
        w.Key("ots");
        w.StartArray();
        for (const auto& rec : reconcile_case(r, c, reconcile_options())) {
            write_reconciliation(w, rec, *names);
        }
        w.EndArray();
        w.Key("closing_blockers");
        w.StartArray();
        for (const auto& why : closing_blockers(r, c, reconcile_options())) {
            str(w, why);
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

} // namespace otsync::server
