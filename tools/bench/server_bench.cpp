// otsync-bench server: N simulated devices against a real otsync-server process, with
// the baselines it is judged against measured in the same run:
//   - "bare": the same Beast HTTP layer with a constant handler (no store, no sync),
//   - "sqlite": raw SQLite appends of the same batch size, synchronous=FULL, WAL.
// The server (and the bare baseline) run pinned to CPU 0, the load to CPU 1.
//
//   otsync-bench server [--server-bin PATH] [--devices N] [--connections C]
//                       [--requests R] [--batch B] [--big-log N] [--server-threads T] [--json]
//
// Phases: push (each request carries B new Anexo 4 ops: durable ops/s), no-op pull
// (nothing to send, nothing new: the cost of asking), the same no-op pull with a big
// op log (cost follows changes, not database size), idle connections (memory per
// connected device), and the two baselines.
#include "http/http_server.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "figures.hpp"
#include "otsync/codec.hpp"
#include "otsync/crypto.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sched.h>
#include <string>
#include <sys/resource.h>
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
    unsigned server_threads = 64; // io threads of the server (all on CPU 0): lets commits group
    bool json = false;
};

void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

void raise_fd_limit() {
    rlimit r{};
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
}

std::size_t rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoul(line.substr(6));
        }
    }
    return 0;
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
};

