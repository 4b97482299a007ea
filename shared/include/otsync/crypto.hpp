// libsodium wrappers shared by server and client: Ed25519 device and server keys, the
// signing string of a sync request, the server's receipt over accepted op ids, BLAKE2b
// and constant-time comparison; for protocol 2's sessions, the X25519 key exchange
// (crypto_kx) and the request MAC (crypto_auth, HMAC-SHA-512-256). Secrets live in
// SecretKey and MacKey, wiped with sodium_memzero.
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

// ---- protocol 2: sessions ----

using SessionId = std::array<std::uint8_t, 16>;
using MacTag = std::array<std::uint8_t, 32>;

/// A session's request key (32 bytes). Wiped on destruction.
class MacKey {
public:
    MacKey() = default;
    MacKey(const MacKey& other) = default;
    MacKey& operator=(const MacKey& other) = default;
    ~MacKey();
    std::array<std::uint8_t, 32> bytes{};
};

/// An ephemeral X25519 key pair of one handshake (crypto_kx). Wiped on destruction.
struct KxKeyPair {
    PublicKey public_key{};
    std::array<std::uint8_t, 32> secret{};
    static KxKeyPair generate();
    KxKeyPair() = default;
    KxKeyPair(const KxKeyPair&) = delete;
    KxKeyPair& operator=(const KxKeyPair&) = delete;
    KxKeyPair(KxKeyPair&&) = default; // both copies are wiped when they go
    KxKeyPair& operator=(KxKeyPair&&) = default;
    ~KxKeyPair();
};

/// The session's request key as the device computes it (its crypto_kx transmit key), and
/// as the server does (its receive key): the same 32 bytes. nullopt when the other side's
/// key is not a valid public key.
std::optional<MacKey> device_session_key(const KxKeyPair& device, const PublicKey& server_kx);
std::optional<MacKey> server_session_key(const KxKeyPair& server, const PublicKey& device_kx);

MacTag mac(std::string_view message, const MacKey& key);
bool verify_mac(const MacTag& tag, std::string_view message, const MacKey& key) noexcept;

/// What the device signs to open a session: its replica, the request counter the
/// handshake uses and its ephemeral key (hex), one per line after a version tag.
std::string session_hello_message(std::uint64_t replica, std::uint64_t counter,
                                  const PublicKey& device_kx);
/// What the server signs back: the same, then its ephemeral key, the session id (hex) and
/// the expiry (ms): the device checks it with the server key it got at enrollment.
std::string session_accept_message(std::uint64_t replica, std::uint64_t counter,
                                   const PublicKey& device_kx, const PublicKey& server_kx,
                                   const SessionId& session, std::int64_t expires_at);
/// What a session's request MACs: like sync_signing_string, with its own version tag and
/// the session id (hex) before the body hash.
std::string sync_mac_string(std::string_view method, std::string_view path,
                            std::uint64_t request_counter, const SessionId& session,
                            std::string_view body);

/// What the server signs when the warehouse receives a handover (its attestation, kept on
/// the handover as receipt_signature): the handover, the clerk's user id, the receipt
/// time and the hex BLAKE2b-256 of the received rows, one per line.
std::string handover_receipt_message(const Id& handover, const Id& clerk, std::int64_t received_at,
                                     std::string_view rows_hash_hex);

} // namespace otsync
