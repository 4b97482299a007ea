// The procedure's parts and its follow-up rules; see procedure.hpp.
#include "procedure/internal.hpp"
#include <algorithm>
#include <set>
#include <unordered_map>

namespace otsync::server {

using namespace detail;

Id system_author() {
    return Id{};
}

ReconcileOptions ProcedurePart::reconcile_options() const {
    return {static_cast<std::int64_t>(m_clock.now_ms()), m_config.custody_limit_ms};
}

Procedure::Procedure(Store& store, SyncService& sync, ClockSource& clock, ProcedureConfig config)
    : m_context{store, sync, clock, config}, m_cases(m_context), m_ots(m_context),
      m_handovers(m_context), m_office(m_context), m_store(store), m_sync(sync), m_clock(clock),
      m_config(m_context.config) {
    register_follow_ups();
    if (m_config.archive_after_days > 0) {
        const std::int64_t after_ms = std::int64_t{m_config.archive_after_days} * 24 * 3600 * 1000;
        m_sync.start_archiving(
            [this, after_ms](const crdt::Replica& r) {
                return archive_groups(r, static_cast<std::int64_t>(m_clock.now_ms()) - after_ms);
            },
            m_config.archive_every_ms);
    }
}

Procedure::~Procedure() {
    m_sync.stop_archiving();
    m_sync.set_follow_ups({});
}

std::vector<SyncService::ArchiveGroup> Procedure::archive_groups(const crdt::Replica& r,
                                                                 std::int64_t before_ms) const {
    std::vector<SyncService::ArchiveGroup> out;
    std::set<Id> in_conflict;
    for (const auto& conflict : r.conflicts()) {
        if (conflict.entity.type == CF::case_file) {
            in_conflict.insert(conflict.entity.id);
        } else if (const auto c = id_of(r, conflict.entity.type, conflict.entity.id, "case")) {
            in_conflict.insert(*c);
        }
    }
    // Which handover holds each row, read once per sweep.
    std::unordered_map<Id, Id> handover_of;
    for (const Id& h : r.entities(CF::handover)) {
        for (const auto& v : r.elements(CF::handover, h, "rows")) {
            if (const auto* row = std::get_if<Id>(&v)) {
                handover_of.emplace(*row, h);
            }
        }
    }
    const auto o = reconcile_options();
    for (const Id& c : r.entities(CF::case_file)) {
        const std::string status = text_of(r, CF::case_file, c, "status");
        if (status != "closed" && status != "rejected" && status != "cancelled") {
            continue;
        }
        const auto at = first_status_at(r, CF::case_file, c, status);
        if (!at || *at >= before_ms || in_conflict.contains(c)) {
            continue;
        }
        SyncService::ArchiveGroup g;
        g.entities.emplace_back(CF::case_file, c);
        std::set<Id> rows;
        for (const Id& ot : ots_of_case(r, c)) {
            g.entities.emplace_back(CF::work_order, ot);
            for (const Id& row : r.referrers(CF::collected_item, "work_order", ot)) {
                rows.insert(row);
                g.entities.emplace_back(CF::collected_item, row);
            }
        }
        std::set<Id> handovers;
        std::set<std::string> serials;
        for (const Id& row : rows) {
            if (const auto h = handover_of.find(row); h != handover_of.end()) {
                handovers.insert(h->second);
            }
            if (const auto serial = text_of(r, CF::collected_item, row, "serial");
                !serial.empty()) {
                serials.insert(serial);
            }
        }
        const auto all_ours = [&](const auto& ids) {
            return std::all_of(ids.begin(), ids.end(),
                               [&](const auto& v) { return rows.contains(v); });
        };
        for (const Id& h : handovers) {
            std::vector<Id> held;
            for (const auto& v : r.elements(CF::handover, h, "rows")) {
                if (const auto* row = std::get_if<Id>(&v)) {
                    held.push_back(*row);
                }
            }
            if (all_ours(held)) {
                g.entities.emplace_back(CF::handover, h);
            }
        }
        for (const auto& serial : serials) {
            const Id eq = Id::natural("equipment", serial);
            if (r.entity(CF::equipment, eq) &&
                all_ours(r.referrers(CF::collected_item, "serial", Value{serial}))) {
                g.entities.emplace_back(CF::equipment, eq);
            }
        }
        const CaseFigure figure = case_figure(r, c, o, false);
        g.archived = {c,
                      figure.opened_at,
                      case_figure_json(figure),
                      figure.contract,
                      figure.status,
                      figure.modality};
        out.push_back(std::move(g));
    }
    return out;
}

ReconcileOptions Procedure::reconcile_options() const {
    return {static_cast<std::int64_t>(m_clock.now_ms()), m_config.custody_limit_ms};
}

// ---- closing ------------------------------------------------------------------------------------

namespace {

/// Closes, in `b`, each case among `cases` in progress with nothing blocking its closing.
std::size_t close_in(Batch& b, const std::vector<Id>& cases, const ReconcileOptions& o) {
    std::size_t closed = 0;
    for (const Id& c : cases) {
        if (b.status_of(CF::case_file, c) == "in_progress" && closing_blockers(b.r, c, o).empty()) {
            b.status(CF::case_file, c, "closed");
            ++closed;
        }
    }
    return closed;
}

} // namespace

std::size_t Procedure::close_ready(const std::vector<Id>& cases) {
    if (cases.empty()) {
        return 0;
    }
    std::size_t closed = 0;
    run(m_sync, system_user(), [&](Batch& b) { closed = close_in(b, cases, reconcile_options()); });
    return closed;
}

namespace {

/// The cases an op can affect: its OT's case, its row's OT's case.
std::vector<Id> cases_touched_by(const crdt::Replica& r, const std::vector<Op>& ops) {
    std::set<Id> out;
    for (const Op& op : ops) {
        std::optional<Id> ot;
        if (op.entity_type == CF::work_order) {
            ot = op.entity;
        } else if (op.entity_type == CF::collected_item) {
            ot = id_of(r, CF::collected_item, op.entity, "work_order");
        }
        if (ot) {
            if (auto c = id_of(r, CF::work_order, *ot, "case")) {
                out.insert(*c);
            }
        }
    }
    return {out.begin(), out.end()};
}

/// Custody follows the field facts: equipment of the inventory recorded as collected moves
/// customer -> technician, as an event by the server.
std::vector<SyncService::FollowUp> custody_rule(const std::vector<Op>& cause) {
    const FieldId serial_field = field_def(CF::collected_item, "serial").id;
    std::vector<std::string> serials;
    for (const Op& op : cause) {
        if (op.entity_type == CF::collected_item && op.field == serial_field &&
            std::holds_alternative<std::string>(op.value)) {
            serials.push_back(normalize_serial(std::get<std::string>(op.value)));
        }
    }
    if (serials.empty()) {
        return {};
    }
    return {{system_user().id, Role::system, [serials](crdt::OpMaker& m, const crdt::Replica& r) {
                 Batch b(system_user(), m, r);
                 for (const auto& serial : serials) {
                     const Id eq = Id::natural("equipment", serial);
                     if (!r.entity(CF::equipment, eq)) {
                         continue; // not in the inventory: reconciliation shows it as unexpected
                     }
                     const auto* log = r.log(CF::equipment, eq, "custody");
                     const bool with_customer =
                         !log || log->events.empty() ||
                         (std::holds_alternative<std::string>(log->events.rbegin()->second) &&
                          std::get<std::string>(log->events.rbegin()->second) == "customer");
                     if (with_customer) {
                         b.event(CF::equipment, eq, "custody", text("technician"));
                     }
                 }
                 return std::move(b.ops);
             }}};
}

/// The technician's step of the seed (m1.14, m2.13, m3.11, m4.18), recorded on the case
/// when the last open OT of it completes; its author is the technician who completed it.
std::vector<SyncService::FollowUp> field_step_rule(const crdt::Replica& r,
                                                   const std::vector<Op>& cause) {
    const FieldId status_field = field_def(CF::work_order, "status").id;
    std::map<Id, std::vector<std::pair<Id, std::string>>> due; // technician -> (case, code)
    std::set<Id> seen;
    for (const Op& op : cause) {
        if (op.entity_type != CF::work_order || op.field != status_field ||
            !std::holds_alternative<std::string>(op.value) ||
            std::get<std::string>(op.value) != "completed") {
            continue;
        }
        const auto c = id_of(r, CF::work_order, op.entity, "case");
        const auto tech = id_of(r, CF::work_order, op.entity, "technician");
        if (!c || !tech || !seen.insert(*c).second) {
            continue;
        }
        bool all_final = true;
        for (const Id& other : r.referrers(CF::work_order, "case", *c)) {
            const std::string st = text_of(r, CF::work_order, other, "status");
            all_final = all_final && (st == "completed" || st == "cancelled");
        }
        if (!all_final) {
            continue; // the step is the whole visit: wait for every OT
        }
        for (const auto& step : steps_for(modality_of(r, *c))) {
            if (step.role != Role::technician) {
                continue;
            }
            bool done = false;
            if (const auto* log = r.log(CF::case_file, *c, "steps")) {
                for (const auto& [k, v] : log->events) {
                    done = done || (std::holds_alternative<std::string>(v) &&
                                    std::get<std::string>(v) == step.code);
                }
            }
            if (!done) {
                due[*tech].emplace_back(*c, std::string(step.code));
            }
        }
    }
    std::vector<SyncService::FollowUp> out;
    for (auto& [tech, steps] : due) {
        out.push_back({tech, Role::system,
                       [steps = std::move(steps)](crdt::OpMaker& m, const crdt::Replica&) {
                           std::vector<Op> ops;
                           for (const auto& [c, code] : steps) {
                               ops.push_back(m.event(CF::case_file, c, "steps", text(code)));
                           }
                           return ops;
                       }});
    }
    return out;
}

} // namespace

void Procedure::register_follow_ups() {
    // In this order: custody and the technician's step first, then closing, which reads them.
    m_sync.set_follow_ups({
        [](const crdt::Replica&, const std::vector<Op>& cause) { return custody_rule(cause); },
        [](const crdt::Replica& r, const std::vector<Op>& cause) {
            return field_step_rule(r, cause);
        },
        [this](const crdt::Replica& r,
               const std::vector<Op>& cause) -> std::vector<SyncService::FollowUp> {
            auto cases = cases_touched_by(r, cause);
            if (cases.empty()) {
                return {};
            }
            return {{system_user().id, Role::system,
                     [this, cases = std::move(cases)](crdt::OpMaker& m, const crdt::Replica& st) {
                         Batch b(system_user(), m, st);
                         close_in(b, cases, reconcile_options());
                         return std::move(b.ops);
                     }}};
        },
    });
}

std::size_t Procedure::close_all_ready() {
    std::vector<Id> cases;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const Id& c : r.entities(CF::case_file)) {
            if (text_of(r, CF::case_file, c, "status") == "in_progress") {
                cases.push_back(c);
            }
        }
    });
    return close_ready(cases);
}

} // namespace otsync::server
