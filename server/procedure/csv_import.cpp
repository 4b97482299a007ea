// The inventory CSV import: an RFC 4180 reader that keeps line numbers, then the checks
// of csv_import.hpp. Everything is checked before anything is written, and every problem
// is collected (up to a cap) so the operator can fix the file in one pass.
#include "procedure/csv_import.hpp"

#include "otsync/id.hpp"
#include "otsync/model.hpp"
#include "otsync/value.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>

namespace otsync::server {

namespace {

// The header, in order. Col indexes it.
constexpr std::array<std::string_view, 9> k_columns{"contract", "customer_name", "person_type",
                                                    "tax_id",   "address",       "serial",
                                                    "kind",     "model",         "description"};
enum Col : std::size_t {
    c_contract,
    c_customer_name,
    c_person_type,
    c_tax_id,
    c_address,
    c_serial,
    c_kind,
    c_model,
    c_description,
};

/// Where each column ends up in the case model: its length limit and allowed codes come
/// from the registry, so an imported value is always one the sync accepts.
const FieldDef& registry_field(std::size_t col) {
    static const std::array<const FieldDef*, 9> fields{
        &field_def(EntityType::case_file, "contract"),
        &field_def(EntityType::case_file, "customer_name"),
        &field_def(EntityType::case_file, "person_type"),
        &field_def(EntityType::case_file, "tax_id"),
        &field_def(EntityType::work_order, "address"),
        &field_def(EntityType::equipment, "serial"),
        &field_def(EntityType::equipment, "kind"),
        &field_def(EntityType::equipment, "model"),
        &field_def(EntityType::equipment, "description"),
    };
    return *fields[col];
}

/// Columns that may hold a quoted line break (free text people type on several lines).
bool multi_line(std::size_t col) {
    return col == c_customer_name || col == c_address || col == c_model || col == c_description;
}

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

/// A value for a message: quoted, at most ~40 bytes (cut on a UTF-8 boundary), control
/// characters shown as '?'. Only called on valid UTF-8.
std::string shown(std::string_view v) {
    constexpr std::size_t k_max = 40;
    bool cut = false;
    if (v.size() > k_max) {
        std::size_t n = k_max;
        while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xC0) == 0x80) {
            --n;
        }
        v = v.substr(0, n);
        cut = true;
    }
    std::string out = "'";
    for (const char c : v) {
        const auto u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7F) ? '?' : c;
    }
    out += cut ? "...'" : "'";
    return out;
}

/// The problem list with its cap.
class Problems {
public:
    Problems(ImportResult& r, std::size_t cap) : m_r(r), m_cap(cap) {}
    void add(std::size_t line, std::string message) {
        if (m_r.problems.size() < m_cap) {
            m_r.problems.push_back({line, std::move(message)});
        } else {
            ++m_r.omitted_problems;
        }
    }

private:
    ImportResult& m_r;
    std::size_t m_cap;
};

/// One CSV record: the line it starts on, its fields, whether the line was empty, and the
/// first syntax problem in it (then the fields are not to be trusted).
struct Record {
    std::size_t line = 0;
    std::vector<std::string> fields;
    bool blank = true;
    std::size_t error_line = 0;
    std::string error;
};

/// RFC 4180 reader over the whole text. Line breaks are CRLF, LF or a lone CR; a line
/// break inside quotes is kept in the field as "\n" and still counted, so the records
/// after it keep their true line numbers.
class CsvReader {
public:
    explicit CsvReader(std::string_view s) : m_s(s) {
        if (m_s.starts_with("\xEF\xBB\xBF")) {
            m_pos = 3;
        }
    }

