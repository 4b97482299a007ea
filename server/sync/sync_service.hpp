// The sync endpoint's logic (docs/architecture.md §4), free of HTTP: enrollment, signed and
// idempotent POST /v1/sync with per-op validation, technician scope, paging,
// eviction and signed receipts. Routes call it with bytes and headers; tests can
// call it without a socket.
//
// The service keeps the whole merged state in memory (a crdt::Replica folded from
// the op log at start) for validation and scope; the store is the durable truth.
//
// On a store other processes write to (Store::shared(): PostgreSQL, several instances on
// one database), the memory follows the shared log: every batch is merged by the committer
// inside the database's write transaction, after folding in what other instances committed
// since (so validation, scope and the replay counter see every commit before it), and every
// read of the state folds in the log's new ops first (docs/architecture.md §7).
#pragma once

#include "otsync/codec.hpp"
#include "otsync/crdt.hpp"
#include "otsync/crypto.hpp"
#include "otsync/error.hpp"
#include "otsync/session.hpp"
#include "store/directory.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

namespace otsync::server {

struct SyncConfig {
    std::uint64_t max_clock_skew_ms = 10 * 60 * 1000; // ops further ahead are rejected
    std::uint32_t default_page = 500;                 // ops per response when the device asks 0
    std::uint32_t max_page = 5000;
    std::int64_t enroll_code_ttl_ms = 24 * 3600 * 1000;
    CodecLimits limits;
    /// On a store with readers (PostgreSQL): at most this many connections of their own
    /// serve pulls, so a pull never waits behind the writer's commit; more pulls at once
    /// wait for one.
    std::size_t read_connections = 4;
    /// A device's sync session (protocol 2) lasts this long from its handshake.
    std::int64_t session_ttl_ms = 3600 * 1000;
    /// The oldest protocol version accepted: the operator raises it to 2 to turn protocol 1
    /// devices off (they get 426 and keep their work).
    std::uint32_t min_protocol = k_protocol_min;
    /// Long-poll: a pull with nothing to send waits at most this long for its feed (the
    /// device's wait_ms, capped); 0 answers at once. Below proxies' 30-60 s idle timeouts.
    std::uint32_t max_wait_ms = 25'000;
    /// On a store several instances write and that cannot tell this instance of the
    /// others' commits: how often a waiting pull's instance looks at the log's end for
    /// them (one query for all its waits).
    std::uint32_t shared_wait_poll_ms = 250;
    /// On a store that tells (PostgreSQL LISTEN/NOTIFY: a wait is woken when another
    /// instance writes to its feed), the same look now and then, in case a notification
    /// was lost without the listening connection noticing.
    std::uint32_t shared_wait_backstop_ms = 10'000;
    /// On SQLite a pull's request counter, cursor and last-seen time are kept in memory
    /// and written with the next commit, or alone after this long (and at stop): a pull
    /// costs no write transaction. A crash forgets at most this long of pulls' counters
    /// (a replayed pull still needs a valid MAC or signature and writes nothing).
    std::uint32_t pull_mark_flush_ms = 1000;
    /// On SQLite the entities' projections are written after the commit that acknowledges
    /// their ops: at once when no request waits for a commit, else at most this late.
    std::uint32_t projection_lag_ms = 200;
    /// Attachments: sizes, counts and types per kind (attachment.hpp), and the largest chunk
    /// one upload request may carry (the HTTP layer refuses a larger body first).
    attachment::Limits attachments;
    std::uint32_t max_chunk_bytes = 256 * 1024;
};

/// Issues a one-time enrollment code for `user`, valid `ttl_ms` from `now`: 12
/// characters without look-alikes, shown as XXXX-XXXX-XXXX. Only its hash is stored.
std::string issue_enroll_code(Store& store, const Id& user, std::int64_t now, std::int64_t ttl_ms);
/// What the store keeps of an enrollment code (case, spaces and dashes ignored).
Hash256 enroll_code_hash(std::string_view code);

struct SyncCounters {
    std::uint64_t accepted = 0;
    std::uint64_t flagged = 0;
    std::uint64_t duplicates = 0;
    std::map<ErrorCode, std::uint64_t> rejected;
    std::uint64_t archive_sweeps = 0; // sweeps ended since start
    std::uint64_t archived_cases = 0; // cases this instance took out of memory
};

/// What a sync endpoint answers: a body, or a refusal by its code. Its HTTP status and
/// error body are the caller's (api/app.cpp: the one table, http/reply.hpp).
struct EndpointAnswer {
    std::string content_type;
    std::string body;
    std::optional<Error> refusal{};
    std::string refusal_members{}; // further members of the error body, JSON (a proof)
};

class SyncService {
public:
    SyncService(Store& store, ClockSource& clock, SyncConfig config);
    ~SyncService();
    SyncService(const SyncService&) = delete;
    SyncService& operator=(const SyncService&) = delete;

