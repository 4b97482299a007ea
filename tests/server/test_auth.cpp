// AuthService without sockets: passwords (argon2id at the MIN cost), sessions by bearer
// token and by cookie, the one answer for every failed login, throttling per user name
// and per address, expiry, logout, password changes, rehashing and CSRF.
#include "auth/auth.hpp"

#include "sync_fixture.hpp"

#include "otsync/error.hpp"

#include <sodium.h>

#include <atomic>
#include <cctype>
#include <thread>

using namespace otsync;
using namespace otsync::server;

namespace {

using Headers = std::map<std::string, std::string>;

AuthConfig min_cost() {
    AuthConfig c;
    c.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN;
    c.pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN;
    return c;
}

struct AuthFixture {
    explicit AuthFixture(AuthConfig config = min_cost()) {
        SqliteOptions o;
        o.path = (dir.path / "otsync.db").string();
        store = open_sqlite_store(o);
        auth = std::make_unique<AuthService>(*store, clock, config);
    }

    Id add_user(const std::string& name, const std::string& password,
                Role role = Role::back_office) {
        User u;
        u.id = Id::natural("user", name);
        u.name = name;
        u.role = role;
        u.created_at = static_cast<std::int64_t>(clock.now_ms());
        u.full_name = "Ana Rojas";
        u.unit = "BOOT";
        if (!password.empty()) {
            u.password_hash = auth->hash_password(password);
        }
        store->add_user(u);
        return u.id;
    }

    /// The error a login throws (code and message), or nullopt when it succeeds.
    std::optional<std::pair<ErrorCode, std::string>>
    login_error(const std::string& name, const std::string& password,
                const std::string& address = "10.0.0.1:40000") {
        try {
            auth->login(name, password, address);
            return std::nullopt;
        } catch (const Error& e) {
            return std::pair{e.code(), e.message()};
        }
    }

    test::TempDir dir;
    FakeClock clock{1'795'000'000'000};
    std::unique_ptr<Store> store;
    std::unique_ptr<AuthService> auth;
};

Headers bearer(const std::string& token) {
    return {{"authorization", "Bearer " + token}};
}

Headers cookie(const std::string& token) {
    return {{"cookie", "theme=dark; otsync_session=" + token + "; lang=es"}};
}

const std::pair<ErrorCode, std::string> k_wrong{ErrorCode::unauthenticated,
                                                "wrong user name or password"};

} // namespace

