// The HTTP/1.1 layer of otsync-server: a Boost.Beast listener and one session per
// connection, shaped like Beast's advanced_server example (async, one strand per
// connection, timeouts on every read and write, bounded read buffer, keep-alive).
// It knows nothing of sync, stores or routes: every complete request is handed to
// one plain Handler, which returns the response.
//
// Beast stays in http_server.cpp; this header only needs <boost/asio/io_context.hpp>.
#pragma once

#include "http/reply.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace otsync::server {

/// One complete request, as the handler sees it.
struct HttpRequest {
    std::string method; // "GET", "POST", ...
    std::string target; // path + query: the origin-form (an absolute-form target, RFC 9112
                        // §3.2.2, without its scheme and authority, which become "host")
    std::string path;   // target without the query
    std::string query;  // after '?', may be empty
    std::map<std::string, std::string> headers; // names lower-cased; repeated fields joined by ", "
    std::string body;
    std::string remote; // "127.0.0.1:54321" ("[::1]:54321" for IPv6)
};

/// What the handler answers. Content-Length, Transfer-Encoding, Connection and
/// Content-Type are set by the server: entries for them in `headers` are ignored (use
/// `close` and `content_type`). The answer to HEAD carries the body's length, not the body.
/// A status outside 200..599 or a header with CR, LF or NUL is a handler bug and
/// becomes a 500.
struct HttpResponse {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool close = false; // close the connection after this response
    // May be sent with a content coding the request offers (HttpLimits::compress_min_bytes,
    // Reply::may_compress).
    bool may_compress = false;
};

/// Called on the connection's strand, from any of the io threads, so it must be
/// thread-safe. May throw: otsync::Error becomes a 400 with its code, anything
/// else a 500 with code "internal"; the server keeps running either way. (The server's
/// App answers every Error itself, with the code's status: http/reply.hpp.) Requests
/// the HTTP layer refuses itself never reach it: bad framing, limits, and an HTTP/1.1
/// request without Host or any request with two (400, RFC 9112 §3.2).
using Handler = std::function<HttpResponse(const HttpRequest&)>;

/// The handler that gives each request to the routes (`App::handle`) as a RouteRequest
/// and sends their Reply.
Handler route_handler(std::function<Reply(const RouteRequest&)> route);

/// A handler that may answer later (a long-poll): it calls `done` exactly once, from any
/// thread, now or when the answer is ready; the connection waits meanwhile, holding no
/// thread. The request is only valid during the call (copy what a later answer needs).
using Completion = std::function<void(HttpResponse)>;
using AsyncHandler = std::function<void(const HttpRequest&, Completion done)>;
/// The AsyncHandler that gives each request to `App::handle_async`.
AsyncHandler
route_async_handler(std::function<void(const RouteRequest&, std::function<void(Reply)>)> route);

/// Body limit for a request, decided from its method and path after the header is read.
/// An empty BodyLimit means 1 MiB for every request.
using BodyLimit = std::function<std::size_t(std::string_view method, std::string_view path)>;

/// Asked about a request whose body may be large, once its header is read and before any
/// of its body is: `head` is the request without its body. An answer refuses the request
/// (it is sent and the connection closed, the body never read); nullopt reads the body.
/// Called on the connection's strand: thread-safe, like the Handler.
using BeforeBody = std::function<std::optional<HttpResponse>(const HttpRequest& head)>;
/// The BeforeBody that asks the routes (`App::before_body`) with a body-less RouteRequest.
BeforeBody route_before_body(std::function<std::optional<Reply>(const RouteRequest&)> check);

/// Every limit of the HTTP layer (docs/architecture.md §9: explicit and configurable).
struct HttpLimits {
    std::size_t header_bytes = 8 * 1024;
    std::size_t read_buffer_reserve = 64 * 1024; // reserved per connection up front
    // Hard cap of the connection's read buffer: bounds what a client can make us hold
    // that the parser's limits do not count (chunk extensions, docs/architecture.md §9).
    std::size_t read_buffer_max = 64 * 1024 + 8 * 1024 * 1024 + 16 * 1024;
    // From a request's first byte to the end of its header (slow-drip defence); also how
    // long a new connection may stay silent before its first request.
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds body_timeout{60'000};  // whole body in this time
    std::chrono::milliseconds idle_timeout{60'000};  // keep-alive wait between requests
    std::chrono::milliseconds write_timeout{30'000}; // whole response in this time
    std::size_t max_connections = 10'000;            // beyond it: 503 and close
    // Bytes of request bodies all connections may be reading or holding at once: a body
    // reserves its Content-Length (a chunked one its body limit) from its header until its
    // handler has answered. A request that does not fit is answered 503 with Retry-After
    // and its body is not read, so connections × body limit cannot exceed the machine.
    std::size_t max_inflight_body_bytes = 256u << 20;
    std::chrono::seconds busy_retry_after{2}; // Retry-After of that 503
    // Bodies larger than this (and chunked ones) go through BeforeBody before being read.
    std::size_t check_before_body_bytes = 64 * 1024;
    // Responses of at least this many bytes (text, JSON, sync messages) are encoded with
    // zstd or deflate when the request's Accept-Encoding offers one; 0: never. Request
    // bodies in either coding are decoded whatever this says (content_coding.hpp).
    std::size_t compress_min_bytes = 256;
};

/// One line per answered request (requests cut by a timeout or a dropped
/// connection get none). `method` and `path` are empty when the header could not
/// be parsed. `ms` runs from the first byte of the request to the response sent.
struct AccessLogLine {
    std::string remote, method, path;
    unsigned status;
    std::size_t bytes_in, bytes_out;
    double ms;
};

/// The access-log line as one JSON object (no newline):
/// {"remote":..,"method":..,"path":..,"status":..,"in":..,"out":..,"ms":..}.
std::string access_log_json(const AccessLogLine& line);

/// Accepts connections on one address and serves them on the caller's io_context,
/// which may be run from several threads.
///
/// Lifetime: every connection keeps its own reference to the limits, the handler and
/// the access log, so the HttpServer may be destroyed before its connections end;
/// what the handler refers to must outlive the io_context's work (stop and drain, or
/// destroy, the io_context first).
class HttpServer {
public:
    /// Nothing is bound until start().
    HttpServer(boost::asio::io_context& ioc, const std::string& host, unsigned short port,
               HttpLimits limits, BodyLimit body_limit, Handler handler,
               std::function<void(const AccessLogLine&)> access_log = {});
    /// Stops accepting; open connections end on their own (see Lifetime above).
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// The check of large requests before their body (none by default). Call before start().
    void set_before_body(BeforeBody check);
    /// Requests go to `handler` instead of the Handler (which stays for what this layer
    /// answers itself). Call before start().
    void set_async_handler(AsyncHandler handler);
    /// Bytes of request bodies reserved right now (max_inflight_body_bytes). Thread-safe.
    std::size_t inflight_body_bytes() const;

    /// Binds, listens and starts accepting. Throws otsync::Error (invalid_argument)
    /// when the host does not resolve or the address cannot be bound. Call once.
    void start();
    /// The bound port (the real one when constructed with port 0); 0 before start().
    unsigned short port() const;
    /// Graceful shutdown, step 1: closes the listening socket. Requests in flight
    /// finish; idle keep-alive connections end at their idle timeout. Thread-safe.
    void stop_accepting();
    /// Connections currently open (not counting ones being refused). Thread-safe.
    std::size_t connections() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace otsync::server
