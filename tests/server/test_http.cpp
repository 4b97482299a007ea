// The HTTP layer (server/http) against raw bytes: a real HttpServer on an ephemeral
// loopback port, run by two io threads, with a small echo handler; the client side is
// plain Asio TCP sockets writing bytes by hand, so that malformed and hostile requests
// can be sent. Every wait is bounded; nothing asserts on timing beyond "eventually".
#include "http/http_server.hpp"

#include "otsync/error.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace otsync;
using namespace otsync::server;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Duration = std::chrono::steady_clock::duration;

namespace {

// ---- the server under test -----------------------------------------------------------

HttpResponse text(std::string body) {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = std::move(body);
    return r;
}

/// /healthz, /echo (the body back), /info (what the handler saw), /close, and handlers
/// that fail in each way a handler can.
HttpResponse test_handler(const HttpRequest& req) {
    if (req.path == "/healthz") {
        return HttpResponse{200, "application/json", R"({"ok":true})", {}, false};
    }
    if (req.path == "/echo") {
        auto r = text(req.body);
        r.content_type = "application/octet-stream";
        return r;
    }
    if (req.path == "/info") {
        const auto header = req.headers.find("x-test");
        return text(req.method + "\n" + req.target + "\n" + req.path + "\n" + req.query + "\n" +
                    (header == req.headers.end() ? "-" : header->second) + "\n" + req.remote);
    }
    if (req.path == "/close") {
        auto r = text("bye");
        r.close = true;
        return r;
    }
    if (req.path == "/throw-error") {
        throw Error(ErrorCode::permission_denied, "not yours");
    }
    if (req.path == "/throw-std") {
        throw std::runtime_error("boom: secret internals");
    }
    if (req.path == "/bad-header") {
        auto r = text("x");
        r.headers.emplace_back("X-Injected", "a\r\nSet-Cookie: evil=1");
        return r;
    }
    return HttpResponse{
        404, "application/json", R"({"error":{"code":"invalid_argument"}})", {}, false};
}

std::size_t test_body_limit(std::string_view, std::string_view path) {
    return path == "/small" ? 1024 : 1024 * 1024;
}

/// An HttpServer on 127.0.0.1:0 run by `threads` io threads; stops and joins on destruction.
class TestServer {
public:
    explicit TestServer(HttpLimits limits = {}, unsigned threads = 2) {
        m_server = std::make_unique<HttpServer>(m_ioc, "127.0.0.1", 0, limits, test_body_limit,
                                                test_handler, [this](const AccessLogLine& line) {
                                                    const std::lock_guard lock(m_mutex);
                                                    m_log.push_back(line);
                                                });
        m_server->start();
        for (unsigned i = 0; i < threads; ++i) {
            m_pool.emplace_back([this] { m_ioc.run(); });
        }
    }
    ~TestServer() {
        m_server->stop_accepting();
        m_ioc.stop();
        for (auto& t : m_pool) {
            t.join();
        }
        m_server.reset();
    }
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    unsigned short port() const { return m_server->port(); }
    HttpServer& server() { return *m_server; }
    std::vector<AccessLogLine> log() {
        const std::lock_guard lock(m_mutex);
        return m_log;
    }

private:
    net::io_context m_ioc; // first: destroyed last, after everything that uses it
    std::mutex m_mutex;
    std::vector<AccessLogLine> m_log;
    std::unique_ptr<HttpServer> m_server;
    std::vector<std::thread> m_pool;
};

/// Waits (bounded) for `condition`; returns its last value.
bool eventually(const std::function<bool()>& condition, Duration timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// ---- a raw-bytes client ----------------------------------------------------------------

struct Reply {
    unsigned status = 0;
    std::map<std::string, std::string> headers; // names lower-cased
    std::string body;
};

/// A plain TCP connection. Each read or write is an Asio operation run with a deadline
/// on the test thread's io_context, so a server that stops reading cannot hang the test.
class Client {
public:
    Client(net::io_context& ioc, unsigned short port) : m_ioc(ioc), m_socket(ioc) {
        m_socket.connect(tcp::endpoint(net::ip::address_v4::loopback(), port));
    }

    /// Writes all of `bytes`; false if the connection failed or the deadline passed.
    bool send(std::string_view bytes, Duration timeout = 5s) {
        const auto [ec, n] = run(
            [&](auto handler) {
                net::async_write(m_socket, net::buffer(bytes.data(), bytes.size()), handler);
            },
            timeout);
        return !ec && n == bytes.size();
    }

    /// The next complete reply (the server always sends Content-Length; a reply to HEAD
    /// has none of the body it announces); nullopt if the connection ends or the
    /// deadline passes first.
    std::optional<Reply> read_reply(Duration timeout = 5s, bool to_head = false) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::size_t end = 0;
        while ((end = m_in.find("\r\n\r\n")) == std::string::npos) {
            if (!fill(deadline)) {
                return std::nullopt;
            }
        }
        Reply reply;
        const std::string head = m_in.substr(0, end + 2);
        const auto sp = head.find(' ');
        if (head.compare(0, 7, "HTTP/1.") != 0 || sp == std::string::npos) {
            return std::nullopt;
        }
        reply.status = static_cast<unsigned>(std::stoul(head.substr(sp + 1, 3)));
        for (auto pos = head.find("\r\n") + 2; pos < head.size();) {
            const auto eol = head.find("\r\n", pos);
            const auto line = head.substr(pos, eol - pos);
            const auto colon = line.find(':');
            std::string name = line.substr(0, colon);
            for (auto& c : name) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            auto value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            reply.headers[name] = value;
            pos = eol + 2;
        }
        std::size_t length = 0;
        if (const auto cl = reply.headers.find("content-length");
            cl != reply.headers.end() && !to_head) {
            length = std::stoul(cl->second);
        }
        while (m_in.size() < end + 4 + length) {
            if (!fill(deadline)) {
                return std::nullopt;
            }
        }
        reply.body = m_in.substr(end + 4, length);
        m_in.erase(0, end + 4 + length);
        return reply;
    }

    /// Reads and drops until the server ends the connection; true if it did in time.
    bool closed_within(Duration timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!fill(deadline)) {
                return m_last_error != net::error::operation_aborted;
            }
            m_in.clear();
        }
        return false;
    }

    void close() {
        error_code ec;
        m_socket.close(ec);
    }

