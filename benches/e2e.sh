#!/usr/bin/env bash
# End-to-end benchmark and losslessness check on real API traffic (nginx + wrk, ~1 GiB), next to the libpcap
# read rate of the same file in the same run.
#
#   sudo benches/e2e.sh            (makes the capture with ../shared/bench/gen/make_capture.sh if missing)
#   CAPTURE=/path/api-big.pcap benches/e2e.sh
#   STAGES=1 CAPTURE=... benches/e2e.sh     (also: the pipeline alone, then each analyzer added in turn)
#   SURICATA=1 CAPTURE=... benches/e2e.sh   (also: Suricata on the same file, no rules, as a reference)
#
# Prints Gbit/s, packets/s and transactions/s per core, peak RSS, and checks that every transaction nginx
# logged (the capture's .truth.txt) came out, by method, status and protocol. Exits 1 if any is missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/mirador-bench}"
CAPTURE="${CAPTURE:-$BENCH_DIR/api-big.pcap}"
TRUTH="${CAPTURE%.pcap}.truth.txt"
OUT="$BENCH_DIR/out"
mkdir -p "$BENCH_DIR"

if [ ! -f "$CAPTURE" ]; then
    gen="$HERE/../shared/bench/gen/make_capture.sh"
    [ -x "$gen" ] || [ -f "$gen" ] || { echo "error: $CAPTURE missing and $gen not found" >&2; exit 2; }
    for p in nginx wrk tcpdump ethtool; do
        command -v "$p" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk tcpdump ethtool >/dev/null; break; }
    done
    OUT_DIR="$BENCH_DIR" bash "$gen"
fi
command -v tcpdump >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump >/dev/null; }

cd "$HERE"
cargo build --release --quiet
BIN="$HERE/target/release/mirador"

# Warm the page cache so both readers see the same storage.
cat "$CAPTURE" > /dev/null

t0=$(date +%s.%N)
tcpdump -r "$CAPTURE" -w /dev/null 2>/dev/null
t1=$(date +%s.%N)
rm -rf "$OUT"
/usr/bin/time -v "$BIN" replay "$CAPTURE" --out "$OUT" 2> "$BENCH_DIR/time.txt" >/dev/null || true
t2=$(date +%s.%N)

status=0
python3 - "$CAPTURE" "$TRUTH" "$OUT" "$BENCH_DIR/time.txt" "$t0" "$t1" "$t2" <<'PY' || status=$?
import collections, json, os, re, sys
cap, truth, out, timef, t0, t1, t2 = sys.argv[1:]
t0, t1, t2 = float(t0), float(t1), float(t2)
size = os.path.getsize(cap)
stats = json.load(open(os.path.join(out, "stats.json")))
pk, byts = stats["capture"]["packets"], stats["capture"]["bytes"]
tx = collections.Counter()
n = 0
for line in open(os.path.join(out, "transactions.jsonl")):
    t = json.loads(line)
    n += 1
    tx[("method", t["method"])] += 1
    tx[("status", str(t["status"]))] += 1
    tx[("protocol", t["version"])] += 1
timetxt = open(timef).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", timetxt).group(1))
user = float(re.search(r"User time \(seconds\): ([\d.]+)", timetxt).group(1))
sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", timetxt).group(1))
wall = t2 - t1
cpu = user + sys_
print(f"capture: {cap} ({size / 2**20:.0f} MiB, {pk} packets)")
print(f"tcpdump -r (libpcap read rate): {t1 - t0:.2f} s = {size * 8 / (t1 - t0) / 1e9:.2f} Gbit/s")
print(f"mirador replay: {wall:.2f} s wall, {cpu:.2f} s CPU = {byts * 8 / wall / 1e9:.2f} Gbit/s, "
      f"{pk / wall / 1e6:.2f} Mpackets/s, {n / cpu:,.0f} transactions/s per core; "
      f"{100 * (t1 - t0) / wall:.0f}% of the libpcap read rate; peak RSS {rss / 1024:.0f} MiB")
