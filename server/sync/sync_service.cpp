// SyncService: see sync_service.hpp. The order of checks in sync() is deliberate:
// authenticate (device, signature) before decoding anything large, then the protocol
// version (426 keeps the outbox), then the replay counter, then each op on its own.
#include "sync/sync_service.hpp"

#include "otsync/error.hpp"
#include "otsync/session.hpp"
#include "otsync/view.hpp"

#include <sodium.h>

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_set>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace otsync::server {

namespace {

/// Exactly N bytes of base64 into `out`; false otherwise.
template <std::size_t N>
bool decode_fixed(const std::string& text, std::array<std::uint8_t, N>& out) {
    const auto bytes = from_base64(text, N);
    if (!bytes || bytes->size() != N) {
        return false;
    }
    std::copy(bytes->begin(), bytes->end(), out.begin());
    return true;
}

EndpointAnswer refusal(Error e, std::string extra_members = {}) {
    EndpointAnswer a;
    a.refusal = std::move(e);
    a.refusal_members = std::move(extra_members);
    return a;
}

/// A pull's counter, cursor and time among those not written yet: the highest of each.
void keep_mark(std::unordered_map<std::uint64_t, SyncWrite>& marks, std::uint64_t replica,
               std::uint64_t counter, std::uint64_t cursor, std::int64_t now) {
    auto& w = marks[replica];
    w.replica = replica;
    w.request_counter = std::max(w.request_counter, counter);
    w.cursor = std::max(w.cursor, cursor);
    w.now = std::max(w.now, now);
}

/// A string member of a JSON object, or nullopt when absent or not a string.
std::optional<std::string> string_member(const rapidjson::Document& doc, const char* name) {
    const auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsString()) {
        return std::nullopt;
    }
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string header(const std::map<std::string, std::string>& h, const std::string& name) {
    const auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
}

/// Enrollment codes: 12 characters from an alphabet without look-alikes, shown in
/// groups of four; the hash ignores case, spaces and dashes.
constexpr char k_code_alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

Hash256 code_hash(std::string_view code) {
    std::string norm;
    for (char c : code) {
        if (c == '-' || c == ' ') {
            continue;
        }
        norm += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return blake2b_256("otsync-enroll-v1\n" + norm);
}

/// Fields whose writes can move entities into or out of a technician's scope: the links
/// (who has an OT, which case or OT a row belongs to, who collected a row, whose handover),
/// and what ends a collector's custody of a row (§3.6).
bool is_link_field(EntityType t, std::string_view name) {
    return (t == EntityType::work_order && (name == "technician" || name == "case")) ||
           (t == EntityType::collected_item &&
            (name == "work_order" || name == "collected_by" || name == "receipt" ||
             name == "resolution" || name == "voided")) ||
           (t == EntityType::handover && name == "technician");
}

std::optional<Id> value_id(const Value& v) {
    return std::holds_alternative<Id>(v) ? std::optional<Id>(std::get<Id>(v)) : std::nullopt;
}

std::string opid_text(const OpId& id) {
    return std::to_string(id.replica) + ":" + std::to_string(id.counter);
}

/// A flagged write that would move an OT's lifecycle or overwrite one of its registers
/// (status, outcome, signature...) now that the OT is another technician's: it is set
/// aside, recorded on the OT (work_order.flagged_writes) and not merged. Set elements,
/// notes and collected items are field facts: they merge (protocol.md §3.6).
bool is_set_aside(const Op& op, const FieldDef& f, bool flagged) {
    return flagged && op.entity_type == EntityType::work_order && f.kind == FieldKind::register_;
}

constexpr const char* k_flagged_message =
    "accepted as a field fact; the OT is no longer assigned to this technician";
constexpr const char* k_set_aside_message =
    "recorded for the office; the OT is no longer assigned to this technician, so this change "
    "is not applied to it";

/// The text of a flagged_writes record: who sent the op, from which device, when the
/// server received it, and the op itself in its JSON form (§3.2).
std::string set_aside_record(const Id& user, std::uint64_t replica, std::int64_t received_at,
                             const Op& op) {
    return "{\"user\":\"" + user.hex() + "\",\"replica\":" + std::to_string(replica) +
           ",\"received_at\":" + std::to_string(received_at) + ",\"op\":" + to_json(op) + "}";
}

/// The device op a flagged_writes record holds; nullopt when the text is not a record.
std::optional<Op> set_aside_op(const Value& v) {
    if (!std::holds_alternative<std::string>(v)) {
        return std::nullopt;
    }
    const auto& record = std::get<std::string>(v);
    rapidjson::Document doc;
    doc.Parse(record.data(), record.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("op")) {
        return std::nullopt;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    doc["op"].Accept(w);
    try {
        return op_from_json(std::string_view(sb.GetString(), sb.GetSize()));
    } catch (const Error&) {
        return std::nullopt;
    }
}

} // namespace

SyncService::SyncService(Store& store, ClockSource& clock, SyncConfig config)
    : m_store(store), m_shared(store.shared()), m_directory(store), m_clock(clock),
      m_config(std::move(config)) {
    ensure_sodium();
    if (auto k = m_store.server_key()) {
        m_key.public_key = k->first;
        std::copy(k->second.begin(), k->second.end(), m_key.secret.bytes().begin());
        sodium_memzero(k->second.data(), k->second.size());
    } else {
        m_key = SigningKeyPair::generate();
        m_store.set_server_key(m_key.public_key, m_key.secret);
    }
    reload();
    if (!m_shared) {
        project_missing();
    }
    give_back_memory(); // what the fold of the log read and decoded
    if (auto reader = m_store.open_reader()) {
        m_has_readers = true;
        m_idle_readers.push_back(std::move(reader));
        m_open_readers = 1;
    }
    m_committer = std::thread([this] { committer(); });
    if (m_shared) {
        if (std::shared_ptr<CommitListener> l = m_store.listen_commits()) {
            m_listening = true; // before the waiter reads it
            m_listener = std::thread([this, l] { listen(*l); });
        }
    }
    m_waiter = std::thread([this] { waiter(); });
}

SyncService::ReaderLease SyncService::lease_reader() {
    if (!m_has_readers) {
        return ReaderLease(*this, nullptr);
    }
    std::unique_lock q(m_reader_mutex);
    for (;;) {
        if (!m_idle_readers.empty()) {
            auto r = std::move(m_idle_readers.back());
            m_idle_readers.pop_back();
            return ReaderLease(*this, std::move(r));
        }
        if (m_open_readers < std::max<std::size_t>(1, m_config.read_connections)) {
            ++m_open_readers;
            q.unlock();
            try {
                return ReaderLease(*this, m_store.open_reader());
            } catch (...) {
                q.lock();
                --m_open_readers;
                m_reader_cv.notify_one();
                throw;
            }
        }
        m_reader_cv.wait(q);
    }
}

SyncService::ReaderLease::~ReaderLease() {
    if (m_r) {
        std::lock_guard q(m_s.m_reader_mutex);
        m_s.m_idle_readers.push_back(std::move(m_r));
    }
    m_s.m_reader_cv.notify_one();
}

void SyncService::reload() {
    m_state = crdt::Replica{};
    m_past_techs.clear();
    m_set_aside.clear();
    m_set_aside_arrivals.clear();
    m_applied_seq = 0;
    m_hlc = std::make_unique<Hlc>(m_clock, 0, m_config.max_clock_skew_ms);
    // Archived groups stay out: their ops are read only for the counters and clock.
    const auto archived = m_store.archived_entities();
    const std::unordered_set<Id> skip(archived.begin(), archived.end());
    m_archive_lookups = m_archive_lookups || !skip.empty();
    for (;;) {
        const auto page = m_store.ops_after(m_applied_seq, 10'000);
        if (page.empty()) {
            break;
        }
        for (const auto& so : page) {
            if (skip.contains(so.op.entity)) {
                m_state.note_counter(so.op.id);
                if (so.op.hlc > m_hlc->state()) {
                    m_hlc->reset(so.op.hlc);
                }
                m_applied_seq = so.seq;
                continue;
            }
            fold(so);
        }
    }
}

void SyncService::fold(const StoredOp& so, bool catching_up) {
    if (catching_up && m_archive_lookups) {
        bring_back_for(so.op, false); // another instance's op on a group we archived
    }
    m_state.apply(so.op); // a duplicate (our own op, folded again) changes nothing
    index_op(so.op);
    index_set_aside(so.op);
    if (so.op.hlc > m_hlc->state()) {
        m_hlc->reset(so.op.hlc); // forward only: our next op is after every op we know
    }
    m_applied_seq = std::max(m_applied_seq, so.seq);
}

void SyncService::ensure_fresh() {
    if (m_stale) {
        reload(); // throws while the database is still unreachable
        m_stale = false;
    }
}

void SyncService::catch_up() {
    ensure_fresh();
    // seq order is commit order (the store's write lock), so `seq > m_applied_seq` misses
    // no commit: nothing below the highest seq we read can still commit later.
    for (;;) {
        const auto page = m_store.ops_after(m_applied_seq, 10'000);
        if (page.empty()) {
            return;
        }
        for (const auto& so : page) {
            fold(so, true);
        }
    }
}

void SyncService::read_state(const std::function<void(const crdt::Replica&)>& f) {
    std::lock_guard lock(m_mutex);
    ensure_fresh();
    if (m_shared) {
        catch_up(); // another instance's writes, committed before this read, are seen
    }
    f(m_state);
}

// ---- archiving ----------------------------------------------------------------------------------

void SyncService::bring_back_for(const Op& op, bool for_write) {
    if (!m_archive_lookups) {
        return;
    }
    const auto look = [&](const Id& id) {
        if (const auto group = m_store.archived_group_of(id)) {
            restore_group(*group, for_write);
        }
    };
    if (!m_state.entity(op.entity_type, op.entity)) {
        look(op.entity); // unknown here: new, or archived
    } else if (for_write) {
        // In memory because a read brought its group back: a write still changes its case.
        if (const auto it = m_read_back.find(op.entity); it != m_read_back.end()) {
            const Id case_id = it->second; // the entry goes in restore_group
            restore_group(case_id, true);
        }
    }
    // The entity a link names: the OT of a row, the case of an OT, a handover's row.
    const FieldDef* f = find_field(op.entity_type, op.field);
    const auto target = value_id(op.value);
    if (!f || !target) {
        return;
    }
    const auto named = [&]() -> std::optional<EntityType> {
        if (op.entity_type == EntityType::collected_item && f->name == "work_order") {
            return EntityType::work_order;
        }
        if (op.entity_type == EntityType::work_order && f->name == "case") {
            return EntityType::case_file;
        }
        if (op.entity_type == EntityType::handover && f->name == "rows") {
            return EntityType::collected_item;
        }
        return std::nullopt;
    }();
    if (named && !m_state.entity(*named, *target)) {
        look(*target);
    }
}

bool SyncService::restore_group(const Id& case_id, bool for_write) {
    std::vector<std::uint64_t> seqs;
    for (const auto& [t, id] : m_store.archived_group(case_id)) {
        if (!m_state.entity(t, id)) {
            const auto of = m_store.op_seqs_of_entity(t, id);
            seqs.insert(seqs.end(), of.begin(), of.end());
        }
        if (for_write) {
            m_read_back.erase(id);
        } else {
            m_read_back.insert_or_assign(id, case_id); // archived still: its figure stands
        }
    }
    for (const auto& so : m_store.ops_by_seq(seqs)) {
        m_state.apply(so.op);
        index_op(so.op);
        index_set_aside(so.op);
    }
    if (for_write) {
        m_store.unarchive(case_id); // it changes: the reports read it from memory again
    }
    return !seqs.empty();
}

bool SyncService::bring_back(const Id& entity) {
    std::lock_guard lock(m_mutex);
    if (!m_archive_lookups) {
        return false;
    }
    if (m_shared) {
        catch_up();
    }
    const auto group = m_store.archived_group_of(entity);
    return group && restore_group(*group, false);
}

std::set<Id> SyncService::read_back_cases() {
    std::lock_guard lock(m_mutex);
    std::set<Id> out;
    for (const auto& [entity, case_id] : m_read_back) {
        out.insert(case_id);
    }
    return out;
}

std::size_t SyncService::archive_now() {
    // In chunks, each one store transaction, the service's lock released between them: a
    // sweep of a long history (the first after archiving is turned on: tens of thousands
    // of cases) does not hold the requests back. The rule picks the groups again when the
    // state moved between two chunks for any reason but this sweep's own evictions.
    constexpr std::size_t k_chunk = 256;
    std::size_t archived = 0;
    std::vector<ArchiveGroup> groups;
    std::size_t next = 0;
    std::optional<std::uint64_t> chosen_at;
    std::chrono::steady_clock::duration held{};
    for (;;) {
        // Out of the lock as long as the last chunk held it (at most 100 ms): requests
        // waiting for it go first, and the sweep takes at most half the service's time.
        if (held.count() > 0) {
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                held, std::chrono::milliseconds(100)));
        }
        std::lock_guard lock(m_mutex);
        const auto began = std::chrono::steady_clock::now();
        if (!m_archive_rule || m_sweep_cancel.load()) {
            break;
        }
        if (m_shared) {
            catch_up();
        }
        if (chosen_at != m_state.changes()) {
            groups = m_archive_rule(m_state);
            next = 0;
        }
        if (next == groups.size()) {
            break;
        }
        const std::size_t end = std::min(groups.size(), next + k_chunk);
        std::vector<std::vector<OpId>> op_ids;
        // Recorded first: a crash after this and before the eviction only leaves the
        // groups in memory, and a restart leaves them out.
        m_store.in_transaction(true, [&] {
            for (std::size_t i = next; i < end; ++i) {
                m_store.archive(groups[i].archived, groups[i].entities);
                for (const auto& [t, id] : groups[i].entities) {
                    op_ids.push_back(m_store.op_ids_of_entity(t, id));
                }
            }
        });
        std::size_t k = 0;
        for (std::size_t i = next; i < end; ++i) {
            for (const auto& [t, id] : groups[i].entities) {
                m_state.evict(t, id, op_ids[k++]);
                m_read_back.erase(id);
                if (t == EntityType::work_order) {
                    m_past_techs.erase(id);
                }
            }
        }
        archived += end - next;
        m_counters.archived_cases += end - next;
        next = end;
        chosen_at = m_state.changes();
        held = std::chrono::steady_clock::now() - began;
    }
    if (archived > 0) {
        std::lock_guard lock(m_mutex);
        m_state.shrink();
        m_past_techs.rehash(0);
        m_read_back.rehash(0);
        give_back_memory();
    }
    return archived;
}

void SyncService::give_back_memory() {
    m_store.release_memory();
#ifdef __GLIBC__
    // glibc keeps freed memory below the top of its heap: what a fold or a sweep freed
    // would stay in the process's resident set.
    malloc_trim(0);
#endif
}

void SyncService::start_archiving(ArchiveRule rule, std::int64_t every_ms) {
    {
        std::lock_guard lock(m_mutex);
        m_archive_rule = std::move(rule);
        m_archive_lookups = true;
    }
    m_archive_every_ms = std::max<std::int64_t>(every_ms, 1000);
    if (!m_archiver.joinable()) {
        m_archiver = std::thread([this] { archiver(); });
    }
}

void SyncService::stop_archiving() {
    std::lock_guard lock(m_mutex);
    m_archive_rule = nullptr;
}

void SyncService::await_sweeps(std::uint64_t n) {
    std::unique_lock q(m_commit_mutex);
    m_sweep_cv.wait(q, [&] { return m_stopping || m_sweeps >= n; });
}

void SyncService::archiver() {
    for (;;) {
        try {
            archive_now();
        } catch (const std::exception&) {
            // The store refused (PostgreSQL restarting): memory keeps the groups; the next
            // sweep tries again. Nothing is lost either way: the log holds every op.
        }
        std::unique_lock q(m_commit_mutex);
        ++m_sweeps;
        m_sweep_cv.notify_all();
        if (m_archive_cv.wait_for(q, std::chrono::milliseconds(m_archive_every_ms),
                                  [&] { return m_stopping; })) {
            return;
        }
    }
}

SyncService::StateSummary SyncService::state_summary() {
    std::lock_guard lock(m_mutex);
    if (m_shared) {
        catch_up();
    } else {
        m_applied_seq = std::max(m_applied_seq, m_store.last_seq());
    }
    return {m_applied_seq, crdt::to_hex(m_state.digest()), m_state.entity_count()};
}

SyncCounters SyncService::counters() {
    SyncCounters c;
    {
        std::lock_guard lock(m_mutex);
        c = m_counters;
    }
    std::lock_guard q(m_commit_mutex);
    c.archive_sweeps = m_sweeps;
    return c;
}

// ---- scope -------------------------------------------------------------------------------------

std::optional<Id> SyncService::link_of(EntityType t, const Id& id, std::string_view field) const {
    return id_of(m_state, t, id, field);
}

void SyncService::index_op(const Op& op) {
    // The links themselves are the replica's (referrers, link_of); only the history of an
    // OT's technicians is kept here: work recorded before a reassignment still counts.
    const FieldDef* f = find_field(op.entity_type, op.field);
    if (op.entity_type == EntityType::work_order && f && f->name == "technician") {
        if (const auto tech = value_id(op.value)) {
            m_past_techs[op.entity].insert(*tech);
        }
    }
    // Which blobs the state references (kept when a register moves on: a reopened
    // signature's image stays the record it was).
    if (f && (op.kind == OpKind::set || op.kind == OpKind::add)) {
        if (auto ref = attachment::reference_of(op.entity_type, f->name, op.value)) {
            auto& refs = m_blob_index[ref->hash];
            BlobRef r{ref->hash, ref->kind, op.entity_type, op.entity, std::move(ref->label)};
            if (std::find(refs.begin(), refs.end(), r) == refs.end()) {
                refs.push_back(std::move(r));
            }
        }
    }
}

void SyncService::index_set_aside(const Op& op) {
    const FieldDef* f = find_field(op.entity_type, op.field);
    if (op.entity_type != EntityType::work_order || !f || f->name != "flagged_writes") {
        return;
    }
    if (const auto device_op = set_aside_op(op.value)) {
        m_set_aside.try_emplace(device_op->id, to_json(*device_op));
        index_op(*device_op); // a former assignee's signature set aside is still his to send
        const FieldDef* df = find_field(device_op->entity_type, device_op->field);
        if (df && df->name == "status" && device_op->value == Value{std::string("on_site")}) {
            m_set_aside_arrivals.insert({op.entity, device_op->id.replica});
        }
    }
}

std::set<Id> SyncService::scope_users(EntityType t, const Id& id) const {
    constexpr auto WO = EntityType::work_order, CI = EntityType::collected_item;
    std::set<Id> out;
    auto tech_of_ot = [&](const Id& ot) {
        if (const auto tech = link_of(WO, ot, "technician")) {
            out.insert(*tech);
        }
    };
    switch (t) {
    case EntityType::work_order:
        tech_of_ot(id);
        break;
    case EntityType::case_file:
        for (const Id& ot : m_state.referrers(WO, "case", id)) {
            tech_of_ot(ot);
        }
        break;
    case EntityType::collected_item:
        if (const auto ot = link_of(CI, id, "work_order")) {
            tech_of_ot(*ot);
        }
        if (const auto by = link_of(CI, id, "collected_by"); by && holds(*by, id)) {
            out.insert(*by);
        }
        break;
    case EntityType::handover:
        if (const auto tech = link_of(EntityType::handover, id, "technician")) {
            out.insert(*tech);
        }
        break;
    default:
        break;
    }
    return out;
}

std::vector<std::pair<EntityType, Id>> SyncService::affected_by_link(const Op& op,
                                                                     const FieldDef& f) const {
    std::vector<std::pair<EntityType, Id>> out{{op.entity_type, op.entity}};
    if (op.entity_type == EntityType::work_order) {
        // The OT, its case (old and new), and its collected items.
        if (const auto c = link_of(EntityType::work_order, op.entity, "case")) {
            out.emplace_back(EntityType::case_file, *c);
        }
        if (f.name == "case") {
            if (const auto nc = value_id(op.value)) {
                out.emplace_back(EntityType::case_file, *nc);
            }
        }
        for (const Id& i : m_state.referrers(EntityType::collected_item, "work_order", op.entity)) {
            out.emplace_back(EntityType::collected_item, i);
        }
    }
    return out;
}

bool SyncService::has_in_scope(const Id& user, EntityType t, const Id& id) const {
    constexpr auto WO = EntityType::work_order;
    auto owns_ot = [&](const Id& ot) { return link_of(WO, ot, "technician") == user; };
    switch (t) {
    case EntityType::work_order:
        return owns_ot(id);
    case EntityType::case_file: {
        const auto& ots = m_state.referrers(WO, "case", id);
        return std::any_of(ots.begin(), ots.end(), owns_ot);
    }
    case EntityType::collected_item: {
        // The OT's technician sees its rows; their collector keeps them while holding them,
        // wherever the OT went.
        const auto ot = link_of(EntityType::collected_item, id, "work_order");
        return (ot && owns_ot(*ot)) || holds(user, id);
    }
    case EntityType::handover:
        return link_of(EntityType::handover, id, "technician") == user;
    default:
        return false;
    }
}

bool SyncService::holds(const Id& user, const Id& item) const {
    const auto T = EntityType::collected_item;
    if (link_of(T, item, "collected_by") != user) {
        return false;
    }
    const Value* receipt = m_state.get(T, item, "receipt");
    const Value* resolution = m_state.get(T, item, "resolution");
    const Value* voided = m_state.get(T, item, "voided");
    const auto is = [](const Value* v, std::string_view s) {
        return v && std::holds_alternative<std::string>(*v) && std::get<std::string>(*v) == s;
    };
    return !is(receipt, "received") && !is(receipt, "damaged_on_arrival") &&
           !(resolution && std::holds_alternative<std::string>(*resolution) &&
             !std::get<std::string>(*resolution).empty()) &&
           !(voided && std::holds_alternative<bool>(*voided) && std::get<bool>(*voided));
}

bool SyncService::in_scope(const Id& user, EntityType t, const Id& id,
                           const std::map<Id, Id>& batch_items) const {
    switch (t) {
    case EntityType::equipment:
        return true; // custody and condition are physical facts; the permission table decides
    case EntityType::handover:
        // A handover the server does not know yet is its creator's.
        return !link_of(t, id, "technician") || has_in_scope(user, t, id);
    case EntityType::collected_item:
        if (!link_of(t, id, "work_order")) { // a row made earlier in this same request
            const auto it = batch_items.find(id);
            return it != batch_items.end() &&
                   has_in_scope(user, EntityType::work_order, it->second);
        }
        return has_in_scope(user, t, id);
    default:
        return has_in_scope(user, t, id);
    }
}

// ---- validation ---------------------------------------------------------------------------------

OpResult SyncService::validate(const Actor& actor, const Op& op, std::int64_t now, bool& flagged,
                               const std::map<Id, Id>& batch_items,
                               const std::map<Id, std::string>& batch_serials) {
    OpResult res{op.id, OpStatus::rejected, ErrorCode::internal, {}};
    auto reject = [&](ErrorCode code, std::string message) {
        res.code = code;
        res.message = std::move(message);
        return res;
    };
    // Replica and author were checked by apply_batch before the duplicate check.
    if (auto err = check_op_schema(op)) {
        return reject(err->code(), err->message());
    }
    if (actor.replica != k_server_replica &&
        !hlc_within_skew(op.hlc, static_cast<std::uint64_t>(now), m_config.max_clock_skew_ms)) {
        return reject(ErrorCode::clock_skew,
                      "op clock is " +
                          std::to_string(hlc_skew_ms(op.hlc, static_cast<std::uint64_t>(now))) +
                          " ms ahead of the server; the limit is " +
                          std::to_string(m_config.max_clock_skew_ms) +
                          " ms: check the device's date and time");
    }
    const FieldDef& f = *find_field(op.entity_type, op.field);
    if (!permitted(actor.role, f, op.kind)) {
        return reject(ErrorCode::permission_denied,
                      std::string(to_string(actor.role)) + " may not " +
                          std::string(to_string(op.kind)) + " " +
                          std::string(to_string(op.entity_type)) + "." + std::string(f.name));
    }
    flagged = false;
    if (actor.role == Role::technician) {
        std::map<Id, Id> items = batch_items;
        if (op.entity_type == EntityType::collected_item && f.name == "work_order" &&
            !link_of(EntityType::collected_item, op.entity, "work_order") && value_id(op.value)) {
            items[op.entity] = *value_id(op.value);
        }
        if (op.entity_type == EntityType::handover && f.name == "technician" &&
            value_id(op.value) != actor.user) {
            return reject(ErrorCode::permission_denied, "a handover is its own technician's");
        }
        // A row's collector is the device's own user and replica. Custody is the collector's:
        // only they put the row on a handover or void it, and nobody takes over a row another
        // technician still holds (rows recorded without a collector: the OT decides).
        if (op.entity_type == EntityType::collected_item &&
            ((f.name == "collected_by" && value_id(op.value) != actor.user) ||
             (f.name == "collected_device" &&
              op.value != Value{static_cast<std::int64_t>(actor.replica)}))) {
            return reject(ErrorCode::permission_denied,
                          "a row is collected by the device's own user and replica");
        }
        std::optional<Id> row; // the row whose custody this op touches
        if (op.entity_type == EntityType::handover && f.name == "rows" && op.kind == OpKind::add) {
            row = value_id(op.value);
        } else if (op.entity_type == EntityType::collected_item &&
                   (f.name == "handover" || f.name == "voided" || f.name == "collected_by")) {
            row = op.entity;
        }
        if (const auto by =
                row ? link_of(EntityType::collected_item, *row, "collected_by") : std::nullopt;
            by && *by != actor.user && (f.name != "collected_by" || holds(*by, *row))) {
            return reject(ErrorCode::permission_denied,
                          "collected item " + row->hex() +
                              " was collected by another technician: its custody is theirs");
        }
        if (!in_scope(actor.user, op.entity_type, op.entity, items)) {
            // Work recorded before a reassignment still counts: accepted, flagged for review.
            std::optional<Id> ot;
            if (op.entity_type == EntityType::work_order) {
                ot = op.entity;
            } else if (op.entity_type == EntityType::collected_item) {
                if (const auto w = link_of(EntityType::collected_item, op.entity, "work_order")) {
                    ot = w;
                } else if (auto jt = items.find(op.entity); jt != items.end()) {
                    ot = jt->second;
                }
            }
            const auto past = ot ? m_past_techs.find(*ot) : m_past_techs.end();
            if (past == m_past_techs.end() || !past->second.contains(actor.user)) {
                return reject(ErrorCode::permission_denied,
                              std::string(to_string(op.entity_type)) + " " + op.entity.hex() +
                                  " is not assigned to this technician");
            }
            flagged = true;
        }
    }
    // A collected item's id is its (OT, serial): checked whichever of the two comes last.
    if (op.entity_type == EntityType::collected_item &&
        (f.name == "serial" || f.name == "work_order")) {
        std::optional<Id> ot;
        std::optional<std::string> serial;
        if (f.name == "work_order") {
            ot = value_id(op.value);
            if (const Value* v = m_state.get(EntityType::collected_item, op.entity, "serial");
                v && std::holds_alternative<std::string>(*v)) {
                serial = std::get<std::string>(*v);
            } else if (auto it = batch_serials.find(op.entity); it != batch_serials.end()) {
                serial = it->second;
            }
        } else {
            if (std::holds_alternative<std::string>(op.value)) {
                serial = std::get<std::string>(op.value);
            }
            if (const auto w = link_of(EntityType::collected_item, op.entity, "work_order")) {
                ot = w;
            } else if (auto jt = batch_items.find(op.entity); jt != batch_items.end()) {
                ot = jt->second;
            }
        }
        if (ot && serial && Id::collected_item(*ot, *serial) != op.entity) {
            return reject(ErrorCode::invalid_value,
                          "a collected item's id must be the hash of its OT and serial");
        }
    }
    if (actor.role == Role::technician && !flagged) {
        if (auto err = field_rules(actor, op, f, batch_items)) {
            return reject(err->code(), err->message());
        }
    }
    const bool set_aside = is_set_aside(op, f, flagged);
    if (f.lifecycle && !set_aside) { // a write set aside moves nothing: no transition to check
        std::string from;
        if (!op.observed.empty()) {
            const auto* reg = m_state.reg(op.entity_type, op.entity, f.name);
            const auto* prev = reg ? [&]() -> const crdt::StatusWrite* {
                for (const auto& w : reg->history) {
                    if (w.key.op_id() == op.observed.front()) {
                        return &w;
                    }
                }
                return nullptr;
            }()
                : nullptr;
            if (!prev) {
                return reject(ErrorCode::invalid_transition,
                              "the status this change replaces (op " +
                                  opid_text(op.observed.front()) + ") is unknown to the server");
            }
            from = prev->state;
        }
        const auto& to = std::get<std::string>(op.value);
        if (!transition_allowed(*f.lifecycle, from, to, actor.role)) {
            return reject(ErrorCode::invalid_transition,
                          std::string(to_string(op.entity_type)) + " status may not go from '" +
                              (from.empty() ? std::string("(none)") : from) + "' to '" + to +
                              "' for " + std::string(to_string(actor.role)));
        }
    }
    res.status = flagged ? OpStatus::flagged : OpStatus::accepted;
    if (flagged) {
        res.code = ErrorCode::permission_denied;
        res.message = set_aside ? k_set_aside_message : k_flagged_message;
    }
    return res;
}

std::optional<Error> SyncService::field_rules(const Actor& actor, const Op& op, const FieldDef& f,
                                              const std::map<Id, Id>& batch_items) const {
    const auto text_at = [&](EntityType t, const Id& id, std::string_view field) {
        return text_of(m_state, t, id, field);
    };
    // The delivery act: a handover the technician delivered (and signed) is frozen for him,
    // its rows and what he signed with them; it is delivered only signed, over its rows.
    const auto frozen = [&](const Id& h) {
        const std::string st = text_at(EntityType::handover, h, "status");
        return st == "delivered" || st == "received";
    };
    if (op.entity_type == EntityType::handover && f.name != "status" &&
        (f.name == "rows" || f.name == "delivered_by" || f.name == "delivered_rows_hash" ||
         f.name == "technician_signature_ref" || f.name == "technician_signature_blob") &&
        frozen(op.entity)) {
        return Error(ErrorCode::invalid_transition,
                     "handover " + op.entity.hex() + " was delivered: its rows are frozen");
    }
    if (op.entity_type == EntityType::collected_item && f.name == "handover") {
        if (const auto h = link_of(EntityType::collected_item, op.entity, "handover");
            h && frozen(*h)) {
            return Error(ErrorCode::invalid_transition,
                         "the row is on handover " + h->hex() + ", delivered: it stays there");
        }
    }
    if (op.entity_type == EntityType::handover && f.name == "status" &&
        op.value == Value{std::string("delivered")}) {
        if (!m_state.get(EntityType::handover, op.entity, "technician_signature_blob") ||
            !m_state.get(EntityType::handover, op.entity, "delivered_rows_hash")) {
            return Error(ErrorCode::requirements_incomplete,
                         "a handover is delivered signed by its technician, over its rows");
        }
    }
    // Rows are recorded and voided at the customer's, the OT on site.
    if (op.entity_type == EntityType::collected_item &&
        (f.name == "work_order" || f.name == "voided")) {
        std::optional<Id> ot = f.name == "work_order" ? value_id(op.value) : std::nullopt;
        if (!ot) {
            if (const auto w = link_of(EntityType::collected_item, op.entity, "work_order")) {
                ot = w;
            } else if (auto jt = batch_items.find(op.entity); jt != batch_items.end()) {
                ot = jt->second;
            }
        }
        // An arrival set aside while the OT was another technician's still puts this
        // device on site: the OT came back to it, and its rows are field facts.
        if (ot && !m_set_aside_arrivals.contains({*ot, actor.replica})) {
            if (const auto st = text_at(EntityType::work_order, *ot, "status"); st != "on_site") {
                return Error(ErrorCode::invalid_transition,
                             "rows are recorded on site: OT " + ot->hex() + " is '" + st + "'");
            }
        }
    }
    if (op.entity_type != EntityType::work_order) {
        return std::nullopt;
    }
    const Id& ot = op.entity;
    // Equipment the customer carried is verified in modalities 2 and 3.
    if (f.name == "verified_equipment" && op.kind == OpKind::add) {
        if (const Value* c = m_state.get(EntityType::work_order, ot, "case");
            c && std::holds_alternative<Id>(*c)) {
            const Value* mod = m_state.get(EntityType::case_file, std::get<Id>(*c), "modality");
            if (mod && std::holds_alternative<std::int64_t>(*mod) &&
                std::get<std::int64_t>(*mod) != 2 && std::get<std::int64_t>(*mod) != 3) {
                return Error(ErrorCode::invalid_value,
                             "equipment the customer carried is verified in modalities 2 and 3");
            }
        }
    }
    // An OT completes with every expected serial collected, verified or explained, and
    // with the customer's signature when rows were recorded.
    if (f.name == "status" && op.value == Value{std::string("completed")}) {
        std::set<std::string> done;
        std::size_t rows = 0;
        {
            for (const Id& item : m_state.referrers(EntityType::collected_item, "work_order", ot)) {
                const Value* voided = m_state.get(EntityType::collected_item, item, "voided");
                if (voided && std::holds_alternative<bool>(*voided) && std::get<bool>(*voided)) {
                    continue;
                }
                done.insert(normalize_serial(text_at(EntityType::collected_item, item, "serial")));
                ++rows;
            }
        }
        for (const auto& v : m_state.elements(EntityType::work_order, ot, "verified_equipment")) {
            done.insert(normalize_serial(std::get<std::string>(v)));
        }
        for (const auto& [serial, why] : missing_reasons(m_state, ot)) {
            done.insert(normalize_serial(serial));
        }
        std::string unexplained;
        for (const auto& v : m_state.elements(EntityType::work_order, ot, "expected_equipment")) {
            if (const auto serial = normalize_serial(std::get<std::string>(v));
                !done.contains(serial)) {
                unexplained += (unexplained.empty() ? "" : ", ") + serial;
            }
        }
        if (!unexplained.empty()) {
            return Error(ErrorCode::requirements_incomplete,
                         "expected equipment neither collected, verified nor explained: " +
                             unexplained);
        }
        const Value* sig = m_state.get(EntityType::work_order, ot, "signature_ref");
        if (rows > 0 && !(sig && std::holds_alternative<Id>(*sig))) {
            return Error(ErrorCode::requirements_incomplete,
                         "the customer has not signed the recorded rows");
        }
    }
    return std::nullopt;
}

OpResult SyncService::apply_one(const Actor& actor, const Op& op, std::int64_t now,
                                BatchState& st) {
    const auto reject = [&st](OpResult r) {
        st.delta.rejected[r.code]++;
        return r;
    };
    if (op.id.replica != actor.replica || op.author != actor.user) {
        // Checked before anything else, so no device learns about another's ops.
        return reject({op.id, OpStatus::rejected, ErrorCode::permission_denied,
                       "an op must carry this device's replica id and user"});
    }
    bring_back_for(op, true); // an archived case it touches comes back first
    if (m_state.has_op(op.id)) {
        // Idempotent resend: same content is acknowledged again; other content is not.
        const auto r = m_state.apply(op);
        if (r.status == crdt::ApplyResult::Status::duplicate) {
            st.delta.duplicates++;
            return {op.id, OpStatus::accepted, ErrorCode::internal, {}};
        }
        return reject({op.id, OpStatus::rejected, r.error ? r.error->code() : ErrorCode::internal,
                       r.error ? r.error->message() : "rejected"});
    }
    if (const auto it = m_set_aside.find(op.id); it != m_set_aside.end()) {
        // A write set aside before, sent again: acknowledged as then, recorded once.
        if (it->second == to_json(op)) {
            st.delta.duplicates++;
            return {op.id, OpStatus::flagged, ErrorCode::permission_denied, k_set_aside_message};
        }
        return reject({op.id, OpStatus::rejected, ErrorCode::op_id_reused,
                       "op " + opid_text(op.id) + " was already received with different content"});
    }
    bool flagged = false;
    OpResult res = validate(actor, op, now, flagged, st.items, st.serials);
    if (res.status == OpStatus::rejected) {
        return reject(std::move(res));
    }
    const FieldDef& f = *find_field(op.entity_type, op.field);
    if (is_set_aside(op, f, flagged)) {
        // The OT is another technician's now: its status and registers stay theirs. The
        // server records the write on the OT, attributed, in this request's commit; the
        // device's op itself is not merged, stored in the log nor sent to anyone.
        crdt::OpMaker maker(k_server_replica, *m_hlc, actor.user,
                            m_state.max_counter(k_server_replica));
        const Op record = maker.event(EntityType::work_order, op.entity, "flagged_writes",
                                      text(set_aside_record(actor.user, actor.replica, now, op)));
        const auto applied = m_state.apply(record);
        if (!applied.applied()) {
            return reject({op.id, OpStatus::rejected, ErrorCode::internal,
                           "the server could not record this change: " +
                               (applied.error ? applied.error->message() : "")});
        }
        index_set_aside(record);
        StoredOp so;
        so.op = record;
        so.received_at = now;
        so.skew_ms = hlc_skew_ms(record.hlc, static_cast<std::uint64_t>(now));
        st.w.ops.push_back(std::move(so)); // flagged_writes is no technician's: no feed row
        st.touched.insert({op.entity_type, op.entity});
        st.set_aside.insert(op.id);
        st.delta.flagged++;
        return res;
    }
    const bool link = is_link_field(op.entity_type, f.name);
    // An entity first seen in this op has no history in the store to replay.
    const bool existed = m_state.entity(op.entity_type, op.entity) != nullptr;
    // Users whose scope this op may change, and their scope before it.
    // A link op (who has an OT, which case or OT a row belongs to) can move a few
    // entities in or out of a few users' scope: note their membership before it.
    std::vector<std::pair<EntityType, Id>> affected;
    std::set<Id> users;
    std::map<std::pair<Id, std::pair<EntityType, Id>>, bool> was_in;
    if (link) {
        affected = affected_by_link(op, f);
        for (const auto& e : affected) {
            const auto owners = scope_users(e.first, e.second);
            users.insert(owners.begin(), owners.end());
        }
        if (const auto target = value_id(op.value)) {
            if (f.name == "technician" || f.name == "collected_by") {
                users.insert(*target); // the new technician, handover owner or collector
            } else {
                const auto owners = scope_users(EntityType::work_order, *target);
                users.insert(owners.begin(), owners.end());
            }
        }
        for (const Id& u : users) {
            for (const auto& e : affected) {
                was_in[{u, e}] = has_in_scope(u, e.first, e.second);
            }
        }
    }
    const auto applied = m_state.apply(op);
    if (!applied.applied()) {
        return reject({op.id, OpStatus::rejected,
                       applied.error ? applied.error->code() : ErrorCode::internal,
                       applied.error ? applied.error->message() : "not applied"});
    }
    index_op(op);
    if (op.entity_type == EntityType::collected_item && f.name == "work_order" &&
        value_id(op.value)) {
        st.items[op.entity] = *value_id(op.value);
    }
    if (op.entity_type == EntityType::collected_item && f.name == "serial" &&
        std::holds_alternative<std::string>(op.value)) {
        st.serials[op.entity] = std::get<std::string>(op.value);
    }
    const std::size_t index = st.w.ops.size();
    StoredOp so;
    so.op = op;
    so.received_at = now;
    so.skew_ms = hlc_skew_ms(op.hlc, static_cast<std::uint64_t>(now));
    so.flagged = flagged;
    st.w.ops.push_back(std::move(so));
    st.touched.insert({op.entity_type, op.entity});
    // Scope changes: whole history for entities that came into a user's scope,
    // evictions for those that left it.
    if (link) {
        for (const auto& e : affected_by_link(op, f)) {
            if (std::find(affected.begin(), affected.end(), e) == affected.end()) {
                affected.push_back(e); // e.g. the new case of a relinked OT
            }
        }
    }
    for (const Id& u : users) {
        for (const auto& e : affected) {
            const auto it = was_in.find({u, e});
            const bool before = it != was_in.end() && it->second;
            const bool after = has_in_scope(u, e.first, e.second);
            if (after && !before) {
                const bool new_entity =
                    !existed && e.first == op.entity_type && e.second == op.entity;
                // (A new entity has no history: nothing read, nothing waited for.)
                const auto seqs = new_entity ? std::vector<std::uint64_t>{}
                                             : m_store.op_seqs_of_entity(e.first, e.second);
                for (const auto& old :
                     seqs.empty() ? std::vector<StoredOp>{} : m_store.ops_by_seq(seqs)) {
                    const FieldDef* of = find_field(old.op.entity_type, old.op.field);
                    if (of && visible_to_technician(*of)) {
                        // History: sent to the op's author too (it deleted the entity).
                        st.w.feed.push_back({u, std::nullopt, old.seq, std::nullopt, true});
                    }
                }
                for (std::size_t i = 0; i < index; ++i) { // earlier ops of this batch
                    const Op& b = st.w.ops[i].op;
                    const FieldDef* bf = find_field(b.entity_type, b.field);
                    if (b.entity_type == e.first && b.entity == e.second && bf &&
                        visible_to_technician(*bf)) {
                        // Made by this request's device: it has them.
                        st.w.feed.push_back({u, i, std::nullopt, std::nullopt, false});
                    }
                }
            } else if (before && !after) {
                st.w.feed.push_back({u, std::nullopt, std::nullopt, e, false});
            }
        }
    }
    if (visible_to_technician(f)) {
        for (const Id& u : scope_users(op.entity_type, op.entity)) {
            st.w.feed.push_back({u, index, std::nullopt, std::nullopt, false});
        }
    }
    if (flagged) {
        st.delta.flagged++;
    } else {
        st.delta.accepted++;
    }
    st.applied.push_back(op);
    return res;
}

std::vector<OpResult> SyncService::merge_batch(PendingCommit& p, const Actor& actor,
                                               const std::vector<Op>& ops,
                                               std::uint64_t request_counter, std::uint64_t cursor,
                                               std::int64_t now, std::optional<OpBatch> batch) {
    std::vector<OpResult> results;
    results.reserve(ops.size());
    BatchState st;
    st.w.batch = std::move(batch);
    st.w.replica = actor.replica;
    st.w.request_counter = request_counter;
    st.w.cursor = cursor;
    st.w.now = now;
    for (const Op& op : ops) {
        results.push_back(apply_one(actor, op, now, st));
    }
    follow_up(now, st);
    for (const auto& [t, id] : st.touched) {
        st.w.projections.push_back({t, id, entity_json(m_state, t, id)});
    }
    p.write = std::move(st.w);
    p.delta = std::move(st.delta);
    p.set_aside = std::move(st.set_aside);
    return results;
}

std::pair<std::vector<OpResult>, std::shared_ptr<SyncService::PendingCommit>>
SyncService::apply_batch(const Actor& actor, const std::vector<Op>& ops,
                         std::uint64_t request_counter, std::uint64_t cursor, std::int64_t now,
                         std::optional<OpBatch> batch) {
    auto pending = std::make_shared<PendingCommit>();
    auto results =
        merge_batch(*pending, actor, ops, request_counter, cursor, now, std::move(batch));
    {
        std::lock_guard q(m_commit_mutex);
        m_commit_queue.push_back(pending);
    }
    m_commit_cv.notify_one();
    return {std::move(results), std::move(pending)};
}

void SyncService::follow_up(std::int64_t now, BatchState& st) {
    // The ops the batch merged call for the server's own (custody, the technician's step,
    // closing): made now, against the state they leave, and written in the same commit. A
    // follow-up is never the caller's concern: one that cannot be made is skipped and made
    // at the next change that calls for it (the rules read the state, not the ops).
    if (m_follow_ups.empty() || st.applied.empty()) {
        return;
    }
    const std::vector<Op> cause = std::move(st.applied);
    for (const auto& rule : m_follow_ups) {
        // Nothing a rule throws may leave this function: the batch is merged in memory and
        // must reach its commit.
        std::vector<FollowUp> wanted;
        try {
            wanted = rule(m_state, cause);
        } catch (const std::exception&) {
            continue;
        }
        for (auto& f : wanted) {
            std::vector<Op> made;
            try {
                crdt::OpMaker maker(k_server_replica, *m_hlc, f.author,
                                    m_state.max_counter(k_server_replica));
                made = f.make(maker, m_state);
            } catch (const std::exception&) {
                continue; // e.g. a transition the rule thought allowed: no partial follow-up
            }
            const Actor server{f.author, f.role, k_server_replica};
            for (const Op& op : made) {
                (void)apply_one(server, op, now, st);
            }
        }
    }
    st.applied.clear();
}

void SyncService::queue_commit(const std::shared_ptr<PendingCommit>& p) {
    {
        std::lock_guard q(m_commit_mutex);
        m_commit_queue.push_back(p);
    }
    m_commit_cv.notify_one();
}

void SyncService::merge_and_commit(const std::shared_ptr<PendingCommit>& p) {
    queue_commit(p);
    wait_commit(p);
    if (p->merge_error) {
        std::rethrow_exception(p->merge_error);
    }
}

bool SyncService::defer(const std::shared_ptr<PendingCommit>& p, const std::shared_ptr<Accepted>& a,
                        std::function<void(EndpointAnswer)>& done) {
    std::lock_guard q(m_commit_mutex);
    if (p->done) {
        return false;
    }
    p->then = [this, a, done = std::move(done)](PendingCommit& self) {
        answer_committed(*a, self, done);
    };
    return true;
}

void SyncService::set_executor(std::function<void(std::function<void()>)> post) {
    std::lock_guard q(m_commit_mutex);
    m_post = std::move(post);
}

void SyncService::commit_shared(const std::vector<std::shared_ptr<PendingCommit>>& group) {
    // One writer at a time across instances: the write transaction holds the database's
    // write lock from before its snapshot to its commit. Inside it, fold what the others
    // committed, then merge every request of the group against that state and commit.
    // The service lock is released once the group is merged, before the commit's flush:
    // pulls and reads of this instance go on meanwhile (as on SQLite, they may see the
    // group merged before it is durable; a failed commit folds the log again).
    std::unique_lock lock(m_mutex);
    m_store.in_transaction(true, [&] {
        catch_up();
        m_last_counter.clear(); // counters of this group's requests (the store has the rest)
        std::vector<const SyncWrite*> writes;
        writes.reserve(group.size());
        for (const auto& p : group) {
            p->merge(*p);
            writes.push_back(&p->write);
        }
        for (const auto& seqs : m_store.commit_many(writes)) {
            if (!seqs.empty()) {
                m_applied_seq = std::max(m_applied_seq, seqs.back());
            }
        }
        lock.unlock(); // lock order kept: taken before the store's, released first
    });
}

void SyncService::wait_commit(const std::shared_ptr<PendingCommit>& p) {
    {
        std::unique_lock q(m_commit_mutex);
        p->done_cv.wait(q, [&] { return p->done; });
    }
    settle(*p);
}

void SyncService::settle(const PendingCommit& p) {
    if (p.error) {
        throw Error(ErrorCode::internal, "the store did not commit the request");
    }
    std::lock_guard lock(m_mutex);
    m_counters.accepted += p.delta.accepted;
    m_counters.flagged += p.delta.flagged;
    m_counters.duplicates += p.delta.duplicates;
    for (const auto& [code, n] : p.delta.rejected) {
        m_counters.rejected[code] += n;
    }
}

void SyncService::committer() {
    Unprojected unprojected; // this thread's only
    std::unique_lock q(m_commit_mutex);
    for (;;) {
        m_commit_cv.wait(
            q, [&] { return m_stopping || !m_commit_queue.empty() || !m_pull_marks.empty(); });
        if (m_commit_queue.empty() && !m_stopping) {
            // Only pulls' counters: they ride with the next commit, or go alone in time.
            m_commit_cv.wait_for(q, std::chrono::milliseconds(m_config.pull_mark_flush_ms),
                                 [&] { return m_stopping || !m_commit_queue.empty(); });
        }
        if (m_commit_queue.empty() && m_pull_marks.empty()) {
            q.unlock();
            unprojected.write(m_store); // stopping, nothing left
            return;
        }
        std::vector<std::shared_ptr<PendingCommit>> group(m_commit_queue.begin(),
                                                          m_commit_queue.end());
        m_commit_queue.clear();
        std::unordered_map<std::uint64_t, SyncWrite> marks;
        marks.swap(m_pull_marks);
        q.unlock();
        std::exception_ptr error;
        try {
            if (m_shared) {
                commit_shared(group);
            } else {
                // The projections leave the acknowledging commit: they are written after
                // it, folded per entity (Unprojected).
                std::vector<SyncWrite::Projection> later;
                std::vector<const SyncWrite*> writes;
                writes.reserve(group.size() + marks.size());
                for (const auto& p : group) {
                    for (auto& row : p->write.projections) {
                        later.push_back(std::move(row));
                    }
                    p->write.projections.clear();
                    writes.push_back(&p->write);
                }
                for (const auto& [replica, w] : marks) {
                    writes.push_back(&w);
                }
                std::uint64_t last = 0;
                for (const auto& seqs : m_store.commit_many(writes)) {
                    last = seqs.empty() ? last : std::max(last, seqs.back());
                }
                unprojected.add(std::move(later), last);
            }
        } catch (...) {
            error = std::current_exception();
        }
        if (error) {
            std::lock_guard again(m_commit_mutex);
            // The pulls' counters stay claimed, tried again with the next commit; not at
            // stop, which would otherwise retry a failing store forever (a pull's counter
            // is no field fact: at worst that pull could be replayed once, as after a kill).
            for (const auto& [replica, w] : marks) {
                if (!m_stopping) {
                    keep_mark(m_pull_marks, w.replica, w.request_counter, w.cursor, w.now);
                }
            }
        }
        if (error && !group.empty()) {
            // Memory merged what the store refused. Everything queued after it was
            // validated against that memory, so it fails too; then fold the log again.
            std::lock_guard lock(m_mutex);
            {
                std::lock_guard again(m_commit_mutex);
                group.insert(group.end(), m_commit_queue.begin(), m_commit_queue.end());
                m_commit_queue.clear();
            }
            m_last_counter.clear();
            try {
                reload();
            } catch (const std::exception&) {
                // The database is unreachable (PostgreSQL restarting): fold it again at the
                // next request that needs the state, which fails until it can.
                m_stale = true;
            }
        }
        if (!error) { // what the group committed wakes the pulls waiting for it
            std::set<Id> users;
            bool any_op = false;
            for (const auto& p : group) {
                any_op = any_op || !p->write.ops.empty();
                for (const auto& f : p->write.feed) {
                    users.insert(f.user);
                }
            }
            if (!users.empty() || any_op) {
                wake_waits(users, any_op);
            }
        }
        q.lock();
        std::vector<std::shared_ptr<PendingCommit>> completions;
        for (const auto& p : group) {
            p->error = error;
            p->done = true;
            if (p->then) { // nobody waits: its answer is finished on the executor
                completions.push_back(p);
                continue;
            }
            // Each waiter has its own condition: waking only the requests of this group
            // (not every waiter of every later group) keeps context switches per commit
            // at the group's size.
            p->done_cv.notify_one();
        }
        if (!completions.empty()) {
            const auto post = m_post;
            q.unlock();
            for (auto& p : completions) {
                auto run = [p = std::move(p)] {
                    const auto then = std::move(p->then);
                    then(*p);
                };
                if (post) {
                    post(std::move(run));
                } else {
                    run();
                }
            }
            q.lock();
        }
        // Acknowledged: now the projections, when no request waits for a commit or when
        // they have waited long enough (under load, one row per entity for many commits).
        if (unprojected.due(m_commit_queue.empty(), m_config.projection_lag_ms)) {
            q.unlock();
            unprojected.write(m_store);
            q.lock();
        }
    }
}

void SyncService::Unprojected::add(std::vector<SyncWrite::Projection> rows, std::uint64_t seq) {
    if (rows.empty()) {
        return;
    }
    if (m_rows.empty()) {
        m_since = std::chrono::steady_clock::now();
    }
    for (auto& r : rows) { // in merge order: an entity's last row is its state after `seq`
        m_rows[{r.type, r.id}] = std::move(r.json);
    }
    m_seq = std::max(m_seq, seq);
}

bool SyncService::Unprojected::due(bool idle, std::uint32_t lag_ms) const {
    return !m_rows.empty() &&
           (idle || m_rows.size() >= k_max_rows ||
            std::chrono::steady_clock::now() - m_since >= std::chrono::milliseconds(lag_ms));
}

void SyncService::Unprojected::write(Store& store) {
    if (m_rows.empty()) {
        return;
    }
    SyncWrite w;
    w.replica = k_server_replica; // no device's counter
    w.projections_seq = m_seq;
    w.projections.reserve(m_rows.size());
    for (const auto& [key, json] : m_rows) {
        w.projections.push_back({key.first, key.second, json});
    }
    try {
        store.commit_many({&w}); // no op in it: no flush of its own (the log has the ops)
    } catch (const std::exception&) {
        return; // kept: tried again when next due, or rendered again at the next start
    }
    m_rows.clear();
    m_seq = 0;
}

void SyncService::project_missing() {
    // Projections written after their acknowledging commit may lag the log after a crash:
    // the entities of the ops past the projections' seq are rendered again from the state
    // the log just folded into.
    const std::uint64_t from = m_store.projected_seq();
    const std::uint64_t to = m_store.last_seq();
    if (from >= to) {
        return;
    }
    std::set<std::pair<EntityType, Id>> touched;
    for (std::uint64_t after = from;;) {
        const auto page = m_store.ops_after(after, 10'000);
        if (page.empty()) {
            break;
        }
        for (const auto& so : page) {
            touched.insert({so.op.entity_type, so.op.entity});
        }
        after = page.back().seq;
    }
    std::vector<SyncWrite::Projection> rows;
    for (const auto& [t, id] : touched) {
        if (!m_state.entity(t, id)) {
            (void)bring_back(id); // an archived case changed just before the crash
        }
        if (m_state.entity(t, id)) {
            rows.push_back({t, id, entity_json(m_state, t, id)});
        }
    }
    Unprojected u;
    u.add(std::move(rows), to);
    u.write(m_store);
}

SyncService::~SyncService() {
    end_waits(); // normally done already, while the transport ran
    if (m_waiter.joinable()) {
        m_waiter.join();
    }
    if (m_listener.joinable()) {
        m_listener.join(); // ends within a wait of its listener (end_waits stopped it)
    }
    m_sweep_cancel = true;
    {
        std::lock_guard q(m_commit_mutex);
        m_stopping = true;
    }
    m_commit_cv.notify_all();
    m_archive_cv.notify_all();
    m_sweep_cv.notify_all();
    if (m_committer.joinable()) {
        m_committer.join();
    }
    if (m_archiver.joinable()) {
        m_archiver.join();
    }
}

std::vector<OpResult> SyncService::submit(
    const Id& author, Role role,
    const std::function<std::vector<Op>(crdt::OpMaker&, const crdt::Replica&)>& make) {
    if (m_shared) {
        // The ops are made by the committer, in the write transaction, from the state as
        // every instance's commits left it.
        auto p = std::make_shared<PendingCommit>();
        p->merge = [&](PendingCommit& self) {
            std::vector<Op> ops;
            try {
                crdt::OpMaker maker(k_server_replica, *m_hlc, author,
                                    m_state.max_counter(k_server_replica));
                ops = make(maker, m_state);
            } catch (...) {
                self.merge_error = std::current_exception(); // the command's own refusal
                return;
            }
            self.results = merge_batch(self, Actor{author, role, k_server_replica}, ops, 0, 0,
                                       static_cast<std::int64_t>(m_clock.now_ms()));
        };
        merge_and_commit(p);
        return std::move(p->results);
    }
    std::unique_lock lock(m_mutex);
    ensure_fresh();
    crdt::OpMaker maker(k_server_replica, *m_hlc, author, m_state.max_counter(k_server_replica));
    const auto ops = make(maker, m_state);
    if (ops.empty()) {
        return {}; // nothing to validate, store or wait for
    }
    auto [results, pending] = apply_batch(Actor{author, role, k_server_replica}, ops, 0, 0,
                                          static_cast<std::int64_t>(m_clock.now_ms()));
    lock.unlock();
    wait_commit(pending);
    return results;
}

Hash256 enroll_code_hash(std::string_view code) {
    return code_hash(code);
}

std::string issue_enroll_code(Store& store, const Id& user, std::int64_t now, std::int64_t ttl_ms) {
    ensure_sodium();
    std::string code;
    for (int i = 0; i < 12; ++i) {
        if (i && i % 4 == 0) {
            code += '-';
        }
        code += k_code_alphabet[randombytes_uniform(sizeof k_code_alphabet - 1)];
    }
    store.add_enroll_code(code_hash(code), user, now + ttl_ms);
    return code;
}

void SyncService::set_follow_ups(std::vector<FollowUpRule> rules) {
    std::lock_guard lock(m_mutex);
    m_follow_ups = std::move(rules);
}

Signature SyncService::sign(std::string_view message) const {
    return otsync::sign(message, m_key.secret);
}

std::string SyncService::new_enroll_code(const Id& user) {
    return issue_enroll_code(m_store, user, static_cast<std::int64_t>(m_clock.now_ms()),
                             m_config.enroll_code_ttl_ms);
}

// ---- endpoints ----------------------------------------------------------------------------------

EndpointAnswer SyncService::enroll(const std::string& body) {
    if (body.size() > 4096) {
        return refusal(Error(ErrorCode::too_large, "enrollment body over 4096 bytes"));
    }
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                      body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
        return refusal(
            Error(ErrorCode::malformed, "expected a JSON object {code, public_key, label}"));
    }
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        const std::string_view n(it->name.GetString(), it->name.GetStringLength());
        if (n != "code" && n != "public_key" && n != "label") {
            return refusal(Error(ErrorCode::unknown_field,
                                 "unknown member '" + std::string(n) + "'", std::string(n)));
        }
    }
    const auto code = string_member(doc, "code");
    const auto key = string_member(doc, "public_key");
    const auto label = string_member(doc, "label");
    if (!code || !key || !label) {
        return refusal(
            Error(ErrorCode::missing_field, "code, public_key and label are strings and required"));
    }
    if (label->size() > 200 || !is_valid_utf8(*label)) {
        return refusal(
            Error(ErrorCode::invalid_value, "label must be UTF-8 of at most 200 bytes", "label"));
    }
    PublicKey pk{};
    if (!decode_fixed(*key, pk)) {
        return refusal(
            Error(ErrorCode::malformed, "public_key must be base64 of 32 bytes", "public_key"));
    }
    const auto device =
        m_store.enroll(code_hash(*code), pk, *label, static_cast<std::int64_t>(m_clock.now_ms()));
    if (!device) {
        return refusal(Error(ErrorCode::unauthenticated,
                             "the enrollment code is unknown, already used or expired"));
    }
    return EndpointAnswer{
        "application/json",
        "{\"replica\":" + std::to_string(device->replica) + ",\"user\":\"" + device->user.hex() +
            "\",\"server_public_key\":\"" + to_base64(m_key.public_key) +
            "\",\"protocol_version\":" + std::to_string(k_protocol_version) + "}"};
}

SyncService::Gate SyncService::open_envelope(const std::map<std::string, std::string>& headers,
                                             Store& via, bool sync_media) {
    Gate g;
    g.envelope = session::read_envelope(headers);
    const std::string content_type = g.envelope ? g.envelope->content_type : [&] {
        std::string t = header(headers, "content-type");
        return t.substr(0, t.find(';'));
    }();
    g.json = content_type == k_content_type_json;
    if (sync_media && !g.json && content_type != k_content_type_binary) {
        g.refused = refusal(Error(ErrorCode::unsupported_media_type,
                                  std::string("Content-Type must be ") + k_content_type_binary +
                                      " or " + k_content_type_json));
        return g;
    }
    if (!g.envelope) {
        g.refused = refusal(
            Error(ErrorCode::unauthenticated,
                  "X-Otsync-Replica, X-Otsync-Counter and X-Otsync-Signature are required"));
        return g;
    }
    g.directory = m_directory.current(via); // users and devices
    g.device = g.directory->device(g.envelope->replica);
    if (!g.device) {
        g.refused =
            refusal(Error(ErrorCode::unknown_device,
                          "no enrolled device has replica " + std::to_string(g.envelope->replica)));
        return g;
    }
    if (g.envelope->session) {
        g.session = live_session(*g.envelope->session, g.envelope->replica, via,
                                 static_cast<std::int64_t>(m_clock.now_ms()));
        if (!g.session) {
            g.refused = refusal(Error(ErrorCode::session_expired,
                                      "the session is unknown or expired: open a new one"));
        }
    }
    return g;
}

std::variant<const User*, EndpointAnswer>
SyncService::admit(const Gate& gate, std::string_view path, const std::string& body) {
    namespace S = session;
    const Device* device = gate.device;
    if (gate.session) {
        // A MAC that does not verify is a session this device cannot use (a stale key):
        // it opens a new one, nothing lost.
        if (!S::verify_envelope_mac(*gate.envelope, path, body, gate.session->key)) {
            return refusal(
                Error(ErrorCode::session_expired,
                      "the request's MAC does not verify with its session: open a new one"));
        }
    } else if (!S::verify_envelope(*gate.envelope, path, body, device->public_key)) {
        return refusal(Error(ErrorCode::bad_signature, "signature does not verify"));
    }
    if (device->status != DeviceStatus::active) {
        return revoked(device->replica, device->revoked_at); // only after the request verified
    }
    const User* user = gate.directory->find(device->user);
    if (!user || user->disabled) {
        return refusal(Error(ErrorCode::user_disabled, "the device's user is disabled"));
    }
    return user;
}

std::size_t SyncService::SessionIdHash::operator()(const SessionId& id) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, id.data(), sizeof h); // random bytes
    return h;
}

