// otsync-bench server: N simulated devices against a real otsync-server process, with
// the baselines it is judged against measured in the same run:
//   - "bare": the same Beast HTTP layer with a constant handler (no store, no sync),
//   - "sqlite": raw SQLite appends of the same batch size, synchronous=FULL, WAL.
// The server (and the bare baseline) run pinned to CPU 0, the load to CPU 1.
//
//   otsync-bench server [--server-bin PATH] [--devices N] [--connections C]
//                       [--requests R] [--batch B] [--big-log N] [--server-threads T]
//                       [--pg | --store URL] [--instances 1|2] [--json]
//
// Phases: push (each request carries B new Anexo 4 ops: durable ops/s), no-op pull
// (nothing to send, nothing new: the cost of asking; requests carry the MAC of a protocol 2
// session, and once more the device's signature instead), the same no-op pull with a big
// op log (cost follows changes, not database size), idle connections (memory per
// connected device), then on the same data started again: every device holding a
// long-poll at once (memory per waiting device, and how many were still waiting when it
// was read) and hostile bodies (64 connections each announcing an 8 MiB sync body under
// a real device's headers, all but its last byte sent: server RSS growth against the
// in-flight budget, and how many were refused with 503), and the two baselines. Past
// 20,000 devices the connections come from several loopback addresses (127.0.0.2...) and
// the descriptor limit is raised (as root).
//
// With --pg (a private PostgreSQL 15 cluster the bench starts in its temporary folder,
// pinned to CPU 0 with the server, and stops after) or --store URL (an empty PostgreSQL
// database), the same push and no-op pull run again in the same run against a server on
// PostgreSQL ("pg.*"), after the SQLite phases. --instances 2 starts a second server on the
// same database; in the "pg2.*" phases each connection sends each request to one of the
// two instances picked at random (a device's requests land on both). Each PostgreSQL
// phase, and the SQLite push and pull, also report the CPU time per request of the
// otsync-server processes and of the PostgreSQL cluster (postmaster and all its children;
// not readable for a --store on another machine), from /proc/PID/stat before and after the
// phase, and the PostgreSQL phases the database's transactions and WAL flushes per request
// (pg_stat_database, pg_stat_wal; each sample waits 11 s for the backends to publish them).
#include "http/http_server.hpp"
#include "store/postgres_store.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "bench_process.hpp"
#include "figures.hpp"
#include "otsync/codec.hpp"
#include "otsync/crypto.hpp"
#include "otsync/session.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <random>
#include <sched.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace otsync;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::string server_bin;
    std::size_t devices = 1000;
    std::size_t connections = 64;
    std::size_t requests = 4000;
    std::size_t batch = 10;
    std::size_t big_log = 1'000'000;
    // io threads of the server (all on CPU 0): no request waits on one for its commit, so
    // more threads only add switches (64 gave pulls a p99 of 86-140 ms against 8 ms).
    unsigned server_threads = 2;
    bool json = false;
    bool private_pg = false; // --pg: start a PostgreSQL cluster for the pg.* phases
    std::string store_url;   // --store: an empty PostgreSQL database for them
    unsigned instances = 1;  // servers on that database
    bool pg() const { return private_pg || !store_url.empty(); }
};

using bench::pin_to_cpu;

/// How long the bench's long-polls wait (the server is started with this bound): opening
/// tens of thousands of them takes longer than the default 25 s.
constexpr std::uint32_t k_bench_wait_ms = 120'000;
using bench::rss_kib;

/// Descriptors for `wanted` sockets (the server inherits the limit): the hard limit is
/// raised when the bench may (root), else the soft one goes to it.
void raise_fd_limit(rlim_t wanted) {
    rlimit r{};
    getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_max < wanted) {
        const rlimit more{wanted, wanted};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0) {
            return;
        }
    }
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

struct SimDevice {
    SigningKeyPair key;
    std::uint64_t replica = 0;
    Id user;
    Id ot;
    std::uint64_t counter = 0;
    std::uint64_t op_counter = 0;
    std::uint64_t cursor = 0;
    std::uint64_t serial = 0;
    // Protocol 2's session, opened at seeding: requests carry its MAC instead of a
    // signature (the "signed" phase uses the signature).
    SessionId session{};
    MacKey mac_key;
    bool signed_requests = false;
};

/// Opens a session for `d` through the service, as the handshake does over HTTP.
void open_bench_session(server::SyncService& sync, SimDevice& d) {
    const KxKeyPair kx = KxKeyPair::generate();
    const std::uint64_t counter = ++d.counter;
    const Signature hello =
        sign(session_hello_message(d.replica, counter, kx.public_key), d.key.secret);
    const auto reply = sync.open_session(
        "{\"protocol_version\":2,\"replica\":" + std::to_string(d.replica) +
        ",\"counter\":" + std::to_string(counter) + ",\"device_key\":\"" +
        to_base64(kx.public_key) + "\",\"signature\":\"" + to_base64(hello) + "\"}");
    const auto field = [&](const char* name) {
        const auto at = reply.body.find(std::string("\"") + name + "\":\"");
        if (reply.refusal || at == std::string::npos) {
            throw std::runtime_error("bench: no session for device " + std::to_string(d.replica));
        }
        const auto from = at + std::strlen(name) + 4;
        return *from_base64(reply.body.substr(from, reply.body.find('"', from) - from), 64);
    };
    const auto id = field("session");
    const auto server_kx = field("server_key");
    std::copy(id.begin(), id.end(), d.session.begin());
    PublicKey skx{};
    std::copy(server_kx.begin(), server_kx.end(), skx.begin());
    d.mac_key = *device_session_key(kx, skx);
}

