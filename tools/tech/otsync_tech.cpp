// otsync-tech: the technician's handheld in a terminal. It is written on the C API only
// (otsync/client.h), exactly as the Android and iOS apps are, so it is also that API's
// first user: if something can't be done here, the apps can't do it either.
//
//   otsync-tech [--db FILE] [--pin PIN] COMMAND ...
//     enroll URL CODE [--label L]   register this device with a one-time code (otsync-admin)
//     list [--status S]             my OTs
//     show OT                       one OT: case, address, expected equipment, recorded rows
//     start OT | arrive OT          on the way (en_route) | at the customer's (on_site)
//     collect OT SERIAL --reason migration|damaged [--defect T] [--desc T] [--obs T]
//     void OT SERIAL                void a mistaken row (it stays on record, marked void)
//     verify OT SERIAL              equipment the customer carried (modalities 2 and 3)
//     missing OT SERIAL --reason T  why an expected serial is not handed over
//     sign OT --png FILE            the customer's signature
//     reopen OT --reason T          reopen signed rows, saying why (the old signature stays)
//     complete OT | fail OT --reason T
//     handover create [--zone Z]    an Anexo 4 handover of every item in my custody
//     sync [--wait-network MIN]     push and pull (a progress bar when stderr is a terminal);
//                                   retries a dead link for seconds, or MIN minutes
//     status                        pending ops, last sync, rejections, conflicts
//
// OT is the 32-hex-digit id or any prefix of it that names one OT on this device.
//
// The database: --db, else $OTSYNC_TECH_DB, else ./otsync-tech.db. Its 32-byte key comes
// from Android Keystore / iOS Keychain in the apps; here it is derived from a PIN (--pin,
// else $OTSYNC_TECH_PIN, else asked on the terminal without echo) with argon2id
// (libsodium crypto_pwhash, INTERACTIVE limits; MIN with OTSYNC_TECH_FAST_KDF=1, for
// tests) and a random 16-byte salt kept in FILE.salt, made on the first enrollment. The
// limits are part of the key: a database made with OTSYNC_TECH_FAST_KDF=1 opens only with
// it. The PIN and the key are wiped with sodium_memzero as soon as the database is open.
//
// Output is for the technician, in Spanish. Errors: one line on stderr
// "otsync-tech: <message>"; exit 0 ok, 1 the operation failed, 2 usage, 3 network
// (nothing is lost: retry later), 4 this device was revoked, 5 not enrolled.
#include "otsync/client.h"
#include "otsync/model.hpp"

#include <rapidjson/document.h>
#include <sodium.h>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

constexpr int k_exit_ok = 0;
constexpr int k_exit_failed = 1;
constexpr int k_exit_usage = 2;
constexpr int k_exit_network = 3;
constexpr int k_exit_revoked = 4;
constexpr int k_exit_not_enrolled = 5;

constexpr std::size_t k_max_pin = 128;
constexpr std::size_t k_key_bytes = 32;              // otsync_client_open's key
constexpr std::size_t k_max_png = 256 * 1024;        // client.h: at most 256 KiB
constexpr std::size_t k_max_photo = 4 * 1024 * 1024; // client.h: at most 4 MiB
static_assert(crypto_pwhash_SALTBYTES == 16, "FILE.salt holds 16 bytes");

constexpr const char* k_usage =
    "uso: otsync-tech [--db ARCHIVO] [--pin PIN] COMANDO ...\n"
    "  enroll URL CÓDIGO [--label ETIQUETA]   registrar este equipo (código de otsync-admin)\n"
    "  list [--status ESTADO]                 mis OTs (estado: assigned, en_route, on_site,\n"
    "                                         completed, failed, cancelled, issued)\n"
    "  show OT                                una OT: caso, dirección, equipos, filas\n"
    "  start OT                               en camino (en_route)\n"
    "  arrive OT                              en sitio (on_site)\n"
    "  collect OT SERIE --reason migration|damaged [--defect TEXTO] [--desc TEXTO]\n"
    "          [--obs TEXTO]                  recoger un equipo (fila del Anexo 4)\n"
    "  void OT SERIE                          anular una fila equivocada (queda registrada)\n"
    "  verify OT SERIE                        verificar un equipo que trajo el cliente\n"
    "  missing OT SERIE --reason TEXTO        por qué falta un equipo esperado\n"
    "  sign OT --png ARCHIVO                  firma del cliente (PNG, hasta 256 KiB)\n"
    "  photo OT SERIE ARCHIVO                 foto de un equipo dañado o faltante (JPEG o\n"
    "                                         PNG, hasta 4 MiB)\n"
    "  reopen OT --reason TEXTO               reabrir filas firmadas (queda la firma anterior)\n"
    "  complete OT                            concluir la OT\n"
    "  fail OT --reason TEXTO                 visita fallida, con su motivo\n"
    "  handover create [--zone ZONA]          entrega (Anexo 4) de los equipos a mi cargo\n"
    "  handover deliver ENTREGA --png ARCHIVO [--name NOMBRE]\n"
    "                                         entregar en almacén y firmar (Entregado por)\n"
    "  sync [--wait-network MINUTOS]          sincronizar con el servidor; con --wait-network\n"
    "                                         reintenta sin red hasta esos minutos\n"
    "  status                                 pendientes, última sincronización, rechazos\n"
    "OT: el id de 32 dígitos hexadecimales o un prefijo que identifique una sola OT.\n"
    "Base de datos: --db, si no $OTSYNC_TECH_DB, si no ./otsync-tech.db.\n"
    "PIN: --pin, si no $OTSYNC_TECH_PIN, si no se pregunta en la terminal.\n"
    "Salida: 0 bien, 1 falló, 2 uso, 3 sin red, 4 equipo revocado, 5 no registrado.\n";

// ---- failures -----------------------------------------------------------------------------

/// Ends the command: main prints "otsync-tech: <message>" and exits with `exit_code`.
struct Failure {
    int exit_code;
    std::string message;
};

[[noreturn]] void usage_error(const std::string& why) {
    throw Failure{k_exit_usage, why + " (vea otsync-tech --help)"};
}

