// libsodium wrappers shared by server and client: Ed25519 device and server keys, the
// signing string of a sync request, the server's receipt over accepted op ids, BLAKE2b
// and constant-time comparison. Secrets live in SecretKey, wiped with sodium_memzero.
#pragma once

#include "otsync/op.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace otsync {

using PublicKey = std::array<std::uint8_t, 32>;
using Signature = std::array<std::uint8_t, 64>;
using Hash256 = std::array<std::uint8_t, 32>;

/// An Ed25519 secret key (libsodium's 64-byte form). Wiped on destruction; not copyable.
class SecretKey {
public:
    SecretKey() = default;
    SecretKey(const SecretKey&) = delete;
    SecretKey& operator=(const SecretKey&) = delete;
    SecretKey(SecretKey&& other) noexcept;
    SecretKey& operator=(SecretKey&& other) noexcept;
    ~SecretKey();

    std::span<std::uint8_t, 64> bytes() noexcept { return m_bytes; }
    std::span<const std::uint8_t, 64> bytes() const noexcept { return m_bytes; }
    void wipe() noexcept;

private:
    std::array<std::uint8_t, 64> m_bytes{};
};

struct SigningKeyPair {
    PublicKey public_key{};
    SecretKey secret;
    static SigningKeyPair generate();
};

Signature sign(std::string_view message, const SecretKey& key);
bool verify(const Signature& sig, std::string_view message, const PublicKey& key) noexcept;

Hash256 blake2b_256(std::string_view data);
/// Constant-time equality of two byte strings of the same length (false otherwise).
bool equal_constant_time(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

std::string to_hex(std::span<const std::uint8_t> bytes);

/// Standard base64 (RFC 4648, with padding), as every JSON body of the protocol uses.
std::string to_base64(std::span<const std::uint8_t> bytes);
/// Strict base64 decode: nullopt for anything that is not standard padded base64;
/// `max_bytes` bounds the result (and the allocation) before decoding.
std::optional<std::vector<std::uint8_t>> from_base64(std::string_view text, std::size_t max_bytes);

/// What a device signs for every sync request (docs/protocol.md §2.2): method, path, request
/// counter and the BLAKE2b-256 of the exact body bytes, one per line after a
/// version tag. docs/protocol.md gives a worked example.
std::string sync_signing_string(std::string_view method, std::string_view path,
                                std::uint64_t request_counter, std::string_view body);

/// What the server signs as its receipt: the device, its request counter and every
/// accepted op id, in the order of the request.
std::string receipt_message(std::uint64_t replica, std::uint64_t request_counter,
                            std::span<const OpId> accepted);

/// What the server signs to prove a device's revocation: a device wipes its data only
/// on a `device_revoked` answer whose signature over this message verifies with the
/// server key it got at enrollment, for its own replica.
std::string revocation_message(std::uint64_t replica, std::int64_t revoked_at_ms);

/// What the server signs when the warehouse receives a handover (its attestation, kept on
/// the handover as receipt_signature): the handover, the clerk's user id, the receipt
/// time and the hex BLAKE2b-256 of the received rows, one per line.
std::string handover_receipt_message(const Id& handover, const Id& clerk, std::int64_t received_at,
                                     std::string_view rows_hash_hex);

} // namespace otsync
