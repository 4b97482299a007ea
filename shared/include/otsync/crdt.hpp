// The merge: pure rules for the three field kinds, and Replica, the state folded from
// a set of ops. Every replica (each device and the server) runs this same code, so the
// same set of ops gives byte-identical state whatever the order, duplication or
// batching of delivery (docs/architecture.md §3).
#pragma once

#include "otsync/error.hpp"
#include "otsync/model.hpp"
#include "otsync/op.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace otsync::crdt {

/// One write of a lifecycle (status) register. `prev` is the status write the writer
/// saw as current (carried as the op's single observed tag): the causal link that tells
/// a reopen (sequential) from a concurrent completed-vs-cancelled.
struct StatusWrite {
    OrderKey key;
    std::string state;
    std::optional<OpId> prev;
    bool final_state = false;
    bool operator==(const StatusWrite&) const = default;
};

/// `set`: last writer by op order wins. Lifecycle registers also keep every status
/// write, so two concurrent final states are both kept and shown, never lost.
struct RegisterState {
    OrderKey key{};
    Value value;
    bool written = false;
    std::vector<StatusWrite> history; // lifecycle registers only, sorted by key
};

/// `add`/`remove`: observed-remove set (Shapiro et al. 2011, OR-Set). Each add is
/// tagged with its op id; a remove tombstones the tags it observed; an element is
/// present while one of its tags is not tombstoned. Add wins over a concurrent remove.
struct SetState {
    std::map<Value, std::vector<OpId>> adds; // element -> sorted add tags
    std::set<OpId> tombstones;
};

/// `event`: append-only; union by op id, read in op order.
struct LogState {
    std::map<OrderKey, Value> events;
};

using FieldState = std::variant<RegisterState, SetState, LogState>;

// ---- the rules, as pure functions -------------------------------------------------------

/// True when a write with `incoming` replaces the register's current value.
bool register_wins(const RegisterState& r, const OrderKey& incoming) noexcept;
void register_apply(RegisterState& r, const OrderKey& key, const Value& v);
/// Lifecycle bookkeeping: records one status write.
void register_note_state(RegisterState& r, StatusWrite w);
/// The final-state writes that no later write has seen (heads of the status history);
/// two or more distinct states among them is a conflict for a person to resolve.
std::vector<std::pair<OrderKey, std::string>> register_final_rivals(const RegisterState& r);

void set_add(SetState& s, const Value& element, OpId tag);
void set_remove(SetState& s, std::span<const OpId> observed);
bool set_contains(const SetState& s, const Value& element);
/// The add tags of `element` not yet removed: what a remove made now must carry.
std::vector<OpId> set_live_tags(const SetState& s, const Value& element);
std::vector<Value> set_elements(const SetState& s);

void log_append(LogState& l, const OrderKey& key, const Value& v);

// ---- Replica -------------------------------------------------------------------------------

struct EntityKey {
    EntityType type{};
    Id id;
    auto operator<=>(const EntityKey&) const = default;
};
struct EntityKeyHash {
    std::size_t operator()(const EntityKey& k) const noexcept {
        return std::hash<Id>{}(k.id) ^ static_cast<std::size_t>(k.type);
    }
};

struct Entity {
    /// Sorted by field id; only fields ever written are present.
    std::vector<std::pair<FieldId, FieldState>> fields;

    const FieldState* field(FieldId id) const noexcept;
};

using Digest = std::array<std::uint8_t, 32>;
std::string to_hex(const Digest& d);

struct ApplyResult {
    enum class Status : std::uint8_t { applied, duplicate, rejected };
    Status status = Status::applied;
    std::optional<Error> error; // set when rejected
    bool applied() const noexcept { return status == Status::applied; }
};

/// A lifecycle register with two or more concurrent final states.
struct LifecycleConflict {
    EntityKey entity;
    FieldId field = 0;
    std::string winner; // the register's current value
    std::vector<std::pair<OrderKey, std::string>> finals;
};

/// The state of one replica. Not thread-safe. Memory grows with ops (op ids are kept
/// to detect duplicates and reuse) and with entities; nothing is ever deleted, so a
/// collected item once seen is never lost.
class Replica {
public:
    /// Applies one op. Duplicate (same id, same content): no change. Same id with
    /// different content (a device restored from a backup that reuses counters), or an
    /// op that does not fit the field registry: rejected, state unchanged.
    ApplyResult apply(const Op& op);

    /// BLAKE2b-256 of the canonical encoding of the whole state.
    Digest digest() const;

    const Entity* entity(EntityType t, const Id& id) const;
    /// Register value, or nullptr when never written (or the entity is unknown).
    const Value* get(EntityType t, const Id& id, std::string_view field) const;
    const RegisterState* reg(EntityType t, const Id& id, std::string_view field) const;
    const SetState* set(EntityType t, const Id& id, std::string_view field) const;
    const LogState* log(EntityType t, const Id& id, std::string_view field) const;
    std::vector<Value> elements(EntityType t, const Id& id, std::string_view field) const;
    std::vector<OpId> live_tags(EntityType t, const Id& id, std::string_view field,
                                const Value& element) const;

