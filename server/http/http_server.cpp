// Beast listener and per-connection session behind HttpServer (http_server.hpp).
//
// Shape of Beast's advanced_server.cpp: a Listener accepts on its own strand and gives
// each socket a fresh strand; a Session reads a request, calls the handler, writes the
// response and loops (keep-alive, one request at a time, so at most one response is
// ever queued). What differs from the example are the Beast 1.81 traps (docs/architecture.md §9):
//
//  * The read buffer has a hard cap (limits.read_buffer_max): the parser does not count
//    chunk-extension bytes against any limit, so only the cap bounds such a flood; it
//    ends as http::error::buffer_overflow. The buffer is reserved up front because a
//    fresh flat_buffer makes Beast read 512 bytes at a time.
//  * The header is read alone (async_read_header) with a header limit, then the body
//    limit is chosen from method and path. Beast checks Content-Length against the body
//    limit only while it parses the header (finish_header), so the parser runs with no
//    body limit for the header and Content-Length is checked here; chunked bodies are
//    checked by the parser chunk by chunk against the limit set after the header.
//  * Beast accepts "Transfer-Encoding: gzip" (no chunked: the body is then empty and
//    the rest of the stream would be read as the next request): anything but exactly
//    "chunked" is refused with 400 and the connection closed.
//  * The parser asserts its preconditions, so it is fed only by Beast's read functions.
//  * The example stops accepting forever on the first accept error (EMFILE, ...);
//    here accepting goes on, after a pause when out of descriptors.
//  * Beast checks neither Host nor the form of the target: an HTTP/1.1 request without
//    Host, or any request with two, is refused with 400 (RFC 9112 §3.2), and an
//    absolute-form target ("http://host/path?q", §3.2.2) is routed by its path and query.
//
// Error bodies and access-log lines go through the one JSON string writer
// (otsync/json_string.hpp), so they are valid JSON whatever bytes the request held.
//
// Every completion handler runs on the session's strand and never lets an exception
// out (a throwing handler would escape io_context::run on the caller's thread).
#include "http/http_server.hpp"

#include "http/content_coding.hpp"
#include "http/reply.hpp"
#include "otsync/error.hpp"
#include "otsync/json_string.hpp"
#include "otsync/text.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace otsync::server {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = beast::error_code;
using Clock = std::chrono::steady_clock;

/// Body limit when the caller gives no BodyLimit.
constexpr std::size_t k_default_body_limit = 1024 * 1024;
/// Largest single read from the socket (Beast's own default for http::read).
constexpr std::size_t k_read_chunk = 64 * 1024;
/// After an answer that closes the connection, what the client still sends is read
/// and dropped for a while before closing, so that closing with unread bytes does not
/// reset the connection before the client has read the answer (a "lingering close",
/// as nginx does). Bounded in time and bytes.
constexpr std::chrono::milliseconds k_linger_time{2'000};
constexpr std::size_t k_linger_bytes = 1024 * 1024;
/// Connections above max_connections that are being answered 503 at the same time;
/// beyond this they are closed without an answer.
constexpr std::size_t k_max_refusing = 64;
/// Pause before accepting again when the process is out of descriptors.
constexpr std::chrono::milliseconds k_accept_retry{50};

class Session;

/// What the server, its listener and every session share. Sessions hold it by
/// shared_ptr, so it outlives the HttpServer while connections remain.
struct Shared {
    HttpLimits limits;
    BodyLimit body_limit;
    BeforeBody before_body;
    Handler handler;
    AsyncHandler async_handler;
    std::function<void(const AccessLogLine&)> access_log;

    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> inflight_body{0}; // bytes reserved by requests' bodies
    std::atomic<std::size_t> refusing{0};
    std::atomic<bool> stopping{false};

    // Live sessions, so that stop_accepting can close the idle ones.
    std::mutex mutex;
    std::uint64_t next_id = 0;
    std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions;
};

/// Increments a counter for as long as it lives.
class Counted {
public:
    explicit Counted(std::atomic<std::size_t>& counter) : m_counter(counter) { ++m_counter; }
    ~Counted() { --m_counter; }
    Counted(const Counted&) = delete;
    Counted& operator=(const Counted&) = delete;

private:
    std::atomic<std::size_t>& m_counter;
};

/// Body bytes a request holds from the global budget (limits.max_inflight_body_bytes),
/// given back when it ends.
class BodyReservation {
public:
    BodyReservation() = default;
    BodyReservation(const BodyReservation&) = delete;
    BodyReservation& operator=(const BodyReservation&) = delete;
    ~BodyReservation() { release(); }

    /// Takes `bytes` if they fit under `budget` with what is reserved already.
    bool take(std::atomic<std::size_t>& pool, std::size_t bytes, std::size_t budget) {
        release();
        m_pool = &pool;
        return grow(bytes, budget);
    }
    /// Takes `bytes` more, beside what this reservation holds already.
    bool grow(std::size_t bytes, std::size_t budget) {
        if (!m_pool) {
            return false;
        }
        std::size_t now = m_pool->load();
        do {
            if (bytes > budget || now > budget - bytes) {
                return false;
            }
        } while (!m_pool->compare_exchange_weak(now, now + bytes));
        m_bytes += bytes;
        return true;
    }
    void release() noexcept {
        if (m_pool) {
            m_pool->fetch_sub(m_bytes);
            m_pool = nullptr;
            m_bytes = 0;
        }
    }

private:
    std::atomic<std::size_t>* m_pool = nullptr;
    std::size_t m_bytes = 0;
};

// ---- JSON error bodies ------------------------------------------------------------

/// The error body of http/reply.hpp with `status`: the code's own (http_status) unless
/// the HTTP layer has one of its own for the case (431, 503; 400 for a handler's Error).
HttpResponse error_response(ErrorCode code, std::string_view message, unsigned status = 0) {
    HttpResponse r;
    r.status = status != 0 ? status : http_status(code);
    r.content_type = "application/json";
    r.body = error_body(code, message);
    return r;
}

/// A route's Reply as the HTTP layer sends it.
HttpResponse response_of(Reply reply) {
    HttpResponse resp;
    resp.status = reply.status;
    resp.content_type = std::move(reply.content_type);
    resp.body = std::move(reply.body);
    resp.headers = std::move(reply.headers);
    resp.may_compress = reply.may_compress;
    return resp;
}

// ---- small helpers -----------------------------------------------------------------

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_token_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
        return false;
    }
    return std::string_view("\"(),/:;<=>?@[\\]{}").find(c) == std::string_view::npos;
}

