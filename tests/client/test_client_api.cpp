// The C API as a handheld app binds it: the app's own transport (callbacks that may answer
// on another thread), a retry policy whose waits the app sees, a cancel from another
// thread, deadlines on a transport that never answers, and the sync's result as JSON.
#include "client_fixture.hpp"

#include "otsync/client.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <iterator>
#include <mutex>
#include <vector>

using namespace otsync;
using namespace otsync::client;
using namespace otsync::client::testing;

namespace {

/// An app's transport over the in-process server: each call answered on its own thread,
/// after `fail_first` calls that fail as a dropped link would; `silent` answers nothing.
struct AppTransport {
    explicit AppTransport(Server& server) : loop(*server.app) {}

    static void send(void* user, otsync_http_call* call) {
        auto* self = static_cast<AppTransport*>(user);
        const int n = self->calls++;
        if (self->silent) {
            std::lock_guard lock(self->mu);
            self->unanswered.push_back(call); // answered at the end of the test
            return;
        }
        std::string url = otsync_http_call_url(call);
        std::map<std::string, std::string> headers;
        for (size_t i = 0; i < otsync_http_call_header_count(call); ++i) {
            headers[otsync_http_call_header_name(call, i)] = otsync_http_call_header_value(call, i);
        }
        size_t len = 0;
        const uint8_t* body = otsync_http_call_body(call, &len);
        std::string bytes(reinterpret_cast<const char*>(body), len);
        if (n < self->fail_first) {
            std::thread([call] {
                otsync_http_call_fail(call, OTSYNC_ERR_NETWORK, "no route");
            }).detach();
            return;
        }
        std::thread([self, call, url, headers, bytes] {
            const std::string path = url.substr(url.find("/v1/"));
            const HttpReply r = self->loop.post(path, headers, bytes);
            if (self->us_per_byte > 0) { // a slow link: the bytes take their time
                std::this_thread::sleep_for(std::chrono::microseconds(
                    self->us_per_byte * static_cast<int>(bytes.size() + r.body.size())));
            }
            if (path == "/v1/sync" && self->count_ops) {
                auto h = headers;
                auto b = bytes;
                if (!server::decode_request(h, b, 8u << 20)) {
                    std::lock_guard lock(self->mu);
                    self->ops_per_request.push_back(decode_sync_request(b).ops.size());
                }
            }
            otsync_http_call_complete(call, static_cast<int>(r.status),
                                      reinterpret_cast<const uint8_t*>(r.body.data()),
                                      r.body.size());
        }).detach();
    }
    static void cancel(void* user, otsync_http_call*) {
        static_cast<AppTransport*>(user)->cancels++;
    }
    otsync_transport c_transport() { return otsync_transport{this, &send, &cancel}; }
    /// The app answers what it held back (the library has given up on them by now).
    void answer_late() {
        std::lock_guard lock(mu);
        for (auto* call : unanswered) {
            otsync_http_call_fail(call, OTSYNC_ERR_CANCELLED, "late");
        }
        unanswered.clear();
    }

