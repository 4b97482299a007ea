#include "store/directory.hpp"

namespace otsync::server {

const User* Directory::Users::find(const Id& id) const {
    const auto it = by_id.find(id);
    return it == by_id.end() ? nullptr : &it->second;
}

const User* Directory::Users::find(const std::string& name) const {
    const auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : find(it->second);
}

std::string Directory::Users::label(const Id& id) const {
    if (id == Id{}) {
        return "sistema"; // the server's own ops
    }
    const User* u = find(id);
    return u ? (u->full_name.empty() ? u->name : u->full_name) : id.hex();
}

Directory::Directory(Store& store) : m_store(store) {}

std::shared_ptr<const Directory::Users> Directory::current() {
    std::lock_guard lock(m_mutex);
    const std::uint64_t version = m_store.users_version();
    if (!m_users || m_users->version != version) {
        auto users = std::make_shared<Users>();
        users->version = version;
        for (auto& u : m_store.users()) {
            users->by_name.emplace(u.name, u.id);
            users->by_id.emplace(u.id, std::move(u));
        }
        m_users = std::move(users);
    }
    return m_users;
}

} // namespace otsync::server
