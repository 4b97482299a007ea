// Runs the real otsync-server binary for integration tests: on an ephemeral loopback
// port, in a temporary data folder, stopped (SIGTERM) or killed (SIGKILL) on demand.
// Requests go through client-core's built-in HTTP transport; also signed sync calls.
#pragma once

#include "../temp_dir.hpp"
#include "otsync/client.hpp"
#include "otsync/codec.hpp"
#include "otsync/crypto.hpp"
#include "otsync/session.hpp"

#include <doctest/doctest.h>

#include <sodium.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <map>
#include <random>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace otsync::test {

/// A server's data folder for one test.
struct DataDir : TempDir {
    DataDir() : TempDir("otsync-it-") {}
};

/// Starts `argv` with its stdout on a pipe; returns the pid and the pipe's read end.
inline std::pair<pid_t, int> spawn_with_stdout(const std::vector<std::string>& argv) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    return {pid, out[0]};
}

/// Reads a pipe to its end and closes it.
inline std::string drain(int fd) {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

/// Runs a command to completion; returns (exit code, stdout).
inline std::pair<int, std::string> run_command(const std::vector<std::string>& argv) {
    const auto [pid, fd] = spawn_with_stdout(argv);
    std::string text = drain(fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

#ifdef OTSYNC_ADMIN_BIN
/// otsync-admin on a data folder, or on the PostgreSQL database `store` when it is not empty
/// (the server's --store); checks its exit code, returns stdout without the trailing newline.
inline std::string admin(const std::filesystem::path& dir, std::vector<std::string> args,
                         int expect = 0, const std::string& store = {}) {
    std::vector<std::string> argv{OTSYNC_ADMIN_BIN};
    if (store.empty()) {
        argv.insert(argv.end(), {"--data-dir", dir.string()});
    } else {
        argv.insert(argv.end(), {"--store", store});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    auto [code, out] = run_command(argv);
    CHECK_MESSAGE(code == expect, "otsync-admin exit " << code << ": " << out);
    while (!out.empty() && out.back() == '\n') {
        out.pop_back();
    }
    return out;
}
#endif

class ServerProcess {
public:
    ServerProcess(std::filesystem::path data_dir, std::vector<std::string> extra = {})
        : m_dir(std::move(data_dir)), m_extra(std::move(extra)) {}
    ~ServerProcess() { kill(); }

    void start() {
        int err[2];
        REQUIRE(::pipe(err) == 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        posix_spawn_file_actions_addclose(&fa, err[0]);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        std::vector<std::string> argv{
            OTSYNC_SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir", m_dir.string(),
            "--threads",       "2"};
        argv.insert(argv.end(), m_extra.begin(), m_extra.end());
        std::vector<char*> args;
        for (auto& a : argv) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        REQUIRE(posix_spawn(&m_pid, args[0], &fa, nullptr, args.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&fa);
        ::close(err[1]);
        m_err = err[0];
        // Wait for "listening on http://127.0.0.1:PORT" (bounded).
        std::string seen;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        char c;
        while (std::chrono::steady_clock::now() < deadline && ::read(m_err, &c, 1) == 1) {
            seen += c;
            const auto pos = seen.find("listening on http://127.0.0.1:");
            if (pos != std::string::npos && c == ' ' && seen.size() > pos + 30) {
                port = static_cast<unsigned short>(std::stoi(seen.substr(pos + 30)));
                break;
            }
        }
        REQUIRE_MESSAGE(port != 0, "server did not start: " << seen);
        // Keep draining stderr so the server never blocks on a full pipe.
        m_drain = std::thread([fd = m_err] {
            char buf[4096];
            while (::read(fd, buf, sizeof buf) > 0) {
            }
        });
    }

    /// SIGTERM and wait: returns the exit code.
    int stop() {
        if (m_pid <= 0) {
            return -1;
        }
        ::kill(m_pid, SIGTERM);
        return reap();
    }
    /// SIGKILL: no goodbye, no flush.
    void kill() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGKILL);
            reap();
        }
    }
    bool running() const { return m_pid > 0; }

    unsigned short port = 0;

private:
    int reap() {
        int status = 0;
        ::waitpid(m_pid, &status, 0);
        m_pid = -1;
        if (m_drain.joinable()) {
            m_drain.join();
        }
        ::close(m_err);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    std::filesystem::path m_dir;
    std::vector<std::string> m_extra;
    pid_t m_pid = -1;
    int m_err = -1;
    std::thread m_drain;
};

struct HttpResult {
    unsigned status = 0; // 0: connection failed or cut
    std::string body;    // as it came: decode it by content_encoding
    std::string content_type;
    std::string content_encoding;
};

/// One request to the server on `port` through client-core's built-in transport (the same
/// HTTP client the handhelds use), on a new connection, within `options`' deadlines.
inline HttpResult http_call(unsigned short port, const std::string& method,
                            const std::string& target, const std::string& body = {},
                            const std::map<std::string, std::string>& headers = {},
                            const client::HttpOptions& options = {}) {
    const auto transport =
        client::make_http_transport("http://127.0.0.1:" + std::to_string(port), options);
    const client::HttpReply r = transport->request(method, target, headers, body);
    return {r.status, r.body, r.content_type, r.content_encoding};
}

/// A device over real HTTP.
struct HttpDevice {
    SigningKeyPair key = SigningKeyPair::generate();
    std::uint64_t replica = 0;
    Id user;
    std::uint64_t counter = 0;
    std::uint64_t cursor = 0;

    bool enroll(unsigned short port, const std::string& code) {
        const auto r = http_call(port, "POST", "/v1/devices/enroll",
                                 "{\"code\":\"" + code + "\",\"public_key\":\"" +
                                     to_base64(key.public_key) + "\",\"label\":\"test\"}");
        if (r.status != 200) {
            return false;
        }
        replica = std::stoull(r.body.substr(r.body.find("\"replica\":") + 10));
        user = Id::from_hex(r.body.substr(r.body.find("\"user\":\"") + 8, 32));
        return true;
    }

    HttpResult post(unsigned short port, const SyncRequest& req, bool json,
                    const client::HttpOptions& options = {}) {
        const std::string body = json ? to_json(req) : encode_binary(req);
        const Signature sig =
            sign(sync_signing_string("POST", "/v1/sync", req.request_counter, body), key.secret);
        return http_call(port, "POST", "/v1/sync", body,
                         {{"Content-Type", json ? k_content_type_json : k_content_type_binary},
                          {"X-Otsync-Replica", std::to_string(replica)},
                          {"X-Otsync-Counter", std::to_string(req.request_counter)},
                          {"X-Otsync-Signature", to_base64(sig)}},
                         options);
    }

    SyncRequest request(std::vector<Op> ops, HlcTime hlc) {
        SyncRequest r;
        r.replica = replica;
        r.request_counter = ++counter;
        r.cursor = cursor;
        r.hlc = hlc;
        r.ops = std::move(ops);
        session::sign_ops(r, key.secret);
        return r;
    }
};

} // namespace otsync::test
