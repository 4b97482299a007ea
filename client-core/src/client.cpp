// Client: the device's replica, outbox and sync engine; see client.hpp.
#include "otsync/client.hpp"

#include "local_db.hpp"

#include "otsync/attachment.hpp"
#include "otsync/codec.hpp"
#include "otsync/deflate.hpp"
#include "otsync/error.hpp"
#include "otsync/model.hpp"
#include "otsync/session.hpp"
#include "otsync/view.hpp"

#include <sodium.h>

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace otsync::client {

namespace {

constexpr int k_local_schema = 1;
constexpr std::size_t k_push_batch = 500; // ops per request, at most

/// Ops per request, adapted to the link: no more than the link, as the last answered
/// request measured it, carries in the policy's batch_target_ms (a cut then loses at most
/// that much of the link's time), grown back by a quarter per answered request as the link
/// gets better. Between k_min_batch and k_push_batch.
class BatchSize {
public:
    static constexpr std::size_t k_min_batch = 50;

    std::size_t ops() const { return m_ops; }
    /// A request of `sent` ops and `bytes` on the wire (both ways) answered after `seconds`.
    void arrived(std::size_t sent, std::size_t bytes, double seconds, std::uint32_t target_ms) {
        if (sent == 0) {
            return;
        }
        std::size_t next = std::min(k_push_batch, m_ops + m_ops / 4 + 1);
        if (seconds > 0 && bytes > 0) { // the round trip included: a rate on the low side
            const double per_op = static_cast<double>(bytes) / static_cast<double>(sent);
            const double rate = static_cast<double>(bytes) / seconds;
            const auto fits = static_cast<std::size_t>(rate * target_ms / 1000.0 / per_op);
            next = std::min(next, std::max(k_min_batch, fits));
        }
        m_ops = next;
    }

private:
    std::size_t m_ops = k_push_batch;
};
/// Request bodies at least this large travel deflated (smaller ones gain nothing).
constexpr std::size_t k_deflate_min_bytes = 256;
constexpr int k_max_pages = 100'000; // bound on one sync's loop
constexpr const char* k_key_check = "otsync-client-key-check-v1";

const char* const k_schema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB);
-- The ops this device made, one encrypted row each (body = nonce || ciphertext), so each is
-- durable the moment it is recorded.
CREATE TABLE IF NOT EXISTS ops(replica INTEGER NOT NULL, counter INTEGER NOT NULL,
    entity_type INTEGER NOT NULL, entity BLOB NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY(replica, counter));
CREATE INDEX IF NOT EXISTS ops_by_entity ON ops(entity_type, entity);
-- Ops pulled from the server: one encrypted, delta-coded batch per response page.
CREATE TABLE IF NOT EXISTS pages(id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL);
-- Entities evicted from this device's scope: their pulled ops are skipped when folding.
CREATE TABLE IF NOT EXISTS evicted(entity_type INTEGER NOT NULL, entity BLOB NOT NULL,
    PRIMARY KEY(entity_type, entity));
-- Own ops not yet acknowledged, oldest first.
CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,
    replica INTEGER NOT NULL, counter INTEGER NOT NULL, UNIQUE(replica, counter));
CREATE TABLE IF NOT EXISTS rejections(replica INTEGER NOT NULL, counter INTEGER NOT NULL,
    code INTEGER NOT NULL, message TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY(replica, counter));
CREATE TABLE IF NOT EXISTS receipts(request_counter INTEGER PRIMARY KEY, signature BLOB NOT NULL,
    op_ids TEXT NOT NULL);
-- Evictions received while own ops on the entity were still pending.
CREATE TABLE IF NOT EXISTS evictions(entity_type INTEGER NOT NULL, entity BLOB NOT NULL,
    PRIMARY KEY(entity_type, entity));
-- Signature images of devices from before attachments were uploaded, encrypted.
CREATE TABLE IF NOT EXISTS blobs(id BLOB PRIMARY KEY, data BLOB NOT NULL);
-- Attachments (signatures, photos) by the BLAKE2b-256 of their bytes, kept encrypted in
-- pieces of 64 KiB; `acked` is how many bytes the server holds; state 0 to upload, 1 on
-- the server, 2 refused by the server (kept, with its words).
CREATE TABLE IF NOT EXISTS attachments(hash BLOB PRIMARY KEY, kind INTEGER NOT NULL,
    media INTEGER NOT NULL, size INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0, refusal TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attachment_pieces(hash BLOB NOT NULL, idx INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY(hash, idx));
)sql";

/// The pieces an attachment is kept in on the device (each sealed on its own).
constexpr std::size_t k_piece_bytes = 64 * 1024;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
    return {s.begin(), s.end()};
}

Id parse_id(const std::string& hex) {
    try {
        return Id::from_hex(hex);
    } catch (const Error&) {
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                          "'" + hex + "' is not an id (32 hex digits)");
    }
}

int code_of(ErrorCode c) {
    return static_cast<int>(c);
}

/// One request in the sync's counts: the HTTP bytes the transport reports, else the bodies.
void count_request(SyncStats& stats, const HttpReply& reply, const std::string& body) {
    stats.requests++;
    stats.bytes_up += reply.wire_bytes_up > 0 ? reply.wire_bytes_up : body.size();
    stats.bytes_down += reply.wire_bytes_down > 0 ? reply.wire_bytes_down : reply.body.size();
}

} // namespace

/// The device's wall clock corrected by what the server's clock says: a device whose
/// date is far ahead (a phone set a year forward) stamps its ops in the server's time, so
/// they are not refused as clock skew. The offset is learned at each sync and persisted.
class AlignedClock final : public ClockSource {
public:
    explicit AlignedClock(ClockSource& device) : m_device(device) {}
    std::uint64_t now_ms() override {
        const auto t = static_cast<std::int64_t>(m_device.now_ms()) + m_offset_ms;
        return t > 0 ? static_cast<std::uint64_t>(t) : 0;
    }
    std::int64_t offset_ms() const { return m_offset_ms; }
    void set_offset_ms(std::int64_t v) { m_offset_ms = v; }
    ClockSource& device() { return m_device; }

private:
    ClockSource& m_device;
    std::int64_t m_offset_ms = 0;
};

/// How far ahead of the server a device's clock may run before it is corrected: well
/// inside the server's own limit (10 minutes by default), well above network delays.
constexpr std::int64_t k_clock_tolerance_ms = 60'000;

struct Client::Impl {
    Impl(const std::string& path, const std::array<std::uint8_t, 32>& k, ClockSource* device)
        : db(path), key(k), wall(device ? *device : system_clock) {}
    ~Impl() { sodium_memzero(key.data(), key.size()); }

    LocalDb db;
    std::array<std::uint8_t, 32> key;
    SystemClock system_clock;
    AlignedClock wall;
    std::unique_ptr<Hlc> hlc;
    std::unique_ptr<crdt::OpMaker> maker;
    crdt::Replica state;
    // Enrollment.
    std::uint64_t replica = 0;
    Id user;
    std::string server;
    PublicKey server_key{};
    SecretKey secret;
    std::uint64_t request_counter = 0;
    std::uint64_t cursor = 0;
    BatchSize batch_size; // this process's measure of the link
    // Every public call holds `mu` while it touches the database or the state; a sync
    // releases it for each network exchange, and `sync_mu` keeps syncs one at a time.
    std::mutex mu;
    std::mutex sync_mu;
    // Cancel: the flag, the transport whose post is in flight, and the retry wait.
    RetryPolicy retry;
    std::atomic<bool> cancelled{false};
    std::mutex flight_mu;
    Transport* in_flight = nullptr;
    std::condition_variable_any retry_cv;

    [[noreturn]] void throw_cancelled() {
        put_meta("last_sync_result",
                 std::string("cancelada: no se perdió nada; la próxima sincronización continúa"));
        throw ClientError(OTSYNC_ERR_CANCELLED,
                          "cancelled; nothing was lost and the next sync resumes from here");
    }

    /// One request, `lock` released while it is in flight; a cancel ends it.
    HttpReply exchange(Transport& t, std::unique_lock<std::mutex>& lock, const std::string& path,
                       const std::map<std::string, std::string>& headers, const std::string& body) {
        if (cancelled) {
            throw_cancelled();
        }
        lock.unlock();
        {
            std::lock_guard f(flight_mu);
            in_flight = &t;
        }
        HttpReply reply;
        if (!cancelled) {
            reply = t.post(path, headers, body);
        } else {
            reply.error = OTSYNC_ERR_CANCELLED;
        }
        {
            std::lock_guard f(flight_mu);
            in_flight = nullptr;
        }
        lock.lock();
        if (cancelled) {
            throw_cancelled();
        }
        return reply;
    }

    /// Waits `ms` with `lock` released, or less when cancelled (then throws).
    void wait_retry(std::unique_lock<std::mutex>& lock, std::uint32_t ms) {
        lock.unlock();
        {
            std::unique_lock f(flight_mu);
            retry_cv.wait_for(f, std::chrono::milliseconds(ms), [&] { return cancelled.load(); });
        }
        lock.lock();
        if (cancelled) {
            throw_cancelled();
        }
    }

    /// The time written into field facts (collected at, completed at, handover date): the
    /// device's clock corrected by the server's, the same the HLC stamps ops with.
    std::int64_t field_now() { return static_cast<std::int64_t>(wall.now_ms()); }

    // ---- meta ----
    std::optional<std::vector<std::uint8_t>> meta(const char* k) {
        std::optional<std::vector<std::uint8_t>> out;
        db.run("SELECT value FROM meta WHERE key=?", {std::string(k)},
               [&](const LocalDb::Row& r) { out = r.blob(0); });
        return out;
    }
    std::string meta_text(const char* k) {
        const auto v = meta(k);
        return v ? std::string(v->begin(), v->end()) : std::string();
    }
    std::uint64_t meta_u64(const char* k) {
        const auto t = meta_text(k);
        return t.empty() ? 0 : std::stoull(t);
    }
    void put_meta(const char* k, std::vector<std::uint8_t> v) {
        db.run("INSERT INTO meta(key, value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET "
               "value=excluded.value",
               {std::string(k), std::move(v)});
    }
    void put_meta(const char* k, const std::string& v) { put_meta(k, bytes_of(v)); }

    // ---- ops ----
    void store_op(const Op& op) {
        const std::string body = encode_binary(std::span<const Op>(&op, 1));
        db.run("INSERT OR IGNORE INTO ops(replica, counter, entity_type, entity, body) "
               "VALUES(?,?,?,?,?)",
               {static_cast<std::int64_t>(op.id.replica), static_cast<std::int64_t>(op.id.counter),
                static_cast<std::int64_t>(op.entity_type),
                std::vector<std::uint8_t>(op.entity.bytes.begin(), op.entity.bytes.end()),
                seal(key, body)});
    }

    /// This device's new ops: stored, queued in the outbox, and the op counter and clock
    /// they used kept with them. Inside the caller's transaction.
    void store_outgoing(const std::vector<Op>& ops) {
        for (const auto& op : ops) {
            store_op(op);
            db.run("INSERT OR IGNORE INTO outbox(replica, counter) VALUES(?,?)",
                   {static_cast<std::int64_t>(op.id.replica),
                    static_cast<std::int64_t>(op.id.counter)});
        }
        put_meta("op_counter", std::to_string(maker->counter()));
        put_meta("hlc", std::to_string(hlc->state()));
    }

    Op load_body(const std::vector<std::uint8_t>& sealed) {
        const auto plain = unseal(key, sealed);
        if (!plain) {
            throw ClientError(OTSYNC_ERR_WRONG_KEY,
                              "a stored op does not decrypt: wrong key or damaged file");
        }
        auto ops = decode_ops(*plain);
        if (ops.size() != 1) {
            throw ClientError(OTSYNC_ERR_INTERNAL, "a stored op is damaged");
        }
        return std::move(ops.front());
    }

    /// One response page of pulled ops, sealed as one batch; entities that come back
    /// into scope stop being skipped.
    void store_page(const std::vector<Op>& ops) {
        if (ops.empty()) {
            return;
        }
        db.run("INSERT INTO pages(body) VALUES(?)",
               {seal(key, encode_binary(std::span<const Op>(ops)))});
        std::set<std::pair<EntityType, Id>> entities;
        for (const auto& op : ops) {
            entities.insert({op.entity_type, op.entity});
        }
        for (const auto& [t, id] : entities) {
            const std::vector<LocalDb::Arg> entity{
                static_cast<std::int64_t>(t),
                std::vector<std::uint8_t>(id.bytes.begin(), id.bytes.end())};
            db.run("DELETE FROM evicted WHERE entity_type=? AND entity=?", entity);
            // An eviction still held back for pending ops no longer applies: it is back.
            db.run("DELETE FROM evictions WHERE entity_type=? AND entity=?", entity);
        }
    }

