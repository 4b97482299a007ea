// The office's request parsing and renderings that other files use besides the office routes
// (api/office.cpp): the indicators' query and their JSON and CSV (otsync-admin and the tests
// use them too), and the device list (the revoke route answers it). docs/api.md §7.3.
#pragma once

#include "procedure/office.hpp"

#include <map>
#include <string>

namespace otsync::server::api {

/// The indicators' window from a query: `from` and `to` are local dates YYYY-MM-DD at
/// `tz_offset_minutes` from UTC, both days included, `unit` optional. invalid_value naming
/// `from` or `to` when a date is not one, or `to` is before `from`.
IndicatorQuery indicator_query(const std::map<std::string, std::string>& query,
                               int tz_offset_minutes);
/// GET /v1/reports/indicators: the two figures, the days and the cases behind them.
std::string indicators_json(const Indicators& ind);
/// One line per case: date,case,contract,customer,modality,unit,status,effective,timely,...
std::string indicators_csv(const Indicators& ind);

/// GET /v1/devices: every device with its cursor and how far behind it is.
std::string devices_json(const DeviceList& list);

} // namespace otsync::server::api