/// Seeds a data folder: one technician per device, each with an assigned OT and an
/// enrolled device, plus `filler` office ops in the log (outside every scope).
std::vector<SimDevice> seed(const std::filesystem::path& dir, std::size_t n, std::size_t filler) {
    std::filesystem::create_directories(dir);
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    so.synchronous_full = false; // seeding only; the server reopens with FULL
    auto store = server::open_sqlite_store(so);
    SystemClock clock;
    server::SyncService sync(*store, clock, {});
    server::User bo{Id::random(), "bench.bo", Role::back_office, false, 0, {}, {}, {}};
    store->add_user(bo);
    std::vector<SimDevice> devices(n);
    const auto now = static_cast<std::int64_t>(clock.now_ms());
    for (std::size_t i = 0; i < n; ++i) {
        auto& d = devices[i];
        d.key = SigningKeyPair::generate();
        d.user = Id::random();
        d.ot = Id::random();
        store->add_user(
            {d.user, "bench.tec" + std::to_string(i), Role::technician, false, now, {}, {}, {}});
    }
    // Enroll through the public endpoint, as devices do.
    for (std::size_t i = 0; i < n; ++i) {
        auto& d = devices[i];
        const std::string code = server::issue_enroll_code(*store, d.user, now, 3'600'000);
        const auto reply = sync.enroll("{\"code\":\"" + code + "\",\"public_key\":\"" +
                                       to_base64(d.key.public_key) + "\",\"label\":\"bench\"}");
        d.replica = std::stoull(reply.body.substr(reply.body.find("\"replica\":") + 10));
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

/// Starts a child process pinned to CPU 0: the real server, or the bare baseline.
pid_t spawn_pinned(const std::function<void()>& child) {
    const pid_t pid = fork();
    if (pid == 0) {
        pin_to_cpu(0);
        child();
        _exit(0);
    }
    return pid;
}

unsigned short wait_port(const std::filesystem::path& port_file) {
    for (int i = 0; i < 600; ++i) {
        std::ifstream in(port_file);
        unsigned short p = 0;
        if (in >> p && p) {
            return p;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("server did not start");
}

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
/// `make` builds the i-th request (it picks the device).
/// `make(conn, k)` builds the k-th request of connection `conn`; a device must belong
/// to one connection only, or its request counters would race (409 replay).
LoadResult
drive(unsigned short port, std::size_t connections, std::size_t total,
      const std::function<http::request<http::string_body>(std::size_t, std::size_t)>& make,
      std::size_t ops_per_request) {
    net::io_context ioc;
    LoadResult res;
    std::size_t next = 0;
    struct Conn : std::enable_shared_from_this<Conn> {
        Conn(net::io_context& io, std::size_t i) : stream(io), index(i) {}
        beast::tcp_stream stream;
        std::size_t index;
        std::size_t sent = 0;
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        http::response<http::string_body> resp;
        Clock::time_point t0;
    };
    std::function<void(std::shared_ptr<Conn>)> fire = [&](std::shared_ptr<Conn> c) {
        if (next >= total) {
            return;
        }
        ++next;
        c->req = make(c->index, c->sent++);
        c->t0 = Clock::now();
        http::async_write(c->stream, c->req, [&, c](beast::error_code ec, std::size_t) {
            if (ec) {
                res.errors++;
                return;
            }
            c->resp = {};
            http::async_read(
                c->stream, c->buf, c->resp, [&, c](beast::error_code ec2, std::size_t) {
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
        auto c = std::make_shared<Conn>(ioc, i);
        c->stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
        fire(c);
    }
    ioc.run();
    res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return res;
}

http::request<http::string_body> sync_request(SimDevice& d, std::size_t batch, HlcTime hlc) {
    SyncRequest r;
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
    const std::string body = encode_binary(r);
    const Signature sig =
        sign(sync_signing_string("POST", "/v1/sync", r.request_counter, body), d.key.secret);
    http::request<http::string_body> req{http::verb::post, "/v1/sync", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, k_content_type_binary);
    req.set("X-Otsync-Replica", std::to_string(d.replica));
    req.set("X-Otsync-Counter", std::to_string(r.request_counter));
    req.set("X-Otsync-Signature", to_base64(sig));
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

std::size_t
memory_per_connection(pid_t pid, unsigned short port, std::size_t n,
                      const std::function<http::request<http::string_body>(std::size_t)>& make) {
    net::io_context ioc;
    std::vector<std::unique_ptr<beast::tcp_stream>> conns;
    const std::size_t before = rss_kib(pid);
    for (std::size_t i = 0; i < n; ++i) {
        auto s = std::make_unique<beast::tcp_stream>(ioc);
        s->connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
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

struct ServerRun {
    pid_t pid = -1;
    unsigned short port = 0;
};

ServerRun start_server(const Options& o, const std::filesystem::path& dir) {
    const auto port_file = dir / "port";
    std::filesystem::remove(port_file);
    ServerRun run;
    run.pid = spawn_pinned([&] {
        // The real binary, listening on an ephemeral port that it reports on stderr;
        // a shell pipeline would unpin it, so read the line ourselves.
        const std::string cmd =
            o.server_bin + " --listen 127.0.0.1:0 --threads " + std::to_string(o.server_threads) +
            " --max-connections 20000 --data-dir " + dir.string() +
            " 2>&1 >/dev/null | sed -un 's/.*127.0.0.1:\\([0-9]*\\) .*/\\1/p' > " +
            port_file.string();
        execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    });
    run.port = wait_port(port_file);
    return run;
}

pid_t server_pid_of(pid_t shell) {
    // The shell's child running otsync-server.
    std::ifstream in("/proc/" + std::to_string(shell) + "/task/" + std::to_string(shell) +
                     "/children");
    pid_t child = 0;
    while (in >> child) {
        std::ifstream comm("/proc/" + std::to_string(child) + "/comm");
        std::string name;
        comm >> name;
        if (name.rfind("otsync-server", 0) == 0) {
            return child;
        }
    }
    return shell;
}

void stop(pid_t shell) {
    const pid_t server = server_pid_of(shell);
    kill(server, SIGTERM);
    int status = 0;
    waitpid(shell, &status, 0);
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
        } else {
            std::cerr << "otsync-bench: unknown option '" << a << "'\n";
            return 2;
        }
    }
    if (!std::filesystem::exists(o.server_bin)) {
        std::cerr << "otsync-bench: no server binary at " << o.server_bin
                  << " (use --server-bin)\n";
        return 2;
    }
    raise_fd_limit();
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
    auto r = drive(srv.port, o.connections, o.requests, push, o.batch);
    out["push.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["push.durable_ops_per_s"] = static_cast<double>(r.ops) / r.seconds;
    out["push.p50_ms"] = r.percentile(0.50);
    out["push.p99_ms"] = r.percentile(0.99);
    out["push.errors"] = static_cast<double>(r.errors);
    catch_up(srv.port, devices);
    r = drive(srv.port, o.connections, o.requests, pull, 0);
    out["pull.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["pull.p50_ms"] = r.percentile(0.50);
    out["pull.p99_ms"] = r.percentile(0.99);
    out["pull.errors"] = static_cast<double>(r.errors);
    out["mem.server_bytes_per_connected_device"] =
        static_cast<double>(memory_per_connection(server_pid, srv.port, o.devices, pull_one));
    stop(srv.pid);

    // ---- the bare baseline: same HTTP layer, constant handler ----
    const auto bare_port_file = root / "bare-port";
    const pid_t bare = spawn_pinned([&] {
        net::io_context ioc(1);
        server::HttpLimits limits;
        limits.max_connections = 20'000;
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
    r = drive(bare_port, o.connections, o.requests, get, 0);
    out["bare.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
    out["bare.p50_ms"] = r.percentile(0.50);
    out["bare.p99_ms"] = r.percentile(0.99);
    out["mem.bare_bytes_per_connection"] = static_cast<double>(memory_per_connection(
        bare, bare_port, o.devices, [&](std::size_t i) { return get(i, 0); }));
    kill(bare, SIGKILL);
    waitpid(bare, nullptr, 0);

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
        r = drive(big.port, o.connections, o.requests, big_pull, 0);
        out["pull_big_log.requests_per_s"] = static_cast<double>(r.requests) / r.seconds;
        out["pull_big_log.p50_ms"] = r.percentile(0.50);
        out["pull_big_log.ops_in_log"] = static_cast<double>(o.big_log);
        stop(big.pid);
    }
    std::filesystem::remove_all(root);

    out["ratio.pull_vs_bare"] = out["pull.requests_per_s"] / out["bare.requests_per_s"];
    out["ratio.durable_vs_sqlite"] = out["push.durable_ops_per_s"] / out["sqlite.append_ops_per_s"];
    out["ratio.memory_vs_bare"] = out["mem.server_bytes_per_connected_device"] /
                                  std::max(1.0, out["mem.bare_bytes_per_connection"]);
    if (o.big_log > 0) {
        out["ratio.pull_time_big_vs_small"] =
            out["pull.requests_per_s"] / out["pull_big_log.requests_per_s"];
    }
    bench::print_figures("otsync-bench server (devices=" + std::to_string(o.devices) +
                             ", connections=" + std::to_string(o.connections) + ", requests=" +
                             std::to_string(o.requests) + ", batch=" + std::to_string(o.batch) +
                             ", big log=" + std::to_string(o.big_log) + ")",
                         out, o.json);
    return 0;
}
