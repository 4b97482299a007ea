// The office routes: fees, the inventory import and contracts, reports, conflicts, users and
// devices; docs/api.md.
#include "api/office.hpp"

#include "api/render.hpp"

namespace otsync::server::api {

namespace {

constexpr std::int64_t k_day_ms = 86400000;

/// A local date YYYY-MM-DD of the query or body member `name` → ms of its local midnight.
std::int64_t local_date(const std::string& s, int tz_offset_minutes, const char* name) {
    const auto d = parse_local_date(s, tz_offset_minutes);
    if (!d) {
        throw Error(ErrorCode::invalid_value, std::string(name) + " is a date YYYY-MM-DD", name);
    }
    return *d;
}

// ---- fees and inventory -----------------------------------------------------------------

/// `at` (a date: the table in force on that day) and `products` (a comma list to quote).
FeeQuery fee_query(const Ctx& c, int tz_offset_minutes) {
    FeeQuery q;
    if (auto s = c.q("at"); !s.empty()) {
        q.at_ms = local_date(s, tz_offset_minutes, "at") + k_day_ms - 1;
    }
    if (auto products = c.q("products"); !products.empty()) {
        std::size_t start = 0;
        while (start <= products.size()) {
            const auto comma = products.find(',', start);
            q.quote.push_back(products.substr(start, comma - start));
            if (comma == std::string::npos) {
                break;
            }
            start = comma + 1;
        }
    }
    return q;
}

std::string fees_json(const FeeTable& t) {
    return json_object([&](JsonWriter& w) {
        member(w, "at", t.at);
        objects_member(w, "rows", t.rows, [&](const auto& row) {
            member(w, "product", row.product);
            member(w, "label", row.label);
            member(w, "centavos", row.centavos);
            member(w, "effective_from", row.effective_from);
        });
        objects_member(w, "history", t.history, [&](const auto& r) {
            member(w, "product", r.product);
            member(w, "centavos", r.centavos);
            member(w, "effective_from", r.effective_from);
            member(w, "set_at", r.set_at);
        });
        if (t.quote) {
            member(w, "quote", *t.quote);
        }
    });
}

PutFeeCmd put_fee_cmd(const std::string& body, int tz_offset_minutes) {
    JsonBody j(body);
    PutFeeCmd cmd;
    cmd.product = j.req_text("product", 64);
    cmd.centavos = *j.integer("centavos", 0, 100000000, true);
    const std::string from = j.req_text("effective_from", 10);
    j.done();
    cmd.effective_from = local_date(from, tz_offset_minutes, "effective_from");
    return cmd;
}

/// The import's counts, or a 400 that lists every problem by line; nothing was changed.
Reply import_reply(const ImportResult& result) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    if (result.problems.empty()) {
        member(w, "contracts", result.contracts.size());
        member(w, "equipment", result.items.size());
        w.EndObject();
        return json(sb.GetString());
    }
    w.Key("error");
    w.StartObject();
    w.Key("code");
    w.String("invalid_value");
    w.Key("message");
    str(w, "inventory not imported: " + std::to_string(result.problem_count()) +
               " problem(s); nothing was changed");
    objects_member(w, "problems", result.problems, [&](const auto& p) {
        member(w, "line", p.line);
        member(w, "message", p.message);
    });
    w.EndObject();
    w.EndObject();
    return json(sb.GetString(), http_status(ErrorCode::invalid_value));
}

std::string contract_json(const ContractDetail& d) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    member(w, "contract", d.contract.contract);
    member(w, "customer_name", d.contract.customer_name);
    member(w, "person_type", d.contract.person_type);
    member(w, "tax_id", d.contract.tax_id);
    member(w, "address", d.contract.address);
    objects_member(w, "equipment", d.equipment, [&](const auto& e) {
        member(w, "serial", e.serial);
        member(w, "kind", e.kind);
        member(w, "model", e.model);
        member(w, "description", e.description);
        member(w, "custody", e.custody);
        member(w, "held_by", e.held_by);
    });
    w.EndObject();
    return sb.GetString();
}

// ---- reports and conflicts --------------------------------------------------------------

std::string discrepancies_json(const DiscrepancyList& list) {
    return json_object([&](JsonWriter& w) {
        objects_member(w, "items", list.items, [&](const auto& d) {
            member(w, "ot", d.ot);
            member(w, "case", d.case_id);
            member(w, "contract", d.contract);
            member(w, "technician", d.technician);
            w.Key("line");
            write_line(w, d.line, *list.names);
        });
    });
}

