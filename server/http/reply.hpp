// The server's error model, for every route (sync, enrollment, the REST API, health) and
// the HTTP layer: what a route is asked (RouteRequest) and answers (Reply), the one
// mapping from an error code to its HTTP status, and the one error body,
//   {"error":{"code":"...","message":"...","field":"..."}}
// ("field" only when the error names a request member), valid JSON in valid UTF-8
// whatever bytes the request held. docs/api.md §3 has the table. Free of Beast.
#pragma once

#include "otsync/error.hpp"

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace otsync::server {

/// A request as the routes see it, whatever carried it (Beast, a test's loopback).
struct RouteRequest {
    std::string_view method;
    std::string_view path;
    const std::map<std::string, std::string>& headers; // lower-cased names
    const std::string& body;
    std::string_view query = {};  // after '?', undecoded
    std::string_view remote = {}; // peer address "ip:port", for login throttling
};

/// An answer to hand to HTTP: status, content type, body.
struct Reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers{}; // e.g. Set-Cookie
    // The HTTP layer may encode the body as the request's Accept-Encoding offers: only for
    // answers that hold no secret beside text a request put there (BREACH): sync pages and
    // the pages' files, not the API's JSON (session tokens, CSRF).
    bool may_compress = false;
};

/// THE HTTP status of an error code, one per code (docs/api.md §3). The sync session's
/// table (session::status_of_refusal, which devices read answers with) is the same.
/// Only the HTTP layer's own answers before any route runs have statuses of their own
/// (431 and 503 for too_large: header size, connection limit).
unsigned http_status(ErrorCode code) noexcept;

/// The message a client is told for `e`: its message, led by its member path when the
/// message does not name it already ("rows[1].note: say what is damaged"); for an
/// internal error only "the server could not complete the request; retry later" (its own
/// message may name files or SQL).
std::string error_message(const Error& e);

/// {"error":{"code":..,"message":..[,"field":..]}[,extra_members]}. `message` and `field`
/// may hold any bytes (invalid UTF-8 becomes U+FFFD); `extra_members` are further members
/// of the outer object as JSON the caller built ("\"supported\":{\"min\":1,\"max\":2}").
std::string error_body(ErrorCode code, std::string_view message, std::string_view field = {},
                       std::string_view extra_members = {});

/// The answer to an error: http_status(e.code()) and error_body(code, error_message(e),
/// e.field(), extra_members).
Reply error_reply(const Error& e, std::string_view extra_members = {});

} // namespace otsync::server
