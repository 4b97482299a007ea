// Handovers: the warehouse receipt and the Anexo 4; see handovers.hpp.
#include "api/anexo4.hpp"
#include "otsync/crypto.hpp"
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

// ---- handovers ----------------------------------------------------------------------------------

std::string Handovers::list_handovers(const std::map<std::string, std::string>& q) {
    const std::string want = query_of(q, "status");
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("handovers");
    w.StartArray();
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& h : r.entities(CF::handover)) {
            const std::string status = text_of(r, CF::handover, h, "status");
            if (status.empty()) {
                continue;
            }
            if (want.empty() ? status == "received" : status != want) {
                continue; // by default: the ones waiting for the warehouse
            }
            found.emplace_back(time_of(r, CF::handover, h, "date").value_or(0), h);
        }
        std::sort(found.begin(), found.end()); // oldest first: the longest waiting on top
        for (const auto& [date, h] : found) {
            w.StartObject();
            w.Key("id");
            str(w, h.hex());
            w.Key("status");
            str(w, text_of(r, CF::handover, h, "status"));
            w.Key("technician");
            const auto t = id_of(r, CF::handover, h, "technician");
            str(w, t ? names->label(*t) : std::string());
            w.Key("zone");
            str(w, text_of(r, CF::handover, h, "zone"));
            w.Key("date");
            w.Int64(date);
            w.Key("age_hours");
            w.Int64(date > 0 ? (now - date) / 3600000 : 0);
            w.Key("rows");
            w.Uint(static_cast<unsigned>(r.elements(CF::handover, h, "rows").size()));
            w.EndObject();
        }
    });
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string Handovers::handover_detail(const Id& h) {
    const auto names = m_sync.directory().current(); // read before the service lock
    rapidjson::StringBuffer sb;
    W w(sb);
    m_sync.read_state([&](const crdt::Replica& r) {
        if (text_of(r, CF::handover, h, "status").empty()) {
            throw not_found("no handover " + h.hex());
        }
        w.StartObject();
        w.Key("id");
        str(w, h.hex());
        w.Key("status");
        str(w, text_of(r, CF::handover, h, "status"));
        w.Key("technician");
        const auto t = id_of(r, CF::handover, h, "technician");
        str(w, t ? names->label(*t) : std::string());
        w.Key("zone");
        str(w, text_of(r, CF::handover, h, "zone"));
        w.Key("date");
        w.Int64(time_of(r, CF::handover, h, "date").value_or(0));
        w.Key("received_by");
        str(w, text_of(r, CF::handover, h, "received_by"));
        w.Key("received_at");
        w.Int64(time_of(r, CF::handover, h, "received_at").value_or(0));
        w.Key("received_rows_hash");
        str(w, hex_of(r.get(CF::handover, h, "received_rows_hash")));
        w.Key("rows");
        w.StartArray();
        for (const auto& [serial, item] : handover_rows(r, h)) {
            const auto T = CF::collected_item;
            w.StartObject();
            w.Key("item");
            str(w, item.hex());
            w.Key("serial");
            str(w, serial);
            w.Key("description");
            str(w, row_description(r, item, serial));
            w.Key("reason");
            str(w, text_of(r, T, item, "reason"));
            w.Key("defect");
            str(w, text_of(r, T, item, "defect"));
            w.Key("observations");
            str(w, text_of(r, T, item, "observations"));
            w.Key("collected_at");
            w.Int64(time_of(r, T, item, "collected_at").value_or(0));
            w.Key("voided");
            w.Bool(is_true(r, T, item, "voided"));
            w.Key("receipt");
            str(w, text_of(r, T, item, "receipt"));
            w.Key("receipt_note");
            str(w, text_of(r, T, item, "receipt_note"));
            w.Key("ot");
            const auto ot = id_of(r, T, item, "work_order");
            str(w, ot ? ot->hex() : std::string());
            w.EndObject();
        }
        w.EndArray();
        w.EndObject();
    });
    return sb.GetString();
}

