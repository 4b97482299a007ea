// The inventory CSV import against a real SQLite store: RFC 4180 quoting and line
// numbers, every bad line reported with nothing written, idempotent re-import, serials
// that would change contracts, and the limits.
#include "../temp_dir.hpp"
#include "procedure/csv_import.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <random>

using namespace otsync;
using namespace otsync::server;

namespace {

constexpr std::int64_t k_now = 1754000000000;
const std::string k_header =
    "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n";

struct TempStore {
    TempStore() {
        SqliteOptions o;
        o.path = (tmp.path / "otsync.db").string();
        o.synchronous_full = false;
        store = open_sqlite_store(o);
    }
    otsync::test::TempDir tmp{"otsync-inventory-"};
    std::unique_ptr<Store> store; // closed before its folder goes
};

/// The problems' line numbers, in order.
std::vector<std::size_t> lines_of(const ImportResult& r) {
    std::vector<std::size_t> out;
    for (const auto& p : r.problems) {
        out.push_back(p.line);
    }
    return out;
}

/// The message of the problem on `line` ("" when there is none).
std::string problem_on(const ImportResult& r, std::size_t line) {
    for (const auto& p : r.problems) {
        if (p.line == line) {
            return p.message;
        }
    }
    return {};
}

const std::string k_good =
    k_header +
    "C-1001,Juan Pérez Mamani,natural,4567891 CB,Av. Blanco Galindo km 4,hwtc1234abcd,gpon_ont,"
    "HG8245H,ONT Huawei HG8245H\n"
    "C-1001,Juan Pérez Mamani,natural,4567891 CB,Av. Blanco Galindo km 4, 48575443A1B2 ,decoder,"
    "DSB-2000,Decodificador\n"
    "C-2002,\"Comercial \"\"El Sol\"\", S.R.L.\",legal,1020304050,\"Calle Sucre 123,\n"
    "edificio Torre, piso 2\",ZTEG00000042,router,\"F660, v2\",\"Router \"\"F660\"\"\"\n"
    "C-3003,María Rojas,natural,789456,Calle Jordán 55,,,,\n";

} // namespace

TEST_CASE("normalize_serial trims white space and upper-cases ASCII, as collected rows do") {
    CHECK(otsync::normalize_serial("  hwtc1234abcd\t") == "HWTC1234ABCD");
    CHECK(otsync::normalize_serial("AbC-9") == "ABC-9");
    CHECK(otsync::normalize_serial("ñ-x") == "ñ-X");
    CHECK(otsync::normalize_serial(" \t ").empty());
    CHECK(otsync::normalize_serial(" zteg1234\t") == otsync::normalize_serial("ZTEG1234"));
}

TEST_CASE("a good file imports: contracts and equipment read back, quoted fields intact") {
    TempStore t;
    const ImportResult r = import_inventory_csv(k_good, *t.store, k_now);
    REQUIRE_MESSAGE(r.ok(), r.report());
    CHECK(r.report() == "contracts: 3, equipment: 3");
    CHECK(t.store->inventory_count() == 3);

    const auto juan = t.store->contract("C-1001");
    REQUIRE(juan);
    CHECK(juan->customer_name == "Juan Pérez Mamani");
    CHECK(juan->person_type == "natural");
    CHECK(juan->tax_id == "4567891 CB");
    CHECK(juan->imported_at == k_now);
    const auto juans = t.store->inventory_of("C-1001");
    REQUIRE(juans.size() == 2);
    CHECK(juans[0].serial == "48575443A1B2"); // trimmed
    CHECK(juans[0].kind == "decoder");
    CHECK(juans[1].serial == "HWTC1234ABCD"); // upper-cased
    CHECK(juans[1].model == "HG8245H");

    const auto sol = t.store->contract("C-2002");
    REQUIRE(sol);
    CHECK(sol->customer_name == "Comercial \"El Sol\", S.R.L.");
    CHECK(sol->person_type == "legal");
    CHECK(sol->address == "Calle Sucre 123,\nedificio Torre, piso 2");
    const auto router = t.store->inventory_item("ZTEG00000042");
    REQUIRE(router);
    CHECK(router->contract == "C-2002");
    CHECK(router->model == "F660, v2");
    CHECK(router->description == "Router \"F660\"");

    // A contract without equipment.
    REQUIRE(t.store->contract("C-3003"));
    CHECK(t.store->inventory_of("C-3003").empty());
}