    LoopbackTransport loop;
    std::atomic<int> calls{0};
    std::atomic<int> cancels{0};
    int fail_first = 0;
    bool silent = false;
    int us_per_byte = 0;    // > 0: each answer waits for its bytes on a slow link
    bool count_ops = false; // ops_per_request: the ops each sync request carried
    std::mutex mu;
    std::vector<std::size_t> ops_per_request;
    std::vector<otsync_http_call*> unanswered;
};

struct Handle {
    explicit Handle(const std::string& path) {
        otsync_error err{};
        c = otsync_client_open(path.c_str(), key_of(6).data(), &err);
        REQUIRE_MESSAGE(c, err.message);
    }
    ~Handle() { otsync_client_close(&c); }
    otsync_client_t* c = nullptr;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// A technician's device enrolled through the app's transport, with one OT on site and a
/// row recorded offline.
struct Day {
    explicit Day(const std::string& prefix)
        : tech(s.add_user("tec." + prefix, Role::technician)), ot(s.issue(tech, 1, prefix)[0]),
          app(s), h((dev.path / "device.db").string()) {
        const otsync_transport t = app.c_transport();
        otsync_error err{};
        REQUIRE(otsync_client_set_transport(h.c, &t, &err) == 0);
        const otsync_retry_policy fast{5, 40, 3000, 20};
        REQUIRE(otsync_client_set_retry_policy(h.c, &fast, &err) == 0);
        REQUIRE_MESSAGE(otsync_client_enroll(h.c, "https://app.transport", s.code(tech).c_str(),
                                             "x", &err) == 0,
                        err.message);
        REQUIRE_MESSAGE(otsync_client_sync(h.c, nullptr, nullptr, &err) == 0, err.message);
        REQUIRE(otsync_client_set_status(h.c, ot.hex().c_str(), "on_site", nullptr, &err) == 0);
        otsync_verdict v{};
        REQUIRE(otsync_client_collect(h.c, ot.hex().c_str(), (prefix + "0-0").c_str(), "ONT",
                                      "migration", nullptr, nullptr, &v, &err) == 0);
    }
    std::uint64_t pending() {
        otsync_error err{};
        char* st = otsync_client_status(h.c, &err);
        rapidjson::Document d;
        d.Parse(st);
        otsync_string_free(&st);
        return d["pending"].GetUint64();
    }
    Server s;
    Id tech;
    Id ot;
    AppTransport app;
    TempDir dev;
    Handle h;
};

} // namespace

TEST_CASE("the app's own transport carries a day's sync; retries are seen; the result is JSON") {
    Day d("APP");
    d.app.fail_first = d.app.calls + 3; // the next three calls find no route
    struct Seen {
        std::vector<otsync_sync_progress> waits;
        std::uint64_t last_sent = 0;
    } seen;
    const auto on_progress = [](const otsync_sync_progress* p, void* user) {
        auto* s = static_cast<Seen*>(user);
        if (p->retry_in_ms > 0) {
            s->waits.push_back(*p);
        }
        s->last_sent = p->sent;
        return 0;
    };
    otsync_error err{};
    char* result = nullptr;
    REQUIRE_MESSAGE(otsync_client_sync_ex(d.h.c, on_progress, &seen, &result, &err) == 0,
                    err.message);
    REQUIRE(seen.waits.size() == 3); // every retry visible, with why and how long
    for (std::uint32_t i = 0; i < 3; ++i) {
        CHECK(seen.waits[i].attempt == i + 1);
        CHECK(seen.waits[i].last_error == OTSYNC_ERR_NETWORK);
    }
    rapidjson::Document r;
    r.Parse(result);
    otsync_string_free(&result);
    REQUIRE(r.IsObject());
    CHECK(r["retries"].GetUint64() == 3);
    CHECK(r["sent"].GetUint64() > 0);
    CHECK(r["sent"].GetUint64() == seen.last_sent);
    CHECK(r["rejected"].GetUint64() == 0);
    CHECK(r["pending"].GetUint64() == 0);
    CHECK(r["bytes_up"].GetUint64() > 0);
    CHECK(r["bytes_down"].GetUint64() > 0);
    CHECK(r["evicted_ots"].IsArray());
    d.s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entity(EntityType::collected_item, Id::collected_item(d.ot, "APP0-0")));
    });
}

TEST_CASE("the app sets the batch target: on a slow link requests carry fewer ops; a later "
          "retry policy keeps it; 0 is refused") {
    Day d("BAT");
    for (int i = 0; i < 300; ++i) { // about 1,500 ops
        otsync_verdict v{};
        otsync_error e{};
        REQUIRE(otsync_client_collect(d.h.c, d.ot.hex().c_str(),
                                      ("BAT" + std::to_string(i)).c_str(), "ONT", "migration",
                                      nullptr, nullptr, &v, &e) == 0);
    }
    REQUIRE(d.pending() > 1000);
    otsync_error err{};
    REQUIRE(otsync_client_set_batch_target(d.h.c, 50, &err) == 0); // about 1 KB of this link
    const otsync_retry_policy fast{5, 40, 3000, 20};
    REQUIRE(otsync_client_set_retry_policy(d.h.c, &fast, &err) == 0); // keeps the 50 ms
    CHECK(otsync_client_set_batch_target(d.h.c, 0, &err) == -1);
    CHECK(err.code == OTSYNC_ERR_INVALID_ARGUMENT);
    d.app.us_per_byte = 50; // 20 KB/s
    d.app.count_ops = true;
    REQUIRE_MESSAGE(otsync_client_sync(d.h.c, nullptr, nullptr, &err) == 0, err.message);
    CHECK(d.pending() == 0);
    std::vector<std::size_t> sent;
    {
        std::lock_guard lock(d.app.mu);
        std::copy_if(d.app.ops_per_request.begin(), d.app.ops_per_request.end(),
                     std::back_inserter(sent), [](std::size_t n) { return n > 0; });
    }
    REQUIRE(sent.size() >= 3);
    CHECK(sent[0] == 500);                                        // nothing measured yet
    CHECK(*std::max_element(sent.begin() + 1, sent.end()) < 300); // 50 ms of the link
}