    void fold() {
        state = crdt::Replica{};
        std::set<std::pair<std::int64_t, std::vector<std::uint8_t>>> skip;
        db.run("SELECT entity_type, entity FROM evicted", {}, [&](const LocalDb::Row& r) {
            skip.insert({r.i64(0), r.blob(1)});
        });
        const auto apply = [&](const Op& op) {
            if (skip.empty() ||
                !skip.contains(
                    {static_cast<std::int64_t>(op.entity_type),
                     std::vector<std::uint8_t>(op.entity.bytes.begin(), op.entity.bytes.end())})) {
                state.apply(op);
            }
        };
        CodecLimits limits;
        limits.max_ops = 1'000'000;
        limits.max_message_bytes = 1u << 30;
        db.run("SELECT body FROM pages ORDER BY id", {}, [&](const LocalDb::Row& r) {
            const auto plain = unseal(key, r.blob(0));
            if (!plain) {
                throw ClientError(OTSYNC_ERR_WRONG_KEY,
                                  "a stored page does not decrypt: wrong key or damaged file");
            }
            for (const auto& op : decode_ops(*plain, limits)) {
                apply(op);
            }
        });
        db.run("SELECT body FROM ops", {},
               [&](const LocalDb::Row& r) { apply(load_body(r.blob(0))); });
    }

    /// Records ops made here: durable (ops + outbox + clocks) before they count.
    /// Records ops (checked as the technician's); `also` runs in the same transaction.
    void record(std::vector<Op> ops, const std::function<void()>& also = {}) {
        require_enrolled();
        for (const auto& op : ops) {
            if (auto err = check_op_schema(op)) {
                throw ClientError(code_of(err->code()), err->message());
            }
            const FieldDef* f = find_field(op.entity_type, op.field);
            if (!permitted(Role::technician, *f, op.kind)) {
                throw ClientError(OTSYNC_ERR_PERMISSION_DENIED,
                                  "a technician may not change " +
                                      std::string(to_string(op.entity_type)) + "." +
                                      std::string(f->name));
            }
        }
        db.transaction([&] {
            if (also) {
                also();
            }
            store_outgoing(ops);
        });
        for (const auto& op : ops) {
            state.apply(op);
        }
    }

    // ---- attachments ----
    attachment::Limits attachment_limits;

    /// The hash of `bytes` once they pass as an attachment of `kind` (attachment::check).
    Hash256 attachment_hash(attachment::Kind kind, std::span<const std::uint8_t> bytes) {
        try {
            attachment::check(kind, bytes, attachment_limits);
        } catch (const Error& e) {
            throw ClientError(code_of(e.code()), e.message());
        }
        return attachment::blob_hash(bytes);
    }

    /// Checks `bytes` as an attachment of `kind` and keeps them sealed (in the caller's
    /// transaction), once per hash; the hash.
    Hash256 keep_attachment(attachment::Kind kind, std::span<const std::uint8_t> bytes) {
        try {
            const attachment::MediaType media = attachment::check(kind, bytes, attachment_limits);
            const Hash256 h = attachment::blob_hash(bytes);
            const std::vector<std::uint8_t> hv(h.begin(), h.end());
            bool known = false;
            db.run("SELECT 1 FROM attachments WHERE hash=?", {hv},
                   [&](const LocalDb::Row&) { known = true; });
            if (known) {
                return h;
            }
            for (std::size_t i = 0, at = 0; at < bytes.size(); ++i, at += k_piece_bytes) {
                const std::size_t n = std::min(k_piece_bytes, bytes.size() - at);
                db.run("INSERT INTO attachment_pieces(hash, idx, data) VALUES(?,?,?)",
                       {hv, static_cast<std::int64_t>(i),
                        seal(key, std::string_view(reinterpret_cast<const char*>(bytes.data() + at),
                                                   n))});
            }
            db.run("INSERT INTO attachments(hash, kind, media, size, seq) VALUES(?,?,?,?,"
                   "(SELECT COALESCE(MAX(seq), 0) + 1 FROM attachments))",
                   {hv, static_cast<std::int64_t>(kind), static_cast<std::int64_t>(media),
                    static_cast<std::int64_t>(bytes.size())});
            return h;
        } catch (const Error& e) {
            throw ClientError(code_of(e.code()), e.message());
        }
    }

    /// `n` bytes of a kept attachment from `offset` (`cache`: the last piece opened).
    std::string attachment_bytes(const std::vector<std::uint8_t>& hash, std::uint64_t offset,
                                 std::size_t n, std::pair<std::int64_t, std::string>& cache) {
        std::string out;
        while (out.size() < n) {
            const std::uint64_t at = offset + out.size();
            const auto idx = static_cast<std::int64_t>(at / k_piece_bytes);
            if (cache.first != idx) {
                std::optional<std::string> plain;
                db.run("SELECT data FROM attachment_pieces WHERE hash=? AND idx=?", {hash, idx},
                       [&](const LocalDb::Row& r) { plain = unseal(key, r.blob(0)); });
                if (!plain) {
                    throw ClientError(OTSYNC_ERR_INTERNAL,
                                      "an attachment kept on this device cannot be read");
                }
                cache = {idx, std::move(*plain)};
            }
            const std::size_t from = at % k_piece_bytes;
            if (from >= cache.second.size()) {
                throw ClientError(OTSYNC_ERR_INTERNAL, "an attachment kept here is shorter than "
                                                       "its size");
            }
            out.append(cache.second, from, std::min(n - out.size(), cache.second.size() - from));
        }
        return out;
    }

    /// After a sync answer: when the device's clock runs ahead of the server's by more
    /// than the tolerance, stamp from now on in the server's time (an offset). The HLC is
    /// brought back only when the server refused stamps (reissue_skewed). True when the
    /// offset changed.
    bool align_clock(HlcTime server_hlc) {
        const auto server_ms = static_cast<std::int64_t>(hlc_ms(server_hlc));
        const auto device_ms = static_cast<std::int64_t>(wall.device().now_ms());
        const std::int64_t ahead = device_ms - server_ms;
        const std::int64_t want = ahead > k_clock_tolerance_ms ? -ahead : 0;
        bool changed = false;
        // Keep an offset that still fits (a few seconds of drift either way), so the
        // clock does not jump back and forth at every sync.
        if (want != wall.offset_ms() &&
            (want == 0 || std::llabs(want - wall.offset_ms()) > k_clock_tolerance_ms)) {
            wall.set_offset_ms(want);
            put_meta("clock_offset_ms", std::to_string(want));
            changed = true;
        }
        return changed;
    }

    /// Ops the server refused as clock skew are made again, with the same content, under
    /// new ids stamped in the corrected time; the refused ones, which never reached the
    /// server, leave the device. Field facts are never dropped for a wrong date.
    std::size_t reissue_skewed(const std::vector<OpId>& refused, HlcTime server_hlc) {
        const auto limit = hlc_ms(server_hlc) + static_cast<std::uint64_t>(k_clock_tolerance_ms);
        std::vector<Op> old;
        for (const auto& id : refused) {
            db.run("SELECT body FROM ops WHERE replica=? AND counter=?",
                   {static_cast<std::int64_t>(id.replica), static_cast<std::int64_t>(id.counter)},
                   [&](const LocalDb::Row& r) { old.push_back(load_body(r.blob(0))); });
        }
        // Only ops stamped ahead of the server: one made again is not made a third time.
        std::erase_if(old, [&](const Op& op) { return hlc_ms(op.hlc) <= limit; });
        if (old.empty()) {
            return 0;
        }
        std::sort(old.begin(), old.end(),
                  [](const Op& a, const Op& b) { return a.order_key() < b.order_key(); });
        // The HLC comes back (Hlc::reset, the explicit recovery), but never below a stamp of
        // this device that the server has or will take: the highest own op below the
        // lowest refused one. New ops then order after everything of ours that counts.
        const HlcTime lowest_refused = old.front().hlc;
        std::set<OpId> refused_ids;
        for (const Op& op : old) {
            refused_ids.insert(op.id);
        }
        HlcTime floor = server_hlc;
        db.run("SELECT body FROM ops WHERE replica=?", {static_cast<std::int64_t>(replica)},
               [&](const LocalDb::Row& r) {
                   const Op op = load_body(r.blob(0));
                   if (!refused_ids.contains(op.id) && op.hlc < lowest_refused) {
                       floor = std::max(floor, op.hlc);
                   }
               });
        if (hlc->state() > floor) {
            hlc->reset(floor);
        }
        return remake(old);
    }

    /// Makes `old` (own ops, oldest first) again with the current maker: new ids, same
    /// content, removes pointing at the new ids of what they observed. The old copies
    /// leave the device and the new ones take their place in the outbox.
    std::size_t remake(const std::vector<Op>& old) {
        std::map<OpId, OpId> renamed;
        std::vector<Op> fresh;
        for (const Op& op : old) {
            const std::string_view field = find_field(op.entity_type, op.field)->name;
            Op n;
            switch (op.kind) {
            case OpKind::set:
                n = maker->set(op.entity_type, op.entity, field, op.value);
                break;
            case OpKind::add:
                n = maker->add(op.entity_type, op.entity, field, op.value);
                break;
            case OpKind::remove:
                n = maker->remove(state, op.entity_type, op.entity, field, op.value);
                break;
            case OpKind::event:
                n = maker->event(op.entity_type, op.entity, field, op.value);
                break;
            }
            n.observed.clear();
            for (const OpId& seen : op.observed) {
                const auto it = renamed.find(seen);
                n.observed.push_back(it == renamed.end() ? seen : it->second);
            }
            renamed[op.id] = n.id;
            fresh.push_back(std::move(n));
        }
        db.transaction([&] {
            for (const Op& op : old) {
                const std::vector<LocalDb::Arg> key_of_op{static_cast<std::int64_t>(op.id.replica),
                                                          static_cast<std::int64_t>(op.id.counter)};
                db.run("DELETE FROM ops WHERE replica=? AND counter=?", key_of_op);
                db.run("DELETE FROM outbox WHERE replica=? AND counter=?", key_of_op);
                db.run("DELETE FROM rejections WHERE replica=? AND counter=?", key_of_op);
            }
            store_outgoing(fresh);
        });
        fold(); // the refused copies leave the local state too
        return fresh.size();
    }

    std::uint64_t attachment_bytes_pending() {
        std::uint64_t n = 0;
        db.run("SELECT COALESCE(SUM(size - acked), 0) FROM attachments WHERE state=0", {},
               [&](const LocalDb::Row& r) { n = static_cast<std::uint64_t>(r.i64(0)); });
        return n;
    }

    std::size_t pending() {
        std::size_t n = 0;
        db.run("SELECT count(*) FROM outbox", {},
               [&](const LocalDb::Row& r) { n = static_cast<std::size_t>(r.i64(0)); });
        return n;
    }

    void require_enrolled() const {
        if (replica == 0) {
            throw ClientError(OTSYNC_ERR_NOT_ENROLLED,
                              "this device is not enrolled: run enroll first");
        }
    }

    void load_enrollment() {
        replica = meta_u64("replica");
        if (replica == 0) {
            return;
        }
        const auto u = meta("user");
        const auto pk = meta("server_key");
        const auto sk = meta("secret_key");
        if (!u || u->size() != 16 || !pk || pk->size() != 32 || !sk) {
            throw ClientError(OTSYNC_ERR_INTERNAL, "the enrollment record is damaged");
        }
        std::copy(u->begin(), u->end(), user.bytes.begin());
        std::copy(pk->begin(), pk->end(), server_key.begin());
        auto plain = unseal(key, *sk);
        if (!plain || plain->size() != 64) {
            throw ClientError(OTSYNC_ERR_WRONG_KEY, "the device key does not decrypt");
        }
        std::copy(plain->begin(), plain->end(), secret.bytes().begin());
        sodium_memzero(plain->data(), plain->size());
        server = meta_text("server");
        request_counter = meta_u64("request_counter");
        cursor = meta_u64("cursor");
        load_session();
    }

