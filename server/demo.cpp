// Demo data; see demo.hpp.
#include "demo.hpp"

#include "procedure/csv_import.hpp"

#include "otsync/attachment.hpp"
#include "otsync/model.hpp"
#include "otsync/view.hpp"

#include <fstream>
#include <optional>
#include <sys/stat.h>

namespace otsync::server {

namespace {

/// The demo's signature image: a whole 1×1 PNG stands for what a signature pad gives.
const std::string& demo_signature_png() {
    static const std::string png(
        "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00"
        "\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0d\x49\x44\x41\x54\x78\x9c"
        "\x63\x60\x60\x60\xf8\x0f\x00\x01\x04\x01\x00\x5f\xe5\xc3\x4b\x00\x00\x00\x00\x49\x45"
        "\x4e\x44\xae\x42\x60\x82",
        70);
    return png;
}

// The inventory as the import reads it (server/procedure/csv_import.hpp).
constexpr const char* k_demo_inventory =
    "contract,customer_name,person_type,tax_id,address,serial,kind,model,description\n"
    "CT-100234,María Fernanda Rojas,natural,4455667 CB,\"Calle Sucre 455, Zona Central\","
    "CPR-AD1234567,copper_modem,ZTE ZXV10 H108N,Módem ADSL\n"
    "CT-100871,Jorge Luis Camacho,natural,5566778 CB,Av. América 1120,ZTEGC8A10011,gpon_ont,"
    "ZTE F660,ONT GPON\n"
    "CT-100871,Jorge Luis Camacho,natural,5566778 CB,Av. América 1120,DEC-5510022,decoder,"
    "Kaon KSTB,Decodificador\n"
    "BT-200310,Comercial Andina SRL,legal,1023456027,Av. Petrolera km 3,HWTC7F300455,gpon_ont,"
    "Huawei HG8245H,ONT GPON\n"
    "BT-200455,Ana Gabriela Terrazas,natural,6677889 CB,\"Calle Tarija 77, Sacaba\","
    "HWTC7F300999,gpon_ont,Huawei HG8245H,ONT GPON\n"
    "BT-200455,Ana Gabriela Terrazas,natural,6677889 CB,\"Calle Tarija 77, Sacaba\","
    "PWR-12V-0999,power_adapter,12V 1.5A,Fuente de alimentación\n"
    "BT-200455,Ana Gabriela Terrazas,natural,6677889 CB,\"Calle Tarija 77, Sacaba\","
    "RMT-0999,remote,Kaon RC,Control remoto\n"
    "BT-200777,Luis Alberto Vargas,natural,7788990 CB,\"Av. Ayacucho 890, Zona Norte\","
    "HWTC7F301777,gpon_ont,Huawei HG8245H,ONT GPON\n"
    "BT-200777,Luis Alberto Vargas,natural,7788990 CB,\"Av. Ayacucho 890, Zona Norte\","
    "PWR-12V-1777,power_adapter,12V 1.5A,Fuente de alimentación\n"
    "BT-200888,Rosa Elena Quiroga,natural,8899001 CB,\"Calle Jordán 321, Zona Central\","
    "HWTC7F302888,gpon_ont,Huawei HG8245H,ONT GPON\n"
    "BT-200888,Rosa Elena Quiroga,natural,8899001 CB,\"Calle Jordán 321, Zona Central\","
    "PWR-12V-2888,power_adapter,12V 1.5A,Fuente de alimentación\n"
    "BT-200888,Rosa Elena Quiroga,natural,8899001 CB,\"Calle Jordán 321, Zona Central\","
    "RMT-2888,remote,Kaon RC,Control remoto\n";

struct DemoCase {
    int modality;
    const char* contract;
    const char* customer;
    const char* person_type;
    const char* tax_id;
    const char* old_address;
    const char* new_address;
    std::vector<std::string> products;
};

} // namespace

DemoSummary seed_demo(Server& server) {
    Store& store = server.store();
    SyncService& sync = server.sync();
    AuthService& auth = server.auth();
    Procedure& procedure = server.procedure();
    ClockSource& clock = server.clock();
    const std::filesystem::path& data_dir = server.config().data_dir;
    DemoSummary summary;
    if (!store.users().empty()) {
        return summary;
    }
    const auto now = static_cast<std::int64_t>(clock.now_ms());
    const std::string password_hash = auth.hash_password(k_demo_password);
    auto add = [&](const char* name, Role role, const char* full_name) {
        User u;
        u.id = Id::random();
        u.name = name;
        u.role = role;
        u.created_at = now;
        u.full_name = full_name;
        u.unit = "Cochabamba";
        u.password_hash = password_hash;
        store.add_user(u);
        return u;
    };
    const User atc = add("atc.demo", Role::customer_service, "Carla Méndez");
    const User jac = add("jac.demo", Role::commercial_head, "Roberto Salinas");
    const User ev = add("ev.demo", Role::sales_executive, "Paola Gutiérrez");
    const User plataforma = add("plataforma.demo", Role::platform_officer, "María Luz Antezana");
    const User asesor = add("asesor.demo", Role::commercial_advisor, "Diego Arnez");
    const User bo = add("bo.demo", Role::back_office, "Verónica Claros");
    add("almacen.demo", Role::warehouse_clerk, "Silvia Rocha");
    const User supervisor = add("supervisor.demo", Role::supervisor, "Jorge Prado");
    const User techs[2] = {add("tec.mamani", Role::technician, "Juan Mamani"),
                           add("tec.quispe", Role::technician, "Pedro Quispe")};

    // Demo devices: a key pair each, enrolled with a one-time code like a real handheld.
    const auto dir = data_dir / "demo-devices";
    std::filesystem::create_directories(dir);
    for (const User& tech : techs) {
        auto kp = SigningKeyPair::generate();
        const std::string code = issue_enroll_code(store, tech.id, now, 60'000);
        std::string plain;
        for (char c : code) {
            if (c != '-') {
                plain += c;
            }
        }
        const auto device = store.enroll(blake2b_256("otsync-enroll-v1\n" + plain), kp.public_key,
                                         "demo " + tech.name, now);
        if (!device) {
            throw Error(ErrorCode::internal, "demo enrollment failed");
        }
        const auto path = dir / (tech.name + ".json");
        {
            std::ofstream out(path, std::ios::trunc);
            out << "{\"replica\":" << device->replica << ",\"user\":\"" << tech.id.hex()
                << "\",\"public_key\":\"" << to_base64(kp.public_key) << "\",\"secret_key\":\""
                << to_base64(kp.secret.bytes()) << "\",\"server_public_key\":\""
                << to_base64(sync.server_public_key()) << "\"}\n";
        }
        ::chmod(path.c_str(), 0600);
        summary.lines.push_back("device " + std::to_string(device->replica) + " of " + tech.name +
                                ": key in " + path.string());
    }

    const auto imported = import_inventory_csv(k_demo_inventory, store, now);
    if (!imported.problems.empty()) {
        throw Error(ErrorCode::internal, "demo inventory: " + imported.report());
    }

    const std::vector<DemoCase> cases{
        {1,
         "CT-100234",
         "María Fernanda Rojas",
         "natural",
         "4455667 CB",
         "Calle Sucre 455, Zona Central",
         "Av. Blanco Galindo km 6, Quillacollo",
         {"telefonia_fija", "internet"}},
        {2,
         "CT-100871",
         "Jorge Luis Camacho",
         "natural",
         "5566778 CB",
         "Av. América 1120",
         "Calle Los Pinos 33, Tiquipaya",
         {"duo_multipack"}},
        {3,
         "BT-200310",
         "Comercial Andina SRL",
         "legal",
         "1023456027",
         "Av. Petrolera km 3",
         "Calle España 210, Zona Central",
         {"internet"}},
        {4,
         "BT-200455",
         "Ana Gabriela Terrazas",
         "natural",
         "6677889 CB",
         "Calle Tarija 77, Sacaba",
         "Av. Aroma 512, Zona Sud",
         {"internet", "tv_cable"}},
        // Its field work is done below: a handover waits for the warehouse.
        {4,
         "BT-200888",
         "Rosa Elena Quiroga",
         "natural",
         "8899001 CB",
         "Calle Jordán 321, Zona Central",
         "Av. Papa Paulo 1450, Zona Norte",
         {"internet"}},
    };
    std::optional<Id> visited_case;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const DemoCase& dc = cases[i];
        const bool boot = dc.modality >= 3; // BOOT → COMTECO: sales executive, platform, advisor
        const User& opener = boot ? ev : atc;
        const User& router = boot ? plataforma : jac;
        const User& reviewer = boot ? asesor : ev;
        OpenCaseCmd opening;
        opening.modality = dc.modality;
        opening.contract = dc.contract;
        opening.customer_name = dc.customer;
        opening.person_type = dc.person_type;
        opening.tax_id = dc.tax_id;
        opening.reference_cell = "7071" + std::to_string(2000 + i);
        opening.contact_hours = "08:00-12:00";
        opening.products = dc.products;
        opening.old_address = dc.old_address;
        opening.new_address = dc.new_address;
        const Id c = procedure.cases().open_case(opener, opening);
        procedure.cases().route_case(router, c, {reviewer.name});
        if (!boot) {
            procedure.cases().contact(reviewer, c, {});
        }
        procedure.cases().feasibility(reviewer, c,
                                      {.feasible = true, .note = "zona con cobertura"});
        RequirementsCmd met;
        const auto person =
            std::string(dc.person_type) == "legal" ? PersonType::legal : PersonType::natural;
        for (const auto& req : requirements_for(person, dc.modality)) {
            met.met.emplace_back(req.code);
        }
        procedure.cases().requirements(reviewer, c, met);
        procedure.cases().approve(reviewer, c, {});
        if (i == 4) {
            visited_case = c;
        }
        procedure.cases().issue_ots(bo, c,
                                    {.technician = techs[i % 2].name,
                                     .window_start = now + 3600'000,
                                     .window_end = now + 5 * 3600'000,
                                     .zone = "Cercado"});
        summary.lines.push_back("case modality " + std::to_string(dc.modality) + " (" +
                                dc.contract + ", " + dc.customer + ") assigned to " +
                                techs[i % 2].name);
    }
    if (visited_case) {
        // tec.mamani's visit on BT-200888, as his handheld would have synced it: the GPON,
        // its power adapter and the remote collected (Anexo 4), signed, both OTs completed,
        // and a handover for the warehouse.
        const User& tech = techs[0];
        const Id handover = Id::random();
        const std::string& png = demo_signature_png();
        const Hash256 image =
            attachment::blob_hash({reinterpret_cast<const std::uint8_t*>(png.data()), png.size()});
        const Bytes image_ref{{image.begin(), image.end()}};
        std::vector<BlobRef> refs; // what names the image: the OTs, their rows, the handover
        std::vector<std::pair<Id, std::string>> delivered;
        const auto results =
            sync.submit(tech.id, Role::technician, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                std::vector<Op> ops;
                auto status = [&](const Id& ot, const char* to, std::optional<OpId>& prev) {
                    Op op = m.set_status(r, EntityType::work_order, ot, "status", text(to));
                    if (prev) {
                        op.observed = {*prev};
                    }
                    prev = op.id;
                    ops.push_back(std::move(op));
                };
                for (const Id& ot : ots_of_case(r, *visited_case)) {
                    std::optional<OpId> prev;
                    status(ot, "en_route", prev);
                    status(ot, "on_site", prev);
                    const auto expected =
                        r.elements(EntityType::work_order, ot, "expected_equipment");
                    std::string rows;
                    for (const auto& v : expected) {
                        const std::string serial = std::get<std::string>(v);
                        const Id item = Id::collected_item(ot, serial);
                        const auto T = EntityType::collected_item;
                        ops.push_back(m.set(T, item, "work_order", ot));
                        ops.push_back(m.set(T, item, "serial", text(serial)));
                        ops.push_back(m.set(T, item, "reason", text("migration")));
                        ops.push_back(
                            m.set(T, item, "description",
                                  text(text_of(r, EntityType::equipment,
                                               Id::natural("equipment", serial), "description"))));
                        ops.push_back(m.set(T, item, "collected_at", Timestamp{now}));
                        ops.push_back(m.add(EntityType::handover, handover, "rows", item));
                        ops.push_back(m.set(T, item, "handover", handover));
                        rows += item.hex() + " " + serial + "\n";
                        delivered.emplace_back(item, serial);
                    }
                    if (!expected.empty()) {
                        const Hash256 h = blake2b_256(rows);
                        const Id signature = Id::random();
                        ops.push_back(
                            m.set(EntityType::work_order, ot, "signature_ref", signature));
                        ops.push_back(
                            m.set(EntityType::work_order, ot, "signature_blob", image_ref));
                        refs.push_back({image, attachment::Kind::customer_signature,
                                        EntityType::work_order, ot, ""});
                        for (const auto& v : expected) { // each row carries the signature
                            const Id item = Id::collected_item(ot, std::get<std::string>(v));
                            ops.push_back(m.set(EntityType::collected_item, item, "signature_ref",
                                                signature));
                            ops.push_back(m.set(EntityType::collected_item, item, "signature_blob",
                                                image_ref));
                            refs.push_back({image, attachment::Kind::customer_signature,
                                            EntityType::collected_item, item, ""});
                        }
                        ops.push_back(m.set(EntityType::work_order, ot, "signed_rows_hash",
                                            Bytes{{h.begin(), h.end()}}));
                    }
                    ops.push_back(
                        m.set(EntityType::work_order, ot, "completed_at", Timestamp{now}));
                    status(ot, "completed", prev);
                }
                const auto H = EntityType::handover;
                ops.push_back(m.set(H, handover, "technician", tech.id));
                ops.push_back(m.set(H, handover, "date", Timestamp{now}));
                ops.push_back(m.set(H, handover, "zone", text("Cercado")));
                ops.push_back(m.set(H, handover, "delivered_by", text(tech.full_name)));
                Op draft = m.set(H, handover, "status", text("draft"));
                Op deliver = m.set(H, handover, "status", text("delivered"));
                deliver.observed = {draft.id};
                ops.push_back(std::move(draft));
                // The delivery act: the technician signs over the handover's rows.
                std::sort(delivered.begin(), delivered.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; });
                const Hash256 over = rows_hash(delivered);
                ops.push_back(m.set(H, handover, "technician_signature_ref", Id::random()));
                ops.push_back(m.set(H, handover, "technician_signature_blob", image_ref));
                ops.push_back(
                    m.set(H, handover, "delivered_rows_hash", Bytes{{over.begin(), over.end()}}));
                refs.push_back({image, attachment::Kind::technician_signature, H, handover, ""});
                ops.push_back(std::move(deliver));
                return ops;
            });
        for (const auto& r : results) {
            if (r.status != OpStatus::accepted) {
                throw Error(r.code, "demo visit rejected: " + r.message);
            }
        }
        // The images, as the handheld's upload would have left them.
        sync.keep_blob(png, attachment::MediaType::png, refs);
        summary.lines.push_back("handover " + handover.hex() +
                                " (tec.mamani, 3 items of BT-200888) waits for the warehouse");
    }
    (void)supervisor;
    summary.lines.push_back(
        "contract BT-200777 (Luis Alberto Vargas, modality 4) is in the inventory, no case yet");
    summary.lines.push_back(std::string("users (password ") + k_demo_password +
                            "): atc.demo, jac.demo, ev.demo, plataforma.demo, asesor.demo, "
                            "bo.demo, almacen.demo, supervisor.demo, tec.mamani, tec.quispe");
    summary.seeded = true;
    return summary;
}

} // namespace otsync::server
