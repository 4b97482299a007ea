// Read-side views of a replica's state as JSON, for projections, pages and CLIs.
#pragma once

#include "otsync/crdt.hpp"
#include "otsync/crypto.hpp"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace otsync {

/// The entity's current state as one JSON object: {"type":..,"id":..,"fields":{name: value}}.
/// Registers give their value (tagged as in the codec), sets their live elements, logs
/// their events in op order as {"at": hlc ms, "replica": r, "value": ...}.
/// `technician_view` leaves out the fields a technician's scope does not include.
std::string entity_json(const crdt::Replica& r, EntityType t, const Id& id,
                        bool technician_view = false);

/// Only the "fields" object of entity_json, for callers that embed it in their own answer.
std::string fields_json(const crdt::Replica& r, EntityType t, const Id& id,
                        bool technician_view = false);

/// The same of an entity's state held apart from its replica (a read model's copy); null: {}.
std::string fields_json(EntityType t, const crdt::Entity* e, bool technician_view = false);

/// A value as plain JSON for people and pages: text as a string, money as a number of
/// centavos, ids as hex, bytes as base64, timestamps as ms.
std::string value_json(const Value& v);

/// Register readers: the value when the register is set and of that type, else empty,
/// false or nullopt.
std::string text_of(const Value* v);
std::string text_of(const crdt::Replica& r, EntityType t, const Id& id, std::string_view field);
std::optional<Id> id_of(const crdt::Replica& r, EntityType t, const Id& id, std::string_view field);
std::optional<std::int64_t> time_of(const crdt::Replica& r, EntityType t, const Id& id,
                                    std::string_view field);
/// A boolean register that is set and true (a row voided, feasibility yes).
bool is_true(const crdt::Replica& r, EntityType t, const Id& id, std::string_view field);

/// The "SERIAL: reason" entries of an OT's missing_reasons log, latest per serial.
std::map<std::string, std::string> missing_reasons(const crdt::Replica& r, const Id& ot);

/// The OT's rows that are not void, as (item, serial), by serial.
std::vector<std::pair<Id, std::string>> signed_rows(const crdt::Replica& r, const Id& ot);

/// What the customer's signature binds (docs/protocol.md §6.3): BLAKE2b-256 of one line
/// "<item id hex> <serial>\n" per row of signed_rows, in that order. The device signs
/// it; the server recomputes it from the rows it holds.
Hash256 rows_hash(const crdt::Replica& r, const Id& ot);
/// A handover's rows (its `rows` set) as (item, serial), by serial: what its technician
/// signs over when delivering it (delivered_rows_hash = rows_hash of these).
std::vector<std::pair<Id, std::string>> delivered_rows(const crdt::Replica& r, const Id& h);
/// The same over rows already listed (item, serial), in the order given.
Hash256 rows_hash(const std::vector<std::pair<Id, std::string>>& rows);

} // namespace otsync