TEST_CASE("CRLF, a BOM and trailing empty lines are fine") {
    TempStore t;
    std::string crlf = "\xEF\xBB\xBF";
    for (const char c : k_good) {
        crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    }
    crlf += "\r\n\r\n";
    const ImportResult r = import_inventory_csv(crlf, *t.store, k_now);
    REQUIRE_MESSAGE(r.ok(), r.report());
    CHECK(r.report() == "contracts: 3, equipment: 3");
    // A quoted CRLF is stored as one "\n", whatever editor saved the file.
    CHECK(t.store->contract("C-2002")->address == "Calle Sucre 123,\nedificio Torre, piso 2");

    // A quoted CRLF counts as one line: the next record's number stays right.
    const ImportResult bad =
        check_inventory_csv(k_header + "C-1,\"Ana\r\nRosa\",natural,1,Calle,S1,router,M,D\r\n"
                                       "C-2,Eva,natural,1,Calle,S2,fridge,M,D\r\n",
                            *t.store, k_now);
    CHECK(lines_of(bad) == std::vector<std::size_t>{4});

    TempStore u;
    std::string no_final_newline = k_good;
    no_final_newline.pop_back();
    CHECK(import_inventory_csv(no_final_newline, *u.store, k_now).report() ==
          "contracts: 3, equipment: 3");
}

TEST_CASE("re-importing the same file changes nothing") {
    TempStore t;
    REQUIRE(import_inventory_csv(k_good, *t.store, k_now).ok());
    const ImportResult again = import_inventory_csv(k_good, *t.store, k_now + 1000);
    REQUIRE_MESSAGE(again.ok(), again.report());
    CHECK(again.report() == "contracts: 3, equipment: 3");
    CHECK(t.store->inventory_count() == 3);
    CHECK(t.store->inventory_of("C-1001").size() == 2);
    CHECK(t.store->contract("C-2002")->customer_name == "Comercial \"El Sol\", S.R.L.");
}

