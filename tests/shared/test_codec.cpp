// The codec, binary and JSON: every message and value round-trips; truncated, random and
// mutated input is refused with otsync::Error and nothing else; the decoder's limits hold
// without allocating what the input asks for; JSON errors name the offending member; and
// a typical op batch stays small.
#include "otsync/codec.hpp"
#include "otsync/error.hpp"
#include "otsync/json_string.hpp"
#include "otsync/model.hpp"
#include "otsync/value.hpp"

#include <rapidjson/document.h>

#include <doctest/doctest.h>

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

using namespace otsync;
using namespace std::string_view_literals;

namespace {

constexpr std::uint64_t k_t0 = 1'700'000'000'000; // wall ms, November 2023
constexpr std::int64_t k_t0_signed = 1'700'000'000'000;
constexpr std::uint64_t k_u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t k_i64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t k_i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t k_header_bytes = 6; // cereal endianness byte, message type, u32 version

HlcTime at(std::uint64_t ms, std::uint64_t logical = 0) {
    return hlc_make(ms, logical);
}

Id named(std::string_view name) {
    return Id::natural("otsync.test_codec", name);
}

/// The people and records the sample messages talk about.
struct Cast {
    Id alice = named("alice");
    Id bob = named("bob");
    Id carol = named("carol");
    Id server = named("server");
    Id case1 = named("case 1");
    Id ot1 = named("work order 1");
    Id ot2 = named("work order 2");
    Id item1 = Id::collected_item(named("work order 1"), "ZTEG1234");
};
const Cast& cast() {
    static const Cast c;
    return c;
}

/// An op on a field that exists in the registry (field_def throws for one that does not).
Op make_op(OpId id, HlcTime hlc, const Id& author, EntityType type, const Id& entity,
           std::string_view field, OpKind kind, Value value, std::vector<OpId> observed = {}) {
    Op op;
    op.id = id;
    op.hlc = hlc;
    op.author = author;
    op.entity_type = type;
    op.entity = entity;
    op.field = field_def(type, field).id;
    op.kind = kind;
    op.value = std::move(value);
    op.observed = std::move(observed);
    return op;
}

Bytes patterned_bytes(std::size_t n) {
    Bytes b;
    b.data.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        b.data[i] = static_cast<std::uint8_t>(i * 131 + 7);
    }
    return b;
}

/// Ops that between them hold every Value alternative, every OpKind and every path of the
/// binary op coding: a new or the same replica, counter + 1 or a jump (either way), new
/// and repeated authors and entities, the same entity as the op before, and HLCs that go
/// forwards, stay equal, go backwards and hit both ends of their range.
std::vector<Op> sample_ops() {
    using enum EntityType;
    using enum OpKind;
    const Cast& c = cast();
    // clang-format off
    return {
        // Replica 42 starts: replica, counter, author and entity written in full.
        make_op({42, 1}, at(k_t0), c.alice, case_file, c.case1, "modality", set, Value{std::int64_t{3}}),
        // Same replica, counter + 1, same entity as the op before, a repeated author.
        make_op({42, 2}, at(k_t0, 1), c.alice, case_file, c.case1, "feasible", set, Value{true}),
        make_op({42, 3}, at(k_t0, 2), c.bob, case_file, c.case1, "fee", set, Value{Money{14628}}),
        // The counter jumps, the HLC goes backwards, a new entity.
        make_op({42, 10}, at(k_t0 - 5000), c.alice, work_order, c.ot1, "status", set, text("Técnico ñ 🚀")),
        // Another replica; then a remove with the tags it observed.
        make_op({7, 1}, at(k_t0 + 1), c.carol, work_order, c.ot1, "expected_equipment", add, text("gpon_ont")),
        make_op({7, 2}, at(k_t0 + 1, 1), c.bob, work_order, c.ot1, "expected_equipment", remove,
                text("gpon_ont"), {{7, 1}, {42, 99}, {k_u64_max, k_u64_max}}),
        // An entity seen before, by back-reference; the ends of int64; an equal HLC.
        make_op({7, 3}, at(k_t0 + 2), c.alice, case_file, c.case1, "modality", set, Value{k_i64_min}),
        make_op({7, 4}, at(k_t0 + 2), c.alice, case_file, c.case1, "modality", set, Value{k_i64_max}),
        // The first replica again, its counter where it left off.
        make_op({42, 11}, at(k_t0 + 3), c.carol, work_order, c.ot1, "notes", event,
                text(std::string("nul\0inside", 10))),
        make_op({42, 12}, at(k_t0 + 3, 1), c.carol, work_order, c.ot1, "notes", event, text("")),
        make_op({42, 13}, at(k_t0 + 4), c.carol, work_order, c.ot1, "signed_rows_hash", set, Value{Bytes{}}),
        make_op({42, 14}, at(k_t0 + 4, 1), c.carol, work_order, c.ot1, "signed_rows_hash", set,
                Value{Bytes{{0x00, 0xff, 0x80, 0x7f, 0x0a}}}),
        make_op({42, 15}, at(k_t0 + 5), c.bob, work_order, c.ot1, "case", set, Value{c.case1}),
        make_op({42, 16}, at(k_t0 + 6), c.carol, collected_item, c.item1, "collected_at", set,
                Value{Timestamp{-86'400'000}}),
        make_op({42, 17}, at(k_t0 + 6, 1), c.carol, collected_item, c.item1, "collected_at", set,
                Value{Timestamp{k_t0_signed}}),
        make_op({42, 18}, at(k_t0 + 7), c.carol, collected_item, c.item1, "voided", set, Value{false}),
        make_op({42, 19}, at(k_t0 + 8), c.bob, work_order, c.ot2, "outcome", set, Value{}), // null
        make_op({42, 20}, at(k_t0 + 9), c.bob, case_file, c.case1, "fee", set, Value{Money{-1}}),
        make_op({42, 21}, at(k_t0 + 9, 1), c.bob, case_file, c.case1, "fee", set, Value{Money{k_i64_min}}),
        make_op({42, 22}, at(k_t0 + 9, 2), c.bob, case_file, c.case1, "fee", set, Value{Money{k_i64_max}}),
        // The counter goes back on the same replica.
        make_op({42, 5}, at(k_t0 + 9, 3), c.bob, case_file, c.case1, "fee", set, Value{Money{0}}),
        // The same 16 bytes naming an entity of another type.
        make_op({42, 23}, at(k_t0 + 10), c.bob, work_order, c.case1, "zone", set, text("norte")),
        // The server, with the largest HLC and then the smallest.
        make_op({k_server_replica, 1}, at(k_hlc_ms_max, k_hlc_logical_max), c.server, handover, c.ot2,
                "date", set, Value{Timestamp{k_i64_max}}),
        make_op({k_server_replica, 2}, 0, c.server, handover, c.ot2, "rows", add, Value{c.item1}),
        // The largest replica and counter.
        make_op({k_u64_max, k_u64_max - 1}, at(k_t0), c.alice, equipment, c.item1, "serial", set,
                text("ZTEG1234")),
        make_op({k_u64_max, k_u64_max}, at(k_t0, 1), c.alice, conflict, c.ot2, "status", set, text("open")),
    };
    // clang-format on
}

SyncRequest sample_request() {
    SyncRequest m;
    m.replica = 42;
    m.request_counter = 9;
    m.cursor = 123'456;
    m.hlc = at(k_t0 + 11, 4);
    m.page_size = 500;
    m.ops = sample_ops();
    return m;
}

/// The sample request plus a bytes value of the largest size the default limits take.
SyncRequest sample_request_with_large_bytes() {
    SyncRequest m = sample_request();
    m.ops.push_back(make_op({42, 24}, at(k_t0 + 12), cast().carol, EntityType::work_order,
                            cast().ot1, "signed_rows_hash", OpKind::set,
                            Value{patterned_bytes(64 * 1024 - 1)}));
    return m;
}

SyncResponse sample_response() {
    const auto ops = sample_ops();
    SyncResponse m;
    m.server_hlc = at(k_t0 + 20, 7);
    m.results.push_back({{42, 1}, OpStatus::accepted, ErrorCode::internal, ""});
    m.results.push_back(
        {{42, 2}, OpStatus::rejected, ErrorCode::op_id_reused, "op id seen before"});
    m.results.push_back({{7, 1},
                         OpStatus::flagged,
                         ErrorCode::permission_denied,
                         "OT reasignada — fuera de alcance 🚀"});
    m.results.push_back({{7, 2}, OpStatus::rejected, ErrorCode::invalid_transition, ""});
    // Every error code, in both statuses that carry one.
    for (std::uint16_t code = 1; code <= 20; ++code) {
        const auto status = code % 2 ? OpStatus::rejected : OpStatus::flagged;
        m.results.push_back({{k_u64_max - code, code},
                             status,
                             static_cast<ErrorCode>(code),
                             "code " + std::to_string(code)});
    }
    // Sequence numbers out of order, both ends of the range.
    const std::uint64_t seqs[] = {100, 95, 1'000'000, 0, k_u64_max, 96};
    for (std::size_t i = 0; i < std::size(seqs); ++i) {
        m.ops.push_back({seqs[i], ops[i * 3]});
    }
    m.cursor = 1'000'000;
    m.more = true;
    m.evicted = {{EntityType::work_order, cast().ot2},
                 {EntityType::case_file, cast().case1},
                 {EntityType::conflict, cast().item1}};
    m.remaining = 12'345;
    for (std::uint8_t i = 0; i < 64; ++i) {
        m.receipt.push_back(static_cast<std::uint8_t>(0xA0 ^ i));
    }
    return m;
}

/// Smaller messages that still hold every value alternative, for tests that decode every
/// prefix of a JSON text (quadratic in its length).
SyncRequest compact_request() {
    const auto all = sample_ops();
    SyncRequest m = sample_request();
    m.ops.clear();
    for (const std::size_t i : {0, 1, 2, 3, 5, 9, 11, 12, 13, 16}) {
        m.ops.push_back(all[i]);
    }
    return m;
}
SyncResponse compact_response() {
    SyncResponse m = sample_response();
    m.results.resize(4);
    m.ops.resize(2);
    return m;
}

