// libFuzzer target: the three JSON decoders (and the version peek) on arbitrary text.
//
// A decoder may refuse input only with otsync::Error, and never with `internal` (which
// is how the codec reports a RapidJSON assertion, i.e. a bug); any other exception
// escapes and crashes the fuzzer, as do sanitizer reports. Whatever decodes must survive
// a round trip through JSON and through the binary encoding, unchanged.
#include "otsync/codec.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace {

[[noreturn]] void bug(const char* what, const char* detail = "") {
    std::fprintf(stderr, "fuzz_json: %s %s\n", what, detail);
    std::abort();
}

template <class Decode, class ToJson, class BinaryRoundTrip>
void check(std::string_view input, Decode decode, ToJson to_json,
           BinaryRoundTrip binary_round_trip) {
    using Message = std::decay_t<std::invoke_result_t<Decode, std::string_view>>;
    std::optional<Message> m;
    try {
        m.emplace(decode(input));
    } catch (const otsync::Error& e) {
        if (e.code() == otsync::ErrorCode::internal) {
            bug("internal error:", e.what());
        }
        return;
    }
    // Not in a try: an exception here means an encoder wrote what a decoder refuses.
    if (!(decode(to_json(*m)) == *m)) {
        bug("a JSON round trip changes a decoded message");
    }
    if (!(binary_round_trip(*m) == *m)) {
        bug("a binary round trip changes a decoded message");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    check(
        input, [](std::string_view j) { return otsync::sync_request_from_json(j); },
        [](const otsync::SyncRequest& m) { return otsync::to_json(m); },
        [](const otsync::SyncRequest& m) {
            return otsync::decode_sync_request(otsync::encode_binary(m));
        });
    check(
        input, [](std::string_view j) { return otsync::sync_response_from_json(j); },
        [](const otsync::SyncResponse& m) { return otsync::to_json(m); },
        [](const otsync::SyncResponse& m) {
            return otsync::decode_sync_response(otsync::encode_binary(m));
        });
    check(
        input, [](std::string_view j) { return otsync::op_from_json(j); },
        [](const otsync::Op& op) { return otsync::to_json(op); },
        [](const otsync::Op& op) {
            const auto ops =
                otsync::decode_ops(otsync::encode_binary(std::span<const otsync::Op>(&op, 1)));
            return ops.size() == 1 ? ops[0] : otsync::Op{};
        });

    try {
        static_cast<void>(otsync::peek_protocol_version(input, true));
    } catch (const otsync::Error& e) {
        if (e.code() == otsync::ErrorCode::internal) {
            bug("internal error:", e.what());
        }
    }
    return 0;
}
