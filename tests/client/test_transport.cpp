// The built-in HTTP transport against servers on 127.0.0.1 made in the test: a silent one,
// one that stalls or drips its answer, small Beast HTTP servers that keep or close their
// connections, and a TLS server (certificates made here with OpenSSL) that answers with
// the real server code, for a whole sync over https.
#include "client_fixture.hpp"

#include "otsync/client.hpp"

#include "api/app.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

using namespace otsync;
using namespace otsync::client;
using namespace otsync::client::testing;

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

/// A TCP listener on 127.0.0.1 (a free port); each connection runs `handler` on its own
/// thread with blocking I/O. The sockets stay open until the server is destroyed (handlers
/// end a connection with shutdown()), so stopping can shut every one down to wake its thread.
class TestServer {
public:
    using Handler = std::function<void(tcp::socket&)>;

    explicit TestServer(Handler handler)
        : m_handler(std::move(handler)),
          m_acceptor(m_ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        m_port = m_acceptor.local_endpoint().port();
        m_thread = std::thread([this] { accept_loop(); });
    }
    ~TestServer() {
        m_stop = true;
        {
            tcp::socket wake(m_ioc); // unblocks accept()
            beast::error_code ec;
            wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), m_port), ec);
            m_thread.join();
        }
        for (const auto& s : m_sockets) {
            ::shutdown(s->native_handle(), SHUT_RDWR); // wakes the blocked reads
        }
        for (auto& t : m_connections) {
            t.join();
        }
    }
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    std::string url(const std::string& scheme = "http") const {
        return scheme + "://127.0.0.1:" + std::to_string(m_port);
    }
    unsigned short port() const { return m_port; }
    int accepted() const { return m_accepted; }

private:
    void accept_loop() {
        for (;;) {
            auto s = std::make_shared<tcp::socket>(m_ioc);
            beast::error_code ec;
            m_acceptor.accept(*s, ec);
            if (m_stop || ec) {
                return;
            }
            ++m_accepted;
            m_sockets.push_back(s);
            m_connections.emplace_back([this, s] {
                try {
                    m_handler(*s);
                } catch (const std::exception&) {
                    // the peer went away: the connection ends
                }
                ::shutdown(s->native_handle(), SHUT_RDWR); // closed with the server
            });
        }
    }

    Handler m_handler;
    asio::io_context m_ioc; // never run: blocking I/O only
    tcp::acceptor m_acceptor;
    unsigned short m_port = 0;
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_accepted{0};
    std::vector<std::shared_ptr<tcp::socket>> m_sockets; // accept thread, then destructor
    std::vector<std::thread> m_connections;
    std::thread m_thread;
};

