// The handover routes (/v1/handovers...): the warehouse's list, the receipt, the Anexo 4 print
// page; docs/api.md.
#include "api/anexo4.hpp"
#include "api/route.hpp"

#include <limits>

namespace otsync::server::api {

namespace {

/// The members a list row and a detail share, in the order both answer them.
void write_header(JsonWriter& w, const HandoverHeader& h) {
    member(w, "id", h.id);
    member(w, "status", h.status);
    member(w, "technician", h.technician);
    member(w, "zone", h.zone);
    member(w, "date", h.date);
}

std::string handover_list_json(const HandoverList& list) {
    return json_object([&](JsonWriter& w) {
        objects_member(w, "handovers", list.handovers, [&](const HandoverSummary& h) {
            write_header(w, h);
            member(w, "age_hours", h.age_hours);
            member(w, "rows", static_cast<unsigned>(h.rows));
        });
    });
}

void write_handover(JsonWriter& w, const HandoverDetail& d) {
    w.StartObject();
    write_header(w, d);
    member(w, "received_by", d.received_by);
    member(w, "received_at", d.received_at);
    member(w, "received_rows_hash", d.received_rows_hash);
    objects_member(w, "rows", d.rows, [&](const HandoverRow& row) {
        member(w, "item", row.item);
        member(w, "serial", row.serial);
        member(w, "description", row.description);
        member(w, "reason", row.reason);
        member(w, "defect", row.defect);
        member(w, "observations", row.observations);
        member(w, "collected_at", row.collected_at);
        member(w, "voided", row.voided);
        member(w, "receipt", row.receipt);
        member(w, "receipt_note", row.receipt_note);
        member(w, "ot", row.ot ? row.ot->hex() : std::string());
    });
    w.EndObject();
}

std::string handover_json(const HandoverDetail& d) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    write_handover(w, d);
    return sb.GetString();
}

/// POST /v1/handovers/{id}/receipt's body: {"rows":[{"serial","result","note"?}, ...]}. How
/// many rows a receipt may hold is the procedure's rule.
ReceiptCmd receipt_cmd(const std::string& body) {
    JsonBody j(body);
    const auto* rows = j.array("rows", std::numeric_limits<std::size_t>::max(), true);
    ReceiptCmd cmd;
    cmd.rows.reserve(rows->Size());
    for (rapidjson::SizeType i = 0; i < rows->Size(); ++i) {
        JsonBody row((*rows)[i], "rows[" + std::to_string(i) + "]");
        ReceiptRow x;
        x.serial = row.req_text("serial", 64);
        x.result = row.req_text("result", 32);
        x.note = row.text("note", 500).value_or("");
        row.done();
        cmd.rows.push_back(std::move(x));
    }
    j.done();
    return cmd;
}

std::string receipt_json(const HandoverReceipt& r) {
    return json_object([&](JsonWriter& w) {
        w.Key("handover");
        write_handover(w, r.handover);
        w.Key("receipt");
        w.StartObject();
        member(w, "received_by", r.received_by);
        member(w, "received_at", r.received_at);
        member(w, "received_rows_hash", r.received_rows_hash);
        member(w, "signed_message", r.signed_message);
        member(w, "server_signature", to_base64(r.server_signature));
        w.EndObject();
    });
}

} // namespace

void add_handover_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(out.end(),
               {
                   {"GET", "/v1/handovers", k_warehouse_read,
                    [](P& p, Ctx& c) {
                        return json(
                            handover_list_json(p.handovers().list_handovers({c.q("status")})));
                    }},
                   {"GET", "/v1/handovers/{id}", k_warehouse_read,
                    [](P& p, Ctx& c) {
                        return json(handover_json(p.handovers().handover_detail(c.id("handover"))));
                    }},
                   {"POST", "/v1/handovers/{id}/receipt", k_receivers,
                    [](P& p, Ctx& c) {
                        const Id h = c.id("handover");
                        const ReceiptCmd cmd = receipt_cmd(c.req.body);
                        return json(receipt_json(p.handovers().receive_handover(c.user, h, cmd)));
                    }},
                   {"GET", "/v1/handovers/{id}/anexo4", k_warehouse_read,
                    [](P& p, Ctx& c) {
                        return Reply{200, "text/html; charset=utf-8",
                                     render_anexo4(p.handovers().anexo4_form(c.id("handover")))};
                    }},
               });
}

} // namespace otsync::server::api
