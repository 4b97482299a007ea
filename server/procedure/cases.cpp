// Cases: opening, routing, the review and its Anexo 2 checklist, approval, OTs issued; see
// cases.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

// ---- cases --------------------------------------------------------------------------------------

void check_settable_case_field(const std::string& name) {
    const FieldDef* f = find_field(CF::case_file, name);
    if (!f || f->kind != FieldKind::register_ || f->lifecycle || name == "modality" ||
        name == "requirements_override" || name == "opened_at" || name == "routed_to" ||
        name == "rejection_told_at" || name == "fee") {
        const std::string at = "fields." + name;
        throw Error(ErrorCode::unknown_field,
                    at + " cannot be set here (use the action that changes it)", at);
    }
}

namespace {

/// Sets case fields by hand (PATCH, a step's fields): each one settable here and within the
/// registry's limits, the error naming "fields.NAME".
void set_case_fields(Batch& b, const Id& c, const CaseFieldValues& fields) {
    for (const auto& [name, value] : fields) {
        check_settable_case_field(name);
        const std::string at = "fields." + name;
        Op probe;
        probe.id = {0, 1};
        probe.entity_type = CF::case_file;
        probe.field = field_def(CF::case_file, name).id;
        probe.kind = OpKind::set;
        probe.value = value;
        if (auto err = check_op_schema(probe)) {
            throw Error(err->code(), at + ": " + err->message(), at);
        }
        b.set(CF::case_file, c, name, value);
    }
}

} // namespace