private:
    template <class Start>
    std::pair<error_code, std::size_t> run(Start start, Duration timeout) {
        std::optional<std::pair<error_code, std::size_t>> result;
        start([&](error_code ec, std::size_t n) { result.emplace(ec, n); });
        m_ioc.restart();
        m_ioc.run_for(timeout);
        if (!result) { // deadline: cancel, and let the handler see operation_aborted
            error_code ignored;
            m_socket.cancel(ignored);
            m_ioc.restart();
            m_ioc.run();
        }
        return *result;
    }

    bool fill(std::chrono::steady_clock::time_point deadline) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= Duration::zero()) {
            m_last_error = net::error::operation_aborted;
            return false;
        }
        const auto [ec, n] = run(
            [&](auto handler) { m_socket.async_read_some(net::buffer(m_chunk), handler); }, left);
        m_in.append(m_chunk.data(), n);
        m_last_error = ec;
        return !ec;
    }

    net::io_context& m_ioc;
    tcp::socket m_socket;
    std::string m_in;
    std::vector<char> m_chunk = std::vector<char>(64 * 1024);
    error_code m_last_error;
};

std::string get(std::string_view target, std::string_view extra_headers = {}) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" +
           std::string(extra_headers) + "\r\n";
}

std::string post(std::string_view target, std::string_view body) {
    return "POST " + std::string(target) +
           " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + std::string(body);
}