std::string encode_ops(std::span<const Op> ops) {
    return encode_binary(ops);
}

// ---- describing values, ops and outcomes (for failure messages) ---------------------------

std::string hex_bytes(std::string_view s, std::size_t max = 64) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    if (s.size() > max) {
        out += "... (" + std::to_string(s.size()) + " bytes)";
    }
    return out;
}

std::string describe(const Value& v) {
    std::ostringstream os;
    os << to_string(type_of(v)) << ':';
    std::visit(
        [&](const auto& x) {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, std::monostate>) {
                os << "null";
            } else if constexpr (std::is_same_v<X, bool>) {
                os << (x ? "true" : "false");
            } else if constexpr (std::is_same_v<X, std::int64_t>) {
                os << x;
            } else if constexpr (std::is_same_v<X, Money>) {
                os << x.centavos;
            } else if constexpr (std::is_same_v<X, Timestamp>) {
                os << x.ms;
            } else if constexpr (std::is_same_v<X, std::string>) {
                os << '"' << hex_bytes(x, 32) << '"';
            } else if constexpr (std::is_same_v<X, Bytes>) {
                os << x.data.size() << " bytes";
            } else if constexpr (std::is_same_v<X, Id>) {
                os << x.hex();
            }
        },
        v);
    return os.str();
}

std::string describe(const Op& op) {
    std::ostringstream os;
    os << "{" << op.id.replica << ':' << op.id.counter << " hlc=" << hlc_ms(op.hlc) << '.'
       << hlc_logical(op.hlc) << " author=" << op.author.hex().substr(0, 8)
       << " entity=" << static_cast<int>(op.entity_type) << '/' << op.entity.hex().substr(0, 8)
       << " field=" << op.field << ' ' << to_string(op.kind) << ' ' << describe(op.value);
    for (const auto& t : op.observed) {
        os << " observed " << t.replica << ':' << t.counter;
    }
    os << '}';
    return os.str();
}

void check_same_ops(const std::vector<Op>& got, const std::vector<Op>& want) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);
        INFO("got  ", describe(got[i]));
        INFO("want ", describe(want[i]));
        CHECK(got[i] == want[i]);
    }
}

void check_same(const SyncRequest& got, const SyncRequest& want) {
    CHECK(got.protocol_version == want.protocol_version);
    CHECK(got.replica == want.replica);
    CHECK(got.request_counter == want.request_counter);
    CHECK(got.cursor == want.cursor);
    CHECK(got.hlc == want.hlc);
    CHECK(got.page_size == want.page_size);
    check_same_ops(got.ops, want.ops);
    CHECK(got == want);
}

void check_same(const SyncResponse& got, const SyncResponse& want) {
    CHECK(got.protocol_version == want.protocol_version);
    CHECK(got.server_hlc == want.server_hlc);
    REQUIRE(got.results.size() == want.results.size());
    for (std::size_t i = 0; i < want.results.size(); ++i) {
        CAPTURE(i);
        CHECK(got.results[i].id == want.results[i].id);
        CHECK(got.results[i].status == want.results[i].status);
        CHECK(to_string(got.results[i].code) == to_string(want.results[i].code));
        CHECK(got.results[i].message == want.results[i].message);
    }
    REQUIRE(got.ops.size() == want.ops.size());
    for (std::size_t i = 0; i < want.ops.size(); ++i) {
        CAPTURE(i);
        CHECK(got.ops[i].seq == want.ops[i].seq);
        INFO("got  ", describe(got.ops[i].op));
        INFO("want ", describe(want.ops[i].op));
        CHECK(got.ops[i].op == want.ops[i].op);
    }
    CHECK(got.cursor == want.cursor);
    CHECK(got.more == want.more);
    CHECK(got.evicted == want.evicted);
    CHECK(got.remaining == want.remaining);
    CHECK(got.receipt == want.receipt);
    CHECK(got == want);
}

/// What a call did: returned, threw otsync::Error, or threw something else.
struct Outcome {
    enum class Kind { returned, error, other } kind = Kind::returned;
    ErrorCode code = ErrorCode::internal;
    std::string field;
    std::string what;

    std::string describe() const {
        switch (kind) {
        case Kind::returned:
            return "returned normally";
        case Kind::error:
            return "otsync::Error " + std::string(to_string(code)) + " at '" + field + "': " + what;
        case Kind::other:
            return "another exception: " + what;
        }
        return "?";
    }
};

template <class F>
Outcome attempt(F&& f) {
    Outcome o;
    try {
        f();
    } catch (const Error& e) {
        o.kind = Outcome::Kind::error;
        o.code = e.code();
        o.field = e.field();
        o.what = e.what();
    } catch (const std::exception& e) {
        o.kind = Outcome::Kind::other;
        o.what = e.what();
    } catch (...) {
        o.kind = Outcome::Kind::other;
        o.what = "(not a std::exception)";
    }
    return o;
}

/// `call` must throw otsync::Error with one of `codes` and, when given, with `field`.
template <class F>
void check_rejects_at(const char* file, int line, const char* expr, F&& call,
                      std::initializer_list<ErrorCode> codes,
                      std::optional<std::string_view> field) {
    const Outcome o = attempt(call);
    bool code_ok = false;
    std::string wanted;
    for (const ErrorCode c : codes) {
        code_ok = code_ok || (o.kind == Outcome::Kind::error && o.code == c);
        wanted += (wanted.empty() ? "" : " or ") + std::string(to_string(c));
    }
    const bool field_ok = !field || (o.kind == Outcome::Kind::error && o.field == *field);
    if (!code_ok || !field_ok) {
        ADD_FAIL_CHECK_AT(file, line, std::string(expr), ": expected otsync::Error ", wanted,
                          field ? " at '" + std::string(*field) + "'" : std::string(), ", got ",
                          o.describe());
    }
}

// Field check: a path string, or k_any_field where the member path is not specified.
constexpr std::optional<std::string_view> k_any_field = std::nullopt;

#define CHECK_REJECTS(expr, codes, field)                                                          \
    check_rejects_at(                                                                              \
        __FILE__, __LINE__, #expr, [&] { static_cast<void>(expr); },                               \
        std::initializer_list<ErrorCode> codes, field)

#define CHECK_DECODES(expr)                                                                        \
    do {                                                                                           \
        const Outcome decodes_outcome_ = attempt([&] { static_cast<void>(expr); });                \
        INFO(#expr, ": ", decodes_outcome_.describe());                                            \
        CHECK(decodes_outcome_.kind == Outcome::Kind::returned);                                   \
    } while (0)

// ---- hand-written binary --------------------------------------------------------------------

/// Bytes written one by one, as the binary format lays them out (little endian, LEB128).
struct Wire {
    std::string bytes;

    Wire& u8(std::uint8_t b) {
        bytes.push_back(static_cast<char>(b));
        return *this;
    }
    Wire& u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i) {
            u8(static_cast<std::uint8_t>(v >> (8 * i)));
        }
        return *this;
    }
    Wire& u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i) {
            u8(static_cast<std::uint8_t>(v >> (8 * i)));
        }
        return *this;
    }
    Wire& varint(std::uint64_t v) {
        do {
            const auto low = static_cast<std::uint8_t>(v & 0x7F);
            v >>= 7;
            u8(static_cast<std::uint8_t>(low | (v ? 0x80 : 0)));
        } while (v);
        return *this;
    }
    Wire& id(const Id& value) {
        for (const auto b : value.bytes) {
            u8(b);
        }
        return *this;
    }
    Wire& raw(std::string_view s) {
        bytes += s;
        return *this;
    }
};

constexpr std::uint8_t k_type_request = 'Q';
constexpr std::uint8_t k_type_response = 'P';
constexpr std::uint8_t k_type_batch = 'B';

Wire message_header(std::uint8_t type, std::uint32_t version = k_protocol_version) {
    Wire w;
    w.u8(1).u8(type).u32(version); // 1: cereal's "little endian" flag
    return w;
}

/// The sample op of the hand-written batches: replica 42, counter 1, HLC 1, alice on
/// case 1, field 25 ("feasible"), set true.
Op hand_written_op() {
    return make_op({42, 1}, 1, cast().alice, EntityType::case_file, cast().case1, "feasible",
                   OpKind::set, Value{true});
}

/// A batch of one op written byte by byte. `op_header` is the op's flag byte (kind in the
/// low two bits); `value` is the value's type tag and payload; `tail` follows the value.
std::string one_op_batch(std::string_view value, std::uint8_t op_header = 0x00,
                         std::string_view tail = {}) {
    Wire w = message_header(k_type_batch);
    w.varint(1);              // one op
    w.u8(op_header);          // set; replica, counter, author and entity in full
    w.varint(42).varint(1);   // replica, counter
    w.varint(2);              // HLC delta 1, zigzag
    w.id(cast().alice);       // author
    w.u8(1).id(cast().case1); // entity type case_file, entity
    w.varint(25);             // field "feasible"
    w.raw(value).raw(tail);
    return w.bytes;
}

std::string value_bytes(std::uint8_t tag, std::string_view payload = {}) {
    Wire w;
    w.u8(tag).raw(payload);
    return w.bytes;
}

/// A response written byte by byte, up to (not including) the results count.
Wire response_start(std::uint8_t more = 0) {
    Wire w = message_header(k_type_response);
    w.u64(at(k_t0)).u64(17).u8(more).u64(0); // server HLC, cursor, more, remaining
    return w;
}

// ---- random and mutated input ---------------------------------------------------------------

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) {
        c = static_cast<char>(rng() & 0xFF);
    }
    return s;
}

/// How a decoder fared on many inputs; a problem is anything but "returned" or
/// "threw otsync::Error" (or an `internal` code, which means a bug).
struct Tally {
    std::size_t returned = 0;
    std::size_t rejected = 0;
    std::size_t problems = 0;
    std::string first_problems;

    void problem(const std::string& what, std::string_view input) {
        if (++problems <= 5) {
            first_problems += what + " on input " + hex_bytes(input) + "\n";
        }
    }
};

