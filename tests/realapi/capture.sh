#!/usr/bin/env bash
# Captures real API servers (that we did not write) driven by a spec-based client, for the inventory and
# spec-diff evaluation (issue 5, "Done when" #2). Run as root; needs ip(8), tcpdump, node/npm, python3.
#
#   sudo tests/realapi/capture.sh [OUT_DIR]        # default OUT_DIR: /tmp/mirador-realapi
#   sudo MODE=positive tests/realapi/capture.sh /tmp/mirador-realapi-positive   # valid data only
#
# Two network namespaces joined by a veth pair: the servers listen in `mrd-srv` (10.231.0.1), the client
# runs in `mrd-cli` (10.231.0.2), and tcpdump records the client side, so every request crosses a real
# TCP/IP stack. Servers, each captured into its own pcap:
#   petstore.pcap    Prism 5 (npm @stoplight/prism-cli) mocking the Swagger Petstore (OpenAPI 3.0,
#                    specs/petstore-3.0.json, from npm @readme/oas-examples 8.2.2)
#   jsonserver.pcap  json-server 0.17.4 (npm) serving jsonserver/db.json; its documented routes are
#                    jsonserver/openapi.yaml
# The client is schemathesis (PyPI), driven by the same spec the server is evaluated against.
# Tools go to $TOOLS (default /tmp/mirador-realapi-tools), installed from npm and PyPI on first use.
# The pcaps are regenerable and stay out of git. tests/realapi/evaluate.py scores them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-/tmp/mirador-realapi}"
TOOLS="${TOOLS:-/tmp/mirador-realapi-tools}"
MAX_EXAMPLES="${MAX_EXAMPLES:-25}"
SEED="${SEED:-5}"
# schemathesis data mode: `all` (valid and invalid data: type-confused path values such as AAA, null,
# true, 0.5 that a template learner must still fold into parameters) or `positive` (valid data only).
MODE="${MODE:-all}"
SRV=mrd-srv
CLI=mrd-cli
SRV_IP=10.231.0.1
CLI_IP=10.231.0.2

[ "$(id -u)" = 0 ] || { echo "capture.sh: run as root (network namespaces)" >&2; exit 2; }
mkdir -p "$OUT" "$TOOLS"
# schemathesis keeps its example database in the working directory.
cd "$OUT"

if [ ! -x "$TOOLS/node_modules/.bin/prism" ] || [ ! -x "$TOOLS/node_modules/.bin/json-server" ]; then
    npm install --no-audit --no-fund --prefix "$TOOLS" @stoplight/prism-cli@5 json-server@0.17.4 >&2
fi
if [ ! -x "$TOOLS/venv/bin/schemathesis" ]; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q schemathesis >&2
fi

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

wait_port() { # ns host port
    for _ in $(seq 1 100); do
        if ip netns exec "$CLI" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "capture.sh: nothing listens on $2:$3" >&2
    return 1
}

# st SPEC BASE-URL LOG [schemathesis arguments...]: one schemathesis run from the client namespace. Every
# phase stays inside the spec's operations; failures it finds are the server's business, not ours.
st() {
    local spec="$1" url="$2" log="$3"
    shift 3
    ip netns exec "$CLI" "$TOOLS/venv/bin/schemathesis" run "$spec" --url "$url" \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --mode "$MODE" \
        --checks not_a_server_error --no-color "$@" >>"$log" 2>&1 || true
}

# capture NAME PORT DRIVER SERVER-COMMAND...: DRIVER is called with the base URL and a log file.
capture() {
    local name="$1" port="$2" driver="$3"
    shift 3
    # Restarted when it dies: a mock that crashes on a fuzzed request should not end the capture.
    setsid ip netns exec "$SRV" bash -c 'while :; do "$@"; echo "server exited $?, restarting" >&2; sleep 0.5; done' \
        _ "$@" >"$OUT/$name.server.log" 2>&1 &
    local server=$!
    PIDS+=("$server")
    wait_port "$CLI" "$SRV_IP" "$port"
    setsid ip netns exec "$CLI" tcpdump -i mrd-veth-c -s 0 -U -w "$OUT/$name.pcap" "tcp port $port" \
        >"$OUT/$name.tcpdump.log" 2>&1 &
    local dump=$!
    PIDS+=("$dump")
    sleep 1
    : >"$OUT/$name.schemathesis.log"
    "$driver" "http://$SRV_IP:$port" "$OUT/$name.schemathesis.log"
    sleep 1
    kill -INT -- "-$dump" 2>/dev/null || true
    wait "$dump" 2>/dev/null || true
    kill -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    echo "$name: $(tail -n 3 "$OUT/$name.tcpdump.log" | grep -o '[0-9]* packets captured' || echo '? packets'), $OUT/$name.pcap" >&2
}

# Prism checks that credentials are present (api_key header, OAuth bearer); without them every secured
# operation is a 401. Its multipart parser crashes on schemathesis' upload bodies (a parse-multipart-data
# TypeError) and schemathesis stops at the first dead connection, so the upload operation gets a run of
# its own after the others (the restart loop above brings Prism back).
drive_petstore() {
    local spec="$HERE/specs/petstore-3.0.json" auth=(-H "api_key: special-key" -H "Authorization: Bearer mirador-evaluation")
    st "$spec" "$1" "$2" "${auth[@]}" --exclude-operation-id uploadFile
    st "$spec" "$1" "$2" "${auth[@]}" --include-operation-id uploadFile
}
capture petstore 4010 drive_petstore \
    "$TOOLS/node_modules/.bin/prism" mock -h "$SRV_IP" -p 4010 -d --seed "$SEED" "$HERE/specs/petstore-3.0.json"

drive_jsonserver() {
    st "$HERE/jsonserver/openapi.yaml" "$1" "$2"
}
# json-server rewrites its database file: serve a copy.
cp "$HERE/jsonserver/db.json" "$OUT/jsonserver-db.json"
capture jsonserver 3000 drive_jsonserver \
    "$TOOLS/node_modules/.bin/json-server" --host "$SRV_IP" --port 3000 "$OUT/jsonserver-db.json"

ls -la "$OUT"/*.pcap >&2
