// The field permission table (role × entity field × op kind, docs/architecture.md §3) as the server
// enforces it: for every role, every field of every entity and every op kind the field
// takes, an op submitted through the sync service is refused as a permission matter
// exactly when the table in shared/ says so. Other refusals (a technician's scope, a
// transition) may follow for permitted ops; they never say the role may not write.
#include "sync_fixture.hpp"

#include "otsync/model.hpp"

using namespace otsync;
using namespace otsync::test;

namespace {

Value sample(const FieldDef& f) {
    if (!f.allowed.empty()) {
        return text(
            std::string(f.lifecycle ? f.lifecycle->transitions.front().to : f.allowed.front()));
    }
    switch (f.type) {
    case ValueType::boolean:
        return true;
    case ValueType::int64:
        return std::int64_t{f.min < f.max ? f.min : 1};
    case ValueType::money:
        return Money{100};
    case ValueType::text:
        return text("x");
    case ValueType::bytes:
        return Bytes{{1, 2, 3}};
    case ValueType::id:
        return Id::random();
    case ValueType::timestamp:
        return Timestamp{1'795'000'000'000};
    default:
        return {};
    }
}

} // namespace

TEST_CASE("every role × every field × every op kind: refused exactly where the table says") {
    Fixture f;
    std::size_t denied = 0, allowed = 0;
    for (std::uint8_t ri = 0; ri < k_role_count; ++ri) {
        const auto role = static_cast<Role>(ri);
        const Id user = f.add_user("user." + std::string(to_string(role)), role);
        for (std::uint8_t ti = k_entity_type_min; ti <= k_entity_type_max; ++ti) {
            const auto type = static_cast<EntityType>(ti);
            for (const auto& field : fields_of(type)) {
                std::vector<OpKind> kinds;
                switch (field.kind) {
                case FieldKind::register_:
                    kinds = {OpKind::set};
                    break;
                case FieldKind::set:
                    kinds = {OpKind::add, OpKind::remove};
                    break;
                case FieldKind::log:
                    kinds = {OpKind::event};
                    break;
                }
                for (const OpKind kind : kinds) {
                    CAPTURE(to_string(role));
                    CAPTURE(to_string(type));
                    CAPTURE(field.name);
                    CAPTURE(to_string(kind));
                    const auto results = f.service->submit(
                        user, role, [&](crdt::OpMaker& m, const crdt::Replica& r) {
                            const Id entity = Id::random();
                            Op op = kind == OpKind::set
                                        ? m.set(type, entity, field.name, sample(field))
                                    : kind == OpKind::add
                                        ? m.add(type, entity, field.name, sample(field))
                                    : kind == OpKind::remove
                                        ? m.remove(r, type, entity, field.name, sample(field))
                                        : m.event(type, entity, field.name, sample(field));
                            return std::vector<Op>{op};
                        });
                    REQUIRE(results.size() == 1);
                    const auto& res = results.front();
                    const bool role_refused = res.status == OpStatus::rejected &&
                                              res.code == ErrorCode::permission_denied &&
                                              res.message.find(" may not ") != std::string::npos;
                    CAPTURE(res.message);
                    CHECK(role_refused == !permitted(role, field, kind));
                    (role_refused ? denied : allowed)++;
                }
            }
        }
    }
    // Both sides of the table are exercised.
    CHECK(denied > 200);
    CHECK(allowed > 200);
}
