// The built-in HTTP/1.1 transport: Boost.Beast over plain TCP or TLS (Boost.Asio SSL with
// OpenSSL). Beast stays in this one translation unit.
//
// Every socket operation is asynchronous on the transport's private io_context, which
// post() runs itself, one operation at a time, until that operation completes or its
// deadline passes (io_context::run_one_until). A deadline that passes closes the socket (or
// cancels the resolver) and runs on until the aborted operation has completed, so nothing
// is left pending between calls. The deadlines:
//   - connect: resolving, connecting and the TLS handshake within connect_timeout_ms;
//   - I/O: every read or write moves bytes within io_timeout_ms (reads are the stream's
//     own read_some, fed to the parser by hand, so one byte of progress resets it);
//   - request: everything (including a reconnect) within request_timeout_ms.
// A value <= 0 disables that deadline.
//
// cancel() posts the abort to the io_context (the only way another thread touches the
// socket) tagged with the number of the post in flight; a post that started later ignores
// it. With no post in flight, cancel() does nothing.
//
// One connection is kept between posts (HTTP/1.1 keep-alive). When a post on a kept
// connection fails before the first byte of the answer because the connection is gone
// (EOF, reset, broken pipe, TLS stream truncated), the server closed it while idle: the
// post is sent once more on a new connection. POST /v1/sync is idempotent (requests carry a
// counter), so a request that did arrive before the close does no harm.
#include "otsync/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>

namespace otsync::client {

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Url {
    bool tls = false;
    std::string host; // without brackets for an IPv6 literal
    std::string port;
    std::string prefix;   // "" or "/prefix", no trailing slash
    std::string host_hdr; // the Host header: host[:port] (brackets for IPv6)
    bool host_is_ip = false;
};

Url parse_url(const std::string& url) {
    const auto bad = [&](const std::string& why) {
        return ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "invalid server address: " + why);
    };
    Url u;
    const auto sep = url.find("://");
    if (sep == std::string::npos) {
        throw bad("it must start with http:// or https://");
    }
    std::string scheme = url.substr(0, sep);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme == "https") {
        u.tls = true;
    } else if (scheme != "http") {
        throw bad("the scheme must be http:// or https://");
    }
    std::string rest = url.substr(sep + 3);
    const auto slash = rest.find('/');
    if (slash != std::string::npos) {
        u.prefix = rest.substr(slash);
        while (!u.prefix.empty() && u.prefix.back() == '/') {
            u.prefix.pop_back();
        }
        rest = rest.substr(0, slash);
    }
    if (rest.find_first_of("@?# ") != std::string::npos) {
        throw bad("user names, queries and fragments are not supported");
    }
    std::string port;
    if (!rest.empty() && rest.front() == '[') { // [v6]:port
        const auto close = rest.find(']');
        if (close == std::string::npos) {
            throw bad("unclosed '[' in the host");
        }
        u.host = rest.substr(1, close - 1);
        const std::string after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                throw bad("unexpected text after the host");
            }
            port = after.substr(1);
            if (port.empty()) {
                throw bad("empty port");
            }
        }
    } else {
        const auto colon = rest.rfind(':');
        u.host = colon == std::string::npos ? rest : rest.substr(0, colon);
        if (colon != std::string::npos) {
            port = rest.substr(colon + 1);
            if (port.empty()) {
                throw bad("empty port");
            }
        }
    }
    if (u.host.empty()) {
        throw bad("no host");
    }
    if (!port.empty()) {
        if (port.size() > 5 ||
            !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            throw bad("the port is not a number");
        }
        const long p = std::strtol(port.c_str(), nullptr, 10);
        if (p < 1 || p > 65535) {
            throw bad("the port is out of range");
        }
    }
    const std::string default_port = u.tls ? "443" : "80";
    u.port = port.empty() ? default_port : port;
    beast::error_code ec;
    const auto addr = asio::ip::make_address(u.host, ec);
    u.host_is_ip = !ec;
    u.host_hdr = (u.host_is_ip && addr.is_v6()) ? "[" + u.host + "]" : u.host;
    if (u.port != default_port) {
        u.host_hdr += ":" + u.port;
    }
    return u;
}