std::string error_json(std::string_view code, std::string_view message) {
    return R"({"error":{"code":")" + std::string(code) + R"(","message":")" + std::string(message) +
           R"("}})";
}

/// The body is our error JSON with this code (the message is free text).
void check_error_body(const Reply& r, std::string_view code) {
    const std::string prefix = R"({"error":{"code":")" + std::string(code) + R"(","message":")";
    CHECK(r.body.compare(0, prefix.size(), prefix) == 0);
    REQUIRE(r.body.size() > prefix.size() + 3);
    CHECK(r.body.substr(r.body.size() - 3) == "\"}}");
    CHECK(r.headers.at("content-type") == "application/json");
}

/// A fresh connection still gets a normal answer.
void check_alive(TestServer& server) {
    net::io_context ioc;
    Client c(ioc, server.port());
    REQUIRE(c.send(get("/healthz")));
    const auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"ok":true})");
}

/// Sends `request` on a new connection; expects `status` with error `code`, then the close.
void check_refused(TestServer& server, const std::string& request, unsigned status,
                   std::string_view code) {
    net::io_context ioc;
    Client c(ioc, server.port());
    c.send(request); // may fail half-way: the server can answer and close early
    const auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == status);
    check_error_body(*r, code);
    CHECK(r->headers.at("connection") == "close");
    CHECK(c.closed_within(10s));
}

} // namespace

TEST_CASE("keep-alive: two requests on one connection, one access-log line each") {
    TestServer server;
    net::io_context ioc;
    Client c(ioc, server.port());

    REQUIRE(c.send(get("/healthz")));
    auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"ok":true})");
    CHECK(r->headers.at("content-type") == "application/json");
    CHECK(r->headers.count("connection") == 0); // HTTP/1.1: keep-alive is the default

    REQUIRE(c.send(get("/info?x=1&y=2", "X-Test: Hello\r\n")));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    const std::string expected_prefix = "GET\n/info?x=1&y=2\n/info\nx=1&y=2\nHello\n127.0.0.1:";
    CHECK(r->body.compare(0, expected_prefix.size(), expected_prefix) == 0);

    REQUIRE(eventually([&] { return server.log().size() >= 2; }));
    const auto log = server.log();
    REQUIRE(log.size() == 2);
    CHECK(log[0].method == "GET");
    CHECK(log[0].path == "/healthz");
    CHECK(log[0].status == 200);
    CHECK(log[0].bytes_in > 0);
    CHECK(log[0].bytes_out > 0);
    CHECK(log[0].remote.rfind("127.0.0.1:", 0) == 0);
    CHECK(log[1].path == "/info");

    // HEAD: the length of the body, no body, and the connection goes on.
    REQUIRE(c.send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    r = c.read_reply(5s, true);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->headers.at("content-length") == "11");
    CHECK(r->body.empty());
    REQUIRE(c.send(get("/healthz")));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->body == R"({"ok":true})");
    CHECK(server.server().connections() >= 1);
    check_alive(server);
}

TEST_CASE("pipelined requests are answered in order; HTTP/1.0 closes") {
    TestServer server;
    net::io_context ioc;
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(get("/healthz") + post("/echo", "second") + get("/info")));
        auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->body == R"({"ok":true})");
        r = c.read_reply();
        REQUIRE(r);
        CHECK(r->body == "second");
        r = c.read_reply();
        REQUIRE(r);
        CHECK(r->body.rfind("GET\n/info\n", 0) == 0);
    }
    {
        Client c(ioc, server.port());
        REQUIRE(c.send("GET /healthz HTTP/1.0\r\n\r\n"));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(c.closed_within(10s));
    }
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(get("/close")));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->body == "bye");
        CHECK(r->headers.at("connection") == "close");
        CHECK(c.closed_within(10s));
    }
    check_alive(server);
}

