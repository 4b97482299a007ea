// The handovers of recovered equipment to the warehouse: the list, the detail, the clerk's
// receipt row by row, and the Anexo 4 form's data.
#pragma once

#include "procedure/part.hpp"

#include <map>
#include <string>

namespace otsync::server {

class Handovers : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    std::string list_handovers(const std::map<std::string, std::string>& query);
    std::string handover_detail(const Id& handover);
    /// The warehouse clerk's receipt, row by row, signed: exactly one per handover.
    std::string receive_handover(const User& actor, const Id& handover, const std::string& body);
    std::string anexo4_html(const Id& handover);
};

} // namespace otsync::server
