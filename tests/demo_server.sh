# Sourced by the test scripts that drive a real otsync-server (tests/client/run_c_flow.sh,
# bindings/java/run_test.sh): starts the server with its demo data on an ephemeral loopback
# port in a temporary data folder, and stops it and removes the folder on exit (a ctest
# timeout's signal included).
#
#   demo_server_start NAME SERVER_BIN   sets $tmp (the data folder) and $port; exits 1
#                                       when the server does not come up
#   stop_server                         SIGTERM, then SIGKILL after 15 s; says how it ended
#   show_server_log                     the server's stderr, last 40 lines

tmp=""
port=""
server_pid=""
demo_server_name="test"

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
        echo "$demo_server_name: the server ignored SIGTERM for 15 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || status=$?
    if [[ $status -ne 0 ]]; then
        echo "$demo_server_name: the server exited with status $status" >&2
    fi
}

show_server_log() {
    echo "$demo_server_name: --- server stderr (last 40 lines) ---" >&2
    tail -n 40 "$tmp/server.err" >&2 || true
}

demo_server_cleanup() {
    stop_server
    [[ -z $tmp ]] || rm -rf "$tmp"
}

demo_server_start() {
    demo_server_name=$1
    local server_bin=$2
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/otsync-$demo_server_name.XXXXXX")
    trap demo_server_cleanup EXIT
    trap 'exit 143' TERM INT HUP
    "$server_bin" --listen 127.0.0.1:0 --data-dir "$tmp" --demo \
        >"$tmp/server.out" 2>"$tmp/server.err" &
    server_pid=$!
    for _ in $(seq 300); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\) .*|\1|p' \
            "$tmp/server.err" | head -n 1)
        [[ -n $port ]] && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "$demo_server_name: the server exited before listening" >&2
            show_server_log
            exit 1
        fi
        sleep 0.1
    done
    echo "$demo_server_name: the server did not say it was listening within 30 s" >&2
    show_server_log
    exit 1
}
