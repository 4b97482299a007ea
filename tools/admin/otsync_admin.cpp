// otsync-admin: the operator's command line, working on the server's data folder.
//
//   otsync-admin [--data-dir DIR] user add --role ROLE NAME
//   otsync-admin [--data-dir DIR] user list
//   otsync-admin [--data-dir DIR] device enroll-code USER [--ttl-hours H]
//   otsync-admin [--data-dir DIR] device revoke REPLICA
//   otsync-admin [--data-dir DIR] device list
//
// The data folder defaults to $OTSYNC_DATA_DIR, then ./var. It is safe to run while
// the server runs (SQLite WAL with a busy timeout); revocation takes effect on the
// device's next request. Errors: one line on stderr, exit 1 (2 for usage).
#include "store/store.hpp"
#include "sync/sync_service.hpp"

#include "otsync/error.hpp"

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

using namespace otsync;
using namespace otsync::server;

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::cerr
        << "otsync-admin: " << why << "\n"
        << "usage: otsync-admin [--data-dir DIR] user add --role ROLE NAME | user list |\n"
        << "       device enroll-code USER [--ttl-hours H] | device revoke REPLICA | device list\n";
    std::exit(2);
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string when(std::int64_t ms) {
    if (ms <= 0) {
        return "never";
    }
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
    return std::string(buf) + "Z";
}

std::uint64_t number(const std::string& s, const char* what) {
    char* end = nullptr;
    errno = 0;
    const auto v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || errno || *end || s[0] == '-') {
        usage(std::string(what) + " must be a whole number");
    }
    return v;
}

int run(std::vector<std::string> args) {
    std::string data_dir = std::getenv("OTSYNC_DATA_DIR") ? std::getenv("OTSYNC_DATA_DIR") : "var";
    if (args.size() >= 2 && args[0] == "--data-dir") {
        data_dir = args[1];
        args.erase(args.begin(), args.begin() + 2);
    }
    if (args.size() < 2) {
        usage("missing command");
    }
    if (!std::filesystem::is_directory(data_dir)) {
        throw Error(ErrorCode::invalid_argument,
                    "data folder " + data_dir +
                        " does not exist (start otsync-server once, or pass --data-dir)");
    }
    SqliteOptions o;
    o.path = (std::filesystem::path(data_dir) / "otsync.db").string();
    auto store = open_sqlite_store(o);
    const std::string noun = args[0], verb = args[1];

    if (noun == "user" && verb == "add") {
        std::string role_name, name;
        for (std::size_t i = 2; i < args.size(); ++i) {
            if (args[i] == "--role" && i + 1 < args.size()) {
                role_name = args[++i];
            } else if (name.empty() && args[i].rfind("--", 0) != 0) {
                name = args[i];
            } else {
                usage("unexpected '" + args[i] + "'");
            }
        }
        const auto role = role_from_string(role_name);
        if (!role || *role == Role::system) {
            usage("--role must be one of customer_service, commercial_head, sales_executive, "
                  "platform_officer, commercial_advisor, back_office, technician, warehouse_clerk, "
                  "supervisor");
        }
        if (name.empty() || name.size() > 64 || !is_valid_utf8(name)) {
            usage("a user name of 1 to 64 bytes is required");
        }
        User u;
        u.id = Id::random();
        u.name = name;
        u.role = *role;
        u.created_at = now_ms();
        store->add_user(u);
        std::cout << "user " << name << " (" << to_string(*role) << ") added: " << u.id.hex()
                  << "\n";
        return 0;
    }
    if (noun == "user" && verb == "list") {
        for (const auto& u : store->users()) {
            std::cout << u.name << "\t" << to_string(u.role) << "\t"
                      << (u.disabled ? "disabled" : "active") << "\t" << u.id.hex() << "\n";
        }
        return 0;
    }
    if (noun == "device" && verb == "enroll-code") {
        if (args.size() < 3) {
            usage("device enroll-code needs a user name");
        }
        std::int64_t ttl_hours = 24;
        for (std::size_t i = 3; i < args.size(); ++i) {
            if (args[i] == "--ttl-hours" && i + 1 < args.size()) {
                ttl_hours = static_cast<std::int64_t>(number(args[++i], "--ttl-hours"));
            } else {
                usage("unexpected '" + args[i] + "'");
            }
        }
        const auto user = store->user_by_name(args[2]);
        if (!user) {
            throw Error(ErrorCode::invalid_argument, "no user named '" + args[2] + "'");
        }
        if (user->disabled) {
            throw Error(ErrorCode::invalid_argument, "user '" + args[2] + "' is disabled");
        }
        const std::string code =
            issue_enroll_code(*store, user->id, now_ms(), ttl_hours * 3600 * 1000);
        std::cout << code << "\n";
        std::cerr << "one-time code for " << user->name << ", valid " << ttl_hours << " h\n";
        return 0;
    }
    if (noun == "device" && verb == "revoke") {
        if (args.size() != 3) {
            usage("device revoke needs a replica id");
        }
        if (!store->revoke_device(number(args[2], "REPLICA"))) {
            throw Error(ErrorCode::invalid_argument, "no device " + args[2]);
        }
        std::cout << "device " << args[2] << " revoked; its next request gets 401\n";
        return 0;
    }
    if (noun == "device" && verb == "list") {
        std::cout << "replica\tuser\tlabel\tstatus\tlast seen\tcursor\tlag\n";
        for (const auto& d : store->devices()) {
            const auto user = store->user_by_id(d.user);
            const std::uint64_t lag = store->feed_count_after(d.user, d.cursor);
            std::cout << d.replica << "\t" << (user ? user->name : d.user.hex()) << "\t" << d.label
                      << "\t" << (d.status == DeviceStatus::active ? "active" : "revoked") << "\t"
                      << when(d.last_seen) << "\t" << d.cursor << "\t" << lag << "\n";
        }
        return 0;
    }
    usage("unknown command '" + noun + " " + verb + "'");
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const Error& e) {
        std::cerr << "otsync-admin: " << e.message() << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "otsync-admin: " << e.what() << "\n";
        return 1;
    }
}
