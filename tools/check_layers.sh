#!/usr/bin/env bash
# Fails when a file of a server layer includes a layer above it, or a library its layer
# must not know (docs/architecture.md §1). The CMake targets (server/CMakeLists.txt) link
# only downward; this check also covers headers, which a link does not see.
#
#   layer (folder)      may include (besides itself and shared/'s otsync/)
#   server/store        -                                  SQLite only here
#   server/sync         store                              no HTTP (the app maps refusals)
#   server/procedure    sync, store                        no JSON, no HTTP
#   server/auth         store
#   server/http         -                                  Beast only here (and in tests)
#   server/api          procedure, sync, auth, http, store (the interface, no SQLite)
#   server/ (root)      everything: the composition root, the demo, main
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [store]="store"
    [sync]="sync store"
    [procedure]="procedure sync store"
    [auth]="auth store"
    [http]="http"
    [api]="api procedure sync auth http store"
)
declare -A forbidden_libs=(
    [sync]="boost/beast sqlite3.h"
    [procedure]="rapidjson boost/beast sqlite3.h"
    [auth]="rapidjson boost/beast sqlite3.h"
    [api]="boost/beast boost/asio sqlite3.h"
    [http]="sqlite3.h rapidjson"
)
# The sync layer speaks the devices' protocol (the codec's JSON form, the enrollment body,
# set-aside records): that JSON is the devices', not the people's, and stays there.

status=0
for layer in "${!allowed[@]}"; do
    for f in $(git ls-files "server/$layer/*.cpp" "server/$layer/*.hpp"); do
        while IFS= read -r inc; do
            dir=${inc%%/*}
            [[ "$inc" == otsync/* || "$dir" == "$inc" ]] && continue
            ok=0
            for a in ${allowed[$layer]}; do
                [[ "$dir" == "$a" ]] && ok=1
            done
            if [[ $ok == 0 ]]; then
                echo "$f: includes \"$inc\": $layer may use only ${allowed[$layer]}" >&2
                status=1
            fi
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
        for lib in ${forbidden_libs[$layer]:-}; do
            if grep -q "^#include <$lib" "$f"; then
                echo "$f: includes <$lib...>: not in the $layer layer" >&2
                status=1
            fi
        done
    done
done
# shared/ is the ground floor: nothing of the server or the client.
if git grep -n -E '^#include "(store|sync|procedure|auth|http|api)/' -- shared >/dev/null; then
    git grep -n -E '^#include "(store|sync|procedure|auth|http|api)/' -- shared >&2
    status=1
fi
[[ $status == 0 ]] && echo "layers: every include points down"
exit $status
