// The office's tables and reports: the dated fee table, the inventory (import, a contract's
// equipment), the indicators, discrepancies, lifecycle conflicts, users and devices.
#pragma once

#include "procedure/part.hpp"

#include <map>
#include <string>

namespace otsync::server {

class Office : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    std::string fees(const std::map<std::string, std::string>& query);
    std::string put_fee(const User& actor, const std::string& body);
    /// The inventory CSV, checked whole and imported in one transaction, or its problems.
    ImportResult import_inventory(std::string_view csv);
    std::string contract_detail(const std::string& contract);
    std::string indicators(const std::map<std::string, std::string>& query, bool csv);
    std::string discrepancies(const std::map<std::string, std::string>& query);
    std::string conflicts();
    std::string resolve_conflict(const User& actor, const std::string& body);
    std::string users_json();
    std::string devices_json();
};

} // namespace otsync::server
