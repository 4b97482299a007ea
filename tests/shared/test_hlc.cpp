// Hybrid logical clock: monotonic whatever the wall clock does.
#include "otsync/error.hpp"
#include "otsync/hlc.hpp"

#include <doctest/doctest.h>

using namespace otsync;

namespace {
constexpr std::uint64_t k_day = 24ull * 3600 * 1000;
constexpr std::uint64_t k_year = 365 * k_day;
constexpr std::uint64_t k_now = 1'795'000'000'000; // late 2026
constexpr std::uint64_t k_ten_minutes = 10 * 60 * 1000;
} // namespace

TEST_CASE("send follows the wall clock and stays strictly increasing") {
    FakeClock wall(k_now);
    Hlc hlc(wall);
    const HlcTime a = hlc.now();
    CHECK(hlc_ms(a) == k_now);
    CHECK(hlc_logical(a) == 0);
    const HlcTime b = hlc.now(); // same millisecond
    CHECK(b > a);
    CHECK(hlc_ms(b) == k_now);
    CHECK(hlc_logical(b) == 1);
    wall.advance(5);
    const HlcTime c = hlc.now();
    CHECK(hlc_ms(c) == k_now + 5);
    CHECK(hlc_logical(c) == 0);
}

TEST_CASE("a clock going backwards never makes time go backwards") {
    FakeClock wall(k_now);
    Hlc hlc(wall);
    const HlcTime before = hlc.now();
    wall.advance(-60'000); // NTP step back one minute
    HlcTime prev = before;
    for (int i = 0; i < 1000; ++i) {
        const HlcTime t = hlc.now();
        CHECK(t > prev);
        prev = t;
    }
    CHECK(hlc_ms(prev) == k_now); // held at the old wall time, counting logically
    wall.advance(120'000);
    CHECK(hlc_ms(hlc.now()) == k_now + 60'000);
}

TEST_CASE("a device one day behind catches up at its first sync") {
    FakeClock server_wall(k_now);
    FakeClock device_wall(k_now - k_day);
    Hlc server(server_wall, 0, k_ten_minutes);
    Hlc device(device_wall);

    const HlcTime offline_op = device.now();
    // The server accepts an op from the past (only the future is bounded)...
    const HlcTime server_after = server.receive(offline_op);
    CHECK(server_after > offline_op);
    CHECK(hlc_ms(server_after) == k_now);
    // ...and the device, on receiving the server's clock, orders its next op after it.
    device.receive(server.now());
    const HlcTime next_op = device.now();
    CHECK(next_op > server_after);
    CHECK(hlc_skew_ms(offline_op, k_now) == -static_cast<std::int64_t>(k_day));
}

TEST_CASE("a device one year ahead is refused by the server, whose clock is not dragged") {
    FakeClock server_wall(k_now);
    FakeClock device_wall(k_now + k_year);
    Hlc server(server_wall, 0, k_ten_minutes);
    Hlc device(device_wall);

    const HlcTime bad = device.now();
    CHECK_FALSE(hlc_within_skew(bad, k_now, k_ten_minutes));
    const HlcTime before = server.state();
    try {
        server.receive(bad);
        FAIL("expected clock_skew");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::clock_skew);
    }
    CHECK(server.state() == before);
    CHECK(hlc_ms(server.now()) == k_now);

    // Up to the limit is fine.
    FakeClock near_wall(k_now + k_ten_minutes);
    Hlc near(near_wall);
    CHECK_NOTHROW(server.receive(near.now()));
}

TEST_CASE("logical counter overflow carries into the wall part") {
    FakeClock wall(k_now);
    Hlc hlc(wall, hlc_make(k_now, k_hlc_logical_max - 2));
    const HlcTime a = hlc.now();
    CHECK(hlc_logical(a) == k_hlc_logical_max - 1);
    const HlcTime b = hlc.now();
    CHECK(hlc_logical(b) == k_hlc_logical_max);
    const HlcTime c = hlc.now(); // exhausted within this millisecond
    CHECK(c > b);
    CHECK(hlc_ms(c) == k_now + 1);
    CHECK(hlc_logical(c) == 0);
    // A remote at the very top of a millisecond is also carried, not wrapped.
    Hlc other(wall);
    const HlcTime r = other.receive(hlc_make(k_now + 5, k_hlc_logical_max));
    CHECK(r > hlc_make(k_now + 5, k_hlc_logical_max));
}

TEST_CASE("state persists and restores across a restart") {
    FakeClock wall(k_now);
    HlcTime persisted;
    HlcTime last;
    {
        Hlc hlc(wall);
        for (int i = 0; i < 10; ++i) {
            last = hlc.now();
        }
        hlc.receive(hlc_make(k_now + 1000, 7)); // a server slightly ahead
        last = hlc.state();
        persisted = hlc.state();
    }
    wall.set(k_now - 5000); // the device rebooted with a worse clock
    Hlc restored(wall, persisted);
    CHECK(restored.now() > last);
}