std::optional<DeviceSession> SyncService::live_session(const SessionId& id, std::uint64_t replica,
                                                       Store& via, std::int64_t now) {
    std::optional<DeviceSession> s;
    {
        std::lock_guard lock(m_session_mutex);
        if (const auto it = m_sessions.find(id); it != m_sessions.end()) {
            s = it->second;
        }
    }
    if (!s) { // opened on another instance, or before a restart
        s = via.device_session(id);
        if (s && s->expires_at > now) {
            std::lock_guard lock(m_session_mutex);
            m_sessions.emplace(id, *s);
        }
    }
    if (!s || s->replica != replica || s->expires_at <= now) {
        return std::nullopt;
    }
    return s;
}

bool SyncService::claim_request_counter(std::uint64_t replica, std::uint64_t counter,
                                        std::uint64_t cursor, std::int64_t now, Store& via) {
    if (m_shared) {
        return via.claim_counter(replica, counter, cursor, now);
    }
    // SQLite: the in-memory guard is the exact one (the lock serializes it); the store
    // keeps the counter for the next start.
    std::lock_guard lock(m_mutex);
    auto last = m_last_counter.find(replica);
    if (last == m_last_counter.end()) {
        const auto stored = m_store.device(replica);
        last = m_last_counter
                   .emplace(replica, known_counter(replica, stored ? stored->last_counter : 0))
                   .first;
    }
    if (counter <= last->second) {
        return false;
    }
    last->second = counter;
    mark_pull(replica, counter, cursor, now);
    return true;
}

