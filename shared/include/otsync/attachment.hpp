// Attachments: the images and documents that go with field facts (the customer's signature
// on the Anexo 4 rows, the technician's and the clerk's signatures on a handover, photos of
// damaged or missing equipment, scans of a case's requirements). Each is a blob named by
// the BLAKE2b-256 hash of its bytes, which ops reference; this file says which kinds there
// are, which types each kind takes (told from the bytes, never from a file name), the
// limits, and how an upload is cut into chunks. Server and client check the same rules.
#pragma once

#include "otsync/crypto.hpp"
#include "otsync/error.hpp"
#include "otsync/model.hpp"
#include "otsync/value.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace otsync::attachment {

/// What an attachment is for; the number is stored and sent, so it never changes.
enum class Kind : std::uint8_t {
    customer_signature = 1,   // Anexo 4: FIRMA CLIENTE, one per OT's signed rows
    technician_signature = 2, // a handover's "Entregado por"
    clerk_signature = 3,      // a handover's "Recibido por"
    equipment_photo = 4,      // a damaged or missing item
    requirement_scan = 5,     // Anexo 2: CI, NIT, representative's note, Plan B, sketch
};
inline constexpr Kind k_last_kind = Kind::requirement_scan;

/// The stable spelling ("customer_signature"...) and its inverse.
std::string_view kind_name(Kind k) noexcept;
std::optional<Kind> kind_from_name(std::string_view name) noexcept;
std::optional<Kind> kind_from_number(std::uint64_t n) noexcept;

/// The types an attachment may have, each told from its bytes.
enum class MediaType : std::uint8_t { png = 1, jpeg = 2, pdf = 3 };

/// The fixed Content-Type it is served with ("image/png", "image/jpeg", "application/pdf").
std::string_view content_type(MediaType t) noexcept;
/// The file name extension for a download ("png", "jpg", "pdf").
std::string_view extension(MediaType t) noexcept;

/// The type of these bytes when they are a whole PNG (signature, IHDR first, IEND last),
/// JPEG (SOI first, EOI last) or PDF ("%PDF-" first, "%%EOF" in its last KiB); nullopt for
/// anything else, a truncated file included.
std::optional<MediaType> sniff(std::span<const std::uint8_t> bytes) noexcept;

struct KindLimits {
    std::uint64_t max_bytes = 0;
    std::uint32_t max_per_owner = 0; // per OT, handover or case
    std::vector<MediaType> types;    // what the kind accepts
};

/// Every limit of attachments, explicit and configurable (server options, client setters).
struct Limits {
    KindLimits customer_signature{256 * 1024, 1, {MediaType::png}};
    KindLimits technician_signature{256 * 1024, 1, {MediaType::png}};
    KindLimits clerk_signature{256 * 1024, 1, {MediaType::png}};
    KindLimits equipment_photo{4 * 1024 * 1024, 20, {MediaType::jpeg, MediaType::png}};
    KindLimits requirement_scan{
        10 * 1024 * 1024, 20, {MediaType::pdf, MediaType::jpeg, MediaType::png}};
    /// The bytes of one upload chunk (the last one may be shorter).
    std::uint32_t chunk_bytes = 64 * 1024;

    const KindLimits& of(Kind k) const noexcept;
    KindLimits& of(Kind k) noexcept;
};

/// The media type of `bytes` as an attachment of kind `k`, or an Error: too_large past the
/// kind's bytes, invalid_value when empty, unsupported_media_type when the bytes are not
/// one of the kind's types.
MediaType check(Kind k, std::span<const std::uint8_t> bytes, const Limits& limits);

/// The hash that names a blob.
Hash256 blob_hash(std::span<const std::uint8_t> bytes);

/// The same hash over bytes that arrive in pieces (an upload's chunks).
class Hasher {
public:
    Hasher();
    void update(std::span<const std::uint8_t> bytes);
    Hash256 finish(); // once
private:
    alignas(64) std::array<unsigned char, 384> m_state{}; // libsodium's generichash state
};

/// How a blob of `total` bytes is cut into chunks of `chunk_bytes`: chunk i covers
/// [offset(i), offset(i) + size(i)).
struct Chunks {
    std::uint64_t total = 0;
    std::uint32_t chunk_bytes = 64 * 1024;

    std::uint64_t count() const noexcept;
    std::uint64_t offset(std::uint64_t i) const noexcept { return i * chunk_bytes; }
    std::uint32_t size(std::uint64_t i) const noexcept;
};

// ---- references: the fields of the model that name blobs ----------------------------------

/// A field's reference to a blob: a signature register holds the hash (bytes); a photo's or
/// a scan's set element is "<label> <64 lowercase hex digits>", the label being the item's
/// serial or the requirement's code.
struct Reference {
    Kind kind{};
    Hash256 hash{};
    std::string label; // empty for a signature
};

/// The kind of blob a field references (work_order.signature_blob: customer_signature...),
/// or nullopt for every other field.
std::optional<Kind> kind_of_field(EntityType t, std::string_view field) noexcept;
/// The reference a value of that field makes, or nullopt (another field, a null, a
/// malformed element).
std::optional<Reference> reference_of(EntityType t, std::string_view field, const Value& v);
/// A photo's or a scan's set element.
std::string reference_text(std::string_view label, const Hash256& h);
/// 64 hex digits (either case) as a hash.
std::optional<Hash256> hash_from_hex(std::string_view text) noexcept;

// ---- the upload route (docs/protocol.md, attachments) ------------------------------------

/// "/v1/blobs/<hash hex>/<size>/<offset>": what a chunk request is posted to (and signed for).
std::string upload_path(const Hash256& h, std::uint64_t size, std::uint64_t offset);
struct UploadTarget {
    Hash256 hash{};
    std::uint64_t size = 0;
    std::uint64_t offset = 0;
};
/// The target of an upload path, or nullopt when it is not exactly that form (decimal
/// without sign or leading zeros, at most 19 digits; lowercase hex).
std::optional<UploadTarget> parse_upload_path(std::string_view path) noexcept;

} // namespace otsync::attachment
