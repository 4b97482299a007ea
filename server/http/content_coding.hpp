// HTTP content codings of request and response bodies (RFC 9110 §8.4): zstd and deflate
// (zlib's format), with Debian's libzstd and zlib. A request body sent with
// Content-Encoding is decoded before any route sees it (a signature covers the decoded
// message); a response is encoded when the request's Accept-Encoding offers one of them.
// A client that offers nothing gets identity bodies. Free of Beast.
#pragma once

#include "http/reply.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace otsync::server {

enum class Coding { identity, deflate, zstd };

/// "identity", "deflate", "zstd".
std::string_view coding_name(Coding c) noexcept;

/// The coding a Content-Encoding value names (one coding, case-insensitive, "identity"
/// or empty included); nullopt for anything else (several codings, gzip, br...).
std::optional<Coding> request_coding(std::string_view content_encoding) noexcept;

/// The coding to answer with from an Accept-Encoding value (RFC 9110 §12.5.3): zstd when
/// it is acceptable (q above 0, by name or by "*"), else deflate, else identity.
Coding response_coding(std::string_view accept_encoding) noexcept;

/// `data` encoded (zstd level 3; deflate level 6).
std::string encode_body(Coding c, std::string_view data);

/// `data` decoded, at most `max_bytes` of it: Error(too_large) beyond, Error(malformed)
/// for a damaged or truncated stream.
std::string decode_body(Coding c, std::string_view data, std::size_t max_bytes);

/// A request body as routes take it: decoded in place from its Content-Encoding (the
/// header then goes), at most `max_bytes` decoded. The refusal otherwise: 415 for a coding
/// we do not decode, 413 beyond `max_bytes`, 400 for a damaged stream. Whatever carries
/// requests to the routes does this first (the HTTP layer; a test's loopback).
std::optional<Reply> decode_request(std::map<std::string, std::string>& headers, std::string& body,
                                    std::size_t max_bytes);

} // namespace otsync::server
