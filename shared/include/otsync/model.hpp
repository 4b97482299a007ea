// The case model of the COMTECO transfer procedure (PLN-GPI-P09) as data: entity
// types, the field registry, roles, the permission table, lifecycle transition
// tables, Anexo 2 requirements, the transfer fee table and the step templates.
// Client and server read the same tables; the wire names their fields by FieldId.
#pragma once

#include "otsync/error.hpp"
#include "otsync/op.hpp"
#include "otsync/value.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace otsync {

// ---- roles (docs/architecture.md §3) ------------------------------------------------

enum class Role : std::uint8_t {
    customer_service = 0,   // Atención al Cliente COMTECO
    commercial_head = 1,    // Jefe Administrativo Comercial INET
    sales_executive = 2,    // Ejecutivo de Ventas (INET)
    platform_officer = 3,   // Encargada de Plataforma
    commercial_advisor = 4, // Asesor Comercial COMTECO
    back_office = 5,        // Back Office BOOT
    technician = 6,         // Técnico de Instalaciones
    warehouse_clerk = 7,    // Encargada de Almacén
    supervisor = 8,         // Gestión / Div. Servicio al Cliente
    system = 9,             // the server itself (replica 0): closing, reconciliation
};
constexpr std::uint8_t k_role_count = 10;
using RoleMask = std::uint16_t;
constexpr RoleMask role_bit(Role r) {
    return static_cast<RoleMask>(1u << static_cast<unsigned>(r));
}
constexpr RoleMask k_all_roles = (1u << k_role_count) - 1;

std::string_view to_string(Role r) noexcept;
std::optional<Role> role_from_string(std::string_view s) noexcept;
/// The seed's Spanish name of the role, for pages and printed forms.
std::string_view label_es(Role r) noexcept;

// ---- entities and fields ------------------------------------------------------------

std::string_view to_string(EntityType t) noexcept;
std::optional<EntityType> entity_type_from_string(std::string_view s) noexcept;
constexpr bool is_valid_entity_type(std::uint8_t t) {
    return t >= k_entity_type_min && t <= k_entity_type_max;
}

/// How a field merges: which op kinds it takes.
enum class FieldKind : std::uint8_t {
    register_ = 0, // `set`, last writer wins
    set = 1,       // `add` / `remove`, observed-remove, add wins
    log = 2,       // `event`, append-only, read in op order
};

/// A lifecycle (status) register's allowed states and moves.
struct Transition {
    std::string_view from; // "" = the entity has no status yet
    std::string_view to;
    RoleMask roles;
};
struct Lifecycle {
    std::span<const std::string_view> states;
    std::span<const std::string_view> finals;
    std::span<const Transition> transitions;
};

struct FieldDef {
    EntityType entity;
    FieldId id;            // stable wire number within the entity type: never reuse
    std::string_view name; // stable JSON name
    FieldKind kind;
    ValueType type;
    std::uint32_t max_bytes = 0;          // text and bytes: the limit on the value
    std::int64_t min = 0, max = 0;        // int64 and money: range when min < max
    RoleMask writers = 0;                 // set / add / event
    RoleMask removers = 0;                // remove (set fields)
    RoleMask technician_visible = 0;      // nonzero: in a technician's scope
    bool sensitive = false;               // encrypted at rest on devices (CI/NIT, signatures)
    const Lifecycle* lifecycle = nullptr; // status registers
    std::span<const std::string_view> allowed{}; // text codes (enums); empty = free text
    std::string_view label_es{};
    /// A field fact (an Anexo 4 row's details): every write is kept, and two devices
    /// writing different values without seeing each other is a conflict for a person,
    /// like two final states of a lifecycle. Writes name the write they replace.
    bool tracked = false;
    /// Text registers only: crdt::Replica indexes the entities by this field's value
    /// (referrers), as it does every register that holds an id (the serial of a row).
    bool indexed = false;
};

std::span<const FieldDef> fields_of(EntityType t) noexcept;
const FieldDef* find_field(EntityType t, FieldId id) noexcept;
const FieldDef* find_field(EntityType t, std::string_view name) noexcept;
/// Like find_field but throws Error(unknown_entity_field).
const FieldDef& field_def(EntityType t, std::string_view name);

/// The op kind a field takes for writes: set, add or event.
OpKind write_kind(const FieldDef& f) noexcept;

/// Checks an op's kind and value against its field: kind fits, type fits, text is
/// bounded UTF-8, enums and ranges hold. Returns nullopt or the error; state-free,
/// so every replica gives the same answer.
std::optional<Error> check_op_schema(const Op& op);

/// Permission table (role × entity field × op kind); deny by default.
bool permitted(Role role, const FieldDef& f, OpKind kind) noexcept;
/// Whether a technician's device receives this field.
bool visible_to_technician(const FieldDef& f) noexcept;

