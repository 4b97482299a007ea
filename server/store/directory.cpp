#include "store/directory.hpp"

namespace otsync::server {

const User* Directory::Snapshot::find(const Id& id) const {
    const auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : &it->second;
}

const User* Directory::Snapshot::find(const std::string& name) const {
    const auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : find(it->second);
}

const Device* Directory::Snapshot::device(std::uint64_t replica) const {
    const auto it = devices.find(replica);
    return it == devices.end() ? nullptr : &it->second;
}

std::string Directory::Snapshot::label(const Id& id) const {
    if (id == Id{}) {
        return "sistema"; // the server's own ops
    }
    const User* u = find(id);
    return u ? (u->full_name.empty() ? u->name : u->full_name) : id.hex();
}

Directory::Directory(Store& store) : m_store(store) {}

std::shared_ptr<const Directory::Snapshot> Directory::current() {
    return current(m_store);
}

std::shared_ptr<const Directory::Snapshot> Directory::current(Store& via) {
    // The store is read without m_mutex held: a caller that holds the store (a write
    // transaction, whose commands name users) and one that waits for it must never wait
    // on each other here. The version first: a change made while loading moves it again,
    // and the next call reloads.
    const std::uint64_t version = via.directory_version();
    {
        std::lock_guard lock(m_mutex);
        if (m_snapshot && m_snapshot->version == version) {
            return m_snapshot;
        }
    }
    auto next = std::make_shared<Snapshot>();
    next->version = version;
    for (auto& u : via.users()) {
        next->by_name.emplace(u.name, u.id);
        next->by_id.emplace(u.id, std::move(u));
    }
    for (auto& d : via.devices()) {
        next->devices.emplace(d.replica, std::move(d));
    }
    std::lock_guard lock(m_mutex);
    if (!m_snapshot || m_snapshot->version < next->version) {
        m_snapshot = std::move(next); // two loads at once: the newer stays
    }
    return m_snapshot;
}

} // namespace otsync::server