void SyncService::mark_pull(std::uint64_t replica, std::uint64_t counter, std::uint64_t cursor,
                            std::int64_t now) {
    bool first = false;
    {
        std::lock_guard q(m_commit_mutex);
        first = m_pull_marks.empty();
        keep_mark(m_pull_marks, replica, counter, cursor, now);
    }
    if (first) {
        m_commit_cv.notify_one(); // the committer times the flush
    }
}

std::uint64_t SyncService::known_counter(std::uint64_t replica, std::uint64_t stored) {
    std::lock_guard q(m_commit_mutex);
    const auto it = m_pull_marks.find(replica);
    return std::max(stored, it == m_pull_marks.end() ? 0 : it->second.request_counter);
}

EndpointAnswer SyncService::open_session(const std::string& body) {
    if (body.size() > 4096) {
        return refusal(Error(ErrorCode::too_large, "session body over 4096 bytes"));
    }
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                      body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
        return refusal(Error(ErrorCode::malformed,
                             "expected a JSON object {protocol_version, replica, counter, "
                             "device_key, signature}"));
    }
    static constexpr std::string_view k_members[] = {"protocol_version", "replica", "counter",
                                                     "device_key", "signature"};
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        const std::string_view n(it->name.GetString(), it->name.GetStringLength());
        if (std::find(std::begin(k_members), std::end(k_members), n) == std::end(k_members)) {
            return refusal(Error(ErrorCode::unknown_field,
                                 "unknown member '" + std::string(n) + "'", std::string(n)));
        }
    }
    const auto number = [&](const char* name) -> std::optional<std::uint64_t> {
        const auto it = doc.FindMember(name);
        if (it == doc.MemberEnd() || !it->value.IsUint64()) {
            return std::nullopt;
        }
        return it->value.GetUint64();
    };
    const auto version = number("protocol_version");
    const auto replica = number("replica");
    const auto counter = number("counter");
    const auto device_key = string_member(doc, "device_key");
    const auto signature = string_member(doc, "signature");
    if (!version || !replica || !counter || !device_key || !signature) {
        return refusal(Error(ErrorCode::missing_field,
                             "protocol_version, replica and counter are whole numbers; "
                             "device_key and signature are base64 strings; all are required"));
    }
    const std::uint32_t lowest = std::max<std::uint32_t>(2, m_config.min_protocol);
    if (*version < lowest || *version > k_protocol_version) {
        return refusal(Error(ErrorCode::unsupported_protocol,
                             "sessions need protocol " + std::to_string(lowest) + " to " +
                                 std::to_string(k_protocol_version)),
                       "\"supported\":{\"min\":" + std::to_string(m_config.min_protocol) +
                           ",\"max\":" + std::to_string(k_protocol_version) + "}");
    }
    PublicKey kx{};
    Signature sig{};
    if (!decode_fixed(*device_key, kx)) {
        return refusal(
            Error(ErrorCode::malformed, "device_key must be base64 of 32 bytes", "device_key"));
    }
    if (!decode_fixed(*signature, sig)) {
        return refusal(
            Error(ErrorCode::malformed, "signature must be base64 of 64 bytes", "signature"));
    }
    const ReaderLease reader(lease_reader());
    const auto directory = m_directory.current(reader.store());
    const Device* device = directory->device(*replica);
    if (!device) {
        return refusal(Error(ErrorCode::unknown_device,
                             "no enrolled device has replica " + std::to_string(*replica)));
    }
    if (!verify(sig, session_hello_message(*replica, *counter, kx), device->public_key)) {
        return refusal(Error(ErrorCode::bad_signature, "signature does not verify"));
    }
    if (device->status != DeviceStatus::active) {
        return revoked(*replica, device->revoked_at);
    }
    const User* user = directory->find(device->user);
    if (!user || user->disabled) {
        return refusal(Error(ErrorCode::user_disabled, "the device's user is disabled"));
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    if (!claim_request_counter(*replica, *counter, device->cursor, now, reader.store())) {
        return refusal(Error(ErrorCode::replayed, "request counter " + std::to_string(*counter) +
                                                      " is not above the last one seen (replay)"));
    }
    const KxKeyPair server_kx = KxKeyPair::generate();
    const auto key = server_session_key(server_kx, kx);
    if (!key) {
        return refusal(
            Error(ErrorCode::invalid_value, "device_key is not a usable key", "device_key"));
    }
    DeviceSession s;
    randombytes_buf(s.id.data(), s.id.size());
    s.replica = *replica;
    s.key = *key;
    s.created_at = now;
    s.expires_at = now + m_config.session_ttl_ms;
    m_store.add_device_session(s);
    bool sweep = false;
    {
        std::lock_guard lock(m_session_mutex);
        m_sessions.emplace(s.id, s);
        if (now - m_sessions_swept_at > 10 * 60 * 1000) { // expired ones go now and then
            m_sessions_swept_at = now;
            std::erase_if(m_sessions, [&](const auto& e) { return e.second.expires_at <= now; });
            sweep = true;
        }
    }
    if (sweep) {
        m_store.delete_expired_device_sessions(now);
    }
    const Signature accept = sign(
        session_accept_message(*replica, *counter, kx, server_kx.public_key, s.id, s.expires_at));
    return EndpointAnswer{"application/json",
                          "{\"protocol_version\":" + std::to_string(k_protocol_version) +
                              ",\"session\":\"" + to_base64(s.id) + "\",\"server_key\":\"" +
                              to_base64(server_kx.public_key) +
                              "\",\"expires_at\":" + std::to_string(s.expires_at) +
                              ",\"signature\":\"" + to_base64(accept) + "\"}"};
}

