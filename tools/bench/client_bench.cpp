// otsync-bench client: a handheld's first download and recording speed, against the
// real server code in-process (no socket, so the figures are the client's and the
// server's work, not the network's).
//
//   otsync-bench client [--ots N,M,...] [--records R] [--json]
//
// For each N (default 1,000 and 10,000): a server with N OTs assigned to one technician
// (each OT: its case's customer fields, kind, status, address, window, 5 expected
// serials), a fresh device enrolls and downloads everything (persisted: encrypted ops in
// SQLite with synchronous=FULL, folded into the replica). Then R rows are recorded one by
// one (each durable before it returns) for the latency percentiles.
#include "bench_ots.hpp"
#include "figures.hpp"

#include "api/app.hpp"
#include "http/content_coding.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/client.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>

using namespace otsync;
using Clock = std::chrono::steady_clock;

namespace {

class Loopback final : public client::Transport {
public:
    explicit Loopback(server::App& app) : m_app(app) {}
    client::HttpReply post(const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) override {
        auto h = headers; // decoded first, as the HTTP layer does
        auto b = body;
        if (auto refused = server::decode_request(h, b, 8u << 20)) {
            return {refused->status, refused->body};
        }
        const server::RouteRequest r{"POST", path, h, b};
        const auto reply = m_app.handle(r);
        return {reply.status, reply.body};
    }

private:
    server::App& m_app;
};

std::uint64_t dir_bytes(const std::filesystem::path& dir, const std::string& prefix) {
    std::uint64_t n = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
        if (f.path().filename().string().rfind(prefix, 0) == 0) {
            n += f.file_size();
        }
    }
    return n;
}

} // namespace

int run_client_bench(int argc, char** argv) {
    std::vector<std::size_t> sizes{1000, 10000};
    std::size_t records = 1000;
    bool json = false;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--ots" && i + 1 < argc) {
            sizes.clear();
            std::stringstream ss(argv[++i]);
            for (std::string n; std::getline(ss, n, ',');) {
                sizes.push_back(std::stoul(n));
            }
        } else if (a == "--records" && i + 1 < argc) {
            records = std::stoul(argv[++i]);
        } else if (a == "--json") {
            json = true;
        } else {
            std::cerr
                << "otsync-bench: usage: otsync-bench client [--ots N,M] [--records R] [--json]\n";
            return 2;
        }
    }
    std::map<std::string, double> out;
    const auto root = std::filesystem::temp_directory_path() /
                      ("otsync-bench-client-" + std::to_string(::getpid()));
    for (const std::size_t n : sizes) {
        const auto dir = root / std::to_string(n);
        std::filesystem::create_directories(dir);
        SystemClock clock;
        server::SqliteOptions so;
        so.path = (dir / "server.db").string();
        auto store = server::open_sqlite_store(so);
        server::SyncService sync(*store, clock, {});
        server::App app(*store, sync, clock);
        const server::User bo{Id::random(), "bo", Role::back_office, false, 0, {}, {}, {}};
        const server::User tech{Id::random(), "tec", Role::technician, false, 0, {}, {}, {}};
        store->add_user(bo);
        store->add_user(tech);
        std::vector<Id> ots;
        std::mt19937_64 rng(42);
        for (std::size_t start = 0; start < n; start += 1000) {
            sync.submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
                std::vector<Op> ops;
                for (std::size_t i = start; i < std::min(n, start + 1000); ++i) {
                    const Id ot = Id::random(), c = Id::random();
                    ots.push_back(ot);
                    bench::add_assigned_ot(m, ops, ot, c, tech.id, i);
                    for (int k = 0; k < 5; ++k) {
                        ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                            text("ZTEG" + std::to_string(rng() % 100000000))));
                    }
                }
                return ops;
            });
        }
        Loopback transport(app);
        std::array<std::uint8_t, 32> key{};
        key.fill(0x42);
        const std::string tag = std::to_string(n);
        double seconds = 0;
        std::uint64_t received = 0;
        {
            client::Client c((dir / "device.db").string(), key);
            c.enroll(transport, "http://loopback", sync.new_enroll_code(tech.id), "bench");
            const auto t0 = Clock::now();
            received = c.sync(transport).received;
            seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        }
        // The database as the first download left it, once closed (WAL checkpointed).
        out["download." + tag + ".db_bytes_per_ot"] =
            static_cast<double>(dir_bytes(dir, "device.db")) / static_cast<double>(n);
        {
            client::Client c((dir / "device.db").string(), key);
            for (std::size_t i = 0; i < std::min(records, ots.size()); ++i) {
                c.set_status(ots[i].hex(), "on_site", ""); // rows are recorded on site
            }
            std::vector<double> lat;
            for (std::size_t i = 0; i < records; ++i) {
                const auto r0 = Clock::now();
                c.collect(ots[i % ots.size()].hex(), "REC" + std::to_string(i), "", "migration", "",
                          "");
                lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - r0).count());
            }
            std::sort(lat.begin(), lat.end());
            if (!lat.empty()) {
                out["record." + tag + ".p50_ms"] = lat[lat.size() / 2];
                out["record." + tag + ".p99_ms"] = lat[lat.size() * 99 / 100];
            }
        }
        out["download." + tag + ".seconds"] = seconds;
        out["download." + tag + ".ops"] = static_cast<double>(received);
        out["download." + tag + ".persisted_ops_per_s"] = static_cast<double>(received) / seconds;
    }
    if (sizes.size() >= 2) {
        out["ratio.time_largest_vs_smallest"] =
            out["download." + std::to_string(sizes.back()) + ".seconds"] /
            out["download." + std::to_string(sizes.front()) + ".seconds"];
    }
    std::filesystem::remove_all(root);
    bench::print_figures("otsync-bench client (records=" + std::to_string(records) + ")", out,
                         json);
    return 0;
}
