// The binary encoding (application/x-otsync) on cereal's portable binary archive.
//
// Layout (docs/protocol.md has the full spec):
//   cereal endianness byte, u8 message type ('Q' request, 'P' response, 'B' op batch),
//   u32 protocol version, then the message. Fixed-width fields are little endian as
//   cereal writes them; counts, lengths and op fields are LEB128 varints (zigzag for
//   signed) written byte by byte through the archive.
//
// An op batch is delta-coded against the previous op in the same message: replica and
// counter often repeat or step by one, HLC is a signed delta, and authors and entities
// are written once and then referred to by index. That is what keeps a typical op near
// a dozen bytes (target: <= 34 bytes/op). From version 2 an id value is one more entry
// of the entity table: written raw the first time, then referred to (value tag 8), so a
// row's OT, handover and signature cost a byte or two once the message has named them.
#include "otsync/codec.hpp"

#include "otsync/model.hpp"

#include <cereal/archives/portable_binary.hpp>

#include <sstream>
#include <streambuf>
#include <unordered_map>

namespace otsync {

namespace {

constexpr std::uint8_t k_msg_request = 'Q';
constexpr std::uint8_t k_msg_response = 'P';
constexpr std::uint8_t k_msg_batch = 'B';
/// Version 2: a value that is an entry of the message's entity table (a varint index).
constexpr std::uint8_t k_value_id_ref = 8;

// Op header bits.
constexpr std::uint8_t k_kind_mask = 0x03;
constexpr std::uint8_t k_same_replica = 0x04;
constexpr std::uint8_t k_next_counter = 0x08;
constexpr std::uint8_t k_author_ref = 0x10;
constexpr std::uint8_t k_entity_ref = 0x20;
constexpr std::uint8_t k_has_observed = 0x40;
constexpr std::uint8_t k_same_entity = 0x80;

std::uint64_t zigzag(std::int64_t v) {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) {
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

/// Read-only streambuf over caller memory: no copy, and remaining() is exact.
class SpanBuf : public std::streambuf {
public:
    explicit SpanBuf(std::string_view s) {
        char* p = const_cast<char*>(s.data()); // never written: this buffer has no put area
        setg(p, p, p + s.size());
    }
    std::size_t remaining() const { return static_cast<std::size_t>(egptr() - gptr()); }
};

class Writer {
public:
    explicit Writer(std::ostream& os) : m_ar(os) {}

    void u8(std::uint8_t v) { m_ar(v); }
    void u32(std::uint32_t v) { m_ar(v); }
    void u64(std::uint64_t v) { m_ar(v); }
    void varint(std::uint64_t v) {
        std::uint8_t buf[10];
        std::size_t n = 0;
        do {
            std::uint8_t b = v & 0x7F;
            v >>= 7;
            buf[n++] = static_cast<std::uint8_t>(b | (v ? 0x80 : 0));
        } while (v);
        raw(buf, n);
    }
    void raw(const void* p, std::size_t n) {
        if (n) {
            // A byte pointer, so cereal's element size is 1 (a void*& would make it 8).
            m_ar(cereal::binary_data(static_cast<const std::uint8_t*>(p), n));
        }
    }
    void blob(const void* p, std::size_t n) {
        varint(n);
        raw(p, n);
    }
    void id(const Id& id) { raw(id.bytes.data(), id.bytes.size()); }

private:
    cereal::PortableBinaryOutputArchive m_ar;
};

class Reader {
public:
    Reader(std::string_view bytes, const CodecLimits& limits)
        : m_buf(check_endianness(bytes)), m_is(&m_buf), m_ar(m_is), m_limits(limits) {}

    const CodecLimits& limits() const { return m_limits; }
    std::size_t remaining() const { return m_buf.remaining(); }

    std::uint8_t u8() { return fixed<std::uint8_t>(); }
    std::uint32_t u32() { return fixed<std::uint32_t>(); }
    std::uint64_t u64() { return fixed<std::uint64_t>(); }
    /// A fixed-size integer, once its bytes are known to be there.
    template <typename T>
    T fixed() {
        T v;
        need(sizeof(T));
        m_ar(v);
        return v;
    }
    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            const std::uint8_t b = u8();
            if (shift == 63 && b > 1) {
                throw Error(ErrorCode::malformed, "varint overflows 64 bits");
            }
            v |= std::uint64_t{b & 0x7Fu} << shift;
            if (!(b & 0x80)) {
                return v;
            }
        }
        throw Error(ErrorCode::malformed, "varint longer than 10 bytes");
    }
    /// A count bounded by `limit`, checked before anything is allocated for it.
    std::size_t count(std::size_t limit, const char* what) {
        const std::uint64_t n = varint();
        if (n > limit) {
            throw Error(ErrorCode::too_large, std::string(what) + ": " + std::to_string(n) +
                                                  " exceeds the limit of " + std::to_string(limit));
        }
        // Every element takes at least one byte: a count above the bytes left is a lie.
        if (n > remaining()) {
            throw Error(ErrorCode::truncated, std::string(what) + ": count beyond end of input");
        }
        return static_cast<std::size_t>(n);
    }
    void raw(void* p, std::size_t n) {
        if (n) {
            need(n);
            // A byte pointer, so cereal's element size is 1: with a void*& it would be 8
            // and a byte-swapping (big-endian) stream would swap past the buffer's end.
            m_ar(cereal::binary_data(static_cast<std::uint8_t*>(p), n));
        }
    }
    std::string text(std::size_t limit, const char* what) {
        const std::uint64_t n = varint();
        check_len(n, limit, what);
        std::string s(static_cast<std::size_t>(n), '\0');
        raw(s.data(), s.size());
        if (!is_valid_utf8(s)) {
            throw Error(ErrorCode::invalid_utf8, std::string(what) + " is not valid UTF-8");
        }
        return s;
    }
    std::vector<std::uint8_t> bytes(std::size_t limit, const char* what) {
        const std::uint64_t n = varint();
        check_len(n, limit, what);
        std::vector<std::uint8_t> b(static_cast<std::size_t>(n));
        raw(b.data(), b.size());
        return b;
    }
    Id id() {
        Id id;
        raw(id.bytes.data(), id.bytes.size());
        return id;
    }
    void finish() {
        if (remaining() != 0) {
            throw Error(ErrorCode::malformed,
                        std::to_string(remaining()) + " bytes after the end of the message");
        }
    }

private:
    /// cereal's first byte says the writer's byte order; ours always write little
    /// endian (1), so anything else is not our message.
    static std::string_view check_endianness(std::string_view bytes) {
        if (bytes.empty()) {
            throw Error(ErrorCode::truncated, "empty message");
        }
        if (bytes[0] != 1) {
            throw Error(ErrorCode::malformed, "not a little-endian otsync message");
        }
        return bytes;
    }
    void need(std::size_t n) {
        if (remaining() < n) {
            throw Error(ErrorCode::truncated, "input ends in the middle of the message");
        }
    }
    void check_len(std::uint64_t n, std::size_t limit, const char* what) {
        if (n > limit) {
            throw Error(ErrorCode::too_large, std::string(what) + " of " + std::to_string(n) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(limit));
        }
        need(static_cast<std::size_t>(n));
    }