/// The technician's words for an API error, with the API's own message (for support).
Failure api_failure(const otsync_error& err) {
    int exit_code = k_exit_failed;
    const char* what = nullptr;
    switch (err.code) {
    case OTSYNC_ERR_TIMEOUT:
    case OTSYNC_ERR_NETWORK:
        exit_code = k_exit_network;
        what = "sin conexión con el servidor; los datos quedan en el equipo, reintente más tarde";
        break;
    case OTSYNC_ERR_REVOKED:
        exit_code = k_exit_revoked;
        what = "el servidor dio de baja este equipo y sus datos locales se borraron";
        break;
    case OTSYNC_ERR_NOT_ENROLLED:
        exit_code = k_exit_not_enrolled;
        what = "este equipo no está registrado; use: otsync-tech enroll URL CÓDIGO";
        break;
    case OTSYNC_ERR_WRONG_KEY:
        what = "PIN incorrecto: no abre esta base de datos";
        break;
    case OTSYNC_ERR_NOT_FOUND:
        what = "no encontrado";
        break;
    case OTSYNC_ERR_INVALID_TRANSITION:
        what = "cambio de estado no permitido";
        break;
    case OTSYNC_ERR_PERMISSION_DENIED:
        what = "no permitido";
        break;
    case OTSYNC_ERR_MISSING_FIELD:
        what = "falta un dato";
        break;
    case OTSYNC_ERR_INVALID_ARGUMENT:
    case OTSYNC_ERR_INVALID_VALUE:
    case OTSYNC_ERR_OUT_OF_RANGE:
        what = "dato no válido";
        break;
    case OTSYNC_ERR_TOO_LARGE:
        what = "demasiado grande";
        break;
    case OTSYNC_ERR_UNSUPPORTED_MEDIA_TYPE:
        what = "tipo de archivo no admitido (una foto es un JPEG o PNG completo)";
        break;
    case OTSYNC_ERR_UNSUPPORTED_PROTOCOL:
        what = "el servidor usa otra versión del protocolo; actualice otsync-tech";
        break;
    case OTSYNC_ERR_DEVICE_REVOKED:
    case OTSYNC_ERR_UNKNOWN_DEVICE:
    case OTSYNC_ERR_BAD_SIGNATURE:
    case OTSYNC_ERR_USER_DISABLED:
    case OTSYNC_ERR_UNAUTHENTICATED:
        // The library's message is already the technician's sentence, then the server's.
        return Failure{k_exit_failed, std::string("sincronización rechazada: ") + err.message};
    case OTSYNC_ERR_SIGNED_ROWS:
        what = "el cliente ya firmó estas filas; para cambiarlas: otsync-tech reopen OT --reason "
               "TEXTO, y luego firme de nuevo";
        break;
    case OTSYNC_ERR_REQUIREMENTS_INCOMPLETE:
        what = "la OT no puede concluir todavía: diga por qué falta cada equipo esperado "
               "(otsync-tech missing OT SERIE --reason TEXTO) y registre la firma del cliente";
        break;
    case OTSYNC_ERR_TLS:
        what = "el certificado del servidor no es válido para este equipo; avise a soporte";
        break;
    case OTSYNC_ERR_CANCELLED:
        what = "sincronización cancelada; no se perdió nada";
        break;
    case OTSYNC_ERR_BUSY:
        what = "la base de datos del equipo está abierta en otro programa; ciérrelo";
        break;
    default:
        break;
    }
    std::string message = what ? what : "la operación falló";
    if (err.message[0] != '\0') {
        message += std::string(" (") + err.message + ")";
    }
    return Failure{exit_code, message};
}

void check(int rc, const otsync_error& err) {
    if (rc != 0) {
        throw api_failure(err);
    }
}

/// Takes ownership of a string returned by the API (NULL: the call failed).
std::string take(char* s, const otsync_error& err) {
    if (!s) {
        throw api_failure(err);
    }
    std::string out(s);
    otsync_string_free(&s);
    return out;
}

// ---- secrets ------------------------------------------------------------------------------

/// Bytes wiped with sodium_memzero when they go out of scope (the PIN, the key).
template <std::size_t N>
class Secret {
public:
    Secret() = default;
    ~Secret() { sodium_memzero(m_bytes.data(), m_bytes.size()); }
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;

    unsigned char* data() { return m_bytes.data(); }
    const unsigned char* data() const { return m_bytes.data(); }
    static constexpr std::size_t capacity() { return N; }

private:
    std::array<unsigned char, N> m_bytes{};
};

struct Pin {
    Secret<k_max_pin + 1> bytes;
    std::size_t size = 0;
};

void set_pin(Pin& pin, const char* text) {
    const std::size_t n = std::strlen(text);
    if (n > k_max_pin) {
        usage_error("el PIN es demasiado largo (máximo " + std::to_string(k_max_pin) + ")");
    }
    std::memcpy(pin.bytes.data(), text, n);
    pin.size = n;
}

// The terminal's settings while the PIN is typed without echo, restored by the signal
// handler too: an interrupted prompt must not leave the terminal silent.
int g_tty = -1;
termios g_tty_saved{};

extern "C" void restore_tty_and_die(int sig) {
    if (g_tty >= 0) {
        ::tcsetattr(g_tty, TCSAFLUSH, &g_tty_saved);
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

/// Asks for the PIN on the controlling terminal without echo; false without a terminal.
bool prompt_pin(Pin& pin) {
    const int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    if (::tcgetattr(fd, &g_tty_saved) != 0) {
        ::close(fd);
        return false;
    }
    termios quiet = g_tty_saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    g_tty = fd;
    const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (int s : signals) {
        std::signal(s, restore_tty_and_die);
    }
    static constexpr char k_prompt[] = "PIN: ";
    (void)!::write(fd, k_prompt, sizeof k_prompt - 1);
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
    bool too_long = false;
    pin.size = 0;
    for (;;) {
        char c = 0;
        const ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0 || c == '\n' || c == '\r') {
            break;
        }
        if (pin.size < k_max_pin) {
            pin.bytes.data()[pin.size++] = static_cast<unsigned char>(c);
        } else {
            too_long = true;
        }
    }
    ::tcsetattr(fd, TCSAFLUSH, &g_tty_saved);
    for (int s : signals) {
        std::signal(s, SIG_DFL);
    }
    g_tty = -1;
    (void)!::write(fd, "\n", 1);
    ::close(fd);
    if (too_long) {
        usage_error("el PIN es demasiado largo (máximo " + std::to_string(k_max_pin) + ")");
    }
    return true;
}

/// The PIN from --pin (whose argv bytes are then wiped, so `ps` no longer shows it), else
/// $OTSYNC_TECH_PIN, else the terminal.
void read_pin(char* from_argv, Pin& pin) {
    if (from_argv) {
        set_pin(pin, from_argv);
        sodium_memzero(from_argv, std::strlen(from_argv));
    } else if (const char* env = std::getenv("OTSYNC_TECH_PIN"); env && *env) {
        set_pin(pin, env);
    } else if (!prompt_pin(pin)) {
        usage_error("hace falta el PIN: use --pin o OTSYNC_TECH_PIN (no hay terminal)");
    }
    if (pin.size == 0) {
        usage_error("el PIN está vacío");
    }
}

std::string salt_path(const std::string& db) {
    return db + ".salt";
}

bool read_salt(const std::string& path, unsigned char salt[crypto_pwhash_SALTBYTES]) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return false;
        }
        throw Failure{k_exit_failed, "no se puede leer " + path + ": " + std::strerror(errno)};
    }
    unsigned char extra = 0;
    const ssize_t n = ::read(fd, salt, crypto_pwhash_SALTBYTES);
    const ssize_t more = ::read(fd, &extra, 1);
    ::close(fd);
    if (n != static_cast<ssize_t>(crypto_pwhash_SALTBYTES) || more != 0) {
        throw Failure{k_exit_failed, path + " está dañado: debe tener 16 bytes"};
    }
    return true;
}

