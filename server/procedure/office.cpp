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

std::string Office::fees(const std::map<std::string, std::string>& q) {
    std::int64_t at = static_cast<std::int64_t>(m_clock.now_ms());
    if (auto s = query_of(q, "at"); !s.empty()) {
        const auto d = parse_local_date(s, m_config.tz_offset_minutes);
        if (!d) {
            throw Error(ErrorCode::invalid_value, "at is a date YYYY-MM-DD", "at");
        }
        at = *d + 86400000 - 1; // the table in force on that day
    }
    const auto records = m_store.fee_records();
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("at");
    w.Int64(at);
    w.Key("rows");
    w.StartArray();
    for (const auto& d : default_fee_table()) {
        const FeeRecord* best = nullptr;
        for (const auto& r : records) {
            if (r.product == d.product && r.effective_from <= at &&
                (!best || r.effective_from >= best->effective_from)) {
                best = &r;
            }
        }
        if (!best) {
            continue;
        }
        w.StartObject();
        w.Key("product");
        str(w, d.product);
        w.Key("label");
        str(w, d.label_es);
        w.Key("centavos");
        w.Int64(best->centavos);
        w.Key("effective_from");
        w.Int64(best->effective_from);
        w.EndObject();
    }
    w.EndArray();
    w.Key("history");
    w.StartArray();
    for (const auto& r : records) {
        w.StartObject();
        w.Key("product");
        str(w, r.product);
        w.Key("centavos");
        w.Int64(r.centavos);
        w.Key("effective_from");
        w.Int64(r.effective_from);
        w.Key("set_at");
        w.Int64(r.set_at);
        w.EndObject();
    }
    w.EndArray();
    if (auto products = query_of(q, "products"); !products.empty()) {
        std::vector<std::string> list;
        std::size_t start = 0;
        while (start <= products.size()) {
            const auto comma = products.find(',', start);
            list.push_back(products.substr(start, comma - start));
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
        w.Key("quote");
        w.Int64(fee_at(m_store, list, at).centavos);
    }
    w.EndObject();
    return sb.GetString();
}

std::string Office::put_fee(const User& actor, const std::string& body) {
    JsonBody j(body);
    const std::string product = j.req_text("product", 64);
    const auto centavos = *j.integer("centavos", 0, 100000000, true);
    const std::string from = j.req_text("effective_from", 10);
    j.done();
    bool known = false;
    for (const auto& d : default_fee_table()) {
        known = known || d.product == product;
    }
    if (!known) {
        throw Error(ErrorCode::invalid_value,
                    "product is telefonia_fija, internet, tv_cable or duo_multipack", "product");
    }
    const auto at = parse_local_date(from, m_config.tz_offset_minutes);
    if (!at) {
        throw Error(ErrorCode::invalid_value, "effective_from is a date YYYY-MM-DD",
                    "effective_from");
    }
    if (actor.role != Role::supervisor) {
        throw Error(ErrorCode::permission_denied, "only a supervisor edits the fee table");
    }
    FeeRecord r;
    r.product = product;
    r.effective_from = *at;
    r.centavos = centavos;
    r.set_by = actor.id;
    r.set_at = static_cast<std::int64_t>(m_clock.now_ms());
    m_store.put_fee_record(r);
    return fees(no_query);
}

ImportResult Office::import_inventory(std::string_view csv) {
    return import_inventory_csv(csv, m_store, static_cast<std::int64_t>(m_clock.now_ms()),
                                m_config.import_limits);
}

std::string Office::contract_detail(const std::string& number) {
    const auto c = m_store.contract(number);
    if (!c) {
        throw not_found("no contract " + number + " in the inventory");
    }
    const auto items = m_store.inventory_of(number);
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("contract");
    str(w, c->contract);
    w.Key("customer_name");
    str(w, c->customer_name);
    w.Key("person_type");
    str(w, c->person_type);
    w.Key("tax_id");
    str(w, c->tax_id);
    w.Key("address");
    str(w, c->address);
    w.Key("equipment");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& it : items) {
            w.StartObject();
            w.Key("serial");
            str(w, it.serial);
            w.Key("kind");
            str(w, it.kind);
            w.Key("model");
            str(w, it.model);
            w.Key("description");
            str(w, it.description);
            w.Key("custody");
            std::string custody = "customer";
            if (const auto* log =
                    r.log(CF::equipment, Id::natural("equipment", it.serial), "custody");
                log && !log->events.empty() &&
                std::holds_alternative<std::string>(log->events.rbegin()->second)) {
                custody = std::get<std::string>(log->events.rbegin()->second);
            }
            str(w, custody);
            // In a technician's custody: who holds it, the collector of its open row (the
            // latest collected, not voided, not yet arrived), whoever has that row's OT now.
            w.Key("held_by");
            std::optional<Id> holder;
            if (custody == "technician") {
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
                str(w, names->label(*holder));
            } else {
                w.Null();
            }
            w.EndObject();
        }
    });
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string Office::indicators(const std::map<std::string, std::string>& q, bool csv) {
    IndicatorQuery iq;
    iq.tz_offset_minutes = m_config.tz_offset_minutes;
    const auto from = parse_local_date(query_of(q, "from"), iq.tz_offset_minutes);
    const auto to = parse_local_date(query_of(q, "to"), iq.tz_offset_minutes);
    if (!from) {
        throw Error(ErrorCode::invalid_value, "from is a date YYYY-MM-DD", "from");
    }
    if (!to) {
        throw Error(ErrorCode::invalid_value, "to is a date YYYY-MM-DD", "to");
    }
    if (*to < *from) {
        throw Error(ErrorCode::invalid_value, "to is before from", "to");
    }
    iq.from_ms = *from;
    iq.to_ms = *to + 86400000; // the whole last day
    iq.unit = query_of(q, "unit");
    iq.now_ms = static_cast<std::int64_t>(m_clock.now_ms());
    iq.reconcile = reconcile_options();
    Indicators ind;
    m_sync.read_state([&](const crdt::Replica& r) { ind = compute_indicators(r, iq); });
    return csv ? indicators_csv(ind) : indicators_json(ind);
}

