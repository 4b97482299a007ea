// The transfer procedure end to end through the real server (issue: the procedure end to
// end): for each modality, the seed's steps by the right roles over the REST API, a
// client-core device (the C API over HTTP) that syncs, collects or verifies, signs,
// completes and hands over, the warehouse receipt, the case closing by itself, and the
// indicators counting it, on SQLite and on a PostgreSQL database (--store). Also the
// rejection path, a missing requirement blocking OT issue, the permission matrix of every
// role × every route, login throttling and session expiry, and a CSV import with bad rows
// changing nothing.
#include "../pg_cluster.hpp"
#include "api/routes.hpp"
#include "server_process.hpp"

#include "otsync/client.h"
#include "otsync/model.hpp"

#define RAPIDJSON_HAS_STDSTRING 1
#include <rapidjson/document.h>

#include <ctime>
#include <fstream>
#include <set>

using namespace otsync;
using namespace otsync::test;

namespace {

// The server runs with cheap argon2id parameters (MIN in tests: docs/architecture.md §9).
const std::vector<std::string> k_server_flags{
    "--demo", "--pwhash-opslimit", "1", "--pwhash-memlimit", "8192", "--login-max-failures", "3"};

rapidjson::Document parse(const std::string& body) {
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    REQUIRE_MESSAGE(!d.HasParseError(), "not JSON: " << body);
    return d;
}

std::string q(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

/// A person signed in with a bearer token.
struct Person {
    unsigned short port = 0;
    std::string name;
    std::string token;

    HttpResult call(const std::string& method, const std::string& target,
                    const std::string& body = {}, const std::string& type = "application/json") {
        std::map<std::string, std::string> h{{"Authorization", "Bearer " + token}};
        if (!body.empty()) {
            h["Content-Type"] = type;
        }
        return http_call(port, method, target, body, h);
    }
    /// Calls and checks the status; returns the parsed body.
    rapidjson::Document ok(const std::string& method, const std::string& target,
                           const std::string& body = {}, unsigned expect = 200) {
        const auto r = call(method, target, body);
        REQUIRE_MESSAGE(r.status == expect, name << " " << method << " " << target << " → "
                                                 << r.status << " " << r.body);
        return parse(r.body);
    }
};

Person login(unsigned short port, const std::string& name) {
    const auto r = http_call(port, "POST", "/v1/auth/login",
                             "{\"name\":" + q(name) + ",\"password\":\"otsync-demo\"}",
                             {{"Content-Type", "application/json"}});
    REQUIRE_MESSAGE(r.status == 200, "login " << name << ": " << r.status << " " << r.body);
    return Person{port, name, parse(r.body)["token"].GetString()};
}

std::string error_code(const std::string& body) {
    auto d = parse(body);
    if (!d.IsObject() || !d.HasMember("error")) {
        return {};
    }
    return d["error"]["code"].GetString();
}

/// A handheld: client-core through its C API over HTTP.
struct Handheld {
    otsync_client_t* c = nullptr;
    otsync_error err{};

    Handheld(const std::filesystem::path& db, const std::string& url, const std::string& code) {
        std::uint8_t key[32];
        randombytes_buf(key, sizeof key);
        c = otsync_client_open(db.c_str(), key, &err);
        REQUIRE_MESSAGE(c, err.message);
        REQUIRE_MESSAGE(otsync_client_enroll(c, url.c_str(), code.c_str(), "e2e", &err) == 0,
                        err.message);
    }
    ~Handheld() { otsync_client_close(&c); }

    void sync() {
        REQUIRE_MESSAGE(otsync_client_sync(c, nullptr, nullptr, &err) == 0, err.message);
    }
    rapidjson::Document json(char* s) {
        REQUIRE_MESSAGE(s, err.message);
        auto d = parse(s);
        otsync_string_free(&s);
        return d;
    }
    rapidjson::Document show(const std::string& ot) {
        return json(otsync_client_show_ot(c, ot.c_str(), &err));
    }
    void status(const std::string& ot, const char* s, const char* reason = nullptr) {
        REQUIRE_MESSAGE(otsync_client_set_status(c, ot.c_str(), s, reason, &err) == 0,
                        s << ": " << err.message);
    }
    otsync_verdict collect(const std::string& ot, const std::string& serial, const char* reason,
                           const char* defect = nullptr) {
        otsync_verdict v{};
        REQUIRE_MESSAGE(otsync_client_collect(c, ot.c_str(), serial.c_str(), "equipo recuperado",
                                              reason, defect, nullptr, &v, &err) == 0,
                        err.message);
        return v;
    }
    otsync_verdict verify(const std::string& ot, const std::string& serial) {
        otsync_verdict v{};
        REQUIRE_MESSAGE(otsync_client_verify(c, ot.c_str(), serial.c_str(), &v, &err) == 0,
                        err.message);
        return v;
    }
    void sign(const std::string& ot) {
        static const std::uint8_t png[] = {
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
            0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
            0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
            0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x60, 0x60, 0xf8,
            0x0f, 0x00, 0x01, 0x04, 0x01, 0x00, 0x5f, 0xe5, 0xc3, 0x4b, 0x00, 0x00,
            0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82}; // a 1x1 PNG
        REQUIRE_MESSAGE(otsync_client_sign(c, ot.c_str(), png, sizeof png, &err) == 0, err.message);
    }
    std::string handover(const char* zone) {
        auto d = json(otsync_client_create_handover(c, zone, &err));
        return d.GetString();
    }
};

/// A one-time enrollment code from otsync-admin, on the server's database: its data folder,
/// or `store` (the server's --store) when not empty.
std::string enroll_code(const std::filesystem::path& dir, const std::string& tech,
                        const std::string& store = {}) {
    return admin(dir, {"device", "enroll-code", tech}, 0, store);
}

/// A contract of our own for each walk, imported over the API as the back office would.
void import_contract(Person& bo, const std::string& contract, const std::string& person,
                     const std::vector<std::pair<std::string, std::string>>& equipment) {
    std::string csv =
        "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n";
    for (const auto& [serial, kind] : equipment) {
        csv += contract + ",Cliente " + contract + "," + person + ",123456 CB,\"Calle 1, Zona\"," +
               serial + "," + kind + ",Modelo X,Equipo " + serial + "\n";
    }
    const auto r = bo.call("POST", "/v1/inventory/import", csv, "text/csv");
    REQUIRE_MESSAGE(r.status == 200, r.body);
}

std::string case_body(int modality, const std::string& contract, const std::string& person,
                      const std::string& products) {
    return "{\"modality\":" + std::to_string(modality) + ",\"contract\":" + q(contract) +
           ",\"customer_name\":\"Cliente " + contract + "\",\"person_type\":" + q(person) +
           ",\"tax_id\":\"123456 CB\",\"reference_cell\":\"70712345\",\"contact_hours\":"
           "\"09:00-12:00\",\"products\":" +
           products +
           ",\"old_address\":\"Calle 1, Zona\",\"new_address\":\"Av. Nueva 22, Zona Sud\"}";
}

std::vector<std::string> requirement_codes(const rapidjson::Value& detail) {
    std::vector<std::string> out;
    for (const auto& r : detail["requirements"].GetArray()) {
        out.emplace_back(r["code"].GetString());
    }
    return out;
}

std::string json_list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (const auto& s : v) {
        out += (out.size() > 1 ? "," : "") + q(s);
    }
    return out + "]";
}

std::set<std::string> step_codes(const rapidjson::Value& detail) {
    std::set<std::string> out;
    for (const auto& s : detail["steps"].GetArray()) {
        out.insert(s["code"].GetString());
        CHECK_MESSAGE(std::string(s["by"].GetString()) != "", "step without who");
        CHECK(s["at"].GetInt64() > 0);
    }
    return out;
}

struct Office {
    Person atc, jac, ev, plataforma, asesor, bo, almacen, supervisor;
};

/// Walks one case of `modality` from opening to closed, with a handheld for tec.mamani.
/// Returns the case id.
std::string walk(Office& o, Handheld& tech, int modality, const std::string& contract,
                 const std::string& person,
                 const std::vector<std::pair<std::string, std::string>>& equipment,
                 bool hold_back_one_requirement) {
    CAPTURE(modality);
    import_contract(o.bo, contract, person, equipment);
    const bool boot = modality >= 3;
    Person& opener = boot ? o.ev : o.atc;
    Person& router = boot ? o.plataforma : o.jac;
    Person& reviewer = boot ? o.asesor : o.ev;

    // Steps 1–3: the case is opened with the fee of the dated table.
    auto opened =
        opener.ok("POST", "/v1/cases",
                  case_body(modality, contract, person, R"(["internet","tv_cable"])"), 201);
    const std::string id = opened["id"].GetString();
    CHECK(std::string(opened["status"].GetString()) == "opened");
    CHECK(opened["fields"]["fee"].GetInt64() == 40000); // Bs 200 + Bs 200, in centavos
    // The wrong role cannot open this modality.
    {
        Person& wrong = boot ? o.atc : o.ev;
        const auto r = wrong.call("POST", "/v1/cases",
                                  case_body(modality, contract, person, R"(["internet"])"));
        CHECK(r.status == 403);
    }
    // Step 4: routing to the person who reviews.
    router.ok("POST", "/v1/cases/" + id + "/route", "{\"to\":" + q(reviewer.name) + "}");
    if (!boot) {
        reviewer.ok("POST", "/v1/cases/" + id + "/contact", "{}");
    }
    reviewer.ok("POST", "/v1/cases/" + id + "/feasibility",
                R"({"feasible":true,"note":"hay caja disponible"})");
    auto detail = reviewer.ok("GET", "/v1/cases/" + id);
    auto codes = requirement_codes(detail);
    CHECK(codes.size() == (person == "legal" ? (boot ? 11u : 9u) : (boot ? 7u : 5u)));
    std::string held;
    if (hold_back_one_requirement) {
        held = codes.back();
        codes.pop_back();
    }
    reviewer.ok("POST", "/v1/cases/" + id + "/requirements", "{\"met\":" + json_list(codes) + "}");
    reviewer.ok("POST", "/v1/cases/" + id + "/approve", "{}");
    const std::string issue_body =
        R"({"technician":"tec.mamani","zone":"Cercado","window_start":1,"window_end":2})";
    if (hold_back_one_requirement) {
        // A missing requirement blocks OT issue, with a clear error naming it.
        const auto r = o.bo.call("POST", "/v1/cases/" + id + "/ots", issue_body);
        CHECK(r.status == 409);
        CHECK(error_code(r.body) == "requirements_incomplete");
        CHECK(r.body.find(held) != std::string::npos);
        reviewer.ok("POST", "/v1/cases/" + id + "/requirements", "{\"met\":[" + q(held) + "]}");
    }
    // The back office's own steps of the modality, with their data.
    if (modality == 1) {
        o.bo.ok(
            "POST", "/v1/cases/" + id + "/steps",
            R"({"step":"m1.10","fields":{"fee_products_withdrawn":true,"observations":"Retiro por traslado cliente solicita traslado del producto a zona boot"}})");
        o.bo.ok("POST", "/v1/cases/" + id + "/steps",
                R"({"step":"m1.11","fields":{"new_neighborhood":"Zona Sud"}})");
        o.bo.ok("POST", "/v1/cases/" + id + "/steps",
                R"({"step":"m1.13","fields":{"fee_charged":true}})");
    } else if (modality == 2) {
        o.bo.ok("POST", "/v1/cases/" + id + "/steps",
                R"({"step":"m2.10","fields":{"gis_box":"CAJA-17","gpon_data":"OLT2/7/3"}})");
    } else {
        reviewer.ok("POST", "/v1/cases/" + id + "/steps",
                    "{\"step\":\"m" + std::to_string(modality) + (modality == 3 ? ".07" : ".11") +
                        R"(","fields":{"new_contract":"NC-1","commercial_plan":"Plan Hogar"}})");
    }
    auto issued = o.bo.ok("POST", "/v1/cases/" + id + "/ots", issue_body, 201);
    CHECK(std::string(issued["status"].GetString()) == "in_progress");
    const auto& ots = issued["ots"];
    CHECK(ots.Size() == (modality <= 2 ? 1u : 2u));