    SpanBuf m_buf;
    std::istream m_is;
    cereal::PortableBinaryInputArchive m_ar;
    const CodecLimits& m_limits;
};

// ---- values ---------------------------------------------------------------------------------

void write_value(Writer& w, const Value& v) {
    w.u8(static_cast<std::uint8_t>(v.index()));
    std::visit(
        [&](const auto& x) {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, bool>) {
                w.u8(x ? 1 : 0);
            } else if constexpr (std::is_same_v<X, std::int64_t>) {
                w.varint(zigzag(x));
            } else if constexpr (std::is_same_v<X, Money>) {
                w.varint(zigzag(x.centavos));
            } else if constexpr (std::is_same_v<X, Timestamp>) {
                w.varint(zigzag(x.ms));
            } else if constexpr (std::is_same_v<X, std::string>) {
                w.blob(x.data(), x.size());
            } else if constexpr (std::is_same_v<X, Bytes>) {
                w.blob(x.data.data(), x.data.size());
            } else if constexpr (std::is_same_v<X, Id>) {
                w.id(x);
            }
        },
        v);
}

/// The value after its tag byte.
Value read_value(Reader& r, std::uint8_t tag) {
    switch (static_cast<ValueType>(tag)) {
    case ValueType::null:
        return std::monostate{};
    case ValueType::boolean: {
        const auto b = r.u8();
        if (b > 1) {
            throw Error(ErrorCode::malformed, "bool value other than 0 or 1");
        }
        return b == 1;
    }
    case ValueType::int64:
        return unzigzag(r.varint());
    case ValueType::money:
        return Money{unzigzag(r.varint())};
    case ValueType::text:
        return r.text(r.limits().max_text_bytes, "text value");
    case ValueType::bytes:
        return Bytes{r.bytes(r.limits().max_bytes_value, "bytes value")};
    case ValueType::id:
        return r.id();
    case ValueType::timestamp:
        return Timestamp{unzigzag(r.varint())};
    }
    throw Error(ErrorCode::malformed, "unknown value type");
}