EndpointAnswer SyncService::revoked(std::uint64_t replica, std::int64_t revoked_at) const {
    // Only after the device's own signature verified: nobody but the device learns of it.
    const Signature proof = sign(revocation_message(replica, revoked_at));
    return refusal(Error(ErrorCode::device_revoked, "this device has been revoked"),
                   "\"revocation\":{\"replica\":" + std::to_string(replica) + ",\"revoked_at\":" +
                       std::to_string(revoked_at) + ",\"signature\":\"" + to_base64(proof) + "\"}");
}

std::optional<EndpointAnswer>
SyncService::check_headers(const std::map<std::string, std::string>& headers, bool sync_media) {
    const ReaderLease reader(lease_reader());
    return open_envelope(headers, reader.store(), sync_media).refused;
}

void SyncService::read_page(Store& reads, const User& user, std::uint64_t replica,
                            std::uint64_t cursor, std::uint32_t page_size, SyncResponse& resp) {
    const std::uint32_t page =
        std::min(page_size ? page_size : m_config.default_page, m_config.max_page);
    resp.cursor = cursor;
    if (user.role == Role::technician) {
        auto rows = reads.feed_after(user.id, cursor, page + 1);
        resp.more = rows.size() > page;
        if (resp.more) {
            rows.resize(page);
        }
        std::vector<std::uint64_t> seqs;
        for (const auto& r : rows) {
            // Its own ops are skipped as live echoes, not in a history replayed on arrival.
            if (r.op_seq && (r.history || r.op_replica != replica)) {
                seqs.push_back(*r.op_seq);
            }
        }
        std::unordered_map<std::uint64_t, StoredOp> by_seq;
        for (auto& so : reads.ops_by_seq(seqs)) {
            by_seq.emplace(so.seq, std::move(so));
        }
        for (const auto& r : rows) {
            resp.cursor = r.fseq;
            if (r.evict) {
                resp.evicted.push_back({r.evict->first, r.evict->second});
            } else if (auto it = by_seq.find(*r.op_seq); it != by_seq.end()) {
                resp.ops.push_back({r.fseq, it->second.op});
            }
        }
        resp.remaining = reads.feed_count_after(user.id, resp.cursor);
    } else {
        auto ops = reads.ops_after(cursor, page + 1);
        resp.more = ops.size() > page;
        if (resp.more) {
            ops.resize(page);
        }
        for (auto& so : ops) {
            resp.cursor = so.seq;
            if (so.op.id.replica != replica) {
                resp.ops.push_back({so.seq, std::move(so.op)});
            }
        }
        const std::uint64_t last = reads.last_seq();
        resp.remaining = last > resp.cursor ? last - resp.cursor : 0;
    }
}

