#!/usr/bin/env python3
"""Scores mirador's API inventory on real captures: endpoint precision and recall against the server's spec.

    tests/realapi/evaluate.py [--mirador BIN] [--keep DIR] [--json] PCAP SPEC [PCAP SPEC ...]

For each capture, runs `mirador replay PCAP --out DIR/learned` (no spec: a supplied spec's templates would
take precedence, and the score is about learning from traffic alone) and `... --spec SPEC --out
DIR/with-spec` (for the spec-diff summary). It reads the observed operations from DIR/learned/openapi/*.json (method + path template, with the document's server base path) and compares them with the
spec's operations by structure (`/pet/{id}` is `/pet/{petId}`; a concrete `/pet/12` is NOT `/pet/{petId}`:
a template split into values is an error). The spec's base path (servers / basePath) is optional on both
sides.

- Exercised: the spec operations that some request in transactions.jsonl actually hit (concrete path
  matched against the spec's templates, literals first). Recall is measured against these, and also
  reported against the whole spec.
- True positive: an observed operation equal by structure to a spec operation.
- Off-spec: an observed operation made of requests no spec operation describes (a client probing an
  undocumented method, say), or an undocumented method on a path the spec documents literally: correctly
  reported as shadow traffic, but not scored.
- False positive: any other observed operation (split or over-merged templates, invented paths).

Needs PyYAML for YAML specs (the tools venv that capture.sh makes has it). Exit code 0 when every capture
reaches --min (default 0.95) precision and recall, 1 otherwise, 2 on usage errors.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def load_doc(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json") or text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml  # PyYAML: only needed for YAML specs

    return yaml.safe_load(text)


def base_paths(doc):
    """Path prefixes the document declares ('' always included: the prefix is optional)."""
    out = []
    if "basePath" in doc:
        out.append(doc["basePath"])
    for s in doc.get("servers") or []:
        url = s.get("url", "")
        for k, v in (s.get("variables") or {}).items():
            url = url.replace("{%s}" % k, str(v.get("default", "")))
        out.append(urlsplit(url).path if "://" in url else url)
    out = ["/" + "/".join(segs(b)) if segs(b) else "" for b in out]
    return list(dict.fromkeys(out + [""]))


def segs(path):
    return [s for s in path.split("/") if s]


def is_param(seg):
    return seg.startswith("{") and seg.endswith("}") and seg.count("{") == 1


def shape(seg):
    """A segment with its parameter names erased: `{a}.json` -> `{}.json`."""
    out, depth = [], 0
    for ch in seg:
        if ch == "{":
            depth += 1
            if depth == 1:
                out.append("{}")
        elif ch == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def spec_ops(doc):
    ops = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for m in item:
            if m.lower() in METHODS:
                ops.append((m.upper(), path))
    return ops


def strict_match(obs_segs, spec_segs):
    return len(obs_segs) == len(spec_segs) and all(shape(a) == shape(b) for a, b in zip(obs_segs, spec_segs))


def concrete_score(path_segs, tmpl_segs):
    """How well a concrete request path fits a template (None: it does not); literals count more."""
    if len(path_segs) != len(tmpl_segs):
        return None
    score = 0
    for p, t in zip(path_segs, tmpl_segs):
        if "{" in t:
            if is_param(t):
                if not p:
                    return None
                score += 1
            else:
                import re

                rx = "^" + "".join(".+" if part == "{}" else re.escape(part) for part in split_shape(shape(t))) + "$"
                if not re.match(rx, p):
                    return None
                score += 2
        elif p == t:
            score += 3
        else:
            return None
    return score


def split_shape(s):
    parts, i = [], 0
    while i < len(s):
        j = s.find("{}", i)
        if j < 0:
            parts.append(s[i:])
            break
        if j > i:
            parts.append(s[i:j])
        parts.append("{}")
        i = j + 2
    return parts


def variants(bases, template):
    return [segs(b + template) for b in bases]


def evaluate(mirador, pcap, spec_path, keep):
    out = keep or tempfile.mkdtemp(prefix="mirador-eval-")
    if keep:
        os.makedirs(out, exist_ok=True)
    # Scored from a run WITHOUT the spec: a supplied spec's templates take precedence in the inventory, and
    # the score is about what it learns from traffic alone. A second run with --spec gives spec-diff.json.
    learned, diffed = os.path.join(out, "learned"), os.path.join(out, "with-spec")
    for d, extra in ((learned, []), (diffed, ["--spec", spec_path])):
        cmd = [mirador, "replay", pcap, *extra, "--out", d, "--quiet"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"evaluate.py: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr}")
    spec = load_doc(spec_path)
    sbases = base_paths(spec)
    sops = spec_ops(spec)
    sops_v = [(m, t, variants(sbases, t)) for m, t in sops]

    # Ground truth from the traffic: which spec operation each request hit.
    exercised, off_spec_requests, requests = set(), [], 0
    with open(os.path.join(learned, "transactions.jsonl"), encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            requests += 1
            method = (t.get("method") or "").upper()
            path = (t.get("uri") or "").split("?")[0]
            ps = segs(path)
            best = None
            for m, tmpl, vs in sops_v:
                if m != method:
                    continue
                for v in vs:
                    sc = concrete_score(ps, v)
                    if sc is not None and (best is None or sc > best[0]):
                        best = (sc, (m, tmpl))
            if best:
                exercised.add(best[1])
            else:
                off_spec_requests.append((method, ps))

    # The inventory's view.
    observed = []
    docs = sorted(glob.glob(os.path.join(learned, "openapi", "*.json")))
    for d in docs:
        doc = load_doc(d)
        obases = base_paths(doc)
        ob = obases[0] if obases else ""
        for m, tmpl in spec_ops(doc):
            observed.append((m, ob + tmpl, os.path.basename(d)))

    tp, fp, off = [], [], []
    found = set()
    for m, tmpl, doc in observed:
        os_ = segs(tmpl)
        hit = None
        for sm, st, vs in sops_v:
            if sm == m and any(strict_match(os_, v) for v in vs):
                hit = (sm, st)
                break
        if hit:
            tp.append((m, tmpl, hit))
            found.add(hit)
            continue
        # Off-spec only if undocumented traffic explains it: a request no spec operation describes whose
        # path this template covers, or a method the spec does not give a path it documents (a client
        # probing DELETE /pet/findByStatus: the template is right, the method is not in the spec; a router
        # may well send it to DELETE /pet/{petId}, but the client meant the documented literal path).
        tmpl_as_pattern = ["{p}" if is_param(s) else s for s in os_]
        explained = any(rm == m and concrete_score(rps, tmpl_as_pattern) is not None for rm, rps in off_spec_requests)
        path_documented_other_method = any(
            sm != m and any(strict_match(os_, v) for v in vs) for sm, st, vs in sops_v
        ) and not any(sm == m and any(strict_match(os_, v) for v in vs) for sm, st, vs in sops_v)
        (off if explained or path_documented_other_method else fp).append((m, tmpl))

    scored = len(tp) + len(fp)
    precision = len(tp) / scored if scored else 0.0
    recall = len(found & exercised) / len(exercised) if exercised else 0.0
    recall_spec = len(found) / len(sops) if sops else 0.0
    diff = {}
    p = os.path.join(diffed, "spec-diff.json")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            rep = json.load(f)
        for s in rep.get("services", []):
            if s.get("service"):
                diff[s["service"]] = s.get("summary")
    return {
        "pcap": pcap,
        "spec": spec_path,
        "out": out,
        "requests": requests,
        "observed_documents": [os.path.basename(d) for d in docs],
        "spec_operations": len(sops),
        "exercised_operations": len(exercised),
        "observed_operations": len(observed),
        "true_positives": len(tp),
        "false_positives": sorted(fp),
        "off_spec": sorted(off),
        "missed": sorted(exercised - found),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "recall_whole_spec": round(recall_spec, 4),
        "spec_diff_summary": diff,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirador", default=os.path.join(os.path.dirname(__file__), "../../target/debug/mirador"))
    ap.add_argument("--keep", help="write mirador's outputs under this directory (one sub-directory per capture)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--min", type=float, default=0.95, help="precision and recall each capture must reach")
    ap.add_argument("pairs", nargs="+", metavar="PCAP SPEC")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give PCAP SPEC pairs")
    if not os.access(a.mirador, os.X_OK):
        ap.error(f"{a.mirador}: not an executable (build with `cargo build` or pass --mirador)")
    results = []
    for i in range(0, len(a.pairs), 2):
        pcap, spec = a.pairs[i], a.pairs[i + 1]
        keep = os.path.join(a.keep, os.path.splitext(os.path.basename(pcap))[0]) if a.keep else None
        results.append(evaluate(a.mirador, pcap, spec, keep))
    if a.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{os.path.basename(r['pcap'])} vs {os.path.basename(r['spec'])}: {r['requests']} requests, "
                  f"spec {r['spec_operations']} operations ({r['exercised_operations']} exercised), "
                  f"observed {r['observed_operations']} in {len(r['observed_documents'])} document(s)")
            print(f"  precision {r['precision']:.3f} ({r['true_positives']} TP, {len(r['false_positives'])} FP, "
                  f"{len(r['off_spec'])} off-spec not scored)  recall {r['recall']:.3f} of exercised, "
                  f"{r['recall_whole_spec']:.3f} of the whole spec")
            for m, t in r["false_positives"]:
                print(f"  FP      {m} {t}")
            for m, t in r["missed"]:
                print(f"  missed  {m} {t}")
            for m, t in r["off_spec"]:
                print(f"  off-spec {m} {t}")
            for svc, s in r["spec_diff_summary"].items():
                print(f"  spec-diff {svc}: {s}")
    ok = all(r["precision"] >= a.min and r["recall"] >= a.min for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
