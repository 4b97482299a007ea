// otsync-admin: the operator's command line, working on the server's data folder.
//
//   otsync-admin [--data-dir DIR] user add --role ROLE [--full-name NAME] [--unit UNIT]
//                                          [--password-stdin] NAME
//   otsync-admin [--data-dir DIR] user set-password NAME      (new password on stdin)
//   otsync-admin [--data-dir DIR] user disable NAME | user enable NAME
//   otsync-admin [--data-dir DIR] user list
//   otsync-admin [--data-dir DIR] device enroll-code USER [--ttl-hours H]
//   otsync-admin [--data-dir DIR] device revoke REPLICA
//   otsync-admin [--data-dir DIR] device list
//   otsync-admin [--data-dir DIR] inventory import FILE.csv
//   otsync-admin [--data-dir DIR] backup FILE
//   otsync-admin [--data-dir DIR] rebuild [--verify]
//   otsync-admin [--data-dir DIR] verify
//   otsync-admin [--data-dir DIR] migrate --to postgresql://...
//   otsync-admin [--data-dir DIR] report indicators --from D --to D [--unit U] [--csv] [--cases]
//
// `--store URL` (or $OTSYNC_STORE, as otsync-server's) opens a PostgreSQL database instead
// (`backup` then says to use pg_dump or base backups). `migrate` copies the SQLite database
// of the data folder, whole, into an empty PostgreSQL database in one transaction, then
// verifies the copy (docs/architecture.md §6); the server may run meanwhile.
// The data folder defaults to $OTSYNC_DATA_DIR, then ./var. It is safe to run while
// the server runs (SQLite WAL with a busy timeout); revocation takes effect on the
// device's next request, and disabling a user or setting a password ends the user's web
// sessions at once. A password is read as one line from stdin (a trailing \r\n is
// dropped; nothing is echoed when stdin is a terminal) and stored as argon2id through
// AuthService, at the cost of $OTSYNC_PWHASH_OPSLIMIT and $OTSYNC_PWHASH_MEMLIMIT (bytes)
// when set, else AuthConfig's defaults: set them as the server's are set, or the server
// rehashes at the first login. Errors: one line on stderr, exit 1 (2 for usage).
#include "api/office.hpp"
#include "auth/auth.hpp"
#include "procedure/csv_import.hpp"
#include "procedure/views.hpp"
#include "server.hpp"
#include "store/postgres_store.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/codec.hpp"
#include "otsync/error.hpp"
#include "otsync/view.hpp"

#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace otsync;
using namespace otsync::server;

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::cerr
        << "otsync-admin: " << why << "\n"
        << "usage: otsync-admin [--data-dir DIR | --store URL] COMMAND\n"
        << "  user add --role ROLE [--full-name NAME] [--unit UNIT] [--password-stdin] NAME\n"
        << "  user set-password NAME      (reads the new password from stdin)\n"
        << "  user disable NAME | user enable NAME | user list\n"
        << "  device enroll-code USER [--ttl-hours H] | device revoke REPLICA | device list\n"
        << "  inventory import FILE.csv   (all or nothing; lists every bad line)\n"
        << "  rebuild [--verify]          refold the op log; --verify only compares with the\n"
        << "                              projections (exit 1 on a difference)\n"
        << "  verify                      check every signed batch of ops against the log and\n"
        << "                              the devices' keys (exit 1 on a difference)\n"
        << "  migrate --to URL            copy the SQLite database of --data-dir, whole, into an\n"
        << "                              empty PostgreSQL database, then verify the copy\n"
        << "  report indicators --from YYYY-MM-DD --to YYYY-MM-DD [--unit U] [--csv]\n"
        << "                    [--tz-offset-minutes N] [--cases]\n"
        << "env: OTSYNC_DATA_DIR, OTSYNC_STORE, OTSYNC_PWHASH_OPSLIMIT, OTSYNC_PWHASH_MEMLIMIT\n";
    std::exit(2);
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string when(std::int64_t ms) {
    if (ms <= 0) {
        return "never";
    }
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    return std::string(buf) + "Z";
}

std::uint64_t number(const std::string& s, const char* what) {
    char* end = nullptr;
    errno = 0;
    const auto v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || errno || *end || s[0] == '-') {
        usage(std::string(what) + " must be a whole number");
    }
    return v;
}

/// A whole number from the environment, or nullopt when the variable is unset.
std::optional<std::uint64_t> env_number(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr) {
        return std::nullopt;
    }
    const std::string s(v);
    char* end = nullptr;
    errno = 0;
    const auto n = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || errno || *end || s[0] == '-') {
        throw Error(ErrorCode::invalid_argument, std::string(name) + " must be a whole number");
    }
    return n;
}

