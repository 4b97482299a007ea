// client-core's attachments against the in-process server: signatures and photos recorded
// offline, kept encrypted, uploaded after the ops in chunks that resume where a cut left
// them, each blob once; what the server refuses stays on the device and is shown.
#include "client_fixture.hpp"

#include "otsync/attachment.hpp"
#include "otsync/client.hpp"

#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <map>
#include <random>

using namespace otsync;
using namespace otsync::client;
using namespace otsync::client::testing;
using otsync::testing::jpeg_of;
using otsync::testing::pdf_of;
using otsync::testing::png_with_text;
using otsync::testing::random_bytes;

namespace {

const std::uint8_t* bytes(const std::string& s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

Hash256 hash_of(const std::string& s) {
    return attachment::blob_hash({bytes(s), s.size()});
}

/// Counts every byte of every chunk it carries, notes the server's op count when the first
/// chunk leaves, and loses every `cut_every`-th chunk request: the request itself, or,
/// every other time, only its answer (the server kept the chunk).
class ChunkCounting : public ForwardingTransport {
public:
    ChunkCounting(Transport& next, server::Store& store, int cut_every)
        : ForwardingTransport(next), m_store(store), m_cut_every(cut_every) {}
    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        const auto target = attachment::parse_upload_path(path);
        if (!target) {
            return ForwardingTransport::post(path, headers, body);
        }
        if (!ops_at_first_chunk) {
            ops_at_first_chunk = m_store.op_count();
        }
        auto& seen = sent[to_hex(target->hash)];
        seen.resize(target->size);
        for (std::size_t i = 0; i < body.size(); ++i) {
            seen[target->offset + i]++;
        }
        ++chunks;
        if (m_cut_every > 0 && chunks % m_cut_every == 0) {
            ++cuts;
            if (cuts % 2 == 0) {
                ForwardingTransport::post(path, headers, body); // kept; the answer is lost
            }
            return {};
        }
        return ForwardingTransport::post(path, headers, body);
    }
    std::optional<std::uint64_t> ops_at_first_chunk;
    std::map<std::string, std::vector<int>> sent; // hash hex -> times each byte was sent
    int chunks = 0;
    int cuts = 0;

private:
    server::Store& m_store;
    int m_cut_every;
};

rapidjson::Document status_of(const Client& c) {
    rapidjson::Document doc;
    doc.Parse(c.status_json().c_str());
    REQUIRE(doc.IsObject());
    return doc;
}

/// Syncs until the device has no op and no attachment left to send.
void sync_everything(Client& c, Transport& t, SyncStats* total = nullptr) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        try {
            const SyncStats s = c.sync(t);
            if (total) {
                total->attachments_sent += s.attachments_sent;
                total->attachment_bytes += s.attachment_bytes;
            }
        } catch (const ClientError& e) {
            REQUIRE_MESSAGE(e.code() == OTSYNC_ERR_NETWORK, e.what());
            continue;
        }
        if (c.pending() == 0 && status_of(c)["attachments"]["pending"].GetInt64() == 0) {
            return;
        }
    }
    FAIL("the device still has things to send");
}

/// A server with a technician's `n` OTs, and his handheld enrolled and synced.
struct Handheld {
    explicit Handheld(int n, server::SyncConfig config = {})
        : server({}, 0, std::move(config)), tech(server.add_user("t.quispe", Role::technician)),
          ots(server.issue(tech, n, "ZTEG")), client((dev.path / "device.db").string(), key_of(1)),
          loop(*server.app) {
        client.enroll(loop, "http://loopback", server.code(tech), "x");
        client.sync(loop);
    }
    Server server;
    Id tech;
    std::vector<Id> ots;
    TempDir dev;
    Client client;
    LoopbackTransport loop;
};

} // namespace

