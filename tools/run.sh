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
cmake --build build/release --target otsync-server otsync-admin otsync-tech

mkdir -p var
cat <<MSG

otsync-server is starting on http://127.0.0.1:8080 (data in ./var; Ctrl-C stops it).
Open http://127.0.0.1:8080/ in a browser and sign in: almacen.demo (Almacén: receive the
waiting handover with serials + Enter), bo.demo or ev.demo (Casos), supervisor.demo
(Supervisión: indicators, devices, users).
Try, from another terminal:
  curl 127.0.0.1:8080/healthz
  curl -s -X POST 127.0.0.1:8080/v1/auth/login -H 'Content-Type: application/json' \
       -d '{"name":"supervisor.demo","password":"otsync-demo"}'
  build/release/tools/otsync-admin report indicators --from $(date -u -d '-4 hours' +%F) --to $(date -u -d '-4 hours' +%F)
  build/release/tools/otsync-admin device enroll-code tec.quispe
Demo users (password otsync-demo): atc.demo (Atención al Cliente), jac.demo (Jefe
Administrativo Comercial), ev.demo (Ejecutivo de Ventas), plataforma.demo (Encargada de
Plataforma), asesor.demo (Asesor Comercial), bo.demo (Back Office), almacen.demo
(Encargada de Almacén), supervisor.demo, technicians tec.mamani and tec.quispe.
Contract BT-200777 (modality 4) is waiting for a case: docs/api.md walks it to closed.
The REST API is in docs/api.md; the sync protocol in docs/protocol.md.
MSG
exec build/release/server/otsync-server --listen 127.0.0.1:8080 --data-dir var "${demo[@]}" "${args[@]}"