/// Answers whatever comes with a 400, as an HTTP server does to a TLS ClientHello.
void plain_http_400(tcp::socket& s) {
    char buf[4096];
    s.read_some(asio::buffer(buf));
    asio::write(s,
                asio::buffer(std::string(
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")));
}

/// Reads until the peer or the server's stop ends the connection.
void read_until_closed(tcp::socket& s) {
    char buf[4096];
    beast::error_code ec;
    while (!ec) {
        s.read_some(asio::buffer(buf), ec);
    }
}

void silent(tcp::socket& s) {
    read_until_closed(s);
}

void read_request(tcp::socket& s) {
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::read(s, buf, req);
}

/// Answers the headers and the first bytes of a 100-byte body, then nothing.
void stall_body(tcp::socket& s) {
    read_request(s);
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")));
    read_until_closed(s);
}

/// Answers a 1000-byte body one byte every 100 ms (for at most a minute).
void drip_body(tcp::socket& s) {
    read_request(s);
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")));
    for (int i = 0; i < 600; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        beast::error_code ec;
        asio::write(s, asio::buffer("x", 1), ec);
        if (ec) {
            return;
        }
    }
}

enum class Closes { never, announced, silently };

/// An HTTP/1.1 server that answers "TARGET|BODY"; after each answer it keeps the
/// connection, closes it saying so (Connection: close), or closes it without a word.
TestServer::Handler echo(Closes closes, std::atomic<int>* requests = nullptr) {
    return [closes, requests](tcp::socket& s) {
        beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            beast::error_code ec;
            http::read(s, buf, req, ec);
            if (ec) {
                return;
            }
            if (requests) {
                ++*requests;
            }
            http::response<http::string_body> res{http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = std::string(req.target()) + "|" + req.body();
            res.keep_alive(closes != Closes::announced);
            res.prepare_payload();
            http::write(s, res);
            if (closes != Closes::never) {
                s.shutdown(tcp::socket::shutdown_both, ec);
                return;
            }
        }
    };
}

// --- Certificates made at test time ------------------------------------------------------

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr new_key() {
    KeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free);
    REQUIRE(k);
    return k;
}

void add_ext(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
    REQUIRE(e);
    REQUIRE(X509_add_ext(x, e, -1) == 1);
    X509_EXTENSION_free(e);
}

/// A CA certificate (no issuer) or a server certificate for `san` signed by the issuer.
CertPtr make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key,
                  const std::string& san = {}) {
    static std::atomic<long> serial{1};
    CertPtr x(X509_new(), &X509_free);
    REQUIRE(x);
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 7 * 86400);
    X509_set_pubkey(x.get(), key);
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
    add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
    if (!issuer) {
        add_ext(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
        add_ext(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x.get(), &ctx, NID_key_usage, "critical,digitalSignature");
        add_ext(x.get(), &ctx, NID_ext_key_usage, "serverAuth");
        add_ext(x.get(), &ctx, NID_subject_alt_name, san.c_str());
    }
    REQUIRE(X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

std::string read_bio(BIO* b) {
    std::string s(BIO_ctrl_pending(b), '\0');
    REQUIRE(BIO_read(b, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size()));
    BIO_free(b);
    return s;
}

std::string pem(X509* x) {
    BIO* b = BIO_new(BIO_s_mem());
    REQUIRE(PEM_write_bio_X509(b, x) == 1);
    return read_bio(b);
}

std::string pem(EVP_PKEY* k) {
    BIO* b = BIO_new(BIO_s_mem());
    REQUIRE(PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1);
    return read_bio(b);
}

std::string sha256_hex(X509* x) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    REQUIRE(X509_digest(x, EVP_sha256(), md, &len) == 1);
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < len; ++i) {
        s += digits[md[i] >> 4];
        s += digits[md[i] & 15];
    }
    return s;
}

/// Two CAs (ours and another), a server certificate for localhost and 127.0.0.1 and one
/// for another name, both signed by ours; the CAs as PEM files.
struct Pki {
    Pki() {
        std::ofstream(ca_file) << pem(ca.get());
        std::ofstream(other_ca_file) << pem(other_ca.get());
    }
    TempDir dir;
    KeyPtr ca_key = new_key();
    CertPtr ca = make_cert(ca_key.get(), "otsync test CA", nullptr, nullptr);
    KeyPtr other_ca_key = new_key();
    CertPtr other_ca = make_cert(other_ca_key.get(), "another CA", nullptr, nullptr);
    KeyPtr server_key = new_key();
    CertPtr server = make_cert(server_key.get(), "otsync test server", ca.get(), ca_key.get(),
                               "DNS:localhost,IP:127.0.0.1");
    CertPtr elsewhere =
        make_cert(server_key.get(), "elsewhere", ca.get(), ca_key.get(), "DNS:otsync.invalid");
    std::string ca_file = (dir.path / "ca.pem").string();
    std::string other_ca_file = (dir.path / "other-ca.pem").string();

    std::unique_ptr<ssl::context> server_context(X509* cert) const {
        auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
        const std::string c = pem(cert), k = pem(server_key.get());
        ctx->use_certificate_chain(asio::buffer(c));
        ctx->use_private_key(asio::buffer(k), ssl::context::pem);
        return ctx;
    }
};

/// HTTP over TLS in front of `app` (the real routes), keep-alive as the client asks.
TestServer::Handler tls_app(ssl::context& ctx, server::App& app) {
    return [&ctx, &app](tcp::socket& s) {
        ssl::stream<tcp::socket&> tls(s, ctx);
        tls.handshake(ssl::stream_base::server);
        beast::flat_buffer buf;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(64u << 20);
            http::read(tls, buf, parser);
            const auto& req = parser.get();
            std::map<std::string, std::string> headers;
            for (const auto& f : req) {
                std::string name(f.name_string());
                for (auto& ch : name) {
                    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                }
                headers[name] = std::string(f.value());
            }
            const std::string method(req.method_string());
            const std::string target(req.target());
            const auto q = target.find('?');
            const std::string path = target.substr(0, q);
            const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
            std::string body = req.body();
            // As the server's HTTP layer does first: the body decoded from its coding.
            if (auto refused = server::decode_request(headers, body, 64u << 20)) {
                throw std::runtime_error("bad content coding: " + refused->body);
            }
            const server::RouteRequest r{method, path, headers, body, query};
            const server::Reply reply = app.handle(r);
            http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
            res.set(http::field::content_type, reply.content_type);
            for (const auto& [k, v] : reply.headers) {
                res.insert(k, v);
            }
            res.body() = reply.body;
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(tls, res);
            if (!res.keep_alive()) {
                beast::error_code ec;
                s.shutdown(tcp::socket::shutdown_both, ec);
                return;
            }
        }
    };
}

