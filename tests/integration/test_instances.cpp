// Two otsync-server instances on one PostgreSQL database, under load, with kill -9: the
// demo data seeded by the first, the second started on the same --store. Handhelds of the
// demo technicians (client-core through its C API) move their OTs and record Anexo 4 rows,
// and each request they make is carried to an instance picked at random (the C API's app
// transport, a new connection per request); meanwhile the office opens cases, issues OTs
// and reassigns them over the REST API of a random instance. In each of 20 rounds (200 with
// OTSYNC_SOAK=1, or OTSYNC_INSTANCE_ROUNDS=N) one instance, picked at random, gets SIGKILL
// at a random moment and is started again on the same database. Then every device syncs to
// the end through both instances, and:
//   1. every op the server acknowledged to a device is in the op log exactly once, as the
//      device sent it (read with the store itself, after every kill too), a write set
//      aside as the OT's flagged_writes record instead, and no op the server rejected is
//      there;
//   2. both instances answer GET /v1/server/state with one digest;
//   3. which is the digest of the log refolded here, by a third instance started afterwards,
//      and otsync-admin rebuild --verify finds every projection equal to the refold;
//   4. every device lists exactly its technician's OTs with their status, and each OT with
//      exactly the rows the log holds for it, those the other handhelds made included; the
//      office's acknowledged assignments are the OTs' technicians.
// Before each kill both instances must answer: one that stops answering (a deadlock, the
// write lock held for good) fails the test within a bounded wait instead of hanging it.
#include "../pg_cluster.hpp"
#include "server_process.hpp"
#include "store/postgres_store.hpp"

#include "otsync/client.h"
#include "otsync/crdt.hpp"
#include "otsync/deflate.hpp"
#include "otsync/model.hpp"
#include "otsync/view.hpp"

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

using namespace otsync;
using namespace otsync::test;