TEST_CASE("bodies: 64 KiB+ POST echoed, chunked echoed, Expect: 100-continue") {
    TestServer server;
    net::io_context ioc;
    Client c(ioc, server.port());

    std::string big(200 * 1024 + 7, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>('a' + i % 26);
    }
    REQUIRE(c.send(post("/echo", big)));
    auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() == big.size());
    CHECK(r->body == big);

    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "hello, world");

    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                   "Expect: 100-continue\r\n\r\n"));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 100);
    REQUIRE(c.send("ping"));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ping");
    check_alive(server);
}

TEST_CASE("header larger than header_bytes -> 431 and close") {
    TestServer server;
    check_refused(server, get("/healthz", "X-Big: " + std::string(10'000, 'a') + "\r\n"), 431,
                  "too_large");
    check_alive(server);
}

TEST_CASE("Content-Length above the body limit -> 413 and close, nothing allocated") {
    TestServer server;
    check_refused(server, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n", 413,
                  "too_large");
    check_refused(server,
                  "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n" +
                      std::string(4096, 'x'),
                  413, "too_large");
    // Far beyond any memory: must be refused from the header alone.
    check_refused(server,
                  "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000000\r\n\r\n", 413,
                  "too_large");
    // The limit itself is fine.
    {
        net::io_context ioc;
        Client c(ioc, server.port());
        REQUIRE(c.send(post("/small", std::string(1024, 'k'))));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->status == 404);
    }
    check_alive(server);
}

TEST_CASE("chunked body growing past the limit -> 413 and close") {
    TestServer server;
    std::string request = "POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; ++i) {
        request += "200\r\n" + std::string(512, 'c') + "\r\n";
    }
    request += "0\r\n\r\n";
    check_refused(server, request, 413, "too_large");
    check_alive(server);
}

TEST_CASE("Transfer-Encoding other than exactly chunked -> 400 and close") {
    TestServer server;
    // The last one is two Transfer-Encoding fields.
    const char* const codings[] = {"gzip", "gzip, chunked", "chunked, gzip", "identity",
                                   "chunked\r\nTransfer-Encoding: chunked"};
    for (const char* te : codings) {
        CAPTURE(te);
        check_refused(server,
                      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + std::string(te) +
                          "\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                      400, "malformed");
    }
    // Content-Length with any Transfer-Encoding is refused as well.
    check_refused(server,
                  "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: gzip\r\n\r\nhello",
                  400, "malformed");
    check_alive(server);
}

TEST_CASE("bad request syntax -> 400 and close") {
    TestServer server;
    for (const std::string& request :
         {std::string("\x01\x02 garbage\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
          std::string("GET /\r\n\r\n"), std::string("GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
          std::string("POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
          std::string("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
        CAPTURE(request);
        check_refused(server, request, 400, "malformed");
    }
    check_alive(server);
}

TEST_CASE("a 20 MiB chunk-extension flood ends the connection; the server goes on") {
    TestServer server; // default read_buffer_max (about 8 MiB) is the bound
    net::io_context ioc;
    Client c(ioc, server.port());
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;"));
    const std::string block(64 * 1024, 'e');
    std::size_t sent = 0;
    bool failed = false;
    // Bounded: at most 40 MiB; the server must give up well before.
    while (sent < 40u * 1024 * 1024) {
        if (!c.send(block, 10s)) {
            failed = true;
            break;
        }
        sent += block.size();
    }
    CHECK(failed);
    CHECK(sent < 20u * 1024 * 1024);
    CHECK(c.closed_within(10s));
    // It was answered 400 (buffer overflow), not just dropped; the client may not see
    // it, as it was still sending when the connection closed.
    CHECK(eventually([&] {
        const auto log = server.log();
        return !log.empty() && log.back().status == 400;
    }));
    check_alive(server);
}

TEST_CASE("slow-drip header is cut at header_timeout") {
    HttpLimits limits;
    limits.header_timeout = 300ms;
    TestServer server(limits);
    net::io_context ioc;
    Client c(ioc, server.port());
    REQUIRE(c.send("GET /healthz HTTP/1.1\r\nX-Slow: "));
    bool closed = false;
    for (int i = 0; i < 100 && !closed; ++i) { // 1 byte every 100 ms, 10 s at most
        closed = !c.send("a") || c.closed_within(100ms);
    }
    CHECK(closed);
    check_alive(server);
}

TEST_CASE("timeouts: idle keep-alive and slow body are closed") {
    HttpLimits limits;
    limits.idle_timeout = 300ms;
    limits.body_timeout = 300ms;
    TestServer server(limits);
    net::io_context ioc;
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(get("/healthz")));
        REQUIRE(c.read_reply());
        CHECK(c.closed_within(10s));
    }
    {
        Client c(ioc, server.port());
        REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-this"));
        CHECK(c.closed_within(10s));
    }
    check_alive(server);
}

TEST_CASE("300 idle connections do not keep a new request from an answer") {
    TestServer server; // default limits, max_connections 10'000
    net::io_context ioc;
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 300; ++i) {
        idle.push_back(std::make_unique<Client>(ioc, server.port()));
    }
    REQUIRE(eventually([&] { return server.server().connections() >= 300; }));
    check_alive(server);
}

TEST_CASE("beyond max_connections: 503 too many connections, then close") {
    HttpLimits limits;
    limits.max_connections = 4;
    TestServer server(limits);
    net::io_context ioc;
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(std::make_unique<Client>(ioc, server.port()));
    }
    REQUIRE(eventually([&] { return server.server().connections() == 4; }));
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(get("/healthz")));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->status == 503);
        CHECK(r->body == error_json("too_large", "too many connections"));
        CHECK(c.closed_within(10s));
    }
    idle.pop_back();
    REQUIRE(eventually([&] { return server.server().connections() == 3; }));
    check_alive(server);
    // The 200 is logged once its write completes, which may be after the client read it.
    CHECK(eventually([&] { return server.log().back().status == 200; }));
}

