// Renderings several resources share: the reconciliation of an OT (docs/api.md §7.1) and its
// lines, as the case, OT and discrepancy routes answer them.
#pragma once

#include "api/route.hpp"

namespace otsync::server::api {

/// One reconciliation line; `names` name the row's collector.
void write_line(JsonWriter& w, const SerialLine& l, const Directory::Snapshot& names);

/// An OT's reconciliation: its lines and their counts by status.
void write_reconciliation(JsonWriter& w, const OtReconciliation& rec,
                          const Directory::Snapshot& names);

} // namespace otsync::server::api
