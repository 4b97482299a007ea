// The OTs the handheld benches assign: what `otsync-bench client` and `otsync-bench field`
// download, in one shape.
#pragma once

#include "otsync/crdt.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace otsync::bench {

/// The ops of OT `ot` number `i` of case `c`, assigned to `tech`: the case's customer name
/// and reference cell, kind, address, window, technician, status issued then assigned (its
/// expected serials are the caller's).
inline void add_assigned_ot(crdt::OpMaker& m, std::vector<Op>& ops, const Id& ot, const Id& c,
                            const Id& tech, std::size_t i) {
    ops.push_back(
        m.set(EntityType::case_file, c, "customer_name", text("Cliente " + std::to_string(i))));
    ops.push_back(
        m.set(EntityType::case_file, c, "reference_cell", text("7071" + std::to_string(i))));
    ops.push_back(m.set(EntityType::work_order, ot, "case", c));
    ops.push_back(m.set(EntityType::work_order, ot, "kind", text("withdraw_boot")));
    ops.push_back(
        m.set(EntityType::work_order, ot, "address", text("Av. Ayacucho " + std::to_string(i))));
    ops.push_back(m.set(EntityType::work_order, ot, "window_start", Timestamp{1'795'000'000'000}));
    ops.push_back(m.set(EntityType::work_order, ot, "technician", tech));
    Op issued = m.set(EntityType::work_order, ot, "status", text("issued"));
    Op assigned = m.set(EntityType::work_order, ot, "status", text("assigned"));
    assigned.observed = {issued.id};
    ops.push_back(issued);
    ops.push_back(assigned);
}

} // namespace otsync::bench