/// Decodes `input`; whatever decodes must re-encode to something that decodes to the same.
template <class Decode, class Encode>
void probe(Tally& t, std::string_view input, Decode&& decode, Encode&& encode) {
    using Message = std::decay_t<std::invoke_result_t<Decode, std::string_view>>;
    std::optional<Message> m;
    const Outcome o = attempt([&] { m.emplace(decode(input)); });
    if (o.kind == Outcome::Kind::other ||
        (o.kind == Outcome::Kind::error && o.code == ErrorCode::internal)) {
        t.problem(o.describe(), input);
        return;
    }
    if (o.kind == Outcome::Kind::error) {
        ++t.rejected;
        return;
    }
    ++t.returned;
    std::optional<Message> again;
    const Outcome re = attempt([&] { again.emplace(decode(encode(*m))); });
    if (re.kind != Outcome::Kind::returned) {
        t.problem("decoded, but its re-encoding does not decode: " + re.describe(), input);
    } else if (!(*again == *m)) {
        t.problem("decoded, but re-encoding changes the message", input);
    }
}

void probe_binary_decoders(Tally& t, std::string_view input) {
    probe(
        t, input, [](std::string_view b) { return decode_sync_request(b); },
        [](const SyncRequest& m) { return encode_binary(m); });
    probe(
        t, input, [](std::string_view b) { return decode_sync_response(b); },
        [](const SyncResponse& m) { return encode_binary(m); });
    probe(
        t, input, [](std::string_view b) { return decode_ops(b); },
        [](const std::vector<Op>& ops) { return encode_ops(ops); });
}

void probe_json_decoders(Tally& t, std::string_view input) {
    probe(
        t, input, [](std::string_view j) { return sync_request_from_json(j); },
        [](const SyncRequest& m) { return to_json(m); });
    probe(
        t, input, [](std::string_view j) { return sync_response_from_json(j); },
        [](const SyncResponse& m) { return to_json(m); });
    probe(
        t, input, [](std::string_view j) { return op_from_json(j); },
        [](const Op& op) { return to_json(op); });
}

// ---- hand-written JSON ----------------------------------------------------------------------

/// A valid request, written by hand so that each strictness test can break one thing in it.
constexpr std::string_view k_request_json =
    R"({"protocol_version":1,"replica":42,"request_counter":9,
"cursor":1000,"hlc":{"ms":1700000000000,"c":3},"page_size":0,"ops":[
 {"id":{"replica":42,"counter":1},"hlc":{"ms":1700000000000,"c":1},
  "author":"0123456789abcdef0123456789abcdef","entity_type":"work_order",
  "entity":"00112233445566778899aabbccddeeff","field":"status","kind":"set",
  "value":{"text":"assigned"}},
 {"id":{"replica":42,"counter":2},"hlc":{"ms":1700000000000,"c":2},
  "author":"fedcba9876543210fedcba9876543210","entity_type":"case",
  "entity":"ffeeddccbbaa99887766554433221100","field":"products","kind":"remove",
  "value":{"text":"internet"},"observed":[{"replica":42,"counter":1}]}]}
)";

/// A valid response, written by hand for the same purpose.
constexpr std::string_view k_response_json = R"({"protocol_version":1,
"server_hlc":{"ms":1700000000000,"c":0},
"results":[{"id":{"replica":42,"counter":1},"status":"accepted"},
 {"id":{"replica":42,"counter":2},"status":"rejected","code":"op_id_reused","message":"seen before"}],
"ops":[{"seq":17,"op":{"id":{"replica":0,"counter":5},"hlc":{"ms":1700000000001,"c":0},
 "author":"0123456789abcdef0123456789abcdef","entity_type":"case",
 "entity":"00112233445566778899aabbccddeeff","field":"fee","kind":"set","value":{"money":14628}}}],
"cursor":17,"more":true,"evicted":[{"entity_type":"work_order","id":"fedcba9876543210fedcba9876543210"}],
"remaining":3,"receipt":""})";

/// A valid op on its own.
constexpr std::string_view k_op_json = R"({"id":{"replica":42,"counter":1},
"hlc":{"ms":1700000000000,"c":1},"author":"0123456789abcdef0123456789abcdef",
"entity_type":"collected_item","entity":"00112233445566778899aabbccddeeff",
"field":"collected_at","kind":"set","value":{"timestamp":-5}})";

/// `json` with its one occurrence of `from` replaced by `to`.
std::string edited(std::string_view json, std::string_view from, std::string_view to) {
    const auto pos = json.find(from);
    REQUIRE_MESSAGE(pos != std::string_view::npos, "no '", std::string(from), "' in the JSON");
    REQUIRE_MESSAGE(json.find(from, pos + 1) == std::string_view::npos, "'", std::string(from),
                    "' is not unique in the JSON");
    std::string out(json.substr(0, pos));
    out += to;
    out += json.substr(pos + from.size());
    return out;
}

/// One strictness case: replace `from` by `to`, expect `code` at `field`.
struct JsonBreak {
    std::string_view from;
    std::string_view to;
    ErrorCode code;
    std::optional<std::string_view> field;
};

} // namespace

// ================================================================================================
// 1. Round trips
// ================================================================================================

TEST_CASE("codec: a request with every value, kind and op-coding path round-trips") {
    const SyncRequest req = sample_request_with_large_bytes();
    SUBCASE("binary") {
        check_same(decode_sync_request(encode_binary(req)), req);
    }
    SUBCASE("json") {
        check_same(sync_request_from_json(to_json(req)), req);
    }
    SUBCASE("binary of what JSON decoded") {
        check_same(decode_sync_request(encode_binary(sync_request_from_json(to_json(req)))), req);
    }
}

TEST_CASE(
    "codec: a response with every status, code, out-of-order seqs and evictions round-trips") {
    const SyncResponse resp = sample_response();
    SUBCASE("binary") {
        check_same(decode_sync_response(encode_binary(resp)), resp);
    }
    SUBCASE("json") {
        check_same(sync_response_from_json(to_json(resp)), resp);
    }
}

TEST_CASE("codec: empty messages round-trip") {
    const SyncRequest req;
    const SyncResponse resp;
    check_same(decode_sync_request(encode_binary(req)), req);
    check_same(sync_request_from_json(to_json(req)), req);
    check_same(decode_sync_response(encode_binary(resp)), resp);
    check_same(sync_response_from_json(to_json(resp)), resp);
    CHECK(decode_ops(encode_ops({})).empty());
}

TEST_CASE("codec: op batches round-trip through encode_binary(span) and decode_ops") {
    const auto ops = sample_request_with_large_bytes().ops;
    check_same_ops(decode_ops(encode_ops(ops)), ops);
    for (std::size_t i = 0; i < ops.size(); ++i) {
        CAPTURE(i);
        check_same_ops(decode_ops(encode_ops(std::span(ops).subspan(i, 1))), {ops[i]});
        // Every suffix: the coding of an op does not depend on ops before the batch.
        check_same_ops(decode_ops(encode_ops(std::span(ops).subspan(i))),
                       std::vector<Op>(ops.begin() + static_cast<std::ptrdiff_t>(i), ops.end()));
    }
}

TEST_CASE("codec: every op round-trips alone through to_json and op_from_json") {
    for (const Op& op : sample_request_with_large_bytes().ops) {
        INFO(describe(op));
        const Op back = op_from_json(to_json(op));
        INFO("got ", describe(back));
        CHECK(back == op);
    }
}

TEST_CASE("codec: a hand-written batch pins the binary layout") {
    const std::string wire = one_op_batch(value_bytes(1, "\x01"));
    const Op want = hand_written_op();
    CHECK(hex_bytes(encode_ops({&want, 1}), 200) == hex_bytes(wire, 200));
    check_same_ops(decode_ops(wire), {want});
}

TEST_CASE("codec: counters and replicas at the top of their range round-trip") {
    const Cast& c = cast();
    // Counter 0 is not a valid op id (counters start at 1), but what the encoder writes
    // it must read back, or refuse to write.
    const std::vector<Op> ops{
        make_op({9, k_u64_max - 1}, at(k_t0), c.alice, EntityType::work_order, c.ot1, "status",
                OpKind::set, text("issued")),
        make_op({9, k_u64_max}, at(k_t0, 1), c.alice, EntityType::work_order, c.ot1, "status",
                OpKind::set, text("assigned")),
        make_op({9, 0}, at(k_t0, 2), c.alice, EntityType::work_order, c.ot1, "status", OpKind::set,
                text("en_route")),
    };
    std::string wire;
    const Outcome encoded = attempt([&] { wire = encode_ops(ops); });
    if (encoded.kind == Outcome::Kind::returned) {
        const Outcome decoded = attempt([&] { check_same_ops(decode_ops(wire), ops); });
        INFO("decoding the encoder's output: ", decoded.describe());
        CHECK(decoded.kind == Outcome::Kind::returned);
    } else {
        INFO(encoded.describe());
        CHECK(encoded.kind == Outcome::Kind::error);
    }
}

// ================================================================================================
// 2. Truncation and trailing bytes
// ================================================================================================

namespace {

template <class Decode>
void check_every_prefix_rejected(std::string_view whole, Decode&& decode,
                                 std::initializer_list<ErrorCode> codes) {
    REQUIRE(whole.size() > 0);
    CHECK_DECODES(decode(whole));
    std::size_t failures = 0;
    for (std::size_t n = 0; n < whole.size(); ++n) {
        const Outcome o = attempt([&] { decode(whole.substr(0, n)); });
        bool ok = false;
        for (const ErrorCode c : codes) {
            ok = ok || (o.kind == Outcome::Kind::error && o.code == c);
        }
        if (!ok && ++failures <= 5) {
            FAIL_CHECK("prefix of ", n, " of ", whole.size(), " bytes: ", o.describe());
        }
    }
    CHECK(failures == 0);
}

} // namespace

TEST_CASE("codec: every truncation of a binary message is refused") {
    const std::initializer_list<ErrorCode> codes{ErrorCode::truncated, ErrorCode::malformed};
    SUBCASE("request") {
        check_every_prefix_rejected(
            encode_binary(sample_request()),
            [](std::string_view b) { return decode_sync_request(b); }, codes);
    }
    SUBCASE("response") {
        check_every_prefix_rejected(
            encode_binary(sample_response()),
            [](std::string_view b) { return decode_sync_response(b); }, codes);
    }
    SUBCASE("op batch") {
        check_every_prefix_rejected(
            encode_ops(sample_ops()), [](std::string_view b) { return decode_ops(b); }, codes);
    }
}