/// Seeds a store: one technician per device, each with an assigned OT and an enrolled
/// device, plus `filler` office ops in the log (outside every scope).
std::vector<SimDevice> seed(std::unique_ptr<server::Store> store, std::size_t n,
                            std::size_t filler) {
    SystemClock clock;
    server::SyncService sync(*store, clock, {});
    server::User bo{Id::random(), "bench.bo", Role::back_office, false, 0, {}, {}, {}};
    store->add_user(bo);
    std::vector<SimDevice> devices(n);
    const auto now = static_cast<std::int64_t>(clock.now_ms());
    // Users and their devices' enrollments written in one transaction each (one by one,
    // every enrollment would make the next request fold the whole directory again: tens
    // of thousands of devices took hours); the first 100 enroll through the public
    // endpoint, as devices do.
    const std::size_t by_endpoint = std::min<std::size_t>(n, 100);
    store->in_transaction(true, [&] {
        for (std::size_t i = 0; i < n; ++i) {
            auto& d = devices[i];
            d.key = SigningKeyPair::generate();
            d.user = Id::random();
            d.ot = Id::random();
            store->add_user({d.user,
                             "bench.tec" + std::to_string(i),
                             Role::technician,
                             false,
                             now,
                             {},
                             {},
                             {}});
        }
    });
    for (std::size_t i = 0; i < by_endpoint; ++i) {
        auto& d = devices[i];
        const std::string code = server::issue_enroll_code(*store, d.user, now, 3'600'000);
        const auto reply = sync.enroll("{\"code\":\"" + code + "\",\"public_key\":\"" +
                                       to_base64(d.key.public_key) + "\",\"label\":\"bench\"}");
        d.replica = std::stoull(reply.body.substr(reply.body.find("\"replica\":") + 10));
    }
    store->in_transaction(true, [&] {
        for (std::size_t i = by_endpoint; i < n; ++i) {
            auto& d = devices[i];
            const std::string code = server::issue_enroll_code(*store, d.user, now, 3'600'000);
            const auto device =
                store->enroll(server::enroll_code_hash(code), d.key.public_key, "bench", now);
            if (!device) {
                throw std::runtime_error("the bench could not enroll a device");
            }
            d.replica = device->replica;
        }
    });
    for (auto& d : devices) {
        open_bench_session(sync, d);
    }
    for (std::size_t start = 0; start < n; start += 1000) {
        sync.submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
            std::vector<Op> ops;
            for (std::size_t i = start; i < std::min(n, start + 1000); ++i) {
                ops.push_back(
                    m.set(EntityType::work_order, devices[i].ot, "technician", devices[i].user));
                ops.push_back(
                    m.set(EntityType::work_order, devices[i].ot, "kind", text("withdraw_boot")));
                Op issued = m.set(EntityType::work_order, devices[i].ot, "status", text("issued"));
                Op assigned =
                    m.set(EntityType::work_order, devices[i].ot, "status", text("assigned"));
                assigned.observed = {issued.id};
                ops.push_back(issued);
                ops.push_back(assigned);
            }
            return ops;
        });
    }
    // Each technician is at the customer's: rows are recorded on site.
    for (auto& d : devices) {
        sync.submit(d.user, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
            return std::vector<Op>{
                m.set_status(r, EntityType::work_order, d.ot, "status", text("on_site"))};
        });
    }
    for (std::size_t done = 0; done < filler;) {
        const std::size_t chunk = std::min<std::size_t>(20'000, filler - done);
        sync.submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
            std::vector<Op> ops;
            const Id ot = Id::random(); // assigned to nobody: in no device's scope
            for (std::size_t i = 0; i < chunk; ++i) {
                ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                    text("FILL" + std::to_string(done + i))));
            }
            return ops;
        });
        done += chunk;
    }
    return devices;
}

/// Seeds a data folder's SQLite database (see above).
std::vector<SimDevice> seed(const std::filesystem::path& dir, std::size_t n, std::size_t filler) {
    std::filesystem::create_directories(dir);
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    so.synchronous_full = false; // seeding only; the server reopens with FULL
    return seed(server::open_sqlite_store(so), n, filler);
}

using bench::spawn_pinned;
using bench::wait_port;

struct LoadResult {
    double seconds = 0;
    std::size_t requests = 0;
    std::size_t ops = 0;
    std::size_t errors = 0;
    std::vector<double> latencies_ms;

    double percentile(double p) {
        if (latencies_ms.empty()) {
            return 0;
        }
        std::sort(latencies_ms.begin(), latencies_ms.end());
        return latencies_ms[std::min(
            latencies_ms.size() - 1,
            static_cast<std::size_t>(p * static_cast<double>(latencies_ms.size())))];
    }
};