    /// POST /v1/devices/enroll: {"code","public_key" (base64 of 32 bytes),"label"}.
    EndpointAnswer enroll(const std::string& json_body);

    /// POST /v1/sessions (protocol 2): a device opens a session with its signed ephemeral
    /// key and the next request counter; the answer, signed with the server's key, gives
    /// the session, the server's ephemeral key and the expiry. JSON both ways.
    EndpointAnswer open_session(const std::string& json_body);

    /// POST /v1/sync. `headers` holds lower-cased names: content-type, x-otsync-replica,
    /// x-otsync-counter, x-otsync-signature (base64 Ed25519 over sync_signing_string).
    EndpointAnswer sync(const std::string& path, const std::map<std::string, std::string>& headers,
                        const std::string& body);
    /// The same, answering through `done`: at once, or, for a version 2 pull that found
    /// nothing and asked to wait (wait_ms), when its feed has something or at its deadline,
    /// from the service's waiting thread (no request thread waits meanwhile).
    /// A request with ops is answered once its commit is durable, from the executor
    /// (set_executor): no thread waits for the commit meanwhile.
    void sync_async(const std::string& path, const std::map<std::string, std::string>& headers,
                    const std::string& body, std::function<void(EndpointAnswer)> done);
    /// Where the answers of committed requests are finished (the page read, the receipt
    /// signed, the answer encoded): `post` runs its argument soon on some thread (the
    /// transport's), and must stay valid while this service lives. Empty (the default): the
    /// committing thread finishes them itself.
    void set_executor(std::function<void(std::function<void()>)> post);
    /// Answers every waiting pull now and takes no more waits (shutdown: call it while the
    /// transport that carries the answers still runs).
    void end_waits();

    // ---- attachments (docs/protocol.md §2.8) ----
    /// POST /v1/blobs/<hash>/<size>/<offset>: one chunk of an attachment that an op of the
    /// device's scope references, appended where the kept bytes end; the last one is
    /// checked (hash, type, limits) and the whole blob kept before the answer. The answer
    /// says how many bytes the server holds, so a cut resumes there. An empty body asks.
    EndpointAnswer upload_blob(const std::string& path,
                               const std::map<std::string, std::string>& headers,
                               const std::string& body);
    /// What references `hash` (kept references and the state's), and whether `user` may
    /// see it: the permission table of docs/api.md (attachments).
    std::vector<BlobRef> blob_refs(const Hash256& hash);
    bool may_view_blob(const User& user, const std::vector<BlobRef>& refs);
    /// Keeps a blob the server received itself (an office upload) with its references.
    void keep_blob(std::string_view data, attachment::MediaType media,
                   const std::vector<BlobRef>& refs);

    /// POST /v1/sync's checks that need no body (docs/protocol.md §2.3 steps 1–3: media
    /// type, envelope headers, an enrolled device): the refusal sync() would answer, or
    /// nullopt. Asked before a large body is read, so a stranger cannot make the server
    /// hold one.
    /// `sync_media` false: any Content-Type (an attachment's chunk, POST /v1/blobs/...).
    std::optional<EndpointAnswer> check_headers(const std::map<std::string, std::string>& headers,
                                                bool sync_media = true);

    /// Ops made on the server (replica 0) by a user with a role, through the same
    /// validation as a device's; `make` builds them with the server's OpMaker.
    std::vector<OpResult>
    submit(const Id& author, Role role,
           const std::function<std::vector<Op>(crdt::OpMaker&, const crdt::Replica&)>& make);