TEST_CASE("codec: every truncation of a JSON message is refused") {
    // Cut inside a multi-byte character, the parser may see invalid UTF-8 first.
    const std::initializer_list<ErrorCode> codes{ErrorCode::malformed, ErrorCode::invalid_utf8};
    SUBCASE("request") {
        check_every_prefix_rejected(
            to_json(compact_request()),
            [](std::string_view j) { return sync_request_from_json(j); }, codes);
    }
    SUBCASE("response") {
        check_every_prefix_rejected(
            to_json(compact_response()),
            [](std::string_view j) { return sync_response_from_json(j); }, codes);
    }
    SUBCASE("op") {
        check_every_prefix_rejected(
            to_json(sample_ops()[3]), [](std::string_view j) { return op_from_json(j); }, codes);
    }
}

TEST_CASE("codec: a byte after the end of a binary message is refused") {
    const std::string request = encode_binary(sample_request());
    const std::string response = encode_binary(sample_response());
    const std::string batch = encode_ops(sample_ops());
    for (int b = 0; b < 256; ++b) {
        CAPTURE(b);
        const std::string extra(1, static_cast<char>(b));
        CHECK_REJECTS(decode_sync_request(request + extra), ({ErrorCode::malformed}), "");
        CHECK_REJECTS(decode_sync_response(response + extra), ({ErrorCode::malformed}), "");
        CHECK_REJECTS(decode_ops(batch + extra), ({ErrorCode::malformed}), "");
    }
}

TEST_CASE("codec: trailing garbage after a JSON object is refused, trailing whitespace is not") {
    const std::string request = to_json(sample_request());
    const std::string response = to_json(sample_response());
    const std::string op = to_json(sample_ops()[0]);
    for (const std::string_view garbage :
         {"x"sv, "}"sv, "{}"sv, "0"sv, ","sv, "\"\""sv, "/"sv, "\0"sv, "\0x"sv, " \0{}"sv}) {
        CAPTURE(hex_bytes(garbage));
        const std::string tail(garbage);
        CHECK_REJECTS(sync_request_from_json(request + tail), ({ErrorCode::malformed}),
                      k_any_field);
        CHECK_REJECTS(sync_response_from_json(response + tail), ({ErrorCode::malformed}),
                      k_any_field);
        CHECK_REJECTS(op_from_json(op + tail), ({ErrorCode::malformed}), k_any_field);
    }
    CHECK_DECODES(sync_request_from_json(" \n\t" + request + " \r\n"));
}

// ================================================================================================
// 3. Random and mutated input
// ================================================================================================

