// The JSON encoding (application/json) of ops and sync messages, on RapidJSON (the
// parser under cereal's JSON archive). We use RapidJSON's DOM directly rather than
// cereal's JSONInputArchive because strict decoding must name the offending member and
// refuse unknown ones, which the archive cannot do. Parsing is iterative (no recursion)
// and, before it starts, the size and nesting depth are bounded.
//
// Shapes (docs/protocol.md): ids are 32 hex digits, bytes are base64, an HLC is
// {"ms": wall milliseconds, "c": logical counter} (each fits a double exactly), a value
// is an object with exactly one member named by its type: {"text": "..."}.
#include "otsync/codec.hpp"

#include "otsync/crypto.hpp"
#include "otsync/model.hpp"

#include <sodium.h>

#include <stdexcept>

// RapidJSON asserts on misuse; we check every type before reading, so an assert firing
// is a bug in this file: make it an exception, never an abort on network input.
#define RAPIDJSON_ASSERT(x)                                                                        \
    do {                                                                                           \
        if (!(x))                                                                                  \
            throw std::logic_error("rapidjson assertion: " #x);                                    \
    } while (0)
#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "json_value.hpp" // after the RapidJSON configuration above

namespace otsync {

namespace {

using JWriter = rapidjson::Writer<rapidjson::StringBuffer>;
using JValue = rapidjson::Value;

// ---- writing ------------------------------------------------------------------------------

void write_hlc(JWriter& w, HlcTime t) {
    w.StartObject();
    w.Key("ms");
    w.Uint64(hlc_ms(t));
    w.Key("c");
    w.Uint64(hlc_logical(t));
    w.EndObject();
}

void write_opid(JWriter& w, const OpId& id) {
    w.StartObject();
    w.Key("replica");
    w.Uint64(id.replica);
    w.Key("counter");
    w.Uint64(id.counter);
    w.EndObject();
}

void write_string(JWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void write_value(JWriter& w, const Value& v) {
    w.StartObject();
    write_string(w, to_string(type_of(v)));
    detail::write_plain_value(w, v);
    w.EndObject();
}

void write_op(JWriter& w, const Op& op) {
    w.StartObject();
    w.Key("id");
    write_opid(w, op.id);
    w.Key("hlc");
    write_hlc(w, op.hlc);
    w.Key("author");
    write_string(w, op.author.hex());
    w.Key("entity_type");
    write_string(w, to_string(op.entity_type));
    w.Key("entity");
    write_string(w, op.entity.hex());
    w.Key("field");
    const FieldDef* f = find_field(op.entity_type, op.field);
    if (!f) {
        throw Error(ErrorCode::unknown_entity_field,
                    "cannot name field #" + std::to_string(op.field) + " in JSON");
    }
    write_string(w, f->name);
    w.Key("kind");
    write_string(w, to_string(op.kind));
    w.Key("value");
    write_value(w, op.value);
    if (!op.observed.empty()) {
        w.Key("observed");
        w.StartArray();
        for (const auto& t : op.observed) {
            write_opid(w, t);
        }
        w.EndArray();
    }
    w.EndObject();
}

std::string_view status_name(OpStatus s) {
    switch (s) {
    case OpStatus::accepted:
        return "accepted";
    case OpStatus::rejected:
        return "rejected";
    case OpStatus::flagged:
        return "flagged";
    }
    return "rejected";
}

// ---- reading ----------------------------------------------------------------------------------

[[noreturn]] void fail(ErrorCode code, const std::string& path, const std::string& message) {
    throw Error(code, message, path);
}

/// One JSON object being read: every member must be consumed, none may repeat.
class Obj {
public:
    Obj(const JValue& v, std::string path, const CodecLimits& limits)
        : m_v(v), m_path(std::move(path)), m_limits(limits) {
        if (!v.IsObject()) {
            fail(ErrorCode::wrong_type, m_path.empty() ? "$" : m_path, "expected an object");
        }
    }

    std::string path(std::string_view name) const {
        return m_path.empty() ? std::string(name) : m_path + "." + std::string(name);
    }

    const JValue* opt(const char* name) {
        m_known.push_back(name);
        const auto it = m_v.FindMember(name);
        return it == m_v.MemberEnd() ? nullptr : &it->value;
    }
    const JValue& req(const char* name) {
        const JValue* v = opt(name);
        if (!v) {
            fail(ErrorCode::missing_field, path(name), "required member is missing");
        }
        return *v;
    }

    std::uint64_t u64(const char* name, std::uint64_t max = UINT64_MAX) {
        return as_u64(req(name), path(name), max);
    }
    bool boolean(const char* name) {
        const JValue& v = req(name);
        if (!v.IsBool()) {
            fail(ErrorCode::wrong_type, path(name), "expected true or false");
        }
        return v.GetBool();
    }
    std::string str(const char* name, std::size_t max) {
        return as_str(req(name), path(name), max);
    }

    /// Rejects members not read and repeated members.
    void done() const {
        for (auto it = m_v.MemberBegin(); it != m_v.MemberEnd(); ++it) {
            const std::string_view key(it->name.GetString(), it->name.GetStringLength());
            bool known = false;
            for (const char* k : m_known) {
                known = known || key == k;
            }
            if (!known) {
                fail(ErrorCode::unknown_field, path(key), "unknown member");
            }
            for (auto jt = m_v.MemberBegin(); jt != it; ++jt) {
                if (key == std::string_view(jt->name.GetString(), jt->name.GetStringLength())) {
                    fail(ErrorCode::malformed, path(key), "member appears twice");
                }
            }
        }
    }

    static std::uint64_t as_u64(const JValue& v, const std::string& path, std::uint64_t max) {
        if (!v.IsNumber()) {
            fail(ErrorCode::wrong_type, path, "expected a whole number");
        }
        if (!v.IsUint64() || v.GetUint64() > max) {
            fail(ErrorCode::out_of_range, path,
                 "expected a whole number from 0 to " + std::to_string(max));
        }
        return v.GetUint64();
    }
    static std::int64_t as_i64(const JValue& v, const std::string& path) {
        if (!v.IsNumber()) {
            fail(ErrorCode::wrong_type, path, "expected a whole number");
        }
        if (!v.IsInt64()) {
            fail(ErrorCode::out_of_range, path, "expected a whole number that fits 64 bits");
        }
        return v.GetInt64();
    }
    static std::string as_str(const JValue& v, const std::string& path, std::size_t max) {
        if (!v.IsString()) {
            fail(ErrorCode::wrong_type, path, "expected a string");
        }
        if (v.GetStringLength() > max) {
            fail(ErrorCode::too_large, path,
                 "string longer than " + std::to_string(max) + " bytes");
        }
        std::string s(v.GetString(), v.GetStringLength());
        // The parser checks the bytes but lets a lone surrogate escape (\udc00) through.
        if (!is_valid_utf8(s)) {
            fail(ErrorCode::invalid_utf8, path, "not valid UTF-8 (a lone surrogate escape?)");
        }
        return s;
    }

    const CodecLimits& limits() const { return m_limits; }

private:
    const JValue& m_v;
    std::string m_path;
    const CodecLimits& m_limits;
    std::vector<const char*> m_known;
};

const JValue& array_member(Obj& o, const char* name, std::size_t limit, bool required) {
    static const JValue empty(rapidjson::kArrayType);
    const JValue* v = required ? &o.req(name) : o.opt(name);
    if (!v) {
        return empty;
    }
    if (!v->IsArray()) {
        fail(ErrorCode::wrong_type, o.path(name), "expected an array");
    }
    if (v->Size() > limit) {
        fail(ErrorCode::too_large, o.path(name),
             "more than " + std::to_string(limit) + " elements");
    }
    return *v;
}

std::string index_path(const std::string& base, std::size_t i) {
    return base + "[" + std::to_string(i) + "]";
}

Id read_id(const JValue& v, const std::string& path) {
    const std::string s = Obj::as_str(v, path, 64);
    try {
        return Id::from_hex(s);
    } catch (const Error& e) {
        fail(ErrorCode::malformed, path, e.message());
    }
}

HlcTime read_hlc(const JValue& v, const std::string& path, const CodecLimits& limits) {
    Obj o(v, path, limits);
    const auto ms = o.u64("ms", k_hlc_ms_max);
    const auto c = o.u64("c", k_hlc_logical_max);
    o.done();
    return hlc_make(ms, c);
}

OpId read_opid(const JValue& v, const std::string& path, const CodecLimits& limits) {
    Obj o(v, path, limits);
    OpId id;
    id.replica = o.u64("replica");
    id.counter = o.u64("counter");
    o.done();
    return id;
}

std::vector<std::uint8_t> read_base64(const JValue& v, const std::string& path,
                                      std::size_t max_bytes) {
    const std::string b64 = Obj::as_str(v, path, (max_bytes + 2) / 3 * 4);
    auto out = from_base64(b64, max_bytes + 2);
    if (!out) {
        fail(ErrorCode::malformed, path, "expected base64");
    }
    if (out->size() > max_bytes) {
        fail(ErrorCode::too_large, path, "more than " + std::to_string(max_bytes) + " bytes");
    }
    return std::move(*out);
}

Value read_value(const JValue& v, const std::string& path, const CodecLimits& limits) {
    if (!v.IsObject()) {
        fail(ErrorCode::wrong_type, path, "expected an object such as {\"text\": \"...\"}");
    }
    if (v.MemberCount() != 1) {
        fail(ErrorCode::malformed, path, "a value has exactly one member, named by its type");
    }
    const auto& m = *v.MemberBegin();
    const std::string_view type(m.name.GetString(), m.name.GetStringLength());
    const std::string p = path + "." + std::string(type);
    const JValue& x = m.value;
    if (type == "null") {
        if (!x.IsNull()) {
            fail(ErrorCode::wrong_type, p, "expected null");
        }
        return std::monostate{};
    }
    if (type == "bool") {
        if (!x.IsBool()) {
            fail(ErrorCode::wrong_type, p, "expected true or false");
        }
        return x.GetBool();
    }
    if (type == "int") {
        return Obj::as_i64(x, p);
    }
    if (type == "money") {
        return Money{Obj::as_i64(x, p)};
    }
    if (type == "timestamp") {
        return Timestamp{Obj::as_i64(x, p)};
    }
    if (type == "text") {
        return Obj::as_str(x, p, limits.max_text_bytes);
    }
    if (type == "id") {
        return read_id(x, p);
    }
    if (type == "bytes") {
        return Bytes{read_base64(x, p, limits.max_bytes_value)};
    }
    fail(ErrorCode::unknown_field, p, "unknown value type");
}

template <class T>
T parse_enum(std::optional<T> v, const std::string& path, const std::string& what) {
    if (!v) {
        fail(ErrorCode::invalid_value, path, "unknown " + what);
    }
    return *v;
}

std::optional<OpKind> op_kind_from_string(std::string_view s) {
    for (std::uint8_t k = 0; k < k_op_kind_count; ++k) {
        if (to_string(static_cast<OpKind>(k)) == s) {
            return static_cast<OpKind>(k);
        }
    }
    return std::nullopt;
}

Op read_op(const JValue& v, const std::string& path, const CodecLimits& limits) {
    Obj o(v, path, limits);
    Op op;
    op.id = read_opid(o.req("id"), o.path("id"), limits);
    op.hlc = read_hlc(o.req("hlc"), o.path("hlc"), limits);
    op.author = read_id(o.req("author"), o.path("author"));
    op.entity_type = parse_enum(entity_type_from_string(o.str("entity_type", 64)),
                                o.path("entity_type"), "entity type");
    op.entity = read_id(o.req("entity"), o.path("entity"));
    const std::string field = o.str("field", 64);
    const FieldDef* f = find_field(op.entity_type, field);
    if (!f) {
        fail(ErrorCode::unknown_entity_field, o.path("field"),
             std::string(to_string(op.entity_type)) + " has no field '" + field + "'");
    }
    op.field = f->id;
    op.kind = parse_enum(op_kind_from_string(o.str("kind", 16)), o.path("kind"), "op kind");
    op.value = read_value(o.req("value"), o.path("value"), limits);
    const JValue& observed = array_member(o, "observed", limits.max_observed, false);
    for (rapidjson::SizeType i = 0; i < observed.Size(); ++i) {
        op.observed.push_back(read_opid(observed[i], index_path(o.path("observed"), i), limits));
    }
    o.done();
    return op;
}

/// Bounds size and nesting before RapidJSON sees the text.
void precheck(std::string_view json, const CodecLimits& limits) {
    if (json.size() > limits.max_message_bytes) {
        fail(ErrorCode::too_large, "$",
             "message of " + std::to_string(json.size()) + " bytes exceeds the limit of " +
                 std::to_string(limits.max_message_bytes));
    }
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : json) {
        if (c == '\0') {
            // RapidJSON would stop reading here and ignore the rest.
            fail(ErrorCode::malformed, "$", "NUL byte in JSON text");
        }
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limits.max_json_depth) {
                fail(ErrorCode::too_large, "$",
                     "nesting deeper than " + std::to_string(limits.max_json_depth));
            }
        } else if (c == '}' || c == ']') {
            depth = depth ? depth - 1 : 0;
        }
    }
}

rapidjson::Document parse(std::string_view json, const CodecLimits& limits) {
    precheck(json, limits);
    rapidjson::Document doc;
    // Iterative: no recursion on nesting. Validate: invalid UTF-8 is an error.
    // No kParseFullPrecisionFlag: Debian's RapidJSON 1.1.0 has undefined behaviour on
    // that path (Tencent/rapidjson#1249), and every number we accept is a whole one.
    constexpr unsigned flags =
        rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
    doc.Parse<flags>(json.data(), json.size());
    if (doc.HasParseError()) {
        if (doc.GetParseError() == rapidjson::kParseErrorNumberTooBig) {
            // Name the member whose number does not fit: the last "name": before it.
            const std::size_t at = std::min(doc.GetErrorOffset(), json.size());
            const std::size_t colon = json.rfind(':', at);
            const std::size_t close =
                colon == std::string_view::npos ? colon : json.rfind('"', colon);
            const std::size_t open = close == std::string_view::npos || close == 0
                                         ? std::string_view::npos
                                         : json.rfind('"', close - 1);
            const std::string name = open == std::string_view::npos
                                         ? std::string("$")
                                         : std::string(json.substr(open + 1, close - open - 1));
            fail(ErrorCode::out_of_range, name, "number too large");
        }
        const auto code = doc.GetParseError() == rapidjson::kParseErrorStringInvalidEncoding
                              ? ErrorCode::invalid_utf8
                              : ErrorCode::malformed;
        fail(code, "$",
             std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " at offset " +
                 std::to_string(doc.GetErrorOffset()));
    }
    return doc;
}

template <class F>
auto decode_json(std::string_view json, const CodecLimits& limits, F&& body) {
    try {
        const rapidjson::Document doc = parse(json, limits);
        return body(doc);
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw Error(ErrorCode::too_large, "message too large to decode");
    } catch (const std::exception& e) {
        throw Error(ErrorCode::internal, e.what());
    }
}

std::uint32_t read_version(Obj& o) {
    const auto v = o.u64("protocol_version", UINT32_MAX);
    if (v < k_protocol_min || v > k_protocol_version) {
        fail(ErrorCode::unsupported_protocol, o.path("protocol_version"),
             "protocol version " + std::to_string(v) + " is not supported (" +
                 std::to_string(k_protocol_min) + "-" + std::to_string(k_protocol_version) + ")");
    }
    return static_cast<std::uint32_t>(v);
}

template <class F>
std::string written(F&& body) {
    rapidjson::StringBuffer sb;
    JWriter w(sb);
    body(w);
    return std::string(sb.GetString(), sb.GetSize());
}

} // namespace

