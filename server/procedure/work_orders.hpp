// The OTs (órdenes de trabajo) from the office's side: the list and detail, assignment to a
// technician, cancelling, the missing reasons and the resolution of a row.
#pragma once

#include "procedure/part.hpp"

#include <map>
#include <string>

namespace otsync::server {

class WorkOrders : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    std::string list_ots(const std::map<std::string, std::string>& query);
    std::string ot_detail(const Id& ot);
    std::string assign_ot(const User& actor, const Id& ot, const std::string& body);
    std::string cancel_ot(const User& actor, const Id& ot, const std::string& body);
    std::string missing_reason(const User& actor, const Id& ot, const std::string& body);
    std::string ot_reconciliation(const Id& ot);
    std::string resolve_item(const User& actor, const Id& item, const std::string& body);
};

} // namespace otsync::server
