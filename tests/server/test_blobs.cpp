// Attachments on the sync service: POST /v1/blobs/<hash>/<size>/<offset> takes a chunk only
// for a blob a record of the device's scope names, appends it where the kept bytes end,
// checks the whole (hash, type, limits) before it answers complete, and keeps each blob
// once; who may see one follows the permission table (docs/api.md).
#include "../test_images.hpp"
#include "sync_fixture.hpp"

#include "otsync/attachment.hpp"
#include "otsync/view.hpp"

#include <random>

using namespace otsync;
using namespace otsync::test;
using otsync::testing::jpeg_of;
using otsync::testing::pdf_of;
using otsync::testing::random_bytes;

namespace {

Hash256 hash_of(const std::string& s) {
    return attachment::blob_hash({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
}

/// One chunk request signed by `d` (a new counter unless `counter` is given).
server::Reply chunk(Fixture& f, Device& d, const Hash256& h, std::uint64_t size,
                    std::uint64_t offset, const std::string& body,
                    std::optional<std::uint64_t> counter = std::nullopt) {
    const std::string path = attachment::upload_path(h, size, offset);
    const std::uint64_t c = counter.value_or(++d.request_counter);
    const auto env =
        session::sign_request(d.replica, c, path, body, d.key.secret, "application/octet-stream");
    return server::reply_of(f.service->upload_blob(path, session::headers_of(env), body));
}

std::uint64_t received_of(const server::Reply& r) {
    const auto at = r.body.find("\"received\":");
    REQUIRE_MESSAGE(at != std::string::npos, r.body);
    return std::stoull(r.body.substr(at + 11));
}

bool complete(const server::Reply& r) {
    return r.body.find("\"complete\":true") != std::string::npos;
}

Op photo_op(Device& d, const Id& ot, const std::string& serial, const Hash256& h) {
    return d.maker->add(EntityType::work_order, ot, "equipment_photos",
                        attachment::reference_text(serial, h));
}

} // namespace

TEST_CASE("an attachment's chunks: named by a record first, appended where the kept bytes end, "
          "checked whole, kept once") {
    Fixture f;
    const Id tech = f.add_user("t.quispe", Role::technician);
    const Id other = f.add_user("t.mamani", Role::technician);
    const Id ot = f.issue_ot(tech, Id::random(), {"ZTEG01"});
    auto d = f.enroll(tech);
    auto e = f.enroll(other);
    f.sync_all(*d);
    f.sync_all(*e);

    const std::string photo = jpeg_of(random_bytes(100'000, 1));
    const Hash256 h = hash_of(photo);
    const auto size = photo.size();

    // No record names it yet: refused, nothing kept.
    auto r = chunk(f, *d, h, size, 0, photo.substr(0, 40'000));
    CHECK(r.status == 404);
    CHECK(r.body.find("\"not_found\"") != std::string::npos);
    CHECK(f.store->staged_bytes(h) == 0);

    f.sync(*d, {photo_op(*d, ot, "ZTEG01", h)});
    // Another technician's device may not send what only this OT names.
    CHECK(chunk(f, *e, h, size, 0, photo.substr(0, 40'000)).status == 403);

    r = chunk(f, *d, h, size, 0, ""); // asks
    REQUIRE(r.status == 200);
    CHECK(received_of(r) == 0);
    CHECK(received_of(chunk(f, *d, h, size, 0, photo.substr(0, 40'000))) == 40'000);
    // The same chunk again (its answer was lost): nothing added.
    CHECK(received_of(chunk(f, *d, h, size, 0, photo.substr(0, 40'000))) == 40'000);
    // A chunk past the kept end is not kept: the answer says where to go on.
    CHECK(received_of(chunk(f, *d, h, size, 60'000, photo.substr(60'000, 20'000))) == 40'000);
    // Overlapping the kept end: only what is new is kept.
    CHECK(received_of(chunk(f, *d, h, size, 20'000, photo.substr(20'000, 60'000))) == 80'000);
    CHECK(f.store->staged_bytes(h) == 80'000);
    CHECK_FALSE(f.store->blob_info(h));
    r = chunk(f, *d, h, size, 80'000, photo.substr(80'000));
    REQUIRE(r.status == 200);
    CHECK(complete(r));
    CHECK(f.store->blob_data(h) == photo);
    const auto info = f.store->blob_info(h);
    REQUIRE(info);
    CHECK(info->media == attachment::MediaType::jpeg);
    CHECK(info->size == size);
    CHECK(f.store->staged_bytes(h) == 0);
    const auto refs = f.store->blob_refs(h);
    REQUIRE(refs.size() == 1);
    CHECK(refs[0].entity == ot);
    CHECK(refs[0].label == "ZTEG01");
    // Kept once: asking again says complete at once.
    r = chunk(f, *d, h, size, 0, "");
    CHECK(complete(r));
    // A size that differs from the kept blob's is refused.
    CHECK(chunk(f, *d, h, size + 1, 0, "").status == 400);

    // A replayed counter and a wrong signature are refused as for a sync.
    CHECK(chunk(f, *d, h, size, 0, "", d->request_counter).status == 409);
    {
        const std::string path = attachment::upload_path(h, size, 0);
        auto env = session::sign_request(d->replica, ++d->request_counter, path, "x", d->key.secret,
                                         "application/octet-stream");
        CHECK(
            server::reply_of(f.service->upload_blob(path, session::headers_of(env), "y")).status ==
            401);
    }
}

TEST_CASE("an attachment whose bytes do not hash to its name, or of a type its kind does not "
          "take, is refused whole and nothing of it kept") {
    Fixture f;
    const Id tech = f.add_user("t.quispe", Role::technician);
    const Id ot = f.issue_ot(tech, Id::random(), {"ZTEG01"});
    auto d = f.enroll(tech);
    f.sync_all(*d);

    const std::string photo = jpeg_of(random_bytes(30'000, 2));
    const Hash256 h = hash_of(photo);
    const std::string scan = pdf_of(random_bytes(20'000, 3));
    const Hash256 hs = hash_of(scan);
    f.sync(*d, {photo_op(*d, ot, "ZTEG01", h), photo_op(*d, ot, "ZTEG01", hs)});

    std::string damaged = photo;
    damaged[1000] = static_cast<char>(damaged[1000] ^ 1);
    CHECK(received_of(chunk(f, *d, h, photo.size(), 0, damaged.substr(0, 20'000))) == 20'000);
    auto r = chunk(f, *d, h, photo.size(), 20'000, damaged.substr(20'000));
    CHECK(r.status == 400);
    CHECK(r.body.find("\"invalid_value\"") != std::string::npos);
    CHECK(f.store->staged_bytes(h) == 0);
    CHECK_FALSE(f.store->blob_info(h));
    // From 0 again, the right bytes: kept.
    CHECK(complete(chunk(f, *d, h, photo.size(), 0, photo)));

    // A PDF named as a photo: refused by its bytes, whatever the name says.
    r = chunk(f, *d, hs, scan.size(), 0, scan);
    CHECK(r.status == 415);
    CHECK_FALSE(f.store->blob_info(hs));
    CHECK(f.store->staged_bytes(hs) == 0);

    // Past the kind's size: refused before any byte is kept.
    const Hash256 big = hash_of("big");
    f.sync(*d, {photo_op(*d, ot, "ZTEG01", big)});
    r = chunk(f, *d, big, 5u << 20, 0, "");
    CHECK(r.status == 413);
}

TEST_CASE("who may see an attachment: the permission table, a technician within his scope") {
    Fixture f;
    const Id tech = f.add_user("t.quispe", Role::technician);
    const Id other = f.add_user("t.mamani", Role::technician);
    f.add_user("a.almacen", Role::warehouse_clerk);
    f.add_user("e.ventas", Role::sales_executive);
    const Id ot = f.issue_ot(tech, Id::random(), {"ZTEG01"});
    auto d = f.enroll(tech);
    f.sync_all(*d);
    const std::string photo = jpeg_of(random_bytes(5'000, 4));
    const Hash256 h = hash_of(photo);
    f.sync(*d, {photo_op(*d, ot, "ZTEG01", h)});
    REQUIRE(complete(chunk(f, *d, h, photo.size(), 0, photo)));

    const auto refs = f.service->blob_refs(h);
    REQUIRE(refs.size() == 1);
    const auto user = [&](const std::string& name) { return *f.store->user_by_name(name); };
    CHECK(f.service->may_view_blob(user("t.quispe"), refs));
    CHECK_FALSE(f.service->may_view_blob(user("t.mamani"), refs));
    CHECK(f.service->may_view_blob(user("a.almacen"), refs));
    CHECK(f.service->may_view_blob(user("bo.rojas"), refs));
    CHECK_FALSE(f.service->may_view_blob(user("e.ventas"), refs)); // photos are not sales'
    // Reassigned: the new technician sees it, the former one no longer does.
    f.assign(ot, other);
    CHECK(f.service->may_view_blob(user("t.mamani"), refs));
}

TEST_CASE("the delivery act: a handover is delivered only signed over its rows, and then its "
          "rows are frozen for the technician") {
    Fixture f;
    const Id tech = f.add_user("t.quispe", Role::technician);
    const Id ot = f.issue_ot(tech, Id::random(), {"ZTEG01", "ZTEG02"});
    auto d = f.enroll(tech);
    f.sync_all(*d);
    const auto on_site = [&](const std::string& to) {
        return d->maker->set_status(d->state, EntityType::work_order, ot, "status", text(to));
    };
    {
        Op s = on_site("on_site");
        f.sync(*d, {s});
        d->state.apply(s);
    }
    const auto row = [&](const std::string& serial) { return Id::collected_item(ot, serial); };
    std::vector<Op> rows;
    for (const std::string serial : {"ZTEG01", "ZTEG02"}) {
        rows.push_back(d->maker->set(EntityType::collected_item, row(serial), "work_order", ot));
        rows.push_back(
            d->maker->set(EntityType::collected_item, row(serial), "serial", text(serial)));
        rows.push_back(
            d->maker->set(EntityType::collected_item, row(serial), "collected_by", tech));
    }
    f.sync(*d, rows);
    const Id h = Id::random();
    const auto T = EntityType::handover;
    std::vector<Op> draft{d->maker->set(T, h, "technician", tech),
                          d->maker->set_status(d->state, T, h, "status", text("draft")),
                          d->maker->add(T, h, "rows", row("ZTEG01")),
                          d->maker->set(EntityType::collected_item, row("ZTEG01"), "handover", h)};
    for (const Op& op : draft) {
        d->state.apply(op);
    }
    auto resp = f.sync(*d, draft);
    for (const auto& r : resp.results) {
        REQUIRE_MESSAGE(r.status == OpStatus::accepted, r.message);
    }
    // Unsigned: not delivered.
    Op deliver = d->maker->set_status(d->state, T, h, "status", text("delivered"));
    resp = f.sync(*d, {deliver});
    REQUIRE(resp.results.size() == 1);
    CHECK(resp.results[0].status == OpStatus::rejected);
    CHECK(resp.results[0].code == ErrorCode::requirements_incomplete);
    // Signed over its rows: delivered.
    const Hash256 sig = blake2b_256("the technician's signature");
    const Hash256 over = blake2b_256("the rows");
    deliver = d->maker->set_status(d->state, T, h, "status", text("delivered"));
    resp = f.sync(
        *d,
        {d->maker->set(T, h, "technician_signature_blob", Bytes{{sig.begin(), sig.end()}}),
         d->maker->set(T, h, "delivered_rows_hash", Bytes{{over.begin(), over.end()}}), deliver});
    for (const auto& r : resp.results) {
        CHECK_MESSAGE(r.status == OpStatus::accepted, r.message);
    }
    d->state.apply(deliver);
    // Frozen: no row joins it, none leaves it, what was signed stays.
    resp = f.sync(
        *d, {d->maker->add(T, h, "rows", row("ZTEG02")),
             d->maker->set(EntityType::collected_item, row("ZTEG01"), "handover", Id::random()),
             d->maker->set(T, h, "delivered_rows_hash", Bytes{{sig.begin(), sig.end()}})});
    REQUIRE(resp.results.size() == 3);
    for (const auto& r : resp.results) {
        CHECK(r.status == OpStatus::rejected);
        CHECK(r.code == ErrorCode::invalid_transition);
    }
    f.service->read_state([&](const crdt::Replica& r) {
        CHECK(text_of(r, T, h, "status") == "delivered");
        CHECK(r.elements(T, h, "rows").size() == 1);
    });
}

TEST_CASE("a former assignee's signature, set aside on the OT, still uploads its image") {
    Fixture f;
    const Id tech = f.add_user("t.quispe", Role::technician);
    const Id other = f.add_user("t.mamani", Role::technician);
    const Id ot = f.issue_ot(tech, Id::random(), {"ZTEG01"});
    auto d = f.enroll(tech);
    f.sync_all(*d);
    f.assign(ot, other); // reassigned while the handheld was offline
    const std::string png = otsync::testing::png_with_text("firma");
    const Hash256 h = hash_of(png);
    const auto resp = f.sync(*d, {d->maker->set(EntityType::work_order, ot, "signature_blob",
                                                Bytes{{h.begin(), h.end()}})});
    REQUIRE(resp.results.size() == 1);
    CHECK(resp.results[0].status == OpStatus::flagged);
    const auto r = chunk(f, *d, h, png.size(), 0, png);
    CHECK_MESSAGE(r.status == 200, r.body);
    CHECK(complete(r));
    CHECK(f.store->blob_data(h) == png);
}