TEST_CASE("a file with bad rows lists each by line and leaves the store as it was") {
    TempStore t;
    REQUIRE(import_inventory_csv(k_good, *t.store, k_now).ok());
    REQUIRE(t.store->inventory_count() == 3);

    const std::string bad =
        k_header +
        // 2: good (a new contract, would be added if the file were good)
        "C-4004,Ana Vargas,natural,111222,Calle 1,AAA111,gpon_ont,HG8245H,ONT\n"
        // 3: bad person type
        "C-4005,Luis Soto,juridica,333444,Calle 2,BBB222,router,X,Y\n"
        // 4: a quoted field with a line break (the record starts on 4, spans 5)...
        "C-4006,\"Rosa\nQuispe\",natural,555666,Calle 3,CCC333,decoder,D,E\n"
        // 6: ...so this one is on line 6: an unknown kind
        "C-4007,Pedro Lima,natural,777888,Calle 4,DDD444,toaster,T,U\n"
        // 7: too few columns
        "C-4008,Eva Cruz,natural\n"
        // 8: missing required customer_name and address
        "C-4009,,natural,999000,,EEE555,gpon_ont,M,D\n"
        // 9: the serial of line 2 again (normalized)
        "C-4004,Ana Vargas,natural,111222,Calle 1, aaa111 ,decoder,M,D\n"
        // 10: C-4004 with another address than line 2
        "C-4004,Ana Vargas,natural,111222,Calle 9,FFF666,remote,M,D\n"
        // 11: a serial C-1001 holds in the inventory
        "C-4004,Ana Vargas,natural,111222,Calle 1,HWTC1234ABCD,gpon_ont,M,D\n"
        // 12: invalid UTF-8 in the name
        "C-4010,Jos\xC3,natural,123,Calle 5,GGG777,router,M,D\n"
        // 13: a field longer than the limit
        "C-4011,Ana,natural,123," +
        std::string(600, 'x') +
        ",HHH888,router,M,D\n"
        // 14: a stray quote inside an unquoted field
        "C-4012,Ana,natural,123,Calle \"6\",III999,router,M,D\n"
        // 15: good
        "C-4013,Ana,natural,123,Calle 7,JJJ000,router,M,D\n"
        // 16: a quote opened and never closed (swallows the rest)
        "C-4014,\"Ana,natural,123,Calle 8,KKK111,router,M,D\n"
        "C-4015,Ana,natural,123,Calle 8,LLL222,router,M,D\n";

    const ImportResult r = import_inventory_csv(bad, *t.store, k_now + 1);
    REQUIRE_FALSE(r.ok());
    CHECK(lines_of(r) == std::vector<std::size_t>{3, 6, 7, 8, 8, 9, 10, 11, 12, 13, 14, 16});
    CHECK(problem_on(r, 3).find("person_type must be natural or legal, not 'juridica'") !=
          std::string::npos);
    CHECK(problem_on(r, 6).find("kind must be one of gpon_ont, decoder") != std::string::npos);
    CHECK(problem_on(r, 7) == "expected 9 columns, found 3");
    CHECK(problem_on(r, 8) == "customer_name is required");
    CHECK(r.problems[4].message == "address is required");
    CHECK(problem_on(r, 9) == "serial 'AAA111' is already on line 2");
    CHECK(problem_on(r, 10) ==
          "contract 'C-4004' differs from line 2, which first defined it, in address");
    CHECK(problem_on(r, 11).find("serial 'HWTC1234ABCD' is in the inventory under contract "
                                 "'C-1001'") != std::string::npos);
    CHECK(problem_on(r, 12).find("customer_name is not valid UTF-8") != std::string::npos);
    CHECK(problem_on(r, 13) == "address is 600 bytes, more than the limit of 500");
    CHECK(problem_on(r, 14).find("column 5: a quote") != std::string::npos);
    CHECK(problem_on(r, 16).find("never closed") != std::string::npos);
    CHECK(r.contracts.empty());
    CHECK(r.items.empty());

    // The report: one "line L: message" per problem.
    const std::string report = r.report();
    CHECK(report.starts_with("line 3: person_type must be"));
    CHECK(report.find("\nline 7: expected 9 columns, found 3\n") != std::string::npos);
    CHECK(std::count(report.begin(), report.end(), '\n') == 11);

    // Nothing written: the store is as the good import left it.
    CHECK(t.store->inventory_count() == 3);
    CHECK_FALSE(t.store->contract("C-4004"));
    CHECK_FALSE(t.store->contract("C-4013"));
    CHECK_FALSE(t.store->inventory_item("AAA111"));
    CHECK(t.store->inventory_item("HWTC1234ABCD")->contract == "C-1001");
    CHECK(t.store->contract("C-1001")->imported_at == k_now);
}

TEST_CASE("a serial held by another contract is refused; by the same contract it is fine") {
    TempStore t;
    REQUIRE(import_inventory_csv(k_good, *t.store, k_now).ok());
    const ImportResult moved = import_inventory_csv(
        k_header + "C-9999,Otro Cliente,natural,1,Calle,ZTEG00000042,router,F660,Router\n",
        *t.store, k_now);
    REQUIRE(moved.problems.size() == 1);
    CHECK(moved.problems[0].line == 2);
    CHECK(moved.report().find("under contract 'C-2002'") != std::string::npos);
    CHECK(t.store->inventory_item("ZTEG00000042")->contract == "C-2002");
    CHECK_FALSE(t.store->contract("C-9999"));

    // The owner may update its own equipment (and its customer data).
    const ImportResult same = import_inventory_csv(
        k_header + "C-2002,Comercial El Sol SRL,legal,1020304050,Calle Sucre 123,zteg00000042,"
                   "router,F670,Router nuevo\n",
        *t.store, k_now + 5);
    REQUIRE_MESSAGE(same.ok(), same.report());
    CHECK(t.store->inventory_item("ZTEG00000042")->model == "F670");
    CHECK(t.store->contract("C-2002")->customer_name == "Comercial El Sol SRL");
    CHECK(t.store->inventory_count() == 3);
}

