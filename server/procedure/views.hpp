// Read-side views of the procedure, as pure functions of the merged state (a
// crdt::Replica): inventory reconciliation per OT and per case (docs/api.md §7.1), whether a
// case may close, and the indicators (docs/api.md §7.3). The server calls them on its live
// state; otsync-admin calls them on a state folded from the op log.
#pragma once

#include "procedure/dates.hpp" // parse_local_date, format_local_date: the report days

#include "otsync/crdt.hpp"
#include "otsync/model.hpp"
#include "otsync/view.hpp"

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace otsync::server {

/// What a collected row records: the technician's entry and the warehouse's receipt.
struct RowRecord {
    std::string reason, defect, observations, description;
    std::int64_t collected_at = 0;
    std::string receipt; // received | missing | damaged_on_arrival | "" (not yet)
    std::string receipt_note;
};

/// The record of the collected row `item` (its description as the technician wrote it).
RowRecord row_record(const crdt::Replica& r, const Id& item);

/// One serial on an OT; the RowRecord part is its collected row's, when there is one.
struct SerialLine : RowRecord {
    std::string serial;
    /// matched | unexpected | missing | damaged | pending (expected, OT not final yet)
    std::string status;
    bool expected = false;
    bool collected_twice = false; // also recorded on another OT
    std::vector<Id> also_on;      // those other OTs
    std::optional<Id> item;       // the collected item (collect OTs)
    std::string resolution;       // recorded by the office
    std::string missing_reason;   // recorded by the technician or the office
    std::optional<Id> handover;
    /// Who holds the row: its collected_by, else (rows recorded before rows named their
    /// collector) the OT's technician.
    std::optional<Id> collected_by;
    bool overdue = false; // in a technician's custody longer than the limit
    /// Settled: received, or resolved, or (missing) explained. A case closes only when
    /// every line of its OTs is settled.
    bool settled = false;
};

struct OtReconciliation {
    Id ot;
    Id case_id;
    std::string kind;
    std::string status;
    OtMode mode = OtMode::none; // ot_equipment (otsync/model.hpp)
    std::vector<SerialLine> lines;
    /// The customer's signature names a hash (signed_rows_hash) that the rows the server
    /// holds do not give (docs/protocol.md §6.3): a discrepancy for a person.
    bool signature_mismatch = false;
};

struct ReconcileOptions {
    std::int64_t now_ms = 0;
    std::int64_t custody_limit_ms = 3ll * 24 * 3600 * 1000; // flag custody older than this
};

OtReconciliation reconcile_ot(const crdt::Replica& r, const Id& ot, const ReconcileOptions& o);
/// The case's OTs, ordered by issue time then id.
std::vector<Id> ots_of_case(const crdt::Replica& r, const Id& case_id);
std::vector<OtReconciliation> reconcile_case(const crdt::Replica& r, const Id& case_id,
                                             const ReconcileOptions& o);

/// Who collected a row and answers for it: collected_by, else (rows recorded before that
/// field existed) the technician of the row's OT.
std::optional<Id> collector_of(const crdt::Replica& r, const Id& item);

// The register readers are shared (otsync/view.hpp); the server's code names them here too.
using otsync::id_of;
using otsync::is_true;
using otsync::text_of;
using otsync::time_of;
/// When a status was first written (HLC wall ms), if ever.
std::optional<std::int64_t> first_status_at(const crdt::Replica& r, EntityType t, const Id& id,
                                            std::string_view state);

/// Why a case cannot close yet; empty when it can (status in_progress, every OT final,
/// every line settled). docs/api.md §7.2.
std::vector<std::string> closing_blockers(const crdt::Replica& r, const Id& case_id,
                                          const ReconcileOptions& o);

// ---- indicators (docs/api.md §7.3, seed section III) ------------------------------------

struct IndicatorQuery {
    std::int64_t from_ms = 0; // cases opened in [from_ms, to_ms)
    std::int64_t to_ms = 0;
    std::string unit; // empty: every unit
    int tz_offset_minutes = -240;
    std::int64_t now_ms = 0;
    ReconcileOptions reconcile;
};

struct CaseFigure {
    Id id;
    std::string contract, customer_name, unit, status;
    int modality = 0;
    std::int64_t opened_at = 0;
    std::optional<std::int64_t> first_final_action; // rejection told, or field OT completed
    bool effective = false;
    bool timely = false;
    bool failed_visit = false;
    bool open_discrepancy = false;
    std::string why_not_effective; // for people: the first reason
    std::string why_not_timely;
    /// The same as codes for pages: cancelled | not_told | not_finished | failed_visit |
    /// open_discrepancy, and late | not_attended; empty when it counts.
    std::string not_effective;
    std::string not_timely;
    bool final_state = false; // closed, or rejected and told: it no longer changes
};

struct DayFigure {
    std::string date; // YYYY-MM-DD in the query's offset
    int total = 0, effective = 0, timely = 0;
};

struct Indicators {
    IndicatorQuery query;
    int total = 0, effective = 0, timely = 0, pending = 0;
    double efficacy_pct = 0, timeliness_pct = 0; // 0 when there is no case
    bool efficacy_pass = false;                  // above 98 %
    bool timeliness_pass = false;                // above 95 %
    std::vector<CaseFigure> cases;
    std::vector<DayFigure> days;
};

constexpr double k_efficacy_target = 98.0;
constexpr double k_timeliness_target = 95.0;
constexpr std::int64_t k_timely_ms = 24ll * 3600 * 1000;

/// The indicator figure of one case of the state; `in_conflict`: a lifecycle conflict of
/// its own or of one of its OTs is open.
CaseFigure case_figure(const crdt::Replica& r, const Id& c, const ReconcileOptions& o,
                       bool in_conflict);
/// The indicators of the state's cases opened in the query's range, and of `archived`
/// figures (closed cases out of memory) whose case the state does not hold.
Indicators compute_indicators(const crdt::Replica& r, const IndicatorQuery& q,
                              const std::vector<CaseFigure>& archived = {});
/// An archived case's figure as stored with it (Store::archive), and back; nullopt when
/// the text is not one.
std::string case_figure_json(const CaseFigure& f);
std::optional<CaseFigure> case_figure_from_json(std::string_view json);

} // namespace otsync::server