    /// The next record; false at the end of the text.
    bool next(Record& r) {
        if (m_pos >= m_s.size()) {
            return false;
        }
        r.line = m_line;
        r.fields.assign(1, std::string());
        r.blank = true;
        r.error_line = 0;
        r.error.clear();
        enum class State { field_start, unquoted, quoted, after_quote };
        State state = State::field_start;
        std::size_t quote_line = 0;
        while (m_pos < m_s.size()) {
            const char c = m_s[m_pos];
            std::string& field = r.fields.back();
            if (state == State::quoted) {
                if (c == '"') {
                    if (m_pos + 1 < m_s.size() && m_s[m_pos + 1] == '"') {
                        field += '"';
                        m_pos += 2;
                    } else {
                        state = State::after_quote;
                        ++m_pos;
                    }
                } else if (c == '\r' || c == '\n') {
                    line_break();
                    field += '\n';
                } else {
                    field += c;
                    ++m_pos;
                }
                continue;
            }
            if (c == '\r' || c == '\n') {
                line_break();
                return true;
            }
            r.blank = false;
            ++m_pos;
            if (c == ',') {
                r.fields.emplace_back();
                state = State::field_start;
            } else if (c == '"' && state == State::field_start) {
                state = State::quoted;
                quote_line = m_line;
            } else if (c == '"') {
                fail(r, m_line,
                     "column " + std::to_string(r.fields.size()) +
                         ": a quote in a field that does not start with one (quote the whole "
                         "field and double the quotes inside it)");
                field += c;
                state = State::unquoted;
            } else if (state == State::after_quote) {
                fail(r, m_line,
                     "column " + std::to_string(r.fields.size()) +
                         ": text after the closing quote (a field is either all quoted or not)");
                field += c;
                state = State::unquoted;
            } else {
                field += c;
                state = State::unquoted;
            }
        }
        if (state == State::quoted) {
            r.blank = false;
            fail(r, quote_line,
                 "column " + std::to_string(r.fields.size()) +
                     ": a quoted field starts on this line and is never closed");
        }
        return true;
    }

private:
    void line_break() {
        if (m_s[m_pos] == '\r' && m_pos + 1 < m_s.size() && m_s[m_pos + 1] == '\n') {
            ++m_pos;
        }
        ++m_pos;
        ++m_line;
    }
    static void fail(Record& r, std::size_t line, std::string message) {
        if (r.error.empty()) {
            r.error_line = line;
            r.error = std::move(message);
        }
    }

    std::string_view m_s;
    std::size_t m_pos = 0;
    std::size_t m_line = 1;
};

std::string header_text() {
    std::string h;
    for (const auto c : k_columns) {
        h += h.empty() ? "" : ",";
        h += c;
    }
    return h;
}

/// "" when the header is right, else why not.
std::string check_header(const Record& r) {
    if (!r.error.empty()) {
        return r.error;
    }
    std::string why;
    if (r.blank) {
        why = "the first line is empty";
    } else if (r.fields.size() != k_columns.size()) {
        why = "it has " + std::to_string(r.fields.size()) + " columns";
    } else {
        for (std::size_t i = 0; i < k_columns.size(); ++i) {
            if (r.fields[i] != k_columns[i]) {
                why = "column " + std::to_string(i + 1) + " is " +
                      (is_valid_utf8(r.fields[i]) ? shown(r.fields[i]) : "not UTF-8") +
                      ", expected '" + std::string(k_columns[i]) + "'";
                break;
            }
        }
    }
    return why.empty() ? why : "the header must be exactly " + header_text() + "; " + why;
}

bool allowed(const FieldDef& f, std::string_view v) {
    return std::find(f.allowed.begin(), f.allowed.end(), v) != f.allowed.end();
}

std::string allowed_list(const FieldDef& f) {
    std::string out;
    for (std::size_t i = 0; i < f.allowed.size(); ++i) {
        out += i == 0 ? "" : (i + 1 == f.allowed.size() ? " or " : ", ");
        out += f.allowed[i];
    }
    return out;
}