// ---- public ---------------------------------------------------------------------------------

std::string to_json(const Op& op) {
    return written([&](JWriter& w) { write_op(w, op); });
}

std::string to_json(const SyncRequest& m) {
    return written([&](JWriter& w) {
        w.StartObject();
        w.Key("protocol_version");
        w.Uint(m.protocol_version);
        w.Key("replica");
        w.Uint64(m.replica);
        w.Key("request_counter");
        w.Uint64(m.request_counter);
        w.Key("cursor");
        w.Uint64(m.cursor);
        w.Key("hlc");
        write_hlc(w, m.hlc);
        w.Key("page_size");
        w.Uint(m.page_size);
        if (m.protocol_version >= 2 && m.wait_ms != 0) {
            w.Key("wait_ms");
            w.Uint(m.wait_ms);
        }
        w.Key("ops");
        w.StartArray();
        for (const auto& op : m.ops) {
            write_op(w, op);
        }
        w.EndArray();
        if (m.protocol_version >= 2 && !m.ops_signature.empty()) {
            w.Key("ops_signature");
            write_string(w, to_base64(m.ops_signature));
        }
        w.EndObject();
    });
}

std::string to_json(const SyncResponse& m) {
    return written([&](JWriter& w) {
        w.StartObject();
        w.Key("protocol_version");
        w.Uint(m.protocol_version);
        w.Key("server_hlc");
        write_hlc(w, m.server_hlc);
        w.Key("results");
        w.StartArray();
        for (const auto& r : m.results) {
            w.StartObject();
            w.Key("id");
            write_opid(w, r.id);
            w.Key("status");
            write_string(w, status_name(r.status));
            if (r.status != OpStatus::accepted) {
                w.Key("code");
                write_string(w, to_string(r.code));
                w.Key("message");
                write_string(w, r.message);
            }
            w.EndObject();
        }
        w.EndArray();
        w.Key("ops");
        w.StartArray();
        for (const auto& s : m.ops) {
            w.StartObject();
            w.Key("seq");
            w.Uint64(s.seq);
            w.Key("op");
            write_op(w, s.op);
            w.EndObject();
        }
        w.EndArray();
        w.Key("cursor");
        w.Uint64(m.cursor);
        w.Key("more");
        w.Bool(m.more);
        w.Key("evicted");
        w.StartArray();
        for (const auto& e : m.evicted) {
            w.StartObject();
            w.Key("entity_type");
            write_string(w, to_string(e.type));
            w.Key("id");
            write_string(w, e.id.hex());
            w.EndObject();
        }
        w.EndArray();
        w.Key("remaining");
        w.Uint64(m.remaining);
        w.Key("receipt");
        write_string(w, to_base64(m.receipt));
        w.EndObject();
    });
}

