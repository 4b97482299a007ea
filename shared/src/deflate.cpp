#include "otsync/deflate.hpp"

#include "otsync/error.hpp"

#include <zlib.h>

#include <algorithm>
#include <limits>

namespace otsync {

namespace {

constexpr std::size_t k_chunk = 16 * 1024;

/// zlib counts in uInt: feed it at most this much at a time.
constexpr std::size_t k_max_feed = std::numeric_limits<uInt>::max();

} // namespace

std::string deflate_encode(std::string_view data) {
    uLongf size = compressBound(static_cast<uLong>(data.size()));
    std::string out(size, '\0');
    if (compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                  reinterpret_cast<const Bytef*>(data.data()), static_cast<uLong>(data.size()),
                  Z_DEFAULT_COMPRESSION) != Z_OK) {
        throw Error(ErrorCode::internal, "zlib: compression failed");
    }
    out.resize(size);
    return out;
}

std::string deflate_decode(std::string_view stream, std::size_t max_bytes) {
    z_stream z{};
    if (inflateInit(&z) != Z_OK) {
        throw Error(ErrorCode::internal, "zlib: cannot start decompressing");
    }
    const auto fail = [&](ErrorCode code, const std::string& why) {
        inflateEnd(&z);
        throw Error(code, why);
    };
    std::string out;
    std::size_t fed = 0;
    char chunk[k_chunk];
    for (;;) {
        if (z.avail_in == 0 && fed < stream.size()) {
            const std::size_t n = std::min(stream.size() - fed, k_max_feed);
            z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data() + fed));
            z.avail_in = static_cast<uInt>(n);
            fed += n;
        }
        z.next_out = reinterpret_cast<Bytef*>(chunk);
        z.avail_out = sizeof chunk;
        const int rc = inflate(&z, Z_NO_FLUSH);
        if (rc == Z_MEM_ERROR) {
            fail(ErrorCode::internal, "zlib: out of memory");
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            fail(ErrorCode::malformed, "the body is not a valid deflate (zlib) stream");
        }
        const std::size_t produced = sizeof chunk - z.avail_out;
        if (produced > max_bytes - out.size()) {
            fail(ErrorCode::too_large,
                 "the body inflates to more than " + std::to_string(max_bytes) + " bytes");
        }
        out.append(chunk, produced);
        if (rc == Z_STREAM_END) {
            break;
        }
        if (produced == 0 && z.avail_in == 0 && fed == stream.size()) {
            fail(ErrorCode::malformed, "the deflate (zlib) stream is truncated");
        }
    }
    const bool trailing = z.avail_in != 0 || fed != stream.size();
    inflateEnd(&z);
    if (trailing) {
        throw Error(ErrorCode::malformed, "bytes follow the end of the deflate (zlib) stream");
    }
    return out;
}

bool looks_deflated(std::string_view d) noexcept {
    if (d.size() < 2) {
        return false;
    }
    const auto cmf = static_cast<unsigned char>(d[0]);
    const auto flg = static_cast<unsigned char>(d[1]);
    return (cmf & 0x0F) == 8 && (cmf >> 4) <= 7 && (cmf * 256 + flg) % 31 == 0;
}

} // namespace otsync