TEST_CASE("the header must be exact") {
    TempStore t;
    const ImportResult wrong = check_inventory_csv(
        "contract,customer_name,persontype,tax_id,address,serial,kind,model,description\n"
        "C-1,A,natural,1,B,,,,\n",
        *t.store, k_now);
    REQUIRE(wrong.problems.size() == 1);
    CHECK(wrong.problems[0].line == 1);
    CHECK(wrong.problems[0].message.find("column 3 is 'persontype', expected 'person_type'") !=
          std::string::npos);

    const ImportResult blank_first = check_inventory_csv("\n" + k_header, *t.store, k_now);
    CHECK(blank_first.report().ends_with("; the first line is empty"));

    const ImportResult empty = check_inventory_csv("", *t.store, k_now);
    REQUIRE(empty.problems.size() == 1);
    CHECK(empty.report().starts_with("line 1: the file is empty"));

    const ImportResult header_only = import_inventory_csv(k_header, *t.store, k_now);
    CHECK(header_only.report() == "contracts: 0, equipment: 0");
}

TEST_CASE("limits: file size, rows, field bytes, registry lengths, the problem cap") {
    TempStore t;
    ImportLimits small;
    small.max_bytes = 100;
    const ImportResult big = check_inventory_csv(k_good, *t.store, k_now, small);
    REQUIRE(big.problems.size() == 1);
    CHECK(big.problems[0].line == 0);
    CHECK(big.report().starts_with("file: the file is "));

    ImportLimits two_rows;
    two_rows.max_rows = 2;
    const ImportResult rows = check_inventory_csv(k_good, *t.store, k_now, two_rows);
    REQUIRE(rows.problems.size() == 1);
    CHECK(rows.problems[0].line == 4); // the third row
    CHECK(rows.problems[0].message.find("more than 2 rows") != std::string::npos);

    ImportLimits short_fields;
    short_fields.max_field_bytes = 10;
    const ImportResult fields =
        check_inventory_csv(k_header + "C-1,Nombre muy largo,natural,1,Calle,S1,router,M,D\n",
                            *t.store, k_now, short_fields);
    CHECK(fields.report() == "line 2: customer_name is 16 bytes, more than the limit of 10");

    // The registry is stricter than the default limit for serials (64 bytes).
    const ImportResult serial = check_inventory_csv(k_header + "C-1,A,natural,1,Calle," +
                                                        std::string(65, 'S') + ",router,M,D\n",
                                                    *t.store, k_now);
    CHECK(serial.report() == "line 2: serial is 65 bytes, more than the limit of 64");

    // Line breaks only where people write several lines.
    const ImportResult broken = check_inventory_csv(
        k_header + "\"C-\n1\",A,natural,1,Calle,S1,router,M,D\n", *t.store, k_now);
    CHECK(broken.report() == "line 2: contract must be on one line");

    // An empty line in the middle is a problem; at the end it is not.
    const ImportResult blank = check_inventory_csv(
        k_header + "C-1,A,natural,1,Calle,S1,router,M,D\n\nC-2,A,natural,1,Calle,S2,router,M,D\n",
        *t.store, k_now);
    CHECK(blank.report() == "line 3: empty line (blank lines are allowed only at the end)");

    ImportLimits capped;
    capped.max_problems = 5;
    std::string many = k_header;
    for (int i = 0; i < 12; ++i) {
        many += "C-" + std::to_string(i) + ",A,alien,1,Calle,,,,\n";
    }
    const ImportResult lots = check_inventory_csv(many, *t.store, k_now, capped);
    CHECK(lots.problems.size() == 5);
    CHECK(lots.omitted_problems == 7);
    CHECK(lots.problem_count() == 12);
    CHECK(lots.report().ends_with("\n... and 7 more problems"));
    CHECK(t.store->inventory_count() == 0);
}

TEST_CASE("serial rules: kind required with a serial, nothing else without one") {
    TempStore t;
    const ImportResult r = check_inventory_csv(k_header + "C-1,A,natural,1,Calle,S1,,M,D\n"
                                                          "C-1,A,natural,1,Calle,,router,,\n",
                                               *t.store, k_now);
    CHECK(lines_of(r) == std::vector<std::size_t>{2, 3});
    CHECK(problem_on(r, 2).starts_with("kind is required with a serial"));
    CHECK(problem_on(r, 3).starts_with("serial is empty but kind"));
}