TEST_CASE("codec: random bytes make the binary decoders return or throw otsync::Error only") {
    std::mt19937_64 rng(0x07'5c'0d'ec);
    const std::string valid[] = {encode_binary(sample_request()), encode_binary(sample_response()),
                                 encode_ops(sample_ops())};
    Tally tally;
    for (int i = 0; i < 10'000; ++i) {
        const std::string junk = random_bytes(rng, rng() % 301);
        probe_binary_decoders(tally, junk);
        // The same junk after the start of a valid message, so that decoding gets past the
        // header: after the header alone, or after a random part of the message.
        const std::string& v = valid[i % 3];
        const std::size_t keep =
            i % 2 ? k_header_bytes : k_header_bytes + rng() % (v.size() - k_header_bytes);
        probe_binary_decoders(tally, v.substr(0, keep) + junk);
    }
    INFO(tally.first_problems);
    CHECK(tally.problems == 0);
    CHECK(tally.rejected > 0);
}

TEST_CASE("codec: single-byte mutations of valid binary messages are decoded or refused cleanly") {
    std::mt19937_64 rng(20'240'611);
    const std::string valid[] = {encode_binary(sample_request()), encode_binary(sample_response()),
                                 encode_ops(sample_ops())};
    Tally tally;
    for (int i = 0; i < 1'500; ++i) {
        for (const std::string& v : valid) {
            std::string mutated = v;
            mutated[rng() % mutated.size()] ^= static_cast<char>(1 + rng() % 255);
            probe_binary_decoders(tally, mutated);
        }
    }
    INFO(tally.first_problems);
    CHECK(tally.problems == 0);
    CHECK(tally.returned > 0); // some mutations (a value, an id) still make a valid message
    CHECK(tally.rejected > 0);
}

TEST_CASE("codec: single-byte mutations of valid JSON messages are decoded or refused cleanly") {
    std::mt19937_64 rng(1'234'567);
    const std::string valid[] = {to_json(sample_request()), to_json(sample_response()),
                                 to_json(sample_ops()[5])};
    Tally tally;
    for (int i = 0; i < 1'000; ++i) {
        for (const std::string& v : valid) {
            std::string mutated = v;
            mutated[rng() % mutated.size()] = static_cast<char>(rng() & 0xFF);
            probe_json_decoders(tally, mutated);
        }
    }
    INFO(tally.first_problems);
    CHECK(tally.problems == 0);
    CHECK(tally.returned > 0);
}

// ================================================================================================
// 4. Limits
// ================================================================================================

TEST_CASE("codec: op counts above max_ops are refused before anything is allocated") {
    const Op op = hand_written_op();
    SUBCASE("binary batch: a count of max_ops + 1, 2^40 and 2^63") {
        for (const std::uint64_t n :
             {std::uint64_t{10'001}, std::uint64_t{1} << 40, std::uint64_t{1} << 63}) {
            CAPTURE(n);
            Wire w = message_header(k_type_batch);
            w.varint(n);
            CHECK_REJECTS(decode_ops(w.bytes), ({ErrorCode::too_large}), "");
        }
    }
    SUBCASE("binary request: exactly max_ops decodes, one more is too large") {
        SyncRequest req;
        req.ops.assign(10'000, op);
        for (std::size_t i = 0; i < req.ops.size(); ++i) {
            req.ops[i].id.counter = i + 1;
        }
        CHECK(decode_sync_request(encode_binary(req)).ops.size() == 10'000);
        req.ops.push_back(op);
        CHECK_REJECTS(decode_sync_request(encode_binary(req)), ({ErrorCode::too_large}), "");
    }
    SUBCASE("configured limit: ops, results and evictions in both encodings") {
        CodecLimits limits;
        limits.max_ops = 3;
        SyncRequest req;
        req.ops.assign(4, op);
        CHECK_REJECTS(decode_sync_request(encode_binary(req), limits), ({ErrorCode::too_large}),
                      "");
        CHECK_REJECTS(sync_request_from_json(to_json(req), limits), ({ErrorCode::too_large}),
                      "ops");
        CHECK_REJECTS(decode_ops(encode_ops(req.ops), limits), ({ErrorCode::too_large}), "");

        SyncResponse results;
        results.results.assign(4, OpResult{{1, 1}, OpStatus::accepted, ErrorCode::internal, ""});
        CHECK_REJECTS(decode_sync_response(encode_binary(results), limits),
                      ({ErrorCode::too_large}), "");
        CHECK_REJECTS(sync_response_from_json(to_json(results), limits), ({ErrorCode::too_large}),
                      "results");

        SyncResponse seq_ops;
        seq_ops.ops.assign(4, SeqOp{1, op});
        CHECK_REJECTS(decode_sync_response(encode_binary(seq_ops), limits),
                      ({ErrorCode::too_large}), "");
        CHECK_REJECTS(sync_response_from_json(to_json(seq_ops), limits), ({ErrorCode::too_large}),
                      "ops");

        SyncResponse evicted;
        evicted.evicted.assign(4, EntityRef{EntityType::work_order, cast().ot1});
        CHECK_REJECTS(decode_sync_response(encode_binary(evicted), limits),
                      ({ErrorCode::too_large}), "");
        CHECK_REJECTS(sync_response_from_json(to_json(evicted), limits), ({ErrorCode::too_large}),
                      "evicted");
    }
}

TEST_CASE("codec: a length prefix of 2^40 is refused without allocating it") {
    const std::uint64_t huge = std::uint64_t{1} << 40;
    const std::string text_2_40 = value_bytes(4, Wire{}.varint(huge).bytes);
    const std::string bytes_2_40 = value_bytes(5, Wire{}.varint(huge).bytes);
    SUBCASE("over the configured limit: too large") {
        CHECK_REJECTS(decode_ops(one_op_batch(text_2_40)), ({ErrorCode::too_large}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(bytes_2_40)), ({ErrorCode::too_large}), "");
    }
    SUBCASE("with no limit: truncated, the length is checked against the input first") {
        CodecLimits unlimited;
        unlimited.max_text_bytes = std::numeric_limits<std::size_t>::max();
        unlimited.max_bytes_value = std::numeric_limits<std::size_t>::max();
        CHECK_REJECTS(decode_ops(one_op_batch(text_2_40), unlimited), ({ErrorCode::truncated}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(bytes_2_40), unlimited), ({ErrorCode::truncated}),
                      "");
    }
    SUBCASE("a result message and a receipt") {
        Wire msg = response_start();
        // One result: replica 42, counter 1, rejected, code 4 (malformed), then its message.
        msg.varint(1).varint(42).varint(1).u8(1).varint(4).varint(huge);
        CHECK_REJECTS(decode_sync_response(msg.bytes), ({ErrorCode::too_large}), "");
        Wire receipt = response_start();
        receipt.varint(0).varint(0).varint(0).varint(huge);
        CHECK_REJECTS(decode_sync_response(receipt.bytes), ({ErrorCode::too_large}), "");
    }
}

TEST_CASE("codec: a message bigger than max_message_bytes is refused") {
    const std::string request = encode_binary(sample_request());
    const std::string json = to_json(sample_request());
    CodecLimits limits;
    limits.max_message_bytes = request.size();
    CHECK_DECODES(decode_sync_request(request, limits));
    limits.max_message_bytes = request.size() - 1;
    CHECK_REJECTS(decode_sync_request(request, limits), ({ErrorCode::too_large}), "");
    limits.max_message_bytes = json.size() - 1;
    CHECK_REJECTS(sync_request_from_json(json, limits), ({ErrorCode::too_large}), k_any_field);

    // The default limit (8 MiB), for every decoder.
    const std::string big((8u << 20) + 1, ' ');
    CHECK_REJECTS(decode_sync_request(big), ({ErrorCode::too_large}), "");
    CHECK_REJECTS(decode_sync_response(big), ({ErrorCode::too_large}), "");
    CHECK_REJECTS(decode_ops(big), ({ErrorCode::too_large}), "");
    CHECK_REJECTS(sync_request_from_json(big), ({ErrorCode::too_large}), k_any_field);
    CHECK_REJECTS(sync_response_from_json(big), ({ErrorCode::too_large}), k_any_field);
    CHECK_REJECTS(op_from_json(big), ({ErrorCode::too_large}), k_any_field);
}

TEST_CASE("codec: observed tags above max_observed are refused") {
    const Cast& c = cast();
    Op remove = make_op({7, 9}, at(k_t0), c.bob, EntityType::work_order, c.ot1,
                        "expected_equipment", OpKind::remove, text("gpon_ont"));
    for (std::uint64_t i = 1; i <= 4096; ++i) {
        remove.observed.push_back({7, i});
    }
    CHECK(decode_ops(encode_ops({&remove, 1})).at(0).observed.size() == 4096);
    CHECK(op_from_json(to_json(remove)).observed.size() == 4096);

    remove.observed.push_back({8, 1});
    CHECK_REJECTS(decode_ops(encode_ops({&remove, 1})), ({ErrorCode::too_large}), "");
    CHECK_REJECTS(op_from_json(to_json(remove)), ({ErrorCode::too_large}), "observed");
    SyncRequest req;
    req.ops = {hand_written_op(), remove};
    CHECK_REJECTS(sync_request_from_json(to_json(req)), ({ErrorCode::too_large}),
                  "ops[1].observed");

    // A count of 2^40 tags: refused by the limit, or with no limit by the bytes left.
    const std::string tags_2_40 =
        one_op_batch(value_bytes(4, "\x01x"), 0x42 /* remove, has observed */,
                     Wire{}.varint(std::uint64_t{1} << 40).bytes);
    CHECK_REJECTS(decode_ops(tags_2_40), ({ErrorCode::too_large}), "");
    CodecLimits unlimited;
    unlimited.max_observed = std::numeric_limits<std::size_t>::max();
    CHECK_REJECTS(decode_ops(tags_2_40, unlimited), ({ErrorCode::truncated}), "");
}

TEST_CASE("codec: text, bytes and result messages above their limits are refused") {
    const Cast& c = cast();
    const auto op_with = [&](Value v) {
        return make_op({7, 1}, at(k_t0), c.bob, EntityType::work_order, c.ot1, "notes",
                       OpKind::event, std::move(v));
    };
    SUBCASE("text") {
        const Op at_limit = op_with(text(std::string(16u << 10, 'a')));
        const Op over = op_with(text(std::string((16u << 10) + 1, 'a')));
        CHECK_DECODES(decode_ops(encode_ops({&at_limit, 1})));
        CHECK_DECODES(op_from_json(to_json(at_limit)));
        CHECK_REJECTS(decode_ops(encode_ops({&over, 1})), ({ErrorCode::too_large}), "");
        CHECK_REJECTS(op_from_json(to_json(over)), ({ErrorCode::too_large}), "value.text");
    }
    SUBCASE("bytes") {
        const Op at_limit = op_with(Value{patterned_bytes(64u << 10)});
        CHECK_DECODES(decode_ops(encode_ops({&at_limit, 1})));
        CHECK_DECODES(op_from_json(to_json(at_limit)));
        for (const std::size_t n :
             {(64u << 10) + 1, (64u << 10) + 2, (64u << 10) + 3, (64u << 10) + 4}) {
            CAPTURE(n);
            const Op over = op_with(Value{patterned_bytes(n)});
            CHECK_REJECTS(decode_ops(encode_ops({&over, 1})), ({ErrorCode::too_large}), "");
            CHECK_REJECTS(op_from_json(to_json(over)), ({ErrorCode::too_large}), "value.bytes");
        }
    }
    SUBCASE("result message") {
        SyncResponse resp;
        resp.results.push_back(
            {{1, 1}, OpStatus::rejected, ErrorCode::invalid_value, std::string(1024, 'm')});
        CHECK_DECODES(decode_sync_response(encode_binary(resp)));
        CHECK_DECODES(sync_response_from_json(to_json(resp)));
        resp.results[0].message += 'm';
        CHECK_REJECTS(decode_sync_response(encode_binary(resp)), ({ErrorCode::too_large}), "");
        CHECK_REJECTS(sync_response_from_json(to_json(resp)), ({ErrorCode::too_large}),
                      "results[0].message");
    }
}

TEST_CASE("codec: JSON nested deeper than max_json_depth is refused without deep recursion") {
    for (const std::string& deep : {std::string(100'000, '['), std::string(100'000, '{'),
                                    "{\"protocol_version\":1,\"x\":" + std::string(100'000, '[')}) {
        CHECK_REJECTS(sync_request_from_json(deep), ({ErrorCode::too_large}), k_any_field);
        CHECK_REJECTS(sync_response_from_json(deep), ({ErrorCode::too_large}), k_any_field);
        CHECK_REJECTS(op_from_json(deep), ({ErrorCode::too_large}), k_any_field);
        CHECK_REJECTS(peek_protocol_version(deep, true), ({ErrorCode::too_large}), k_any_field);
    }
    SUBCASE("the limit is exact: 16 levels parse, 17 do not") {
        const auto nested = [](std::size_t arrays) {
            return "{\"protocol_version\":1,\"x\":" + std::string(arrays, '[') +
                   std::string(arrays, ']') + "}";
        };
        // 1 object + 15 arrays = 16 levels: parsed, then refused for what is missing.
        CHECK_REJECTS(sync_request_from_json(nested(15)), ({ErrorCode::missing_field}), "replica");
        CHECK_REJECTS(sync_request_from_json(nested(16)), ({ErrorCode::too_large}), k_any_field);
    }
    SUBCASE("brackets and quotes inside strings do not count") {
        SyncRequest req = sample_request();
        req.ops[3].value = text(std::string(200, '[') + "\"{\\" + std::string(200, '{'));
        CHECK(sync_request_from_json(to_json(req)) == req);
    }
}

// ================================================================================================
// 5. Strictness
// ================================================================================================

TEST_CASE("codec: the hand-written JSON messages are valid") {
    const SyncRequest req = sync_request_from_json(k_request_json);
    CHECK(req.replica == 42);
    CHECK(req.cursor == 1000);
    CHECK(req.hlc == at(k_t0, 3));
    REQUIRE(req.ops.size() == 2);
    CHECK(req.ops[0].entity_type == EntityType::work_order);
    CHECK(req.ops[0].field == 7);
    CHECK(req.ops[0].value == text("assigned"));
    CHECK(req.ops[1].kind == OpKind::remove);
    CHECK(req.ops[1].observed == std::vector<OpId>{{42, 1}});
    const SyncResponse resp = sync_response_from_json(k_response_json);
    CHECK(resp.more);
    REQUIRE(resp.results.size() == 2);
    CHECK(resp.results[1].code == ErrorCode::op_id_reused);
    REQUIRE(resp.ops.size() == 1);
    CHECK(resp.ops[0].op.value == Value{Money{14628}});
    CHECK(op_from_json(k_op_json).value == Value{Timestamp{-5}});
    CHECK(sync_request_from_json(
              edited(k_request_json, R"("cursor":1000)", R"("cursor":18446744073709551615)"))
              .cursor == k_u64_max);
}

TEST_CASE("codec: JSON requests are decoded strictly and errors name the member") {
    using enum ErrorCode;
    // clang-format off
    const JsonBreak cases[] = {
        // wrong types
        {R"("replica":42,"request)", R"("replica":"42","request)", wrong_type, "replica"},
        {R"("page_size":0)", R"("page_size":false)", wrong_type, "page_size"},
        {R"("hlc":{"ms":1700000000000,"c":1})", R"("hlc":{"ms":"1700000000000","c":1})", wrong_type, "ops[0].hlc.ms"},
        {R"({"text":"assigned"})", R"({"int":"5"})", wrong_type, "ops[0].value.int"},
        {R"({"text":"assigned"})", R"({"bool":1})", wrong_type, "ops[0].value.bool"},
        {R"({"text":"assigned"})", R"({"null":0})", wrong_type, "ops[0].value.null"},
        {R"({"text":"assigned"})", R"("assigned")", wrong_type, "ops[0].value"},
        {R"("field":"status")", R"("field":7)", wrong_type, "ops[0].field"},
        {R"("observed":[{"replica":42,"counter":1}])", R"("observed":{"replica":42,"counter":1})", wrong_type, "ops[1].observed"},
        {R"("observed":[{"replica":42,"counter":1}])", R"("observed":[7])", wrong_type, "ops[1].observed[0]"},
        {R"("hlc":{"ms":1700000000000,"c":3})", R"("hlc":1700000000000)", wrong_type, "hlc"},
        // unknown members, at the top and inside
        {R"("page_size":0,)", R"("page_size":0,"color":"red",)", unknown_field, "color"},
        {R"("observed":[)", R"("color":"red","observed":[)", unknown_field, "ops[1].color"},
        {R"({"replica":42,"counter":1}])", R"({"replica":42,"counter":1,"epoch":0}])", unknown_field, "ops[1].observed[0].epoch"},
        {R"("c":3})", R"("c":3,"tz":0})", unknown_field, "hlc.tz"},
        {R"({"text":"assigned"})", R"({"float":1.5})", unknown_field, "ops[0].value.float"},
        // numbers out of range
        {R"("cursor":1000)", R"("cursor":123456789012345678901234567890)", out_of_range, "cursor"},
        {R"("cursor":1000)", R"("cursor":18446744073709551616)", out_of_range, "cursor"},
        {R"("cursor":1000)", R"("cursor":1e400)", out_of_range, "cursor"},
        {R"("cursor":1000)", R"("cursor":-1)", out_of_range, "cursor"},
        {R"("page_size":0)", R"("page_size":4294967296)", out_of_range, "page_size"},
        {R"("c":3})", R"("c":65536})", out_of_range, "hlc.c"},
        {R"("hlc":{"ms":1700000000000,"c":1})", R"("hlc":{"ms":281474976710656,"c":1})", out_of_range, "ops[0].hlc.ms"},
        {R"({"text":"assigned"})", R"({"int":9223372036854775808})", out_of_range, "ops[0].value.int"},
        {R"({"text":"assigned"})", R"({"int":-9223372036854775809})", out_of_range, "ops[0].value.int"},
        // missing and repeated members
        {R"("cursor":1000,)", "", missing_field, "cursor"},
        {R"("field":"status","kind":"set",)", R"("field":"status",)", missing_field, "ops[0].kind"},
        {R"("id":{"replica":42,"counter":1})", R"("id":{"replica":42})", missing_field, "ops[0].id.counter"},
        {R"("cursor":1000)", R"("cursor":1000,"cursor":1000)", malformed, "cursor"},
        {R"("kind":"set")", R"("kind":"set","kind":"set")", malformed, "ops[0].kind"},
        // values: exactly one member named by its type
        {R"({"text":"assigned"})", R"({"text":"assigned","int":1})", malformed, "ops[0].value"},
        {R"({"text":"assigned"})", R"({})", malformed, "ops[0].value"},
        {R"({"text":"assigned"})", R"({"bytes":"***"})", malformed, "ops[0].value.bytes"},
        {R"({"text":"assigned"})", R"({"bytes":"QQ"})", malformed, "ops[0].value.bytes"},
        {R"({"text":"assigned"})", R"({"id":"xyz"})", malformed, "ops[0].value.id"},
        // names the registry does not know
        {R"("entity_type":"work_order")", R"("entity_type":"spaceship")", invalid_value, "ops[0].entity_type"},
        {R"("field":"status")", R"("field":"colour")", unknown_entity_field, "ops[0].field"},
        {R"("field":"products")", R"("field":"expected_equipment")", unknown_entity_field, "ops[1].field"},
        {R"("kind":"set")", R"("kind":"upsert")", invalid_value, "ops[0].kind"},
        {R"("kind":"set")", R"("kind":"SET")", invalid_value, "ops[0].kind"},
        // ids
        {R"("0123456789abcdef0123456789abcdef")", R"("0123456789abcdef0123456789abcdeg")", malformed, "ops[0].author"},
        {R"("00112233445566778899aabbccddeeff")", R"("00112233")", malformed, "ops[0].entity"},
        {R"("00112233445566778899aabbccddeeff")", R"("00112233445566778899aabbccddeeff00")", malformed, "ops[0].entity"},
        // protocol version
        {R"("protocol_version":1)", R"("protocol_version":99)", unsupported_protocol, "protocol_version"},
        {R"("protocol_version":1)", R"("protocol_version":0)", unsupported_protocol, "protocol_version"},
        {R"("protocol_version":1)", R"("protocol_version":"1")", wrong_type, "protocol_version"},
        // text: raw bytes that are not UTF-8 (stray byte, overlong, surrogate, cut short)
        {R"("assigned")", "\"assi\xff" "gned\"", invalid_utf8, k_any_field},
        {R"("assigned")", "\"\xc0\xaf\"", invalid_utf8, k_any_field},
        {R"("assigned")", "\"\xed\xa0\x80\"", invalid_utf8, k_any_field},
        {R"("assigned")", "\"\xe2\x82\"", invalid_utf8, k_any_field},
        {R"("kind":"set")", "\"ki\xc3nd\":\"set\"", invalid_utf8, k_any_field},
        // not JSON
        {R"("cursor":1000,)", R"("cursor":1000,,)", malformed, k_any_field},
        {R"("assigned")", "\"tab\there\"", malformed, k_any_field},
        {R"("assigned")", R"("\ud800")", malformed, k_any_field},
    };
    // clang-format on
    for (const JsonBreak& c : cases) {
        const std::string json = edited(k_request_json, c.from, c.to);
        INFO("after replacing ", std::string(c.from), " by ", hex_bytes(c.to, 100), " (",
             std::string(c.to), ")");
        CHECK_REJECTS(sync_request_from_json(json), ({c.code}), c.field);
    }
}

TEST_CASE("codec: JSON numbers that take the parser's long-float path are refused cleanly") {
    // Not whole numbers a u64 member takes, so out_of_range; these spellings send RapidJSON's
    // full-precision strtod through DiyFp::Normalize() with a zero significand.
    for (const std::string_view number :
         {"0e100"sv, "0.0000000000000000000000000"sv, "184467440737095516155"sv}) {
        CAPTURE(std::string(number));
        const std::string json =
            edited(k_request_json, R"("cursor":1000)", "\"cursor\":" + std::string(number));
        CHECK_REJECTS(sync_request_from_json(json), ({ErrorCode::out_of_range}), "cursor");
    }
}

TEST_CASE("codec: JSON text escapes must still make valid UTF-8") {
    // A lone low surrogate escape decodes to ED B0 80, which is not UTF-8.
    for (const std::string_view escape : {R"("\udc00")", R"("\udfff")", R"("a\udc80b")"}) {
        CAPTURE(std::string(escape));
        CHECK_REJECTS(sync_request_from_json(edited(k_request_json, R"("assigned")", escape)),
                      ({ErrorCode::invalid_utf8, ErrorCode::malformed}), k_any_field);
    }
    // A proper pair is fine.
    const auto req =
        sync_request_from_json(edited(k_request_json, R"("assigned")", R"("\ud83d\ude80")"));
    CHECK(req.ops.at(0).value == text("🚀"));
}

TEST_CASE("codec: JSON responses are decoded strictly and errors name the member") {
    using enum ErrorCode;
    // clang-format off
    const JsonBreak cases[] = {
        {R"("more":true)", R"("more":1)", wrong_type, "more"},
        {R"("status":"accepted")", R"("status":"maybe")", invalid_value, "results[0].status"},
        {R"("code":"op_id_reused")", R"("code":"nope")", invalid_value, "results[1].code"},
        {R"("status":"accepted")", R"("status":"accepted","code":"internal")", unknown_field, "results[0].code"},
        {R"(,"message":"seen before")", "", missing_field, "results[1].message"},
        {R"("seq":17)", R"("seq":"17")", wrong_type, "ops[0].seq"},
        {R"("seq":17)", R"("seq":-17)", out_of_range, "ops[0].seq"},
        {R"("seq":17,)", R"("seq":17,"color":1,)", unknown_field, "ops[0].color"},
        {R"({"money":14628})", R"({"money":"14628"})", wrong_type, "ops[0].op.value.money"},
        {R"({"money":14628})", R"({"money":1.5})", out_of_range, "ops[0].op.value.money"},
        {R"("field":"fee")", R"("field":"status2")", unknown_entity_field, "ops[0].op.field"},
        {R"("entity_type":"work_order")", R"("entity_type":"spaceship")", invalid_value, "evicted[0].entity_type"},
        {R"("id":"fedcba9876543210fedcba9876543210")", R"("id":"fedcba")", malformed, "evicted[0].id"},
        {R"("receipt":"")", R"("receipt":"***")", malformed, "receipt"},
        {R"("remaining":3,)", "", missing_field, "remaining"},
        {R"("cursor":17,)", R"("cursor":17,"cursor":18,)", malformed, "cursor"},
        {R"("protocol_version":1)", R"("protocol_version":99)", unsupported_protocol, "protocol_version"},
    };
    // clang-format on
    for (const JsonBreak& c : cases) {
        INFO("after replacing ", std::string(c.from), " by ", std::string(c.to));
        CHECK_REJECTS(sync_response_from_json(edited(k_response_json, c.from, c.to)), ({c.code}),
                      c.field);
    }
    // A receipt longer than a signature.
    const std::string long_receipt = "\"" + std::string(88, 'A') + "\""; // base64 of 66 bytes
    CHECK_REJECTS(sync_response_from_json(
                      edited(k_response_json, R"("receipt":"")", "\"receipt\":" + long_receipt)),
                  ({too_large, malformed}), "receipt");
}

TEST_CASE("codec: op_from_json is strict with member paths relative to the op") {
    using enum ErrorCode;
    // clang-format off
    const JsonBreak cases[] = {
        {R"("kind":"set")", R"("kind":"set","color":1)", unknown_field, "color"},
        {R"({"timestamp":-5})", R"({"timestamp":"-5"})", wrong_type, "value.timestamp"},
        {R"("c":1})", R"("c":-1})", out_of_range, "hlc.c"},
        {R"("field":"collected_at")", R"("field":"status")", unknown_entity_field, "field"},
        {R"("entity_type":"collected_item")", R"("entity_type":"item")", invalid_value, "entity_type"},
    };
    // clang-format on
    for (const JsonBreak& c : cases) {
        INFO("after replacing ", std::string(c.from), " by ", std::string(c.to));
        CHECK_REJECTS(op_from_json(edited(k_op_json, c.from, c.to)), ({c.code}), c.field);
    }
    CHECK_REJECTS(op_from_json("[]"), ({wrong_type}), k_any_field);
    CHECK_REJECTS(sync_request_from_json("[]"), ({wrong_type}), k_any_field);
    CHECK_REJECTS(sync_request_from_json(""), ({malformed}), k_any_field);
}

TEST_CASE("codec: binary messages of the wrong type or version are refused") {
    const std::string request = encode_binary(sample_request());
    const std::string response = encode_binary(sample_response());
    const std::string batch = encode_ops(sample_ops());
    CHECK_REJECTS(decode_sync_response(request), ({ErrorCode::malformed}), "");
    CHECK_REJECTS(decode_ops(request), ({ErrorCode::malformed}), "");
    CHECK_REJECTS(decode_sync_request(response), ({ErrorCode::malformed}), "");
    CHECK_REJECTS(decode_sync_request(batch), ({ErrorCode::malformed}), "");
    std::string unknown_type = request;
    unknown_type[1] = 'X';
    CHECK_REJECTS(decode_sync_request(unknown_type), ({ErrorCode::malformed}), "");

    for (const std::uint32_t version : {0u, k_protocol_version + 1, 99u, 0xFFFF'FFFFu}) {
        CAPTURE(version);
        SyncRequest req = sample_request();
        req.protocol_version = version;
        const std::string wire = encode_binary(req);
        CHECK_REJECTS(decode_sync_request(wire), ({ErrorCode::unsupported_protocol}), "");
        CHECK(peek_protocol_version(wire, false) == version);
        // The version bytes of the other messages, patched.
        const std::string version_bytes = Wire{}.u32(version).bytes;
        CHECK_REJECTS(decode_sync_response(std::string(response).replace(2, 4, version_bytes)),
                      ({ErrorCode::unsupported_protocol}), "");
        CHECK_REJECTS(decode_ops(std::string(batch).replace(2, 4, version_bytes)),
                      ({ErrorCode::unsupported_protocol}), "");
        req.ops.clear();
        CHECK(peek_protocol_version(to_json(req), true) == version);
    }
}

TEST_CASE("codec: peek_protocol_version reads the version of both encodings") {
    CHECK(peek_protocol_version(encode_binary(sample_request()), false) == k_protocol_version);
    CHECK(peek_protocol_version(encode_binary(sample_response()), false) == k_protocol_version);
    CHECK(peek_protocol_version(to_json(sample_request()), true) == k_protocol_version);
    CHECK(peek_protocol_version(to_json(sample_response()), true) == k_protocol_version);
    // Whatever follows the version does not matter to a peek.
    CHECK(peek_protocol_version(message_header(k_type_request, 99).bytes, false) == 99);
    CHECK(peek_protocol_version(R"({"protocol_version":99,"anything":[1,2,3]})", true) == 99);
    for (std::size_t n = 0; n < k_header_bytes; ++n) {
        CAPTURE(n);
        CHECK_REJECTS(
            peek_protocol_version(message_header(k_type_request).bytes.substr(0, n), false),
            ({ErrorCode::truncated}), "");
    }
    CHECK_REJECTS(peek_protocol_version(R"({"replica":1})", true), ({ErrorCode::missing_field}),
                  "protocol_version");
    CHECK_REJECTS(peek_protocol_version(R"({"protocol_version":-1})", true),
                  ({ErrorCode::out_of_range}), "protocol_version");
    CHECK_REJECTS(peek_protocol_version("{\"protocol_version\":", true), ({ErrorCode::malformed}),
                  k_any_field);
    CHECK_REJECTS(peek_protocol_version("[1]", true), ({ErrorCode::wrong_type}), k_any_field);
}

TEST_CASE("codec: hand-written binary with impossible contents is refused") {
    using enum ErrorCode;
    SUBCASE("values") {
        CHECK_DECODES(decode_ops(one_op_batch(value_bytes(1, "\x01"))));
        // A bool other than 0 or 1; value types 9 and 255 do not exist, and 8 (a reference
        // into the message's entity table, version 2) must name an entry of it.
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(1, "\x02"))), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(9))), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(8, "\x05"))), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(0xFF))), ({malformed}), "");
        // Text that is not UTF-8: a cut sequence, an encoded surrogate.
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(4, "\x02\xc3\x28"))), ({invalid_utf8}),
                      "");
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(4, "\x03\xed\xa0\x80"))),
                      ({invalid_utf8}), "");
        // Varints of 11 bytes, and of 10 bytes above 2^64.
        const std::string varint_11 = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01";
        const std::string varint_65_bits = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02";
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(2, varint_11))), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(2, varint_65_bits))), ({malformed}), "");
    }
    SUBCASE("op headers") {
        const std::string true_value = value_bytes(1, "\x01");
        // "Same replica" and "same entity" on the first op; "has observed" with a count of 0.
        CHECK_REJECTS(decode_ops(one_op_batch(true_value, 0x04)), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(true_value, 0x80)), ({malformed}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(true_value, 0x40, "\0"sv)), ({malformed}), "");
        // An author reference into an empty table: the op body is then read differently,
        // but it must be refused whatever it turns out to be.
        CHECK_REJECTS(decode_ops(one_op_batch(true_value, 0x10)), ({malformed, truncated}), "");
        CHECK_REJECTS(decode_ops(one_op_batch(true_value, 0x20)), ({malformed, truncated}), "");
    }
    SUBCASE("field numbers above 65535") {
        Wire w = message_header(k_type_batch);
        w.varint(1).u8(0).varint(42).varint(1).varint(2).id(cast().alice).u8(1).id(cast().case1);
        w.varint(65536).raw(value_bytes(0));
        CHECK_REJECTS(decode_ops(w.bytes), ({malformed}), "");
    }
    SUBCASE("responses") {
        Wire more2 = response_start(2);
        more2.varint(0).varint(0).varint(0).varint(0);
        CHECK_REJECTS(decode_sync_response(more2.bytes), ({malformed}), "");

        Wire ok = response_start(1);
        ok.varint(0).varint(0).varint(0).varint(0);
        CHECK_DECODES(decode_sync_response(ok.bytes));

        const std::uint64_t past_last = static_cast<std::uint64_t>(k_last_error_code) + 1;
        for (const std::uint64_t code : {std::uint64_t{0}, past_last, std::uint64_t{65536 + 4}}) {
            CAPTURE(code);
            Wire w = response_start();
            w.varint(1).varint(42).varint(1).u8(1).varint(code).varint(0);
            w.varint(0).varint(0).varint(0);
            CHECK_REJECTS(decode_sync_response(w.bytes), ({malformed}), "");
        }
        Wire status3 = response_start();
        status3.varint(1).varint(42).varint(1).u8(3).varint(0).varint(0).varint(0);
        CHECK_REJECTS(decode_sync_response(status3.bytes), ({malformed}), "");

        for (const std::uint8_t type : {std::uint8_t{0}, std::uint8_t{7}, std::uint8_t{0xFF}}) {
            CAPTURE(type);
            Wire w = response_start();
            w.varint(0).varint(0).varint(1).u8(type).id(cast().ot1).varint(0);
            CHECK_REJECTS(decode_sync_response(w.bytes), ({malformed}), "");
        }
        Wire receipt65 = response_start();
        receipt65.varint(0).varint(0).varint(0).varint(65).raw(std::string(65, 'r'));
        CHECK_REJECTS(decode_sync_response(receipt65.bytes), ({too_large, malformed}), "");
    }
}

