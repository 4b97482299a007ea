// The case model's tables: registry consistency, permissions, transitions, fees, steps,
// the Spanish names of codes.
#include "otsync/error.hpp"
#include "otsync/model.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>

using namespace otsync;

TEST_CASE("every entity's field ids are dense from 1 and names are unique") {
    for (std::uint8_t t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        const auto type = static_cast<EntityType>(t);
        CAPTURE(to_string(type));
        const auto fields = fields_of(type);
        REQUIRE(!fields.empty());
        std::set<std::string_view> names;
        for (std::size_t i = 0; i < fields.size(); ++i) {
            CHECK(fields[i].id == i + 1);
            CHECK(fields[i].entity == type);
            CHECK(names.insert(fields[i].name).second);
            CHECK(find_field(type, fields[i].name) == &fields[i]);
            if (fields[i].type == ValueType::text) {
                CHECK(fields[i].max_bytes > 0);
            }
            if (fields[i].lifecycle) {
                CHECK(fields[i].kind == FieldKind::register_);
            }
        }
        CHECK(entity_type_from_string(to_string(type)) == type);
    }
}

TEST_CASE("permission table: deny by default, roles as the procedure says") {
    const auto& status = field_def(EntityType::work_order, "status");
    const auto& expected = field_def(EntityType::work_order, "expected_equipment");
    const auto& receipt = field_def(EntityType::collected_item, "receipt");
    const auto& serial = field_def(EntityType::collected_item, "serial");
    const auto& override_ = field_def(EntityType::case_file, "requirements_override");
    CHECK(permitted(Role::technician, status, OpKind::set));
    CHECK_FALSE(permitted(Role::technician, status, OpKind::add)); // wrong kind
    CHECK_FALSE(permitted(Role::technician, expected, OpKind::add));
    CHECK(permitted(Role::back_office, expected, OpKind::add));
    CHECK(permitted(Role::back_office, expected, OpKind::remove));
    CHECK(permitted(Role::technician, serial, OpKind::set));
    CHECK_FALSE(permitted(Role::warehouse_clerk, serial, OpKind::set));
    CHECK(permitted(Role::warehouse_clerk, receipt, OpKind::set));
    CHECK_FALSE(permitted(Role::technician, receipt, OpKind::set));
    CHECK(permitted(Role::supervisor, override_, OpKind::set));
    CHECK_FALSE(permitted(Role::sales_executive, override_, OpKind::set));
    CHECK_FALSE(permitted(Role::customer_service, field_def(EntityType::case_file, "gpon_data"),
                          OpKind::set));
    // A technician's scope leaves out the Anexo 2 checklist and the fee.
    CHECK_FALSE(visible_to_technician(field_def(EntityType::case_file, "requirements")));
    CHECK_FALSE(visible_to_technician(field_def(EntityType::case_file, "fee")));
    CHECK(visible_to_technician(field_def(EntityType::case_file, "new_address")));
    CHECK(field_def(EntityType::case_file, "tax_id").sensitive);
}

TEST_CASE("transition tables") {
    const auto& ot = work_order_lifecycle();
    CHECK(transition_allowed(ot, "", "issued", Role::back_office));
    CHECK(transition_allowed(ot, "issued", "assigned", Role::back_office));
    CHECK(transition_allowed(ot, "assigned", "assigned", Role::back_office)); // reassign
    CHECK(transition_allowed(ot, "on_site", "completed", Role::technician));
    CHECK_FALSE(transition_allowed(ot, "on_site", "completed", Role::warehouse_clerk));
    CHECK_FALSE(transition_allowed(ot, "completed", "cancelled", Role::back_office));
    CHECK_FALSE(transition_allowed(ot, "issued", "completed", Role::technician));
    CHECK(is_final(ot, "completed"));
    CHECK(is_final(ot, "cancelled"));
    CHECK_FALSE(is_final(ot, "failed"));
    const auto& c = case_lifecycle();
    CHECK(transition_allowed(c, "", "opened", Role::customer_service));
    CHECK(transition_allowed(c, "opened", "routed", Role::commercial_head));
    CHECK(transition_allowed(c, "opened", "routed", Role::platform_officer));
    CHECK(transition_allowed(c, "in_review", "rejected", Role::sales_executive));
    CHECK(transition_allowed(c, "in_progress", "closed", Role::system));
    CHECK_FALSE(transition_allowed(c, "in_progress", "closed", Role::back_office));
    for (const auto& t : c.transitions) {
        CHECK((t.from.empty() ||
               std::find(c.states.begin(), c.states.end(), t.from) != c.states.end()));
        CHECK(std::find(c.states.begin(), c.states.end(), t.to) != c.states.end());
    }
}

TEST_CASE("Anexo 2 requirements by person type and modality") {
    CHECK(requirements_for(PersonType::natural, 1).size() == 5);
    CHECK(requirements_for(PersonType::legal, 2).size() == 9);
    auto has = [](std::span<const Requirement> reqs, std::string_view code) {
        for (const auto& r : reqs) {
            if (r.code == code) {
                return true;
            }
        }
        return false;
    };
    CHECK(has(requirements_for(PersonType::natural, 3), "formulario_plan_b"));
    CHECK(has(requirements_for(PersonType::legal, 4), "fotocopia_ci"));
    CHECK(has(requirements_for(PersonType::legal, 4), "fotocopia_nit"));
    CHECK_FALSE(has(requirements_for(PersonType::natural, 1), "formulario_plan_b"));
}

