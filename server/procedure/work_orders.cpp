// WorkOrders: the OT list and detail, assignment, cancelling, missing reasons; see work_orders.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

namespace {

/// A copy of an entity's state, for a read model to render outside the service lock.
std::optional<crdt::Entity> state_of(const crdt::Replica& r, EntityType t, const Id& id) {
    const crdt::Entity* e = r.entity(t, id);
    return e ? std::optional<crdt::Entity>(*e) : std::nullopt;
}

void require_ot(const crdt::Replica& r, const Id& ot) {
    if (text_of(r, CF::work_order, ot, "status").empty()) {
        throw not_found("no OT " + ot.hex());
    }
}

} // namespace

// ---- OTs ----------------------------------------------------------------------------------------

OtList WorkOrders::list_ots(const OtFilter& filter) {
    std::optional<Id> want_tech;
    if (!filter.technician.empty()) {
        auto u = m_store.user_by_name(filter.technician);
        if (!u) {
            throw not_found("no user named '" + filter.technician + "'");
        }
        want_tech = u->id;
    }
    OtList out;
    const auto names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& ot : r.entities(CF::work_order)) {
            const std::string status = text_of(r, CF::work_order, ot, "status");
            if (status.empty() || (!filter.status.empty() && status != filter.status)) {
                continue;
            }
            const auto tech = id_of(r, CF::work_order, ot, "technician");
            if (want_tech && tech != want_tech) {
                continue;
            }
            const auto c = id_of(r, CF::work_order, ot, "case");
            if (filter.case_id && c != filter.case_id) {
                continue;
            }
            found.emplace_back(time_of(r, CF::work_order, ot, "issued_at").value_or(0), ot);
        }
        out.total = keep_newest(found, filter.limit); // newest first
        out.ots.reserve(found.size());
        for (const auto& [issued, ot] : found) {
            OtSummary s;
            s.id = ot;
            s.case_id = id_of(r, CF::work_order, ot, "case");
            if (s.case_id) {
                s.contract = text_of(r, CF::case_file, *s.case_id, "contract");
            }
            s.kind = text_of(r, CF::work_order, ot, "kind");
            s.status = text_of(r, CF::work_order, ot, "status");
            s.address = text_of(r, CF::work_order, ot, "address");
            if (const auto tech = id_of(r, CF::work_order, ot, "technician")) {
                s.technician = names->label(*tech);
            }
            s.issued_at = issued;
            out.ots.push_back(std::move(s));
        }
    });
    return out;
}

OtDetail WorkOrders::ot_detail(const Id& ot) {
    m_sync.bring_back(ot); // an archived case opened again
    OtDetail d;
    d.id = ot;
    d.names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        require_ot(r, ot);
        d.state = state_of(r, CF::work_order, ot);
        d.technician = id_of(r, CF::work_order, ot, "technician");
        d.reconciliation = reconcile_ot(r, ot, reconcile_options());
    });
    return d;
}

void WorkOrders::assign_ot(const User& actor, const Id& ot, const AssignOtCmd& cmd) {
    m_sync.bring_back(ot); // an archived case opened again
    const User tech =
        find_user(*m_sync.directory().current(), cmd.technician, Role::technician, "technician");
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::work_order, ot).empty()) {
            throw not_found("no OT " + ot.hex());
        }
        b.set(CF::work_order, ot, "technician", tech.id);
        b.status(CF::work_order, ot, "assigned");
    });
}

void WorkOrders::cancel_ot(const User& actor, const Id& ot, const CancelOtCmd& cmd) {
    m_sync.bring_back(ot); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::work_order, ot).empty()) {
            throw not_found("no OT " + ot.hex());
        }
        b.status(CF::work_order, ot, "cancelled");
        b.event(CF::work_order, ot, "notes", text("Anulada: " + cmd.reason));
    });
}

void WorkOrders::missing_reason(const User& actor, const Id& ot, const MissingReasonCmd& cmd) {
    m_sync.bring_back(ot); // an archived case opened again
    const std::string serial = normalize_serial(cmd.serial);
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::work_order, ot).empty()) {
            throw not_found("no OT " + ot.hex());
        }
        const auto rec = reconcile_ot(b.r, ot, reconcile_options());
        bool found = false;
        for (const auto& line : rec.lines) {
            found = found || (line.serial == serial && line.expected && !line.item &&
                              line.status != "matched");
        }
        if (!found) {
            throw Error(ErrorCode::invalid_value,
                        serial + " is not an expected serial missing from this OT", "serial");
        }
        b.event(CF::work_order, ot, "missing_reasons", text(serial + ": " + cmd.reason));
    });
}

OtReconciliationView WorkOrders::ot_reconciliation(const Id& ot) {
    m_sync.bring_back(ot); // an archived case opened again
    OtReconciliationView v;
    v.names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        require_ot(r, ot);
        v.reconciliation = reconcile_ot(r, ot, reconcile_options());
    });
    return v;
}

void WorkOrders::resolve_item(const User& actor, const Id& item, const ResolveItemCmd& cmd) {
    m_sync.bring_back(item); // an archived case opened again
    run(m_sync, actor, [&](Batch& b) {
        const auto ot = id_of(b.r, CF::collected_item, item, "work_order");
        if (!ot) {
            throw not_found("no collected item " + item.hex());
        }
        b.set(CF::collected_item, item, "resolution", text(cmd.resolution));
    });
}

CollectedItemView WorkOrders::item_detail(const Id& item) {
    m_sync.bring_back(item); // an archived case opened again
    CollectedItemView v;
    v.id = item;
    m_sync.read_state([&](const crdt::Replica& r) {
        if (!id_of(r, CF::collected_item, item, "work_order")) {
            throw not_found("no collected item " + item.hex());
        }
        v.state = state_of(r, CF::collected_item, item);
    });
    return v;
}

} // namespace otsync::server
