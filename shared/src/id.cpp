// Ids from libsodium: randombytes_buf for new entities, crypto_generichash for natural keys.
#include "otsync/id.hpp"

#include "otsync/error.hpp"

#include <sodium.h>

#include <algorithm>
#include <cctype>

namespace otsync {

void ensure_sodium() {
    // sodium_init is thread-safe and idempotent; 1 means "already initialized".
    static const int rc = sodium_init();
    if (rc < 0) {
        throw Error(ErrorCode::internal, "libsodium failed to initialize");
    }
}

Id Id::random() {
    ensure_sodium();
    Id id;
    randombytes_buf(id.bytes.data(), id.bytes.size());
    return id;
}

Id Id::natural(std::string_view domain, std::string_view key) {
    ensure_sodium();
    crypto_generichash_state st;
    // Unkeyed BLAKE2b-128 over (length-prefixed domain, key): the prefix keeps
    // ("a","bc") and ("ab","c") apart.
    crypto_generichash_init(&st, nullptr, 0, 16);
    const unsigned char len = static_cast<unsigned char>(std::min<std::size_t>(domain.size(), 255));
    crypto_generichash_update(&st, &len, 1);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(domain.data()),
                              domain.size());
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
    Id id;
    crypto_generichash_final(&st, id.bytes.data(), id.bytes.size());
    return id;
}

Id Id::collected_item(const Id& ot, std::string_view serial) {
    std::string key(reinterpret_cast<const char*>(ot.bytes.data()), ot.bytes.size());
    key += normalize_serial(serial);
    return natural("otsync.collected_item.v1", key);
}

Id Id::from_hex(std::string_view text) {
    ensure_sodium();
    Id id;
    std::size_t len = 0;
    const char* end = nullptr;
    if (text.size() != 32 ||
        sodium_hex2bin(id.bytes.data(), id.bytes.size(), text.data(), text.size(), nullptr, &len,
                       &end) != 0 ||
        len != 16 || end != text.data() + text.size()) {
        throw Error(ErrorCode::malformed, "an id is 32 hex digits");
    }
    return id;
}

std::string Id::hex() const {
    ensure_sodium();
    char buf[33];
    sodium_bin2hex(buf, sizeof buf, bytes.data(), bytes.size());
    return std::string(buf, 32);
}

bool Id::is_zero() const noexcept {
    for (auto b : bytes) {
        if (b != 0) {
            return false;
        }
    }
    return true;
}

std::string normalize_serial(std::string_view serial) {
    std::size_t b = 0;
    std::size_t e = serial.size();
    while (b < e && std::isspace(static_cast<unsigned char>(serial[b]))) {
        ++b;
    }
    while (e > b && std::isspace(static_cast<unsigned char>(serial[e - 1]))) {
        --e;
    }
    std::string out(serial.substr(b, e - b));
    for (auto& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

} // namespace otsync