std::string conflicts_json(const ConflictList& list) {
    return json_object([&](JsonWriter& w) {
        w.Key("conflicts");
        w.StartArray();
        for (const auto& c : list.conflicts) {
            w.StartObject();
            member(w, "id", c.id);
            member(w, "entity_type", to_string(c.entity_type));
            member(w, "entity", c.entity);
            member(w, "field", c.field);
            member(w, "label", c.label);
            member(w, "winner", c.winner);
            w.Key("values");
            w.StartArray();
            for (const auto& v : c.values) {
                w.StartObject();
                member(w, "value", v.value);
                member(w, "at", v.at);
                member(w, "replica", v.replica);
                w.EndObject();
            }
            w.EndArray();
            member(w, "status", c.status);
            member(w, "resolution", c.resolution);
            w.EndObject();
        }
        w.EndArray();
    });
}

ResolveConflictCmd resolve_conflict_cmd(const std::string& body) {
    JsonBody j(body);
    ResolveConflictCmd cmd;
    const std::string id = j.req_text("id", 32);
    cmd.resolution = j.req_text("resolution", 4000);
    j.done();
    cmd.conflict = parse_id(id, "conflict");
    return cmd;
}

// ---- people and devices -----------------------------------------------------------------

std::string users_json(const UserList& list) {
    return json_object([&](JsonWriter& w) {
        objects_member(w, "users", list.users, [&](const auto& u) {
            member(w, "id", u.id);
            member(w, "name", u.name);
            member(w, "full_name", u.full_name);
            member(w, "role", to_string(u.role));
            member(w, "role_label", label_es(u.role));
            member(w, "unit", u.unit);
            member(w, "disabled", u.disabled);
        });
    });
}

} // namespace

IndicatorQuery indicator_query(const std::map<std::string, std::string>& query,
                               int tz_offset_minutes) {
    const auto member = [&](const char* name) {
        const auto it = query.find(name);
        return it == query.end() ? std::string() : it->second;
    };
    const auto from = parse_local_date(member("from"), tz_offset_minutes);
    const auto to = parse_local_date(member("to"), tz_offset_minutes);
    if (!from) {
        throw Error(ErrorCode::invalid_value, "from is a date YYYY-MM-DD", "from");
    }
    if (!to) {
        throw Error(ErrorCode::invalid_value, "to is a date YYYY-MM-DD", "to");
    }
    if (*to < *from) {
        throw Error(ErrorCode::invalid_value, "to is before from", "to");
    }
    IndicatorQuery q;
    q.tz_offset_minutes = tz_offset_minutes;
    q.from_ms = *from;
    q.to_ms = *to + k_day_ms; // the whole last day
    q.unit = member("unit");
    return q;
}

std::string indicators_json(const Indicators& ind) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    auto figure = [&](const char* name, int n, double pct, double target, bool pass,
                      auto&& counts) {
        w.Key(name);
        w.StartObject();
        member(w, "count", n);
        member(w, "total", ind.total);
        w.Key("percent");
        w.Double(pct);
        w.Key("target_above");
        w.Double(target);
        member(w, "pass", pass);
        w.Key("verdict");
        w.String(ind.total == 0 ? "sin datos" : pass ? "Aceptado" : "Observado");
        w.Key("cases");
        w.StartArray();
        for (const auto& c : ind.cases) {
            if (counts(c)) {
                str(w, c.id.hex());
            }
        }
        w.EndArray();
        w.EndObject();
    };
    w.StartObject();
    member(w, "from", ind.query.from_ms);
    member(w, "to", ind.query.to_ms);
    member(w, "unit", ind.query.unit);
    member(w, "total", ind.total);
    member(w, "pending", ind.pending);
    figure("efficacy", ind.effective, ind.efficacy_pct, k_efficacy_target, ind.efficacy_pass,
           [](const CaseFigure& c) { return c.effective; });
    figure("timeliness", ind.timely, ind.timeliness_pct, k_timeliness_target, ind.timeliness_pass,
           [](const CaseFigure& c) { return c.timely; });
    objects_member(w, "days", ind.days, [&](const auto& d) {
        member(w, "date", d.date);
        member(w, "total", d.total);
        member(w, "effective", d.effective);
        member(w, "timely", d.timely);
    });
    objects_member(w, "cases", ind.cases, [&](const auto& c) {
        member(w, "id", c.id);
        member(w, "contract", c.contract);
        member(w, "customer_name", c.customer_name);
        member(w, "modality", c.modality);
        member(w, "unit", c.unit);
        member(w, "status", c.status);
        member(w, "opened_at", c.opened_at);
        member(w, "first_final_action", c.first_final_action);
        member(w, "effective", c.effective);
        member(w, "timely", c.timely);
        member(w, "why_not_effective", c.why_not_effective);
        member(w, "why_not_timely", c.why_not_timely);
        member(w, "not_effective", c.not_effective);
        member(w, "not_timely", c.not_timely);
    });
    w.EndObject();
    return std::string(sb.GetString(), sb.GetSize());
}

