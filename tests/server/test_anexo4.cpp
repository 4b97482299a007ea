// The Anexo 4 print page: every value present and escaped, the paper form's labels, blank
// lines up to ten, dates in the form's offset (near midnight UTC, so the offset shows), and
// the reception column only once the warehouse has received the handover.
#include "api/anexo4.hpp"

#include <doctest/doctest.h>

#include <string_view>

using namespace otsync::server;

namespace {

// 2025-08-09 02:30 UTC: still the 8th at 22:30 in Bolivia (UTC-4).
constexpr std::int64_t k_handover_at = 1754706600000;
// 2024-03-01 03:00 UTC: the leap day 29/02/2024 at 23:00 in Bolivia.
constexpr std::int64_t k_leap_night = 1709262000000;
// 2025-08-08 14:00 UTC.
constexpr std::int64_t k_afternoon = 1754661600000;

std::size_t count(std::string_view hay, std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t at = hay.find(needle); at != std::string_view::npos;
         at = hay.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

bool has(std::string_view hay, std::string_view needle) {
    return hay.find(needle) != std::string_view::npos;
}

Anexo4Form delivered_form() {
    Anexo4Form f;
    f.handover_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    f.date_ms = k_handover_at;
    f.technician = "Juan Mamani Quispe";
    f.zone = "Zona Sud";
    f.delivered_by = "Juan Mamani Quispe";
    f.technician_signed = true;
    f.delivered_rows_hash = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    Anexo4Row ont;
    ont.code = "HWTC1234ABCD";
    ont.description = "ONT Huawei HG8245H";
    ont.reason = "migration";
    ont.observations = "Cliente migra a fibra";
    ont.date_ms = k_leap_night;
    ont.customer_signed = true;
    ont.signed_rows_hash = "feedface00112233445566778899aabbccddeeff00112233445566778899aabb";
    f.rows.push_back(ont);

    Anexo4Row modem;
    modem.code = "ZXDSL-831-0042";
    modem.description = "Módem ADSL ZTE \"831\"";
    modem.reason = "damaged";
    modem.defect = "No enciende";
    modem.observations = "<script>alert('x')</script> & caja rota";
    modem.date_ms = k_afternoon;
    f.rows.push_back(modem);
    return f;
}

} // namespace

TEST_CASE("a delivered handover prints every value, escaped, with the form's labels") {
    const Anexo4Form f = delivered_form();
    const std::string html = render_anexo4(f);

    CHECK(html.starts_with("<!DOCTYPE html>"));
    CHECK(has(html, "<html lang=\"es\">"));
    CHECK(has(html, "<meta charset=\"utf-8\">"));
    for (const char* label :
         {"ENTREGA DE EQUIPOS DE MIGRACIÓN - DAÑADOS", "COMTECO · Proyecto BOOT", ">FECHA<",
          ">TÉCNICO<", ">ZONA<", ">PROYECTO<", ">CÓDIGO<", ">DESCRIPCIÓN<",
          ">MOTIVO<br>(MIGRACIÓN/<wbr>DAÑADO)<", ">DEFECTO<", ">OBSERVACIONES<", ">FIRMA CLIENTE<",
          "Entregado por:", "Recibido por:", ">TÉCNICO<", ">ENCARGADA DE ALMACÉN<"}) {
        CHECK_MESSAGE(has(html, label), label);
    }

    // The values, escaped.
    CHECK(has(html, "HWTC1234ABCD"));
    CHECK(has(html, "ONT Huawei HG8245H"));
    CHECK(has(html, ">MIGRACIÓN<"));
    CHECK(has(html, "Cliente migra a fibra"));
    CHECK(has(html, "ZXDSL-831-0042"));
    CHECK(has(html, "Módem ADSL ZTE &quot;831&quot;"));
    CHECK(has(html, ">DAÑADO<"));
    CHECK(has(html, "No enciende"));
    CHECK(has(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; caja rota"));
    CHECK_FALSE(has(html, "<script"));
    CHECK_FALSE(has(html, "& caja"));
    CHECK(has(html, "Zona Sud"));
    CHECK(has(html, ">BOOT<"));
    CHECK(has(html, f.handover_id));

    // Both names: the technician in the header and as "Entregado por".
    CHECK(count(html, "Juan Mamani Quispe") >= 3); // <title>, header, signature box

    // Signed marks and the custody hashes.
    CHECK(count(html, ">Firmado<") == 2); // the customer's row and the technician
    CHECK(has(html, f.rows[0].signed_rows_hash));
    CHECK(has(html, "Huella de filas entregadas: " + f.delivered_rows_hash));
    CHECK_FALSE(has(html, "Huella de filas recibidas"));

    // Not received yet: no reception column, no clerk name.
    CHECK_FALSE(has(html, "RECEPCIÓN"));
    CHECK_FALSE(has(html, "Recibido<"));

    // Two data rows, then blank lines up to ten.
    CHECK(count(html, "<tr class=\"blank\">") == 8);
    CHECK(count(html, "<tr class=\"blank\"><td></td><td></td><td></td><td></td><td></td>"
                      "<td></td><td></td></tr>") == 8);
}

TEST_CASE("dates print as dd/mm/yyyy in the form's offset, not in UTC") {
    Anexo4Form f = delivered_form();
    const std::string bolivia = render_anexo4(f);
    CHECK(has(bolivia, ">08/08/2025<")); // header: 02:30 UTC on the 9th is the 8th in La Paz
    CHECK_FALSE(has(bolivia, "09/08/2025"));
    CHECK(has(bolivia, ">29/02/2024<")); // a row collected late on the leap day
    CHECK(has(bolivia, ">08/08/2025<"));
    CHECK(has(bolivia, "UTC-04:00"));

    f.tz_offset_minutes = 0;
    const std::string utc = render_anexo4(f);
    CHECK(has(utc, ">09/08/2025<"));
    CHECK(has(utc, ">01/03/2024<"));
    CHECK_FALSE(has(utc, "29/02/2024"));

    f.tz_offset_minutes = 330; // +05:30 moves 14:00 UTC to 19:30 the same day
    f.received_by = "Rosa Flores";
    f.received_at_ms = k_afternoon;
    CHECK(has(render_anexo4(f), "08/08/2025 19:30"));

    // A row without a date leaves the cell blank; the epoch's first millisecond is still
    // 1969 in Bolivia (the negative-day path of the conversion).
    Anexo4Form g;
    g.date_ms = 1;
    Anexo4Row undated;
    undated.code = "X1";
    g.rows.push_back(undated);
    const std::string html = render_anexo4(g);
    CHECK(has(html, ">31/12/1969<"));
    CHECK(has(html, "<tr><td class=\"code\">X1</td><td></td><td class=\"center\"></td><td></td>"
                    "<td></td><td class=\"center\"></td><td class=\"center\"></td></tr>"));
}

TEST_CASE("a received handover adds the reception column, the clerk and the received hash") {
    Anexo4Form f = delivered_form();
    f.received_by = "Rosa Flores <Almacén>";
    f.received_at_ms = k_handover_at + 3600000; // 23:30 on the 8th in La Paz
    f.clerk_signed = true;
    f.received_rows_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    f.rows[0].receipt = "received";
    f.rows[1].receipt = "damaged_on_arrival";
    f.rows[1].receipt_note = "Llegó con la carcasa \"partida\"";
    const std::string html = render_anexo4(f);

    CHECK(has(html, ">RECEPCIÓN<"));
    CHECK(has(html, ">Recibido<"));
    CHECK(has(html, "Dañado al llegar"));
    CHECK(has(html, "Llegó con la carcasa &quot;partida&quot;"));
    CHECK(has(html, "Rosa Flores &lt;Almacén&gt;"));
    CHECK(has(html, "08/08/2025 23:30"));
    CHECK(count(html, ">Firmado<") == 3);
    CHECK(has(html, "Huella de filas recibidas: " + f.received_rows_hash));
    // The blank lines have the extra cell too.
    CHECK(count(html, "<tr class=\"blank\"><td></td><td></td><td></td><td></td><td></td>"
                      "<td></td><td></td><td></td></tr>") == 8);

    Anexo4Row missing;
    missing.code = "LOST-1";
    missing.reason = "migration";
    missing.receipt = "missing";
    f.rows.push_back(missing);
    CHECK(has(render_anexo4(f), ">Faltante<"));
}

TEST_CASE("print layout: A4 landscape, repeated header, the button hidden; no blank lines "
          "past ten rows") {
    Anexo4Form f;
    for (int i = 0; i < 12; ++i) {
        Anexo4Row r;
        r.code = "SERIAL-" + std::to_string(i);
        r.reason = "migration";
        f.rows.push_back(r);
    }
    const std::string html = render_anexo4(f);
    CHECK(has(html, "@page { size: A4 landscape; margin: 12mm; }"));
    CHECK(has(html, "thead { display: table-header-group; }"));
    CHECK(has(html, "@media print"));
    CHECK(has(html, ">Imprimir<"));
    CHECK(count(html, "<tr class=\"blank\">") == 0);
    CHECK(count(html, ">MIGRACIÓN<") == 12);
    CHECK(has(html, "SERIAL-11"));
    // Self-contained: nothing fetched from elsewhere.
    CHECK_FALSE(has(html, "http://"));
    CHECK_FALSE(has(html, "https://"));
    CHECK_FALSE(has(html, "<link"));
    CHECK_FALSE(has(html, "src="));

    // An empty form still prints ten lines to fill by hand.
    CHECK(count(render_anexo4(Anexo4Form{}), "<tr class=\"blank\">") == 10);
}

TEST_CASE("a row collected by someone other than the form's technician says who collected it") {
    Anexo4Form f = delivered_form();
    f.rows[0].collected_by = "Juan Mamani Quispe"; // the form's technician: nothing added
    f.rows[1].collected_by = "Pedro Quispe";
    const std::string html = render_anexo4(f);
    CHECK(count(html, "Recogido por") == 1);
    CHECK(has(html, "Recogido por Pedro Quispe"));
}
