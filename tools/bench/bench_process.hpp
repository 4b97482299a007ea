// What the benchmarks that run real processes share: CPU pinning, a process's memory and CPU
// time from /proc, the real otsync-server started on an ephemeral port, and a private
// PostgreSQL 15 cluster (as tests/pg_cluster.hpp starts one for the tests).
#pragma once

#include <libpq-fe.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace otsync::bench {

inline void pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/// A "Vm…:" line of /proc/PID/status, in KiB (VmRSS: resident now, VmHWM: its peak).
inline std::size_t status_kib(pid_t pid, const std::string& key = "VmRSS:") {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0) {
            return std::stoul(line.substr(key.size()));
        }
    }
    return 0;
}

inline std::size_t rss_kib(pid_t pid) {
    return status_kib(pid, "VmRSS:");
}

/// CPU seconds a process has used (utime + stime of all its threads, /proc/PID/stat), with
/// its reaped children's when `with_reaped` (cutime + cstime). 0 when it is gone.
inline double cpu_seconds(pid_t pid, bool with_reaped = false) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')'); // the name may hold spaces
    if (paren == std::string::npos) {
        return 0;
    }
    std::istringstream fields(stat.substr(paren + 2));
    std::vector<std::string> f;
    for (std::string s; fields >> s;) {
        f.push_back(s);
    }
    if (f.size() < 15) {
        return 0;
    }
    // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    double ticks = std::stod(f[11]) + std::stod(f[12]);
    if (with_reaped) {
        ticks += std::stod(f[13]) + std::stod(f[14]);
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

inline std::vector<pid_t> children_of(pid_t pid) {
    std::vector<pid_t> out;
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    for (pid_t child = 0; in >> child;) {
        out.push_back(child);
    }
    return out;
}

/// The CPU seconds of a whole PostgreSQL cluster: the postmaster with the children it has
/// reaped, and every live child (backends, WAL writer, checkpointer, …).
inline double cluster_cpu_seconds(pid_t postmaster) {
    if (postmaster <= 0) {
        return 0;
    }
    double s = cpu_seconds(postmaster, true);
    for (const pid_t child : children_of(postmaster)) {
        s += cpu_seconds(child);
    }
    return s;
}

/// Starts a child process pinned to `cpu` (-1: unpinned) running `child`.
inline pid_t spawn_pinned(const std::function<void()>& child, int cpu = 0) {
    const pid_t pid = fork();
    if (pid == 0) {
        if (cpu >= 0) {
            pin_to_cpu(cpu);
        }
        child();
        _exit(0);
    }
    return pid;
}

inline unsigned short wait_port(const std::filesystem::path& port_file, int seconds = 60) {
    for (int i = 0; i < seconds * 10; ++i) {
        std::ifstream in(port_file);
        unsigned short p = 0;
        if (in >> p && p) {
            return p;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("server did not start");
}

inline std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (const char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

/// GET `target` from a server on 127.0.0.1:`port`, the body (server_bench.cpp: the bench's
/// one translation unit with Beast).
std::string bench_http_get(unsigned short port, const std::string& target);

struct ServerRun {
    pid_t pid = -1; // the shell running the server and the port filter
    unsigned short port = 0;
};

/// The real binary, pinned to `cpu`, listening on an ephemeral port that it reports on
/// stderr; a shell pipeline would unpin it, so the shell reads the line itself.
/// `args` are otsync-server's options besides --listen.
inline ServerRun start_otsync_server(const std::string& server_bin, const std::string& args,
                                     const std::filesystem::path& dir, int cpu,
                                     int wait_seconds = 60) {
    const auto port_file = dir / "port";
    std::filesystem::create_directories(dir);
    std::filesystem::remove(port_file);
    ServerRun run;
    const std::string cmd = server_bin + " --listen 127.0.0.1:0 " + args +
                            " 2>&1 >/dev/null | sed -un 's/.*127.0.0.1:\\([0-9]*\\) .*/\\1/p' > " +
                            port_file.string();
    run.pid = spawn_pinned(
        [&] { execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr)); }, cpu);
    run.port = wait_port(port_file, wait_seconds);
    return run;
}

/// The shell's child running otsync-server.
inline pid_t server_pid_of(pid_t shell) {
    for (const pid_t child : children_of(shell)) {
        std::ifstream comm("/proc/" + std::to_string(child) + "/comm");
        std::string name;
        comm >> name;
        if (name.rfind("otsync-server", 0) == 0) {
            return child;
        }
    }
    return shell;
}

inline void stop_server(pid_t shell) {
    const pid_t server = server_pid_of(shell);
    kill(server, SIGTERM);
    int status = 0;
    waitpid(shell, &status, 0);
}

/// A private PostgreSQL 15 cluster in `dir`: initdb, the server on a Unix socket in that
/// folder only (no TCP), durable commits as in production (fsync, synchronous_commit on),
/// pinned to `cpu` (the postmaster and every backend inherit it). Under root it runs as
/// `nobody`, since PostgreSQL refuses root. A watchdog stops it and removes the folder when
/// the bench ends in any way, so no cluster outlives a crashed run.
class PrivatePg {
public:
    PrivatePg(const std::filesystem::path& dir, int cpu) : m_dir(dir) {
        m_bin = "/usr/lib/postgresql/15/bin";
        if (!std::filesystem::exists(m_bin + "/initdb")) {
            throw std::runtime_error("PostgreSQL 15's initdb not found in " + m_bin +
                                     " (tools/setup.sh installs postgresql-15)");
        }
        std::filesystem::create_directories(m_dir);
        if (geteuid() == 0) {
            run("chown nobody:nogroup " + shell_quoted(m_dir.string()));
            m_as = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
        }
        const std::string data = (m_dir / "data").string();
        run(m_as + shell_quoted(m_bin + "/initdb") + " -D " + shell_quoted(data) +
            " -A trust -U otsync -E UTF8 --locale=C.UTF-8 --no-sync > " +
            shell_quoted((m_dir / "initdb.log").string()) + " 2>&1");
        start_watchdog();
        const std::string start =
            m_as + shell_quoted(m_bin + "/pg_ctl") + " -D " + shell_quoted(data) + " -l " +
            shell_quoted((m_dir / "server.log").string()) + " -w -o " +
            shell_quoted("-k " + m_dir.string() +
                         " -c listen_addresses='' -c fsync=on -c synchronous_commit=on") +
            " start > /dev/null";
        const pid_t starter = spawn_pinned(
            [&] { execl("/bin/sh", "sh", "-c", start.c_str(), static_cast<char*>(nullptr)); }, cpu);
        int status = 0;
        waitpid(starter, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            throw std::runtime_error("PostgreSQL did not start (see " +
                                     (m_dir / "server.log").string() + ")");
        }
        m_started = true;
    }
    ~PrivatePg() {
        if (m_started) {
            (void)std::system((m_as + shell_quoted(m_bin + "/pg_ctl") + " -D " +
                               shell_quoted((m_dir / "data").string()) +
                               " -m fast stop > /dev/null 2>&1")
                                  .c_str());
        }
        if (m_watchdog > 0) {
            close(m_watchdog_pipe); // the watchdog wakes, finds it stopped, removes the folder
            int status = 0;
            waitpid(m_watchdog, &status, 0);
        }
    }
    PrivatePg(const PrivatePg&) = delete;
    PrivatePg& operator=(const PrivatePg&) = delete;

    std::string conninfo(const std::string& dbname) const {
        return "host=" + m_dir.string() + " user=otsync dbname=" + dbname;
    }
    /// A new database (a copy of `template_db` when given, which nobody may be connected
    /// to): its conninfo.
    std::string create_database(const std::string& name, const std::string& template_db = "") {
        run(shell_quoted(m_bin + "/createdb") + " -h " + shell_quoted(m_dir.string()) +
            " -U otsync " + (template_db.empty() ? "" : "-T " + shell_quoted(template_db) + " ") +
            shell_quoted(name));
        return conninfo(name);
    }
    void drop_database(const std::string& name) {
        run(shell_quoted(m_bin + "/dropdb") + " -h " + shell_quoted(m_dir.string()) +
            " -U otsync " + shell_quoted(name));
    }
    pid_t postmaster() const {
        std::ifstream in(m_dir / "data" / "postmaster.pid");
        pid_t pid = -1;
        in >> pid;
        return pid;
    }

private:
    void start_watchdog() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe failed");
        }
        const std::string cleanup = m_as + shell_quoted(m_bin + "/pg_ctl") + " -D " +
                                    shell_quoted((m_dir / "data").string()) +
                                    " -m immediate stop > /dev/null 2>&1; rm -rf " +
                                    shell_quoted(m_dir.string());
        const pid_t pid = fork();
        if (pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid == 0) {
            close(fds[1]);
            char c;
            while (read(fds[0], &c, 1) != 0) {
                // EOF only: the bench (the one writer) is gone
            }
            execl("/bin/sh", "sh", "-c", cleanup.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        close(fds[0]);
        m_watchdog = pid;
        m_watchdog_pipe = fds[1];
    }
    static void run(const std::string& command) {
        if (std::system(command.c_str()) != 0) {
            throw std::runtime_error("failed: " + command);
        }
    }

    std::filesystem::path m_dir;
    std::string m_bin;
    std::string m_as; // "setpriv … " under root, else ""
    bool m_started = false;
    pid_t m_watchdog = -1;
    int m_watchdog_pipe = -1;
};

/// The postmaster of the cluster a libpq connection string names, when it is on this
/// machine behind a Unix socket (its lock file holds the postmaster's PID); -1 otherwise
/// (its CPU time cannot be read from here).
inline pid_t postmaster_of(const std::string& conninfo) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (!opts) {
        PQfreemem(err);
        return -1;
    }
    std::string host, port = "5432";
    for (auto* o = opts; o->keyword; ++o) {
        if (o->val && std::string(o->keyword) == "host") {
            host = o->val;
        } else if (o->val && *o->val && std::string(o->keyword) == "port") {
            port = o->val;
        }
    }
    PQconninfoFree(opts);
    if (host.empty()) {
        host = "/var/run/postgresql"; // Debian's libpq default
    }
    if (host[0] != '/') {
        return -1;
    }
    std::ifstream in(std::filesystem::path(host) / (".s.PGSQL." + port + ".lock"));
    pid_t pid = -1;
    in >> pid;
    return pid;
}

} // namespace otsync::bench