/// The argon2id cost the server uses unless told otherwise, overridden by the environment.
AuthConfig auth_config() {
    AuthConfig c;
    if (const auto ops = env_number("OTSYNC_PWHASH_OPSLIMIT")) {
        c.pwhash_opslimit = *ops;
    }
    if (const auto mem = env_number("OTSYNC_PWHASH_MEMLIMIT")) {
        c.pwhash_memlimit = static_cast<std::size_t>(*mem);
    }
    return c;
}

/// A password held in memory only as long as needed: wiped on destruction.
struct Password {
    std::string text;
    Password() { text.reserve(4096); } // getline rarely reallocates (and leaves copies)
    Password(const Password&) = delete;
    Password& operator=(const Password&) = delete;
    ~Password() {
        if (!text.empty()) {
            sodium_memzero(text.data(), text.size());
        }
    }
};

/// Turns terminal echo off while a password is typed; a no-op when stdin is not a tty.
class NoEcho {
public:
    NoEcho() {
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &m_saved) == 0) {
            termios quiet = m_saved;
            quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
            m_active = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
        }
    }
    ~NoEcho() {
        if (m_active) {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &m_saved);
            std::cerr << "\n";
        }
    }
    NoEcho(const NoEcho&) = delete;
    NoEcho& operator=(const NoEcho&) = delete;

private:
    termios m_saved{};
    bool m_active = false;
};

/// One line of stdin, without its line ending; refuses an empty one.
void read_password(Password& p, const std::string& user) {
    if (isatty(STDIN_FILENO)) {
        std::cerr << "password for " << user << ": " << std::flush;
    }
    {
        NoEcho quiet;
        if (!std::getline(std::cin, p.text) && p.text.empty()) {
            throw Error(ErrorCode::invalid_argument, "no password on stdin");
        }
    }
    while (!p.text.empty() && (p.text.back() == '\r' || p.text.back() == '\n')) {
        p.text.pop_back();
    }
    if (p.text.empty()) {
        throw Error(ErrorCode::invalid_argument, "the password is empty");
    }
}

User find_user(Store& store, const std::string& name) {
    auto u = store.user_by_name(name);
    if (!u) {
        throw Error(ErrorCode::invalid_argument, "no user named '" + name + "'");
    }
    return *u;
}

/// Free text for a profile field: valid UTF-8, no control characters, bounded.
void check_text(const std::string& s, const char* what) {
    bool control = false;
    for (const char c : s) {
        control = control || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    }
    if (s.size() > 200 || !is_valid_utf8(s) || control) {
        usage(std::string(what) + " must be at most 200 bytes of UTF-8 text on one line");
    }
}

/// The projection rows the op log folds into: what the projections table must hold. A
/// running SQLite server writes projections just after the commit that acknowledged their
/// ops: the log is folded up to the seq the table is as of (`up_to`; 0: the whole log).
std::vector<SyncWrite::Projection> refolded_projections(Store& store, std::uint64_t up_to = 0) {
    crdt::Replica state;
    for (const auto& so : store.ops_after(0, 0)) {
        if (up_to != 0 && so.seq > up_to) {
            break;
        }
        state.apply(so.op);
    }
    std::vector<SyncWrite::Projection> want;
    for (std::uint8_t t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        const auto type = static_cast<EntityType>(t);
        for (const Id& id : state.entities(type)) {
            want.push_back({type, id, entity_json(state, type, id)});
        }
    }
    return want;
}

/// The projections table against the refolded op log (rebuild --verify, migrate).
struct ProjectionCheck {
    std::size_t entities = 0, differ = 0, missing = 0, extra = 0;
    std::vector<std::string> examples; // the first few rows that differ
    bool equal() const { return differ + missing + extra == 0; }
    std::string summary() const {
        return std::to_string(differ) + " differ, " + std::to_string(missing) + " missing, " +
               std::to_string(extra) + " not in the log";
    }
};

/// Run inside a transaction: the log and the table from one snapshot.
ProjectionCheck check_projections(Store& store) {
    ProjectionCheck c;
    const auto want = refolded_projections(store, store.projected_seq()); // none: the whole log
    c.entities = want.size();
    std::map<std::pair<int, Id>, std::string> have;
    for (auto& p : store.projections()) {
        have[{static_cast<int>(p.type), p.id}] = std::move(p.json);
    }
    auto example = [&](const std::string& why, EntityType type, const Id& id) {
        if (c.examples.size() < 10) {
            c.examples.push_back(why + ": " + std::string(to_string(type)) + " " + id.hex());
        }
    };
    for (const auto& p : want) {
        const auto it = have.find({static_cast<int>(p.type), p.id});
        if (it == have.end()) {
            ++c.missing;
            example("missing", p.type, p.id);
            continue;
        }
        if (it->second != p.json) {
            ++c.differ;
            example("differs", p.type, p.id);
        }
        have.erase(it);
    }
    c.extra = have.size();
    for (const auto& [key, json] : have) {
        example("not in the log", static_cast<EntityType>(key.first), key.second);
    }
    return c;
}

// ---- migrate: the SQLite database into an empty PostgreSQL one ----

