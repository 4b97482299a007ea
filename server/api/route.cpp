// The helpers every route file shares; see route.hpp.
#include "api/route.hpp"

namespace otsync::server::api {

Reply json(std::string body, unsigned status) {
    return Reply{status, "application/json", std::move(body)};
}

Id parse_id(const std::string& s, const char* what) {
    try {
        return Id::from_hex(s);
    } catch (const Error&) {
        throw Error(ErrorCode::not_found, std::string("no ") + what + " '" + s + "'");
    }
}

Id Ctx::id(const char* what) const {
    return parse_id(params.at(0), what);
}

std::string Ctx::q(const std::string& name) const {
    const auto it = query.find(name);
    return it == query.end() ? std::string() : it->second;
}

void str(JsonWriter& w, std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void member(JsonWriter& w, std::string_view key, std::string_view v) {
    str(w, key);
    str(w, v);
}

void member(JsonWriter& w, std::string_view key, const Id& v) {
    member(w, key, v.hex());
}

void member(JsonWriter& w, std::string_view key, bool v) {
    str(w, key);
    w.Bool(v);
}

void member(JsonWriter& w, std::string_view key, std::int64_t v) {
    str(w, key);
    w.Int64(v);
}

void member(JsonWriter& w, std::string_view key, std::uint64_t v) {
    str(w, key);
    w.Uint64(v);
}

void null_member(JsonWriter& w, std::string_view key) {
    str(w, key);
    w.Null();
}

void raw(JsonWriter& w, const std::string& json) {
    w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}

std::size_t parse_limit(const std::map<std::string, std::string>& q) {
    const auto it = q.find("limit");
    if (it == q.end() || it->second.empty()) {
        return 1000;
    }
    char* end = nullptr;
    const auto n = std::strtoul(it->second.c_str(), &end, 10);
    if (*end || n == 0 || n > 10000) {
        throw Error(ErrorCode::invalid_value, "limit is a whole number from 1 to 10000", "limit");
    }
    return n;
}

} // namespace otsync::server::api
