// The procedure's actions and read models; see procedure.hpp.
#include "procedure/procedure.hpp"

#include "api/anexo4.hpp"
#include "api/json_body.hpp"
#include "procedure/csv_import.hpp"

#include "otsync/crypto.hpp"
#include "otsync/model.hpp"
#include "otsync/view.hpp"

#include <sodium.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>
#include <set>

namespace otsync::server {

namespace {

using W = rapidjson::Writer<rapidjson::StringBuffer>;
using CF = EntityType;
constexpr std::size_t k_text = 500;

Error not_found(const std::string& what) {
    return Error(ErrorCode::not_found, what);
}

/// One action's ops, made under the service lock against the current state. Every write
/// is checked against the permission table before any op is made, and status changes
/// against the transition table from the status this batch last wrote.
class Batch {
public:
    Batch(const User& who, crdt::OpMaker& maker, const crdt::Replica& state)
        : actor(who), m(maker), r(state) {}

    void set(EntityType t, const Id& id, std::string_view field, Value v) {
        check(t, field, OpKind::set);
        ops.push_back(m.set(t, id, field, std::move(v)));
    }
    void add(EntityType t, const Id& id, std::string_view field, Value v) {
        check(t, field, OpKind::add);
        ops.push_back(m.add(t, id, field, std::move(v)));
    }
    void remove(EntityType t, const Id& id, std::string_view field, Value v) {
        check(t, field, OpKind::remove);
        ops.push_back(m.remove(r, t, id, field, std::move(v)));
    }
    void event(EntityType t, const Id& id, std::string_view field, Value v) {
        check(t, field, OpKind::event);
        ops.push_back(m.event(t, id, field, std::move(v)));
    }
    /// The current status, as this batch leaves it.
    std::string status_of(EntityType t, const Id& id) const {
        if (auto it = last.find({t, id}); it != last.end()) {
            return it->second.second;
        }
        return text_of(r, t, id, "status");
    }
    void status(EntityType t, const Id& id, const std::string& to) {
        const FieldDef& f = field_def(t, "status");
        const std::string from = status_of(t, id);
        if (!transition_allowed(*f.lifecycle, from, to, actor.role)) {
            throw Error(ErrorCode::invalid_transition,
                        std::string(to_string(t)) + " status may not go from '" +
                            (from.empty() ? "(none)" : from) + "' to '" + to + "' for " +
                            std::string(label_es(actor.role)));
        }
        Op op = m.set(t, id, "status", text(to));
        if (auto it = last.find({t, id}); it != last.end()) {
            op.observed = {it->second.first};
        } else if (const auto* reg = r.reg(t, id, "status"); reg && reg->written) {
            op.observed = {reg->key.op_id()};
        }
        last[{t, id}] = {op.id, to};
        ops.push_back(std::move(op));
    }
    void step(const Id& case_id, std::string_view code) {
        ops.push_back(m.event(CF::case_file, case_id, "steps", text(std::string(code))));
    }

