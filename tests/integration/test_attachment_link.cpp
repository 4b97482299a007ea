// Attachments over a bad mobile link, end to end: the real otsync-server process, client-core
// with its own HTTP transport, and between them the loopback proxy of tests/link_proxy.hpp
// at 64 kbit/s that cuts the upload five times. A technician's 50 signed OTs and 20 photos,
// recorded offline, must reach the server's database each once and intact, no chunk sent
// more than twice, every row acknowledged before the first photo's first byte leaves.
//
// The default run's photos weigh 12-24 KB, so the upload takes about a minute; with
// OTSYNC_SOAK=1 (tools/test.sh --soak) they weigh 1-2 MB, as a handheld's camera gives,
// and the upload about an hour.
#include "../link_proxy.hpp"
#include "../test_images.hpp"
#include "server_process.hpp"

#include "otsync/attachment.hpp"
#include "otsync/client.hpp"
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <cstdlib>
#include <map>

using namespace otsync;
using otsync::test::DataDir;
using otsync::test::ServerProcess;
using otsync::testing::jpeg_of;
using otsync::testing::LinkProxy;
using otsync::testing::png_with_text;
using otsync::testing::random_bytes;

namespace {

constexpr std::size_t k_ots = 50;
constexpr std::size_t k_photos = 20;

const std::uint8_t* bytes(const std::string& s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

/// The technician's OTs, seeded on the data folder before the server starts, and the code
/// his handheld enrolls with.
struct Seeded {
    std::vector<Id> ots;
    std::string code;
};

Seeded seed(const std::filesystem::path& dir) {
    server::SqliteOptions so;
    so.path = (dir / "otsync.db").string();
    auto store = server::open_sqlite_store(so);
    SystemClock clock;
    server::SyncService sync(*store, clock, {});
    const server::User bo{Id::random(), "bo.link", Role::back_office, false, 0, {}, {}, {}};
    const server::User tech{Id::random(), "tec.link", Role::technician, false, 0, {}, {}, {}};
    store->add_user(bo);
    store->add_user(tech);
    Seeded out;
    sync.submit(bo.id, Role::back_office, [&](crdt::OpMaker& m, const crdt::Replica&) {
        std::vector<Op> ops;
        for (std::size_t i = 0; i < k_ots; ++i) {
            const Id ot = Id::random();
            out.ots.push_back(ot);
            ops.push_back(m.set(EntityType::work_order, ot, "kind", text("withdraw_boot")));
            ops.push_back(m.set(EntityType::work_order, ot, "technician", tech.id));
            Op issued = m.set(EntityType::work_order, ot, "status", text("issued"));
            Op assigned = m.set(EntityType::work_order, ot, "status", text("assigned"));
            assigned.observed = {issued.id};
            ops.push_back(issued);
            ops.push_back(assigned);
            for (int k = 0; k < 2; ++k) {
                ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                    text("ZTEG" + std::to_string(i) + "-" + std::to_string(k))));
            }
        }
        return ops;
    });
    out.code = sync.new_enroll_code(tech.id);
    return out;
}

/// Looks at every request on its way to the link: the bytes of each chunk (how often each
/// byte of each blob was sent) and the outbox when the first chunk leaves.
class Watch : public client::Transport {
public:
    Watch(client::Transport& next, client::Client& c) : m_next(next), m_client(c) {}
    client::HttpReply post(const std::string& path,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body) override {
        if (const auto t = attachment::parse_upload_path(path)) {
            if (!outbox_at_first_chunk) {
                outbox_at_first_chunk = m_client.pending(); // the sync holds no lock meanwhile
            }
            auto& seen = sent[to_hex(t->hash)];
            seen.resize(t->size);
            for (std::size_t i = 0; i < body.size(); ++i) {
                seen[t->offset + i]++;
            }
        }
        return m_next.post(path, headers, body);
    }
    void cancel() override { m_next.cancel(); }
    std::optional<std::size_t> outbox_at_first_chunk;
    std::map<std::string, std::vector<int>> sent;

private:
    client::Transport& m_next;
    client::Client& m_client;
};

std::int64_t attachments_pending(const client::Client& c) {
    rapidjson::Document doc;
    doc.Parse(c.status_json().c_str());
    return doc["attachments"]["pending"].GetInt64();
}

} // namespace