/// A TLS server that answers every post with 200 "ok".
TestServer::Handler tls_ok(ssl::context& ctx) {
    return [&ctx](tcp::socket& s) {
        ssl::stream<tcp::socket&> tls(s, ctx);
        tls.handshake(ssl::stream_base::server);
        beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            http::read(tls, buf, req);
            http::response<http::string_body> res{http::status::ok, 11};
            res.body() = "ok";
            res.prepare_payload();
            http::write(tls, res);
        }
    };
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

HttpReply post(Transport& t, const std::string& body = "{}");

/// Posts on `t` while another thread cancels it 300 ms later: the reply, and how many
/// seconds after the cancel it came back.
std::pair<HttpReply, double> post_cancelled(Transport& t) {
    Clock::time_point cancelled_at{};
    std::thread canceller([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        cancelled_at = Clock::now();
        t.cancel();
    });
    HttpReply r = post(t);
    const auto returned_at = Clock::now();
    canceller.join();
    return {std::move(r), std::chrono::duration<double>(returned_at - cancelled_at).count()};
}

HttpReply post(Transport& t, const std::string& body) {
    return t.post("/v1/sync", {{"content-type", "application/json"}}, body);
}

/// A post to `url` with `o` ends, within `within_s` seconds, in a timeout that says `says`.
void check_times_out(const std::string& url, const HttpOptions& o, const std::string& says,
                     double within_s) {
    auto t = make_http_transport(url, o);
    const auto start = Clock::now();
    const HttpReply r = post(*t);
    CHECK(seconds_since(start) < within_s);
    CHECK(r.status == 0);
    CHECK(r.error == OTSYNC_ERR_TIMEOUT);
    CHECK_MESSAGE(r.error_message.find(says) != std::string::npos, r.error_message);
}

int error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ClientError& e) {
        return e.code();
    }
    return 0;
}

} // namespace

