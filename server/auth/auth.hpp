// People's authentication: argon2id passwords (libsodium crypto_pwhash_str),
// sessions of 32 random bytes stored hashed, login throttling per user name and per
// address, and the CSRF token for cookie-authenticated writes.
//
// The same answer is given for an unknown user, a disabled user and a bad password, and
// an unknown user costs the same hash verification as a known one, so the login route
// does not tell which names exist. Tokens travel as 64 hex characters: as
// "Authorization: Bearer <token>" from API clients, or as the HttpOnly SameSite=Strict
// cookie `otsync_session` from pages. A page also sends "X-CSRF-Token: <csrf>" on every
// write; `csrf` is derived from the token, so a page that cannot read the cookie (another
// site) cannot forge it.
#pragma once

#include "store/store.hpp"

#include "otsync/hlc.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <unordered_map>
#include <vector>

namespace otsync::server {

struct AuthConfig {
    /// argon2id cost (crypto_pwhash_str). Defaults are libsodium's INTERACTIVE (about 90 ms
    /// and 64 MiB here); tests and small machines pass the MIN values. A stored hash made
    /// with other parameters is rehashed at the next successful login.
    unsigned long long pwhash_opslimit = 2;         // crypto_pwhash_OPSLIMIT_INTERACTIVE
    std::size_t pwhash_memlimit = 67108864;         // crypto_pwhash_MEMLIMIT_INTERACTIVE
    std::int64_t session_ttl_ms = 12 * 3600 * 1000; // a working day
    /// Failed logins within `failure_window_ms` after which further attempts for that user
    /// name (known or not) or from that address are refused with rate_limited until the
    /// window has passed since the oldest counted failure.
    unsigned max_failures_per_user = 5;
    unsigned max_failures_per_address = 20;
    std::int64_t failure_window_ms = 15 * 60 * 1000;
    /// Hashes computed at once (each takes `pwhash_memlimit` bytes); others wait.
    unsigned max_concurrent_hashes = 2;
    std::size_t max_password_bytes = 1024;
    /// Adds `Secure` to the session cookie: set it when browsers reach the server over
    /// HTTPS (a TLS proxy in front), so the cookie never travels in clear.
    bool cookie_secure = false;
};

/// Who is calling, as established from a session token.
struct Principal {
    User user;
    Hash256 token_hash{};
    bool via_cookie = false; // writes then need the CSRF header
    std::int64_t expires_at = 0;
    /// The CSRF token that goes with this session (csrf_for(token)), set by authenticate
    /// for csrf_ok; the page got it at login.
    std::string csrf;
};

struct LoginResult {
    std::string token; // 64 hex characters; shown once, stored hashed
    std::string csrf;  // 64 hex characters, derived from the token
    User user;
    std::int64_t expires_at = 0;
};

class AuthService {
public:
    AuthService(Store& store, ClockSource& clock, AuthConfig config);

    /// An argon2id string for `password` with the configured cost. Throws
    /// Error(invalid_argument) for an empty or over-long password.
    std::string hash_password(std::string_view password);

    /// Checks name and password; on success creates a session. Throws
    /// Error(unauthenticated, "wrong user name or password") for an unknown user, a
    /// disabled user, a user without a password and a bad password alike, and
    /// Error(rate_limited) when the name or the address has too many recent failures
    /// (`retry_after_seconds` then says when to try again). `address` is the peer's
    /// IP (a port suffix is ignored).
    LoginResult login(const std::string& name, const std::string& password,
                      const std::string& address);
    /// Seconds until `name`/`address` may try again; 0 when not throttled.
    std::int64_t retry_after_seconds(const std::string& name, const std::string& address);

    /// Ends the session (logout). Unknown tokens are ignored.
    void logout(const Hash256& token_hash);

    /// The caller from "authorization: Bearer <token>" or the `otsync_session` cookie
    /// (headers lower-cased). nullopt when absent, unknown, expired or the user disabled.
    std::optional<Principal> authenticate(const std::map<std::string, std::string>& headers);

    /// True when the request may write: bearer-authenticated, or cookie-authenticated
    /// with a matching "x-csrf-token" header (compared in constant time).
    bool csrf_ok(const Principal& p, const std::map<std::string, std::string>& headers) const;

    /// Sets a user's password (hashing it) and ends the user's sessions.
    void set_password(const Id& user, std::string_view password);

    static Hash256 token_hash(std::string_view token_hex);
    static std::string csrf_for(std::string_view token_hex);
    /// "otsync_session=<token>; Path=/; HttpOnly; SameSite=Strict; Max-Age=<ttl>".
    std::string session_cookie(const std::string& token) const;
    static std::string clear_cookie();

    const AuthConfig& config() const { return m_config; }

private:
    struct Failures {
        std::vector<std::int64_t> at; // times of recent failures, oldest first
    };
    std::int64_t wait_for(const Failures* f, unsigned max, std::int64_t now) const;
    std::int64_t seconds_to_wait(const std::string& user_key, const std::string& addr_key,
                                 std::int64_t now) const;
    void note_failure(const std::string& name, const std::string& address, std::int64_t now);
    bool verify(const std::string& hash, std::string_view password);

    Store& m_store;
    ClockSource& m_clock;
    AuthConfig m_config;
    std::string m_dummy_hash; // verified against for unknown users: same cost, no answer
    std::mutex m_mutex;       // guards the failure maps
    std::unordered_map<std::string, Failures> m_by_user;
    std::unordered_map<std::string, Failures> m_by_address;
    std::counting_semaphore<64> m_hash_slots;
};

} // namespace otsync::server