    // The handheld: sync, work every OT of this case, hand over what it collected.
    tech.sync();
    bool collected = false;
    for (const auto& ot_v : ots.GetArray()) {
        const std::string ot = ot_v["id"].GetString();
        auto shown = tech.show(ot);
        std::vector<std::string> expected;
        const auto& fields = shown["ot"]["fields"];
        if (fields.HasMember("expected_equipment")) {
            for (const auto& e : fields["expected_equipment"].GetArray()) {
                expected.emplace_back(e.GetString());
            }
        }
        const std::string kind = ot_v["kind"].GetString();
        tech.status(ot, "en_route");
        tech.status(ot, "on_site");
        if (kind == "relocate_ftth") {
            CHECK(expected.size() == equipment.size());
            for (std::size_t i = 0; i < expected.size(); ++i) {
                if (modality == 2 && i + 1 == expected.size()) {
                    // The customer did not bring it: the technician says why, on the
                    // handheld; with that reason the case can close.
                    CHECK(otsync_client_report_missing(tech.c, ot.c_str(), expected[i].c_str(), "",
                                                       &tech.err) != 0);
                    CHECK(otsync_client_report_missing(tech.c, ot.c_str(), "NOT-ON-THIS-OT", "x",
                                                       &tech.err) != 0);
                    REQUIRE_MESSAGE(otsync_client_report_missing(
                                        tech.c, ot.c_str(), expected[i].c_str(),
                                        "el cliente dejó el decodificador en la casa anterior",
                                        &tech.err) == 0,
                                    tech.err.message);
                    continue;
                }
                CHECK(tech.verify(ot, expected[i]) == OTSYNC_VERDICT_MATCHED);
            }
        } else if (!expected.empty()) {
            CHECK(expected.size() == equipment.size());
            for (std::size_t i = 0; i < expected.size(); ++i) {
                const bool damaged = i == 1; // an Anexo 4 row with reason "damaged"
                CHECK(tech.collect(ot, expected[i], damaged ? "damaged" : "migration",
                                   damaged ? "carcasa rota" : nullptr) == OTSYNC_VERDICT_MATCHED);
            }
            tech.sign(ot);
            collected = true;
        }
        tech.status(ot, "completed");
    }
    std::string handover;
    if (collected) {
        handover = tech.handover("Cercado");
    }
    tech.sync();