    /// A one-time enrollment code for a user (printed once; stored hashed).
    std::string new_enroll_code(const Id& user);

    PublicKey server_public_key() const { return m_key.public_key; }
    /// The users in memory, current with the database (read it outside the lock).
    Directory& directory() { return m_directory; }
    /// Server ops that a batch's merged ops call for (custody, the technician's step,
    /// closing): `make` runs under the service lock with a maker for `author`, against the
    /// state the batch leaves; its ops are validated as `role`'s and join the batch's
    /// commit, so a crash never keeps the cause without its follow-up.
    struct FollowUp {
        Id author;
        Role role;
        std::function<std::vector<Op>(crdt::OpMaker&, const crdt::Replica&)> make;
    };
    /// A rule: given the state and the ops a batch merged, the follow-ups they call for.
    /// It only reads the state (no store, no service call). Rules run in the order added,
    /// each after the previous one's ops merged.
    using FollowUpRule =
        std::function<std::vector<FollowUp>(const crdt::Replica&, const std::vector<Op>& cause)>;
    /// The rules for every batch, a device's or the server's. Set them before serving.
    void set_follow_ups(std::vector<FollowUpRule> rules);
    /// Signs `message` with the server's Ed25519 key (receipts, custody proofs).
    Signature sign(std::string_view message) const;
    /// Run `f` with the merged state under the service lock (on a shared store, current
    /// with every op committed before the call, by any instance).
    void read_state(const std::function<void(const crdt::Replica&)>& f);
    SyncCounters counters();
    /// The merged state's identity: the log sequence it has folded (after catching up on a
    /// shared store), its BLAKE2b-256 digest (crdt::Replica::digest) and entity count. Two
    /// instances with equal digests hold equal states.
    struct StateSummary {
        std::uint64_t applied_seq = 0;
        std::string digest; // hex
        std::size_t entities = 0;
    };
    StateSummary state_summary();