    // ---- the sync session (protocol 2) ----
    struct SyncSession {
        SessionId id{};
        MacKey key;
        std::int64_t expires_at = 0; // the server's clock
    };
    std::optional<SyncSession> session;

    /// Stored sealed: id (16), key (32), expiry (8, little endian).
    void load_session() {
        session.reset();
        const auto sealed = meta("session");
        if (!sealed) {
            return;
        }
        auto plain = unseal(key, *sealed);
        if (plain && plain->size() == 56) {
            SyncSession s;
            std::copy(plain->begin(), plain->begin() + 16, s.id.begin());
            std::copy(plain->begin() + 16, plain->begin() + 48, s.key.bytes.begin());
            std::uint64_t at = 0;
            for (int i = 7; i >= 0; --i) {
                at = (at << 8) |
                     static_cast<unsigned char>((*plain)[48 + static_cast<std::size_t>(i)]);
            }
            s.expires_at = static_cast<std::int64_t>(at);
            session = std::move(s);
        }
        if (plain) {
            sodium_memzero(plain->data(), plain->size());
        }
    }

    void save_session(SyncSession s) {
        std::string plain(56, '\0');
        std::copy(s.id.begin(), s.id.end(), plain.begin());
        std::copy(s.key.bytes.begin(), s.key.bytes.end(), plain.begin() + 16);
        const auto at = static_cast<std::uint64_t>(s.expires_at);
        for (int i = 0; i < 8; ++i) {
            plain[48 + static_cast<std::size_t>(i)] = static_cast<char>((at >> (8 * i)) & 0xFF);
        }
        db.transaction([&] { put_meta("session", seal(key, plain)); },
                       LocalDb::Durability::relaxed); // lost: a new handshake
        sodium_memzero(plain.data(), plain.size());
        session = std::move(s);
    }

    void drop_session() {
        session.reset();
        db.run("DELETE FROM meta WHERE key='session'");
    }

    /// A live session for the next request: the stored one while it has a minute left on
    /// the server's clock (as this device reads it), else a new one by the handshake
    /// (POST /v1/sessions, one counter). Nothing when the handshake got no good answer:
    /// the request is then signed, which every server takes.
    const SyncSession* live_session(Transport& t, std::unique_lock<std::mutex>& lock,
                                    SyncStats& stats) {
        const auto now = static_cast<std::int64_t>(field_now());
        if (session && session->expires_at - 60'000 > now) {
            return &*session;
        }
        drop_session();
        const std::uint64_t counter = request_counter + 1;
        db.transaction([&] { put_meta("request_counter", std::to_string(counter)); },
                       LocalDb::Durability::relaxed);
        request_counter = counter;
        const KxKeyPair kx = KxKeyPair::generate();
        const Signature hello =
            otsync::sign(session_hello_message(replica, counter, kx.public_key), secret);
        const std::string body = "{\"protocol_version\":" + std::to_string(k_protocol_version) +
                                 ",\"replica\":" + std::to_string(replica) +
                                 ",\"counter\":" + std::to_string(counter) + ",\"device_key\":\"" +
                                 to_base64(kx.public_key) + "\",\"signature\":\"" +
                                 to_base64(hello) + "\"}";
        const HttpReply reply =
            exchange(t, lock, "/v1/sessions", {{"content-type", "application/json"}}, body);
        count_request(stats, reply, body);
        if (reply.status != 200) {
            const auto reaction = session::reaction_of(reply.status, std::nullopt);
            if (reaction == session::Reaction::wipe_if_proven ||
                reaction == session::Reaction::re_enroll || reaction == session::Reaction::wait) {
                refused(reply); // as a sync's refusal: wipes only on a proven revocation
            }
            return nullptr; // a server without sessions, or none reached: sign instead
        }
        rapidjson::Document doc;
        doc.Parse(reply.body.c_str());
        const auto b64 = [&](const char* name,
                             std::size_t n) -> std::optional<std::vector<std::uint8_t>> {
            if (!doc.IsObject() || !doc.HasMember(name) || !doc[name].IsString()) {
                return std::nullopt;
            }
            auto v = from_base64(doc[name].GetString(), n);
            return v && v->size() == n ? v : std::nullopt;
        };
        const auto id = b64("session", 16);
        const auto server_kx = b64("server_key", 32);
        const auto signature = b64("signature", 64);
        if (!id || !server_kx || !signature || !doc.HasMember("expires_at") ||
            !doc["expires_at"].IsInt64()) {
            return nullptr;
        }
        SyncSession s;
        std::copy(id->begin(), id->end(), s.id.begin());
        PublicKey skx{};
        std::copy(server_kx->begin(), server_kx->end(), skx.begin());
        Signature sig{};
        std::copy(signature->begin(), signature->end(), sig.begin());
        s.expires_at = doc["expires_at"].GetInt64();
        // The server signs the exchange with the key it gave at enrollment: a session
        // offered by anyone else is not used.
        if (!otsync::verify(
                sig,
                session_accept_message(replica, counter, kx.public_key, skx, s.id, s.expires_at),
                server_key)) {
            return nullptr;
        }
        const auto k = device_session_key(kx, skx);
        if (!k) {
            return nullptr;
        }
        s.key = *k;
        save_session(std::move(s));
        return &*session;
    }

    void make_clock() {
        if (const auto off = meta_text("clock_offset_ms"); !off.empty()) {
            wall.set_offset_ms(std::stoll(off));
        }
        hlc = std::make_unique<Hlc>(wall, meta_u64("hlc"));
        maker = std::make_unique<crdt::OpMaker>(
            replica, *hlc, user, std::max(meta_u64("op_counter"), state.max_counter(replica)));
    }

    /// Revoked: the server will never take this device's data; wipe keys and data.
    void wipe() {
        db.transaction([&] {
            db.exec("DELETE FROM ops; DELETE FROM pages; DELETE FROM evicted; DELETE FROM "
                    "evictions; DELETE FROM outbox; DELETE FROM rejections; DELETE FROM receipts;"
                    "DELETE FROM blobs; DELETE FROM attachments; DELETE FROM attachment_pieces; "
                    "DELETE FROM meta WHERE key <> 'key_check' AND key <> "
                    "'schema';");
        });
        put_meta("last_sync_result",
                 std::string("revocado (revoked): el servidor dio de baja este equipo y sus "
                             "datos se borraron"));
        secret.wipe();
        replica = 0;
        state = crdt::Replica{};
    }

    /// A `device_revoked` answer proves the revocation only with the server's signature,
    /// by the key stored at enrollment, over this device's replica and the revocation time.
    bool proven_revocation(const rapidjson::Document& doc) const {
        if (!doc.IsObject() || !doc.HasMember("revocation") || !doc["revocation"].IsObject()) {
            return false;
        }
        const auto& r = doc["revocation"];
        if (!r.HasMember("replica") || !r["replica"].IsUint64() || !r.HasMember("revoked_at") ||
            !r["revoked_at"].IsInt64() || !r.HasMember("signature") || !r["signature"].IsString()) {
            return false;
        }
        const auto sig = from_base64(r["signature"].GetString(), 64);
        if (r["replica"].GetUint64() != replica || !sig || sig->size() != 64) {
            return false;
        }
        Signature s{};
        std::copy(sig->begin(), sig->end(), s.begin());
        return otsync::verify(s, revocation_message(replica, r["revoked_at"].GetInt64()),
                              server_key);
    }

    /// A sync the server refused (401, 403): only a proven revocation wipes; every other
    /// refusal keeps everything and says, in the technician's words, what to do.
    /// The code of an error body ({"error":{"code":...}}), if it names one.
    static std::optional<ErrorCode> refusal_code(const HttpReply& reply) {
        if (reply.status < 400) {
            return std::nullopt;
        }
        rapidjson::Document doc;
        doc.Parse(reply.body.c_str());
        if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("error") ||
            !doc["error"].IsObject() || !doc["error"].HasMember("code") ||
            !doc["error"]["code"].IsString()) {
            return std::nullopt;
        }
        return error_code_from_string(doc["error"]["code"].GetString());
    }

    [[noreturn]] void refused(const HttpReply& reply) {
        rapidjson::Document doc;
        doc.Parse(reply.body.c_str());
        std::string code_text, message;
        if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("error") &&
            doc["error"].IsObject()) {
            const auto& e = doc["error"];
            if (e.HasMember("code") && e["code"].IsString()) {
                code_text = e["code"].GetString();
            }
            if (e.HasMember("message") && e["message"].IsString()) {
                message = e["message"].GetString();
            }
        }
        const auto code = error_code_from_string(code_text);
        if (session::reaction_of(reply.status, code) == session::Reaction::wipe_if_proven &&
            !doc.HasParseError() && proven_revocation(doc)) {
            wipe();
            throw ClientError(OTSYNC_ERR_REVOKED,
                              "este equipo fue revocado por el servidor: sus datos se borraron");
        }
        int c = OTSYNC_ERR_UNAUTHENTICATED;
        std::string advice;
        switch (code.value_or(ErrorCode::unauthenticated)) {
        case ErrorCode::device_revoked:
            c = OTSYNC_ERR_DEVICE_REVOKED;
            advice = "el servidor dice que este equipo fue revocado, pero no lo prueba: no se "
                     "borró nada; avise a soporte";
            break;
        case ErrorCode::unknown_device:
            c = OTSYNC_ERR_UNKNOWN_DEVICE;
            advice = "el servidor no reconoce este equipo: pida un código nuevo a su supervisor "
                     "y vuelva a enrolarlo; su trabajo pendiente se conserva y se enviará";
            break;
        case ErrorCode::bad_signature:
            c = OTSYNC_ERR_BAD_SIGNATURE;
            advice = "el servidor no acepta la firma de este equipo: su trabajo se conserva; "
                     "pida un código nuevo y vuelva a enrolarlo, o avise a soporte";
            break;
        case ErrorCode::user_disabled:
            c = OTSYNC_ERR_USER_DISABLED;
            advice = "su usuario está deshabilitado: su trabajo se conserva y se enviará cuando "
                     "lo habiliten; hable con su supervisor";
            break;
        case ErrorCode::permission_denied:
            c = OTSYNC_ERR_PERMISSION_DENIED;
            advice = "el servidor no permite esta sincronización: su trabajo se conserva; avise "
                     "a soporte";
            break;
        default:
            c = OTSYNC_ERR_UNAUTHENTICATED;
            advice = "la solicitud no llegó completa al servidor (¿un proxy o una red que quita "
                     "datos?): su trabajo se conserva; pruebe otra red o avise a soporte";
            break;
        }
        const std::string shown =
            code_text.empty() ? "HTTP " + std::to_string(reply.status) : code_text;
        put_meta("last_sync_result", "rechazada (" + shown + "): " + advice);
        throw ClientError(c, advice + " (" + shown + (message.empty() ? "" : ": " + message) + ")");
    }

    // ---- domain helpers ----
    /// The signed Anexo 4 is frozen: the rows change only after the signature is reopened.
    void require_unsigned(const Id& ot) const {
        const Value* sig = state.get(EntityType::work_order, ot, "signature_ref");
        if (sig && std::holds_alternative<Id>(*sig)) {
            throw ClientError(OTSYNC_ERR_SIGNED_ROWS,
                              "the customer signed this OT's rows: reopen the signature, saying "
                              "why, before changing them");
        }
    }
    std::string ot_status(const Id& ot) const {
        return text_of(state.get(EntityType::work_order, ot, "status"));
    }
    std::optional<std::int64_t> modality(const Id& ot) const {
        const Value* c = state.get(EntityType::work_order, ot, "case");
        if (!c || !std::holds_alternative<Id>(*c)) {
            return std::nullopt;
        }
        const Value* mod = state.get(EntityType::case_file, std::get<Id>(*c), "modality");
        if (!mod || !std::holds_alternative<std::int64_t>(*mod)) {
            return std::nullopt;
        }
        return std::get<std::int64_t>(*mod);
    }
    /// Expected serials neither collected, verified nor explained: the OT cannot complete.
    std::vector<std::string> unexplained(const Id& ot) const {
        std::set<std::string> done;
        for (const auto& [item, serial] : rows(ot)) {
            done.insert(serial);
        }
        for (const auto& v : state.elements(EntityType::work_order, ot, "verified_equipment")) {
            done.insert(normalize_serial(std::get<std::string>(v)));
        }
        for (const auto& [serial, why] : missing_reasons(state, ot)) {
            done.insert(normalize_serial(serial));
        }
        std::vector<std::string> out;
        for (const auto& e : expected(ot)) {
            if (!done.contains(e)) {
                out.push_back(e);
            }
        }
        return out;
    }

    /// The OT's expected serials, each with what became of it on the device:
    /// [{"serial","state":"collected"|"verified"|"missing"|"pending","item","reason"}].
    std::string equipment_json(const Id& ot) const {
        std::map<std::string, Id> collected;
        for (const auto& [item, serial] : rows(ot)) {
            collected.emplace(serial, item);
        }
        std::set<std::string> verified;
        for (const auto& v : state.elements(EntityType::work_order, ot, "verified_equipment")) {
            verified.insert(normalize_serial(std::get<std::string>(v)));
        }
        std::map<std::string, std::string> reasons;
        for (const auto& [serial, why] : missing_reasons(state, ot)) {
            reasons[normalize_serial(serial)] = why;
        }
        rapidjson::StringBuffer sb;
        rapidjson::Writer<rapidjson::StringBuffer> w(sb);
        w.StartArray();
        for (const auto& serial : expected(ot)) {
            const auto item = collected.find(serial);
            const auto reason = reasons.find(serial);
            const char* st = item != collected.end()     ? "collected"
                             : verified.contains(serial) ? "verified"
                             : reason != reasons.end()   ? "missing"
                                                         : "pending";
            w.StartObject();
            w.Key("serial");
            w.String(serial.c_str(), static_cast<rapidjson::SizeType>(serial.size()));
            w.Key("state");
            w.String(st);
            w.Key("item");
            if (item != collected.end()) {
                w.String(item->second.hex().c_str());
            } else {
                w.Null();
            }
            w.Key("reason");
            if (reason != reasons.end()) {
                w.String(reason->second.c_str(),
                         static_cast<rapidjson::SizeType>(reason->second.size()));
            } else {
                w.Null();
            }
            w.EndObject();
        }
        w.EndArray();
        return std::string(sb.GetString(), sb.GetSize());
    }

    bool my_ot(const Id& ot) const {
        const Value* t = state.get(EntityType::work_order, ot, "technician");
        return t && std::holds_alternative<Id>(*t) && std::get<Id>(*t) == user;
    }
    Id ot_in_scope(const std::string& hex) const {
        const Id ot = parse_id(hex);
        if (!state.entity(EntityType::work_order, ot) || !my_ot(ot)) {
            throw ClientError(OTSYNC_ERR_NOT_FOUND,
                              "OT " + hex + " is not assigned to this device");
        }
        return ot;
    }
    std::vector<std::string> expected(const Id& ot) const {
        std::vector<std::string> out;
        for (const auto& v : state.elements(EntityType::work_order, ot, "expected_equipment")) {
            out.push_back(normalize_serial(std::get<std::string>(v)));
        }
        return out;
    }
    /// Items recorded on an OT by serial; voided ones only when asked.
    std::vector<std::pair<Id, std::string>> rows(const Id& ot, bool with_voided = false) const {
        if (!with_voided) {
            return signed_rows(state, ot);
        }
        std::vector<std::pair<Id, std::string>> out;
        for (const Id& item : state.referrers(EntityType::collected_item, "work_order", ot)) {
            out.emplace_back(item, text_of(state.get(EntityType::collected_item, item, "serial")));
        }
        std::sort(out.begin(), out.end(),
                  [](const auto& a, const auto& b) { return a.second < b.second; });
        return out;
    }
};

