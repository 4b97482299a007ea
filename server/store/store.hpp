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

#include "otsync/attachment.hpp"
#include "otsync/crypto.hpp"
#include "otsync/error.hpp"
#include "otsync/model.hpp"
#include "otsync/op.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

/// A device's sync session (protocol 2): opened by a signed handshake, its requests then
/// carry a MAC with `key` until `expires_at`.
struct DeviceSession {
    SessionId id{};
    std::uint64_t replica = 0;
    MacKey key;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
};

/// The device's signature over the ops of one request (protocol 2), kept with the hash of
/// each op (op_leaf) in the request's order, so an audit can prove which device recorded
/// which ops of the log (otsync-admin verify).
struct OpBatch {
    std::uint64_t replica = 0;
    std::uint64_t request_counter = 0;
    Signature signature{};
    std::vector<std::pair<OpId, Hash256>> leaves;
    std::int64_t received_at = 0;
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
    /// Projections written apart from their ops (SQLite writes them after the commit that
    /// acknowledged the ops): the log seq they are as of. 0: the last seq of `ops`.
    std::uint64_t projections_seq = 0;
    std::optional<OpBatch> batch; // the request's signed ops, when it carried a signature
};

// ---- a whole database in a backend-neutral form (otsync-admin migrate) ----

/// One value of a dumped row.
struct DumpCell {
    enum class Kind : std::uint8_t { null, integer, text, bytes };
    Kind kind = Kind::null;
    std::int64_t integer = 0;
    std::string data; // text (UTF-8) or bytes
    bool operator==(const DumpCell&) const = default;
};

/// A table of the dump: its columns in the order of a row's cells, each column's kind (`i`
/// integer, `t` text, `b` bytes; a cell may also be NULL where the schema allows), its
/// primary key (the order of its rows), and, for a table the schema fills itself, the SQL
/// condition true of those shipped rows.
struct DumpTable {
    std::string_view name;
    std::string_view columns;
    std::string_view kinds;
    std::string_view key;
    std::string_view shipped; // empty: the schema ships no row
};

/// Every table of the schema (k_schema_version) but its version and the directory counter,
/// parents before children: the order export_rows gives them and import_rows needs them.
inline constexpr DumpTable k_dump_tables[] = {
    {"users", "id, name, role, password_hash, disabled, created_at, full_name, unit", "btttiitt",
     "id", ""},
    {"enroll_codes", "code_hash, user_id, expires_at, used_at", "bbii", "code_hash", ""},
    {"devices",
     "replica, user_id, public_key, label, status, last_counter, cursor, last_seen, enrolled_at, "
     "revoked_at",
     "ibbtiiiiii", "replica", ""},
    {"sessions", "token_hash, user_id, created_at, expires_at", "bbii", "token_hash", ""},
    // The prices of April 2019 come with the schema, set by nobody.
    {"fee_table", "product, effective_from, centavos, set_by, set_at", "tiibi",
     "product, effective_from", "set_by IS NULL AND set_at = 0"},
    {"contracts", "contract, customer_name, person_type, tax_id, address, imported_at", "ttttti",
     "contract", ""},
    {"inventory", "serial, contract, kind, model, description, imported_at", "ttttti", "serial",
     ""},
    {"ops", "seq, replica, counter, entity_type, entity, body, received_at, skew_ms, flagged",
     "iiiibbiii", "seq", ""},
    {"feed", "user_id, fseq, op_seq, evict_type, evict_id, history", "biiibi", "user_id, fseq", ""},
    {"feed_heads", "user_id, last_fseq", "bi", "user_id", ""},
    {"projections", "entity_type, entity, state, updated_seq", "ibti", "entity_type, entity", ""},
    {"archived_cases", "case_id, opened_at, figure, contract, status, modality", "bittti",
     "case_id", ""},
    {"archive", "entity, entity_type, case_id", "bib", "entity", ""},
    {"server_key", "id, public_key, secret_key", "ibb", "id", ""},
    {"device_sessions", "id, replica, mac_key, created_at, expires_at", "bibii", "id", ""},
    {"op_batches", "replica, request_counter, signature, leaves, received_at", "iibbi",
     "replica, request_counter", ""},
    {"blobs", "hash, media, size, data, stored_at", "biibi", "hash", ""},
    {"blob_chunks", "hash, start, data", "bib", "hash, start", ""},
    {"blob_refs", "hash, kind, entity_type, entity, label", "biibt",
     "hash, kind, entity_type, entity, label", ""},
};

