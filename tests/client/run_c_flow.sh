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

# shellcheck source=../demo_server.sh
source "$(dirname "$0")/../demo_server.sh"
demo_server_start run_c_flow "$server_bin"
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