TEST_CASE("a login gives a token that authenticates by bearer and by cookie") {
    AuthFixture f;
    const Id ana = f.add_user("bo.rojas", "correct horse");
    const auto r = f.auth->login("bo.rojas", "correct horse", "10.0.0.1:40000");
    CHECK(r.token.size() == 64);
    CHECK(r.token.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(r.csrf == AuthService::csrf_for(r.token));
    CHECK(r.user.id == ana);
    CHECK(r.user.password_hash.empty());
    CHECK(r.expires_at ==
          static_cast<std::int64_t>(f.clock.now_ms()) + f.auth->config().session_ttl_ms);

    // Only the hash of the token is stored.
    const auto s = f.store->session(AuthService::token_hash(r.token));
    REQUIRE(s);
    CHECK(s->user == ana);

    const auto by_bearer = f.auth->authenticate(bearer(r.token));
    REQUIRE(by_bearer);
    CHECK(by_bearer->user.id == ana);
    CHECK(by_bearer->user.name == "bo.rojas");
    CHECK(by_bearer->user.full_name == "Ana Rojas");
    CHECK(by_bearer->user.unit == "BOOT");
    CHECK(by_bearer->user.password_hash.empty());
    CHECK_FALSE(by_bearer->via_cookie);
    CHECK(by_bearer->token_hash == AuthService::token_hash(r.token));
    CHECK(by_bearer->expires_at == r.expires_at);

    const auto by_cookie = f.auth->authenticate(cookie(r.token));
    REQUIRE(by_cookie);
    CHECK(by_cookie->user.id == ana);
    CHECK(by_cookie->via_cookie);

    // The scheme is case-insensitive; a bearer token wins over a cookie.
    CHECK(f.auth->authenticate({{"authorization", "bearer " + r.token}}));
    const auto both = f.auth->authenticate(
        {{"authorization", "Bearer " + r.token}, {"cookie", "otsync_session=" + r.token}});
    REQUIRE(both);
    CHECK_FALSE(both->via_cookie);

    // Two logins are two sessions.
    const auto again = f.auth->login("bo.rojas", "correct horse", "10.0.0.1:40001");
    CHECK(again.token != r.token);
    CHECK(f.auth->authenticate(bearer(r.token)));
    CHECK(f.auth->authenticate(bearer(again.token)));

    CHECK_FALSE(f.auth->authenticate({}));
}

TEST_CASE("every failed login gets the same answer") {
    AuthFixture f;
    f.add_user("bo.rojas", "correct horse");
    const Id off = f.add_user("tec.mamani", "battery staple", Role::technician);
    f.store->set_user_disabled(off, true);
    f.add_user("alm.flores", ""); // no password: cannot log in

    CHECK(f.login_error("bo.rojas", "wrong horse") == k_wrong);
    CHECK(f.login_error("nobody", "correct horse") == k_wrong);
    CHECK(f.login_error("tec.mamani", "battery staple") == k_wrong); // disabled
    CHECK(f.login_error("alm.flores", "anything") == k_wrong);
    CHECK(f.login_error("bo.rojas", "") == k_wrong);
    CHECK(f.login_error("bo.rojas", std::string(5000, 'x')) == k_wrong);
    CHECK(f.login_error("", "") == k_wrong);
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse"));
}

TEST_CASE("a user name is throttled after too many failures, even with the right password") {
    AuthConfig c = min_cost();
    c.max_failures_per_user = 3;
    AuthFixture f(c);
    f.add_user("bo.rojas", "correct horse");

    // Different addresses: only the name is counted. Case does not make another name.
    CHECK(f.login_error("bo.rojas", "a", "10.0.0.1:1") == k_wrong);
    CHECK(f.login_error("BO.Rojas", "b", "10.0.0.2:1") == k_wrong);
    f.clock.advance(60'000);
    CHECK(f.login_error("bo.rojas", "c", "10.0.0.3:1") == k_wrong);

    const auto refused = f.login_error("bo.rojas", "correct horse", "10.0.0.4:1");
    REQUIRE(refused);
    CHECK(refused->first == ErrorCode::rate_limited);
    CHECK(refused->second == "too many failed logins; try again in 840 s");
    CHECK(f.auth->retry_after_seconds("bo.rojas", "10.0.0.9:1") == 840);
    CHECK(f.auth->retry_after_seconds("other", "10.0.0.9:1") == 0);

    // The window counts from the oldest failure that keeps the name at the limit.
    f.clock.advance(c.failure_window_ms - 60'000 - 1);
    CHECK(f.auth->retry_after_seconds("bo.rojas", "") == 1);
    CHECK(f.login_error("bo.rojas", "correct horse", "10.0.0.4:1")->first ==
          ErrorCode::rate_limited);
    f.clock.advance(1);
    CHECK(f.auth->retry_after_seconds("bo.rojas", "") == 0);
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse", "10.0.0.4:1"));

    // A success clears the name's failures.
    CHECK(f.login_error("bo.rojas", "x", "10.0.0.5:1") == k_wrong);
    CHECK(f.login_error("bo.rojas", "y", "10.0.0.5:1") == k_wrong);
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse", "10.0.0.5:1"));
    CHECK(f.auth->retry_after_seconds("bo.rojas", "") == 0);

    // Unknown names are throttled the same way.
    for (int i = 0; i < 3; ++i) {
        CHECK(f.login_error("ghost", "x", "10.0.1." + std::to_string(i)) == k_wrong);
    }
    CHECK(f.login_error("ghost", "x", "10.0.2.1")->first == ErrorCode::rate_limited);

    // A clock that steps back a day does not stretch the wait beyond one window.
    f.clock.advance(-24 * 3600 * 1000);
    CHECK(f.auth->retry_after_seconds("ghost", "") == 900);
}

TEST_CASE("an address is throttled across user names; the port does not matter") {
    AuthConfig c = min_cost();
    c.max_failures_per_address = 4;
    AuthFixture f(c);
    f.add_user("bo.rojas", "correct horse");

    for (int i = 0; i < 4; ++i) {
        CHECK(f.login_error("user" + std::to_string(i), "x",
                            "192.0.2.7:" + std::to_string(50000 + i)) == k_wrong);
    }
    const auto refused = f.login_error("bo.rojas", "correct horse", "192.0.2.7:60000");
    REQUIRE(refused);
    CHECK(refused->first == ErrorCode::rate_limited);
    CHECK(f.auth->retry_after_seconds("anyone", "192.0.2.7") == 900);
    CHECK(f.auth->retry_after_seconds("anyone", "::ffff:192.0.2.7") == 900);
    // Another address is not affected.
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse", "192.0.2.8:60000"));

    // IPv6 with brackets and a port counts as the bare address.
    for (int i = 0; i < 4; ++i) {
        CHECK(f.login_error("v6user" + std::to_string(i), "x",
                            "[2001:db8::1]:" + std::to_string(40000 + i)) == k_wrong);
    }
    CHECK(f.auth->retry_after_seconds("anyone", "2001:db8::1") == 900);
    CHECK(f.login_error("bo.rojas", "correct horse", "[2001:db8::1]:1")->first ==
          ErrorCode::rate_limited);

    // A success from an address does not forgive the address's earlier failures.
    CHECK(f.login_error("z1", "x", "198.51.100.1:1") == k_wrong);
    CHECK(f.login_error("z2", "x", "198.51.100.1:1") == k_wrong);
    CHECK(f.login_error("z3", "x", "198.51.100.1:1") == k_wrong);
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse", "198.51.100.1:2"));
    CHECK(f.login_error("z4", "x", "198.51.100.1:1") == k_wrong);
    CHECK(f.login_error("bo.rojas", "correct horse", "198.51.100.1:1")->first ==
          ErrorCode::rate_limited);

    f.clock.advance(c.failure_window_ms);
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse", "192.0.2.7:60000"));
}

TEST_CASE("parallel guesses get no more verifications than the limit") {
    AuthConfig c = min_cost();
    c.max_failures_per_user = 3;
    c.max_concurrent_hashes = 2;
    AuthFixture f(c);
    f.add_user("bo.rojas", "correct horse");

    std::atomic<int> wrong{0}, limited{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&, i] {
            const auto e = f.login_error("bo.rojas", "guess" + std::to_string(i),
                                         "10.9.0." + std::to_string(i) + ":1");
            if (e && e->first == ErrorCode::unauthenticated) {
                ++wrong;
            } else if (e && e->first == ErrorCode::rate_limited) {
                ++limited;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(wrong.load() == 3);
    CHECK(limited.load() == 5);
}

TEST_CASE("an expired session is refused and removed") {
    AuthFixture f;
    f.add_user("bo.rojas", "correct horse");
    const auto r = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    f.clock.advance(f.auth->config().session_ttl_ms - 1);
    CHECK(f.auth->authenticate(bearer(r.token)));
    f.clock.advance(1);
    CHECK_FALSE(f.auth->authenticate(bearer(r.token)));
    CHECK_FALSE(f.auth->authenticate(cookie(r.token)));
    CHECK_FALSE(f.store->session(AuthService::token_hash(r.token)));
}

TEST_CASE("a disabled user's sessions stop working") {
    AuthFixture f;
    const Id ana = f.add_user("bo.rojas", "correct horse");
    const auto r = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    f.store->set_user_disabled(ana, true);
    CHECK_FALSE(f.auth->authenticate(bearer(r.token)));
    f.store->set_user_disabled(ana, false);
    CHECK(f.auth->authenticate(bearer(r.token)));
}

TEST_CASE("logout ends the session, and only that one") {
    AuthFixture f;
    f.add_user("bo.rojas", "correct horse");
    const auto a = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    const auto b = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    const auto p = f.auth->authenticate(cookie(a.token));
    REQUIRE(p);
    f.auth->logout(p->token_hash);
    CHECK_FALSE(f.auth->authenticate(cookie(a.token)));
    CHECK_FALSE(f.auth->authenticate(bearer(a.token)));
    CHECK(f.auth->authenticate(bearer(b.token)));
    f.auth->logout(p->token_hash); // unknown now: ignored
    f.auth->logout(Hash256{});
}

TEST_CASE("set_password ends the user's sessions and the new password works") {
    AuthFixture f;
    const Id ana = f.add_user("bo.rojas", "correct horse");
    const Id other = f.add_user("tec.mamani", "battery staple", Role::technician);
    const auto mine = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    const auto theirs = f.auth->login("tec.mamani", "battery staple", "10.0.0.2");

    f.auth->set_password(ana, "new horse");
    CHECK_FALSE(f.auth->authenticate(bearer(mine.token)));
    CHECK(f.auth->authenticate(bearer(theirs.token)));
    CHECK(f.login_error("bo.rojas", "correct horse") == k_wrong);
    CHECK_FALSE(f.login_error("bo.rojas", "new horse"));

    CHECK_THROWS_AS(f.auth->set_password(ana, ""), Error);
    CHECK_THROWS_AS(f.auth->set_password(Id::random(), "x"), Error);
    CHECK(f.store->user_by_id(other)->password_hash != f.store->user_by_id(ana)->password_hash);
}

TEST_CASE("hash_password refuses empty and over-long passwords") {
    AuthFixture f;
    const auto code_of = [&](std::string_view pw) {
        try {
            (void)f.auth->hash_password(pw);
            return ErrorCode::internal;
        } catch (const Error& e) {
            return e.code();
        }
    };
    CHECK(code_of("") == ErrorCode::invalid_argument);
    CHECK(code_of(std::string(1025, 'x')) == ErrorCode::invalid_argument);
    const std::string h = f.auth->hash_password(std::string(1024, 'x'));
    CHECK(h.starts_with("$argon2id$"));
    CHECK(f.auth->hash_password("same") != f.auth->hash_password("same")); // salted

    AuthConfig bad = min_cost();
    bad.pwhash_memlimit = 1;
    CHECK_THROWS_AS(AuthService(*f.store, f.clock, bad), Error);
}

TEST_CASE("a hash made with other parameters is replaced at the next login") {
    AuthFixture f;
    AuthConfig stronger = min_cost();
    stronger.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN + 1;
    AuthService old_auth(*f.store, f.clock, stronger);

    const Id ana = f.add_user("bo.rojas", "");
    old_auth.set_password(ana, "correct horse");
    const std::string before = f.store->user_by_id(ana)->password_hash;
    CHECK(crypto_pwhash_str_needs_rehash(before.c_str(), crypto_pwhash_OPSLIMIT_MIN,
                                         crypto_pwhash_MEMLIMIT_MIN) == 1);

    // A failed login changes nothing.
    CHECK(f.login_error("bo.rojas", "wrong") == k_wrong);
    CHECK(f.store->user_by_id(ana)->password_hash == before);

    CHECK_FALSE(f.login_error("bo.rojas", "correct horse"));
    const std::string after = f.store->user_by_id(ana)->password_hash;
    CHECK(after != before);
    CHECK(crypto_pwhash_str_needs_rehash(after.c_str(), crypto_pwhash_OPSLIMIT_MIN,
                                         crypto_pwhash_MEMLIMIT_MIN) == 0);
    CHECK(crypto_pwhash_str_verify(after.c_str(), "correct horse", 13) == 0);

    // Already current: left alone.
    CHECK_FALSE(f.login_error("bo.rojas", "correct horse"));
    CHECK(f.store->user_by_id(ana)->password_hash == after);
}

TEST_CASE("cookie sessions need the CSRF header to write; bearer sessions do not") {
    AuthFixture f;
    f.add_user("bo.rojas", "correct horse");
    const auto r = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");

    const auto by_cookie = f.auth->authenticate(cookie(r.token));
    REQUIRE(by_cookie);
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, cookie(r.token)));
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", ""}}));
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", r.token}}));
    std::string wrong = r.csrf;
    wrong.back() = wrong.back() == '0' ? '1' : '0';
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", wrong}}));
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", r.csrf + "0"}}));
    CHECK(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", r.csrf}}));

    // Another session's CSRF token does not fit this one.
    const auto other = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    CHECK_FALSE(f.auth->csrf_ok(*by_cookie, {{"x-csrf-token", other.csrf}}));

    const auto by_bearer = f.auth->authenticate(bearer(r.token));
    REQUIRE(by_bearer);
    CHECK(f.auth->csrf_ok(*by_bearer, {}));

    // A Principal made by hand with no CSRF token never passes as a cookie session.
    Principal hand;
    hand.via_cookie = true;
    CHECK_FALSE(f.auth->csrf_ok(hand, {{"x-csrf-token", ""}}));
}

TEST_CASE("malformed tokens are refused without throwing") {
    AuthFixture f;
    f.add_user("bo.rojas", "correct horse");
    const auto r = f.auth->login("bo.rojas", "correct horse", "10.0.0.1");
    std::string upper = r.token;
    for (char& ch : upper) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    const std::vector<std::string> bad = {
        "",
        "abc",
        r.token.substr(0, 63),
        r.token + "0",
        std::string(64, 'g'),
        std::string(64, '\0'),
        std::string(1 << 20, 'a'),
        upper == r.token ? std::string(64, 'z') : upper,
        r.token.substr(0, 32) + " " + r.token.substr(33),
    };
    for (const auto& t : bad) {
        CAPTURE(t.size());
        CHECK_FALSE(f.auth->authenticate(bearer(t)).has_value());
        CHECK_FALSE(f.auth->authenticate(cookie(t)).has_value());
    }
    const std::vector<Headers> odd = {
        {{"authorization", "Bearer"}},
        {{"authorization", "Bearer "}},
        {{"authorization", "Basic " + r.token}},
        {{"authorization", r.token}},
        {{"cookie", ""}},
        {{"cookie", ";;;="}},
        {{"cookie", "otsync_session"}},
        {{"cookie", "otsync_session="}},
        {{"cookie", "xotsync_session=" + r.token}},
        {{"cookie", std::string(100'000, ';')}},
    };
    for (const auto& h : odd) {
        CHECK_FALSE(f.auth->authenticate(h).has_value());
    }
    // A well-formed but unknown token.
    CHECK_FALSE(f.auth->authenticate(bearer(std::string(64, 'a'))));
    // A non-bearer Authorization header falls back to the cookie.
    CHECK(f.auth->authenticate(
        {{"authorization", "Basic eDp5"}, {"cookie", "otsync_session=" + r.token}}));
    CHECK(f.auth->authenticate({{"cookie", "otsync_session=\"" + r.token + "\""}}));
}

TEST_CASE("the session cookie is HttpOnly, SameSite=Strict, and lasts the session") {
    AuthConfig c = min_cost();
    c.session_ttl_ms = 8 * 3600 * 1000;
    AuthFixture f(c);
    CHECK(f.auth->session_cookie(std::string(64, 'a')) ==
          "otsync_session=" + std::string(64, 'a') +
              "; Path=/; HttpOnly; SameSite=Strict; Max-Age=28800");
    CHECK(AuthService::clear_cookie() ==
          "otsync_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
}

TEST_CASE("behind HTTPS the session cookie is also Secure") {
    AuthConfig c = min_cost();
    c.session_ttl_ms = 3600 * 1000;
    c.cookie_secure = true;
    AuthFixture f(c);
    CHECK(f.auth->session_cookie(std::string(64, 'b')) ==
          "otsync_session=" + std::string(64, 'b') +
              "; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600; Secure");
}