/// A response field a handler may set: a token name, a value without CR, LF or NUL.
bool valid_field(std::string_view name, std::string_view value) {
    return !name.empty() && std::all_of(name.begin(), name.end(), is_token_char) &&
           value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

/// Fields the server sets itself (framing, and Content-Type from HttpResponse).
bool managed_field(std::string_view name) {
    return beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
           beast::iequals(name, "connection") || beast::iequals(name, "content-type");
}

bool valid_response(const HttpResponse& r) {
    if (r.status < 200 || r.status > 599 || !valid_field("content-type", r.content_type)) {
        return false;
    }
    return std::all_of(r.headers.begin(), r.headers.end(),
                       [](const auto& h) { return valid_field(h.first, h.second); });
}

std::string format_endpoint(const tcp::endpoint& ep) {
    const auto address = ep.address();
    std::string host = address.to_string();
    if (address.is_v6()) {
        host = "[" + host + "]";
    }
    return host + ":" + std::to_string(ep.port());
}

bool is_http_error(const error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_method).category();
}

/// A request target split as the handler sees it (RFC 9112 §3.2): `origin` is the
/// origin-form, path and query; an absolute-form target ("http://host:port/p?q", the
/// scheme in any case) also gives its `authority`, and an empty path becomes "/".
struct Target {
    std::string origin;
    std::string authority; // absolute-form only
    bool absolute = false;
};

Target split_target(std::string_view target) {
    for (const std::string_view scheme :
         {std::string_view("http://"), std::string_view("https://")}) {
        if (target.size() >= scheme.size() &&
            beast::iequals(target.substr(0, scheme.size()), scheme)) {
            const std::string_view rest = target.substr(scheme.size());
            const std::size_t end = std::min(rest.find_first_of("/?"), rest.size());
            Target t;
            t.absolute = true;
            t.authority = std::string(rest.substr(0, end));
            t.origin = rest.substr(end);
            if (t.origin.empty() || t.origin.front() == '?') {
                t.origin.insert(0, "/");
            }
            return t;
        }
    }
    return Target{std::string(target), {}, false};
}

// ---- Session -----------------------------------------------------------------------

/// One connection: reads requests one after the other and answers each. Every member
/// function runs on the connection's strand (the stream's executor).
class Session : public std::enable_shared_from_this<Session> {
    /// A completion handler that calls `fn` on this session and closes the connection
    /// if it throws (allocation failure, a bug): nothing escapes into io_context::run.
    /// (Defined before its uses: its return type is deduced.)
    template <class... Args>
    auto guard(void (Session::*fn)(Args...)) {
        return [self = shared_from_this(), fn](Args... args) {
            try {
                ((*self).*fn)(args...);
            } catch (...) {
                self->close_now();
            }
        };
    }

public:
    enum class Kind { serving, refusing };