/// Makes FILE.salt (16 random bytes, mode 0600) unless it exists; returns whether it made it.
bool make_salt(const std::string& path, unsigned char salt[crypto_pwhash_SALTBYTES]) {
    if (read_salt(path, salt)) {
        return false;
    }
    randombytes_buf(salt, crypto_pwhash_SALTBYTES);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST && read_salt(path, salt)) {
            return false; // made by someone else meanwhile: use theirs
        }
        throw Failure{k_exit_failed, "no se puede crear " + path + ": " + std::strerror(errno)};
    }
    const bool ok = ::write(fd, salt, crypto_pwhash_SALTBYTES) ==
                        static_cast<ssize_t>(crypto_pwhash_SALTBYTES) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
        std::filesystem::remove(path);
        throw Failure{k_exit_failed, "no se puede escribir " + path};
    }
    return true;
}

/// The database key: argon2id(PIN, salt). The PIN is wiped when `pin` goes away.
void derive_key(const Pin& pin, const unsigned char salt[crypto_pwhash_SALTBYTES],
                Secret<k_key_bytes>& key) {
    const char* fast = std::getenv("OTSYNC_TECH_FAST_KDF");
    const bool min = fast && std::strcmp(fast, "1") == 0;
    const unsigned long long ops =
        min ? crypto_pwhash_argon2id_OPSLIMIT_MIN : crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
    const std::size_t mem =
        min ? crypto_pwhash_argon2id_MEMLIMIT_MIN : crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
    if (crypto_pwhash(key.data(), k_key_bytes, reinterpret_cast<const char*>(pin.bytes.data()),
                      pin.size, salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        throw Failure{k_exit_failed, "no hay memoria suficiente para derivar la clave del PIN"};
    }
}

// ---- the client handle --------------------------------------------------------------------

/// Owns an otsync_client_t*; closes it (and NULLs it) on the way out.
class Client {
public:
    Client(const std::string& db, Secret<k_key_bytes>& key) {
        otsync_error err{};
        m_handle = otsync_client_open(db.c_str(), key.data(), &err);
        sodium_memzero(key.data(), k_key_bytes); // the API keeps its own copy
        if (!m_handle) {
            throw api_failure(err);
        }
    }
    ~Client() { otsync_client_close(&m_handle); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    otsync_client_t* get() const { return m_handle; }

private:
    otsync_client_t* m_handle = nullptr;
};

// ---- JSON from the API --------------------------------------------------------------------

using Json = rapidjson::Value;

rapidjson::Document parse(const std::string& text) {
    rapidjson::Document doc;
    // Iterative: no recursion whatever the nesting (docs/architecture.md §9).
    doc.Parse<rapidjson::kParseIterativeFlag>(text.c_str(), text.size());
    if (doc.HasParseError()) {
        throw Failure{k_exit_failed, "respuesta no comprensible de la biblioteca: " + text};
    }
    return doc;
}

const Json* member(const Json* object, const char* key) {
    if (!object || !object->IsObject()) {
        return nullptr;
    }
    const auto it = object->FindMember(key);
    return it == object->MemberEnd() ? nullptr : &it->value;
}

std::string text(const Json* v);

std::string join(const Json* array, const char* separator) {
    std::string out;
    if (array && array->IsArray()) {
        for (const auto& e : array->GetArray()) {
            const std::string s = text(&e);
            if (!s.empty()) {
                out += (out.empty() ? "" : separator) + s;
            }
        }
    }
    return out;
}

/// Any JSON value as one line: strings as they are, arrays joined, log events by value.
std::string text(const Json* v) {
    if (!v || v->IsNull()) {
        return "";
    }
    if (v->IsString()) {
        return std::string(v->GetString(), v->GetStringLength());
    }
    if (v->IsBool()) {
        return v->GetBool() ? "sí" : "no";
    }
    if (v->IsInt64()) {
        return std::to_string(v->GetInt64());
    }
    if (v->IsUint64()) {
        return std::to_string(v->GetUint64());
    }
    if (v->IsNumber()) {
        return std::to_string(v->GetDouble());
    }
    if (v->IsArray()) {
        return join(v, ", ");
    }
    if (const Json* value = member(v, "value")) {
        return text(value); // a log event {"at","replica","value"}
    }
    std::string out;
    for (const auto& m : v->GetObject()) {
        out += (out.empty() ? "" : ", ") + std::string(m.name.GetString()) + ": " + text(&m.value);
    }
    return out;
}

std::int64_t number(const Json* v) {
    if (v && v->IsInt64()) {
        return v->GetInt64();
    }
    if (v && v->IsUint64()) {
        return static_cast<std::int64_t>(v->GetUint64());
    }
    return 0;
}

std::vector<std::string> strings(const Json* array) {
    std::vector<std::string> out;
    if (array && array->IsArray()) {
        for (const auto& e : array->GetArray()) {
            out.push_back(text(&e));
        }
    }
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- words for the technician -------------------------------------------------------------

// The technician's words for codes are shared/'s (otsync/model.hpp: word_es), the same
// tables the server's GET /v1/model gives the office pages.
using LabelTable = std::span<const otsync::CodeLabel>;

LabelTable ot_statuses() {
    return otsync::state_labels(otsync::EntityType::work_order);
}
LabelTable case_statuses() {
    return otsync::state_labels(otsync::EntityType::case_file);
}

/// The word for `code` in `table`, or the code itself.
std::string words(LabelTable table, const std::string& code) {
    const otsync::CodeLabel* l = otsync::find_label(table, code);
    return l ? std::string(l->word_es) : code;
}

std::string words_list(const Json* array, LabelTable table) {
    std::string out;
    for (const auto& s : strings(array)) {
        out += (out.empty() ? "" : ", ") + words(table, s);
    }
    return out;
}

/// Local date and time of a millisecond timestamp ("" for none).
std::string when(std::int64_t ms) {
    if (ms <= 0) {
        return "";
    }
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

std::string window(std::int64_t from, std::int64_t to) {
    const std::string a = when(from), b = when(to);
    if (a.empty() || b.empty()) {
        return a.empty() ? b : a;
    }
    if (a.substr(0, 10) == b.substr(0, 10)) {
        return a + " – " + b.substr(11);
    }
    return a + " – " + b;
}

/// Columns on a terminal, counting UTF-8 characters rather than bytes.
std::size_t columns(const std::string& s) {
    std::size_t n = 0;
    for (const char c : s) {
        n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
    }
    return n;
}

/// "  Label:      value", aligned; nothing when the value is empty.
void line(const std::string& label, const std::string& value, std::size_t width = 25) {
    if (value.empty()) {
        return;
    }
    const std::string head = "  " + label + ":";
    std::printf("%s%s%s\n", head.c_str(),
                std::string(width > columns(head) ? width - columns(head) : 1, ' ').c_str(),
                value.c_str());
}

// ---- command line -------------------------------------------------------------------------

struct Args {
    std::string db;
    char* pin = nullptr; // points into argv, so it can be wiped there
    std::string command;
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;

    /// Checks the shape of the command: `n` positionals named in `what`, only `allowed`
    /// options.
    void expect(std::size_t n, const char* what, std::initializer_list<const char*> allowed) {
        if (positional.size() != n) {
            usage_error(std::string("uso: otsync-tech ") + what);
        }
        for (const auto& option : options) {
            const std::string& name = option.first;
            const bool ok = std::any_of(allowed.begin(), allowed.end(),
                                        [&](const char* a) { return name == a; });
            if (!ok) {
                usage_error("'" + command + "' no admite " + name);
            }
        }
    }
    const char* option(const char* name) const {
        const auto it = options.find(name);
        return it == options.end() ? nullptr : it->second.c_str();
    }
};

Args parse_args(int argc, char** argv) {
    Args a;
    bool options_done = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (options_done || arg.size() < 2 || arg[0] != '-' || (arg[1] != '-' && arg != "-h")) {
            if (a.command.empty()) {
                a.command = arg;
            } else {
                a.positional.push_back(arg);
            }
            continue;
        }
        if (arg == "--") {
            options_done = true;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            std::fputs(k_usage, stdout);
            std::exit(k_exit_ok);
        }
        // Every option takes a value: "--name value" or "--name=value".
        std::string name = arg;
        char* value = nullptr;
        if (const auto eq = arg.find('='); eq != std::string::npos) {
            name = arg.substr(0, eq);
            value = argv[i] + eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            usage_error(name + " necesita un valor");
        }
        if (name == "--pin") {
            a.pin = value;
        } else if (name == "--db") {
            a.db = value;
        } else if (a.command.empty()) {
            usage_error("opción desconocida " + name);
        } else if (!a.options.emplace(name, value).second) {
            usage_error(name + " aparece dos veces");
        }
    }
    if (a.db.empty()) {
        const char* env = std::getenv("OTSYNC_TECH_DB");
        a.db = env && *env ? env : "./otsync-tech.db";
    }
    if (a.command.empty()) {
        usage_error("falta el comando");
    }
    return a;
}

// ---- opening the database -----------------------------------------------------------------

bool is_enrolled(Client& c) {
    otsync_error err{};
    const auto doc = parse(take(otsync_client_status(c.get(), &err), err));
    const Json* enrolled = member(&doc, "enrolled");
    return enrolled && enrolled->IsBool() && enrolled->GetBool();
}

[[noreturn]] void not_enrolled(const std::string& db) {
    throw Failure{k_exit_not_enrolled, "este equipo no está registrado (" + db +
                                           "); use: otsync-tech enroll URL CÓDIGO"};
}

/// Opens an existing database with the PIN's key; `need_enrolled` refuses one that has not
/// been enrolled yet.
std::unique_ptr<Client> open_existing(Args& a, bool need_enrolled) {
    if (!std::filesystem::exists(a.db)) {
        not_enrolled(a.db);
    }
    unsigned char salt[crypto_pwhash_SALTBYTES];
    if (!read_salt(salt_path(a.db), salt)) {
        throw Failure{k_exit_failed, "falta " + salt_path(a.db) +
                                         ": sin él el PIN no puede abrir la base de datos"};
    }
    Secret<k_key_bytes> key;
    {
        Pin pin;
        read_pin(a.pin, pin);
        derive_key(pin, salt, key);
    }
    auto c = std::make_unique<Client>(a.db, key);
    if (need_enrolled && !is_enrolled(*c)) {
        not_enrolled(a.db);
    }
    return c;
}

/// The OT an argument names: the full id, or a prefix of exactly one of my OTs.
std::string resolve_ot(Client& c, const std::string& arg) {
    std::string want = arg;
    std::transform(want.begin(), want.end(), want.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (want.empty() || want.find_first_not_of("0123456789abcdef") != std::string::npos) {
        usage_error("'" + arg + "' no es una OT: use su id (hexadecimal) o un prefijo");
    }
    if (want.size() == 32) {
        return want;
    }
    otsync_error err{};
    const auto doc = parse(take(otsync_client_list_ots(c.get(), nullptr, &err), err));
    std::vector<std::string> found;
    if (doc.IsArray()) {
        for (const auto& ot : doc.GetArray()) {
            const std::string id = text(member(&ot, "id"));
            if (id.compare(0, want.size(), want) == 0) {
                found.push_back(id);
            }
        }
    }
    if (found.empty()) {
        throw Failure{k_exit_failed, "no hay ninguna OT '" + arg + "' en este equipo"};
    }
    if (found.size() > 1) {
        std::string all;
        for (const auto& id : found) {
            all += (all.empty() ? "" : ", ") + id;
        }
        throw Failure{k_exit_failed,
                      "'" + arg + "' corresponde a varias OTs (" + all + "); escriba más dígitos"};
    }
    return found.front();
}

// ---- commands -----------------------------------------------------------------------------

int cmd_enroll(Args& a) {
    a.expect(2, "enroll URL CÓDIGO [--label ETIQUETA]", {"--label"});
    std::string label;
    if (const char* l = a.option("--label")) {
        label = l;
    } else {
        char host[256] = {};
        label = ::gethostname(host, sizeof host - 1) == 0 && host[0]
                    ? std::string("otsync-tech en ") + host
                    : "otsync-tech";
    }
    const bool fresh = !std::filesystem::exists(a.db);
    unsigned char salt[crypto_pwhash_SALTBYTES];
    bool made_salt = false;
    if (fresh) {
        made_salt = make_salt(salt_path(a.db), salt);
    } else if (!read_salt(salt_path(a.db), salt)) {
        throw Failure{k_exit_failed, "falta " + salt_path(a.db) +
                                         ": sin él el PIN no puede abrir la base de datos"};
    }
    try {
        Secret<k_key_bytes> key;
        {
            Pin pin;
            read_pin(a.pin, pin);
            derive_key(pin, salt, key);
        }
        Client c(a.db, key);
        otsync_error err{};
        check(otsync_client_enroll(c.get(), a.positional[0].c_str(), a.positional[1].c_str(),
                                   label.c_str(), &err),
              err);
        const auto doc = parse(take(otsync_client_status(c.get(), &err), err));
        std::printf("Equipo registrado en %s como réplica %s (%s).\n", a.positional[0].c_str(),
                    text(member(&doc, "replica")).c_str(), label.c_str());
        std::printf("Siguiente paso: otsync-tech sync\n");
        return k_exit_ok;
    } catch (...) {
        // A database made by this failed first enrollment holds nothing: leave no trace,
        // so the next attempt may choose its PIN afresh.
        if (fresh) {
            std::error_code ec;
            for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
                std::filesystem::remove(a.db + suffix, ec);
            }
            if (made_salt) {
                std::filesystem::remove(salt_path(a.db), ec);
            }
        }
        throw;
    }
}

int cmd_list(Args& a) {
    a.expect(0, "list [--status ESTADO]", {"--status"});
    std::string filter;
    if (const char* s = a.option("--status")) {
        filter = s;
        for (const auto& l : ot_statuses()) { // the Spanish word works too
            if (filter == l.word_es) {
                filter = l.code;
            }
        }
        if (words(ot_statuses(), filter) == filter) {
            usage_error("estado desconocido '" + std::string(s) +
                        "' (assigned, en_route, on_site, completed, failed, cancelled, issued)");
        }
    }
    auto c = open_existing(a, true);
    otsync_error err{};
    const auto doc = parse(take(
        otsync_client_list_ots(c->get(), filter.empty() ? nullptr : filter.c_str(), &err), err));
    std::vector<const Json*> ots;
    if (doc.IsArray()) {
        for (const auto& ot : doc.GetArray()) {
            ots.push_back(&ot);
        }
    }
    std::stable_sort(ots.begin(), ots.end(), [](const Json* x, const Json* y) {
        return number(member(x, "window_start")) < number(member(y, "window_start"));
    });
    if (ots.empty()) {
        if (filter.empty()) {
            std::printf("No hay OTs en este equipo.\n");
        } else {
            std::printf("No hay OTs en estado «%s» en este equipo.\n",
                        words(ot_statuses(), filter).c_str());
        }
        return k_exit_ok;
    }
    std::printf("OTs en este equipo: %zu\n", ots.size());
    for (const Json* ot : ots) {
        std::printf("\nOT %s\n", text(member(ot, "id")).c_str());
        line("Estado", words(ot_statuses(), text(member(ot, "status"))), 14);
        line("Tipo", words(otsync::ot_kind_labels(), text(member(ot, "kind"))), 14);
        std::string customer = text(member(ot, "customer_name"));
        if (const std::string m = text(member(ot, "modality")); !m.empty()) {
            customer += (customer.empty() ? "" : ", ") + std::string("modalidad ") + m;
        }
        line("Cliente", customer, 14);
        line("Dirección", text(member(ot, "address")), 14);
        line("Horario",
             window(number(member(ot, "window_start")), number(member(ot, "window_end"))), 14);
    }
    return k_exit_ok;
}

/// The OT as the technician reads it at the door. Falls back to key: value lines when the
/// document is not the shape it knows ({"ot","case","rows"} of entities with "fields").
void print_ot(const rapidjson::Document& doc) {
    const Json* ot = member(member(&doc, "ot"), "fields");
    if (!ot) {
        for (const auto& m : doc.GetObject()) {
            line(m.name.GetString(), text(&m.value));
        }
        return;
    }
    const Json* kase = member(member(&doc, "case"), "fields");
    const Json* rows = member(&doc, "rows");

    std::printf("OT %s\n", text(member(member(&doc, "ot"), "id")).c_str());
    const std::string status = text(member(ot, "status"));
    line("Estado", words(ot_statuses(), status));
    line("Tipo", words(otsync::ot_kind_labels(), text(member(ot, "kind"))));
    line("Dirección", text(member(ot, "address")));
    line("Zona", text(member(ot, "zone")));
    line("Horario", window(number(member(ot, "window_start")), number(member(ot, "window_end"))));
    line("Emitida", when(number(member(ot, "issued_at"))));
    line("Resultado", text(member(ot, "outcome")));
    line("Concluida", when(number(member(ot, "completed_at"))));
    line("Firma del cliente", member(ot, "signature_ref") ? "registrada" : "pendiente");
    line("Notas", join(member(ot, "notes"), "; "));

    if (kase) {
        std::printf("Caso\n");
        line("Contrato", text(member(kase, "contract")));
        line("Contrato nuevo", text(member(kase, "new_contract")));
        line("Cliente", text(member(kase, "customer_name")));
        line("CI o NIT", text(member(kase, "tax_id")));
        line("Celular de referencia", text(member(kase, "reference_cell")));
        line("Horario de contacto", text(member(kase, "contact_hours")));
        line("Modalidad", words(otsync::modality_labels(), text(member(kase, "modality"))));
        line("Productos", words_list(member(kase, "products"), otsync::product_labels()));
        line("Plan comercial", text(member(kase, "commercial_plan")));
        line("Dirección anterior", text(member(kase, "old_address")));
        line("Dirección nueva", text(member(kase, "new_address")));
        line("Barrio (nuevo)", text(member(kase, "new_neighborhood")));
        line("Referencia (nueva)", text(member(kase, "new_reference")));
        line("Dato GPON", text(member(kase, "gpon_data")));
        line("Caja GIS", text(member(kase, "gis_box")));
        line("Estado del caso", words(case_statuses(), text(member(kase, "status"))));
        line("Observaciones", text(member(kase, "observations")));
    }

    // Each expected serial as client-core reports it ("equipment" of show_ot).
    const auto expected = strings(member(ot, "expected_equipment"));
    const auto verified = strings(member(ot, "verified_equipment"));
    const bool final = status == "completed" || status == "failed" || status == "cancelled";
    const Json* equipment = member(&doc, "equipment");
    std::printf("Equipos esperados: %zu\n", expected.size());
    if (equipment && equipment->IsArray()) {
        for (const auto& e : equipment->GetArray()) {
            const std::string state = text(member(&e, "state"));
            std::string said = state == "collected"  ? "recogido"
                               : state == "verified" ? "verificado"
                               : state == "missing"  ? "faltante: " + text(member(&e, "reason"))
                               : final               ? "faltante"
                                                     : "pendiente";
            std::printf("  %-20s %s\n", text(member(&e, "serial")).c_str(), said.c_str());
        }
    }
    for (const auto& serial : verified) {
        if (!contains(expected, serial)) {
            std::printf("  %-20s verificado, no esperado\n", serial.c_str());
        }
    }
    const auto installed = strings(member(ot, "installed_equipment"));
    if (!installed.empty()) {
        line("Equipos instalados", join(member(ot, "installed_equipment"), ", "));
    }

    const std::size_t n = rows && rows->IsArray() ? rows->Size() : 0;
    std::printf("Equipos recogidos (Anexo 4): %zu\n", n);
    for (std::size_t i = 0; i < n; ++i) {
        const Json* f = member(&(*rows)[static_cast<rapidjson::SizeType>(i)], "fields");
        const std::string serial = text(member(f, "serial"));
        const Json* voided = member(f, "voided");
        std::string head =
            serial + "  " + (contains(expected, serial) ? "coincide" : "no esperado");
        if (voided && voided->IsBool() && voided->GetBool()) {
            head += "  ANULADO";
        }
        std::printf("  %s\n", head.c_str());
        line("  Motivo", words(otsync::reason_labels(), text(member(f, "reason"))));
        line("  Descripción", text(member(f, "description")));
        line("  Defecto", text(member(f, "defect")));
        line("  Observaciones", text(member(f, "observations")));
        line("  Fecha", when(number(member(f, "collected_at"))));
        line("  Firma", member(f, "signature_ref") ? "firmado" : "");
        line("  Entrega", member(f, "handover") ? "en entrega " + text(member(f, "handover")) : "");
        line("  Almacén", words(otsync::receipt_labels(), text(member(f, "receipt"))));
        line("  Resolución", text(member(f, "resolution")));
    }
}

int cmd_show(Args& a) {
    a.expect(1, "show OT", {});
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    const auto doc = parse(take(otsync_client_show_ot(c->get(), ot.c_str(), &err), err));
    if (!doc.IsObject()) {
        throw Failure{k_exit_failed, "respuesta no comprensible de la biblioteca"};
    }
    print_ot(doc);
    return k_exit_ok;
}

/// start, arrive, complete, fail: one status change.
int cmd_status_change(Args& a, const char* status) {
    const bool failing = std::strcmp(status, "failed") == 0;
    if (failing) {
        a.expect(1, "fail OT --reason TEXTO", {"--reason"});
        if (!a.option("--reason") || !*a.option("--reason")) {
            usage_error("una visita fallida necesita su motivo: --reason TEXTO");
        }
    } else {
        a.expect(1, (a.command + " OT").c_str(), {});
    }
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    check(otsync_client_set_status(c->get(), ot.c_str(), status,
                                   failing ? a.option("--reason") : nullptr, &err),
          err);
    std::printf("OT %s: %s.\n", ot.c_str(), words(ot_statuses(), status).c_str());
    std::printf("Pendiente de envío: otsync-tech sync\n");
    return k_exit_ok;
}

const char* verdict_words(otsync_verdict v) {
    switch (v) {
    case OTSYNC_VERDICT_MATCHED:
        return "coincide";
    case OTSYNC_VERDICT_UNEXPECTED:
        return "no esperado";
    case OTSYNC_VERDICT_ALREADY_RECORDED:
        return "ya registrado";
    }
    return "?";
}

const char* verdict_note(otsync_verdict v) {
    switch (v) {
    case OTSYNC_VERDICT_MATCHED:
        return "está en la lista de la OT";
    case OTSYNC_VERDICT_UNEXPECTED:
        return "no está en la lista de la OT; queda registrado igual";
    case OTSYNC_VERDICT_ALREADY_RECORDED:
        return "ya estaba registrado en esta OT; no se registra dos veces";
    }
    return "";
}

int cmd_collect(Args& a) {
    a.expect(2, "collect OT SERIE --reason migration|damaged [--defect T] [--desc T] [--obs T]",
             {"--reason", "--defect", "--desc", "--obs"});
    const char* reason = a.option("--reason");
    if (!reason) {
        usage_error("falta el motivo: --reason migration|damaged");
    }
    if (std::strcmp(reason, "migration") != 0 && std::strcmp(reason, "damaged") != 0) {
        usage_error("el motivo es migration o damaged, no '" + std::string(reason) + "'");
    }
    if (std::strcmp(reason, "damaged") == 0 && !a.option("--defect")) {
        usage_error("un equipo dañado necesita su defecto: --defect TEXTO");
    }
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    otsync_verdict verdict = OTSYNC_VERDICT_UNEXPECTED;
    check(otsync_client_collect(c->get(), ot.c_str(), a.positional[1].c_str(), a.option("--desc"),
                                reason, a.option("--defect"), a.option("--obs"), &verdict, &err),
          err);
    std::printf("Recogido: %s (%s %s)\n", verdict_words(verdict), a.positional[1].c_str(),
                verdict_note(verdict));
    return k_exit_ok;
}

int cmd_verify(Args& a) {
    a.expect(2, "verify OT SERIE", {});
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    otsync_verdict verdict = OTSYNC_VERDICT_UNEXPECTED;
    check(otsync_client_verify(c->get(), ot.c_str(), a.positional[1].c_str(), &verdict, &err), err);
    std::printf("Verificado: %s (%s %s)\n", verdict_words(verdict), a.positional[1].c_str(),
                verdict_note(verdict));
    return k_exit_ok;
}

int cmd_missing(Args& a) {
    a.expect(2, "missing OT SERIE --reason TEXTO", {"--reason"});
    const char* reason = a.option("--reason");
    if (!reason || !*reason) {
        usage_error("diga por qué falta el equipo: --reason TEXTO");
    }
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    check(otsync_client_report_missing(c->get(), ot.c_str(), a.positional[1].c_str(), reason, &err),
          err);
    std::printf("Faltante registrado: %s (%s)\nPendiente de envío: otsync-tech sync\n",
                a.positional[1].c_str(), reason);
    return k_exit_ok;
}

int cmd_void(Args& a) {
    a.expect(2, "void OT SERIE", {});
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    check(otsync_client_void_item(c->get(), ot.c_str(), a.positional[1].c_str(), &err), err);
    std::printf("Fila anulada: %s (queda en el registro, marcada como anulada)\n",
                a.positional[1].c_str());
    return k_exit_ok;
}

/// A file's bytes, refused past `max` (`max_text` says it to the technician).
std::vector<std::uint8_t> read_limited(const char* path, std::size_t max, const char* max_text) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw Failure{k_exit_failed, std::string("no se puede leer ") + path};
    }
    // One byte past the limit is enough to know it is too large.
    std::vector<std::uint8_t> out(max + 1);
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
    out.resize(static_cast<std::size_t>(in.gcount()));
    if (out.size() > max) {
        throw Failure{k_exit_failed, std::string(path) + " pasa de " + max_text};
    }
    return out;
}

int cmd_photo(Args& a) {
    a.expect(3, "photo OT SERIE ARCHIVO", {});
    const std::vector<std::uint8_t> photo =
        read_limited(a.positional[2].c_str(), k_max_photo, "4 MiB");
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    const std::string hash = take(otsync_client_photo(c->get(), ot.c_str(), a.positional[1].c_str(),
                                                      photo.data(), photo.size(), &err),
                                  err);
    std::printf("Foto de %s registrada en la OT %s (%zu bytes, %s); se envía después de las "
                "filas en la próxima sincronización.\n",
                a.positional[1].c_str(), ot.c_str(), photo.size(), hash.substr(1, 12).c_str());
    return k_exit_ok;
}

int cmd_sign(Args& a) {
    a.expect(1, "sign OT --png ARCHIVO", {"--png"});
    const char* path = a.option("--png");
    if (!path) {
        usage_error("falta la imagen de la firma: --png ARCHIVO");
    }
    const std::vector<std::uint8_t> png = read_limited(path, k_max_png, "256 KiB");
    static constexpr std::uint8_t k_png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (png.size() < sizeof k_png_magic ||
        std::memcmp(png.data(), k_png_magic, sizeof k_png_magic) != 0) {
        throw Failure{k_exit_failed, std::string(path) + " no es una imagen PNG"};
    }
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    check(otsync_client_sign(c->get(), ot.c_str(), png.data(), png.size(), &err), err);
    std::printf("Firma del cliente registrada en la OT %s (%zu bytes).\n", ot.c_str(), png.size());
    return k_exit_ok;
}

int cmd_reopen(Args& a) {
    a.expect(1, "reopen OT --reason TEXTO", {"--reason"});
    const char* reason = a.option("--reason");
    if (!reason || !*reason) {
        usage_error("diga por qué deben cambiar las filas firmadas: --reason TEXTO");
    }
    auto c = open_existing(a, true);
    const std::string ot = resolve_ot(*c, a.positional[0]);
    otsync_error err{};
    check(otsync_client_reopen_signature(c->get(), ot.c_str(), reason, &err), err);
    std::printf("Firma reabierta en la OT %s (%s): la firma anterior queda en las notas; "
                "corrija las filas y firme de nuevo\n",
                ot.c_str(), reason);
    return k_exit_ok;
}

int cmd_handover(Args& a) {
    if (!a.positional.empty() && a.positional[0] == "deliver") {
        a.expect(2, "handover deliver ENTREGA --png ARCHIVO [--name NOMBRE]", {"--png", "--name"});
        const char* path = a.option("--png");
        if (!path) {
            usage_error("falta la firma del técnico: --png ARCHIVO");
        }
        const std::vector<std::uint8_t> png = read_limited(path, k_max_png, "256 KiB");
        auto c = open_existing(a, true);
        otsync_error err{};
        check(otsync_client_deliver_handover(c->get(), a.positional[1].c_str(), a.option("--name"),
                                             png.data(), png.size(), &err),
              err);
        std::printf("Entrega %s entregada y firmada: sus filas quedan fijas hasta la recepción "
                    "en almacén.\nPendiente de envío: otsync-tech sync\n",
                    a.positional[1].c_str());
        return k_exit_ok;
    }
    if (a.positional.empty() || a.positional[0] != "create") {
        usage_error("uso: otsync-tech handover create [--zone ZONA] | handover deliver ENTREGA "
                    "--png ARCHIVO [--name NOMBRE]");
    }
    a.expect(1, "handover create [--zone ZONA]", {"--zone"});
    auto c = open_existing(a, true);
    otsync_error err{};
    const auto doc =
        parse(take(otsync_client_create_handover(c->get(), a.option("--zone"), &err), err));
    std::printf("Entrega (Anexo 4) creada: %s\n", text(&doc).c_str());
    if (const char* zone = a.option("--zone")) {
        line("Zona", zone);
    }
    std::printf("Pendiente de envío: otsync-tech sync\n");
    return k_exit_ok;
}

/// State of the progress line across the API's callbacks.
struct SyncView {
    bool tty = false;
    bool drawn = false;
};

/// Bytes as a technician reads them: "812 B", "12,4 KB", "3,1 MB".
std::string human_bytes(std::uint64_t n) {
    char buf[32];
    if (n < 1024) {
        std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
    } else if (n < 1024 * 1024) {
        std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(n) / 1024);
    } else {
        std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / (1024 * 1024));
    }
    std::string out = buf;
    std::replace(out.begin(), out.end(), '.', ',');
    return out;
}

