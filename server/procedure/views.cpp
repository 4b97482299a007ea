// Reconciliation, closing and indicators as pure functions of the state; see views.hpp.
#include "procedure/views.hpp"

#include "otsync/error.hpp"
#include "otsync/model.hpp"
#include "otsync/view.hpp"

#include <cereal/archives/json.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>

#include <sstream>

#include <algorithm>
#include <map>

namespace otsync::server {

namespace {

using CI = EntityType;

std::vector<std::string> texts(const crdt::Replica& r, EntityType t, const Id& id,
                               std::string_view field) {
    std::vector<std::string> out;
    for (const auto& v : r.elements(t, id, field)) {
        if (const auto* s = std::get_if<std::string>(&v)) {
            out.push_back(*s);
        }
    }
    return out;
}

/// The case's modality (1–4), 0 when it has none.
int modality_of(const crdt::Replica& r, const Id& case_id) {
    const Value* m = r.get(CI::case_file, case_id, "modality");
    return m && std::holds_alternative<std::int64_t>(*m)
               ? static_cast<int>(std::get<std::int64_t>(*m))
               : 0;
}

bool lifecycle_failed_ever(const crdt::Replica& r, const Id& ot) {
    if (const auto* reg = r.reg(CI::work_order, ot, "status")) {
        for (const auto& w : reg->history) {
            if (w.state == "failed") {
                return true;
            }
        }
    }
    return false;
}

} // namespace

std::optional<Id> collector_of(const crdt::Replica& r, const Id& item) {
    if (auto by = id_of(r, CI::collected_item, item, "collected_by")) {
        return by;
    }
    const auto ot = id_of(r, CI::collected_item, item, "work_order");
    return ot ? id_of(r, CI::work_order, *ot, "technician") : std::nullopt;
}

std::optional<std::int64_t> first_status_at(const crdt::Replica& r, EntityType t, const Id& id,
                                            std::string_view state) {
    if (const auto* reg = r.reg(t, id, "status")) {
        for (const auto& w : reg->history) { // sorted by op order
            if (w.state == state) {
                return static_cast<std::int64_t>(hlc_ms(w.key.hlc));
            }
        }
    }
    return std::nullopt;
}

std::vector<Id> ots_of_case(const crdt::Replica& r, const Id& case_id) {
    std::vector<std::pair<std::int64_t, Id>> found;
    for (const Id& ot : r.referrers(CI::work_order, "case", case_id)) {
        found.emplace_back(time_of(r, CI::work_order, ot, "issued_at").value_or(0), ot);
    }
    std::sort(found.begin(), found.end());
    std::vector<Id> out;
    for (auto& [t, id] : found) {
        out.push_back(id);
    }
    return out;
}

RowRecord row_record(const crdt::Replica& r, const Id& item) {
    const auto T = EntityType::collected_item;
    RowRecord out;
    out.reason = text_of(r, T, item, "reason");
    out.defect = text_of(r, T, item, "defect");
    out.observations = text_of(r, T, item, "observations");
    out.description = text_of(r, T, item, "description");
    out.collected_at = time_of(r, T, item, "collected_at").value_or(0);
    out.receipt = text_of(r, T, item, "receipt");
    out.receipt_note = text_of(r, T, item, "receipt_note");
    return out;
}

OtReconciliation reconcile_ot(const crdt::Replica& r, const Id& ot, const ReconcileOptions& o) {
    OtReconciliation rec;
    rec.ot = ot;
    rec.case_id = id_of(r, CI::work_order, ot, "case").value_or(Id{});
    rec.kind = text_of(r, CI::work_order, ot, "kind");
    rec.status = text_of(r, CI::work_order, ot, "status");
    rec.mode = ot_equipment(modality_of(r, rec.case_id), rec.kind).mode;
    const auto expected = texts(r, CI::work_order, ot, "expected_equipment");
    const auto verified = texts(r, CI::work_order, ot, "verified_equipment");
    const auto reasons = missing_reasons(r, ot);
    const bool completed = rec.status == "completed";

    // Every live (not voided) collected item by serial, across OTs: this OT's rows, and
    // where else each serial was collected.
    std::map<std::string, Id> mine;
    std::map<std::string, std::vector<Id>> elsewhere;
    auto consider = [&](const Id& item, bool only_elsewhere) {
        if (is_true(r, CI::collected_item, item, "voided")) {
            return;
        }
        const auto w = id_of(r, CI::collected_item, item, "work_order");
        const std::string serial = text_of(r, CI::collected_item, item, "serial");
        if (!w || serial.empty()) {
            return;
        }
        if (*w == ot) {
            if (!only_elsewhere) {
                mine[serial] = item;
            }
        } else {
            elsewhere[serial].push_back(*w);
        }
    };
    // This OT's rows, then every other row with one of their serials.
    for (const Id& item : r.referrers(CI::collected_item, "work_order", ot)) {
        consider(item, false);
    }
    for (const auto& [serial, item] : std::map<std::string, Id>(mine)) {
        for (const Id& other : r.referrers(CI::collected_item, "serial", Value{serial})) {
            if (other != item) {
                consider(other, true);
            }
        }
    }

    auto fill_item = [&](SerialLine& line, const Id& item) {
        const auto T = CI::collected_item;
        line.item = item;
        static_cast<RowRecord&>(line) = row_record(r, item);
        line.resolution = text_of(r, T, item, "resolution");
        line.handover = id_of(r, T, item, "handover");
        line.collected_by = collector_of(r, item);
        const bool arrived = line.receipt == "received" || line.receipt == "damaged_on_arrival";
        line.settled = arrived || !line.resolution.empty();
        line.overdue = !arrived && line.resolution.empty() && line.collected_at > 0 &&
                       o.now_ms - line.collected_at > o.custody_limit_ms;
    };

    std::set<std::string> done;
    for (const auto& serial : expected) {
        SerialLine line;
        line.serial = serial;
        line.expected = true;
        if (rec.mode == OtMode::verify) {
            if (std::find(verified.begin(), verified.end(), serial) != verified.end()) {
                line.status = "matched";
                line.settled = true;
            }
        } else if (auto it = mine.find(serial); it != mine.end()) {
            fill_item(line, it->second);
            line.status = line.reason == "damaged" ? "damaged" : "matched";
        }
        if (line.status.empty()) {
            if (auto it = reasons.find(serial); it != reasons.end()) {
                line.missing_reason = it->second;
            }
            if (completed || !line.missing_reason.empty()) {
                line.status = "missing";
                line.settled = !line.missing_reason.empty();
            } else {
                line.status = "pending";
                // A cancelled OT leaves nothing to settle; an open one settles on completion.
                line.settled = rec.status == "cancelled";
            }
        }
        done.insert(serial);
        rec.lines.push_back(std::move(line));
    }
    for (const auto& [serial, item] : mine) {
        if (done.contains(serial)) {
            continue;
        }
        SerialLine line;
        line.serial = serial;
        fill_item(line, item);
        line.status = line.reason == "damaged" ? "damaged" : "unexpected";
        rec.lines.push_back(std::move(line));
    }
    if (rec.mode == OtMode::verify) {
        for (const auto& serial : verified) {
            if (!done.contains(serial)) {
                SerialLine line;
                line.serial = serial;
                line.status = "unexpected";
                line.settled = true; // the customer keeps it: nothing to receive
                rec.lines.push_back(std::move(line));
            }
        }
    }
    for (auto& line : rec.lines) {
        if (auto it = elsewhere.find(line.serial); it != elsewhere.end() && line.item) {
            line.collected_twice = true;
            line.also_on = it->second;
        }
    }
    // The signed hash against the rows held here (`mine`: this OT's rows not void, by serial).
    if (const Value* h = r.get(CI::work_order, ot, "signed_rows_hash");
        h && std::holds_alternative<Bytes>(*h)) {
        std::vector<std::pair<Id, std::string>> rows;
        for (const auto& [serial, item] : mine) {
            rows.emplace_back(item, serial);
        }
        const Hash256 held = rows_hash(rows);
        rec.signature_mismatch =
            std::get<Bytes>(*h).data != std::vector<std::uint8_t>(held.begin(), held.end());
    }
    return rec;
}

std::vector<OtReconciliation> reconcile_case(const crdt::Replica& r, const Id& case_id,
                                             const ReconcileOptions& o) {
    std::vector<OtReconciliation> out;
    for (const Id& ot : ots_of_case(r, case_id)) {
        out.push_back(reconcile_ot(r, ot, o));
    }
    return out;
}

std::vector<std::string> closing_blockers(const crdt::Replica& r, const Id& case_id,
                                          const ReconcileOptions& o) {
    std::vector<std::string> why;
    const std::string status = text_of(r, CI::case_file, case_id, "status");
    if (status != "in_progress") {
        why.push_back("the case is '" + status + "', not in progress");
        return why;
    }
    const auto recs = reconcile_case(r, case_id, o);
    if (recs.empty()) {
        why.push_back("no OT has been issued");
    }
    for (const auto& rec : recs) {
        if (!is_final(work_order_lifecycle(), rec.status)) {
            why.push_back("OT " + rec.kind + " is '" + rec.status + "'");
        }
        if (rec.signature_mismatch) {
            why.push_back("OT " + rec.kind + ": the customer's signature does not match its rows");
        }
        for (const auto& line : rec.lines) {
            if (line.settled) {
                continue;
            }
            if (line.status == "missing") {
                why.push_back(line.serial + " is missing and has no reason");
            } else if (line.status != "pending") {
                why.push_back(line.serial + (line.receipt == "missing"
                                                 ? " did not arrive at the warehouse"
                                                 : " has not been received by the warehouse"));
            }
        }
    }
    return why;
}

// ---- indicators -------------------------------------------------------------------------

CaseFigure case_figure(const crdt::Replica& r, const Id& c, const ReconcileOptions& o,
                       bool in_conflict) {
    CaseFigure f;
    f.id = c;
    f.unit = text_of(r, CI::case_file, c, "unit");
    f.contract = text_of(r, CI::case_file, c, "contract");
    f.customer_name = text_of(r, CI::case_file, c, "customer_name");
    f.status = text_of(r, CI::case_file, c, "status");
    f.modality = modality_of(r, c);
    f.opened_at = time_of(r, CI::case_file, c, "opened_at").value_or(0);

    // The first final action: the rejection told to the customer, or a field OT done.
    std::optional<std::int64_t> first;
    const auto told = time_of(r, CI::case_file, c, "rejection_told_at");
    if (f.status == "rejected" && told) {
        first = told;
    }
    for (const Id& ot : ots_of_case(r, c)) {
        if (lifecycle_failed_ever(r, ot)) {
            f.failed_visit = true;
        }
        if (text_of(r, CI::work_order, ot, "status") != "completed") {
            continue;
        }
        auto done = time_of(r, CI::work_order, ot, "completed_at");
        if (!done) {
            done = first_status_at(r, CI::work_order, ot, "completed");
        }
        if (done && (!first || *done < *first)) {
            first = done;
        }
    }
    f.first_final_action = first;
    for (const auto& rec : reconcile_case(r, c, o)) {
        f.open_discrepancy = f.open_discrepancy || rec.signature_mismatch;
        for (const auto& line : rec.lines) {
            if (!line.settled && line.status != "pending") {
                f.open_discrepancy = true;
            }
        }
    }
    if (in_conflict) {
        f.open_discrepancy = true;
    }
    const bool final_state = f.status == "closed" || (f.status == "rejected" && told);
    f.effective = final_state && !f.failed_visit && !f.open_discrepancy;
    f.final_state = final_state;
    if (!final_state) {
        f.not_effective = f.status == "cancelled"  ? "cancelled"
                          : f.status == "rejected" ? "not_told"
                                                   : "not_finished";
        f.why_not_effective = f.status == "cancelled"  ? "cancelled"
                              : f.status == "rejected" ? "rejected, the customer was not told"
                                                       : "not finished (" + f.status + ")";
    } else if (f.failed_visit) {
        f.not_effective = "failed_visit";
        f.why_not_effective = "a visit failed";
    } else if (f.open_discrepancy) {
        f.not_effective = "open_discrepancy";
        f.why_not_effective = "an unresolved discrepancy";
    }
    f.timely = first && *first - f.opened_at < k_timely_ms;
    if (!f.timely) {
        f.not_timely = first ? "late" : "not_attended";
        f.why_not_timely = first ? "attended after 24 h" : "not attended yet";
    }
    return f;
}

Indicators compute_indicators(const crdt::Replica& r, const IndicatorQuery& q,
                              const std::vector<CaseFigure>& archived) {
    Indicators ind;
    ind.query = q;
    std::map<std::string, DayFigure> days;
    const auto count = [&](CaseFigure f) {
        if (!f.final_state && f.status != "cancelled") {
            ind.pending++;
        }
        ind.total++;
        ind.effective += f.effective ? 1 : 0;
        ind.timely += f.timely ? 1 : 0;
        auto& day = days[format_local_date(f.opened_at, q.tz_offset_minutes)];
        day.total++;
        day.effective += f.effective ? 1 : 0;
        day.timely += f.timely ? 1 : 0;
        ind.cases.push_back(std::move(f));
    };
    std::set<Id> in_conflict; // cases with a lifecycle conflict of their own, found once
    for (const auto& conflict : r.conflicts()) {
        if (conflict.entity.type == CI::case_file) {
            in_conflict.insert(conflict.entity.id);
        } else if (conflict.entity.type == CI::work_order) {
            if (auto c = id_of(r, CI::work_order, conflict.entity.id, "case")) {
                in_conflict.insert(*c); // completed on the handheld, cancelled at the office
            }
        }
    }
    for (const Id& c : r.entities(CI::case_file)) {
        const auto opened = time_of(r, CI::case_file, c, "opened_at");
        if (!opened || *opened < q.from_ms || *opened >= q.to_ms) {
            continue;
        }
        if (!q.unit.empty() && text_of(r, CI::case_file, c, "unit") != q.unit) {
            continue;
        }
        count(case_figure(r, c, q.reconcile, in_conflict.contains(c)));
    }
    // Closed cases out of memory, as they were when archived; one in memory again counts
    // as it is now.
    for (const auto& f : archived) {
        if (f.opened_at < q.from_ms || f.opened_at >= q.to_ms ||
            (!q.unit.empty() && f.unit != q.unit) || r.entity(CI::case_file, f.id)) {
            continue;
        }
        count(f);
    }
    if (ind.total > 0) {
        ind.efficacy_pct = 100.0 * ind.effective / ind.total;
        ind.timeliness_pct = 100.0 * ind.timely / ind.total;
    }
    // The seed: "Mayor a 98 %: Aceptado", "Mayor a 95 %: Aceptado".
    ind.efficacy_pass = ind.total > 0 && ind.efficacy_pct > k_efficacy_target;
    ind.timeliness_pass = ind.total > 0 && ind.timeliness_pct > k_timeliness_target;
    std::sort(ind.cases.begin(), ind.cases.end(), [](const CaseFigure& a, const CaseFigure& b) {
        return std::tie(a.opened_at, a.id) < std::tie(b.opened_at, b.id);
    });
    for (auto& [date, day] : days) {
        day.date = date;
        ind.days.push_back(day);
    }
    return ind;
}

// ---- a figure kept with an archived case ----------------------------------------------------

namespace {

/// The figure's members, by name, for cereal's JSON archive: written and read alike.
template <class Archive>
void figure_members(Archive& a, CaseFigure& f, std::string& id) {
    a(cereal::make_nvp("id", id), cereal::make_nvp("contract", f.contract),
      cereal::make_nvp("customer_name", f.customer_name), cereal::make_nvp("unit", f.unit),
      cereal::make_nvp("status", f.status), cereal::make_nvp("modality", f.modality),
      cereal::make_nvp("opened_at", f.opened_at),
      cereal::make_nvp("first_final_action", f.first_final_action),
      cereal::make_nvp("effective", f.effective), cereal::make_nvp("timely", f.timely),
      cereal::make_nvp("failed_visit", f.failed_visit),
      cereal::make_nvp("open_discrepancy", f.open_discrepancy),
      cereal::make_nvp("final_state", f.final_state),
      cereal::make_nvp("why_not_effective", f.why_not_effective),
      cereal::make_nvp("why_not_timely", f.why_not_timely),
      cereal::make_nvp("not_effective", f.not_effective),
      cereal::make_nvp("not_timely", f.not_timely));
}

} // namespace

std::string case_figure_json(const CaseFigure& f) {
    std::ostringstream out;
    {
        cereal::JSONOutputArchive a(out, cereal::JSONOutputArchive::Options::NoIndent());
        CaseFigure copy = f;
        std::string id = f.id.hex();
        figure_members(a, copy, id);
    } // the archive closes the object when it goes
    return out.str();
}

std::optional<CaseFigure> case_figure_from_json(std::string_view json) {
    CaseFigure f;
    std::string id;
    try {
        std::istringstream in{std::string(json)};
        cereal::JSONInputArchive a(in);
        figure_members(a, f, id);
        f.id = Id::from_hex(id);
    } catch (const std::exception&) { // cereal's and Id's: not a figure
        return std::nullopt;
    }
    return f;
}

} // namespace otsync::server
