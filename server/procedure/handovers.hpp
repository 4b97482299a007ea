// The handovers of recovered equipment to the warehouse: the list, the detail, the clerk's
// receipt row by row, and the Anexo 4 form's data.
#pragma once

#include "procedure/part.hpp"

#include "otsync/crypto.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace otsync::server {

/// Which handovers a list holds.
struct HandoverFilter {
    std::string status; // "" = every handover not yet received (waiting for the warehouse)
};

/// What a list and a detail both say of a handover.
struct HandoverHeader {
    Id id;
    std::string status;
    std::string technician; // the name people read; "" when none
    std::string zone;
    std::int64_t date = 0;
};

/// One handover of a list.
struct HandoverSummary : HandoverHeader {
    std::int64_t age_hours = 0; // since `date`; 0 without a date
    std::size_t rows = 0;
};

struct HandoverList {
    std::vector<HandoverSummary> handovers; // oldest first: the longest waiting on top
};

/// One row of a handover: a collected item. Its description is the technician's, else the
/// inventory's model of the serial.
struct HandoverRow : RowRecord {
    Id item;
    std::string serial;
    bool voided = false;
    std::optional<Id> ot;
};

struct HandoverDetail : HandoverHeader {
    std::string received_by; // the clerk's name; "" while not received
    std::int64_t received_at = 0;
    std::string received_rows_hash; // hex; "" while not received
    std::vector<HandoverRow> rows;  // by serial: the Anexo 4's order
};

/// The warehouse's result for one row of the handover.
struct ReceiptRow {
    std::string serial; // as scanned or typed: trimmed and upper-cased here
    std::string result; // received | missing | damaged_on_arrival
    std::string note;   // required for damaged_on_arrival
};

/// The clerk's receipt: one row for every row of the handover, at most
/// ProcedureConfig::max_rows_per_receipt.
struct ReceiptCmd {
    std::vector<ReceiptRow> rows;
};

/// What a receipt answers: the handover as received, and the receipt the server signed.
struct HandoverReceipt {
    HandoverDetail handover;
    std::string received_by; // the clerk's name
    std::int64_t received_at = 0;
    std::string received_rows_hash; // hex BLAKE2b-256 of the canonical rows
    std::string signed_message;     // handover_receipt_message (otsync/crypto.hpp)
    Signature server_signature{};   // Ed25519 over signed_message
};

/// One row of the Anexo 4 form.
struct Anexo4Row {
    std::string code;        // the serial
    std::string description; // e.g. "ONT Huawei HG8245H"
    std::string reason;      // "migration" | "damaged" (printed as MIGRACIÓN / DAÑADO)
    std::string defect;
    std::string observations;
    std::int64_t date_ms = 0;     // when it was collected; 0 = blank
    bool customer_signed = false; // the customer signed the OT's rows on the handheld
    std::string signed_rows_hash; // hex, printed small under "Firma cliente" when signed
    std::string receipt;          // "" | received | missing | damaged_on_arrival
    std::string receipt_note;
    std::string collected_by; // who collected it; printed when not the form's technician
};

/// The Anexo 4 form's data ("Entrega de equipos de migración - dañados"); api/anexo4.hpp
/// prints it.
struct Anexo4Form {
    std::string handover_id; // hex
    std::int64_t date_ms = 0;
    std::string technician; // full name (or user name)
    std::string zone;
    std::string project = "BOOT";
    std::vector<Anexo4Row> rows;
    std::string delivered_by; // technician's name
    std::string received_by;  // warehouse clerk's name; "" while not received
    std::int64_t received_at_ms = 0;
    bool technician_signed = false;
    bool clerk_signed = false;
    std::string delivered_rows_hash; // hex, may be empty
    std::string received_rows_hash;  // hex, may be empty
    int tz_offset_minutes = -240;    // dates are printed in this offset (Bolivia, UTC-4)
};

class Handovers : public ProcedurePart {
public:
    using ProcedurePart::ProcedurePart;

    /// The handovers that pass `filter`, oldest first.
    HandoverList list_handovers(const HandoverFilter& filter);
    /// One handover and its rows; not_found when there is none.
    HandoverDetail handover_detail(const Id& handover);
    /// The warehouse clerk's receipt, row by row, signed: exactly one per handover.
    HandoverReceipt receive_handover(const User& actor, const Id& handover, const ReceiptCmd& cmd);
    /// The data of the handover's Anexo 4 form; not_found when there is no such handover.
    Anexo4Form anexo4_form(const Id& handover);
};

} // namespace otsync::server