/// Checks one column's bytes: UTF-8, length, control characters. "" when good.
std::string check_value(std::size_t col, std::string_view v, const ImportLimits& limits) {
    const std::string name(k_columns[col]);
    if (!is_valid_utf8(v)) {
        return name + " is not valid UTF-8 (save the file as UTF-8)";
    }
    const std::size_t limit =
        std::min<std::size_t>(limits.max_field_bytes, registry_field(col).max_bytes);
    if (v.size() > limit) {
        return name + " is " + std::to_string(v.size()) + " bytes, more than the limit of " +
               std::to_string(limit);
    }
    for (const char c : v) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n' && !multi_line(col)) {
            return name + " must be on one line";
        }
        if ((u < 0x20 && c != '\t' && c != '\n') || u == 0x7F) {
            return name + " has a control character";
        }
    }
    return {};
}

struct SeenContract {
    std::size_t line;
    Contract contract;
};

/// The customer columns on which two lines of one contract differ, "" when they agree.
std::string differences(const Contract& a, const Contract& b) {
    std::string out;
    const auto add = [&](bool differ, std::string_view name) {
        if (differ) {
            out += out.empty() ? "" : ", ";
            out += name;
        }
    };
    add(a.customer_name != b.customer_name, "customer_name");
    add(a.person_type != b.person_type, "person_type");
    add(a.tax_id != b.tax_id, "tax_id");
    add(a.address != b.address, "address");
    return out;
}

} // namespace

std::string ImportResult::report() const {
    if (ok()) {
        return "contracts: " + std::to_string(contracts.size()) +
               ", equipment: " + std::to_string(items.size());
    }
    std::string out;
    for (const auto& p : problems) {
        out += out.empty() ? "" : "\n";
        out += p.line == 0 ? "file: " : "line " + std::to_string(p.line) + ": ";
        out += p.message;
    }
    if (omitted_problems > 0) {
        out += "\n... and " + std::to_string(omitted_problems) + " more problems";
    }
    return out;
}