    const User& actor;
    crdt::OpMaker& m;
    const crdt::Replica& r;
    std::vector<Op> ops;

private:
    void check(EntityType t, std::string_view field, OpKind kind) const {
        const FieldDef& f = field_def(t, field);
        if (!permitted(actor.role, f, kind)) {
            throw Error(ErrorCode::permission_denied,
                        std::string(label_es(actor.role)) + " may not change " +
                            std::string(to_string(t)) + "." + std::string(f.name));
        }
    }
    std::map<std::pair<EntityType, Id>, std::pair<OpId, std::string>> last;
};

int modality_of(const crdt::Replica& r, const Id& c) {
    const Value* v = r.get(CF::case_file, c, "modality");
    return v && std::holds_alternative<std::int64_t>(*v)
               ? static_cast<int>(std::get<std::int64_t>(*v))
               : 0;
}

PersonType person_of(const crdt::Replica& r, const Id& c) {
    return text_of(r, CF::case_file, c, "person_type") == "legal" ? PersonType::legal
                                                                  : PersonType::natural;
}

void require_case(const crdt::Replica& r, const Id& c) {
    if (!r.entity(CF::case_file, c) || modality_of(r, c) == 0) {
        throw not_found("no case " + c.hex());
    }
}

void require_status(const Batch& b, const Id& c, std::initializer_list<std::string_view> ok,
                    const std::string& action) {
    const std::string s = b.status_of(CF::case_file, c);
    for (auto x : ok) {
        if (s == x) {
            return;
        }
    }
    throw Error(ErrorCode::invalid_transition,
                "the case is '" + s + "': cannot " + action + " now");
}

/// The seed step of this modality whose code ends in `.NN`, if the modality has it.
std::optional<std::string_view> step_code(int modality, int number) {
    char code[8];
    std::snprintf(code, sizeof code, "m%d.%02d", modality, number);
    for (const auto& s : steps_for(modality)) {
        if (s.code == code) {
            return s.code;
        }
    }
    return std::nullopt;
}

std::vector<std::string> missing_requirements(const crdt::Replica& r, const Id& c,
                                              const std::set<std::string>& extra_met = {},
                                              const std::set<std::string>& extra_unmet = {}) {
    std::set<std::string> met;
    for (const auto& v : r.elements(CF::case_file, c, "requirements")) {
        if (const auto* s = std::get_if<std::string>(&v)) {
            met.insert(*s);
        }
    }
    met.insert(extra_met.begin(), extra_met.end());
    for (const auto& u : extra_unmet) {
        met.erase(u);
    }
    std::vector<std::string> out;
    for (const auto& req : requirements_for(person_of(r, c), modality_of(r, c))) {
        if (!met.contains(std::string(req.code))) {
            out.emplace_back(req.code);
        }
    }
    return out;
}

void str(W& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void raw(W& w, const std::string& json) {
    w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

const std::map<std::string, std::string> no_query;

/// Sets one case register field from a JSON value, typed by the registry.
void set_case_field(Batch& b, const Id& c, const std::string& name, const rapidjson::Value& v) {
    const FieldDef* f = find_field(CF::case_file, name);
    const std::string at = "fields." + name;
    if (!f || f->kind != FieldKind::register_ || f->lifecycle || name == "modality" ||
        name == "requirements_override" || name == "opened_at" || name == "routed_to" ||
        name == "rejection_told_at" || name == "fee") {
        throw Error(ErrorCode::unknown_field,
                    at + " cannot be set here (use the action that changes it)", at);
    }
    Value value;
    if (v.IsNull()) {
        value = std::monostate{};
    } else if (f->type == ValueType::text && v.IsString()) {
        value = std::string(v.GetString(), v.GetStringLength());
    } else if (f->type == ValueType::boolean && v.IsBool()) {
        value = v.GetBool();
    } else if (f->type == ValueType::timestamp && v.IsInt64()) {
        value = Timestamp{v.GetInt64()};
    } else if (f->type == ValueType::int64 && v.IsInt64()) {
        value = v.GetInt64();
    } else {
        throw Error(ErrorCode::wrong_type, at + " takes " + std::string(to_string(f->type)), at);
    }
    Op probe;
    probe.id = {0, 1};
    probe.entity_type = CF::case_file;
    probe.field = f->id;
    probe.kind = OpKind::set;
    probe.value = value;
    if (auto err = check_op_schema(probe)) {
        throw Error(err->code(), at + ": " + err->message(), at);
    }
    b.set(CF::case_file, c, name, std::move(value));
}

User find_user(const Directory::Snapshot& users, const std::string& name, Role role,
               const std::string& member) {
    const User* u = users.find(name);
    if (!u || u->disabled) {
        throw Error(ErrorCode::not_found, "no active user named '" + name + "'", member);
    }
    if (u->role != role) {
        throw Error(ErrorCode::invalid_value,
                    "'" + name + "' is " + std::string(label_es(u->role)) + ", not " +
                        std::string(label_es(role)),
                    member);
    }
    return *u;
}

std::string query_of(const std::map<std::string, std::string>& q, const std::string& k) {
    auto it = q.find(k);
    return it == q.end() ? std::string() : it->second;
}

/// `limit` from a query: how many of the newest a list returns (default 1000, at most
/// 10000), so no list grows without bound.
std::size_t parse_limit(const std::map<std::string, std::string>& q) {
    const std::string l = query_of(q, "limit");
    if (l.empty()) {
        return 1000;
    }
    char* end = nullptr;
    const auto n = std::strtoul(l.c_str(), &end, 10);
    if (*end || n == 0 || n > 10000) {
        throw Error(ErrorCode::invalid_value, "limit is a whole number from 1 to 10000", "limit");
    }
    return n;
}

/// One reconciliation line; `names` name the row's collector.
void write_line(W& w, const SerialLine& l, const Directory::Snapshot& names) {
    w.StartObject();
    w.Key("serial");
    str(w, l.serial);
    w.Key("status");
    str(w, l.status);
    w.Key("expected");
    w.Bool(l.expected);
    w.Key("settled");
    w.Bool(l.settled);
    w.Key("collected_twice");
    w.Bool(l.collected_twice);
    if (!l.also_on.empty()) {
        w.Key("also_on");
        w.StartArray();
        for (const auto& o : l.also_on) {
            str(w, o.hex());
        }
        w.EndArray();
    }
    if (l.item) {
        w.Key("item");
        str(w, l.item->hex());
        w.Key("reason");
        str(w, l.reason);
        w.Key("defect");
        str(w, l.defect);
        w.Key("description");
        str(w, l.description);
        w.Key("observations");
        str(w, l.observations);
        w.Key("collected_at");
        w.Int64(l.collected_at);
        w.Key("receipt");
        str(w, l.receipt);
        w.Key("receipt_note");
        str(w, l.receipt_note);
        w.Key("handover");
        if (l.handover) {
            str(w, l.handover->hex());
        } else {
            w.Null();
        }
        w.Key("collected_by");
        if (l.collected_by) {
            str(w, names.label(*l.collected_by));
        } else {
            w.Null();
        }
        w.Key("overdue");
        w.Bool(l.overdue);
    }
    w.Key("resolution");
    str(w, l.resolution);
    w.Key("missing_reason");
    str(w, l.missing_reason);
    w.EndObject();
}

void write_reconciliation(W& w, const OtReconciliation& rec, const Directory::Snapshot& names) {
    w.StartObject();
    w.Key("ot");
    str(w, rec.ot.hex());
    w.Key("case");
    str(w, rec.case_id.hex());
    w.Key("kind");
    str(w, rec.kind);
    w.Key("status");
    str(w, rec.status);
    w.Key("mode");
    str(w, rec.mode == OtMode::collect  ? "collect"
           : rec.mode == OtMode::verify ? "verify"
                                        : "none");
    w.Key("signature_mismatch");
    w.Bool(rec.signature_mismatch);
    std::map<std::string, int> counts;
    for (const auto& l : rec.lines) {
        counts[l.status]++;
        if (l.collected_twice) {
            counts["collected_twice"]++;
        }
        if (l.overdue) {
            counts["overdue"]++;
        }
    }
    w.Key("counts");
    w.StartObject();
    for (const char* k :
         {"matched", "unexpected", "missing", "damaged", "pending", "collected_twice", "overdue"}) {
        w.Key(k);
        w.Int(counts[k]);
    }
    w.EndObject();
    w.Key("lines");
    w.StartArray();
    for (const auto& l : rec.lines) {
        write_line(w, l, names);
    }
    w.EndArray();
    w.EndObject();
}

/// A bytes register (a rows hash) as lowercase hex; empty when unset.
std::string hex_of(const Value* v) {
    if (!v || !std::holds_alternative<Bytes>(*v)) {
        return {};
    }
    const auto& data = std::get<Bytes>(*v).data;
    std::string out(data.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), data.data(), data.size());
    out.pop_back();
    return out;
}

/// The server acting on its own (closing, custody, conflicts): replica 0, role system.
const User& system_user() {
    static const User k = [] {
        User u;
        u.id = system_author();
        u.role = Role::system;
        u.name = "sistema";
        return u;
    }();
    return k;
}

/// A handover's rows as (serial, collected item), by serial: the Anexo 4's order.
std::vector<std::pair<std::string, Id>> handover_rows(const crdt::Replica& r, const Id& h) {
    std::vector<std::pair<std::string, Id>> rows;
    for (const auto& v : r.elements(CF::handover, h, "rows")) {
        if (const auto* item = std::get_if<Id>(&v)) {
            rows.emplace_back(text_of(r, CF::collected_item, *item, "serial"), *item);
        }
    }
    std::sort(rows.begin(), rows.end());
    return rows;
}

/// What the technician wrote for a row, else the inventory's model of that serial.
std::string row_description(const crdt::Replica& r, const Id& item, const std::string& serial) {
    std::string d = text_of(r, CF::collected_item, item, "description");
    return d.empty() ? text_of(r, CF::equipment, Id::natural("equipment", serial), "model") : d;
}

} // namespace

Id system_author() {
    return Id{};
}

Procedure::Procedure(Store& store, SyncService& sync, ClockSource& clock, ProcedureConfig config)
    : m_store(store), m_sync(sync), m_clock(clock), m_config(config) {
    register_follow_ups();
}

Procedure::~Procedure() {
    m_sync.set_follow_ups({});
}

ReconcileOptions Procedure::reconcile_options() const {
    return {static_cast<std::int64_t>(m_clock.now_ms()), m_config.custody_limit_ms};
}

namespace {

/// Runs `f` under the service lock and submits what it made; all or nothing.
void run(SyncService& sync, const User& actor, const std::function<void(Batch&)>& f) {
    const auto results =
        sync.submit(actor.id, actor.role, [&](crdt::OpMaker& m, const crdt::Replica& r) {
            Batch b(actor, m, r);
            f(b);
            return std::move(b.ops);
        });
    for (const auto& res : results) {
        if (res.status == OpStatus::rejected) {
            // Preconditions are checked before any op is made; a refusal here means the
            // tables and the checks above disagree.
            throw Error(res.code, "refused: " + res.message);
        }
    }
}

} // namespace

// ---- cases --------------------------------------------------------------------------------------

std::string Procedure::open_case(const User& actor, const std::string& body) {
    JsonBody j(body);
    const auto modality = static_cast<int>(*j.integer("modality", 1, 4, true));
    const std::string contract = j.req_text("contract", 64);
    const std::string customer = j.req_text("customer_name", 200);
    const std::string person = j.req_text("person_type", 16);
    if (person != "natural" && person != "legal") {
        throw Error(ErrorCode::invalid_value, "person_type is 'natural' or 'legal'", "person_type");
    }
    const std::string tax_id = j.req_text("tax_id", 64);
    const std::string cell = j.req_text("reference_cell", 64);
    const std::string hours = j.req_text("contact_hours", 200);
    const auto products = j.texts("products", 4, 64, true);
    if (products.empty()) {
        throw Error(ErrorCode::missing_field, "products must name at least one product",
                    "products");
    }
    const std::string old_address = j.req_text("old_address", 500);
    const std::string new_address = j.req_text("new_address", 500);
    std::map<std::string, std::string> optional;
    for (const char* name :
         {"old_geo_location", "old_neighborhood", "old_reference", "new_geo_location",
          "new_neighborhood", "new_reference", "observations", "unit"}) {
        // The registry's own limit for each field, so the error names the member.
        if (auto v = j.text(name, field_def(CF::case_file, name).max_bytes)) {
            optional[name] = *v;
        }
    }
    j.done();
    const auto first = steps_for(modality).front();
    if (actor.role != first.role && actor.role != Role::supervisor) {
        throw Error(ErrorCode::permission_denied, "a modality " + std::to_string(modality) +
                                                      " case is opened by " +
                                                      std::string(label_es(first.role)));
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const Money fee = fee_at(products, now);
    const Id c = Id::random();
    run(m_sync, actor, [&](Batch& b) {
        b.status(CF::case_file, c, "opened");
        b.set(CF::case_file, c, "modality", std::int64_t{modality});
        b.set(CF::case_file, c, "contract", text(contract));
        b.set(CF::case_file, c, "customer_name", text(customer));
        b.set(CF::case_file, c, "person_type", text(person));
        b.set(CF::case_file, c, "tax_id", text(tax_id));
        b.set(CF::case_file, c, "reference_cell", text(cell));
        b.set(CF::case_file, c, "contact_hours", text(hours));
        b.set(CF::case_file, c, "old_address", text(old_address));
        b.set(CF::case_file, c, "new_address", text(new_address));
        b.set(CF::case_file, c, "opened_at", Timestamp{now});
        std::set<std::string> seen;
        for (const auto& p : products) {
            if (seen.insert(p).second) {
                b.add(CF::case_file, c, "products", text(p));
            }
        }
        b.set(CF::case_file, c, "fee", fee);
        if (!optional.contains("unit") && !actor.unit.empty()) {
            optional["unit"] = actor.unit;
        }
        for (const auto& [k, v] : optional) {
            b.set(CF::case_file, c, k, text(v));
        }
        for (int n = 1; n <= 3; ++n) { // receives, gathers the data, sends it on
            if (auto code = step_code(modality, n)) {
                b.step(c, *code);
            }
        }
        for (const auto& op : b.ops) { // values outside the registry's limits: a 400
            if (auto err = check_op_schema(op)) {
                throw Error(err->code(), err->message());
            }
        }
    });
    return case_detail(c);
}

std::string Procedure::list_cases(const std::map<std::string, std::string>& q) {
    const std::string want_status = query_of(q, "status");
    const std::string want_modality = query_of(q, "modality");
    const std::string want_contract = query_of(q, "contract");
    // The newest `limit` cases; `total` says how many matched.
    const std::size_t limit = parse_limit(q);
    std::size_t total = 0;
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("cases");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& c : r.entities(CF::case_file)) {
            if (modality_of(r, c) == 0) {
                continue;
            }
            if (!want_status.empty() && text_of(r, CF::case_file, c, "status") != want_status) {
                continue;
            }
            if (!want_modality.empty() && std::to_string(modality_of(r, c)) != want_modality) {
                continue;
            }
            if (!want_contract.empty() &&
                text_of(r, CF::case_file, c, "contract") != want_contract) {
                continue;
            }
            found.emplace_back(time_of(r, CF::case_file, c, "opened_at").value_or(0), c);
        }
        std::sort(found.rbegin(), found.rend()); // newest first
        total = found.size();
        if (found.size() > limit) {
            found.resize(limit);
        }
        for (const auto& [opened, c] : found) {
            w.StartObject();
            w.Key("id");
            str(w, c.hex());
            w.Key("modality");
            w.Int(modality_of(r, c));
            w.Key("contract");
            str(w, text_of(r, CF::case_file, c, "contract"));
            w.Key("customer_name");
            str(w, text_of(r, CF::case_file, c, "customer_name"));
            w.Key("status");
            str(w, text_of(r, CF::case_file, c, "status"));
            w.Key("opened_at");
            w.Int64(opened);
            w.Key("unit");
            str(w, text_of(r, CF::case_file, c, "unit"));
            const auto* log = r.log(CF::case_file, c, "steps");
            w.Key("last_step");
            if (log && !log->events.empty() &&
                std::holds_alternative<std::string>(log->events.rbegin()->second)) {
                str(w, std::get<std::string>(log->events.rbegin()->second));
            } else {
                w.Null();
            }
            w.Key("requirements_missing");
            w.Int(static_cast<int>(missing_requirements(r, c).size()));
            w.EndObject();
        }
    });
    w.EndArray();
    w.Key("total");
    w.Uint64(total);
    w.EndObject();
    return sb.GetString();
}