    // ---- archiving: memory that follows open work ----
    /// A closed case's entities that leave memory together, and its figure for reports.
    struct ArchiveGroup {
        ArchivedCase archived;
        std::vector<std::pair<EntityType, Id>> entities; // the case's own included
    };
    /// Picks the groups to take out of memory from the state (the procedure's: cases
    /// closed long enough ago). Reads the state only.
    using ArchiveRule = std::function<std::vector<ArchiveGroup>(const crdt::Replica&)>;
    /// Sets the rule; a thread of its own takes the rule's groups out of memory at once
    /// (requests are served meanwhile), then again every `every_ms`. While a rule is set, an op
    /// that touches an archived entity (its own or one its value names), here or committed by
    /// another instance, first folds the whole group back in from the log.
    void start_archiving(ArchiveRule rule, std::int64_t every_ms);
    /// One sweep: each group the rule picks is recorded in the store, then its entities
    /// and their op ids leave memory, a few hundred groups at a time; what the tables and
    /// the heap held for them is given back. Returns how many cases left.
    std::size_t archive_now();
    /// Waits until `n` sweeps of the archiving thread have ended (the first is the start's).
    void await_sweeps(std::uint64_t n);
    /// No more sweeps (the rule's owner is going away); what is archived stays archived.
    void stop_archiving();
    /// Folds back the archived group that holds `entity`, if it is out of memory (a page
    /// opening an old case); it leaves again at a later sweep. True when something came back.
    bool bring_back(const Id& entity);
    /// The archived cases that a read brought back into memory (still archived in the
    /// store): a list that merges the store's archived cases skips them there.
    std::set<Id> read_back_cases();

private:
    /// Steps 1–3 of a sync request: the envelope and its device (and its session, for a
    /// session's request), or the refusal.
    struct Gate {
        std::optional<session::Envelope> envelope;
        bool json = false;
        std::shared_ptr<const Directory::Snapshot> directory;
        const Device* device = nullptr;
        std::optional<DeviceSession> session;
        std::optional<EndpointAnswer> refused;
    };
    Gate open_envelope(const std::map<std::string, std::string>& headers, Store& via,
                       bool sync_media = true);
    /// Steps 4–5 of a gate that opened: its MAC or signature over `path` and `body`, the
    /// device not revoked, its user enabled. The user, or the refusal.
    std::variant<const User*, EndpointAnswer> admit(const Gate& g, std::string_view path,
                                                    const std::string& body);
    /// Whether a device of `user` may send a blob with this reference.
    bool may_send_blob(const User& user, const BlobRef& ref) const;
    /// A pull that waits for its feed (long-poll).
    struct PullWait {
        bool wanted = false;
        User user;
        std::uint64_t replica = 0;
        std::uint64_t cursor = 0;
        std::uint32_t page_size = 0;
        std::uint32_t version = 0;
        bool json = false;
        std::uint32_t wait_ms = 0;
        std::chrono::steady_clock::time_point deadline{};
        bool woken = false;
        std::uint64_t wakes_seen = 0; // m_wakes when it last read its page
        std::function<void(EndpointAnswer)> done;
    };
    /// Wakes so far (m_wakes).
    std::uint64_t wakes();
    /// Puts `w` among the waits (woken at once if a wake came since it read its page);
    /// false when the service is going away (then `w` is left to answer).
    bool park(PullWait&& w);
    /// A page that brings the device nothing: a waiting pull waits on.
    static bool nothing_new(const SyncResponse& resp, std::uint64_t cursor);
    class ReaderLease;
    struct PendingCommit;
    /// A request whose envelope verified, on its way: what its answer needs after its
    /// commit (which may end on another thread).
    struct Accepted {
        User user;
        std::uint64_t replica = 0;
        std::uint64_t counter = 0;
        bool json = false;
        SyncRequest req;
        std::optional<OpBatch> batch;
        std::int64_t now = 0;
        SyncResponse resp;
    };
    /// The request's answer, or nullopt when it waits for its commit and `later` (moved
    /// from) will give it: only when `later` is given.
    std::optional<EndpointAnswer> sync_impl(const std::string& path,
                                            const std::map<std::string, std::string>& headers,
                                            const std::string& body, PullWait* wait,
                                            std::function<void(EndpointAnswer)>* later);
    /// After the request's writes (if any) are durable: its page, receipt and answer; a
    /// pull that found nothing and may wait fills `wait`.
    EndpointAnswer finish(Accepted& a, std::optional<ReaderLease>& reader, PullWait* wait);
    /// Makes answering `a` through `done` (moved from) the completion of `p`, which the
    /// committer runs when the commit ends; false (`done` kept) when it has already ended.
    bool defer(const std::shared_ptr<PendingCommit>& p, const std::shared_ptr<Accepted>& a,
               std::function<void(EndpointAnswer)>& done);
    /// The completion of a deferred request: settles its commit and answers through `done`.
    void answer_committed(Accepted& a, PendingCommit& p,
                          const std::function<void(EndpointAnswer)>& done);
    /// One page of `user`'s feed (or the whole log) after `cursor`, into `resp`.
    void read_page(Store& reads, const User& user, std::uint64_t replica, std::uint64_t cursor,
                   std::uint32_t page_size, SyncResponse& resp);
    /// A waiting pull's page now; `nothing` says whether it holds nothing new.
    EndpointAnswer pull_again(const PullWait& w, bool* nothing = nullptr);
    /// Commits gave these technicians feed rows (any_op: the log grew): their waits wake.
    void wake_waits(const std::set<Id>& users, bool any_op);
    /// Marks every wait woken (its page read again); m_wait_mutex held.
    void wake_every_wait(std::unique_lock<std::mutex>& held);
    /// The listener thread: other instances' commits wake the waits they concern.
    void listen(CommitListener& listener);
    void waiter();
    /// The refusal of a revoked device, with the server's signed proof.
    EndpointAnswer revoked(std::uint64_t replica, std::int64_t revoked_at) const;
    /// The live session `id` of `replica` (the cache, else the store through `via`).
    std::optional<DeviceSession> live_session(const SessionId& id, std::uint64_t replica,
                                              Store& via, std::int64_t now);
    /// Takes `counter` for `replica` (above every one before), as a pull does; false when
    /// it is not above the last one seen.
    /// SQLite: a pull's counter, cursor and time, written with the next commit (m_pull_marks).
    void mark_pull(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                   std::int64_t now);
    /// The last counter of a device: the store's, or a pull's not written yet.
    std::uint64_t known_counter(std::uint64_t replica, std::uint64_t stored);
    bool claim_request_counter(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                               std::int64_t now, Store& via);

