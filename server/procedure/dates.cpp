// Local dates at a fixed offset from UTC with std::chrono's calendar; see dates.hpp.
#include "procedure/dates.hpp"

#include <cstdio>

namespace otsync::server {

namespace {

using namespace std::chrono;

constexpr std::int64_t ms_of(sys_days d) {
    return duration_cast<milliseconds>(d.time_since_epoch()).count();
}

// The first and the last millisecond std::chrono::year_month_day can name.
constexpr std::int64_t k_first_local_ms = ms_of(sys_days{year::min() / January / 1});
constexpr std::int64_t k_last_local_ms = ms_of(sys_days{year::max() / December / 31} + days{1}) - 1;

} // namespace

std::optional<LocalTime> local_time(std::int64_t ms, int offset_minutes) {
    const std::int64_t offset_ms = std::int64_t{offset_minutes} * 60000;
    if (ms < k_first_local_ms - offset_ms || ms > k_last_local_ms - offset_ms) {
        return std::nullopt;
    }
    const sys_time<milliseconds> local{milliseconds{ms + offset_ms}};
    const sys_days midnight = floor<days>(local); // towards the past, also before 1970
    const hh_mm_ss time{local - midnight};
    return LocalTime{year_month_day{midnight}, static_cast<int>(time.hours().count()),
                     static_cast<int>(time.minutes().count())};
}

std::optional<std::int64_t> parse_local_date(std::string_view s, int offset_minutes) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') {
        return std::nullopt;
    }
    auto num = [&](std::size_t at, std::size_t n) -> std::optional<unsigned> {
        unsigned v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (s[i] < '0' || s[i] > '9') {
                return std::nullopt;
            }
            v = v * 10 + static_cast<unsigned>(s[i] - '0');
        }
        return v;
    };
    const auto y = num(0, 4), m = num(5, 2), d = num(8, 2);
    if (!y || !m || !d || *y < 1970) {
        return std::nullopt;
    }
    const year_month_day date{year{static_cast<int>(*y)}, month{*m}, day{*d}};
    if (!date.ok()) { // month 1 to 12, day 1 to the month's last (leap years included)
        return std::nullopt;
    }
    return ms_of(sys_days{date}) - std::int64_t{offset_minutes} * 60000;
}

std::string format_local_date(std::int64_t ms, int offset_minutes) {
    const auto t = local_time(ms, offset_minutes);
    if (!t) {
        return "?";
    }
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(t->date.year()),
                  static_cast<unsigned>(t->date.month()), static_cast<unsigned>(t->date.day()));
    return buf;
}

} // namespace otsync::server
