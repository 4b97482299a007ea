// Demo data for `otsync-server --demo` (tools/run.sh): the procedure's roles as users,
// two technicians with enrolled demo devices, one case per modality with its OTs and
// the equipment to collect or verify. Seeds only an empty database.
#pragma once

#include "server.hpp"

#include <string>
#include <vector>

namespace otsync::server {

struct DemoSummary {
    bool seeded = false;
    std::vector<std::string> lines; // what to print for the person who started it
};

/// The password of every demo user (printed by tools/run.sh; never for production).
constexpr const char* k_demo_password = "otsync-demo";

/// Users (password k_demo_password), the inventory of five contracts, and four cases
/// walked through the procedure's own actions by the right roles up to OTs assigned
/// (one per modality); contract BT-200777 (modality 4) is left for a person to open.
/// Device keys of the demo technicians are written under the server's
/// `data_dir/demo-devices/` (mode 0600), so a handheld CLI can act as them.
DemoSummary seed_demo(Server& server);

} // namespace otsync::server