std::string indicators_csv(const Indicators& ind) {
    auto quote = [](const std::string& s) {
        if (s.find_first_of(",\"\n\r") == std::string::npos) {
            return s;
        }
        std::string out = "\"";
        for (char ch : s) {
            out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        }
        return out + "\"";
    };
    std::string out = "date,case,contract,customer_name,modality,unit,status,opened_at,"
                      "first_final_action,effective,timely,why_not_effective,why_not_timely\n";
    for (const auto& c : ind.cases) {
        out += format_local_date(c.opened_at, ind.query.tz_offset_minutes) + "," + c.id.hex() +
               "," + quote(c.contract) + "," + quote(c.customer_name) + "," +
               std::to_string(c.modality) + "," + quote(c.unit) + "," + c.status + "," +
               std::to_string(c.opened_at) + "," +
               (c.first_final_action ? std::to_string(*c.first_final_action) : std::string()) +
               "," + (c.effective ? "yes" : "no") + "," + (c.timely ? "yes" : "no") + "," +
               quote(c.why_not_effective) + "," + quote(c.why_not_timely) + "\n";
    }
    return out;
}

std::string devices_json(const DeviceList& list) {
    return json_object([&](JsonWriter& w) {
        objects_member(w, "devices", list.devices, [&](const auto& d) {
            member(w, "replica", d.replica);
            member(w, "user", d.user);
            member(w, "label", d.label);
            member(w, "status", d.status == DeviceStatus::active ? "active" : "revoked");
            member(w, "last_seen", d.last_seen);
            member(w, "cursor", d.cursor);
            member(w, "server_seq", list.server_seq);
            member(w, "behind", d.behind);
            member(w, "enrolled_at", d.enrolled_at);
        });
    });
}

void add_office_routes(std::vector<Route>& out) {
    using P = Procedure;
    out.insert(
        out.end(),
        {
            // ---- fees and inventory ----
            {"GET", "/v1/fees", k_office,
             [](P& p, Ctx& c) {
                 const auto q = fee_query(c, p.config().tz_offset_minutes);
                 return json(fees_json(p.office().fees(q)));
             }},
            {"POST", "/v1/fees", k_supervisor,
             [](P& p, Ctx& c) {
                 p.office().put_fee(c.user, put_fee_cmd(c.req.body, p.config().tz_offset_minutes));
                 return json(fees_json(p.office().fees({})), 201);
             }},
            {"POST", "/v1/inventory/import", k_dispatch,
             [](P& p, Ctx& c) { return import_reply(p.office().import_inventory(c.req.body)); }},
            {"GET", "/v1/inventory/contracts/{id}", k_office,
             [](P& p, Ctx& c) {
                 return json(contract_json(p.office().contract_detail(c.params[0])));
             }},
            // ---- reports and conflicts ----
            {"GET", "/v1/reports/indicators", k_reports,
             [](P& p, Ctx& c) {
                 const auto ind =
                     p.office().indicators(indicator_query(c.query, p.config().tz_offset_minutes));
                 return c.q("format") == "csv"
                            ? Reply{200, "text/csv; charset=utf-8", indicators_csv(ind)}
                            : json(indicators_json(ind));
             }},
            {"GET", "/v1/reports/discrepancies", k_warehouse_read,
             [](P& p, Ctx& c) {
                 DiscrepancyFilter filter;
                 filter.all = c.q("all") == "1";
                 return json(discrepancies_json(p.office().discrepancies(filter)));
             }},
            {"GET", "/v1/conflicts", k_warehouse_read,
             [](P& p, Ctx&) { return json(conflicts_json(p.office().conflicts())); }},
            {"POST", "/v1/conflicts/resolve", k_warehouse_read,
             [](P& p, Ctx& c) {
                 p.office().resolve_conflict(c.user, resolve_conflict_cmd(c.req.body));
                 return json(conflicts_json(p.office().conflicts()));
             }},
            // ---- people and devices ----
            {"GET", "/v1/users", k_office,
             [](P& p, Ctx&) { return json(users_json(p.office().users())); }},
            {"GET", "/v1/devices", k_supervisor,
             [](P& p, Ctx&) { return json(devices_json(p.office().devices())); }},
            {"GET", "/v1/server/state", k_supervisor,
             [](P& p, Ctx&) {
                 const auto s = p.office().server_state();
                 return json(json_object([&](JsonWriter& w) {
                     member(w, "applied_seq", s.applied_seq);
                     member(w, "last_seq", s.last_seq);
                     member(w, "digest", s.digest);
                     member(w, "entities", static_cast<std::uint64_t>(s.entities));
                 }));
             }},
        });
}

} // namespace otsync::server::api