    auto after_field = o.bo.ok("GET", "/v1/cases/" + id);
    if (!collected) {
        // Nothing to receive: the case closed when the field work synced.
        CHECK(std::string(after_field["status"].GetString()) == "closed");
        if (modality == 2) {
            auto rec = o.bo.ok("GET", "/v1/cases/" + id + "/reconciliation");
            int missing = 0;
            for (const auto& line : rec["ots"][0]["lines"].GetArray()) {
                if (std::string(line["status"].GetString()) == "missing") {
                    ++missing;
                    CHECK(std::string(line["missing_reason"].GetString()).find("decodificador") !=
                          std::string::npos);
                    CHECK(line["settled"].GetBool());
                }
            }
            CHECK(missing == 1);
        }
    } else {
        CHECK(std::string(after_field["status"].GetString()) == "in_progress");
        CHECK(after_field["closing_blockers"].Size() > 0);
        // The warehouse: pending list, receipt row by row, one missing on arrival.
        auto pending = o.almacen.ok("GET", "/v1/handovers");
        bool listed = false;
        for (const auto& h : pending["handovers"].GetArray()) {
            listed = listed || std::string(h["id"].GetString()) == handover;
        }
        CHECK(listed);
        auto h = o.almacen.ok("GET", "/v1/handovers/" + handover);
        std::string rows = "[";
        std::string missing_item;
        for (const auto& row : h["rows"].GetArray()) {
            const std::string serial = row["serial"].GetString();
            const bool missing = modality == 4 && serial == equipment.back().first;
            if (missing) {
                missing_item = row["item"].GetString();
            }
            rows +=
                (rows.size() > 1 ? "," : "") + std::string("{\"serial\":") + q(serial) +
                ",\"result\":" + (missing ? "\"missing\",\"note\":\"no vino\"" : "\"received\"") +
                "}";
        }
        rows += "]";
        auto receipt = o.almacen.ok("POST", "/v1/handovers/" + handover + "/receipt",
                                    "{\"rows\":" + rows + "}");
        CHECK(std::string(receipt["receipt"]["received_rows_hash"].GetString()).size() == 64);
        CHECK(std::string(receipt["handover"]["status"].GetString()) == "received");
        // A second receipt (another clerk, the same rows) is refused: exactly one receipt.
        const auto again = o.supervisor.call("POST", "/v1/handovers/" + handover + "/receipt",
                                             "{\"rows\":" + rows + "}");
        CHECK(again.status == 409);
        // The print view: every row, both names.
        const auto page = o.almacen.call("GET", "/v1/handovers/" + handover + "/anexo4");
        CHECK(page.status == 200);
        CHECK(page.content_type.find("text/html") == 0);
        for (const auto& [serial, kind] : equipment) {
            CHECK(page.body.find(serial) != std::string::npos);
        }
        CHECK(page.body.find("Juan Mamani") != std::string::npos);
        CHECK(page.body.find("Silvia Rocha") != std::string::npos);
        auto after_receipt = o.bo.ok("GET", "/v1/cases/" + id);
        if (!missing_item.empty()) {
            // Missing on arrival: the case waits for a resolution by the office.
            CHECK(std::string(after_receipt["status"].GetString()) == "in_progress");
            auto disc = o.bo.ok("GET", "/v1/reports/discrepancies");
            bool seen = false;
            for (const auto& d : disc["items"].GetArray()) {
                seen =
                    seen || std::string(d["line"]["serial"].GetString()) == equipment.back().first;
            }
            CHECK(seen);
            // Custody moved customer → technician → warehouse, as events; the row that did
            // not arrive is still with the technician.
            auto inv = o.bo.ok("GET", "/v1/inventory/contracts/" + contract);
            for (const auto& e : inv["equipment"].GetArray()) {
                const std::string serial = e["serial"].GetString();
                CHECK(std::string(e["custody"].GetString()) ==
                      (serial == equipment.back().first ? "technician" : "warehouse"));
            }
            o.bo.ok("POST", "/v1/items/" + missing_item + "/resolve",
                    R"({"resolution":"el cliente entregará el control en agencia"})");
        }
    }
    auto closed = o.bo.ok("GET", "/v1/cases/" + id);
    CHECK(std::string(closed["status"].GetString()) == "closed");
    const auto steps = step_codes(closed);
    const std::string m = "m" + std::to_string(modality) + ".";
    CHECK(steps.contains(m + "01"));
    CHECK(steps.contains(m + "04"));
    // The technician's step, recorded when the field work synced.
    const char* field_step[] = {"", "m1.14", "m2.13", "m3.11", "m4.18"};
    CHECK(steps.contains(field_step[modality]));
    return id;
}