ImportResult check_inventory_csv(std::string_view csv, Store& store, std::int64_t now,
                                 const ImportLimits& limits) {
    ImportResult result;
    Problems problems(result, limits.max_problems);
    if (csv.size() > limits.max_bytes) {
        problems.add(0, "the file is " + std::to_string(csv.size()) +
                            " bytes, more than the limit of " + std::to_string(limits.max_bytes));
        return result;
    }

    CsvReader reader(csv);
    Record r;
    if (!reader.next(r)) {
        problems.add(1, "the file is empty; the first line must be the header " + header_text());
        return result;
    }
    if (const std::string why = check_header(r); !why.empty()) {
        // Without the right header the columns mean nothing: stop here.
        problems.add(r.error.empty() ? r.line : r.error_line, why);
        return result;
    }

    std::unordered_map<std::string, SeenContract> contracts; // by number
    std::vector<std::string> contract_order;
    std::unordered_map<std::string, std::size_t> serials; // serial -> line
    std::vector<std::size_t> blank_lines;                 // not yet followed by a record
    std::size_t rows = 0;
    const FieldDef& person_type = registry_field(c_person_type);
    const FieldDef& kind = registry_field(c_kind);

    while (reader.next(r)) {
        if (r.blank) {
            blank_lines.push_back(r.line);
            continue;
        }
        for (const std::size_t b : blank_lines) {
            problems.add(b, "empty line (blank lines are allowed only at the end)");
        }
        blank_lines.clear();
        if (++rows > limits.max_rows) {
            problems.add(r.line, "more than " + std::to_string(limits.max_rows) +
                                     " rows, the limit for one file (split it)");
            break;
        }
        if (!r.error.empty()) {
            problems.add(r.error_line, r.error);
            continue;
        }
        if (r.fields.size() != k_columns.size()) {
            problems.add(r.line, "expected " + std::to_string(k_columns.size()) +
                                     " columns, found " + std::to_string(r.fields.size()));
            continue;
        }

        // Column by column: bytes, then presence and codes.
        std::array<std::string, 9> v;
        std::array<bool, 9> good{};
        for (std::size_t i = 0; i < k_columns.size(); ++i) {
            // Serials as otsync::normalize_serial (id.hpp) gives them: imported and scanned match.
            v[i] = i == c_serial ? otsync::normalize_serial(r.fields[i])
                                 : std::string(trim(r.fields[i]));
            if (std::string why = check_value(i, v[i], limits); !why.empty()) {
                problems.add(r.line, std::move(why));
            } else {
                good[i] = true;
            }
        }
        for (const std::size_t i :
             {c_contract, c_customer_name, c_person_type, c_tax_id, c_address}) {
            if (good[i] && v[i].empty()) {
                problems.add(r.line, std::string(k_columns[i]) + " is required");
                good[i] = false;
            }
        }
        if (good[c_person_type] && !allowed(person_type, v[c_person_type])) {
            problems.add(r.line, "person_type must be " + allowed_list(person_type) + ", not " +
                                     shown(v[c_person_type]));
            good[c_person_type] = false;
        }
        const bool has_serial = good[c_serial] && !v[c_serial].empty();
        if (good[c_serial] && v[c_serial].empty()) {
            if (!v[c_kind].empty() || !v[c_model].empty() || !v[c_description].empty()) {
                problems.add(r.line, "serial is empty but kind, model or description is not (a "
                                     "line without a serial declares a contract without "
                                     "equipment)");
            }
        } else if (good[c_kind] && v[c_kind].empty()) {
            problems.add(r.line, "kind is required with a serial (" + allowed_list(kind) + ")");
        } else if (good[c_kind] && !allowed(kind, v[c_kind])) {
            problems.add(r.line,
                         "kind must be one of " + allowed_list(kind) + ", not " + shown(v[c_kind]));
        }

        // Across lines: the contract's columns agree with its first line.
        const bool contract_good = good[c_contract] && good[c_customer_name] &&
                                   good[c_person_type] && good[c_tax_id] && good[c_address];
        if (contract_good) {
            Contract c{v[c_contract], v[c_customer_name], v[c_person_type],
                       v[c_tax_id],   v[c_address],       now};
            const auto it = contracts.find(c.contract);
            if (it == contracts.end()) {
                contract_order.push_back(c.contract);
                contracts.emplace(contract_order.back(), SeenContract{r.line, std::move(c)});
            } else if (const std::string d = differences(it->second.contract, c); !d.empty()) {
                problems.add(r.line, "contract " + shown(c.contract) + " differs from line " +
                                         std::to_string(it->second.line) +
                                         ", which first defined it, in " + d);
            }
        }

        // The serial: once in the file, and not another contract's in the inventory.
        if (has_serial) {
            const std::string& serial = v[c_serial];
            if (const auto [it, fresh] = serials.emplace(serial, r.line); !fresh) {
                problems.add(r.line, "serial " + shown(serial) + " is already on line " +
                                         std::to_string(it->second));
            } else if (good[c_contract] && !v[c_contract].empty()) {
                const auto held = store.inventory_item(serial);
                if (held && held->contract != v[c_contract]) {
                    problems.add(r.line, "serial " + shown(serial) +
                                             " is in the inventory under contract " +
                                             shown(held->contract) +
                                             " (equipment does not change contracts by import)");
                }
            }
            if (result.ok()) {
                result.items.push_back(
                    {serial, v[c_contract], v[c_kind], v[c_model], v[c_description], now});
            }
        }
    }

    if (!result.ok()) {
        result.contracts.clear();
        result.items.clear();
        return result;
    }
    result.contracts.reserve(contract_order.size());
    for (const auto& number : contract_order) {
        result.contracts.push_back(std::move(contracts.at(number).contract));
    }
    return result;
}

ImportResult import_inventory_csv(std::string_view csv, Store& store, std::int64_t now,
                                  const ImportLimits& limits) {
    ImportResult result = check_inventory_csv(csv, store, now, limits);
    if (result.ok()) {
        store.import_inventory(result.contracts, result.items);
    }
    return result;
}

} // namespace otsync::server
