// The transfer procedure PLN-GPI-P09 on the server (docs/architecture.md §3, §5), in parts:
// Cases (opening to OTs issued), WorkOrders, Handovers (the warehouse receipt) and Office
// (fees, inventory, reports, conflicts, people); and the follow-up rules (custody, the
// technician's step, closing) that join the commit of the ops that call for them.
//
// Every action is ops by the server's replica (0) authored by the acting user, through
// SyncService::submit: the same validation (permission table, transitions) and the same
// merge as a device's ops, so devices, pages and reports see one truth. Preconditions are
// checked under the service lock before any op is made, so an action either happens
// whole or not at all. Each action that is a numbered step of the seed records that step
// (an event on the case's `steps` log: who is the op's author, when its HLC).
//
// Errors are otsync::Error (the API turns them into HTTP).
#pragma once

#include "procedure/cases.hpp"
#include "procedure/handovers.hpp"
#include "procedure/office.hpp"
#include "procedure/work_orders.hpp"

namespace otsync::server {

class Procedure {
public:
    Procedure(Store& store, SyncService& sync, ClockSource& clock, ProcedureConfig config);
    ~Procedure();
    Procedure(const Procedure&) = delete;
    Procedure& operator=(const Procedure&) = delete;

    Cases& cases() { return m_cases; }
    WorkOrders& ots() { return m_ots; }
    Handovers& handovers() { return m_handovers; }
    Office& office() { return m_office; }
    SyncService& sync() { return m_sync; }
    Store& store() { return m_store; }

    /// Closes every case among `cases` whose work is done (docs/api.md §7.2); returns how many.
    std::size_t close_ready(const std::vector<Id>& cases);
    /// Closes every case in progress whose work is done. Closing is a follow-up of the ops
    /// that complete the work, in their commit (register_follow_ups); this finds none to
    /// close unless the rules changed since.
    std::size_t close_all_ready();

    ReconcileOptions reconcile_options() const;
    const ProcedureConfig& config() const { return m_config; }

    /// The groups of the cases that reached a final state before `before_ms`, each with its
    /// indicator figure: what archiving takes out of memory. Cases with an open lifecycle
    /// conflict stay (a person must see it); a handover or a piece of equipment goes with a
    /// case only when nothing outside the case's rows refers to it.
    std::vector<SyncService::ArchiveGroup> archive_groups(const crdt::Replica& r,
                                                          std::int64_t before_ms) const;

private:
    /// Custody, the technician's step and closing, as follow-ups of the sync service: they
    /// join the commit of the ops that call for them, a device's or the office's.
    void register_follow_ups();

    ProcedureContext m_context;
    Cases m_cases;
    WorkOrders m_ots;
    Handovers m_handovers;
    Office m_office;
    Store& m_store;
    SyncService& m_sync;
    ClockSource& m_clock;
    const ProcedureConfig& m_config;
};

} // namespace otsync::server