/// Every modality walked from opening to closed, the rejection path, the board's list and
/// the indicators, through a server with demo data on SQLite in its data folder or, when
/// `store` is not empty, on that PostgreSQL database (otsync-admin is given the same).
void walk_every_modality(const std::string& store) {
    DataDir dir;
    std::vector<std::string> flags = k_server_flags;
    if (!store.empty()) {
        flags.insert(flags.end(), {"--store", store});
    }
    ServerProcess server(dir.path, flags);
    server.start();
    const unsigned short port = server.port;
    Office o{login(port, "atc.demo"),        login(port, "jac.demo"),       login(port, "ev.demo"),
             login(port, "plataforma.demo"), login(port, "asesor.demo"),    login(port, "bo.demo"),
             login(port, "almacen.demo"),    login(port, "supervisor.demo")};
    Handheld tech(dir.path / "tec.db", "http://127.0.0.1:" + std::to_string(port),
                  enroll_code(dir.path, "tec.mamani", store));

    std::vector<std::string> closed;
    closed.push_back(walk(o, tech, 1, "E2E-M1", "natural", {{"E2E-CPR-1", "copper_modem"}}, false));
    closed.push_back(walk(o, tech, 2, "E2E-M2", "natural",
                          {{"E2E-ONT-2", "gpon_ont"}, {"E2E-DEC-2", "decoder"}}, false));
    closed.push_back(walk(o, tech, 3, "E2E-M3", "legal", {{"E2E-ONT-3", "gpon_ont"}}, false));
    closed.push_back(
        walk(o, tech, 4, "E2E-M4", "natural",
             {{"E2E-ONT-4", "gpon_ont"}, {"E2E-PWR-4", "power_adapter"}, {"E2E-RMT-4", "remote"}},
             true));

    // The rejection path: "no es posible realizar el traslado", told to the customer.
    auto rej =
        o.atc.ok("POST", "/v1/cases", case_body(2, "E2E-REJ", "natural", R"(["internet"])"), 201);
    const std::string rejected = rej["id"].GetString();
    o.jac.ok("POST", "/v1/cases/" + rejected + "/route", R"({"to":"ev.demo"})");
    o.ev.ok("POST", "/v1/cases/" + rejected + "/feasibility", R"({"feasible":false})");
    CHECK(o.ev.call("POST", "/v1/cases/" + rejected + "/approve", "{}").status == 409);
    auto told = o.ev.ok("POST", "/v1/cases/" + rejected + "/reject",
                        R"({"reason":"no es posible realizar el traslado: sin factibilidad"})");
    CHECK(std::string(told["status"].GetString()) == "rejected");
    CHECK(step_codes(told).contains("m2.09"));
    CHECK(o.bo.call("POST", "/v1/cases/" + rejected + "/ots", "{}").status == 409);

    // The board's list: newest first, bounded, with the count of all that matched.
    auto two = o.bo.ok("GET", "/v1/cases?limit=2");
    CHECK(two["cases"].Size() == 2u);
    CHECK(two["total"].GetInt() == 10);
    CHECK(std::string(two["cases"][0]["id"].GetString()) == rejected); // the newest
    CHECK(o.bo.call("GET", "/v1/cases?limit=0").status == 400);
    auto one_ot = o.bo.ok("GET", "/v1/ots?technician=tec.mamani&limit=1");
    CHECK(one_ot["ots"].Size() == 1u);
    CHECK(one_ot["total"].GetInt() > 1);

    // The indicators of today count every case above (and the demo's open ones).
    const std::time_t now = std::time(nullptr) - 4 * 3600; // the server's UTC-4 day
    char today[16];
    std::strftime(today, sizeof today, "%Y-%m-%d", std::gmtime(&now));
    auto ind = o.supervisor.ok("GET", std::string("/v1/reports/indicators?from=") + today +
                                          "&to=" + today);
    std::set<std::string> effective, timely;
    for (const auto& c : ind["efficacy"]["cases"].GetArray()) {
        effective.insert(c.GetString());
    }
    for (const auto& c : ind["timeliness"]["cases"].GetArray()) {
        timely.insert(c.GetString());
    }
    for (const auto& id : closed) {
        CHECK(effective.contains(id));
        CHECK(timely.contains(id));
    }
    CHECK(effective.contains(rejected));
    // The demo's five cases are open: 5 effective of 10 in all.
    CHECK(ind["total"].GetInt() == 10);
    CHECK(ind["efficacy"]["count"].GetInt() == 5);
    CHECK(ind["efficacy"]["pass"].GetBool() == false);
    const auto csv = o.supervisor.call("GET", std::string("/v1/reports/indicators?from=") + today +
                                                  "&to=" + today + "&format=csv");
    CHECK(csv.status == 200);
    CHECK(csv.body.find(rejected) != std::string::npos);
    // And from the command line, on the same data.
    const auto table =
        admin(dir.path, {"report", "indicators", "--from", today, "--to", today}, 0, store);
    CHECK(table.find("Eficacia") != std::string::npos);
    CHECK(server.stop() == 0);
}

} // namespace

