// WorkOrders: the OT list and detail, assignment, cancelling, missing reasons; see work_orders.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

// ---- OTs ----------------------------------------------------------------------------------------

std::string WorkOrders::list_ots(const std::map<std::string, std::string>& q) {
    const std::string want_status = query_of(q, "status");
    const std::string want_case = query_of(q, "case");
    std::optional<Id> want_tech;
    if (auto name = query_of(q, "technician"); !name.empty()) {
        auto u = m_store.user_by_name(name);
        if (!u) {
            throw not_found("no user named '" + name + "'");
        }
        want_tech = u->id;
    }
    const std::size_t limit = parse_limit(q); // the newest; `total` says how many matched
    std::size_t total = 0;
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("ots");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& ot : r.entities(CF::work_order)) {
            const std::string status = text_of(r, CF::work_order, ot, "status");
            if (status.empty() || (!want_status.empty() && status != want_status)) {
                continue;
            }
            const auto tech = id_of(r, CF::work_order, ot, "technician");
            if (want_tech && tech != want_tech) {
                continue;
            }
            const auto c = id_of(r, CF::work_order, ot, "case");
            if (!want_case.empty() && (!c || c->hex() != want_case)) {
                continue;
            }
            found.emplace_back(time_of(r, CF::work_order, ot, "issued_at").value_or(0), ot);
        }
        std::sort(found.rbegin(), found.rend()); // newest first
        total = found.size();
        if (found.size() > limit) {
            found.resize(limit);
        }
        for (const auto& [issued, ot] : found) {
            const std::string status = text_of(r, CF::work_order, ot, "status");
            const auto tech = id_of(r, CF::work_order, ot, "technician");
            const auto c = id_of(r, CF::work_order, ot, "case");
            w.StartObject();
            w.Key("id");
            str(w, ot.hex());
            w.Key("case");
            str(w, c ? c->hex() : std::string());
            w.Key("contract");
            str(w, c ? text_of(r, CF::case_file, *c, "contract") : std::string());
            w.Key("kind");
            str(w, text_of(r, CF::work_order, ot, "kind"));
            w.Key("status");
            str(w, status);
            w.Key("address");
            str(w, text_of(r, CF::work_order, ot, "address"));
            w.Key("technician");
            if (tech) {
                str(w, names->label(*tech));
            } else {
                w.Null();
            }
            w.Key("issued_at");
            w.Int64(issued);
            w.EndObject();
        }
    });
    w.EndArray();
    w.Key("total");
    w.Uint64(total);
    w.EndObject();
    return sb.GetString();
}

std::string WorkOrders::ot_detail(const Id& ot) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        if (text_of(r, CF::work_order, ot, "status").empty()) {
            throw not_found("no OT " + ot.hex());
        }
        w.StartObject();
        w.Key("id");
        str(w, ot.hex());
        w.Key("fields");
        raw(w, fields_json(r, CF::work_order, ot));
        w.Key("technician_name");
        if (auto t = id_of(r, CF::work_order, ot, "technician")) {
            str(w, names->label(*t));
        } else {
            w.Null();
        }
        w.Key("reconciliation");
        write_reconciliation(w, reconcile_ot(r, ot, reconcile_options()), *names);
        w.EndObject();
    });
    return sb.GetString();
}

std::string WorkOrders::assign_ot(const User& actor, const Id& ot, const std::string& body) {
    JsonBody j(body);
    const std::string name = j.req_text("technician", 200);
    j.done();
    const User tech =
        find_user(*m_sync.directory().current(), name, Role::technician, "technician");
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::work_order, ot).empty()) {
            throw not_found("no OT " + ot.hex());
        }
        b.set(CF::work_order, ot, "technician", tech.id);
        b.status(CF::work_order, ot, "assigned");
    });
    return ot_detail(ot);
}

std::string WorkOrders::cancel_ot(const User& actor, const Id& ot, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::work_order, ot).empty()) {
            throw not_found("no OT " + ot.hex());
        }
        b.status(CF::work_order, ot, "cancelled");
        b.event(CF::work_order, ot, "notes", text("Anulada: " + reason));
    });
    return ot_detail(ot);
}

std::string WorkOrders::missing_reason(const User& actor, const Id& ot, const std::string& body) {
    JsonBody j(body);
    const std::string serial = normalize_serial(j.req_text("serial", 64));
    const std::string reason = j.req_text("reason", 400);
    j.done();
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
        b.event(CF::work_order, ot, "missing_reasons", text(serial + ": " + reason));
    });
    return ot_detail(ot);
}

std::string WorkOrders::ot_reconciliation(const Id& ot) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        if (text_of(r, CF::work_order, ot, "status").empty()) {
            throw not_found("no OT " + ot.hex());
        }
        write_reconciliation(w, reconcile_ot(r, ot, reconcile_options()), *names);
    });
    return sb.GetString();
}

std::string WorkOrders::resolve_item(const User& actor, const Id& item, const std::string& body) {
    JsonBody j(body);
    const std::string resolution = j.req_text("resolution", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        const auto ot = id_of(b.r, CF::collected_item, item, "work_order");
        if (!ot) {
            throw not_found("no collected item " + item.hex());
        }
        b.set(CF::collected_item, item, "resolution", text(resolution));
    });
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state(
        [&](const crdt::Replica& r) { raw(w, entity_json(r, CF::collected_item, item)); });
    return sb.GetString();
}

} // namespace otsync::server
