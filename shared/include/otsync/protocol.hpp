// The sync protocol's messages: what a device sends to POST /v1/sync and
// what the server answers. Encodings live in codec.hpp; docs/protocol.md is the spec.
#pragma once

#include "otsync/error.hpp"
#include "otsync/hlc.hpp"
#include "otsync/op.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace otsync {

// Protocol versions. A server accepts [k_protocol_min, k_protocol_version] and answers
// anything else with 426 and that range; the device keeps its outbox.
//
// Changelog:
//   1 — first version: SyncRequest/SyncResponse, op batches with per-batch author and
//       entity tables, varint integers, per-op results, signed receipt, evictions.
//   2 — sessions (a handshake, then a MAC per request instead of a signature); a request
//       carries wait_ms (long-poll) and, with ops, the device's signature over their
//       digest (ops_signature); in binary an id value already in the message's entity
//       table is a reference (value tag 8), and raw id values join that table.
constexpr std::uint32_t k_protocol_version = 2;
constexpr std::uint32_t k_protocol_min = 1;

/// Content types of the two encodings of the same messages.
constexpr const char* k_content_type_binary = "application/x-otsync";
constexpr const char* k_content_type_json = "application/json";

struct SyncRequest {
    std::uint32_t protocol_version = k_protocol_version;
    std::uint64_t replica = 0;
    std::uint64_t request_counter = 0; // strictly increasing per device (replay guard)
    std::uint64_t cursor = 0;          // last server sequence the device holds
    HlcTime hlc = 0;                   // the device's clock when sending
    std::uint32_t page_size = 0;       // 0: the server's default
    std::vector<Op> ops;               // pending ops, oldest first
    // Version 2 and later:
    std::uint32_t wait_ms = 0; // a pull with nothing to send waits up to this long for some
    std::vector<std::uint8_t> ops_signature; // Ed25519 over ops_signing_string (64 bytes)
    bool operator==(const SyncRequest&) const = default;
};

enum class OpStatus : std::uint8_t {
    accepted = 0,
    rejected = 1,
    flagged = 2, // accepted as a physical fact but out of scope (e.g. OT reassigned away)
};

struct OpResult {
    OpId id;
    OpStatus status = OpStatus::accepted;
    ErrorCode code = ErrorCode::internal; // meaningful when rejected or flagged
    std::string message;
    bool operator==(const OpResult&) const = default;
};

/// An op as stored by the server, with its sequence number in the server's log.
struct SeqOp {
    std::uint64_t seq = 0;
    Op op;
    bool operator==(const SeqOp&) const = default;
};

struct EntityRef {
    EntityType type = EntityType::case_file;
    Id id;
    bool operator==(const EntityRef&) const = default;
};

struct SyncResponse {
    std::uint32_t protocol_version = k_protocol_version;
    HlcTime server_hlc = 0;
    std::vector<OpResult> results; // one per request op, same order
    std::vector<SeqOp> ops;        // scope ops with seq > cursor, ascending
    std::uint64_t cursor = 0;      // the new cursor
    bool more = false;             // another page is waiting
    std::vector<EntityRef> evicted;
    std::uint64_t remaining = 0;       // estimate of ops still to download
    std::vector<std::uint8_t> receipt; // Ed25519 signature over the accepted op ids (64 bytes)
    bool operator==(const SyncResponse&) const = default;
};

} // namespace otsync
