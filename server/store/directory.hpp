// The users, in memory: what the sync path and the procedure's views need of a user (role,
// disabled, names) without reading SQLite under the sync service's lock. It follows the
// database: refresh() reloads when the users table changed, whichever process changed it
// (the server's own routes, or otsync-admin beside a running server), so a user disabled
// or renamed there counts on the server's next request. Thread-safe.
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
    /// Users by id and by name, as of one version of the users table.
    struct Users {
        std::uint64_t version = 0;
        std::unordered_map<Id, User> by_id;
        std::unordered_map<std::string, Id> by_name;

        const User* find(const Id& id) const;
        const User* find(const std::string& name) const;
        /// The name people read (full name, else login name; "sistema" for the server).
        std::string label(const Id& id) const;
    };

    explicit Directory(Store& store);

    /// The current users: one cheap query, and a reload only when the table changed.
    /// Call it outside the sync service's lock; keep the snapshot for the request.
    std::shared_ptr<const Users> current();

private:
    Store& m_store;
    std::mutex m_mutex;
    std::shared_ptr<const Users> m_users;
};

} // namespace otsync::server