/// BLAKE2b-256 over a sequence of values, each framed (kind, length), so that different
/// sequences never feed the same bytes.
class Digest {
public:
    Digest() { crypto_generichash_init(&m_state, nullptr, 0, 32); }
    Digest& number(std::int64_t v) {
        std::uint8_t b[9] = {'i'};
        for (int i = 0; i < 8; ++i) {
            b[8 - i] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i));
        }
        crypto_generichash_update(&m_state, b, sizeof b);
        return *this;
    }
    Digest& bytes(std::string_view s) {
        number(static_cast<std::int64_t>(s.size()));
        crypto_generichash_update(&m_state, reinterpret_cast<const unsigned char*>(s.data()),
                                  s.size());
        return *this;
    }
    Digest& id(const Id& id) {
        return bytes({reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size()});
    }
    Hash256 done() {
        Hash256 h{};
        crypto_generichash_final(&m_state, h.data(), h.size());
        return h;
    }

private:
    crypto_generichash_state m_state{};
};

/// What one side holds, as (what, count, digest) readings the two sides must share.
struct Reading {
    std::string what;
    std::uint64_t count = 0;
    Hash256 digest{};
};

/// Every dump table's rows as export_rows gives them (the raw copy).
std::vector<Reading> table_readings(Store& store) {
    std::vector<Reading> out;
    std::vector<Digest> digests(std::size(k_dump_tables));
    for (const DumpTable& t : k_dump_tables) {
        out.push_back({std::string(t.name) + " rows", 0, {}});
    }
    store.export_rows(
        [&](const DumpRows& rows) {
            const auto t = dump_table_of(rows);
            if (!t) {
                throw Error(ErrorCode::internal, "export_rows gave rows of no dump table");
            }
            out[*t].count += rows.rows.size();
            for (const auto& row : rows.rows) {
                for (const DumpCell& cell : row) {
                    digests[*t].number(static_cast<std::int64_t>(cell.kind));
                    if (cell.kind == DumpCell::Kind::integer) {
                        digests[*t].number(cell.integer);
                    } else if (cell.kind != DumpCell::Kind::null) {
                        digests[*t].bytes(cell.data);
                    }
                }
            }
        },
        1000);
    for (std::size_t t = 0; t < out.size(); ++t) {
        out[t].digest = digests[t].done();
    }
    return out;
}

/// What the server reads through the Store: the log (seq, op encoding, receipt, skew, flag),
/// every user's feed, users, devices, the server key, the fee table.
std::vector<Reading> store_readings(Store& store) {
    std::vector<Reading> out;
    out.push_back({"op count", store.op_count(), {}});
    out.push_back({"last seq", store.last_seq(), {}});
    {
        Digest d;
        Reading r{"ops (seq, encoding, received_at, skew_ms, flagged)", 0, {}};
        std::uint64_t after = 0;
        for (;;) {
            const auto page = store.ops_after(after, 1000);
            for (const auto& so : page) {
                d.number(static_cast<std::int64_t>(so.seq))
                    .bytes(encode_binary(std::span<const Op>(&so.op, 1)))
                    .number(so.received_at)
                    .number(so.skew_ms)
                    .number(so.flagged ? 1 : 0);
            }
            r.count += page.size();
            if (page.size() < 1000) {
                break;
            }
            after = page.back().seq;
        }
        r.digest = d.done();
        out.push_back(std::move(r));
    }
    const auto users = store.users();
    {
        Digest d;
        for (const auto& u : users) {
            d.id(u.id).bytes(u.name).bytes(to_string(u.role)).number(u.disabled ? 1 : 0);
            d.number(u.created_at).bytes(u.password_hash).bytes(u.full_name).bytes(u.unit);
        }
        out.push_back({"users", users.size(), d.done()});
    }
    {
        Digest d;
        Reading r{"feeds (of every user)", 0, {}};
        for (const auto& u : users) {
            d.id(u.id).number(static_cast<std::int64_t>(store.feed_count_after(u.id, 0)));
            std::uint64_t after = 0;
            for (;;) {
                const auto page = store.feed_after(u.id, after, 1000);
                for (const auto& f : page) {
                    d.number(static_cast<std::int64_t>(f.fseq));
                    d.number(f.op_seq ? static_cast<std::int64_t>(*f.op_seq) : -1);
                    d.number(static_cast<std::int64_t>(f.op_replica)).number(f.history ? 1 : 0);
                    if (f.evict) {
                        d.number(static_cast<std::int64_t>(f.evict->first)).id(f.evict->second);
                    }
                }
                r.count += page.size();
                if (page.size() < 1000) {
                    break;
                }
                after = page.back().fseq;
            }
        }
        r.digest = d.done();
        out.push_back(std::move(r));
    }
    {
        Digest d;
        const auto devices = store.devices();
        for (const auto& v : devices) {
            d.number(static_cast<std::int64_t>(v.replica)).id(v.user);
            d.bytes({reinterpret_cast<const char*>(v.public_key.data()), v.public_key.size()});
            d.bytes(v.label).number(static_cast<std::int64_t>(v.status));
            d.number(static_cast<std::int64_t>(v.last_counter));
            d.number(static_cast<std::int64_t>(v.cursor)).number(v.last_seen);
            d.number(v.enrolled_at).number(v.revoked_at);
        }
        out.push_back({"devices", devices.size(), d.done()});
    }
    {
        Digest d;
        const auto key = store.server_key();
        if (key) {
            d.bytes({reinterpret_cast<const char*>(key->first.data()), key->first.size()});
            d.bytes({reinterpret_cast<const char*>(key->second.data()), key->second.size()});
        }
        out.push_back({"server key", key ? 1u : 0u, d.done()});
    }
    {
        Digest d;
        const auto fees = store.fee_records();
        for (const auto& f : fees) {
            d.bytes(f.product).number(f.effective_from).number(f.centavos).number(f.set_at);
            if (f.set_by) {
                d.id(*f.set_by);
            }
        }
        out.push_back({"fee table", fees.size(), d.done()});
    }
    return out;
}

