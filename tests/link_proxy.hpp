// A loopback TCP proxy that behaves like a bad mobile link, for the field benchmark and the
// tests that sync through one: it listens on 127.0.0.1:0 and forwards each accepted
// connection to an upstream port. Each direction is one link shared by every connection:
// bytes are read in chunks of at most 512 bytes and paced at the rate (a token bucket one
// chunk deep: a chunk of n bytes starts once the one before it has gone and takes n / rate),
// then held for the one-way latency: no byte leaves the proxy sooner than that after it
// arrived. At most 16 KiB wait in each direction (the link's queue); beyond that the proxy
// stops reading and TCP pushes back on the sender. Bytes are counted as they leave the proxy
// (HTTP headers included, TCP/IP overhead not); a small HTTP/1.1 framer on each direction
// counts requests started, answers delivered and header bytes.
//
// Cuts: at given offsets of the upload's progress (the up bytes of answered requests plus
// those of the request in flight, so a resend does not move the next cut), the chunk that
// reaches a cut is cut short there and both sockets of that connection are closed: the
// request in flight is lost part-way, and nothing the proxy held for it is delivered.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace otsync::testing {

namespace link_detail {
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr std::size_t k_shaped_chunk = 512;      // bytes forwarded at a time on the link
constexpr std::size_t k_link_queue = 16 * 1024;  // bytes waiting per direction at most
constexpr std::size_t k_read_buffer = 16 * 1024; // the unshaped link's chunk

/// Counts the HTTP/1.1 messages on one direction of a connection, framed by Content-Length
/// (otsync's client and server send no other framing): messages started, messages ended,
/// header bytes.
class Framer {
public:
    void feed(const char* p, std::size_t n) {
        while (n > 0) {
            if (m_body_left > 0) {
                const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, m_body_left));
                m_body_left -= take;
                p += take;
                n -= take;
                if (m_body_left == 0) {
                    ++ended;
                }
                continue;
            }
            if (m_head.empty()) {
                ++started;
            }
            m_head += *p++;
            --n;
            ++header_bytes;
            if (m_head.size() >= 4 && m_head.compare(m_head.size() - 4, 4, "\r\n\r\n") == 0) {
                m_body_left = content_length(m_head);
                m_head.clear();
                if (m_body_left == 0) {
                    ++ended;
                }
            }
        }
    }
    /// Between messages: the next byte starts one.
    bool at_start() const { return m_head.empty() && m_body_left == 0; }
    std::uint64_t started = 0;
    std::uint64_t ended = 0;
    std::uint64_t header_bytes = 0;

private:
    static std::uint64_t content_length(std::string head) {
        std::transform(head.begin(), head.end(), head.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        const std::string name = "\r\ncontent-length:";
        const auto at = head.find(name);
        return at == std::string::npos
                   ? 0
                   : std::strtoull(head.c_str() + at + name.size(), nullptr, 10);
    }
    std::string m_head;
    std::uint64_t m_body_left = 0;
};

/// The bad mobile link: see the header. Shaped per phase (shape() also resets the counts);
/// counts() may be read from any thread.
class LinkProxy {
public:
    struct Shape {
        double bytes_per_s = 0; // 0: no cap
        std::chrono::microseconds one_way{0};
        std::vector<std::uint64_t> cuts; // upload progress offsets (see the header), ascending
    };
    struct Counts {
        std::uint64_t up = 0;
        std::uint64_t down = 0;
        std::uint64_t header_up = 0;
        std::uint64_t header_down = 0;
        std::uint64_t requests = 0;   // requests started
        std::uint64_t answers = 0;    // answers delivered whole
        std::uint64_t unanswered = 0; // requests whose connection closed before their answer
        std::uint64_t connections = 0;
        std::uint64_t cuts = 0;
    };

    explicit LinkProxy(unsigned short upstream)
        : m_upstream(net::ip::make_address("127.0.0.1"), upstream),
          m_acceptor(m_io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
        accept();
        m_thread = std::thread([this] { m_io.run(); });
    }
    ~LinkProxy() {
        net::post(m_io, [this] {
            boost::system::error_code ec;
            m_acceptor.close(ec);
            for (const auto& weak : m_conns) {
                if (const auto c = weak.lock()) {
                    close(c, false);
                }
            }
        });
        m_thread.join(); // run() returns once every aborted handler has run
    }
    LinkProxy(const LinkProxy&) = delete;
    LinkProxy& operator=(const LinkProxy&) = delete;