std::string Office::discrepancies(const std::map<std::string, std::string>& q) {
    const bool all = query_of(q, "all") == "1";
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("items");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const Id& ot : r.entities(CF::work_order)) {
            const auto rec = reconcile_ot(r, ot, reconcile_options());
            // One item: the OT, its case and contract, who answers for the line (the row's
            // collector, else the OT's technician) and the line.
            const auto item = [&](const SerialLine& l) {
                w.StartObject();
                w.Key("ot");
                str(w, ot.hex());
                w.Key("case");
                str(w, rec.case_id.hex());
                w.Key("contract");
                str(w, text_of(r, CF::case_file, rec.case_id, "contract"));
                w.Key("technician");
                const auto t =
                    l.collected_by ? l.collected_by : id_of(r, CF::work_order, ot, "technician");
                str(w, t ? names->label(*t) : std::string());
                w.Key("line");
                write_line(w, l, *names);
                w.EndObject();
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
                if (issue && (all || !l.settled || l.collected_twice)) {
                    item(l);
                }
            }
        }
    });
    w.EndArray();
    w.EndObject();
    return sb.GetString();
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

std::string Office::conflicts() {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("conflicts");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& c : r.conflicts()) {
            const Id id = conflict_id(c);
            const FieldDef* f = find_field(c.entity.type, c.field);
            w.StartObject();
            w.Key("id");
            str(w, id.hex());
            w.Key("entity_type");
            str(w, to_string(c.entity.type));
            w.Key("entity");
            str(w, c.entity.id.hex());
            w.Key("field");
            str(w, f ? f->name : "");
            w.Key("label");
            str(w, f ? f->label_es : "");
            w.Key("winner");
            str(w, c.winner);
            w.Key("values");
            w.StartArray();
            for (const auto& [k, s] : c.finals) {
                w.StartObject();
                w.Key("value");
                str(w, s);
                w.Key("at");
                w.Int64(static_cast<std::int64_t>(hlc_ms(k.hlc)));
                w.Key("replica");
                w.Uint64(k.replica);
                w.EndObject();
            }
            w.EndArray();
            const std::string status = text_of(r, CF::conflict, id, "status");
            w.Key("status");
            str(w, status.empty() ? "open" : status);
            w.Key("resolution");
            str(w, text_of(r, CF::conflict, id, "resolution"));
            w.EndObject();
        }
    });
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string Office::resolve_conflict(const User& actor, const std::string& body) {
    JsonBody j(body);
    const std::string want = j.req_text("id", 32);
    const std::string resolution = j.req_text("resolution", 4000);
    j.done();
    std::optional<crdt::LifecycleConflict> found;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const auto& c : r.conflicts()) {
            if (conflict_id(c).hex() == want) {
                found = c;
            }
        }
    });
    if (!found) {
        throw not_found("no conflict " + want);
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
        b.set(CF::conflict, id, "resolution", text(resolution));
        b.set(CF::conflict, id, "resolved_by", actor.id);
        b.status(CF::conflict, id, "resolved");
    });
    return conflicts();
}

std::string Office::users_json() {
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("users");
    w.StartArray();
    for (const auto& u : m_store.users()) {
        w.StartObject();
        w.Key("id");
        str(w, u.id.hex());
        w.Key("name");
        str(w, u.name);
        w.Key("full_name");
        str(w, u.full_name);
        w.Key("role");
        str(w, to_string(u.role));
        w.Key("role_label");
        str(w, label_es(u.role));
        w.Key("unit");
        str(w, u.unit);
        w.Key("disabled");
        w.Bool(u.disabled);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string Office::devices_json() {
    const auto last = m_store.last_seq();
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("devices");
    w.StartArray();
    for (const auto& d : m_store.devices()) {
        w.StartObject();
        w.Key("replica");
        w.Uint64(d.replica);
        w.Key("user");
        str(w, names->label(d.user));
        w.Key("label");
        str(w, d.label);
        w.Key("status");
        str(w, d.status == DeviceStatus::active ? "active" : "revoked");
        w.Key("last_seen");
        w.Int64(d.last_seen);
        w.Key("cursor");
        w.Uint64(d.cursor);
        w.Key("server_seq");
        w.Uint64(last);
        // What the device has yet to pull: its user's feed past its cursor for a
        // technician, the whole log past it for an office device.
        const User* user = names->find(d.user);
        w.Key("behind");
        w.Uint64(user && user->role == Role::technician ? m_store.feed_count_after(d.user, d.cursor)
                                                        : (last > d.cursor ? last - d.cursor : 0));
        w.Key("enrolled_at");
        w.Int64(d.enrolled_at);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

} // namespace otsync::server
