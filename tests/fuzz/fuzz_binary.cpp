// libFuzzer target: the three binary decoders (and the version peek) on arbitrary bytes.
//
// A decoder may refuse input only with otsync::Error, and never with `internal` (a bug);
// any other exception escapes and crashes the fuzzer, as do sanitizer reports. Whatever
// decodes must survive a round trip: encoding it and decoding that gives the same message.
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
#include <vector>

namespace {

[[noreturn]] void bug(const char* what, const char* detail = "") {
    std::fprintf(stderr, "fuzz_binary: %s %s\n", what, detail);
    std::abort();
}

template <class Decode, class Encode>
void check(std::string_view input, Decode decode, Encode encode) {
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
    // Not in a try: an exception here means the encoder wrote what the decoder refuses.
    const Message again = decode(encode(*m));
    if (!(again == *m)) {
        bug("re-encoding a decoded message changes it");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    check(
        input, [](std::string_view b) { return otsync::decode_sync_request(b); },
        [](const otsync::SyncRequest& m) { return otsync::encode_binary(m); });
    check(
        input, [](std::string_view b) { return otsync::decode_sync_response(b); },
        [](const otsync::SyncResponse& m) { return otsync::encode_binary(m); });
    check(
        input, [](std::string_view b) { return otsync::decode_ops(b); },
        [](const std::vector<otsync::Op>& ops) {
            return otsync::encode_binary(std::span<const otsync::Op>(ops));
        });

    try {
        static_cast<void>(otsync::peek_protocol_version(input, false));
    } catch (const otsync::Error& e) {
        if (e.code() == otsync::ErrorCode::internal) {
            bug("internal error:", e.what());
        }
    }
    return 0;
}
