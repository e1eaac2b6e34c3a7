#!/bin/sh
# Conformance capture: the requests of cases.py sent raw (gen.py) to nginx, Python's http.server, Node's http,
# gunicorn and uvicorn (PyPI, installed into $CONFORMANCE_TOOLS on first use) in a network namespace, captured with tcpdump on the veth link. The servers' access logs and the status lines
# on the wire are the truth: they are joined per case into expected.jsonl (kept in git), the capture is written
# to $1 (default target/conformance/conformance.pcap; not kept in git). Needs root, ip, tcpdump, nginx, node,
# python3.   sudo tests/conformance/run.sh [OUT.pcap] [EXPECTED.jsonl]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/conformance/conformance.pcap}
expected=${2:-$here/expected.jsonl}
work=$(mktemp -d /tmp/m17-conformance.XXXXXX)
tools=${CONFORMANCE_TOOLS:-/tmp/mirador-conformance-tools}
if [ ! -x "$tools/venv/bin/gunicorn" ] || [ ! -x "$tools/venv/bin/uvicorn" ]; then
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q gunicorn==23.0.0 uvicorn==0.34.0 h11==0.16.0 >&2
fi
ns=m17-conf$$
cleanup() {
    for p in nginx python node gunicorn uvicorn tcpdump; do
        [ -f "$work/$p.pid" ] && kill "$(cat "$work/$p.pid")" 2>/dev/null || true
    done
    ip link del m17-a 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
chmod a+rwx "$work"
mkdir -p "$(dirname "$out")" "$(dirname "$expected")"

ip netns add "$ns"
ip link add m17-a type veth peer name m17-b
ip link set m17-b netns "$ns"
ip addr add 10.217.0.1/24 dev m17-a
ip link set m17-a up
ip netns exec "$ns" ip addr add 10.217.0.2/24 dev m17-b
ip netns exec "$ns" ip link set m17-b up
ip netns exec "$ns" ip link set lo up
# Full segments as a SPAN port would see them.
ethtool -K m17-a tso off gso off gro off 2>/dev/null || true
ip netns exec "$ns" ethtool -K m17-b tso off gso off gro off 2>/dev/null || true

cat > "$work/nginx.conf" <<CONF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
    log_format ports '\$remote_port \$status "\$request"';
    access_log $work/nginx.log ports;
    server {
        listen 10.217.0.2:8081;
        location / { return 200 "ok\n"; }
    }
}
CONF
ip netns exec "$ns" nginx -c "$work/nginx.conf"
ip netns exec "$ns" python3 "$here/servers.py" 8082 "$work/python.log" 2>/dev/null &
echo $! > "$work/python.pid"
ip netns exec "$ns" node "$here/server.js" 8083 "$work/node.log" &
echo $! > "$work/node.pid"
ip netns exec "$ns" env CONFORMANCE_LOG="$work/gunicorn.log" "$tools/venv/bin/gunicorn" --chdir "$here" \
    -b 10.217.0.2:8084 -w 1 --access-logfile /dev/null --error-logfile /dev/null wsgi_app:app &
echo $! > "$work/gunicorn.pid"
ip netns exec "$ns" env CONFORMANCE_LOG="$work/uvicorn.log" "$tools/venv/bin/uvicorn" --app-dir "$here" \
    --host 10.217.0.2 --port 8085 --http h11 --ws none --lifespan off --no-access-log --log-level critical \
    asgi_app:app &
echo $! > "$work/uvicorn.pid"
# Every server listens before the capture starts (the probes stay out of it).
python3 - <<'WAIT'
import socket, sys, time
for port in (8081, 8082, 8083, 8084, 8085):
    for _ in range(200):
        try:
            socket.create_connection(("10.217.0.2", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"run.sh: nothing listens on 10.217.0.2:{port}")
WAIT
tcpdump -i m17-a -s 0 -U -w "$work/c.pcap" tcp 2>/dev/null &
echo $! > "$work/tcpdump.pid"
sleep 1.5

(cd "$here" && python3 gen.py "$work/wire.jsonl")
sleep 1
kill "$(cat "$work/tcpdump.pid")"; rm "$work/tcpdump.pid"
sleep 0.5
touch "$work/nginx.log" "$work/python.log" "$work/node.log" "$work/gunicorn.log" "$work/uvicorn.log"
python3 - "$work" "$expected" <<'PY'
import collections, json, sys
work, expected = sys.argv[1], sys.argv[2]
logged = collections.Counter()
for server in ("nginx", "python", "node", "gunicorn", "uvicorn"):
    for line in open(f"{work}/{server}.log", errors="replace"):
        if line.split():
            logged[(server, int(line.split()[0]))] += 1
with open(expected, "w") as out:
    for line in open(f"{work}/wire.jsonl"):
        r = json.loads(line)
        r["access_log"] = logged[(r["server"], r["client_port"])]
        out.write(json.dumps(r) + "\n")
PY
cp "$work/c.pcap" "$out"
ls -l "$out" "$expected"