Client::Client(const std::string& db_path, const std::array<std::uint8_t, 32>& key,
               ClockSource* device_clock)
    : m(std::make_unique<Impl>(db_path, key, device_clock)) {
    m->db.exec(k_schema);
    const auto check = m->meta("key_check");
    if (!check) {
        m->put_meta("key_check", seal(m->key, k_key_check));
        m->put_meta("schema", std::to_string(k_local_schema));
    } else {
        const auto plain = unseal(m->key, *check);
        if (!plain || *plain != k_key_check) {
            throw ClientError(OTSYNC_ERR_WRONG_KEY, "this key does not open this database");
        }
        if (m->meta_u64("schema") > static_cast<std::uint64_t>(k_local_schema)) {
            throw ClientError(OTSYNC_ERR_UNSUPPORTED_PROTOCOL,
                              "the database is from a newer otsync; update the app");
        }
    }
    m->load_enrollment();
    m->fold();
    m->make_clock();
}

Client::~Client() = default;

bool Client::enrolled() const {
    std::lock_guard lock(m->mu);
    return m->replica != 0;
}
std::string Client::server_url() const {
    std::lock_guard lock(m->mu);
    return m->server;
}
const crdt::Replica& Client::state() const {
    return m->state;
}
Id Client::user() const {
    std::lock_guard lock(m->mu);
    return m->user;
}
std::uint64_t Client::replica() const {
    std::lock_guard lock(m->mu);
    return m->replica;
}

std::size_t Client::pending() const {
    std::lock_guard lock(m->mu);
    return m->pending();
}

void Client::enroll(Transport& transport, const std::string& server_url, const std::string& code,
                    const std::string& label) {
    // A device may enroll again (a server restored from a backup no longer knows it, or
    // refuses its key): a new key and replica; the ops still in the outbox are made again
    // under the new replica, so they are delivered, each once.
    std::lock_guard sync_lock(m->sync_mu);
    std::unique_lock lock(m->mu);
    const bool again = m->replica != 0;
    auto kp = SigningKeyPair::generate();
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("code");
    w.String(code);
    w.Key("public_key");
    w.String(to_base64(kp.public_key));
    w.Key("label");
    w.String(label);
    w.EndObject();
    m->cancelled = false; // a cancel ends the enrollment in progress only
    const auto reply = m->exchange(transport, lock, "/v1/devices/enroll",
                                   {{"content-type", "application/json"}}, sb.GetString());
    if (reply.status == 0) {
        const int failure = reply.error == OTSYNC_ERR_TIMEOUT || reply.error == OTSYNC_ERR_TLS
                                ? reply.error
                                : OTSYNC_ERR_NETWORK;
        throw ClientError(failure, "the server did not answer (" +
                                       (reply.error_message.empty() ? std::string("no answer")
                                                                    : reply.error_message) +
                                       "); check the address and the connection");
    }
    rapidjson::Document doc;
    doc.Parse(reply.body.c_str());
    if (reply.status != 200) {
        std::string message = "enrollment refused (HTTP " + std::to_string(reply.status) + ")";
        if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("error") &&
            doc["error"].IsObject() && doc["error"].HasMember("message") &&
            doc["error"]["message"].IsString()) {
            message += ": " + std::string(doc["error"]["message"].GetString());
        }
        throw ClientError(OTSYNC_ERR_PERMISSION_DENIED, message);
    }
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("replica") ||
        !doc["replica"].IsUint64() || !doc.HasMember("user") || !doc["user"].IsString() ||
        !doc.HasMember("server_public_key") || !doc["server_public_key"].IsString()) {
        throw ClientError(OTSYNC_ERR_MALFORMED, "the server's enrollment answer is not understood");
    }
    const auto server_key = from_base64(doc["server_public_key"].GetString(), 32);
    if (!server_key || server_key->size() != 32) {
        throw ClientError(OTSYNC_ERR_MALFORMED, "the server's public key is not 32 bytes");
    }
    const Id user = parse_id(doc["user"].GetString());
    const std::uint64_t replica = doc["replica"].GetUint64();
    if (replica == 0) {
        throw ClientError(OTSYNC_ERR_MALFORMED, "the server gave replica 0");
    }
    std::vector<Op> unsent;
    if (again) {
        m->db.run("SELECT o.body FROM outbox x JOIN ops o ON o.replica = x.replica AND "
                  "o.counter = x.counter ORDER BY x.seq",
                  {}, [&](const LocalDb::Row& r) { unsent.push_back(m->load_body(r.blob(0))); });
        if (user != m->user && !unsent.empty()) {
            // Another person's ops are never re-made under this user's name.
            throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                              "this code is for another user, and this device holds " +
                                  std::to_string(unsent.size()) +
                                  " unsent ops of its technician: enroll it with a code for "
                                  "the same technician");
        }
    }
    m->db.transaction([&] {
        m->put_meta("replica", std::to_string(replica));
        m->put_meta("user", std::vector<std::uint8_t>(user.bytes.begin(), user.bytes.end()));
        m->put_meta("server_key", *server_key);
        const std::string sk(reinterpret_cast<const char*>(kp.secret.bytes().data()), 64);
        m->put_meta("secret_key", seal(m->key, sk));
        m->put_meta("server", server_url);
        m->put_meta("request_counter", std::string("0"));
        m->put_meta("cursor", std::string("0"));
        m->db.run("DELETE FROM meta WHERE key='session'"); // the old enrollment's
        if (again) {
            // What was pulled came from the server's old stream: pull it anew from 0.
            m->db.exec("DELETE FROM pages; DELETE FROM evicted; DELETE FROM evictions;");
            if (user != m->user) { // another technician's device now: their acked ops go
                m->db.exec("DELETE FROM ops; DELETE FROM rejections;");
            }
        }
    });
    m->load_enrollment();
    if (again) {
        m->fold();
    }
    m->make_clock();
    if (!unsent.empty()) {
        m->remake(unsent);
    }
}

std::string Client::list_ots_json(const std::string& status_filter, std::int64_t from_ms,
                                  std::int64_t to_ms) const {
    std::lock_guard lock(m->mu);
    if (!status_filter.empty()) {
        const auto states = find_field(EntityType::work_order, "status")->allowed;
        if (std::find(states.begin(), states.end(), status_filter) == states.end()) {
            throw ClientError(OTSYNC_ERR_INVALID_VALUE,
                              "'" + status_filter + "' is not an OT status");
        }
    }
    if (from_ms < 0 || to_ms < 0) {
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "times are Unix ms, not negative");
    }
    if (from_ms && to_ms && from_ms > to_ms) {
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "the window ends before it starts");
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    for (const Id& ot : m->state.entities(EntityType::work_order)) {
        if (!m->my_ot(ot)) {
            continue;
        }
        const std::string status = text_of(m->state.get(EntityType::work_order, ot, "status"));
        if (!status_filter.empty() && status != status_filter) {
            continue;
        }
        if (from_ms || to_ms) {
            const Value* ws = m->state.get(EntityType::work_order, ot, "window_start");
            const Value* we = m->state.get(EntityType::work_order, ot, "window_end");
            const std::int64_t start =
                ws && std::holds_alternative<Timestamp>(*ws) ? std::get<Timestamp>(*ws).ms : 0;
            const std::int64_t end =
                we && std::holds_alternative<Timestamp>(*we) ? std::get<Timestamp>(*we).ms : start;
            const bool has_window = ws != nullptr; // an OT without a window is always listed
            if (has_window && ((to_ms && start >= to_ms) || (from_ms && end < from_ms))) {
                continue;
            }
        }
        w.StartObject();
        w.Key("id");
        w.String(ot.hex());
        w.Key("kind");
        w.String(text_of(m->state.get(EntityType::work_order, ot, "kind")));
        w.Key("status");
        w.String(status);
        w.Key("address");
        w.String(text_of(m->state.get(EntityType::work_order, ot, "address")));
        for (const char* f : {"window_start", "window_end"}) {
            w.Key(f);
            const Value* v = m->state.get(EntityType::work_order, ot, f);
            if (v && std::holds_alternative<Timestamp>(*v)) {
                w.Int64(std::get<Timestamp>(*v).ms);
            } else {
                w.Null();
            }
        }
        const Value* c = m->state.get(EntityType::work_order, ot, "case");
        const Id case_id = c && std::holds_alternative<Id>(*c) ? std::get<Id>(*c) : Id{};
        w.Key("customer_name");
        w.String(text_of(m->state.get(EntityType::case_file, case_id, "customer_name")));
        w.Key("modality");
        const Value* mod = m->state.get(EntityType::case_file, case_id, "modality");
        if (mod && std::holds_alternative<std::int64_t>(*mod)) {
            w.Int64(std::get<std::int64_t>(*mod));
        } else {
            w.Null();
        }
        w.EndObject();
    }
    w.EndArray();
    return sb.GetString();
}

