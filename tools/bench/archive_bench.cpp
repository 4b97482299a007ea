// otsync-bench archive: the real otsync-server's memory after start on a history of closed
// cases, with archiving (--archive-after-days 30) and without.
//
//   otsync-bench archive [--ops N,M,...] [--repeats R] [--backends sqlite,pg]
//                        [--server-bin PATH] [--json]
//
// For each N (default 10,000 and 1,000,000) the bench writes N ops of closed-case history
// straight into a fresh store, as the server's ops would leave it (23 ops a case: the case
// through its lifecycle, its OT completed, one row received at the warehouse, its
// equipment's custody and the handover; cases closed 45 days ago and later, one a second),
// then starts otsync-server on a copy of it, waits until it listens (with archiving, also
// until the start's sweep, which runs while the server listens, has ended:
// otsync_archive_sweeps_total), 1 s more, and reads its VmRSS (and VmHWM, the peak) from
// /proc/PID/status:
//   off      without archiving: the whole history in memory;
//   on       --archive-after-days 30, the first start: the start folds the log, then its
//            sweep takes every case out;
//   restart  the same store started again with archiving: the start leaves the archived
//            groups out of the fold.
// VmRSS is split into RssAnon (the heap) and RssFile (SQLite reads its database through
// mmap: those pages are the file's, shared with the page cache). VmHWM includes the
// argon2id buffer (--pwhash-memlimit, 64 MiB) of the dummy hash every start makes.
// Each of R repeats copies the history anew (SQLite: the file; PostgreSQL: CREATE DATABASE
// … TEMPLATE) and measures off then on and restart; the figures are medians, each
// measurement is also printed to stderr. Backends (default sqlite): "pg" does the same on
// a private PostgreSQL 15 cluster the bench starts (and stops), after the SQLite runs.
#include "server.hpp"
#include "store/postgres_store.hpp"

#include "bench_process.hpp"
#include "figures.hpp"
#include "otsync/crdt.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace otsync;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::int64_t k_day = 24ll * 3600 * 1000;

struct ArchiveOptions {
    std::vector<std::size_t> ops{10'000, 1'000'000};
    int repeats = 3;
    bool sqlite = true;
    bool pg = false;
    std::string server_bin;
    bool json = false;
};

/// Closed cases as the server's ops would leave them (the generator of
/// tests/server/test_archive.cpp), each appended to `out` as a stored op.
struct History {
    FakeClock clock;
    Hlc hlc{clock};
    crdt::Replica scratch; // set_status observes the statuses before it
    crdt::OpMaker maker;

    History(std::int64_t start_ms, const Id& author)
        : clock(static_cast<std::uint64_t>(start_ms)), maker(k_server_replica, hlc, author) {}

    void add(std::vector<server::StoredOp>& out, const Op& op) {
        scratch.apply(op);
        server::StoredOp so;
        so.op = op;
        so.received_at = static_cast<std::int64_t>(clock.now_ms());
        out.push_back(std::move(so));
    }