std::string Handovers::receive_handover(const User& actor, const Id& h, const std::string& body) {
    JsonBody j(body);
    const auto* rows = j.array("rows", m_config.max_rows_per_receipt, true);
    struct In {
        std::string serial, result, note;
    };
    std::vector<In> in;
    for (rapidjson::SizeType i = 0; i < rows->Size(); ++i) {
        JsonBody row((*rows)[i], "rows[" + std::to_string(i) + "]");
        In x;
        x.serial = normalize_serial(row.req_text("serial", 64));
        x.result = row.req_text("result", 32);
        if (x.result != "received" && x.result != "missing" && x.result != "damaged_on_arrival") {
            throw Error(ErrorCode::invalid_value,
                        "result is received, missing or damaged_on_arrival", row.path("result"));
        }
        x.note = row.text("note", 500).value_or("");
        if (x.result != "received" && x.note.empty() && x.result == "damaged_on_arrival") {
            throw Error(ErrorCode::missing_field, "say what is damaged", row.path("note"));
        }
        row.done();
        in.push_back(std::move(x));
    }
    j.done();
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const std::string clerk = actor.full_name.empty() ? actor.name : actor.full_name;
    std::string rows_hash_hex;
    run(m_sync, actor, [&](Batch& b) {
        const std::string status = b.status_of(CF::handover, h);
        if (status.empty()) {
            throw not_found("no handover " + h.hex());
        }
        if (status == "received") {
            throw Error(ErrorCode::conflict, "this handover was already received by " +
                                                 text_of(b.r, CF::handover, h, "received_by"));
        }
        std::map<std::string, Id> by_serial;
        for (const auto& v : b.r.elements(CF::handover, h, "rows")) {
            if (const auto* item = std::get_if<Id>(&v)) {
                by_serial[text_of(b.r, CF::collected_item, *item, "serial")] = *item;
            }
        }
        if (by_serial.empty()) {
            throw Error(ErrorCode::invalid_transition, "this handover has no rows");
        }
        std::map<std::string, const In*> given;
        for (const auto& x : in) {
            if (!by_serial.contains(x.serial)) {
                throw Error(ErrorCode::invalid_value,
                            x.serial + " is not on this handover (Anexo 4)", "rows");
            }
            if (!given.emplace(x.serial, &x).second) {
                throw Error(ErrorCode::invalid_value, x.serial + " is listed twice", "rows");
            }
        }
        std::string absent;
        for (const auto& [serial, item] : by_serial) {
            if (!given.contains(serial)) {
                absent += (absent.empty() ? "" : ", ") + serial;
            }
        }
        if (!absent.empty()) {
            throw Error(ErrorCode::missing_field,
                        "every row needs a result (received, missing or damaged_on_arrival): " +
                            absent,
                        "rows");
        }
        // The exact rows received, hashed: beside the customer's signature over the rows
        // collected, this proves the custody chain row by row.
        std::string canonical = "otsync-receipt-rows-v1\n" + h.hex() + "\n";
        for (const auto& [serial, x] : given) {
            const Id item = by_serial.at(serial);
            const std::string prior = text_of(b.r, CF::collected_item, item, "receipt");
            if (!prior.empty()) {
                throw Error(ErrorCode::conflict,
                            serial + " was already received ('" + prior + "')");
            }
            canonical += item.hex() + " " + serial + " " + x->result + " " + x->note + "\n";
            b.set(CF::collected_item, item, "receipt", text(x->result));
            if (!x->note.empty()) {
                b.set(CF::collected_item, item, "receipt_note", text(x->note));
            }
            const Id eq = Id::natural("equipment", serial);
            if (x->result != "missing" && b.r.entity(CF::equipment, eq)) {
                b.event(CF::equipment, eq, "custody", text("warehouse"));
                if (x->result == "damaged_on_arrival") {
                    b.set(CF::equipment, eq, "condition", text("damaged"));
                }
            }
        }
        const Hash256 hash = blake2b_256(canonical);
        rows_hash_hex = crdt::to_hex(hash);
        // The server's Ed25519 attestation of the receipt, kept on the handover with the
        // fields it covers, so the technician's device can check it (client.h).
        const Signature attest =
            m_sync.sign(handover_receipt_message(h, actor.id, now, rows_hash_hex));
        b.set(CF::handover, h, "received_by", text(clerk));
        b.set(CF::handover, h, "received_by_user", actor.id);
        b.set(CF::handover, h, "received_at", Timestamp{now});
        b.set(CF::handover, h, "received_rows_hash", Bytes{{hash.begin(), hash.end()}});
        b.set(CF::handover, h, "receipt_signature", Bytes{{attest.begin(), attest.end()}});
        b.status(CF::handover, h, "received");
    });
    const std::string message = handover_receipt_message(h, actor.id, now, rows_hash_hex);
    const Signature sig = m_sync.sign(message);
    rapidjson::StringBuffer sb;
    W w(sb);
    w.StartObject();
    w.Key("handover");
    raw(w, handover_detail(h));
    w.Key("receipt");
    w.StartObject();
    w.Key("received_by");
    str(w, clerk);
    w.Key("received_at");
    w.Int64(now);
    w.Key("received_rows_hash");
    str(w, rows_hash_hex);
    w.Key("signed_message");
    str(w, message);
    w.Key("server_signature");
    str(w, to_base64(sig));
    w.EndObject();
    w.EndObject();
    return sb.GetString();
}

