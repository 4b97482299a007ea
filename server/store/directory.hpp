// Who is who, in memory: the users (role, disabled, names) and the enrolled devices
// (user, key, status) that the sync path and the procedure's views need, read without
// SQLite and never under the sync service's lock. It follows the database: current()
// reloads when the directory version moved (triggers on users and devices bump it),
// whichever process changed them (the server's own routes, or otsync-admin beside a
// running server), so a user disabled or a device revoked there counts on the server's
// next request. Thread-safe.
#pragma once

#include "store/store.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace otsync::server {

class Directory {
public:
    /// Users by id and by name, devices by replica, as of one directory version. A
    /// device's counter, cursor and last-seen are those of the load: read them from the
    /// store.
    struct Snapshot {
        std::uint64_t version = 0;
        std::unordered_map<Id, User> by_id;
        std::unordered_map<std::string, Id> by_name;
        std::unordered_map<std::uint64_t, Device> devices;

        const User* find(const Id& id) const;
        const User* find(const std::string& name) const;
        const Device* device(std::uint64_t replica) const;
        /// The name people read (full name, else login name; "sistema" for the server).
        std::string label(const Id& id) const;
    };

    explicit Directory(Store& store);

    /// The current directory: one cheap query, and a reload only when it changed. Call it
    /// outside the sync service's lock; keep the snapshot for the request.
    std::shared_ptr<const Snapshot> current();
    /// The same, read through `via`: another connection to the same database (a shared
    /// store's reader, so the check does not wait behind a commit).
    std::shared_ptr<const Snapshot> current(Store& via);

private:
    Store& m_store;
    std::mutex m_mutex;
    std::shared_ptr<const Snapshot> m_snapshot;
};

} // namespace otsync::server