extern "C" int on_sync_progress(const otsync_sync_progress* p, void* user) {
    auto* v = static_cast<SyncView*>(user);
    if (p->retry_in_ms > 0) {
        // A wait is always told, terminal or not: the technician knows it is still trying.
        if (v->drawn) {
            std::fputc('\n', stderr);
            v->drawn = false;
        }
        std::fprintf(stderr, "%s (intento %u): reintentando en %u s\n",
                     p->last_error == OTSYNC_ERR_TIMEOUT ? "El servidor no respondió a tiempo"
                                                         : "Sin conexión con el servidor",
                     p->attempt, (p->retry_in_ms + 999) / 1000);
        return 0;
    }
    if (!v->tty) {
        return 0;
    }
    // Up and down together: the week's upload counts as much as the download.
    const std::uint64_t done = p->sent + p->received;
    const std::uint64_t total = done + p->pending + p->remaining;
    const int percent = total == 0 ? 100 : static_cast<int>(done * 100 / total);
    constexpr int k_width = 24;
    const int filled = percent * k_width / 100;
    const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                            std::string(static_cast<std::size_t>(k_width - filled), '.');
    std::fprintf(stderr,
                 "\rSincronizando [%s] %3d%%  %llu enviadas (%s), %llu por enviar; %llu "
                 "recibidas, ~%llu por recibir   ",
                 bar.c_str(), percent, static_cast<unsigned long long>(p->sent),
                 human_bytes(p->bytes_up).c_str(), static_cast<unsigned long long>(p->pending),
                 static_cast<unsigned long long>(p->received),
                 static_cast<unsigned long long>(p->remaining));
    std::fflush(stderr);
    v->drawn = true;
    return 0;
}

