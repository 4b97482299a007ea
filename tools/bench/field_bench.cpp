// otsync-bench field: one technician's week over a bad mobile link, end to end: the real
// otsync-server process, the real client-core (its own HTTP transport), and between them a
// loopback TCP proxy in this process that behaves like the link.
//
//   otsync-bench field [--server-bin PATH] [--rate-bps N] [--rtt-ms N] [--cuts N]
//                      [--items N] [--ots N] [--photos N] [--photo-bytes N] [--json]
//
// Seeding (in-process on the data folder's SQLite file, before the server starts, as
// `otsync-bench server` seeds): a back-office user and two technicians, A (measured) and B
// (the comparison), each with N OTs (--ots, default 50) shaped as `otsync-bench client`
// makes them (the case's customer name and reference cell, kind, address, window,
// technician, status issued then assigned, 5 expected serials), and an enrollment code
// each. The server then starts on that folder, and each device (a client::Client on its own
// SQLite file) enrolls through the server's HTTP API, straight to its port: enrollment is
// not measured.
//
// The link (LinkProxy, Boost.Asio on a thread of its own) listens on 127.0.0.1:0 and
// forwards each accepted connection to the server. Each direction is one link shared by
// every connection: bytes are read in chunks of at most 512 bytes and paced at the rate (a
// token bucket one chunk deep: a chunk of n bytes starts once the one before it has gone
// and takes n / rate), then held for the one-way latency (RTT / 2): no byte leaves the
// proxy sooner than that after it arrived. At most 16 KiB wait in each direction (the
// link's queue); beyond that the proxy stops reading and TCP pushes back on the sender.
// Bytes are counted as they leave the proxy (wire bytes: HTTP headers included, TCP/IP
// overhead not): up = client to server, down = server to client. A small HTTP/1.1 framer
// on each direction (Content-Length framing, which client and server both use) counts the
// requests started, the answers delivered and the header bytes. Connecting costs nothing
// (no handshake round trip is modelled).
//
// Cuts, in the week's upload only: C of them (--cuts, default 3), when the upload's progress
// reaches (2k - 1) / (2 (C + 1)) of U0, k = 1..C: the middles of C + 1 equal slices (12.5 %,
// 37.5 %, 62.5 % by default). U0 is the up bytes of technician B's identical week on the
// unshaped link (phase d, run before c for that reason). Progress is the up bytes of the
// phase's answered requests plus those of the request in flight, so a resend does not move
// the next cut. (Not 25 / 50 / 75 %: the default week is 4 batches of 500 ops of nearly
// equal size, so quarter marks fall on a request's last byte, and every cut would cost
// exactly one whole batch or none; a slice's middle costs on average what a cut at a random
// moment costs.) The chunk that reaches a cut point is cut short at it, then both sockets
// of that connection are closed (FIN, or RST where unread bytes remain): the request in
// flight is lost part-way, and nothing the proxy held for that connection is delivered.
//
// Phases, in the order they run:
//   a. first download: A's fresh device syncs through the shaped link and receives its OTs.
//   d. B's device downloads, records the same week (phase b's calls) and uploads it through
//      the same proxy, unshaped (no cap, no delay, no cut): the upload's bytes are
//      field.week.*_uncut, and its up bytes place the cuts.
//   b. the week offline on A's device: on each OT, arrival on site, then its items (item i
//      on OT i mod N; --items, default 200: 4 per OT), each with its serial (the OT's
//      expected ones first), type (description), reason (every 4th from the second on
//      "damaged" with its defect) and, every 4th from the fourth on, observations; each
//      expected serial not collected is reported missing (the customer keeps it), the
//      customer signs the rows, and the OT is completed. field.week.ops: the ops then in
//      the outbox (Client::pending). No handover: the Anexo 4 handover is made at the
//      warehouse, not in the field.
//   c. the week's upload through the shaped link with the cuts. The client's own retries
//      ride them out (its default RetryPolicy: back-off from 1 s, doubling, 20 % jitter);
//      should a sync still give up (network or timeout), the bench calls it again.
//      Each customer's signature is its own PNG of about 1.4 KB, an attachment uploaded after
//      the rows in the same sync: .bytes_up_rows is the up bytes when the first chunk left.
//   e. photos: --photos (default 20) JPEGs of --photo-bytes (default 150,000) of damaged
//      items, taken on A's device after the week, uploaded through the shaped link with C
//      cuts placed like c's over their bytes. .throughput_vs_link = the photos' bytes per
//      second over the link's rate (1.0: all of its capacity); .wire_vs_payload = the up
//      bytes (chunk headers, resends) over the photos' bytes.
//
// Figures of c: .seconds is the wall time until the outbox is empty and the last answer
// applied; .requests the HTTP requests started through the proxy (resent ones included);
// .ideal_seconds = (bytes_up + bytes_down) / (rate / 8) + requests × RTT, the same wire
// bytes at the link's rate plus one round trip per request; .ratio_vs_ideal = seconds /
// ideal_seconds; .ratio_vs_uncut_ideal the same against the uncut week's bytes and requests
// at the link's rate and RTT (.ideal_seconds_uncut: what the cuts cost counts there);
// .retries the requests that got no complete answer (their connection
// closed first), however they were sent again: by the client after a back-off
// (.client_backoffs, .backoff_seconds) or by the transport at once on a new connection;
// .resent_bytes = bytes_up - bytes_up_uncut.
//
// The end check: the server stopped, its SQLite log read back: each device's ops are stored
// exactly once (as many as it made, no (replica, counter) twice) and every item of both
// weeks is there with its serial, on its OT, once; otherwise one line on stderr and exit 1.
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "../../tests/link_proxy.hpp"
#include "../../tests/test_images.hpp"
#include "bench_ots.hpp"
#include "bench_process.hpp"
#include "figures.hpp"
#include "otsync/attachment.hpp"
#include "otsync/client.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace otsync;
using otsync::testing::LinkProxy;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t k_expected_per_ot = 5;
constexpr int k_max_sync_calls = 20; // the bench's own calls of one upload

