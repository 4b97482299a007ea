#!/usr/bin/env bash
# Fails unless libotsync_client.so's dynamic symbol table defines the C API alone: every
# defined symbol is otsync_*, and it is exactly the OTSYNC_API functions of client.h
# (no C++ symbol of otsync_shared, no SQLite, libsodium or C++ runtime piece re-exported).
#   check_exports.sh NM LIBRARY CLIENT_H
set -euo pipefail
nm=$1 lib=$2 header=$3

[[ -f $lib ]] || { echo "check_exports: no $lib (build otsync_client_shared)" >&2; exit 1; }

# "ADDRESS TYPE NAME[@@VERSION]": the names alone.
exported=$("$nm" -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $NF); print $NF }' | sort -u)
# The function named on each line that starts a declaration with OTSYNC_API.
declared=$(grep -E '^OTSYNC_API\b' "$header" |
    sed -E 's/^[^(]*[^A-Za-z0-9_](otsync_[A-Za-z0-9_]+)\(.*/\1/' | sort -u)

status=0
# A function declared without OTSYNC_API would be hidden in the library.
unmarked=$(grep -E '^[A-Za-z_].*[^A-Za-z0-9_]otsync_[A-Za-z0-9_]+\(' "$header" |
    grep -vE '^(OTSYNC_API|typedef)\b' || true)
if [[ -n $unmarked ]]; then
    echo "check_exports: declared in client.h without OTSYNC_API:" >&2
    sed 's/^/  /' <<<"$unmarked" >&2
    status=1
fi
others=$(grep -v '^otsync_' <<<"$exported" || true)
if [[ -n $others ]]; then
    echo "check_exports: $lib defines symbols other than otsync_*:" >&2
    sed 's/^/  /' <<<"$others" >&2
    status=1
fi
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
if [[ -n $missing ]]; then
    echo "check_exports: declared OTSYNC_API in client.h but not exported:" >&2
    sed 's/^/  /' <<<"$missing" >&2
    status=1
fi
extra=$(comm -23 <(grep '^otsync_' <<<"$exported" || true) <(echo "$declared"))
if [[ -n $extra ]]; then
    echo "check_exports: exported but not declared OTSYNC_API in client.h:" >&2
    sed 's/^/  /' <<<"$extra" >&2
    status=1
fi
if ((status == 0)); then
    echo "check_exports: $(basename "$lib") exports the $(wc -l <<<"$declared") otsync_* functions of client.h, nothing else"
fi
exit $status