TEST_CASE("codec: a binary message not flagged little endian is refused") {
    // The first byte is cereal's byte-order flag; encoders write 1 (little endian). Any
    // other value makes cereal byte-swap what it reads, in 8-byte steps through texts,
    // bytes and ids (past the end of a 5-byte buffer), so the protocol says: malformed.
    const Cast& c = cast();
    const std::vector<Op> want{
        make_op({42, 1}, 1, c.alice, EntityType::work_order, c.ot1, "signed_rows_hash", OpKind::set,
                Value{Bytes{{1, 2, 3, 4, 5}}}),
        make_op({42, 2}, 1, c.alice, EntityType::work_order, c.ot1, "address", OpKind::set,
                text("Av. Ayacucho 467, Cbba")),
    };
    for (const std::uint8_t flag : {std::uint8_t{0}, std::uint8_t{2}, std::uint8_t{0x80}}) {
        CAPTURE(static_cast<int>(flag));
        Wire w;
        // The header with version 1 written most significant byte first, then two ops.
        w.u8(flag).u8(k_type_batch).u8(0).u8(0).u8(0).u8(1);
        w.varint(2);
        w.u8(0x00).varint(42).varint(1).varint(2);           // set, replica 42, counter 1, HLC 1
        w.id(c.alice).u8(2).id(c.ot1).varint(14);            // author, work_order, entity, field 14
        w.u8(5).varint(5).raw("\x01\x02\x03\x04\x05");       // bytes 01..05
        w.u8(0x04 | 0x08 | 0x10 | 0x80).varint(0).varint(0); // same replica, counter + 1, HLC + 0,
                                                             // author #0, same entity
        w.varint(6).u8(4).varint(22).raw("Av. Ayacucho 467, Cbba"); // field 6 "address", text
        CHECK_REJECTS(decode_ops(w.bytes), ({ErrorCode::malformed}), "");
        // The same bytes flagged little endian are the encoder's own batch.
        w.bytes[0] = 1;
        w.bytes.replace(2, 4, Wire{}.u32(k_protocol_version).bytes);
        CHECK(w.bytes == encode_ops(want));
    }
    std::string request = encode_binary(sample_request());
    std::string response = encode_binary(sample_response());
    request[0] = response[0] = '\0';
    CHECK_REJECTS(decode_sync_request(request), ({ErrorCode::malformed}), "");
    CHECK_REJECTS(decode_sync_response(response), ({ErrorCode::malformed}), "");
}

