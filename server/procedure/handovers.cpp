// Handovers: the warehouse receipt and the Anexo 4; see handovers.hpp.
#include "procedure/internal.hpp"

namespace otsync::server {

using namespace detail;

namespace {

/// One row of a handover as the technician recorded it and the warehouse received it.
HandoverRow row_of(const crdt::Replica& r, const Id& item, const std::string& serial) {
    const auto T = CF::collected_item;
    HandoverRow row;
    static_cast<RowRecord&>(row) = row_record(r, item);
    row.item = item;
    row.serial = serial;
    row.description = row_description(r, item, serial);
    row.voided = is_true(r, T, item, "voided");
    row.ot = id_of(r, T, item, "work_order");
    return row;
}

HandoverHeader header_of(const crdt::Replica& r, const Id& h, const Directory::Snapshot& names) {
    HandoverHeader out;
    out.id = h;
    out.status = text_of(r, CF::handover, h, "status");
    if (const auto t = id_of(r, CF::handover, h, "technician")) {
        out.technician = names.label(*t);
    }
    out.zone = text_of(r, CF::handover, h, "zone");
    out.date = time_of(r, CF::handover, h, "date").value_or(0);
    return out;
}

} // namespace

// ---- handovers ----------------------------------------------------------------------------------

HandoverList Handovers::list_handovers(const HandoverFilter& filter) {
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    const auto names = m_sync.directory().current(); // read before the service lock
    HandoverList out;
    m_sync.read_state([&](const crdt::Replica& r) {
        std::vector<std::pair<std::int64_t, Id>> found;
        for (const Id& h : r.entities(CF::handover)) {
            const std::string status = text_of(r, CF::handover, h, "status");
            if (status.empty()) {
                continue;
            }
            if (filter.status.empty() ? status == "received" : status != filter.status) {
                continue; // by default: the ones waiting for the warehouse
            }
            found.emplace_back(time_of(r, CF::handover, h, "date").value_or(0), h);
        }
        std::sort(found.begin(), found.end()); // oldest first: the longest waiting on top
        out.handovers.reserve(found.size());
        for (const auto& [date, h] : found) {
            HandoverSummary s;
            static_cast<HandoverHeader&>(s) = header_of(r, h, *names);
            s.age_hours = date > 0 ? (now - date) / 3600000 : 0;
            s.rows = r.elements(CF::handover, h, "rows").size();
            out.handovers.push_back(std::move(s));
        }
    });
    return out;
}

HandoverDetail Handovers::handover_detail(const Id& h) {
    m_sync.bring_back(h);                            // an archived case opened again
    const auto names = m_sync.directory().current(); // read before the service lock
    HandoverDetail d;
    m_sync.read_state([&](const crdt::Replica& r) {
        if (text_of(r, CF::handover, h, "status").empty()) {
            throw not_found("no handover " + h.hex());
        }
        static_cast<HandoverHeader&>(d) = header_of(r, h, *names);
        d.received_by = text_of(r, CF::handover, h, "received_by");
        d.received_at = time_of(r, CF::handover, h, "received_at").value_or(0);
        d.received_rows_hash = hex_of(r.get(CF::handover, h, "received_rows_hash"));
        for (const auto& [serial, item] : handover_rows(r, h)) {
            d.rows.push_back(row_of(r, item, serial));
        }
    });
    return d;
}

HandoverReceipt Handovers::receive_handover(const User& actor, const Id& h, const ReceiptCmd& cmd) {
    m_sync.bring_back(h); // an archived case opened again
    if (cmd.rows.size() > m_config.max_rows_per_receipt) {
        throw Error(ErrorCode::too_large,
                    "rows holds at most " + std::to_string(m_config.max_rows_per_receipt) +
                        " items",
                    "rows");
    }
    std::vector<ReceiptRow> in;
    in.reserve(cmd.rows.size());
    for (std::size_t i = 0; i < cmd.rows.size(); ++i) {
        const std::string at = "rows[" + std::to_string(i) + "].";
        ReceiptRow x = cmd.rows[i];
        x.serial = normalize_serial(x.serial);
        if (x.result != "received" && x.result != "missing" && x.result != "damaged_on_arrival") {
            throw Error(ErrorCode::invalid_value,
                        "result is received, missing or damaged_on_arrival", at + "result");
        }
        if (x.result == "damaged_on_arrival" && x.note.empty()) {
            throw Error(ErrorCode::missing_field, "say what is damaged", at + "note");
        }
        in.push_back(std::move(x));
    }
    const auto now = static_cast<std::int64_t>(m_clock.now_ms());
    HandoverReceipt out;
    out.received_by = actor.full_name.empty() ? actor.name : actor.full_name;
    out.received_at = now;
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
        std::map<std::string, const ReceiptRow*> given;
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
        out.received_rows_hash = crdt::to_hex(hash);
        // The server's Ed25519 attestation of the receipt, kept on the handover with the
        // fields it covers, so the technician's device can check it (client.h); the answer
        // carries the same signature.
        out.signed_message = handover_receipt_message(h, actor.id, now, out.received_rows_hash);
        out.server_signature = m_sync.sign(out.signed_message);
        const Signature& attest = out.server_signature;
        b.set(CF::handover, h, "received_by", text(out.received_by));
        b.set(CF::handover, h, "received_by_user", actor.id);
        b.set(CF::handover, h, "received_at", Timestamp{now});
        b.set(CF::handover, h, "received_rows_hash", Bytes{{hash.begin(), hash.end()}});
        b.set(CF::handover, h, "receipt_signature", Bytes{{attest.begin(), attest.end()}});
        b.status(CF::handover, h, "received");
    });
    out.handover = handover_detail(h);
    return out;
}

Anexo4Form Handovers::anexo4_form(const Id& h) {
    m_sync.bring_back(h); // an archived case opened again
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
            HandoverRow held = row_of(r, item, serial);
            Anexo4Row row;
            row.code = serial;
            row.description = std::move(held.description);
            row.reason = std::move(held.reason);
            row.defect = std::move(held.defect);
            row.observations = std::move(held.observations);
            row.date_ms = held.collected_at;
            row.customer_signed = r.get(CF::collected_item, item, "signature_ref") != nullptr;
            if (held.ot) {
                row.signed_rows_hash = hex_of(r.get(CF::work_order, *held.ot, "signed_rows_hash"));
            }
            row.receipt = std::move(held.receipt);
            row.receipt_note = std::move(held.receipt_note);
            if (auto by = collector_of(r, item)) {
                row.collected_by = names->label(*by);
            }
            form.rows.push_back(std::move(row));
        }
    });
    return form;
}

} // namespace otsync::server