    struct Actor {
        Id user;
        Role role;
        std::uint64_t replica;
    };
    /// One request's writes on their way to the store (group commit).
    struct PendingCommit {
        SyncWrite write;
        SyncCounters delta;
        std::set<OpId> set_aside; // flagged device ops recorded on their OT, not merged
        /// On a shared store: merges the request into `write` (and `results`), run by the
        /// committer under m_mutex in the write transaction, caught up with the log.
        std::function<void(PendingCommit&)> merge;
        std::vector<OpResult> results;
        std::optional<Error> refusal;   // the request was refused as a whole (replayed)
        std::exception_ptr merge_error; // a server command's own error (submit's `make`)
        bool done = false;
        std::exception_ptr error;
        std::condition_variable done_cv; // with m_commit_mutex; one waiter
        /// Set (under m_commit_mutex, before `done`): nobody waits on done_cv; the
        /// committer hands this to the executor once the commit ends, with or without error.
        std::function<void(PendingCommit&)> then;
    };

    /// What one batch merges and writes, as its ops (and their follow-ups) apply.
    struct BatchState {
        SyncWrite w;
        std::map<Id, Id> items;            // collected item -> OT, for items made in this batch
        std::map<Id, std::string> serials; // collected item -> serial, likewise
        std::set<std::pair<EntityType, Id>> touched;
        SyncCounters delta;
        std::set<OpId> set_aside; // device ops recorded on their OT instead of merged
        std::vector<Op> applied;  // merged, for the follow-up rules
    };
    /// Validates and merges one op into the batch; the caller holds m_mutex.
    OpResult apply_one(const Actor& actor, const Op& op, std::int64_t now, BatchState& st);
    /// Runs the follow-up rules on what the batch merged, into the same batch.
    void follow_up(std::int64_t now, BatchState& st);
    /// Validates and merges in memory into `p`'s write; the caller holds m_mutex.
    std::vector<OpResult> merge_batch(PendingCommit& p, const Actor& actor,
                                      const std::vector<Op>& ops, std::uint64_t request_counter,
                                      std::uint64_t cursor, std::int64_t now,
                                      std::optional<OpBatch> batch = std::nullopt);
    /// merge_batch, then queues the writes; the caller holds m_mutex.
    std::pair<std::vector<OpResult>, std::shared_ptr<PendingCommit>>
    apply_batch(const Actor& actor, const std::vector<Op>& ops, std::uint64_t request_counter,
                std::uint64_t cursor, std::int64_t now,
                std::optional<OpBatch> batch = std::nullopt);
    /// Queues a request the committer merges (shared store) and waits for its commit.
    void merge_and_commit(const std::shared_ptr<PendingCommit>& p);
    void queue_commit(const std::shared_ptr<PendingCommit>& p);
    /// What follows a commit that ended: throws Error(internal) when the store refused
    /// it; counts what it accepted.
    void settle(const PendingCommit& p);
    /// The committer's group on a shared store: in one write transaction, catch up, merge
    /// each request, commit.
    void commit_shared(const std::vector<std::shared_ptr<PendingCommit>>& group);
    /// Folds ops other instances committed since m_applied_seq; the caller holds m_mutex.
    void catch_up();
    /// Waits, without m_mutex, until the committer has made the writes durable; throws
    /// Error(internal) when the store refused them.
    void wait_commit(const std::shared_ptr<PendingCommit>& p);
    void committer();
    /// SQLite: projections rendered at merge, not yet written (the committer's own).
    class Unprojected {
    public:
        void add(std::vector<SyncWrite::Projection> rows, std::uint64_t seq);
        bool due(bool idle, std::uint32_t lag_ms) const;
        void write(Store& store); // kept when the write fails

