#!/usr/bin/env bash
# test_java: a technician's day through the Java binding against a real otsync-server.
# Compiles the test (src/test/java) against otsync.jar into the work folder, starts the
# server with its demo data on an ephemeral loopback port and a temporary data folder, takes
# two one-time enrollment codes for tec.quispe (the device, and a second device that checks
# what reached the server), runs bo.comteco.otsync.TechnicianDayTest on the JVM with the JNI
# library, stops the server (SIGTERM) and removes the folder. Exits with the test's status.
#
# With --sanitize asan (an ASan+UBSan build), the JVM loads instrumented native code: the
# compiler's ASan runtime is preloaded (it must come first) with libstdc++ (for ASan's
# __cxa_throw interceptor), leak detection is off (the JVM does not free at exit) and ASan
# leaves SIGSEGV to the JVM, which uses it internally.
#
#   run_test.sh --sanitize asan|none --cxx CXX --java JAVA --javac JAVAC --server SERVER_BIN
#               --admin ADMIN_BIN --jni-dir DIR --jar OTSYNC_JAR --test-src DIR --work DIR
set -euo pipefail

usage() {
    sed -n '14,15p' "$0" >&2
    exit 2
}
sanitize="" cxx="" java="" javac="" server_bin="" admin_bin="" jni_dir="" jar="" test_src="" work=""
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --sanitize) sanitize=$2 ;;
        --cxx) cxx=$2 ;;
        --java) java=$2 ;;
        --javac) javac=$2 ;;
        --server) server_bin=$2 ;;
        --admin) admin_bin=$2 ;;
        --jni-dir) jni_dir=$2 ;;
        --jar) jar=$2 ;;
        --test-src) test_src=$2 ;;
        --work) work=$2 ;;
        *) usage ;;
    esac
    shift 2
done
for v in sanitize java javac server_bin admin_bin jni_dir jar test_src work; do
    [[ -n ${!v} ]] || usage
done
for bin in "$java" "$javac" "$server_bin" "$admin_bin"; do
    if [[ ! -x $bin ]]; then
        echo "run_test: $bin is not an executable" >&2
        exit 2
    fi
done
for f in "$jar" "$jni_dir/libotsync_jni.so"; do
    if [[ ! -f $f ]]; then
        echo "run_test: $f is missing (build the otsync_jni target)" >&2
        exit 2
    fi
done

# The JVM's environment for an instrumented library.
jvm_env=()
case "$sanitize" in
    none) ;;
    asan)
        [[ -n $cxx ]] || usage
        asan_rt=$("$cxx" -print-file-name=libasan.so)
        if [[ ! -f $asan_rt ]]; then
            echo "run_test: no ASan runtime from $cxx -print-file-name=libasan.so ($asan_rt)" >&2
            exit 2
        fi
        # libstdc++ too, right after it: the java launcher does not load it, and ASan looks
        # up the real __cxa_throw (which it intercepts) when it starts.
        cxx_rt=$("$cxx" -print-file-name=libstdc++.so)
        if [[ ! -f $cxx_rt ]]; then
            echo "run_test: no libstdc++ from $cxx -print-file-name=libstdc++.so ($cxx_rt)" >&2
            exit 2
        fi
        jvm_env=(LD_PRELOAD="$asan_rt:$cxx_rt" ASAN_OPTIONS=detect_leaks=0:handle_segv=0:abort_on_error=1
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
        ;;
    *) usage ;;
esac

# The test's classes, compiled against the jar (java.net.http needs Java 11+).
classes="$work/classes"
rm -rf "$classes"
mkdir -p "$classes"
"$javac" --release 17 -encoding UTF-8 -Xlint:all -Werror -cp "$jar" -d "$classes" \
    "$test_src"/bo/comteco/otsync/*.java

# shellcheck source=../../tests/demo_server.sh
source "$(dirname "$0")/../../tests/demo_server.sh"
demo_server_start run_test "$server_bin"
echo "run_test: server on port $port, data in $tmp, sanitize $sanitize"

code=$("$admin_bin" --data-dir "$tmp" device enroll-code tec.quispe)
code2=$("$admin_bin" --data-dir "$tmp" device enroll-code tec.quispe)
if [[ -z $code || -z $code2 ]]; then
    echo "run_test: otsync-admin gave no enrollment code" >&2
    exit 1
fi

rc=0
env "${jvm_env[@]}" "$java" -Xcheck:jni -Djava.library.path="$jni_dir" \
    -cp "$jar:$classes" bo.comteco.otsync.TechnicianDayTest \
    "http://127.0.0.1:$port" "$code" "$tmp/device.db" "$code2" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "run_test: TechnicianDayTest exited with status $rc" >&2
    show_server_log
fi

stop_server
exit "$rc"