TEST_CASE("server addresses: http:// and https:// with or without port and prefix") {
    for (const char* ok : {"http://127.0.0.1", "http://127.0.0.1:8080/otsync/",
                           "https://sync.example", "HTTPS://[::1]:8443/p", "http://host:1"}) {
        CHECK_MESSAGE(make_http_transport(ok) != nullptr, ok);
    }
    for (const char* bad :
         {"ftp://host", "host:80", "http://", "http://:80", "http://host:", "http://host:99999",
          "http://host:8o", "http://user@host", "https://[::1", "wss://host"}) {
        CHECK_MESSAGE(
            error_of([&] { (void)make_http_transport(bad); }) == OTSYNC_ERR_INVALID_ARGUMENT, bad);
    }
    HttpOptions pinned;
    pinned.pinned_sha256 = "00";
    CHECK(error_of([&] { (void)make_http_transport("https://h", pinned); }) ==
          OTSYNC_ERR_INVALID_ARGUMENT);
    pinned.pinned_sha256 = std::string(64, 'a');
    CHECK(error_of([&] { (void)make_http_transport("http://h", pinned); }) ==
          OTSYNC_ERR_INVALID_ARGUMENT); // a pin means nothing without TLS
    HttpOptions missing_ca;
    missing_ca.ca_file = "/nonexistent/ca.pem";
    CHECK(error_of([&] { (void)make_http_transport("https://h", missing_ca); }) ==
          OTSYNC_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a server that accepts and never answers: a timeout within the deadline") {
    TestServer server(silent);

    SUBCASE("no byte for io_timeout_ms") {
        HttpOptions o;
        o.io_timeout_ms = 500;
        check_times_out(server.url(), o, "no data", 5.0);
    }
    SUBCASE("the whole request within request_timeout_ms") {
        HttpOptions o;
        o.request_timeout_ms = 500;
        check_times_out(server.url(), o, "took longer than 500 ms", 5.0);
    }
    SUBCASE("https: the TLS handshake within connect_timeout_ms") {
        Pki pki;
        HttpOptions o;
        o.connect_timeout_ms = 500;
        o.ca_file = pki.ca_file;
        check_times_out(server.url("https"), o, "connecting", 5.0);
    }
}

TEST_CASE("a server that sends the headers and stalls the body: an I/O timeout") {
    TestServer server(stall_body);
    HttpOptions o;
    o.io_timeout_ms = 500;
    auto t = make_http_transport(server.url(), o);
    const auto start = Clock::now();
    const HttpReply r = post(*t);
    CHECK(seconds_since(start) < 5.0);
    CHECK(r.status == 0);
    CHECK(r.error == OTSYNC_ERR_TIMEOUT);
    CHECK(r.body.empty());
    CHECK_MESSAGE(r.error_message.find("no data") != std::string::npos, r.error_message);
}

TEST_CASE("a server that drips its body: every byte is progress, the request deadline ends it") {
    TestServer server(drip_body);
    HttpOptions o;
    o.io_timeout_ms = 500;       // a byte comes every 100 ms: this one never fires
    o.request_timeout_ms = 1500; // the 1000-byte body would take 100 s
    check_times_out(server.url(), o, "took longer than 1500 ms", 6.0);
}

TEST_CASE("cancel() from another thread ends a hanging post at once; the next post runs") {
    // The first connection never answers; later ones echo.
    std::atomic<int> connection{0};
    TestServer server([&](tcp::socket& s) {
        if (++connection == 1) {
            silent(s);
        } else {
            echo(Closes::never)(s);
        }
    });
    auto t = make_http_transport(server.url()); // default deadlines: 30 s of silence allowed

    t->cancel(); // nothing in flight: no effect on what follows

    const auto [r, after_cancel_s] = post_cancelled(*t);
    CHECK(r.status == 0);
    CHECK(r.error == OTSYNC_ERR_CANCELLED);
    CHECK_MESSAGE(r.error_message.find("cancelled") != std::string::npos, r.error_message);
    CHECK(after_cancel_s < 1.0);

    const HttpReply next = post(*t, "again");
    CHECK(next.status == 200);
    CHECK(next.body == "/v1/sync|again");
    CHECK(server.accepted() == 2);
}

TEST_CASE("cancel() during the TLS handshake") {
    TestServer server(silent);
    Pki pki;
    HttpOptions o;
    o.ca_file = pki.ca_file;
    auto t = make_http_transport(server.url("https"), o);
    const auto [r, after_cancel_s] = post_cancelled(*t);
    CHECK(r.status == 0);
    CHECK(r.error == OTSYNC_ERR_CANCELLED);
    CHECK(after_cancel_s < 1.0);
}

TEST_CASE("keep-alive: many posts over one connection") {
    std::atomic<int> requests{0};
    TestServer server(echo(Closes::never, &requests));
    auto t = make_http_transport(server.url() + "/otsync/");
    for (int i = 0; i < 8; ++i) {
        const HttpReply r = post(*t, "n" + std::to_string(i));
        REQUIRE_MESSAGE(r.status == 200, r.error_message);
        CHECK(r.body == "/otsync/v1/sync|n" + std::to_string(i)); // the prefix is kept
    }
    CHECK(requests == 8);
    CHECK(server.accepted() == 1);
}

TEST_CASE("a server that closes after each answer: every post still gets its answer") {
    std::atomic<int> requests{0};
    SUBCASE("saying so (Connection: close)") {
        TestServer server(echo(Closes::announced, &requests));
        auto t = make_http_transport(server.url());
        for (int i = 0; i < 5; ++i) {
            const HttpReply r = post(*t, std::to_string(i));
            REQUIRE_MESSAGE(r.status == 200, r.error_message);
            CHECK(r.body == "/v1/sync|" + std::to_string(i));
        }
        CHECK(requests == 5);
        CHECK(server.accepted() == 5);
    }
    SUBCASE("without a word: the closed kept connection is seen before the post is sent") {
        TestServer server(echo(Closes::silently, &requests));
        auto t = make_http_transport(server.url());
        for (int i = 0; i < 5; ++i) {
            // Let the close arrive, so the next post finds the connection dead.
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            const HttpReply r = post(*t, std::to_string(i));
            REQUIRE_MESSAGE(r.status == 200, r.error_message);
            CHECK(r.body == "/v1/sync|" + std::to_string(i));
            CHECK(r.resent == 0); // sent once, on a new connection
        }
        CHECK(requests == 5);
        CHECK(server.accepted() == 5);
    }
}

TEST_CASE("a request cut after it left is not sent again by the transport: the caller decides") {
    // The second request is read whole and then the connection closes without an answer:
    // the server may have acted on it, so only the sync (which counts it) may send it again.
    std::atomic<int> requests{0};
    TestServer server([&](tcp::socket& s) {
        beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            http::read(s, buf, req);
            if (++requests == 2) {
                return; // closed with the server's shutdown, no answer
            }
            http::response<http::string_body> res{http::status::ok, 11};
            res.body() = req.body();
            res.prepare_payload();
            http::write(s, res);
        }
    });
    auto t = make_http_transport(server.url());
    REQUIRE(post(*t, "one").status == 200);
    const HttpReply cut = post(*t, "two");
    CHECK(cut.status == 0);
    CHECK(cut.error == OTSYNC_ERR_NETWORK);
    CHECK(cut.resent == 0);
    CHECK(requests == 2);
    CHECK(cut.wire_bytes_up > 3); // what left before the cut is counted
    const HttpReply again = post(*t, "three");
    CHECK(again.status == 200);
    CHECK(again.body == "three");
    CHECK(requests == 3);
    CHECK(server.accepted() == 2);
}

