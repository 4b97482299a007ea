#include "otsync/attachment.hpp"

#include <sodium.h>

#include <algorithm>
#include <charconv>
#include <string>

namespace otsync::attachment {

namespace {

struct KindRow {
    Kind kind;
    std::string_view name;
};
constexpr KindRow k_kinds[] = {
    {Kind::customer_signature, "customer_signature"},
    {Kind::technician_signature, "technician_signature"},
    {Kind::clerk_signature, "clerk_signature"},
    {Kind::equipment_photo, "equipment_photo"},
    {Kind::requirement_scan, "requirement_scan"},
};
static_assert(std::size(k_kinds) == static_cast<std::size_t>(k_last_kind));

struct RefField {
    EntityType entity;
    std::string_view field;
    Kind kind;
    bool labelled; // a set of "<label> <hex>"; else a register holding the hash
};
constexpr RefField k_ref_fields[] = {
    {EntityType::work_order, "signature_blob", Kind::customer_signature, false},
    {EntityType::collected_item, "signature_blob", Kind::customer_signature, false},
    {EntityType::handover, "technician_signature_blob", Kind::technician_signature, false},
    {EntityType::handover, "clerk_signature_blob", Kind::clerk_signature, false},
    {EntityType::work_order, "equipment_photos", Kind::equipment_photo, true},
    {EntityType::case_file, "requirement_scans", Kind::requirement_scan, true},
};

const RefField* ref_field(EntityType t, std::string_view field) noexcept {
    for (const auto& r : k_ref_fields) {
        if (r.entity == t && r.field == field) {
            return &r;
        }
    }
    return nullptr;
}

bool parse_u64(std::string_view s, std::uint64_t& out) noexcept {
    if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

struct MediaRow {
    MediaType type;
    std::string_view content_type;
    std::string_view extension;
};
constexpr MediaRow k_media[] = {
    {MediaType::png, "image/png", "png"},
    {MediaType::jpeg, "image/jpeg", "jpg"},
    {MediaType::pdf, "application/pdf", "pdf"},
};

const MediaRow& media_row(MediaType t) noexcept {
    static constexpr MediaRow unknown{MediaType::png, "application/octet-stream", "bin"};
    for (const auto& r : k_media) {
        if (r.type == t) {
            return r;
        }
    }
    return unknown;
}

bool starts_with(std::span<const std::uint8_t> b, std::span<const std::uint8_t> prefix) {
    return b.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), b.begin());
}

bool ends_with(std::span<const std::uint8_t> b, std::span<const std::uint8_t> suffix) {
    return b.size() >= suffix.size() &&
           std::equal(suffix.begin(), suffix.end(), b.end() - static_cast<long>(suffix.size()));
}

bool is_png(std::span<const std::uint8_t> b) {
    // The 8-byte signature, the IHDR chunk first (length 13), the IEND chunk last.
    static constexpr std::uint8_t head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                            0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    static constexpr std::uint8_t tail[] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    return b.size() >= sizeof head + 17 + sizeof tail && starts_with(b, head) && ends_with(b, tail);
}

bool is_jpeg(std::span<const std::uint8_t> b) {
    // Start of image, then a marker; end of image last.
    static constexpr std::uint8_t head[] = {0xff, 0xd8, 0xff};
    static constexpr std::uint8_t tail[] = {0xff, 0xd9};
    return b.size() >= sizeof head + sizeof tail + 1 && starts_with(b, head) && ends_with(b, tail);
}

bool is_pdf(std::span<const std::uint8_t> b) {
    static constexpr std::uint8_t head[] = {'%', 'P', 'D', 'F', '-'};
    static constexpr std::string_view eof = "%%EOF";
    if (b.size() < sizeof head + eof.size() || !starts_with(b, head)) {
        return false;
    }
    const auto from = b.end() - static_cast<long>(std::min<std::size_t>(b.size(), 1024));
    return std::search(from, b.end(), eof.begin(), eof.end()) != b.end();
}

} // namespace

std::string_view kind_name(Kind k) noexcept {
    for (const auto& r : k_kinds) {
        if (r.kind == k) {
            return r.name;
        }
    }
    return "unknown";
}

std::optional<Kind> kind_from_name(std::string_view name) noexcept {
    for (const auto& r : k_kinds) {
        if (r.name == name) {
            return r.kind;
        }
    }
    return std::nullopt;
}

std::optional<Kind> kind_from_number(std::uint64_t n) noexcept {
    if (n < 1 || n > static_cast<std::uint64_t>(k_last_kind)) {
        return std::nullopt;
    }
    return static_cast<Kind>(n);
}

std::string_view content_type(MediaType t) noexcept {
    return media_row(t).content_type;
}

std::string_view extension(MediaType t) noexcept {
    return media_row(t).extension;
}

std::optional<MediaType> sniff(std::span<const std::uint8_t> bytes) noexcept {
    if (is_png(bytes)) {
        return MediaType::png;
    }
    if (is_jpeg(bytes)) {
        return MediaType::jpeg;
    }
    if (is_pdf(bytes)) {
        return MediaType::pdf;
    }
    return std::nullopt;
}

const KindLimits& Limits::of(Kind k) const noexcept {
    switch (k) {
    case Kind::customer_signature:
        return customer_signature;
    case Kind::technician_signature:
        return technician_signature;
    case Kind::clerk_signature:
        return clerk_signature;
    case Kind::equipment_photo:
        return equipment_photo;
    case Kind::requirement_scan:
        break;
    }
    return requirement_scan;
}