/// The status's notices (OTs that left the device) recorded after `after` (device ms).
void print_notices(const Json* notices, std::int64_t after, const char* indent) {
    if (!notices || !notices->IsArray()) {
        return;
    }
    for (rapidjson::SizeType i = 0; i < notices->Size(); ++i) {
        const Json* n = &(*notices)[i];
        if (number(member(n, "at")) > after) {
            std::printf("%s%s: %s\n", indent, when(number(member(n, "at"))).c_str(),
                        text(member(n, "text")).c_str());
        }
    }
}

/// When the newest notice was recorded (0: none).
std::int64_t last_notice_at(const Json* notices) {
    std::int64_t at = 0;
    if (notices && notices->IsArray()) {
        for (rapidjson::SizeType i = 0; i < notices->Size(); ++i) {
            at = std::max(at, number(member(&(*notices)[i], "at")));
        }
    }
    return at;
}

int cmd_sync(Args& a) {
    a.expect(0, "sync [--wait-network MINUTOS]", {"--wait-network"});
    // Without --wait-network a dead link is given a few seconds; with it, that many
    // minutes of retries (a tunnel, a lift, a valley without coverage).
    otsync_retry_policy policy{500, 4000, 8000, 20};
    if (const char* w = a.option("--wait-network")) {
        char* end = nullptr;
        const unsigned long minutes = std::strtoul(w, &end, 10);
        if (!*w || *end || minutes == 0 || minutes > 24 * 60) {
            usage_error("--wait-network necesita los minutos de espera (1 a 1440)");
        }
        policy = {1000, 60000, static_cast<std::uint32_t>(minutes * 60000), 20};
    }
    auto c = open_existing(a, true);
    {
        otsync_error err{};
        check(otsync_client_set_retry_policy(c->get(), &policy, &err), err);
    }
    std::int64_t seen = 0; // notices already shown: only this sync's are printed below
    {
        otsync_error err{};
        const auto before = parse(take(otsync_client_status(c->get(), &err), err));
        seen = last_notice_at(member(&before, "notices"));
    }
    SyncView view;
    view.tty = ::isatty(STDERR_FILENO) == 1;
    otsync_error err{};
    char* result = nullptr;
    const int rc = otsync_client_sync_ex(c->get(), on_sync_progress, &view, &result, &err);
    if (view.drawn) {
        std::fputc('\n', stderr);
    }
    check(rc, err);
    const auto r = parse(take(result, err));
    const auto doc = parse(take(otsync_client_status(c->get(), &err), err));
    const Json* rejections = member(&doc, "rejections");
    const std::size_t rejected = rejections && rejections->IsArray() ? rejections->Size() : 0;
    std::printf("Sincronización completa: %lld operaciones enviadas (%s), %lld recibidas (%s); "
                "pendientes de envío: %s; rechazos: %zu\n",
                static_cast<long long>(number(member(&r, "sent"))),
                human_bytes(static_cast<std::uint64_t>(number(member(&r, "bytes_up")))).c_str(),
                static_cast<long long>(number(member(&r, "received"))),
                human_bytes(static_cast<std::uint64_t>(number(member(&r, "bytes_down")))).c_str(),
                text(member(&doc, "pending")).c_str(), rejected);
    if (rejected > 0) {
        std::printf("Aviso: el servidor rechazó operaciones; vea otsync-tech status\n");
    }
    print_notices(member(&doc, "notices"), seen, "Aviso: ");
    return k_exit_ok;
}