TEST_CASE("signatures and photos recorded offline arrive after the rows, each once and intact; "
          "a cut resumes where the server's bytes end") {
    Handheld hh(3, {});
    Server& s = hh.server;
    Client& c = hh.client;
    LoopbackTransport& loop = hh.loop;
    const auto& ots = hh.ots;
    c.set_retry_policy(fast_retries());

    // Offline: rows, a photo of a damaged item and of a missing one, each OT signed.
    std::map<std::string, std::string> kept; // hash hex -> bytes
    for (std::size_t o = 0; o < ots.size(); ++o) {
        const std::string ot = ots[o].hex();
        const std::string serial = "ZTEG" + std::to_string(o) + "-0";
        c.set_status(ot, "on_site", "");
        c.collect(ot, serial, "ONT", "damaged", "carcasa rota", "");
        c.collect(ot, "ZTEG" + std::to_string(o) + "-1", "", "migration", "", "");
        c.collect(ot, "ZTEG" + std::to_string(o) + "-2", "", "migration", "", "");
        if (o < 2) {
            const std::string photo = jpeg_of(random_bytes(150'000 + 20'000 * o, o + 1));
            CHECK(c.photo(ot, serial, bytes(photo), photo.size()) == to_hex(hash_of(photo)));
            kept[to_hex(hash_of(photo))] = photo;
        }
        const std::string missing = jpeg_of(random_bytes(30'000, o + 10));
        c.report_missing(ot, "ZTEG" + std::to_string(o) + "-3", "el cliente lo perdió");
        c.photo(ot, "ZTEG" + std::to_string(o) + "-3", bytes(missing), missing.size());
        kept[to_hex(hash_of(missing))] = missing;
        const std::string png = png_with_text("firma " + std::to_string(o));
        c.sign(ot, bytes(png), png.size());
        kept[to_hex(hash_of(png))] = png;
        c.set_status(ot, "completed", "");
    }
    auto st = status_of(c);
    CHECK(st["attachments"]["pending"].GetInt64() == static_cast<std::int64_t>(kept.size()));

    ChunkCounting link(loop, *s.store, 4);
    SyncStats total;
    sync_everything(c, link, &total);

    // The rows came first: no op reached the server after the first chunk left.
    REQUIRE(link.ops_at_first_chunk);
    CHECK(*link.ops_at_first_chunk == s.store->op_count());
    CHECK(link.cuts > 2);
    // Every blob arrived whole, under its hash; no byte was sent more than twice.
    for (const auto& [hex, data] : kept) {
        const auto h = attachment::hash_from_hex(hex);
        REQUIRE(h);
        CHECK(s.store->blob_data(*h) == data);
        const auto& seen = link.sent[hex];
        CHECK(*std::max_element(seen.begin(), seen.end()) <= 2);
    }
    CHECK(total.attachments_sent == kept.size());
    std::uint64_t all = 0;
    for (const auto& [hex, data] : kept) {
        all += data.size();
    }
    CHECK(total.attachment_bytes == all);
    st = status_of(c);
    CHECK(st["attachments"]["uploaded"].GetInt64() == static_cast<std::int64_t>(kept.size()));
    CHECK(st["attachments"]["pending_bytes"].GetUint64() == 0);

    // The office's view of the OT names them: the signature on the OT and its rows, the photos
    // by serial.
    s.sync->read_state([&](const crdt::Replica& r) {
        const Value* sig = r.get(EntityType::work_order, ots[0], "signature_blob");
        REQUIRE(sig);
        CHECK(kept.contains(to_hex(std::get<Bytes>(*sig).data)));
        CHECK(r.elements(EntityType::work_order, ots[0], "equipment_photos").size() == 2);
    });
    // A later sync sends nothing more.
    const int chunks = link.chunks;
    c.sync(link);
    CHECK(link.chunks == chunks);
}

TEST_CASE("a photo names an item of the OT and its bytes decide its type; nothing is recorded "
          "when it is refused") {
    Handheld hh(1, {});
    Client& c = hh.client;
    const std::string ot = hh.ots[0].hex();
    const std::string photo = jpeg_of("x");
    const auto code = [&](const std::string& serial, const std::string& data) {
        try {
            c.photo(ot, serial, bytes(data), data.size());
        } catch (const ClientError& e) {
            return e.code();
        }
        return 0;
    };
    CHECK(code("NOT-ON-THIS-OT", photo) == OTSYNC_ERR_NOT_FOUND);
    CHECK(code("ZTEG0-0", pdf_of("a scan")) == OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE);
    CHECK(code("ZTEG0-0", photo.substr(0, photo.size() - 1)) == OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE);
    CHECK(code("ZTEG0-0", jpeg_of(std::string(4u << 20, 'x'))) == OTSYNC_ERR_TOO_LARGE);
    CHECK(code("ZTEG0-0", "") == OTSYNC_ERR_MISSING_FIELD);
    CHECK(c.pending() == 0);
    CHECK(status_of(c)["attachments"]["pending"].GetInt64() == 0);
    // The same photo twice is one photo.
    CHECK(code("ZTEG0-0", photo) == 0);
    CHECK(code("ZTEG0-0", photo) == 0);
    CHECK(c.pending() == 1);
    CHECK(status_of(c)["attachments"]["pending"].GetInt64() == 1);
}

TEST_CASE("an attachment the server refuses stays on the device, shown in the status, and the "
          "sync goes on") {
    server::SyncConfig config;
    config.attachments.equipment_photo.max_bytes = 50'000; // this server takes smaller photos
    Handheld hh(1, config);
    Server& s = hh.server;
    Client& c = hh.client;
    LoopbackTransport& loop = hh.loop;
    const auto& ots = hh.ots;
    const std::string big = jpeg_of(random_bytes(80'000, 7));
    const std::string png = png_with_text("firma");
    c.set_status(ots[0].hex(), "on_site", "");
    c.collect(ots[0].hex(), "ZTEG0-0", "", "damaged", "golpe", "");
    c.photo(ots[0].hex(), "ZTEG0-0", bytes(big), big.size());
    c.sign(ots[0].hex(), bytes(png), png.size());
    const SyncStats stats = c.sync(loop);
    CHECK(stats.attachments_sent == 1); // the signature
    CHECK(stats.attachments_refused == 1);
    CHECK(s.store->blob_data(hash_of(png)) == png);
    CHECK_FALSE(s.store->blob_info(hash_of(big)));
    const auto st = status_of(c);
    CHECK(st["attachments"]["uploaded"].GetInt64() == 1);
    REQUIRE(st["attachments"]["refused"].Size() == 1);
    const auto& refused = st["attachments"]["refused"][0];
    CHECK(std::string(refused["hash"].GetString()) == to_hex(hash_of(big)));
    CHECK(std::string(refused["kind"].GetString()) == "equipment_photo");
    CHECK(std::string(refused["refusal"].GetString()).find("413") != std::string::npos);
    // Refused is not retried at every sync, and not lost: a later sync sends nothing.
    CHECK(c.sync(loop).attachments_refused == 0);
}

TEST_CASE("the delivery act on the handheld: the technician signs his handover over its rows; "
          "the signature reaches the server after the ops, and a delivered handover stays so") {
    Handheld hh(1, {});
    Client& c = hh.client;
    const std::string ot = hh.ots[0].hex();
    c.set_status(ot, "on_site", "");
    for (int k = 0; k < 4; ++k) {
        c.collect(ot, "ZTEG0-" + std::to_string(k), "", "migration", "", "");
    }
    const std::string customer = png_with_text("cliente");
    c.sign(ot, bytes(customer), customer.size());
    c.set_status(ot, "completed", "");
    const std::string h = c.create_handover("Cercado");
    const std::string png = png_with_text("tecnico Quispe");
    const auto code = [&](const std::string& id, const std::string& data) {
        try {
            c.deliver_handover(id, "Pedro Quispe", bytes(data), data.size());
        } catch (const ClientError& e) {
            return e.code();
        }
        return 0;
    };
    CHECK(code(Id::random().hex(), png) == OTSYNC_ERR_NOT_FOUND);
    CHECK(code(h, "not a png") == OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE);
    CHECK(code(h, png) == 0);
    CHECK(code(h, png) == OTSYNC_ERR_INVALID_TRANSITION); // delivered once
    const SyncStats stats = c.sync(hh.loop);
    CHECK(stats.rejected == 0);
    CHECK(stats.attachments_sent == 2); // the customer's and the technician's signatures
    CHECK(hh.server.store->blob_data(hash_of(png)) == png);
    const Id hid = Id::from_hex(h);
    const Hash256 png_hash = hash_of(png);
    hh.server.sync->read_state([&](const crdt::Replica& r) {
        CHECK(text_of(r, EntityType::handover, hid, "status") == "delivered");
        CHECK(text_of(r, EntityType::handover, hid, "delivered_by") == "Pedro Quispe");
        const Value* blob = r.get(EntityType::handover, hid, "technician_signature_blob");
        REQUIRE(blob);
        CHECK(std::get<Bytes>(*blob).data ==
              std::vector<std::uint8_t>(png_hash.begin(), png_hash.end()));
        const Value* over = r.get(EntityType::handover, hid, "delivered_rows_hash");
        REQUIRE(over);
        const Hash256 rows = rows_hash(delivered_rows(r, hid));
        CHECK(std::get<Bytes>(*over).data == std::vector<std::uint8_t>(rows.begin(), rows.end()));
    });
    // The warehouse sees the technician's signature; another technician does not.
    const auto refs = hh.server.sync->blob_refs(hash_of(png));
    const server::User clerk{Id::random(), "alm", Role::warehouse_clerk, false, 0, {}, {}, {}};
    const server::User other{Id::random(), "otro", Role::technician, false, 0, {}, {}, {}};
    CHECK(hh.server.sync->may_view_blob(clerk, refs));
    CHECK_FALSE(hh.server.sync->may_view_blob(other, refs));
}