struct Options {
    std::string server_bin;
    std::uint64_t rate_bps = 64'000;
    std::uint64_t rtt_ms = 300;
    std::uint64_t cuts = 3;
    std::uint64_t items = 200;
    std::uint64_t ots = 50;
    std::uint64_t photos = 20;
    std::uint64_t photo_bytes = 150'000;
    bool json = false;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "otsync-bench: " << why
              << " (usage: otsync-bench field [--server-bin PATH] [--rate-bps N] [--rtt-ms N] "
                 "[--cuts N] [--items N] [--ots N] [--photos N] [--photo-bytes N] [--json])\n";
    std::exit(2);
}

std::uint64_t whole_number(const std::string& s, const std::string& flag, std::uint64_t min,
                           std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || errno || !end || *end || s[0] == '-' || v < min || v > max) {
        usage(flag + " takes a whole number from " + std::to_string(min) + " to " +
              std::to_string(max));
    }
    return v;
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// One technician's OTs as seeded: ids (hex) and expected serials.
struct Assigned {
    Id tech;
    std::vector<Id> ots;
    std::vector<std::vector<std::string>> expected;
    std::string code; // the device's enrollment code
};

/// Seeds the data folder (see the header): A's and B's OTs, drawn alike (same seed), so the
/// two weeks weigh the same on the wire.
std::array<Assigned, 2> seed(const std::filesystem::path& dir, std::size_t n) {
    std::filesystem::create_directories(dir);
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    so.synchronous_full = false; // seeding only; the server reopens with FULL
    auto store = server::open_sqlite_store(so);
    SystemClock clock;
    server::SyncService sync(*store, clock, {});
    const server::User bo{Id::random(), "field.bo", Role::back_office, false, 0, {}, {}, {}};
    store->add_user(bo);
    std::array<Assigned, 2> out;
    const char* const names[2] = {"field.tec.a", "field.tec.b"};
    for (std::size_t t = 0; t < 2; ++t) {
        Assigned& a = out[t];
        a.tech = Id::random();
        store->add_user({a.tech, names[t], Role::technician, false, 0, {}, {}, {}});
        std::mt19937_64 rng(42);
        sync.submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
            std::vector<Op> ops;
            for (std::size_t i = 0; i < n; ++i) {
                const Id ot = Id::random(), c = Id::random();
                a.ots.push_back(ot);
                bench::add_assigned_ot(m, ops, ot, c, a.tech, i);
                std::vector<std::string> serials;
                while (serials.size() < k_expected_per_ot) {
                    char serial[16];
                    std::snprintf(serial, sizeof serial, "ZTEG%08u",
                                  static_cast<unsigned>(rng() % 100'000'000));
                    if (std::find(serials.begin(), serials.end(), serial) == serials.end()) {
                        serials.emplace_back(serial);
                        ops.push_back(
                            m.add(EntityType::work_order, ot, "expected_equipment", text(serial)));
                    }
                }
                a.expected.push_back(std::move(serials));
            }
            return ops;
        });
        a.code = sync.new_enroll_code(a.tech);
    }
    return out;
}

