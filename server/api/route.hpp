// What the REST routes share (api/routes.cpp and one file per resource: cases.cpp, ots.cpp,
// handovers.cpp, office.cpp, model.cpp): a route row (method, pattern, roles, handler), the
// request as a handler sees it, the role groups of the table, and the small parsing and
// rendering helpers. Internal to server/api/.
#pragma once

#include "api/json_body.hpp"
#include "http/reply.hpp"
#include "procedure/procedure.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace otsync::server::api {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr RoleMask bits(std::initializer_list<Role> roles) {
    RoleMask m = 0;
    for (Role r : roles) {
        m = static_cast<RoleMask>(m | role_bit(r));
    }
    return m;
}

// Role groups of the route table.
using R = Role;
constexpr RoleMask k_people = k_all_roles & ~role_bit(R::system); // any signed-in person
constexpr RoleMask k_office = k_people & ~role_bit(R::technician);
constexpr RoleMask k_openers = bits({R::customer_service, R::sales_executive, R::supervisor});
constexpr RoleMask k_editors = bits({R::customer_service, R::sales_executive, R::commercial_advisor,
                                     R::back_office, R::supervisor});
constexpr RoleMask k_steppers =
    bits({R::customer_service, R::commercial_head, R::sales_executive, R::platform_officer,
          R::commercial_advisor, R::back_office, R::supervisor});
constexpr RoleMask k_routers = bits({R::commercial_head, R::platform_officer, R::supervisor});
constexpr RoleMask k_reviewers = bits({R::sales_executive, R::commercial_advisor, R::supervisor});
constexpr RoleMask k_dispatch = bits({R::back_office, R::supervisor});
constexpr RoleMask k_supervisor = role_bit(R::supervisor);
constexpr RoleMask k_warehouse_read = bits({R::warehouse_clerk, R::back_office, R::supervisor});
constexpr RoleMask k_receivers = bits({R::warehouse_clerk, R::supervisor});
constexpr RoleMask k_reports = bits({R::supervisor, R::back_office, R::commercial_head,
                                     R::commercial_advisor, R::platform_officer});

/// A request as a route's handler sees it: who asks, the {..} captures, the query.
struct Ctx {
    const RouteRequest& req;
    const User& user;
    std::vector<std::string> params;
    std::map<std::string, std::string> query;

    /// The record named by the route's first {id}; not_found when it is no id at all.
    Id id(const char* what) const;
    /// A query member, "" when absent.
    std::string q(const std::string& name) const;
};

/// One row of the route table: deny by default, the roles are checked before `handler`.
struct Route {
    const char* method;
    const char* pattern; // "/v1/cases/{id}/approve"
    RoleMask roles;
    std::function<Reply(Procedure&, Ctx&)> handler;
};

/// The routes of each resource, in the order the table lists them.
void add_case_routes(std::vector<Route>& out);
void add_ot_routes(std::vector<Route>& out);
void add_handover_routes(std::vector<Route>& out);
void add_office_routes(std::vector<Route>& out);     // fees, inventory, reports, conflicts, people
void add_model_routes(std::vector<Route>& out);      // GET /v1/model
void add_attachment_routes(std::vector<Route>& out); // GET /v1/attachments/{hash}

Reply json(std::string body, unsigned status = 200);
Id parse_id(const std::string& s, const char* what);
void str(JsonWriter& w, std::string_view s);

/// The JSON object that `write(w)` fills member by member, as text.
template <typename F>
std::string json_object(F&& write) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    write(w);
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
}

/// One member of the object being written: "key": value. Text as a string, an Id as its
/// hex, integers and booleans as such; an empty optional as null.
void member(JsonWriter& w, std::string_view key, std::string_view v);
inline void member(JsonWriter& w, std::string_view key, const std::string& v) {
    member(w, key, std::string_view(v));
}
inline void member(JsonWriter& w, std::string_view key, const char* v) {
    member(w, key, std::string_view(v));
}
void member(JsonWriter& w, std::string_view key, const Id& v);
void member(JsonWriter& w, std::string_view key, bool v);
void member(JsonWriter& w, std::string_view key, std::int64_t v);
void member(JsonWriter& w, std::string_view key, std::uint64_t v);
template <std::integral T>
requires(!std::same_as<T, bool> && !std::same_as<T, std::int64_t> &&
         !std::same_as<T, std::uint64_t>) void member(JsonWriter& w, std::string_view key, T v) {
    if constexpr (std::is_signed_v<T>) {
        member(w, key, static_cast<std::int64_t>(v));
    } else {
        member(w, key, static_cast<std::uint64_t>(v));
    }
}
/// "key": null.
void null_member(JsonWriter& w, std::string_view key);
template <typename T>
void member(JsonWriter& w, std::string_view key, const std::optional<T>& v) {
    if (v) {
        member(w, key, *v);
    } else {
        null_member(w, key);
    }
}
/// A route that acts on the record its {id} names (`what`, for the not-found message):
/// `parse` reads the command from the body, whose members are then all checked
/// (JsonBody::done), the part's `fn` does it as the signed-in user, and `answer(p, id)`
/// renders what the client is told (the record as the action leaves it).
template <typename Part, typename Cmd, typename Answer>
std::function<Reply(Procedure&, Ctx&)>
action(Part& (Procedure::*part)(), void (Part::*fn)(const User&, const Id&, const Cmd&),
       const char* what, Cmd (*parse)(JsonBody&), Answer answer, unsigned status = 200) {
    return [=](Procedure& p, Ctx& c) {
        const Id id = c.id(what);
        JsonBody j(c.req.body);
        const Cmd cmd = parse(j);
        j.done();
        ((p.*part)().*fn)(c.user, id, cmd);
        return json(answer(p, id), status);
    };
}

/// "key": an array of one object per element of `items`, each filled by `write(element)`.
template <typename Range, typename F>
void objects_member(JsonWriter& w, std::string_view key, const Range& items, F&& write) {
    str(w, key);
    w.StartArray();
    for (const auto& e : items) {
        w.StartObject();
        write(e);
        w.EndObject();
    }
    w.EndArray();
}

/// A command whose one member is the person's reason: {"reason": text of 1 to 500 bytes}.
template <typename Cmd>
Cmd reason_cmd(JsonBody& j) {
    return {j.req_text("reason", 500)};
}

/// Embeds JSON built elsewhere (an entity's fields) as one value.
void raw(JsonWriter& w, const std::string& json);

/// `limit` from a query: how many of the newest a list returns (default 1000, at most
/// 10000), so no list grows without bound.
std::size_t parse_limit(const std::map<std::string, std::string>& q);

} // namespace otsync::server::api