TEST_CASE("each modality walked from opening to closed, and counted by the indicators") {
    walk_every_modality({});
}

TEST_CASE("each modality walked from opening to closed, and counted by the indicators, on "
          "PostgreSQL") {
    // The same walk with the server and otsync-admin on a fresh database of the test's own
    // PostgreSQL 15 cluster (tests/pg_cluster.hpp), the demo data seeded there.
    walk_every_modality(fresh_pg_database());
}

TEST_CASE("permission matrix: every role × every route, denied where the table says") {
    DataDir dir;
    ServerProcess server(dir.path, k_server_flags);
    server.start();
    const std::vector<std::pair<std::string, Role>> people{
        {"atc.demo", Role::customer_service},      {"jac.demo", Role::commercial_head},
        {"ev.demo", Role::sales_executive},        {"plataforma.demo", Role::platform_officer},
        {"asesor.demo", Role::commercial_advisor}, {"bo.demo", Role::back_office},
        {"almacen.demo", Role::warehouse_clerk},   {"supervisor.demo", Role::supervisor},
        {"tec.mamani", Role::technician}};
    const std::string zero(32, '0');
    std::size_t checked = 0;
    for (const auto& [name, role] : people) {
        Person p = login(server.port, name);
        for (const auto& route : server::Api::routes()) {
            if (route.pattern == "/v1/auth/login" || route.pattern == "/v1/auth/logout") {
                continue;
            }
            std::string path = route.pattern;
            if (const auto at = path.find("{id}"); at != std::string::npos) {
                path.replace(at, 4,
                             route.pattern.find("devices") != std::string::npos ? "999999" : zero);
            }
            const std::string body = route.method == "GET" ? "" : "{}";
            const auto r = p.call(route.method, path, body);
            const bool allowed = (route.roles & role_bit(role)) != 0;
            CAPTURE(name);
            CAPTURE(route.method);
            CAPTURE(route.pattern);
            CAPTURE(r.body);
            if (allowed) {
                CHECK(r.status != 403);
                CHECK(r.status != 401);
            } else {
                CHECK(r.status == 403);
                CHECK(error_code(r.body) == "permission_denied");
            }
            ++checked;
        }
    }
    CHECK(checked > 300);
    // Without a session, every route but login is 401.
    for (const auto& route : server::Api::routes()) {
        if (route.roles == 0) {
            continue;
        }
        std::string path = route.pattern;
        if (const auto at = path.find("{id}"); at != std::string::npos) {
            path.replace(at, 4, zero);
        }
        CHECK(http_call(server.port, route.method, path).status == 401);
    }
    CHECK(server.stop() == 0);
}

