// What every part of the procedure (Cases, WorkOrders, Handovers, Office) is built on: the
// store, the sync service its ops go through, the clock and the configuration.
#pragma once

#include "procedure/csv_import.hpp"
#include "procedure/views.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

namespace otsync::server {

struct ProcedureConfig {
    std::int64_t custody_limit_ms = 3ll * 24 * 3600 * 1000; // flag items held longer
    int tz_offset_minutes = -240;                           // Bolivia (UTC-4): report days
    std::size_t max_rows_per_receipt = 500; // rows one warehouse receipt may confirm
    ImportLimits import_limits;             // POST /v1/inventory/import
    /// A case closed (or rejected, or cancelled) longer ago than this leaves memory with its
    /// OTs, rows, handovers and equipment (SyncService::start_archiving); 0: never.
    int archive_after_days = 0;
    std::int64_t archive_every_ms = 3600 * 1000; // how often the sweep looks
};

struct ProcedureContext {
    Store& store;
    SyncService& sync;
    ClockSource& clock;
    ProcedureConfig config;
};

/// The base of each part: what it acts through.
class ProcedurePart {
public:
    explicit ProcedurePart(ProcedureContext& c)
        : m_store(c.store), m_sync(c.sync), m_clock(c.clock), m_config(c.config) {}
    ProcedurePart(const ProcedurePart&) = delete;
    ProcedurePart& operator=(const ProcedurePart&) = delete;

    /// Now, and the custody limit: what reconciliation flags as overdue.
    ReconcileOptions reconcile_options() const;

protected:
    Store& m_store;
    SyncService& m_sync;
    ClockSource& m_clock;
    const ProcedureConfig& m_config;
};

/// The author id of the server's own ops (closing): the zero id, named "sistema".
Id system_author();

} // namespace otsync::server
