// What the procedure's parts share (cases.cpp, work_orders.cpp, handovers.cpp, office.cpp,
// procedure.cpp): one action's Batch of ops checked against the permission and transition
// tables, run() to submit it under the service lock, and the rules' small helpers. Not
// part of the procedure's interface: only its own .cpp files include it.
#pragma once

#include "procedure/procedure.hpp"

#include "otsync/model.hpp"
#include "otsync/view.hpp"

#include <sodium.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

namespace otsync::server::detail {

using CF = EntityType;

inline Error not_found(const std::string& what) {
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

inline int modality_of(const crdt::Replica& r, const Id& c) {
    const Value* v = r.get(CF::case_file, c, "modality");
    return v && std::holds_alternative<std::int64_t>(*v)
               ? static_cast<int>(std::get<std::int64_t>(*v))
               : 0;
}

inline PersonType person_of(const crdt::Replica& r, const Id& c) {
    return text_of(r, CF::case_file, c, "person_type") == "legal" ? PersonType::legal
                                                                  : PersonType::natural;
}

inline void require_case(const crdt::Replica& r, const Id& c) {
    if (!r.entity(CF::case_file, c) || modality_of(r, c) == 0) {
        throw not_found("no case " + c.hex());
    }
}

inline void require_status(const Batch& b, const Id& c, std::initializer_list<std::string_view> ok,
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
inline std::optional<std::string_view> step_code(int modality, int number) {
    char code[8];
    std::snprintf(code, sizeof code, "m%d.%02d", modality, number);
    for (const auto& s : steps_for(modality)) {
        if (s.code == code) {
            return s.code;
        }
    }
    return std::nullopt;
}

inline std::vector<std::string>
missing_requirements(const crdt::Replica& r, const Id& c,
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

inline User find_user(const Directory::Snapshot& users, const std::string& name, Role role,
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

/// A bytes register (a rows hash) as lowercase hex; empty when unset.
inline std::string hex_of(const Value* v) {
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
inline const User& system_user() {
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
inline std::vector<std::pair<std::string, Id>> handover_rows(const crdt::Replica& r, const Id& h) {
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
inline std::string row_description(const crdt::Replica& r, const Id& item,
                                   const std::string& serial) {
    std::string d = text_of(r, CF::collected_item, item, "description");
    return d.empty() ? text_of(r, CF::equipment, Id::natural("equipment", serial), "model") : d;
}

/// Sorts (time, id) pairs newest first and keeps the first `limit`; returns how many
/// there were (a list's `total`).
inline std::size_t keep_newest(std::vector<std::pair<std::int64_t, Id>>& found, std::size_t limit) {
    std::sort(found.rbegin(), found.rend());
    const std::size_t total = found.size();
    if (found.size() > limit) {
        found.resize(limit);
    }
    return total;
}

/// A case's first review action moves it from routed to in_review.
inline void enter_review(Batch& b, const Id& c) {
    if (b.status_of(CF::case_file, c) == "routed") {
        b.status(CF::case_file, c, "in_review");
    }
}

/// Runs `f` under the service lock and submits what it made; all or nothing.
inline void run(SyncService& sync, const User& actor, const std::function<void(Batch&)>& f) {
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

/// The fee for `products` at `at_ms` from the dated table in `store`.
Money fee_at(Store& store, const std::vector<std::string>& products, std::int64_t at_ms);

} // namespace otsync::server::detail