/// Rows of one dump table, each with the table's cells in its column order.
struct DumpRows {
    std::string_view table; // a k_dump_tables name
    std::vector<std::vector<DumpCell>> rows;
};

/// The index in k_dump_tables of `rows.table` when every row fits that table (one cell per
/// column, each NULL or of its column's kind); nullopt otherwise.
inline std::optional<std::size_t> dump_table_of(const DumpRows& rows) {
    for (std::size_t t = 0; t < std::size(k_dump_tables); ++t) {
        const std::string_view kinds = k_dump_tables[t].kinds;
        if (k_dump_tables[t].name != rows.table) {
            continue;
        }
        for (const auto& row : rows.rows) {
            if (row.size() != kinds.size()) {
                return std::nullopt;
            }
            for (std::size_t c = 0; c < row.size(); ++c) {
                const DumpCell::Kind want = kinds[c] == 'i'   ? DumpCell::Kind::integer
                                            : kinds[c] == 't' ? DumpCell::Kind::text
                                                              : DumpCell::Kind::bytes;
                if (row[c].kind != DumpCell::Kind::null && row[c].kind != want) {
                    return std::nullopt;
                }
            }
        }
        return t;
    }
    return std::nullopt;
}

/// The names in a DumpTable's column or key list ("a, b, c").
inline std::vector<std::string_view> dump_columns(std::string_view list) {
    std::vector<std::string_view> out;
    while (!list.empty()) {
        const auto comma = list.find(", ");
        out.push_back(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 2);
    }
    return out;
}

/// A closed case whose entities left the server's memory (sync_service.hpp, archiving):
/// what the reports need of it without folding it back.
struct ArchivedCase {
    Id case_id;
    std::int64_t opened_at = 0; // ms, UTC
    std::string figure;         // its indicator figure, JSON, as when it was archived
    // What the case lists filter on.
    std::string contract;
    std::string status;
    std::int64_t modality = 0;
};

/// Archived cases for a case list: the filter's matches, newest first.
struct ArchivedCaseQuery {
    std::string status; // "" = any
    std::optional<std::int64_t> modality;
    std::string contract; // "" = any
    std::size_t limit = 1000;
};
struct ArchivedCasePage {
    std::vector<ArchivedCase> cases; // newest first (opening time, then id), at most limit
    std::uint64_t total = 0;         // every match
};

/// What other instances' commits brought, as told by a shared store (CommitListener).
/// A whole attachment the server keeps (docs/protocol.md, attachments).
struct StoredBlob {
    attachment::MediaType media{};
    std::uint64_t size = 0;
    std::int64_t stored_at = 0;
};

/// Which entity's field references a blob, and as what: what serving it is decided by.
struct BlobRef {
    Hash256 hash{};
    attachment::Kind kind{};
    EntityType entity_type{};
    Id entity;
    std::string label; // a photo's serial, a scan's requirement code; "" for a signature
    bool operator==(const BlobRef&) const = default;
};

struct CommitNotice {
    bool all = false;      // something may have been missed (the listening connection was
                           // lost, or a commit touched too many feeds to list): wake every wait
    bool any_op = false;   // a commit appended ops (waits of roles that read the whole log)
    std::vector<Id> users; // users whose feeds moved
};

