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
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("at");
    w.Int64(t.at);
    w.Key("rows");
    w.StartArray();
    for (const auto& row : t.rows) {
        w.StartObject();
        w.Key("product");
        str(w, row.product);
        w.Key("label");
        str(w, row.label);
        w.Key("centavos");
        w.Int64(row.centavos);
        w.Key("effective_from");
        w.Int64(row.effective_from);
        w.EndObject();
    }
    w.EndArray();
    w.Key("history");
    w.StartArray();
    for (const auto& r : t.history) {
        w.StartObject();
        w.Key("product");
        str(w, r.product);
        w.Key("centavos");
        w.Int64(r.centavos);
        w.Key("effective_from");
        w.Int64(r.effective_from);
        w.Key("set_at");
        w.Int64(r.set_at);
        w.EndObject();
    }
    w.EndArray();
    if (t.quote) {
        w.Key("quote");
        w.Int64(*t.quote);
    }
    w.EndObject();
    return sb.GetString();
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
        w.Key("contracts");
        w.Uint64(result.contracts.size());
        w.Key("equipment");
        w.Uint64(result.items.size());
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
    w.Key("problems");
    w.StartArray();
    for (const auto& p : result.problems) {
        w.StartObject();
        w.Key("line");
        w.Uint64(p.line);
        w.Key("message");
        str(w, p.message);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndObject();
    return json(sb.GetString(), http_status(ErrorCode::invalid_value));
}

