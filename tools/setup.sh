#!/usr/bin/env bash
# Installs the Debian packages that otsync needs to build, test and benchmark.
# Idempotent: installs only what is missing, runs `apt-get update` at most once.
set -euo pipefail

packages=(
    build-essential cmake ninja-build ccache pkg-config git
    libboost1.81-dev libsqlite3-dev libcereal-dev rapidjson-dev libsodium-dev
    doctest-dev libpq-dev zlib1g-dev clang-format
)
# Optional extras: the Yjs peer benchmark (tools/bench.sh --peers) needs Node.js.
# A machine that already has node and npm (from any source) keeps them.
if [[ "${1:-}" == "--peers" ]] && ! { command -v node && command -v npm; } >/dev/null; then
    packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
