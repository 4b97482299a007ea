// The merge rules and Replica. See crdt.hpp for the contract.
#include "otsync/crdt.hpp"

#include <sodium.h>

#include <algorithm>

namespace otsync::crdt {

// ---- canonical encoding ------------------------------------------------------------------

namespace {

void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}
void put_u16(std::string& out, std::uint16_t v) {
    put_u8(out, static_cast<std::uint8_t>(v >> 8));
    put_u8(out, static_cast<std::uint8_t>(v));
}
void put_u32(std::string& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) {
        put_u8(out, static_cast<std::uint8_t>(v >> s));
    }
}
void put_u64(std::string& out, std::uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) {
        put_u8(out, static_cast<std::uint8_t>(v >> s));
    }
}
void put_bytes(std::string& out, const void* p, std::size_t n) {
    put_u32(out, static_cast<std::uint32_t>(n));
    out.append(static_cast<const char*>(p), n);
}
void put_id(std::string& out, const Id& id) {
    out.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}
void put_key(std::string& out, const OrderKey& k) {
    put_u64(out, k.hlc);
    put_u64(out, k.replica);
    put_u64(out, k.counter);
}
void put_opid(std::string& out, const OpId& id) {
    put_u64(out, id.replica);
    put_u64(out, id.counter);
}

struct ValueWriter {
    std::string& out;
    void operator()(std::monostate) const {}
    void operator()(bool b) const { put_u8(out, b ? 1 : 0); }
    void operator()(std::int64_t i) const { put_u64(out, static_cast<std::uint64_t>(i)); }
    void operator()(const Money& m) const { put_u64(out, static_cast<std::uint64_t>(m.centavos)); }
    void operator()(const std::string& s) const { put_bytes(out, s.data(), s.size()); }
    void operator()(const Bytes& b) const { put_bytes(out, b.data.data(), b.data.size()); }
    void operator()(const Id& id) const { put_id(out, id); }
    void operator()(const Timestamp& t) const { put_u64(out, static_cast<std::uint64_t>(t.ms)); }
};

// A fixed, public key: the fingerprint detects accidents (a restored backup reusing
// counters), and an op id only ever collides with ops of the same replica.
constexpr unsigned char k_fingerprint_key[crypto_shorthash_KEYBYTES] = {
    'o', 't', 's', 'y', 'n', 'c', '.', 'o', 'p', '.', 'f', 'p', '.', 'v', '1', 0};

} // namespace

void append_canonical(std::string& out, const Value& v) {
    put_u8(out, static_cast<std::uint8_t>(v.index()));
    std::visit(ValueWriter{out}, v);
}

void append_canonical(std::string& out, const Op& op) {
    put_opid(out, op.id);
    put_u64(out, op.hlc);
    put_id(out, op.author);
    put_u8(out, static_cast<std::uint8_t>(op.entity_type));
    put_id(out, op.entity);
    put_u16(out, op.field);
    put_u8(out, static_cast<std::uint8_t>(op.kind));
    append_canonical(out, op.value);
    put_u32(out, static_cast<std::uint32_t>(op.observed.size()));
    for (const auto& t : op.observed) {
        put_opid(out, t);
    }
}

std::uint64_t fingerprint(const Op& op) {
    ensure_sodium();
    thread_local std::string buf;
    buf.clear();
    append_canonical(buf, op);
    std::uint64_t out = 0;
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, reinterpret_cast<const unsigned char*>(buf.data()), buf.size(),
                     k_fingerprint_key);
    for (unsigned char b : h) {
        out = (out << 8) | b;
    }
    return out;
}

std::string to_hex(const Digest& d) {
    ensure_sodium();
    char buf[65];
    sodium_bin2hex(buf, sizeof buf, d.data(), d.size());
    return std::string(buf, 64);
}

// ---- rules ---------------------------------------------------------------------------------

