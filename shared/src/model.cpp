// The tables of the case model. Field ids are wire numbers: append, never renumber.
#include "otsync/model.hpp"

#include "otsync/error.hpp"

#include <algorithm>
#include <array>
#include <string>

namespace otsync {

namespace {

using R = Role;
constexpr RoleMask bits(std::initializer_list<Role> roles) {
    RoleMask m = 0;
    for (Role r : roles) {
        m = static_cast<RoleMask>(m | role_bit(r));
    }
    return m;
}

constexpr std::array<std::string_view, k_role_count> k_role_names{
    "customer_service",   "commercial_head", "sales_executive", "platform_officer",
    "commercial_advisor", "back_office",     "technician",      "warehouse_clerk",
    "supervisor",         "system"};
constexpr std::array<std::string_view, k_role_count> k_role_labels{
    "Atención al Cliente COMTECO",
    "Jefe Administrativo Comercial INET",
    "Ejecutivo de Ventas",
    "Encargada de Plataforma",
    "Asesor Comercial COMTECO",
    "Back Office BOOT",
    "Técnico de Instalaciones",
    "Encargada de Almacén",
    "Gestión / Div. Servicio al Cliente",
    "Sistema otsync"};

constexpr std::array<std::string_view, 7> k_entity_names{
    "", "case", "work_order", "equipment", "collected_item", "handover", "conflict"};

// Role groups used by the permission table.
constexpr RoleMask k_intake = bits({R::customer_service, R::sales_executive, R::commercial_advisor,
                                    R::back_office, R::supervisor, R::system});
constexpr RoleMask k_commercial =
    bits({R::sales_executive, R::commercial_advisor, R::supervisor, R::system});
constexpr RoleMask k_office = bits({R::back_office, R::supervisor, R::system});
constexpr RoleMask k_field = bits({R::technician, R::back_office, R::supervisor, R::system});
constexpr RoleMask k_warehouse = bits({R::warehouse_clerk, R::supervisor, R::system});
constexpr RoleMask k_everyone_office = k_all_roles & ~role_bit(R::technician);
constexpr RoleMask k_tech = role_bit(R::technician);

// ---- lifecycles -----------------------------------------------------------------------

constexpr std::array<std::string_view, 8> k_case_states{
    "opened", "routed", "in_review", "approved", "rejected", "in_progress", "closed", "cancelled"};
constexpr std::array<std::string_view, 3> k_case_finals{"rejected", "closed", "cancelled"};
constexpr RoleMask k_cancel = bits({R::back_office, R::supervisor});
constexpr std::array<Transition, 15> k_case_transitions{{
    // Steps 1–3: Atención al Cliente (m1, m2) or Ejecutivo de Ventas INET (m3, m4) open it.
    {"", "opened", bits({R::customer_service, R::sales_executive, R::supervisor})},
    // Step 4: routing (commercial head → sales executive; platform officer → advisor).
    {"opened", "routed", bits({R::commercial_head, R::platform_officer, R::supervisor})},
    // Steps 5–7 (m1, m2) / 5–6 (m3) / 9–10 (m4): contact, feasibility, requirements.
    {"routed", "in_review", bits({R::sales_executive, R::commercial_advisor, R::supervisor})},
    {"in_review", "approved", bits({R::sales_executive, R::commercial_advisor, R::supervisor})},
    // Step 9: "no es posible realizar el traslado".
    {"in_review", "rejected", bits({R::sales_executive, R::commercial_advisor, R::supervisor})},
    {"routed", "rejected", bits({R::sales_executive, R::commercial_advisor, R::supervisor})},
    // Back office issues the OTs.
    {"approved", "in_progress", bits({R::back_office, R::commercial_advisor, R::supervisor})},
    // Closing is the server's: all OTs final, items received or resolved.
    {"in_progress", "closed", bits({R::system})},
    {"opened", "cancelled", k_cancel},
    {"routed", "cancelled", k_cancel},
    {"in_review", "cancelled", k_cancel},
    {"approved", "cancelled", k_cancel},
    {"in_progress", "cancelled", k_cancel},
    // A supervisor may reopen a review (e.g. after the customer brings a requirement).
    {"rejected", "in_review", bits({R::supervisor})},
    {"in_progress", "approved", bits({R::supervisor})},
}};
constexpr Lifecycle k_case_lifecycle{k_case_states, k_case_finals, k_case_transitions};

constexpr std::array<std::string_view, 7> k_ot_states{
    "issued", "assigned", "en_route", "on_site", "completed", "failed", "cancelled"};
constexpr std::array<std::string_view, 2> k_ot_finals{"completed", "cancelled"};
constexpr RoleMask k_dispatch = bits({R::back_office, R::supervisor, R::system});
constexpr std::array<Transition, 15> k_ot_transitions{{
    {"", "issued", k_dispatch},
    {"issued", "assigned", k_dispatch},
    {"assigned", "assigned", k_dispatch}, // reassignment
    {"failed", "assigned", k_dispatch},   // a new visit after a failed one
    {"assigned", "en_route", k_tech},
    {"assigned", "on_site", k_tech},
    {"en_route", "on_site", k_tech},
    {"on_site", "completed", k_tech},
    {"assigned", "failed", k_tech},
    {"en_route", "failed", k_tech},
    {"on_site", "failed", k_tech},
    {"issued", "cancelled", k_dispatch},
    {"assigned", "cancelled", k_dispatch},
    {"en_route", "cancelled", k_dispatch},
    {"on_site", "cancelled", k_dispatch},
}};
constexpr Lifecycle k_ot_lifecycle{k_ot_states, k_ot_finals, k_ot_transitions};

constexpr std::array<std::string_view, 3> k_handover_states{"draft", "delivered", "received"};
constexpr std::array<std::string_view, 1> k_handover_finals{"received"};
constexpr std::array<Transition, 4> k_handover_transitions{{
    {"", "draft", bits({R::technician, R::back_office, R::supervisor})},
    {"draft", "delivered", bits({R::technician, R::supervisor})},
    {"delivered", "received", bits({R::warehouse_clerk, R::supervisor})},
    {"draft", "received", bits({R::warehouse_clerk, R::supervisor})},
}};
constexpr Lifecycle k_handover_lifecycle{k_handover_states, k_handover_finals,
                                         k_handover_transitions};

constexpr std::array<std::string_view, 2> k_conflict_states{"open", "resolved"};
constexpr std::array<std::string_view, 1> k_conflict_finals{"resolved"};
constexpr std::array<Transition, 3> k_conflict_transitions{{
    {"", "open", bits({R::system, R::supervisor})},
    {"open", "resolved", bits({R::back_office, R::supervisor, R::warehouse_clerk})},
    {"resolved", "open", bits({R::supervisor})},
}};
constexpr Lifecycle k_conflict_lifecycle{k_conflict_states, k_conflict_finals,
                                         k_conflict_transitions};

// ---- enums ----------------------------------------------------------------------------

constexpr std::array<std::string_view, 2> k_person_types{"natural", "legal"};
constexpr std::array<std::string_view, 4> k_products{"telefonia_fija", "internet", "tv_cable",
                                                     "duo_multipack"};
constexpr std::array<std::string_view, 4> k_ot_kinds{"install_ftth", "relocate_ftth",
                                                     "withdraw_boot", "install_copper"};
constexpr std::array<std::string_view, 7> k_equipment_kinds{
    "gpon_ont", "decoder", "copper_modem", "router", "power_adapter", "remote", "other"};
constexpr std::array<std::string_view, 3> k_custody{"customer", "technician", "warehouse"};
constexpr std::array<std::string_view, 3> k_conditions{"good", "damaged", "unknown"};
constexpr std::array<std::string_view, 2> k_reasons{"migration", "damaged"};
constexpr std::array<std::string_view, 3> k_receipts{"received", "missing", "damaged_on_arrival"};

// ---- the field registry -----------------------------------------------------------------

using E = EntityType;
using K = FieldKind;
using T = ValueType;
constexpr std::uint32_t k_short = 64;
constexpr std::uint32_t k_name = 200;
constexpr std::uint32_t k_line = 500;
constexpr std::uint32_t k_long = 4000;
constexpr RoleMask k_tv = role_bit(R::technician); // technician_visible

// clang-format off
constexpr std::array<FieldDef, 40> k_case_fields{{
    {E::case_file, 1, "modality", K::register_, T::int64, 0, 1, 4, k_intake, 0, k_tv, false, nullptr, {}, "Modalidad de traslado"},
    {E::case_file, 2, "contract", K::register_, T::text, k_short, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Contrato"},
    {E::case_file, 3, "customer_name", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Nombre del cliente"},
    {E::case_file, 4, "person_type", K::register_, T::text, k_short, 0, 0, k_intake, 0, 0, false, nullptr, k_person_types, "Tipo de persona"},
    {E::case_file, 5, "tax_id", K::register_, T::text, k_short, 0, 0, k_intake, 0, k_tv, true, nullptr, {}, "CI o NIT"},
    {E::case_file, 6, "reference_cell", K::register_, T::text, k_short, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Celular de referencia"},
    {E::case_file, 7, "contact_hours", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Horario para contactar al cliente"},
    {E::case_file, 8, "products", K::set, T::text, k_short, 0, 0, k_intake, k_intake, k_tv, false, nullptr, k_products, "Productos"},
    {E::case_file, 9, "fee", K::register_, T::money, 0, 0, 100000000, k_intake, 0, 0, false, nullptr, {}, "Costo de traslado"},
    {E::case_file, 10, "old_geo_location", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Ubicación geográfica (anterior)"},
    {E::case_file, 11, "old_neighborhood", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Barrio (anterior)"},
    {E::case_file, 12, "old_address", K::register_, T::text, k_line, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Dirección (anterior)"},
    {E::case_file, 13, "old_reference", K::register_, T::text, k_line, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Referencia (anterior)"},
    {E::case_file, 14, "new_geo_location", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Ubicación geográfica (nueva)"},
    {E::case_file, 15, "new_neighborhood", K::register_, T::text, k_name, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Barrio (nuevo)"},
    {E::case_file, 16, "new_address", K::register_, T::text, k_line, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Dirección (nueva)"},
    {E::case_file, 17, "new_reference", K::register_, T::text, k_line, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Referencia (nueva)"},
    {E::case_file, 18, "gpon_data", K::register_, T::text, k_line, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "GPON dato técnico"},
    {E::case_file, 19, "gis_box", K::register_, T::text, k_name, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Caja GIS"},
    {E::case_file, 20, "requirements", K::set, T::text, k_short, 0, 0, k_commercial, k_commercial, 0, false, nullptr, {}, "Requisitos (Anexo 2)"},
    {E::case_file, 21, "requirements_override", K::register_, T::text, k_line, 0, 0, bits({R::supervisor}), 0, 0, false, nullptr, {}, "Excepción de requisitos"},
    {E::case_file, 22, "steps", K::log, T::text, k_short, 0, 0, k_everyone_office, 0, 0, false, nullptr, {}, "Pasos del procedimiento"},
    {E::case_file, 23, "status", K::register_, T::text, k_short, 0, 0, k_all_roles & ~k_tech, 0, k_tv, false, &k_case_lifecycle, k_case_states, "Estado"},
    {E::case_file, 24, "observations", K::register_, T::text, k_long, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Observaciones"},
    {E::case_file, 25, "feasible", K::register_, T::boolean, 0, 0, 0, k_commercial, 0, 0, false, nullptr, {}, "Factibilidad técnica"},
    {E::case_file, 26, "feasibility_note", K::register_, T::text, k_line, 0, 0, k_commercial, 0, 0, false, nullptr, {}, "Nota de factibilidad"},
    {E::case_file, 27, "rejection_reason", K::register_, T::text, k_line, 0, 0, k_commercial, 0, 0, false, nullptr, {}, "Motivo de rechazo"},
    {E::case_file, 28, "rejection_told_at", K::register_, T::timestamp, 0, 0, 0, k_commercial, 0, 0, false, nullptr, {}, "Cliente informado del rechazo"},
    {E::case_file, 29, "routed_to", K::register_, T::id, 0, 0, 0, bits({R::commercial_head, R::platform_officer, R::supervisor}), 0, 0, false, nullptr, {}, "Derivado a"},
    {E::case_file, 30, "opened_at", K::register_, T::timestamp, 0, 0, 0, k_intake, 0, k_tv, false, nullptr, {}, "Fecha de apertura"},
    {E::case_file, 31, "category", K::register_, T::text, k_short, 0, 0, k_office | k_commercial, 0, 0, false, nullptr, {}, "Categoría"},
    {E::case_file, 32, "subcategory", K::register_, T::text, k_short, 0, 0, k_office | k_commercial, 0, 0, false, nullptr, {}, "Subcategoría"},
    {E::case_file, 33, "commercial_plan", K::register_, T::text, k_name, 0, 0, k_office | k_commercial, 0, k_tv, false, nullptr, {}, "Plan comercial"},
    {E::case_file, 34, "new_contract", K::register_, T::text, k_short, 0, 0, k_commercial, 0, k_tv, false, nullptr, {}, "Contrato nuevo"},
    {E::case_file, 35, "contacted_at", K::register_, T::timestamp, 0, 0, 0, k_commercial, 0, 0, false, nullptr, {}, "Cliente contactado"},
    {E::case_file, 36, "unit", K::register_, T::text, k_short, 0, 0, k_intake, 0, 0, false, nullptr, {}, "Unidad"},
    {E::case_file, 37, "fee_products_withdrawn", K::register_, T::boolean, 0, 0, 0, k_office, 0, 0, false, nullptr, {}, "Producto retirado (baja)"},
    {E::case_file, 38, "fee_charged", K::register_, T::boolean, 0, 0, 0, k_office | k_commercial, 0, 0, false, nullptr, {}, "Cobro de traslado digitado"},
    {E::case_file, 39, "cancel_reason", K::register_, T::text, k_line, 0, 0, k_cancel, 0, 0, false, nullptr, {}, "Motivo de anulación"},
    // A requirement's scan (Anexo 2): "<requirement code> <64 hex digits of the blob's hash>".
    {E::case_file, 40, "requirement_scans", K::set, T::text, k_short + 65, 0, 0, k_intake | k_commercial, 0, 0, true, nullptr, {}, "Requisitos escaneados"},
}};

constexpr RoleMask k_tech_field = bits({R::technician, R::supervisor, R::system});
constexpr std::array<FieldDef, 21> k_ot_fields{{
    {E::work_order, 1, "case", K::register_, T::id, 0, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Caso"},
    {E::work_order, 2, "kind", K::register_, T::text, k_short, 0, 0, k_office, 0, k_tv, false, nullptr, k_ot_kinds, "Tipo de OT"},
    {E::work_order, 3, "technician", K::register_, T::id, 0, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Técnico"},
    {E::work_order, 4, "window_start", K::register_, T::timestamp, 0, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Desde"},
    {E::work_order, 5, "window_end", K::register_, T::timestamp, 0, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Hasta"},
    {E::work_order, 6, "address", K::register_, T::text, k_line, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Dirección"},
    {E::work_order, 7, "status", K::register_, T::text, k_short, 0, 0, k_field, 0, k_tv, false, &k_ot_lifecycle, k_ot_states, "Estado"},
    {E::work_order, 8, "expected_equipment", K::set, T::text, k_short, 0, 0, k_office, k_office, k_tv, false, nullptr, {}, "Equipos esperados"},
    {E::work_order, 9, "installed_equipment", K::set, T::text, k_short, 0, 0, k_field, k_field, k_tv, false, nullptr, {}, "Equipos instalados"},
    {E::work_order, 10, "verified_equipment", K::set, T::text, k_short, 0, 0, k_field, k_field, k_tv, false, nullptr, {}, "Equipos verificados"},
    {E::work_order, 11, "outcome", K::register_, T::text, k_line, 0, 0, k_field, 0, k_tv, false, nullptr, {}, "Resultado"},
    {E::work_order, 12, "notes", K::log, T::text, k_long, 0, 0, k_field, 0, k_tv, false, nullptr, {}, "Notas"},
    {E::work_order, 13, "signature_ref", K::register_, T::id, 0, 0, 0, k_tech_field, 0, k_tv, true, nullptr, {}, "Firma del cliente"},
    {E::work_order, 14, "signed_rows_hash", K::register_, T::bytes, 32, 0, 0, k_tech_field, 0, k_tv, false, nullptr, {}, "Huella de filas firmadas"},
    {E::work_order, 15, "completed_at", K::register_, T::timestamp, 0, 0, 0, k_tech_field, 0, k_tv, false, nullptr, {}, "Fecha de conclusión"},
    {E::work_order, 16, "zone", K::register_, T::text, k_short, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Zona"},
    {E::work_order, 17, "issued_at", K::register_, T::timestamp, 0, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Fecha de emisión"},
    {E::work_order, 18, "missing_reasons", K::log, T::text, k_line, 0, 0, k_field, 0, k_tv, false, nullptr, {}, "Motivos de faltantes"},
    // A former assignee's status or register write, kept for the office and not merged
    // (protocol.md §3.6): the server's record, as JSON {user, replica, received_at, op}.
    {E::work_order, 19, "flagged_writes", K::log, T::text, 2 * k_long, 0, 0, bits({R::system}), 0, 0, false, nullptr, {}, "Cambios de un técnico anterior (no aplicados)"},
    // The customer's signature image: the hash of its blob (attachment.hpp), set with
    // signature_ref. Photos of a damaged or missing item: "<serial> <64 hex digits>".
    {E::work_order, 20, "signature_blob", K::register_, T::bytes, 32, 0, 0, k_tech_field, 0, k_tv, true, nullptr, {}, "Imagen de la firma del cliente"},
    {E::work_order, 21, "equipment_photos", K::set, T::text, k_short + 65, 0, 0, k_field, 0, k_tv, false, nullptr, {}, "Fotos de equipos"},
}};

constexpr RoleMask k_inventory = bits({R::back_office, R::supervisor, R::system});
constexpr RoleMask k_custody_writers = bits({R::technician, R::warehouse_clerk, R::back_office, R::supervisor, R::system});
constexpr std::array<FieldDef, 7> k_equipment_fields{{
    {E::equipment, 1, "serial", K::register_, T::text, k_short, 0, 0, k_inventory, 0, k_tv, false, nullptr, {}, "Serie"},
    {E::equipment, 2, "kind", K::register_, T::text, k_short, 0, 0, k_inventory, 0, k_tv, false, nullptr, k_equipment_kinds, "Tipo de equipo"},
    {E::equipment, 3, "model", K::register_, T::text, k_name, 0, 0, k_inventory, 0, k_tv, false, nullptr, {}, "Modelo"},
    {E::equipment, 4, "contract", K::register_, T::text, k_short, 0, 0, k_inventory, 0, k_tv, false, nullptr, {}, "Contrato"},
    {E::equipment, 5, "custody", K::log, T::text, k_short, 0, 0, k_custody_writers, 0, k_tv, false, nullptr, k_custody, "Custodia"},
    {E::equipment, 6, "condition", K::register_, T::text, k_short, 0, 0, k_custody_writers, 0, k_tv, false, nullptr, k_conditions, "Estado físico"},
    {E::equipment, 7, "description", K::register_, T::text, k_name, 0, 0, k_inventory, 0, k_tv, false, nullptr, {}, "Descripción"},
}};

constexpr RoleMask k_collectors = bits({R::technician, R::supervisor, R::system});
constexpr std::array<FieldDef, 17> k_item_fields{{
    {E::collected_item, 1, "work_order", K::register_, T::id, 0, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "OT"},
    {E::collected_item, 2, "serial", K::register_, T::text, k_short, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Código", false, true},
    {E::collected_item, 3, "description", K::register_, T::text, k_name, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Descripción", true},
    {E::collected_item, 4, "reason", K::register_, T::text, k_short, 0, 0, k_collectors, 0, k_tv, false, nullptr, k_reasons, "Motivo (migración/dañado)", true},
    {E::collected_item, 5, "defect", K::register_, T::text, k_line, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Defecto", true},
    {E::collected_item, 6, "observations", K::register_, T::text, k_line, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Observaciones", true},
    {E::collected_item, 7, "collected_at", K::register_, T::timestamp, 0, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Fecha"},
    {E::collected_item, 8, "signature_ref", K::register_, T::id, 0, 0, 0, k_collectors, 0, k_tv, true, nullptr, {}, "Firma del cliente"},
    {E::collected_item, 9, "receipt", K::register_, T::text, k_short, 0, 0, k_warehouse, 0, k_tv, false, nullptr, k_receipts, "Recepción en almacén"},
    {E::collected_item, 10, "receipt_note", K::register_, T::text, k_line, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Nota de recepción"},
    {E::collected_item, 11, "handover", K::register_, T::id, 0, 0, 0, k_collectors | k_warehouse, 0, k_tv, false, nullptr, {}, "Entrega"},
    {E::collected_item, 12, "resolution", K::register_, T::text, k_line, 0, 0, k_office, 0, k_tv, false, nullptr, {}, "Resolución"},
    // A mistaken row is voided, never deleted: the field fact stays on record.
    {E::collected_item, 13, "voided", K::register_, T::boolean, 0, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Anulado"},
    {E::collected_item, 14, "equipment", K::register_, T::id, 0, 0, 0, k_collectors | k_inventory, 0, k_tv, false, nullptr, {}, "Equipo"},
    // Who physically holds the row: the user and the device (replica) that collected it.
    // Custody follows them, not the OT's current technician (a technician writes only his own).
    {E::collected_item, 15, "collected_by", K::register_, T::id, 0, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Recogido por"},
    {E::collected_item, 16, "collected_device", K::register_, T::int64, 0, 0, INT64_MAX, k_collectors, 0, k_tv, false, nullptr, {}, "Dispositivo que lo registró"},
    {E::collected_item, 17, "signature_blob", K::register_, T::bytes, 32, 0, 0, k_collectors, 0, k_tv, true, nullptr, {}, "Imagen de la firma del cliente"},
}};

constexpr RoleMask k_handover_writers = bits({R::technician, R::warehouse_clerk, R::supervisor, R::system});
constexpr std::array<FieldDef, 16> k_handover_fields{{
    {E::handover, 1, "technician", K::register_, T::id, 0, 0, 0, k_handover_writers, 0, k_tv, false, nullptr, {}, "Técnico"},
    {E::handover, 2, "date", K::register_, T::timestamp, 0, 0, 0, k_handover_writers, 0, k_tv, false, nullptr, {}, "Fecha"},
    {E::handover, 3, "zone", K::register_, T::text, k_short, 0, 0, k_handover_writers, 0, k_tv, false, nullptr, {}, "Zona"},
    {E::handover, 4, "rows", K::set, T::id, 0, 0, 0, k_collectors, k_collectors, k_tv, false, nullptr, {}, "Filas"},
    {E::handover, 5, "delivered_by", K::register_, T::text, k_name, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Entregado por"},
    {E::handover, 6, "received_by", K::register_, T::text, k_name, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Recibido por"},
    {E::handover, 7, "status", K::register_, T::text, k_short, 0, 0, k_handover_writers | role_bit(R::back_office), 0, k_tv, false, &k_handover_lifecycle, k_handover_states, "Estado"},
    {E::handover, 8, "received_rows_hash", K::register_, T::bytes, 32, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Huella de filas recibidas"},
    {E::handover, 9, "clerk_signature_ref", K::register_, T::id, 0, 0, 0, k_warehouse, 0, k_tv, true, nullptr, {}, "Firma almacén"},
    {E::handover, 10, "technician_signature_ref", K::register_, T::id, 0, 0, 0, k_collectors, 0, k_tv, true, nullptr, {}, "Firma técnico"},
    {E::handover, 11, "received_at", K::register_, T::timestamp, 0, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Fecha de recepción"},
    {E::handover, 12, "delivered_rows_hash", K::register_, T::bytes, 32, 0, 0, k_collectors, 0, k_tv, false, nullptr, {}, "Huella de filas entregadas"},
    {E::handover, 13, "received_by_user", K::register_, T::id, 0, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Recibido por (usuario)"},
    {E::handover, 14, "receipt_signature", K::register_, T::bytes, 64, 0, 0, k_warehouse, 0, k_tv, false, nullptr, {}, "Firma del servidor sobre la recepción"},
    {E::handover, 15, "technician_signature_blob", K::register_, T::bytes, 32, 0, 0, k_collectors, 0, k_tv, true, nullptr, {}, "Imagen de la firma del técnico"},
    {E::handover, 16, "clerk_signature_blob", K::register_, T::bytes, 32, 0, 0, k_warehouse, 0, k_tv, true, nullptr, {}, "Imagen de la firma de almacén"},
}};

constexpr RoleMask k_resolvers = bits({R::back_office, R::supervisor, R::warehouse_clerk, R::system});
constexpr std::array<FieldDef, 9> k_conflict_fields{{
    {E::conflict, 1, "entity_type", K::register_, T::text, k_short, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Entidad"},
    {E::conflict, 2, "entity", K::register_, T::id, 0, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Registro"},
    {E::conflict, 3, "field", K::register_, T::text, k_short, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Campo"},
    {E::conflict, 4, "winner", K::register_, T::text, k_line, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Valor vigente"},
    {E::conflict, 5, "others", K::register_, T::text, k_long, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Valores en conflicto"},
    {E::conflict, 6, "status", K::register_, T::text, k_short, 0, 0, k_resolvers, 0, 0, false, &k_conflict_lifecycle, k_conflict_states, "Estado"},
    {E::conflict, 7, "resolution", K::register_, T::text, k_long, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Resolución"},
    {E::conflict, 8, "detected_at", K::register_, T::timestamp, 0, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Detectado"},
    {E::conflict, 9, "resolved_by", K::register_, T::id, 0, 0, 0, k_resolvers, 0, 0, false, nullptr, {}, "Resuelto por"},
}};
// clang-format on

// ---- procedure tables ---------------------------------------------------------------

constexpr std::array<Requirement, 5> k_req_natural{{
    {"titular", "Ser titular del servicio (o nota de autorización del titular)"},
    {"ci_vigente", "Cédula de Identidad vigente"},
    {"cuentas_al_dia", "Cuentas de sus servicios al día"},
    {"direccion_croquis", "Dirección exacta (croquis) y celular de referencia"},
    {"pago_traslado", "Pago del derecho de traslado"},
}};
constexpr std::array<Requirement, 7> k_req_natural_34{{
    k_req_natural[0],
    k_req_natural[1],
    k_req_natural[2],
    k_req_natural[3],
    k_req_natural[4],
    {"fotocopia_ci", "Fotocopia de C.I."},
    {"formulario_plan_b", "Formulario Plan B"},
}};
constexpr std::array<Requirement, 9> k_req_legal{{
    k_req_natural[0],
    k_req_natural[1],
    k_req_natural[2],
    k_req_natural[3],
    k_req_natural[4],
    {"nota_representante", "Nota del o los representantes legales que acredite al tramitador"},
    {"fotocopia_nit", "Fotocopia del NIT"},
    {"ci_representante", "Fotocopia de C.I. del representante legal y del tramitador"},
    {"direccion_institucion", "Dirección exacta de la institución y teléfono de referencia"},
}};
constexpr std::array<Requirement, 11> k_req_legal_34{{
    k_req_legal[0],
    k_req_legal[1],
    k_req_legal[2],
    k_req_legal[3],
    k_req_legal[4],
    k_req_legal[5],
    k_req_legal[6],
    k_req_legal[7],
    k_req_legal[8],
    {"fotocopia_ci", "Fotocopia de C.I."},
    {"formulario_plan_b", "Formulario Plan B"},
}};

// ---- Spanish names of codes (the pages' label_es, otsync-tech's word_es) -----------------

constexpr std::array<CodeLabel, 8> k_case_state_labels{{
    {"opened", "Abierto", "abierto"},
    {"routed", "Derivado", "derivado"},
    {"in_review", "En revisión", "en revisión"},
    {"approved", "Aprobado", "aprobado"},
    {"rejected", "Rechazado", "rechazado"},
    {"in_progress", "En curso", "en curso"},
    {"closed", "Cerrado", "cerrado"},
    {"cancelled", "Anulado", "anulado"},
}};
constexpr std::array<CodeLabel, 7> k_ot_state_labels{{
    {"issued", "Emitida", "emitida"},
    {"assigned", "Asignada", "asignada"},
    {"en_route", "En camino", "en camino"},
    {"on_site", "En sitio", "en sitio"},
    {"completed", "Concluida", "concluida"},
    {"failed", "Visita fallida", "fallida"},
    {"cancelled", "Anulada", "anulada"},
}};
constexpr std::array<CodeLabel, 3> k_handover_state_labels{{
    {"draft", "Borrador", "borrador"},
    {"delivered", "Entregada", "entregada"},
    {"received", "Recibida", "recibida"},
}};
constexpr std::array<CodeLabel, 2> k_conflict_state_labels{{
    {"open", "Abierto", "abierto"},
    {"resolved", "Resuelto", "resuelto"},
}};
constexpr std::array<CodeLabel, 4> k_ot_kind_labels{{
    {"install_ftth", "Instalación FTTH", "instalación FTTH"},
    {"relocate_ftth", "Traslado FTTH", "traslado FTTH"},
    {"withdraw_boot", "Retiro BOOT (baja)", "retiro BOOT (baja)"},
    {"install_copper", "Instalación cobre", "instalación cobre"},
}};
constexpr std::array<CodeLabel, 4> k_modality_labels{{
    {"1", "1 · COMTECO cobre → BOOT FTTH", "1: cobre COMTECO → FTTH BOOT"},
    {"2", "2 · COMTECO FTTH → BOOT FTTH", "2: FTTH COMTECO → FTTH BOOT"},
    {"3", "3 · BOOT FTTH → COMTECO FTTH", "3: FTTH BOOT → FTTH COMTECO"},
    {"4", "4 · BOOT FTTH → COMTECO cobre", "4: FTTH BOOT → cobre COMTECO"},
}};
constexpr std::array<CodeLabel, 4> k_product_labels{{
    {"telefonia_fija", "Telefonía fija", "telefonía fija"},
    {"internet", "Internet", "internet"},
    {"tv_cable", "TV cable", "TV cable"},
    {"duo_multipack", "Duo/Multipack", "Dúo/Multipack"},
}};
constexpr std::array<CodeLabel, 3> k_receipt_labels{{
    {"received", "Recibido", "recibido en almacén"},
    {"missing", "No llegó al almacén", "no llegó al almacén"},
    {"damaged_on_arrival", "Llegó dañado", "recibido dañado"},
}};
// A serial's line in the reconciliation of an OT (server/procedure/views.hpp SerialLine),
// and signature_mismatch: the customer's signature does not name the rows the server holds.
constexpr std::array<CodeLabel, 6> k_line_status_labels{{
    {"matched", "Coincide", "coincide"},
    {"unexpected", "No esperado", "no esperado"},
    {"missing", "Faltante", "faltante"},
    {"damaged", "Dañado", "dañado"},
    {"pending", "Pendiente", "pendiente"},
    {"signature_mismatch", "La firma del cliente no corresponde a las filas",
     "la firma del cliente no corresponde a las filas"},
}};
constexpr std::array<CodeLabel, 2> k_reason_labels{{
    {"migration", "Migración", "migración"},
    {"damaged", "Dañado", "dañado"},
}};

constexpr std::array<FeeRow, 4> k_fees{{
    {"telefonia_fija", k_product_labels[0].label_es, 14628},
    {"internet", k_product_labels[1].label_es, 20000},
    {"tv_cable", k_product_labels[2].label_es, 20000},
    {"duo_multipack", k_product_labels[3].label_es, 20000},
}};

// clang-format off
constexpr std::array<Step, 14> k_steps_m1{{
    {"m1.01", R::customer_service, "Recibe solicitud de traslado (cobre a FTTH BOOT)"},
    {"m1.02", R::customer_service, "Recaba datos del cliente e indica el costo"},
    {"m1.03", R::customer_service, "Envía formulario al Jefe Administrativo Comercial INET"},
    {"m1.04", R::commercial_head, "Deriva la solicitud a un ejecutivo de ventas"},
    {"m1.05", R::sales_executive, "Contacta al cliente"},
    {"m1.06", R::sales_executive, "Verifica factibilidad técnica"},
    {"m1.07", R::sales_executive, "Verifica requisitos (Anexo 2)"},
    {"m1.08", R::sales_executive, "Ingresa la pre venta de traslado"},
    {"m1.09", R::sales_executive, "Indica al cliente que no es posible realizar el traslado"},
    {"m1.10", R::back_office, "Retira el producto (baja por cambio de tecnología)"},
    {"m1.11", R::back_office, "Cambio de datos de contrato: nueva dirección"},
    {"m1.12", R::back_office, "Alta del producto, GPON dato técnico; genera la OT"},
    {"m1.13", R::back_office, "Digita el cobro de traslado"},
    {"m1.14", R::technician, "Instalación FTTH y recojo de equipos de cobre (Anexo 4)"},
}};
constexpr std::array<Step, 13> k_steps_m2{{
    {"m2.01", R::customer_service, "Recibe solicitud de traslado (FTTH COMTECO a BOOT)"},
    {"m2.02", R::customer_service, "Recaba datos del cliente e indica el costo"},
    {"m2.03", R::customer_service, "Envía formulario al Jefe Administrativo Comercial INET"},
    {"m2.04", R::commercial_head, "Deriva la solicitud a un ejecutivo de ventas"},
    {"m2.05", R::sales_executive, "Contacta al cliente"},
    {"m2.06", R::sales_executive, "Verifica factibilidad técnica"},
    {"m2.07", R::sales_executive, "Verifica requisitos (Anexo 2)"},
    {"m2.08", R::sales_executive, "Ingresa la pre venta de traslado"},
    {"m2.09", R::sales_executive, "Indica al cliente que no es posible realizar el traslado"},
    {"m2.10", R::back_office, "Traslado de productos: nueva dirección, dato técnico GIS"},
    {"m2.11", R::back_office, "Cambio de datos de contrato; genera la OT"},
    {"m2.12", R::back_office, "Comunica al cliente que lleve sus equipos a la nueva dirección"},
    {"m2.13", R::technician, "Traslado FTTH y verificación de equipos"},
}};
constexpr std::array<Step, 11> k_steps_m3{{
    {"m3.01", R::sales_executive, "Recibe solicitud de traslado (BOOT a FTTH COMTECO)"},
    {"m3.02", R::sales_executive, "Recaba datos del cliente"},
    {"m3.03", R::sales_executive, "Envía datos a la Encargada de Plataforma"},
    {"m3.04", R::platform_officer, "Deriva la solicitud a un asesor comercial"},
    {"m3.05", R::commercial_advisor, "Verifica requisitos: fotocopia C.I., Formulario Plan B (Anexo 2)"},
    {"m3.06", R::commercial_advisor, "Verifica factibilidad técnica"},
    {"m3.07", R::commercial_advisor, "Traslado de producto: contrato nuevo, plan, observaciones"},
    {"m3.08", R::commercial_advisor, "Comunica al cliente que lleve sus equipos"},
    {"m3.09", R::commercial_advisor, "Resumen de pedido y cobro, confirmación del cliente"},
    {"m3.10", R::commercial_advisor, "Imprime Solicitud de Servicios; genera OT de baja"},
    {"m3.11", R::technician, "Traslado FTTH y verificación de equipos"},
}};
constexpr std::array<Step, 14> k_steps_m4{{
    {"m4.01", R::sales_executive, "Recibe solicitud de traslado (BOOT a cobre COMTECO)"},
    {"m4.02", R::sales_executive, "Recaba datos del cliente"},
    {"m4.03", R::sales_executive, "Envía datos a la Encargada de Plataforma"},
    {"m4.04", R::platform_officer, "Deriva la solicitud a un asesor comercial"},
    {"m4.09", R::commercial_advisor, "Verifica requisitos: fotocopia C.I., Formulario Plan B (Anexo 2)"},
    {"m4.10", R::commercial_advisor, "Verifica factibilidad técnica"},
    {"m4.11", R::commercial_advisor, "Traslado de producto: contrato nuevo, destickea (cambio de tecnología)"},
    {"m4.12", R::commercial_advisor, "Comunica al cliente que devuelva los equipos FTTH al técnico"},
    {"m4.13", R::commercial_advisor, "Resumen de pedido y cobro, confirmación del cliente"},
    {"m4.14", R::commercial_advisor, "Imprime Solicitud de Servicios; genera OT de baja"},
    {"m4.15", R::commercial_advisor, "Gestión de productos: alta en cobre"},
    {"m4.16", R::commercial_advisor, "Verifica consentimiento del cliente"},
    {"m4.17", R::commercial_advisor, "Imprime solicitud de traslado (alta); remite a instalación"},
    {"m4.18", R::technician, "Recojo de GPON y accesorios (Anexo 4) e instalación en cobre"},
}};
// clang-format on

constexpr std::array<std::string_view, 1> k_ots_m1{"install_ftth"};
constexpr std::array<std::string_view, 1> k_ots_m2{"relocate_ftth"};
constexpr std::array<std::string_view, 2> k_ots_m3{"withdraw_boot", "relocate_ftth"};
constexpr std::array<std::string_view, 2> k_ots_m4{"withdraw_boot", "install_copper"};

// What each OT kind does with the customer's equipment, and the OT of each modality that
// carries the contract's equipment (docs/architecture.md §3).
struct KindMode {
    std::string_view kind;
    OtMode mode;
};
constexpr std::array<KindMode, 4> k_ot_modes{{
    {"install_ftth", OtMode::collect},  // the copper equipment comes back (m1)
    {"relocate_ftth", OtMode::verify},  // the customer carried the equipment (m2, m3)
    {"withdraw_boot", OtMode::collect}, // the BOOT GPON and accessories come back (m4)
    {"install_copper", OtMode::none},
}};
constexpr std::array<std::string_view, 4> k_carrying_ot{"install_ftth", "relocate_ftth",
                                                        "relocate_ftth", "withdraw_boot"};

bool contains(std::span<const std::string_view> list, std::string_view s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

} // namespace

std::string_view to_string(Role r) noexcept {
    const auto i = static_cast<std::size_t>(r);
    return i < k_role_names.size() ? k_role_names[i] : std::string_view{};
}

std::optional<Role> role_from_string(std::string_view s) noexcept {
    for (std::size_t i = 0; i < k_role_names.size(); ++i) {
        if (k_role_names[i] == s) {
            return static_cast<Role>(i);
        }
    }
    return std::nullopt;
}

std::string_view label_es(Role r) noexcept {
    const auto i = static_cast<std::size_t>(r);
    return i < k_role_labels.size() ? k_role_labels[i] : std::string_view{};
}

std::string_view to_string(EntityType t) noexcept {
    const auto i = static_cast<std::size_t>(t);
    return i < k_entity_names.size() ? k_entity_names[i] : std::string_view{};
}

std::optional<EntityType> entity_type_from_string(std::string_view s) noexcept {
    for (std::size_t i = k_entity_type_min; i < k_entity_names.size(); ++i) {
        if (k_entity_names[i] == s) {
            return static_cast<EntityType>(i);
        }
    }
    return std::nullopt;
}

std::span<const FieldDef> fields_of(EntityType t) noexcept {
    switch (t) {
    case EntityType::case_file:
        return k_case_fields;
    case EntityType::work_order:
        return k_ot_fields;
    case EntityType::equipment:
        return k_equipment_fields;
    case EntityType::collected_item:
        return k_item_fields;
    case EntityType::handover:
        return k_handover_fields;
    case EntityType::conflict:
        return k_conflict_fields;
    }
    return {};
}

const FieldDef* find_field(EntityType t, FieldId id) noexcept {
    const auto fields = fields_of(t);
    // Ids are dense from 1 in every table (checked by a test).
    if (id >= 1 && id <= fields.size()) {
        return &fields[id - 1u];
    }
    return nullptr;
}

const FieldDef* find_field(EntityType t, std::string_view name) noexcept {
    for (const auto& f : fields_of(t)) {
        if (f.name == name) {
            return &f;
        }
    }
    return nullptr;
}

const FieldDef& field_def(EntityType t, std::string_view name) {
    if (const auto* f = find_field(t, name)) {
        return *f;
    }
    throw Error(ErrorCode::unknown_entity_field,
                std::string(to_string(t)) + " has no field '" + std::string(name) + "'");
}

OpKind write_kind(const FieldDef& f) noexcept {
    switch (f.kind) {
    case FieldKind::register_:
        return OpKind::set;
    case FieldKind::set:
        return OpKind::add;
    case FieldKind::log:
        return OpKind::event;
    }
    return OpKind::set;
}

static bool kind_fits(FieldKind fk, OpKind k) {
    switch (fk) {
    case FieldKind::register_:
        return k == OpKind::set;
    case FieldKind::set:
        return k == OpKind::add || k == OpKind::remove;
    case FieldKind::log:
        return k == OpKind::event;
    }
    return false;
}

std::optional<Error> check_op_schema(const Op& op) {
    if (!is_valid_entity_type(static_cast<std::uint8_t>(op.entity_type))) {
        return Error(ErrorCode::unknown_entity_type, "unknown entity type");
    }
    const FieldDef* f = find_field(op.entity_type, op.field);
    if (!f) {
        return Error(ErrorCode::unknown_entity_field, std::string(to_string(op.entity_type)) +
                                                          " has no field #" +
                                                          std::to_string(op.field));
    }
    const std::string where = std::string(to_string(op.entity_type)) + "." + std::string(f->name);
    if (!kind_fits(f->kind, op.kind)) {
        return Error(ErrorCode::kind_mismatch,
                     where + " does not take '" + std::string(to_string(op.kind)) + "'");
    }
    // A remove carries the add tags it observed; a lifecycle write carries at most one,
    // the status write it replaced; nothing else carries any.
    if (op.kind != OpKind::remove && !op.observed.empty() &&
        !((f->lifecycle || f->tracked) && op.observed.size() == 1)) {
        return Error(
            ErrorCode::kind_mismatch,
            "only a remove, or a status write naming its predecessor, carries observed tags");
    }
    if (op.id.counter == 0) {
        return Error(ErrorCode::invalid_value, "op counters start at 1");
    }
    // A register may be cleared with null; set elements and events need a value.
    const bool null_ok = f->kind == FieldKind::register_ && !f->lifecycle;
    if (type_of(op.value) == ValueType::null) {
        if (null_ok) {
            return std::nullopt;
        }
        return Error(ErrorCode::value_type_mismatch, where + " needs a value");
    }
    if (type_of(op.value) != f->type) {
        return Error(ErrorCode::value_type_mismatch,
                     where + " takes " + std::string(to_string(f->type)) + ", not " +
                         std::string(to_string(type_of(op.value))));
    }
    if (const auto* s = std::get_if<std::string>(&op.value)) {
        if (s->size() > f->max_bytes) {
            return Error(ErrorCode::too_large,
                         where + " is limited to " + std::to_string(f->max_bytes) + " bytes");
        }
        if (!is_valid_utf8(*s)) {
            return Error(ErrorCode::invalid_utf8, where + " is not valid UTF-8");
        }
        // Codes and serials are one token: no control character at all (a scanner's stray
        // Tab or Enter must not reach a serial); longer text keeps only line breaks and tabs.
        const bool one_token = f->max_bytes <= k_short;
        for (const char ch : *s) {
            const auto c = static_cast<unsigned char>(ch);
            if ((c < 0x20 || c == 0x7f) && (one_token || (c != '\n' && c != '\t' && c != '\r'))) {
                return Error(ErrorCode::invalid_value,
                             where + " holds a control character (code " + std::to_string(c) + ")");
            }
        }
        if (!f->allowed.empty() && !contains(f->allowed, *s)) {
            return Error(ErrorCode::invalid_value, where + " does not accept '" + *s + "'");
        }
    } else if (const auto* b = std::get_if<Bytes>(&op.value)) {
        if (b->data.size() > f->max_bytes) {
            return Error(ErrorCode::too_large,
                         where + " is limited to " + std::to_string(f->max_bytes) + " bytes");
        }
    } else if (f->min < f->max) {
        std::int64_t n = 0;
        if (const auto* i = std::get_if<std::int64_t>(&op.value)) {
            n = *i;
        } else if (const auto* m = std::get_if<Money>(&op.value)) {
            n = m->centavos;
        }
        if (n < f->min || n > f->max) {
            return Error(ErrorCode::out_of_range, where + " must be between " +
                                                      std::to_string(f->min) + " and " +
                                                      std::to_string(f->max));
        }
    }
    return std::nullopt;
}

bool permitted(Role role, const FieldDef& f, OpKind kind) noexcept {
    if (!kind_fits(f.kind, kind)) {
        return false;
    }
    const RoleMask mask = kind == OpKind::remove ? f.removers : f.writers;
    return (mask & role_bit(role)) != 0;
}

bool visible_to_technician(const FieldDef& f) noexcept {
    return (f.technician_visible & role_bit(Role::technician)) != 0;
}

const Lifecycle& case_lifecycle() noexcept {
    return k_case_lifecycle;
}
const Lifecycle& work_order_lifecycle() noexcept {
    return k_ot_lifecycle;
}

bool transition_allowed(const Lifecycle& lc, std::string_view from, std::string_view to,
                        Role role) noexcept {
    for (const auto& t : lc.transitions) {
        if (t.from == from && t.to == to) {
            return (t.roles & role_bit(role)) != 0;
        }
    }
    return false;
}

bool is_final(const Lifecycle& lc, std::string_view state) noexcept {
    return contains(lc.finals, state);
}

std::span<const Requirement> requirements_for(PersonType p, int modality) noexcept {
    const bool extra = modality == 3 || modality == 4;
    if (p == PersonType::legal) {
        return extra ? std::span<const Requirement>(k_req_legal_34) : k_req_legal;
    }
    return extra ? std::span<const Requirement>(k_req_natural_34) : k_req_natural;
}

std::span<const FeeRow> default_fee_table() noexcept {
    return k_fees;
}

Money transfer_fee(std::span<const std::string_view> products, std::span<const FeeRow> table) {
    auto price = [&](std::string_view product) -> std::int64_t {
        for (const auto& row : table) {
            if (row.product == product) {
                return row.centavos;
            }
        }
        throw Error(ErrorCode::invalid_value,
                    "no transfer fee for product '" + std::string(product) + "'");
    };
    if (contains(products, "duo_multipack")) {
        return Money{price("duo_multipack")};
    }
    Money total;
    for (auto p : products) {
        total.centavos += price(p);
    }
    return total;
}

std::span<const Step> steps_for(int modality) noexcept {
    switch (modality) {
    case 1:
        return k_steps_m1;
    case 2:
        return k_steps_m2;
    case 3:
        return k_steps_m3;
    case 4:
        return k_steps_m4;
    default:
        return {};
    }
}

std::span<const std::string_view> work_orders_for(int modality) noexcept {
    switch (modality) {
    case 1:
        return k_ots_m1;
    case 2:
        return k_ots_m2;
    case 3:
        return k_ots_m3;
    case 4:
        return k_ots_m4;
    default:
        return {};
    }
}

OtEquipment ot_equipment(int modality, std::string_view kind) noexcept {
    OtEquipment e;
    for (const auto& [k, mode] : k_ot_modes) {
        if (k == kind) {
            e.mode = mode;
        }
    }
    e.carries = modality >= 1 && modality <= static_cast<int>(k_carrying_ot.size()) &&
                k_carrying_ot[static_cast<std::size_t>(modality - 1)] == kind;
    return e;
}

std::span<const CodeLabel> state_labels(EntityType t) noexcept {
    switch (t) {
    case EntityType::case_file:
        return k_case_state_labels;
    case EntityType::work_order:
        return k_ot_state_labels;
    case EntityType::handover:
        return k_handover_state_labels;
    case EntityType::conflict:
        return k_conflict_state_labels;
    default:
        return {};
    }
}

std::span<const CodeLabel> ot_kind_labels() noexcept {
    return k_ot_kind_labels;
}
std::span<const CodeLabel> modality_labels() noexcept {
    return k_modality_labels;
}
std::span<const CodeLabel> product_labels() noexcept {
    return k_product_labels;
}
std::span<const CodeLabel> receipt_labels() noexcept {
    return k_receipt_labels;
}
std::span<const CodeLabel> reason_labels() noexcept {
    return k_reason_labels;
}
std::span<const CodeLabel> line_status_labels() noexcept {
    return k_line_status_labels;
}

const CodeLabel* find_label(std::span<const CodeLabel> table, std::string_view code) noexcept {
    for (const auto& l : table) {
        if (l.code == code) {
            return &l;
        }
    }
    return nullptr;
}

const Lifecycle* lifecycle_of(EntityType t) noexcept {
    const FieldDef* f = find_field(t, std::string_view("status"));
    return f ? f->lifecycle : nullptr;
}

} // namespace otsync