Op op_from_json(std::string_view json, const CodecLimits& limits) {
    return decode_json(json, limits,
                       [&](const rapidjson::Document& doc) { return read_op(doc, "", limits); });
}

SyncRequest sync_request_from_json(std::string_view json, const CodecLimits& limits) {
    return decode_json(json, limits, [&](const rapidjson::Document& doc) {
        Obj o(doc, "", limits);
        SyncRequest m;
        m.protocol_version = read_version(o);
        m.replica = o.u64("replica");
        m.request_counter = o.u64("request_counter");
        m.cursor = o.u64("cursor");
        m.hlc = read_hlc(o.req("hlc"), "hlc", limits);
        m.page_size = static_cast<std::uint32_t>(o.u64("page_size", UINT32_MAX));
        const JValue& ops = array_member(o, "ops", limits.max_ops, true);
        for (rapidjson::SizeType i = 0; i < ops.Size(); ++i) {
            m.ops.push_back(read_op(ops[i], index_path("ops", i), limits));
        }
        if (m.protocol_version >= 2) { // both optional; in version 1 they are unknown members
            if (o.opt("wait_ms")) {
                m.wait_ms = static_cast<std::uint32_t>(o.u64("wait_ms", UINT32_MAX));
            }
            if (const JValue* sig = o.opt("ops_signature")) {
                m.ops_signature = read_base64(*sig, o.path("ops_signature"), 64);
            }
        }
        o.done();
        return m;
    });
}