// ---- op batches -----------------------------------------------------------------------------

class OpEncoder {
public:
    OpEncoder(Writer& w, std::uint32_t version) : m_w(w), m_id_refs(version >= 2) {}

    void op(const Op& op) {
        std::uint8_t h = static_cast<std::uint8_t>(op.kind) & k_kind_mask;
        const bool same_replica = m_any && op.id.replica == m_prev.id.replica;
        if (same_replica) {
            h |= k_same_replica;
            if (m_prev.id.counter != UINT64_MAX && op.id.counter == m_prev.id.counter + 1) {
                h |= k_next_counter;
            }
        }
        const auto author = m_authors.find(op.author);
        if (author != m_authors.end()) {
            h |= k_author_ref;
        }
        const bool same_entity =
            m_any && op.entity == m_prev.entity && op.entity_type == m_prev.entity_type;
        auto entity = m_entities.end();
        if (same_entity) {
            h |= k_same_entity;
        } else {
            entity = m_entities.find(op.entity);
            if (entity != m_entities.end()) {
                h |= k_entity_ref;
            }
        }
        if (!op.observed.empty()) {
            h |= k_has_observed;
        }
        m_w.u8(h);
        if (!same_replica) {
            m_w.varint(op.id.replica);
        }
        if (!(h & k_next_counter)) {
            m_w.varint(op.id.counter);
        }
        m_w.varint(zigzag(static_cast<std::int64_t>(op.hlc - m_prev.hlc)));
        if (author != m_authors.end()) {
            m_w.varint(author->second);
        } else {
            m_w.id(op.author);
            m_authors.emplace(op.author, m_authors.size());
        }
        if (!same_entity) {
            m_w.u8(static_cast<std::uint8_t>(op.entity_type));
            if (entity != m_entities.end()) {
                m_w.varint(entity->second);
            } else {
                m_w.id(op.entity);
                m_entities.emplace(op.entity, m_entities.size());
            }
        }
        m_w.varint(op.field);
        if (const Id* id = std::get_if<Id>(&op.value); id && m_id_refs) {
            if (const auto known = m_entities.find(*id); known != m_entities.end()) {
                m_w.u8(k_value_id_ref);
                m_w.varint(known->second);
            } else {
                write_value(m_w, op.value);
                m_entities.emplace(*id, m_entities.size());
            }
        } else {
            write_value(m_w, op.value);
        }
        if (!op.observed.empty()) {
            m_w.varint(op.observed.size());
            for (const auto& t : op.observed) {
                m_w.varint(t.replica);
                m_w.varint(t.counter);
            }
        }
        m_prev.id = op.id;
        m_prev.hlc = op.hlc;
        m_prev.entity = op.entity;
        m_prev.entity_type = op.entity_type;
        m_any = true;
    }

private:
    Writer& m_w;
    const bool m_id_refs; // version 2: id values share the entity table
    Op m_prev;            // only id, hlc, entity and entity_type are used
    bool m_any = false;
    std::unordered_map<Id, std::size_t> m_authors;
    std::unordered_map<Id, std::size_t> m_entities;
};

class OpDecoder {
public:
    OpDecoder(Reader& r, std::uint32_t version) : m_r(r), m_id_refs(version >= 2) {}