bool register_wins(const RegisterState& r, const OrderKey& incoming) noexcept {
    return !r.written || incoming > r.key;
}

void register_apply(RegisterState& r, const OrderKey& key, const Value& v) {
    if (register_wins(r, key)) {
        r.key = key;
        r.value = v;
        r.written = true;
    }
}

void register_note_state(RegisterState& r, StatusWrite w) {
    const auto pos =
        std::lower_bound(r.history.begin(), r.history.end(), w.key,
                         [](const StatusWrite& a, const OrderKey& k) { return a.key < k; });
    if (pos == r.history.end() || pos->key != w.key) {
        r.history.insert(pos, std::move(w));
    }
}

std::vector<std::pair<OrderKey, std::string>> register_final_rivals(const RegisterState& r) {
    std::vector<std::pair<OrderKey, std::string>> heads;
    for (const auto& w : r.history) {
        if (!w.final_state) {
            continue;
        }
        const bool seen_later = std::any_of(r.history.begin(), r.history.end(), [&](const auto& o) {
            return o.prev && *o.prev == w.key.op_id();
        });
        if (!seen_later) {
            heads.emplace_back(w.key, w.state);
        }
    }
    for (std::size_t i = 1; i < heads.size(); ++i) {
        if (heads[i].second != heads[0].second) {
            return heads;
        }
    }
    return {};
}

void set_add(SetState& s, const Value& element, OpId tag) {
    auto& tags = s.adds[element];
    const auto pos = std::lower_bound(tags.begin(), tags.end(), tag);
    if (pos == tags.end() || *pos != tag) {
        tags.insert(pos, tag);
    }
}

void set_remove(SetState& s, std::span<const OpId> observed) {
    // Tombstones are kept even for tags not seen yet: the add may arrive later and must
    // then be born removed, whatever the delivery order.
    s.tombstones.insert(observed.begin(), observed.end());
}

std::vector<OpId> set_live_tags(const SetState& s, const Value& element) {
    std::vector<OpId> live;
    if (auto it = s.adds.find(element); it != s.adds.end()) {
        for (const auto& t : it->second) {
            if (!s.tombstones.contains(t)) {
                live.push_back(t);
            }
        }
    }
    return live;
}

bool set_contains(const SetState& s, const Value& element) {
    if (auto it = s.adds.find(element); it != s.adds.end()) {
        for (const auto& t : it->second) {
            if (!s.tombstones.contains(t)) {
                return true;
            }
        }
    }
    return false;
}

std::vector<Value> set_elements(const SetState& s) {
    std::vector<Value> out;
    for (const auto& [element, tags] : s.adds) {
        for (const auto& t : tags) {
            if (!s.tombstones.contains(t)) {
                out.push_back(element);
                break;
            }
        }
    }
    return out;
}

void log_append(LogState& l, const OrderKey& key, const Value& v) {
    l.events.emplace(key, v);
}

// ---- Replica ----------------------------------------------------------------------------------

const FieldState* Entity::field(FieldId id) const noexcept {
    const auto pos = std::lower_bound(fields.begin(), fields.end(), id,
                                      [](const auto& p, FieldId f) { return p.first < f; });
    return pos != fields.end() && pos->first == id ? &pos->second : nullptr;
}

namespace {

FieldState& field_slot(Entity& e, const FieldDef& def) {
    auto pos = std::lower_bound(e.fields.begin(), e.fields.end(), def.id,
                                [](const auto& p, FieldId f) { return p.first < f; });
    if (pos != e.fields.end() && pos->first == def.id) {
        return pos->second;
    }
    FieldState fresh;
    switch (def.kind) {
    case FieldKind::register_:
        fresh = RegisterState{};
        break;
    case FieldKind::set:
        fresh = SetState{};
        break;
    case FieldKind::log:
        fresh = LogState{};
        break;
    }
    return e.fields.insert(pos, {def.id, std::move(fresh)})->second;
}

} // namespace