std::string Procedure::case_detail(const Id& c) {
    // Who did each step comes from the op log (the author of each op is kept for audit).
    std::map<OpId, Id> authors;
    for (const auto& so : m_store.ops_by_seq(m_store.op_seqs_of_entity(CF::case_file, c))) {
        if (so.op.field == field_def(CF::case_file, "steps").id) {
            authors[so.op.id] = so.op.author;
        }
    }
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        const int modality = modality_of(r, c);
        w.StartObject();
        w.Key("id");
        str(w, c.hex());
        w.Key("modality");
        w.Int(modality);
        w.Key("status");
        str(w, text_of(r, CF::case_file, c, "status"));
        w.Key("fields");
        raw(w, fields_json(r, CF::case_file, c));
        if (auto routed = id_of(r, CF::case_file, c, "routed_to")) {
            w.Key("routed_to_name");
            str(w, names->label(*routed));
        }
        w.Key("requirements");
        w.StartArray();
        std::set<std::string> met;
        for (const auto& v : r.elements(CF::case_file, c, "requirements")) {
            met.insert(std::get<std::string>(v));
        }
        for (const auto& req : requirements_for(person_of(r, c), modality)) {
            w.StartObject();
            w.Key("code");
            str(w, req.code);
            w.Key("label");
            str(w, req.label_es);
            w.Key("met");
            w.Bool(met.contains(std::string(req.code)));
            w.EndObject();
        }
        w.EndArray();
        w.Key("requirements_complete");
        w.Bool(missing_requirements(r, c).empty());
        w.Key("steps");
        w.StartArray();
        if (const auto* log = r.log(CF::case_file, c, "steps")) {
            for (const auto& [key, v] : log->events) {
                const std::string code =
                    std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : "";
                w.StartObject();
                w.Key("code");
                str(w, code);
                for (const auto& s : steps_for(modality)) {
                    if (s.code == code) {
                        w.Key("label");
                        str(w, s.label_es);
                        w.Key("role");
                        str(w, to_string(s.role));
                    }
                }
                w.Key("at");
                w.Int64(static_cast<std::int64_t>(hlc_ms(key.hlc)));
                w.Key("by");
                auto a = authors.find(key.op_id());
                str(w, a == authors.end() ? std::string() : names->label(a->second));
                w.EndObject();
            }
        }
        w.EndArray();
        w.Key("template");
        w.StartArray();
        for (const auto& s : steps_for(modality)) {
            w.StartObject();
            w.Key("code");
            str(w, s.code);
            w.Key("role");
            str(w, to_string(s.role));
            w.Key("role_label");
            str(w, label_es(s.role));
            w.Key("label");
            str(w, s.label_es);
            w.EndObject();
        }
        w.EndArray();
        w.Key("ots");
        w.StartArray();
        for (const Id& ot : ots_of_case(r, c)) {
            w.StartObject();
            w.Key("id");
            str(w, ot.hex());
            w.Key("kind");
            str(w, text_of(r, CF::work_order, ot, "kind"));
            w.Key("status");
            str(w, text_of(r, CF::work_order, ot, "status"));
            w.Key("technician");
            if (auto t = id_of(r, CF::work_order, ot, "technician")) {
                str(w, names->label(*t));
            } else {
                w.Null();
            }
            w.EndObject();
        }
        w.EndArray();
        w.Key("closing_blockers");
        w.StartArray();
        if (text_of(r, CF::case_file, c, "status") == "in_progress") {
            for (const auto& why : closing_blockers(r, c, reconcile_options())) {
                str(w, why);
            }
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

std::string Procedure::edit_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto* fields = j.object("fields", true);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const std::string s = b.status_of(CF::case_file, c);
        if (is_final(case_lifecycle(), s)) {
            throw Error(ErrorCode::invalid_transition, "the case is '" + s + "': it is final");
        }
        for (auto it = fields->MemberBegin(); it != fields->MemberEnd(); ++it) {
            set_case_field(b, c, std::string(it->name.GetString(), it->name.GetStringLength()),
                           it->value);
        }
    });
    return case_detail(c);
}