TEST_CASE("transfer fee (Anexo 2, April 2019) in centavos") {
    const auto table = default_fee_table();
    std::vector<std::string_view> phone{"telefonia_fija"};
    CHECK(transfer_fee(phone, table).centavos == 14628);
    std::vector<std::string_view> two{"telefonia_fija", "internet"};
    CHECK(transfer_fee(two, table).centavos == 34628);
    std::vector<std::string_view> bundle{"duo_multipack", "internet", "tv_cable"};
    CHECK(transfer_fee(bundle, table).centavos == 20000);
    std::vector<std::string_view> bad{"satellite"};
    CHECK_THROWS_AS(transfer_fee(bad, table), Error);
}

TEST_CASE("every modality has its steps and OTs") {
    for (int m = 1; m <= 4; ++m) {
        CAPTURE(m);
        CHECK(steps_for(m).size() >= 10);
        CHECK(!work_orders_for(m).empty());
        for (const auto& s : steps_for(m)) {
            CHECK(s.code.substr(0, 2) == "m" + std::to_string(m));
        }
    }
    CHECK(work_orders_for(4)[0] == "withdraw_boot");
    CHECK(work_orders_for(4)[1] == "install_copper");
    CHECK(steps_for(0).empty());
}

TEST_CASE("one OT of each modality carries the contract's equipment; its kind says what is done") {
    const auto kinds = field_def(EntityType::work_order, "kind").allowed;
    for (int m = 1; m <= 4; ++m) {
        CAPTURE(m);
        int carrying = 0;
        for (const auto kind : kinds) {
            CAPTURE(kind);
            const auto issued = work_orders_for(m);
            if (ot_equipment(m, kind).carries) {
                ++carrying;
                CHECK(std::find(issued.begin(), issued.end(), kind) != issued.end());
                CHECK(ot_equipment(m, kind).mode != OtMode::none);
            }
        }
        CHECK(carrying == 1);
    }
    struct Row {
        int modality;
        std::string_view kind;
        bool carries;
        OtMode mode;
    };
    const Row rows[] = {
        {1, "install_ftth", true, OtMode::collect},
        {2, "relocate_ftth", true, OtMode::verify},
        {3, "withdraw_boot", false, OtMode::collect},
        {3, "relocate_ftth", true, OtMode::verify},
        {4, "withdraw_boot", true, OtMode::collect},
        {4, "install_copper", false, OtMode::none},
        // the mode follows the kind whatever the modality; an unknown one carries nothing
        {0, "relocate_ftth", false, OtMode::verify},
        {5, "withdraw_boot", false, OtMode::collect},
        {1, "satellite", false, OtMode::none},
    };
    for (const auto& row : rows) {
        CAPTURE(row.modality);
        CAPTURE(row.kind);
        CHECK(ot_equipment(row.modality, row.kind).carries == row.carries);
        CHECK(ot_equipment(row.modality, row.kind).mode == row.mode);
    }
}

TEST_CASE("every code the model allows has its Spanish names") {
    auto labelled = [](std::span<const CodeLabel> table, std::span<const std::string_view> codes) {
        CHECK(table.size() == codes.size());
        for (auto code : codes) {
            CAPTURE(code);
            const CodeLabel* l = find_label(table, code);
            REQUIRE(l);
            CHECK(!l->label_es.empty());
            CHECK(!l->word_es.empty());
        }
    };
    for (auto t : {EntityType::case_file, EntityType::work_order, EntityType::handover,
                   EntityType::conflict}) {
        CAPTURE(to_string(t));
        const Lifecycle* lc = lifecycle_of(t);
        REQUIRE(lc);
        labelled(state_labels(t), lc->states);
    }
    CHECK(lifecycle_of(EntityType::equipment) == nullptr);
    CHECK(state_labels(EntityType::equipment).empty());
    labelled(ot_kind_labels(), field_def(EntityType::work_order, "kind").allowed);
    labelled(product_labels(), field_def(EntityType::case_file, "products").allowed);
    labelled(receipt_labels(), field_def(EntityType::collected_item, "receipt").allowed);
    labelled(reason_labels(), field_def(EntityType::collected_item, "reason").allowed);
    REQUIRE(modality_labels().size() == 4);
    for (int m = 1; m <= 4; ++m) {
        CHECK(modality_labels()[static_cast<std::size_t>(m - 1)].code == std::to_string(m));
    }
    // The fee table names the products as the pages do.
    for (const auto& row : default_fee_table()) {
        REQUIRE(find_label(product_labels(), row.product));
        CHECK(find_label(product_labels(), row.product)->label_es == row.label_es);
    }
    CHECK(find_label(state_labels(EntityType::work_order), "en_route")->word_es == "en camino");
    CHECK(find_label(ot_kind_labels(), "nope") == nullptr);
}