EndpointAnswer SyncService::sync(const std::string& path,
                                 const std::map<std::string, std::string>& headers,
                                 const std::string& body) {
    return *sync_impl(path, headers, body, nullptr, nullptr);
}

void SyncService::sync_async(const std::string& path,
                             const std::map<std::string, std::string>& headers,
                             const std::string& body, std::function<void(EndpointAnswer)> done) {
    PullWait wait;
    wait.wakes_seen = wakes(); // before the page is read: a commit after it is not missed
    auto maybe = sync_impl(path, headers, body, &wait, &done);
    if (!maybe) {
        return; // answered when its commit ends
    }
    EndpointAnswer answer = std::move(*maybe);
    if (!wait.wanted) {
        done(std::move(answer));
        return;
    }
    wait.done = std::move(done);
    wait.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait.wait_ms);
    if (!park(std::move(wait))) {
        wait.done(std::move(answer)); // going away: answer now
    }
}

std::uint64_t SyncService::wakes() {
    std::lock_guard lock(m_wait_mutex);
    return m_wakes;
}

bool SyncService::park(PullWait&& w) {
    std::lock_guard lock(m_wait_mutex);
    if (m_wait_stopping) {
        return false;
    }
    // Woken while it was reading (or before it came): it looks again at once. The waiter
    // is woken only when it must act sooner than it planned (not once per parked pull).
    w.woken = m_wakes != w.wakes_seen;
    const bool sooner = w.woken || w.deadline < m_waiter_until;
    m_any_woken = m_any_woken || w.woken;
    m_waiter_until = std::min(m_waiter_until, w.deadline);
    m_waits.push_back(std::move(w));
    if (sooner) {
        m_wait_cv.notify_one();
    }
    return true;
}

