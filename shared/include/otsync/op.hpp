// Ops: every change anywhere is one. An op is identified by (replica, counter) and
// ordered by (hlc, replica, counter), a total order every replica agrees on.
#pragma once

#include "otsync/hlc.hpp"
#include "otsync/id.hpp"
#include "otsync/value.hpp"

#include <compare>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace otsync {

/// Replica 0 is the server; devices get their replica id at enrollment.
constexpr std::uint64_t k_server_replica = 0;

struct OpId {
    std::uint64_t replica = 0;
    std::uint64_t counter = 0; // strictly increasing per replica, from 1
    auto operator<=>(const OpId&) const = default;
};

/// The total order of ops: last writer wins by this key.
struct OrderKey {
    HlcTime hlc = 0;
    std::uint64_t replica = 0;
    std::uint64_t counter = 0;
    auto operator<=>(const OrderKey&) const = default;
    OpId op_id() const { return {replica, counter}; }
};

enum class OpKind : std::uint8_t {
    set = 0,    // register write: last writer wins
    add = 1,    // observed-remove set: add (wins over a concurrent remove)
    remove = 2, // observed-remove set: removes the add tags it observed
    event = 3,  // append-only log entry
};
constexpr std::uint8_t k_op_kind_count = 4;
std::string_view to_string(OpKind k) noexcept;

enum class EntityType : std::uint8_t {
    case_file = 1, // a transfer case ("caso"); `case` is a C++ keyword
    work_order = 2,
    equipment = 3,
    collected_item = 4,
    handover = 5,
    conflict = 6,
};
constexpr std::uint8_t k_entity_type_min = 1;
constexpr std::uint8_t k_entity_type_max = 6;

using FieldId = std::uint16_t;

struct Op {
    OpId id;
    HlcTime hlc = 0;
    Id author; // the user who made the change, for audit
    EntityType entity_type = EntityType::case_file;
    Id entity;
    FieldId field = 0;
    OpKind kind = OpKind::set;
    Value value;
    std::vector<OpId> observed; // for remove: the add tags the remover saw

    OrderKey order_key() const { return {hlc, id.replica, id.counter}; }
    bool operator==(const Op&) const = default;
};

} // namespace otsync

template <>
struct std::hash<otsync::OpId> {
    std::size_t operator()(const otsync::OpId& id) const noexcept {
        return static_cast<std::size_t>(id.replica * 0x9E3779B97F4A7C15ull ^ id.counter);
    }
};
