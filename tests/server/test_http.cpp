// The HTTP layer (server/http) against raw bytes: a real HttpServer on an ephemeral
// loopback port, run by two io threads, with a small echo handler or the real routes
// (App); the client side is plain Asio TCP sockets writing bytes by hand, so that
// malformed and hostile requests can be sent. Every wait is bounded; nothing asserts on
// timing beyond "eventually". Also the error model: one status per error code.
#include "http/http_server.hpp"

#include "http/content_coding.hpp"

#include "server.hpp"
#include "sync_fixture.hpp"

#include "otsync/error.hpp"
#include "otsync/session.hpp"
#include "otsync/value.hpp"

#include <rapidjson/document.h>

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
    if (req.path == "/big") { // 8 KiB of text, and what the handler saw of the body
        auto r = text(std::string(8192, 'a') + "|" + req.body + "|" +
                      (req.headers.contains("content-encoding") ? "coded" : "plain"));
        r.may_compress = req.query != "secret";
        return r;
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
    explicit TestServer(HttpLimits limits = {}, unsigned threads = 2,
                        Handler handler = test_handler, BeforeBody before_body = {}) {
        m_server =
            std::make_unique<HttpServer>(m_ioc, "127.0.0.1", 0, limits, test_body_limit,
                                         std::move(handler), [this](const AccessLogLine& line) {
                                             const std::lock_guard lock(m_mutex);
                                             m_log.push_back(line);
                                             m_log_json.push_back(access_log_json(line));
                                         });
        if (before_body) {
            m_server->set_before_body(std::move(before_body));
        }
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
    /// The same lines as the server prints them (access_log_json).
    std::vector<std::string> log_json() {
        const std::lock_guard lock(m_mutex);
        return m_log_json;
    }

private:
    net::io_context m_ioc; // first: destroyed last, after everything that uses it
    std::mutex m_mutex;
    std::vector<AccessLogLine> m_log;
    std::vector<std::string> m_log_json;
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

struct RawReply {
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
    std::optional<RawReply> read_reply(Duration timeout = 5s, bool to_head = false) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::size_t end = 0;
        while ((end = m_in.find("\r\n\r\n")) == std::string::npos) {
            if (!fill(deadline)) {
                return std::nullopt;
            }
        }
        RawReply reply;
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
void check_error_body(const RawReply& r, std::string_view code) {
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

// ---- the real routes behind the HTTP layer ---------------------------------------------

/// The server's composition root over a temporary store, as otsync-server builds it.
struct AppStack {
    AppStack() {
        ServerConfig config;
        config.data_dir = dir.path;
        config.auth.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN;
        config.auth.pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN;
        root = std::make_unique<Server>(config, clock);
        store = &root->store();
        auth = &root->auth();
        app = &root->app();
    }

    Handler handler() {
        return route_handler([this](const RouteRequest& r) { return root->handle(r); });
    }
    BeforeBody before_body() {
        return route_before_body([this](const RouteRequest& r) { return root->before_body(r); });
    }

    test::TempDir dir;
    FakeClock clock{1'795'000'000'000};
    std::unique_ptr<Server> root;
    Store* store = nullptr;
    AuthService* auth = nullptr;
    App* app = nullptr;
};

/// `text` is valid UTF-8 and one JSON object whose strings decode to valid UTF-8 too
/// (rapidjson 1.1 lets a lone surrogate escape through); returns it parsed.
std::optional<rapidjson::Document> json_object(std::string_view text) {
    CAPTURE(text);
    CHECK(is_valid_utf8(text));
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
    CHECK_FALSE(d.HasParseError());
    if (d.HasParseError() || !d.IsObject() || !is_valid_utf8(text)) {
        CHECK(d.IsObject());
        return std::nullopt;
    }
    return d;
}

/// An error body, checked: {"error":{"code","message"[,"field"]}} in valid JSON and UTF-8.
struct ErrorBody {
    std::string code, message, field;
};
std::optional<ErrorBody> error_body_of(const RawReply& r) {
    CHECK(r.headers.at("content-type") == "application/json");
    const auto d = json_object(r.body);
    if (!d || !d->HasMember("error") || !(*d)["error"].IsObject()) {
        FAIL_CHECK((std::string("not an error body: ") + r.body));
        return std::nullopt;
    }
    const auto& e = (*d)["error"];
    ErrorBody out;
    for (const auto& [name, target] : {std::pair<const char*, std::string*>{"code", &out.code},
                                       {"message", &out.message},
                                       {"field", &out.field}}) {
        if (e.HasMember(name)) {
            REQUIRE(e[name].IsString());
            *target = std::string(e[name].GetString(), e[name].GetStringLength());
            CHECK(is_valid_utf8(*target));
        }
    }
    CHECK(!out.code.empty());
    return out;
}

/// Every access-log line the server wrote is valid JSON; the one for `path` is there.
void check_log_json(TestServer& server, std::size_t lines, std::string_view path) {
    REQUIRE(eventually([&] { return server.log_json().size() >= lines; }));
    bool found = false;
    for (const auto& line : server.log_json()) {
        const auto d = json_object(line);
        if (!d) {
            continue; // reported by json_object
        }
        REQUIRE(d->HasMember("path"));
        REQUIRE((*d)["path"].IsString());
        const std::string logged((*d)["path"].GetString(), (*d)["path"].GetStringLength());
        CHECK(is_valid_utf8(logged));
        found = found || logged == path;
    }
    CHECK_MESSAGE(found, "no access-log line for ", path);
}

/// Sends one request on a new connection and reads its reply.
std::optional<RawReply> round_trip(TestServer& server, const std::string& request) {
    net::io_context ioc;
    Client c(ioc, server.port());
    if (!c.send(request)) {
        return std::nullopt;
    }
    return c.read_reply();
}

constexpr std::string_view k_fffd = "\xef\xbf\xbd"; // U+FFFD REPLACEMENT CHARACTER

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

TEST_CASE("request bodies beyond the in-flight budget: 503 with Retry-After, the body unread, "
          "and the budget back once answered") {
    HttpLimits limits;
    limits.max_inflight_body_bytes = 1'000'000;
    TestServer server(limits);
    net::io_context ioc;
    const std::string body(600'000, 'b');
    const std::string head =
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n";
    // A holds 600 kB of the budget: its header is in, its body only begun.
    Client a(ioc, server.port());
    REQUIRE(a.send(head + body.substr(0, 100'000)));
    REQUIRE(eventually([&] { return server.server().inflight_body_bytes() == body.size(); }));
    {
        // B's 600 kB do not fit beside it: refused from the header, nothing of it read.
        Client b(ioc, server.port());
        REQUIRE(b.send(head));
        const auto r = b.read_reply();
        REQUIRE(r);
        CHECK(r->status == 503);
        check_error_body(*r, "too_large");
        CHECK(r->headers.at("retry-after") == "2");
        CHECK(r->headers.at("connection") == "close");
        CHECK(b.closed_within(10s));
    }
    // A small body still fits; a chunked one reserves its whole limit (1 MiB): no room.
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(post("/echo", "small")));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "small");
    }
    check_refused(server, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                  503, "too_large");
    CHECK(server.server().inflight_body_bytes() == body.size());
    // A ends its body and is answered: the budget is whole again, and B's retry fits.
    REQUIRE(a.send(body.substr(100'000)));
    const auto ra = a.read_reply(10s);
    REQUIRE(ra);
    CHECK(ra->status == 200);
    CHECK(ra->body.size() == body.size());
    CHECK(eventually([&] { return server.server().inflight_body_bytes() == 0; }));
    Client retry(ioc, server.port());
    REQUIRE(retry.send(head + body));
    const auto rr = retry.read_reply(10s);
    REQUIRE(rr);
    CHECK(rr->status == 200);
    // A connection that dies half-way through its body gives its share back too.
    {
        Client d(ioc, server.port());
        REQUIRE(d.send(head + body.substr(0, 1000)));
        REQUIRE(eventually([&] { return server.server().inflight_body_bytes() == body.size(); }));
        d.close();
    }
    CHECK(eventually([&] { return server.server().inflight_body_bytes() == 0; }));
    check_alive(server);
}

TEST_CASE("a large sync request from no enrolled device is refused before its body is read") {
    AppStack stack;
    TestServer server({}, 2, stack.handler(), stack.before_body());
    // A technician's device, enrolled.
    User tech;
    tech.id = Id::natural("user", "tec.quispe");
    tech.name = "tec.quispe";
    tech.role = Role::technician;
    tech.created_at = static_cast<std::int64_t>(stack.clock.now_ms());
    stack.store->add_user(tech);
    const auto key = SigningKeyPair::generate();
    const auto enrolled = reply_of(stack.root->sync().enroll(
        "{\"code\":\"" + stack.root->sync().new_enroll_code(tech.id) + "\",\"public_key\":\"" +
        to_base64(key.public_key) + "\",\"label\":\"A14\"}"));
    REQUIRE(enrolled.status == 200);
    const auto replica = std::stoull(enrolled.body.substr(enrolled.body.find("\"replica\":") + 10));

    const std::size_t big = 900'000; // announced, never sent (the limit here is 1 MiB)
    const auto head = [&](std::uint64_t as_replica, bool with_envelope) {
        std::string h = "POST /v1/sync HTTP/1.1\r\nHost: t\r\nContent-Type: " +
                        std::string(k_content_type_binary) +
                        "\r\nContent-Length: " + std::to_string(big) + "\r\n";
        if (with_envelope) {
            const Signature zero{};
            h += "X-Otsync-Replica: " + std::to_string(as_replica) +
                 "\r\nX-Otsync-Counter: 1\r\nX-Otsync-Signature: " + to_base64(zero) + "\r\n";
        }
        return h + "\r\n";
    };
    net::io_context ioc;
    // No envelope, and an envelope of a replica nobody enrolled: answered from the header.
    check_refused(server, head(replica, false), 401, "unauthenticated");
    check_refused(server, head(replica + 1000, true), 401, "unknown_device");
    // The enrolled device's header passes: the server waits for the body (no early answer).
    {
        Client c(ioc, server.port());
        REQUIRE(c.send(head(replica, true)));
        CHECK_FALSE(c.read_reply(500ms));
        CHECK(server.server().inflight_body_bytes() == big);
    }
    CHECK(eventually([&] { return server.server().inflight_body_bytes() == 0; }));
    // A large inventory import without a session: 401 before its body.
    check_refused(server,
                  "POST /v1/inventory/import HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
                  "Content-Length: 900000\r\n\r\n",
                  401, "unauthenticated");
    // A small sync body is not asked about before it is read: the full checks answer it.
    {
        Client c(ioc, server.port());
        REQUIRE(c.send("POST /v1/sync HTTP/1.1\r\nHost: t\r\nContent-Type: " +
                       std::string(k_content_type_binary) + "\r\nContent-Length: 3\r\n\r\nabc"));
        const auto r = c.read_reply();
        REQUIRE(r);
        CHECK(r->status == 401);
        check_error_body(*r, "unauthenticated");
    }
    CHECK(round_trip(server, get("/healthz"))->status == 200);
}

TEST_CASE("content codings: zstd and deflate bodies decoded within the limit, answers encoded "
          "as offered") {
    TestServer server;
    net::io_context ioc;
    const auto exchange = [&](const std::string& request) {
        Client c(ioc, server.port());
        REQUIRE(c.send(request));
        auto r = c.read_reply();
        REQUIRE(r);
        return *r;
    };
    const auto coded_post = [](std::string_view target, std::string_view coding,
                               const std::string& body, std::string_view accept = {}) {
        return "POST " + std::string(target) +
               " HTTP/1.1\r\nHost: t\r\nContent-Encoding: " + std::string(coding) + "\r\n" +
               (accept.empty() ? std::string()
                               : "Accept-Encoding: " + std::string(accept) + "\r\n") +
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    };
    const std::string message = "mensaje de prueba " + std::string(3000, 'x');
    // The handler sees the decoded body, and no Content-Encoding.
    for (const Coding c : {Coding::deflate, Coding::zstd}) {
        CAPTURE(coding_name(c));
        const auto r = exchange(coded_post("/big", coding_name(c), encode_body(c, message)));
        CHECK(r.status == 200);
        CHECK(r.headers.count("content-encoding") == 0); // nothing offered: identity
        CHECK(r.body == std::string(8192, 'a') + "|" + message + "|plain");
    }
    // Answers: zstd preferred, deflate when only it is offered, identity when neither is.
    const std::pair<std::string, std::string> offers[] = {{"zstd", "zstd"},
                                                          {"gzip, deflate", "deflate"},
                                                          {"deflate, zstd;q=0", "deflate"},
                                                          {"*", "zstd"},
                                                          {"zstd;q=0, deflate;q=0", ""},
                                                          {"gzip, br", ""},
                                                          {"deflate;q=0.5, zstd;q=0.1", "deflate"}};
    for (const auto& [accept, coding] : offers) {
        CAPTURE(accept);
        const auto r = exchange(get("/big", "Accept-Encoding: " + accept + "\r\n"));
        CHECK(r.status == 200);
        CHECK(r.headers.at("vary") == "Accept-Encoding");
        const auto ce = r.headers.find("content-encoding");
        if (coding.empty()) {
            CHECK(ce == r.headers.end());
            CHECK(r.body.size() == 8192 + 7);
        } else {
            REQUIRE(ce != r.headers.end());
            CHECK(ce->second == coding);
            CHECK(r.body.size() < 200);
            CHECK(decode_body(*request_coding(coding), r.body, 1 << 20) ==
                  std::string(8192, 'a') + "||plain");
        }
    }
    // An answer that may not be compressed (a secret beside request text: BREACH) is not.
    CHECK(exchange(get("/big?secret", "Accept-Encoding: zstd\r\n"))
              .headers.count("content-encoding") == 0);
    // Small answers and non-text ones stay as they are.
    CHECK(
        exchange(get("/healthz", "Accept-Encoding: zstd\r\n")).headers.count("content-encoding") ==
        0);
    {
        const auto r = exchange("POST /echo HTTP/1.1\r\nHost: t\r\nAccept-Encoding: "
                                "zstd\r\nContent-Length: 4000\r\n\r\n" +
                                std::string(4000, 'e'));
        CHECK(r.headers.count("content-encoding") == 0); // application/octet-stream
        CHECK(r.body == std::string(4000, 'e'));
    }
    // Refusals, the connection kept: a coding we do not decode, a damaged stream, and a
    // small body that decodes past the route's limit (/small: 1 KiB; /echo: 1 MiB).
    const auto refused = [&](const std::string& request, unsigned status, std::string_view code) {
        const auto r = exchange(request);
        CHECK(r.status == status);
        check_error_body(r, code);
    };
    refused(coded_post("/echo", "gzip", "abc"), 415, "unsupported_media_type");
    refused(coded_post("/echo", "deflate, zstd", "abc"), 415, "unsupported_media_type");
    refused(coded_post("/echo", "deflate", "not a zlib stream"), 400, "malformed");
    refused(coded_post("/echo", "zstd", "not a zstd frame"), 400, "malformed");
    const std::string truncated = encode_body(Coding::deflate, message);
    refused(coded_post("/echo", "deflate", truncated.substr(0, truncated.size() / 2)), 400,
            "malformed");
    refused(coded_post("/small", "deflate", encode_body(Coding::deflate, std::string(2000, 'z'))),
            413, "too_large");
    const std::string bomb = encode_body(Coding::zstd, std::string(64u << 20, '\0'));
    CHECK(bomb.size() < 64 * 1024);
    refused(coded_post("/echo", "zstd", bomb), 413, "too_large");
    refused(
        coded_post("/echo", "deflate", encode_body(Coding::deflate, std::string(2u << 20, '\0'))),
        413, "too_large");
    // identity is no coding at all.
    CHECK(exchange(coded_post("/big", "identity", "hola")).body ==
          std::string(8192, 'a') + "|hola|plain");
    CHECK(server.server().inflight_body_bytes() == 0);
    check_alive(server);
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

// ---- Host and the request target (RFC 9112 §3.2) -------------------------------------------

TEST_CASE("HTTP/1.1 without a Host header, or with two, is 400 with a JSON error body") {
    TestServer server;
    const std::string requests[] = {
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", // the same name, any case
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "GET http://test/healthz HTTP/1.1\r\n\r\n", // absolute-form needs Host too
    };
    for (const auto& request : requests) {
        CAPTURE(request);
        check_refused(server, request, 400, "malformed");
    }
    // HTTP/1.0 did not have Host: still served (one Host, of course, too).
    {
        const auto r = round_trip(server, "GET /healthz HTTP/1.0\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    {
        const auto r = round_trip(server, "GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 400);
        const auto e = error_body_of(*r);
        REQUIRE(e);
        CHECK(e->code == "malformed");
    }
    check_log_json(server, std::size(requests) + 2, "/healthz");
    check_alive(server);
}

TEST_CASE("an absolute-form target is routed by its path and query") {
    TestServer server;
    net::io_context ioc;
    Client c(ioc, server.port());
    REQUIRE(c.send("GET http://test:8080/info?x=1&y=%20 HTTP/1.1\r\nHost: test:8080\r\n"
                   "X-Test: abs\r\n\r\n"));
    auto r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    // The handler sees the origin-form: target, path and query, never the authority.
    const std::string expected = "GET\n/info?x=1&y=%20\n/info\nx=1&y=%20\nabs\n127.0.0.1:";
    CHECK(r->body.compare(0, expected.size(), expected) == 0);

    REQUIRE(c.send("GET HTTPS://Test/healthz HTTP/1.1\r\nHost: Test\r\n\r\n"));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"ok":true})");

    // No path at all is "/"; a query may follow the authority directly.
    REQUIRE(c.send("GET http://test?x=1 HTTP/1.1\r\nHost: test\r\n\r\n"));
    r = c.read_reply();
    REQUIRE(r);
    CHECK(r->status == 404); // the test handler knows no "/"
    // A request's line is logged after its answer is written: wait for these three before
    // the next connection, so the order below is the order sent.
    REQUIRE(eventually([&] { return server.log().size() >= 3; }));

    // The body limit is the path's (/small: 1 KiB).
    check_refused(server,
                  "POST http://test/small HTTP/1.1\r\nHost: test\r\nContent-Length: 1025\r\n\r\n",
                  413, "too_large");

    REQUIRE(eventually([&] { return server.log().size() >= 4; }));
    const auto log = server.log();
    CHECK(log[0].path == "/info");
    CHECK(log[1].path == "/healthz");
    CHECK(log[2].path == "/");
    CHECK(log[3].path == "/small");
    check_alive(server);
}

TEST_CASE("an absolute-form target reaches the real routes") {
    AppStack stack;
    TestServer server({}, 2, stack.handler());
    const auto r = round_trip(server, "GET http://127.0.0.1:" + std::to_string(server.port()) +
                                          "/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"status":"ok"})");
}

// ---- error bodies are valid JSON whatever bytes the request held ----------------------------

TEST_CASE("invalid UTF-8 in the target: the error body and the access-log line stay valid JSON") {
    AppStack stack;
    TestServer server({}, 2, stack.handler());
    const auto r = round_trip(server, get("/v1/\xff\xfe"));
    REQUIRE(r);
    CHECK(r->status == 404);
    check_log_json(server, 1, "/v1/" + std::string(k_fffd) + std::string(k_fffd));
    const auto e = error_body_of(*r);
    REQUIRE(e);
    CHECK(e->code == "not_found");
    CHECK(e->message == "no such route: /v1/" + std::string(k_fffd) + std::string(k_fffd));

    // A path segment the API reads as an id, and one outside /v1/.
    for (const char* target : {"/v1/cases/\xff\xfe", "/\xc3\x28x", "/v1/\xed\xa0\x80"}) {
        CAPTURE(target);
        const auto again = round_trip(server, get(target));
        REQUIRE(again);
        CHECK(again->status / 100 == 4);
        CHECK(error_body_of(*again));
    }
    check_log_json(server, 4, "/v1/" + std::string(k_fffd) + std::string(k_fffd));
}

TEST_CASE("invalid UTF-8 in a JSON body to a REST route: the error body stays valid JSON") {
    AppStack stack;
    TestServer server({}, 2, stack.handler());
    const auto login = [&](std::string_view body) {
        return round_trip(server, "POST /v1/auth/login HTTP/1.1\r\nHost: t\r\n"
                                  "Content-Type: application/json\r\nContent-Length: " +
                                      std::to_string(body.size()) + "\r\n\r\n" + std::string(body));
    };
    // Raw bytes that are not UTF-8: the body is not JSON at all.
    auto r = login("{\"name\":\"\xff\xfe\",\"password\":\"x\"}");
    REQUIRE(r);
    CHECK(r->status == 400);
    auto e = error_body_of(*r);
    REQUIRE(e);
    CHECK(e->code == "malformed");
    // An escape that decodes to a lone surrogate (ED B0 80: three ill-formed bytes, so three
    // U+FFFD), in a member name the route does not read: it comes back in the message and
    // in "field".
    r = login(R"({"name":"a","password":"b","x\udc00y":1})");
    REQUIRE(r);
    CHECK(r->status == 400);
    e = error_body_of(*r);
    REQUIRE(e);
    CHECK(e->code == "unknown_field");
    const std::string replaced =
        "x" + std::string(k_fffd) + std::string(k_fffd) + std::string(k_fffd) + "y";
    CHECK(e->field == replaced);
    CHECK(e->message == replaced + " is not a member of this request");
    // ... and in a value.
    r = login(R"({"name":"\udc00","password":"b"})");
    REQUIRE(r);
    CHECK(r->status == 400);
    e = error_body_of(*r);
    REQUIRE(e);
    CHECK(e->code == "invalid_utf8");
    check_log_json(server, 3, "/v1/auth/login");
}

TEST_CASE("invalid bytes in a header: the error body and the access-log line stay valid JSON") {
    AppStack stack;
    TestServer server({}, 2, stack.handler());
    const std::string requests[] = {
        get("/v1/auth/session", "Authorization: Bearer \xff\xfe\r\n"),
        get("/v1/cases", "Cookie: otsync_session=\xc3\x28\r\n"),
        "GET /v1/cases HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
        "POST /v1/sync HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-otsync\xff\r\n"
        "Content-Length: 2\r\n\r\n{}",
        "POST /v1/sync HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-otsync\r\n"
        "X-Otsync-Replica: 1\xff\r\nX-Otsync-Counter: \xfe\r\nX-Otsync-Signature: \xed\xa0\x80\r\n"
        "Content-Length: 2\r\n\r\n{}",
    };
    for (const auto& request : requests) {
        CAPTURE(request);
        const auto r = round_trip(server, request);
        REQUIRE(r);
        CHECK(r->status / 100 == 4);
        CHECK(error_body_of(*r));
    }
    check_log_json(server, std::size(requests), "/v1/sync");
}

// ---- the error model: one HTTP status per error code ---------------------------------------

TEST_CASE("every error code has one HTTP status, the same for the routes and the sync session") {
    const std::map<ErrorCode, unsigned> expected{
        {ErrorCode::internal, 500},
        {ErrorCode::invalid_argument, 400},
        {ErrorCode::truncated, 400},
        {ErrorCode::malformed, 400},
        {ErrorCode::too_large, 413},
        {ErrorCode::wrong_type, 400},
        {ErrorCode::unknown_field, 400},
        {ErrorCode::missing_field, 400},
        {ErrorCode::invalid_utf8, 400},
        {ErrorCode::out_of_range, 400},
        {ErrorCode::unknown_entity_type, 400},
        {ErrorCode::unknown_entity_field, 400},
        {ErrorCode::kind_mismatch, 400},
        {ErrorCode::value_type_mismatch, 400},
        {ErrorCode::op_id_reused, 400},
        {ErrorCode::permission_denied, 403},
        {ErrorCode::invalid_transition, 409},
        {ErrorCode::clock_skew, 400},
        {ErrorCode::unsupported_protocol, 426},
        {ErrorCode::invalid_value, 400},
        {ErrorCode::unauthenticated, 401},
        {ErrorCode::not_found, 404},
        {ErrorCode::conflict, 409},
        {ErrorCode::rate_limited, 429},
        {ErrorCode::requirements_incomplete, 409},
        {ErrorCode::device_revoked, 401},
        {ErrorCode::unknown_device, 401},
        {ErrorCode::bad_signature, 401},
        {ErrorCode::user_disabled, 401},
        {ErrorCode::replayed, 409},
        {ErrorCode::signed_rows, 400},
        {ErrorCode::method_not_allowed, 405},
        {ErrorCode::unsupported_media_type, 415},
        {ErrorCode::session_expired, 401},
    };
    // Every code from 1 to the last has a row, and nothing beyond the last is a code.
    int last = 0;
    for (int c = 1; c < 1000; ++c) {
        const auto code = static_cast<ErrorCode>(c);
        if (error_code_from_string(to_string(code)) == code) {
            last = c;
        }
    }
    CHECK(last == static_cast<int>(k_last_error_code));
    CHECK(last == static_cast<int>(expected.rbegin()->first));
    for (int c = 1; c <= last; ++c) {
        const auto code = static_cast<ErrorCode>(c);
        CAPTURE(to_string(code));
        REQUIRE(expected.count(code) == 1);
        CHECK(http_status(code) == expected.at(code));
        CHECK(session::status_of_refusal(code) == expected.at(code));
        // error_reply answers with that status and the one body.
        const Reply r = error_reply(Error(code, "why", "rows[0].x"));
        CHECK(r.status == expected.at(code));
        CHECK(r.content_type == "application/json");
        const auto d = json_object(r.body);
        REQUIRE(d);
        CHECK(std::string((*d)["error"]["code"].GetString()) == to_string(code));
        if (code == ErrorCode::internal) { // nothing of ours leaks
            CHECK(r.body == error_body(code, "the server could not complete the request; "
                                             "retry later"));
        } else {
            CHECK(r.body == R"({"error":{"code":")" + std::string(to_string(code)) +
                                R"(","message":"rows[0].x: why","field":"rows[0].x"}})");
        }
    }
}

TEST_CASE("error_body: any bytes make valid JSON; the extra members of the sync refusals") {
    const std::string bytes = "a\"b\\c\n\x01\xff\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82";
    const std::string body = error_body(ErrorCode::unknown_field, bytes, bytes);
    const auto d = json_object(body);
    REQUIRE(d);
    const std::string message((*d)["error"]["message"].GetString(),
                              (*d)["error"]["message"].GetStringLength());
    const std::string fffd(k_fffd);
    CHECK(message == "a\"b\\c\n\x01" + fffd + fffd + "(" + fffd + fffd + fffd + fffd + fffd + fffd +
                         fffd + fffd);
    CHECK(std::string((*d)["error"]["field"].GetString()) == message);

    // The 426 and the revocation carry a second member beside "error".
    const Reply r = error_reply(Error(ErrorCode::unsupported_protocol, "update the app"),
                                R"("supported":{"min":1,"max":2})");
    CHECK(r.status == 426);
    CHECK(r.body == R"({"error":{"code":"unsupported_protocol","message":"update the app"},)"
                    R"("supported":{"min":1,"max":2}})");
    CHECK(json_object(r.body));
}

TEST_CASE("the routes answer with the code's status: 401, 403, 404, 405, 415") {
    AppStack stack;
    User u;
    u.id = Id::natural("user", "atc.rojas");
    u.name = "atc.rojas";
    u.role = Role::customer_service;
    u.password_hash = stack.auth->hash_password("correct horse");
    stack.store->add_user(u);
    const std::string token = stack.auth->login("atc.rojas", "correct horse", "10.0.0.1:1").token;
    const std::map<std::string, std::string> none, bearer{{"authorization", "Bearer " + token}},
        text_body{{"authorization", "Bearer " + token}, {"content-type", "text/plain"}};
    const struct {
        std::string_view method, path;
        const std::map<std::string, std::string>& headers;
        std::string body;
        unsigned status;
        std::string_view code;
    } cases[] = {
        {"GET", "/v1/sync", none, "", 405, "method_not_allowed"},
        {"GET", "/v1/devices/enroll", none, "", 405, "method_not_allowed"},
        {"POST", "/healthz", none, "", 405, "method_not_allowed"},
        {"POST", "/metrics", none, "", 405, "method_not_allowed"},
        {"GET", "/v1/auth/login", none, "", 405, "method_not_allowed"},
        {"GET", "/v1/cases", none, "", 401, "unauthenticated"},
        {"GET", "/v1/nothing-here", none, "", 404, "not_found"},
        {"DELETE", "/v1/cases", bearer, "", 405, "method_not_allowed"},
        {"GET", "/v1/devices", bearer, "", 403, "permission_denied"},
        {"GET", "/v1/cases/zzz", bearer, "", 404, "not_found"},
        {"POST", "/v1/cases", text_body, "x", 415, "unsupported_media_type"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.method);
        CAPTURE(c.path);
        const Reply r = stack.app->handle(RouteRequest{c.method, c.path, c.headers, c.body});
        CHECK(r.status == c.status);
        const auto d = json_object(r.body);
        REQUIRE(d);
        CHECK(std::string((*d)["error"]["code"].GetString()) == c.code);
    }
}
