// HLC send/receive rules. See hlc.hpp for the invariants.
#include "otsync/hlc.hpp"

#include "otsync/error.hpp"

#include <algorithm>
#include <chrono>
#include <string>

namespace otsync {

std::uint64_t SystemClock::now_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

std::int64_t hlc_skew_ms(HlcTime remote, std::uint64_t local_ms) {
    return static_cast<std::int64_t>(hlc_ms(remote)) - static_cast<std::int64_t>(local_ms);
}

bool hlc_within_skew(HlcTime remote, std::uint64_t local_ms, std::uint64_t max_ahead_ms) {
    return hlc_ms(remote) <= local_ms || hlc_ms(remote) - local_ms <= max_ahead_ms;
}

Hlc::Hlc(ClockSource& clock, HlcTime persisted_state,
         std::optional<std::uint64_t> max_forward_skew_ms)
    : m_clock(&clock), m_last(persisted_state), m_max_forward_skew_ms(max_forward_skew_ms) {}

// The smallest timestamp > floor whose wall part is at least wall_ms.
HlcTime Hlc::advance_to(std::uint64_t wall_ms, HlcTime floor) {
    if (wall_ms > k_hlc_ms_max) {
        throw Error(ErrorCode::clock_skew, "wall clock beyond the year 10889");
    }
    HlcTime next;
    if (wall_ms > hlc_ms(floor)) {
        next = hlc_make(wall_ms, 0);
    } else if (hlc_logical(floor) < k_hlc_logical_max) {
        next = floor + 1;
    } else {
        // Logical counter exhausted within this millisecond: carry into the wall part.
        if (hlc_ms(floor) >= k_hlc_ms_max) {
            throw Error(ErrorCode::clock_skew, "hybrid clock exhausted");
        }
        next = hlc_make(hlc_ms(floor) + 1, 0);
    }
    m_last = next;
    return next;
}

HlcTime Hlc::now() {
    return advance_to(m_clock->now_ms(), m_last);
}

HlcTime Hlc::receive(HlcTime remote) {
    const std::uint64_t wall = m_clock->now_ms();
    if (m_max_forward_skew_ms && !hlc_within_skew(remote, wall, *m_max_forward_skew_ms)) {
        throw Error(ErrorCode::clock_skew, "remote clock is " +
                                               std::to_string(hlc_skew_ms(remote, wall)) +
                                               " ms ahead; the limit is " +
                                               std::to_string(*m_max_forward_skew_ms) + " ms");
    }
    return advance_to(wall, std::max(m_last, remote));
}

} // namespace otsync
