// Hybrid logical clock (Kulkarni et al. 2014): 48 bits of wall milliseconds and a
// 16-bit logical counter in one u64, so timestamps compare as integers. The wall
// clock is injected (ClockSource) so tests run on a FakeClock; shared/ reads no clock
// of its own.
#pragma once

#include <cstdint>
#include <optional>

namespace otsync {

using HlcTime = std::uint64_t;

constexpr int k_hlc_logical_bits = 16;
constexpr std::uint64_t k_hlc_logical_max = (1u << k_hlc_logical_bits) - 1;
constexpr std::uint64_t k_hlc_ms_max = (std::uint64_t{1} << 48) - 1;

constexpr HlcTime hlc_make(std::uint64_t ms, std::uint64_t logical) {
    return (ms << k_hlc_logical_bits) | (logical & k_hlc_logical_max);
}
constexpr std::uint64_t hlc_ms(HlcTime t) {
    return t >> k_hlc_logical_bits;
}
constexpr std::uint64_t hlc_logical(HlcTime t) {
    return t & k_hlc_logical_max;
}

/// Where wall-clock milliseconds since the Unix epoch come from.
class ClockSource {
public:
    virtual ~ClockSource() = default;
    virtual std::uint64_t now_ms() = 0;
};

/// The real clock (std::chrono::system_clock).
class SystemClock final : public ClockSource {
public:
    std::uint64_t now_ms() override;
};

/// A clock tests move by hand; it may go backwards, as real ones do.
class FakeClock final : public ClockSource {
public:
    explicit FakeClock(std::uint64_t ms = 0) : m_ms(ms) {}
    std::uint64_t now_ms() override { return m_ms; }
    void set(std::uint64_t ms) { m_ms = ms; }
    void advance(std::int64_t delta_ms) {
        m_ms = static_cast<std::uint64_t>(static_cast<std::int64_t>(m_ms) + delta_ms);
    }

private:
    std::uint64_t m_ms;
};

/// Signed distance in ms from `local_ms` to the wall part of `remote` (positive: remote ahead).
std::int64_t hlc_skew_ms(HlcTime remote, std::uint64_t local_ms);

/// True when `remote` is at most `max_ahead_ms` ahead of `local_ms`.
bool hlc_within_skew(HlcTime remote, std::uint64_t local_ms, std::uint64_t max_ahead_ms);

/// One replica's clock. Not thread-safe: a replica owns one and serializes access.
///
/// Invariants: every value returned by now() or receive() is strictly greater than
/// every value returned before and than every remote time received. The logical part
/// never wraps: when it is exhausted within one millisecond the wall part is carried
/// one millisecond ahead instead (the clock runs at most that much in the future).
class Hlc {
public:
    /// `max_forward_skew_ms`: receive() refuses (Error clock_skew) a remote time more
    /// than this far ahead of the local wall clock, so one device with a broken clock
    /// cannot drag a server's clock into the future. nullopt: accept any remote time
    /// (a device syncing with its server, which is the reference).
    explicit Hlc(ClockSource& clock, HlcTime persisted_state = 0,
                 std::optional<std::uint64_t> max_forward_skew_ms = std::nullopt);

    /// Timestamp for a local event or a message being sent.
    HlcTime now();
    /// Merges a timestamp received from another replica; returns the new local time.
    /// Throws Error(clock_skew) and changes nothing when the skew limit is exceeded.
    HlcTime receive(HlcTime remote);

    /// The last timestamp issued or received; persist it and pass it back on restart.
    HlcTime state() const noexcept { return m_last; }
    /// Sets the state back to `t` even if it is earlier: only for an operator's explicit
    /// recovery of a device whose persisted clock ran far into the future.
    void reset(HlcTime t) noexcept { m_last = t; }

private:
    HlcTime advance_to(std::uint64_t wall_ms, HlcTime floor);

    ClockSource* m_clock;
    HlcTime m_last;
    std::optional<std::uint64_t> m_max_forward_skew_ms;
};

} // namespace otsync
