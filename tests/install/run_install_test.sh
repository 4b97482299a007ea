#!/usr/bin/env bash
# The installed C API, as an app sees it: `cmake --install --component client` into a
# fresh prefix, the layout checked (the C header and nothing of the C++ API), then
# consumer.c built against the prefix ALONE twice, with pkg-config and with
# find_package(otsync-client), and both binaries run (RUNPATH into the prefix, no
# LD_LIBRARY_PATH). A sanitized build's library needs the sanitizer runtime first in the
# process: the consumer is then built with the same -fsanitize (--sanitize).
#   run_install_test.sh --build DIR --work DIR --version X.Y.Z --libdir lib
#       --includedir include --cmake CMAKE --generator GEN [--make-program PROG]
#       --cc CC --pkg-config PKG_CONFIG --sanitize none|address,undefined|thread
#       --source-dir REPO
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

make_program=""
while (($#)); do
    case "$1" in
        --build) build=$2 ;;
        --work) work=$2 ;;
        --version) version=$2 ;;
        --libdir) libdir=$2 ;;
        --includedir) includedir=$2 ;;
        --cmake) cmake=$2 ;;
        --generator) generator=$2 ;;
        --make-program) make_program=$2 ;;
        --cc) cc=$2 ;;
        --pkg-config) pkg_config=$2 ;;
        --sanitize) sanitize=$2 ;;
        --source-dir) source_dir=$2 ;;
        *) echo "run_install_test: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done

fail() { echo "run_install_test: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
echo "== cmake --install $build --component client --prefix $prefix"
"$cmake" --install "$build" --component client --prefix "$prefix" >"$work/install.log" ||
    { cat "$work/install.log" >&2; fail "install failed"; }

# The layout: exactly the C API's files.
major=${version%%.*}
expected=(
    "$includedir/otsync/client.h"
    "$includedir/otsync/version.h"
    "$libdir/libotsync_client.so"
    "$libdir/libotsync_client.so.$major"
    "$libdir/libotsync_client.so.$version"
    "$libdir/pkgconfig/otsync-client.pc"
    "$libdir/cmake/otsync-client/otsync-clientConfig.cmake"
    "$libdir/cmake/otsync-client/otsync-clientConfigVersion.cmake"
    "$libdir/cmake/otsync-client/otsync-clientTargets.cmake"
)
for f in "${expected[@]}"; do
    [[ -e $prefix/$f ]] || fail "not installed: $f"
done
headers=$(cd "$prefix" && find "$includedir" -type f | sort | tr '\n' ' ')
[[ $headers == "$includedir/otsync/client.h $includedir/otsync/version.h " ]] ||
    fail "the public headers are client.h and version.h alone, not: $headers"
[[ $(readlink "$prefix/$libdir/libotsync_client.so") == "libotsync_client.so.$major" ]] ||
    fail "libotsync_client.so does not link to the SONAME libotsync_client.so.$major"
(cd "$prefix" && find . \( -type f -o -type l \) | sort | sed 's|^\./|  |')

# Nothing installed points back into the repository or the build tree (the .so's debug
# information aside).
leaks=$(grep -rlF -e "$source_dir" -e "$(cd "$build" && pwd)" "$prefix/$includedir" \
    "$prefix/$libdir/pkgconfig" "$prefix/$libdir/cmake" || true)
[[ -z $leaks ]] || fail "installed files refer to the source or build tree: $leaks"

san_flags=()
if [[ $sanitize != none ]]; then
    san_flags=("-fsanitize=$sanitize")
fi
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror)

run_consumer() { # NAME BINARY
    local name=$1 bin=$2 lib out
    lib=$(env -u LD_LIBRARY_PATH ldd "$bin" | awk '/libotsync_client\.so/ { print $3 }')
    [[ -n $lib && $(realpath "$lib") == $(realpath "$prefix/$libdir/libotsync_client.so.$major") ]] ||
        fail "$name: libotsync_client.so resolves to '$lib', not the prefix's"
    rm -f "$work/$name.db"*
    out=$(env -u LD_LIBRARY_PATH "$bin" "$work/$name.db") || fail "$name: the consumer failed"
    echo "$name: $out"
    [[ $out == "otsync $version (header $version); second open: busy; status "* ]] ||
        fail "$name: unexpected output"
}

echo "== pkg-config"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
pc_path=$("$pkg_config" --path otsync-client)
[[ $pc_path == "$prefix/$libdir/pkgconfig/otsync-client.pc" ]] ||
    fail "pkg-config found $pc_path"
[[ $("$pkg_config" --modversion otsync-client) == "$version" ]] || fail "pkg-config version"
read -r -a pc_flags <<<"$("$pkg_config" --cflags --libs otsync-client)"
pc_libdir=$("$pkg_config" --variable=libdir otsync-client)
echo "$cc ${san_flags[*]} ${cflags[*]} consumer.c ${pc_flags[*]} -Wl,-rpath,$pc_libdir"
"$cc" "${san_flags[@]}" "${cflags[@]}" "$here/consumer.c" "${pc_flags[@]}" \
    "-Wl,-rpath,$pc_libdir" -o "$work/consumer_pkgconfig"
run_consumer pkgconfig "$work/consumer_pkgconfig"
unset PKG_CONFIG_PATH

echo "== find_package(otsync-client)"
cmake_args=(-S "$here/consumer" -B "$work/consumer-build" -G "$generator"
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc"
    -DCMAKE_C_FLAGS="${san_flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${san_flags[*]}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
[[ -n $make_program ]] && cmake_args+=(-DCMAKE_MAKE_PROGRAM="$make_program")
"$cmake" "${cmake_args[@]}" >"$work/consumer-configure.log" ||
    { cat "$work/consumer-configure.log" >&2; fail "the consumer's CMake configure failed"; }
grep -F "otsync-client $version from $prefix/$libdir/cmake/otsync-client" \
    "$work/consumer-configure.log" || fail "find_package found another otsync-client"
"$cmake" --build "$work/consumer-build" >"$work/consumer-build.log" ||
    { cat "$work/consumer-build.log" >&2; fail "the consumer's CMake build failed"; }
run_consumer cmake "$work/consumer-build/consumer"

echo "run_install_test: the installed otsync-client $version builds and runs a C program" \
    "with pkg-config and with find_package"