ApplyResult Replica::apply(const Op& op) {
    if (auto err = check_op_schema(op)) {
        return {ApplyResult::Status::rejected, std::move(err)};
    }
    const std::uint64_t fp = fingerprint(op);
    const auto [seen, inserted] = m_seen.try_emplace(op.id, fp);
    if (!inserted) {
        if (seen->second == fp) {
            return {ApplyResult::Status::duplicate, std::nullopt};
        }
        return {ApplyResult::Status::rejected,
                Error(ErrorCode::op_id_reused, "op " + std::to_string(op.id.replica) + ":" +
                                                   std::to_string(op.id.counter) +
                                                   " was already received with different content")};
    }
    ++m_changes;
    auto& top = m_max_counter[op.id.replica];
    top = std::max(top, op.id.counter);

    const FieldDef& def = *find_field(op.entity_type, op.field);
    const auto [it, created] = m_entities.try_emplace(EntityKey{op.entity_type, op.entity});
    Entity& e = it->second;
    if (created) {
        m_by_type[op.entity_type].insert(op.entity);
    }
    FieldState& slot = field_slot(e, def);
    const OrderKey key = op.order_key();
    switch (op.kind) {
    case OpKind::set: {
        auto& r = std::get<RegisterState>(slot);
        // The reference index follows the register's winner: from what it held to what it
        // holds after this op (an older op that loses changes nothing).
        const auto indexed = [&def](const RegisterState& reg) -> std::optional<Value> {
            if (!reg.written) {
                return std::nullopt;
            }
            if (std::holds_alternative<Id>(reg.value) ||
                (def.indexed && std::holds_alternative<std::string>(reg.value))) {
                return reg.value;
            }
            return std::nullopt;
        };
        const std::optional<Value> before = indexed(r);
        const auto reindex = [&] {
            std::optional<Value> after = indexed(r);
            if (before == after) {
                return;
            }
            if (before) {
                const auto ref = m_refs.find(RefKey{op.entity_type, def.id, *before});
                if (ref != m_refs.end()) {
                    ref->second.erase(op.entity);
                    if (ref->second.empty()) {
                        m_refs.erase(ref);
                    }
                }
            }
            if (after) {
                m_refs[RefKey{op.entity_type, def.id, std::move(*after)}].insert(op.entity);
            }
        };
        if ((def.lifecycle || def.tracked) && std::holds_alternative<std::string>(op.value)) {
            const auto& state = std::get<std::string>(op.value);
            register_note_state(r, StatusWrite{key, state,
                                               op.observed.empty()
                                                   ? std::nullopt
                                                   : std::optional<OpId>(op.observed.front()),
                                               def.tracked || is_final(*def.lifecycle, state)});
        }
        register_apply(r, key, op.value);
        reindex();
        break;
    }
    case OpKind::add:
        set_add(std::get<SetState>(slot), op.value, op.id);
        break;
    case OpKind::remove:
        set_remove(std::get<SetState>(slot), op.observed);
        break;
    case OpKind::event:
        log_append(std::get<LogState>(slot), key, op.value);
        break;
    }
    return {ApplyResult::Status::applied, std::nullopt};
}

void Replica::note_counter(const OpId& id) {
    auto& top = m_max_counter[id.replica];
    top = std::max(top, id.counter);
}

void Replica::evict(EntityType t, const Id& id, std::span<const OpId> ops) {
    ++m_changes;
    for (const OpId& op : ops) {
        m_seen.erase(op);
    }
    const auto it = m_entities.find(EntityKey{t, id});
    if (it == m_entities.end()) {
        return;
    }
    // Out of the reference index: each register that holds an id or an indexed text.
    for (const auto& [field, state] : it->second.fields) {
        const auto* r = std::get_if<RegisterState>(&state);
        if (!r || !r->written) {
            continue;
        }
        const auto ref = m_refs.find(RefKey{t, field, r->value});
        if (ref != m_refs.end()) {
            ref->second.erase(id);
            if (ref->second.empty()) {
                m_refs.erase(ref);
            }
        }
    }
    m_entities.erase(it);
    if (const auto by = m_by_type.find(t); by != m_by_type.end()) {
        by->second.erase(id);
    }
}

