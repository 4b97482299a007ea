// The server's storage interface (docs/architecture.md §2, §8): users, enrollment codes,
// devices, the op log with its server sequence, per-user sync feeds, and per-entity
// projections. Backends: SQLite (sqlite_store.cpp), PostgreSQL (postgres_store.cpp); both
// pass the one contract suite, tests/server/test_store.cpp.
//
// Every method is atomic. The sync path groups its writes in one transaction through
// `commit_many`, so a response is sent only after everything it acknowledges is durable.
// `commit_many`, `enroll` and `import_inventory` open their own transaction: they are not
// called inside `in_transaction`.
#pragma once

#include "otsync/crypto.hpp"
#include "otsync/model.hpp"
#include "otsync/op.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace otsync::server {

struct User {
    Id id;
    std::string name;
    Role role = Role::technician;
    bool disabled = false;
    std::int64_t created_at = 0;
    std::string password_hash; // argon2id string (crypto_pwhash_str); empty = cannot log in
    std::string full_name;     // shown on pages and printed forms (Anexo 4); may be empty
    std::string unit;          // organisational unit, for indicators per unit
};

/// A web/API session: only the BLAKE2b-256 hash of its 32-byte token is stored.
struct Session {
    Hash256 token_hash{};
    Id user;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
};

/// One dated row of the transfer fee table (Anexo 2): the price of a product from
/// `effective_from` (ms, UTC) until a later row for the same product.
struct FeeRecord {
    std::string product;
    std::int64_t effective_from = 0;
    std::int64_t centavos = 0;
    std::optional<Id> set_by; // empty for the table of April 2019 the schema ships with
    std::int64_t set_at = 0;
};

/// A customer contract from the inventory import.
struct Contract {
    std::string contract;
    std::string customer_name;
    std::string person_type; // natural | legal
    std::string tax_id;      // CI or NIT
    std::string address;
    std::int64_t imported_at = 0;
};

/// One piece of equipment on a contract, from the inventory import.
struct InventoryItem {
    std::string serial; // normalized: trimmed, upper case
    std::string contract;
    std::string kind; // gpon_ont, decoder, ... (model.cpp's equipment kinds)
    std::string model;
    std::string description;
    std::int64_t imported_at = 0;
};

enum class DeviceStatus : std::uint8_t { active = 0, revoked = 1 };

struct Device {
    std::uint64_t replica = 0;
    Id user;
    PublicKey public_key{};
    std::string label;
    DeviceStatus status = DeviceStatus::active;
    std::uint64_t last_counter = 0; // highest request counter seen (replay guard)
    std::uint64_t cursor = 0;       // last feed sequence acknowledged by a pull
    std::int64_t last_seen = 0;     // ms
    std::int64_t enrolled_at = 0;
    std::int64_t revoked_at = 0; // ms; 0 while active
};

/// One op as stored: the op, its server sequence, receipt time, skew and flags.
struct StoredOp {
    std::uint64_t seq = 0;
    Op op;
    std::int64_t received_at = 0; // server wall ms
    std::int64_t skew_ms = 0;     // op HLC wall part minus received_at
    bool flagged = false;         // accepted out of scope (a physical fact)
};

/// A row of a user's feed: an op to deliver, or an entity to evict.
struct FeedRow {
    std::uint64_t fseq = 0;
    std::optional<std::uint64_t> op_seq;
    std::uint64_t op_replica = 0; // who made the op (a device skips its own echo)
    std::optional<std::pair<EntityType, Id>> evict;
    /// Part of an entity's history replayed when it entered the user's scope: delivered to
    /// every device of the user, the op's author included (it may have deleted it).
    bool history = false;
};

/// The writes of one sync request, applied in one transaction by `Store::commit_sync`.
struct SyncWrite {
    std::uint64_t replica = 0;
    std::uint64_t request_counter = 0;
    std::uint64_t cursor = 0; // what the device says it holds (for cursor lag)
    std::int64_t now = 0;
    std::vector<StoredOp> ops; // seq is assigned by the store, in order
    /// Feed rows to add after the ops are appended: (user, index into `ops`) for new ops,
    /// (user, existing op seq) for history, (user, evicted entity).
    struct FeedAdd {
        Id user;
        std::optional<std::size_t> new_op;
        std::optional<std::uint64_t> old_seq;
        std::optional<std::pair<EntityType, Id>> evict;
        bool history = false; // replayed on arrival (FeedRow::history)
    };
    std::vector<FeedAdd> feed;
    /// Projection rows (entity state as JSON) to upsert, tagged with the last op seq.
    struct Projection {
        EntityType type;
        Id id;
        std::string json;
    };
    std::vector<Projection> projections;
};

class Store {
public:
    virtual ~Store() = default;

    // ---- users ----
    virtual void add_user(const User& u) = 0;
    virtual std::optional<User> user_by_name(const std::string& name) = 0;
    virtual std::optional<User> user_by_id(const Id& id) = 0;
    virtual std::vector<User> users() = 0;
    /// Moves whenever a user is added, changed or removed, or a device enrolled, revoked or
    /// given another key or user, by any process on the database (not by a sync's counter,
    /// cursor or last-seen updates).
    virtual std::uint64_t directory_version() = 0;
    virtual void set_password_hash(const Id& user, const std::string& hash) = 0;
    virtual void set_user_disabled(const Id& user, bool disabled) = 0;
    virtual void set_user_profile(const Id& user, const std::string& full_name,
                                  const std::string& unit) = 0;

