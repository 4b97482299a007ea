// The REST API for people (docs/api.md): login and sessions, cases, OTs, handovers,
// fees, inventory, reports, conflicts, users and devices. Plain functions request →
// reply, like the sync routes. Every route names the roles that may call it in one
// table (k_routes in api.cpp): deny by default, checked before the handler runs; the
// handler's ops then pass the field permission table as a device's do.
#pragma once

#include "auth/auth.hpp"
#include "http/reply.hpp"
#include "procedure/procedure.hpp"

#include <optional>
#include <string>
#include <vector>

namespace otsync::server {

/// One row of the route table, for the permission matrix test and docs.
struct RouteInfo {
    std::string method;
    std::string pattern; // "/v1/cases/{id}/approve"
    RoleMask roles;      // 0: no session needed (login)
};

class Api {
public:
    Api(Store& store, AuthService& auth, Procedure& procedure)
        : m_store(store), m_auth(auth), m_procedure(procedure) {}

    /// Behind a reverse proxy every request comes from the proxy's address: trust the
    /// last address it appends to X-Forwarded-For for login throttling. Only when the
    /// server is reachable through that proxy alone.
    void trust_proxy(bool on) { m_trust_proxy = on; }

    /// Answers a /v1/ request that is not sync or enrollment; nullopt when no route
    /// matches the path at all (the caller answers 404). Every error is an error_reply
    /// (http/reply.hpp): the status is the code's.
    std::optional<Reply> handle(const RouteRequest& r);

    /// Before a large body is read: 401 unless the request carries a live session.
    std::optional<Reply> before_body(const RouteRequest& r);

    static const std::vector<RouteInfo>& routes();

private:
    Store& m_store;
    AuthService& m_auth;
    Procedure& m_procedure;
    bool m_trust_proxy = false;
};

/// "a=1&b=x%20y" → {a:1, b:"x y"}; '+' is a space. Malformed escapes are kept verbatim.
std::map<std::string, std::string> parse_query(std::string_view query);

/// Whether `path` fits a route pattern such as "/v1/cases/{id}/approve".
bool route_matches(std::string_view pattern, std::string_view path);

} // namespace otsync::server
