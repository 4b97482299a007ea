// A handheld process for the crash test: records Anexo 4 rows on one OT in a loop and
// syncs every few rows, printing "recorded SERIAL" only after record() returned (so the
// row is durable). The test kills it with SIGKILL at random moments.
//
//   crash_driver DB URL CODE|- OT_HEX FIRST_INDEX        record and sync until killed
//   crash_driver DB URL - OT_HEX --drain                  sync until the outbox is empty
#include "otsync/client.hpp"

#include <cstdio>
#include <iostream>
#include <string>

using namespace otsync::client;

int main(int argc, char** argv) {
    if (argc < 5) {
        std::cerr << "usage: crash_driver DB URL CODE|- OT FIRST_INDEX|--drain\n";
        return 2;
    }
    std::array<std::uint8_t, 32> key{};
    key.fill(0x5a);
    try {
        Client c(argv[1], key);
        HttpOptions o;
        o.request_timeout_ms = 5000;
        auto transport = make_http_transport(argv[2], o);
        if (!c.enrolled()) {
            c.enroll(*transport, argv[2], argv[3], "crash-driver");
        }
        if (std::string(argv[5]) == "--drain") {
            for (int i = 0; i < 100 && c.pending() > 0; ++i) {
                try {
                    c.sync(*transport);
                } catch (const ClientError& e) {
                    if (e.code() != OTSYNC_ERR_NETWORK) {
                        throw;
                    }
                }
            }
            return c.pending() == 0 ? 0 : 1;
        }
        c.sync(*transport); // the OT must be here before rows can be recorded on it
        if (c.list_ots_json("on_site").find(argv[4]) == std::string::npos) {
            c.set_status(argv[4], "on_site", ""); // rows are recorded on site
        }
        for (long i = std::stol(argv[5]);; ++i) {
            const std::string serial = "CR-" + std::to_string(i);
            c.collect(argv[4], serial, "", "migration", "", "");
            std::printf("recorded %s\n", serial.c_str());
            std::fflush(stdout);
            if (i % 5 == 4) {
                try {
                    c.sync(*transport);
                } catch (const ClientError& e) {
                    if (e.code() != OTSYNC_ERR_NETWORK) {
                        throw;
                    }
                }
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "crash_driver: " << e.what() << "\n";
        return 1;
    }
}
