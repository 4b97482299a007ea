#include "http/content_coding.hpp"

#include "otsync/deflate.hpp"
#include "otsync/error.hpp"

#include <zstd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

namespace otsync::server {

namespace {

constexpr int k_zstd_level = 3; // zstd's default: fast, and most of the gain

bool iequal(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

/// The q of one Accept-Encoding element's parameters ("q=0.5"): 1 when absent, 0 when
/// malformed (a value we cannot read is not an acceptance).
double quality(std::string_view params) noexcept {
    while (!params.empty()) {
        const auto semi = params.find(';');
        const std::string_view p = trim(params.substr(0, semi));
        params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
        if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            const std::string v(p.substr(2));
            char* end = nullptr;
            const double q = std::strtod(v.c_str(), &end);
            return (end && *end == '\0' && q >= 0 && q <= 1) ? q : 0;
        }
    }
    return 1;
}

std::string zstd_decode(std::string_view data, std::size_t max_bytes) {
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    if (!ctx) {
        throw Error(ErrorCode::internal, "zstd: out of memory");
    }
    std::string out;
    std::vector<char> chunk(ZSTD_DStreamOutSize());
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    std::size_t last = 1; // 0 once a frame ended exactly
    while (in.pos < in.size || last != 0) {
        ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
        last = ZSTD_decompressStream(ctx, &o, &in);
        if (ZSTD_isError(last)) {
            ZSTD_freeDCtx(ctx);
            throw Error(ErrorCode::malformed, "the body is not a valid zstd stream");
        }
        if (o.pos > max_bytes - out.size()) {
            ZSTD_freeDCtx(ctx);
            throw Error(ErrorCode::too_large,
                        "the body decodes to more than " + std::to_string(max_bytes) + " bytes");
        }
        out.append(chunk.data(), o.pos);
        if (in.pos == in.size && last != 0 && o.pos < o.size) {
            ZSTD_freeDCtx(ctx);
            throw Error(ErrorCode::malformed, "the zstd stream is truncated");
        }
    }
    ZSTD_freeDCtx(ctx);
    return out;
}

} // namespace

std::string_view coding_name(Coding c) noexcept {
    switch (c) {
    case Coding::deflate:
        return "deflate";
    case Coding::zstd:
        return "zstd";
    case Coding::identity:
        break;
    }
    return "identity";
}

std::optional<Coding> request_coding(std::string_view value) noexcept {
    const std::string_view v = trim(value);
    if (v.empty() || iequal(v, "identity")) {
        return Coding::identity;
    }
    if (iequal(v, "deflate")) {
        return Coding::deflate;
    }
    if (iequal(v, "zstd")) {
        return Coding::zstd;
    }
    return std::nullopt;
}

Coding response_coding(std::string_view accept) noexcept {
    double zstd = -1, deflate = -1, any = -1;
    while (!accept.empty()) {
        const auto comma = accept.find(',');
        const std::string_view element = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
        const auto semi = element.find(';');
        const std::string_view name = trim(element.substr(0, semi));
        const double q =
            quality(semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1));
        if (iequal(name, "zstd")) {
            zstd = q;
        } else if (iequal(name, "deflate")) {
            deflate = q;
        } else if (name == "*") {
            any = q;
        }
    }
    // A coding not named takes the "*" element's q (RFC 9110 §12.5.3).
    zstd = zstd < 0 ? any : zstd;
    deflate = deflate < 0 ? any : deflate;
    if (zstd > 0 && zstd >= deflate) {
        return Coding::zstd;
    }
    if (deflate > 0) {
        return Coding::deflate;
    }
    return zstd > 0 ? Coding::zstd : Coding::identity;
}

std::string encode_body(Coding c, std::string_view data) {
    switch (c) {
    case Coding::deflate:
        return deflate_encode(data);
    case Coding::zstd: {
        std::string out(ZSTD_compressBound(data.size()), '\0');
        const std::size_t n =
            ZSTD_compress(out.data(), out.size(), data.data(), data.size(), k_zstd_level);
        if (ZSTD_isError(n)) {
            throw Error(ErrorCode::internal, "zstd: compression failed");
        }
        out.resize(n);
        return out;
    }
    case Coding::identity:
        break;
    }
    return std::string(data);
}

std::string decode_body(Coding c, std::string_view data, std::size_t max_bytes) {
    switch (c) {
    case Coding::deflate:
        return deflate_decode(data, max_bytes);
    case Coding::zstd:
        return zstd_decode(data, max_bytes);
    case Coding::identity:
        break;
    }
    if (data.size() > max_bytes) {
        throw Error(ErrorCode::too_large,
                    "the body is larger than " + std::to_string(max_bytes) + " bytes");
    }
    return std::string(data);
}

std::optional<Reply> decode_request(std::map<std::string, std::string>& headers, std::string& body,
                                    std::size_t max_bytes) {
    const auto ce = headers.find("content-encoding");
    if (ce == headers.end()) {
        return std::nullopt;
    }
    const auto coding = request_coding(ce->second);
    if (!coding) {
        return error_reply(Error(ErrorCode::unsupported_media_type,
                                 "Content-Encoding must be zstd, deflate or identity"));
    }
    if (*coding != Coding::identity) {
        try {
            body = decode_body(*coding, body, max_bytes);
        } catch (const Error& e) {
            return error_reply(e);
        }
    }
    headers.erase(ce);
    return std::nullopt;
}

} // namespace otsync::server
