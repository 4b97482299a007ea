// See render.hpp.
#include "api/render.hpp"

#include <map>

namespace otsync::server::api {

void write_line(JsonWriter& w, const SerialLine& l, const Directory::Snapshot& names) {
    w.StartObject();
    member(w, "serial", l.serial);
    member(w, "status", l.status);
    member(w, "expected", l.expected);
    member(w, "settled", l.settled);
    member(w, "collected_twice", l.collected_twice);
    if (!l.also_on.empty()) {
        w.Key("also_on");
        w.StartArray();
        for (const auto& o : l.also_on) {
            str(w, o.hex());
        }
        w.EndArray();
    }
    if (l.item) {
        member(w, "item", l.item->hex());
        member(w, "reason", l.reason);
        member(w, "defect", l.defect);
        member(w, "description", l.description);
        member(w, "observations", l.observations);
        member(w, "collected_at", l.collected_at);
        member(w, "receipt", l.receipt);
        member(w, "receipt_note", l.receipt_note);
        member(w, "handover", l.handover);
        w.Key("collected_by");
        if (l.collected_by) {
            str(w, names.label(*l.collected_by));
        } else {
            w.Null();
        }
        member(w, "overdue", l.overdue);
    }
    member(w, "resolution", l.resolution);
    member(w, "missing_reason", l.missing_reason);
    w.EndObject();
}

void write_reconciliation(JsonWriter& w, const OtReconciliation& rec,
                          const Directory::Snapshot& names) {
    w.StartObject();
    member(w, "ot", rec.ot);
    member(w, "case", rec.case_id);
    member(w, "kind", rec.kind);
    member(w, "status", rec.status);
    w.Key("mode");
    str(w, rec.mode == OtMode::collect  ? "collect"
           : rec.mode == OtMode::verify ? "verify"
                                        : "none");
    member(w, "signature_mismatch", rec.signature_mismatch);
    std::map<std::string, int> counts;
    for (const auto& l : rec.lines) {
        counts[l.status]++;
        if (l.collected_twice) {
            counts["collected_twice"]++;
        }
        if (l.overdue) {
            counts["overdue"]++;
        }
    }
    w.Key("counts");
    w.StartObject();
    for (const char* k :
         {"matched", "unexpected", "missing", "damaged", "pending", "collected_twice", "overdue"}) {
        w.Key(k);
        w.Int(counts[k]);
    }
    w.EndObject();
    w.Key("lines");
    w.StartArray();
    for (const auto& l : rec.lines) {
        write_line(w, l, names);
    }
    w.EndArray();
    w.EndObject();
}

} // namespace otsync::server::api