TEST_CASE("login: throttled after repeated failures, no enumeration, sessions expire") {
    DataDir dir;
    std::vector<std::string> flags = k_server_flags;
    flags.insert(flags.end(), {"--session-ttl-ms", "1500"});
    ServerProcess server(dir.path, flags);
    server.start();
    auto attempt = [&](const std::string& name, const std::string& password) {
        return http_call(server.port, "POST", "/v1/auth/login",
                         "{\"name\":" + q(name) + ",\"password\":" + q(password) + "}",
                         {{"Content-Type", "application/json"}});
    };
    const auto unknown = attempt("nadie.demo", "x");
    const auto wrong = attempt("bo.demo", "wrong password");
    CHECK(unknown.status == 401);
    CHECK(wrong.status == 401);
    CHECK(unknown.body == wrong.body); // the same answer: no user enumeration
    attempt("bo.demo", "wrong again");
    attempt("bo.demo", "and again");
    const auto throttled = attempt("bo.demo", "otsync-demo"); // right password, too late
    CHECK(throttled.status == 429);
    CHECK(error_code(throttled.body) == "rate_limited");
    CHECK(attempt("supervisor.demo", "otsync-demo").status == 200); // others unaffected

    // A session works, then expires.
    Person sup = login(server.port, "supervisor.demo");
    CHECK(sup.call("GET", "/v1/auth/session").status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(1700));
    const auto expired = sup.call("GET", "/v1/auth/session");
    CHECK(expired.status == 401);
    CHECK(error_code(expired.body) == "unauthenticated");

    // A cookie session must send the CSRF token to write.
    const auto lr = attempt("ev.demo", "otsync-demo");
    REQUIRE(lr.status == 200);
    const auto d = parse(lr.body);
    const std::string cookie = std::string("otsync_session=") + d["token"].GetString();
    const auto no_csrf = http_call(server.port, "POST", "/v1/cases", "{}",
                                   {{"Cookie", cookie}, {"Content-Type", "application/json"}});
    CHECK(no_csrf.status == 403);
    const auto with_csrf = http_call(server.port, "POST", "/v1/cases", "{}",
                                     {{"Cookie", cookie},
                                      {"Content-Type", "application/json"},
                                      {"X-CSRF-Token", d["csrf"].GetString()}});
    CHECK(with_csrf.status == 400); // past the CSRF check: the empty case is refused
    CHECK(server.stop() == 0);
}