bool SyncService::nothing_new(const SyncResponse& resp, std::uint64_t cursor) {
    return resp.ops.empty() && resp.evicted.empty() && !resp.more && resp.cursor == cursor;
}

EndpointAnswer SyncService::pull_again(const PullWait& w, bool* nothing) {
    SyncResponse resp;
    resp.protocol_version = w.version;
    {
        const ReaderLease reader(lease_reader());
        read_page(reader.store(), w.user, w.replica, w.cursor, w.page_size, resp);
    }
    if (nothing) {
        *nothing = nothing_new(resp, w.cursor);
    }
    {
        std::lock_guard lock(m_mutex);
        resp.server_hlc = m_hlc->now();
    }
    return EndpointAnswer{w.json ? k_content_type_json : k_content_type_binary,
                          w.json ? to_json(resp) : encode_binary(resp)};
}

void SyncService::wake_waits(const std::set<Id>& users, bool any_op) {
    std::lock_guard lock(m_wait_mutex);
    ++m_wakes; // a wait reading its page meanwhile looks again when it parks
    bool woke = false;
    for (auto& w : m_waits) {
        // A technician waits for its feed; any other role reads the whole log.
        if (w.user.role == Role::technician ? users.contains(w.user.id) : any_op) {
            w.woken = true;
            woke = true;
        }
    }
    if (woke) {
        m_any_woken = true;
        m_wait_cv.notify_one();
    }
}