    private:
        static constexpr std::size_t k_max_rows = 20'000;
        std::map<std::pair<EntityType, Id>, std::string> m_rows;
        std::uint64_t m_seq = 0;
        std::chrono::steady_clock::time_point m_since{};
    };
    void project_missing(); // at start: projections the log has passed
    OpResult validate(const Actor& actor, const Op& op, std::int64_t now, bool& flagged,
                      const std::map<Id, Id>& batch_items,
                      const std::map<Id, std::string>& batch_serials);
    /// The handheld's field rules, applied again to a technician's op (not a flagged one):
    /// rows on site, verification in modalities 2 and 3, completion requirements.
    std::optional<Error> field_rules(const Actor& actor, const Op& op, const FieldDef& f,
                                     const std::map<Id, Id>& batch_items) const;
    bool in_scope(const Id& user, EntityType t, const Id& id,
                  const std::map<Id, Id>& batch_items) const;
    void index_op(const Op& op);
    /// The id a link register holds now (an OT's technician or case, a row's OT or
    /// collector, a handover's technician).
    std::optional<Id> link_of(EntityType t, const Id& id, std::string_view field) const;
    /// Notes the device op a work_order.flagged_writes record holds (m_set_aside).
    void index_set_aside(const Op& op);
    /// Entities whose scope membership a link op may change (the OT, its cases, its rows).
    std::vector<std::pair<EntityType, Id>> affected_by_link(const Op& op, const FieldDef& f) const;
    /// Whether `user`'s devices currently receive the entity.
    bool has_in_scope(const Id& user, EntityType t, const Id& id) const;
    /// Whether `user` collected the row and still holds it: not voided, not arrived at the
    /// warehouse (received, damaged_on_arrival), not settled by the office (resolution).
    bool holds(const Id& user, const Id& item) const;
    std::set<Id> scope_users(EntityType t, const Id& id) const;
    void reload();
    /// Folds the log again when a reload after a failed commit could not (m_stale).
    void ensure_fresh();
    /// Folds one op of the log into the state and its indexes (start, catch-up).
    void fold(const StoredOp& so, bool catching_up = false);
    /// With archiving on: folds back the archived groups `op` touches (its entity, the id
    /// its value names) that are out of memory; `for_write` also drops their figures (the
    /// case changes). The caller holds m_mutex.
    void bring_back_for(const Op& op, bool for_write);
    /// Folds one archived group back in from the log; the caller holds m_mutex.
    bool restore_group(const Id& case_id, bool for_write);
    void archiver();
    /// A connection of the store's for reads outside the write transaction, back to the
    /// pool when the lease ends; empty when the store has none (SQLite).
    class ReaderLease {
    public:
        ReaderLease(SyncService& s, std::unique_ptr<Store> r) : m_s(s), m_r(std::move(r)) {}
        ReaderLease(ReaderLease&& o) noexcept : m_s(o.m_s), m_r(std::move(o.m_r)) {}
        ReaderLease(const ReaderLease&) = delete;
        ReaderLease& operator=(const ReaderLease&) = delete;
        ReaderLease& operator=(ReaderLease&&) = delete;
        ~ReaderLease();
        /// The reader, or the service's store when there is none.
        Store& store() const { return m_r ? *m_r : m_s.m_store; }

    private:
        SyncService& m_s;
        std::unique_ptr<Store> m_r;
    };
    ReaderLease lease_reader();
    /// The store's caches and the heap's free memory back to the system (after a fold or
    /// a sweep).
    void give_back_memory();

    Store& m_store;
    const bool m_shared; // m_store.shared(): other processes append to the log
    Directory m_directory;
    ClockSource& m_clock;
    SyncConfig m_config;
    SigningKeyPair m_key;

