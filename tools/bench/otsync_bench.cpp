// otsync-bench: speed and size figures, reported in docs/benchmarks.md.
//
//   otsync-bench merge [--ots N] [--million N] [--seed S] [--repeats R] [--json]
//   otsync-bench server ...   (server_bench.cpp)      otsync-bench client ...   (client_bench.cpp)
//   otsync-bench archive ...  (archive_bench.cpp)    otsync-bench field ...    (field_bench.cpp)
//
// The "merge" workload (mirrored for Yjs by tools/bench/peers/yjs_merge.mjs):
//   base:     the server creates N OTs (default 1,000); each OT has 10 register fields
//             (5 texts of 16 characters, 5 integers, on the OT's case) and 5 expected
//             serials (OR-set adds on the work order): 15 ops per OT.
//   edits:    three replicas (alice, bob, carol) start from the base; each edits 30 % of
//             the fields (3 of 10) of 30 % of the OTs: 900 ops each.
//   exchange: every replica merges the other two's edits (1,800 ops each, 5,400 in all);
//             only the merge is timed (and, separately, decode + merge from the binary
//             encoding); the three digests must be equal. Median of R repeats.
//   million:  1,000,000 generated ops (8 replicas, 10,000 OTs × 10 fields) merged into
//             one fresh replica.
// Sizes: bytes per op of the base and of one replica's edits, binary, JSON, gzipped.
// Memory: heap bytes per OT after the base, and per op after the million.
#include "figures.hpp"
#include "otsync/codec.hpp"
#include "otsync/crdt.hpp"

#include <zlib.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace otsync;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t k_epoch = 1'795'000'000'000;

const char* const k_text_fields[5] = {"customer_name", "contract", "reference_cell",
                                      "contact_hours", "new_address"};
const char* const k_int_fields[5] = {"fee", "opened_at", "contacted_at", "rejection_told_at",
                                     "modality"};

struct Options {
    std::size_t ots = 1000;
    std::size_t million = 1'000'000;
    std::uint64_t seed = 42;
    int repeats = 20;
    bool json = false;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr
        << "otsync-bench: " << why
        << "\nusage: otsync-bench merge [--ots N] [--million N] [--seed S] [--repeats R] [--json]\n"
           "       otsync-bench server [--devices N] [--requests R] [--batch B] [--big-log N] "
           "[--pg | --store URL] [--instances 1|2] [--json]\n"
           "       otsync-bench client [--ots N,M] [--records R] [--json]\n"
           "       otsync-bench archive [--ops N,M] [--repeats R] [--backends sqlite,pg] "
           "[--json]\n"
           "       otsync-bench field [--rate-bps N] [--rtt-ms N] [--cuts N] [--items N] "
           "[--ots N] [--json]\n";
    std::exit(2);
}

std::uint64_t parse_number(const char* s, const char* flag) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || !end || *end || s[0] == '-') {
        usage(std::string(flag) + " takes a whole number");
    }
    return v;
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::size_t heap_in_use() {
    return mallinfo2().uordblks;
}

std::string random_text(std::mt19937_64& rng, std::size_t n) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string s(n, ' ');
    for (auto& c : s) {
        c = alphabet[rng() % 36];
    }
    return s;
}

/// Value of the right type for bench field `i` (0-4 text, 5-9 integer-like).
Value field_value(std::mt19937_64& rng, int i) {
    const auto n = static_cast<std::int64_t>(rng() % 1'000'001);
    switch (i) {
    case 5:
        return Money{n};
    case 6:
    case 7:
    case 8:
        return Timestamp{n};
    case 9:
        return std::int64_t{1 + n % 4};
    default:
        return random_text(rng, 16);
    }
}

const char* field_name(int i) {
    return i < 5 ? k_text_fields[i] : k_int_fields[i - 5];
}

struct Actor {
    Actor(std::uint64_t replica, std::uint64_t wall, const char* name)
        : clock(wall), hlc(clock), maker(replica, hlc, Id::natural("user", name)) {}
    FakeClock clock;
    Hlc hlc;
    crdt::OpMaker maker;
};