void SyncService::wake_every_wait(std::unique_lock<std::mutex>&) {
    ++m_wakes;
    for (auto& w : m_waits) {
        w.woken = true;
    }
    m_any_woken = !m_waits.empty();
}

void SyncService::listen(CommitListener& listener) {
    for (;;) {
        {
            std::lock_guard lock(m_wait_mutex);
            if (m_wait_stopping) {
                return;
            }
        }
        const std::optional<CommitNotice> n = listener.wait(250);
        if (!n) {
            continue;
        }
        if (n->all) {
            std::unique_lock lock(m_wait_mutex);
            wake_every_wait(lock);
            m_wait_cv.notify_one();
        } else {
            wake_waits(std::set<Id>(n->users.begin(), n->users.end()), n->any_op);
        }
    }
}

void SyncService::end_waits() {
    std::vector<PullWait> all;
    {
        std::lock_guard lock(m_wait_mutex);
        m_wait_stopping = true;
        all.swap(m_waits);
        m_wait_cv.notify_one();
    }
    for (auto& w : all) {
        try {
            w.done(pull_again(w));
        } catch (...) {
            w.done(refusal(Error(ErrorCode::internal, "the server is stopping")));
        }
    }
}

void SyncService::waiter() {
    using Clock = std::chrono::steady_clock;
    std::unique_lock lock(m_wait_mutex);
    // Shared store: the log's end when last looked at (a wait reads its page after this),
    // and when to look next: a period from now.
    std::uint64_t seen_seq = 0;
    if (m_shared) {
        lock.unlock();
        try {
            const ReaderLease reader(lease_reader());
            seen_seq = reader.store().last_seq();
        } catch (...) {
            seen_seq = 0; // the database is away: the first look wakes every wait
        }
        lock.lock();
    }
    const std::chrono::milliseconds look_every(m_listening ? m_config.shared_wait_backstop_ms
                                                           : m_config.shared_wait_poll_ms);
    auto next_look = Clock::now() + look_every;
    while (!m_wait_stopping) {
        auto until = Clock::now() + std::chrono::seconds(1);
        for (const auto& w : m_waits) {
            until = std::min(until, w.deadline);
        }
        if (m_shared && !m_waits.empty()) {
            until = std::min(until, next_look);
        }
        m_waiter_until = until;
        m_wait_cv.wait_until(
            lock, until, [&] { return m_wait_stopping || m_any_woken || m_waiter_until < until; });
        m_waiter_until = {};
        if (m_wait_stopping) {
            return;
        }
        m_any_woken = false; // the pass below takes every woken wait
        const auto now = Clock::now();
        if (m_shared && !m_waits.empty() && now >= next_look) {
            // Another instance's commits wake nobody here unless the store tells (listen):
            // the log's end is looked at now and then (one query for all the waits), and a
            // move wakes every wait.
            next_look = now + look_every;
            lock.unlock();
            std::uint64_t last = 0;
            try {
                const ReaderLease reader(lease_reader());
                last = reader.store().last_seq();
            } catch (...) {
                last = 0; // the database is away: the deadlines still answer
            }
            lock.lock();
            if (last != seen_seq) {
                seen_seq = last;
                wake_every_wait(lock);
            }
        }
        // One pass that keeps the others in place: tens of thousands of waits, and many
        // ending at once, cost a pass, not a move of the rest per ended wait.
        std::vector<PullWait> ready;
        auto kept = m_waits.begin();
        for (auto it = m_waits.begin(); it != m_waits.end(); ++it) {
            if (it->woken || it->deadline <= now) {
                it->wakes_seen = m_wakes;
                ready.push_back(std::move(*it));
            } else {
                if (kept != it) {
                    *kept = std::move(*it);
                }
                ++kept;
            }
        }
        m_waits.erase(kept, m_waits.end());
        lock.unlock();
        for (auto& w : ready) {
            EndpointAnswer a;
            bool nothing = false;
            try {
                a = pull_again(w, &nothing);
            } catch (const Error& e) {
                a = refusal(e);
            } catch (...) {
                a = refusal(Error(ErrorCode::internal, "the server could not read the feed"));
            }
            // Woken for nothing of its own (another technician's row): it waits on.
            if (nothing && w.deadline > Clock::now() && park(std::move(w))) {
                continue;
            }
            w.done(std::move(a));
        }
        lock.lock();
    }
}

