#!/usr/bin/env bash
# Fails when a file of a server layer includes a layer above it, or a library its layer
# must not know (docs/architecture.md §2). The CMake targets (server/CMakeLists.txt) link
# only downward; this check also covers headers, which a link does not see. server/ itself
# (the composition root, the demo, main) may include everything; shared/ nothing of the
# server.
set -euo pipefail
cd "$(dirname "$0")/.."

# layer | the layers it may include besides itself and shared/'s otsync/ | libraries it may not
rules='
store     |                                   | boost/beast rapidjson
sync      | store                             | boost/beast sqlite3.h libpq-fe.h
procedure | sync store                        | boost/beast sqlite3.h libpq-fe.h rapidjson
auth      | store                             | boost/beast sqlite3.h libpq-fe.h rapidjson
http      |                                   | sqlite3.h libpq-fe.h rapidjson
api       | procedure sync auth http store    | boost/beast boost/asio sqlite3.h libpq-fe.h
'
# The sync layer speaks the devices' protocol (the codec's JSON form, the enrollment body,
# set-aside records): that JSON is the devices', not the people's, and stays there.

status=0
while IFS='|' read -r layer allowed forbidden; do
    layer=$(echo "$layer" | xargs)
    allowed=$(echo "$allowed" | xargs)
    [[ -z "$layer" ]] && continue
    for f in $(git ls-files "server/$layer/*.cpp" "server/$layer/*.hpp"); do
        while IFS= read -r inc; do
            dir=${inc%%/*}
            [[ "$inc" == otsync/* || "$dir" == "$inc" || "$dir" == "$layer" ]] && continue
            if [[ " $allowed " != *" $dir "* ]]; then
                echo "$f: includes \"$inc\": $layer may use ${allowed:-no other layer}" >&2
                status=1
            fi
        done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
        for lib in $forbidden; do
            if grep -q "^#include <$lib" "$f"; then
                echo "$f: includes <$lib...>: not in the $layer layer" >&2
                status=1
            fi
        done
    done
done <<< "$rules"
if git grep -n -E '^#include "(store|sync|procedure|auth|http|api)/' -- shared >&2; then
    status=1
fi
[[ $status == 0 ]] && echo "layers: every include points down"
exit $status
