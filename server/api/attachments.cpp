// GET /v1/attachments/{hash}: a signature, photo or scan, to the roles that may see it
// (docs/api.md §5.7), with a fixed type that browsers do not second-guess.
#include "api/route.hpp"

#include "sync/sync_service.hpp"

namespace otsync::server::api {

namespace {

Reply attachment_reply(Procedure& p, Ctx& c) {
    const auto hash = attachment::hash_from_hex(c.params.at(0));
    if (!hash) {
        throw Error(ErrorCode::not_found, "an attachment is named by 64 hex digits");
    }
    SyncService& sync = p.sync();
    const std::vector<BlobRef> refs = sync.blob_refs(*hash);
    if (refs.empty()) {
        throw Error(ErrorCode::not_found, "no record names this attachment");
    }
    if (!sync.may_view_blob(c.user, refs)) {
        throw Error(ErrorCode::permission_denied,
                    std::string(label_es(c.user.role)) + " may not see this " +
                        std::string(attachment::kind_name(refs.front().kind)));
    }
    const auto info = p.store().blob_info(*hash);
    auto data = info ? p.store().blob_data(*hash) : std::nullopt;
    if (!info || !data) {
        throw Error(ErrorCode::not_found,
                    "this attachment has not arrived from the handheld yet: it comes with its "
                    "next sync");
    }
    Reply reply{200, std::string(attachment::content_type(info->media)), std::move(*data)};
    const std::string name = std::string(attachment::kind_name(refs.front().kind)) + "-" +
                             to_hex(*hash).substr(0, 12) + "." +
                             std::string(attachment::extension(info->media));
    reply.headers.emplace_back("X-Content-Type-Options", "nosniff");
    reply.headers.emplace_back("Content-Disposition", "inline; filename=\"" + name + "\"");
    reply.headers.emplace_back("Content-Security-Policy", "default-src 'none'; sandbox");
    // Named by its bytes: the same name never holds other bytes.
    reply.headers.emplace_back("Cache-Control", "private, max-age=31536000, immutable");
    return reply;
}

} // namespace

void add_attachment_routes(std::vector<Route>& out) {
    out.push_back({"GET", "/v1/attachments/{hash}", k_people, attachment_reply});
}

} // namespace otsync::server::api
