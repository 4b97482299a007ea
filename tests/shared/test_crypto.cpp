// libsodium wrappers: signatures, the sync signing string, receipts.
#include "otsync/crypto.hpp"

#include <doctest/doctest.h>

using namespace otsync;

TEST_CASE("a signed sync request verifies, and any change to it does not") {
    const auto device = SigningKeyPair::generate();
    const std::string body = "{\"ops\":[]}";
    const std::string msg = sync_signing_string("POST", "/v1/sync", 7, body);
    const Signature sig = sign(msg, device.secret);
    CHECK(verify(sig, msg, device.public_key));
    CHECK_FALSE(verify(sig, sync_signing_string("POST", "/v1/sync", 8, body), device.public_key));
    CHECK_FALSE(verify(sig, sync_signing_string("POST", "/v1/sync", 7, "{\"ops\":[ ]}"),
                       device.public_key));
    Signature flipped = sig;
    flipped[10] ^= 0x01;
    CHECK_FALSE(verify(flipped, msg, device.public_key));
    CHECK_FALSE(verify(sig, msg, SigningKeyPair::generate().public_key));
    CHECK(msg.rfind("otsync-sync-v1\nPOST\n/v1/sync\n7\n", 0) == 0);
}

TEST_CASE("a receipt names the device, its counter and the accepted ops") {
    const auto server = SigningKeyPair::generate();
    const std::vector<OpId> ids{{3, 1}, {3, 2}};
    const std::string msg = receipt_message(3, 9, ids);
    CHECK(msg == "otsync-receipt-v1\n3\n9\n3:1\n3:2\n");
    CHECK(verify(sign(msg, server.secret), msg, server.public_key));
}

TEST_CASE("secret keys are wiped when moved from or destroyed") {
    auto kp = SigningKeyPair::generate();
    SecretKey moved = std::move(kp.secret);
    bool all_zero = true;
    for (auto b : kp.secret.bytes()) {
        all_zero = all_zero && b == 0;
    }
    CHECK(all_zero);
    CHECK(equal_constant_time(blake2b_256("a"), blake2b_256("a")));
    CHECK_FALSE(equal_constant_time(blake2b_256("a"), blake2b_256("b")));
    CHECK(to_hex(blake2b_256("")) ==
          "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}
