#!/bin/sh
# Labelled capture for the sensitive-data analyzer: planted values and decoys (plant.py) served and received
# by nginx (a real server we did not write) in a network namespace, captured with tcpdump on the veth link.
# Writes pcaps/labelled.pcap and tests/labelled/labels.jsonl. Needs root, nginx, tcpdump, python3.
#
#   sudo tests/labelled/generate.sh            # then: cargo run -- replay pcaps/labelled.pcap --out /tmp/lab
#   python3 tests/labelled/score.py tests/labelled/labels.jsonl /tmp/lab/findings.jsonl
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/mirador-labelled.XXXXXX)
ns=mirsens$$
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    [ -n "${tcpdump_pid:-}" ] && kill "$tcpdump_pid" 2>/dev/null || true
    ip link del "v${ns}a" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

python3 "$here/plant.py" "$work" --seed "${SEED:-7}"
# nginx workers run unprivileged: they must read the docroot.
chmod -R a+rX "$work"

ip netns add "$ns"
ip link add "v${ns}a" type veth peer name "v${ns}b"
ip link set "v${ns}b" netns "$ns"
ip addr add 10.77.0.1/24 dev "v${ns}a"
ip link set "v${ns}a" up
ip netns exec "$ns" ip addr add 10.77.0.2/24 dev "v${ns}b"
ip netns exec "$ns" ip link set "v${ns}b" up
ip netns exec "$ns" ip link set lo up
# Full segments on the wire as a SPAN port would see them (no offload super-frames).
ethtool -K "v${ns}a" tso off gso off gro off 2>/dev/null || true
ip netns exec "$ns" ethtool -K "v${ns}b" tso off gso off gro off 2>/dev/null || true

ip netns exec "$ns" nginx -c "$work/nginx.conf"
tcpdump -i "v${ns}a" -s 0 -U -w "$work/labelled.pcap" tcp port 8080 2>/dev/null &
tcpdump_pid=$!
sleep 1

python3 - "$work/plan.json" <<'PY'
import base64, http.client, json, sys, time
plan = json.load(open(sys.argv[1]))
conn = None
for i, r in enumerate(plan):
    # A few exchanges per connection (keep-alive), then a new connection.
    if conn is None or i % 4 == 0:
        if conn is not None:
            conn.close()
        for attempt in range(50):
            try:
                conn = http.client.HTTPConnection("10.77.0.2", 8080, timeout=5)
                conn.connect()
                break
            except OSError:
                time.sleep(0.1)
    body = base64.b64decode(r["body"]) if r["body"] is not None else None
    headers = dict(r["headers"])
    headers.setdefault("User-Agent", "mirador-labelled/1")
    if r["content_type"]:
        headers["Content-Type"] = r["content_type"]
    conn.request(r["method"], r["path"], body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
conn.close()
print("sent %d requests" % len(plan))
PY
sleep 1
kill "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=
cp "$work/labelled.pcap" "$repo/pcaps/labelled.pcap"
cp "$work/labels.jsonl" "$here/labels.jsonl"
ls -l "$repo/pcaps/labelled.pcap" "$here/labels.jsonl"
