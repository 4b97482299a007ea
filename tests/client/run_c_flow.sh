#!/usr/bin/env bash
# Runs the plain-C flow (tests/client/c_flow.c) against a real otsync-server: starts the
# server with its demo data on an ephemeral loopback port and a temporary data folder,
# takes a one-time enrollment code for the demo technician tec.quispe (whose modality-4
# case has a withdraw_boot OT expecting HWTC7F300999, see server/demo.cpp), runs the flow,
# stops the server with SIGTERM and removes the folder. Exits with the flow's exit code.
#
#   run_c_flow.sh SERVER_BIN ADMIN_BIN C_FLOW_BIN
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: run_c_flow.sh SERVER_BIN ADMIN_BIN C_FLOW_BIN" >&2
    exit 2
fi
server_bin=$1
admin_bin=$2
flow_bin=$3
for bin in "$server_bin" "$admin_bin" "$flow_bin"; do
    if [[ ! -x $bin ]]; then
        echo "run_c_flow: $bin is not an executable" >&2
        exit 2
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otsync-c-flow.XXXXXX")
server_pid=""

# Stops the server (SIGTERM, then SIGKILL after 15 s) and prints how it ended.
stop_server() {
    [[ -n $server_pid ]] || return 0
    local pid=$server_pid status=0
    server_pid=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "run_c_flow: the server ignored SIGTERM for 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    if [[ $status -ne 0 ]]; then
        echo "run_c_flow: the server exited with status $status" >&2
    fi
}

cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
# A signal (a ctest timeout) ends the script through the EXIT trap too.
trap 'exit 143' TERM INT HUP

# The server's stderr shows the flow's failures from its side; print its end on failure.
show_server_log() {
    echo "run_c_flow: --- server stderr (last 40 lines) ---" >&2
    tail -n 40 "$tmp/server.err" >&2 || true
}

"$server_bin" --listen 127.0.0.1:0 --data-dir "$tmp" --demo \
    >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

port=""
for _ in $(seq 300); do
    port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\) .*|\1|p' \
        "$tmp/server.err" | head -n 1)
    [[ -n $port ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run_c_flow: the server exited before listening" >&2
        show_server_log
        exit 1
    fi
    sleep 0.1
done
if [[ -z $port ]]; then
    echo "run_c_flow: the server did not say it was listening within 30 s" >&2
    show_server_log
    exit 1
fi
echo "run_c_flow: server on port $port, data in $tmp"

admin() {
    "$admin_bin" --data-dir "$tmp" "$@"
}
admin user add --role back_office bo
admin user add --role technician tec
code=$(admin device enroll-code tec.quispe)
if [[ -z $code ]]; then
    echo "run_c_flow: otsync-admin gave no enrollment code" >&2
    exit 1
fi

rc=0
"$flow_bin" "http://127.0.0.1:$port" "$code" "$tmp/device.db" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "run_c_flow: c_flow exited with status $rc" >&2
    show_server_log
fi

stop_server
exit "$rc"