    Session(tcp::socket&& socket, std::shared_ptr<Shared> shared, Kind kind)
        : m_shared(std::move(shared)),
          m_count(kind == Kind::serving ? m_shared->connections : m_shared->refusing),
          m_stream(std::move(socket)), m_buffer(m_shared->limits.read_buffer_max) {
        error_code ec;
        const auto ep = m_stream.socket().remote_endpoint(ec);
        m_remote = ec ? std::string("?") : format_endpoint(ep);
        if (kind == Kind::serving) {
            m_buffer.reserve(m_shared->limits.read_buffer_reserve);
        }
    }

    ~Session() {
        if (m_id) {
            const std::lock_guard lock(m_shared->mutex);
            m_shared->sessions.erase(*m_id);
        }
    }

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    /// Starts serving requests.
    void run() {
        {
            const std::lock_guard lock(m_shared->mutex);
            m_id = m_shared->next_id++;
            m_shared->sessions.emplace(*m_id, weak_from_this());
        }
        net::dispatch(m_stream.get_executor(), guard(&Session::start_request));
    }

    /// Answers 503 without reading a request, then closes.
    void refuse() { net::dispatch(m_stream.get_executor(), guard(&Session::send_refusal)); }

    /// Shutdown: closes the connection if it is waiting for a next request.
    void close_if_idle() { net::post(m_stream.get_executor(), guard(&Session::on_close_if_idle)); }

private:
    const HttpLimits& limits() const { return m_shared->limits; }

    // -- reading ---------------------------------------------------------------------