KindLimits& Limits::of(Kind k) noexcept {
    return const_cast<KindLimits&>(static_cast<const Limits&>(*this).of(k));
}

MediaType check(Kind k, std::span<const std::uint8_t> bytes, const Limits& limits) {
    const KindLimits& l = limits.of(k);
    const std::string what(kind_name(k));
    if (bytes.empty()) {
        throw Error(ErrorCode::invalid_value, "the " + what + " is empty");
    }
    if (bytes.size() > l.max_bytes) {
        throw Error(ErrorCode::too_large, "the " + what + " has " + std::to_string(bytes.size()) +
                                              " bytes, over its limit of " +
                                              std::to_string(l.max_bytes));
    }
    const auto type = sniff(bytes);
    if (!type || std::find(l.types.begin(), l.types.end(), *type) == l.types.end()) {
        std::string accepted;
        for (const MediaType t : l.types) {
            accepted += (accepted.empty() ? "" : ", ") + std::string(extension(t));
        }
        throw Error(ErrorCode::unsupported_media_type,
                    "the " + what + " is not a whole file of its types (" + accepted + ")");
    }
    return *type;
}

Hash256 blob_hash(std::span<const std::uint8_t> bytes) {
    Hasher h;
    h.update(bytes);
    return h.finish();
}

static_assert(sizeof(crypto_generichash_state) <= 384 && alignof(crypto_generichash_state) <= 64);

Hasher::Hasher() {
    if (sodium_init() < 0) {
        throw Error(ErrorCode::internal, "libsodium could not be initialised");
    }
    crypto_generichash_init(reinterpret_cast<crypto_generichash_state*>(m_state.data()), nullptr, 0,
                            crypto_generichash_BYTES);
}

void Hasher::update(std::span<const std::uint8_t> bytes) {
    crypto_generichash_update(reinterpret_cast<crypto_generichash_state*>(m_state.data()),
                              bytes.data(), bytes.size());
}

Hash256 Hasher::finish() {
    Hash256 out{};
    crypto_generichash_final(reinterpret_cast<crypto_generichash_state*>(m_state.data()),
                             out.data(), out.size());
    return out;
}

std::optional<Kind> kind_of_field(EntityType t, std::string_view field) noexcept {
    const RefField* r = ref_field(t, field);
    return r ? std::optional(r->kind) : std::nullopt;
}

std::optional<Hash256> hash_from_hex(std::string_view text) noexcept {
    Hash256 h{};
    if (text.size() != 2 * h.size()) {
        return std::nullopt;
    }
    const auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        c = static_cast<char>(c | 0x20);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (std::size_t i = 0; i < h.size(); ++i) {
        const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        h[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return h;
}

std::optional<Reference> reference_of(EntityType t, std::string_view field, const Value& v) {
    const RefField* r = ref_field(t, field);
    if (!r) {
        return std::nullopt;
    }
    Reference out;
    out.kind = r->kind;
    if (!r->labelled) {
        const auto* b = std::get_if<Bytes>(&v);
        if (!b || b->data.size() != out.hash.size()) {
            return std::nullopt;
        }
        std::copy(b->data.begin(), b->data.end(), out.hash.begin());
        return out;
    }
    const auto* s = std::get_if<std::string>(&v);
    if (!s || s->size() < 66 || (*s)[s->size() - 65] != ' ') {
        return std::nullopt;
    }
    const auto h = hash_from_hex(std::string_view(*s).substr(s->size() - 64));
    if (!h) {
        return std::nullopt;
    }
    out.hash = *h;
    out.label = s->substr(0, s->size() - 65);
    return out;
}

std::string reference_text(std::string_view label, const Hash256& h) {
    return std::string(label) + " " + to_hex(h);
}

std::string upload_path(const Hash256& h, std::uint64_t size, std::uint64_t offset) {
    return "/v1/blobs/" + to_hex(h) + "/" + std::to_string(size) + "/" + std::to_string(offset);
}

std::optional<UploadTarget> parse_upload_path(std::string_view path) noexcept {
    constexpr std::string_view prefix = "/v1/blobs/";
    if (path.substr(0, prefix.size()) != prefix) {
        return std::nullopt;
    }
    path.remove_prefix(prefix.size());
    const auto a = path.find('/');
    if (a != 64) {
        return std::nullopt;
    }
    const auto b = path.find('/', a + 1);
    if (b == std::string_view::npos) {
        return std::nullopt;
    }
    UploadTarget t;
    const auto h = hash_from_hex(path.substr(0, a));
    const bool lower =
        std::none_of(path.begin(), path.begin() + a, [](char c) { return c >= 'A' && c <= 'F'; });
    if (!h || !lower || !parse_u64(path.substr(a + 1, b - a - 1), t.size) ||
        !parse_u64(path.substr(b + 1), t.offset)) {
        return std::nullopt;
    }
    t.hash = *h;
    return t;
}

std::uint64_t Chunks::count() const noexcept {
    return chunk_bytes == 0 ? 0 : (total + chunk_bytes - 1) / chunk_bytes;
}

std::uint32_t Chunks::size(std::uint64_t i) const noexcept {
    if (i >= count()) {
        return 0;
    }
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_bytes, total - offset(i)));
}

} // namespace otsync::attachment