std::string Procedure::record_step(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string code = j.req_text("step", 16);
    const auto* fields = j.object("fields");
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const int modality = modality_of(b.r, c);
        const Step* step = nullptr;
        for (const auto& s : steps_for(modality)) {
            if (s.code == code) {
                step = &s;
            }
        }
        if (!step) {
            throw Error(ErrorCode::invalid_value,
                        "modality " + std::to_string(modality) + " has no step '" + code + "'",
                        "step");
        }
        if (step->role == Role::technician) {
            throw Error(ErrorCode::invalid_value,
                        "the technician's step is recorded by the OT on the handheld", "step");
        }
        if (actor.role != step->role && actor.role != Role::supervisor) {
            throw Error(ErrorCode::permission_denied,
                        "step " + code + " is done by " + std::string(label_es(step->role)));
        }
        const std::string s = b.status_of(CF::case_file, c);
        if (is_final(case_lifecycle(), s) || s == "opened") {
            throw Error(ErrorCode::invalid_transition,
                        "the case is '" + s + "': step " + code + " does not apply now");
        }
        if (fields) {
            for (auto it = fields->MemberBegin(); it != fields->MemberEnd(); ++it) {
                set_case_field(b, c, std::string(it->name.GetString(), it->name.GetStringLength()),
                               it->value);
            }
        }
        b.step(c, step->code);
    });
    return case_detail(c);
}

std::string Procedure::route_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string to = j.req_text("to", 200);
    j.done();
    std::optional<User> target;
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        const int modality = modality_of(b.r, c);
        const Role router = modality <= 2 ? Role::commercial_head : Role::platform_officer;
        const Role handler = modality <= 2 ? Role::sales_executive : Role::commercial_advisor;
        if (actor.role != router && actor.role != Role::supervisor) {
            throw Error(ErrorCode::permission_denied, "a modality " + std::to_string(modality) +
                                                          " case is routed by " +
                                                          std::string(label_es(router)));
        }
        require_status(b, c, {"opened", "routed"}, "route it");
        target = find_user(*m_sync.directory().current(), to, handler, "to");
        if (b.status_of(CF::case_file, c) == "opened") {
            b.status(CF::case_file, c, "routed");
        }
        b.set(CF::case_file, c, "routed_to", target->id);
        if (auto code = step_code(modality, 4)) {
            b.step(c, *code);
        }
    });
    return case_detail(c);
}

std::string Procedure::contact(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the contact");
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        b.set(CF::case_file, c, "contacted_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 5));
        }
    });
    return case_detail(c);
}

std::string Procedure::feasibility(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const bool feasible = *j.boolean("feasible", true);
    const auto note = j.text("note", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "record the technical feasibility");
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        b.set(CF::case_file, c, "feasible", feasible);
        if (note) {
            b.set(CF::case_file, c, "feasibility_note", text(*note));
        }
        const int modality = modality_of(b.r, c);
        b.step(c, *step_code(modality, modality == 4 ? 10 : 6));
    });
    return case_detail(c);
}

