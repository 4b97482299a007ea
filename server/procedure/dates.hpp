// Calendar dates on a clock at a fixed offset from UTC (the server's --tz-offset-minutes),
// with std::chrono's proleptic Gregorian calendar: no locale or time zone database is
// involved, so a date reads the same on every server. The report days of the indicators,
// the fee table's dates and the printed Anexo 4 form use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace otsync::server {

/// A moment as read on the local clock.
struct LocalTime {
    std::chrono::year_month_day date;
    int hour = 0;
    int minute = 0;
};

/// `ms` (since 1970-01-01T00:00Z) on the clock `offset_minutes` from UTC; nullopt when the
/// local date is outside std::chrono::year's range (years -32767 to 32767).
std::optional<LocalTime> local_time(std::int64_t ms, int offset_minutes);

/// "YYYY-MM-DD" (from 1970) at `offset` minutes from UTC → ms of that local midnight;
/// nullopt when the text is not a valid date.
std::optional<std::int64_t> parse_local_date(std::string_view date, int offset_minutes);
/// The local date of `ms` as "YYYY-MM-DD"; "?" when local_time has none.
std::string format_local_date(std::int64_t ms, int offset_minutes);

} // namespace otsync::server