    Op op() {
        Op op;
        const std::uint8_t h = m_r.u8();
        op.kind = static_cast<OpKind>(h & k_kind_mask);
        if ((h & (k_same_replica | k_next_counter | k_same_entity)) && !m_any) {
            throw Error(ErrorCode::malformed, "first op refers to a previous one");
        }
        if ((h & k_next_counter) && !(h & k_same_replica)) {
            throw Error(ErrorCode::malformed, "counter step without the same replica");
        }
        if ((h & k_same_entity) && (h & k_entity_ref)) {
            throw Error(ErrorCode::malformed, "contradictory entity flags");
        }
        op.id.replica = (h & k_same_replica) ? m_prev_id.replica : m_r.varint();
        if (h & k_next_counter) {
            if (m_prev_id.counter == UINT64_MAX) {
                throw Error(ErrorCode::malformed, "op counter overflows");
            }
            op.id.counter = m_prev_id.counter + 1;
        } else {
            op.id.counter = m_r.varint();
        }
        op.hlc = m_prev_hlc + static_cast<std::uint64_t>(unzigzag(m_r.varint()));
        if (h & k_author_ref) {
            op.author = table_entry(m_authors, m_r.varint(), "author");
        } else {
            op.author = m_r.id();
            m_authors.push_back(op.author);
        }
        if (h & k_same_entity) {
            op.entity_type = m_prev_type;
            op.entity = m_prev_entity;
        } else {
            op.entity_type = static_cast<EntityType>(m_r.u8());
            if (h & k_entity_ref) {
                op.entity = table_entry(m_entities, m_r.varint(), "entity");
            } else {
                op.entity = m_r.id();
                m_entities.push_back(op.entity);
            }
        }
        const std::uint64_t field = m_r.varint();
        if (field > UINT16_MAX) {
            throw Error(ErrorCode::malformed, "field number out of range");
        }
        op.field = static_cast<FieldId>(field);
        const std::uint8_t tag = m_r.u8();
        if (tag == k_value_id_ref && m_id_refs) {
            op.value = table_entry(m_entities, m_r.varint(), "id value");
        } else {
            op.value = read_value(m_r, tag);
            if (const Id* id = std::get_if<Id>(&op.value); id && m_id_refs) {
                m_entities.push_back(*id);
            }
        }
        if (h & k_has_observed) {
            const std::size_t n = m_r.count(m_r.limits().max_observed, "observed tags");
            if (n == 0) {
                throw Error(ErrorCode::malformed, "empty observed list with its flag set");
            }
            for (std::size_t i = 0; i < n; ++i) {
                OpId t;
                t.replica = m_r.varint();
                t.counter = m_r.varint();
                op.observed.push_back(t);
            }
        }
        m_prev_id = op.id;
        m_prev_hlc = op.hlc;
        m_prev_type = op.entity_type;
        m_prev_entity = op.entity;
        m_any = true;
        return op;
    }

private:
    static const Id& table_entry(const std::vector<Id>& table, std::uint64_t i, const char* what) {
        if (i >= table.size()) {
            throw Error(ErrorCode::malformed, std::string(what) + " reference out of range");
        }
        return table[static_cast<std::size_t>(i)];
    }

    Reader& m_r;
    const bool m_id_refs;
    bool m_any = false;
    OpId m_prev_id;
    HlcTime m_prev_hlc = 0;
    EntityType m_prev_type{};
    Id m_prev_entity;
    std::vector<Id> m_authors;
    std::vector<Id> m_entities;
};

void write_ops(Writer& w, std::span<const Op> ops, std::uint32_t version) {
    w.varint(ops.size());
    OpEncoder enc(w, version);
    for (const auto& op : ops) {
        enc.op(op);
    }
}

std::vector<Op> read_ops(Reader& r, std::uint32_t version) {
    const std::size_t n = r.count(r.limits().max_ops, "ops");
    std::vector<Op> ops;
    OpDecoder dec(r, version);
    for (std::size_t i = 0; i < n; ++i) {
        ops.push_back(dec.op());
    }
    return ops;
}

void write_header(Writer& w, std::uint8_t type, std::uint32_t version) {
    w.u8(type);
    w.u32(version);
}

