// Encodings of ops and sync messages: cereal portable binary (application/x-otsync)
// and JSON (application/json). Decoding is strict: truncated, garbage, oversized or
// wrong-typed input throws otsync::Error with a code (and, for JSON, the member path),
// never undefined behaviour, and no allocation is sized by a length read from input
// before that length is checked against the bytes left and the configured limit.
#pragma once

#include "otsync/crypto.hpp"
#include "otsync/protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace otsync {

/// Every limit of the decoder; the server and client configure them.
struct CodecLimits {
    std::size_t max_message_bytes = 8u << 20; // whole body
    std::size_t max_ops = 10000;              // ops (or results, or evictions) per message
    std::size_t max_text_bytes = 16u << 10;   // any one text value (fields have lower limits)
    std::size_t max_bytes_value = 64u << 10;  // any one bytes value
    std::size_t max_observed = 4096;          // observed tags on one remove
    std::size_t max_json_depth = 16;          // nesting of arrays and objects
    std::size_t max_message_text = 1024;      // an error message in a result
};

// ---- binary (cereal portable binary) --------------------------------------------------------

std::string encode_binary(const SyncRequest& m);
std::string encode_binary(const SyncResponse& m);
/// A batch of ops alone (for storage, benchmarks and tests).
std::string encode_binary(std::span<const Op> ops);

SyncRequest decode_sync_request(std::string_view bytes, const CodecLimits& limits = {});
SyncResponse decode_sync_response(std::string_view bytes, const CodecLimits& limits = {});
std::vector<Op> decode_ops(std::string_view bytes, const CodecLimits& limits = {});

/// Protocol 2's proof of who recorded what: an op's hash is BLAKE2b-256 of its canonical
/// bytes (the op alone in a version-1 op batch: independent of the message it travelled
/// in and of its encoding, binary or JSON).
Hash256 op_leaf(const Op& op);
/// What a device signs over the ops of a request, in their order (ops_signature):
/// "otsync-ops-v2\n" and the hex BLAKE2b-256 of their hashes one after the other. The
/// server keeps the hashes and the signature with the batch, so an audit can check each
/// op of the log against the device's key long after (otsync-admin verify).
std::string ops_signing_string(std::span<const Hash256> leaves);
std::string ops_signing_string(std::span<const Op> ops);

/// The protocol version of a binary or JSON sync message, read before anything else
/// so an unsupported version can be answered with 426 whatever follows it.
std::uint32_t peek_protocol_version(std::string_view body, bool json,
                                    const CodecLimits& limits = {});

// ---- JSON --------------------------------------------------------------------------------------

std::string to_json(const SyncRequest& m);
std::string to_json(const SyncResponse& m);
std::string to_json(const Op& op);

SyncRequest sync_request_from_json(std::string_view json, const CodecLimits& limits = {});
SyncResponse sync_response_from_json(std::string_view json, const CodecLimits& limits = {});
Op op_from_json(std::string_view json, const CodecLimits& limits = {});

namespace detail {
/// The "protocol_version" member of a JSON sync message (strict parse, limits apply).
std::uint32_t json_protocol_version(std::string_view json, const CodecLimits& limits);
} // namespace detail

} // namespace otsync
