// libsodium wrappers; see crypto.hpp.
#include "otsync/crypto.hpp"

#include "otsync/error.hpp"
#include "otsync/id.hpp"

#include <sodium.h>

namespace otsync {

SecretKey::SecretKey(SecretKey&& other) noexcept : m_bytes(other.m_bytes) {
    other.wipe();
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
    if (this != &other) {
        m_bytes = other.m_bytes;
        other.wipe();
    }
    return *this;
}

SecretKey::~SecretKey() {
    wipe();
}

void SecretKey::wipe() noexcept {
    sodium_memzero(m_bytes.data(), m_bytes.size());
}

SigningKeyPair SigningKeyPair::generate() {
    ensure_sodium();
    SigningKeyPair kp;
    if (crypto_sign_keypair(kp.public_key.data(), kp.secret.bytes().data()) != 0) {
        throw Error(ErrorCode::internal, "crypto_sign_keypair failed");
    }
    return kp;
}

Signature sign(std::string_view message, const SecretKey& key) {
    ensure_sodium();
    Signature sig{};
    crypto_sign_detached(sig.data(), nullptr,
                         reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         key.bytes().data());
    return sig;
}

bool verify(const Signature& sig, std::string_view message, const PublicKey& key) noexcept {
    if (sodium_init() < 0) {
        return false;
    }
    return crypto_sign_verify_detached(sig.data(),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(), key.data()) == 0;
}

Hash256 blake2b_256(std::string_view data) {
    ensure_sodium();
    Hash256 h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size(), nullptr, 0);
    return h;
}

bool equal_constant_time(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    ensure_sodium();
    std::string out(bytes.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), bytes.data(), bytes.size());
    out.pop_back();
    return out;
}

std::string to_base64(std::span<const std::uint8_t> bytes) {
    ensure_sodium();
    std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    out.pop_back(); // the terminating NUL
    return out;
}

std::optional<std::vector<std::uint8_t>> from_base64(std::string_view text, std::size_t max_bytes) {
    ensure_sodium();
    if (text.size() / 4 * 3 > max_bytes + 2) {
        return std::nullopt;
    }
    std::vector<std::uint8_t> out(text.size() / 4 * 3 + 3);
    std::size_t len = 0;
    const char* end = nullptr;
    if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text.data() + text.size()) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

namespace {

/// The lines a request's signature or MAC covers: tag, method, path, counter, `extra`
/// (whole lines), the body's hash; no trailing newline.
std::string request_lines(std::string_view tag, std::string_view method, std::string_view path,
                          std::uint64_t request_counter, const std::string& extra,
                          std::string_view body) {
    std::string s(tag);
    s += '\n';
    s += method;
    s += '\n';
    s += path;
    s += '\n';
    s += std::to_string(request_counter);
    s += '\n';
    s += extra;
    s += to_hex(blake2b_256(body));
    return s;
}

} // namespace

std::string sync_signing_string(std::string_view method, std::string_view path,
                                std::uint64_t request_counter, std::string_view body) {
    return request_lines("otsync-sync-v1", method, path, request_counter, {}, body);
}

MacKey::~MacKey() {
    sodium_memzero(bytes.data(), bytes.size());
}

KxKeyPair KxKeyPair::generate() {
    ensure_sodium();
    KxKeyPair k;
    crypto_kx_keypair(k.public_key.data(), k.secret.data());
    return k;
}

KxKeyPair::~KxKeyPair() {
    sodium_memzero(secret.data(), secret.size());
}

std::optional<MacKey> device_session_key(const KxKeyPair& device, const PublicKey& server_kx) {
    static_assert(crypto_kx_SESSIONKEYBYTES == 32 && crypto_auth_KEYBYTES == 32);
    std::array<std::uint8_t, 32> rx{};
    MacKey tx;
    const int rc =
        crypto_kx_client_session_keys(rx.data(), tx.bytes.data(), device.public_key.data(),
                                      device.secret.data(), server_kx.data());
    sodium_memzero(rx.data(), rx.size());
    if (rc != 0) {
        return std::nullopt;
    }
    return tx;
}

std::optional<MacKey> server_session_key(const KxKeyPair& server, const PublicKey& device_kx) {
    MacKey rx;
    std::array<std::uint8_t, 32> tx{};
    const int rc =
        crypto_kx_server_session_keys(rx.bytes.data(), tx.data(), server.public_key.data(),
                                      server.secret.data(), device_kx.data());
    sodium_memzero(tx.data(), tx.size());
    if (rc != 0) {
        return std::nullopt;
    }
    return rx;
}

MacTag mac(std::string_view message, const MacKey& key) {
    ensure_sodium();
    MacTag t{};
    crypto_auth(t.data(), reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                key.bytes.data());
    return t;
}

bool verify_mac(const MacTag& tag, std::string_view message, const MacKey& key) noexcept {
    return crypto_auth_verify(tag.data(), reinterpret_cast<const unsigned char*>(message.data()),
                              message.size(), key.bytes.data()) == 0;
}

std::string session_hello_message(std::uint64_t replica, std::uint64_t counter,
                                  const PublicKey& device_kx) {
    return "otsync-session-v2\n" + std::to_string(replica) + "\n" + std::to_string(counter) + "\n" +
           to_hex(device_kx);
}

std::string session_accept_message(std::uint64_t replica, std::uint64_t counter,
                                   const PublicKey& device_kx, const PublicKey& server_kx,
                                   const SessionId& session, std::int64_t expires_at) {
    return session_hello_message(replica, counter, device_kx) + "\n" + to_hex(server_kx) + "\n" +
           to_hex(session) + "\n" + std::to_string(expires_at);
}

std::string sync_mac_string(std::string_view method, std::string_view path,
                            std::uint64_t request_counter, const SessionId& session,
                            std::string_view body) {
    return request_lines("otsync-sync-v2", method, path, request_counter, to_hex(session) + "\n",
                         body);
}

std::string handover_receipt_message(const Id& handover, const Id& clerk, std::int64_t received_at,
                                     std::string_view rows_hash_hex) {
    return "otsync-receipt-v1\n" + handover.hex() + "\n" + clerk.hex() + "\n" +
           std::to_string(received_at) + "\n" + std::string(rows_hash_hex) + "\n";
}

std::string revocation_message(std::uint64_t replica, std::int64_t revoked_at_ms) {
    return "otsync-revocation-v1\n" + std::to_string(replica) + "\n" +
           std::to_string(revoked_at_ms) + "\n";
}

std::string receipt_message(std::uint64_t replica, std::uint64_t request_counter,
                            std::span<const OpId> accepted) {
    std::string s = "otsync-receipt-v1\n" + std::to_string(replica) + "\n" +
                    std::to_string(request_counter) + "\n";
    for (const auto& id : accepted) {
        s += std::to_string(id.replica);
        s += ':';
        s += std::to_string(id.counter);
        s += '\n';
    }
    return s;
}

} // namespace otsync
