// Demo data for `otsync-server --demo` (tools/run.sh): the procedure's roles as users,
// two technicians with enrolled demo devices, one case per modality with its OTs and
// the equipment to collect or verify. Seeds only an empty database.
#pragma once

#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace otsync::server {

struct DemoSummary {
    bool seeded = false;
    std::vector<std::string> lines; // what to print for the person who started it
};

/// Device keys of the demo technicians are written under `data_dir/demo-devices/`
/// (mode 0600), so a handheld CLI can act as them.
DemoSummary seed_demo(Store& store, SyncService& sync, ClockSource& clock,
                      const std::filesystem::path& data_dir);

} // namespace otsync::server