/// Hears the commits of every instance on a shared store (PostgreSQL LISTEN/NOTIFY), so a
/// waiting pull is answered when another instance writes to its feed, not at a poll.
class CommitListener {
public:
    virtual ~CommitListener() = default;
    /// Waits up to `timeout_ms` for commits; what they brought (merged), or nullopt when
    /// none came. Never throws: a lost connection is opened again and reported as `all`.
    virtual std::optional<CommitNotice> wait(int timeout_ms) = 0;
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
    /// Devices' sync sessions (protocol 2).
    virtual void add_device_session(const DeviceSession& s) = 0;
    virtual std::optional<DeviceSession> device_session(const SessionId& id) = 0;
    virtual std::size_t delete_expired_device_sessions(std::int64_t now) = 0;
    /// Stored signed batches after (replica, request counter) `after` (from the first when
    /// nullopt), in that order, at most `limit`.
    virtual std::vector<OpBatch>
    op_batches_after(std::optional<std::pair<std::uint64_t, std::uint64_t>> after,
                     std::size_t limit) = 0;
    /// Every stored signed batch, in (replica, request counter) order, a page at a time
    /// (otsync-admin verify).
    void for_each_op_batch(const std::function<void(const OpBatch&)>& f) {
        std::optional<std::pair<std::uint64_t, std::uint64_t>> after;
        for (;;) {
            const auto page = op_batches_after(after, 256);
            for (const auto& b : page) {
                f(b);
            }
            if (page.size() < 256) {
                return;
            }
            after = std::pair{page.back().replica, page.back().request_counter};
        }
    }

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
    /// A request that carries no ops (a pull), recorded outside any write transaction: its
    /// counter is taken only when above the stored one (false otherwise: a replay, nothing
    /// written), atomically against every instance; cursor and last seen move forward.
    /// Need not be durable on its own: a later commit of ops makes it so (it records no
    /// field fact; a lost counter is below every acknowledged request's).
    virtual bool claim_counter(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                               std::int64_t now) = 0;
    /// The device's stored request counter, read inside a write transaction and held
    /// there (PostgreSQL: the row locked until the commit), so a claim_counter from any
    /// instance waits for the transaction and then sees what it wrote.
    virtual std::uint64_t locked_counter(std::uint64_t replica) = 0;
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
    /// The ids of the entity's ops, in seq order (read without decoding the ops).
    virtual std::vector<OpId> op_ids_of_entity(EntityType t, const Id& id) = 0;
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
    /// The log seq the projections are as of: the highest row's (0 when there are none).
    /// Every op up to it has its entity's projection written; ops after it may not yet.
    virtual std::uint64_t projected_seq() = 0;
    /// Replaces the whole projections table with `rows`, tagged with the log's last seq.
    virtual void replace_projections(const std::vector<SyncWrite::Projection>& rows) = 0;
    /// Runs `f` in one transaction: a consistent snapshot of everything it reads (WAL), and
    /// with `write` the write lock, so nothing commits between its reads and its writes.
    virtual void in_transaction(bool write, const std::function<void()>& f) = 0;

    // ---- the whole database (otsync-admin migrate: SQLite into an empty PostgreSQL) ----
    /// The dump tables (k_dump_tables) holding a row other than the ones the schema ships:
    /// none for a database that import_rows may fill.
    virtual std::vector<std::string_view> tables_with_rows() = 0;
    /// Every row of every dump table, to `sink` in batches of 1 to `batch` rows: tables in
    /// k_dump_tables order, rows in key order (text and bytes compared byte by byte), cells
    /// of the table's kinds. So equal contents give equal rows on every backend. One
    /// snapshot: in_transaction's when called inside it, else a read transaction of its own.
    virtual void export_rows(const std::function<void(const DumpRows&)>& sink,
                             std::size_t batch) = 0;
    /// Inserts rows as export_rows gives them, every value kept (op seqs, feed fseqs, replica
    /// ids, updated_seq); a row with the key of a shipped row replaces it. Later op seqs and
    /// enrolled replica ids continue above the imported ones. Throws Error on a row that does
    /// not fit the table (cells, kinds) or breaks a key or reference. Inside
    /// in_transaction(true, ...) a whole import is all or nothing; alone, one call is.
    virtual void import_rows(const DumpRows& rows) = 0;