std::string gzip(const std::string& in) {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        throw std::runtime_error("deflateInit2 failed");
    }
    std::string out(deflateBound(&z, in.size()) + 32, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string json_batch(const std::vector<Op>& ops) {
    std::string out = "[";
    for (const auto& op : ops) {
        if (out.size() > 1) {
            out += ',';
        }
        out += to_json(op);
    }
    out += ']';
    return out;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int run_merge(const Options& o) {
    std::map<std::string, double> out;
    std::mt19937_64 rng(o.seed);

    // ---- base ----
    std::vector<Id> cases(o.ots), wos(o.ots);
    for (std::size_t i = 0; i < o.ots; ++i) {
        cases[i] = Id::random();
        wos[i] = Id::random();
    }
    std::vector<Op> base;
    base.reserve(o.ots * 15);
    std::vector<double> create_s;
    crdt::Replica server_state;
    for (int rep = 0; rep < 5; ++rep) {
        Actor server(0, k_epoch, "server");
        crdt::Replica st;
        std::mt19937_64 r(o.seed);
        std::vector<Op> made;
        made.reserve(o.ots * 15);
        const auto t0 = Clock::now();
        for (std::size_t i = 0; i < o.ots; ++i) {
            for (int f = 0; f < 10; ++f) {
                made.push_back(server.maker.set(EntityType::case_file, cases[i], field_name(f),
                                                field_value(r, f)));
                st.apply(made.back());
            }
            for (int e = 0; e < 5; ++e) {
                char serial[13];
                std::snprintf(serial, sizeof serial, "ZTEG%08X", static_cast<unsigned>(r()));
                made.push_back(server.maker.add(EntityType::work_order, wos[i],
                                                "expected_equipment", text(serial)));
                st.apply(made.back());
            }
        }
        create_s.push_back(seconds_since(t0));
        base = std::move(made);
        server_state = std::move(st);
    }
    out["base.ops"] = static_cast<double>(base.size());
    out["base.create_ops_per_s"] = static_cast<double>(base.size()) / median(create_s);

    std::vector<double> apply_s;
    std::size_t mem_per_ot = 0;
    for (int rep = 0; rep < 5; ++rep) {
        malloc_trim(0);
        const std::size_t before = heap_in_use();
        auto* r = new crdt::Replica;
        const auto t0 = Clock::now();
        for (const auto& op : base) {
            r->apply(op);
        }
        apply_s.push_back(seconds_since(t0));
        mem_per_ot = (heap_in_use() - before) / o.ots;
        delete r;
    }
    out["base.apply_ops_per_s"] = static_cast<double>(base.size()) / median(apply_s);
    out["mem.bytes_per_ot"] = static_cast<double>(mem_per_ot);

    // ---- edits and exchange ----
    const char* names[3] = {"alice", "bob", "carol"};
    std::vector<double> merge_s, decode_merge_s;
    std::vector<std::vector<Op>> edits(3);
    bool converged = true;
    for (int rep = 0; rep < o.repeats; ++rep) {
        std::vector<crdt::Replica> replicas(3, server_state);
        std::vector<std::unique_ptr<Actor>> actors;
        for (int a = 0; a < 3; ++a) {
            actors.push_back(std::make_unique<Actor>(a + 1, k_epoch + 1000, names[a]));
            actors[a]->hlc.receive(base.back().hlc);
            std::mt19937_64 r(o.seed + 0x9E3779B9ull * static_cast<unsigned>(a + 1));
            edits[a].clear();
            std::vector<std::size_t> idx(o.ots);
            for (std::size_t i = 0; i < o.ots; ++i) {
                idx[i] = i;
            }
            std::shuffle(idx.begin(), idx.end(), r);
            for (std::size_t k = 0; k < o.ots * 3 / 10; ++k) {
                int fields[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
                std::shuffle(std::begin(fields), std::end(fields), r);
                for (int f = 0; f < 3; ++f) {
                    edits[a].push_back(actors[a]->maker.set(EntityType::case_file, cases[idx[k]],
                                                            field_name(fields[f]),
                                                            field_value(r, fields[f])));
                    replicas[a].apply(edits[a].back());
                }
            }
        }
        std::vector<crdt::Replica> copies = replicas; // for the decode + merge run
        std::string encoded[3];
        for (int a = 0; a < 3; ++a) {
            encoded[a] = encode_binary(std::span<const Op>(edits[a]));
        }
        std::size_t merged = 0;
        auto t0 = Clock::now();
        for (int dst = 0; dst < 3; ++dst) {
            for (int src = 0; src < 3; ++src) {
                if (src != dst) {
                    for (const auto& op : edits[src]) {
                        replicas[dst].apply(op);
                    }
                    merged += edits[src].size();
                }
            }
        }
        merge_s.push_back(seconds_since(t0));
        t0 = Clock::now();
        for (int dst = 0; dst < 3; ++dst) {
            for (int src = 0; src < 3; ++src) {
                if (src != dst) {
                    for (const auto& op : decode_ops(encoded[src])) {
                        copies[dst].apply(op);
                    }
                }
            }
        }
        decode_merge_s.push_back(seconds_since(t0));
        out["merge.ops"] = static_cast<double>(merged);
        const auto d = replicas[0].digest();
        converged = converged && replicas[1].digest() == d && replicas[2].digest() == d &&
                    copies[0].digest() == d;
    }
    out["merge.ops_per_s"] = out["merge.ops"] / median(merge_s);
    out["merge.decode_and_merge_ops_per_s"] = out["merge.ops"] / median(decode_merge_s);
    out["merge.converged"] = converged ? 1 : 0;

    // ---- sizes ----
    const std::string base_bin = encode_binary(std::span<const Op>(base));
    const std::string edits_bin = encode_binary(std::span<const Op>(edits[0]));
    const std::string base_json = json_batch(base);
    const std::string edits_json = json_batch(edits[0]);
    const double nb = static_cast<double>(base.size());
    const double ne = static_cast<double>(edits[0].size());
    out["bytes_per_op.base"] = static_cast<double>(base_bin.size()) / nb;
    out["bytes_per_op.base_gzip"] = static_cast<double>(gzip(base_bin).size()) / nb;
    out["bytes_per_op.base_json"] = static_cast<double>(base_json.size()) / nb;
    out["bytes_per_op.base_json_gzip"] = static_cast<double>(gzip(base_json).size()) / nb;
    out["bytes_per_op.edits"] = static_cast<double>(edits_bin.size()) / ne;
    out["bytes_per_op.edits_gzip"] = static_cast<double>(gzip(edits_bin).size()) / ne;
    out["bytes_per_op.edits_json"] = static_cast<double>(edits_json.size()) / ne;
    out["bytes_per_op.edits_json_gzip"] = static_cast<double>(gzip(edits_json).size()) / ne;

    // ---- million ----
    if (o.million > 0) {
        const std::size_t n_ots = 10'000;
        std::vector<Id> many(n_ots);
        for (auto& id : many) {
            id = Id::random();
        }
        std::vector<Op> ops;
        ops.reserve(o.million);
        {
            std::vector<std::unique_ptr<Actor>> src;
            for (int k = 0; k < 8; ++k) {
                src.push_back(
                    std::make_unique<Actor>(10 + k, k_epoch + static_cast<unsigned>(k), "src"));
            }
            std::mt19937_64 r(o.seed + 0x85EBCA6Bull);
            for (std::size_t i = 0; i < o.million; ++i) {
                Actor& a = *src[i % 8];
                if (i % 64 == 0) {
                    a.clock.advance(1);
                }
                const int f = static_cast<int>(r() % 10);
                ops.push_back(a.maker.set(EntityType::case_file, many[r() % n_ots], field_name(f),
                                          field_value(r, f)));
            }
            // Each source's ops arrive as one batch, as a sync page would.
            std::stable_sort(ops.begin(), ops.end(),
                             [](const Op& x, const Op& y) { return x.id.replica < y.id.replica; });
        }
        malloc_trim(0);
        const std::size_t before = heap_in_use();
        auto* r = new crdt::Replica;
        const auto t0 = Clock::now();
        for (const auto& op : ops) {
            r->apply(op);
        }
        const double s = seconds_since(t0);
        out["million.apply_s"] = s;
        out["million.apply_ops_per_s"] = static_cast<double>(ops.size()) / s;
        out["million.heap_bytes_per_op"] =
            static_cast<double>(heap_in_use() - before) / static_cast<double>(ops.size());
        delete r;
    }

    bench::print_figures("otsync-bench merge (ots=" + std::to_string(o.ots) + ", million=" +
                             std::to_string(o.million) + ", seed=" + std::to_string(o.seed) +
                             ", repeats=" + std::to_string(o.repeats) + ")",
                         out, o.json);
    return converged ? 0 : 1;
}

} // namespace

int run_server_bench(int argc, char** argv);  // server_bench.cpp
int run_client_bench(int argc, char** argv);  // client_bench.cpp
int run_archive_bench(int argc, char** argv); // archive_bench.cpp
int run_field_bench(int argc, char** argv);   // field_bench.cpp

int main(int argc, char** argv) {
    if (argc < 2) {
        usage("missing subcommand");
    }
    const std::string cmd = argv[1];
    if (cmd == "server" || cmd == "client" || cmd == "archive" || cmd == "field") {
        try {
            return cmd == "server"    ? run_server_bench(argc, argv)
                   : cmd == "client"  ? run_client_bench(argc, argv)
                   : cmd == "archive" ? run_archive_bench(argc, argv)
                                      : run_field_bench(argc, argv);
        } catch (const std::exception& e) {
            std::cerr << "otsync-bench: " << e.what() << "\n";
            return 1;
        }
    }
    if (cmd != "merge") {
        usage("unknown subcommand '" + cmd + "'");
    }
    Options o;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) {
                usage(a + " needs a value");
            }
            return argv[++i];
        };
        if (a == "--ots") {
            o.ots = parse_number(next(), "--ots");
        } else if (a == "--million") {
            o.million = parse_number(next(), "--million");
        } else if (a == "--seed") {
            o.seed = parse_number(next(), "--seed");
        } else if (a == "--repeats") {
            o.repeats = static_cast<int>(
                std::clamp<std::uint64_t>(parse_number(next(), "--repeats"), 1, 1000));
        } else if (a == "--json") {
            o.json = true;
        } else {
            usage("unknown option '" + a + "'");
        }
    }
    if (o.ots < 10 || o.ots > 1'000'000) {
        usage("--ots must be between 10 and 1000000");
    }
    try {
        return run_merge(o);
    } catch (const std::exception& e) {
        std::cerr << "otsync-bench: " << e.what() << "\n";
        return 1;
    }
}