std::string Procedure::requirements(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto met = j.texts("met", 32, 64);
    const auto unmet = j.texts("unmet", 32, 64);
    j.done();
    if (met.empty() && unmet.empty()) {
        throw Error(ErrorCode::missing_field, "name requirements in 'met' or 'unmet'", "met");
    }
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review", "approved"}, "check requirements");
        const auto list = requirements_for(person_of(b.r, c), modality_of(b.r, c));
        auto known = [&](const std::string& code, const char* member) {
            for (const auto& req : list) {
                if (req.code == code) {
                    return;
                }
            }
            std::string all;
            for (const auto& req : list) {
                all += (all.empty() ? "" : ", ") + std::string(req.code);
            }
            throw Error(ErrorCode::invalid_value,
                        "'" + code + "' is not a requirement of this case (" + all + ")", member);
        };
        const bool was_complete = missing_requirements(b.r, c).empty();
        std::set<std::string> add(met.begin(), met.end()), del(unmet.begin(), unmet.end());
        for (const auto& code : add) {
            known(code, "met");
            if (del.contains(code)) {
                throw Error(ErrorCode::invalid_value, "'" + code + "' is both met and unmet",
                            "met");
            }
            const auto* current = b.r.set(CF::case_file, c, "requirements");
            if (!current || !set_contains(*current, text(code))) {
                b.add(CF::case_file, c, "requirements", text(code));
            }
        }
        for (const auto& code : del) {
            known(code, "unmet");
            b.remove(CF::case_file, c, "requirements", text(code));
        }
        if (b.status_of(CF::case_file, c) == "routed") {
            b.status(CF::case_file, c, "in_review");
        }
        if (!was_complete && missing_requirements(b.r, c, add, del).empty()) {
            const int modality = modality_of(b.r, c);
            b.step(c, *step_code(modality, modality == 3 ? 5 : modality == 4 ? 9 : 7));
        }
    });
    return case_detail(c);
}

std::string Procedure::override_requirements(const User& actor, const Id& c,
                                             const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"opened", "routed", "in_review", "approved"},
                       "override its requirements");
        b.set(CF::case_file, c, "requirements_override", text(reason));
    });
    return case_detail(c);
}

std::string Procedure::approve(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"in_review"}, "approve it");
        if (!is_true(b.r, CF::case_file, c, "feasible")) {
            throw Error(ErrorCode::invalid_transition,
                        "record a positive technical feasibility before approving");
        }
        b.status(CF::case_file, c, "approved");
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 8)); // the pre-sale is entered
        }
    });
    return case_detail(c);
}

std::string Procedure::reject(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"routed", "in_review"}, "reject it");
        b.status(CF::case_file, c, "rejected");
        b.set(CF::case_file, c, "rejection_reason", text(reason));
        // "Indica al cliente que no es posible realizar el traslado": told now.
        b.set(CF::case_file, c, "rejection_told_at",
              Timestamp{static_cast<std::int64_t>(m_clock.now_ms())});
        const int modality = modality_of(b.r, c);
        if (modality <= 2) {
            b.step(c, *step_code(modality, 9));
        }
    });
    return case_detail(c);
}

std::string Procedure::cancel_case(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const std::string reason = j.req_text("reason", 500);
    j.done();
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        b.status(CF::case_file, c, "cancelled");
        b.set(CF::case_file, c, "cancel_reason", text(reason));
        for (const Id& ot : ots_of_case(b.r, c)) {
            if (!is_final(work_order_lifecycle(), b.status_of(CF::work_order, ot))) {
                b.status(CF::work_order, ot, "cancelled");
                b.event(CF::work_order, ot, "notes", text("Anulada con el caso: " + reason));
            }
        }
    });
    return case_detail(c);
}