/// `otsync-admin migrate --to URL`: the whole SQLite database (read from one snapshot, so the
/// server may run) into an empty PostgreSQL database in one transaction, then both sides
/// checked: each one's projections against its refolded log, and the two against each other.
int migrate(const std::filesystem::path& data_dir, const std::string& store_url,
            const std::vector<std::string>& args) {
    if (args.size() != 3 || args[1] != "--to") {
        usage("migrate needs --to URL (an empty PostgreSQL database)");
    }
    const std::string& to = args[2];
    if (!store_url.empty()) {
        throw Error(ErrorCode::invalid_argument,
                    "migrate copies a SQLite database (--data-dir DIR), but the store named is "
                    "PostgreSQL (--store or OTSYNC_STORE): unset it");
    }
    if (!is_postgres_url(to)) {
        throw Error(ErrorCode::invalid_argument,
                    "migrate --to needs a PostgreSQL database: postgres://... or "
                    "postgresql://..., or a libpq string with host= or dbname=");
    }
    const auto file = data_dir / "otsync.db";
    if (!std::filesystem::is_regular_file(file)) {
        throw Error(ErrorCode::invalid_argument,
                    "no SQLite database at " + file.string() + " (pass the server's --data-dir)");
    }
    ServerConfig from;
    from.data_dir = data_dir;
    const auto source = open_store(from);
    ServerConfig into;
    into.store_url = to;
    const auto dest = open_store(into);

    std::vector<std::uint64_t> copied(std::size(k_dump_tables), 0);
    ProjectionCheck source_check, dest_check;
    std::vector<Reading> source_reads, dest_reads;
    std::uint64_t snapshot_seq = 0;
    // One snapshot of the source for the copy and for its side of the checks: a server
    // committing meanwhile changes neither.
    source->in_transaction(false, [&] {
        dest->in_transaction(true, [&] {
            const auto held = dest->tables_with_rows();
            if (!held.empty()) {
                std::string names;
                for (const auto t : held) {
                    names += (names.empty() ? "" : ", ") + std::string(t);
                }
                throw Error(ErrorCode::invalid_argument,
                            "the PostgreSQL database is not empty (it holds " + names +
                                "): migrate copies only into an empty one; nothing was written");
            }
            source->export_rows(
                [&](const DumpRows& rows) {
                    copied[*dump_table_of(rows)] += rows.rows.size();
                    dest->import_rows(rows);
                },
                1000);
        });
        // Committed. Now both sides, the source still in its snapshot.
        snapshot_seq = source->last_seq();
        source_check = check_projections(*source);
        source_reads = store_readings(*source);
        const auto source_tables = table_readings(*source);
        source_reads.insert(source_reads.end(), source_tables.begin(), source_tables.end());
        dest->in_transaction(false, [&] {
            dest_check = check_projections(*dest);
            dest_reads = store_readings(*dest);
            const auto dest_tables = table_readings(*dest);
            dest_reads.insert(dest_reads.end(), dest_tables.begin(), dest_tables.end());
        });
    });

    std::cout << "copied " << file.string() << " into PostgreSQL in one transaction:\n";
    for (std::size_t t = 0; t < copied.size(); ++t) {
        char line[64];
        std::snprintf(line, sizeof line, "  %-13s %12llu\n",
                      std::string(k_dump_tables[t].name).c_str(),
                      static_cast<unsigned long long>(copied[t]));
        std::cout << line;
    }
    std::cout << "source snapshot at seq " << snapshot_seq
              << " (what the source commits later is not in the copy)\n"
              << "enrollment codes and web sessions were copied: codes not yet used stay valid "
                 "until they expire, open sessions stay open\n";

    std::vector<std::string> problems;
    if (!source_check.equal()) {
        problems.push_back("source projections against its op log: " + source_check.summary());
    }
    if (!dest_check.equal()) {
        problems.push_back("copy's projections against its op log: " + dest_check.summary());
    }
    for (std::size_t i = 0; i < source_reads.size(); ++i) {
        const Reading& a = source_reads[i];
        const Reading& b = dest_reads.at(i);
        if (a.count != b.count) {
            problems.push_back(a.what + ": " + std::to_string(a.count) + " in the source, " +
                               std::to_string(b.count) + " in the copy");
        } else if (a.digest != b.digest) {
            problems.push_back(a.what + ": as many in both, but they differ");
        }
    }
    if (!problems.empty()) {
        std::cerr << "otsync-admin: the copy differs from the source:\n";
        for (const auto& p : problems) {
            std::cerr << "  " << p << "\n";
        }
        for (const auto& e : source_check.examples) {
            std::cerr << "  source " << e << "\n";
        }
        for (const auto& e : dest_check.examples) {
            std::cerr << "  copy " << e << "\n";
        }
        std::cerr << "otsync-admin: the PostgreSQL database is left as copied (committed); do "
                     "not start a server on it before the cause is found\n";
        return 1;
    }
    std::cout << "checked: on both sides the projections equal the refolded op log ("
              << dest_check.entities << " entities); the log (seq, bytes, receipt), every "
              << "user's feed, users, devices, server key, fee table and every table's rows "
              << "are the same on both sides\n"
              << "verified: equal\n";
    return 0;
}