    unsigned short port() const { return m_acceptor.local_endpoint().port(); }

    void shape(Shape s) {
        const std::lock_guard lock(m_mu);
        m_shape = std::move(s);
        m_counts = {};
        m_next_cut = 0;
        m_answered_bytes = 0;
        m_free_at = {Clock::now(), Clock::now()};
    }
    Counts counts() {
        const std::lock_guard lock(m_mu);
        return m_counts;
    }

private:
    struct Chunk {
        Clock::time_point due;
        std::string bytes;
    };
    /// One direction of a connection: 0 up (reads the client's socket), 1 down.
    struct Pipe {
        std::array<char, k_read_buffer> buf{};
        std::deque<Chunk> queue; // a deque: the chunk being written stays put on push_back
        std::size_t queued = 0;
        bool reading = false;
        bool writing = false;
        bool eof = false;
        Framer framer;
    };
    struct Conn {
        Conn(net::io_context& io, tcp::socket c)
            : client(std::move(c)),
              server(io), timers{net::steady_timer(io), net::steady_timer(io)} {}
        tcp::socket& from(int d) { return d == 0 ? client : server; }
        tcp::socket& to(int d) { return d == 0 ? server : client; }
        tcp::socket client;
        tcp::socket server;
        std::array<net::steady_timer, 2> timers;
        std::array<Pipe, 2> pipes;
        std::uint64_t request_bytes = 0; // of the request in flight, delivered so far
        bool closed = false;
    };
    using ConnPtr = std::shared_ptr<Conn>;

