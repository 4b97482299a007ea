// The case file through the review (docs/architecture.md §3): opening (steps 1–3), routing,
// the customer contact, technical feasibility, the Anexo 2 checklist and its override,
// approval or rejection, the back office's steps, cancelling, and the OTs issued.
#pragma once

#include "procedure/part.hpp"

#include <map>
#include <string>

namespace otsync::server {

class Cases : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    /// Opens a case (steps 1–3 of the modality): returns the case's detail JSON.
    std::string open_case(const User& actor, const std::string& body);
    std::string list_cases(const std::map<std::string, std::string>& query);
    std::string case_detail(const Id& case_id);
    std::string edit_case(const User& actor, const Id& case_id, const std::string& body);
    std::string record_step(const User& actor, const Id& case_id, const std::string& body);
    std::string route_case(const User& actor, const Id& case_id, const std::string& body);
    std::string contact(const User& actor, const Id& case_id, const std::string& body);
    std::string feasibility(const User& actor, const Id& case_id, const std::string& body);
    std::string requirements(const User& actor, const Id& case_id, const std::string& body);
    std::string override_requirements(const User& actor, const Id& case_id,
                                      const std::string& body);
    std::string approve(const User& actor, const Id& case_id, const std::string& body);
    std::string reject(const User& actor, const Id& case_id, const std::string& body);
    std::string cancel_case(const User& actor, const Id& case_id, const std::string& body);
    std::string issue_ots(const User& actor, const Id& case_id, const std::string& body);
    std::string case_reconciliation(const Id& case_id);
};

} // namespace otsync::server
