// Crash safety of client-core: a handheld process (crash_driver) records rows and syncs
// against the real server while it is killed with SIGKILL at random moments, 30 times
// (300 with OTSYNC_SOAK=1). After each kill the database opens, every row the process
// reported as recorded is there, and at the end every recorded row reaches the server
// exactly once.
#include "../integration/server_process.hpp"

#include "otsync/client.hpp"
#include "otsync/crdt.hpp"

#include <set>

using namespace otsync;
using namespace otsync::test;

namespace {

/// Runs the driver for `ms` milliseconds, then SIGKILL; returns the serials it reported.
std::vector<std::string> run_and_kill(const std::vector<std::string>& argv, int ms) {
    const auto [pid, fd] = spawn_with_stdout(argv);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    const std::string text = drain(fd);
    std::vector<std::string> serials;
    std::size_t pos = 0;
    while ((pos = text.find("recorded ", pos)) != std::string::npos) {
        const auto end = text.find('\n', pos);
        if (end == std::string::npos) {
            break; // a line cut by the kill: not reported
        }
        serials.push_back(text.substr(pos + 9, end - pos - 9));
        pos = end;
    }
    return serials;
}

} // namespace

TEST_CASE(
    "kill the handheld at random points while it records and syncs: nothing recorded is lost") {
    const bool soak = std::getenv("OTSYNC_SOAK") && std::string(std::getenv("OTSYNC_SOAK")) == "1";
    const int rounds = soak ? 300 : 30;
    DataDir dir;
    ServerProcess server(dir.path);
    server.start();
    admin(dir.path, {"user", "add", "--role", "back_office", "bo"});
    admin(dir.path, {"user", "add", "--role", "technician", "tec"});
    HttpDevice office;
    REQUIRE(office.enroll(server.port, admin(dir.path, {"device", "enroll-code", "bo"})));
    const Id tech = Id::from_hex(
        admin(dir.path, {"user", "list"})
            .substr(admin(dir.path, {"user", "list"}).find("tec\ttechnician\tactive\t") + 22, 32));
    SystemClock wall;
    Hlc hlc(wall);
    crdt::OpMaker bo(office.replica, hlc, office.user);
    const Id ot = Id::random();
    Op issued = bo.set(EntityType::work_order, ot, "status", text("issued"));
    Op assigned = bo.set(EntityType::work_order, ot, "status", text("assigned"));
    assigned.observed = {issued.id};
    REQUIRE(office
                .post(server.port,
                      office.request({bo.set(EntityType::work_order, ot, "technician", tech),
                                      issued, assigned},
                                     hlc.now()),
                      false)
                .status == 200);

    const std::string db = (dir.path / "handheld.db").string();
    const std::string url = "http://127.0.0.1:" + std::to_string(server.port);
    const std::string code = admin(dir.path, {"device", "enroll-code", "tec"});
    std::array<std::uint8_t, 32> key{};
    key.fill(0x5a);
    std::set<std::string> recorded;
    long next = 0;
    std::mt19937 rng(20261129);
    for (int round = 0; round < rounds; ++round) {
        const auto got = run_and_kill(
            {OTSYNC_CRASH_DRIVER, db, url, round == 0 ? code : "-", ot.hex(), std::to_string(next)},
            round == 0 ? 1500 : static_cast<int>(40 + rng() % 300));
        recorded.insert(got.begin(), got.end());
        next += static_cast<long>(got.size()) + 1; // the cut line's serial may exist too: skip it
        // The database opens after the kill, and every reported row is in it.
        client::Client c(db, key);
        for (const auto& s : got) {
            if (!c.state().entity(EntityType::collected_item, Id::collected_item(ot, s))) {
                FAIL_CHECK("round " << round << ": recorded " << s << " lost");
            }
        }
    }
    REQUIRE_FALSE(recorded.empty());
    // Drain the outbox, then every recorded row is on the server, once.
    const auto [drain_code, drain_out] =
        run_command({OTSYNC_CRASH_DRIVER, db, url, "-", ot.hex(), "--drain"});
    CHECK_MESSAGE(drain_code == 0, drain_out);
    HttpDevice& puller = office; // an office device pulls the whole log
    crdt::Replica server_state;
    for (int page = 0; page < 1000; ++page) {
        const auto r = puller.post(server.port, puller.request({}, hlc.now()), false);
        REQUIRE(r.status == 200);
        const auto resp = decode_sync_response(r.body);
        for (const auto& s : resp.ops) {
            server_state.apply(s.op);
        }
        puller.cursor = resp.cursor;
        if (!resp.more) {
            break;
        }
    }
    for (const auto& s : recorded) {
        if (!server_state.entity(EntityType::collected_item, Id::collected_item(ot, s))) {
            FAIL_CHECK("recorded " << s << " never reached the server");
        }
    }
    MESSAGE("client crash: " << rounds << " kills, " << recorded.size()
                             << " rows recorded, all on the server");
    CHECK(server.stop() == 0);
}