std::string Client::show_ot_json(const std::string& ot_hex) const {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    const Value* c = m->state.get(EntityType::work_order, ot, "case");
    std::string out = "{\"ot\":" + entity_json(m->state, EntityType::work_order, ot, true);
    out += ",\"case\":";
    out += c && std::holds_alternative<Id>(*c)
               ? entity_json(m->state, EntityType::case_file, std::get<Id>(*c), true)
               : std::string("null");
    out += ",\"rows\":[";
    bool first = true;
    for (const auto& [item, serial] : m->rows(ot, true)) { // voided rows stay on record
        out += (first ? "" : ",") + entity_json(m->state, EntityType::collected_item, item, true);
        first = false;
    }
    out += "],\"equipment\":" + m->equipment_json(ot) + "}";
    return out;
}

void Client::set_status(const std::string& ot_hex, const std::string& status,
                        const std::string& reason) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    if (status == "failed" && reason.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "a failed visit needs its reason");
    }
    const std::string from = text_of(m->state.get(EntityType::work_order, ot, "status"));
    if (!transition_allowed(work_order_lifecycle(), from, status, Role::technician)) {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION,
                          "the OT cannot go from '" + from + "' to '" + status + "'");
    }
    if (status == "completed") {
        // The completion rules, the same the server applies: every expected serial is
        // collected, verified or explained, and the customer signed the rows.
        const auto missing = m->unexplained(ot);
        if (!missing.empty()) {
            std::string list;
            for (const auto& serial : missing) {
                list += (list.empty() ? "" : ", ") + serial;
            }
            throw ClientError(OTSYNC_ERR_REQUIREMENTS_INCOMPLETE,
                              "expected equipment neither collected, verified nor explained: " +
                                  list);
        }
        const Value* sig = m->state.get(EntityType::work_order, ot, "signature_ref");
        if (!m->rows(ot).empty() && !(sig && std::holds_alternative<Id>(*sig))) {
            throw ClientError(OTSYNC_ERR_REQUIREMENTS_INCOMPLETE,
                              "the customer has not signed the recorded rows");
        }
    }
    std::vector<Op> ops;
    ops.push_back(
        m->maker->set_status(m->state, EntityType::work_order, ot, "status", text(status)));
    if (!reason.empty()) {
        ops.push_back(m->maker->set(EntityType::work_order, ot, "outcome", text(reason)));
    }
    if (status == "completed") {
        ops.push_back(
            m->maker->set(EntityType::work_order, ot, "completed_at", Timestamp{m->field_now()}));
    }
    m->record(std::move(ops));
}

otsync_verdict Client::collect(const std::string& ot_hex, const std::string& serial_in,
                               const std::string& description, const std::string& reason,
                               const std::string& defect, const std::string& observations) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    const std::string serial = normalize_serial(serial_in);
    if (serial.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "scan or type the serial");
    }
    if (reason != "migration" && reason != "damaged") {
        throw ClientError(OTSYNC_ERR_INVALID_VALUE, "the reason is 'migration' or 'damaged'");
    }
    if (reason == "damaged" && defect.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "a damaged item needs its defect");
    }
    if (const std::string st = m->ot_status(ot); st != "on_site") {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION,
                          "equipment is recorded on site: the OT is '" + st +
                              "', mark it 'on_site' first");
    }
    m->require_unsigned(ot);
    const Id row = Id::collected_item(ot, serial);
    for (const auto& [item, s] : m->rows(ot)) {
        if (item == row) {
            return OTSYNC_VERDICT_ALREADY_RECORDED;
        }
    }
    const auto exp = m->expected(ot);
    const otsync_verdict verdict = std::find(exp.begin(), exp.end(), serial) != exp.end()
                                       ? OTSYNC_VERDICT_MATCHED
                                       : OTSYNC_VERDICT_UNEXPECTED;
    const auto T = EntityType::collected_item;
    std::vector<Op> ops;
    ops.push_back(m->maker->set(T, row, "work_order", ot)); // the link first: it scopes the row
    ops.insert(ops.end(),
               {m->maker->set(T, row, "collected_by", m->user), // custody is hers
                m->maker->set(T, row, "collected_device", static_cast<std::int64_t>(m->replica))});
    ops.push_back(m->maker->set(T, row, "serial", text(serial)));
    ops.push_back(m->maker->set_status(m->state, T, row, "reason", text(reason)));
    if (!description.empty()) {
        ops.push_back(m->maker->set_status(m->state, T, row, "description", text(description)));
    }
    if (!defect.empty()) {
        ops.push_back(m->maker->set_status(m->state, T, row, "defect", text(defect)));
    }
    if (!observations.empty()) {
        ops.push_back(m->maker->set_status(m->state, T, row, "observations", text(observations)));
    }
    ops.push_back(m->maker->set(T, row, "collected_at", Timestamp{m->field_now()}));
    if (m->state.get(T, row, "voided")) {
        ops.push_back(m->maker->set(T, row, "voided", false)); // recorded again after a void
    }
    m->record(std::move(ops));
    return verdict;
}

void Client::void_item(const std::string& ot_hex, const std::string& serial) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    m->require_unsigned(ot);
    const Id row = Id::collected_item(ot, normalize_serial(serial));
    if (!m->state.entity(EntityType::collected_item, row)) {
        throw ClientError(OTSYNC_ERR_NOT_FOUND, "no row for serial " + serial + " on this OT");
    }
    m->record({m->maker->set(EntityType::collected_item, row, "voided", true)});
}

otsync_verdict Client::verify(const std::string& ot_hex, const std::string& serial_in) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    const std::string serial = normalize_serial(serial_in);
    if (serial.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "scan or type the serial");
    }
    if (const auto mod = m->modality(ot); mod && *mod != 2 && *mod != 3) {
        throw ClientError(OTSYNC_ERR_INVALID_VALUE,
                          "equipment the customer carried is verified in modalities 2 and 3; "
                          "this OT is modality " +
                              std::to_string(*mod));
    }
    for (const auto& v : m->state.elements(EntityType::work_order, ot, "verified_equipment")) {
        if (std::get<std::string>(v) == serial) {
            return OTSYNC_VERDICT_ALREADY_RECORDED;
        }
    }
    const auto exp = m->expected(ot);
    m->record({m->maker->add(EntityType::work_order, ot, "verified_equipment", text(serial))});
    return std::find(exp.begin(), exp.end(), serial) != exp.end() ? OTSYNC_VERDICT_MATCHED
                                                                  : OTSYNC_VERDICT_UNEXPECTED;
}

void Client::report_missing(const std::string& ot_hex, const std::string& serial_in,
                            const std::string& reason_in) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    const std::string serial = normalize_serial(serial_in);
    std::string reason = reason_in;
    while (!reason.empty() && (reason.back() == ' ' || reason.back() == '\n')) {
        reason.pop_back();
    }
    if (serial.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "scan or type the serial");
    }
    if (reason.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "say why the equipment is missing");
    }
    const auto exp = m->expected(ot);
    if (std::find(exp.begin(), exp.end(), serial) == exp.end()) {
        throw ClientError(OTSYNC_ERR_INVALID_VALUE, serial + " is not expected on this OT");
    }
    for (const auto& [item, s] : m->rows(ot)) {
        if (s == serial) {
            throw ClientError(OTSYNC_ERR_INVALID_VALUE,
                              serial + " was collected on this OT: void the row first");
        }
    }
    for (const auto& v : m->state.elements(EntityType::work_order, ot, "verified_equipment")) {
        if (std::get<std::string>(v) == serial) {
            throw ClientError(OTSYNC_ERR_INVALID_VALUE, serial + " was verified on this OT");
        }
    }
    // "SERIAL: reason", the form the server's reconciliation reads (latest per serial).
    Op op = m->maker->event(EntityType::work_order, ot, "missing_reasons",
                            text(serial + ": " + reason));
    if (auto err = check_op_schema(op)) {
        throw ClientError(static_cast<int>(err->code()), err->message());
    }
    m->record({std::move(op)});
}

void Client::sign(const std::string& ot_hex, const std::uint8_t* png, std::size_t len) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    if (!png || len == 0) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "the signature image is empty");
    }
    m->require_unsigned(ot);
    // The hash binds the signature to the exact rows recorded at this moment; the image
    // is an attachment (a whole PNG), uploaded after the ops and named by its own hash.
    constexpr auto kind = attachment::Kind::customer_signature;
    Hash256 image{};
    try {
        image = m->attachment_hash(kind, {png, len});
    } catch (const ClientError& e) {
        // Not a PNG has always been INVALID_VALUE for this call (client.h).
        if (e.code() == OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE) {
            throw ClientError(OTSYNC_ERR_INVALID_VALUE, e.what());
        }
        throw;
    }
    const Bytes image_ref{{image.begin(), image.end()}};
    const Hash256 h = rows_hash(m->state, ot);
    const Id sig_id = Id::random();
    std::vector<Op> ops;
    ops.push_back(m->maker->set(EntityType::work_order, ot, "signature_ref", sig_id));
    ops.push_back(
        m->maker->set(EntityType::work_order, ot, "signed_rows_hash", Bytes{{h.begin(), h.end()}}));
    ops.push_back(m->maker->set(EntityType::work_order, ot, "signature_blob", image_ref));
    for (const auto& [item, serial] : m->rows(ot)) {
        ops.push_back(m->maker->set(EntityType::collected_item, item, "signature_ref", sig_id));
        ops.push_back(m->maker->set(EntityType::collected_item, item, "signature_blob", image_ref));
    }
    m->record(std::move(ops), [&] { m->keep_attachment(kind, {png, len}); });
}

std::string Client::photo(const std::string& ot_hex, const std::string& serial,
                          const std::uint8_t* data, std::size_t len) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    if (!data || len == 0) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "the photo is empty");
    }
    // A photo shows an item of this OT: one it expects or one collected on it.
    bool known = false;
    for (const auto& e : m->expected(ot)) {
        known = known || e == serial;
    }
    for (const auto& [item, s] : m->rows(ot)) {
        known = known || s == serial;
    }
    if (!known) {
        throw ClientError(OTSYNC_ERR_NOT_FOUND,
                          "serial '" + serial + "' is neither expected nor collected on this OT");
    }
    const auto& limits = m->attachment_limits.of(attachment::Kind::equipment_photo);
    const auto photos = m->state.elements(EntityType::work_order, ot, "equipment_photos");
    if (photos.size() >= limits.max_per_owner) {
        throw ClientError(OTSYNC_ERR_TOO_LARGE, "this OT has " + std::to_string(photos.size()) +
                                                    " photos, the most it takes");
    }
    constexpr auto kind = attachment::Kind::equipment_photo;
    const Hash256 h = m->attachment_hash(kind, {data, len});
    const std::string element = attachment::reference_text(serial, h);
    std::vector<Op> ops;
    if (std::find(photos.begin(), photos.end(), Value{element}) == photos.end()) {
        ops.push_back(m->maker->add(EntityType::work_order, ot, "equipment_photos", element));
    }
    m->record(std::move(ops), [&] { m->keep_attachment(kind, {data, len}); });
    return to_hex(h);
}

void Client::reopen_signature(const std::string& ot_hex, const std::string& reason_in) {
    std::lock_guard lock(m->mu);
    const Id ot = m->ot_in_scope(ot_hex);
    std::string reason = reason_in;
    while (!reason.empty() && (reason.back() == ' ' || reason.back() == '\n')) {
        reason.pop_back();
    }
    if (reason.empty()) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "say why the signed rows must change");
    }
    const Value* sig = m->state.get(EntityType::work_order, ot, "signature_ref");
    if (!sig || !std::holds_alternative<Id>(*sig)) {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION, "this OT has no signature to reopen");
    }
    if (m->ot_status(ot) != "on_site") {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION,
                          "a signature is reopened on site, before the OT is completed");
    }
    // The earlier signature and hash stay in the OT's notes (and in the op log): history.
    std::string hash;
    if (const Value* h = m->state.get(EntityType::work_order, ot, "signed_rows_hash");
        h && std::holds_alternative<Bytes>(*h)) {
        static constexpr char k_hex[] = "0123456789abcdef";
        for (const std::uint8_t b : std::get<Bytes>(*h).data) {
            hash += k_hex[b >> 4];
            hash += k_hex[b & 15];
        }
    }
    std::vector<Op> ops;
    ops.push_back(m->maker->event(EntityType::work_order, ot, "notes",
                                  text("Firma reabierta: " + reason + " (firma anterior " +
                                       std::get<Id>(*sig).hex() + ", huella " + hash + ")")));
    ops.push_back(m->maker->set(EntityType::work_order, ot, "signature_ref", Value{}));
    ops.push_back(m->maker->set(EntityType::work_order, ot, "signed_rows_hash", Value{}));
    m->record(std::move(ops));
}

