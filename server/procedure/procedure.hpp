// The transfer procedure PLN-GPI-P09 as server actions (docs/architecture.md §3, §5): open a case,
// route it, contact, feasibility, the Anexo 2 checklist, approve or reject, the back
// office's steps, issue and assign the modality's OTs, record missing reasons and
// resolutions, the warehouse receipt of a handover, conflicts, and closing.
//
// Every action is ops by the server's replica (0) authored by the acting user, through
// SyncService::submit: the same validation (permission table, transitions) and the same
// merge as a device's ops, so devices, pages and reports see one truth. Preconditions are
// checked under the service lock before any op is made, so an action either happens
// whole or not at all. Each action that is a numbered step of the seed records that step
// (an event on the case's `steps` log: who is the op's author, when its HLC).
//
// Bodies and answers are JSON; errors are otsync::Error (the API turns them into HTTP).
#pragma once

#include "procedure/csv_import.hpp"
#include "procedure/views.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <string>

namespace otsync::server {

struct ProcedureConfig {
    std::int64_t custody_limit_ms = 3ll * 24 * 3600 * 1000; // flag items held longer
    int tz_offset_minutes = -240;                           // Bolivia (UTC-4): report days
    std::size_t max_rows_per_receipt = 500; // rows one warehouse receipt may confirm
    ImportLimits import_limits;             // POST /v1/inventory/import
};

class Procedure {
public:
    Procedure(Store& store, SyncService& sync, ClockSource& clock, ProcedureConfig config);
    ~Procedure();
    Procedure(const Procedure&) = delete;
    Procedure& operator=(const Procedure&) = delete;

    // ---- cases --------------------------------------------------------------------------
    /// Opens a case (steps 1–3 of the modality): returns the case's detail JSON.
    std::string open_case(const User& actor, const std::string& body);
    std::string list_cases(const std::map<std::string, std::string>& query);
    std::string case_detail(const Id& case_id);
    std::string edit_case(const User& actor, const Id& case_id, const std::string& body);
    std::string record_step(const User& actor, const Id& case_id, const std::string& body);
    std::string route_case(const User& actor, const Id& case_id, const std::string& body);
    std::string contact(const User& actor, const Id& case_id, const std::string& body);
    std::string feasibility(const User& actor, const Id& case_id, const std::string& body);
    std::string requirements(const User& actor, const Id& case_id, const std::string& body);
    std::string override_requirements(const User& actor, const Id& case_id,
                                      const std::string& body);
    std::string approve(const User& actor, const Id& case_id, const std::string& body);
    std::string reject(const User& actor, const Id& case_id, const std::string& body);
    std::string cancel_case(const User& actor, const Id& case_id, const std::string& body);
    std::string issue_ots(const User& actor, const Id& case_id, const std::string& body);
    std::string case_reconciliation(const Id& case_id);

    // ---- OTs ----------------------------------------------------------------------------
    std::string list_ots(const std::map<std::string, std::string>& query);
    std::string ot_detail(const Id& ot);
    std::string assign_ot(const User& actor, const Id& ot, const std::string& body);
    std::string cancel_ot(const User& actor, const Id& ot, const std::string& body);
    std::string missing_reason(const User& actor, const Id& ot, const std::string& body);
    std::string ot_reconciliation(const Id& ot);
    std::string resolve_item(const User& actor, const Id& item, const std::string& body);

    // ---- handovers ----------------------------------------------------------------------
    std::string list_handovers(const std::map<std::string, std::string>& query);
    std::string handover_detail(const Id& handover);
    /// The warehouse clerk's receipt, row by row, signed: exactly one per handover.
    std::string receive_handover(const User& actor, const Id& handover, const std::string& body);
    std::string anexo4_html(const Id& handover);

    // ---- fees, inventory, reports, conflicts --------------------------------------------
    std::string fees(const std::map<std::string, std::string>& query);
    std::string put_fee(const User& actor, const std::string& body);
    /// The fee for `products` at `at_ms` from the dated table.
    Money fee_at(const std::vector<std::string>& products, std::int64_t at_ms);
    /// The inventory CSV, checked whole and imported in one transaction, or its problems.
    ImportResult import_inventory(std::string_view csv);
    std::string contract_detail(const std::string& contract);
    std::string indicators(const std::map<std::string, std::string>& query, bool csv);
    std::string discrepancies(const std::map<std::string, std::string>& query);
    std::string conflicts();
    std::string resolve_conflict(const User& actor, const std::string& body);
    std::string users_json();
    std::string devices_json();

    /// Closes every case among `cases` whose work is done (docs/api.md §7.2); returns how many.
    std::size_t close_ready(const std::vector<Id>& cases);
    /// Closes every case in progress whose work is done. Closing is a follow-up of the ops
    /// that complete the work, in their commit (register_follow_ups); this finds none to
    /// close unless the rules changed since.
    std::size_t close_all_ready();

    ReconcileOptions reconcile_options() const;
    const ProcedureConfig& config() const { return m_config; }

private:
    /// Custody, the technician's step and closing, as follow-ups of the sync service: they
    /// join the commit of the ops that call for them, a device's or the office's.
    void register_follow_ups();

    Store& m_store;
    SyncService& m_sync;
    ClockSource& m_clock;
    ProcedureConfig m_config;
};

/// The author id of the server's own ops (closing): the zero id, named "sistema".
Id system_author();

} // namespace otsync::server