    void accept() {
        m_acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) {
                return; // closed: the proxy is going away
            }
            auto c = std::make_shared<Conn>(m_io, std::move(s));
            std::erase_if(m_conns, [](const std::weak_ptr<Conn>& w) { return w.expired(); });
            m_conns.push_back(c);
            {
                const std::lock_guard lock(m_mu);
                m_counts.connections++;
            }
            c->server.async_connect(m_upstream, [this, c](boost::system::error_code e) {
                if (e) {
                    close(c, false);
                    return;
                }
                boost::system::error_code ignored;
                c->client.set_option(tcp::no_delay(true), ignored); // small chunks: no Nagle
                c->server.set_option(tcp::no_delay(true), ignored);
                read(c, 0);
                read(c, 1);
            });
            accept();
        });
    }

    /// When `n` bytes that arrive now in direction `d` leave the proxy.
    Clock::time_point due(int d, std::size_t n) {
        const std::lock_guard lock(m_mu);
        const auto now = Clock::now();
        if (m_shape.bytes_per_s <= 0) {
            return now + m_shape.one_way;
        }
        auto& free_at = m_free_at[static_cast<std::size_t>(d)];
        const auto start = std::max(now, free_at);
        free_at = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                              static_cast<double>(n) / m_shape.bytes_per_s));
        return free_at + m_shape.one_way;
    }

    void read(const ConnPtr& c, int d) {
        Pipe& p = c->pipes[static_cast<std::size_t>(d)];
        if (c->closed || p.reading || p.eof || p.queued >= k_link_queue) {
            return;
        }
        std::size_t chunk = k_read_buffer;
        {
            const std::lock_guard lock(m_mu);
            if (m_shape.bytes_per_s > 0) {
                chunk = k_shaped_chunk;
            }
        }
        p.reading = true;
        c->from(d).async_read_some(
            net::buffer(p.buf.data(), chunk),
            [this, c, d](boost::system::error_code ec, std::size_t n) {
                Pipe& q = c->pipes[static_cast<std::size_t>(d)];
                q.reading = false;
                if (c->closed) {
                    return;
                }
                if (n > 0) {
                    q.queue.push_back({due(d, n), std::string(q.buf.data(), n)});
                    q.queued += n;
                    write(c, d);
                }
                if (ec) { // the sender closed (or reset): what it sent still goes, then close
                    q.eof = true;
                    if (q.queue.empty() && !q.writing) {
                        close(c, false);
                    }
                    return;
                }
                read(c, d);
            });
    }

    void write(const ConnPtr& c, int d) {
        Pipe& p = c->pipes[static_cast<std::size_t>(d)];
        if (c->closed || p.writing || p.queue.empty()) {
            return;
        }
        p.writing = true;
        auto& timer = c->timers[static_cast<std::size_t>(d)];
        timer.expires_at(p.queue.front().due);
        timer.async_wait([this, c, d](boost::system::error_code) {
            Pipe& q = c->pipes[static_cast<std::size_t>(d)];
            if (c->closed) {
                q.writing = false;
                return;
            }
            const Chunk& front = q.queue.front();
            std::size_t n = front.bytes.size();
            bool cut = false;
            if (d == 0) { // a cut point inside this chunk: the chunk stops there
                const std::lock_guard lock(m_mu);
                const std::uint64_t progress =
                    m_answered_bytes + (q.framer.at_start() ? 0 : c->request_bytes);
                if (m_next_cut < m_shape.cuts.size()) {
                    const std::uint64_t left = m_shape.cuts[m_next_cut] > progress
                                                   ? m_shape.cuts[m_next_cut] - progress
                                                   : 0;
                    if (left <= n) {
                        n = static_cast<std::size_t>(left);
                        cut = true;
                    }
                }
            }
            if (n == 0) {
                q.writing = false;
                close(c, cut);
                return;
            }
            net::async_write(c->to(d), net::buffer(front.bytes.data(), n),
                             [this, c, d, n, cut](boost::system::error_code ec, std::size_t) {
                                 Pipe& r = c->pipes[static_cast<std::size_t>(d)];
                                 r.writing = false;
                                 if (c->closed) {
                                     return;
                                 }
                                 if (ec) {
                                     close(c, false);
                                     return;
                                 }
                                 delivered(*c, d, r.queue.front().bytes.data(), n);
                                 if (cut) {
                                     close(c, true);
                                     return;
                                 }
                                 r.queued -= n;
                                 r.queue.pop_front();
                                 if (r.queue.empty() && r.eof) {
                                     close(c, false);
                                     return;
                                 }
                                 read(c, d); // room in the queue again
                                 write(c, d);
                             });
        });
    }

    /// `n` bytes left the proxy in direction `d` of `c`: counted, and framed. The client
    /// sends one request at a time on a connection: an answer that ends answers the
    /// request in flight, whose bytes then count as upload progress.
    void delivered(Conn& c, int d, const char* bytes, std::size_t n) {
        Pipe& p = c.pipes[static_cast<std::size_t>(d)];
        if (d == 0) {
            c.request_bytes = p.framer.at_start() ? n : c.request_bytes + n;
        }
        const Framer before = p.framer;
        p.framer.feed(bytes, n);
        const std::lock_guard lock(m_mu);
        if (d == 1 && p.framer.ended > before.ended) {
            m_answered_bytes += c.request_bytes;
            c.request_bytes = 0;
        }
        const std::uint64_t headers = p.framer.header_bytes - before.header_bytes;
        if (d == 0) {
            m_counts.up += n;
            m_counts.header_up += headers;
            m_counts.requests += p.framer.started - before.started;
        } else {
            m_counts.down += n;
            m_counts.header_down += headers;
            m_counts.answers += p.framer.ended - before.ended;
        }
    }

    /// Closes both sides of `c`; a cut also moves on to the next cut point.
    void close(const ConnPtr& c, bool cut) {
        if (c->closed) {
            return;
        }
        c->closed = true;
        boost::system::error_code ec;
        for (tcp::socket* s : {&c->client, &c->server}) {
            s->shutdown(tcp::socket::shutdown_both, ec);
            s->close(ec);
        }
        for (auto& t : c->timers) {
            t.cancel();
        }
        const std::uint64_t started = c->pipes[0].framer.started;
        const std::uint64_t answered = c->pipes[1].framer.ended;
        const std::lock_guard lock(m_mu);
        m_counts.unanswered += started > answered ? started - answered : 0;
        if (cut) {
            m_counts.cuts++;
            m_next_cut++;
        }
    }

    net::io_context m_io;
    tcp::endpoint m_upstream;
    tcp::acceptor m_acceptor;
    std::vector<std::weak_ptr<Conn>> m_conns; // the io thread's only
    std::mutex m_mu;                          // what follows: shared with the bench's thread
    Shape m_shape;
    Counts m_counts;
    std::size_t m_next_cut = 0;
    std::uint64_t m_answered_bytes = 0; // up bytes of the phase's answered requests
    std::array<Clock::time_point, 2> m_free_at{};
    std::thread m_thread; // last: started once everything above exists
};

} // namespace link_detail

using link_detail::LinkProxy;

} // namespace otsync::testing