namespace {

std::optional<rapidjson::Document> parse(const std::string& body) {
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    if (d.HasParseError()) {
        return std::nullopt;
    }
    return d;
}

std::string q(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

std::string op_text(const OpId& id) {
    return std::to_string(id.replica) + ":" + std::to_string(id.counter);
}

/// Deadlines of every request of the test: wide (a commit waits for the other instance's
/// write lock), and an instance that stops answering is reported instead of waited for.
client::HttpOptions deadlines() {
    client::HttpOptions o;
    o.connect_timeout_ms = 10'000;
    o.io_timeout_ms = 30'000;
    o.request_timeout_ms = 30'000;
    return o;
}

/// The two instances' current ports. A request goes to one picked at random, as by a load
/// balancer without health checks: a killed instance refuses connections until it is back.
/// `pinned` (0 or 1) sends everything to that one.
struct Instances {
    std::array<std::atomic<unsigned short>, 2> ports{};
    std::array<std::atomic<int>, 2> starts{}; // how often each was started
    std::atomic<int> pinned{-1};

    /// The instance a request goes to, as "i/start".
    struct Pick {
        unsigned short port;
        std::string which;
    };
    Pick pick() {
        thread_local std::mt19937 rng(std::random_device{}());
        const int p = pinned.load();
        const std::size_t i = p >= 0 ? static_cast<std::size_t>(p) : rng() % 2;
        return {ports[i].load(), std::to_string(i) + "/" + std::to_string(starts[i].load())};
    }
};

/// What the devices sent and what the server answered for each op, and what went wrong in
/// a worker thread (reported by the main thread).
struct Ledger {
    std::mutex mu;
    std::map<OpId, Op> sent;
    std::map<OpId, std::set<OpStatus>> answers;
    std::map<OpId, std::string> answered_by; // the instance (i/start) that answered first
    std::map<std::string, int> rejections;   // code: message, counted
    std::uint64_t answers_5xx = 0;
    std::vector<std::string> failures;

    void fail(const std::string& what) {
        const std::lock_guard lock(mu);
        failures.push_back(what);
    }
};

/// A handheld: client-core through its C API, with the app's transport of the test: every
/// request on a new connection to a random instance, the sync requests and their per-op
/// results written to the ledger.
struct Device {
    Device(const std::filesystem::path& db, std::string tech_name, int device_number, Instances& to,
           Ledger& book, const std::string& code)
        : tech(std::move(tech_name)), number(device_number), instances(to), ledger(book),
          rng(static_cast<unsigned>(device_number) * 7919u + 17u) {
        std::uint8_t key[32];
        randombytes_buf(key, sizeof key);
        c = otsync_client_open(db.c_str(), key, &err);
        REQUIRE_MESSAGE(c, err.message);
        const otsync_transport t{this, &Device::send, nullptr};
        REQUIRE(otsync_client_set_transport(c, &t, &err) == 0);
        // Short waits: the other instance answers while one is down.
        const otsync_retry_policy fast{20, 400, 45000, 20};
        REQUIRE(otsync_client_set_retry_policy(c, &fast, &err) == 0);
        REQUIRE_MESSAGE(otsync_client_enroll(c, "http://instances", code.c_str(),
                                             ("load " + std::to_string(number)).c_str(), &err) == 0,
                        err.message);
    }
    ~Device() { otsync_client_close(&c); }
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    static void send(void* user, otsync_http_call* call) {
        auto& self = *static_cast<Device*>(user);
        try {
            self.carry(call);
        } catch (const std::exception& e) {
            self.ledger.fail(self.tech + " #" + std::to_string(self.number) +
                             ": the transport: " + e.what());
            otsync_http_call_fail(call, OTSYNC_ERR_NETWORK, e.what());
        }
    }

    void carry(otsync_http_call* call) {
        const std::string url = otsync_http_call_url(call);
        const auto at = url.find("/v1/");
        std::map<std::string, std::string> headers;
        for (std::size_t i = 0; i < otsync_http_call_header_count(call); ++i) {
            headers[otsync_http_call_header_name(call, i)] = otsync_http_call_header_value(call, i);
        }
        std::size_t len = 0;
        const std::uint8_t* bytes = otsync_http_call_body(call, &len);
        const std::string body(reinterpret_cast<const char*>(bytes), len);
        const std::string path = at == std::string::npos ? url : url.substr(at);
        const bool sync = path == "/v1/sync";
        std::vector<Op> ops;
        if (sync) {
            const auto coded = headers.find("content-encoding");
            ops = decode_sync_request(coded != headers.end() && coded->second == "deflate"
                                          ? deflate_decode(body, 8u << 20)
                                          : body)
                      .ops;
            const std::lock_guard lock(ledger.mu);
            for (const Op& op : ops) {
                ledger.sent[op.id] = op;
            }
        }
        const auto to = instances.pick();
        const HttpResult r =
            http_call(to.port, otsync_http_call_method(call), path, body, headers, deadlines());
        if (r.status == 0) {
            otsync_http_call_fail(call, OTSYNC_ERR_NETWORK, "the instance did not answer");
            return;
        }
        if (r.status >= 500) {
            const std::lock_guard lock(ledger.mu);
            ++ledger.answers_5xx;
        }
        if (sync && r.status == 200) {
            const SyncResponse resp = decode_sync_response(
                r.content_encoding == "deflate" ? deflate_decode(r.body, 64u << 20) : r.body);
            const std::lock_guard lock(ledger.mu);
            for (const OpResult& res : resp.results) {
                ledger.answers[res.id].insert(res.status);
                ledger.answered_by.try_emplace(res.id, to.which);
                if (res.status == OpStatus::rejected) {
                    ++ledger.rejections[std::string(to_string(res.code)) + ": " + res.message];
                }
            }
        }
        otsync_http_call_complete(call, static_cast<int>(r.status),
                                  reinterpret_cast<const std::uint8_t*>(r.body.data()),
                                  r.body.size());
    }

    std::optional<rapidjson::Document> json(char* s) {
        if (!s) {
            return std::nullopt;
        }
        auto d = parse(s);
        otsync_string_free(&s);
        return d;
    }

    /// My OTs as the device has them: id -> status.
    std::map<std::string, std::string> ots() {
        std::map<std::string, std::string> out;
        const auto d = json(otsync_client_list_ots(c, nullptr, &err));
        if (!d || !d->IsArray()) {
            ledger.fail(tech + " #" + std::to_string(number) + ": list_ots: " + err.message);
            return out;
        }
        for (const auto& o : d->GetArray()) {
            out[o["id"].GetString()] = o["status"].GetString();
        }
        return out;
    }

    /// The rows the device holds on `ot` (voided ones included): their ids.
    std::set<std::string> rows(const std::string& ot) {
        std::set<std::string> out;
        const auto d = json(otsync_client_show_ot(c, ot.c_str(), &err));
        if (!d || !d->IsObject()) {
            ledger.fail(tech + " #" + std::to_string(number) + ": show_ot: " + err.message);
            return out;
        }
        for (const auto& row : (*d)["rows"].GetArray()) {
            out.insert(row["id"].GetString());
        }
        return out;
    }

    /// One piece of field work on one of my open OTs: arrive (en route, on site, in one
    /// go), or record one to three rows with serials of this device, now and then voiding
    /// one recorded before. What the handheld refuses locally (its state moved on) is
    /// counted, not an error.
    void field_work() {
        std::vector<std::pair<std::string, std::string>> open;
        for (const auto& [id, status] : ots()) {
            if (status == "assigned" || status == "en_route" || status == "on_site") {
                open.emplace_back(id, status);
            }
        }
        if (open.empty()) {
            return;
        }
        const auto& [ot, status] = open[rng() % open.size()];
        if (status != "on_site") {
            if (status == "assigned") {
                local(otsync_client_set_status(c, ot.c_str(), "en_route", nullptr, &err));
            }
            local(otsync_client_set_status(c, ot.c_str(), "on_site", nullptr, &err));
            return;
        }
        const int n = 1 + static_cast<int>(rng() % 3);
        for (int i = 0; i < n; ++i) {
            const std::string serial =
                "LD" + std::to_string(number) + "-" + std::to_string(++serials);
            otsync_verdict v{};
            if (local(otsync_client_collect(c, ot.c_str(), serial.c_str(), "equipo recuperado",
                                            "migration", nullptr, nullptr, &v, &err))) {
                recorded[ot].push_back(serial);
            }
        }
        if (rng() % 6 == 0 && recorded[ot].size() > 1) {
            local(otsync_client_void_item(c, ot.c_str(), recorded[ot].front().c_str(), &err));
            recorded[ot].erase(recorded[ot].begin());
        }
    }

    /// Syncs to the end (the client retries a dead instance by itself); false on failure.
    bool sync() {
        if (otsync_client_sync(c, nullptr, nullptr, &err) != 0) {
            ledger.fail(tech + " #" + std::to_string(number) + ": sync: " + err.message);
            return false;
        }
        ++syncs;
        return true;
    }

    std::uint64_t pending() {
        const auto d = json(otsync_client_status(c, &err));
        return d && d->IsObject() ? (*d)["pending"].GetUint64() : ~0ull;
    }

    bool local(int rc) {
        if (rc != 0) {
            ++refused_locally;
        }
        return rc == 0;
    }

    std::string tech;
    int number;
    Instances& instances;
    Ledger& ledger;
    std::mt19937 rng;
    otsync_client_t* c = nullptr;
    otsync_error err{};
    std::uint64_t serials = 0;
    std::map<std::string, std::vector<std::string>> recorded; // OT -> my live serials
    std::uint64_t syncs = 0;
    std::uint64_t refused_locally = 0;
};

/// The office over the REST API, each request to a random instance. A request left
/// unanswered (its instance down or killed) ends what it was doing (that case is left where
/// it is); any other unexpected answer is a failure: what one instance committed, the next
/// request's instance sees.
struct Office {
    struct Clerk {
        std::string name;
        std::string token;
    };

    Office(Instances& to, Ledger& book) : instances(to), ledger(book) {
        for (const char* name : {"atc.demo", "jac.demo", "ev.demo", "bo.demo"}) {
            const auto r = http_call(instances.pick().port, "POST", "/v1/auth/login",
                                     "{\"name\":" + q(name) + ",\"password\":\"otsync-demo\"}",
                                     {{"Content-Type", "application/json"}}, deadlines());
            REQUIRE_MESSAGE(r.status == 200, name << ": " << r.status << " " << r.body);
            clerks[name] = Clerk{name, (*parse(r.body))["token"].GetString()};
        }
    }

    /// One call; the parsed body when the status is `expect`, nullopt otherwise
    /// (`last_status` says which: 0 when no answer came, `tolerate` counted, any other a
    /// recorded failure).
    std::optional<rapidjson::Document> call(const std::string& who, const std::string& method,
                                            const std::string& target, const std::string& body,
                                            unsigned expect, unsigned tolerate = 0) {
        std::map<std::string, std::string> h{{"Authorization", "Bearer " + clerks[who].token}};
        if (!body.empty()) {
            h["Content-Type"] = target == "/v1/inventory/import" ? "text/csv" : "application/json";
        }
        const auto r = http_call(instances.pick().port, method, target, body, h, deadlines());
        ++requests;
        last_status = r.status;
        if (r.status == expect) {
            return parse(r.body);
        }
        if (r.status == 0) {
            ++lost;
        } else if (r.status == tolerate && tolerate != 0) {
            ++tolerated;
        } else {
            ledger.fail(who + " " + method + " " + target + " -> " + std::to_string(r.status) +
                        " " + r.body.substr(0, 300));
        }
        return std::nullopt;
    }

    /// A modality-1 case on a contract of its own, walked to its OT issued to `tech`.
    void issue_case(const std::string& tech) {
        const std::string n = std::to_string(++cases);
        const std::string contract = "LOAD-" + n;
        if (!call("bo.demo", "POST", "/v1/inventory/import",
                  "contract,customer_name,person_type,tax_id,address,serial,kind,model,"
                  "description\n" +
                      contract + ",Cliente " + n + ",natural,77" + n + " CB,Calle " + n +
                      ",LOAD-CPR-" + n + ",copper_modem,ZTE,Módem\n",
                  200)) {
            return;
        }
        const auto opened =
            call("atc.demo", "POST", "/v1/cases",
                 "{\"modality\":1,\"contract\":" + q(contract) + ",\"customer_name\":\"Cliente " +
                     n + "\",\"person_type\":\"natural\",\"tax_id\":\"77" + n +
                     " CB\",\"reference_cell\":\"70712345\",\"contact_hours\":\"09:00-12:00\","
                     "\"products\":[\"internet\"],\"old_address\":\"Calle " +
                     n + "\",\"new_address\":\"Av. Carga " + n + "\"}",
                 201);
        if (!opened) {
            return;
        }
        const std::string id = (*opened)["id"].GetString();
        const std::string c = "/v1/cases/" + id;
        if (!call("jac.demo", "POST", c + "/route", R"({"to":"ev.demo"})", 200) ||
            !call("ev.demo", "POST", c + "/contact", "{}", 200) ||
            !call("ev.demo", "POST", c + "/feasibility", R"({"feasible":true})", 200)) {
            return;
        }
        const auto detail = call("ev.demo", "GET", c, {}, 200);
        if (!detail) {
            return;
        }
        std::string met = "[";
        for (const auto& r : (*detail)["requirements"].GetArray()) {
            met += (met.size() > 1 ? "," : "") + q(r["code"].GetString());
        }
        met += "]";
        if (!call("ev.demo", "POST", c + "/requirements", "{\"met\":" + met + "}", 200) ||
            !call("ev.demo", "POST", c + "/approve", "{}", 200)) {
            return;
        }
        const auto issued = call("bo.demo", "POST", c + "/ots",
                                 "{\"technician\":" + q(tech) + ",\"zone\":\"Cercado\"}", 201);
        if (!issued) {
            return;
        }
        for (const auto& ot : (*issued)["ots"].GetArray()) {
            technicians[ot["id"].GetString()] = {tech};
        }
    }

    /// One of the OTs it issued, not moved before, to the other technician; 409 when the
    /// handheld has already started it (from en route on, an OT stays with its technician).
    /// Each OT moves at most once: an OT evicted from a device and assigned to it again
    /// within one pulled page would be lost on it, a limit of the protocol
    /// (docs/protocol.md §3.6, evictions carry no sequence), not what this test is about.
    /// False when there is none to move.
    bool reassign(std::mt19937& rng) {
        std::vector<std::string> candidates;
        for (const auto& [ot, may_hold] : technicians) {
            if (!moved.contains(ot)) {
                candidates.push_back(ot);
            }
        }
        if (candidates.empty()) {
            return false;
        }
        const std::string ot = candidates[rng() % candidates.size()];
        auto& may_hold = technicians[ot];
        const std::string to = may_hold.contains("tec.mamani") ? "tec.quispe" : "tec.mamani";
        moved.insert(ot);
        if (call("bo.demo", "POST", "/v1/ots/" + ot + "/assign", "{\"technician\":" + q(to) + "}",
                 200, 409)) {
            may_hold = {to};
            ++reassigned;
        } else if (last_status == 0) {
            may_hold.insert(to); // the answer was lost: either may hold it now
        }
        return true;
    }

    Instances& instances;
    Ledger& ledger;
    std::map<std::string, Clerk> clerks;
    std::map<std::string, std::set<std::string>> technicians; // OT -> who may hold it
    std::set<std::string> moved;                              // OTs reassigned (or tried)
    unsigned last_status = 0;
    std::uint64_t cases = 0, reassigned = 0, requests = 0, lost = 0, tolerated = 0;
};

/// GET /v1/server/state of an instance.
struct StateAnswer {
    std::uint64_t applied_seq = 0;
    std::uint64_t last_seq = 0;
    std::string digest;
    std::uint64_t entities = 0;
};

/// A supervisor's session (sessions are in the database: good on every instance).
std::string supervisor_token(unsigned short port) {
    const auto r = http_call(port, "POST", "/v1/auth/login",
                             R"({"name":"supervisor.demo","password":"otsync-demo"})",
                             {{"Content-Type", "application/json"}}, deadlines());
    REQUIRE_MESSAGE(r.status == 200, "login: " << r.status << " " << r.body);
    return (*parse(r.body))["token"].GetString();
}

/// The state of the instance on `port`; nullopt (and a failed check saying why) when it
/// does not answer it.
std::optional<StateAnswer> server_state(unsigned short port, const std::string& token,
                                        const std::string& which) {
    const auto r = http_call(port, "GET", "/v1/server/state", {},
                             {{"Authorization", "Bearer " + token}}, deadlines());
    const auto d = parse(r.body);
    const auto has = [&](const char* m, bool text) {
        return d->HasMember(m) && (text ? (*d)[m].IsString() : (*d)[m].IsUint64());
    };
    if (r.status != 200 || !d || !d->IsObject() || !has("digest", true) ||
        !has("applied_seq", false) || !has("last_seq", false) || !has("entities", false)) {
        FAIL_CHECK(which << ": GET /v1/server/state -> "
                         << (r.status == 0 ? std::string("no answer within the deadline")
                                           : std::to_string(r.status) + " " + r.body));
        return std::nullopt;
    }
    return StateAnswer{(*d)["applied_seq"].GetUint64(), (*d)["last_seq"].GetUint64(),
                       (*d)["digest"].GetString(), (*d)["entities"].GetUint64()};
}

/// The device op a work_order.flagged_writes record holds (the server's record of a
/// write it set aside: {"user","replica","received_at","op":{...}}).
std::optional<OpId> set_aside_id(const Value& v) {
    if (!std::holds_alternative<std::string>(v)) {
        return std::nullopt;
    }
    const auto d = parse(std::get<std::string>(v));
    if (!d || !d->IsObject() || !d->HasMember("op")) {
        return std::nullopt;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    (*d)["op"].Accept(w);
    return op_from_json(std::string_view(sb.GetString(), sb.GetSize())).id;
}

/// The op log as the store has it: how often each op id is there, and each write set
/// aside into a flagged_writes record.
struct LogView {
    std::vector<server::StoredOp> ops;
    std::map<OpId, int> count;
    std::map<OpId, std::size_t> at; // an op's place in `ops`
    std::map<OpId, int> set_aside;
};

LogView read_log(server::Store& store) {
    LogView v;
    v.ops = store.ops_after(0, 0);
    const FieldDef* fw = find_field(EntityType::work_order, "flagged_writes");
    REQUIRE(fw);
    for (const auto& so : v.ops) {
        ++v.count[so.op.id];
        v.at[so.op.id] = static_cast<std::size_t>(&so - v.ops.data());
        if (so.op.entity_type == EntityType::work_order && so.op.field == fw->id) {
            if (const auto id = set_aside_id(so.op.value)) {
                ++v.set_aside[*id];
            }
        }
    }
    return v;
}

/// Every op the server acknowledged is in the log exactly once, as the device sent it (a
/// set-aside write: its record, once); an op it only rejected is not there. The answers are
/// taken before the log is read (under load, what is answered after the read is not
/// looked for in it). Returns the log read and, in `acked`, how many ops were checked.
LogView check_acknowledged(Ledger& ledger, server::Store& store, const std::string& when,
                           std::size_t& acked) {
    std::map<OpId, std::set<OpStatus>> answers;
    std::map<OpId, Op> sent;
    std::map<OpId, std::string> by;
    {
        const std::lock_guard lock(ledger.mu);
        answers = ledger.answers;
        sent = ledger.sent;
        by = ledger.answered_by;
    }
    LogView log = read_log(store);
    acked = 0;
    const auto in = [](const std::map<OpId, int>& m, const OpId& id) {
        const auto it = m.find(id);
        return it == m.end() ? 0 : it->second;
    };
    for (const auto& [id, statuses] : answers) {
        const int logged = in(log.count, id), aside = in(log.set_aside, id);
        const bool accepted = statuses.contains(OpStatus::accepted);
        const bool flagged = statuses.contains(OpStatus::flagged);
        const std::string op =
            when + ": op " + op_text(id) + " (answered first by instance " + by[id] + ")";
        if (statuses.contains(OpStatus::rejected)) {
            // Answered once for good: a resend of a committed op is a duplicate, never
            // judged again.
            if (accepted || flagged) {
                FAIL_CHECK(op << " was acknowledged and also rejected");
            }
            if (logged + aside != 0) {
                FAIL_CHECK(op << " was rejected, yet it is in the log");
            }
            continue;
        }
        ++acked;
        if (accepted && (logged != 1 || aside != 0)) {
            FAIL_CHECK(op << " was acknowledged; it is in the log " << logged
                          << " times, set aside " << aside << " times");
        } else if (!accepted && logged + aside != 1) {
            FAIL_CHECK(op << " was flagged; it is in the log " << logged << " times, set aside "
                          << aside << " times");
        } else if (logged == 1 && !(log.ops[log.at.at(id)].op == sent.at(id))) {
            FAIL_CHECK(op << " is in the log with other content than the device sent");
        }
    }
    return log;
}

/// The load's threads: stopped and waited for however the test case ends (a failed
/// REQUIRE included), before the devices and the instances they use go.
struct LoadThreads {
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;

    void finish() {
        stop = true;
        for (auto& t : threads) {
            if (t.joinable()) {
                t.join();
            }
        }
    }
    ~LoadThreads() { finish(); }
};

/// For a failure's message: the OT's technician and status writes in the log (seq, maker,
/// value) and what `user`'s feed holds of them (delivered seqs, evictions of the OT).
std::string ot_story(server::Store& store, const LogView& log, const Id& ot, const Id& user) {
    std::string out = "log:";
    std::set<std::uint64_t> seqs;
    for (const auto& so : log.ops) {
        const FieldDef* f = find_field(so.op.entity_type, so.op.field);
        if (so.op.entity_type != EntityType::work_order || so.op.entity != ot || !f ||
            (f->name != "technician" && f->name != "status")) {
            continue;
        }
        seqs.insert(so.seq);
        out += " [" + std::to_string(so.seq) + " r" + std::to_string(so.op.id.replica) + " " +
               std::string(f->name) + "=" + value_json(so.op.value) + "]";
    }
    out += "; feed:";
    for (const auto& row : store.feed_after(user, 0, 1'000'000)) {
        if (row.op_seq && seqs.contains(*row.op_seq)) {
            out += " [f" + std::to_string(row.fseq) + " seq " + std::to_string(*row.op_seq) +
                   (row.history ? " history" : "") + "]";
        } else if (row.evict && row.evict->second == ot) {
            out += " [f" + std::to_string(row.fseq) + " evict]";
        }
    }
    return out;
}

int rounds_to_run() {
    if (const char* n = std::getenv("OTSYNC_INSTANCE_ROUNDS")) {
        return std::max(1, std::atoi(n));
    }
    const char* soak = std::getenv("OTSYNC_SOAK");
    return soak && std::string(soak) == "1" ? 200 : 20;
}

} // namespace

TEST_CASE("two instances on one PostgreSQL database, one killed with SIGKILL in each round, "
          "converge on the log") {
    const int rounds = rounds_to_run();
    const std::string store_url = fresh_pg_database();
    const std::vector<std::string> flags{"--store", store_url,           "--pwhash-opslimit",
                                         "1",       "--pwhash-memlimit", "8192"};
    std::array<DataDir, 2> dirs;
    std::array<std::unique_ptr<ServerProcess>, 2> servers;
    Instances instances;
    const auto start = [&](std::size_t i, bool demo) {
        std::vector<std::string> f = flags;
        if (demo) {
            f.push_back("--demo");
        }
        servers[i] = std::make_unique<ServerProcess>(dirs[i].path, f);
        servers[i]->start();
        instances.ports[i] = servers[i]->port;
        ++instances.starts[i];
    };
    start(0, true); // seeds the empty database
    start(1, false);

    server::PostgresOptions pg;
    pg.conninfo = store_url;
    const auto store = server::open_postgres_store(pg);
    const std::string mamani_hex = store->user_by_name("tec.mamani")->id.hex();
    const std::string quispe_hex = store->user_by_name("tec.quispe")->id.hex();

    Ledger ledger;
    TempDir handhelds("otsync-handhelds-");
    std::vector<std::unique_ptr<Device>> devices;
    for (int i = 0; i < 4; ++i) {
        const std::string tech = i % 2 == 0 ? "tec.mamani" : "tec.quispe";
        devices.push_back(std::make_unique<Device>(
            handhelds.path / ("device" + std::to_string(i) + ".db"), tech, i, instances, ledger,
            admin(dirs[0].path, {"device", "enroll-code", tech}, 0, store_url)));
        REQUIRE(devices.back()->sync());
    }
    Office office(instances, ledger);
    const std::string supervisor = supervisor_token(instances.ports[0]);

    LoadThreads load;
    for (auto& d : devices) {
        load.threads.emplace_back([&load, &d] {
            while (!load.stop) {
                const int actions = 1 + static_cast<int>(d->rng() % 3);
                for (int k = 0; k < actions; ++k) {
                    d->field_work();
                }
                if (!d->sync()) {
                    return;
                }
            }
        });
    }
    load.threads.emplace_back([&] {
        std::mt19937 rng(4242);
        while (!load.stop) {
            if (rng() % 3 != 0 || !office.reassign(rng)) {
                office.issue_case(rng() % 2 ? "tec.mamani" : "tec.quispe");
            }
        }
    });

    std::mt19937 rng(20261207);
    std::size_t checked = 0;
    // Both instances answer before one is killed: one that stopped answering (a deadlock,
    // the write lock held for good) is reported, not waited for.
    const auto both_answer = [&](const std::string& when) {
        bool ok = true;
        for (std::size_t i = 0; i < 2; ++i) {
            ok = server_state(servers[i]->port, supervisor,
                              when + ", instance " + std::to_string(i)) &&
                 ok;
        }
        return ok;
    };
    bool answering = true;
    for (int round = 0; round < rounds; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1000));
        answering = both_answer("round " + std::to_string(round));
        if (!answering) {
            break;
        }
        const std::size_t victim = rng() % 2;
        servers[victim]->kill(); // SIGKILL under load: no goodbye
        // What was acknowledged so far is in the log once, whatever was in flight.
        check_acknowledged(ledger, *store,
                           "round " + std::to_string(round) + ", instance " +
                               std::to_string(victim) + " killed",
                           checked);
        start(victim, false);
    }
    load.finish();
    REQUIRE_MESSAGE((answering && both_answer("after the load")),
                    "an instance stopped answering under load");

