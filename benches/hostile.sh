#!/usr/bin/env bash
# Hostile captures at full size (the issue's table, plus a 10 M SYN flood), replayed with the default
# configuration: exit status, wall time, peak RSS, and what was dropped or evicted; Suricata on the same file
# when it is installed.
#
#   benches/hostile.sh                    every capture at full size
#   KINDS="syn-flood=10000000" benches/hostile.sh
#
# Captures are generated (deterministic) into $BENCH_DIR/hostile the first time and reused.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/mirador-bench}/hostile"
KINDS="${KINDS:-syn-flood=1000000 syn-flood=10000000 pending-heads=200000 missing-first=2000 fragments=500000 gzip-bomb=256}"
mkdir -p "$BENCH_DIR"
cd "$HERE"
cargo build --release --quiet --bin mirador --example gen-hostile
BIN="$HERE/target/release/mirador"
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

for spec in $KINDS; do
    kind="${spec%%=*}" n="${spec#*=}"
    pcap="$BENCH_DIR/$kind-$n.pcap"
    [ -f "$pcap" ] || "$HERE/target/release/examples/gen-hostile" "$BENCH_DIR" "$spec" >/dev/null
    out="$BENCH_DIR/out-$kind-$n"
    rm -rf "$out"
    status=0
    /usr/bin/time -f "%e %U %S %M" -o "$BENCH_DIR/time" "$BIN" replay "$pcap" --out "$out" >/dev/null 2>"$BENCH_DIR/stderr" || status=$?
    read -r wall user sys rss < "$BENCH_DIR/time"
    python3 - "$kind-$n" "$status" "$wall" "$user" "$sys" "$rss" "$(stat -c %s "$pcap")" "$out/stats.json" <<'PY'
import json, sys
name, status, wall, user, sys_, rss, size, stats = sys.argv[1:]
try:
    st = json.load(open(stats))
except OSError:
    st = {}
f, fr, h = st.get("flows", {}), st.get("decode", {}).get("fragments", {}), st.get("http", {})
print(f"{name:24} exit {status}  {float(wall):6.2f} s wall ({float(user) + float(sys_):6.2f} s CPU)  peak RSS {int(rss) / 1024:5.0f} MiB"
      f"  pcap {int(size) / 2**20:6.0f} MiB")
print(f"{'':24} flows {f.get('flows_created')} peak {f.get('peak_flows')} evicted {f.get('evicted')}"
      f" (embryonic {f.get('evicted_embryonic')}, active {f.get('evicted_active')})"
      f" flow memory peak {f.get('memory_peak_bytes', 0) / 2**20:.0f} MiB;"
      f" reassembly memcap hits {f.get('reassembly_memcap_hits')} peak {f.get('reassembly_peak_bytes', 0) / 2**20:.0f} MiB;"
      f" fragments dropped {fr.get('dropped_memcap', 0) + fr.get('dropped_count_cap', 0)};"
      f" http memcap hits {h.get('memcap_hits')} bombs {h.get('decompression_bombs')}")
PY
    if command -v suricata >/dev/null; then
        sdir="$BENCH_DIR/suricata"
        rm -rf "$sdir" && mkdir -p "$sdir"
        /usr/bin/time -f "%e %U %S %M" -o "$sdir/time" suricata -r "$pcap" -l "$sdir" -k none >/dev/null 2>&1 || true
        read -r wall user sys rss < "$sdir/time"
        python3 -c "import sys; w,u,s,r=map(float,sys.argv[1:5]); print(f'{\"\":24} suricata: {w:6.2f} s wall ({u+s:6.2f} s CPU)  peak RSS {r/1024:5.0f} MiB')" \
            "$wall" "$user" "$sys" "$rss"
    fi
done
command -v suricata >/dev/null || echo "suricata not installed: no reference runs (Debian: apt-get install -t bookworm-backports suricata)"