std::string Client::create_handover(const std::string& zone) {
    std::lock_guard lock(m->mu);
    m->require_enrolled();
    const Id h = Id::random();
    std::vector<Op> ops;
    ops.push_back(m->maker->set(EntityType::handover, h, "technician", m->user));
    ops.push_back(m->maker->set(EntityType::handover, h, "date", Timestamp{m->field_now()}));
    if (!zone.empty()) {
        ops.push_back(m->maker->set(EntityType::handover, h, "zone", text(zone)));
    }
    ops.push_back(m->maker->set_status(m->state, EntityType::handover, h, "status", text("draft")));
    // The rows this technician collected and still holds, whoever has their OT now (not the
    // rows another technician collected on an OT now assigned here); a row recorded before
    // rows named their collector goes with its OT, as it used to.
    const auto T = EntityType::collected_item;
    std::vector<std::pair<std::string, Id>> held;
    for (const Id& item : m->state.entities(T)) {
        const Value* by = m->state.get(T, item, "collected_by");
        const Value* ot = m->state.get(T, item, "work_order");
        const Value* voided = m->state.get(T, item, "voided");
        const bool mine =
            by && std::holds_alternative<Id>(*by)
                ? std::get<Id>(*by) == m->user
                : ot && std::holds_alternative<Id>(*ot) && m->my_ot(std::get<Id>(*ot));
        if (!mine || (voided && std::holds_alternative<bool>(*voided) && std::get<bool>(*voided)) ||
            m->state.get(T, item, "handover")) {
            continue; // someone else's, voided, or already handed over
        }
        held.emplace_back(text_of(m->state.get(T, item, "serial")), item);
    }
    std::sort(held.begin(), held.end());
    std::size_t n = 0;
    for (const auto& [serial, item] : held) {
        ops.push_back(m->maker->add(EntityType::handover, h, "rows", item));
        ops.push_back(m->maker->set(T, item, "handover", h));
        ++n;
    }
    if (n == 0) {
        throw ClientError(OTSYNC_ERR_NOT_FOUND, "no collected item is waiting for a handover");
    }
    m->record(std::move(ops));
    return h.hex();
}

void Client::deliver_handover(const std::string& handover_hex, const std::string& delivered_by,
                              const std::uint8_t* png, std::size_t len) {
    std::lock_guard lock(m->mu);
    m->require_enrolled();
    const Id h = parse_id(handover_hex);
    const auto T = EntityType::handover;
    const Value* tech = m->state.get(T, h, "technician");
    if (!tech || !std::holds_alternative<Id>(*tech) || std::get<Id>(*tech) != m->user) {
        throw ClientError(OTSYNC_ERR_NOT_FOUND, "no handover of mine has id " + h.hex());
    }
    if (const std::string st = text_of(m->state.get(T, h, "status")); st != "draft") {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION,
                          "handover " + h.hex() + " is '" + st + "': only a draft is delivered");
    }
    if (!png || len == 0) {
        throw ClientError(OTSYNC_ERR_MISSING_FIELD, "the technician's signature is empty");
    }
    constexpr auto kind = attachment::Kind::technician_signature;
    const Hash256 image = m->attachment_hash(kind, {png, len});
    const Hash256 rows = rows_hash(delivered_rows(m->state, h));
    std::vector<Op> ops;
    ops.push_back(m->maker->set(T, h, "technician_signature_ref", Id::random()));
    ops.push_back(
        m->maker->set(T, h, "technician_signature_blob", Bytes{{image.begin(), image.end()}}));
    ops.push_back(m->maker->set(T, h, "delivered_rows_hash", Bytes{{rows.begin(), rows.end()}}));
    if (!delivered_by.empty()) {
        ops.push_back(m->maker->set(T, h, "delivered_by", text(delivered_by)));
    }
    ops.push_back(m->maker->set_status(m->state, T, h, "status", text("delivered")));
    m->record(std::move(ops), [&] { m->keep_attachment(kind, {png, len}); });
}

namespace {

std::optional<Id> id_value(const crdt::Replica& r, EntityType t, const Id& e, std::string_view f) {
    const Value* v = r.get(t, e, f);
    return v && std::holds_alternative<Id>(*v) ? std::optional(std::get<Id>(*v)) : std::nullopt;
}

std::optional<std::vector<std::uint8_t>> bytes_value(const crdt::Replica& r, EntityType t,
                                                     const Id& e, std::string_view f) {
    const Value* v = r.get(t, e, f);
    return v && std::holds_alternative<Bytes>(*v) ? std::optional(std::get<Bytes>(*v).data)
                                                  : std::nullopt;
}

/// The receipt's signed message, or nullopt when the handover holds no complete receipt.
std::optional<std::pair<std::string, Signature>> receipt_of(const crdt::Replica& r, const Id& h) {
    const auto clerk = id_value(r, EntityType::handover, h, "received_by_user");
    const Value* at = r.get(EntityType::handover, h, "received_at");
    const auto hash = bytes_value(r, EntityType::handover, h, "received_rows_hash");
    const auto sig = bytes_value(r, EntityType::handover, h, "receipt_signature");
    if (!clerk || !at || !std::holds_alternative<Timestamp>(*at) || !hash || !sig ||
        sig->size() != 64) {
        return std::nullopt;
    }
    Signature s{};
    std::copy(sig->begin(), sig->end(), s.begin());
    return std::pair{
        handover_receipt_message(h, *clerk, std::get<Timestamp>(*at).ms, to_hex(*hash)), s};
}

} // namespace

std::string Client::handovers_json() const {
    std::lock_guard lock(m->mu);
    const auto H = EntityType::handover;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartArray();
    for (const Id& h : m->state.entities(H)) {
        if (id_value(m->state, H, h, "technician") != m->user) {
            continue;
        }
        w.StartObject();
        w.Key("id");
        w.String(h.hex());
        w.Key("status");
        w.String(text_of(m->state.get(H, h, "status")));
        w.Key("zone");
        w.String(text_of(m->state.get(H, h, "zone")));
        w.Key("date");
        const Value* date = m->state.get(H, h, "date");
        w.Int64(date && std::holds_alternative<Timestamp>(*date) ? std::get<Timestamp>(*date).ms
                                                                 : 0);
        w.Key("rows");
        w.StartArray();
        for (const auto& v : m->state.elements(H, h, "rows")) {
            if (const auto* item = std::get_if<Id>(&v)) {
                w.StartObject();
                w.Key("item");
                w.String(item->hex());
                w.Key("serial"); // empty once the row left this device (received)
                w.String(text_of(m->state.get(EntityType::collected_item, *item, "serial")));
                w.EndObject();
            }
        }
        w.EndArray();
        w.Key("receipt");
        if (const auto receipt = receipt_of(m->state, h)) {
            w.StartObject();
            w.Key("received_by");
            w.String(text_of(m->state.get(H, h, "received_by")));
            w.Key("received_by_user");
            w.String(id_value(m->state, H, h, "received_by_user")->hex());
            w.Key("received_at");
            w.Int64(std::get<Timestamp>(*m->state.get(H, h, "received_at")).ms);
            w.Key("received_rows_hash");
            w.String(to_hex(*bytes_value(m->state, H, h, "received_rows_hash")));
            w.Key("signed_message");
            w.String(receipt->first);
            w.Key("server_signature");
            w.String(to_base64(receipt->second));
            w.Key("verified");
            w.Bool(otsync::verify(receipt->second, receipt->first, m->server_key));
            w.EndObject();
        } else {
            w.Null();
        }
        w.EndObject();
    }
    w.EndArray();
    return sb.GetString();
}

void Client::verify_receipt(const std::string& handover_hex) const {
    std::lock_guard lock(m->mu);
    const Id h = parse_id(handover_hex);
    if (!m->state.entity(EntityType::handover, h) ||
        id_value(m->state, EntityType::handover, h, "technician") != m->user) {
        throw ClientError(OTSYNC_ERR_NOT_FOUND, "no handover " + handover_hex + " of mine");
    }
    const auto receipt = receipt_of(m->state, h);
    if (!receipt) {
        throw ClientError(OTSYNC_ERR_INVALID_TRANSITION,
                          "the warehouse has not received this handover yet (sync first)");
    }
    if (!otsync::verify(receipt->second, receipt->first, m->server_key)) {
        throw ClientError(OTSYNC_ERR_BAD_SIGNATURE,
                          "the receipt's signature does not verify with the server's key");
    }
}