// ---- lifecycles ---------------------------------------------------------------------

const Lifecycle& case_lifecycle() noexcept;
const Lifecycle& work_order_lifecycle() noexcept;
/// `from` empty means no status yet. Checks the table and the role.
bool transition_allowed(const Lifecycle& lc, std::string_view from, std::string_view to,
                        Role role) noexcept;
bool is_final(const Lifecycle& lc, std::string_view state) noexcept;

// ---- the procedure ------------------------------------------------------------------

enum class PersonType : std::uint8_t { natural = 0, legal = 1 };

struct Requirement {
    std::string_view code;
    std::string_view label_es;
};
/// Anexo 2 checklist for a person type and modality (1–4): modalities 3 and 4 add the
/// CI copy and Formulario Plan B (seed, modality 3 step 5.1 / modality 4 step 9.1).
std::span<const Requirement> requirements_for(PersonType p, int modality) noexcept;

/// A row of the transfer fee table (Anexo 2, prices of April 2019).
struct FeeRow {
    std::string_view product; // telefonia_fija, internet, tv_cable, duo_multipack
    std::string_view label_es;
    std::int64_t centavos;
};
std::span<const FeeRow> default_fee_table() noexcept;
/// The fee for a set of products under a table: Duo/Multipack is one fee for the
/// bundle; otherwise each product's fee adds up. Unknown product: Error(invalid_value).
Money transfer_fee(std::span<const std::string_view> products, std::span<const FeeRow> table);

/// One numbered step of a modality's procedure and the role that performs it.
struct Step {
    std::string_view code; // "m1.07": modality 1, seed step 7
    Role role;
    std::string_view label_es;
};
std::span<const Step> steps_for(int modality) noexcept;

/// Work order kinds a modality issues (docs/architecture.md §3), in issue order.
std::span<const std::string_view> work_orders_for(int modality) noexcept;

/// What an OT does with the equipment at the customer's: collect it (Anexo 4 rows), verify
/// the serials the customer carried, or nothing (an installation).
enum class OtMode : std::uint8_t { none, collect, verify };

/// The equipment side of an OT (docs/architecture.md §3, docs/api.md §7.1).
struct OtEquipment {
    /// The OT carries the contract's equipment: issuing it puts the contract's inventory in
    /// its expected_equipment. One OT per modality: install_ftth (1), relocate_ftth (2, 3),
    /// withdraw_boot (4).
    bool carries = false;
    /// Follows the kind alone: install_ftth and withdraw_boot collect, relocate_ftth
    /// verifies, install_copper does neither. (Modality 3's withdraw_boot collects but
    /// carries nothing: whatever is collected on it is unexpected.)
    OtMode mode = OtMode::none;
};
/// For an OT of `kind` issued in `modality`; an unknown kind or modality carries nothing,
/// an unknown kind has mode none.
OtEquipment ot_equipment(int modality, std::string_view kind) noexcept;

// ---- Spanish names of codes ------------------------------------------------------------

/// A code's Spanish names: `label_es` as the office pages show it (a badge, a heading, a
/// list), `word_es` as otsync-tech writes it inside a sentence ("OT 1a2b3c4d: en camino.").
struct CodeLabel {
    std::string_view code;
    std::string_view label_es;
    std::string_view word_es;
};
/// The states of an entity's status register (case, work_order, handover, conflict), in the
/// lifecycle's order; empty for an entity without one.
std::span<const CodeLabel> state_labels(EntityType t) noexcept;
/// The OT kinds (work_order.kind).
std::span<const CodeLabel> ot_kind_labels() noexcept;
/// The modalities, codes "1" to "4".
std::span<const CodeLabel> modality_labels() noexcept;
/// The products (case.products); label_es is the fee table's.
std::span<const CodeLabel> product_labels() noexcept;
/// The warehouse's receipt of a collected item (collected_item.receipt).
std::span<const CodeLabel> receipt_labels() noexcept;
/// Why a collected item was collected (collected_item.reason).
std::span<const CodeLabel> reason_labels() noexcept;
/// A serial's line in an OT's reconciliation (the office's discrepancies): matched,
/// unexpected, missing, damaged, pending (expected, the OT not final yet), and
/// signature_mismatch (the customer's signature does not name the rows the server holds).
std::span<const CodeLabel> line_status_labels() noexcept;
/// The row of `code` in `table`, or nullptr.
const CodeLabel* find_label(std::span<const CodeLabel> table, std::string_view code) noexcept;
/// The lifecycle of an entity's status register, or nullptr.
const Lifecycle* lifecycle_of(EntityType t) noexcept;

} // namespace otsync