    void start_request() {
        m_parser.emplace();
        m_parser->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
            limits().header_bytes, std::numeric_limits<std::uint32_t>::max())));
        // No body limit while the header is parsed: Beast would compare Content-Length
        // with its 1 MiB default there; the real limit is applied in on_header.
        m_parser->body_limit(boost::none);
        m_method.clear();
        m_path.clear();
        m_target.clear();
        m_authority.clear();
        m_bytes_in = 0;
        m_version = 11;

        if (m_buffer.size() != 0) { // pipelined: the next request is already here
            read_header();
            return;
        }
        if (m_shared->stopping) {
            close_now();
            return;
        }
        // Wait for the first byte: idle_timeout between requests, header_timeout for
        // the first request of a connection (a connection that says nothing is cut early).
        m_idle = true;
        m_stream.expires_after(m_first ? limits().header_timeout : limits().idle_timeout);
        m_stream.async_read_some(m_buffer.prepare(beast::read_size(m_buffer, k_read_chunk)),
                                 guard(&Session::on_first_bytes));
    }

    void on_first_bytes(error_code ec, std::size_t n) {
        m_idle = false;
        if (ec) { // closed by the client, timed out, or cancelled by stop_accepting
            close_now();
            return;
        }
        m_buffer.commit(n);
        read_header();
    }

    void on_close_if_idle() {
        if (m_idle) {
            m_stream.cancel();
        }
    }

    void read_header() {
        m_started = Clock::now();
        // One deadline for the whole header, however it trickles in.
        m_stream.expires_after(limits().header_timeout);
        http::async_read_header(m_stream, m_buffer, *m_parser, guard(&Session::on_header));
    }

    void on_header(error_code ec, std::size_t n) {
        m_bytes_in += n;
        if (ec) {
            on_read_error(ec);
            return;
        }
        const auto& msg = m_parser->get();
        m_version = msg.version();
        m_method = std::string(msg.method_string());
        Target target = split_target(msg.target());
        m_target = std::move(target.origin);
        m_authority = std::move(target.authority);
        m_path = m_target.substr(0, m_target.find('?'));

        // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host and for any request
        // with more than one (HTTP/1.0 had no Host). An absolute-form target needs one
        // too, though its own authority is the one that counts (§3.2.2).
        const std::size_t hosts = msg.count(http::field::host);
        if (hosts > 1 || (hosts == 0 && m_version >= 11)) {
            answer_error(ErrorCode::malformed, hosts == 0
                                                   ? "an HTTP/1.1 request needs a Host header"
                                                   : "a request may have one Host header only");
            return;
        }
        // An http(s) URI names a host and never carries user information (RFC 9110 §4.2).
        if (target.absolute &&
            (m_authority.empty() || m_authority.find('@') != std::string::npos)) {
            answer_error(ErrorCode::malformed,
                         "the request target has no host, or user information");
            return;
        }

        // Only "chunked" may be a transfer coding of a request we read (RFC 9112 §6.1:
        // a request whose final coding is not chunked cannot be framed; we support no
        // other coding anyway).
        const auto te = msg.equal_range(http::field::transfer_encoding);
        if (te.first != te.second) {
            const bool only_chunked = std::next(te.first) == te.second &&
                                      beast::iequals(trim_ows(te.first->value()), "chunked");
            if (!only_chunked) {
                answer_error(ErrorCode::malformed,
                             "unsupported Transfer-Encoding (only \"chunked\" is accepted)");
                return;
            }
        }

        std::size_t limit = k_default_body_limit;
        if (m_shared->body_limit) {
            try {
                limit = m_shared->body_limit(m_method, m_path);
            } catch (...) {
                answer_error(ErrorCode::internal, "internal error");
                return;
            }
        }
        const auto length = m_parser->content_length();
        if (length && *length > limit) {
            answer_error(ErrorCode::too_large,
                         "request body is larger than " + std::to_string(limit) + " bytes");
            return;
        }
        m_body_limit = limit;
        m_parser->body_limit(static_cast<std::uint64_t>(limit));

        if (m_parser->is_done()) { // no body
            dispatch_request();
            return;
        }
        // A body is coming: its bytes are reserved from the budget first (a chunked body
        // may reach its limit), and a large one is asked about before any of it is read.
        const std::size_t expected = length ? static_cast<std::size_t>(*length) : limit;
        if (!m_reservation.take(m_shared->inflight_body, expected,
                                limits().max_inflight_body_bytes)) {
            m_parser.reset();
            auto r = busy();
            r.close = true; // the body stays unread
            send(std::move(r), false, false);
            return;
        }
        if (m_shared->before_body && expected > limits().check_before_body_bytes) {
            std::optional<HttpResponse> refused;
            try {
                HttpRequest head = request_line();
                head.headers = header_map(msg);
                refused = m_shared->before_body(head);
            } catch (...) {
                refused = error_response(ErrorCode::internal, "internal error");
            }
            if (refused) {
                m_parser.reset();
                m_reservation.release();
                refused->close = true; // the body stays unread: the connection cannot go on
                send(std::move(*refused), false, false);
                return;
            }
        }
        const auto expect = msg[http::field::expect];
        if (m_version >= 11 && beast::iequals(trim_ows(expect), "100-continue")) {
            m_continue.emplace(http::status::continue_, m_version);
            m_stream.expires_after(limits().write_timeout);
            http::async_write(m_stream, *m_continue, guard(&Session::on_continue_sent));
            return;
        }
        read_body();
    }

    void on_continue_sent(error_code ec, std::size_t) {
        m_continue.reset();
        if (ec) {
            close_now();
            return;
        }
        read_body();
    }

    void read_body() {
        m_stream.expires_after(limits().body_timeout);
        http::async_read(m_stream, m_buffer, *m_parser, guard(&Session::on_body));
    }

    void on_body(error_code ec, std::size_t n) {
        m_bytes_in += n;
        if (ec) {
            on_read_error(ec);
            return;
        }
        dispatch_request();
    }

    /// Header or body read failed: answer when the client can still be told something.
    void on_read_error(const error_code& ec) {
        if (ec == http::error::header_limit) {
            answer_error(ErrorCode::too_large,
                         "request header is larger than " + std::to_string(limits().header_bytes) +
                             " bytes",
                         431);
        } else if (ec == http::error::body_limit) {
            answer_error(ErrorCode::too_large,
                         "request body is larger than " + std::to_string(m_body_limit) + " bytes");
        } else if (ec == http::error::buffer_overflow) {
            // Only reachable with bytes no parser limit counts (chunk extensions).
            answer_error(ErrorCode::malformed, "request framing exceeds the read buffer");
        } else if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
            close_now(); // the client went away
        } else if (is_http_error(ec)) {
            answer_error(ErrorCode::malformed, "bad request: " + ec.message());
        } else {
            close_now(); // timeout (the stream is already closed), reset, cancelled
        }
    }

    // -- handling --------------------------------------------------------------------

    /// The request as the handler sees it, without headers and body.
    HttpRequest request_line() const {
        HttpRequest req;
        req.method = m_method;
        req.target = m_target;
        req.path = m_path;
        if (const auto q = req.target.find('?'); q != std::string::npos) {
            req.query = req.target.substr(q + 1);
        }
        req.remote = m_remote;
        return req;
    }

    /// Header fields by lower-cased name, repeated ones joined by ", ".
    template <class Fields>
    std::map<std::string, std::string> header_map(const Fields& fields) const {
        std::map<std::string, std::string> out;
        for (const auto& field : fields) {
            std::string name(field.name_string());
            std::transform(name.begin(), name.end(), name.begin(), lower);
            auto [it, inserted] = out.try_emplace(std::move(name), field.value());
            if (!inserted) {
                it->second += ", ";
                it->second += field.value();
            }
        }
        if (!m_authority.empty()) {
            out["host"] = m_authority; // RFC 9112 §3.2.2: the target's authority wins
        }
        return out;
    }

    void dispatch_request() {
        auto msg = m_parser->release();
        m_parser.reset();
        const bool keep_alive = msg.keep_alive();
        const bool head = msg.method() == http::verb::head;

        HttpRequest req = request_line();
        req.headers = header_map(msg);
        req.body = std::move(msg.body());
        req.remote = m_remote;

        // A coded body reaches the handler decoded, within the same body limit; what it
        // decodes to is held from the budget too.
        std::optional<HttpResponse> refused;
        const std::size_t wire_bytes = req.body.size();
        if (auto refusal = decode_request(req.headers, req.body, m_body_limit)) {
            refused = response_of(std::move(*refusal));
        } else if (req.body.size() > wire_bytes &&
                   !m_reservation.grow(req.body.size(), limits().max_inflight_body_bytes)) {
            refused = busy();
        }
        const auto accept = req.headers.find("accept-encoding");
        const Coding answer_coding =
            accept == req.headers.end() ? Coding::identity : response_coding(accept->second);

        if (!refused && m_shared->async_handler) {
            // The answer may come later, from any thread: it is sent on this strand. One
            // given before the handler returns, on this thread (most of them), is sent
            // from here, without a trip through the queue.
            auto self = shared_from_this();
            struct Answered {
                std::atomic<bool> once{false};
                std::thread::id caller = std::this_thread::get_id();
                bool in_call = true; // read and written on `caller` only
                std::optional<HttpResponse> early;
            };
            auto state = std::make_shared<Answered>();
            Completion done = [self, state, keep_alive, head, answer_coding](HttpResponse r) {
                if (state->once.exchange(true)) {
                    return; // a second answer is a handler bug: the first one counts
                }
                if (std::this_thread::get_id() == state->caller && state->in_call) {
                    state->early = std::move(r);
                    return;
                }
                net::post(self->m_stream.get_executor(),
                          [self, r = std::move(r), keep_alive, head, answer_coding]() mutable {
                              try {
                                  self->answer(std::move(r), keep_alive, head, answer_coding);
                              } catch (...) {
                                  self->close_now();
                              }
                          });
            };
            try {
                m_shared->async_handler(req, done);
            } catch (const Error& e) {
                done(error_response(e.code(), error_message(e), 400));
            } catch (...) {
                done(error_response(ErrorCode::internal, "internal error"));
            }
            state->in_call = false;
            if (state->early) {
                req.body = std::string(); // as below: the body's bytes go back to the budget
                answer(std::move(*state->early), keep_alive, head, answer_coding);
            }
            return;
        }
        HttpResponse resp;
        if (refused) {
            resp = std::move(*refused);
        } else {
            try {
                resp = m_shared->handler(req);
            } catch (const Error& e) {
                // The HTTP layer's contract (http_server.hpp): 400 with the error's code.
                resp = error_response(e.code(), error_message(e), 400);
            } catch (...) {
                resp = error_response(ErrorCode::internal, "internal error");
            }
        }
        req.body = std::string(); // the body's bytes go back to the budget with their memory
        answer(std::move(resp), keep_alive, head, answer_coding);
    }

    /// The handler's answer: the body's budget back, encoded as offered, sent.
    void answer(HttpResponse resp, bool keep_alive, bool head, Coding coding) {
        m_reservation.release();
        encode_response(resp, coding);
        send(std::move(resp), keep_alive, head);
    }

    // -- writing ---------------------------------------------------------------------

    HttpResponse busy() const {
        const auto seconds = std::to_string(limits().busy_retry_after.count());
        HttpResponse r = error_response(
            ErrorCode::too_large,
            "the server is reading too many request bodies at once; retry in " + seconds + " s",
            503);
        r.headers.emplace_back("Retry-After", seconds);
        return r;
    }

    /// Encodes the body in `coding` when it is large enough and of a kind that compresses
    /// (not an image, a PDF or an archive), unless the handler coded it itself.
    void encode_response(HttpResponse& r, Coding coding) const {
        const std::size_t min = limits().compress_min_bytes;
        if (!r.may_compress || min == 0 || r.body.size() < min || !compressible(r.content_type)) {
            return;
        }
        for (const auto& [name, value] : r.headers) {
            if (beast::iequals(name, "content-encoding")) {
                return;
            }
        }
        r.headers.emplace_back("Vary", "Accept-Encoding");
        if (coding == Coding::identity) {
            return;
        }
        std::string coded;
        try {
            coded = encode_body(coding, r.body);
        } catch (...) {
            return; // identity then: the answer still goes out
        }
        if (coded.size() < r.body.size()) {
            r.body = std::move(coded);
            r.headers.emplace_back("Content-Encoding", std::string(coding_name(coding)));
        }
    }

    static bool compressible(std::string_view content_type) {
        const std::string_view t = content_type.substr(0, content_type.find(';'));
        if (t.rfind("text/", 0) == 0 || t == "image/svg+xml") {
            return true;
        }
        return t == "application/json" || t == "application/javascript" ||
               t == "application/x-otsync" || t == "application/xml";
    }

    /// Answers before the handler ran and closes: the code's status unless `status` says.
    void answer_error(ErrorCode code, const std::string& message, unsigned status = 0) {
        m_parser.reset();
        m_reservation.release();
        auto r = error_response(code, message, status);
        r.close = true;
        send(std::move(r), false, false);
    }

    void send_refusal() {
        m_started = Clock::now();
        auto r = error_response(ErrorCode::too_large, "too many connections", 503);
        r.close = true;
        send(std::move(r), false, false);
    }

    void send(HttpResponse r, bool keep_alive, bool head) {
        if (!valid_response(r)) {
            r = error_response(ErrorCode::internal, "internal error: invalid response");
        }
        m_close = r.close || !keep_alive || m_shared->stopping;
        m_status = r.status;

        auto& res = m_response.emplace();
        res.version(m_version);
        res.result(r.status);
        if (!r.content_type.empty()) {
            res.set(http::field::content_type, r.content_type);
        }
        for (const auto& [name, value] : r.headers) {
            if (!managed_field(name)) {
                res.insert(name, value);
            }
        }
        res.keep_alive(!m_close);
        if (head) { // the length of the body a GET would get, and no body
            res.content_length(r.body.size());
        } else {
            res.body() = std::move(r.body);
            res.prepare_payload();
        }
        m_stream.expires_after(limits().write_timeout);
        http::async_write(m_stream, res, guard(&Session::on_write));
    }

    void on_write(error_code ec, std::size_t n) {
        m_response.reset();
        log(n);
        if (ec) {
            close_now();
            return;
        }
        if (m_close) {
            linger();
            return;
        }
        m_first = false;
        start_request();
    }

    void log(std::size_t bytes_out) {
        if (!m_shared->access_log) {
            return;
        }
        const std::chrono::duration<double, std::milli> ms = Clock::now() - m_started;
        try {
            m_shared->access_log(AccessLogLine{m_remote, m_method, m_path, m_status, m_bytes_in,
                                               bytes_out, ms.count()});
        } catch (...) {
            // A failing log line must not take the connection down.
        }
    }

    // -- closing ---------------------------------------------------------------------

    /// Lingering close: stop sending, then read and drop what the client still sends
    /// (bounded), so the answer is not lost to a reset.
    void linger() {
        error_code ec;
        m_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) {
            close_now();
            return;
        }
        m_buffer.consume(m_buffer.size());
        m_buffer.shrink_to_fit(); // give back what a flood made it grow to
        m_buffer.reserve(std::min(k_read_chunk, m_buffer.max_size()));
        m_lingered = 0;
        m_stream.expires_after(std::min(limits().write_timeout, k_linger_time));
        read_linger();
    }

    void read_linger() {
        m_stream.async_read_some(m_buffer.prepare(beast::read_size(m_buffer, k_read_chunk)),
                                 guard(&Session::on_linger));
    }

    void on_linger(error_code ec, std::size_t n) {
        m_lingered += n; // never committed: the bytes are dropped
        if (ec || m_lingered >= k_linger_bytes) {
            close_now();
            return;
        }
        read_linger();
    }

    void close_now() noexcept {
        m_reservation.release();
        error_code ec;
        m_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
        m_stream.close(); // closes the socket and cancels the timer; never throws
    }

    std::shared_ptr<Shared> m_shared;
    Counted m_count;
    beast::tcp_stream m_stream;
    beast::flat_buffer m_buffer;
    std::optional<http::request_parser<http::string_body>> m_parser;
    BodyReservation m_reservation; // the body's bytes, from its header to its answer
    std::optional<http::response<http::string_body>> m_response;
    std::optional<http::response<http::empty_body>> m_continue;
    std::optional<std::uint64_t> m_id;
    std::string m_remote;

    bool m_first = true;  // no request answered yet on this connection
    bool m_idle = false;  // waiting for the first byte of a request
    bool m_close = false; // close after the response being written
    unsigned m_version = 11;
    std::size_t m_body_limit = 0;
    std::size_t m_lingered = 0;

    // For the access log of the request in progress.
    std::string m_method, m_path;
    std::string m_target;    // origin-form: path and query
    std::string m_authority; // of an absolute-form target
    unsigned m_status = 0;
    std::size_t m_bytes_in = 0;
    Clock::time_point m_started = Clock::now();
};