void Replica::shrink() {
    // rehash(0): the fewest buckets the load factor allows for what is left.
    m_entities.rehash(0);
    m_refs.rehash(0);
    m_seen.rehash(0);
}

Digest Replica::digest() const {
    ensure_sodium();
    std::vector<const std::pair<const EntityKey, Entity>*> sorted;
    sorted.reserve(m_entities.size());
    for (const auto& kv : m_entities) {
        sorted.push_back(&kv);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });

    crypto_generichash_state st;
    crypto_generichash_init(&st, nullptr, 0, 32);
    std::string buf;
    for (const auto* kv : sorted) {
        buf.clear();
        put_u8(buf, static_cast<std::uint8_t>(kv->first.type));
        put_id(buf, kv->first.id);
        put_u32(buf, static_cast<std::uint32_t>(kv->second.fields.size()));
        for (const auto& [fid, state] : kv->second.fields) {
            put_u16(buf, fid);
            if (const auto* r = std::get_if<RegisterState>(&state)) {
                put_u8(buf, 'R');
                put_key(buf, r->key);
                append_canonical(buf, r->value);
                put_u32(buf, static_cast<std::uint32_t>(r->history.size()));
                for (const auto& w : r->history) {
                    put_key(buf, w.key);
                    put_bytes(buf, w.state.data(), w.state.size());
                    put_u8(buf, w.prev ? 1 : 0);
                    put_opid(buf, w.prev.value_or(OpId{}));
                    put_u8(buf, w.final_state ? 1 : 0);
                }
            } else if (const auto* s = std::get_if<SetState>(&state)) {
                put_u8(buf, 'S');
                put_u32(buf, static_cast<std::uint32_t>(s->adds.size()));
                for (const auto& [element, tags] : s->adds) {
                    append_canonical(buf, element);
                    put_u32(buf, static_cast<std::uint32_t>(tags.size()));
                    for (const auto& t : tags) {
                        put_opid(buf, t);
                    }
                }
                put_u32(buf, static_cast<std::uint32_t>(s->tombstones.size()));
                for (const auto& t : s->tombstones) {
                    put_opid(buf, t);
                }
            } else {
                const auto& l = std::get<LogState>(state);
                put_u8(buf, 'L');
                put_u32(buf, static_cast<std::uint32_t>(l.events.size()));
                for (const auto& [k, v] : l.events) {
                    put_key(buf, k);
                    append_canonical(buf, v);
                }
            }
        }
        crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(buf.data()),
                                  buf.size());
    }
    Digest d{};
    crypto_generichash_final(&st, d.data(), d.size());
    return d;
}

const Entity* Replica::entity(EntityType t, const Id& id) const {
    const auto it = m_entities.find(EntityKey{t, id});
    return it == m_entities.end() ? nullptr : &it->second;
}

const FieldState* Replica::field_state(EntityType t, const Id& id, std::string_view field) const {
    const FieldDef& def = field_def(t, field);
    const Entity* e = entity(t, id);
    return e ? e->field(def.id) : nullptr;
}

const RegisterState* Replica::reg(EntityType t, const Id& id, std::string_view field) const {
    const auto* s = field_state(t, id, field);
    return s ? std::get_if<RegisterState>(s) : nullptr;
}

const SetState* Replica::set(EntityType t, const Id& id, std::string_view field) const {
    const auto* s = field_state(t, id, field);
    return s ? std::get_if<SetState>(s) : nullptr;
}

const LogState* Replica::log(EntityType t, const Id& id, std::string_view field) const {
    const auto* s = field_state(t, id, field);
    return s ? std::get_if<LogState>(s) : nullptr;
}

