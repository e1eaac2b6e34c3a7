#!/usr/bin/env python3
"""Scores findings.jsonl against labels.jsonl (from plant.py): per-type precision and recall, decoys flagged.

A finding is matched to a label by (n, location, field, type), n being the exchange number taken from the
finding's path (/t/<n>/...). A finding at a labelled decoy, or of a type not planted at that place, is a
false positive. Usage: score.py LABELS FINDINGS [--min 0.98] (exit 1 when a type is below --min or a decoy
is flagged).
"""

import collections
import json
import re
import sys


def main():
    labels_path, findings_path = sys.argv[1], sys.argv[2]
    need = float(sys.argv[sys.argv.index("--min") + 1]) if "--min" in sys.argv else None
    planted = {}
    decoys = set()
    for line in open(labels_path):
        l = json.loads(line)
        key = (l["n"], l["location"], l["field"])
        if l["kind"] == "decoy":
            decoys.add(key)
        else:
            planted[key + (l["type"],)] = False
    fp = collections.Counter()
    tp = collections.Counter()
    fp_examples = collections.defaultdict(list)
    decoy_hits = []
    for line in open(findings_path):
        f = json.loads(line)
        m = re.match(r"^/t/(\d+)/", f.get("path") or "")
        if not m:
            continue
        key = (int(m.group(1)), f["location"], f["field"])
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
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
