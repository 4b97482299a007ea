// The inventory import (otsync-admin inventory import, POST /v1/inventory/import):
// contracts and their equipment from one CSV file, checked whole before anything is
// written, so a file with a bad row changes nothing.
//
// Format (RFC 4180: comma separated, fields may be double-quoted, "" inside quotes is a
// quote, CRLF or LF line ends, UTF-8, an optional BOM). The first line is the header,
// exactly these columns in this order:
//
//   contract,customer_name,person_type,tax_id,address,serial,kind,model,description
//
// One line per piece of equipment; a contract's columns repeat on each of its lines and
// must agree. A line with an empty serial (and empty kind/model/description) declares a
// contract without equipment. person_type is natural|legal; kind is one of the equipment
// kinds of the case model (gpon_ont, decoder, copper_modem, router, power_adapter, remote,
// other). Serials are trimmed and upper-cased; a serial may appear once in the file, and
// a serial already in the inventory under another contract is refused (equipment does not
// silently change hands). Every field is trimmed of surrounding spaces and tabs; only
// customer_name, address, model and description may hold a (quoted) line break. A field
// may not be longer than max_field_bytes nor than the registry field it feeds (contract and
// serial 64 bytes, names 200, address 500), so imported data always syncs. Blank lines are
// allowed only at the end. The import adds and updates; it never removes equipment.
#pragma once

#include "store/store.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace otsync::server {

struct ImportLimits {
    std::size_t max_bytes = 16u << 20; // the whole file
    std::size_t max_rows = 200000;
    std::size_t max_field_bytes = 500;
    std::size_t max_problems = 1000; // listed; the rest are counted ("... and N more")
};

/// One bad line: its 1-based line number in the file (the header is line 1) and why. A
/// record with a quoted line break has the number of the line it starts on. Line 0 is the
/// whole file (too big).
struct ImportProblem {
    std::size_t line = 0;
    std::string message;
};

struct ImportResult {
    std::vector<ImportProblem> problems; // empty: the import is good
    std::size_t omitted_problems = 0;    // found beyond ImportLimits::max_problems
    std::vector<Contract> contracts;     // parsed, when there is no problem
    std::vector<InventoryItem> items;
    /// "contracts: 3, equipment: 7" or the problems, one per line ("line 4: ...").
    /// With more than max_problems, a last line "... and N more problems".
    std::string report() const;
    bool ok() const { return problems.empty() && omitted_problems == 0; }
    std::size_t problem_count() const { return problems.size() + omitted_problems; }
};

/// Parses and checks the file against the limits and against `store` (serials already
/// held by another contract). Writes nothing.
ImportResult check_inventory_csv(std::string_view csv, Store& store, std::int64_t now,
                                 const ImportLimits& limits = {});

/// Checks, then imports in one transaction when there is no problem. Returns the result
/// either way; the store is unchanged when `problems` is not empty.
ImportResult import_inventory_csv(std::string_view csv, Store& store, std::int64_t now,
                                  const ImportLimits& limits = {});

} // namespace otsync::server