// ================================================================================================
// 6. Size
// ================================================================================================

TEST_CASE("codec: a typical batch takes at most 34 bytes per op") {
    // 1,000 set ops by one device on 100 cases, round-robin (so entities come back by
    // reference, never as "the same as before"), small int values.
    const Id tech = named("technician");
    std::vector<Id> entities;
    for (int i = 0; i < 100; ++i) {
        entities.push_back(named("entity " + std::to_string(i)));
    }
    std::vector<Op> ops;
    std::uint64_t ms = k_t0;
    for (std::uint64_t i = 0; i < 1000; ++i) {
        ms += i % 7 == 0 ? 1500 : 3; // bursts of edits, then a pause
        ops.push_back(make_op({31'337, 5'000 + i}, at(ms, i % 3), tech, EntityType::case_file,
                              entities[i % 100], "modality", OpKind::set,
                              Value{static_cast<std::int64_t>(1 + i % 4)}));
    }
    const std::string batch = encode_ops(ops);
    SyncRequest req;
    req.replica = 31'337;
    req.ops = ops;
    const std::string request = encode_binary(req);
    MESSAGE("batch: ", batch.size(), " bytes, ", static_cast<double>(batch.size()) / 1000.0,
            " bytes/op");
    CHECK(batch.size() <= 34 * 1000);
    CHECK(request.size() <= 34 * 1000 + 64);
    check_same_ops(decode_ops(batch), ops);
}

