#!/usr/bin/env python3
"""Scores mirador's detections on the attack capture of tests/attacks/capture.sh.

    python3 tests/attacks/score.py PCAP [--mirador target/debug/mirador] [--json]

Replays PCAP with `[detect] dedup_window = "0s"` (every hit is its own alert, so each alert names the
transaction it stands for) and labels transactions by their `X-Test-Id` header:
  <class>-<n>   one request of the scripted client (client.sh); `benign-*` is the warm-up.
  sqlmap        a sqlmap request; it is an attack when a query value carries anything but [A-Za-z0-9_.-]
                (sqlmap's plain baseline and random-number requests are not attacks).
A transaction is (uid, trans_depth): sqlmap keeps one connection for all its requests. An attack request
is detected when an alert of one of its class's rules references it. Failed-auth
classes are bursts: the burst is detected when a failed_auth_burst alert references one of its requests
(the rule fires from its 10th failure on; the first nine are not attacks on their own).
Prints per-class recall and the overall recall on the attack requests; exits 1 below --min-recall.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

ATTACK_RULES = {"sqli", "xss", "path_traversal", "command_injection", "ssrf", "log4shell", "xxe",
                "nosql_injection", "template_injection"}
EXPECT = {
    "sqli": {"sqli"},
    "xss": {"xss"},
    "path_traversal": {"path_traversal"},
    "command_injection": {"command_injection"},
    "ssrf": {"ssrf"},
    "log4shell": {"log4shell"},
    "nosql_injection": {"nosql_injection"},
    "template_injection": {"template_injection"},
    "sqlmap": ATTACK_RULES,
    "unauth": {"unauthenticated_access"},
}
BURSTS = {"failed_auth_a": {"failed_auth_burst"}, "stuffing": {"failed_auth_burst"}}
PLAIN = re.compile(r"^[A-Za-z0-9_.-]*$")


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def label(tx):
    for k, v in tx.get("request_headers") or []:
        if k.lower() == "x-test-id":
            if v == "sqlmap":
                q = urllib.parse.urlsplit(tx.get("uri", "")).query
                vals = [v for _, v in urllib.parse.parse_qsl(q, keep_blank_values=True)]
                return "sqlmap" if any(not PLAIN.match(v) for v in vals) else "sqlmap-plain"
            return v.rsplit("-", 1)[0]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap")
    ap.add_argument("--mirador", default="target/debug/mirador")
    ap.add_argument("--min-recall", type=float, default=0.95)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--misses", action="store_true", help="list missed attacks and alerted benign requests")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "score.toml")
        with open(cfg, "w") as f:
            f.write('[detect]\ndedup_window = "0s"\n')
        out = os.path.join(tmp, "out")
        # One worker: the unauthenticated-access baseline is order dependent (sqlmap's 500 credential-less
        # requests, handled first by another worker, would dilute it before the scripted client's calls).
        subprocess.run([a.mirador, "replay", a.pcap, "--config", cfg, "--out", out, "--workers", "1"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        txs = read_jsonl(os.path.join(out, "transactions.jsonl"))
        alerts = read_jsonl(os.path.join(out, "alerts.jsonl"))
    rules_of = {}
    for al in alerts:
        for t in al.get("transactions") or []:
            rules_of.setdefault((t["uid"], t.get("trans_depth", 1)), set()).add(al["rule_id"])
    classes = {}
    bursts = {}
    benign = benign_alerted = 0
    for tx in txs:
        c = label(tx)
        got = rules_of.get((tx["uid"], tx.get("trans_depth", 1)), set())
        if c in EXPECT:
            sent, hit = classes.get(c, (0, 0))
            classes[c] = (sent + 1, hit + bool(got & EXPECT[c]))
            if a.misses and not got & EXPECT[c]:
                print("missed", c, tx["method"], tx["uri"], tx.get("status"), sorted(got), file=sys.stderr)
        elif c in BURSTS:
            bursts[c] = bursts.get(c, False) or bool(got & BURSTS[c])
        elif c in ("benign", "sqlmap-plain"):
            benign += 1
            # sqlmap sends no credentials: unauthenticated_access on its plain requests is right.
            bad = got & (ATTACK_RULES | ({"unauthenticated_access"} if c == "benign" else set()))
            benign_alerted += bool(bad)
            if a.misses and bad:
                print("alerted", c, tx["method"], tx["uri"], tx.get("status"), sorted(bad), file=sys.stderr)
    sent = sum(s for s, _ in classes.values()) + len(bursts)
    hit = sum(h for _, h in classes.values()) + sum(bursts.values())
    recall = hit / sent if sent else 0.0
    result = {"transactions": len(txs), "alerts": len(alerts), "attacks": sent, "detected": hit,
              "recall": recall, "per_class": {c: {"sent": s, "detected": h} for c, (s, h) in classes.items()},
              "bursts": bursts, "benign": benign, "benign_with_attack_alert": benign_alerted}
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{'class':<20} {'sent':>5} {'detected':>8} {'recall':>7}")
        for c, (s, h) in sorted(classes.items()):
            print(f"{c:<20} {s:>5} {h:>8} {h / s:>7.3f}")
        for c, ok in sorted(bursts.items()):
            print(f"{c + ' (burst)':<20} {1:>5} {int(ok):>8} {float(ok):>7.3f}")
        print(f"{'all':<20} {sent:>5} {hit:>8} {recall:>7.3f}")
        print(f"benign/plain requests {benign}, with an attack or unauthenticated alert {benign_alerted}")
    return 0 if recall >= a.min_recall else 1


if __name__ == "__main__":
    sys.exit(main())