/// Drives `total` requests over `connections` keep-alive connections on one thread.
/// `make(conn, k)` builds the k-th request of connection `conn`; a device must belong
/// to one connection only, or its request counters would race (409 replay).
/// With several ports (server instances) a connection holds one socket to each and sends
/// each request to one picked at random (seeded): a device's next request goes to either
/// instance, as behind a balancer without stickiness, one request at a time.
LoadResult
drive(const std::vector<unsigned short>& ports, std::size_t connections, std::size_t total,
      const std::function<http::request<http::string_body>(std::size_t, std::size_t)>& make,
      std::size_t ops_per_request) {
    net::io_context ioc;
    LoadResult res;
    std::size_t next = 0;
    std::mt19937 pick(7);
    struct Link {
        explicit Link(net::io_context& io) : stream(io) {}
        beast::tcp_stream stream;
        beast::flat_buffer buf;
    };
    struct Conn : std::enable_shared_from_this<Conn> {
        Conn(net::io_context& io, std::size_t i, std::size_t n) : index(i) {
            for (std::size_t k = 0; k < n; ++k) {
                links.push_back(std::make_unique<Link>(io));
            }
        }
        std::vector<std::unique_ptr<Link>> links;
        std::size_t index;
        std::size_t sent = 0;
        std::size_t at = 0; // the link of the request in flight
        http::request<http::string_body> req;
        http::response<http::string_body> resp;
        Clock::time_point t0;
    };
    std::function<void(std::shared_ptr<Conn>)> fire = [&](std::shared_ptr<Conn> c) {
        if (next >= total) {
            return;
        }
        ++next;
        c->at = c->links.size() > 1 ? pick() % c->links.size() : 0;
        Link& link = *c->links[c->at];
        c->req = make(c->index, c->sent++);
        c->t0 = Clock::now();
        http::async_write(link.stream, c->req, [&, c](beast::error_code ec, std::size_t) {
            if (ec) {
                res.errors++;
                return;
            }
            c->resp = {};
            Link& l = *c->links[c->at];
            http::async_read(l.stream, l.buf, c->resp, [&, c](beast::error_code ec2, std::size_t) {
                if (ec2) {
                    res.errors++;
                    return;
                }
                res.latencies_ms.push_back(
                    std::chrono::duration<double, std::milli>(Clock::now() - c->t0).count());
                if (c->resp.result_int() == 200) {
                    res.requests++;
                    res.ops += ops_per_request;
                } else {
                    res.errors++;
                }
                fire(c);
            });
        });
    };
    const auto start = Clock::now();
    for (std::size_t i = 0; i < connections; ++i) {
        auto c = std::make_shared<Conn>(ioc, i, ports.size());
        for (std::size_t k = 0; k < ports.size(); ++k) {
            c->links[k]->stream.connect(
                tcp::endpoint(net::ip::make_address("127.0.0.1"), ports[k]));
        }
        fire(c);
    }
    ioc.run();
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return res;
}

LoadResult
drive(unsigned short port, std::size_t connections, std::size_t total,
      const std::function<http::request<http::string_body>(std::size_t, std::size_t)>& make,
      std::size_t ops_per_request) {
    return drive(std::vector<unsigned short>{port}, connections, total, make, ops_per_request);
}

http::request<http::string_body> sync_request(SimDevice& d, std::size_t batch, HlcTime hlc,
                                              std::uint32_t wait_ms = 0) {
    SyncRequest r;
    r.wait_ms = wait_ms;
    r.replica = d.replica;
    r.request_counter = ++d.counter;
    r.cursor = d.cursor;
    r.hlc = hlc;
    r.page_size = 100;
    for (std::size_t k = 0; k < batch; ++k) {
        const std::string serial =
            "B" + std::to_string(d.replica) + "-" + std::to_string(++d.serial);
        Op op;
        op.id = {d.replica, ++d.op_counter};
        op.hlc = hlc + k;
        op.author = d.user;
        op.entity_type = EntityType::collected_item;
        op.entity = Id::collected_item(d.ot, serial);
        op.field = field_def(EntityType::collected_item, k % 2 ? "serial" : "work_order").id;
        op.value = k % 2 ? Value{text(serial)} : Value{d.ot};
        if (k % 2 == 0) {
            --d.serial; // the next op (serial) names the same item
        }
        r.ops.push_back(std::move(op));
    }
    session::sign_ops(r, d.key.secret);
    const std::string body = encode_binary(r);
    const auto envelope =
        d.signed_requests
            ? session::sign_request(d.replica, r.request_counter, "/v1/sync", body, d.key.secret)
            : session::mac_request(d.replica, r.request_counter, "/v1/sync", body, d.session,
                                   d.mac_key);
    http::request<http::string_body> req{http::verb::post, "/v1/sync", 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : session::headers_of(envelope)) {
        req.set(name, value);
    }
    req.body() = body;
    req.prepare_payload();
    return req;
}

HlcTime hlc_now() {
    return hlc_make(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()),
        0);
}

} // namespace

std::string otsync::bench::bench_http_get(unsigned short port, const std::string& target) {
    net::io_context ioc;
    beast::tcp_stream s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(s, req);
    beast::flat_buffer b;
    http::response<http::string_body> resp;
    http::read(s, b, resp);
    return resp.body();
}

