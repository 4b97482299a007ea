#!/usr/bin/env bash
# The test command: installs what is missing, builds build/debug with ASan+UBSan
# and runs every suite through ctest. Exit code is the result.
#   --soak   also run the long variants (100,000 convergence schedules, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

soak=0
for arg in "$@"; do
    case "$arg" in
        --soak) soak=1 ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

tools/setup.sh

launcher=()
if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

cmake -S . -B build/debug -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DOTSYNC_SANITIZE=ON -DOTSYNC_WERROR=ON "${launcher[@]}"
cmake --build build/debug

export OTSYNC_SOAK=$soak
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
timeout_s=1800
((soak)) && timeout_s=14400
ctest --test-dir build/debug --output-on-failure --timeout "$timeout_s" -j 2