std::uint32_t read_header(Reader& r, std::uint8_t type) {
    if (r.u8() != type) {
        throw Error(ErrorCode::malformed, "not an otsync message of the expected type");
    }
    const std::uint32_t version = r.u32();
    if (version < k_protocol_min || version > k_protocol_version) {
        throw Error(ErrorCode::unsupported_protocol, "protocol version " + std::to_string(version) +
                                                         " is not supported (" +
                                                         std::to_string(k_protocol_min) + "-" +
                                                         std::to_string(k_protocol_version) + ")");
    }
    return version;
}

template <class F>
auto guarded(std::string_view bytes, const CodecLimits& limits, F&& body) {
    if (bytes.size() > limits.max_message_bytes) {
        throw Error(ErrorCode::too_large, "message of " + std::to_string(bytes.size()) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(limits.max_message_bytes));
    }
    try {
        Reader r(bytes, limits);
        auto out = body(r);
        r.finish();
        return out;
    } catch (const Error&) {
        throw;
    } catch (const cereal::Exception& e) {
        throw Error(ErrorCode::truncated, e.what());
    } catch (const std::bad_alloc&) {
        throw Error(ErrorCode::too_large, "message too large to decode");
    }
}

template <class F>
std::string encoded(F&& body) {
    std::ostringstream os(std::ios::binary);
    {
        Writer w(os);
        body(w);
    }
    return std::move(os).str();
}

} // namespace

std::string encode_binary(std::span<const Op> ops) {
    return encoded([&](Writer& w) {
        write_header(w, k_msg_batch, k_protocol_version);
        write_ops(w, ops, k_protocol_version);
    });
}

Hash256 op_leaf(const Op& op) {
    return blake2b_256(encoded([&](Writer& w) {
        write_header(w, k_msg_batch, 1);
        write_ops(w, std::span<const Op>(&op, 1), 1);
    }));
}

std::string ops_signing_string(std::span<const Hash256> leaves) {
    std::string all;
    all.reserve(leaves.size() * 32);
    for (const auto& l : leaves) {
        all.append(reinterpret_cast<const char*>(l.data()), l.size());
    }
    return "otsync-ops-v2\n" + to_hex(blake2b_256(all));
}

std::string ops_signing_string(std::span<const Op> ops) {
    std::vector<Hash256> leaves;
    leaves.reserve(ops.size());
    for (const auto& op : ops) {
        leaves.push_back(op_leaf(op));
    }
    return ops_signing_string(leaves);
}

std::string encode_binary(const SyncRequest& m) {
    return encoded([&](Writer& w) {
        write_header(w, k_msg_request, m.protocol_version);
        w.u64(m.replica);
        w.u64(m.request_counter);
        w.u64(m.cursor);
        w.u64(m.hlc);
        w.u32(m.page_size);
        if (m.protocol_version >= 2) {
            w.u32(m.wait_ms);
        }
        write_ops(w, m.ops, m.protocol_version);
        if (m.protocol_version >= 2) {
            w.blob(m.ops_signature.data(), m.ops_signature.size());
        }
    });
}

std::string encode_binary(const SyncResponse& m) {
    return encoded([&](Writer& w) {
        write_header(w, k_msg_response, m.protocol_version);
        w.u64(m.server_hlc);
        w.u64(m.cursor);
        w.u8(m.more ? 1 : 0);
        w.u64(m.remaining);
        w.varint(m.results.size());
        for (const auto& res : m.results) {
            w.varint(res.id.replica);
            w.varint(res.id.counter);
            w.u8(static_cast<std::uint8_t>(res.status));
            if (res.status != OpStatus::accepted) {
                w.varint(static_cast<std::uint16_t>(res.code));
                w.blob(res.message.data(), res.message.size());
            }
        }
        w.varint(m.ops.size());
        OpEncoder enc(w, m.protocol_version);
        std::uint64_t prev_seq = 0;
        for (const auto& s : m.ops) {
            w.varint(zigzag(static_cast<std::int64_t>(s.seq - prev_seq)));
            prev_seq = s.seq;
            enc.op(s.op);
        }
        w.varint(m.evicted.size());
        for (const auto& e : m.evicted) {
            w.u8(static_cast<std::uint8_t>(e.type));
            w.id(e.id);
        }
        w.blob(m.receipt.data(), m.receipt.size());
    });
}