Id Cases::open_case(const User& actor, const OpenCaseCmd& cmd) {
    const int modality = cmd.modality;
    const auto steps = steps_for(modality);
    if (steps.empty()) {
        throw Error(ErrorCode::out_of_range, "modality must be between 1 and 4", "modality");
    }
    if (cmd.person_type != "natural" && cmd.person_type != "legal") {
        throw Error(ErrorCode::invalid_value, "person_type is 'natural' or 'legal'", "person_type");
    }
    if (cmd.products.empty()) {
        throw Error(ErrorCode::missing_field, "products must name at least one product",
                    "products");
    }
    std::map<std::string, std::string> optional;
    const auto put = [&](const char* name, const std::optional<std::string>& v) {
        if (v) {
            optional[name] = *v;
        }
    };
    put("old_geo_location", cmd.old_geo_location);
    put("old_neighborhood", cmd.old_neighborhood);
    put("old_reference", cmd.old_reference);
    put("new_geo_location", cmd.new_geo_location);
    put("new_neighborhood", cmd.new_neighborhood);
    put("new_reference", cmd.new_reference);
    put("observations", cmd.observations);
    put("unit", cmd.unit);
    const auto first = steps.front();
    if (actor.role != first.role && actor.role != Role::supervisor) {
        throw Error(ErrorCode::permission_denied, "a modality " + std::to_string(modality) +
                                                      " case is opened by " +
                                                      std::string(label_es(first.role)));
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const Money fee = fee_at(m_store, cmd.products, now);
    const Id c = Id::random();
    run(m_sync, actor, [&](Batch& b) {
        b.status(CF::case_file, c, "opened");
        b.set(CF::case_file, c, "modality", std::int64_t{modality});
        b.set(CF::case_file, c, "contract", text(cmd.contract));
        b.set(CF::case_file, c, "customer_name", text(cmd.customer_name));
        b.set(CF::case_file, c, "person_type", text(cmd.person_type));
        b.set(CF::case_file, c, "tax_id", text(cmd.tax_id));
        b.set(CF::case_file, c, "reference_cell", text(cmd.reference_cell));
        b.set(CF::case_file, c, "contact_hours", text(cmd.contact_hours));
        b.set(CF::case_file, c, "old_address", text(cmd.old_address));
        b.set(CF::case_file, c, "new_address", text(cmd.new_address));
        b.set(CF::case_file, c, "opened_at", Timestamp{now});
        std::set<std::string> seen;
        for (const auto& p : cmd.products) {
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
    return c;
}

CaseList Cases::list_cases(const CaseFilter& filter) {
    CaseList out;
    // Closed cases out of memory match too (the store filters them); those a page brought
    // back into memory are counted there, once.
    ArchivedCaseQuery aq{filter.status,
                         filter.modality ? std::optional<std::int64_t>(*filter.modality)
                                         : std::nullopt,
                         filter.contract, filter.limit};
    const auto read_back = m_sync.read_back_cases();
    aq.limit += read_back.size();
    const auto archived = m_store.archived_case_page(aq);
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& c : r.entities(CF::case_file)) {
            if (modality_of(r, c) == 0) {
                continue;
            }
            if (!filter.status.empty() && text_of(r, CF::case_file, c, "status") != filter.status) {
                continue;
            }
            if (filter.modality && modality_of(r, c) != *filter.modality) {
                continue;
            }
            if (!filter.contract.empty() &&
                text_of(r, CF::case_file, c, "contract") != filter.contract) {
                continue;
            }
            found.emplace_back(time_of(r, CF::case_file, c, "opened_at").value_or(0), c);
        }
        std::size_t twice = 0; // matches in memory and in the archive both
        std::map<Id, const ArchivedCase*> from_archive;
        for (const auto& a : archived.cases) {
            if (!r.entity(CF::case_file, a.case_id)) {
                from_archive.emplace(a.case_id, &a);
                found.emplace_back(a.opened_at, a.case_id);
            }
        }
        for (const auto& [opened, c] : found) {
            twice += read_back.contains(c) && !from_archive.contains(c) ? 1 : 0;
        }
        // Every match once: in memory, plus the archive's, less those in both.
        out.total = keep_newest(found, filter.limit) - from_archive.size() + archived.total - twice;
        out.cases.reserve(found.size());
        for (const auto& [opened, c] : found) {
            if (const auto a = from_archive.find(c); a != from_archive.end()) {
                CaseSummary s;
                s.id = c;
                s.modality = static_cast<int>(a->second->modality);
                s.contract = a->second->contract;
                s.status = a->second->status;
                s.opened_at = opened;
                if (const auto f = case_figure_from_json(a->second->figure)) {
                    s.customer_name = f->customer_name;
                    s.unit = f->unit;
                }
                s.archived = true;
                out.cases.push_back(std::move(s));
                continue;
            }
            CaseSummary s;
            s.id = c;
            s.modality = modality_of(r, c);
            s.contract = text_of(r, CF::case_file, c, "contract");
            s.customer_name = text_of(r, CF::case_file, c, "customer_name");
            s.status = text_of(r, CF::case_file, c, "status");
            s.opened_at = opened;
            s.unit = text_of(r, CF::case_file, c, "unit");
            const auto* log = r.log(CF::case_file, c, "steps");
            if (log && !log->events.empty() &&
                std::holds_alternative<std::string>(log->events.rbegin()->second)) {
                s.last_step = std::get<std::string>(log->events.rbegin()->second);
            }
            s.requirements_missing = missing_requirements(r, c).size();
            out.cases.push_back(std::move(s));
        }
    });
    return out;
}

CaseDetail Cases::case_detail(const Id& c) {
    m_sync.bring_back(c); // an archived case opened again
    // Who did each step comes from the op log (the author of each op is kept for audit).
    std::map<OpId, Id> authors;
    for (const auto& so : m_store.ops_by_seq(m_store.op_seqs_of_entity(CF::case_file, c))) {
        if (so.op.field == field_def(CF::case_file, "steps").id) {
            authors[so.op.id] = so.op.author;
        }
    }
    const auto names = m_sync.directory().current(); // read before the service lock
    CaseDetail d;
    d.id = c;
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        const int modality = modality_of(r, c);
        d.modality = modality;
        d.status = text_of(r, CF::case_file, c, "status");
        if (const crdt::Entity* e = r.entity(CF::case_file, c)) {
            d.state = *e;
        }
        if (auto routed = id_of(r, CF::case_file, c, "routed_to")) {
            d.routed_to_name = names->label(*routed);
        }
        std::set<std::string> met;
        for (const auto& v : r.elements(CF::case_file, c, "requirements")) {
            if (const auto* code = std::get_if<std::string>(&v)) {
                met.insert(*code);
            }
        }
        for (const auto& req : requirements_for(person_of(r, c), modality)) {
            d.requirements.push_back({req.code, req.label_es, met.contains(std::string(req.code))});
        }
        d.requirements_complete = missing_requirements(r, c).empty();
        if (const auto* log = r.log(CF::case_file, c, "steps")) {
            for (const auto& [key, v] : log->events) {
                CaseStep step;
                step.code = std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : "";
                for (const auto& s : steps_for(modality)) {
                    if (s.code == step.code) {
                        step.seed = &s;
                    }
                }
                step.at = static_cast<std::int64_t>(hlc_ms(key.hlc));
                if (auto a = authors.find(key.op_id()); a != authors.end()) {
                    step.by = names->label(a->second);
                }
                d.steps.push_back(std::move(step));
            }
        }
        for (const Id& ot : ots_of_case(r, c)) {
            CaseOt o;
            o.id = ot;
            o.kind = text_of(r, CF::work_order, ot, "kind");
            o.status = text_of(r, CF::work_order, ot, "status");
            if (auto t = id_of(r, CF::work_order, ot, "technician")) {
                o.technician = names->label(*t);
            }
            d.ots.push_back(std::move(o));
        }
        if (d.status == "in_progress") {
            d.closing_blockers = closing_blockers(r, c, reconcile_options());
        }
    });
    return d;
}