std::string Procedure::issue_ots(const User& actor, const Id& c, const std::string& body) {
    JsonBody j(body);
    const auto technician = j.text("technician", 200);
    const auto window_start = j.integer("window_start", 0, INT64_MAX / 2);
    const auto window_end = j.integer("window_end", 0, INT64_MAX / 2);
    const auto zone = j.text("zone", 64);
    j.done();
    if (window_start && window_end && *window_end <= *window_start) {
        throw Error(ErrorCode::invalid_value, "window_end must be after window_start",
                    "window_end");
    }
    std::optional<User> tech;
    if (technician) {
        tech =
            find_user(*m_sync.directory().current(), *technician, Role::technician, "technician");
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    // The contract's equipment is read from the store before the service lock.
    std::string contract;
    m_sync.read_state(
        [&](const crdt::Replica& r) { contract = text_of(r, CF::case_file, c, "contract"); });
    const auto inventory = m_store.inventory_of(contract);
    run(m_sync, actor, [&](Batch& b) {
        require_case(b.r, c);
        require_status(b, c, {"approved"}, "issue its OTs");
        if (text_of(b.r, CF::case_file, c, "contract") != contract) {
            throw Error(ErrorCode::conflict, "the case's contract changed meanwhile: try again");
        }
        if (!ots_of_case(b.r, c).empty()) {
            throw Error(ErrorCode::conflict, "this case's OTs were already issued");
        }
        const auto missing = missing_requirements(b.r, c);
        if (!missing.empty() && text_of(b.r, CF::case_file, c, "requirements_override").empty()) {
            std::string list;
            for (const auto& m : missing) {
                list += (list.empty() ? "" : ", ") + m;
            }
            throw Error(ErrorCode::requirements_incomplete,
                        "requirements (Anexo 2) not met: " + list +
                            "; check them, or a supervisor records an override");
        }
        const int modality = modality_of(b.r, c);
        for (const auto kind : work_orders_for(modality)) {
            // Which OT carries the contract's equipment (docs/architecture.md §3).
            const bool carries = ot_equipment(modality, kind).carries;
            if (carries && inventory.empty()) {
                throw Error(ErrorCode::not_found,
                            "contract " + contract +
                                " has no equipment in the inventory; import it first");
            }
            const Id ot = Id::random();
            const auto W = CF::work_order;
            b.set(W, ot, "case", c);
            b.set(W, ot, "kind", text(std::string(kind)));
            const bool at_old = kind == "withdraw_boot";
            b.set(W, ot, "address",
                  text(text_of(b.r, CF::case_file, c, at_old ? "old_address" : "new_address")));
            if (zone) {
                b.set(W, ot, "zone", text(*zone));
            }
            b.set(W, ot, "issued_at", Timestamp{now});
            if (window_start) {
                b.set(W, ot, "window_start", Timestamp{*window_start});
            }
            if (window_end) {
                b.set(W, ot, "window_end", Timestamp{*window_end});
            }
            b.status(W, ot, "issued");
            if (carries) {
                for (const auto& item : inventory) {
                    const Id eq = Id::natural("equipment", item.serial);
                    const auto E = CF::equipment;
                    if (!b.r.entity(E, eq)) {
                        b.set(E, eq, "serial", text(item.serial));
                        b.set(E, eq, "kind", text(item.kind));
                        if (!item.model.empty()) {
                            b.set(E, eq, "model", text(item.model));
                        }
                        b.set(E, eq, "contract", text(item.contract));
                        if (!item.description.empty()) {
                            b.set(E, eq, "description", text(item.description));
                        }
                        b.event(E, eq, "custody", text("customer"));
                    }
                    b.add(W, ot, "expected_equipment", text(item.serial));
                }
            }
            if (tech) {
                b.set(W, ot, "technician", tech->id);
                b.status(W, ot, "assigned");
            }
        }
        b.status(CF::case_file, c, "in_progress");
        const int issue_step = modality == 1 ? 12 : modality == 2 ? 11 : modality == 3 ? 10 : 14;
        b.step(c, *step_code(modality, issue_step));
    });
    return case_detail(c);
}

std::string Procedure::case_reconciliation(const Id& c) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        require_case(r, c);
        w.StartObject();
        w.Key("case");
        str(w, c.hex());
        w.Key("ots");
        w.StartArray();
        for (const auto& rec : reconcile_case(r, c, reconcile_options())) {
            write_reconciliation(w, rec, *names);
        }
        w.EndArray();
        w.Key("closing_blockers");
        w.StartArray();
        for (const auto& why : closing_blockers(r, c, reconcile_options())) {
            str(w, why);
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

// ---- OTs ----------------------------------------------------------------------------------------

std::string Procedure::list_ots(const std::map<std::string, std::string>& q) {
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

std::string Procedure::ot_detail(const Id& ot) {
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

std::string Procedure::assign_ot(const User& actor, const Id& ot, const std::string& body) {
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

std::string Procedure::cancel_ot(const User& actor, const Id& ot, const std::string& body) {
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

std::string Procedure::missing_reason(const User& actor, const Id& ot, const std::string& body) {
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

std::string Procedure::ot_reconciliation(const Id& ot) {
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

std::string Procedure::resolve_item(const User& actor, const Id& item, const std::string& body) {
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

// ---- handovers ----------------------------------------------------------------------------------

std::string Procedure::list_handovers(const std::map<std::string, std::string>& q) {
    const std::string want = query_of(q, "status");
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("handovers");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& h : r.entities(CF::handover)) {
            const std::string status = text_of(r, CF::handover, h, "status");
            if (status.empty()) {
                continue;
            }
            if (want.empty() ? status == "received" : status != want) {
                continue; // by default: the ones waiting for the warehouse
            }
            found.emplace_back(time_of(r, CF::handover, h, "date").value_or(0), h);
        }
        std::sort(found.begin(), found.end()); // oldest first: the longest waiting on top
        for (const auto& [date, h] : found) {
            w.StartObject();
            w.Key("id");
            str(w, h.hex());
            w.Key("status");
            str(w, text_of(r, CF::handover, h, "status"));
            w.Key("technician");
            const auto t = id_of(r, CF::handover, h, "technician");
            str(w, t ? names->label(*t) : std::string());
            w.Key("zone");
            str(w, text_of(r, CF::handover, h, "zone"));
            w.Key("date");
            w.Int64(date);
            w.Key("age_hours");
            w.Int64(date > 0 ? (now - date) / 3600000 : 0);
            w.Key("rows");
            w.Uint(static_cast<unsigned>(r.elements(CF::handover, h, "rows").size()));
            w.EndObject();
        }
    });
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string Procedure::handover_detail(const Id& h) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        if (text_of(r, CF::handover, h, "status").empty()) {
            throw not_found("no handover " + h.hex());
        }
        w.StartObject();
        w.Key("id");
        str(w, h.hex());
        w.Key("status");
        str(w, text_of(r, CF::handover, h, "status"));
        w.Key("technician");
        const auto t = id_of(r, CF::handover, h, "technician");
        str(w, t ? names->label(*t) : std::string());
        w.Key("zone");
        str(w, text_of(r, CF::handover, h, "zone"));
        w.Key("date");
        w.Int64(time_of(r, CF::handover, h, "date").value_or(0));
        w.Key("received_by");
        str(w, text_of(r, CF::handover, h, "received_by"));
        w.Key("received_at");
        w.Int64(time_of(r, CF::handover, h, "received_at").value_or(0));
        w.Key("received_rows_hash");
        str(w, hex_of(r.get(CF::handover, h, "received_rows_hash")));
        w.Key("rows");
        w.StartArray();
        for (const auto& [serial, item] : handover_rows(r, h)) {
            const auto T = CF::collected_item;
            w.StartObject();
            w.Key("item");
            str(w, item.hex());
            w.Key("serial");
            str(w, serial);
            w.Key("description");
            str(w, row_description(r, item, serial));
            w.Key("reason");
            str(w, text_of(r, T, item, "reason"));
            w.Key("defect");
            str(w, text_of(r, T, item, "defect"));
            w.Key("observations");
            str(w, text_of(r, T, item, "observations"));
            w.Key("collected_at");
            w.Int64(time_of(r, T, item, "collected_at").value_or(0));
            w.Key("voided");
            w.Bool(is_true(r, T, item, "voided"));
            w.Key("receipt");
            str(w, text_of(r, T, item, "receipt"));
            w.Key("receipt_note");
            str(w, text_of(r, T, item, "receipt_note"));
            w.Key("ot");
            const auto ot = id_of(r, T, item, "work_order");
            str(w, ot ? ot->hex() : std::string());
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

std::string Procedure::receive_handover(const User& actor, const Id& h, const std::string& body) {
    JsonBody j(body);
    const auto* rows = j.array("rows", m_config.max_rows_per_receipt, true);
    struct In {
        std::string serial, result, note;
    };
    std::vector<In> in;
    for (rapidjson::SizeType i = 0; i < rows->Size(); ++i) {
        JsonBody row((*rows)[i], "rows[" + std::to_string(i) + "]");
        In x;
        x.serial = normalize_serial(row.req_text("serial", 64));
        x.result = row.req_text("result", 32);
        if (x.result != "received" && x.result != "missing" && x.result != "damaged_on_arrival") {
            throw Error(ErrorCode::invalid_value,
                        "result is received, missing or damaged_on_arrival", row.path("result"));
        }
        x.note = row.text("note", 500).value_or("");
        if (x.result != "received" && x.note.empty() && x.result == "damaged_on_arrival") {
            throw Error(ErrorCode::missing_field, "say what is damaged", row.path("note"));
        }
        row.done();
        in.push_back(std::move(x));
    }
    j.done();
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const std::string clerk = actor.full_name.empty() ? actor.name : actor.full_name;
    std::string rows_hash_hex;
    run(m_sync, actor, [&](Batch& b) {
        const std::string status = b.status_of(CF::handover, h);
        if (status.empty()) {
            throw not_found("no handover " + h.hex());
        }
        if (status == "received") {
            throw Error(ErrorCode::conflict, "this handover was already received by " +
                                                 text_of(b.r, CF::handover, h, "received_by"));
        }
        std::map<std::string, Id> by_serial;
        for (const auto& v : b.r.elements(CF::handover, h, "rows")) {
            if (const auto* item = std::get_if<Id>(&v)) {
                by_serial[text_of(b.r, CF::collected_item, *item, "serial")] = *item;
            }
        }
        if (by_serial.empty()) {
            throw Error(ErrorCode::invalid_transition, "this handover has no rows");
        }
        std::map<std::string, const In*> given;
        for (const auto& x : in) {
            if (!by_serial.contains(x.serial)) {
                throw Error(ErrorCode::invalid_value,
                            x.serial + " is not on this handover (Anexo 4)", "rows");
            }
            if (!given.emplace(x.serial, &x).second) {
                throw Error(ErrorCode::invalid_value, x.serial + " is listed twice", "rows");
            }
        }
        std::string absent;
        for (const auto& [serial, item] : by_serial) {
            if (!given.contains(serial)) {
                absent += (absent.empty() ? "" : ", ") + serial;
            }
        }
        if (!absent.empty()) {
            throw Error(ErrorCode::missing_field,
                        "every row needs a result (received, missing or damaged_on_arrival): " +
                            absent,
                        "rows");
        }
        // The exact rows received, hashed: beside the customer's signature over the rows
        // collected, this proves the custody chain row by row.
        std::string canonical = "otsync-receipt-rows-v1\n" + h.hex() + "\n";
        for (const auto& [serial, x] : given) {
            const Id item = by_serial.at(serial);
            const std::string prior = text_of(b.r, CF::collected_item, item, "receipt");
            if (!prior.empty()) {
                throw Error(ErrorCode::conflict,
                            serial + " was already received ('" + prior + "')");
            }
            canonical += item.hex() + " " + serial + " " + x->result + " " + x->note + "\n";
            b.set(CF::collected_item, item, "receipt", text(x->result));
            if (!x->note.empty()) {
                b.set(CF::collected_item, item, "receipt_note", text(x->note));
            }
            const Id eq = Id::natural("equipment", serial);
            if (x->result != "missing" && b.r.entity(CF::equipment, eq)) {
                b.event(CF::equipment, eq, "custody", text("warehouse"));
                if (x->result == "damaged_on_arrival") {
                    b.set(CF::equipment, eq, "condition", text("damaged"));
                }
            }
        }
        const Hash256 hash = blake2b_256(canonical);
        rows_hash_hex = crdt::to_hex(hash);
        // The server's Ed25519 attestation of the receipt, kept on the handover with the
        // fields it covers, so the technician's device can check it (client.h).
        const Signature attest =
            m_sync.sign(handover_receipt_message(h, actor.id, now, rows_hash_hex));
        b.set(CF::handover, h, "received_by", text(clerk));
        b.set(CF::handover, h, "received_by_user", actor.id);
        b.set(CF::handover, h, "received_at", Timestamp{now});
        b.set(CF::handover, h, "received_rows_hash", Bytes{{hash.begin(), hash.end()}});
        b.set(CF::handover, h, "receipt_signature", Bytes{{attest.begin(), attest.end()}});
        b.status(CF::handover, h, "received");
    });
    const std::string message = handover_receipt_message(h, actor.id, now, rows_hash_hex);
    const Signature sig = m_sync.sign(message);
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("handover");
    raw(w, handover_detail(h));
    w.Key("receipt");
    w.StartObject();
    w.Key("received_by");
    str(w, clerk);
    w.Key("received_at");
    w.Int64(now);
    w.Key("received_rows_hash");
    str(w, rows_hash_hex);
    w.Key("signed_message");
    str(w, message);
    w.Key("server_signature");
    str(w, to_base64(sig));
    w.EndObject();
    w.EndObject();
    return sb.GetString();
}

std::string Procedure::anexo4_html(const Id& h) {
    Anexo4Form form;
    const auto names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        const std::string status = text_of(r, CF::handover, h, "status");
        if (status.empty()) {
            throw not_found("no handover " + h.hex());
        }
        form.handover_id = h.hex();
        form.date_ms = time_of(r, CF::handover, h, "date").value_or(0);
        if (auto t = id_of(r, CF::handover, h, "technician")) {
            form.technician = names->label(*t);
        }
        form.zone = text_of(r, CF::handover, h, "zone");
        form.delivered_by = text_of(r, CF::handover, h, "delivered_by");
        if (form.delivered_by.empty()) {
            form.delivered_by = form.technician;
        }
        form.received_by = text_of(r, CF::handover, h, "received_by");
        form.received_at_ms = time_of(r, CF::handover, h, "received_at").value_or(0);
        form.technician_signed = r.get(CF::handover, h, "technician_signature_ref") != nullptr;
        form.clerk_signed = status == "received";
        form.delivered_rows_hash = hex_of(r.get(CF::handover, h, "delivered_rows_hash"));
        form.received_rows_hash = hex_of(r.get(CF::handover, h, "received_rows_hash"));
        form.tz_offset_minutes = m_config.tz_offset_minutes;
        for (const auto& [serial, item] : handover_rows(r, h)) {
            const auto T = CF::collected_item;
            Anexo4Row row;
            row.code = serial;
            row.description = row_description(r, item, serial);
            row.reason = text_of(r, T, item, "reason");
            row.defect = text_of(r, T, item, "defect");
            row.observations = text_of(r, T, item, "observations");
            row.date_ms = time_of(r, T, item, "collected_at").value_or(0);
            row.customer_signed = r.get(T, item, "signature_ref") != nullptr;
            if (auto ot = id_of(r, T, item, "work_order")) {
                row.signed_rows_hash = hex_of(r.get(CF::work_order, *ot, "signed_rows_hash"));
            }
            row.receipt = text_of(r, T, item, "receipt");
            row.receipt_note = text_of(r, T, item, "receipt_note");
            if (auto by = collector_of(r, item)) {
                row.collected_by = names->label(*by);
            }
            form.rows.push_back(std::move(row));
        }
    });
    return render_anexo4(form);
}

// ---- fees, inventory, reports, conflicts --------------------------------------------------------

Money Procedure::fee_at(const std::vector<std::string>& products, std::int64_t at_ms) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> current; // product -> (from, c)
    for (const auto& row : m_store.fee_records()) {
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

std::string Procedure::fees(const std::map<std::string, std::string>& q) {
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
        w.Int64(fee_at(list, at).centavos);
    }
    w.EndObject();
    return sb.GetString();
}

std::string Procedure::put_fee(const User& actor, const std::string& body) {
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

ImportResult Procedure::import_inventory(std::string_view csv) {
    return import_inventory_csv(csv, m_store, static_cast<std::int64_t>(m_clock.now_ms()),
                                m_config.import_limits);
}

std::string Procedure::contract_detail(const std::string& number) {
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

std::string Procedure::indicators(const std::map<std::string, std::string>& q, bool csv) {
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

std::string Procedure::discrepancies(const std::map<std::string, std::string>& q) {
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

std::string Procedure::conflicts() {
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

std::string Procedure::resolve_conflict(const User& actor, const std::string& body) {
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

std::string Procedure::users_json() {
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

std::string Procedure::devices_json() {
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

// ---- closing ------------------------------------------------------------------------------------

namespace {

/// Closes, in `b`, each case among `cases` in progress with nothing blocking its closing.
std::size_t close_in(Batch& b, const std::vector<Id>& cases, const ReconcileOptions& o) {
    std::size_t closed = 0;
    for (const Id& c : cases) {
        if (b.status_of(CF::case_file, c) == "in_progress" && closing_blockers(b.r, c, o).empty()) {
            b.status(CF::case_file, c, "closed");
            ++closed;
        }
    }
    return closed;
}

} // namespace

std::size_t Procedure::close_ready(const std::vector<Id>& cases) {
    if (cases.empty()) {
        return 0;
    }
    std::size_t closed = 0;
    run(m_sync, system_user(), [&](Batch& b) { closed = close_in(b, cases, reconcile_options()); });
    return closed;
}

namespace {

/// The cases an op can affect: its OT's case, its row's OT's case.
std::vector<Id> cases_touched_by(const crdt::Replica& r, const std::vector<Op>& ops) {
    std::set<Id> out;
    for (const Op& op : ops) {
        std::optional<Id> ot;
        if (op.entity_type == CF::work_order) {
            ot = op.entity;
        } else if (op.entity_type == CF::collected_item) {
            ot = id_of(r, CF::collected_item, op.entity, "work_order");
        }
        if (ot) {
            if (auto c = id_of(r, CF::work_order, *ot, "case")) {
                out.insert(*c);
            }
        }
    }
    return {out.begin(), out.end()};
}

/// Custody follows the field facts: equipment of the inventory recorded as collected moves
/// customer -> technician, as an event by the server.
std::vector<SyncService::FollowUp> custody_rule(const std::vector<Op>& cause) {
    const FieldId serial_field = field_def(CF::collected_item, "serial").id;
    std::vector<std::string> serials;
    for (const Op& op : cause) {
        if (op.entity_type == CF::collected_item && op.field == serial_field &&
            std::holds_alternative<std::string>(op.value)) {
            serials.push_back(normalize_serial(std::get<std::string>(op.value)));
        }
    }
    if (serials.empty()) {
        return {};
    }
    return {{system_user().id, Role::system, [serials](crdt::OpMaker& m, const crdt::Replica& r) {
                 Batch b(system_user(), m, r);
                 for (const auto& serial : serials) {
                     const Id eq = Id::natural("equipment", serial);
                     if (!r.entity(CF::equipment, eq)) {
                         continue; // not in the inventory: reconciliation shows it as unexpected
                     }
                     const auto* log = r.log(CF::equipment, eq, "custody");
                     const bool with_customer =
                         !log || log->events.empty() ||
                         (std::holds_alternative<std::string>(log->events.rbegin()->second) &&
                          std::get<std::string>(log->events.rbegin()->second) == "customer");
                     if (with_customer) {
                         b.event(CF::equipment, eq, "custody", text("technician"));
                     }
                 }
                 return std::move(b.ops);
             }}};
}

/// The technician's step of the seed (m1.14, m2.13, m3.11, m4.18), recorded on the case
/// when the last open OT of it completes; its author is the technician who completed it.
std::vector<SyncService::FollowUp> field_step_rule(const crdt::Replica& r,
                                                   const std::vector<Op>& cause) {
    const FieldId status_field = field_def(CF::work_order, "status").id;
    std::map<Id, std::vector<std::pair<Id, std::string>>> due; // technician -> (case, code)
    std::set<Id> seen;
    for (const Op& op : cause) {
        if (op.entity_type != CF::work_order || op.field != status_field ||
            !std::holds_alternative<std::string>(op.value) ||
            std::get<std::string>(op.value) != "completed") {
            continue;
        }
        const auto c = id_of(r, CF::work_order, op.entity, "case");
        const auto tech = id_of(r, CF::work_order, op.entity, "technician");
        if (!c || !tech || !seen.insert(*c).second) {
            continue;
        }
        bool all_final = true;
        for (const Id& other : r.referrers(CF::work_order, "case", *c)) {
            const std::string st = text_of(r, CF::work_order, other, "status");
            all_final = all_final && (st == "completed" || st == "cancelled");
        }
        if (!all_final) {
            continue; // the step is the whole visit: wait for every OT
        }
        for (const auto& step : steps_for(modality_of(r, *c))) {
            if (step.role != Role::technician) {
                continue;
            }
            bool done = false;
            if (const auto* log = r.log(CF::case_file, *c, "steps")) {
                for (const auto& [k, v] : log->events) {
                    done = done || (std::holds_alternative<std::string>(v) &&
                                    std::get<std::string>(v) == step.code);
                }
            }
            if (!done) {
                due[*tech].emplace_back(*c, std::string(step.code));
            }
        }
    }
    std::vector<SyncService::FollowUp> out;
    for (auto& [tech, steps] : due) {
        out.push_back({tech, Role::system,
                       [steps = std::move(steps)](crdt::OpMaker& m, const crdt::Replica&) {
                           std::vector<Op> ops;
                           for (const auto& [c, code] : steps) {
                               ops.push_back(m.event(CF::case_file, c, "steps", text(code)));
                           }
                           return ops;
                       }});
    }
    return out;
}

} // namespace

void Procedure::register_follow_ups() {
    // In this order: custody and the technician's step first, then closing, which reads them.
    m_sync.set_follow_ups({
        [](const crdt::Replica&, const std::vector<Op>& cause) { return custody_rule(cause); },
        [](const crdt::Replica& r, const std::vector<Op>& cause) {
            return field_step_rule(r, cause);
        },
        [this](const crdt::Replica& r,
               const std::vector<Op>& cause) -> std::vector<SyncService::FollowUp> {
            auto cases = cases_touched_by(r, cause);
            if (cases.empty()) {
                return {};
            }
            return {{system_user().id, Role::system,
                     [this, cases = std::move(cases)](crdt::OpMaker& m, const crdt::Replica& st) {
                         Batch b(system_user(), m, st);
                         close_in(b, cases, reconcile_options());
                         return std::move(b.ops);
                     }}};
        },
    });
}

std::size_t Procedure::close_all_ready() {
    std::vector<Id> cases;
    m_sync.read_state([&](const crdt::Replica& r) {
        for (const Id& c : r.entities(CF::case_file)) {
            if (text_of(r, CF::case_file, c, "status") == "in_progress") {
                cases.push_back(c);
            }
        }
    });
    return close_ready(cases);
}

} // namespace otsync::server