    // ---- archive (memory that follows open work) ----
    /// Records, in one transaction, that a case's group of entities (the case, its OTs,
    /// rows, handovers and equipment) left memory; again for the same case: the figure is
    /// replaced and the entities added. An entity belongs to one group: the latest wins.
    virtual void archive(const ArchivedCase& c,
                         const std::vector<std::pair<EntityType, Id>>& entities) = 0;
    /// The case of the archived group that holds `entity` (of any type); nullopt when no
    /// group holds it.
    virtual std::optional<Id> archived_group_of(const Id& entity) = 0;
    /// The entities of the archived group of `case_id` (none when it was never archived).
    virtual std::vector<std::pair<EntityType, Id>> archived_group(const Id& case_id) = 0;
    /// The archived cases opened in [from_ms, to_ms), by opening time then id.
    virtual std::vector<ArchivedCase> archived_cases(std::int64_t from_ms, std::int64_t to_ms) = 0;
    virtual std::uint64_t archived_count() = 0;
    /// The archived cases a case list's filter matches, newest first.
    virtual ArchivedCasePage archived_case_page(const ArchivedCaseQuery& q) = 0;
    /// The entities of every group now archived (its case has a figure): what a server
    /// starting does not fold into memory.
    virtual std::vector<Id> archived_entities() = 0;
    /// The case is back in memory for good (an op touched it): its figure goes; its group's
    /// membership stays, so another instance that still has it archived brings it back too.
    virtual void unarchive(const Id& case_id) = 0;

    // ---- server key ----
    // Attachments: whole blobs by hash, the chunks of uploads under way, references.
    virtual std::optional<StoredBlob> blob_info(const Hash256& hash) = 0;
    virtual std::optional<std::string> blob_data(const Hash256& hash) = 0;
    /// Where the staged chunks of an upload end (they are contiguous from 0); 0 for none.
    virtual std::uint64_t staged_bytes(const Hash256& hash) = 0;
    /// Keeps a chunk at `offset` (the staged end), durably; a chunk already there stays.
    virtual void stage_chunk(const Hash256& hash, std::uint64_t offset, std::string_view data) = 0;
    /// The staged chunks, in order, as one string.
    virtual std::string staged_blob(const Hash256& hash) = 0;
    virtual void drop_staged(const Hash256& hash) = 0;
    /// Keeps a whole blob with its references and drops its staged chunks, in one durable
    /// transaction. A blob already kept stays as it was; its new references are added.
    virtual void store_blob(const Hash256& hash, const StoredBlob& info, std::string_view data,
                            const std::vector<BlobRef>& refs) = 0;
    virtual void add_blob_refs(const std::vector<BlobRef>& refs) = 0;
    virtual std::vector<BlobRef> blob_refs(const Hash256& hash) = 0;

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

    /// Gives back memory a long read left behind (the start's fold of the log, a sweep of
    /// the archive): SQLite's page cache and the file pages its memory map touched.
    /// Nothing is lost; the next reads fetch what they need again.
    virtual void release_memory() {}

    /// Another connection to the same database for reads outside write transactions and
    /// claim_counter (pulls and request checks need not wait behind a commit being
    /// flushed); null when the backend has none (an in-memory SQLite database).
    virtual std::unique_ptr<Store> open_reader() { return nullptr; }

    /// A connection that hears every instance's commits (shared stores); null when the
    /// backend cannot tell (the service then looks at the log's end now and then).
    virtual std::unique_ptr<CommitListener> listen_commits() { return nullptr; }
};

struct SqliteOptions {
    std::string path;             // database file
    bool synchronous_full = true; // FULL: survives power loss (docs/architecture.md §6)
    int busy_timeout_ms = 5000;
    /// The feed heads this connection caches are checked against other connections' commits
    /// at most this often (the directory's version at every read: a revocation by
    /// otsync-admin counts from the device's next request). 0: at every read.
    int others_check_ms = 100;
    /// Called at the start of every commit_many, before anything is written: a seam for
    /// tests that crash the process at a chosen commit. Empty in production.
    std::function<void()> before_commit{};
};

