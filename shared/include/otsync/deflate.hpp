// HTTP's "deflate" content coding (RFC 9110 §8.4.1.2: the zlib format, RFC 1950), with
// zlib, once for both ends of the sync: the device compresses what it sends and reads
// what the server compressed; the server the other way round.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace otsync {

/// The zlib stream of `data` (compression level 6, zlib's default).
std::string deflate_encode(std::string_view data);

/// The bytes of a zlib stream, at most `max_bytes` of them. Throws Error(too_large)
/// beyond that (a small body that inflates to gigabytes stops there), Error(malformed)
/// for a stream that is damaged, truncated or followed by more bytes.
std::string deflate_decode(std::string_view stream, std::size_t max_bytes);

/// Whether `data` starts like a zlib stream (RFC 1950 §2.2: method 8, a window of at
/// most 32 KiB, the header check). Neither a sync message (its first byte is 0x01 or
/// 0x02) nor a JSON body ('{') does.
bool looks_deflated(std::string_view data) noexcept;

} // namespace otsync