std::string Client::status_json() const {
    std::lock_guard lock(m->mu);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("enrolled");
    w.Bool(m->replica != 0);
    w.Key("replica");
    w.Uint64(m->replica);
    w.Key("pending");
    w.Uint64(m->pending());
    w.Key("last_sync");
    w.StartObject();
    w.Key("at");
    w.Int64(static_cast<std::int64_t>(m->meta_u64("last_sync_at")));
    w.Key("result");
    w.String(m->meta_text("last_sync_result"));
    w.EndObject();
    // What happened to OTs that left this device (reassigned), oldest first (client.h).
    w.Key("notices");
    std::string notices = "[]";
    if (const auto sealed = m->meta("notices")) {
        if (auto plain = unseal(m->key, *sealed)) {
            notices = std::move(*plain);
        }
    }
    w.RawValue(notices.data(), notices.size(), rapidjson::kArrayType);
    // Attachments kept here: still to upload, on the server, refused by it (kept).
    w.Key("attachments");
    w.StartObject();
    std::int64_t counts[3] = {0, 0, 0};
    m->db.run("SELECT state, COUNT(*) FROM attachments GROUP BY state", {},
              [&](const LocalDb::Row& r) {
                  if (r.i64(0) >= 0 && r.i64(0) < 3) {
                      counts[r.i64(0)] = r.i64(1);
                  }
              });
    w.Key("pending");
    w.Int64(counts[0]);
    w.Key("pending_bytes");
    w.Uint64(m->attachment_bytes_pending());
    w.Key("uploaded");
    w.Int64(counts[1]);
    w.Key("refused");
    w.StartArray();
    m->db.run("SELECT hash, kind, refusal FROM attachments WHERE state=2 ORDER BY seq", {},
              [&](const LocalDb::Row& r) {
                  w.StartObject();
                  w.Key("hash");
                  w.String(to_hex(r.blob(0)));
                  w.Key("kind");
                  const auto kind =
                      attachment::kind_from_number(static_cast<std::uint64_t>(r.i64(1)));
                  w.String(std::string(kind ? attachment::kind_name(*kind) : "unknown"));
                  w.Key("refusal");
                  w.String(r.text(2));
                  w.EndObject();
              });
    w.EndArray();
    w.EndObject();
    w.Key("rejections");
    w.StartArray();
    m->db.run("SELECT replica, counter, code, message FROM rejections ORDER BY at", {},
              [&](const LocalDb::Row& r) {
                  w.StartObject();
                  w.Key("op");
                  w.String(std::to_string(r.i64(0)) + ":" + std::to_string(r.i64(1)));
                  w.Key("code");
                  w.String(std::string(to_string(static_cast<ErrorCode>(r.i64(2)))));
                  w.Key("message");
                  w.String(r.text(3));
                  w.EndObject();
              });
    w.EndArray();
    w.Key("conflicts");
    w.StartArray();
    for (const auto& c : m->state.conflicts()) {
        w.StartObject();
        w.Key("entity");
        w.String(c.entity.id.hex());
        w.Key("winner");
        w.String(c.winner);
        w.Key("states");
        w.StartArray();
        for (const auto& [k, s] : c.finals) {
            w.String(s);
        }
        w.EndArray();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

// ---- sync ---------------------------------------------------------------------------------

std::string Client::sync_result_json(const SyncStats& stats) const {
    std::lock_guard lock(m->mu);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    const std::pair<const char*, std::uint64_t> counts[] = {
        {"requests", stats.requests},
        {"sent", stats.pushed},
        {"flagged", stats.flagged},
        {"rejected", stats.rejected},
        {"received", stats.received},
        {"reissued", stats.reissued},
        {"retries", stats.retries},
        {"bytes_up", stats.bytes_up},
        {"bytes_down", stats.bytes_down},
        {"pending", m->pending()},
        {"attachments_sent", stats.attachments_sent},
        {"attachment_bytes", stats.attachment_bytes},
        {"attachments_refused", stats.attachments_refused},
        {"attachment_bytes_pending", m->attachment_bytes_pending()}};
    for (const auto& [k, v] : counts) {
        w.Key(k);
        w.Uint64(v);
    }
    w.Key("evicted_ots");
    w.StartArray();
    for (const auto& ot : stats.evicted_ots) {
        w.String(ot);
    }
    w.EndArray();
    w.Key("conflicts");
    w.Uint64(m->state.conflicts().size());
    w.EndObject();
    return sb.GetString();
}

void Client::set_retry_policy(const RetryPolicy& policy) {
    if (policy.initial_delay_ms == 0 || policy.max_delay_ms < policy.initial_delay_ms ||
        policy.jitter_percent > 100 || policy.batch_target_ms == 0) {
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                          "a retry policy needs 0 < initial delay <= maximum delay, a "
                          "jitter of at most 100% and a batch target above 0 ms");
    }
    std::lock_guard lock(m->mu);
    m->retry = policy;
}

RetryPolicy Client::retry_policy() const {
    std::lock_guard lock(m->mu);
    return m->retry;
}

void Client::cancel() {
    m->cancelled = true;
    {
        std::lock_guard f(m->flight_mu);
        if (m->in_flight) {
            m->in_flight->cancel();
        }
    }
    m->retry_cv.notify_all();
}

SyncStats Client::sync(Transport& transport, const ProgressFn& progress, std::uint32_t wait_ms) {
    std::lock_guard sync_lock(m->sync_mu); // one sync at a time
    std::unique_lock lock(m->mu);          // released for each network exchange
    m->cancelled = false;                  // a cancel ends the sync in progress only
    m->require_enrolled();
    SyncStats stats;
    std::mt19937 jitter(std::random_device{}());
    const RetryPolicy policy = m->retry;
    std::uint32_t failures = 0;
    std::chrono::steady_clock::time_point failing_since;
    bool answered = false; // the link answered a request of this sync
    // The callback runs without the lock; false from it stops the sync as a cancel does.
    const auto report = [&](SyncProgress p) {
        if (!progress) {
            return;
        }
        p.sent = stats.pushed;
        p.pending = m->pending();
        p.received = stats.received;
        p.bytes_up = stats.bytes_up;
        p.bytes_down = stats.bytes_down;
        p.attachment_bytes_sent = stats.attachment_bytes;
        p.attachment_bytes_pending = m->attachment_bytes_pending();
        p.attempt = failures;
        lock.unlock();
        const bool go_on = progress(p);
        lock.lock();
        if (!go_on) {
            m->cancelled = true;
            m->throw_cancelled();
        }
    };
    int new_sessions = 0;    // session_expired answers in a row
    bool wait_next = false;  // everything is sent and pulled: the next pull may wait
    bool waited = false;     // it did (once per call)
    bool no_session = false; // no session could be opened in this call
    // What to do with an answer (the session layer's table, shared with the server):
    // `again` after waiting out a failure (the policy's back-off, jitter; the error once it
    // gives up) or when a new session is needed; `go` for an answer to read, 200 or not.
    enum class Next { again, go };
    const auto screen = [&](const HttpReply& reply) {
        const session::Reaction reaction = session::reaction_of(
            reply.status, reply.status == 401 ? m->refusal_code(reply) : std::nullopt);
        if (reply.status == 0 && reply.error == OTSYNC_ERR_TLS) {
            // A certificate that is refused does not get better by waiting.
            m->put_meta("last_sync_result", "certificado del servidor rechazado (" +
                                                reply.error_message + "); su trabajo se conserva");
            throw ClientError(OTSYNC_ERR_TLS, "the server's certificate is refused (" +
                                                  reply.error_message + "); your work is kept");
        }
        if (reaction == session::Reaction::retry) {
            // Nothing is lost: the outbox stays; retry with back-off and jitter (the
            // policy's), then give up until the next sync.
            const auto now = std::chrono::steady_clock::now();
            if (failures++ == 0) {
                failing_since = now;
            }
            const int code = reply.status == 0 ? reply.error : OTSYNC_ERR_NETWORK;
            const std::string what =
                reply.status == 0
                    ? (reply.error_message.empty() ? std::string("no answer") : reply.error_message)
                    : "HTTP " + std::to_string(reply.status);
            double delay = policy.initial_delay_ms;
            for (std::uint32_t i = 1; i < failures && delay < policy.max_delay_ms; ++i) {
                delay *= 2;
            }
            auto wait = static_cast<std::uint32_t>(
                std::min<double>(delay, policy.max_delay_ms) *
                (1.0 - static_cast<double>(jitter() % (policy.jitter_percent + 1)) / 100.0));
            // A connection cut under a request on a link that was answering (a handover, a
            // proxy's reset) is retried at once, on a new connection; a second failure in a
            // row, or a link that has not answered yet, backs off.
            if (failures == 1 && answered && reply.status == 0 &&
                reply.error == OTSYNC_ERR_NETWORK) {
                wait = 0;
            }
            wait = std::max<std::uint32_t>(wait, 1);
            const auto elapsed = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(now - failing_since).count());
            if (policy.max_elapsed_ms && elapsed + wait > policy.max_elapsed_ms) {
                const bool timeout = code == OTSYNC_ERR_TIMEOUT;
                m->put_meta("last_sync_result",
                            std::string(timeout ? "el servidor no respondió a tiempo ("
                                                : "sin conexión con el servidor (") +
                                what + "); su trabajo se conserva y se enviará después");
                throw ClientError(timeout ? OTSYNC_ERR_TIMEOUT : OTSYNC_ERR_NETWORK,
                                  (timeout ? std::string("the server did not answer in time (")
                                           : std::string("the server could not be reached (")) +
                                      what + "); your work is kept and will be sent later");
            }
            stats.retries++;
            SyncProgress p;
            p.retry_in_ms = wait;
            p.last_error = code;
            p.last_error_message = what;
            report(p);
            m->wait_retry(lock, wait);
            return Next::again;
        }
        failures = 0;
        answered = true;
        if (reaction == session::Reaction::new_session && new_sessions++ < 2) {
            m->drop_session(); // the server ended it: a new one, and the same request again
            no_session = false;
            return Next::again;
        }
        new_sessions = 0;
        if (reaction == session::Reaction::wipe_if_proven ||
            reaction == session::Reaction::re_enroll || reaction == session::Reaction::wait) {
            m->refused(reply); // wipes only on a proven revocation; throws
        }
        if (reaction == session::Reaction::update_app) {
            m->put_meta("last_sync_result",
                        std::string("actualice la aplicación: el servidor necesita una versión "
                                    "más nueva; su trabajo se conserva"));
            throw ClientError(OTSYNC_ERR_UNSUPPORTED_PROTOCOL,
                              "update required: the server needs a newer app; your work is kept");
        }
        return Next::go;
    };
    // Attachments go after the ops (on a slow link the rows arrive first), signatures
    // before photos, each in chunks from where the server's bytes end: a cut costs the
    // chunk in flight, sent once more, never the attachment from zero.
    double link_bytes_per_s = 0; // as the last answered chunk measured it
    std::size_t chunk_max = m->attachment_limits.chunk_bytes;
    const auto upload_one = [&](const std::vector<std::uint8_t>& hv, std::uint64_t size,
                                std::uint64_t acked) {
        Hash256 hash{};
        std::copy(hv.begin(), hv.end(), hash.begin());
        std::pair<std::int64_t, std::string> piece{-1, {}};
        bool asked = acked > 0; // first contact asks what the server holds (another device's)
        bool resent_whole = false;
        for (;;) {
            std::size_t n = 0;
            if (asked) {
                const double fits = link_bytes_per_s * policy.batch_target_ms / 1000.0;
                const std::size_t want =
                    link_bytes_per_s > 0
                        ? static_cast<std::size_t>(std::clamp<double>(fits, 4096, 1 << 30))
                        : 16 * 1024;
                n = static_cast<std::size_t>(
                    std::min<std::uint64_t>(std::min(want, chunk_max), size - acked));
            }
            const std::string body = n ? m->attachment_bytes(hv, acked, n, piece) : std::string();
            const std::string path = attachment::upload_path(hash, size, acked);
            const auto* s = no_session ? nullptr : m->live_session(transport, lock, stats);
            no_session = s == nullptr;
            const std::uint64_t counter = m->request_counter + 1;
            m->db.transaction([&] { m->put_meta("request_counter", std::to_string(counter)); },
                              LocalDb::Durability::relaxed);
            m->request_counter = counter;
            constexpr const char* k_type = "application/octet-stream";
            const auto envelope =
                s ? session::mac_request(m->replica, counter, path, body, s->id, s->key, k_type)
                  : session::sign_request(m->replica, counter, path, body, m->secret, k_type);
            const auto sent_at = std::chrono::steady_clock::now();
            const HttpReply reply =
                m->exchange(transport, lock, path, session::headers_of(envelope), body);
            count_request(stats, reply, body);
            if (screen(reply) == Next::again) {
                continue;
            }
            rapidjson::Document doc;
            if (reply.status == 200) {
                doc.Parse(reply.body.c_str());
            }
            if (reply.status == 200 && doc.IsObject() && doc.HasMember("received") &&
                doc["received"].IsUint64() && doc["received"].GetUint64() <= size) {
                const std::uint64_t received = doc["received"].GetUint64();
                const double secs =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at)
                        .count();
                if (n > 0 && reply.resent == 0 && secs > 0) {
                    link_bytes_per_s = static_cast<double>(n) / secs;
                }
                stats.attachment_bytes += received > acked ? received - acked : 0;
                acked = received;
                asked = true;
                const bool whole = received == size;
                m->db.run("UPDATE attachments SET acked=?, state=? WHERE hash=?",
                          {static_cast<std::int64_t>(acked), std::int64_t{whole ? 1 : 0}, hv});
                report(SyncProgress{});
                if (whole) {
                    stats.attachments_sent++;
                    return;
                }
                continue;
            }
            const auto code = m->refusal_code(reply);
            if (code == ErrorCode::too_large && n > 4096) {
                chunk_max = std::max<std::size_t>(4096, n / 2); // a server taking smaller chunks
                continue;
            }
            if (code == ErrorCode::invalid_value && !resent_whole) {
                // The bytes did not hash to the name on the server: once more, from 0.
                resent_whole = true;
                acked = 0;
                continue;
            }
            // Refused: kept on the device with the server's words, shown in the status.
            m->db.run(
                "UPDATE attachments SET state=2, refusal=? WHERE hash=?",
                {"HTTP " + std::to_string(reply.status) + ": " + reply.body.substr(0, 300), hv});
            stats.attachments_refused++;
            return;
        }
    };
    const auto upload_attachments = [&] {
        for (;;) {
            std::optional<std::tuple<std::vector<std::uint8_t>, std::uint64_t, std::uint64_t>> next;
            m->db.run("SELECT hash, size, acked FROM attachments WHERE state=0 "
                      "ORDER BY kind >= ?, seq LIMIT 1",
                      {static_cast<std::int64_t>(attachment::Kind::equipment_photo)},
                      [&](const LocalDb::Row& r) {
                          next.emplace(r.blob(0), static_cast<std::uint64_t>(r.i64(1)),
                                       static_cast<std::uint64_t>(r.i64(2)));
                      });
            if (!next) {
                return;
            }
            upload_one(std::get<0>(*next), std::get<1>(*next), std::get<2>(*next));
        }
    };
    bool uploaded = false; // the attachments went (once per call, after the ops)
    for (int page = 0; page < k_max_pages; ++page) {
        // A handshake that got no session is not tried again in this sync: the requests
        // are signed (a server without sessions, or a link that drops it, costs no more).
        decltype(m->live_session(transport, lock, stats)) session_for_request = nullptr;
        if (!no_session) {
            session_for_request = m->live_session(transport, lock, stats);
            no_session = session_for_request == nullptr;
        }
        // The outbox, oldest first, one batch.
        std::vector<Op> batch;
        m->db.run("SELECT o.body FROM outbox x JOIN ops o ON o.replica = x.replica AND o.counter = "
                  "x.counter "
                  "ORDER BY x.seq LIMIT ?",
                  {static_cast<std::int64_t>(m->batch_size.ops())},
                  [&](const LocalDb::Row& r) { batch.push_back(m->load_body(r.blob(0))); });
        SyncRequest req;
        req.replica = m->replica;
        req.request_counter = m->request_counter + 1;
        req.cursor = m->cursor;
        req.hlc = m->hlc->now();
        req.ops = batch;
        if (wait_next && !waited && batch.empty()) {
            req.wait_ms = wait_ms;
            waited = true;
        }
        session::sign_ops(req, m->secret); // its own proof of what it recorded, kept by the server
        // The counter is stored before it is used, so a crash never reuses one; flushed
        // when the request carries ops. A pull's counter is only written: should a power
        // loss drop it, the server answers the reused counter 409 and the next one goes on.
        m->db.transaction(
            [&] { m->put_meta("request_counter", std::to_string(req.request_counter)); },
            batch.empty() ? LocalDb::Durability::relaxed : LocalDb::Durability::durable);
        m->request_counter = req.request_counter;
        const std::string body = encode_binary(req);
        // In a session the request carries a MAC; without one (none could be opened) the
        // device's signature, as protocol 1 does.
        const auto envelope =
            session_for_request
                ? session::mac_request(m->replica, req.request_counter, "/v1/sync", body,
                                       session_for_request->id, session_for_request->key)
                : session::sign_request(m->replica, req.request_counter, "/v1/sync", body,
                                        m->secret);
        // The signature covers the message; what travels is deflated when that is smaller,
        // and the server may deflate its answer.
        auto headers = session::headers_of(envelope);
        headers["accept-encoding"] = "deflate";
        std::string wire;
        if (body.size() >= k_deflate_min_bytes) {
            wire = deflate_encode(body);
            if (wire.size() < body.size()) {
                headers["content-encoding"] = "deflate";
            } else {
                wire.clear();
            }
        }
        const std::string& on_wire = wire.empty() ? body : wire;
        const auto sent_at = std::chrono::steady_clock::now();
        HttpReply reply = m->exchange(transport, lock, "/v1/sync", headers, on_wire);
        if (!batch.empty() && reply.status != 0 && reply.resent == 0) {
            m->batch_size.arrived(
                batch.size(), on_wire.size() + reply.body.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - sent_at).count(),
                policy.batch_target_ms);
        }
        count_request(stats, reply, on_wire);
        if (reply.status != 0 && (reply.content_encoding == "deflate" ||
                                  (reply.content_encoding.empty() && looks_deflated(reply.body)))) {
            try {
                reply.body = deflate_decode(reply.body, CodecLimits{}.max_message_bytes);
            } catch (const Error& e) {
                throw ClientError(code_of(e.code()),
                                  "the server's answer is not understood: " + e.message());
            }
        }
        // 409: this counter was already used (the network delivered a request twice and
        // the answer that came back is the duplicate's): the original was processed or
        // not; either way resend under a new counter, the ops are idempotent.
        if (screen(reply) == Next::again) {
            continue;
        }
        if (reply.status != 200) {
            m->put_meta("last_sync_result",
                        "rechazada por el servidor (HTTP " + std::to_string(reply.status) + ")");
            throw ClientError(OTSYNC_ERR_INTERNAL, "the server refused the sync (HTTP " +
                                                       std::to_string(reply.status) +
                                                       "): " + reply.body.substr(0, 300));
        }
        SyncResponse resp;
        try {
            resp = decode_sync_response(reply.body);
        } catch (const Error& e) {
            throw ClientError(code_of(e.code()),
                              "the server's answer is not understood: " + e.message());
        }
        // Apply in one transaction: acks, rejections, pulled ops, cursor, evictions.
        std::vector<OpId> skewed; // refused for a clock far ahead: made again below
        m->db.transaction(
            [&] {
                for (const auto& r : resp.results) {
                    m->db.run("DELETE FROM outbox WHERE replica=? AND counter=?",
                              {static_cast<std::int64_t>(r.id.replica),
                               static_cast<std::int64_t>(r.id.counter)});
                    if (r.status == OpStatus::rejected) {
                        if (r.code == ErrorCode::clock_skew) {
                            skewed.push_back(r.id);
                        }
                        m->db.run(
                            "INSERT OR REPLACE INTO rejections(replica, counter, code, message, "
                            "at) VALUES(?,?,?,?,?)",
                            {static_cast<std::int64_t>(r.id.replica),
                             static_cast<std::int64_t>(r.id.counter),
                             static_cast<std::int64_t>(r.code), r.message, m->field_now()});
                        stats.rejected++;
                    } else {
                        stats.pushed++;
                        stats.flagged += r.status == OpStatus::flagged ? 1 : 0;
                    }
                }
                std::vector<Op> pulled;
                pulled.reserve(resp.ops.size());
                for (const auto& s : resp.ops) {
                    pulled.push_back(s.op);
                }
                m->store_page(pulled);
                if (!resp.receipt.empty()) {
                    std::string ids;
                    for (const auto& r : resp.results) {
                        if (r.status != OpStatus::rejected) {
                            ids += std::to_string(r.id.replica) + ":" +
                                   std::to_string(r.id.counter) + "\n";
                        }
                    }
                    m->db.run("INSERT OR REPLACE INTO receipts(request_counter, signature, op_ids) "
                              "VALUES(?,?,?)",
                              {static_cast<std::int64_t>(req.request_counter), resp.receipt, ids});
                }
                m->cursor = resp.cursor;
                m->put_meta("cursor", std::to_string(resp.cursor));
                m->hlc->receive(resp.server_hlc);
                m->put_meta("hlc", std::to_string(m->hlc->state()));
                for (const auto& e : resp.evicted) {
                    // With the cursor that passed it: an eviction is never lost to a crash.
                    m->db.run("INSERT OR IGNORE INTO evictions(entity_type, entity) VALUES(?,?)",
                              {static_cast<std::int64_t>(e.type),
                               std::vector<std::uint8_t>(e.id.bytes.begin(), e.id.bytes.end())});
                }
                // Nothing here is the device's own field fact: what a power loss drops (acks,
                // receipts, pulled pages, the cursor, together) is sent again by the server.
            },
            LocalDb::Durability::relaxed);
        for (const auto& s : resp.ops) {
            m->state.apply(s.op);
        }
        stats.received += resp.ops.size();
        m->align_clock(resp.server_hlc);
        if (!skewed.empty()) {
            const std::size_t again = m->reissue_skewed(skewed, resp.server_hlc);
            stats.rejected -= std::min<std::uint64_t>(stats.rejected, again);
            stats.reissued += again;
        }
        // An eviction applies once this device's pending ops on that entity are in.
        bool evicted = false;
        m->db.transaction([&] {
            std::vector<std::pair<std::int64_t, std::vector<std::uint8_t>>> ready;
            m->db.run("SELECT e.entity_type, e.entity FROM evictions e WHERE NOT EXISTS (SELECT 1 "
                      "FROM outbox x "
                      "JOIN ops o ON o.replica = x.replica AND o.counter = x.counter "
                      "WHERE o.entity_type = e.entity_type AND o.entity = e.entity)",
                      {}, [&](const LocalDb::Row& r) { ready.emplace_back(r.i64(0), r.blob(1)); });
            // An OT that leaves the device does not vanish silently: a notice says so, and
            // what became of the rows collected here (the state still holds them all).
            const auto CI = EntityType::collected_item;
            const auto leaving = [&](EntityType t, const Id& e) {
                return std::find(ready.begin(), ready.end(),
                                 std::pair<std::int64_t, std::vector<std::uint8_t>>(
                                     static_cast<std::int64_t>(t),
                                     {e.bytes.begin(), e.bytes.end()})) != ready.end();
            };
            std::vector<std::pair<Id, std::string>> notices;
            std::vector<Id> leaving_ots; // in id order, as the notices always were
            for (const auto& [t, bytes] : ready) {
                if (t == static_cast<std::int64_t>(EntityType::work_order) && bytes.size() == 16) {
                    Id ot;
                    std::copy(bytes.begin(), bytes.end(), ot.bytes.begin());
                    if (m->state.entity(EntityType::work_order, ot)) {
                        leaving_ots.push_back(ot);
                    }
                }
            }
            std::sort(leaving_ots.begin(), leaving_ots.end());
            for (const Id& ot : leaving_ots) {
                std::size_t rows = 0, sent = 0, kept = 0;
                for (const auto& [item, serial] : m->rows(ot)) {
                    const Value* by = m->state.get(CI, item, "collected_by");
                    const bool by_me =
                        by && std::holds_alternative<Id>(*by) && std::get<Id>(*by) == m->user;
                    if (by && !by_me) {
                        continue; // another technician's row
                    }
                    ++rows;
                    bool waiting = false;
                    m->db.run("SELECT 1 FROM outbox x JOIN ops o ON o.replica = x.replica AND "
                              "o.counter = x.counter WHERE o.entity_type=? AND o.entity=? LIMIT 1",
                              {static_cast<std::int64_t>(CI),
                               std::vector<std::uint8_t>(item.bytes.begin(), item.bytes.end())},
                              [&](const LocalDb::Row&) { waiting = true; });
                    sent += waiting ? 0 : 1;
                    kept += by_me && !leaving(CI, item) ? 1 : 0;
                }
                const std::string address =
                    text_of(m->state.get(EntityType::work_order, ot, "address"));
                std::string line = "OT " + ot.hex().substr(0, 8) +
                                   (address.empty() ? "" : " (" + address + ")") + " reasignada; ";
                if (rows == 0) {
                    line += "no tenía filas registradas en este equipo";
                } else if (sent == rows) {
                    line += rows == 1
                                ? "su fila llegó al servidor"
                                : "sus " + std::to_string(rows) + " filas llegaron al servidor";
                } else {
                    line += std::to_string(sent) + " de sus " + std::to_string(rows) +
                            " filas llegaron al servidor; las demás se envían en la próxima "
                            "sincronización";
                }
                if (kept > 0) {
                    line += kept == 1 ? "; 1 sigue a su cargo hasta entregarla en almacén"
                                      : "; " + std::to_string(kept) +
                                            " siguen a su cargo hasta entregarlas en almacén";
                }
                notices.emplace_back(ot, std::move(line));
            }
            if (!notices.empty()) {
                // Sealed like the ops (an address is the customer's); the latest 20 are kept.
                rapidjson::Document doc;
                if (const auto old = m->meta("notices")) {
                    if (const auto plain = unseal(m->key, *old)) {
                        doc.Parse(plain->c_str());
                    }
                }
                if (!doc.IsArray()) {
                    doc.SetArray();
                }
                auto& a = doc.GetAllocator();
                for (const auto& [ot, line] : notices) {
                    rapidjson::Value n(rapidjson::kObjectType);
                    n.AddMember("ot", rapidjson::Value(ot.hex(), a), a);
                    n.AddMember("text", rapidjson::Value(line, a), a);
                    n.AddMember("at", rapidjson::Value(static_cast<std::int64_t>(m->field_now())),
                                a);
                    doc.PushBack(n, a);
                }
                while (doc.Size() > 20) {
                    doc.Erase(doc.Begin());
                }
                rapidjson::StringBuffer out;
                rapidjson::Writer<rapidjson::StringBuffer> w(out);
                doc.Accept(w);
                m->put_meta("notices",
                            seal(m->key, std::string_view(out.GetString(), out.GetSize())));
            }
            for (const auto& [ot, line] : notices) {
                stats.evicted_ots.push_back(ot.hex());
            }
            for (const auto& [t, id] : ready) {
                m->db.run("DELETE FROM ops WHERE entity_type=? AND entity=?", {t, id});
                m->db.run("DELETE FROM evictions WHERE entity_type=? AND entity=?", {t, id});
                m->db.run("INSERT OR IGNORE INTO evicted(entity_type, entity) VALUES(?,?)",
                          {t, id});
                evicted = true;
            }
        });
        if (evicted) {
            m->fold();
        }
        SyncProgress p;
        p.remaining = resp.remaining;
        report(p);
        if (!resp.more && (m->pending() == 0 || batch.empty())) {
            if (!uploaded) {
                uploaded = true;
                upload_attachments();
            }
            if (wait_ms > 0 && !waited && m->pending() == 0) {
                wait_next = true; // one more pull, which waits for the server
                continue;
            }
            break;
        }
    }
    m->put_meta("last_sync_at", std::to_string(m->field_now()));
    m->put_meta("last_sync_result", "completa: " + std::to_string(stats.pushed) + " enviadas, " +
                                        std::to_string(stats.rejected) + " rechazadas, " +
                                        std::to_string(stats.received) + " recibidas");
    return stats;
}

} // namespace otsync::client
