// Office: fees, the inventory, reports, conflicts, users and devices; see office.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

Money detail::fee_at(Store& store, const std::vector<std::string>& products, std::int64_t at_ms) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> current; // product -> (from, c)
    for (const auto& row : store.fee_records()) {
        if (row.effective_from <= at_ms) {
            auto& slot = current[row.product];
            if (row.effective_from >= slot.first) {
                slot = {row.effective_from, row.centavos};
            }
        }
    }
    std::vector<FeeRow> table;
    for (const auto& d : default_fee_table()) {
        if (auto it = current.find(std::string(d.product)); it != current.end()) {
            table.push_back({d.product, d.label_es, it->second.second});
        }
    }
    std::vector<std::string_view> views(products.begin(), products.end());
    try {
        return transfer_fee(views, table);
    } catch (const Error& e) {
        throw Error(ErrorCode::invalid_value, e.message(), "products");
    }
}

FeeTable Office::fees(const FeeQuery& q) {
    FeeTable t;
    t.at = q.at_ms.value_or(static_cast<std::int64_t>(m_clock.now_ms()));
    t.history = m_store.fee_records();
    for (const auto& d : default_fee_table()) {
        const FeeRecord* best = nullptr;
        for (const auto& r : t.history) {
            if (r.product == d.product && r.effective_from <= t.at &&
                (!best || r.effective_from >= best->effective_from)) {
                best = &r;
            }
        }
        if (best) {
            t.rows.push_back({std::string(d.product), std::string(d.label_es), best->centavos,
                              best->effective_from});
        }
    }
    if (!q.quote.empty()) {
        t.quote = fee_at(m_store, q.quote, t.at).centavos;
    }
    return t;
}

void Office::put_fee(const User& actor, const PutFeeCmd& cmd) {
    bool known = false;
    for (const auto& d : default_fee_table()) {
        known = known || d.product == cmd.product;
    }
    if (!known) {
        throw Error(ErrorCode::invalid_value,
                    "product is telefonia_fija, internet, tv_cable or duo_multipack", "product");
    }
    if (actor.role != Role::supervisor) {
        throw Error(ErrorCode::permission_denied, "only a supervisor edits the fee table");
    }
    FeeRecord r;
    r.product = cmd.product;
    r.effective_from = cmd.effective_from;
    r.centavos = cmd.centavos;
    r.set_by = actor.id;
    r.set_at = static_cast<std::int64_t>(m_clock.now_ms());
    m_store.put_fee_record(r);
}

ImportResult Office::import_inventory(std::string_view csv) {
    return import_inventory_csv(csv, m_store, static_cast<std::int64_t>(m_clock.now_ms()),
                                m_config.import_limits);
}

ContractDetail Office::contract_detail(const std::string& number) {
    const auto c = m_store.contract(number);
    if (!c) {
        throw not_found("no contract " + number + " in the inventory");
    }
    const auto items = m_store.inventory_of(number);
    for (const auto& it : items) {
        m_sync.bring_back(Id::natural("equipment", it.serial)); // custody of an old case
    }
    const auto names = m_sync.directory().current(); // read before the service lock
    ContractDetail out;
    out.contract = *c;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& it : items) {
            ContractEquipment e;
            e.serial = it.serial;
            e.kind = it.kind;
            e.model = it.model;
            e.description = it.description;
            e.custody = "customer";
            if (const auto* log =
                    r.log(CF::equipment, Id::natural("equipment", it.serial), "custody");
                log && !log->events.empty() &&
                std::holds_alternative<std::string>(log->events.rbegin()->second)) {
                e.custody = std::get<std::string>(log->events.rbegin()->second);
            }
            // In a technician's custody: who holds it, the collector of its open row (the
            // latest collected, not voided, not yet arrived), whoever has that row's OT now.
            std::optional<Id> holder;
            if (e.custody == "technician") {
                std::int64_t latest = -1;
                for (const Id& item : r.referrers(CF::collected_item, "serial",
                                                  Value{normalize_serial(it.serial)})) {
                    const auto T = CF::collected_item;
                    const std::string receipt = text_of(r, T, item, "receipt");
                    const auto at = time_of(r, T, item, "collected_at").value_or(0);
                    if (!is_true(r, T, item, "voided") && receipt != "received" &&
                        receipt != "damaged_on_arrival" && at > latest) {
                        latest = at;
                        holder = collector_of(r, item);
                    }
                }
            }
            if (holder) {
                e.held_by = names->label(*holder);
            }
            out.equipment.push_back(std::move(e));
        }
    });
    return out;
}

Indicators Office::indicators(const IndicatorQuery& q) {
    IndicatorQuery iq = q;
    iq.tz_offset_minutes = m_config.tz_offset_minutes;
    iq.now_ms = static_cast<std::int64_t>(m_clock.now_ms());
    iq.reconcile = reconcile_options();
    Indicators ind;
    // Archived cases count as they were archived (a case in memory again counts as it is).
    std::vector<CaseFigure> archived;
    for (const auto& a : m_store.archived_cases(iq.from_ms, iq.to_ms)) {
        if (auto f = case_figure_from_json(a.figure)) {
            archived.push_back(std::move(*f));
        }
    }
    m_sync.read_state([&](const crdt::Replica& r) { ind = compute_indicators(r, iq, archived); });
    return ind;
}