TEST_CASE("50 signatures and 20 photos recorded offline cross a 64 kbit/s link with cuts: each "
          "blob arrives once and intact, no chunk is sent more than twice, the rows go first") {
    const char* soak_env = std::getenv("OTSYNC_SOAK");
    const bool soak = soak_env && std::string(soak_env) == "1";
    DataDir dir;
    const Seeded seeded = seed(dir.path);
    ServerProcess server(dir.path, {});
    server.start();
    LinkProxy proxy(server.port);
    const std::string url = "http://127.0.0.1:" + std::to_string(proxy.port());

    test::TempDir dev("otsync-link-dev-");
    std::array<std::uint8_t, 32> key{};
    key.fill(7);
    client::Client c((dev.path / "device.db").string(), key);
    auto http = client::make_http_transport(url);
    c.enroll(*http, url, seeded.code, "link");
    c.sync(*http); // the OTs arrive, on the link unshaped

    // Offline: each OT's rows, a photo of each damaged item (the first 20), the signature.
    std::map<std::string, std::string> blobs; // hash hex -> bytes
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < k_ots; ++i) {
        const std::string ot = seeded.ots[i].hex();
        const std::string serial = "ZTEG" + std::to_string(i) + "-0";
        c.set_status(ot, "on_site", "");
        const bool damaged = i < k_photos;
        c.collect(ot, serial, "ONT", damaged ? "damaged" : "migration",
                  damaged ? "carcasa rota" : "", "");
        c.report_missing(ot, "ZTEG" + std::to_string(i) + "-1", "el cliente lo conserva");
        if (damaged) {
            const std::size_t size = soak ? 1'000'000 + 50'000 * i : 12'000 + 600 * i;
            const std::string photo = jpeg_of(random_bytes(size, static_cast<unsigned>(i + 1)));
            c.photo(ot, serial, bytes(photo), photo.size());
            blobs[to_hex(attachment::blob_hash({bytes(photo), photo.size()}))] = photo;
        }
        // A signature pad's PNG weighs about 1.4 KB.
        const std::string png = png_with_text(random_bytes(1'350, static_cast<unsigned>(i + 100)));
        c.sign(ot, bytes(png), png.size());
        blobs[to_hex(attachment::blob_hash({bytes(png), png.size()}))] = png;
        c.set_status(ot, "completed", "");
    }
    for (const auto& [hex, data] : blobs) {
        total += data.size();
    }
    REQUIRE(blobs.size() == k_ots + k_photos);

    // 64 kbit/s, 100 ms round trip, five cuts across the upload.
    LinkProxy::Shape link{64'000.0 / 8, std::chrono::milliseconds(50), {}};
    for (int k = 1; k <= 5; ++k) {
        link.cuts.push_back(total * static_cast<std::uint64_t>(2 * k - 1) / 10);
    }
    proxy.shape(link);
    Watch watch(*http, c);
    for (int call = 0; call < 20 && (c.pending() > 0 || attachments_pending(c) > 0); ++call) {
        try {
            c.sync(watch);
        } catch (const client::ClientError& e) {
            REQUIRE_MESSAGE((e.code() == OTSYNC_ERR_NETWORK || e.code() == OTSYNC_ERR_TIMEOUT),
                            e.what());
        }
    }
    CHECK(c.pending() == 0);
    CHECK(attachments_pending(c) == 0);
    CHECK(proxy.counts().cuts == 5);
    // The rows first: the outbox was empty when the first chunk left.
    REQUIRE(watch.outbox_at_first_chunk);
    CHECK(*watch.outbox_at_first_chunk == 0);
    // No byte of any blob went more than twice.
    for (const auto& [hex, data] : blobs) {
        const auto& seen = watch.sent[hex];
        REQUIRE(seen.size() == data.size());
        CHECK_MESSAGE(*std::max_element(seen.begin(), seen.end()) <= 2, hex);
    }

    // Every blob kept once and intact in the server's database.
    CHECK(server.stop() == 0);
    server::SqliteOptions so;
    so.path = (dir.path / "otsync.db").string();
    const auto store = server::open_sqlite_store(so);
    for (const auto& [hex, data] : blobs) {
        const auto h = attachment::hash_from_hex(hex);
        REQUIRE(h);
        CHECK(store->blob_data(*h) == data);
        CHECK(store->staged_bytes(*h) == 0);
    }
    std::size_t kept = 0;
    store->export_rows(
        [&](const server::DumpRows& rows) {
            if (rows.table == "blobs") {
                kept += rows.rows.size();
            }
        },
        1000);
    CHECK(kept == blobs.size());
}