    // Every device to the end, through instance 0, then 1, then either.
    for (int pass = 0; pass < 3; ++pass) {
        instances.pinned = pass < 2 ? pass : -1;
        for (auto& d : devices) {
            CHECK(d->sync());
        }
    }
    instances.pinned = -1;
    for (auto& d : devices) {
        CHECK(d->pending() == 0);
    }
    {
        const std::lock_guard lock(ledger.mu);
        for (const auto& f : ledger.failures) {
            FAIL_CHECK(f);
        }
        CHECK_MESSAGE(ledger.answers_5xx == 0,
                      "instances answered 5xx " << ledger.answers_5xx << " times");
        for (const auto& [what, n] : ledger.rejections) {
            MESSAGE("rejected " << n << " times: " << what);
        }
    }

    // 1. Every acknowledged op in the log once.
    const LogView log = check_acknowledged(ledger, *store, "at the end", checked);
    for (const auto& [id, n] : log.count) {
        CHECK_MESSAGE(n == 1, "op " << op_text(id) << " is in the log " << n << " times");
    }
    CHECK(checked > 0);

    // 2. Both instances hold one state, current with the log.
    const auto s0 = server_state(servers[0]->port, supervisor, "instance 0");
    const auto s1 = server_state(servers[1]->port, supervisor, "instance 1");
    REQUIRE(s0);
    REQUIRE(s1);
    CHECK(s0->digest == s1->digest);
    CHECK(s0->entities == s1->entities);
    CHECK(s0->applied_seq == log.ops.back().seq);
    CHECK(s1->applied_seq == log.ops.back().seq);
    CHECK(s0->last_seq == log.ops.back().seq);