// ---- the JSON string writer (json_string.hpp) ------------------------------------------------

namespace {

/// The string a JSON string literal decodes to; fails the test if it is not valid JSON.
std::string decode_json_string(const std::string& literal) {
    const std::string doc = "[" + literal + "]";
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(doc.data(), doc.size());
    REQUIRE_MESSAGE(!d.HasParseError(), literal);
    REQUIRE(d.IsArray());
    REQUIRE(d.Size() == 1);
    REQUIRE(d[0].IsString());
    return std::string(d[0].GetString(), d[0].GetStringLength());
}

} // namespace

TEST_CASE("json_string: escapes, controls, and text copied as it is") {
    CHECK(json_string("") == R"("")");
    CHECK(json_string("plain text / ok") == R"("plain text / ok")");
    CHECK(json_string("a\"b\\c") == R"("a\"b\\c")");
    CHECK(json_string("\b\f\n\r\t") == R"("\b\f\n\r\t")");
    CHECK(json_string(std::string_view("\0\x01\x1f\x7f", 4)) == R"("\u0000\u0001\u001f\u007f")");
    CHECK(json_string("Gutiérrez Ñ € 😀") == "\"Gutiérrez Ñ € 😀\""); // UTF-8 as it is
    CHECK(json_string("\xc2\x80\xc2\x9b\xc2\xa0") == "\"\\u0080\\u009b\xc2\xa0\""); // C1 controls
    CHECK(json_string("\xe2\x80\xa8\xe2\x80\xa9") == R"("\u2028\u2029")");
    std::string out = "x:";
    append_json_string(out, "y");
    CHECK(out == R"(x:"y")");
}

TEST_CASE("json_string: every invalid UTF-8 sequence becomes U+FFFD, per maximal subpart") {
    const std::string r = "\xef\xbf\xbd"; // U+FFFD
    const struct {
        std::string_view in;
        std::string out; // decoded
    } cases[] = {
        {"\xff", r},
        {"\x80", r},                         // a continuation byte alone
        {"\xc0\xaf", r + r},                 // overlong '/': C0 is never a lead
        {"\xe0\x80\xaf", r + r + r},         // overlong: E0 needs A0..BF next
        {"\xed\xa0\x80", r + r + r},         // a surrogate (CESU-8)
        {"\xf4\x90\x80\x80", r + r + r + r}, // above U+10FFFF
        {"\xf5\x80", r + r},                 // no such lead byte
        {"\xe2\x82", r},                     // truncated at the end: one subpart
        {"\xe2\x82x", r + "x"},              // truncated before ASCII
        {"\xf0\x9f\x98", r},                 // a truncated emoji
        {"a\xf1\x80\x80\xe1\x80\xc2"
         "b\x80"
         "c\x80\xbf"
         "d", // Unicode's example, §3.9
         "a" + r + r + r + "b" + r + "c" + r + r + "d"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        const std::string literal = json_string(c.in);
        CHECK(is_valid_utf8(literal));
        CHECK(decode_json_string(literal) == c.out);
    }
}

TEST_CASE("json_string: any bytes make valid JSON; valid UTF-8 round-trips exactly") {
    std::mt19937 rng(20240611);
    std::uniform_int_distribution<int> byte(0, 255), length(0, 40);
    const unsigned char interesting[] = {0x00, 0x1f, 0x22, 0x5c, 0x7f, 0x80, 0xbf, 0xc2,
                                         0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    for (int round = 0; round < 20000; ++round) {
        std::string s(static_cast<std::size_t>(length(rng)), '\0');
        for (auto& c : s) {
            const int b = byte(rng);
            c = static_cast<char>(b < 128 ? interesting[b % sizeof interesting] : b);
        }
        const std::string literal = json_string(s);
        REQUIRE(is_valid_utf8(literal));
        const std::string back = decode_json_string(literal);
        CHECK(is_valid_utf8(back));
        if (is_valid_utf8(s)) {
            CHECK(back == s);
        }
    }
}

TEST_CASE("codec: version 2 refers to an id value the message already holds, and version 1 "
          "still reads and writes as before") {
    // A week's row: its OT is the entity of earlier ops, its handover and signature repeat.
    const Id ot = Id::random(), handover = Id::random(), signature = Id::random();
    std::vector<Op> ops;
    std::uint64_t counter = 0;
    const auto add = [&](EntityType t, const Id& e, std::string_view field, Value v) {
        ops.push_back(make_op({42, ++counter}, at(k_t0 + counter), cast().alice, t, e, field,
                              OpKind::set, std::move(v)));
    };
    add(EntityType::work_order, ot, "signature_ref", Value{signature});
    for (int i = 0; i < 20; ++i) {
        const Id item = Id::collected_item(ot, "ZTEG" + std::to_string(i));
        add(EntityType::collected_item, item, "work_order", Value{ot});
        add(EntityType::collected_item, item, "serial", Value{text("ZTEG" + std::to_string(i))});
        add(EntityType::collected_item, item, "handover", Value{handover});
        add(EntityType::collected_item, item, "signature_ref", Value{signature});
    }
    SyncRequest v2 = sample_request();
    v2.ops = ops;
    v2.wait_ms = 25'000;
    v2.ops_signature = std::vector<std::uint8_t>(64, 0xAB);
    SyncRequest v1 = v2;
    v1.protocol_version = 1;
    const std::string b2 = encode_binary(v2), b1 = encode_binary(v1);
    // 60 id values of 16 bytes become references of one byte (plus the first of each).
    CHECK(b1.size() - (b2.size() - 4 - 65) >= 60 * 15 - 3 * 16);
    const SyncRequest back2 = decode_sync_request(b2);
    check_same_ops(back2.ops, ops);
    CHECK(back2.wait_ms == 25'000);
    CHECK(back2.ops_signature == v2.ops_signature);
    const SyncRequest back1 = decode_sync_request(b1);
    check_same_ops(back1.ops, ops);
    CHECK(back1.protocol_version == 1);
    CHECK(back1.wait_ms == 0); // not in version 1
    CHECK(back1.ops_signature.empty());
    // A response in version 2 refers the same way.
    SyncResponse resp = sample_response();
    resp.ops.clear();
    for (std::size_t i = 0; i < ops.size(); ++i) {
        resp.ops.push_back({100 + i, ops[i]});
    }
    const SyncResponse rback = decode_sync_response(encode_binary(resp));
    REQUIRE(rback.ops.size() == ops.size());
    for (std::size_t i = 0; i < ops.size(); ++i) {
        CHECK(rback.ops[i].op == ops[i]);
    }
    // A reference to an id no earlier raw id put in the table is refused; in version 1 the
    // value tag 8 does not exist at all.
    CHECK_REJECTS(decode_ops(one_op_batch(value_bytes(8, "\x01"))), ({ErrorCode::malformed}), "");
    std::string v1_batch = one_op_batch(value_bytes(8, std::string_view("\x00", 1)));
    v1_batch.replace(2, 4, Wire{}.u32(1).bytes);
    CHECK_REJECTS(decode_ops(v1_batch), ({ErrorCode::malformed}), "");
    CHECK_DECODES(
        decode_ops(one_op_batch(value_bytes(8, std::string_view("\x00", 1))))); // its entity
}

TEST_CASE("codec: wait_ms and ops_signature in JSON, version 2 only") {
    SyncRequest m = sample_request();
    m.wait_ms = 1500;
    m.ops_signature = std::vector<std::uint8_t>(64, 7);
    const std::string j = to_json(m);
    CHECK(j.find("\"wait_ms\":1500") != std::string::npos);
    const SyncRequest back = sync_request_from_json(j);
    CHECK(back == m);
    // Without them: zero and empty.
    m.wait_ms = 0;
    m.ops_signature.clear();
    CHECK(sync_request_from_json(to_json(m)) == m);
    // In version 1 they are members the message does not have.
    std::string v1 = j;
    v1.replace(v1.find("\"protocol_version\":2"), 20, "\"protocol_version\":1");
    CHECK_REJECTS(sync_request_from_json(v1), ({ErrorCode::unknown_field}), k_any_field);
    // A signature longer than 64 bytes is refused.
    std::string long_sig = to_json(m);
    long_sig.insert(long_sig.size() - 1,
                    ",\"ops_signature\":\"" + to_base64(std::vector<std::uint8_t>(65, 1)) + "\"");
    CHECK_REJECTS(sync_request_from_json(long_sig), ({ErrorCode::too_large}), "ops_signature");
}

TEST_CASE("codec: an op's hash is its own, whatever message or encoding carried it") {
    const auto ops = sample_ops();
    SyncRequest r = sample_request();
    const SyncRequest via_binary = decode_sync_request(encode_binary(r));
    const SyncRequest via_json = sync_request_from_json(to_json(r));
    r.protocol_version = 1;
    const SyncRequest via_v1 = decode_sync_request(encode_binary(r));
    REQUIRE(via_binary.ops.size() == ops.size());
    for (std::size_t i = 0; i < ops.size(); ++i) {
        CAPTURE(i);
        CHECK(op_leaf(via_binary.ops[i]) == op_leaf(ops[i]));
        CHECK(op_leaf(via_json.ops[i]) == op_leaf(ops[i]));
        CHECK(op_leaf(via_v1.ops[i]) == op_leaf(ops[i]));
    }
    CHECK(ops_signing_string(std::span<const Op>(ops)) ==
          ops_signing_string(std::span<const Op>(via_json.ops)));
    // Any change of content, order or count changes what is signed.
    auto changed = ops;
    changed[0].hlc += 1;
    CHECK(ops_signing_string(std::span<const Op>(changed)) !=
          ops_signing_string(std::span<const Op>(ops)));
    auto swapped = ops;
    std::swap(swapped[0], swapped[1]);
    CHECK(ops_signing_string(std::span<const Op>(swapped)) !=
          ops_signing_string(std::span<const Op>(ops)));
    CHECK(ops_signing_string(std::span<const Op>(ops).first(ops.size() - 1)) !=
          ops_signing_string(std::span<const Op>(ops)));
}
