// AuthService: argon2id passwords, hashed session tokens, login throttling and CSRF; see
// auth.hpp for the contract.
//
// Throttling is pessimistic: an attempt is counted as a failure before its hash is
// verified and forgiven when it succeeds, so a burst of parallel guesses gets no more
// verifications than the limit allows. The failure maps only grow by attempts that cost a
// verification (bounded by `max_concurrent_hashes`), and are pruned once they pass
// k_prune_threshold entries.
#include "auth/auth.hpp"

#include "otsync/error.hpp"
#include "otsync/text.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace otsync::server {

namespace {

constexpr std::size_t k_prune_threshold = 10'000;
constexpr std::size_t k_token_bytes = 32;
constexpr std::size_t k_token_hex = 2 * k_token_bytes;
constexpr const char* k_cookie_name = "otsync_session";
// Domain tags: the same token never hashes to the same bytes for two purposes.
constexpr std::string_view k_session_tag = "otsync-session-v1\n";
constexpr std::string_view k_csrf_tag = "otsync-csrf-v1\n";

void wipe(std::string& s) noexcept {
    if (!s.empty()) {
        sodium_memzero(s.data(), s.size());
    }
}

/// Wipes a string holding a secret when it goes out of scope.
struct WipeOnExit {
    std::string& s;
    ~WipeOnExit() { wipe(s); }
};

/// One of the hashing slots, held for the duration of one pwhash call.
class HashSlot {
public:
    explicit HashSlot(std::counting_semaphore<64>& s) : m_s(s) { m_s.acquire(); }
    ~HashSlot() { m_s.release(); }
    HashSlot(const HashSlot&) = delete;
    HashSlot& operator=(const HashSlot&) = delete;

private:
    std::counting_semaphore<64>& m_s;
};

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

/// The IP of a peer address: "1.2.3.4:5678" -> "1.2.3.4", "[::1]:5678" -> "::1"; a bare
/// address is kept; an IPv4-mapped IPv6 address counts as its IPv4 address.
std::string address_key(std::string_view a) {
    std::string ip;
    if (!a.empty() && a.front() == '[') {
        const auto close = a.find(']');
        ip = std::string(close == std::string_view::npos ? a.substr(1) : a.substr(1, close - 1));
    } else if (std::count(a.begin(), a.end(), ':') == 1) {
        ip = std::string(a.substr(0, a.find(':')));
    } else {
        ip = std::string(a);
    }
    ip = lower_ascii(ip);
    constexpr std::string_view mapped = "::ffff:";
    if (ip.size() > mapped.size() && ip.starts_with(mapped) &&
        ip.find(':', mapped.size()) == std::string::npos && ip.find('.') != std::string::npos) {
        ip.erase(0, mapped.size());
    }
    return ip;
}

bool is_token_shape(std::string_view t) {
    return t.size() == k_token_hex && std::all_of(t.begin(), t.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

/// The value of the first `otsync_session` cookie in a Cookie header ("a=b; c=d").
std::optional<std::string_view> session_cookie_value(std::string_view header) {
    while (!header.empty()) {
        const auto semi = header.find(';');
        const std::string_view pair = trim_ows(header.substr(0, semi));
        header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && trim_ows(pair.substr(0, eq)) == k_cookie_name) {
            std::string_view v = trim_ows(pair.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
                v = v.substr(1, v.size() - 2);
            }
            return v;
        }
    }
    return std::nullopt;
}

/// Forgets failures older than the window (the vector is oldest first).
void drop_old(std::vector<std::int64_t>& at, std::int64_t now, std::int64_t window) {
    const auto first_recent =
        std::find_if(at.begin(), at.end(), [&](std::int64_t t) { return t > now - window; });
    at.erase(at.begin(), first_recent);
}

} // namespace

AuthService::AuthService(Store& store, ClockSource& clock, AuthConfig config)
    : m_store(store), m_clock(clock), m_config(config),
      m_hash_slots(static_cast<std::ptrdiff_t>(std::clamp(config.max_concurrent_hashes, 1u, 64u))) {
    ensure_sodium();
    if (m_config.pwhash_opslimit < crypto_pwhash_OPSLIMIT_MIN ||
        m_config.pwhash_opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        m_config.pwhash_memlimit < crypto_pwhash_MEMLIMIT_MIN ||
        m_config.pwhash_memlimit > crypto_pwhash_MEMLIMIT_MAX) {
        throw Error(ErrorCode::invalid_argument,
                    "password hashing cost out of range: opslimit " +
                        std::to_string(crypto_pwhash_OPSLIMIT_MIN) + ".." +
                        std::to_string(crypto_pwhash_OPSLIMIT_MAX) + ", memlimit " +
                        std::to_string(crypto_pwhash_MEMLIMIT_MIN) + ".." +
                        std::to_string(crypto_pwhash_MEMLIMIT_MAX) + " bytes");
    }
    if (m_config.session_ttl_ms <= 0 || m_config.failure_window_ms <= 0 ||
        m_config.max_failures_per_user == 0 || m_config.max_failures_per_address == 0 ||
        m_config.max_password_bytes == 0) {
        throw Error(ErrorCode::invalid_argument, "authentication limits must be positive");
    }
    // A password nobody knows: verifying against it costs what a real verification costs.
    std::array<std::uint8_t, 32> secret{};
    randombytes_buf(secret.data(), secret.size());
    std::string dummy = to_hex(secret);
    sodium_memzero(secret.data(), secret.size());
    WipeOnExit w{dummy};
    m_dummy_hash = hash_password(dummy);
}

std::string AuthService::hash_password(std::string_view password) {
    if (password.empty() || password.size() > m_config.max_password_bytes) {
        throw Error(ErrorCode::invalid_argument, "a password must have 1 to " +
                                                     std::to_string(m_config.max_password_bytes) +
                                                     " bytes");
    }
    std::array<char, crypto_pwhash_STRBYTES> out{};
    {
        HashSlot slot(m_hash_slots);
        if (crypto_pwhash_str(out.data(), password.data(), password.size(),
                              m_config.pwhash_opslimit, m_config.pwhash_memlimit) != 0) {
            throw Error(ErrorCode::internal, "out of memory hashing a password");
        }
    }
    return std::string(out.data());
}

bool AuthService::verify(const std::string& hash, std::string_view password) {
    HashSlot slot(m_hash_slots);
    return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::int64_t AuthService::wait_for(const Failures* f, unsigned max, std::int64_t now) const {
    if (f == nullptr) {
        return 0;
    }
    const std::int64_t window = m_config.failure_window_ms;
    // Failures within the window, oldest first; the one that must expire to get under
    // `max` again decides the wait.
    const auto first_recent =
        std::find_if(f->at.begin(), f->at.end(), [&](std::int64_t t) { return t > now - window; });
    const auto recent = static_cast<std::size_t>(f->at.end() - first_recent);
    if (recent < max) {
        return 0;
    }
    const std::int64_t until = *(first_recent + static_cast<std::ptrdiff_t>(recent - max)) + window;
    // A clock that went backwards must not throttle for longer than one window.
    return std::clamp<std::int64_t>(until - now, 1, window);
}

void AuthService::note_failure(const std::string& name, const std::string& address,
                               std::int64_t now) {
    // Called with m_mutex held.
    const std::int64_t window = m_config.failure_window_ms;
    for (auto* m : {&m_by_user, &m_by_address}) {
        if (m->size() > k_prune_threshold) {
            std::erase_if(*m, [&](const auto& kv) {
                return kv.second.at.empty() || kv.second.at.back() <= now - window;
            });
        }
    }
    for (auto* at : {&m_by_user[name].at, &m_by_address[address].at}) {
        drop_old(*at, now, window);
        // Kept in order even when the clock stepped back.
        at->insert(std::upper_bound(at->begin(), at->end(), now), now);
    }
}

std::int64_t AuthService::retry_after_seconds(const std::string& name, const std::string& address) {
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    std::lock_guard lock(m_mutex);
    return seconds_to_wait(lower_ascii(name), address_key(address), now);
}

std::int64_t AuthService::seconds_to_wait(const std::string& user_key, const std::string& addr_key,
                                          std::int64_t now) const {
    // Called with m_mutex held.
    const auto u = m_by_user.find(user_key);
    const auto a = m_by_address.find(addr_key);
    const std::int64_t ms = std::max(
        wait_for(u == m_by_user.end() ? nullptr : &u->second, m_config.max_failures_per_user, now),
        wait_for(a == m_by_address.end() ? nullptr : &a->second, m_config.max_failures_per_address,
                 now));
    return (ms + 999) / 1000;
}

LoginResult AuthService::login(const std::string& name, const std::string& password,
                               const std::string& address) {
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const std::string user_key = lower_ascii(name);
    const std::string addr_key = address_key(address);

    // Refuse while throttled, else count this attempt as a failure until it succeeds (in
    // one critical section, so parallel attempts cannot all slip under the limit).
    {
        std::lock_guard lock(m_mutex);
        if (const auto wait = seconds_to_wait(user_key, addr_key, now); wait > 0) {
            throw Error(ErrorCode::rate_limited,
                        "too many failed logins; try again in " + std::to_string(wait) + " s");
        }
        note_failure(user_key, addr_key, now);
    }

    // One verification whatever the case, so the time taken tells nothing.
    const auto user = m_store.user_by_name(name);
    const bool usable_password =
        !password.empty() && password.size() <= m_config.max_password_bytes;
    const bool can_log_in = user && !user->disabled && !user->password_hash.empty();
    const bool real = can_log_in && usable_password;
    const bool ok = verify(real ? user->password_hash : m_dummy_hash,
                           usable_password ? std::string_view(password) : "-") &&
                    real;
    if (!ok) {
        throw Error(ErrorCode::unauthenticated, "wrong user name or password");
    }

    {
        std::lock_guard lock(m_mutex);
        m_by_user.erase(user_key);
        // The address keeps its real failures; only this attempt is forgiven.
        if (const auto a = m_by_address.find(addr_key); a != m_by_address.end()) {
            auto& at = a->second.at;
            if (const auto it = std::find(at.rbegin(), at.rend(), now); it != at.rend()) {
                at.erase(std::next(it).base());
            }
            if (at.empty()) {
                m_by_address.erase(a);
            }
        }
    }

    // Stored with other parameters (older defaults, another algorithm): upgrade it now that
    // the password is at hand.
    if (crypto_pwhash_str_needs_rehash(user->password_hash.c_str(), m_config.pwhash_opslimit,
                                       m_config.pwhash_memlimit) != 0) {
        m_store.set_password_hash(user->id, hash_password(password));
    }

    std::array<std::uint8_t, k_token_bytes> raw{};
    randombytes_buf(raw.data(), raw.size());
    LoginResult r;
    r.token = to_hex(raw);
    sodium_memzero(raw.data(), raw.size());
    r.csrf = csrf_for(r.token);
    r.user = *user;
    r.user.password_hash.clear(); // the caller has no use for it
    r.expires_at = now + m_config.session_ttl_ms;

    Session s;
    s.token_hash = token_hash(r.token);
    s.user = user->id;
    s.created_at = now;
    s.expires_at = r.expires_at;
    m_store.delete_expired_sessions(now);
    m_store.add_session(s);
    return r;
}

void AuthService::logout(const Hash256& token_hash) {
    m_store.delete_session(token_hash);
}

std::optional<Principal>
AuthService::authenticate(const std::map<std::string, std::string>& headers) {
    std::string_view token;
    bool via_cookie = false;
    if (const auto a = headers.find("authorization"); a != headers.end()) {
        const std::string_view v = trim_ows(a->second);
        constexpr std::string_view scheme = "bearer ";
        if (v.size() > scheme.size() && lower_ascii(v.substr(0, scheme.size())) == scheme) {
            token = trim_ows(v.substr(scheme.size()));
        }
    }
    if (token.empty()) {
        if (const auto c = headers.find("cookie"); c != headers.end()) {
            if (const auto v = session_cookie_value(c->second)) {
                token = *v;
                via_cookie = true;
            }
        }
    }
    if (!is_token_shape(token)) {
        return std::nullopt;
    }

    Principal p;
    p.token_hash = token_hash(token);
    const auto s = m_store.session(p.token_hash);
    if (!s) {
        return std::nullopt;
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    if (s->expires_at <= now) {
        m_store.delete_session(p.token_hash);
        return std::nullopt;
    }
    auto user = m_store.user_by_id(s->user);
    if (!user || user->disabled) {
        return std::nullopt;
    }
    p.user = std::move(*user);
    p.user.password_hash.clear();
    p.via_cookie = via_cookie;
    p.expires_at = s->expires_at;
    p.csrf = csrf_for(token);
    return p;
}

bool AuthService::csrf_ok(const Principal& p,
                          const std::map<std::string, std::string>& headers) const {
    if (!p.via_cookie) {
        return true; // a bearer token is not sent by a browser on its own
    }
    const auto h = headers.find("x-csrf-token");
    if (h == headers.end() || p.csrf.size() != k_token_hex || h->second.size() != p.csrf.size()) {
        return false;
    }
    return sodium_memcmp(h->second.data(), p.csrf.data(), p.csrf.size()) == 0;
}

void AuthService::set_password(const Id& user, std::string_view password) {
    if (!m_store.user_by_id(user)) {
        throw Error(ErrorCode::not_found, "no such user");
    }
    m_store.set_password_hash(user, hash_password(password));
    m_store.delete_sessions_of(user);
}

Hash256 AuthService::token_hash(std::string_view token_hex) {
    std::string text;
    WipeOnExit w{text};
    text.reserve(k_session_tag.size() + token_hex.size());
    text.append(k_session_tag).append(token_hex);
    return blake2b_256(text);
}

std::string AuthService::csrf_for(std::string_view token_hex) {
    std::string text;
    WipeOnExit w{text};
    text.reserve(k_csrf_tag.size() + token_hex.size());
    text.append(k_csrf_tag).append(token_hex);
    return to_hex(blake2b_256(text));
}

std::string AuthService::session_cookie(const std::string& token) const {
    return std::string(k_cookie_name) + "=" + token +
           "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
           std::to_string(m_config.session_ttl_ms / 1000) +
           (m_config.cookie_secure ? "; Secure" : "");
}

std::string AuthService::clear_cookie() {
    return std::string(k_cookie_name) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
}

} // namespace otsync::server