// ---- Listener ----------------------------------------------------------------------

/// Accepts connections on its own strand and starts a Session on a fresh strand for each.
class Listener : public std::enable_shared_from_this<Listener> {
public:
    Listener(net::io_context& ioc, std::shared_ptr<Shared> shared)
        : m_ioc(ioc), m_shared(std::move(shared)), m_acceptor(net::make_strand(ioc)),
          m_retry(m_acceptor.get_executor()) {}

    /// Binds and listens; throws otsync::Error with a message naming the address.
    unsigned short open(const tcp::endpoint& endpoint, const std::string& display) {
        error_code ec;
        const auto fail = [&](const char* what) {
            throw Error(ErrorCode::invalid_argument,
                        "cannot listen on " + display + ": " + what + ": " + ec.message());
        };
        m_acceptor.open(endpoint.protocol(), ec);
        if (ec) {
            fail("open");
        }
        m_acceptor.set_option(net::socket_base::reuse_address(true), ec);
        if (ec) {
            fail("set_option");
        }
        m_acceptor.bind(endpoint, ec);
        if (ec) {
            fail("bind");
        }
        m_acceptor.listen(net::socket_base::max_listen_connections, ec);
        if (ec) {
            fail("listen");
        }
        const auto local = m_acceptor.local_endpoint(ec);
        if (ec) {
            fail("local_endpoint");
        }
        return local.port();
    }

