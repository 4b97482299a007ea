// otsync_version and otsync_error_name (client.h), through libotsync_client.so: the version
// is the header's, and every code of client.h's otsync_error_code (read from the header
// itself, so a code added there without a name fails here) has a stable snake_case name,
// the wire spelling of otsync::to_string for the codes below 100.
#include "otsync/client.h"
#include "otsync/error.hpp"
#include "otsync/version.h"

#include <doctest/doctest.h>

#include <climits>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

// NAME -> value of every constant of `typedef enum otsync_error_code { ... }` in client.h.
std::map<std::string, int> header_error_codes() {
    std::ifstream in(OTSYNC_CLIENT_HEADER_PATH);
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    const std::string header = text.str();
    const auto begin = header.find("typedef enum otsync_error_code {");
    REQUIRE(begin != std::string::npos);
    const auto end = header.find("} otsync_error_code;", begin);
    REQUIRE(end != std::string::npos);
    const std::string body =
        std::regex_replace(header.substr(begin, end - begin), std::regex(R"(/\*[\s\S]*?\*/)"), " ");
    std::map<std::string, int> codes;
    const std::regex item(R"((OTSYNC_[A-Z0-9_]+)\s*=\s*([0-9]+))");
    for (auto it = std::sregex_iterator(body.begin(), body.end(), item);
         it != std::sregex_iterator(); ++it) {
        codes.emplace((*it)[1].str(), std::stoi((*it)[2].str()));
    }
    return codes;
}

bool is_snake_case(const std::string& s) {
    return std::regex_match(s, std::regex("[a-z][a-z0-9]*(_[a-z0-9]+)*"));
}

// The code's otsync::ErrorCode when it is one (to_string says "internal" for any number).
std::optional<otsync::ErrorCode> wire_code(int code) {
    const auto ec = static_cast<otsync::ErrorCode>(code);
    if (otsync::error_code_from_string(otsync::to_string(ec)) == ec) {
        return ec;
    }
    return std::nullopt;
}

} // namespace

TEST_CASE("otsync_version is the header's MAJOR.MINOR.PATCH") {
    const std::string expected = std::to_string(OTSYNC_VERSION_MAJOR) + "." +
                                 std::to_string(OTSYNC_VERSION_MINOR) + "." +
                                 std::to_string(OTSYNC_VERSION_PATCH);
    REQUIRE(otsync_version() != nullptr);
    CHECK(std::string(otsync_version()) == expected);
    CHECK(std::string(OTSYNC_VERSION_STRING) == expected);
}

TEST_CASE("every error code of client.h has a stable name") {
    const auto codes = header_error_codes();
    REQUIRE(codes.size() >= 41); // OTSYNC_OK, 1..31, 100..108 when this was written
    // The header as read agrees with the header as compiled.
    CHECK(codes.at("OTSYNC_OK") == OTSYNC_OK);
    CHECK(codes.at("OTSYNC_ERR_BUSY") == OTSYNC_ERR_BUSY);
    CHECK(codes.at("OTSYNC_ERR_TLS") == OTSYNC_ERR_TLS);

    std::set<std::string> names;
    for (const auto& [constant, code] : codes) {
        CAPTURE(constant);
        const char* name = otsync_error_name(code);
        REQUIRE(name != nullptr);
        CHECK(std::string(name) != "unknown");
        CHECK(is_snake_case(name));
        CHECK_MESSAGE(names.insert(name).second, "two codes named ", name);
        if (code == OTSYNC_OK) {
            CHECK(std::string(name) == "ok");
        } else if (code < 100) {
            // Every code below 100 is an otsync::ErrorCode, spelled as on the wire.
            const auto ec = wire_code(code);
            REQUIRE(ec.has_value());
            CHECK(std::string(name) == otsync::to_string(*ec));
        }
    }

    // ... and every otsync::ErrorCode has its constant in client.h (the same number).
    std::set<int> values;
    for (const auto& [constant, code] : codes) {
        values.insert(code);
    }
    for (int code = 1; code < 100; ++code) {
        if (wire_code(code)) {
            CAPTURE(code);
            CHECK(values.count(code) == 1);
        }
    }
}

TEST_CASE("the documented names") {
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_DEVICE_REVOKED)) == "device_revoked");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_SERVER_NOT_FOUND)) == "not_found");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_NOT_ENROLLED)) == "not_enrolled");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_NOT_FOUND)) == "not_found_on_device");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_NETWORK)) == "network");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_REVOKED)) == "revoked");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_WRONG_KEY)) == "wrong_key");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_BUSY)) == "busy");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_TIMEOUT)) == "timeout");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_CANCELLED)) == "cancelled");
    CHECK(std::string(otsync_error_name(OTSYNC_ERR_TLS)) == "tls");
}

TEST_CASE("a number that is no code is \"unknown\"") {
    std::set<int> values;
    for (const auto& [constant, code] : header_error_codes()) {
        values.insert(code);
    }
    // Below 100 that includes the numbers otsync::to_string would call "internal".
    int unknown = 0;
    for (int code = -5; code < 1000; ++code) {
        if (values.count(code) == 0) {
            CAPTURE(code);
            REQUIRE(otsync_error_name(code) != nullptr);
            CHECK(std::string(otsync_error_name(code)) == "unknown");
            ++unknown;
        }
    }
    CHECK(unknown > 900);
    CHECK(std::string(otsync_error_name(INT_MIN)) == "unknown");
    CHECK(std::string(otsync_error_name(INT_MAX)) == "unknown");
}