    // 3. That state is the log's: refolded here, by a third instance, by otsync-admin.
    crdt::Replica truth;
    std::size_t not_applied = 0;
    for (const auto& so : log.ops) {
        not_applied += truth.apply(so.op).applied() ? 0 : 1;
    }
    CHECK(not_applied == 0);
    CHECK(crdt::to_hex(truth.digest()) == s0->digest);
    CHECK(truth.entity_count() == s0->entities);
    {
        DataDir third_dir;
        ServerProcess third(third_dir.path, flags);
        third.start();
        const auto s2 = server_state(third.port, supervisor, "a third instance");
        REQUIRE(s2);
        CHECK(s2->digest == s0->digest);
        CHECK(s2->applied_seq == s0->applied_seq);
        CHECK(third.stop() == 0);
    }
    CHECK(admin(dirs[0].path, {"rebuild", "--verify"}, 0, store_url).find("all equal") !=
          std::string::npos);

    // 4. Every device holds its technician's OTs as the log has them, each with every row
    // recorded on it, by whichever handheld.
    const auto technician_of = [&](const Id& ot) {
        const Value* v = truth.get(EntityType::work_order, ot, "technician");
        return v && std::holds_alternative<Id>(*v) ? std::get<Id>(*v).hex() : std::string();
    };
    std::size_t rows_seen = 0;
    for (auto& d : devices) {
        CAPTURE(d->tech);
        CAPTURE(d->number);
        const std::string me = d->tech == "tec.mamani" ? mamani_hex : quispe_hex;
        const Id me_id = Id::from_hex(me);
        std::map<std::string, std::string> want;
        for (const Id& ot : truth.entities(EntityType::work_order)) {
            if (technician_of(ot) == me) {
                want[ot.hex()] = text_of(truth.get(EntityType::work_order, ot, "status"));
            }
        }
        const auto have = d->ots();
        CHECK(have.size() == want.size());
        for (const auto& [ot, status] : want) {
            const auto it = have.find(ot);
            const auto story = [&] { return ot_story(*store, log, Id::from_hex(ot), me_id); };
            if (it == have.end()) {
                FAIL_CHECK("OT " << ot << " ('" << status << "') is missing on the device; "
                                 << story());
            } else if (it->second != status) {
                FAIL_CHECK("OT " << ot << " is '" << it->second << "' on the device, '" << status
                                 << "' in the log; " << story());
            }
        }
        for (const auto& [ot, status] : have) {
            if (!want.contains(ot)) {
                FAIL_CHECK("OT " << ot << " ('" << status
                                 << "') is on the device, but not its technician's in the log; "
                                 << ot_story(*store, log, Id::from_hex(ot), me_id));
            }
        }
        for (const auto& [ot, status] : have) {
            if (!want.contains(ot)) {
                continue;
            }
            std::set<std::string> rows;
            for (const Id& item : truth.referrers(EntityType::collected_item, "work_order",
                                                  Value{Id::from_hex(ot)})) {
                rows.insert(item.hex());
            }
            CAPTURE(ot);
            CHECK(d->rows(ot) == rows);
            rows_seen += rows.size();
        }
    }
    // The office's acknowledged assignments are where the OTs are.
    for (const auto& [ot, may_hold] : office.technicians) {
        const std::string holder = technician_of(Id::from_hex(ot));
        CAPTURE(ot);
        CHECK(((may_hold.contains("tec.mamani") && holder == mamani_hex) ||
               (may_hold.contains("tec.quispe") && holder == quispe_hex)));
    }

    std::uint64_t syncs = 0, refused = 0;
    for (const auto& d : devices) {
        syncs += d->syncs;
        refused += d->refused_locally;
    }
    MESSAGE("instances: " << rounds << " kills; " << log.ops.size() << " ops in the log, "
                          << checked << " acknowledged to " << devices.size() << " devices in "
                          << syncs << " syncs (" << refused << " field actions refused locally); "
                          << rows_seen << " rows checked on the devices; the office opened "
                          << office.cases << " cases, reassigned " << office.reassigned << " OTs ("
                          << office.tolerated << " too late), " << office.lost << " of its "
                          << office.requests << " requests unanswered (an instance down)");
    CHECK(servers[0]->stop() == 0);
    CHECK(servers[1]->stop() == 0);
}
