#!/usr/bin/env python3
"""Fraction of benign transactions alerted on the bench capture (real nginx + wrk API traffic).

    python3 tests/attacks/benign.py /work/bench/api-small.pcap [--mirador target/debug/mirador] [--json]

Replays with the shipped detection settings (alerts aggregated per rule, actor and endpoint over 5 minutes,
each naming up to ten transactions), or with `--dedup 0s` (every hit its own alert naming its transaction:
the strict count), and counts the transactions, as (uid, trans_depth), that some alert references. Excluded from the benign set, because the generator sends
them on purpose (/work/shared/bench/gen/api_mix.lua, README): the scanner probes (/.env, /wp-login.php,
/api/v1/admin/users/export, /actuator/env, /api/v0/users/1, all 404) and the unauthenticated debug endpoint
that leaks secrets (/api/internal/debug/config, a planted shadow API). Alerts on those are reported apart.
Prints the benign rate overall and per rule; exits 1 above --max-rate (default 0.001).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PLANTED = ("/.env", "/wp-login.php", "/api/v1/admin/users/export", "/actuator/env", "/api/v0/users/1",
           "/api/internal/debug/config")


def planted(uri):
    path = uri.split("?", 1)[0]
    return path in PLANTED


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--mirador", default="target/debug/mirador")
    ap.add_argument("--max-rate", type=float, default=0.001)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dedup", help='[detect] dedup_window for the run, e.g. "0s" (default: the shipped 5m)')
    ap.add_argument("--out", help="keep the replay output here (default: a temporary directory)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "benign.toml")
        with open(cfg, "w") as f:
            f.write(f'[detect]\ndedup_window = "{a.dedup}"\n' if a.dedup else "")
        out = a.out or os.path.join(tmp, "out")
        subprocess.run([a.mirador, "replay", a.pcap, "--config", cfg, "--out", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = {}
        with open(os.path.join(out, "transactions.jsonl")) as f:
            for line in f:
                t = json.loads(line)
                kind[(t["uid"], t.get("trans_depth", 1))] = planted(t.get("uri", ""))
        alerted = {}
        with open(os.path.join(out, "alerts.jsonl")) as f:
            for line in f:
                al = json.loads(line)
                for t in al.get("transactions") or []:
                    alerted.setdefault((t["uid"], t.get("trans_depth", 1)), set()).add(al["rule_id"])
    benign = sum(1 for p in kind.values() if not p)
    hit = [k for k in alerted if k in kind and not kind[k]]
    per_rule = {}
    for k in hit:
        for r in alerted[k]:
            per_rule[r] = per_rule.get(r, 0) + 1
    planted_rules = {}
    for k, rules in alerted.items():
        if kind.get(k):
            for r in rules:
                planted_rules[r] = planted_rules.get(r, 0) + 1
    rate = len(hit) / benign if benign else 0.0
    res = {"transactions": len(kind), "benign": benign, "benign_alerted": len(hit), "rate": rate,
           "per_rule": per_rule, "planted": len(kind) - benign, "planted_alerts_by_rule": planted_rules}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"transactions {len(kind)}, benign {benign}, planted (excluded) {len(kind) - benign}")
        print(f"benign transactions alerted {len(hit)} = {rate:.5%}")
        for r, n in sorted(per_rule.items(), key=lambda x: -x[1]):
            print(f"  {r:<28} {n}")
        print("alerts on the planted requests:", dict(sorted(planted_rules.items())))
    return 0 if rate <= a.max_rate else 1


if __name__ == "__main__":
    sys.exit(main())