/// OT o's signature: a valid PNG of about 1.4 KB, as a signature pad gives; each customer's
/// differs (the same on both devices, so the two weeks weigh the same).
std::string signature_png(std::size_t o) {
    return otsync::testing::png_with_text(
        otsync::testing::random_bytes(1'350, static_cast<unsigned>(o + 1)));
}

/// Notes the link's up bytes when the first attachment chunk of a sync leaves: what the
/// rows alone cost on the wire.
class FirstChunk : public client::Transport {
public:
    FirstChunk(client::Transport& next, LinkProxy& proxy) : m_next(next), m_proxy(proxy) {}
    client::HttpReply post(const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) override {
        if (!up_before && path.rfind("/v1/blobs/", 0) == 0) {
            up_before = m_proxy.counts().up;
        }
        return m_next.post(path, headers, body);
    }
    void cancel() override { m_next.cancel(); }
    std::optional<std::uint64_t> up_before;

private:
    client::Transport& m_next;
    LinkProxy& m_proxy;
};

/// The items a week records on each OT: (OT index, serial).
std::vector<std::vector<std::string>> week_items(const Assigned& a, std::size_t items) {
    std::vector<std::vector<std::string>> per_ot(a.ots.size());
    for (std::size_t i = 0; i < items; ++i) {
        const std::size_t o = i % a.ots.size(), k = i / a.ots.size();
        per_ot[o].push_back(k < a.expected[o].size() ? a.expected[o][k]
                                                     : "EXTRA" + std::to_string(100'000 + i));
    }
    return per_ot;
}

/// The week offline (phase b): OT by OT, as a technician records it on site.
void record_week(client::Client& c, const Assigned& a, std::size_t items) {
    static const char* const types[4] = {"ONT ZTE F670L", "Fuente de poder 12V",
                                         "Router TP-Link Archer C6", "Decodificador HD"};
    const auto per_ot = week_items(a, items);
    for (std::size_t o = 0; o < a.ots.size(); ++o) {
        const std::string ot = a.ots[o].hex();
        c.set_status(ot, "on_site", "");
        for (std::size_t k = 0; k < per_ot[o].size(); ++k) {
            const bool damaged = k % 4 == 1;
            const auto verdict =
                c.collect(ot, per_ot[o][k], types[k % 4], damaged ? "damaged" : "migration",
                          damaged ? "no enciende" : "", k % 4 == 3 ? "carcasa rayada" : "");
            if (verdict == OTSYNC_VERDICT_ALREADY_RECORDED) {
                throw std::runtime_error("field: item " + per_ot[o][k] + " recorded twice");
            }
        }
        for (const auto& serial : a.expected[o]) {
            if (std::find(per_ot[o].begin(), per_ot[o].end(), serial) == per_ot[o].end()) {
                c.report_missing(ot, serial, "el cliente lo conserva");
            }
        }
        if (!per_ot[o].empty()) {
            const std::string png = signature_png(o);
            c.sign(ot, reinterpret_cast<const std::uint8_t*>(png.data()), png.size());
        }
        c.set_status(ot, "completed", "");
    }
}

/// Syncs until the outbox is empty, calling sync again when one gives up on the network;
/// counts the client's back-offs.
struct Upload {
    double seconds = 0;
    int calls = 0;
    std::uint64_t backoffs = 0;
    double backoff_seconds = 0;
};

Upload upload(client::Client& c, client::Transport& t) {
    Upload u;
    const client::ProgressFn progress = [&](const client::SyncProgress& p) {
        if (p.retry_in_ms > 0) {
            u.backoffs++;
            u.backoff_seconds += p.retry_in_ms / 1000.0;
        }
        return true;
    };
    const auto t0 = Clock::now();
    for (;;) {
        if (++u.calls > k_max_sync_calls) {
            throw std::runtime_error("field: the upload did not get through in " +
                                     std::to_string(k_max_sync_calls) + " syncs");
        }
        try {
            c.sync(t, progress);
            if (c.pending() == 0) {
                break;
            }
        } catch (const client::ClientError& e) {
            if (e.code() != OTSYNC_ERR_NETWORK && e.code() != OTSYNC_ERR_TIMEOUT) {
                throw;
            }
        }
    }
    u.seconds = seconds_since(t0);
    return u;
}

/// Stops the server however the bench ends.
struct ServerGuard {
    explicit ServerGuard(bench::ServerRun r) : run(r) {}
    ~ServerGuard() { stop(); }
    ServerGuard(const ServerGuard&) = delete;
    ServerGuard& operator=(const ServerGuard&) = delete;
    void stop() {
        if (run.pid > 0) {
            bench::stop_server(run.pid);
            run.pid = -1;
        }
    }
    bench::ServerRun run;
};

/// The bench's temporary folder, removed however the bench ends (declared first, so after
/// the devices and the server that use it are gone).
struct TempRoot {
    explicit TempRoot(std::filesystem::path p) : path(std::move(p)) {
        std::filesystem::create_directories(path);
    }
    ~TempRoot() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempRoot(const TempRoot&) = delete;
    TempRoot& operator=(const TempRoot&) = delete;
    std::filesystem::path path;
};

/// The end check on the stopped server's log: what is wrong, or "".
std::string check_log(const std::filesystem::path& dir,
                      const std::vector<std::pair<std::uint64_t, std::size_t>>& made,
                      const std::array<Assigned, 2>& techs, std::size_t items) {
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    auto store = server::open_sqlite_store(so);
    crdt::Replica state;
    std::map<std::uint64_t, std::set<std::uint64_t>> counters;
    std::map<std::uint64_t, std::size_t> stored;
    for (const auto& so_op : store->ops_after(0, 0)) {
        state.apply(so_op.op);
        counters[so_op.op.id.replica].insert(so_op.op.id.counter);
        stored[so_op.op.id.replica]++;
    }
    for (const auto& [replica, n] : made) {
        if (stored[replica] != n || counters[replica].size() != n) {
            return "device " + std::to_string(replica) + " made " + std::to_string(n) +
                   " ops; the server stored " + std::to_string(stored[replica]) + " (" +
                   std::to_string(counters[replica].size()) + " distinct)";
        }
    }
    for (const auto& a : techs) {
        const auto per_ot = week_items(a, items);
        std::size_t found = 0;
        for (std::size_t o = 0; o < a.ots.size(); ++o) {
            const auto& rows =
                state.referrers(EntityType::collected_item, "work_order", Value{a.ots[o]});
            found += rows.size();
            for (const auto& serial : per_ot[o]) {
                const Id item = Id::collected_item(a.ots[o], normalize_serial(serial));
                const Value* v = state.get(EntityType::collected_item, item, "serial");
                if (!rows.contains(item) || !v || !std::holds_alternative<std::string>(*v) ||
                    std::get<std::string>(*v) != normalize_serial(serial)) {
                    return "item " + serial + " of OT " + a.ots[o].hex() + " is not on the server";
                }
            }
        }
        if (found != items) {
            return std::to_string(items) + " items recorded, " + std::to_string(found) +
                   " on the server";
        }
    }
    return "";
}

} // namespace

int run_field_bench(int argc, char** argv) {
    Options o;
    o.server_bin =
        (std::filesystem::path(argv[0]).parent_path().parent_path() / "server" / "otsync-server")
            .string();
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                usage(a + " needs a value");
            }
            return argv[++i];
        };
        if (a == "--server-bin") {
            o.server_bin = next();
        } else if (a == "--rate-bps") {
            o.rate_bps = whole_number(next(), a, 1'000, 1'000'000'000);
        } else if (a == "--rtt-ms") {
            o.rtt_ms = whole_number(next(), a, 0, 10'000);
        } else if (a == "--cuts") {
            o.cuts = whole_number(next(), a, 0, 100);
        } else if (a == "--items") {
            o.items = whole_number(next(), a, 1, 100'000);
        } else if (a == "--ots") {
            o.ots = whole_number(next(), a, 1, 10'000);
        } else if (a == "--photos") {
            o.photos = whole_number(next(), a, 0, 10'000);
        } else if (a == "--photo-bytes") {
            o.photo_bytes = whole_number(next(), a, 1'000, 4'000'000);
        } else if (a == "--json") {
            o.json = true;
        } else {
            usage("unknown option '" + a + "'");
        }
    }
    if (!std::filesystem::exists(o.server_bin)) {
        usage("no server binary at " + o.server_bin + " (use --server-bin)");
    }
    const std::size_t n_ots = o.ots, items = o.items;
    const double rate = static_cast<double>(o.rate_bps) / 8; // bytes per second
    const double rtt = static_cast<double>(o.rtt_ms) / 1000;
    const LinkProxy::Shape bad_link{rate, std::chrono::microseconds(o.rtt_ms * 1000 / 2), {}};

    std::map<std::string, double> out;
    const TempRoot temp(std::filesystem::temp_directory_path() /
                        ("otsync-bench-field-" + std::to_string(::getpid())));
    const auto& root = temp.path;
    const auto data = root / "server";
    const auto techs = seed(data, n_ots);
    ServerGuard server(
        bench::start_otsync_server(o.server_bin, "--data-dir " + data.string(), data, -1));
    LinkProxy proxy(server.run.port);
    const std::string direct = "http://127.0.0.1:" + std::to_string(server.run.port);
    const std::string linked = "http://127.0.0.1:" + std::to_string(proxy.port());
    const auto to_server = client::make_http_transport(direct);
    const auto link_a = client::make_http_transport(linked);
    const auto link_b = client::make_http_transport(linked);
    std::array<std::uint8_t, 32> key{};
    key.fill(0x42);
    client::Client a((root / "device-a.db").string(), key);
    client::Client b((root / "device-b.db").string(), key);
    a.enroll(*to_server, linked, techs[0].code, "field A");
    b.enroll(*to_server, linked, techs[1].code, "field B");

    // ---- a. first download, through the bad link ----
    proxy.shape(bad_link);
    auto t0 = Clock::now();
    const auto first = a.sync(*link_a);
    const double first_s = seconds_since(t0);
    auto n = proxy.counts();
    out["field.first_download.bytes_down"] = static_cast<double>(n.down);
    out["field.first_download.bytes_up"] = static_cast<double>(n.up);
    out["field.first_download.bytes_per_ot"] =
        static_cast<double>(n.down) / static_cast<double>(n_ots);
    out["field.first_download.seconds"] = first_s;
    out["field.first_download.requests"] = static_cast<double>(n.requests);
    out["field.first_download.ops"] = static_cast<double>(first.received);

    // ---- d. B's same week on the link without cap, delay or cuts ----
    proxy.shape({});
    b.sync(*link_b);
    record_week(b, techs[1], items);
    const std::size_t made_b = b.pending();
    proxy.shape({});
    const Upload uncut = upload(b, *link_b);
    n = proxy.counts();
    const std::uint64_t up_uncut = n.up;
    out["field.week.bytes_up_uncut"] = static_cast<double>(n.up);
    out["field.week.bytes_down_uncut"] = static_cast<double>(n.down);
    out["field.week.requests_uncut"] = static_cast<double>(n.requests);
    out["field.week.seconds_uncut"] = uncut.seconds;

    // ---- b. A's week offline ----
    record_week(a, techs[0], items);
    std::size_t made_a = a.pending();
    out["field.week.items"] = static_cast<double>(items);
    out["field.week.ops"] = static_cast<double>(made_a);

    // ---- c. the week's upload through the bad link, cut C times ----
    LinkProxy::Shape cut_link = bad_link;
    for (std::uint64_t k = 1; k <= o.cuts; ++k) { // the middles of C + 1 equal slices
        cut_link.cuts.push_back(up_uncut * (2 * k - 1) / (2 * (o.cuts + 1)));
    }
    proxy.shape(cut_link);
    FirstChunk watched(*link_a, proxy);
    const Upload week = upload(a, watched);
    n = proxy.counts();
    // The rows alone, and with the customers' signatures that follow them.
    out["field.week.bytes_up_rows"] = static_cast<double>(watched.up_before.value_or(n.up));
    out["field.week.signatures"] =
        static_cast<double>(a.state().entities(EntityType::work_order).size());
    const double ideal =
        static_cast<double>(n.up + n.down) / rate + static_cast<double>(n.requests) * rtt;
    out["field.week.bytes_up"] = static_cast<double>(n.up);
    out["field.week.bytes_down"] = static_cast<double>(n.down);
    out["field.week.bytes_per_item"] = static_cast<double>(n.up) / static_cast<double>(items);
    out["field.week.header_bytes_up"] = static_cast<double>(n.header_up);
    out["field.week.header_bytes_down"] = static_cast<double>(n.header_down);
    out["field.week.seconds"] = week.seconds;
    out["field.week.ideal_seconds"] = ideal;
    out["field.week.ratio_vs_ideal"] = week.seconds / ideal;
    // The stricter ideal: the uncut week's bytes and requests (what the cuts cost counts).
    const double ideal_uncut =
        (out["field.week.bytes_up_uncut"] + out["field.week.bytes_down_uncut"]) / rate +
        out["field.week.requests_uncut"] * rtt;
    out["field.week.ideal_seconds_uncut"] = ideal_uncut;
    out["field.week.ratio_vs_uncut_ideal"] = week.seconds / ideal_uncut;
    out["field.week.requests"] = static_cast<double>(n.requests);
    out["field.week.connections"] = static_cast<double>(n.connections);
    out["field.week.cuts"] = static_cast<double>(n.cuts);
    out["field.week.retries"] = static_cast<double>(n.unanswered);
    out["field.week.client_backoffs"] = static_cast<double>(week.backoffs);
    out["field.week.backoff_seconds"] = week.backoff_seconds;
    out["field.week.sync_calls"] = static_cast<double>(week.calls);
    out["field.week.resent_bytes"] = static_cast<double>(n.up) - static_cast<double>(up_uncut);

    // ---- e. photos of damaged items, taken after the week, through the same link ----
    std::vector<std::string> photos;
    for (std::uint64_t i = 0; i < o.photos; ++i) {
        const std::size_t ot = i % n_ots;
        photos.push_back(otsync::testing::jpeg_of(
            otsync::testing::random_bytes(o.photo_bytes, static_cast<unsigned>(1'000 + i))));
        a.photo(techs[0].ots[ot].hex(), techs[0].expected[ot][0],
                reinterpret_cast<const std::uint8_t*>(photos.back().data()), photos.back().size());
    }
    made_a += a.pending();
    if (!photos.empty()) {
        std::uint64_t payload = 0;
        for (const auto& p : photos) {
            payload += p.size();
        }
        LinkProxy::Shape photo_link = bad_link;
        for (std::uint64_t k = 1; k <= o.cuts; ++k) {
            photo_link.cuts.push_back(payload * (2 * k - 1) / (2 * (o.cuts + 1)));
        }
        proxy.shape(photo_link);
        const Upload sent = upload(a, *link_a);
        n = proxy.counts();
        out["field.photos.count"] = static_cast<double>(photos.size());
        out["field.photos.payload_bytes"] = static_cast<double>(payload);
        out["field.photos.bytes_up"] = static_cast<double>(n.up);
        out["field.photos.bytes_down"] = static_cast<double>(n.down);
        out["field.photos.requests"] = static_cast<double>(n.requests);
        out["field.photos.cuts"] = static_cast<double>(n.cuts);
        out["field.photos.seconds"] = sent.seconds;
        // What the photos' own bytes got of the link: 1.0 would be every bit of its capacity.
        out["field.photos.throughput_vs_link"] = static_cast<double>(payload) / sent.seconds / rate;
        out["field.photos.wire_vs_payload"] =
            static_cast<double>(n.up) / static_cast<double>(payload);
    }

    // ---- the end check, on the stopped server's log ----
    const std::uint64_t replica_a = a.replica(), replica_b = b.replica();
    server.stop();
    const std::string wrong =
        check_log(data, {{replica_a, made_a}, {replica_b, made_b}}, techs, items);
    if (!wrong.empty()) {
        std::cerr << "otsync-bench: field: " << wrong << "\n";
        return 1;
    }
    {
        server::SqliteOptions so;
        so.path = (data / "otsync.db").string();
        const auto store = server::open_sqlite_store(so);
        for (std::size_t i = 0; i < std::min(n_ots, items); ++i) {
            photos.push_back(signature_png(i)); // signed: every OT with rows
        }
        for (const auto& p : photos) {
            const auto* bytes = reinterpret_cast<const std::uint8_t*>(p.data());
            if (store->blob_data(attachment::blob_hash({bytes, p.size()})) != p) {
                std::cerr << "otsync-bench: field: an attachment is not on the server whole\n";
                return 1;
            }
        }
    }
    bench::print_figures(
        "otsync-bench field (rate=" + std::to_string(o.rate_bps) +
            " bit/s, rtt=" + std::to_string(o.rtt_ms) + " ms, cuts=" + std::to_string(o.cuts) +
            ", items=" + std::to_string(items) + ", ots=" + std::to_string(n_ots) + ")",
        out, o.json);
    return 0;
}
