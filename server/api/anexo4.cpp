// The Anexo 4 print page: one self-contained HTML document (inline CSS, no scripts or
// outside resources needed) laid out like COMTECO's paper form, so the warehouse can print
// it from a browser or keep it as the custody record. Dates are read in the form's fixed
// offset (dates.hpp): no locale or time zone database is involved, so the page is the same
// on every server.
#include "api/anexo4.hpp"

#include "procedure/dates.hpp"

#include <algorithm>
#include <string_view>

namespace otsync::server {

namespace {

constexpr std::size_t k_min_lines = 10; // the paper form's row lines
// Years 1 to 9999: wider is a bad timestamp, printed as "?" rather than a strange date.
constexpr std::int64_t k_min_ms = -62135596800000;
constexpr std::int64_t k_max_ms = 253402300799999;

/// Appends `s` with the five HTML-significant characters escaped; safe in text and in
/// quoted attribute values.
void escape_to(std::string& out, std::string_view s) {
    for (const char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
}

std::string escaped(std::string_view s) {
    std::string out;
    escape_to(out, s);
    return out;
}

std::string two(int v) {
    return (v < 10 ? "0" : "") + std::to_string(v);
}

std::string four(std::int64_t v) {
    std::string s = std::to_string(v);
    return std::string(s.size() < 4 ? 4 - s.size() : 0, '0') + s;
}

/// dd/mm/yyyy in the offset; "" for 0 (not set), "?" for a timestamp out of range.
std::string date_text(std::int64_t ms, int offset_minutes) {
    if (ms == 0) {
        return {};
    }
    if (ms < k_min_ms || ms > k_max_ms) {
        return "?";
    }
    const std::chrono::year_month_day d = local_time(ms, offset_minutes).value().date;
    return two(static_cast<int>(static_cast<unsigned>(d.day()))) + "/" +
           two(static_cast<int>(static_cast<unsigned>(d.month()))) + "/" +
           four(static_cast<int>(d.year()));
}

/// dd/mm/yyyy HH:MM in the offset.
std::string date_time_text(std::int64_t ms, int offset_minutes) {
    const std::string date = date_text(ms, offset_minutes);
    if (date.empty() || date == "?") {
        return date;
    }
    const LocalTime t = local_time(ms, offset_minutes).value();
    return date + " " + two(t.hour) + ":" + two(t.minute);
}

/// "UTC-04:00" for the footnote, so a reader knows which clock the dates are on.
std::string offset_text(int offset_minutes) {
    const int a = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    return std::string("UTC") + (offset_minutes < 0 ? "-" : "+") + two(a / 60) + ":" + two(a % 60);
}

std::string reason_text(std::string_view reason) {
    if (reason == "migration") {
        return "MIGRACIÓN";
    }
    if (reason == "damaged") {
        return "DAÑADO";
    }
    return escaped(reason);
}

std::string receipt_text(std::string_view receipt) {
    if (receipt == "received") {
        return "Recibido";
    }
    if (receipt == "missing") {
        return "Faltante";
    }
    if (receipt == "damaged_on_arrival") {
        return "Dañado al llegar";
    }
    return escaped(receipt);
}

/// The row hash as custody proof: small monospace, broken anywhere so it fits a cell.
std::string hash_html(std::string_view label, std::string_view hex) {
    if (hex.empty()) {
        return {};
    }
    return "<div class=\"hash\">" + escaped(label) + escaped(hex) + "</div>";
}

constexpr std::string_view k_style = R"css(
@page { size: A4 landscape; margin: 12mm; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: Arial, Helvetica, sans-serif; font-size: 9pt; color: #000; margin: 12mm; }
.toolbar { margin-bottom: 6mm; }
.toolbar button { font-size: 11pt; padding: 4px 16px; }
table { border-collapse: collapse; width: 100%; }
.head td { border: 1px solid #000; padding: 3px 6px; vertical-align: middle; }
.brand { width: 22%; font-weight: bold; text-align: center; }
.brand .annex { font-size: 8pt; font-weight: normal; margin-top: 2px; }
.title { text-align: center; font-size: 13pt; font-weight: bold; }
.label { width: 9%; font-weight: bold; font-size: 8pt; background: #eee; }
.value { width: 17%; }
.rows { table-layout: fixed; margin-top: 4mm; }
.rows th { border: 1px solid #000; background: #eee; font-size: 8pt; padding: 3px;
           text-align: center; vertical-align: middle; }
.rows td { border: 1px solid #000; padding: 2px 4px; height: 9mm; vertical-align: top;
           white-space: pre-line; overflow-wrap: anywhere; }
.rows td.code { font-family: "DejaVu Sans Mono", Consolas, monospace; }
.rows td.center { text-align: center; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
.hash { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 6pt;
        word-break: break-all; white-space: normal; color: #333; }
.signed { display: inline-block; border: 1.5px solid #000; border-radius: 3px;
          padding: 0 4px; font-weight: bold; font-size: 8pt; }
.note { font-size: 7.5pt; }
.total { margin-top: 2mm; font-size: 8pt; }
.signatures { display: flex; gap: 20mm; margin-top: 6mm; break-inside: avoid;
              page-break-inside: avoid; }
.sig { flex: 1; border: 1px solid #000; padding: 3mm 4mm; }
.sig .who { font-weight: bold; }
.sig .space { height: 14mm; display: flex; align-items: center; justify-content: center; }
.sig .name { border-top: 1px solid #000; text-align: center; min-height: 5mm; padding-top: 1mm; }
.sig .role { text-align: center; font-weight: bold; font-size: 8pt; }
.sig .when { text-align: center; font-size: 8pt; }
.foot { margin-top: 3mm; font-size: 7pt; color: #333; }
@media print {
  body { margin: 0; }
  .toolbar { display: none; }
}
)css";

} // namespace

std::string render_anexo4(const Anexo4Form& form) {
    const int tz = form.tz_offset_minutes;
    const bool received = !form.received_by.empty() || form.received_at_ms != 0 ||
                          std::any_of(form.rows.begin(), form.rows.end(),
                                      [](const Anexo4Row& r) { return !r.receipt.empty(); });
    const std::string date = date_text(form.date_ms, tz);

    std::string h;
    h.reserve(8192 + form.rows.size() * 512);
    h += "<!DOCTYPE html>\n<html lang=\"es\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>Anexo 4 - Entrega de equipos";
    if (!date.empty()) {
        h += " - " + date;
    }
    if (!form.technician.empty()) {
        h += " - " + escaped(form.technician);
    }
    h += "</title>\n<style>";
    h += k_style;
    h += "</style>\n</head>\n<body>\n";
    // The button is a convenience; the browser's own print works the same without script.
    h += "<div class=\"toolbar\"><button type=\"button\" onclick=\"window.print()\">Imprimir"
         "</button></div>\n";

    // Header: brand, title, and the form's fields.
    h += "<table class=\"head\">\n<tr><td class=\"brand\" rowspan=\"2\">COMTECO · Proyecto BOOT"
         "<div class=\"annex\">ANEXO 4</div></td>"
         "<td class=\"title\" rowspan=\"2\">ENTREGA DE EQUIPOS DE MIGRACIÓN - DAÑADOS</td>"
         "<td class=\"label\">FECHA</td><td class=\"value\">";
    h += date;
    h += "</td></tr>\n<tr><td class=\"label\">PROYECTO</td><td class=\"value\">";
    escape_to(h, form.project);
    h += "</td></tr>\n<tr><td class=\"label\">TÉCNICO</td><td>";
    escape_to(h, form.technician);
    h += "</td><td class=\"label\">ZONA</td><td class=\"value\">";
    escape_to(h, form.zone);
    h += "</td></tr>\n</table>\n";

    // The rows.
    h += "<table class=\"rows\">\n<thead><tr>"
         "<th style=\"width:13%\">CÓDIGO</th>"
         "<th style=\"width:17%\">DESCRIPCIÓN</th>"
         "<th style=\"width:10%\">MOTIVO<br>(MIGRACIÓN/<wbr>DAÑADO)</th>"
         "<th style=\"width:11%\">DEFECTO</th>"
         "<th>OBSERVACIONES</th>"
         "<th style=\"width:7.5%\">FECHA</th>"
         "<th style=\"width:12%\">FIRMA CLIENTE</th>";
    if (received) {
        h += "<th style=\"width:12%\">RECEPCIÓN</th>";
    }
    h += "</tr></thead>\n<tbody>\n";
    for (const auto& r : form.rows) {
        h += "<tr><td class=\"code\">";
        escape_to(h, r.code);
        h += "</td><td>";
        escape_to(h, r.description);
        h += "</td><td class=\"center\">";
        h += reason_text(r.reason);
        h += "</td><td>";
        escape_to(h, r.defect);
        h += "</td><td>";
        escape_to(h, r.observations);
        if (!r.collected_by.empty() && r.collected_by != form.technician) {
            h += "<div class=\"note\">Recogido por ";
            escape_to(h, r.collected_by);
            h += "</div>";
        }
        h += "</td><td class=\"center\">";
        h += date_text(r.date_ms, tz);
        h += "</td><td class=\"center\">";
        if (r.customer_signed) {
            h += "<span class=\"signed\">Firmado</span>";
            h += hash_html("", r.signed_rows_hash);
        }
        h += "</td>";
        if (received) {
            h += "<td>";
            h += receipt_text(r.receipt);
            if (!r.receipt_note.empty()) {
                h += "<div class=\"note\">";
                escape_to(h, r.receipt_note);
                h += "</div>";
            }
            h += "</td>";
        }
        h += "</tr>\n";
    }
    const std::size_t columns = received ? 8 : 7;
    for (std::size_t i = form.rows.size(); i < k_min_lines; ++i) {
        h += "<tr class=\"blank\">";
        for (std::size_t c = 0; c < columns; ++c) {
            h += "<td></td>";
        }
        h += "</tr>\n";
    }
    h += "</tbody>\n</table>\n";
    h += "<div class=\"total\">Total de equipos: " + std::to_string(form.rows.size()) + "</div>\n";

    // Signatures: delivered by the technician, received by the warehouse clerk.
    h += "<div class=\"signatures\">\n<div class=\"sig\"><div class=\"who\">Entregado por:</div>"
         "<div class=\"space\">";
    if (form.technician_signed) {
        h += "<span class=\"signed\">Firmado</span>";
    }
    h += "</div><div class=\"name\">";
    escape_to(h, form.delivered_by);
    h += "</div><div class=\"role\">TÉCNICO</div>";
    h += hash_html("Huella de filas entregadas: ", form.delivered_rows_hash);
    h += "</div>\n<div class=\"sig\"><div class=\"who\">Recibido por:</div><div class=\"space\">";
    if (form.clerk_signed) {
        h += "<span class=\"signed\">Firmado</span>";
    }
    h += "</div><div class=\"name\">";
    escape_to(h, form.received_by);
    h += "</div><div class=\"role\">ENCARGADA DE ALMACÉN</div>";
    if (form.received_at_ms != 0) {
        h += "<div class=\"when\">" + date_time_text(form.received_at_ms, tz) + "</div>";
    }
    h += hash_html("Huella de filas recibidas: ", form.received_rows_hash);
    h += "</div>\n</div>\n";

    h += "<div class=\"foot\">";
    if (!form.handover_id.empty()) {
        h += "Entrega ";
        escape_to(h, form.handover_id);
        h += " · ";
    }
    h += "Fechas en hora local (" + offset_text(tz) + ")</div>\n</body>\n</html>\n";
    return h;
}

} // namespace otsync::server
