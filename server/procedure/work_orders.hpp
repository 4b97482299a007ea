// The OTs (órdenes de trabajo) from the office's side: the list and detail, assignment to a
// technician, cancelling, the missing reasons and the resolution of a row.
#pragma once

#include "procedure/part.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace otsync::server {

/// Which OTs a list holds; every member optional.
struct OtFilter {
    std::string status;        // "" = any status
    std::optional<Id> case_id; // only this case's OTs
    std::string technician;    // a user name; an unknown name is not_found
    std::size_t limit = 1000;  // the newest this many; OtList::total counts every match
};

/// One OT of a list.
struct OtSummary {
    Id id;
    std::optional<Id> case_id;
    std::string contract; // the case's
    std::string kind, status, address;
    std::optional<std::string> technician; // the name people read; none while unassigned
    std::int64_t issued_at = 0;
};

struct OtList {
    std::vector<OtSummary> ots; // newest first, at most the filter's limit
    std::size_t total = 0;      // how many matched
};

/// One OT's reconciliation, with the directory that names its rows' collectors.
struct OtReconciliationView {
    OtReconciliation reconciliation;
    std::shared_ptr<const Directory::Snapshot> names;
};

/// One OT: a copy of its state, its technician and its reconciliation.
struct OtDetail {
    Id id;
    std::optional<crdt::Entity> state; // every field, as the office reads them
    std::optional<Id> technician;
    OtReconciliation reconciliation;
    std::shared_ptr<const Directory::Snapshot> names; // names the technician and collectors
};

/// A collected item (an OT's row), as its state is now.
struct CollectedItemView {
    Id id;
    std::optional<crdt::Entity> state;
};

/// Gives the OT to a technician; it becomes `assigned`.
struct AssignOtCmd {
    std::string technician; // an active technician's user name
};

/// Cancels the OT, noting why.
struct CancelOtCmd {
    std::string reason;
};

/// Why an expected serial was not collected.
struct MissingReasonCmd {
    std::string serial; // as scanned or typed: trimmed and upper-cased here
    std::string reason;
};

/// Settles a collected item by hand.
struct ResolveItemCmd {
    std::string resolution;
};

class WorkOrders : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    /// The OTs that pass `filter`, newest first.
    OtList list_ots(const OtFilter& filter);
    /// One OT; not_found when there is none.
    OtDetail ot_detail(const Id& ot);
    /// Gives the OT to an active technician (from issued, assigned or failed).
    void assign_ot(const User& actor, const Id& ot, const AssignOtCmd& cmd);
    /// The OT becomes cancelled, with the note "Anulada: …".
    void cancel_ot(const User& actor, const Id& ot, const CancelOtCmd& cmd);
    /// The serial must be expected on the OT, not collected and not matched.
    void missing_reason(const User& actor, const Id& ot, const MissingReasonCmd& cmd);
    /// One OT's reconciliation; not_found when there is no such OT.
    OtReconciliationView ot_reconciliation(const Id& ot);
    /// Records the office's resolution on a collected item, which settles its line.
    void resolve_item(const User& actor, const Id& item, const ResolveItemCmd& cmd);
    /// One collected item; not_found when there is none.
    CollectedItemView item_detail(const Id& item);
};

} // namespace otsync::server
