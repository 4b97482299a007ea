#!/usr/bin/env bash
# The test command: installs what is missing, builds build/debug with ASan+UBSan
# and runs every suite through ctest. Exit code is the result.
#   --soak   also run the long variants (100,000 convergence schedules, ...)
#   --tsan   instead, build build/tsan with clang and ThreadSanitizer and run the suites
#            whose code runs on several threads (client-core's shared handle, the sync
#            service's group commit)
set -euo pipefail
cd "$(dirname "$0")/.."

soak=0
tsan=0
for arg in "$@"; do
    case "$arg" in
        --soak) soak=1 ;;
        --tsan) tsan=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

launcher=()
if ((tsan)); then
    tools/setup.sh --clang
    command -v ccache >/dev/null &&
        launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
    cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
        -DCMAKE_CXX_COMPILER=clang++ -DOTSYNC_TSAN=ON "${launcher[@]}"
    suites=(test_client_safety test_client test_client_api test_transport test_sync)
    cmake --build build/tsan --target "${suites[@]}"
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
    ctest --test-dir build/tsan --output-on-failure --timeout 1800 -R "^($(IFS='|'; echo "${suites[*]}"))\$"
    exit
fi

tools/setup.sh

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