    void run() {
        net::dispatch(m_acceptor.get_executor(),
                      beast::bind_front_handler(&Listener::do_accept, shared_from_this()));
    }

    void stop() {
        net::post(m_acceptor.get_executor(), [self = shared_from_this()] {
            self->m_stopped = true;
            error_code ec;
            self->m_acceptor.close(ec);
            self->m_retry.cancel();
        });
    }

private:
    void do_accept() {
        if (m_stopped) {
            return;
        }
        // The new connection gets its own strand.
        m_acceptor.async_accept(
            net::make_strand(m_ioc),
            beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
    }

    void on_accept(error_code ec, tcp::socket socket) {
        if (m_stopped || ec == net::error::operation_aborted) {
            return;
        }
        if (ec) {
            // Out of descriptors or memory: the connection waits in the backlog; try
            // again shortly rather than spin. Any other error: keep accepting.
            if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
                ec == net::error::no_memory || ec.value() == ENFILE) {
                m_retry.expires_after(k_accept_retry);
                m_retry.async_wait([self = shared_from_this()](error_code wait_ec) {
                    if (!wait_ec) {
                        self->do_accept();
                    }
                });
                return;
            }
            do_accept();
            return;
        }
        try {
            if (m_shared->connections.load() < m_shared->limits.max_connections) {
                std::make_shared<Session>(std::move(socket), m_shared, Session::Kind::serving)
                    ->run();
            } else if (m_shared->refusing.load() < k_max_refusing) {
                std::make_shared<Session>(std::move(socket), m_shared, Session::Kind::refusing)
                    ->refuse();
            } // else: the socket closes here, unanswered
        } catch (...) {
            // Could not set the connection up (memory): it is dropped, accepting goes on.
        }
        do_accept();
    }

