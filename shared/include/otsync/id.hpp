// Entity and user ids: 16 bytes, random (libsodium) or derived from a natural key.
// Text form: 32 lowercase hex digits.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

namespace otsync {

/// Initializes libsodium once; every function that needs it calls this. Throws on failure.
void ensure_sodium();

struct Id {
    std::array<std::uint8_t, 16> bytes{};

    /// 16 bytes from libsodium's CSPRNG.
    static Id random();
    /// The id of a collected item on an OT: BLAKE2b-128 of (ot id, serial), keyed by a
    /// domain tag so it never equals an id made for another purpose. Two devices that
    /// record the same serial on the same OT thus name the same row.
    static Id collected_item(const Id& ot, std::string_view serial);
    /// Generic natural-key id: BLAKE2b-128 over a domain tag and a key.
    static Id natural(std::string_view domain, std::string_view key);
    /// Parses exactly 32 hex digits (either case); throws Error(malformed) otherwise.
    static Id from_hex(std::string_view text);

    std::string hex() const;
    bool is_zero() const noexcept;

    auto operator<=>(const Id&) const = default;
};

/// Upper-cases and trims a scanned serial so "zteg1234 " and "ZTEG1234" name one item.
std::string normalize_serial(std::string_view serial);

} // namespace otsync

template <>
struct std::hash<otsync::Id> {
    std::size_t operator()(const otsync::Id& id) const noexcept {
        // Ids are random or cryptographic hashes: their first bytes are already uniform.
        std::size_t h;
        std::memcpy(&h, id.bytes.data(), sizeof h);
        return h;
    }
};