TEST_CASE("handler failures: otsync::Error -> 400 with its code, others -> 500") {
    TestServer server;
    net::io_context ioc;
    Client c(ioc, server.port());

    REQUIRE(c.send(get("/throw-error")));
    auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->body == error_json("permission_denied", "not yours"));

    REQUIRE(c.send(get("/throw-std")));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 500);
    CHECK(r->body == error_json("internal", "internal error")); // what() is not leaked

    REQUIRE(c.send(get("/bad-header")));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 500);
    CHECK(r->headers.count("x-injected") == 0);
    CHECK(r->headers.count("set-cookie") == 0);

    // The connection survives all of it.
    REQUIRE(c.send(get("/healthz")));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    check_alive(server);
}

TEST_CASE("stop_accepting closes idle connections and refuses new ones") {
    TestServer server;
    net::io_context ioc;
    Client c(ioc, server.port());
    REQUIRE(c.send(get("/healthz")));
    REQUIRE(c.read_reply());
    const auto port = server.port();

    server.server().stop_accepting();
    CHECK(c.closed_within(10s));
    CHECK(eventually([&] { return server.server().connections() == 0; }));
    tcp::socket s(ioc);
    error_code ec;
    CHECK(eventually([&] {
        s.close(ec);
        s.connect(tcp::endpoint(net::ip::address_v4::loopback(), port), ec);
        return ec == net::error::connection_refused;
    }));
}

TEST_CASE("start: a port in use is a clear otsync::Error") {
    TestServer first;
    net::io_context ioc;
    HttpServer second(ioc, "127.0.0.1", first.port(), {}, {}, test_handler);
    try {
        second.start();
        FAIL("start should have thrown");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::invalid_argument);
        CHECK(std::string(e.message()).find("127.0.0.1:" + std::to_string(first.port())) !=
              std::string::npos);
    }
    HttpServer bad_host(ioc, "no-such-host.invalid", 0, {}, {}, test_handler);
    CHECK_THROWS_AS(bad_host.start(), Error);
}
