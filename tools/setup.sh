#!/usr/bin/env bash
# Installs the Debian packages that otsync needs to build, test and benchmark, and the
# browser tests' one npm package (playwright-core, pinned in tests/browser/package-lock.json;
# it drives Debian's chromium, it downloads no browser), the JDK for bindings/java, and nginx
# and systemd-analyze for tests/deploy (in Debian 12 `nginx` holds the binary, with TLS and
# upstreams; nginx-light only adds a module).
# Idempotent: installs only what is missing, runs `apt-get update` at most once.
#   --clang  also clang and its sanitizer runtimes (tools/test.sh --tsan)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    build-essential cmake ninja-build ccache pkg-config git
    libboost1.81-dev libsqlite3-dev libcereal-dev rapidjson-dev libsodium-dev
    doctest-dev libpq-dev postgresql-15 zlib1g-dev libzstd-dev libssl-dev clang-format
    chromium fonts-dejavu-core openjdk-17-jdk-headless nginx systemd
)
# Node.js for the browser tests (and the Yjs peer benchmark): a machine that already has
# node and npm (from any source) keeps them.
if ! { command -v node && command -v npm; } >/dev/null; then
    packages+=(nodejs npm)
fi
if [[ ${1:-} == --clang ]]; then
    packages+=(clang libclang-rt-dev)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

browser_deps() {
    # playwright-core for tests/browser, from the lock file, when it is not there yet.
    local want have
    want=$(sed -n 's/.*"playwright-core": "\([0-9.]*\)".*/\1/p' tests/browser/package.json)
    have=""
    if [[ -f tests/browser/node_modules/playwright-core/package.json ]]; then
        have=$(sed -n 's/.*"version": "\([0-9.]*\)".*/\1/p' \
            tests/browser/node_modules/playwright-core/package.json | head -1)
    fi
    if [[ -n $want && $want != "$have" ]]; then
        echo "setup.sh: installing playwright-core $want for the browser tests"
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

if ((${#missing[@]} == 0)); then
    browser_deps
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
browser_deps
