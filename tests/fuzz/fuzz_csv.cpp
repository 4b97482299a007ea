// libFuzzer target: the inventory import's CSV check (server/procedure/csv_import.hpp) on
// arbitrary bytes, against an in-memory store holding one contract.
//
// The check must answer every input with a result (problems or rows), never an exception
// or a sanitizer report; a result without problems must hold only rows that fit the
// registry: a serial normalized and non-empty, a known equipment kind.
#include "procedure/csv_import.hpp"

#include "otsync/id.hpp"
#include "otsync/model.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace {

[[noreturn]] void bug(const char* what) {
    std::fprintf(stderr, "fuzz_csv: %s\n", what);
    std::abort();
}

otsync::server::Store& store() {
    static std::unique_ptr<otsync::server::Store> s = [] {
        otsync::server::SqliteOptions o;
        o.path = ":memory:";
        auto st = otsync::server::open_sqlite_store(o);
        st->import_inventory({{"HELD-1", "Cliente", "natural", "1", "Calle", 0}},
                             {{"HELD-SERIAL", "HELD-1", "gpon_ont", "M", "D", 0}});
        return st;
    }();
    return *s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view csv(reinterpret_cast<const char*>(data), size);
    otsync::server::ImportLimits limits;
    limits.max_bytes = 1 << 16;
    limits.max_rows = 200;
    const auto r = otsync::server::check_inventory_csv(csv, store(), 0, limits);
    if (r.problems.empty()) {
        const auto* kind = otsync::find_field(otsync::EntityType::equipment, "kind");
        for (const auto& item : r.items) {
            if (item.serial.empty() || otsync::normalize_serial(item.serial) != item.serial) {
                bug("an accepted serial is empty or not normalized");
            }
            bool known = false;
            for (auto k : kind->allowed) {
                known = known || k == item.kind;
            }
            if (!known) {
                bug("an accepted row has an unknown equipment kind");
            }
        }
    }
    (void)r.report();
    return 0;
}
