// The case file through the review (docs/architecture.md §3): opening (steps 1–3), routing,
// the customer contact, technical feasibility, the Anexo 2 checklist and its override,
// approval or rejection, the back office's steps, cancelling, and the OTs issued.
#pragma once

#include "procedure/part.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace otsync::server {

/// Opens a case: what the opener gathered (steps 1–3 of the modality).
struct OpenCaseCmd {
    int modality = 0; // 1–4
    std::string contract;
    std::string customer_name;
    std::string person_type; // natural | legal
    std::string tax_id;
    std::string reference_cell;
    std::string contact_hours;
    std::vector<std::string> products; // at least one; a repeated product counts once
    std::string old_address;
    std::string new_address;
    std::optional<std::string> old_geo_location;
    std::optional<std::string> old_neighborhood;
    std::optional<std::string> old_reference;
    std::optional<std::string> new_geo_location;
    std::optional<std::string> new_neighborhood;
    std::optional<std::string> new_reference;
    std::optional<std::string> observations;
    std::optional<std::string> unit; // none: the opener's unit
};

/// Which cases a list holds; every member optional.
struct CaseFilter {
    std::string status;          // "" = any status
    std::optional<int> modality; // a number that names no modality matches no case
    std::string contract;        // "" = any contract
    std::size_t limit = 1000;    // the newest this many; CaseList::total counts every match
};

/// One case of a list.
struct CaseSummary {
    Id id;
    int modality = 0;
    std::string contract;
    std::string customer_name;
    std::string status;
    std::int64_t opened_at = 0;
    std::string unit;
    std::optional<std::string> last_step; // the code of the step recorded last; none yet
    std::size_t requirements_missing = 0; // of the Anexo 2 checklist
    bool archived = false; // out of memory (closed long ago): no step or checklist shown
};

struct CaseList {
    std::vector<CaseSummary> cases; // newest first, at most the filter's limit
    std::size_t total = 0;          // how many matched
};

/// One item of the case's Anexo 2 checklist (its person type and modality).
struct CaseRequirement {
    std::string_view code;  // the shared model's table (otsync/model.hpp)
    std::string_view label; // in Spanish, from the same table
    bool met = false;
};

/// One step recorded on the case's `steps` log, in log order.
struct CaseStep {
    std::string code;
    /// The modality's seed step of that code (label, role); null when it has none.
    const Step* seed = nullptr;
    std::int64_t at = 0; // ms, the op's HLC
    std::string by;      // the author's name people read; "" when unknown
};

/// One OT issued for the case.
struct CaseOt {
    Id id;
    std::string kind;
    std::string status;
    std::optional<std::string> technician; // the name people read; none while unassigned
};

/// The case as the office reads it (docs/api.md §5.1): what every case action answers.
struct CaseDetail {
    Id id;
    int modality = 0;
    std::string status;
    std::optional<crdt::Entity> state;         // a copy of every field, as recorded
    std::optional<std::string> routed_to_name; // once routed
    std::vector<CaseRequirement> requirements;
    bool requirements_complete = false;
    std::vector<CaseStep> steps;
    std::vector<CaseOt> ots;                   // by issue time
    std::vector<std::string> closing_blockers; // only while in_progress
};

/// The reconciliation of every OT of the case, with the directory that names the rows'
/// collectors.
struct CaseReconciliation {
    Id id;
    std::vector<OtReconciliation> ots;
    std::vector<std::string> closing_blockers; // why it cannot close (docs/api.md §7.2)
    std::shared_ptr<const Directory::Snapshot> names;
};

/// Case fields written as they are given, by name, each value of the registry's type of
/// that field (std::monostate clears it).
using CaseFieldValues = std::vector<std::pair<std::string, Value>>;

/// Sets case fields by hand (PATCH); no step is recorded.
struct EditCaseCmd {
    CaseFieldValues fields;
};

/// Records a seed step of the case's modality, with fields set in the same batch.
struct RecordStepCmd {
    std::string step; // "m4.11"
    CaseFieldValues fields;
};

/// Routes the case to the reviewer who handles it (step .04).
struct RouteCaseCmd {
    std::string to; // an active user's name, of the modality's reviewer role
};

/// The customer was contacted (step .05 of modalities 1 and 2).
struct ContactCmd {};

/// The technical feasibility of the transfer.
struct FeasibilityCmd {
    bool feasible = false;
    std::optional<std::string> note;
};

/// Checks Anexo 2 requirements as met or unmet; at least one is named.
struct RequirementsCmd {
    std::vector<std::string> met;
    std::vector<std::string> unmet;
};

/// A supervisor lets the OTs be issued with requirements unmet.
struct OverrideRequirementsCmd {
    std::string reason;
};

struct ApproveCmd {};

struct RejectCmd {
    std::string reason;
};

/// Cancels the case and every OT of it not final yet.
struct CancelCaseCmd {
    std::string reason;
};

/// Issues the modality's OTs, carrying the contract's equipment where the model says.
struct IssueOtsCmd {
    std::optional<std::string> technician;    // an active technician's name: assigned at once
    std::optional<std::int64_t> window_start; // ms
    std::optional<std::int64_t> window_end;   // ms, after window_start
    std::optional<std::string> zone;
};

/// Throws Error(unknown_field, "fields.NAME ...") unless NAME is a case field that a PATCH
/// or a step's fields may set: a single-value field that no action of its own writes.
void check_settable_case_field(const std::string& name);

class Cases : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    /// Opens a case (steps 1–3 of the modality); returns its id.
    Id open_case(const User& actor, const OpenCaseCmd& cmd);
    /// The cases that pass `filter`, newest first.
    CaseList list_cases(const CaseFilter& filter);
    /// not_found when there is no such case.
    CaseDetail case_detail(const Id& case_id);
    /// Refused once the case is final.
    void edit_case(const User& actor, const Id& case_id, const EditCaseCmd& cmd);
    /// Not the technician's step (the OT records it), and only the step's role or a supervisor.
    void record_step(const User& actor, const Id& case_id, const RecordStepCmd& cmd);
    void route_case(const User& actor, const Id& case_id, const RouteCaseCmd& cmd);
    void contact(const User& actor, const Id& case_id, const ContactCmd& cmd);
    void feasibility(const User& actor, const Id& case_id, const FeasibilityCmd& cmd);
    void requirements(const User& actor, const Id& case_id, const RequirementsCmd& cmd);
    void override_requirements(const User& actor, const Id& case_id,
                               const OverrideRequirementsCmd& cmd);
    /// Only after a positive technical feasibility.
    void approve(const User& actor, const Id& case_id, const ApproveCmd& cmd);
    void reject(const User& actor, const Id& case_id, const RejectCmd& cmd);
    void cancel_case(const User& actor, const Id& case_id, const CancelCaseCmd& cmd);
    /// Once, when approved and the requirements are met (or overridden).
    void issue_ots(const User& actor, const Id& case_id, const IssueOtsCmd& cmd);
    /// not_found when there is no such case.
    CaseReconciliation case_reconciliation(const Id& case_id);
};

} // namespace otsync::server