SyncResponse sync_response_from_json(std::string_view json, const CodecLimits& limits) {
    return decode_json(json, limits, [&](const rapidjson::Document& doc) {
        Obj o(doc, "", limits);
        SyncResponse m;
        m.protocol_version = read_version(o);
        m.server_hlc = read_hlc(o.req("server_hlc"), "server_hlc", limits);
        const JValue& results = array_member(o, "results", limits.max_ops, true);
        for (rapidjson::SizeType i = 0; i < results.Size(); ++i) {
            const std::string p = index_path("results", i);
            Obj r(results[i], p, limits);
            OpResult res;
            res.id = read_opid(r.req("id"), r.path("id"), limits);
            const std::string status = r.str("status", 16);
            if (status == "accepted") {
                res.status = OpStatus::accepted;
            } else if (status == "rejected") {
                res.status = OpStatus::rejected;
            } else if (status == "flagged") {
                res.status = OpStatus::flagged;
            } else {
                fail(ErrorCode::invalid_value, r.path("status"), "unknown op status");
            }
            if (res.status != OpStatus::accepted) {
                res.code = parse_enum(error_code_from_string(r.str("code", 64)), r.path("code"),
                                      "error code");
                res.message = r.str("message", limits.max_message_text);
            }
            r.done();
            m.results.push_back(std::move(res));
        }
        const JValue& ops = array_member(o, "ops", limits.max_ops, true);
        for (rapidjson::SizeType i = 0; i < ops.Size(); ++i) {
            const std::string p = index_path("ops", i);
            Obj s(ops[i], p, limits);
            SeqOp so;
            so.seq = s.u64("seq");
            so.op = read_op(s.req("op"), s.path("op"), limits);
            s.done();
            m.ops.push_back(std::move(so));
        }
        m.cursor = o.u64("cursor");
        m.more = o.boolean("more");
        const JValue& evicted = array_member(o, "evicted", limits.max_ops, true);
        for (rapidjson::SizeType i = 0; i < evicted.Size(); ++i) {
            const std::string p = index_path("evicted", i);
            Obj e(evicted[i], p, limits);
            EntityRef ref;
            ref.type = parse_enum(entity_type_from_string(e.str("entity_type", 64)),
                                  e.path("entity_type"), "entity type");
            ref.id = read_id(e.req("id"), e.path("id"));
            e.done();
            m.evicted.push_back(ref);
        }
        m.remaining = o.u64("remaining");
        m.receipt = read_base64(o.req("receipt"), o.path("receipt"), 64);
        o.done();
        return m;
    });
}

namespace detail {
std::uint32_t json_protocol_version(std::string_view json, const CodecLimits& limits) {
    return decode_json(json, limits, [&](const rapidjson::Document& doc) -> std::uint32_t {
        if (!doc.IsObject()) {
            fail(ErrorCode::wrong_type, "$", "expected an object");
        }
        const auto it = doc.FindMember("protocol_version");
        if (it == doc.MemberEnd()) {
            fail(ErrorCode::missing_field, "protocol_version", "required member is missing");
        }
        return static_cast<std::uint32_t>(Obj::as_u64(it->value, "protocol_version", UINT32_MAX));
    });
}
} // namespace detail

} // namespace otsync