TEST_CASE("a reply counts the HTTP bytes that travelled each way, headers included") {
    std::atomic<std::size_t> read_bytes{0};
    std::atomic<std::size_t> written_bytes{0};
    TestServer server([&](tcp::socket& s) {
        beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            beast::error_code ec;
            read_bytes = http::read(s, buf, req, ec);
            if (ec) {
                return;
            }
            http::response<http::string_body> res{http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = std::string(2 * req.body().size(), 'r');
            res.prepare_payload();
            std::ostringstream wire; // counted before it goes: the client may read it first
            wire << res;
            written_bytes = wire.str().size();
            asio::write(s, asio::buffer(wire.str()));
        }
    });
    auto t = make_http_transport(server.url());
    for (const std::size_t n : {0u, 10u, 5000u}) {
        const HttpReply r = post(*t, std::string(n, 'q'));
        REQUIRE(r.status == 200);
        CHECK(r.wire_bytes_up == read_bytes.load());
        CHECK(r.wire_bytes_down == written_bytes.load());
        CHECK(r.wire_bytes_up > n + 40); // the request line and headers too
        CHECK(r.wire_bytes_down > 2 * n + 30);
    }
}

TEST_CASE("the answer is bounded by max_response_bytes") {
    TestServer server(echo(Closes::never));
    HttpOptions o;
    o.max_response_bytes = 100;
    auto t = make_http_transport(server.url(), o);
    const HttpReply small = post(*t, std::string(50, 'a'));
    CHECK(small.status == 200);
    const HttpReply big = post(*t, std::string(500, 'a'));
    CHECK(big.status == 0);
    CHECK(big.error == OTSYNC_ERR_NETWORK);
    CHECK_MESSAGE(big.error_message.find("larger than 100 bytes") != std::string::npos,
                  big.error_message);
    const HttpReply after = post(*t, "b"); // a new connection
    CHECK(after.status == 200);
    CHECK(server.accepted() == 2);
}

TEST_CASE("no server: a network error, at once") {
    std::string url;
    {
        TestServer gone(silent);
        url = gone.url();
    }
    auto t = make_http_transport(url);
    const HttpReply r = post(*t);
    CHECK(r.status == 0);
    CHECK(r.error == OTSYNC_ERR_NETWORK);
    CHECK(!r.error_message.empty());
    CHECK(r.error_message.find('\n') == std::string::npos);
}