    net::io_context& m_ioc;
    std::shared_ptr<Shared> m_shared;
    tcp::acceptor m_acceptor;
    net::steady_timer m_retry;
    bool m_stopped = false; // on the acceptor's strand only
};

} // namespace

// ---- access log ------------------------------------------------------------------

std::string access_log_json(const AccessLogLine& l) {
    std::string out = "{\"remote\":";
    append_json_string(out, l.remote);
    out += ",\"method\":";
    append_json_string(out, l.method);
    out += ",\"path\":";
    append_json_string(out, l.path);
    char tail[128];
    std::snprintf(tail, sizeof tail, ",\"status\":%u,\"in\":%zu,\"out\":%zu,\"ms\":%.3f}", l.status,
                  l.bytes_in, l.bytes_out, l.ms);
    out += tail;
    return out;
}

// ---- HttpServer --------------------------------------------------------------------

struct HttpServer::Impl {
    Impl(net::io_context& io, std::string h, unsigned short p)
        : ioc(io), host(std::move(h)), requested_port(p), shared(std::make_shared<Shared>()) {}

    net::io_context& ioc;
    std::string host;
    unsigned short requested_port;
    std::shared_ptr<Shared> shared;
    std::shared_ptr<Listener> listener;
    std::atomic<unsigned short> port{0};
    std::once_flag stop_once;
};