/// "ab:CD..." → "abcd..."; throws unless it is 32 bytes of hex.
std::string normalize_pin(const std::string& pin) {
    std::string out;
    for (const char c : pin) {
        if (c == ':' || c == ' ') {
            continue;
        }
        const auto l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!((l >= '0' && l <= '9') || (l >= 'a' && l <= 'f'))) {
            throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                              "pinned_sha256 must be the hex SHA-256 of a certificate");
        }
        out += l;
    }
    if (out.size() != 64) {
        throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                          "pinned_sha256 must be 64 hex digits (a SHA-256)");
    }
    return out;
}

std::string to_hex(const unsigned char* p, unsigned n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

/// The connection is gone (the peer closed or reset it).
bool connection_lost(const beast::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
           ec == asio::error::not_connected || ec == ssl::error::stream_truncated;
}

HttpReply failure(int code, std::string message) {
    HttpReply r;
    r.status = 0;
    r.error = code;
    r.error_message = std::move(message);
    return r;
}

Clock::time_point after(Clock::time_point from, int ms) {
    return ms > 0 ? from + std::chrono::milliseconds(ms) : Clock::time_point::max();
}

class HttpTransport final : public Transport {
public:
    HttpTransport(const std::string& url, const HttpOptions& options)
        : m_url(parse_url(url)), m_opt(options) {
        if (!m_opt.pinned_sha256.empty()) {
            if (!m_url.tls) {
                throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                                  "pinned_sha256 needs an https:// server address");
            }
            m_pin = normalize_pin(m_opt.pinned_sha256);
        }
        if (m_url.tls) {
            m_tls.emplace(ssl::context::tls_client);
            SSL_CTX_set_min_proto_version(m_tls->native_handle(), TLS1_2_VERSION);
            m_tls->set_verify_mode(ssl::verify_peer);
            beast::error_code ec;
            if (!m_opt.ca_file.empty()) {
                m_tls->load_verify_file(m_opt.ca_file, ec);
                if (ec) {
                    throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "cannot load the CA file " +
                                                                       m_opt.ca_file + ": " +
                                                                       ec.message());
                }
            } else {
                m_tls->set_default_verify_paths(ec);
                if (ec) {
                    throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                                      "cannot load the system's CA store: " + ec.message());
                }
            }
        }
    }

    ~HttpTransport() override { drop_connection(); }

    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        return request("POST", path, headers, body);
    }

    HttpReply request(const std::string& method, const std::string& path,
                      const std::map<std::string, std::string>& headers,
                      const std::string& body) override {
        const http::verb verb = http::string_to_verb(method);
        if (verb == http::verb::unknown) {
            return failure(OTSYNC_ERR_NETWORK, "unknown HTTP method '" + method + "'");
        }
        const std::lock_guard serial(m_post_mu);
        begin_post();
        struct End {
            HttpTransport& t;
            ~End() { t.end_post(); }
        } end{*this};

        const auto start = Clock::now();
        m_request_deadline = after(start, m_opt.request_timeout_ms);

        http::request<http::string_body> req{verb, m_url.prefix + path, 11};
        req.set(http::field::host, m_url.host_hdr);
        req.set(http::field::user_agent, "otsync-client-core/1");
        for (const auto& [k, v] : headers) {
            req.set(k, v);
        }
        req.body() = body;
        req.keep_alive(true);
        req.prepare_payload();

        std::uint64_t up = 0;
        std::uint64_t down = 0;
        for (int attempt = 0;; ++attempt) {
            if (m_cancelled) {
                drop_connection();
                return cancelled();
            }
            const auto tag = [&, attempt](HttpReply r) {
                r.resent = static_cast<unsigned>(attempt);
                r.wire_bytes_up = up;
                r.wire_bytes_down = down;
                return r;
            };
            if (connected() && !still_open()) {
                drop_connection(); // the server closed it while it was idle: a new one
            }
            const bool reused = connected();
            if (!reused) {
                if (auto failed = connect()) {
                    drop_connection();
                    return *failed;
                }
            }
            Exchange x = exchange(req);
            up += x.sent;
            down += x.received;
            if (x.reply.status != 0) {
                if (!x.keep_alive) {
                    drop_connection();
                }
                return tag(std::move(x.reply));
            }
            drop_connection();
            // Sent again only when none of it left: a request cut after its first bytes
            // may have reached the server, and the caller decides (and counts) a resend.
            if (reused && x.unsent && attempt == 0 && !m_cancelled) {
                continue; // the server had closed the kept connection: once on a new one
            }
            return tag(std::move(x.reply));
        }
    }

    void cancel() override {
        const std::lock_guard lock(m_state_mu);
        if (!m_in_flight) {
            return;
        }
        m_cancelled = true;
        asio::post(m_ioc, [this, number = m_post_number] {
            if (number == m_post_number) { // runs on the posting thread, inside its run loop
                abort_io();
            }
        });
    }