void Cases::edit_case(const User& actor, const Id& c, const EditCaseCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const std::string s = b.status_of(CF::case_file, c);
        if (is_final(case_lifecycle(), s)) {
            throw Error(ErrorCode::invalid_transition, "the case is '" + s + "': it is final");
        }
        set_case_fields(b, c, cmd.fields);
    });
}

void Cases::record_step(const User& actor, const Id& c, const RecordStepCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    const std::string& code = cmd.step;
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
        set_case_fields(b, c, cmd.fields);
        b.step(c, step->code);
    });
}

void Cases::route_case(const User& actor, const Id& c, const RouteCaseCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
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
        target = find_user(*m_sync.directory().current(), cmd.to, handler, "to");
        if (b.status_of(CF::case_file, c) == "opened") {
            b.status(CF::case_file, c, "routed");
        }
        b.set(CF::case_file, c, "routed_to", target->id);
        if (auto code = step_code(modality, 4)) {
            b.step(c, *code);
        }
    });
}

void Cases::contact(const User& actor, const Id& c, const ContactCmd&) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the contact");
        enter_review(b, c);
        b.set(CF::case_file, c, "contacted_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 5));
        }
    });
}

void Cases::feasibility(const User& actor, const Id& c, const FeasibilityCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the technical feasibility");
        enter_review(b, c);
        b.set(CF::case_file, c, "feasible", cmd.feasible);
        if (cmd.note) {
            b.set(CF::case_file, c, "feasibility_note", text(*cmd.note));
        }
        const int modality = modality_of(b.r, c);
        b.step(c, *step_code(modality, modality == 4 ? 10 : 6));
    });
}

void Cases::requirements(const User& actor, const Id& c, const RequirementsCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    const auto& met = cmd.met;
    const auto& unmet = cmd.unmet;
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
        enter_review(b, c);
        if (!was_complete && missing_requirements(b.r, c, add, del).empty()) {
            const int modality = modality_of(b.r, c);
            b.step(c, *step_code(modality, modality == 3 ? 5 : modality == 4 ? 9 : 7));
        }
    });
}

void Cases::override_requirements(const User& actor, const Id& c,
                                  const OverrideRequirementsCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"opened", "routed", "in_review", "approved"},
                       "override its requirements");
        b.set(CF::case_file, c, "requirements_override", text(cmd.reason));
    });
}

void Cases::approve(const User& actor, const Id& c, const ApproveCmd&) {
    m_sync.bring_back(c); // an archived case opened again
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
}

void Cases::reject(const User& actor, const Id& c, const RejectCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "reject it");
        b.status(CF::case_file, c, "rejected");
        b.set(CF::case_file, c, "rejection_reason", text(cmd.reason));
        // "Indica al cliente que no es posible realizar el traslado": told now.
        b.set(CF::case_file, c, "rejection_told_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 9));
        }
    });
}

void Cases::cancel_case(const User& actor, const Id& c, const CancelCaseCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        b.status(CF::case_file, c, "cancelled");
        b.set(CF::case_file, c, "cancel_reason", text(cmd.reason));
        for (const Id& ot : ots_of_case(b.r, c)) {
            if (!is_final(work_order_lifecycle(), b.status_of(CF::work_order, ot))) {
                b.status(CF::work_order, ot, "cancelled");
                b.event(CF::work_order, ot, "notes", text("Anulada con el caso: " + cmd.reason));
            }
        }
    });
}

void Cases::issue_ots(const User& actor, const Id& c, const IssueOtsCmd& cmd) {
    m_sync.bring_back(c); // an archived case opened again
    const auto& window_start = cmd.window_start;
    const auto& window_end = cmd.window_end;
    const auto& zone = cmd.zone;
    if (window_start && window_end && *window_end <= *window_start) {
        throw Error(ErrorCode::invalid_value, "window_end must be after window_start",
                    "window_end");
    }
    std::optional<User> tech;
    if (cmd.technician) {
        tech = find_user(*m_sync.directory().current(), *cmd.technician, Role::technician,
                         "technician");
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
}

CaseReconciliation Cases::case_reconciliation(const Id& c) {
    m_sync.bring_back(c); // an archived case opened again
    CaseReconciliation out;
    out.id = c;
    out.names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        out.ots = reconcile_case(r, c, reconcile_options());
        out.closing_blockers = closing_blockers(r, c, reconcile_options());
    });
    return out;
}

} // namespace otsync::server