DiscrepancyList Office::discrepancies(const DiscrepancyFilter& filter) {
    DiscrepancyList out;
    out.names = m_sync.directory().current(); // read before the service lock
    const auto& names = *out.names;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const Id& ot : r.entities(CF::work_order)) {
            const auto rec = reconcile_ot(r, ot, reconcile_options());
            // One item: the OT, its case and contract, who answers for the line (the row's
            // collector, else the OT's technician) and the line.
            const auto item = [&](const SerialLine& l) {
                Discrepancy d;
                d.ot = ot;
                d.case_id = rec.case_id;
                d.contract = text_of(r, CF::case_file, rec.case_id, "contract");
                const auto t =
                    l.collected_by ? l.collected_by : id_of(r, CF::work_order, ot, "technician");
                d.technician = t ? names.label(*t) : std::string();
                d.line = l;
                out.items.push_back(std::move(d));
            };
            if (rec.signature_mismatch) {
                // Not a serial's problem but the Anexo 4's: one line for the whole OT.
                SerialLine l;
                l.status = "signature_mismatch";
                item(l);
            }
            for (const auto& l : rec.lines) {
                const bool issue = (l.status != "matched" && l.status != "pending") ||
                                   l.collected_twice || l.overdue ||
                                   (!l.receipt.empty() && l.receipt != "received");
                if (issue && (filter.all || !l.settled || l.collected_twice)) {
                    item(l);
                }
            }
        }
    });
    return out;
}

namespace {

Id conflict_id(const crdt::LifecycleConflict& c) {
    std::string key = std::string(to_string(c.entity.type)) + " " + c.entity.id.hex() + " " +
                      std::to_string(c.field);
    for (const auto& [k, s] : c.finals) {
        key += " " + std::to_string(k.replica) + ":" + std::to_string(k.counter);
    }
    return Id::natural("conflict", key);
}

} // namespace

ConflictList Office::conflicts() {
    ConflictList out;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& c : r.conflicts()) {
            ConflictSummary s;
            s.id = conflict_id(c);
            const FieldDef* f = find_field(c.entity.type, c.field);
            s.entity_type = c.entity.type;
            s.entity = c.entity.id;
            s.field = f ? std::string(f->name) : std::string();
            s.label = f ? std::string(f->label_es) : std::string();
            s.winner = c.winner;
            for (const auto& [k, value] : c.finals) {
                s.values.push_back({value, static_cast<std::int64_t>(hlc_ms(k.hlc)), k.replica});
            }
            const std::string status = text_of(r, CF::conflict, s.id, "status");
            s.status = status.empty() ? "open" : status;
            s.resolution = text_of(r, CF::conflict, s.id, "resolution");
            out.conflicts.push_back(std::move(s));
        }
    });
    return out;
}

void Office::resolve_conflict(const User& actor, const ResolveConflictCmd& cmd) {
    std::optional<crdt::LifecycleConflict> found;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& c : r.conflicts()) {
            if (conflict_id(c) == cmd.conflict) {
                found = c;
            }
        }
    });
    if (!found) {
        throw not_found("no conflict " + cmd.conflict.hex());
    }
    const Id id = conflict_id(*found);
    const FieldDef* f = find_field(found->entity.type, found->field);
    std::string others;
    for (const auto& [k, s] : found->finals) {
        others += (others.empty() ? "" : " | ") + s;
    }
    // The server records the conflict (system), then the person resolves it.
    run(m_sync, system_user(), [&](Batch& b) {
        if (!b.status_of(CF::conflict, id).empty()) {
            return;
        }
        b.set(CF::conflict, id, "entity_type", text(std::string(to_string(found->entity.type))));
        b.set(CF::conflict, id, "entity", found->entity.id);
        b.set(CF::conflict, id, "field", text(f ? std::string(f->name) : std::string()));
        b.set(CF::conflict, id, "winner", text(found->winner.substr(0, 500)));
        b.set(CF::conflict, id, "others", text(others.substr(0, 4000)));
        b.set(CF::conflict, id, "detected_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        b.status(CF::conflict, id, "open");
    });
    run(m_sync, actor, [&](Batch& b) {
        if (b.status_of(CF::conflict, id) == "resolved") {
            throw Error(ErrorCode::conflict, "this conflict is already resolved");
        }
        b.set(CF::conflict, id, "resolution", text(cmd.resolution));
        b.set(CF::conflict, id, "resolved_by", actor.id);
        b.status(CF::conflict, id, "resolved");
    });
}

UserList Office::users() {
    UserList out;
    for (const auto& u : m_store.users()) {
        out.users.push_back({u.id, u.name, u.full_name, u.role, u.unit, u.disabled});
    }
    return out;
}

ServerState Office::server_state() {
    const auto s = m_sync.state_summary();
    return {s.applied_seq, m_store.last_seq(), s.digest, s.entities};
}

DeviceList Office::devices() {
    DeviceList out;
    out.server_seq = m_store.last_seq();
    const auto names = m_sync.directory().current();
    for (const auto& d : m_store.devices()) {
        DeviceSummary s;
        s.replica = d.replica;
        s.user = names->label(d.user);
        s.label = d.label;
        s.status = d.status;
        s.last_seen = d.last_seen;
        s.cursor = d.cursor;
        const User* user = names->find(d.user);
        s.behind = user && user->role == Role::technician
                       ? m_store.feed_count_after(d.user, d.cursor)
                       : (out.server_seq > d.cursor ? out.server_seq - d.cursor : 0);
        s.enrolled_at = d.enrolled_at;
        out.devices.push_back(std::move(s));
    }
    return out;
}

} // namespace otsync::server
