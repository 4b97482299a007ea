// The attachment rules both sides check: types told from the bytes, limits per kind, the
// hash that names a blob (whole or in chunks), and how an upload is cut.
#include "otsync/attachment.hpp"

#include "../test_images.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace otsync;
using namespace otsync::attachment;
using otsync::testing::jpeg_of;
using otsync::testing::pdf_of;
using otsync::testing::tiny_png;

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

ErrorCode code_of(Kind k, const std::string& bytes, const Limits& l = {}) {
    try {
        check(k, bytes_of(bytes), l);
    } catch (const Error& e) {
        return e.code();
    }
    return ErrorCode::internal; // accepted: no code
}

} // namespace

TEST_CASE("a file's type is told from its bytes: whole PNG, JPEG and PDF; truncated or other "
          "bytes are none") {
    CHECK(sniff(bytes_of(tiny_png())) == MediaType::png);
    CHECK(sniff(bytes_of(jpeg_of(std::string(1000, 'x')))) == MediaType::jpeg);
    CHECK(sniff(bytes_of(pdf_of("1 0 obj <<>> endobj"))) == MediaType::pdf);
    // Cut short, as an interrupted transfer would leave them.
    const std::string png = tiny_png();
    CHECK_FALSE(sniff(bytes_of(png.substr(0, png.size() - 1))));
    const std::string jpeg = jpeg_of(std::string(1000, 'x'));
    CHECK_FALSE(sniff(bytes_of(jpeg.substr(0, 600))));
    const std::string pdf = pdf_of(std::string(5000, ' '));
    CHECK_FALSE(sniff(bytes_of(pdf.substr(0, 3000))));
    // A page or a script named like an image is not one.
    CHECK_FALSE(sniff(bytes_of("<html><img src=x onerror=alert(1)></html>")));
    CHECK_FALSE(sniff(bytes_of("")));
    // "%%EOF" far from the end (a document with more appended) is not a whole PDF.
    CHECK_FALSE(sniff(bytes_of(pdf_of("x") + std::string(2000, 'y'))));
    CHECK(content_type(MediaType::png) == "image/png");
    CHECK(content_type(MediaType::jpeg) == "image/jpeg");
    CHECK(content_type(MediaType::pdf) == "application/pdf");
}

TEST_CASE("each kind takes its own types and sizes; the limits are the caller's") {
    const std::string photo = jpeg_of(std::string(1000, 'x'));
    const std::string scan = pdf_of("1 0 obj <<>> endobj");
    CHECK(check(Kind::customer_signature, bytes_of(tiny_png()), {}) == MediaType::png);
    CHECK(check(Kind::equipment_photo, bytes_of(photo), {}) == MediaType::jpeg);
    CHECK(check(Kind::requirement_scan, bytes_of(scan), {}) == MediaType::pdf);
    CHECK(check(Kind::requirement_scan, bytes_of(photo), {}) == MediaType::jpeg);
    // A signature is a PNG; a photo is not a PDF.
    CHECK(code_of(Kind::customer_signature, photo) == ErrorCode::unsupported_media_type);
    CHECK(code_of(Kind::clerk_signature, scan) == ErrorCode::unsupported_media_type);
    CHECK(code_of(Kind::equipment_photo, scan) == ErrorCode::unsupported_media_type);
    CHECK(code_of(Kind::technician_signature, "") == ErrorCode::invalid_value);
    // Over the kind's bytes, with the limit as configured.
    Limits small;
    small.of(Kind::equipment_photo).max_bytes = 500;
    CHECK(code_of(Kind::equipment_photo, photo, small) == ErrorCode::too_large);
    CHECK(code_of(Kind::requirement_scan, photo, small) == ErrorCode::internal); // accepted
    const Limits defaults;
    CHECK(defaults.of(Kind::customer_signature).max_bytes == 256 * 1024);
    CHECK(defaults.of(Kind::equipment_photo).max_bytes >= 2 * 1024 * 1024); // a phone's photo
    try {
        check(Kind::customer_signature, bytes_of(photo), {});
        FAIL("a JPEG signature was accepted");
    } catch (const Error& e) {
        CHECK(std::string(e.message()).find("customer_signature") != std::string::npos);
        CHECK(std::string(e.message()).find("png") != std::string::npos);
    }
}

TEST_CASE("kinds keep their names and numbers") {
    for (std::uint64_t n = 1; n <= static_cast<std::uint64_t>(k_last_kind); ++n) {
        const auto k = kind_from_number(n);
        REQUIRE(k);
        CHECK(kind_from_name(kind_name(*k)) == k);
    }
    CHECK(kind_from_number(1) == Kind::customer_signature);
    CHECK(kind_from_number(5) == Kind::requirement_scan);
    CHECK_FALSE(kind_from_number(0));
    CHECK_FALSE(kind_from_number(6));
    CHECK_FALSE(kind_from_name("selfie"));
}

TEST_CASE("a blob's hash is BLAKE2b-256 of its bytes, the same whichever chunks it came in") {
    std::string blob;
    for (int i = 0; i < 200'000; ++i) {
        blob.push_back(static_cast<char>((i * 7919) % 251));
    }
    const Hash256 whole = blob_hash(bytes_of(blob));
    CHECK(whole == blake2b_256(blob));
    for (const std::uint32_t chunk : {7u, 1000u, 65'536u, 199'999u, 200'000u, 1'000'000u}) {
        CAPTURE(chunk);
        const Chunks plan{blob.size(), chunk};
        Hasher h;
        std::uint64_t covered = 0;
        for (std::uint64_t i = 0; i < plan.count(); ++i) {
            CHECK(plan.offset(i) == covered);
            REQUIRE(plan.size(i) > 0);
            CHECK(plan.size(i) <= chunk);
            h.update(bytes_of(blob).subspan(plan.offset(i), plan.size(i)));
            covered += plan.size(i);
        }
        CHECK(covered == blob.size());
        CHECK(plan.size(plan.count()) == 0);
        CHECK(h.finish() == whole);
    }
    const Chunks exact{131'072, 65'536};
    CHECK(exact.count() == 2);
    CHECK(exact.size(1) == 65'536);
    const Chunks none{0, 65'536};
    CHECK(none.count() == 0);
    std::string other = blob;
    other[100'000] ^= 1;
    CHECK(blob_hash(bytes_of(other)) != whole);
}
