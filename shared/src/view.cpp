// JSON views of entity state (see view.hpp).
#include "otsync/view.hpp"

#include "otsync/crypto.hpp"
#include "otsync/model.hpp"

#include "json_value.hpp"

#include <sodium.h>

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace otsync {

namespace {

using W = rapidjson::Writer<rapidjson::StringBuffer>;

void str(W& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void plain(W& w, const Value& v) {
    detail::write_plain_value(w, v);
}

} // namespace

std::string value_json(const Value& v) {
    rapidjson::StringBuffer sb;
    W w(sb);
    plain(w, v);
    return std::string(sb.GetString(), sb.GetSize());
}

namespace {

void write_fields(W& w, EntityType t, const crdt::Entity* e, bool technician_view) {
    w.StartObject();
    if (e) {
        for (const auto& [fid, state] : e->fields) {
            const FieldDef* f = find_field(t, fid);
            if (!f || (technician_view && !visible_to_technician(*f))) {
                continue;
            }
            str(w, f->name);
            if (const auto* reg = std::get_if<crdt::RegisterState>(&state)) {
                plain(w, reg->value);
            } else if (const auto* set = std::get_if<crdt::SetState>(&state)) {
                w.StartArray();
                for (const auto& v : crdt::set_elements(*set)) {
                    plain(w, v);
                }
                w.EndArray();
            } else {
                const auto& log = std::get<crdt::LogState>(state);
                w.StartArray();
                for (const auto& [key, v] : log.events) {
                    w.StartObject();
                    w.Key("at");
                    w.Uint64(hlc_ms(key.hlc));
                    w.Key("replica");
                    w.Uint64(key.replica);
                    w.Key("value");
                    plain(w, v);
                    w.EndObject();
                }
                w.EndArray();
            }
        }
    }
    w.EndObject();
}

} // namespace

std::string fields_json(const crdt::Replica& r, EntityType t, const Id& id, bool technician_view) {
    rapidjson::StringBuffer sb;
    W w(sb);
    write_fields(w, t, r.entity(t, id), technician_view);
    return std::string(sb.GetString(), sb.GetSize());
}

std::string fields_json(EntityType t, const crdt::Entity* e, bool technician_view) {
    rapidjson::StringBuffer sb;
    W w(sb);
    write_fields(w, t, e, technician_view);
    return std::string(sb.GetString(), sb.GetSize());
}

std::string entity_json(const crdt::Replica& r, EntityType t, const Id& id, bool technician_view) {
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("type");
    str(w, to_string(t));
    w.Key("id");
    str(w, id.hex());
    w.Key("fields");
    write_fields(w, t, r.entity(t, id), technician_view);
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
}

std::string text_of(const Value* v) {
    return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : std::string();
}

std::string text_of(const crdt::Replica& r, EntityType t, const Id& id, std::string_view field) {
    return text_of(r.get(t, id, field));
}

std::optional<Id> id_of(const crdt::Replica& r, EntityType t, const Id& id,
                        std::string_view field) {
    const Value* v = r.get(t, id, field);
    return v && std::holds_alternative<Id>(*v) ? std::optional<Id>(std::get<Id>(*v)) : std::nullopt;
}

std::optional<std::int64_t> time_of(const crdt::Replica& r, EntityType t, const Id& id,
                                    std::string_view field) {
    const Value* v = r.get(t, id, field);
    return v && std::holds_alternative<Timestamp>(*v)
               ? std::optional<std::int64_t>(std::get<Timestamp>(*v).ms)
               : std::nullopt;
}

bool is_true(const crdt::Replica& r, EntityType t, const Id& id, std::string_view field) {
    const Value* v = r.get(t, id, field);
    return v && std::holds_alternative<bool>(*v) && std::get<bool>(*v);
}

std::map<std::string, std::string> missing_reasons(const crdt::Replica& r, const Id& ot) {
    std::map<std::string, std::string> out;
    if (const auto* log = r.log(EntityType::work_order, ot, "missing_reasons")) {
        for (const auto& [key, v] : log->events) {
            if (const auto* s = std::get_if<std::string>(&v)) {
                const auto colon = s->find(": ");
                if (colon != std::string::npos && colon > 0) {
                    out[s->substr(0, colon)] = s->substr(colon + 2);
                }
            }
        }
    }
    return out;
}

std::vector<std::pair<Id, std::string>> signed_rows(const crdt::Replica& r, const Id& ot) {
    std::vector<std::pair<Id, std::string>> out;
    for (const Id& item : r.referrers(EntityType::collected_item, "work_order", ot)) {
        const Value* voided = r.get(EntityType::collected_item, item, "voided");
        if (voided && std::holds_alternative<bool>(*voided) && std::get<bool>(*voided)) {
            continue;
        }
        const Value* serial = r.get(EntityType::collected_item, item, "serial");
        out.emplace_back(item, serial && std::holds_alternative<std::string>(*serial)
                                   ? std::get<std::string>(*serial)
                                   : std::string());
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    return out;
}

std::vector<std::pair<Id, std::string>> delivered_rows(const crdt::Replica& r, const Id& h) {
    std::vector<std::pair<Id, std::string>> out;
    for (const Value& v : r.elements(EntityType::handover, h, "rows")) {
        if (const auto* item = std::get_if<Id>(&v)) {
            const Value* serial = r.get(EntityType::collected_item, *item, "serial");
            out.emplace_back(*item, serial && std::holds_alternative<std::string>(*serial)
                                        ? std::get<std::string>(*serial)
                                        : std::string());
        }
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    return out;
}

Hash256 rows_hash(const std::vector<std::pair<Id, std::string>>& rows) {
    std::string lines;
    for (const auto& [item, serial] : rows) {
        lines += item.hex() + " " + serial + "\n";
    }
    return blake2b_256(lines);
}

Hash256 rows_hash(const crdt::Replica& r, const Id& ot) {
    return rows_hash(signed_rows(r, ot));
}

} // namespace otsync