const Value* Replica::get(EntityType t, const Id& id, std::string_view field) const {
    const auto* r = reg(t, id, field);
    return r && r->written ? &r->value : nullptr;
}

std::vector<Value> Replica::elements(EntityType t, const Id& id, std::string_view field) const {
    const auto* s = set(t, id, field);
    return s ? set_elements(*s) : std::vector<Value>{};
}

std::vector<OpId> Replica::live_tags(EntityType t, const Id& id, std::string_view field,
                                     const Value& element) const {
    const auto* s = set(t, id, field);
    return s ? set_live_tags(*s, element) : std::vector<OpId>{};
}

std::vector<Id> Replica::entities(EntityType t) const {
    const auto it = m_by_type.find(t);
    return it == m_by_type.end() ? std::vector<Id>{}
                                 : std::vector<Id>(it->second.begin(), it->second.end());
}

const std::set<Id>& Replica::referrers(EntityType t, std::string_view field,
                                       const Value& target) const {
    static const std::set<Id> none;
    const FieldDef* def = find_field(t, field);
    if (!def) {
        return none;
    }
    const auto it = m_refs.find(RefKey{t, def->id, target});
    return it == m_refs.end() ? none : it->second;
}

std::vector<LifecycleConflict> Replica::conflicts() const {
    std::vector<LifecycleConflict> out;
    for (const auto& [k, e] : m_entities) {
        for (const auto& [fid, state] : e.fields) {
            const auto* r = std::get_if<RegisterState>(&state);
            if (!r || r->history.size() < 2) {
                continue;
            }
            auto rivals = register_final_rivals(*r);
            if (!rivals.empty()) {
                out.push_back({k, fid,
                               std::holds_alternative<std::string>(r->value)
                                   ? std::get<std::string>(r->value)
                                   : std::string(),
                               std::move(rivals)});
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return std::tie(a.entity, a.field) < std::tie(b.entity, b.field);
    });
    return out;
}

std::uint64_t Replica::max_counter(std::uint64_t replica) const {
    const auto it = m_max_counter.find(replica);
    return it == m_max_counter.end() ? 0 : it->second;
}

// ---- OpMaker ------------------------------------------------------------------------------------

Op OpMaker::make(EntityType t, const Id& entity, std::string_view field, OpKind kind, Value v) {
    const FieldDef& def = field_def(t, field);
    Op op;
    op.id = OpId{m_replica, ++m_counter};
    op.hlc = m_clock->now();
    op.author = m_author;
    op.entity_type = t;
    op.entity = entity;
    op.field = def.id;
    op.kind = kind;
    op.value = std::move(v);
    return op;
}

Op OpMaker::set(EntityType t, const Id& entity, std::string_view field, Value v) {
    return make(t, entity, field, OpKind::set, std::move(v));
}

Op OpMaker::set_status(const Replica& replica, EntityType t, const Id& entity,
                       std::string_view field, Value state) {
    const RegisterState* current = replica.reg(t, entity, field);
    Op op = make(t, entity, field, OpKind::set, std::move(state));
    if (current && current->written) {
        op.observed.push_back(current->key.op_id());
    }
    return op;
}

Op OpMaker::add(EntityType t, const Id& entity, std::string_view field, Value element) {
    return make(t, entity, field, OpKind::add, std::move(element));
}

Op OpMaker::remove(const Replica& replica, EntityType t, const Id& entity, std::string_view field,
                   Value element) {
    auto tags = replica.live_tags(t, entity, field, element);
    Op op = make(t, entity, field, OpKind::remove, std::move(element));
    op.observed = std::move(tags);
    return op;
}

Op OpMaker::event(EntityType t, const Id& entity, std::string_view field, Value v) {
    return make(t, entity, field, OpKind::event, std::move(v));
}

} // namespace otsync::crdt
