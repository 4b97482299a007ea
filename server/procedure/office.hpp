// The office's tables and reports: the dated fee table, the inventory (import, a contract's
// equipment), the indicators, discrepancies, lifecycle conflicts, users and devices.
#pragma once

#include "procedure/part.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace otsync::server {

// ---- the fee table ----------------------------------------------------------------------

/// Which table: the one in force at a moment, and optionally the fee of some products.
struct FeeQuery {
    std::optional<std::int64_t> at_ms; // ms; none: now
    std::vector<std::string> quote;    // products to price together; empty: no quote
};

/// One product's fee in force.
struct CurrentFee {
    std::string product;
    std::string label; // in Spanish, for people
    std::int64_t centavos = 0;
    std::int64_t effective_from = 0; // ms
};

/// The table in force at `at`, every dated record, and the quote asked for.
struct FeeTable {
    std::int64_t at = 0;
    std::vector<CurrentFee> rows;      // in the order of the default table
    std::vector<FeeRecord> history;    // every record, as the store lists them
    std::optional<std::int64_t> quote; // centavos, when FeeQuery::quote named products
};

/// A new fee for a product, from a day on.
struct PutFeeCmd {
    std::string product;
    std::int64_t centavos = 0;
    std::int64_t effective_from = 0; // ms: the local midnight of the first day
};

// ---- the inventory ----------------------------------------------------------------------

/// One piece of equipment on a contract, and where it is now.
struct ContractEquipment {
    std::string serial, kind, model, description;
    std::string custody; // customer (nothing recorded yet) | technician | warehouse | ...
    /// In a technician's custody: the name of who holds it (the collector of its open
    /// row); none otherwise.
    std::optional<std::string> held_by;
};

/// A contract of the inventory and its equipment.
struct ContractDetail {
    Contract contract;
    std::vector<ContractEquipment> equipment;
};

// ---- discrepancies and conflicts --------------------------------------------------------

/// Which discrepancies: the open ones, or also the settled.
struct DiscrepancyFilter {
    bool all = false;
};

/// One line with a problem: its OT, case and contract, who answers for it and the line.
struct Discrepancy {
    Id ot;
    Id case_id;
    std::string contract;
    /// The name of the row's collector, else of the OT's technician; "" when neither.
    std::string technician;
    SerialLine line; // status signature_mismatch: the Anexo 4 of the whole OT
};

struct DiscrepancyList {
    std::vector<Discrepancy> items;
    std::shared_ptr<const Directory::Snapshot> names; // names the lines' collectors
};

/// One concurrent final value of a lifecycle register.
struct ConflictValue {
    std::string value;
    std::int64_t at = 0; // HLC wall ms
    std::uint64_t replica = 0;
};

/// A lifecycle conflict of the state, and what the office recorded about it.
struct ConflictSummary {
    Id id; // stable: from the entity, the field and the final ops
    EntityType entity_type = EntityType::case_file;
    Id entity;
    std::string field, label; // "" when the registry has no such field
    std::string winner;
    std::vector<ConflictValue> values;
    std::string status; // open | resolved
    std::string resolution;
};

struct ConflictList {
    std::vector<ConflictSummary> conflicts;
};

/// Records how a person resolved a conflict.
struct ResolveConflictCmd {
    Id conflict;
    std::string resolution;
};

// ---- people and devices -----------------------------------------------------------------

struct UserSummary {
    Id id;
    std::string name, full_name;
    Role role = Role::technician;
    std::string unit;
    bool disabled = false;
};

struct UserList {
    std::vector<UserSummary> users;
};

struct DeviceSummary {
    std::uint64_t replica = 0;
    std::string user; // the name people read
    std::string label;
    DeviceStatus status = DeviceStatus::active;
    std::int64_t last_seen = 0;
    std::uint64_t cursor = 0;
    /// What the device has yet to pull: its user's feed past its cursor for a technician,
    /// the whole log past it for an office device.
    std::uint64_t behind = 0;
    std::int64_t enrolled_at = 0;
};

struct ServerState {
    std::uint64_t applied_seq = 0;
    std::uint64_t last_seq = 0;
    std::string digest;
    std::size_t entities = 0;
};

struct DeviceList {
    std::uint64_t server_seq = 0; // the log's last sequence
    std::vector<DeviceSummary> devices;
};

class Office : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    /// The fee table in force at `q.at_ms` (now by default), its history, and the quote;
    /// an unknown product in the quote: invalid_value on `products`.
    FeeTable fees(const FeeQuery& q);
    /// A supervisor dates a new fee for a known product.
    void put_fee(const User& actor, const PutFeeCmd& cmd);
    /// The inventory CSV, checked whole and imported in one transaction, or its problems.
    ImportResult import_inventory(std::string_view csv);
    /// A contract and where each of its pieces of equipment is; not_found when unknown.
    ContractDetail contract_detail(const std::string& contract);
    /// The indicators of the cases opened in [q.from_ms, q.to_ms) of `q.unit` (every unit
    /// when empty); the report days, now and the custody limit are the server's.
    Indicators indicators(const IndicatorQuery& q);
    /// The reconciliation lines with a problem, of every OT.
    DiscrepancyList discrepancies(const DiscrepancyFilter& filter);
    /// The lifecycle conflicts of the state.
    ConflictList conflicts();
    /// Records the conflict (by the server) and its resolution (by `actor`); conflict when
    /// it is resolved already, not_found when the state has no such conflict.
    void resolve_conflict(const User& actor, const ResolveConflictCmd& cmd);
    /// Every user, as the store lists them.
    UserList users();
    /// Every enrolled device and how far behind it is.
    DeviceList devices();
    /// This instance's merged state: the log sequence it has folded (current with the log),
    /// its digest and entity count, and the log's last sequence. Instances on one database
    /// with equal digests hold equal states.
    ServerState server_state();
};

} // namespace otsync::server