private:
    using SslStream = beast::ssl_stream<beast::tcp_stream>;

    struct Exchange {
        HttpReply reply;
        bool keep_alive = false;
        bool unsent = false;        // the connection was gone before any byte of the request left
        std::uint64_t sent = 0;     // bytes written
        std::uint64_t received = 0; // bytes read
    };

    /// How one asynchronous step ended.
    enum class Ended { done, timed_out, cancelled };

    void begin_post() {
        const std::lock_guard lock(m_state_mu);
        ++m_post_number;
        m_in_flight = true;
        m_cancelled = false;
    }
    void end_post() {
        const std::lock_guard lock(m_state_mu);
        m_in_flight = false;
        m_cancelled = false;
    }

    bool connected() const { return m_tcp || m_ssl; }

    /// Whether the kept connection can take a request: an idle HTTP/1.1 connection has
    /// nothing to read, so a pending end of stream, reset or byte means the server closed
    /// it (or is closing it). A peek that does not wait.
    bool still_open() {
        auto& socket = lowest().socket();
        beast::error_code ec;
        socket.non_blocking(true, ec);
        if (ec) {
            return false;
        }
        char byte = 0;
        socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
        beast::error_code restore;
        socket.non_blocking(false, restore);
        return ec == asio::error::would_block && !restore;
    }

    beast::tcp_stream& lowest() { return m_ssl ? beast::get_lowest_layer(*m_ssl) : *m_tcp; }

    /// Closes the socket and cancels the resolver: every pending operation completes soon
    /// with an error. Only on the posting thread (directly, or as a handler of m_ioc).
    void abort_io() {
        m_resolver.cancel();
        if (connected()) {
            beast::error_code ec;
            lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
            lowest().socket().close(ec);
        }
    }

    void drop_connection() {
        if (connected()) {
            beast::error_code ec;
            lowest().socket().close(ec);
        }
        m_ssl.reset();
        m_tcp.reset();
    }

    /// Runs m_ioc until `done` or `deadline`; at the deadline aborts the I/O and runs on
    /// until the aborted operation completed (its handler refers to the caller's locals).
    Ended run_until(const bool& done, Clock::time_point deadline) {
        bool timed_out = false;
        while (!done) {
            if (m_ioc.stopped()) {
                m_ioc.restart();
            }
            if (!timed_out) {
                if (m_ioc.run_one_until(deadline) == 0 && !done && Clock::now() >= deadline) {
                    timed_out = true;
                    abort_io();
                }
            } else if (m_ioc.run_one() == 0 && !done) {
                std::abort(); // unreachable: a pending operation is work of m_ioc
            }
        }
        if (m_cancelled) {
            return Ended::cancelled;
        }
        return timed_out ? Ended::timed_out : Ended::done;
    }

    std::string where() const { return m_url.host + ":" + m_url.port; }

    HttpReply cancelled() const {
        return failure(OTSYNC_ERR_CANCELLED, "the request to " + where() + " was cancelled");
    }

    /// The timeout that `deadline` stands for: its own, or the whole request's.
    HttpReply timed_out(bool own_deadline_first, const std::string& own) const {
        if (own_deadline_first) {
            return failure(OTSYNC_ERR_TIMEOUT, own);
        }
        return failure(OTSYNC_ERR_TIMEOUT, "the request to " + where() + " took longer than " +
                                               std::to_string(m_opt.request_timeout_ms) + " ms");
    }

    /// Resolves, connects and (https) handshakes; the failure, or nothing.
    std::optional<HttpReply> connect() {
        const auto own = after(Clock::now(), m_opt.connect_timeout_ms);
        const bool own_first = own <= m_request_deadline;
        const auto deadline = std::min(own, m_request_deadline);
        const auto on_timeout = [&] {
            return timed_out(own_first, "connecting to " + where() + " took longer than " +
                                            std::to_string(m_opt.connect_timeout_ms) + " ms");
        };

        // Each step runs until it ends, the deadline passes or cancel() stops it.
        bool done = false;
        const auto interrupted = [&]() -> std::optional<HttpReply> {
            switch (run_until(done, deadline)) {
            case Ended::cancelled:
                return cancelled();
            case Ended::timed_out:
                return on_timeout();
            case Ended::done:
                break;
            }
            return std::nullopt;
        };

        // Resolve.
        beast::error_code ec;
        tcp::resolver::results_type endpoints;
        m_resolver.async_resolve(m_url.host, m_url.port,
                                 [&](beast::error_code e, tcp::resolver::results_type r) {
                                     ec = e;
                                     endpoints = std::move(r);
                                     done = true;
                                 });
        if (auto stop = interrupted()) {
            return stop;
        }
        if (ec) {
            return failure(OTSYNC_ERR_NETWORK,
                           "cannot resolve " + m_url.host + ": " + ec.message());
        }

        // Connect.
        if (m_url.tls) {
            m_ssl = std::make_unique<SslStream>(m_ioc, *m_tls);
        } else {
            m_tcp = std::make_unique<beast::tcp_stream>(m_ioc);
        }
        done = false;
        lowest().async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
            ec = e;
            done = true;
        });
        if (auto stop = interrupted()) {
            return stop;
        }
        if (ec) {
            return failure(OTSYNC_ERR_NETWORK,
                           "cannot connect to " + where() + ": " + ec.message());
        }
        beast::error_code nodelay_ec;
        lowest().socket().set_option(tcp::no_delay(true), nodelay_ec);
        if (!m_url.tls) {
            return std::nullopt;
        }

        // TLS: SNI for a name, and OpenSSL checks the chain and the name (or address)
        // during the handshake.
        SSL* tls = m_ssl->native_handle();
        if (m_url.host_is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls), m_url.host.c_str());
        } else {
            // SSL_set_tlsext_host_name, without the macro's C cast.
            SSL_ctrl(tls, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(m_url.host.c_str()));
            SSL_set_hostflags(tls, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(tls, m_url.host.c_str());
        }
        done = false;
        m_ssl->async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
            ec = e;
            done = true;
        });
        if (auto stop = interrupted()) {
            return stop;
        }
        if (ec) {
            const long verify = SSL_get_verify_result(tls);
            if (verify != X509_V_OK) {
                return failure(OTSYNC_ERR_TLS, "the certificate of " + where() + " is refused: " +
                                                   X509_verify_cert_error_string(verify));
            }
            if (connection_lost(ec)) {
                return failure(OTSYNC_ERR_NETWORK, "the connection to " + where() +
                                                       " was closed during the TLS handshake");
            }
            return failure(OTSYNC_ERR_TLS,
                           "the TLS handshake with " + where() + " failed: " + ec.message());
        }
        if (!m_pin.empty()) {
            X509* cert = SSL_get1_peer_certificate(tls);
            if (!cert) {
                return failure(OTSYNC_ERR_TLS, where() + " sent no certificate");
            }
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned len = 0;
            const int ok = X509_digest(cert, EVP_sha256(), md, &len);
            X509_free(cert);
            if (ok != 1 || to_hex(md, len) != m_pin) {
                return failure(OTSYNC_ERR_TLS, "the certificate of " + where() +
                                                   " is not the pinned one (SHA-256 " +
                                                   (ok == 1 ? to_hex(md, len) : "?") + ")");
            }
        }
        return std::nullopt;
    }

    template <class F>
    void with_stream(F&& f) {
        if (m_ssl) {
            f(*m_ssl);
        } else {
            f(*m_tcp);
        }
    }

    /// One I/O step's deadline, and whether its own (io) deadline comes first.
    std::pair<Clock::time_point, bool> io_deadline() const {
        const auto own = after(Clock::now(), m_opt.io_timeout_ms);
        return {std::min(own, m_request_deadline), own <= m_request_deadline};
    }

    HttpReply io_timed_out(bool own_first) const {
        return timed_out(own_first, "no data moved to or from " + where() + " for " +
                                        std::to_string(m_opt.io_timeout_ms) + " ms");
    }

    Exchange exchange(http::request<http::string_body>& req) {
        Exchange x;
        const auto fail = [&](int code, const std::string& message) {
            x.reply = failure(code, message);
            return std::move(x);
        };
        const auto lost = [&](const beast::error_code& e, bool writing) {
            x.unsent = writing && x.sent == 0 && connection_lost(e);
            return fail(OTSYNC_ERR_NETWORK,
                        "the connection to " + where() + " was cut: " + e.message());
        };

        // Waits for the read or write just started; false when the exchange ended instead
        // (cancelled, or past its deadline), with x.reply saying so.
        const auto wait_io = [&](bool& done) {
            const auto [deadline, own_first] = io_deadline();
            switch (run_until(done, deadline)) {
            case Ended::cancelled:
                x.reply = cancelled();
                return false;
            case Ended::timed_out:
                x.reply = io_timed_out(own_first);
                return false;
            case Ended::done:
                break;
            }
            return true;
        };

        // Send.
        http::request_serializer<http::string_body> sr{req};
        while (!sr.is_done()) {
            bool done = false;
            beast::error_code ec;
            with_stream([&](auto& s) {
                http::async_write_some(s, sr, [&](beast::error_code e, std::size_t k) {
                    ec = e;
                    x.sent += k;
                    done = true;
                });
            });
            if (!wait_io(done)) {
                return x;
            }
            if (ec) {
                return lost(ec, true);
            }
        }

        // Receive: the stream's read_some, fed to the parser.
        http::response_parser<http::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(static_cast<std::uint64_t>(m_opt.max_response_bytes));
        beast::flat_buffer buffer;
        bool any_byte = false;
        for (;;) {
            if (buffer.size() > 0) {
                beast::error_code pec;
                const std::size_t used = parser.put(buffer.data(), pec);
                buffer.consume(used);
                if (pec == http::error::body_limit) {
                    return fail(OTSYNC_ERR_NETWORK,
                                "the answer of " + where() + " is larger than " +
                                    std::to_string(m_opt.max_response_bytes) + " bytes");
                }
                if (pec && pec != http::error::need_more) {
                    return fail(OTSYNC_ERR_NETWORK,
                                "the answer of " + where() + " is not HTTP: " + pec.message());
                }
                if (parser.is_done()) {
                    break;
                }
                if (!pec && used > 0) {
                    continue;
                }
            }
            bool done = false;
            beast::error_code ec;
            std::size_t n = 0;
            const auto space = buffer.prepare(16 * 1024);
            with_stream([&](auto& s) {
                s.async_read_some(space, [&](beast::error_code e, std::size_t k) {
                    ec = e;
                    n = k;
                    done = true;
                });
            });
            if (!wait_io(done)) {
                return x;
            }
            buffer.commit(n);
            x.received += n;
            any_byte = any_byte || n > 0;
            if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
                if (!any_byte) {
                    return lost(ec, false);
                }
                // The parser took every byte it could before this read (eof comes with
                // none): only an answer whose body ends with the connection is complete.
                beast::error_code pec;
                if (buffer.size() == 0) {
                    parser.put_eof(pec);
                    if (!pec && parser.is_done()) {
                        break;
                    }
                }
                return fail(OTSYNC_ERR_NETWORK, "the connection to " + where() +
                                                    " was cut in the middle of the answer");
            }
            if (ec) {
                return lost(ec, false);
            }
        }
        auto& res = parser.get();
        x.reply.status = res.result_int();
        x.reply.body = std::move(res.body());
        x.reply.content_type = std::string(res[http::field::content_type]);
        x.reply.content_encoding = std::string(res[http::field::content_encoding]);
        x.reply.error = 0;
        x.keep_alive = res.keep_alive() && !parser.need_eof();
        return x;
    }

    const Url m_url;
    const HttpOptions m_opt;
    std::string m_pin; // normalized, or ""

    // Declared before the sockets and the TLS context they use, so destroyed after them.
    asio::io_context m_ioc;
    std::optional<ssl::context> m_tls;
    tcp::resolver m_resolver{m_ioc};
    std::unique_ptr<beast::tcp_stream> m_tcp; // http://, when connected
    std::unique_ptr<SslStream> m_ssl;         // https://, when connected
    Clock::time_point m_request_deadline{};

    std::mutex m_post_mu; // one post at a time
    std::mutex m_state_mu;
    bool m_in_flight = false;        // guarded by m_state_mu
    std::uint64_t m_post_number = 0; // written under m_state_mu, on the posting thread
    std::atomic<bool> m_cancelled{false};
};

} // namespace

HttpReply Transport::request(const std::string& method, const std::string& path,
                             const std::map<std::string, std::string>& headers,
                             const std::string& body) {
    if (method == "POST") {
        return post(path, headers, body);
    }
    return failure(OTSYNC_ERR_NETWORK, "this transport sends POST only, not " + method);
}

std::unique_ptr<Transport> make_http_transport(const std::string& base_url,
                                               const HttpOptions& options) {
    return std::make_unique<HttpTransport>(base_url, options);
}

} // namespace otsync::client
