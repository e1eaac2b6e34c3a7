#!/usr/bin/env python3
"""Scores findings.jsonl against labels.jsonl (from plant.py): per-type precision and recall, decoys flagged.

A finding is matched to a label by (n, location, field, type), n being the exchange number taken from the
path (/t/<n>/...) of each transaction the finding names. Findings are aggregated across transactions
(README, "Findings"): one line lists up to `[sensitive] max_finding_transactions` transaction references
({uid, trans_depth}), resolved to paths through transactions.jsonl next to FINDINGS, and the finding counts
once for each of them. A transaction a finding does not list is not credited (tx_count beyond the list is
reported as unattributed), so recall is per planted value, never inferred. JSON array indices are compared
folded (`[3]` as `[*]`), as findings group them. A finding at a labelled decoy, or of a type not planted at
that place, is a false positive. Usage: score.py LABELS FINDINGS [--min 0.98] (exit 1 when a type is below
--min, a decoy is flagged or a finding's transactions are not all listed).
"""

import collections
import json
import os
import re
import sys

FOLD = re.compile(r"\[\d+\]")


def fold(field):
    return FOLD.sub("[*]", field) if field.startswith("$") else field


def exchanges(findings_path):
    """(uid, trans_depth) -> exchange number, from transactions.jsonl beside the findings."""
    out = {}
    p = os.path.join(os.path.dirname(os.path.abspath(findings_path)), "transactions.jsonl")
    if not os.path.exists(p):
        return out
    for line in open(p):
        t = json.loads(line)
        m = re.match(r"^/t/(\d+)/", t.get("uri") or t.get("path") or "")
        if m:
            out[(t.get("uid"), t.get("trans_depth"))] = int(m.group(1))
    return out


def main():
    labels_path, findings_path = sys.argv[1], sys.argv[2]
    need = float(sys.argv[sys.argv.index("--min") + 1]) if "--min" in sys.argv else None
    planted = {}
    decoys = set()
    for line in open(labels_path):
        l = json.loads(line)
        key = (l["n"], l["location"], fold(l["field"]))
        if l["kind"] == "decoy":
            decoys.add(key)
        else:
            planted[key + (l["type"],)] = False
    fp = collections.Counter()
    tp = collections.Counter()
    fp_examples = collections.defaultdict(list)
    decoy_hits = []
    ex = exchanges(findings_path)
    unattributed = 0
    for line in open(findings_path):
        f = json.loads(line)
        ns = []
        if "transactions" in f:
            refs = f["transactions"]
            unattributed += max(0, f.get("tx_count", len(refs)) - len(refs))
            for r in refs:
                n = ex.get((r.get("uid"), r.get("trans_depth")))
                if n is not None:
                    ns.append(n)
        else:
            m = re.match(r"^/t/(\d+)/", f.get("path") or "")
            if m:
                ns.append(int(m.group(1)))
        for n in sorted(set(ns)):
            key = (n, f["location"], fold(f["field"]))
            if key in decoys:
                decoy_hits.append((key, f["type"], f["evidence"]))
            k4 = key + (f["type"],)
            if k4 in planted:
                if not planted[k4]:
                    tp[f["type"]] += 1
                planted[k4] = True
            else:
                fp[f["type"]] += 1
                fp_examples[f["type"]].append((key, f["evidence"]))
    fn = collections.Counter(k[3] for k, found in planted.items() if not found)
    fn_examples = collections.defaultdict(list)
    for k, found in planted.items():
        if not found:
            fn_examples[k[3]].append(k[:3])
    types = sorted(set(k[3] for k in planted) | set(fp))
    ok = True
    print("%-24s %6s %6s %6s %9s %7s" % ("type", "tp", "fp", "fn", "precision", "recall"))
    for t in types:
        p = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else 1.0
        r = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 1.0
        flag = ""
        if need is not None and (p < need or r < need):
            ok = False
            flag = "  <-- below %.2f" % need
        print("%-24s %6d %6d %6d %9.3f %7.3f%s" % (t, tp[t], fp[t], fn[t], p, r, flag))
        for e in fp_examples[t][:3]:
            print("    fp:", e)
        for e in fn_examples[t][:3]:
            print("    fn:", e)
    print("decoys: %d labelled, %d flagged" % (len(decoys), len(decoy_hits)))
    for d in decoy_hits[:10]:
        print("    decoy flagged:", d)
    if decoy_hits:
        ok = False
    if unattributed:
        print("unattributed: %d transactions named by findings beyond their reference lists (not credited;"
              " raise [sensitive] max_finding_transactions to score them)" % unattributed)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