    void closed_case(std::vector<server::StoredOp>& out, std::size_t i, const Id& tech) {
        auto& m = maker;
        constexpr auto C = EntityType::case_file, W = EntityType::work_order,
                       I = EntityType::collected_item, E = EntityType::equipment,
                       H = EntityType::handover;
        const Id c = Id::random(), ot = Id::random(), h = Id::random();
        const std::string serial = "ARC" + std::to_string(i);
        const Id row = Id::collected_item(ot, serial);
        const auto now = Timestamp{static_cast<std::int64_t>(clock.now_ms())};
        add(out, m.set(C, c, "modality", std::int64_t{1}));
        add(out, m.set(C, c, "contract", text("K-" + std::to_string(i))));
        add(out, m.set(C, c, "customer_name", text("Cliente " + std::to_string(i))));
        add(out, m.set(C, c, "unit", text("Cercado")));
        add(out, m.set(C, c, "opened_at", now));
        for (const char* s : {"opened", "routed", "in_review", "approved", "in_progress"}) {
            add(out, m.set_status(scratch, C, c, "status", text(s)));
        }
        add(out, m.set(W, ot, "case", c));
        add(out, m.set(W, ot, "technician", tech));
        for (const char* s : {"issued", "assigned", "on_site", "completed"}) {
            add(out, m.set_status(scratch, W, ot, "status", text(s)));
        }
        add(out, m.set(I, row, "work_order", ot));
        add(out, m.set(I, row, "serial", text(serial)));
        add(out, m.set(I, row, "receipt", text("received")));
        add(out, m.event(E, Id::natural("equipment", serial), "custody", text("warehouse")));
        add(out, m.add(H, h, "rows", row));
        add(out, m.set(H, h, "technician", tech));
        add(out, m.set_status(scratch, C, c, "status", text("closed")));
        clock.advance(1000);
    }
};

server::User add_user(server::Store& s, const std::string& name, Role role) {
    server::User u;
    u.id = Id::natural("user", name);
    u.name = name;
    u.role = role;
    u.created_at = 1;
    s.add_user(u);
    return u;
}

/// Writes whole closed cases until `n_ops` ops are in the log: the number of cases.
std::size_t write_history(server::Store& store, std::size_t n_ops) {
    const auto bo = add_user(store, "bench.bo", Role::back_office);
    const auto tech = add_user(store, "bench.tec", Role::technician);
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    History history(now - 45 * k_day, bo.id);
    std::vector<server::StoredOp> ops;
    std::size_t cases = 0, written = 0;
    while (written < n_ops) {
        history.closed_case(ops, cases++, tech.id);
        if (ops.size() >= 5000 || written + ops.size() >= n_ops) {
            written += ops.size();
            server::SyncWrite w;
            w.ops = std::move(ops);
            ops.clear();
            store.commit_many({&w});
        }
    }
    return cases;
}

struct Memory {
    double rss_kib = 0;
    double anon_kib = 0; // of which anonymous (the heap)
    double file_kib = 0; // and file pages (SQLite maps its database: mmap_size)
    double hwm_kib = 0;
    double start_s = 0; // from exec to listening
    double sweep_s = 0; // from listening to the end of the start's sweep (archiving on)
};

/// Starts the server with `args` on `dir`, waits until it listens and has settled, reads
/// its memory, stops it.
Memory measure_start(const ArchiveOptions& o, const std::filesystem::path& dir,
                     const std::string& args) {
    const auto t0 = Clock::now();
    const auto run = bench::start_otsync_server(o.server_bin, args, dir, -1, 3600);
    Memory m;
    m.start_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (args.find("--archive-after-days 0") == std::string::npos) {
        // The start's sweep runs after the server listens: wait until it has ended.
        for (;;) {
            const std::string metrics = bench::bench_http_get(run.port, "/metrics");
            constexpr std::string_view k_sweeps = "\notsync_archive_sweeps_total ";
            const auto at = metrics.find(k_sweeps);
            if (at != std::string::npos && std::stoul(metrics.substr(at + k_sweeps.size())) >= 1) {
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        m.sweep_s = std::chrono::duration<double>(Clock::now() - t0).count() - m.start_s;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const pid_t pid = bench::server_pid_of(run.pid);
    m.rss_kib = static_cast<double>(bench::status_kib(pid, "VmRSS:"));
    m.anon_kib = static_cast<double>(bench::status_kib(pid, "RssAnon:"));
    m.file_kib = static_cast<double>(bench::status_kib(pid, "RssFile:"));
    m.hwm_kib = static_cast<double>(bench::status_kib(pid, "VmHWM:"));
    bench::stop_server(run.pid);
    return m;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

/// One backend's runs: for each N, a history, then R repeats of off / on / restart on fresh
/// copies of it. `fresh(N)` makes the copy and returns the server's store options;
/// `archived()` opens the copy last measured and counts its archived cases.
void run_backend(const ArchiveOptions& o, const std::string& label,
                 const std::filesystem::path& root, std::map<std::string, double>& out,
                 const std::function<std::size_t(std::size_t)>& make_history,
                 const std::function<std::string(std::size_t)>& fresh,
                 const std::function<std::uint64_t()>& archived) {
    for (const std::size_t n : o.ops) {
        const auto t0 = Clock::now();
        const std::size_t cases = make_history(n);
        const std::string key = label + "." + std::to_string(n);
        out[key + ".cases"] = static_cast<double>(cases);
        out[key + ".history_write_s"] = std::chrono::duration<double>(Clock::now() - t0).count();
        std::map<std::string, std::vector<double>> runs;
        double archived_cases = 0;
        for (int rep = 0; rep < o.repeats; ++rep) {
            const auto dir = root / ("server-" + label);
            std::string store = fresh(n);
            const Memory off = measure_start(o, dir, store + " --archive-after-days 0");
            store = fresh(n);
            const Memory on = measure_start(o, dir, store + " --archive-after-days 30");
            const Memory again = measure_start(o, dir, store + " --archive-after-days 30");
            archived_cases = static_cast<double>(archived());
            for (const auto& [mode, m] : {std::pair{"off", off}, {"on", on}, {"restart", again}}) {
                runs[std::string(mode) + ".rss_kib"].push_back(m.rss_kib);
                runs[std::string(mode) + ".rss_anon_kib"].push_back(m.anon_kib);
                runs[std::string(mode) + ".rss_file_kib"].push_back(m.file_kib);
                runs[std::string(mode) + ".hwm_kib"].push_back(m.hwm_kib);
                runs[std::string(mode) + ".start_s"].push_back(m.start_s);
                runs[std::string(mode) + ".sweep_s"].push_back(m.sweep_s);
                std::cerr << "archive: " << label << " ops=" << n << " repeat=" << rep + 1 << " "
                          << mode << ": VmRSS " << m.rss_kib << " KiB (anon " << m.anon_kib
                          << ", file " << m.file_kib << "), VmHWM " << m.hwm_kib
                          << " KiB, listening after " << m.start_s << " s, sweep ended "
                          << m.sweep_s << " s later\n";
            }
        }
        for (const auto& [name, v] : runs) {
            out[key + "." + name] = median(v);
        }
        out[key + ".archived_cases"] = archived_cases;
    }
    if (o.ops.size() >= 2) {
        const std::string small = label + "." + std::to_string(o.ops.front()) + ".";
        const std::string big = label + "." + std::to_string(o.ops.back()) + ".";
        for (const char* mode : {"off", "on", "restart"}) {
            out[label + ".ratio_rss_largest_vs_smallest." + mode] =
                out[big + mode + ".rss_kib"] / std::max(1.0, out[small + mode + ".rss_kib"]);
            out[label + ".ratio_anon_largest_vs_smallest." + mode] =
                out[big + mode + ".rss_anon_kib"] /
                std::max(1.0, out[small + mode + ".rss_anon_kib"]);
        }
    }
}

std::vector<std::size_t> parse_list(const std::string& s) {
    std::vector<std::size_t> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');) {
        out.push_back(std::stoul(item));
    }
    return out;
}

} // namespace

int run_archive_bench(int argc, char** argv) {
    ArchiveOptions o;
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
        if (a == "--ops") {
            o.ops = parse_list(next());
        } else if (a == "--repeats") {
            o.repeats = std::clamp(std::stoi(next()), 1, 100);
        } else if (a == "--backends") {
            const std::string list = "," + next() + ",";
            o.sqlite = list.find(",sqlite,") != std::string::npos;
            o.pg = list.find(",pg,") != std::string::npos;
            if (!o.sqlite && !o.pg) {
                std::cerr << "otsync-bench: --backends lists sqlite, pg or both\n";
                return 2;
            }
        } else if (a == "--server-bin") {
            o.server_bin = next();
        } else if (a == "--json") {
            o.json = true;
        } else {
            std::cerr << "otsync-bench: unknown option '" << a << "'\n";
            return 2;
        }
    }
    if (o.ops.empty() || std::find(o.ops.begin(), o.ops.end(), 0) != o.ops.end()) {
        std::cerr << "otsync-bench: --ops takes whole numbers above 0, separated by commas\n";
        return 2;
    }
    if (!std::filesystem::exists(o.server_bin)) {
        std::cerr << "otsync-bench: no server binary at " << o.server_bin
                  << " (use --server-bin)\n";
        return 2;
    }
    std::map<std::string, double> out;
    const auto root = std::filesystem::temp_directory_path() /
                      ("otsync-bench-archive-" + std::to_string(getpid()));
    std::filesystem::create_directories(root);

    // ---- SQLite: the history in its own folder, each run on a copy of the file ----
    if (o.sqlite) {
        const auto run_dir = root / "sqlite-run";
        run_backend(
            o, "sqlite", root, out,
            [&](std::size_t n) {
                const auto dir = root / ("sqlite-" + std::to_string(n));
                server::SqliteOptions so;
                std::filesystem::create_directories(dir);
                so.path = (dir / "otsync.db").string();
                so.synchronous_full = false; // writing the history only
                return write_history(*server::open_sqlite_store(so), n);
            },
            [&](std::size_t n) {
                // The store was closed cleanly: its WAL is checkpointed into the one file.
                std::filesystem::remove_all(run_dir);
                std::filesystem::create_directories(run_dir);
                std::filesystem::copy_file(root / ("sqlite-" + std::to_string(n)) / "otsync.db",
                                           run_dir / "otsync.db");
                return "--data-dir " + run_dir.string();
            },
            [&] {
                server::SqliteOptions so;
                so.path = (run_dir / "otsync.db").string();
                return server::open_sqlite_store(so)->archived_count();
            });
    }

    // ---- PostgreSQL: the history in a template database, each run on a copy of it ----
    if (o.pg) {
        bench::PrivatePg cluster(root / "pg", -1);
        bool run_exists = false;
        run_backend(
            o, "pg", root, out,
            [&](std::size_t n) {
                server::PostgresOptions po;
                po.conninfo = cluster.create_database("history_" + std::to_string(n));
                return write_history(*server::open_postgres_store(po), n);
            },
            [&](std::size_t n) {
                if (run_exists) {
                    cluster.drop_database("run");
                }
                const std::string url =
                    cluster.create_database("run", "history_" + std::to_string(n));
                run_exists = true;
                return "--data-dir " + (root / "server-pg").string() + " --store " +
                       bench::shell_quoted(url);
            },
            [&] {
                server::PostgresOptions po;
                po.conninfo = cluster.conninfo("run");
                return server::open_postgres_store(po)->archived_count();
            });
    }
    std::filesystem::remove_all(root);

    std::string sizes;
    for (const auto n : o.ops) {
        sizes += (sizes.empty() ? "" : ",") + std::to_string(n);
    }
    bench::print_figures("otsync-bench archive (ops=" + sizes +
                             ", repeats=" + std::to_string(o.repeats) +
                             (o.sqlite ? ", sqlite" : "") + (o.pg ? ", postgres" : "") + ")",
                         out, o.json);
    return 0;
}