missing = 0
if os.path.exists(truth):
    want = {}
    section = None
    for line in open(truth):
        s = line.strip()
        m = re.match(r"transactions_served (\d+)", s)
        if m:
            want[("total", "")] = int(m.group(1))
        elif s.startswith("-- by "):
            section = s[6:]
        elif s.startswith("--"):
            section = None
        elif section and re.match(r"^\d+ \S+$", s):
            c, k = s.split()
            want[(section, k)] = int(c)
    tx[("total", "")] = n
    for k, w in sorted(want.items()):
        got = tx.get(k, 0)
        ok = "ok" if got == w else "MISSING" if got < w else "EXTRA"
        if got < w:
            missing += w - got
        print(f"  {k[0]:>8} {k[1]:<10} nginx {w:>8}  mirador {got:>8}  {ok}")
    print("every transaction out" if missing == 0 else f"{missing} transactions missing")
sys.exit(1 if missing else 0)
PY
if [ "${STAGES:-0}" = 1 ]; then
    # What each analyzer costs: the same replay with the chain cut after each stage, CPU and wall time.
    cfg="$BENCH_DIR/stages"
    mkdir -p "$cfg"
    printf '[inventory]\nenabled = false\n[sensitive]\nenabled = false\n[detect]\nenabled = false\n' > "$cfg/pipeline.toml"
    printf '[sensitive]\nenabled = false\n[detect]\nenabled = false\n' > "$cfg/inventory.toml"
    printf '[detect]\nenabled = false\n' > "$cfg/sensitive.toml"
    : > "$cfg/detect.toml"
    for stage in pipeline inventory sensitive detect; do
        rm -rf "$OUT"
        /usr/bin/time -f "%e %U %S %M" -o "$cfg/$stage.time" "$BIN" replay "$CAPTURE" --config "$cfg/$stage.toml" --out "$OUT" >/dev/null 2>&1 || true
        read -r wall user sys rss < "$cfg/$stage.time"
        python3 -c "import sys; w,u,s,r,b=map(float,sys.argv[1:6]); print(f'  up to {sys.argv[6]:<10} {w:6.2f} s wall {u+s:6.2f} s CPU {b*8/w/1e9:5.2f} Gbit/s  peak RSS {r/1024:4.0f} MiB')" \
            "$wall" "$user" "$sys" "$rss" "$(stat -c %s "$CAPTURE")" "$stage"
    done
fi
if [ "${SURICATA:-0}" = 1 ]; then
    # A reference point from the tools we measure ourselves against: Suricata replaying the same file with no
    # rules loaded (protocol parsing and EVE logging only, http records included), default configuration.
    if command -v suricata >/dev/null; then
        sdir="$BENCH_DIR/suricata"
        rm -rf "$sdir" && mkdir -p "$sdir"
        s0=$(date +%s.%N)
        /usr/bin/time -f "%U %S %M" -o "$sdir/time" suricata -r "$CAPTURE" -l "$sdir" -k none >/dev/null 2>&1 || true
        s1=$(date +%s.%N)
        read -r user sys rss < "$sdir/time"
        http=$(grep -c '"event_type":"http"' "$sdir/eve.json" || true)
        python3 -c "import sys; s0,s1,u,s,r,b=map(float,sys.argv[1:7]); w=s1-s0; print(f'suricata -r (no rules, EVE): {w:.2f} s wall, {u+s:.2f} s CPU = {b*8/w/1e9:.2f} Gbit/s, peak RSS {r/1024:.0f} MiB, {sys.argv[7]} http records ({sys.argv[8]})')" \
            "$s0" "$s1" "$user" "$sys" "$rss" "$(stat -c %s "$CAPTURE")" "$http" "$(suricata -V 2>/dev/null | head -1)"
    else
        echo "suricata not installed: no reference run (Debian: apt-get install -t bookworm-backports suricata)"
    fi
fi
exit $status
