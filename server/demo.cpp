// Demo data; see demo.hpp.
#include "demo.hpp"

#include "otsync/model.hpp"

#include <fstream>
#include <sys/stat.h>

namespace otsync::server {

namespace {

struct DemoEquipment {
    const char* serial;
    const char* kind;
    const char* model;
};

struct DemoCase {
    int modality;
    const char* contract;
    const char* customer;
    const char* person_type;
    const char* old_address;
    const char* new_address;
    std::vector<const char*> products;
    std::vector<DemoEquipment> equipment;
};

} // namespace

DemoSummary seed_demo(Store& store, SyncService& sync, ClockSource& clock,
                      const std::filesystem::path& data_dir) {
    DemoSummary summary;
    if (!store.users().empty()) {
        return summary;
    }
    const auto now = static_cast<std::int64_t>(clock.now_ms());
    auto add = [&](const char* name, Role role) {
        User u;
        u.id = Id::random();
        u.name = name;
        u.role = role;
        u.created_at = now;
        store.add_user(u);
        return u.id;
    };
    add("atc.demo", Role::customer_service);
    add("jac.demo", Role::commercial_head);
    add("ev.demo", Role::sales_executive);
    add("plataforma.demo", Role::platform_officer);
    add("asesor.demo", Role::commercial_advisor);
    const Id back_office = add("bo.demo", Role::back_office);
    add("almacen.demo", Role::warehouse_clerk);
    const Id supervisor = add("supervisor.demo", Role::supervisor);
    const Id techs[2] = {add("tec.mamani", Role::technician), add("tec.quispe", Role::technician)};
    const char* tech_names[2] = {"tec.mamani", "tec.quispe"};

    // Demo devices: a key pair each, enrolled with a one-time code like a real handheld.
    const auto dir = data_dir / "demo-devices";
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 2; ++i) {
        auto kp = SigningKeyPair::generate();
        const std::string code = issue_enroll_code(store, techs[i], now, 60'000);
        const auto device = store.enroll(blake2b_256("otsync-enroll-v1\n" +
                                                     [&] {
                                                         std::string n;
                                                         for (char c : code) {
                                                             if (c != '-') {
                                                                 n += c;
                                                             }
                                                         }
                                                         return n;
                                                     }()),
                                         kp.public_key, std::string("demo ") + tech_names[i], now);
        if (!device) {
            throw Error(ErrorCode::internal, "demo enrollment failed");
        }
        const auto path = dir / (std::string(tech_names[i]) + ".json");
        {
            std::ofstream out(path, std::ios::trunc);
            out << "{\"replica\":" << device->replica << ",\"user\":\"" << techs[i].hex()
                << "\",\"public_key\":\"" << to_base64(kp.public_key) << "\",\"secret_key\":\""
                << to_base64(kp.secret.bytes()) << "\",\"server_public_key\":\""
                << to_base64(sync.server_public_key()) << "\"}\n";
        }
        ::chmod(path.c_str(), 0600);
        summary.lines.push_back(std::string("device ") + std::to_string(device->replica) + " of " +
                                tech_names[i] + ": key in " + path.string());
    }

    const std::vector<DemoCase> cases{
        {1,
         "CT-100234",
         "María Fernanda Rojas",
         "natural",
         "Calle Sucre 455, Zona Central",
         "Av. Blanco Galindo km 6, Quillacollo",
         {"telefonia_fija", "internet"},
         {{"CPR-AD1234567", "copper_modem", "ZTE ZXV10 H108N"}}},
        {2,
         "CT-100871",
         "Jorge Luis Camacho",
         "natural",
         "Av. América 1120",
         "Calle Los Pinos 33, Tiquipaya",
         {"duo_multipack"},
         {{"ZTEGC8A10011", "gpon_ont", "ZTE F660"}, {"DEC-5510022", "decoder", "Kaon KSTB"}}},
        {3,
         "BT-200310",
         "Comercial Andina SRL",
         "legal",
         "Av. Petrolera km 3",
         "Calle España 210, Zona Central",
         {"internet"},
         {{"HWTC7F300455", "gpon_ont", "Huawei HG8245H"}}},
        {4,
         "BT-200455",
         "Ana Gabriela Terrazas",
         "natural",
         "Calle Tarija 77, Sacaba",
         "Av. Aroma 512, Zona Sud",
         {"internet", "tv_cable"},
         {{"HWTC7F300999", "gpon_ont", "Huawei HG8245H"},
          {"PWR-12V-0999", "power_adapter", "12V 1.5A"},
          {"RMT-0999", "remote", "Kaon RC"}}},
    };

    int ot_count = 0;
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const DemoCase& dc = cases[ci];
        const Id case_id = Id::random();
        const Id tech = techs[ci % 2];
        const auto results = sync.submit(
            supervisor, Role::supervisor, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                std::vector<Op> ops;
                const auto C = EntityType::case_file;
                auto status = [&](const char* s) {
                    // Each status write names the one it replaces, as a client would.
                    Op op = m.set(C, case_id, "status", text(s));
                    if (!ops.empty()) {
                        for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
                            if (it->entity_type == C && it->entity == case_id &&
                                it->field == field_def(C, "status").id) {
                                op.observed = {it->id};
                                break;
                            }
                        }
                    }
                    ops.push_back(std::move(op));
                };
                (void)r;
                status("opened");
                ops.push_back(m.set(C, case_id, "modality", std::int64_t{dc.modality}));
                ops.push_back(m.set(C, case_id, "contract", text(dc.contract)));
                ops.push_back(m.set(C, case_id, "customer_name", text(dc.customer)));
                ops.push_back(m.set(C, case_id, "person_type", text(dc.person_type)));
                ops.push_back(
                    m.set(C, case_id, "reference_cell", text("7071" + std::to_string(2000 + ci))));
                ops.push_back(m.set(C, case_id, "contact_hours", text("08:00-12:00")));
                ops.push_back(m.set(C, case_id, "old_address", text(dc.old_address)));
                ops.push_back(m.set(C, case_id, "new_address", text(dc.new_address)));
                ops.push_back(m.set(C, case_id, "opened_at", Timestamp{now}));
                std::vector<std::string_view> products;
                for (const char* p : dc.products) {
                    ops.push_back(m.add(C, case_id, "products", text(p)));
                    products.emplace_back(p);
                }
                ops.push_back(
                    m.set(C, case_id, "fee", transfer_fee(products, default_fee_table())));
                const auto person = std::string(dc.person_type) == "legal" ? PersonType::legal
                                                                           : PersonType::natural;
                for (const auto& req : requirements_for(person, dc.modality)) {
                    ops.push_back(m.add(C, case_id, "requirements", text(std::string(req.code))));
                }
                for (const auto& step : steps_for(dc.modality)) {
                    if (step.role == Role::technician) {
                        break;
                    }
                    if (std::string_view(step.label_es).find("no es posible") !=
                        std::string_view::npos) {
                        continue;
                    }
                    ops.push_back(m.event(C, case_id, "steps", text(std::string(step.code))));
                }
                status("routed");
                status("in_review");
                ops.push_back(m.set(C, case_id, "feasible", true));
                status("approved");
                status("in_progress");
                for (const auto& e : dc.equipment) {
                    const Id eq = Id::natural("equipment", e.serial);
                    ops.push_back(m.set(EntityType::equipment, eq, "serial", text(e.serial)));
                    ops.push_back(m.set(EntityType::equipment, eq, "kind", text(e.kind)));
                    ops.push_back(m.set(EntityType::equipment, eq, "model", text(e.model)));
                    ops.push_back(m.set(EntityType::equipment, eq, "contract", text(dc.contract)));
                    ops.push_back(m.event(EntityType::equipment, eq, "custody", text("customer")));
                }
                for (const auto kind : work_orders_for(dc.modality)) {
                    const Id ot = Id::random();
                    ++ot_count;
                    ops.push_back(m.set(EntityType::work_order, ot, "case", case_id));
                    ops.push_back(
                        m.set(EntityType::work_order, ot, "kind", text(std::string(kind))));
                    ops.push_back(
                        m.set(EntityType::work_order, ot, "address", text(dc.new_address)));
                    ops.push_back(m.set(EntityType::work_order, ot, "zone", text("Cercado")));
                    ops.push_back(m.set(EntityType::work_order, ot, "issued_at", Timestamp{now}));
                    ops.push_back(m.set(EntityType::work_order, ot, "window_start",
                                        Timestamp{now + 3600'000}));
                    ops.push_back(m.set(EntityType::work_order, ot, "window_end",
                                        Timestamp{now + 5 * 3600'000}));
                    Op issued = m.set(EntityType::work_order, ot, "status", text("issued"));
                    const OpId issued_id = issued.id;
                    ops.push_back(std::move(issued));
                    if (kind != "install_ftth" && kind != "install_copper") {
                        for (const auto& e : dc.equipment) {
                            ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                                text(e.serial)));
                        }
                    } else if (dc.modality == 1) {
                        // Modality 1 installs FTTH and collects the copper equipment on one OT.
                        for (const auto& e : dc.equipment) {
                            ops.push_back(m.add(EntityType::work_order, ot, "expected_equipment",
                                                text(e.serial)));
                        }
                    }
                    ops.push_back(m.set(EntityType::work_order, ot, "technician", tech));
                    Op assigned = m.set(EntityType::work_order, ot, "status", text("assigned"));
                    assigned.observed = {issued_id};
                    ops.push_back(std::move(assigned));
                }
                return ops;
            });
        for (const auto& r : results) {
            if (r.status != OpStatus::accepted) {
                throw Error(r.code, "demo data rejected: " + r.message);
            }
        }
        summary.lines.push_back("case modality " + std::to_string(dc.modality) + " (" +
                                dc.contract + ", " + dc.customer + ") assigned to " +
                                tech_names[ci % 2]);
    }
    (void)back_office;
    summary.lines.push_back(std::to_string(ot_count) +
                            " OTs issued; users: atc.demo, jac.demo, "
                            "ev.demo, plataforma.demo, asesor.demo, bo.demo, almacen.demo, "
                            "supervisor.demo, tec.mamani, tec.quispe");
    summary.seeded = true;
    return summary;
}

} // namespace otsync::server
