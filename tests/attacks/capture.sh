#!/usr/bin/env bash
# Real attack traffic for the detection evaluation (issue 7, "Done when"): sqlmap (PyPI) and a scripted curl
# client (tests/attacks/client.sh) attack json-server 0.17.4 (npm) behind nginx, inside network namespaces.
# Run as root; needs ip(8), tcpdump, nginx, node/npm, python3, curl.
#
#   sudo tests/attacks/capture.sh [OUT_DIR]        # default OUT_DIR: /tmp/mirador-attacks
#   python3 tests/attacks/score.py OUT_DIR/attacks.pcap
#
# Two namespaces joined by a veth pair: nginx (10.233.0.1:8080) proxies to json-server (127.0.0.1:3000) in
# `mrd-atk-srv`; the clients run in `mrd-atk-cli` (10.233.0.2); tcpdump records the client side.
# nginx answers 401 to a wrong bearer token and to POST /auth/login, and passes requests without any
# credentials through (an API that forgot its auth check: the unauthenticated calls get 2xx).
# Every request carries `X-Test-Id: <class>-<n>` (benign-<n> for the warm-up), sqlmap's carry `X-Test-Id:
# sqlmap`; score.py labels transactions from that header.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${1:-/tmp/mirador-attacks}"
TOOLS="${TOOLS:-/tmp/atk-tools}"
SRV=mrd-atk-srv
CLI=mrd-atk-cli
SRV_IP=10.233.0.1
CLI_IP=10.233.0.2
PORT=8080

[ "$(id -u)" = 0 ] || { echo "capture.sh: run as root (network namespaces)" >&2; exit 2; }
mkdir -p "$OUT" "$TOOLS"
OUT="$(cd "$OUT" && pwd)"

if [ ! -x "$TOOLS/node_modules/.bin/json-server" ]; then
    npm install --no-audit --no-fund --prefix "$TOOLS" json-server@0.17.4 >&2
fi
if [ ! -x "$TOOLS/venv/bin/sqlmap" ]; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q sqlmap >&2
fi

PIDS=()
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
ip link add mrd-atk-s type veth peer name mrd-atk-c
ip link set mrd-atk-s netns "$SRV"
ip link set mrd-atk-c netns "$CLI"
ip -n "$SRV" addr add "$SRV_IP/24" dev mrd-atk-s
ip -n "$CLI" addr add "$CLI_IP/24" dev mrd-atk-c
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set mrd-atk-s up
ip -n "$CLI" link set mrd-atk-c up
ip netns exec "$SRV" ethtool -K mrd-atk-s tso off gso off gro off >/dev/null 2>&1 || true
ip netns exec "$CLI" ethtool -K mrd-atk-c tso off gso off gro off >/dev/null 2>&1 || true

# json-server rewrites its database: serve a copy.
cp "$REPO/tests/realapi/jsonserver/db.json" "$OUT/db.json"
setsid ip netns exec "$SRV" "$TOOLS/node_modules/.bin/json-server" --host 127.0.0.1 --port 3000 "$OUT/db.json" \
    >"$OUT/json-server.log" 2>&1 &
PIDS+=("$!")

cat >"$OUT/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $OUT/nginx.pid;
error_log $OUT/nginx.error.log;
events { worker_connections 256; }
http {
    access_log $OUT/nginx.access.log;
    client_body_temp_path $OUT/nginx-body;
    proxy_temp_path $OUT/nginx-proxy;
    fastcgi_temp_path $OUT/nginx-fcgi;
    uwsgi_temp_path $OUT/nginx-uwsgi;
    scgi_temp_path $OUT/nginx-scgi;
    map \$http_authorization \$auth_bad { "" 0; "Bearer atk-valid-token" 0; default 1; }
    server {
        listen $SRV_IP:$PORT;
        location = /auth/login {
            default_type application/json;
            return 401 '{"error":"invalid credentials"}';
        }
        location / {
            if (\$auth_bad) { return 401; }
            proxy_pass http://127.0.0.1:3000;
        }
    }
}
NGINX
setsid ip netns exec "$SRV" nginx -c "$OUT/nginx.conf" >"$OUT/nginx.log" 2>&1 &
PIDS+=("$!")

for _ in $(seq 1 100); do
    if ip netns exec "$CLI" bash -c "exec 3<>/dev/tcp/$SRV_IP/$PORT" 2>/dev/null; then break; fi
    sleep 0.2
done

setsid ip netns exec "$CLI" tcpdump -i mrd-atk-c -s 0 -U -w "$OUT/attacks.pcap" "tcp port $PORT" \
    >"$OUT/tcpdump.log" 2>&1 &
DUMP=$!
PIDS+=("$DUMP")
sleep 1

BASE="http://$SRV_IP:$PORT"
ip netns exec "$CLI" bash "$HERE/client.sh" "$BASE" >"$OUT/client.log" 2>&1
# sqlmap against a query parameter json-server filters on; batch mode, no session reuse between runs.
ip netns exec "$CLI" "$TOOLS/venv/bin/sqlmap" -u "$BASE/posts?id=1" -p id --batch --flush-session \
    --output-dir "$OUT/sqlmap" --headers "X-Test-Id: sqlmap" --level 2 --risk 1 --technique BEUST \
    --time-sec 1 --timeout 5 --retries 0 >"$OUT/sqlmap.log" 2>&1 || true

sleep 1
kill -INT -- "-$DUMP" 2>/dev/null || true
wait "$DUMP" 2>/dev/null || true
tail -n 3 "$OUT/tcpdump.log" >&2
ls -la "$OUT/attacks.pcap" >&2
