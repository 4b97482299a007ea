// The Anexo 4 form ("Entrega de equipos de migración - dañados") as a print-ready HTML
// page laid out like COMTECO's paper form: header (date, technician, zone, project),
// the rows (code, description, reason migration/damaged, defect, observations, date,
// customer signature), then "Entregado por" (the technician) and "Recibido por" (the
// warehouse clerk) with their signatures. Pure: takes the data, returns the page.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace otsync::server {

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

/// The whole HTML document (UTF-8, lang="es"), every value HTML-escaped, with print CSS
/// (A4 landscape, the table repeats its header on each page). At least 10 row lines are
/// printed, blank ones after the data, as the paper form has.
std::string render_anexo4(const Anexo4Form& form);

} // namespace otsync::server
