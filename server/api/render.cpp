// See render.hpp.
#include "api/render.hpp"

#include <map>

namespace otsync::server::api {

void write_line(JsonWriter& w, const SerialLine& l, const Directory::Snapshot& names) {
    w.StartObject();
    w.Key("serial");
    str(w, l.serial);
    w.Key("status");
    str(w, l.status);
    w.Key("expected");
    w.Bool(l.expected);
    w.Key("settled");
    w.Bool(l.settled);
    w.Key("collected_twice");
    w.Bool(l.collected_twice);
    if (!l.also_on.empty()) {
        w.Key("also_on");
        w.StartArray();
        for (const auto& o : l.also_on) {
            str(w, o.hex());
        }
        w.EndArray();
    }
    if (l.item) {
        w.Key("item");
        str(w, l.item->hex());
        w.Key("reason");
        str(w, l.reason);
        w.Key("defect");
        str(w, l.defect);
        w.Key("description");
        str(w, l.description);
        w.Key("observations");
        str(w, l.observations);
        w.Key("collected_at");
        w.Int64(l.collected_at);
        w.Key("receipt");
        str(w, l.receipt);
        w.Key("receipt_note");
        str(w, l.receipt_note);
        w.Key("handover");
        if (l.handover) {
            str(w, l.handover->hex());
        } else {
            w.Null();
        }
        w.Key("collected_by");
        if (l.collected_by) {
            str(w, names.label(*l.collected_by));
        } else {
            w.Null();
        }
        w.Key("overdue");
        w.Bool(l.overdue);
    }
    w.Key("resolution");
    str(w, l.resolution);
    w.Key("missing_reason");
    str(w, l.missing_reason);
    w.EndObject();
}

void write_reconciliation(JsonWriter& w, const OtReconciliation& rec,
                          const Directory::Snapshot& names) {
    w.StartObject();
    w.Key("ot");
    str(w, rec.ot.hex());
    w.Key("case");
    str(w, rec.case_id.hex());
    w.Key("kind");
    str(w, rec.kind);
    w.Key("status");
    str(w, rec.status);
    w.Key("mode");
    str(w, rec.mode == OtMode::collect  ? "collect"
           : rec.mode == OtMode::verify ? "verify"
                                        : "none");
    w.Key("signature_mismatch");
    w.Bool(rec.signature_mismatch);
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
