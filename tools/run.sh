#!/usr/bin/env bash
# Quick start: installs what is missing, builds build/release, and starts otsync-server
# on 127.0.0.1:8080 with ./var as its data folder, seeded with demo data.
#   --no-demo        start without demo data
#   other arguments  go to otsync-server (e.g. --listen 0.0.0.0:8080 --threads 4)
set -euo pipefail
cd "$(dirname "$0")/.."

demo=(--demo)
args=()
for a in "$@"; do
    case "$a" in
        --no-demo) demo=() ;;
        *) args+=("$a") ;;
    esac
done

tools/setup.sh
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
cmake --build build/release --target otsync-server otsync-admin

mkdir -p var
cat <<MSG

otsync-server is starting on http://127.0.0.1:8080 (data in ./var; Ctrl-C stops it).
Try, from another terminal:
  curl 127.0.0.1:8080/healthz
  curl 127.0.0.1:8080/metrics
  build/release/tools/otsync-admin device list
  build/release/tools/otsync-admin device enroll-code tec.mamani
Demo users: atc.demo jac.demo ev.demo plataforma.demo asesor.demo bo.demo almacen.demo
supervisor.demo tec.mamani tec.quispe; demo device keys in var/demo-devices/.
MSG
exec build/release/server/otsync-server --listen 127.0.0.1:8080 --data-dir var "${demo[@]}" "${args[@]}"