/// otsync-admin verify: every batch a device signed (protocol 2) against the log. Each op
/// it covers that the log holds must hash to what the device signed, and the signature must
/// verify with the device's key; device ops of the log no batch covers are counted (sent in
/// protocol 1, before signatures over ops). Exit 1 on any difference.
int verify_batches(Store& store) {
    // The log's device ops by id, with their hashes (the server's own ops are signed by
    // nobody but the server's receipts).
    std::unordered_map<OpId, Hash256> logged;
    for (std::uint64_t after = 0;;) {
        const auto page = store.ops_after(after, 10'000);
        for (const auto& so : page) {
            if (so.op.id.replica != k_server_replica) {
                logged.emplace(so.op.id, op_leaf(so.op));
            }
            after = so.seq;
        }
        if (page.size() < 10'000) {
            break;
        }
    }
    std::unordered_map<std::uint64_t, std::optional<PublicKey>> keys;
    std::unordered_set<OpId> covered;
    std::size_t batches = 0, signed_ops = 0, refused = 0, problems = 0;
    const auto problem = [&](const OpBatch& b, const std::string& what) {
        ++problems;
        std::cout << "batch " << b.replica << ":" << b.request_counter << " ("
                  << when(b.received_at) << "): " << what << "\n";
    };
    store.for_each_op_batch([&](const OpBatch& b) {
        ++batches;
        auto [key, fresh] = keys.try_emplace(b.replica);
        if (fresh) {
            if (const auto d = store.device(b.replica)) {
                key->second = d->public_key;
            }
        }
        std::vector<Hash256> leaves;
        leaves.reserve(b.leaves.size());
        for (const auto& [id, hash] : b.leaves) {
            leaves.push_back(hash);
            const auto it = logged.find(id);
            if (it == logged.end()) {
                ++refused; // refused when it came: not in the log
            } else if (it->second != hash) {
                problem(b, "op " + std::to_string(id.replica) + ":" + std::to_string(id.counter) +
                               " in the log differs from what the device signed");
            } else {
                ++signed_ops;
                covered.insert(id);
            }
        }
        if (!key->second) {
            problem(b, "no device " + std::to_string(b.replica) + " to check the signature with");
        } else if (!verify(b.signature, ops_signing_string(leaves), *key->second)) {
            problem(b, "the signature does not verify with device " + std::to_string(b.replica) +
                           "'s key");
        }
    });
    std::size_t unsigned_ops = 0;
    for (const auto& [id, hash] : logged) {
        unsigned_ops += covered.contains(id) ? 0 : 1;
    }
    std::cout << batches << " signed batches; " << signed_ops
              << " ops of the log match what their device signed; " << refused
              << " signed ops were refused when they came (not in the log); " << unsigned_ops
              << " device ops carry no signature over them (sent in protocol 1)\n";
    if (problems != 0) {
        std::cout << "verify: " << problems << " differences\n";
        return 1;
    }
    std::cout << "verified: every signed batch matches the log\n";
    return 0;
}

int run(std::vector<std::string> args) {
    std::string data_dir = std::getenv("OTSYNC_DATA_DIR") ? std::getenv("OTSYNC_DATA_DIR") : "var";
    std::string store_url = std::getenv("OTSYNC_STORE") ? std::getenv("OTSYNC_STORE") : "";
    if (args.size() >= 2 && args[0] == "--data-dir") {
        data_dir = args[1];
        args.erase(args.begin(), args.begin() + 2);
    } else if (args.size() >= 2 && args[0] == "--store") {
        store_url = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.size() < 2 && !(args.size() == 1 && (args[0] == "rebuild" || args[0] == "migrate" ||
                                                  args[0] == "verify"))) {
        usage("missing command");
    }
    if (args[0] == "migrate") {
        return migrate(data_dir, store_url, args);
    }
    if (store_url.empty() && !std::filesystem::is_directory(data_dir)) {
        throw Error(ErrorCode::invalid_argument,
                    "data folder " + data_dir +
                        " does not exist (start otsync-server once, or pass --data-dir)");
    }
    // The database as the server opens it (server.hpp); no service is built on it, since a
    // live server may be using it.
    ServerConfig config;
    config.data_dir = data_dir;
    config.store_url = store_url;
    auto store = open_store(config);
    const std::string noun = args[0], verb = args.size() > 1 ? args[1] : std::string();

    if (noun == "user" && verb == "add") {
        std::string role_name, name, full_name, unit;
        bool password_stdin = false;
        for (std::size_t i = 2; i < args.size(); ++i) {
            if (args[i] == "--role" && i + 1 < args.size()) {
                role_name = args[++i];
            } else if (args[i] == "--full-name" && i + 1 < args.size()) {
                full_name = args[++i];
            } else if (args[i] == "--unit" && i + 1 < args.size()) {
                unit = args[++i];
            } else if (args[i] == "--password-stdin") {
                password_stdin = true;
            } else if (name.empty() && args[i].rfind("--", 0) != 0) {
                name = args[i];
            } else {
                usage("unexpected '" + args[i] + "'");
            }
        }
        const auto role = role_from_string(role_name);
        if (!role || *role == Role::system) {
            usage("--role must be one of customer_service, commercial_head, sales_executive, "
                  "platform_officer, commercial_advisor, back_office, technician, warehouse_clerk, "
                  "supervisor");
        }
        if (name.empty() || name.size() > 64 || !is_valid_utf8(name)) {
            usage("a user name of 1 to 64 bytes is required");
        }
        check_text(full_name, "--full-name");
        check_text(unit, "--unit");
        User u;
        u.id = Id::random();
        u.name = name;
        u.role = *role;
        u.created_at = now_ms();
        u.full_name = full_name;
        u.unit = unit;
        if (password_stdin) {
            // Hashed before the user exists, so a bad password adds nobody.
            SystemClock clock;
            AuthService auth(*store, clock, auth_config());
            Password p;
            read_password(p, name);
            u.password_hash = auth.hash_password(p.text);
        }
        store->add_user(u);
        std::cout << "user " << name << " (" << to_string(*role) << ") added: " << u.id.hex()
                  << (password_stdin ? ", with a password" : "") << "\n";
        return 0;
    }
    if (noun == "user" && verb == "set-password") {
        if (args.size() != 3) {
            usage("user set-password needs a user name (the password comes on stdin)");
        }
        const User u = find_user(*store, args[2]);
        SystemClock clock;
        AuthService auth(*store, clock, auth_config());
        Password p;
        read_password(p, u.name);
        auth.set_password(u.id, p.text);
        std::cout << "password of " << u.name << " set; the user's sessions were ended\n";
        return 0;
    }
    if (noun == "user" && (verb == "disable" || verb == "enable")) {
        if (args.size() != 3) {
            usage("user " + verb + " needs a user name");
        }
        const User u = find_user(*store, args[2]);
        const bool disable = verb == "disable";
        store->set_user_disabled(u.id, disable);
        if (disable) {
            const std::size_t ended = store->delete_sessions_of(u.id);
            std::cout << "user " << u.name << " disabled; " << ended << " session"
                      << (ended == 1 ? "" : "s") << " ended (revoke devices with device revoke)\n";
        } else {
            std::cout << "user " << u.name << " enabled\n";
        }
        return 0;
    }
    if (noun == "user" && verb == "list") {
        std::cout << "name\trole\tstate\tid\tpassword\tfull name\tunit\n";
        for (const auto& u : store->users()) {
            std::cout << u.name << "\t" << to_string(u.role) << "\t"
                      << (u.disabled ? "disabled" : "active") << "\t" << u.id.hex() << "\t"
                      << (u.password_hash.empty() ? "none" : "set") << "\t" << u.full_name << "\t"
                      << u.unit << "\n";
        }
        return 0;
    }
    if (noun == "device" && verb == "enroll-code") {
        if (args.size() < 3) {
            usage("device enroll-code needs a user name");
        }
        std::int64_t ttl_hours = 24;
        for (std::size_t i = 3; i < args.size(); ++i) {
            if (args[i] == "--ttl-hours" && i + 1 < args.size()) {
                ttl_hours = static_cast<std::int64_t>(number(args[++i], "--ttl-hours"));
            } else {
                usage("unexpected '" + args[i] + "'");
            }
        }
        const auto user = store->user_by_name(args[2]);
        if (!user) {
            throw Error(ErrorCode::invalid_argument, "no user named '" + args[2] + "'");
        }
        if (user->disabled) {
            throw Error(ErrorCode::invalid_argument, "user '" + args[2] + "' is disabled");
        }
        const std::string code =
            issue_enroll_code(*store, user->id, now_ms(), ttl_hours * 3600 * 1000);
        std::cout << code << "\n";
        std::cerr << "one-time code for " << user->name << ", valid " << ttl_hours << " h\n";
        return 0;
    }
    if (noun == "device" && verb == "revoke") {
        if (args.size() != 3) {
            usage("device revoke needs a replica id");
        }
        if (!store->revoke_device(number(args[2], "REPLICA"))) {
            throw Error(ErrorCode::invalid_argument, "no device " + args[2]);
        }
        std::cout << "device " << args[2] << " revoked; its next request gets 401\n";
        return 0;
    }
    if (noun == "device" && verb == "list") {
        std::cout << "replica\tuser\tlabel\tstatus\tlast seen\tcursor\tlag\n";
        for (const auto& d : store->devices()) {
            const auto user = store->user_by_id(d.user);
            const std::uint64_t lag = store->feed_count_after(d.user, d.cursor);
            std::cout << d.replica << "\t" << (user ? user->name : d.user.hex()) << "\t" << d.label
                      << "\t" << (d.status == DeviceStatus::active ? "active" : "revoked") << "\t"
                      << when(d.last_seen) << "\t" << d.cursor << "\t" << lag << "\n";
        }
        return 0;
    }
    if (noun == "inventory" && verb == "import") {
        // All or nothing: the report on stdout when imported, every problem on stderr if not.
        if (args.size() != 3) {
            usage("inventory import needs one FILE.csv");
        }
        const std::filesystem::path file = args[2];
        const ImportLimits limits;
        std::error_code ec;
        const auto size = std::filesystem::file_size(file, ec);
        if (ec) {
            throw Error(ErrorCode::invalid_argument,
                        "cannot read " + file.string() + ": " + ec.message());
        }
        if (size > limits.max_bytes) {
            throw Error(ErrorCode::invalid_argument, file.string() + " is " + std::to_string(size) +
                                                         " bytes, more than the limit of " +
                                                         std::to_string(limits.max_bytes));
        }
        std::ifstream in(file, std::ios::binary);
        std::string csv(static_cast<std::size_t>(size), '\0');
        if (!in || !in.read(csv.data(), static_cast<std::streamsize>(csv.size())) ||
            in.peek() != std::ifstream::traits_type::eof()) {
            throw Error(ErrorCode::invalid_argument,
                        "cannot read " + file.string() + " (or it changed while being read)");
        }
        const ImportResult r = import_inventory_csv(csv, *store, now_ms(), limits);
        if (!r.ok()) {
            const std::size_t n = r.problem_count();
            std::cerr << "otsync-admin: inventory not imported, " << n
                      << (n == 1 ? " problem:\n" : " problems:\n") << r.report() << "\n";
            return 1;
        }
        std::cout << r.report() << "\n";
        return 0;
    }
    if (noun == "backup") {
        if (args.size() != 2) {
            usage("backup needs one FILE (a new file)");
        }
        store->backup_to(verb);
        std::cout << "backup written to " << verb << " (" << std::filesystem::file_size(verb)
                  << " bytes, " << store->op_count()
                  << " ops in the log at the time; integrity_check ok)\n";
        return 0;
    }
    if (noun == "verify") {
        if (args.size() > 1) {
            usage("verify takes no options");
        }
        return verify_batches(*store);
    }
    if (noun == "rebuild") {
        // `verb` is the first option here ("--verify" or nothing).
        const bool verify = verb == "--verify";
        if ((!verb.empty() && !verify) || args.size() > 2) {
            usage("rebuild takes only --verify");
        }
        // The projections are the SQL tables pages and reports may query; they must equal
        // the state refolded from the op log. One transaction: a snapshot for
        // --verify, and for a rebuild nothing commits between the fold and the rewrite.
        std::size_t entities = 0;
        ProjectionCheck check;
        store->in_transaction(!verify, [&] {
            if (verify) {
                check = check_projections(*store);
                entities = check.entities;
                return;
            }
            const auto want = refolded_projections(*store);
            entities = want.size();
            store->replace_projections(want);
        });
        if (!verify) {
            std::cout << "projections rebuilt from the op log: " << entities << " entities\n";
            return 0;
        }
        if (check.equal()) {
            std::cout << "projections: " << entities
                      << " entities, all equal to the state refolded from the op log\n";
            return 0;
        }
        std::cerr << "otsync-admin: projections differ from the op log: " << check.summary()
                  << " (otsync-admin rebuild rewrites them)\n";
        for (const auto& e : check.examples) {
            std::cerr << "  " << e << "\n";
        }
        return 1;
    }
    if (noun == "report" && verb == "indicators") {
        std::string from, to, unit;
        bool csv = false, list_cases = false;
        int offset = -240;
        for (std::size_t i = 2; i < args.size(); ++i) {
            const std::string& a = args[i];
            if ((a == "--from" || a == "--to" || a == "--unit" || a == "--tz-offset-minutes") &&
                i + 1 < args.size()) {
                const std::string& v = args[++i];
                if (a == "--from") {
                    from = v;
                } else if (a == "--to") {
                    to = v;
                } else if (a == "--unit") {
                    unit = v;
                } else {
                    char* end = nullptr;
                    const long m = std::strtol(v.c_str(), &end, 10);
                    if (v.empty() || *end || m < -840 || m > 840) {
                        usage("--tz-offset-minutes is a whole number from -840 to 840");
                    }
                    offset = static_cast<int>(m);
                }
            } else if (a == "--csv") {
                csv = true;
            } else if (a == "--cases") {
                list_cases = true;
            } else {
                usage("unexpected '" + a + "'");
            }
        }
        const auto f = parse_local_date(from, offset);
        const auto t = parse_local_date(to, offset);
        if (!f || !t || *t < *f) {
            usage("report indicators needs --from and --to as YYYY-MM-DD, from not after to");
        }
        // The report reads the op log folded into the same state the server keeps in memory.
        crdt::Replica state;
        for (const auto& so : store->ops_after(0, 0)) {
            state.apply(so.op);
        }
        IndicatorQuery q;
        q.from_ms = *f;
        q.to_ms = *t + 86400000;
        q.unit = unit;
        q.tz_offset_minutes = offset;
        q.now_ms = now_ms();
        q.reconcile.now_ms = q.now_ms;
        const Indicators ind = compute_indicators(state, q);
        if (csv) {
            std::cout << api::indicators_csv(ind);
            return 0;
        }
        char line[256];
        std::cout << "Indicadores PLN-GPI-P09 del " << from << " al " << to
                  << (unit.empty() ? std::string() : " (unidad " + unit + ")") << "\n";
        std::snprintf(line, sizeof line, "%-12s %8s %8s %9s  %s\n", "indicador", "casos", "total",
                      "porcentaje", "resultado");
        std::cout << line;
        auto row = [&](const char* name, int n, double pct, bool pass, double target) {
            std::snprintf(line, sizeof line, "%-12s %8d %8d %8.2f%%  %s (meta: mayor a %.0f%%)\n",
                          name, n, ind.total, pct,
                          ind.total == 0 ? "sin datos"
                          : pass         ? "Aceptado"
                                         : "Observado",
                          target);
            std::cout << line;
        };
        row("Eficacia", ind.effective, ind.efficacy_pct, ind.efficacy_pass, k_efficacy_target);
        row("Oportunidad", ind.timely, ind.timeliness_pct, ind.timeliness_pass,
            k_timeliness_target);
        std::cout << "casos en curso: " << ind.pending << "\n";
        std::cout << "\nfecha       casos  eficaces  oportunos\n";
        for (const auto& d : ind.days) {
            std::snprintf(line, sizeof line, "%s %6d %9d %10d\n", d.date.c_str(), d.total,
                          d.effective, d.timely);
            std::cout << line;
        }
        if (list_cases) {
            std::cout << "\ncaso                             contrato     estado       eficaz "
                         "oportuno motivo\n";
            // The report's reason codes in the seed's words.
            auto reason_es = [](const std::string& code, const std::string& status) {
                if (code == "not_finished") {
                    return "no concluido (" + status + ")";
                }
                static const std::map<std::string, std::string> k_words{
                    {"cancelled", "caso anulado"},
                    {"not_told", "rechazado, sin avisar al cliente"},
                    {"failed_visit", "hubo una visita fallida"},
                    {"open_discrepancy", "discrepancia de equipos sin resolver"},
                    {"late", "atendido después de 24 h"},
                    {"not_attended", "aún sin atender"}};
                const auto it = k_words.find(code);
                return it == k_words.end() ? code : it->second;
            };
            // Columns padded by characters, not bytes ("sí" is 3 bytes of UTF-8).
            auto pad = [](const std::string& text, std::size_t width) {
                std::size_t chars = 0;
                for (unsigned char ch : text) {
                    chars += (ch & 0xC0) != 0x80 ? 1 : 0;
                }
                return text + std::string(chars < width ? width - chars : 0, ' ');
            };
            for (const auto& c : ind.cases) {
                std::cout << c.id.hex() << ' ' << pad(c.contract, 12) << ' ' << pad(c.status, 12)
                          << ' ' << pad(c.effective ? "sí" : "no", 6) << ' '
                          << pad(c.timely ? "sí" : "no", 8) << ' '
                          << reason_es(c.not_effective.empty() ? c.not_timely : c.not_effective,
                                       c.status)
                          << '\n';
            }
        }
        return 0;
    }
    usage("unknown command '" + noun + " " + verb + "'");
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const Error& e) {
        std::cerr << "otsync-admin: " << e.message() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "otsync-admin: " << e.what() << "\n";
        return 1;
    }
}