    std::mutex m_mutex; // one writer: validation, merge and commit are serialized
    std::unique_ptr<Hlc> m_hlc;
    crdt::Replica m_state;
    std::uint64_t m_applied_seq = 0; // the last log seq folded into m_state (shared store)
    // The links (OT -> technician, case -> OTs, OT -> rows, row -> collector, handover ->
    // technician) are the replica's own index (crdt::Replica::referrers, link_of); only
    // what the state forgets is kept here: every technician an OT had.
    std::unordered_map<Id, std::set<Id>> m_past_techs;
    // Blob hash -> the references to it in the state (index_op), for uploads and serving.
    struct HashKey {
        std::size_t operator()(const Hash256& h) const noexcept;
    };
    std::unordered_map<Hash256, std::vector<BlobRef>, HashKey> m_blob_index;
    std::mutex m_blob_mutex; // one upload's staging at a time on this instance
    // replica -> request counter: every counter seen since start (SQLite); on a shared store
    // only within one committer group (the database's counter is read in its transaction).
    std::unordered_map<std::uint64_t, std::uint64_t> m_last_counter;
    // Device ops set aside (a former assignee's register write on an OT, §3.6): op id ->
    // the op's JSON, from the flagged_writes records, so a resend is acknowledged once.
    std::unordered_map<OpId, std::string> m_set_aside;
    /// (OT, replica) of devices whose arrival on site was set aside (the OT was another
    /// technician's then): their rows on it still count as recorded on site.
    std::set<std::pair<Id, std::uint64_t>> m_set_aside_arrivals;
    SyncCounters m_counters;
    std::vector<FollowUpRule> m_follow_ups;
    ArchiveRule m_archive_rule;     // set: this instance archives
    bool m_archive_lookups = false; // groups may be out of memory: ops look them up
    bool m_stale = false;           // a reload failed: m_state is not the log's until redone
    /// Entities of archived groups that a read folded back (entity -> case): a write to
    /// one makes its case current again (its archived figure goes).
    std::unordered_map<Id, Id> m_read_back;
    std::thread m_archiver;
    std::condition_variable m_archive_cv;    // with m_commit_mutex (m_stopping)
    std::condition_variable m_sweep_cv;      // with m_commit_mutex: m_sweeps moved
    std::uint64_t m_sweeps = 0;              // sweeps ended (m_commit_mutex)
    std::atomic<bool> m_sweep_cancel{false}; // the service is going away
    std::int64_t m_archive_every_ms = 0;

    // Long-poll: pulls waiting for their feed, answered by m_waiter.
    std::mutex m_wait_mutex;
    std::condition_variable m_wait_cv;
    std::vector<PullWait> m_waits;
    std::uint64_t m_wakes = 0; // commits that woke waits, and log moves seen (m_wait_mutex)
    bool m_any_woken = false;  // a wait is marked woken (m_wait_mutex)
    // Until when the waiter sleeps: a parked wait that ends later needs no wake-up.
    std::chrono::steady_clock::time_point m_waiter_until{};
    bool m_wait_stopping = false;
    std::thread m_waiter;
    // A shared store's commit listener (other instances' commits wake waits), when it has one.
    bool m_listening = false;
    std::thread m_listener;

    // Devices' sessions seen by this instance (the store has them all).
    struct SessionIdHash {
        std::size_t operator()(const SessionId& id) const noexcept;
    };
    std::mutex m_session_mutex;
    std::unordered_map<SessionId, DeviceSession, SessionIdHash> m_sessions;
    std::int64_t m_sessions_swept_at = 0; // when expired sessions were last deleted

    // Readers (a shared store's other connections), opened as pulls need them, at most
    // m_config.read_connections.
    bool m_has_readers = false;
    std::mutex m_reader_mutex;
    std::condition_variable m_reader_cv;
    std::vector<std::unique_ptr<Store>> m_idle_readers;
    std::size_t m_open_readers = 0;

    // Group commit: requests merged in memory queue their writes in merge order; one
    // thread commits everything queued in one transaction and wakes the waiters.
    std::mutex m_commit_mutex; // lock order: m_mutex, then m_commit_mutex
    std::condition_variable m_commit_cv;
    std::deque<std::shared_ptr<PendingCommit>> m_commit_queue;
    // SQLite pulls' counters not yet written (pull_mark_flush_ms): replica -> the write.
    std::unordered_map<std::uint64_t, SyncWrite> m_pull_marks;
    std::function<void(std::function<void()>)> m_post; // set_executor's
    bool m_stopping = false;
    std::thread m_committer;
};

} // namespace otsync::server
