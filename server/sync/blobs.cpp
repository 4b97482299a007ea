// Attachments on the sync service (docs/protocol.md §2.8): a device's resumable upload of
// the blobs its ops reference, and who may see a blob (docs/api.md, attachments).
#include "sync/sync_service.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstring>

namespace otsync::server {

namespace {

EndpointAnswer refused(Error e) {
    EndpointAnswer a;
    a.refusal = std::move(e);
    return a;
}

/// {"hash","size","received","complete"}: what the server holds of the blob.
EndpointAnswer held(const Hash256& hash, std::uint64_t size, std::uint64_t received) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("hash");
    const std::string hex = to_hex(hash);
    w.String(hex.c_str(), static_cast<rapidjson::SizeType>(hex.size()));
    w.Key("size");
    w.Uint64(size);
    w.Key("received");
    w.Uint64(received);
    w.Key("complete");
    w.Bool(received == size);
    w.EndObject();
    return EndpointAnswer{"application/json", sb.GetString()};
}

constexpr RoleMask bits(std::initializer_list<Role> roles) {
    RoleMask m = 0;
    for (Role r : roles) {
        m = static_cast<RoleMask>(m | role_bit(r));
    }
    return m;
}

/// Who may see each kind of attachment (a technician besides: only within his scope).
RoleMask viewers(attachment::Kind k) {
    using R = Role;
    using K = attachment::Kind;
    const RoleMask office = bits({R::back_office, R::supervisor, R::system});
    switch (k) {
    case K::customer_signature:
    case K::technician_signature:
    case K::clerk_signature:
    case K::equipment_photo:
        return office | role_bit(R::warehouse_clerk) | role_bit(R::technician);
    case K::requirement_scan:
        return office | bits({R::customer_service, R::commercial_head, R::sales_executive,
                              R::platform_officer, R::commercial_advisor});
    }
    return 0;
}

} // namespace

std::size_t SyncService::HashKey::operator()(const Hash256& h) const noexcept {
    std::size_t v = 0;
    std::memcpy(&v, h.data(), sizeof v); // a hash: its bytes are already spread
    return v;
}

bool SyncService::may_send_blob(const User& user, const BlobRef& ref) const {
    if (user.role != Role::technician) {
        return (viewers(ref.kind) & role_bit(user.role)) != 0;
    }
    if (has_in_scope(user.id, ref.entity_type, ref.entity)) {
        return true;
    }
    // A former assignee's signature or photo is a field fact too: it still arrives.
    if (ref.entity_type == EntityType::work_order) {
        const auto it = m_past_techs.find(ref.entity);
        return it != m_past_techs.end() && it->second.contains(user.id);
    }
    return ref.entity_type == EntityType::collected_item &&
           link_of(ref.entity_type, ref.entity, "collected_by") == user.id;
}

std::vector<BlobRef> SyncService::blob_refs(const Hash256& hash) {
    std::vector<BlobRef> out = m_store.blob_refs(hash);
    std::lock_guard lock(m_mutex);
    ensure_fresh();
    if (m_shared) {
        catch_up();
    }
    if (const auto it = m_blob_index.find(hash); it != m_blob_index.end()) {
        for (const BlobRef& r : it->second) {
            if (std::find(out.begin(), out.end(), r) == out.end()) {
                out.push_back(r);
            }
        }
    }
    return out;
}

bool SyncService::may_view_blob(const User& user, const std::vector<BlobRef>& refs) {
    if (user.disabled) {
        return false;
    }
    std::lock_guard lock(m_mutex);
    return std::any_of(refs.begin(), refs.end(), [&](const BlobRef& r) {
        if ((viewers(r.kind) & role_bit(user.role)) == 0) {
            return false;
        }
        // A technician sees what his scope holds now (a reassigned OT's photos go with it).
        return user.role != Role::technician || has_in_scope(user.id, r.entity_type, r.entity);
    });
}

void SyncService::keep_blob(std::string_view data, attachment::MediaType media,
                            const std::vector<BlobRef>& refs) {
    if (refs.empty()) {
        throw Error(ErrorCode::internal, "a blob is kept with what references it");
    }
    const std::lock_guard staging(m_blob_mutex);
    m_store.store_blob(refs.front().hash,
                       StoredBlob{media, data.size(), static_cast<std::int64_t>(m_clock.now_ms())},
                       data, refs);
}