std::vector<Op> decode_ops(std::string_view bytes, const CodecLimits& limits) {
    return guarded(bytes, limits, [](Reader& r) {
        const std::uint32_t version = read_header(r, k_msg_batch);
        return read_ops(r, version);
    });
}

SyncRequest decode_sync_request(std::string_view bytes, const CodecLimits& limits) {
    return guarded(bytes, limits, [](Reader& r) {
        SyncRequest m;
        m.protocol_version = read_header(r, k_msg_request);
        m.replica = r.u64();
        m.request_counter = r.u64();
        m.cursor = r.u64();
        m.hlc = r.u64();
        m.page_size = r.u32();
        if (m.protocol_version >= 2) {
            m.wait_ms = r.u32();
        }
        m.ops = read_ops(r, m.protocol_version);
        if (m.protocol_version >= 2) {
            m.ops_signature = r.bytes(64, "ops_signature");
        }
        return m;
    });
}

SyncResponse decode_sync_response(std::string_view bytes, const CodecLimits& limits) {
    return guarded(bytes, limits, [](Reader& r) {
        SyncResponse m;
        m.protocol_version = read_header(r, k_msg_response);
        m.server_hlc = r.u64();
        m.cursor = r.u64();
        const auto more = r.u8();
        if (more > 1) {
            throw Error(ErrorCode::malformed, "more flag other than 0 or 1");
        }
        m.more = more == 1;
        m.remaining = r.u64();
        const std::size_t nres = r.count(r.limits().max_ops, "results");
        for (std::size_t i = 0; i < nres; ++i) {
            OpResult res;
            res.id.replica = r.varint();
            res.id.counter = r.varint();
            const auto status = r.u8();
            if (status > static_cast<std::uint8_t>(OpStatus::flagged)) {
                throw Error(ErrorCode::malformed, "unknown op status");
            }
            res.status = static_cast<OpStatus>(status);
            if (res.status != OpStatus::accepted) {
                const std::uint64_t code = r.varint();
                const auto name = to_string(static_cast<ErrorCode>(code));
                if (code > UINT16_MAX || !error_code_from_string(name) ||
                    static_cast<std::uint64_t>(*error_code_from_string(name)) != code) {
                    throw Error(ErrorCode::malformed, "unknown error code");
                }
                res.code = static_cast<ErrorCode>(code);
                res.message = r.text(r.limits().max_message_text, "result message");
            }
            m.results.push_back(std::move(res));
        }
        const std::size_t nops = r.count(r.limits().max_ops, "ops");
        OpDecoder dec(r, m.protocol_version);
        std::uint64_t prev_seq = 0;
        for (std::size_t i = 0; i < nops; ++i) {
            SeqOp s;
            s.seq = prev_seq + static_cast<std::uint64_t>(unzigzag(r.varint()));
            prev_seq = s.seq;
            s.op = dec.op();
            m.ops.push_back(std::move(s));
        }
        const std::size_t nev = r.count(r.limits().max_ops, "evicted");
        for (std::size_t i = 0; i < nev; ++i) {
            EntityRef e;
            e.type = static_cast<EntityType>(r.u8());
            if (!is_valid_entity_type(static_cast<std::uint8_t>(e.type))) {
                throw Error(ErrorCode::malformed, "unknown entity type in evicted");
            }
            e.id = r.id();
            m.evicted.push_back(e);
        }
        m.receipt = r.bytes(64, "receipt");
        return m;
    });
}

std::uint32_t peek_protocol_version(std::string_view body, bool json, const CodecLimits& limits) {
    if (json) {
        return detail::json_protocol_version(body, limits);
    }
    if (body.size() > limits.max_message_bytes) {
        throw Error(ErrorCode::too_large, "message of " + std::to_string(body.size()) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(limits.max_message_bytes));
    }
    try {
        Reader r(body.substr(0, 6), limits); // only the first bytes are read
        r.u8();                              // message type
        return r.u32();
    } catch (const cereal::Exception&) {
        throw Error(ErrorCode::truncated, "message too short for a protocol version");
    }
}

} // namespace otsync