std::optional<EndpointAnswer>
SyncService::sync_impl(const std::string& path, const std::map<std::string, std::string>& headers,
                       const std::string& body, PullWait* wait,
                       std::function<void(EndpointAnswer)>* later) {
    // The envelope and the refusals come from the session layer the devices share
    // (session.hpp): each refusal has its own code, so a device knows what to do, and only
    // a revocation carries the server's signed proof, the one answer on which a device
    // deletes data.
    namespace S = session;
    const auto refuse = [](ErrorCode code, const std::string& message) {
        return refusal(Error(code, message)); // the status the devices' table expects
    };
    // A shared store's pulls read on a connection of their own: nothing of a pull waits
    // behind the writer's transaction.
    std::optional<ReaderLease> reader(lease_reader());
    auto gate = open_envelope(headers, reader->store());
    if (gate.refused) {
        return std::move(*gate.refused);
    }
    const auto& envelope = gate.envelope;
    const bool json = gate.json;
    const Device* device = gate.device;
    const auto replica = std::optional(envelope->replica);
    const auto counter = std::optional(envelope->counter);
    auto admitted = admit(gate, path, body);
    if (auto* no = std::get_if<EndpointAnswer>(&admitted)) {
        return std::move(*no);
    }
    const User* user = std::get<const User*>(admitted);
    std::uint32_t version = 0;
    try {
        version = peek_protocol_version(body, json, m_config.limits);
    } catch (const Error& e) {
        return refusal(e);
    }
    if (version < m_config.min_protocol || version > k_protocol_version) {
        return refusal(
            Error(ErrorCode::unsupported_protocol, "protocol version " + std::to_string(version) +
                                                       " is not supported; update the app"),
            "\"supported\":{\"min\":" + std::to_string(m_config.min_protocol) +
                ",\"max\":" + std::to_string(k_protocol_version) + "}");
    }
    SyncRequest req;
    try {
        req = json ? sync_request_from_json(body, m_config.limits)
                   : decode_sync_request(body, m_config.limits);
    } catch (const Error& e) {
        return refusal(e);
    }
    if (req.replica != *replica || req.request_counter != *counter) {
        return refusal(Error(ErrorCode::invalid_argument,
                             "replica and request counter in the body differ from the headers"));
    }
    // Protocol 2: ops come with the device's own signature over them, kept with the batch.
    std::optional<OpBatch> batch;
    if (req.protocol_version >= 2 && !req.ops.empty()) {
        if (req.ops_signature.size() != Signature{}.size()) {
            return refusal(Error(ErrorCode::missing_field,
                                 "a request with ops carries the device's signature over them",
                                 "ops_signature"));
        }
        batch.emplace();
        batch->replica = *replica;
        batch->request_counter = *counter;
        std::copy(req.ops_signature.begin(), req.ops_signature.end(), batch->signature.begin());
        std::vector<Hash256> leaves;
        leaves.reserve(req.ops.size());
        batch->leaves.reserve(req.ops.size());
        for (const Op& op : req.ops) {
            leaves.push_back(op_leaf(op));
            batch->leaves.emplace_back(op.id, leaves.back());
        }
        if (!verify(batch->signature, ops_signing_string(leaves), device->public_key)) {
            return refusal(Error(ErrorCode::invalid_value,
                                 "ops_signature does not verify with the device's key",
                                 "ops_signature"));
        }
        batch->received_at = static_cast<std::int64_t>(m_clock.now_ms());
    }
    // From here on the request is accepted; what its answer needs after the commit is
    // kept together, since the commit may end on another thread (sync_async).
    auto a = std::make_shared<Accepted>();
    a->user = *user;
    a->replica = *replica;
    a->counter = *counter;
    a->json = json;
    a->batch = std::move(batch);
    a->now = static_cast<std::int64_t>(m_clock.now_ms());
    a->resp.protocol_version = req.protocol_version; // a device reads its own version's answer
    a->req = std::move(req);
    const SyncRequest& r = a->req;
    const auto now = a->now;
    std::shared_ptr<PendingCommit> pending;
    if (m_shared && r.ops.empty()) {
        // A pull writes no field fact: its counter is claimed on the reader, atomically
        // against every instance's write transactions (Store::claim_counter), and it goes
        // through no write transaction of its own.
        if (!reader->store().claim_counter(*replica, *counter, r.cursor, now)) {
            return refuse(ErrorCode::replayed, "request counter " + std::to_string(*counter) +
                                                   " is not above the last one seen (replay)");
        }
        std::lock_guard lock(m_mutex);
        try {
            m_hlc->receive(r.hlc);
        } catch (const Error&) {
            // The device's clock is far ahead: nothing of it is kept.
        }
    } else if (m_shared) {
        // Merged by the committer in the database's write transaction: the replay guard
        // reads the device's counter there, so two instances cannot both accept it. The
        // reader goes back meanwhile (the commit may take a while; other pulls use it).
        reader.reset();
        pending = std::make_shared<PendingCommit>();
        pending->merge = [this, a](PendingCommit& p) {
            auto [seen, first] = m_last_counter.try_emplace(a->replica, 0);
            if (first) {
                seen->second = m_store.locked_counter(a->replica);
            }
            if (a->counter <= seen->second) {
                p.refusal =
                    Error(ErrorCode::replayed, "request counter " + std::to_string(a->counter) +
                                                   " is not above the last one seen (replay)");
                return;
            }
            seen->second = a->counter;
            try {
                m_hlc->receive(a->req.hlc);
            } catch (const Error&) {
                // The device's clock is far ahead: its ops are refused one by one.
            }
            p.results = merge_batch(p, Actor{a->user.id, a->user.role, a->replica}, a->req.ops,
                                    a->counter, a->req.cursor, a->now, std::move(a->batch));
        };
        if (later) {                   // answered by the committer's completion, on the executor
            defer(pending, a, *later); // before it is queued: always taken
            queue_commit(pending);
            return std::nullopt;
        }
        merge_and_commit(pending);
        if (pending->refusal) {
            return refusal(*pending->refusal);
        }
        a->resp.results = std::move(pending->results);
    }
    // The replay guard starts from the counter the store holds, read (outside the lock) the
    // first time this device is seen since start or since a failed commit cleared them.
    bool known = m_shared;
    if (!m_shared) {
        std::lock_guard lock(m_mutex);
        known = m_last_counter.contains(*replica);
    }
    std::optional<std::uint64_t> stored_counter;
    if (!known) {
        const auto fresh = m_store.device(*replica);
        stored_counter = fresh ? fresh->last_counter : 0;
    }
    if (!m_shared) {
        std::lock_guard lock(m_mutex);
        ensure_fresh();
        // Replay guard: validation and merge are serialized by the lock, so the in-memory
        // counter is exact; the store persists it with the request's ops.
        auto last_counter = m_last_counter.find(*replica);
        if (last_counter == m_last_counter.end()) {
            if (!stored_counter) { // cleared since we looked (a failed commit): rare
                const auto fresh = m_store.device(*replica);
                stored_counter = fresh ? fresh->last_counter : 0;
            }
            last_counter =
                m_last_counter.emplace(*replica, known_counter(*replica, *stored_counter)).first;
        }
        if (*counter <= last_counter->second) {
            return refuse(ErrorCode::replayed, "request counter " + std::to_string(*counter) +
                                                   " is not above the last one seen (replay)");
        }
        last_counter->second = *counter;
        try {
            m_hlc->receive(r.hlc);
        } catch (const Error&) {
            // The device's clock is far ahead: its ops are refused one by one below.
        }
        if (r.ops.empty()) {
            mark_pull(*replica, *counter, r.cursor, now); // no commit to wait for
        } else {
            const Actor actor{user->id, user->role, *replica};
            auto [results, p] =
                apply_batch(actor, r.ops, *counter, r.cursor, now, std::move(a->batch));
            a->resp.results = std::move(results);
            pending = std::move(p);
        }
    }
    // Acknowledge only what is durable; other requests merge meanwhile and share the commit.
    if (!m_shared && pending) {
        reader.reset();
        if (later && defer(pending, a, *later)) {
            return std::nullopt;
        }
        wait_commit(pending);
    }
    return finish(*a, reader, wait);
}

void SyncService::answer_committed(Accepted& a, PendingCommit& p,
                                   const std::function<void(EndpointAnswer)>& done) {
    EndpointAnswer answer;
    try {
        settle(p);
        if (p.merge_error) {
            std::rethrow_exception(p.merge_error);
        }
        if (p.refusal) {
            answer = refusal(*p.refusal);
        } else {
            if (m_shared) {
                a.resp.results = std::move(p.results);
            }
            std::optional<ReaderLease> reader;
            answer = finish(a, reader, nullptr); // a request with ops never waits
        }
    } catch (const Error& e) {
        answer = refusal(e);
    } catch (const std::exception&) {
        answer = refusal(Error(ErrorCode::internal, "the request could not be answered"));
    }
    done(std::move(answer));
}

EndpointAnswer SyncService::finish(Accepted& a, std::optional<ReaderLease>& reader,
                                   PullWait* wait) {
    const SyncRequest& req = a.req;
    SyncResponse& resp = a.resp;
    // Pull: the technician's feed, or the whole log for office devices.
    if (!reader) {
        reader.emplace(lease_reader());
    }
    Store& reads = reader->store();
    read_page(reads, a.user, a.replica, req.cursor, req.page_size, resp);
    std::vector<OpId> acked;
    for (const auto& r : resp.results) {
        if (r.status != OpStatus::rejected) {
            acked.push_back(r.id);
        }
    }
    if (!acked.empty()) { // a receipt proves ops arrived; a pull acknowledges none
        const Signature receipt =
            otsync::sign(receipt_message(a.replica, a.counter, acked), m_key.secret);
        resp.receipt.assign(receipt.begin(), receipt.end());
    }
    {
        std::lock_guard lock(m_mutex);
        resp.server_hlc = m_hlc->now();
    }
    // Long-poll: a pull that found nothing and asked to wait is answered when its feed
    // has something, or at its deadline (sync_async).
    if (wait && req.protocol_version >= 2 && req.wait_ms > 0 && m_config.max_wait_ms > 0 &&
        req.ops.empty() && nothing_new(resp, req.cursor)) {
        wait->wanted = true;
        wait->user = a.user;
        wait->replica = a.replica;
        wait->cursor = req.cursor;
        wait->page_size = req.page_size;
        wait->version = req.protocol_version;
        wait->json = a.json;
        wait->wait_ms = std::min(req.wait_ms, m_config.max_wait_ms);
    }
    return EndpointAnswer{a.json ? k_content_type_json : k_content_type_binary,
                          a.json ? to_json(resp) : encode_binary(resp)};
}

} // namespace otsync::server