    // ---- sessions ----
    virtual void add_session(const Session& s) = 0;
    virtual std::optional<Session> session(const Hash256& token_hash) = 0;
    virtual void delete_session(const Hash256& token_hash) = 0;
    /// Ends every session of a user (password change, disable); returns how many.
    virtual std::size_t delete_sessions_of(const Id& user) = 0;
    virtual std::size_t delete_expired_sessions(std::int64_t now) = 0;

    // ---- transfer fee table ----
    /// Every row, ordered by product then effective date.
    virtual std::vector<FeeRecord> fee_records() = 0;
    /// Adds a row; one with the same product and date replaces it.
    virtual void put_fee_record(const FeeRecord& r) = 0;

    // ---- inventory ----
    /// Upserts contracts and equipment in one transaction: all or nothing.
    virtual void import_inventory(const std::vector<Contract>& contracts,
                                  const std::vector<InventoryItem>& items) = 0;
    virtual std::optional<Contract> contract(const std::string& number) = 0;
    virtual std::vector<InventoryItem> inventory_of(const std::string& contract) = 0;
    virtual std::optional<InventoryItem> inventory_item(const std::string& serial) = 0;
    virtual std::uint64_t inventory_count() = 0;

    // ---- enrollment and devices ----
    virtual void add_enroll_code(const Hash256& code_hash, const Id& user,
                                 std::int64_t expires_at) = 0;
    /// Consumes a code (single use, not expired) and creates the device; nullopt when the
    /// code is unknown, used or expired. Atomic: two devices racing for one code get one.
    virtual std::optional<Device> enroll(const Hash256& code_hash, const PublicKey& key,
                                         const std::string& label, std::int64_t now) = 0;
    virtual std::optional<Device> device(std::uint64_t replica) = 0;
    virtual std::vector<Device> devices() = 0;
    /// Revokes the device (its revoked_at is the first revocation's); false only when no
    /// device has that replica.
    virtual bool revoke_device(std::uint64_t replica) = 0;

    // ---- op log ----
    /// Several requests' writes in one transaction (group commit): for each, its ops, feed
    /// rows, projections and the device's request counter, cursor and last-seen time.
    /// Durable before it returns when any write holds ops; all or nothing; returns each
    /// write's sequences.
    virtual std::vector<std::vector<std::uint64_t>>
    commit_many(const std::vector<const SyncWrite*>& ws) = 0;
    /// Ops with seq > after, ascending, at most `limit` (all when limit is 0).
    virtual std::vector<StoredOp> ops_after(std::uint64_t after, std::size_t limit) = 0;
    /// The ops with these seqs (any order, repeats allowed), ascending by seq, each once;
    /// a seq that names no op is skipped.
    virtual std::vector<StoredOp> ops_by_seq(const std::vector<std::uint64_t>& seqs) = 0;
    virtual std::vector<std::uint64_t> op_seqs_of_entity(EntityType t, const Id& id) = 0;
    virtual std::uint64_t op_count() = 0;
    virtual std::uint64_t last_seq() = 0;

    // ---- feeds ----
    /// The user's feed rows with fseq > after, ascending, at most `limit` (0: none).
    virtual std::vector<FeedRow> feed_after(const Id& user, std::uint64_t after,
                                            std::size_t limit) = 0;
    virtual std::uint64_t feed_count_after(const Id& user, std::uint64_t after) = 0;

    // ---- projections (maintenance: otsync-admin rebuild) ----
    /// Every projection row: entity type, id, state JSON.
    virtual std::vector<SyncWrite::Projection> projections() = 0;
    /// Replaces the whole projections table with `rows`, tagged with the log's last seq.
    virtual void replace_projections(const std::vector<SyncWrite::Projection>& rows) = 0;
    /// Runs `f` in one transaction: a consistent snapshot of everything it reads (WAL), and
    /// with `write` the write lock, so nothing commits between its reads and its writes.
    virtual void in_transaction(bool write, const std::function<void()>& f) = 0;

    // ---- server key ----
    virtual std::optional<std::pair<PublicKey, std::vector<std::uint8_t>>> server_key() = 0;
    virtual void set_server_key(const PublicKey& pk, const SecretKey& sk) = 0;

    /// A consistent copy of the whole database at `path` (a new file), taken online while
    /// the server runs, then checked (integrity_check). Throws Error on failure, leaving
    /// no partial file behind.
    virtual void backup_to(const std::string& path) = 0;

    /// Cheap liveness check of the underlying database.
    virtual bool healthy() = 0;

    /// Whether other processes append to this op log while we run: several server
    /// instances on one database (PostgreSQL). The sync service then follows the log
    /// instead of trusting its memory to hold every op (sync_service.hpp).
    virtual bool shared() const { return false; }
};

struct SqliteOptions {
    std::string path;             // database file
    bool synchronous_full = true; // FULL: survives power loss (docs/architecture.md §6)
    int busy_timeout_ms = 5000;
    /// Called at the start of every commit_many, before anything is written: a seam for
    /// tests that crash the process at a chosen commit. Empty in production.
    std::function<void()> before_commit{};
};

/// Opens (creating or migrating) a SQLite store. Throws otsync::Error with a clear
/// message when the file is from a newer schema version or cannot be opened.
std::unique_ptr<Store> open_sqlite_store(const SqliteOptions& options);

/// The schema version this build writes.
constexpr int k_schema_version = 5;

} // namespace otsync::server
