// A private PostgreSQL 15 cluster for one test process: initdb into a temporary folder, the
// server on a Unix socket in that folder only (no TCP), stopped and removed at the end.
// PostgreSQL refuses to run as root, so under root (CI) initdb and the server run as
// `nobody` (setpriv), in a folder given to that user. The binaries come from
// `pg_config --bindir` (Debian's postgresql-15, installed by tools/setup.sh).
//
// A watchdog process stops the cluster and removes its folder when the test process ends
// in any way (an abort from a sanitizer, SIGKILL): it waits for the end of a pipe that only
// the test process holds, so no PostgreSQL outlives the tests.
#pragma once

#include "temp_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace otsync::test {

class PgCluster {
public:
    PgCluster() : m_dir("otsync-pg-") {
        m_bin = command_output("pg_config --bindir");
        if (m_bin.empty() || !std::filesystem::exists(m_bin + "/initdb")) {
            throw std::runtime_error("PostgreSQL's initdb not found (tools/setup.sh installs "
                                     "postgresql-15)");
        }
        if (::geteuid() == 0) {
            // The folder and everything below it belong to the unprivileged user.
            run("chown nobody:nogroup " + quoted(m_dir.path.string()));
            m_as = "setpriv --reuid=nobody --regid=nogroup --clear-groups ";
        }
        const std::string data = (m_dir.path / "data").string();
        run(m_as + quoted(m_bin + "/initdb") + " -D " + quoted(data) +
            " -A trust -U otsync -E UTF8 --locale=C.UTF-8 --no-sync > " +
            quoted((m_dir.path / "initdb.log").string()) + " 2>&1");
        start_watchdog();
        start();
        run(quoted(m_bin + "/createdb") + " -h " + quoted(m_dir.path.string()) +
            " -U otsync otsync");
    }
    ~PgCluster() {
        if (m_started) {
            (void)std::system(stop_command("fast").c_str());
        }
        if (m_watchdog > 0) {
            ::close(m_watchdog_pipe); // the watchdog wakes, finds it stopped, exits
            int status = 0;
            (void)::waitpid(m_watchdog, &status, 0);
        }
    }
    PgCluster(const PgCluster&) = delete;
    PgCluster& operator=(const PgCluster&) = delete;

    /// A libpq connection string for the cluster's `otsync` database (or another one).
    std::string conninfo(const std::string& dbname = "otsync") const {
        return "host=" + m_dir.path.string() + " user=otsync dbname=" + dbname;
    }
    /// The server stopped at once, as by a power cut or a crash (no shutdown checkpoint: at
    /// the next start PostgreSQL replays its WAL), then started again.
    void restart_immediate() {
        run(stop_command());
        m_started = false;
        start();
    }
    /// Creates an empty database `name` (one per test keeps tests apart).
    void create_database(const std::string& name) const {
        run(quoted(m_bin + "/createdb") + " -h " + quoted(m_dir.path.string()) + " -U otsync " +
            quoted(name));
    }

private:
    void start() {
        // Durable commits as in production (fsync, synchronous_commit on); a socket only.
        run(m_as + quoted(m_bin + "/pg_ctl") + " -D " + quoted((m_dir.path / "data").string()) +
            " -l " + quoted((m_dir.path / "server.log").string()) + " -w -o " +
            quoted("-k " + m_dir.path.string() +
                   " -c listen_addresses='' -c fsync=on -c synchronous_commit=on") +
            " start > /dev/null");
        m_started = true;
    }
    /// Immediate: no shutdown checkpoint (a crash). Fast: the server's children are
    /// reaped before it exits (an immediate stop can leave one to a PID 1 that does not
    /// reap, shown as a defunct postgres).
    std::string stop_command(const char* mode = "immediate") const {
        return m_as + quoted(m_bin + "/pg_ctl") + " -D " + quoted((m_dir.path / "data").string()) +
               " -m " + mode + " stop > /dev/null 2>&1";
    }
    /// A child that waits for the test process to go, then stops the cluster and removes
    /// the folder. Everything it runs is prepared before the fork.
    void start_watchdog() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe failed");
        }
        const std::string cleanup = stop_command() + "; rm -rf " + quoted(m_dir.path.string());
        const pid_t pid = ::fork();
        if (pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (pid == 0) {
            ::close(fds[1]);
            char c;
            while (::read(fds[0], &c, 1) != 0) {
                // EOF only: the test process (the one writer) is gone
            }
            ::execl("/bin/sh", "sh", "-c", cleanup.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[0]);
        m_watchdog = pid;
        m_watchdog_pipe = fds[1];
    }

    static std::string quoted(const std::string& s) {
        std::string out = "'";
        for (const char c : s) {
            out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        }
        return out + "'";
    }
    static void run(const std::string& command) {
        if (std::system(command.c_str()) != 0) {
            throw std::runtime_error("failed: " + command);
        }
    }
    static std::string command_output(const std::string& command) {
        std::string out;
        if (FILE* p = ::popen(command.c_str(), "r")) {
            char buf[512];
            while (std::fgets(buf, sizeof buf, p)) {
                out += buf;
            }
            ::pclose(p);
        }
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
            out.pop_back();
        }
        return out;
    }

    TempDir m_dir;
    std::string m_bin;
    std::string m_as; // "setpriv … " under root, else ""
    bool m_started = false;
    pid_t m_watchdog = -1;
    int m_watchdog_pipe = -1;
};

/// The one cluster of this test process, started at first use.
inline PgCluster& pg_cluster() {
    static PgCluster cluster;
    return cluster;
}

/// A fresh database on the process's cluster for one test case: its conninfo.
inline std::string fresh_pg_database() {
    static int n = 0;
    const std::string name = "t" + std::to_string(::getpid()) + "_" + std::to_string(++n);
    pg_cluster().create_database(name);
    return pg_cluster().conninfo(name);
}

} // namespace otsync::test