std::string contract_json(const ContractDetail& d) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("contract");
    str(w, d.contract.contract);
    w.Key("customer_name");
    str(w, d.contract.customer_name);
    w.Key("person_type");
    str(w, d.contract.person_type);
    w.Key("tax_id");
    str(w, d.contract.tax_id);
    w.Key("address");
    str(w, d.contract.address);
    w.Key("equipment");
    w.StartArray();
    for (const auto& e : d.equipment) {
        w.StartObject();
        w.Key("serial");
        str(w, e.serial);
        w.Key("kind");
        str(w, e.kind);
        w.Key("model");
        str(w, e.model);
        w.Key("description");
        str(w, e.description);
        w.Key("custody");
        str(w, e.custody);
        w.Key("held_by");
        if (e.held_by) {
            str(w, *e.held_by);
        } else {
            w.Null();
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

// ---- reports and conflicts --------------------------------------------------------------

std::string discrepancies_json(const DiscrepancyList& list) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("items");
    w.StartArray();
    for (const auto& d : list.items) {
        w.StartObject();
        w.Key("ot");
        str(w, d.ot.hex());
        w.Key("case");
        str(w, d.case_id.hex());
        w.Key("contract");
        str(w, d.contract);
        w.Key("technician");
        str(w, d.technician);
        w.Key("line");
        write_line(w, d.line, *list.names);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
}

std::string conflicts_json(const ConflictList& list) {
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("conflicts");
    w.StartArray();
    for (const auto& c : list.conflicts) {
        w.StartObject();
        w.Key("id");
        str(w, c.id.hex());
        w.Key("entity_type");
        str(w, to_string(c.entity_type));
        w.Key("entity");
        str(w, c.entity.hex());
        w.Key("field");
        str(w, c.field);
        w.Key("label");
        str(w, c.label);
        w.Key("winner");
        str(w, c.winner);
        w.Key("values");
        w.StartArray();
        for (const auto& v : c.values) {
            w.StartObject();
            w.Key("value");
            str(w, v.value);
            w.Key("at");
            w.Int64(v.at);
            w.Key("replica");
            w.Uint64(v.replica);
            w.EndObject();
        }
        w.EndArray();
        w.Key("status");
        str(w, c.status);
        w.Key("resolution");
        str(w, c.resolution);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
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
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("users");
    w.StartArray();
    for (const auto& u : list.users) {
        w.StartObject();
        w.Key("id");
        str(w, u.id.hex());
        w.Key("name");
        str(w, u.name);
        w.Key("full_name");
        str(w, u.full_name);
        w.Key("role");
        str(w, to_string(u.role));
        w.Key("role_label");
        str(w, label_es(u.role));
        w.Key("unit");
        str(w, u.unit);
        w.Key("disabled");
        w.Bool(u.disabled);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
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
                      auto&& member) {
        w.Key(name);
        w.StartObject();
        w.Key("count");
        w.Int(n);
        w.Key("total");
        w.Int(ind.total);
        w.Key("percent");
        w.Double(pct);
        w.Key("target_above");
        w.Double(target);
        w.Key("pass");
        w.Bool(pass);
        w.Key("verdict");
        w.String(ind.total == 0 ? "sin datos" : pass ? "Aceptado" : "Observado");
        w.Key("cases");
        w.StartArray();
        for (const auto& c : ind.cases) {
            if (member(c)) {
                str(w, c.id.hex());
            }
        }
        w.EndArray();
        w.EndObject();
    };
    w.StartObject();
    w.Key("from");
    w.Int64(ind.query.from_ms);
    w.Key("to");
    w.Int64(ind.query.to_ms);
    w.Key("unit");
    str(w, ind.query.unit);
    w.Key("total");
    w.Int(ind.total);
    w.Key("pending");
    w.Int(ind.pending);
    figure("efficacy", ind.effective, ind.efficacy_pct, k_efficacy_target, ind.efficacy_pass,
           [](const CaseFigure& c) { return c.effective; });
    figure("timeliness", ind.timely, ind.timeliness_pct, k_timeliness_target, ind.timeliness_pass,
           [](const CaseFigure& c) { return c.timely; });
    w.Key("days");
    w.StartArray();
    for (const auto& d : ind.days) {
        w.StartObject();
        w.Key("date");
        str(w, d.date);
        w.Key("total");
        w.Int(d.total);
        w.Key("effective");
        w.Int(d.effective);
        w.Key("timely");
        w.Int(d.timely);
        w.EndObject();
    }
    w.EndArray();
    w.Key("cases");
    w.StartArray();
    for (const auto& c : ind.cases) {
        w.StartObject();
        w.Key("id");
        str(w, c.id.hex());
        w.Key("contract");
        str(w, c.contract);
        w.Key("customer_name");
        str(w, c.customer_name);
        w.Key("modality");
        w.Int(c.modality);
        w.Key("unit");
        str(w, c.unit);
        w.Key("status");
        str(w, c.status);
        w.Key("opened_at");
        w.Int64(c.opened_at);
        w.Key("first_final_action");
        if (c.first_final_action) {
            w.Int64(*c.first_final_action);
        } else {
            w.Null();
        }
        w.Key("effective");
        w.Bool(c.effective);
        w.Key("timely");
        w.Bool(c.timely);
        w.Key("why_not_effective");
        str(w, c.why_not_effective);
        w.Key("why_not_timely");
        str(w, c.why_not_timely);
        w.Key("not_effective");
        str(w, c.not_effective);
        w.Key("not_timely");
        str(w, c.not_timely);
        w.EndObject();
    }
    w.EndArray();
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
    rapidjson::StringBuffer sb;
    JsonWriter w(sb);
    w.StartObject();
    w.Key("devices");
    w.StartArray();
    for (const auto& d : list.devices) {
        w.StartObject();
        w.Key("replica");
        w.Uint64(d.replica);
        w.Key("user");
        str(w, d.user);
        w.Key("label");
        str(w, d.label);
        w.Key("status");
        str(w, d.status == DeviceStatus::active ? "active" : "revoked");
        w.Key("last_seen");
        w.Int64(d.last_seen);
        w.Key("cursor");
        w.Uint64(d.cursor);
        w.Key("server_seq");
        w.Uint64(list.server_seq);
        w.Key("behind");
        w.Uint64(d.behind);
        w.Key("enrolled_at");
        w.Int64(d.enrolled_at);
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return sb.GetString();
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
        });
}

} // namespace otsync::server::api