int cmd_status(Args& a) {
    a.expect(0, "status", {});
    auto c = open_existing(a, false);
    otsync_error err{};
    const auto doc = parse(take(otsync_client_status(c->get(), &err), err));
    const Json* enrolled = member(&doc, "enrolled");
    const bool is = enrolled && enrolled->IsBool() && enrolled->GetBool();
    line("Base de datos", a.db, 26);
    line("Registrado", is ? "sí (réplica " + text(member(&doc, "replica")) + ")" : "no", 26);
    line("Pendientes de envío", text(member(&doc, "pending")), 26);
    const Json* files = member(&doc, "attachments");
    const Json* refused = member(files, "refused");
    const std::size_t nf = refused && refused->IsArray() ? refused->Size() : 0;
    line("Firmas y fotos",
         text(member(files, "pending")) + " por enviar (" +
             std::to_string(number(member(files, "pending_bytes")) / 1024) + " KiB), " +
             text(member(files, "uploaded")) + " en el servidor, " + std::to_string(nf) +
             " rechazadas (se conservan)",
         26);
    for (std::size_t i = 0; i < nf; ++i) {
        const Json* r = &(*refused)[static_cast<rapidjson::SizeType>(i)];
        std::printf("    - %s %s: %s\n", text(member(r, "kind")).c_str(),
                    text(member(r, "hash")).substr(0, 12).c_str(),
                    text(member(r, "refusal")).c_str());
    }
    const Json* last = member(&doc, "last_sync");
    const std::string at = when(number(member(last, "at")));
    const std::string result = text(member(last, "result"));
    line("Última sincronización",
         at.empty() ? "nunca" : at + (result.empty() ? "" : " (" + result + ")"), 26);
    const Json* notices = member(&doc, "notices");
    line("Avisos", std::to_string(notices && notices->IsArray() ? notices->Size() : 0), 26);
    print_notices(notices, -1, "    - ");
    const Json* rejections = member(&doc, "rejections");
    const std::size_t nr = rejections && rejections->IsArray() ? rejections->Size() : 0;
    line("Rechazos", std::to_string(nr), 26);
    for (std::size_t i = 0; i < nr; ++i) {
        const Json* r = &(*rejections)[static_cast<rapidjson::SizeType>(i)];
        std::printf("    - op %s: %s: %s\n", text(member(r, "op")).c_str(),
                    text(member(r, "code")).c_str(), text(member(r, "message")).c_str());
    }
    const Json* conflicts = member(&doc, "conflicts");
    const std::size_t nc = conflicts && conflicts->IsArray() ? conflicts->Size() : 0;
    line("Conflictos", std::to_string(nc), 26);
    for (std::size_t i = 0; i < nc; ++i) {
        const Json* k = &(*conflicts)[static_cast<rapidjson::SizeType>(i)];
        std::printf("    - %s: quedó '%s' (estados: %s)\n", text(member(k, "entity")).c_str(),
                    text(member(k, "winner")).c_str(), join(member(k, "states"), ", ").c_str());
    }
    if (!is) {
        not_enrolled(a.db);
    }
    return k_exit_ok;
}