TEST_CASE("https end to end: enroll and sync against the real server code") {
    Pki pki;
    Server s;
    const auto ctx = pki.server_context(pki.server.get());
    TestServer tls(tls_app(*ctx, *s.app));
    const Id tech = s.add_user("tec.tls", Role::technician);
    const auto ots = s.issue(tech, 3, "TLS");

    HttpOptions o;
    o.ca_file = pki.ca_file;
    const std::string url = tls.url("https");
    auto t = make_http_transport(url, o);
    TempDir dev;
    Client c((dev.path / "device.db").string(), key_of(3));
    c.enroll(*t, url, s.code(tech), "Moto G");
    c.sync(*t);
    REQUIRE(c.list_ots_json("assigned").find(ots[0].hex()) != std::string::npos);
    c.set_status(ots[0].hex(), "on_site", "");
    CHECK(c.collect(ots[0].hex(), "TLS0-0", "ONT", "migration", "", "") == OTSYNC_VERDICT_MATCHED);
    CHECK(c.pending() > 0);
    c.sync(*t);
    CHECK(c.pending() == 0);
    check_equal_scope(s, c);
    CHECK(tls.accepted() == 1); // enroll and both syncs over one TLS connection

    { // by name (SNI and the DNS name checked), and with the right pin
        HttpOptions pinned = o;
        pinned.pinned_sha256 = sha256_hex(pki.server.get());
        auto by_name =
            make_http_transport("https://localhost:" + std::to_string(tls.port()), pinned);
        const HttpReply r = by_name->post("/healthz", {}, "");
        CHECK_MESSAGE(r.status != 0, r.error_message);
        // The pin written as openssl prints it (upper case, colons) is the same pin.
        std::string colons;
        for (std::size_t i = 0; i < pinned.pinned_sha256.size(); i += 2) {
            colons += (i ? ":" : "") + pinned.pinned_sha256.substr(i, 2);
        }
        for (auto& ch : colons) {
            ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        }
        pinned.pinned_sha256 = colons;
        auto upper = make_http_transport(url, pinned);
        const HttpReply r2 = upper->post("/healthz", {}, "");
        CHECK_MESSAGE(r2.status != 0, r2.error_message);
    }
}

TEST_CASE("https: a certificate that is not the right one is refused with OTSYNC_ERR_TLS") {
    Pki pki;
    const auto good_ctx = pki.server_context(pki.server.get());
    TestServer good(tls_ok(*good_ctx));
    HttpOptions o;
    o.ca_file = pki.ca_file;
    {
        auto t = make_http_transport(good.url("https"), o);
        const HttpReply r = post(*t);
        REQUIRE_MESSAGE(r.status == 200, r.error_message); // the control: this one is right
    }
    const auto refused = [](const std::string& url, const HttpOptions& opts) {
        auto t = make_http_transport(url, opts);
        const HttpReply r = post(*t);
        CHECK(r.status == 0);
        CHECK(r.error == OTSYNC_ERR_TLS);
        CHECK(!r.error_message.empty());
        CHECK(r.error_message.find('\n') == std::string::npos);
        return r.error_message;
    };

    SUBCASE("signed by a CA we do not trust") {
        HttpOptions other = o;
        other.ca_file = pki.other_ca_file;
        const auto why = refused(good.url("https"), other);
        CHECK_MESSAGE(why.find("refused") != std::string::npos, why);
    }
    SUBCASE("not in the system's CA store") {
        HttpOptions system;
        refused(good.url("https"), system);
    }
    SUBCASE("for another host name") {
        const auto ctx = pki.server_context(pki.elsewhere.get());
        TestServer elsewhere(tls_ok(*ctx));
        const auto by_ip = refused(elsewhere.url("https"), o);
        CHECK_MESSAGE(by_ip.find("refused") != std::string::npos, by_ip);
        refused("https://localhost:" + std::to_string(elsewhere.port()), o);
    }
    SUBCASE("a chain we trust but not the pinned certificate") {
        HttpOptions pinned = o;
        pinned.pinned_sha256 = sha256_hex(pki.elsewhere.get());
        const auto why = refused(good.url("https"), pinned);
        CHECK_MESSAGE(why.find("pinned") != std::string::npos, why);
    }
    SUBCASE("a plain HTTP server behind an https:// address") {
        TestServer plain(plain_http_400);
        refused(plain.url("https"), o);
    }
}