std::string Handovers::anexo4_html(const Id& h) {
    Anexo4Form form;
    const auto names = m_sync.directory().current(); // read before the service lock
    m_sync.read_state([&](const crdt::Replica& r) {
        const std::string status = text_of(r, CF::handover, h, "status");
        if (status.empty()) {
            throw not_found("no handover " + h.hex());
        }
        form.handover_id = h.hex();
        form.date_ms = time_of(r, CF::handover, h, "date").value_or(0);
        if (auto t = id_of(r, CF::handover, h, "technician")) {
            form.technician = names->label(*t);
        }
        form.zone = text_of(r, CF::handover, h, "zone");
        form.delivered_by = text_of(r, CF::handover, h, "delivered_by");
        if (form.delivered_by.empty()) {
            form.delivered_by = form.technician;
        }
        form.received_by = text_of(r, CF::handover, h, "received_by");
        form.received_at_ms = time_of(r, CF::handover, h, "received_at").value_or(0);
        form.technician_signed = r.get(CF::handover, h, "technician_signature_ref") != nullptr;
        form.clerk_signed = status == "received";
        form.delivered_rows_hash = hex_of(r.get(CF::handover, h, "delivered_rows_hash"));
        form.received_rows_hash = hex_of(r.get(CF::handover, h, "received_rows_hash"));
        form.tz_offset_minutes = m_config.tz_offset_minutes;
        for (const auto& [serial, item] : handover_rows(r, h)) {
            const auto T = CF::collected_item;
            Anexo4Row row;
            row.code = serial;
            row.description = row_description(r, item, serial);
            row.reason = text_of(r, T, item, "reason");
            row.defect = text_of(r, T, item, "defect");
            row.observations = text_of(r, T, item, "observations");
            row.date_ms = time_of(r, T, item, "collected_at").value_or(0);
            row.customer_signed = r.get(T, item, "signature_ref") != nullptr;
            if (auto ot = id_of(r, T, item, "work_order")) {
                row.signed_rows_hash = hex_of(r.get(CF::work_order, *ot, "signed_rows_hash"));
            }
            row.receipt = text_of(r, T, item, "receipt");
            row.receipt_note = text_of(r, T, item, "receipt_note");
            if (auto by = collector_of(r, item)) {
                row.collected_by = names->label(*by);
            }
            form.rows.push_back(std::move(row));
        }
    });
    return render_anexo4(form);
}

} // namespace otsync::server