HttpServer::HttpServer(net::io_context& ioc, const std::string& host, unsigned short port,
                       HttpLimits limits, BodyLimit body_limit, Handler handler,
                       std::function<void(const AccessLogLine&)> access_log)
    : m_impl(std::make_unique<Impl>(ioc, host, port)) {
    if (!handler) {
        throw Error(ErrorCode::invalid_argument, "HttpServer: no handler");
    }
    if (limits.header_bytes == 0 || limits.max_connections == 0) {
        throw Error(ErrorCode::invalid_argument,
                    "HttpServer: header_bytes and max_connections must be positive");
    }
    if (limits.read_buffer_max < limits.header_bytes ||
        limits.read_buffer_max < limits.read_buffer_reserve) {
        throw Error(ErrorCode::invalid_argument,
                    "HttpServer: read_buffer_max must be at least header_bytes and "
                    "read_buffer_reserve");
    }
    auto& shared = *m_impl->shared;
    shared.limits = limits;
    shared.body_limit = std::move(body_limit);
    shared.handler = std::move(handler);
    shared.access_log = std::move(access_log);
}

HttpServer::~HttpServer() {
    try {
        stop_accepting();
    } catch (...) {
        // Out of memory while stopping: the connections still end at their timeouts.
    }
}

void HttpServer::start() {
    if (m_impl->listener) {
        throw Error(ErrorCode::invalid_argument, "HttpServer: already started");
    }
    const std::string display = m_impl->host + ":" + std::to_string(m_impl->requested_port);
    error_code ec;
    tcp::endpoint endpoint;
    const auto address = net::ip::make_address(m_impl->host, ec);
    if (!ec) {
        endpoint = tcp::endpoint(address, m_impl->requested_port);
    } else {
        tcp::resolver resolver(m_impl->ioc);
        const auto results = resolver.resolve(m_impl->host, std::to_string(m_impl->requested_port),
                                              tcp::resolver::passive, ec);
        if (ec || results.empty()) {
            throw Error(ErrorCode::invalid_argument,
                        "cannot listen on " + display + ": cannot resolve host '" + m_impl->host +
                            "'" + (ec ? ": " + ec.message() : std::string()));
        }
        endpoint = results.begin()->endpoint();
    }
    auto listener = std::make_shared<Listener>(m_impl->ioc, m_impl->shared);
    m_impl->port = listener->open(endpoint, display);
    m_impl->listener = listener;
    listener->run();
}

unsigned short HttpServer::port() const {
    return m_impl->port;
}

void HttpServer::stop_accepting() {
    if (!m_impl->listener) {
        return;
    }
    std::call_once(m_impl->stop_once, [this] {
        auto& shared = *m_impl->shared;
        shared.stopping = true; // read by sessions before they wait for a next request
        m_impl->listener->stop();
        std::vector<std::shared_ptr<Session>> live;
        {
            const std::lock_guard lock(shared.mutex);
            // Reserved first: no Session may die (and lock the mutex) in this block.
            live.reserve(shared.sessions.size());
            for (const auto& [id, weak] : shared.sessions) {
                if (auto s = weak.lock()) {
                    live.push_back(std::move(s));
                }
            }
        }
        for (const auto& s : live) {
            s->close_if_idle();
        }
    });
}

std::size_t HttpServer::connections() const {
    return m_impl->shared->connections;
}

void HttpServer::set_async_handler(AsyncHandler handler) {
    if (m_impl->listener) {
        throw Error(ErrorCode::invalid_argument, "HttpServer: set_async_handler after start");
    }
    m_impl->shared->async_handler = std::move(handler);
}

void HttpServer::set_before_body(BeforeBody check) {
    if (m_impl->listener) {
        throw Error(ErrorCode::invalid_argument, "HttpServer: set_before_body after start");
    }
    m_impl->shared->before_body = std::move(check);
}

std::size_t HttpServer::inflight_body_bytes() const {
    return m_impl->shared->inflight_body;
}

Handler route_handler(std::function<Reply(const RouteRequest&)> route) {
    return [route = std::move(route)](const HttpRequest& req) {
        const RouteRequest r{req.method, req.path, req.headers, req.body, req.query, req.remote};
        return response_of(route(r));
    };
}

AsyncHandler
route_async_handler(std::function<void(const RouteRequest&, std::function<void(Reply)>)> route) {
    return [route = std::move(route)](const HttpRequest& req, Completion done) {
        const RouteRequest r{req.method, req.path, req.headers, req.body, req.query, req.remote};
        route(r, [done = std::move(done)](Reply reply) { done(response_of(std::move(reply))); });
    };
}

BeforeBody route_before_body(std::function<std::optional<Reply>(const RouteRequest&)> check) {
    return [check = std::move(check)](const HttpRequest& head) -> std::optional<HttpResponse> {
        const RouteRequest r{head.method, head.path,  head.headers,
                             head.body,   head.query, head.remote};
        auto reply = check(r);
        if (!reply) {
            return std::nullopt;
        }
        return response_of(std::move(*reply));
    };
}

} // namespace otsync::server
