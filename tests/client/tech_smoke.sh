#!/usr/bin/env bash
# otsync-tech end to end against a demo server, as a technician would use it: enroll,
# sync, show, start, arrive, collect (matched / already / unexpected), void, sign,
# complete, handover, sync, status, and its exit codes.
#   tech_smoke.sh SERVER_BIN ADMIN_BIN TECH_BIN
set -euo pipefail
server=$1 admin=$2 tech=$3
tmp=$(mktemp -d /tmp/otsync-tech-smoke.XXXXXX); pid=""
cleanup() { [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$server" --listen 127.0.0.1:0 --data-dir "$tmp" --demo >"$tmp/out" 2>"$tmp/err" & pid=$!
port=""; for _ in $(seq 300); do port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$tmp/err"); [[ -n $port ]] && break; sleep 0.1; done
export OTSYNC_TECH_DB=$tmp/tech.db OTSYNC_TECH_PIN=2468 OTSYNC_TECH_FAST_KDF=1
expect() { # expect CODE PATTERN ARGS...: exit code and a line of output
    local want=$1 pat=$2; shift 2; local got=0 out
    out=$("$tech" "$@" 2>&1) || got=$?
    if [[ $got -ne $want ]] || ! grep -q -- "$pat" <<<"$out"; then
        echo "FAIL: otsync-tech $* -> exit $got (want $want), output:"; echo "$out"; exit 1; fi
    echo "ok: otsync-tech $* -> $got"
}
expect 5 "no está registrado" list
code=$("$admin" --data-dir "$tmp" device enroll-code tec.quispe 2>/dev/null)
expect 1 "no permitido" enroll "http://127.0.0.1:$port" WRONG-CODE
[[ ! -e $tmp/tech.db && ! -e $tmp/tech.db.salt ]] || { echo "FAIL: failed enroll left files"; exit 1; }
expect 0 "Equipo registrado" enroll "http://127.0.0.1:$port" "$code" --label smoke
expect 1 "PIN incorrecto" --pin 0000 status
expect 0 "Sincronización completa" sync
ot=$("$tech" list | sed -n '/^OT /{N;N;s/OT \([0-9a-f]*\).*retiro.*/\1/p}')
[[ ${#ot} -eq 32 ]] || { echo "FAIL: no withdraw_boot OT"; exit 1; }
expect 0 "HWTC7F300999 *pendiente" show "${ot:0:8}"
expect 0 "en camino" start "${ot:0:8}"
expect 0 "en sitio" arrive "$ot"
expect 0 "Recogido: coincide" collect "$ot" HWTC7F300999 --reason migration --desc "Huawei HG8245H"
expect 0 "Recogido: ya registrado" collect "$ot" HWTC7F300999 --reason migration
expect 0 "Recogido: no esperado" collect "$ot" UNEXPECTED01 --reason damaged --defect "no enciende"
expect 2 "defecto" collect "$ot" X1 --reason damaged
expect 0 "Fila anulada" void "$ot" UNEXPECTED01
printf '\x89PNG\r\n\x1a\nfake' >"$tmp/sig.png"
expect 0 "Firma del cliente registrada" sign "$ot" --png "$tmp/sig.png"
expect 0 "faltantes" complete "$ot"
expect 0 "Entrega (Anexo 4) creada" handover create --zone Cercado
expect 0 "pendientes de envío: 0; rechazos: 0" sync
expect 0 "Pendientes de envío: *0" status
kill -TERM "$pid"; wait "$pid" || true; pid=""
expect 3 "sin conexión" sync
echo "otsync-tech smoke: all passed"
