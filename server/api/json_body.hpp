// A strict reader for JSON request bodies: typed members with the member's name in the
// error, bounded text, and unknown members refused, so a typo is a 400, not a silent no-op.
#pragma once

#include "otsync/error.hpp"
#include "otsync/value.hpp"

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace otsync::server {

class JsonBody {
public:
    /// Parses `body` (empty = {}); Error(malformed) unless it is one JSON object. The
    /// iterative parser does not recurse, so nesting depth cannot exhaust the stack; the
    /// body's size is bounded by the HTTP layer (64 KiB by default).
    explicit JsonBody(const std::string& body) {
        if (body.empty()) {
            m_doc.SetObject();
            return;
        }
        m_doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
            body.data(), body.size());
        if (m_doc.HasParseError() || !m_doc.IsObject()) {
            throw Error(ErrorCode::malformed, "the body must be one JSON object");
        }
        m_root = &m_doc;
    }
    JsonBody(const rapidjson::Value& v, std::string prefix) : m_root(&v), m_prefix(prefix) {
        if (!v.IsObject()) {
            throw Error(ErrorCode::wrong_type, m_prefix + " must be an object", m_prefix);
        }
    }

    std::optional<std::string> text(const char* name, std::size_t max_bytes,
                                    bool required = false) {
        const auto* v = member(name, required);
        if (!v || v->IsNull()) {
            return std::nullopt;
        }
        if (!v->IsString()) {
            throw Error(ErrorCode::wrong_type, path(name) + " must be text", path(name));
        }
        std::string s(v->GetString(), v->GetStringLength());
        if (s.size() > max_bytes) {
            throw Error(ErrorCode::too_large,
                        path(name) + " is limited to " + std::to_string(max_bytes) + " bytes",
                        path(name));
        }
        if (!is_valid_utf8(s)) {
            throw Error(ErrorCode::invalid_utf8, path(name) + " is not valid UTF-8", path(name));
        }
        if (required && trimmed_empty(s)) {
            throw Error(ErrorCode::missing_field, path(name) + " must not be empty", path(name));
        }
        return s;
    }
    std::string req_text(const char* name, std::size_t max_bytes) {
        return *text(name, max_bytes, true);
    }
    std::optional<bool> boolean(const char* name, bool required = false) {
        const auto* v = member(name, required);
        if (!v || v->IsNull()) {
            return std::nullopt;
        }
        if (!v->IsBool()) {
            throw Error(ErrorCode::wrong_type, path(name) + " must be true or false", path(name));
        }
        return v->GetBool();
    }
    std::optional<std::int64_t> integer(const char* name, std::int64_t min, std::int64_t max,
                                        bool required = false) {
        const auto* v = member(name, required);
        if (!v || v->IsNull()) {
            return std::nullopt;
        }
        if (!v->IsInt64()) {
            throw Error(ErrorCode::wrong_type, path(name) + " must be a whole number", path(name));
        }
        const auto n = v->GetInt64();
        if (n < min || n > max) {
            throw Error(ErrorCode::out_of_range,
                        path(name) + " must be between " + std::to_string(min) + " and " +
                            std::to_string(max),
                        path(name));
        }
        return n;
    }
    std::vector<std::string> texts(const char* name, std::size_t max_items, std::size_t max_bytes,
                                   bool required = false) {
        std::vector<std::string> out;
        const auto* v = array(name, max_items, required);
        if (!v) {
            return out;
        }
        for (rapidjson::SizeType i = 0; i < v->Size(); ++i) {
            const auto& e = (*v)[i];
            const std::string at = path(name) + "[" + std::to_string(i) + "]";
            if (!e.IsString()) {
                throw Error(ErrorCode::wrong_type, at + " must be text", at);
            }
            std::string s(e.GetString(), e.GetStringLength());
            if (s.size() > max_bytes || !is_valid_utf8(s)) {
                throw Error(ErrorCode::invalid_value, at + " is too long or not UTF-8", at);
            }
            out.push_back(std::move(s));
        }
        return out;
    }
    /// An array of objects, each read with its own JsonBody.
    const rapidjson::Value* array(const char* name, std::size_t max_items, bool required = false) {
        const auto* v = member(name, required);
        if (!v || v->IsNull()) {
            return nullptr;
        }
        if (!v->IsArray()) {
            throw Error(ErrorCode::wrong_type, path(name) + " must be a list", path(name));
        }
        if (v->Size() > max_items) {
            throw Error(ErrorCode::too_large,
                        path(name) + " holds at most " + std::to_string(max_items) + " items",
                        path(name));
        }
        return v;
    }
    const rapidjson::Value* object(const char* name, bool required = false) {
        const auto* v = member(name, required);
        if (!v || v->IsNull()) {
            return nullptr;
        }
        if (!v->IsObject()) {
            throw Error(ErrorCode::wrong_type, path(name) + " must be an object", path(name));
        }
        return v;
    }
    /// Refuses members nobody asked for.
    void done() const {
        for (auto it = m_root->MemberBegin(); it != m_root->MemberEnd(); ++it) {
            const std::string name(it->name.GetString(), it->name.GetStringLength());
            if (!m_seen.contains(name)) {
                throw Error(ErrorCode::unknown_field,
                            path(name) + " is not a member of this request", path(name));
            }
        }
    }
    std::string path(const std::string& name) const {
        return m_prefix.empty() ? name : m_prefix + "." + name;
    }

private:
    static bool trimmed_empty(const std::string& s) {
        return s.find_first_not_of(" \t\r\n") == std::string::npos;
    }
    const rapidjson::Value* member(const char* name, bool required) {
        m_seen.insert(name);
        const auto it = m_root->FindMember(name);
        if (it == m_root->MemberEnd() || (required && it->value.IsNull())) {
            if (required) {
                throw Error(ErrorCode::missing_field, path(name) + " is required", path(name));
            }
            return nullptr;
        }
        return &it->value;
    }

    rapidjson::Document m_doc;
    const rapidjson::Value* m_root = &m_doc;
    std::string m_prefix;
    std::set<std::string> m_seen;
};

} // namespace otsync::server
