// The handover routes (/v1/handovers...): the warehouse's list, the receipt, the Anexo 4 print
// page; docs/api.md.
#include "api/anexo4.hpp"
#include "api/route.hpp"

#include <limits>

namespace otsync::server::api {

namespace {

std::string handover_list_json(const HandoverList& list) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("handovers");
    w.StartArray();
    for (const HandoverSummary& h : list.handovers) {
        w.StartObject();
        w.Key("id");
        str(w, h.id.hex());
        w.Key("status");
        str(w, h.status);
        w.Key("technician");
        str(w, h.technician);
        w.Key("zone");
        str(w, h.zone);
        w.Key("date");
        w.Int64(h.date);
        w.Key("age_hours");
        w.Int64(h.age_hours);
        w.Key("rows");
        w.Uint(static_cast<unsigned>(h.rows));
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

void write_handover(JsonWriter& w, const HandoverDetail& d) {
    w.StartObject();
    w.Key("id");
    str(w, d.id.hex());
    w.Key("status");
    str(w, d.status);
    w.Key("technician");
    str(w, d.technician);
    w.Key("zone");
    str(w, d.zone);
    w.Key("date");
    w.Int64(d.date);
    w.Key("received_by");
    str(w, d.received_by);
    w.Key("received_at");
    w.Int64(d.received_at);
    w.Key("received_rows_hash");
    str(w, d.received_rows_hash);
    w.Key("rows");
    w.StartArray();
    for (const HandoverRow& row : d.rows) {
        w.StartObject();
        w.Key("item");
        str(w, row.item.hex());
        w.Key("serial");
        str(w, row.serial);
        w.Key("description");
        str(w, row.description);
        w.Key("reason");
        str(w, row.reason);
        w.Key("defect");
        str(w, row.defect);
        w.Key("observations");
        str(w, row.observations);
        w.Key("collected_at");
        w.Int64(row.collected_at);
        w.Key("voided");
        w.Bool(row.voided);
        w.Key("receipt");
        str(w, row.receipt);
        w.Key("receipt_note");
        str(w, row.receipt_note);
        w.Key("ot");
        str(w, row.ot ? row.ot->hex() : std::string());
        w.EndObject();
    }
    w.EndArray();
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
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("handover");
    write_handover(w, r.handover);
    w.Key("receipt");
    w.StartObject();
    w.Key("received_by");
    str(w, r.received_by);
    w.Key("received_at");
    w.Int64(r.received_at);
    w.Key("received_rows_hash");
    str(w, r.received_rows_hash);
    w.Key("signed_message");
    str(w, r.signed_message);
    w.Key("server_signature");
    str(w, to_base64(r.server_signature));
    w.EndObject();
    w.EndObject();
    return sb.GetString();
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