TEST_CASE("a transport that never answers: the sync ends at its deadline, nothing lost") {
    Day d("SIL");
    otsync_error err{};
    otsync_http_options o{};
    o.request_timeout_ms = 300;
    REQUIRE(otsync_client_set_http_options(d.h.c, &o, &err) == 0);
    const otsync_retry_policy once{100, 100, 150, 0}; // one retry, then give up
    REQUIRE(otsync_client_set_retry_policy(d.h.c, &once, &err) == 0);
    const auto before = d.pending();
    d.app.silent = true;
    const auto t0 = Clock::now();
    CHECK(otsync_client_sync(d.h.c, nullptr, nullptr, &err) != 0);
    CHECK(err.code == OTSYNC_ERR_TIMEOUT);
    CHECK(seconds_since(t0) < 5.0); // 2 × 300 ms deadlines and a 100 ms wait, not minutes
    CHECK(d.app.cancels >= 1);      // the app was told to stop what it carried
    CHECK(d.pending() == before);
    d.app.answer_late(); // harmless after the library gave up
    d.app.silent = false;
    CHECK(otsync_client_sync(d.h.c, nullptr, nullptr, &err) == 0);
    CHECK(d.pending() == 0);
}

TEST_CASE("cancel from another thread ends a sync within a second; the next one resumes") {
    Day d("CAN");
    otsync_error err{};
    const otsync_retry_policy patient{1000, 60000, 0, 20}; // would wait forever
    REQUIRE(otsync_client_set_retry_policy(d.h.c, &patient, &err) == 0);
    const auto before = d.pending();
    for (const bool silent : {true, false}) {
        CAPTURE(silent);
        // Silent: the cancel ends a call in flight. Failing: it ends a back-off wait.
        d.app.silent = silent;
        d.app.fail_first = silent ? 0 : d.app.calls + 1000;
        const int calls_before = d.app.calls;
        auto sync = std::async(std::launch::async, [&] {
            otsync_error e{};
            const int rc = otsync_client_sync(d.h.c, nullptr, nullptr, &e);
            return std::make_pair(rc, e.code);
        });
        for (int i = 0; i < 1000 && d.app.calls == calls_before; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        REQUIRE(d.app.calls > calls_before);
        std::this_thread::sleep_for(std::chrono::milliseconds(200)); // in flight / waiting
        const auto t0 = Clock::now();
        otsync_client_cancel(d.h.c);
        const auto [rc, code] = sync.get();
        CHECK(seconds_since(t0) < 1.0);
        CHECK(rc != 0);
        CHECK(code == OTSYNC_ERR_CANCELLED);
        CHECK(d.pending() == before);
        d.app.answer_late();
    }
    d.app.silent = false;
    d.app.fail_first = 0;
    CHECK(otsync_client_sync(d.h.c, nullptr, nullptr, &err) == 0);
    CHECK(d.pending() == 0);
}

TEST_CASE("a handover not yet received has no receipt to verify") {
    Day d("RCP");
    otsync_error err{};
    for (int k = 1; k < 4; ++k) {
        REQUIRE(otsync_client_report_missing(d.h.c, d.ot.hex().c_str(),
                                             ("RCP0-" + std::to_string(k)).c_str(), "extraviado",
                                             &err) == 0);
    }
    const std::string& png = tiny_png();
    REQUIRE(otsync_client_sign(d.h.c, d.ot.hex().c_str(),
                               reinterpret_cast<const uint8_t*>(png.data()), png.size(),
                               &err) == 0);
    REQUIRE(otsync_client_set_status(d.h.c, d.ot.hex().c_str(), "completed", nullptr, &err) == 0);
    char* id = otsync_client_create_handover(d.h.c, "Cercado", &err);
    REQUIRE(id);
    const std::string hex = std::string(id).substr(1, 32); // a JSON string
    otsync_string_free(&id);
    REQUIRE(otsync_client_sync(d.h.c, nullptr, nullptr, &err) == 0);
    char* list = otsync_client_handovers(d.h.c, &err);
    REQUIRE(list);
    CHECK(std::string(list).find("\"receipt\":null") != std::string::npos);
    otsync_string_free(&list);
    CHECK(otsync_client_verify_receipt(d.h.c, hex.c_str(), &err) != 0);
    CHECK(err.code == OTSYNC_ERR_INVALID_TRANSITION);
    CHECK(otsync_client_verify_receipt(d.h.c, Id::random().hex().c_str(), &err) != 0);
    CHECK(err.code == OTSYNC_ERR_NOT_FOUND);
}

TEST_CASE("a progress callback that asks to stop ends the sync, nothing lost") {
    Day d("STP");
    const auto before = d.pending();
    otsync_error err{};
    const auto stop = [](const otsync_sync_progress*, void*) { return 1; };
    CHECK(otsync_client_sync_ex(d.h.c, stop, nullptr, nullptr, &err) != 0);
    CHECK(err.code == OTSYNC_ERR_CANCELLED);
    CHECK(d.pending() <= before); // what the server acknowledged before the stop is sent
    CHECK(otsync_client_sync(d.h.c, nullptr, nullptr, &err) == 0);
    CHECK(d.pending() == 0);
    d.s.sync->read_state([&](const crdt::Replica& st) {
        CHECK(st.entity(EntityType::collected_item, Id::collected_item(d.ot, "STP0-0")));
    });
}

TEST_CASE("show_ot lists each expected serial with what became of it, the reason as a field") {
    Day d("EQP");
    otsync_error err{};
    REQUIRE(otsync_client_report_missing(d.h.c, d.ot.hex().c_str(), "EQP0-1",
                                         "el cliente: no lo encuentra", &err) == 0);
    char* shown = otsync_client_show_ot(d.h.c, d.ot.hex().c_str(), &err);
    REQUIRE_MESSAGE(shown, err.message);
    rapidjson::Document doc;
    doc.Parse(shown);
    otsync_string_free(&shown);
    REQUIRE(doc.IsObject());
    REQUIRE(doc.HasMember("equipment"));
    const auto& eq = doc["equipment"];
    REQUIRE(eq.IsArray());
    std::map<std::string, std::pair<std::string, std::string>> by_serial; // state, reason
    std::string collected_item;
    for (const auto& e : eq.GetArray()) {
        const std::string serial = e["serial"].GetString();
        by_serial[serial] = {e["state"].GetString(),
                             e["reason"].IsNull() ? "" : e["reason"].GetString()};
        if (serial == "EQP0-0") {
            REQUIRE(e["item"].IsString());
            collected_item = e["item"].GetString();
        } else {
            CHECK(e["item"].IsNull());
        }
    }
    CHECK(by_serial.size() == 4);
    CHECK(by_serial["EQP0-0"].first == "collected");
    CHECK(by_serial["EQP0-1"] ==
          std::pair<std::string, std::string>{"missing", "el cliente: no lo encuentra"});
    CHECK(by_serial["EQP0-2"].first == "pending");
    CHECK(by_serial["EQP0-3"].first == "pending");
    // The item named is the row of "rows".
    bool found = false;
    for (const auto& row : doc["rows"].GetArray()) {
        found = found || collected_item == row["id"].GetString();
    }
    CHECK(found);
}

TEST_CASE("an error message longer than the struct holds is cut between characters") {
    TempDir dev;
    Handle h((dev.path / "device.db").string());
    // The message quotes the id given: 'x' and 300 two-byte characters put a character
    // across byte 511, where the message is cut.
    std::string id = "x";
    for (int i = 0; i < 300; ++i) {
        id += "\xc3\xb1"; // ñ
    }
    otsync_error err{};
    CHECK(otsync_client_show_ot(h.c, id.c_str(), &err) == nullptr);
    CHECK(err.code == OTSYNC_ERR_INVALID_ARGUMENT);
    const std::string message = err.message;
    CHECK(message.size() > 400);
    CHECK(message.size() < sizeof err.message);
    CHECK(is_valid_utf8(message));
}
