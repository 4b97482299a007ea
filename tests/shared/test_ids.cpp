// Ids: random, natural keys, text form.
#include "otsync/error.hpp"
#include "otsync/id.hpp"

#include <doctest/doctest.h>

using namespace otsync;

TEST_CASE("random ids differ and round-trip through hex") {
    const Id a = Id::random();
    const Id b = Id::random();
    CHECK(a != b);
    CHECK_FALSE(a.is_zero());
    CHECK(a.hex().size() == 32);
    CHECK(Id::from_hex(a.hex()) == a);
    CHECK(Id::from_hex("000102030405060708090A0B0C0D0E0F").hex() ==
          "000102030405060708090a0b0c0d0e0f");
}

TEST_CASE("malformed id text is rejected") {
    for (const char* bad :
         {"", "00", "000102030405060708090a0b0c0d0e0", "000102030405060708090a0b0c0d0e0f0",
          "zz0102030405060708090a0b0c0d0e0f", "00010203040506070809 a0b0c0d0e0f"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(Id::from_hex(bad), Error);
    }
}

TEST_CASE("a collected item's id is its OT and serial, whoever records it") {
    const Id ot = Id::random();
    const Id alice = Id::collected_item(ot, "ZTEG12345678");
    const Id bob = Id::collected_item(ot, " zteg12345678 "); // scanned with a stray space
    CHECK(alice == bob);
    CHECK(Id::collected_item(ot, "ZTEG12345679") != alice);
    CHECK(Id::collected_item(Id::random(), "ZTEG12345678") != alice);
    // Domain separation: the same bytes under another purpose give another id.
    CHECK(Id::natural("a", "bc") != Id::natural("ab", "c"));
}