TEST_CASE("every line status the reconciliation writes has its Spanish names") {
    // The statuses server/procedure writes on a SerialLine (views.cpp reconciles an OT,
    // office.cpp adds the line of a signature that does not match), read from the sources
    // so that a new status cannot reach the pages without a label.
    const auto root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
    std::set<std::string> written;
    for (const char* file : {"server/procedure/views.cpp", "server/procedure/office.cpp"}) {
        CAPTURE(file);
        std::ifstream in(root / file);
        REQUIRE_MESSAGE(in, "cannot read ", (root / file).string());
        const std::string src{std::istreambuf_iterator<char>(in), {}};
        // Every string literal of a statement `line.status = …;` or `l.status = …;`.
        for (const std::string_view lhs :
             {std::string_view("line.status = "), std::string_view("l.status = ")}) {
            for (auto at = src.find(lhs); at != std::string::npos; at = src.find(lhs, at + 1)) {
                if (at > 0 && (std::isalnum(static_cast<unsigned char>(src[at - 1])) ||
                               src[at - 1] == '_' || src[at - 1] == '.')) {
                    continue; // rec.line.status, outline.status: not ours
                }
                const auto end = src.find(';', at);
                REQUIRE(end != std::string::npos);
                const std::string stmt = src.substr(at + lhs.size(), end - at - lhs.size());
                for (auto q = stmt.find('"'); q != std::string::npos; q = stmt.find('"', q + 1)) {
                    const auto close = stmt.find('"', q + 1);
                    REQUIRE(close != std::string::npos);
                    written.insert(stmt.substr(q + 1, close - q - 1));
                    q = close;
                }
            }
        }
    }
    // The scan sees the statuses the reconciliation is documented to write (views.hpp).
    for (const char* s : {"matched", "unexpected", "missing", "damaged", "pending"}) {
        CHECK_MESSAGE(written.count(s) == 1, "the scan of views.cpp did not find '", s, "'");
    }
    for (const auto& s : written) {
        CAPTURE(s);
        const CodeLabel* l = find_label(line_status_labels(), s);
        REQUIRE(l);
        CHECK(!l->label_es.empty());
        CHECK(!l->word_es.empty());
    }
    // And the table holds no status nothing writes.
    for (const auto& l : line_status_labels()) {
        CAPTURE(l.code);
        CHECK(written.count(std::string(l.code)) == 1);
    }
    // The labels the office pages showed before they took them from GET /v1/model.
    CHECK(find_label(line_status_labels(), "missing")->label_es == "Faltante");
    CHECK(find_label(line_status_labels(), "signature_mismatch")->label_es ==
          "La firma del cliente no corresponde a las filas");
}

TEST_CASE("the pages' status labels: every state of a lifecycle, per entity") {
    // The pages look a status up by entity (a cancelled OT is "Anulada", a cancelled case
    // "Anulado"); every state of every lifecycle has one, and the texts the pages showed
    // from their own copy are kept.
    for (std::uint8_t t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        const auto type = static_cast<EntityType>(t);
        CAPTURE(to_string(type));
        const Lifecycle* lc = lifecycle_of(type);
        if (!lc) {
            CHECK(state_labels(type).empty());
            continue;
        }
        for (auto state : lc->states) {
            CAPTURE(state);
            REQUIRE(find_label(state_labels(type), state));
        }
        for (auto final_state : lc->finals) {
            CHECK(find_label(state_labels(type), final_state));
        }
        for (const auto& tr : lc->transitions) {
            CHECK((tr.from.empty() || find_label(state_labels(type), tr.from)));
            CHECK(find_label(state_labels(type), tr.to));
        }
    }
    struct Shown {
        EntityType entity;
        std::string_view code, label;
    };
    const Shown shown[] = {
        {EntityType::case_file, "opened", "Abierto"},
        {EntityType::case_file, "routed", "Derivado"},
        {EntityType::case_file, "in_review", "En revisión"},
        {EntityType::case_file, "approved", "Aprobado"},
        {EntityType::case_file, "rejected", "Rechazado"},
        {EntityType::case_file, "in_progress", "En curso"},
        {EntityType::case_file, "closed", "Cerrado"},
        {EntityType::case_file, "cancelled", "Anulado"},
        {EntityType::work_order, "issued", "Emitida"},
        {EntityType::work_order, "assigned", "Asignada"},
        {EntityType::work_order, "en_route", "En camino"},
        {EntityType::work_order, "on_site", "En sitio"},
        {EntityType::work_order, "completed", "Concluida"},
        {EntityType::work_order, "failed", "Visita fallida"},
        {EntityType::work_order, "cancelled", "Anulada"},
        {EntityType::handover, "draft", "Borrador"},
        {EntityType::handover, "delivered", "Entregada"},
        {EntityType::handover, "received", "Recibida"},
    };
    for (const auto& s : shown) {
        CAPTURE(s.code);
        REQUIRE(find_label(state_labels(s.entity), s.code));
        CHECK(find_label(state_labels(s.entity), s.code)->label_es == s.label);
    }
}