EndpointAnswer SyncService::upload_blob(const std::string& path,
                                        const std::map<std::string, std::string>& headers,
                                        const std::string& body) {
    const auto target = attachment::parse_upload_path(path);
    if (!target) {
        return refused(Error(ErrorCode::invalid_argument,
                             "an upload goes to /v1/blobs/<64 lowercase hex digits: the blob's "
                             "BLAKE2b-256>/<its size>/<the chunk's offset>"));
    }
    User caller;
    {
        std::optional<ReaderLease> reader(lease_reader());
        auto gate = open_envelope(headers, reader->store(), false);
        if (gate.refused) {
            return std::move(*gate.refused);
        }
        auto admitted = admit(gate, path, body);
        if (auto* no = std::get_if<EndpointAnswer>(&admitted)) {
            return std::move(*no);
        }
        caller = *std::get<const User*>(admitted); // the snapshot it lives in goes with the gate
        const auto now = static_cast<std::int64_t>(m_clock.now_ms());
        if (!claim_request_counter(gate.envelope->replica, gate.envelope->counter,
                                   gate.device->cursor, now, reader->store())) {
            return refused(Error(ErrorCode::replayed,
                                 "request counter " + std::to_string(gate.envelope->counter) +
                                     " is not above the last one seen (replay)"));
        }
    }
    // The ops come first: a blob is taken only when a record of the device's scope names it.
    const std::vector<BlobRef> refs = blob_refs(target->hash);
    bool allowed = false;
    {
        std::lock_guard lock(m_mutex);
        allowed = std::any_of(refs.begin(), refs.end(),
                              [&](const BlobRef& r) { return may_send_blob(caller, r); });
    }
    if (refs.empty()) {
        return refused(Error(ErrorCode::not_found, "no record references blob " +
                                                       to_hex(target->hash) +
                                                       ": the ops that name it are sent first"));
    }
    if (!allowed) {
        return refused(Error(ErrorCode::permission_denied,
                             "blob " + to_hex(target->hash) +
                                 " belongs to records outside this device's scope"));
    }
    // One kind's limits: the largest of the kinds that reference it.
    const attachment::KindLimits* limits = &m_config.attachments.of(refs.front().kind);
    for (const BlobRef& r : refs) {
        if (m_config.attachments.of(r.kind).max_bytes > limits->max_bytes) {
            limits = &m_config.attachments.of(r.kind);
        }
    }
    if (target->size == 0 || target->size > limits->max_bytes) {
        return refused(Error(ErrorCode::too_large,
                             "a " + std::string(attachment::kind_name(refs.front().kind)) +
                                 " is at most " + std::to_string(limits->max_bytes) + " bytes"));
    }
    if (body.size() > m_config.max_chunk_bytes) {
        return refused(
            Error(ErrorCode::too_large,
                  "a chunk is at most " + std::to_string(m_config.max_chunk_bytes) + " bytes"));
    }
    if (target->offset > target->size || body.size() > target->size - target->offset) {
        return refused(Error(ErrorCode::invalid_argument, "the chunk ends past the blob's size"));
    }
    const std::lock_guard staging(m_blob_mutex);
    if (const auto kept = m_store.blob_info(target->hash)) {
        if (kept->size != target->size) {
            return refused(
                Error(ErrorCode::invalid_argument, "blob " + to_hex(target->hash) + " has " +
                                                       std::to_string(kept->size) + " bytes, not " +
                                                       std::to_string(target->size)));
        }
        m_store.add_blob_refs(refs);
        return held(target->hash, target->size, target->size); // sent before: nothing to add
    }
    std::uint64_t staged = m_store.staged_bytes(target->hash);
    const std::uint64_t end = target->offset + body.size();
    if (target->offset <= staged && end > staged) {
        // What is new in this chunk (a resent chunk may overlap what arrived already).
        m_store.stage_chunk(target->hash, staged,
                            std::string_view(body).substr(staged - target->offset));
        staged = end;
    }
    if (staged < target->size) {
        return held(target->hash, target->size, staged);
    }
    const std::string data = m_store.staged_blob(target->hash);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data.data());
    if (data.size() != target->size ||
        attachment::blob_hash({bytes, data.size()}) != target->hash) {
        m_store.drop_staged(target->hash);
        return refused(Error(ErrorCode::invalid_value, "the bytes received do not hash to " +
                                                           to_hex(target->hash) +
                                                           ": send the blob again from offset 0"));
    }
    attachment::MediaType media{};
    try {
        media = attachment::check(refs.front().kind, {bytes, data.size()}, m_config.attachments);
    } catch (const Error& e) {
        m_store.drop_staged(target->hash);
        return refused(e);
    }
    m_store.store_blob(target->hash,
                       StoredBlob{media, data.size(), static_cast<std::int64_t>(m_clock.now_ms())},
                       data, refs);
    return held(target->hash, target->size, target->size);
}

} // namespace otsync::server