/// Opens (creating or migrating) a SQLite store. Throws otsync::Error with a clear
/// message when the file is from a newer schema version or cannot be opened.
std::unique_ptr<Store> open_sqlite_store(const SqliteOptions& options);

/// The schema version this build writes.
constexpr int k_schema_version = 8;

/// An OpBatch's leaves as stored: per op u64 replica, u64 counter (little endian), the
/// 32-byte hash.
inline std::string leaves_blob(const std::vector<std::pair<OpId, Hash256>>& leaves) {
    std::string out;
    out.reserve(leaves.size() * 48);
    const auto u64 = [&](std::uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
        }
    };
    for (const auto& [id, hash] : leaves) {
        u64(id.replica);
        u64(id.counter);
        out.append(reinterpret_cast<const char*>(hash.data()), hash.size());
    }
    return out;
}
/// The inverse of leaves_blob; Error(internal) for a blob that is not one.
inline std::vector<std::pair<OpId, Hash256>> leaves_of_blob(std::string_view blob) {
    if (blob.size() % 48 != 0) {
        throw Error(ErrorCode::internal, "a stored batch's op hashes are damaged");
    }
    std::vector<std::pair<OpId, Hash256>> out(blob.size() / 48);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(blob.data() + i * 48);
        const auto u64 = [&](std::size_t at) {
            std::uint64_t v = 0;
            for (int b = 7; b >= 0; --b) {
                v = (v << 8) | p[at + static_cast<std::size_t>(b)];
            }
            return v;
        };
        out[i].first = OpId{u64(0), u64(8)};
        std::copy(p + 16, p + 48, out[i].second.begin());
    }
    return out;
}
/// A blob reference from its stored columns; Error(internal) when they are damaged.
inline BlobRef blob_ref_of(std::string_view hash, std::int64_t kind, std::int64_t entity_type,
                           std::string_view entity, std::string label) {
    BlobRef r;
    const auto k = attachment::kind_from_number(static_cast<std::uint64_t>(kind));
    if (hash.size() != r.hash.size() || entity.size() != r.entity.bytes.size() || !k ||
        entity_type < 1 || entity_type > static_cast<std::int64_t>(EntityType::conflict)) {
        throw Error(ErrorCode::internal, "a stored attachment reference is damaged");
    }
    std::copy(hash.begin(), hash.end(), r.hash.begin());
    std::copy(entity.begin(), entity.end(), r.entity.bytes.begin());
    r.kind = *k;
    r.entity_type = static_cast<EntityType>(entity_type);
    r.label = std::move(label);
    return r;
}
/// A kept blob's description from its stored columns; Error(internal) when damaged.
inline StoredBlob stored_blob_of(std::int64_t media, std::int64_t size, std::int64_t stored_at) {
    if (media < 1 || media > static_cast<std::int64_t>(attachment::MediaType::pdf) || size < 0) {
        throw Error(ErrorCode::internal, "a stored attachment is damaged");
    }
    return StoredBlob{static_cast<attachment::MediaType>(media), static_cast<std::uint64_t>(size),
                      stored_at};
}

/// An OpBatch from its stored columns; Error(internal) when they are damaged.
inline OpBatch op_batch_of(std::uint64_t replica, std::uint64_t counter, std::string_view signature,
                           std::string_view leaves, std::int64_t received_at) {
    OpBatch b;
    b.replica = replica;
    b.request_counter = counter;
    if (signature.size() != b.signature.size()) {
        throw Error(ErrorCode::internal, "a stored batch signature is damaged");
    }
    std::copy(signature.begin(), signature.end(), b.signature.begin());
    b.leaves = leaves_of_blob(leaves);
    b.received_at = received_at;
    return b;
}

} // namespace otsync::server
