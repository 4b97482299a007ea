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
printf 'hello world' >"$tmp/not.png"
expect 1 "no es una imagen PNG" sign "$ot" --png "$tmp/not.png"
printf '\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0d\x49\x44\x41\x54\x78\x9c\x63\x60\x60\x60\xf8\x0f\x00\x01\x04\x01\x00\x5f\xe5\xc3\x4b\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82' >"$tmp/sig.png" # a real 1x1 PNG
expect 0 "Firma del cliente registrada" sign "$ot" --png "$tmp/sig.png"
expect 1 "ya firmó" collect "$ot" EXTRA01 --reason migration
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00foto de un equipo golpeado\xff\xd9' >"$tmp/foto.jpg"
expect 1 "tipo de archivo no admitido" photo "$ot" HWTC7F300999 "$tmp/not.png"
expect 1 "no encontrado" photo "$ot" NOT-ON-THE-OT "$tmp/foto.jpg"
expect 0 "Foto de HWTC7F300999 registrada" photo "$ot" HWTC7F300999 "$tmp/foto.jpg"
expect 1 "no puede concluir" complete "$ot"
expect 0 "Faltante registrado" missing "$ot" PWR-12V-0999 --reason "el cliente la conserva"
expect 0 "Faltante registrado" missing "$ot" RMT-0999 --reason extraviado
expect 0 "RMT-0999 *faltante: extraviado" show "$ot"
expect 0 "Firma reabierta" reopen "$ot" --reason "el cliente entregó otro equipo"
expect 0 "Recogido: no esperado" collect "$ot" EXTRA01 --reason migration
expect 0 "Firma del cliente registrada" sign "$ot" --png "$tmp/sig.png"
expect 0 "concluida" complete "$ot"
out=$("$tech" handover create --zone Cercado)
h=$(sed -n 's/^Entrega (Anexo 4) creada: \([0-9a-f]\{32\}\)$/\1/p' <<<"$out")
[[ ${#h} -eq 32 ]] || { echo "FAIL: handover create said: $out"; exit 1; }
echo "ok: otsync-tech handover create -> $h"
expect 2 "firma del técnico" handover deliver "$h"
expect 0 "entregada y firmada" handover deliver "$h" --png "$tmp/sig.png" --name "Pedro Quispe"
expect 1 "cambio de estado no permitido" handover deliver "$h" --png "$tmp/sig.png"
expect 0 "pendientes de envío: 0; rechazos: 0" sync
expect 0 "Pendientes de envío: *0" status
expect 0 "Firmas y fotos: *0 por enviar (0 KiB), 2 en el servidor, 0 rechazadas" status
# The office sees the photo, served as what its bytes are; another technician may not.
photo=$(b2sum -l 256 "$tmp/foto.jpg" | cut -d' ' -f1)
login() { curl -s -X POST "http://127.0.0.1:$port/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"password\":\"otsync-demo\"}" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'; }
fetch() { curl -s -o "$tmp/fetched" -w '%{http_code} %{content_type}' \
    -H "Authorization: Bearer $1" "http://127.0.0.1:$port/v1/attachments/$photo"; }
got=$(fetch "$(login almacen.demo)")
[[ $got == "200 image/jpeg" ]] && cmp -s "$tmp/fetched" "$tmp/foto.jpg" ||
    { echo "FAIL: the warehouse got '$got' for the photo"; exit 1; }
got=$(fetch "$(login tec.mamani)")
[[ $got == 403* ]] || { echo "FAIL: another technician got '$got' for the photo"; exit 1; }
echo "ok: the photo reached the office intact; another technician gets 403"
# The office reassigns another of the technician's OTs: the device says so, not silently.
other=$("$tech" list | sed -n 's/^OT \([0-9a-f]\{32\}\)$/\1/p' | grep -v "^$ot$" | head -1)
[[ ${#other} -eq 32 ]] || { echo "FAIL: no second OT"; exit 1; }
token=$(curl -s -X POST "http://127.0.0.1:$port/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"name":"bo.demo","password":"otsync-demo"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/v1/ots/$other/assign" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"technician":"tec.mamani"}' || { echo "FAIL: the office could not reassign $other"; exit 1; }
expect 0 "Aviso: .*OT ${other:0:8} .*reasignada" sync
expect 0 "OT ${other:0:8} .*reasignada; no tenía filas registradas en este equipo" status
expect 0 "Avisos: *1" status
kill -TERM "$pid"; wait "$pid" || true; pid=""
expect 3 "sin conexión" sync
echo "otsync-tech smoke: all passed"
