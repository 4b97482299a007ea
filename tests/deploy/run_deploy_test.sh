#!/usr/bin/env bash
# The deployment in deploy/ run for real (docs/deploy.md): a private PostgreSQL 15 cluster
# with the role and database made as the document says; two otsync-server instances on it,
# started with the ExecStart flags of deploy/systemd/otsync-server@.service and the
# settings of deploy/systemd/otsync.env.example; nginx in front with
# deploy/nginx/otsync.conf (rewritten with sed: ports, certificate, logs) and a CA made
# here. Then, through nginx over TLS: health answered by both instances, the HTTP
# redirect, a login and REST reads, a handheld (otsync-tech) enrolling and syncing and an
# op it writes seen by both instances; then kill -9 of one instance and the same again
# (nginx fails over, no 5xx reaches a client); at the end every process is gone.
#   run_deploy_test.sh SERVER_BIN ADMIN_BIN TECH_BIN
# The first failed check ends it with a "FAIL: ..." line and exit 1.
set -euo pipefail
server=$(readlink -f "$1") admin=$(readlink -f "$2") tech=$(readlink -f "$3")
src=$(cd "$(dirname "$0")/../.." && pwd)
pg_bin=/usr/lib/postgresql/15/bin

tmp="" pg="" pg_started=0 nginx_pid="" watchdog="" pids=() as_pg=()
say() { echo "deploy: $*"; }
show_logs() {
    [[ -n $tmp ]] || return 0
    local f
    for f in "$tmp"/instance-*/server.err "$tmp"/nginx/error.log "$tmp"/pg/server.log; do
        [[ -s $f ]] || continue
        echo "--- $f (last 25 lines) ---" >&2
        tail -n 25 "$f" >&2
    done
}
fail() {
    echo "FAIL: $*" >&2
    show_logs
    exit 1
}
cleanup() {
    local i
    [[ -z $watchdog ]] || kill -- "-$watchdog" 2>/dev/null || true
    if [[ -n $nginx_pid ]]; then
        kill -TERM "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    for i in "${!pids[@]}"; do
        kill -KILL "${pids[$i]}" 2>/dev/null || true
        wait "${pids[$i]}" 2>/dev/null || true
    done
    if ((pg_started)); then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [[ -z $tmp ]] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
# When this script is killed outright (SIGKILL, a ctest timeout) no trap runs: a watchdog in
# its own session waits for it to go, then stops what it started (the pids in $tmp/pids),
# stops the cluster and removes the folder. It is ended at a normal exit.
start_watchdog() {
    watchdog=$(setsid bash -c 'echo $$; exec </dev/null >/dev/null 2>&1
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        if [ -f "$3/pids" ]; then
            kill -TERM $(cat "$3/pids"); sleep 5; kill -KILL $(cat "$3/pids")
        fi
        $4 "$2/pg_ctl" -D "$3/pg/data" -m immediate stop
        rm -rf "$3"' watchdog "$$" "$pg_bin" "$tmp" "${as_pg[*]}" &)
}
started() { echo "$1" >>"$tmp/pids"; }

# ---- what the machine must have (tools/setup.sh installs all of it) ----------------------
nginx_bin=$(command -v nginx || true)
[[ -z $nginx_bin && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
[[ -n $nginx_bin ]] || fail "nginx is not installed (tools/setup.sh installs the nginx package)"
for tool in "$pg_bin/initdb" "$pg_bin/pg_ctl" "$pg_bin/createuser" "$pg_bin/createdb"; do
    [[ -x $tool ]] || fail "$tool missing (tools/setup.sh installs postgresql-15)"
done
for tool in openssl curl systemd-analyze; do
    command -v "$tool" >/dev/null || fail "$tool missing (tools/setup.sh installs it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otsync-deploy.XXXXXX")
chmod 0711 "$tmp" # the unprivileged users below reach their own folders in it
cd "$tmp"
# Settings of the caller's shell must not leak into the instances.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^OTSYNC_' || true)

# PostgreSQL and nginx's workers refuse to run as root or should not: under root (CI) they
# run as nobody.
nginx_user=""
if [[ $(id -u) -eq 0 ]]; then
    as_pg=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
    nginx_user="user nobody nogroup;"
fi

# ---- PostgreSQL: a private cluster, Unix socket only; role and database as docs/deploy.md -
pg=$tmp/pg
mkdir "$pg"
[[ ${#as_pg[@]} -eq 0 ]] || chown nobody:nogroup "$pg"
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >"$pg/initdb.log" 2>&1 || { cat "$pg/initdb.log" >&2; fail "initdb failed"; }
start_watchdog
pg_started=1
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w \
    -o "-k $pg -c listen_addresses='' -c max_connections=20" start >/dev/null ||
    fail "PostgreSQL did not start"
"$pg_bin/createuser" -h "$pg" -U postgres --no-superuser --no-createdb --no-createrole otsync ||
    fail "createuser otsync failed"
"$pg_bin/createdb" -h "$pg" -U postgres --owner=otsync --encoding=UTF8 --template=template0 \
    otsync || fail "createdb failed"
store="host=$pg dbname=otsync user=otsync"
say "PostgreSQL 15 on $pg (role otsync owns database otsync, not a superuser)"

# ---- TLS: a CA and a server certificate for 127.0.0.1 and localhost ---------------------
tls=$tmp/tls
mkdir "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=otsync deploy test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>"$tls/openssl.log" || fail "openssl could not make the CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>>"$tls/openssl.log" ||
    fail "openssl could not make the server key"
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$tls/server.ext" -out "$tls/server.pem" \
    2>>"$tls/openssl.log" || fail "openssl could not sign the server certificate"

# ---- the systemd unit: valid for systemd, and its ExecStart is what the instances run -----
unit=$src/deploy/systemd/otsync-server@.service
mkdir "$tmp/systemd"
sed "s|/usr/local/bin/otsync-server|$server|" "$unit" >"$tmp/systemd/otsync-server@.service"
verify=$(systemd-analyze verify "$tmp/systemd/otsync-server@.service" 2>&1) ||
    fail "systemd-analyze verify refused the unit: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify has remarks on the unit: $verify"
exec_args=$(sed -n 's|^ExecStart=/usr/local/bin/otsync-server ||p' "$unit")
[[ $exec_args == *"--listen 127.0.0.1:%i"* && $exec_args == *"/var/lib/otsync/%i"* ]] ||
    fail "ExecStart of $unit no longer has --listen 127.0.0.1:%i and /var/lib/otsync/%i"
grep -qx 'EnvironmentFile=/etc/otsync/otsync.env' "$unit" ||
    fail "$unit does not read /etc/otsync/otsync.env"

# The environment file as systemd reads it (KEY=VALUE, quotes removed), OTSYNC_STORE and
# OTSYNC_WEB_DIR replaced.
env_file=$src/deploy/systemd/otsync.env.example
instance_env=()
while IFS= read -r line; do
    [[ $line =~ ^[A-Z_]+= ]] || continue
    key=${line%%=*} value=${line#*=}
    [[ $value =~ ^\"(.*)\"$ ]] && value=${BASH_REMATCH[1]}
    case $key in
        OTSYNC_STORE) value=$store ;;
        OTSYNC_WEB_DIR) value=$src/server/web ;;
    esac
    instance_env+=("$key=$value")
done <"$env_file"
for want in OTSYNC_STORE OTSYNC_WEB_DIR OTSYNC_TRUST_PROXY=1 OTSYNC_COOKIE_SECURE=1; do
    printf '%s\n' "${instance_env[@]}" | grep -q "^$want" || fail "$env_file does not set $want"
done

# start_instance N [--demo]: instance N on a free loopback port (the unit's %i), in the
# background; sets port[N].
declare -A port
start_instance() {
    local n=$1 dir=$tmp/instance-$1 p=""
    shift
    mkdir -p "$dir"
    : >"$dir/server.err" # read below before the instance may have opened it
    local args=${exec_args//127.0.0.1:%i/127.0.0.1:0}
    args=${args//\/var\/lib\/otsync\/%i/$dir/data}
    local -a argv
    read -r -a argv <<<"$args"
    env "${instance_env[@]}" "$server" "${argv[@]}" "$@" >"$dir/server.out" 2>"$dir/server.err" &
    pids[n]=$!
    started "${pids[$n]}"
    for _ in $(seq 600); do
        p=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\) .*|\1|p' "$dir/server.err")
        [[ -n $p ]] && break
        kill -0 "${pids[$n]}" 2>/dev/null || fail "instance $n exited before listening"
        sleep 0.1
    done
    [[ -n $p ]] || fail "instance $n did not listen within 60 s"
    port[$n]=$p
    say "instance $n listening on 127.0.0.1:$p"
}
start_instance 1 --demo # migrates the new database and seeds the demo data
start_instance 2

# ---- nginx: deploy/nginx/otsync.conf with the test's ports, certificate and logs ----------
ng=$tmp/nginx
mkdir -p "$ng/tmp"
[[ -z $nginx_user ]] || chown nobody:nogroup "$ng/tmp"
cat >"$ng/nginx.conf" <<EOF
$nginx_user
daemon off;
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/error.log notice;
events { worker_connections 256; }
http {
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    include $ng/otsync.conf;
}
EOF
render_nginx() { # render_nginx HTTPS_PORT HTTP_PORT
    sed -e "s|127\.0\.0\.1:8081 |127.0.0.1:${port[1]} |" \
        -e "s|127\.0\.0\.1:8082 |127.0.0.1:${port[2]} |" \
        -e "s|listen 443 |listen 127.0.0.1:$1 |" -e "s|listen 80;|listen 127.0.0.1:$2;|" \
        -e '/listen \[::\]/d' \
        -e "s|/etc/ssl/certs/otsync\.example\.bo\.pem|$tls/server.pem|" \
        -e "s|/etc/ssl/private/otsync\.example\.bo\.key|$tls/server.key|" \
        -e "s|/var/log/nginx/otsync\.access\.log|$ng/access.log|" \
        -e "s|/var/log/nginx/otsync\.error\.log|$ng/error.log|" \
        "$src/deploy/nginx/otsync.conf" >"$ng/otsync.conf"
    # Every line marked for the test must have been rewritten (or dropped).
    local l
    while IFS= read -r l; do
        ! grep -qxF -- "$l" "$ng/otsync.conf" ||
            fail "deploy/nginx/otsync.conf changed: the test no longer rewrites '$l'"
    done < <(grep '; # \[test\]' "$src/deploy/nginx/otsync.conf")
}
free_port() { # a loopback port nothing answers on (nginx's bind is the real check)
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
https_port="" http_port=""
for _ in 1 2 3 4 5; do
    https_port=$(free_port) http_port=$(free_port)
    [[ $https_port != "$http_port" ]] || continue
    render_nginx "$https_port" "$http_port"
    tested=$("$nginx_bin" -e "$ng/error.log" -p "$ng/" -c "$ng/nginx.conf" -t 2>&1) ||
        fail "nginx -t refused the configuration: $tested"
    : >"$ng/error.log"
    "$nginx_bin" -e "$ng/error.log" -p "$ng/" -c "$ng/nginx.conf" 2>"$ng/stderr.log" &
    nginx_pid=$!
    started "$nginx_pid"
    up=0
    for _ in $(seq 100); do
        if ! kill -0 "$nginx_pid" 2>/dev/null; then
            break
        fi
        if curl -s -o /dev/null --max-time 2 --cacert "$tls/ca.pem" \
            "https://127.0.0.1:$https_port/healthz"; then
            up=1
            break
        fi
        sleep 0.1
    done
    ((up)) && break
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
    grep -q 'Address already in use' "$ng/error.log" "$ng/stderr.log" ||
        fail "nginx did not start: $(cat "$ng/stderr.log")"
    say "port taken, trying others"
done
[[ -n $nginx_pid ]] || fail "nginx found no free ports in 5 attempts"
say "nginx on https://127.0.0.1:$https_port (redirect on $http_port), upstreams ${port[1]} ${port[2]}"
base=https://127.0.0.1:$https_port
# curl through nginx; a failure of curl itself shows in the output the checks look at.
tcurl() { curl -sS --max-time 20 --cacert "$tls/ca.pem" "$@" || echo " [curl failed: $?]"; }

# ---- health, through nginx over TLS, answered by both instances --------------------------
health_count() { # health_count N: /healthz answered 200 by instance N, from its metrics
    curl -sS --max-time 10 "http://127.0.0.1:${port[$1]}/metrics" |
        sed -n 's|^otsync_http_requests_total{route="/healthz",status="200"} \([0-9]*\)$|\1|p' ||
        true
}
for i in 1 2 3 4 5 6; do
    out=$(tcurl -w ' %{http_code}' "$base/healthz")
    [[ $out == '{"status":"ok"} 200' ]] || fail "GET /healthz #$i through nginx: $out"
done
for n in 1 2; do
    c=$(health_count "$n")
    [[ -n $c && $c -ge 1 ]] || fail "instance $n answered no /healthz of nginx (metrics: '$c')"
    say "instance $n answered $c /healthz"
done
headers=$(tcurl -o /dev/null -D - "$base/healthz")
grep -qi '^strict-transport-security: max-age=' <<<"$headers" || fail "no HSTS header: $headers"
out=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' \
    "http://127.0.0.1:$http_port/v1/ots?limit=1" || true)
[[ $out == "301 https://127.0.0.1/v1/ots?limit=1" ]] || fail "plain HTTP did not redirect: $out"
out=$(tcurl -o /dev/null -w '%{http_code}' "$base/metrics")
[[ $out == 404 ]] || fail "/metrics is reachable through nginx ($out)"
out=$(tcurl -o /dev/null -H 'Accept-Encoding: gzip' -D - -w '%{http_code}' "$base/web/")
grep -qi '^content-encoding: gzip' <<<"$out" && [[ $out == *200 ]] ||
    fail "the pages are not served compressed through nginx: $out"
say "ok: health on both instances, HSTS, redirect, /metrics hidden, pages"

# ---- a person: login through nginx, REST reads on both instances -------------------------
login=$(tcurl -D "$tmp/login.headers" -X POST "$base/v1/auth/login" \
    -H 'Content-Type: application/json' -d '{"name":"supervisor.demo","password":"otsync-demo"}')
token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$login")
[[ -n $token ]] || fail "login of supervisor.demo through nginx: $login"
grep -qi '^set-cookie:.*; *secure' "$tmp/login.headers" ||
    fail "the session cookie is not Secure (OTSYNC_COOKIE_SECURE of the env file): $(cat "$tmp/login.headers")"
auth=(-H "Authorization: Bearer $token")
for i in 1 2; do
    out=$(tcurl "${auth[@]}" -w ' %{http_code}' "$base/v1/devices")
    [[ $out == *' 200' && $out == *'"demo tec.mamani"'* ]] ||
        fail "GET /v1/devices #$i through nginx: $out"
done
for n in 1 2; do # the session made through one instance is good on the other
    out=$(curl -sS --max-time 10 "${auth[@]}" -w ' %{http_code}' \
        "http://127.0.0.1:${port[$n]}/v1/auth/session" || true)
    [[ $out == *' 200' && $out == *supervisor.demo* ]] ||
        fail "instance $n does not know the session made through nginx: $out"
done
say "ok: login and REST reads through nginx; the session is good on both instances"

# ---- a handheld: enroll and sync through nginx over TLS ---------------------------------
# The built-in transport trusts the system's CA store, which OpenSSL lets SSL_CERT_FILE
# replace: the handheld trusts the test's CA and nothing else.
export SSL_CERT_FILE=$tls/ca.pem
export OTSYNC_TECH_DB=$tmp/tech.db OTSYNC_TECH_PIN=2468 OTSYNC_TECH_FAST_KDF=1
run_tech() { # run_tech PATTERN ARGS...: exit 0 and a line of output matching
    local pat=$1 out rc=0
    shift
    out=$("$tech" "$@" 2>&1) || rc=$?
    [[ $rc -eq 0 ]] && grep -q -- "$pat" <<<"$out" ||
        fail "otsync-tech $* -> exit $rc (want 0 and '$pat'): $out"
    tech_out=$out
}
code=$("$admin" --store "$store" device enroll-code tec.mamani 2>"$tmp/admin.err") ||
    fail "otsync-admin --store ... device enroll-code tec.mamani: $(cat "$tmp/admin.err")"
run_tech "Equipo registrado" enroll "$base" "$code" --label deploy-test
run_tech "Sincronización completa" sync
run_tech "OTs en este equipo" list
on_device=$(sed -n 's/^OTs en este equipo: \([0-9]*\)$/\1/p' <<<"$tech_out")
out=$(tcurl "${auth[@]}" "$base/v1/ots?technician=tec.mamani")
assigned=$(sed -n 's/.*"total":\([0-9]*\).*/\1/p' <<<"$out")
[[ -n $assigned && $assigned -ge 1 ]] || fail "GET /v1/ots?technician=tec.mamani: $out"
[[ $on_device == "$assigned" ]] ||
    fail "the handheld has $on_device OTs, the server assigns $assigned to tec.mamani"
run_tech "OT " list --status assigned
ot=$(sed -n 's/^OT \([0-9a-f]\{32\}\)$/\1/p' <<<"$tech_out" | head -n 1)
[[ ${#ot} -eq 32 ]] || fail "no assigned OT on the handheld: $tech_out"
say "ok: the handheld enrolled and received its $on_device OTs through nginx"

# An op written by the handheld: whichever instance took the sync, both must show it.
ot_has_status() { # ot_has_status N OT STATUS: instance N lists OT with STATUS
    local list
    list=$(curl -sS --max-time 10 "${auth[@]}" \
        "http://127.0.0.1:${port[$1]}/v1/ots?technician=tec.mamani&status=$3")
    [[ $list == *"\"id\":\"$2\""* ]]
}
for n in 1 2; do # and not yet otherwise, or the check below would prove nothing
    ot_has_status "$n" "$ot" assigned || fail "instance $n does not list OT $ot as assigned"
    ! ot_has_status "$n" "$ot" en_route || fail "instance $n lists OT $ot as en_route already"
done
run_tech "en camino" start "${ot:0:8}"
run_tech "Sincronización completa" sync
for n in 1 2; do
    ot_has_status "$n" "$ot" en_route ||
        fail "instance $n does not list OT $ot as en_route (synced through nginx to one of them)"
done
say "ok: the handheld's op is seen by both instances"

# ---- kill -9 of one instance: nginx fails over ------------------------------------------
# Round robin, its state shared by nginx's workers (the upstream's zone): once instance 2
# answered the last request, the next one goes to instance 1. Instance 1 then dies, and the
# handheld's next sync is the request that meets the dead instance.
last_upstream() { tail -n 1 "$ng/access.log" | sed -n 's/.* upstream=\(.*\) ustatus=.*/\1/p'; }
for _ in 1 2 3; do
    [[ $(last_upstream) == "127.0.0.1:${port[2]}" ]] && break
    tcurl -o /dev/null "$base/healthz"
done
[[ $(last_upstream) == "127.0.0.1:${port[2]}" ]] ||
    fail "nginx does not alternate between the instances: $(tail -n 3 "$ng/access.log")"
run_tech "en sitio" arrive "$ot" # recorded on the handheld only
lines_before=$(wc -l <"$ng/access.log")
kill -KILL "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
unset 'pids[1]'
run_tech "pendientes de envío: 0" sync
first=$(tail -n +"$((lines_before + 1))" "$ng/access.log" | grep -m 1 'POST /v1/sync' || true)
[[ $first == *"upstream=127.0.0.1:${port[1]}, 127.0.0.1:${port[2]} "* && $first == *'" 200 '* ]] ||
    fail "the sync after the kill did not go to instance 1 and then to instance 2: $first"
for i in 1 2 3 4; do
    out=$(tcurl -w ' %{http_code}' "$base/healthz")
    [[ $out == '{"status":"ok"} 200' ]] || fail "GET /healthz #$i after the kill: $out"
done
login=$(tcurl -X POST "$base/v1/auth/login" -H 'Content-Type: application/json' \
    -d '{"name":"supervisor.demo","password":"otsync-demo"}')
[[ $login == *'"token":"'* ]] || fail "login through nginx after the kill: $login"
# Every request after the kill got a real answer, from instance 2 (the last upstream nginx
# tried): no 502/504 from nginx, which the handheld's own retries would hide.
after=$(tail -n +"$((lines_before + 1))" "$ng/access.log")
while IFS= read -r l; do
    status=$(sed -n 's/.*" \([0-9][0-9][0-9]\) [0-9]* rt=.*/\1/p' <<<"$l")
    tried=$(sed -n 's/.* upstream=\(.*\) ustatus=.*/\1/p' <<<"$l")
    [[ $status == [1-4]?? ]] || fail "nginx answered '$status' after the kill: $l"
    [[ ${tried##*, } == "127.0.0.1:${port[2]}" ]] || fail "not answered by instance 2: $l"
done <<<"$after"
ot_has_status 2 "$ot" on_site || fail "instance 2 does not list OT $ot as on_site after the sync"
say "ok: after kill -9 of instance 1, health, sync and login go on through nginx"

# ---- stop everything; nothing may be left ---------------------------------------------
workers=$(pgrep -P "$nginx_pid" || true)
kill -TERM "$nginx_pid"
rc=0
wait "$nginx_pid" || rc=$?
[[ $rc -eq 0 ]] || fail "nginx exited with $rc on SIGTERM"
nginx_pid=""
kill -TERM "${pids[2]}"
rc=0
wait "${pids[2]}" || rc=$?
unset 'pids[2]'
[[ $rc -eq 0 ]] || fail "instance 2 exited with $rc on SIGTERM"
grep -q 'store closed cleanly' "$tmp/instance-2/server.err" || fail "instance 2 did not stop cleanly"
postmaster=$(head -n 1 "$pg/data/postmaster.pid")
backends=$(pgrep -P "$postmaster" || true)
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null || fail "pg_ctl stop failed"
pg_started=0
kill -- "-$watchdog"
watchdog=""
for p in $workers $postmaster $backends; do
    for _ in $(seq 50); do
        kill -0 "$p" 2>/dev/null || continue 2
        sleep 0.1
    done
    fail "process $p ($(ps -o args= -p "$p" || true)) is still running after the stop"
done
left=$(pgrep -f "$tmp" || true)
[[ -z $left ]] || fail "processes left running: $(ps -o pid=,args= -p "${left//$'\n'/,}")"
say "all passed"