namespace {

/// Brings every device's cursor to the head so later pulls carry nothing new.
void catch_up(unsigned short port, std::vector<SimDevice>& devices) {
    for (auto& d : devices) {
        for (int i = 0; i < 1000; ++i) {
            net::io_context ioc;
            beast::tcp_stream s(ioc);
            s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
            auto req = sync_request(d, 0, hlc_now());
            http::write(s, req);
            beast::flat_buffer b;
            http::response<http::string_body> resp;
            http::read(s, b, resp);
            const auto r = decode_sync_response(resp.body());
            d.cursor = r.cursor;
            if (!r.more) {
                break;
            }
        }
    }
}

/// The same no-op pull through SyncService::sync in this process, with no HTTP or socket:
/// microseconds per pull on one thread (the service's share of the server's pull).
double in_process_pull_us(const std::filesystem::path& dir, std::size_t devices,
                          std::size_t pulls) {
    auto sim = seed(dir, devices, 0);
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    auto store = server::open_sqlite_store(so);
    SystemClock clock;
    server::SyncService sync(*store, clock, {});
    const auto pull = [&](SimDevice& d) {
        auto req = sync_request(d, 0, hlc_now());
        std::map<std::string, std::string> headers;
        for (const auto& f : req) {
            std::string name(f.name_string());
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            headers.emplace(std::move(name), std::string(f.value()));
        }
        headers["content-type"] = k_content_type_binary;
        const auto answer = sync.sync("/v1/sync", headers, req.body());
        if (answer.refusal) {
            throw std::runtime_error("bench: in-process pull refused: " + answer.body);
        }
        return decode_sync_response(answer.body);
    };
    for (auto& d : sim) { // each device holds its feed
        for (SyncResponse r = pull(d);; r = pull(d)) {
            d.cursor = r.cursor;
            if (!r.more) {
                break;
            }
        }
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t k = 0; k < pulls; ++k) {
        (void)pull(sim[k % sim.size()]);
    }
    const std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - t0;
    return took.count() / static_cast<double>(std::max<std::size_t>(1, pulls));
}

/// The i-th of many connections to 127.0.0.1:`port`, from 127.0.0.(2 + i / 20,000): one
/// source address has about 28,000 ephemeral ports, and the memory phases open more.
std::unique_ptr<beast::tcp_stream> connect_nth(net::io_context& ioc, unsigned short port,
                                               std::size_t i) {
    auto s = std::make_unique<beast::tcp_stream>(ioc);
    auto& socket = s->socket();
    socket.open(tcp::v4());
    // The port is chosen at connect (which may reuse a closed phase's TIME_WAIT ports), not
    // by bind's search among them.
    const int defer = 1;
    setsockopt(socket.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &defer, sizeof defer);
    const auto source = static_cast<net::ip::address_v4::uint_type>(0x7f000002u + i / 20'000);
    socket.bind(tcp::endpoint(net::ip::address_v4(source), 0));
    socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    return s;
}

std::size_t
memory_per_connection(pid_t pid, unsigned short port, std::size_t n,
                      const std::function<http::request<http::string_body>(std::size_t)>& make) {
    net::io_context ioc;
    std::vector<std::unique_ptr<beast::tcp_stream>> conns;
    const std::size_t before = rss_kib(pid);
    for (std::size_t i = 0; i < n; ++i) {
        auto s = connect_nth(ioc, port, i);
        auto req = make(i);
        http::write(*s, req);
        beast::flat_buffer b;
        http::response<http::string_body> resp;
        http::read(*s, b, resp);
        conns.push_back(std::move(s)); // kept open: a connected, idle device
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const std::size_t after = rss_kib(pid);
    return after > before ? (after - before) * 1024 / n : 0;
}

/// Server memory while every device holds a pull that waits (long-poll): RSS growth per
/// device, and how many pulls were still unanswered (waiting) when it was read.
struct WaitingPulls {
    std::size_t bytes_per_device = 0;
    std::size_t waiting = 0;
    double seconds_to_open = 0;
};

WaitingPulls waiting_pulls(pid_t pid, unsigned short port, std::vector<SimDevice>& devices,
                           std::uint32_t wait_ms) {
    net::io_context ioc;
    std::vector<std::unique_ptr<beast::tcp_stream>> conns;
    const std::size_t before = rss_kib(pid);
    const auto start = Clock::now();
    for (std::size_t i = 0; i < devices.size(); ++i) {
        auto s = connect_nth(ioc, port, i);
        auto req = sync_request(devices[i], 0, hlc_now(), wait_ms);
        http::write(*s, req);
        conns.push_back(std::move(s));
    }
    WaitingPulls w;
    w.seconds_to_open = std::chrono::duration<double>(Clock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const std::size_t after = rss_kib(pid);
    w.bytes_per_device = after > before ? (after - before) * 1024 / devices.size() : 0;
    for (const auto& s : conns) {
        beast::error_code ec;
        w.waiting += s->socket().available(ec) == 0 && !ec ? 1 : 0; // no byte of an answer yet
    }
    return w;
}

/// Hostile load on the request-body budget: `n` connections each announce a body of
/// `body_bytes` under a real device's headers (its MAC covers the body, so it cannot be
/// checked first), send all of it but the last byte, and stall. Server RSS growth, and how
/// many the server refused with 503 instead of reading.
struct HostileLoad {
    double rss_growth_mib = 0;
    std::size_t refused = 0;
    std::size_t held = 0;
};

HostileLoad hostile_bodies(pid_t pid, unsigned short port, std::vector<SimDevice>& devices,
                           std::size_t n, std::size_t body_bytes) {
    net::io_context ioc;
    std::vector<std::unique_ptr<beast::tcp_stream>> conns;
    const std::size_t before = rss_kib(pid);
    for (std::size_t i = 0; i < n; ++i) {
        conns.push_back(connect_nth(ioc, port, i));
        const timeval limit{5, 0}; // a refused body is not read: the write gives up
        setsockopt(conns.back()->socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit,
                   sizeof limit);
    }
    std::vector<std::thread> senders;
    for (std::size_t i = 0; i < n; ++i) {
        senders.emplace_back([&, i] {
            const auto req = sync_request(devices[i % devices.size()], 0, hlc_now());
            std::string head = "POST /v1/sync HTTP/1.1\r\n";
            for (const auto& field : req) {
                if (field.name() != http::field::content_length) {
                    head += std::string(field.name_string()) + ": " + std::string(field.value()) +
                            "\r\n";
                }
            }
            head += "Content-Length: " + std::to_string(body_bytes) + "\r\n\r\n";
            const std::string body(body_bytes - 1, 'h');
            beast::error_code ec;
            net::write(conns[i]->socket(), net::buffer(head), ec);
            if (!ec) {
                net::write(conns[i]->socket(), net::buffer(body), ec);
            }
        });
    }
    for (auto& t : senders) {
        t.join();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    HostileLoad h;
    const std::size_t after = rss_kib(pid);
    h.rss_growth_mib = after > before ? static_cast<double>(after - before) / 1024.0 : 0.0;
    for (const auto& s : conns) {
        char buf[64] = {};
        beast::error_code ec;
        if (s->socket().available(ec) > 0) {
            const std::size_t k = s->socket().read_some(net::buffer(buf, sizeof buf - 1), ec);
            h.refused += std::string(buf, k).rfind("HTTP/1.1 503", 0) == 0 ? 1 : 0;
        } else if (!ec) {
            ++h.held; // its body read but for the last byte, waiting
        }
    }
    return h;
}

double sqlite_append_ops_per_s(const std::filesystem::path& dir, std::size_t batch,
                               std::size_t total) {
    sqlite3* db = nullptr;
    sqlite3_open((dir / "raw.db").c_str(), &db);
    sqlite3_exec(
        db,
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
        "CREATE TABLE ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, replica INTEGER, counter INTEGER,"
        " body BLOB, UNIQUE(replica, counter))",
        nullptr, nullptr, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO ops(replica, counter, body) VALUES(?,?,?)", -1, &st,
                       nullptr);
    const std::string body(60, 'x');
    const auto start = Clock::now();
    std::uint64_t counter = 0;
    for (std::size_t done = 0; done < total; done += batch) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
        for (std::size_t k = 0; k < batch; ++k) {
            sqlite3_bind_int64(st, 1, 7);
            sqlite3_bind_int64(st, 2, static_cast<sqlite3_int64>(++counter));
            sqlite3_bind_blob(st, 3, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
            sqlite3_step(st);
            sqlite3_reset(st);
        }
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    sqlite3_finalize(st);
    sqlite3_close(db);
    return static_cast<double>(total) / s;
}

using bench::server_pid_of;
using bench::ServerRun;

/// The server pinned to CPU 0 on the data folder `dir`, or on the PostgreSQL database
/// `store_url` when given (`dir` then holds only its port file).
ServerRun start_server(const Options& o, const std::filesystem::path& dir,
                       const std::string& store_url = "") {
    return bench::start_otsync_server(
        o.server_bin,
        "--threads " + std::to_string(o.server_threads) + " --max-connections " +
            std::to_string(std::max<std::size_t>(20'000, o.devices + 1'000)) + " --max-wait-ms " +
            std::to_string(k_bench_wait_ms) + " --data-dir " + dir.string() +
            (store_url.empty() ? "" : " --store " + bench::shell_quoted(store_url)),
        dir, 0);
}

/// One line on stderr as each phase begins, so a long run (or a profiler attached to the
/// server) can tell the phases apart.
void announce(const std::string& phase) {
    std::cerr << "otsync-bench server: " << phase << '\n' << std::flush;
}

void stop(pid_t shell) {
    bench::stop_server(shell);
}

/// CPU seconds used so far by the server processes and by the PostgreSQL cluster.
struct CpuSample {
    double servers = 0;
    double postgres = 0;
};

CpuSample cpu_sample(const std::vector<pid_t>& servers, pid_t postmaster) {
    CpuSample s;
    for (const pid_t p : servers) {
        s.servers += bench::cpu_seconds(p);
    }
    s.postgres = bench::cluster_cpu_seconds(postmaster);
    return s;
}

/// The database's committed transactions (every statement outside a transaction counts as
/// one) and the cluster's WAL flushes so far (pg_stat_database, pg_stat_wal). PostgreSQL
/// 15's backends publish their counts when idle for at most 10 s (PGSTAT_IDLE_INTERVAL),
/// so a sample waits that out first. Nullopt when the database cannot be asked.
struct PgCounts {
    double transactions = 0;
    double wal_syncs = 0;
};

std::optional<PgCounts> pg_counts(const std::string& url) {
    std::this_thread::sleep_for(std::chrono::seconds(11));
    std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(url.c_str()), PQfinish);
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
        return std::nullopt;
    }
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(
        PQexec(c.get(), "SELECT (SELECT xact_commit FROM pg_stat_database"
                        " WHERE datname = current_database()), (SELECT wal_sync FROM pg_stat_wal)"),
        PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
        return std::nullopt;
    }
    return PgCounts{std::stod(PQgetvalue(r.get(), 0, 0)), std::stod(PQgetvalue(r.get(), 0, 1))};
}

/// One load phase named `name` (push when `ops_per_request` > 0): throughput, latency and
/// errors, and the CPU per request of the servers (and of PostgreSQL when `postmaster`
/// is known) into `out`; on PostgreSQL (`url`) also its transactions and WAL flushes per
/// request (how many requests share one commit).
void measured_phase(
    std::map<std::string, double>& out, const std::string& name,
    const std::vector<unsigned short>& ports, const Options& o,
    const std::function<http::request<http::string_body>(std::size_t, std::size_t)>& make,
    std::size_t ops_per_request, const std::vector<pid_t>& servers, pid_t postmaster,
    const std::string& url = "") {
    announce(name);
    const auto counts_before = url.empty() ? std::nullopt : pg_counts(url);
    const CpuSample before = cpu_sample(servers, postmaster);
    auto r = drive(ports, o.connections, o.requests, make, ops_per_request);
    const CpuSample after = cpu_sample(servers, postmaster);
    const auto counts_after = counts_before ? pg_counts(url) : std::nullopt;
    if (counts_after) {
        const double n = std::max<double>(1, static_cast<double>(r.requests));
        out[name + ".pg_transactions_per_request"] =
            (counts_after->transactions - counts_before->transactions) / n;
        out[name + ".pg_wal_syncs_per_request"] =
            (counts_after->wal_syncs - counts_before->wal_syncs) / n;
    }
    const double n = std::max<double>(1, static_cast<double>(r.requests));
    out[name + ".requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    if (ops_per_request > 0) {
        out[name + ".durable_ops_per_s"] = static_cast<double>(r.ops) / r.seconds;
    }
    out[name + ".p50_ms"] = r.percentile(0.50);
    out[name + ".p99_ms"] = r.percentile(0.99);
    out[name + ".errors"] = static_cast<double>(r.errors);
    out[name + ".cpu_us_per_request.servers"] = (after.servers - before.servers) * 1e6 / n;
    if (postmaster > 0) {
        out[name + ".cpu_us_per_request.postgres"] = (after.postgres - before.postgres) * 1e6 / n;
    }
}

} // namespace

int run_server_bench(int argc, char** argv) {
    Options o;
    o.server_bin =
        (std::filesystem::path(argv[0]).parent_path().parent_path() / "server" / "otsync-server")
            .string();
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "otsync-bench: " << a << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--server-bin") {
            o.server_bin = next();
        } else if (a == "--devices") {
            o.devices = std::stoul(next());
        } else if (a == "--connections") {
            o.connections = std::stoul(next());
        } else if (a == "--requests") {
            o.requests = std::stoul(next());
        } else if (a == "--batch") {
            o.batch = std::stoul(next());
        } else if (a == "--server-threads") {
            o.server_threads = static_cast<unsigned>(std::stoul(next()));
        } else if (a == "--big-log") {
            o.big_log = std::stoul(next());
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--pg") {
            o.private_pg = true;
        } else if (a == "--store") {
            o.store_url = next();
        } else if (a == "--instances") {
            o.instances = static_cast<unsigned>(std::stoul(next()));
        } else {
            std::cerr << "otsync-bench: unknown option '" << a << "'\n";
            return 2;
        }
    }
    if (o.private_pg && !o.store_url.empty()) {
        std::cerr << "otsync-bench: --pg starts its own PostgreSQL; --store names one: not both\n";
        return 2;
    }
    if (!o.store_url.empty() && !server::is_postgres_url(o.store_url)) {
        std::cerr << "otsync-bench: --store takes a PostgreSQL URL or libpq string\n";
        return 2;
    }
    if (o.instances < 1 || o.instances > 2 || (o.instances > 1 && !o.pg())) {
        std::cerr << "otsync-bench: --instances is 1 or 2, and 2 needs --pg or --store\n";
        return 2;
    }
    if (!std::filesystem::exists(o.server_bin)) {
        std::cerr << "otsync-bench: no server binary at " << o.server_bin
                  << " (use --server-bin)\n";
        return 2;
    }
    raise_fd_limit(static_cast<rlim_t>(2 * o.devices + 10'000));
    pin_to_cpu(1);
    std::map<std::string, double> out;
    const auto root =
        std::filesystem::temp_directory_path() / ("otsync-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(root);

    // ---- the server, small log ----
    auto devices = seed(root / "small", o.devices, 10'000);
    ServerRun srv = start_server(o, root / "small");
    const pid_t server_pid = server_pid_of(srv.pid);
    // Connection c drives devices c, c + C, c + 2C, ... in turn: a device belongs to one
    // connection, so its request counters never race.
    auto device_of = [&](std::vector<SimDevice>& ds, std::size_t conn,
                         std::size_t k) -> SimDevice& {
        const std::size_t per_conn = std::max<std::size_t>(1, ds.size() / o.connections);
        return ds[(conn + (k % per_conn) * o.connections) % ds.size()];
    };
    auto push = [&](std::size_t c, std::size_t k) {
        return sync_request(device_of(devices, c, k), o.batch, hlc_now());
    };
    auto pull = [&](std::size_t c, std::size_t k) {
        return sync_request(device_of(devices, c, k), 0, hlc_now());
    };
    auto pull_one = [&](std::size_t i) {
        return sync_request(devices[i % devices.size()], 0, hlc_now());
    };
    double cpu0 = bench::cpu_seconds(server_pid);
    announce("push");
    auto r = drive(srv.port, o.connections, o.requests, push, o.batch);
    if (o.pg()) { // the same figure as the PostgreSQL phases', for the comparison
        out["push.cpu_us_per_request.servers"] =
            (bench::cpu_seconds(server_pid) - cpu0) * 1e6 /
            std::max<double>(1, static_cast<double>(r.requests));
    }
    out["push.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["push.durable_ops_per_s"] = static_cast<double>(r.ops) / r.seconds;
    out["push.p50_ms"] = r.percentile(0.50);
    out["push.p99_ms"] = r.percentile(0.99);
    out["push.errors"] = static_cast<double>(r.errors);
    catch_up(srv.port, devices);
    cpu0 = bench::cpu_seconds(server_pid);
    announce("pull");
    r = drive(srv.port, o.connections, o.requests, pull, 0);
    // The server's CPU per pull beside the bare server's per GET: where the ratio goes.
    out["pull.cpu_us_per_request.servers"] = (bench::cpu_seconds(server_pid) - cpu0) * 1e6 /
                                             std::max<double>(1, static_cast<double>(r.requests));
    out["pull.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["pull.p50_ms"] = r.percentile(0.50);
    out["pull.p99_ms"] = r.percentile(0.99);
    out["pull.errors"] = static_cast<double>(r.errors);
    // The same pull signed with the device key instead of the session's MAC (protocol 1's
    // way, and protocol 2's when no session could be opened).
    for (auto& d : devices) {
        d.signed_requests = true;
    }
    announce("pull, signed");
    r = drive(srv.port, o.connections, o.requests, pull, 0);
    out["pull_signed.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["pull_signed.p50_ms"] = r.percentile(0.50);
    out["pull_signed.errors"] = static_cast<double>(r.errors);
    for (auto& d : devices) {
        d.signed_requests = false;
    }
    announce("memory per connected device");
    out["mem.server_bytes_per_connected_device"] =
        static_cast<double>(memory_per_connection(server_pid, srv.port, o.devices, pull_one));
    stop(srv.pid);
    // Every device holds a long-poll at once, on the same data started again: memory the
    // phases above gave back to the allocator would hide what the waits take.
    srv = start_server(o, root / "small");
    const pid_t waiting_pid = server_pid_of(srv.pid);
    announce("long-polls held at once");
    const WaitingPulls waiting = waiting_pulls(waiting_pid, srv.port, devices, k_bench_wait_ms);
    out["long_poll.devices"] = static_cast<double>(devices.size());
    out["long_poll.waiting"] = static_cast<double>(waiting.waiting);
    out["long_poll.seconds_to_open"] = waiting.seconds_to_open;
    out["mem.server_bytes_per_waiting_device"] = static_cast<double>(waiting.bytes_per_device);
    // Hostile bodies against the in-flight budget (the server's defaults: 8 MiB sync
    // bodies, 256 MiB in flight): 64 × 8 MiB announced.
    announce("hostile bodies");
    const HostileLoad hostile = hostile_bodies(waiting_pid, srv.port, devices, 64, 8u << 20);
    out["hostile.connections"] = 64;
    out["hostile.body_mib_announced"] = 64 * 8;
    out["hostile.refused_503"] = static_cast<double>(hostile.refused);
    out["hostile.held"] = static_cast<double>(hostile.held);
    out["hostile.server_rss_growth_mib"] = hostile.rss_growth_mib;
    out["hostile.budget_mib"] = 256;
    stop(srv.pid);

    // ---- the bare baseline: same HTTP layer, constant handler ----
    const auto bare_port_file = root / "bare-port";
    const pid_t bare = spawn_pinned([&] {
        net::io_context ioc(1);
        server::HttpLimits limits;
        limits.max_connections = std::max<std::size_t>(20'000, o.devices + 1'000);
        server::HttpServer s(ioc, "127.0.0.1", 0, limits, {}, [](const server::HttpRequest&) {
            server::HttpResponse resp;
            resp.body = "{\"status\":\"ok\"}";
            return resp;
        });
        s.start();
        std::ofstream(bare_port_file) << s.port() << "\n";
        ioc.run();
    });
    const unsigned short bare_port = wait_port(bare_port_file);
    auto get = [&](std::size_t, std::size_t) {
        http::request<http::string_body> req{http::verb::get, "/ping", 11};
        req.set(http::field::host, "127.0.0.1");
        return req;
    };
    cpu0 = bench::cpu_seconds(bare);
    announce("bare");
    r = drive(bare_port, o.connections, o.requests, get, 0);
    out["bare.cpu_us_per_request"] = (bench::cpu_seconds(bare) - cpu0) * 1e6 /
                                     std::max<double>(1, static_cast<double>(r.requests));
    out["bare.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["bare.p50_ms"] = r.percentile(0.50);
    out["bare.p99_ms"] = r.percentile(0.99);
    out["mem.bare_bytes_per_connection"] = static_cast<double>(memory_per_connection(
        bare, bare_port, o.devices, [&](std::size_t i) { return get(i, 0); }));
    kill(bare, SIGKILL);
    waitpid(bare, nullptr, 0);

    out["pull.in_process_us"] = in_process_pull_us(root / "in-process", 200, o.requests);

    // ---- raw SQLite appends at the same batch ----
    out["sqlite.append_ops_per_s"] =
        sqlite_append_ops_per_s(root, o.batch, o.requests * o.batch / 4);

    // ---- the same no-op pull with a big log ----
    if (o.big_log > 0) {
        auto big_devices = seed(root / "big", std::min<std::size_t>(o.devices, 200), o.big_log);
        ServerRun big = start_server(o, root / "big");
        catch_up(big.port, big_devices);
        auto big_pull = [&](std::size_t c, std::size_t k) {
            return sync_request(device_of(big_devices, c, k), 0, hlc_now());
        };
        announce("pull, big log");
        r = drive(big.port, o.connections, o.requests, big_pull, 0);
        out["pull_big_log.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
        out["pull_big_log.p50_ms"] = r.percentile(0.50);
        out["pull_big_log.ops_in_log"] = static_cast<double>(o.big_log);
        stop(big.pid);
    }

    // ---- the same push and no-op pull on PostgreSQL, one instance then two ----
    if (o.pg()) {
        std::unique_ptr<bench::PrivatePg> cluster;
        std::string url = o.store_url;
        if (o.private_pg) {
            cluster = std::make_unique<bench::PrivatePg>(root / "pg", 0);
            url = cluster->create_database("bench");
        }
        const pid_t postmaster = cluster ? cluster->postmaster() : bench::postmaster_of(url);
        server::PostgresOptions po;
        po.conninfo = url;
        auto pg_devices = seed(server::open_postgres_store(po), o.devices, 10'000);
        std::vector<ServerRun> inst;
        std::vector<pid_t> pids;
        std::vector<unsigned short> ports;
        for (unsigned k = 0; k < o.instances; ++k) {
            inst.push_back(start_server(o, root / ("pg-instance-" + std::to_string(k)), url));
            pids.push_back(server_pid_of(inst.back().pid));
            ports.push_back(inst.back().port);
        }
        auto pg_push = [&](std::size_t c, std::size_t k) {
            return sync_request(device_of(pg_devices, c, k), o.batch, hlc_now());
        };
        auto pg_pull = [&](std::size_t c, std::size_t k) {
            return sync_request(device_of(pg_devices, c, k), 0, hlc_now());
        };
        // One instance: the second (when there is one) runs idle beside it, as its CPU
        // counts in the servers' figure either way.
        measured_phase(out, "pg.push", {ports[0]}, o, pg_push, o.batch, pids, postmaster, url);
        catch_up(ports[0], pg_devices);
        measured_phase(out, "pg.pull", {ports[0]}, o, pg_pull, 0, pids, postmaster, url);
        if (o.instances > 1) {
            measured_phase(out, "pg2.push", ports, o, pg_push, o.batch, pids, postmaster, url);
            catch_up(ports[0], pg_devices);
            measured_phase(out, "pg2.pull", ports, o, pg_pull, 0, pids, postmaster, url);
        }
        for (const auto& i : inst) {
            stop(i.pid);
        }
        cluster.reset(); // stopped before its folder goes
        out["ratio.pg_vs_sqlite.push"] =
            out["pg.push.durable_ops_per_s"] / out["push.durable_ops_per_s"];
        out["ratio.pg_vs_sqlite.pull"] = out["pg.pull.requests_per_s"] / out["pull.requests_per_s"];
        if (o.instances > 1) {
            out["ratio.two_vs_one_instance.push"] =
                out["pg2.push.durable_ops_per_s"] / out["pg.push.durable_ops_per_s"];
            out["ratio.two_vs_one_instance.pull"] =
                out["pg2.pull.requests_per_s"] / out["pg.pull.requests_per_s"];
        }
    }
    std::filesystem::remove_all(root);

    out["ratio.pull_vs_bare"] = out["pull.requests_per_s"] / out["bare.requests_per_s"];
    out["ratio.durable_vs_sqlite"] = out["push.durable_ops_per_s"] / out["sqlite.append_ops_per_s"];
    out["ratio.memory_vs_bare"] = out["mem.server_bytes_per_connected_device"] /
                                  std::max(1.0, out["mem.bare_bytes_per_connection"]);
    out["ratio.waiting_memory_vs_bare"] = out["mem.server_bytes_per_waiting_device"] /
                                          std::max(1.0, out["mem.bare_bytes_per_connection"]);
    if (o.big_log > 0) {
        out["ratio.pull_time_big_vs_small"] =
            out["pull.requests_per_s"] / out["pull_big_log.requests_per_s"];
    }
    bench::print_figures(
        "otsync-bench server (devices=" + std::to_string(o.devices) + ", connections=" +
            std::to_string(o.connections) + ", requests=" + std::to_string(o.requests) +
            ", batch=" + std::to_string(o.batch) + ", big log=" + std::to_string(o.big_log) +
            (o.pg() ? ", postgres instances=" + std::to_string(o.instances) : "") + ")",
        out, o.json);
    return 0;
}
