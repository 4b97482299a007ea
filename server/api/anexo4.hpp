// The Anexo 4 form ("Entrega de equipos de migración - dañados") as a print-ready HTML
// page laid out like COMTECO's paper form: header (date, technician, zone, project),
// the rows (code, description, reason migration/damaged, defect, observations, date,
// customer signature), then "Entregado por" (the technician) and "Recibido por" (the
// warehouse clerk) with their signatures. Pure: takes the data (procedure/handovers.hpp's
// Anexo4Form), returns the page.
#pragma once

#include "procedure/handovers.hpp"

#include <string>

namespace otsync::server {

/// The whole HTML document (UTF-8, lang="es"), every value HTML-escaped, with print CSS
/// (A4 landscape, the table repeats its header on each page). At least 10 row lines are
/// printed, blank ones after the data, as the paper form has.
std::string render_anexo4(const Anexo4Form& form);

} // namespace otsync::server