TEST_CASE("behind a trusted proxy, login throttling counts the address the proxy saw") {
    DataDir dir;
    std::vector<std::string> flags = k_server_flags; // 3 per user name, 12 per address
    flags.push_back("--trust-proxy");
    ServerProcess server(dir.path, flags);
    server.start();
    auto attempt = [&](const std::string& name, const std::string& via) {
        return http_call(server.port, "POST", "/v1/auth/login",
                         "{\"name\":" + q(name) + ",\"password\":\"nope\"}",
                         {{"Content-Type", "application/json"}, {"X-Forwarded-For", via}});
    };
    for (int i = 0; i < 12; ++i) { // different names: only the address adds up
        CHECK(attempt("nadie" + std::to_string(i), "203.0.113.9, 10.0.0.1").status == 401);
    }
    CHECK(attempt("otro", "198.51.100.7, 10.0.0.1").status == 429); // the proxy saw 10.0.0.1
    CHECK(attempt("otro", "10.0.0.2").status == 401);               // another address
    CHECK(server.stop() == 0);
}

TEST_CASE("inventory import with bad rows: each listed by line, nothing changed") {
    DataDir dir;
    ServerProcess server(dir.path, k_server_flags);
    server.start();
    Person bo = login(server.port, "bo.demo");
    const std::string bad =
        "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n"
        "NEW-1,Cliente Uno,natural,1 CB,Calle 1,NEW-SER-1,gpon_ont,M,D\n"
        "NEW-2,Cliente Dos,alien,2 CB,Calle 2,NEW-SER-2,gpon_ont,M,D\n"
        "NEW-3,Cliente Tres,natural,3 CB,Calle 3,NEW-SER-1,gpon_ont,M,D\n"
        "NEW-4,Cliente Cuatro,natural,4 CB,Calle 4,NEW-SER-4,toaster,M,D\n";
    const auto r = bo.call("POST", "/v1/inventory/import", bad, "text/csv");
    CHECK(r.status == 400);
    const auto d = parse(r.body);
    std::set<int> lines;
    for (const auto& p : d["error"]["problems"].GetArray()) {
        lines.insert(p["line"].GetInt());
    }
    CHECK(lines == std::set<int>{3, 4, 5});
    CHECK(bo.call("GET", "/v1/inventory/contracts/NEW-1").status == 404);
    // The same file from the command line: the same verdict, exit 1.
    const auto file = dir.path / "bad.csv";
    {
        std::ofstream out(file);
        out << bad;
    }
    admin(dir.path, {"inventory", "import", file.string()}, 1);
    CHECK(bo.call("GET", "/v1/inventory/contracts/NEW-1").status == 404);
    CHECK(server.stop() == 0);
}

