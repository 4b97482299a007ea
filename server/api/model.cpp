// GET /v1/model: the case model of shared/ (roles, lifecycles, labels, modalities and their
// steps, fields and who writes them) as JSON, so the pages hold no copy of those tables.
#include "api/route.hpp"

#include <cstdio>
#include <span>

namespace otsync::server::api {

namespace {

void roles_array(JsonWriter& w, RoleMask mask) {
    w.StartArray();
    for (std::uint8_t i = 0; i < k_role_count; ++i) {
        if (mask & role_bit(static_cast<Role>(i))) {
            str(w, to_string(static_cast<Role>(i)));
        }
    }
    w.EndArray();
}

/// {"code","label","word"}: the pages show the label, otsync-tech prints the word.
void label_object(JsonWriter& w, std::string_view code, std::string_view label,
                  std::string_view word) {
    w.StartObject();
    member(w, "code", code);
    member(w, "label", label);
    member(w, "word", word);
    w.EndObject();
}

void labels_array(JsonWriter& w, std::span<const CodeLabel> table) {
    w.StartArray();
    for (const auto& l : table) {
        label_object(w, l.code, l.label_es, l.word_es);
    }
    w.EndArray();
}

/// Every entity type, in wire order.
std::vector<EntityType> all_entity_types() {
    std::vector<EntityType> out;
    for (auto t = k_entity_type_min; t <= k_entity_type_max; ++t) {
        out.push_back(static_cast<EntityType>(t));
    }
    return out;
}

std::string render_model() {
    return json_object([&](JsonWriter& w) {
        w.Key("roles");
        w.StartArray();
        for (std::uint8_t i = 0; i < k_role_count; ++i) {
            const auto r = static_cast<Role>(i);
            w.StartObject();
            member(w, "code", to_string(r));
            member(w, "label", label_es(r));
            w.EndObject();
        }
        w.EndArray();

        w.Key("lifecycles");
        w.StartArray();
        for (const EntityType t : all_entity_types()) {
            const Lifecycle* lc = lifecycle_of(t);
            if (!lc) {
                continue;
            }
            const auto labels = state_labels(t);
            w.StartObject();
            member(w, "entity", to_string(t));
            w.Key("states");
            w.StartArray();
            for (const auto state : lc->states) {
                const CodeLabel* l = find_label(labels, state);
                label_object(w, state, l ? l->label_es : state, l ? l->word_es : state);
            }
            w.EndArray();
            w.Key("finals");
            w.StartArray();
            for (const auto f : lc->finals) {
                str(w, f);
            }
            w.EndArray();
            objects_member(w, "transitions", lc->transitions, [&](const auto& tr) {
                member(w, "from", tr.from);
                member(w, "to", tr.to);
                w.Key("roles");
                roles_array(w, tr.roles);
            });
            w.EndObject();
        }
        w.EndArray();

        w.Key("ot_kinds");
        labels_array(w, ot_kind_labels());
        w.Key("products");
        labels_array(w, product_labels());
        w.Key("receipts");
        labels_array(w, receipt_labels());
        w.Key("line_statuses");
        labels_array(w, line_status_labels());

        w.Key("modalities");
        w.StartArray();
        for (const auto& m : modality_labels()) {
            const int n = std::stoi(std::string(m.code));
            w.StartObject();
            member(w, "code", n);
            member(w, "label", m.label_es);
            member(w, "word", m.word_es);
            w.Key("work_orders");
            w.StartArray();
            for (const auto kind : work_orders_for(n)) {
                str(w, kind);
            }
            w.EndArray();
            objects_member(w, "steps", steps_for(n), [&](const auto& step) {
                member(w, "code", step.code);
                member(w, "role", to_string(step.role));
                member(w, "label", step.label_es);
            });
            w.EndObject();
        }
        w.EndArray();

        w.Key("fields");
        w.StartObject();
        for (const EntityType t : all_entity_types()) {
            w.Key(to_string(t).data(), static_cast<rapidjson::SizeType>(to_string(t).size()));
            w.StartArray();
            for (const auto& f : fields_of(t)) {
                w.StartObject();
                member(w, "name", f.name);
                member(w, "label", f.label_es);
                member(w, "type", to_string(f.type));
                if (f.max_bytes) {
                    member(w, "max_bytes", f.max_bytes);
                }
                w.Key("writers");
                roles_array(w, f.writers);
                w.EndObject();
            }
            w.EndArray();
        }
        w.EndObject();
    });
}

/// The model never changes while the server runs: rendered once, with its ETag.
Reply model_reply(const RouteRequest& req) {
    static const std::string body = render_model();
    static const std::string etag = [] {
        std::uint64_t h = 14695981039346656037ull; // FNV-1a
        for (const unsigned char c : body) {
            h = (h ^ c) * 1099511628211ull;
        }
        char buf[24];
        std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
        return std::string(buf);
    }();
    const auto inm = req.headers.find("if-none-match");
    Reply reply = inm != req.headers.end() && inm->second == etag
                      ? Reply{304, "application/json", ""}
                      : json(body);
    reply.headers.emplace_back("ETag", etag);
    reply.headers.emplace_back("Cache-Control", "private, max-age=600");
    return reply;
}

} // namespace

void add_model_routes(std::vector<Route>& out) {
    out.push_back(
        {"GET", "/v1/model", k_people, [](Procedure&, Ctx& c) { return model_reply(c.req); }});
}

} // namespace otsync::server::api