    /// Entity ids of a type, sorted.
    std::vector<Id> entities(EntityType t) const;
    /// The entities of type `t` whose register `field` now holds `target`, sorted: the
    /// links the views, the scope and the handheld follow (the rows of an OT are
    /// referrers(collected_item, "work_order", ot); the OTs of a case or of a technician
    /// likewise; the rows of a serial by collected_item "serial"). Kept current by apply
    /// for every register that holds an id and every text register marked `indexed` in
    /// the field registry, so a lookup never scans the state.
    const std::set<Id>& referrers(EntityType t, std::string_view field, const Value& target) const;
    std::vector<LifecycleConflict> conflicts() const;

    /// Forgets an entity and the ids of its ops (`ops`, as the log holds them): the state is
    /// as if they had never been applied, but max_counter keeps what it saw. For memory
    /// that follows open work: the server takes closed cases out of memory and folds their
    /// ops back in from its log when something touches them again.
    void evict(EntityType t, const Id& id, std::span<const OpId> ops);
    /// Raises max_counter as `id` would, without applying anything (an op left out of
    /// memory: its counter must not be made again).
    void note_counter(const OpId& id);
    /// Gives back what the hash tables grew to hold before evictions took their elements
    /// out (bucket arrays are never shrunk by erasing): after a large eviction.
    void shrink();
    /// Moves on every op applied for the first time and every eviction: whether the state
    /// changed between two looks at it.
    std::uint64_t changes() const noexcept { return m_changes; }

    bool has_op(const OpId& id) const { return m_seen.contains(id); }
    std::size_t op_count() const noexcept { return m_seen.size(); }
    std::size_t entity_count() const noexcept { return m_entities.size(); }
    /// Highest counter seen from `replica` (0 when none): a restarted replica resumes
    /// its own counter above it.
    std::uint64_t max_counter(std::uint64_t replica) const;

private:
    const FieldState* field_state(EntityType t, const Id& id, std::string_view field) const;

    struct RefKey {
        EntityType type;
        FieldId field;
        Value value; // an Id, or the text of an `indexed` field
        bool operator==(const RefKey&) const = default;
    };
    struct RefKeyHash {
        std::size_t operator()(const RefKey& k) const noexcept {
            std::size_t h = (static_cast<std::size_t>(k.type) << 8) ^ k.field;
            if (const auto* id = std::get_if<Id>(&k.value)) {
                h ^= std::hash<Id>{}(*id);
            } else if (const auto* text = std::get_if<std::string>(&k.value)) {
                h ^= std::hash<std::string>{}(*text);
            }
            return h;
        }
    };

    std::unordered_map<EntityKey, Entity, EntityKeyHash> m_entities;
    std::unordered_map<EntityType, std::set<Id>> m_by_type;
    std::unordered_map<RefKey, std::set<Id>, RefKeyHash> m_refs;
    std::unordered_map<OpId, std::uint64_t> m_seen; // op id -> content fingerprint
    std::unordered_map<std::uint64_t, std::uint64_t> m_max_counter;
    std::uint64_t m_changes = 0;
};

/// SipHash-2-4 fingerprint of an op's full content, for duplicate/reuse detection.
std::uint64_t fingerprint(const Op& op);
/// The canonical encoding of an op (fixed-width big-endian, length-prefixed), used for
/// fingerprints, digests and signatures; not a wire format.
void append_canonical(std::string& out, const Op& op);
void append_canonical(std::string& out, const Value& v);

/// Makes this replica's ops: op ids and HLC stamps. Holds no state of its own besides
/// the counter; persist `counter()` and the clock's state together with the op.
class OpMaker {
public:
    OpMaker(std::uint64_t replica, Hlc& clock, Id author, std::uint64_t last_counter = 0)
        : m_replica(replica), m_clock(&clock), m_author(author), m_counter(last_counter) {}

    Op set(EntityType t, const Id& entity, std::string_view field, Value v);
    /// A lifecycle or field-fact (tracked) write: carries the write it replaces in
    /// `replica` as its observed tag, so a later reader can tell a sequence of changes
    /// from concurrent ones (a conflict for a person).
    Op set_status(const Replica& replica, EntityType t, const Id& entity, std::string_view field,
                  Value state);
    Op add(EntityType t, const Id& entity, std::string_view field, Value element);
    /// Remove carries the tags `replica` has seen for the element.
    Op remove(const Replica& replica, EntityType t, const Id& entity, std::string_view field,
              Value element);
    Op event(EntityType t, const Id& entity, std::string_view field, Value v);

    std::uint64_t replica() const noexcept { return m_replica; }
    std::uint64_t counter() const noexcept { return m_counter; }
    void set_author(const Id& author) { m_author = author; }

private:
    Op make(EntityType t, const Id& entity, std::string_view field, OpKind kind, Value v);

    std::uint64_t m_replica;
    Hlc* m_clock;
    Id m_author;
    std::uint64_t m_counter;
};

} // namespace otsync::crdt