TEST_CASE("GET /v1/model: shared/'s tables for any signed-in person, 401 without a session") {
    DataDir dir;
    ServerProcess server(dir.path, k_server_flags);
    server.start();
    CHECK(http_call(server.port, "GET", "/v1/model").status == 401);
    for (const std::string name : {"bo.demo", "tec.mamani", "almacen.demo"}) {
        CAPTURE(name);
        Person p = login(server.port, name);
        const auto r = p.call("GET", "/v1/model");
        REQUIRE(r.status == 200);
        CHECK(r.content_type.rfind("application/json", 0) == 0);
        const auto d = parse(r.body);

        // The steps of each modality, in order, as shared/ has them.
        REQUIRE(d["modalities"].Size() == 4);
        for (const auto& m : d["modalities"].GetArray()) {
            const int n = m["code"].GetInt();
            CAPTURE(n);
            const auto steps = steps_for(n);
            REQUIRE(m["steps"].Size() == steps.size());
            for (rapidjson::SizeType i = 0; i < steps.size(); ++i) {
                const auto& s = m["steps"][i];
                CHECK(s["code"].GetString() == steps[i].code);
                CHECK(s["role"].GetString() == to_string(steps[i].role));
                CHECK(s["label"].GetString() == steps[i].label_es);
            }
            const auto ots = work_orders_for(n);
            REQUIRE(m["work_orders"].Size() == ots.size());
            for (rapidjson::SizeType i = 0; i < ots.size(); ++i) {
                CHECK(m["work_orders"][i].GetString() == ots[i]);
            }
            CHECK(m["label"].GetString() ==
                  find_label(modality_labels(), std::to_string(n))->label_es);
        }
        // Roles, lifecycles with their Spanish state names, field labels.
        REQUIRE(d["roles"].Size() == k_role_count);
        CHECK(d["roles"][6]["code"].GetString() == std::string("technician"));
        CHECK(d["roles"][6]["label"].GetString() == label_es(Role::technician));
        bool saw_ot = false;
        for (const auto& lc : d["lifecycles"].GetArray()) {
            const auto entity = entity_type_from_string(lc["entity"].GetString());
            REQUIRE(entity);
            const Lifecycle* table = lifecycle_of(*entity);
            REQUIRE(table);
            REQUIRE(lc["states"].Size() == table->states.size());
            REQUIRE(lc["transitions"].Size() == table->transitions.size());
            for (const auto& s : lc["states"].GetArray()) {
                const CodeLabel* l = find_label(state_labels(*entity), s["code"].GetString());
                REQUIRE(l);
                CHECK(s["label"].GetString() == l->label_es);
                CHECK(s["word"].GetString() == l->word_es);
            }
            if (*entity == EntityType::work_order) {
                saw_ot = true;
                CHECK(lc["states"][2]["word"].GetString() == std::string("en camino"));
            }
        }
        CHECK(saw_ot);
        REQUIRE(d["fields"]["case"].Size() == fields_of(EntityType::case_file).size());
        CHECK(d["fields"]["case"][0]["label"].GetString() ==
              fields_of(EntityType::case_file)[0].label_es);
        CHECK(d["ot_kinds"].Size() == ot_kind_labels().size());
        CHECK(d["products"].Size() == product_labels().size());
        // Rendered once: the same bytes every time.
        CHECK(p.call("GET", "/v1/model").body == r.body);
        CHECK(p.call("POST", "/v1/model", "{}").status == 405);
    }
    CHECK(server.stop() == 0);
}