int run(Args& a) {
    const std::string& cmd = a.command;
    if (cmd == "enroll") {
        return cmd_enroll(a);
    }
    if (cmd == "list") {
        return cmd_list(a);
    }
    if (cmd == "show") {
        return cmd_show(a);
    }
    if (cmd == "start") {
        return cmd_status_change(a, "en_route");
    }
    if (cmd == "arrive") {
        return cmd_status_change(a, "on_site");
    }
    if (cmd == "reopen") {
        return cmd_reopen(a);
    }
    if (cmd == "complete") {
        return cmd_status_change(a, "completed");
    }
    if (cmd == "fail") {
        return cmd_status_change(a, "failed");
    }
    if (cmd == "collect") {
        return cmd_collect(a);
    }
    if (cmd == "void") {
        return cmd_void(a);
    }
    if (cmd == "missing") {
        return cmd_missing(a);
    }
    if (cmd == "verify") {
        return cmd_verify(a);
    }
    if (cmd == "sign") {
        return cmd_sign(a);
    }
    if (cmd == "photo") {
        return cmd_photo(a);
    }
    if (cmd == "handover") {
        return cmd_handover(a);
    }
    if (cmd == "sync") {
        return cmd_sync(a);
    }
    if (cmd == "status") {
        return cmd_status(a);
    }
    usage_error("comando desconocido '" + cmd + "'");
}

} // namespace

int main(int argc, char** argv) {
    try {
        if (sodium_init() < 0) {
            throw Failure{k_exit_failed, "libsodium no se pudo iniciar"};
        }
        Args args = parse_args(argc, argv);
        return run(args);
    } catch (const Failure& f) {
        std::fflush(stdout);
        std::fprintf(stderr, "otsync-tech: %s\n", f.message.c_str());
        return f.exit_code;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "otsync-tech: %s\n", e.what());
        return k_exit_failed;
    }
}
