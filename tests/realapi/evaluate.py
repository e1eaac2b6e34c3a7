#!/usr/bin/env python3
"""Scores mirador's API inventory on real captures: strict endpoint precision and recall against each API's
own spec, next to a naive shape-only templater as the floor.

    tests/realapi/evaluate.py [--mirador BIN] [--keep DIR] [--json] --capture-dir OUT   # capture.sh's manifest
    tests/realapi/evaluate.py [options] PCAP SPEC [PCAP SPEC ...]
    tests/realapi/evaluate.py --determinism [--capture-dir OUT | PCAP SPEC ...]        # workers 1, 2, 4

For each capture it runs `mirador replay PCAP --out DIR/learned` (no spec: a supplied spec's templates
would take precedence, and the score is about learning from traffic alone) and `--spec SPEC --out
DIR/with-spec` (for the spec-diff summary). Observed operations are read from DIR/learned/openapi/*.json
(method + path template, under the document's server base path) and compared with the spec's operations
by structure, strictly:

- `/pet/{id}` is `/pet/{petId}` (names do not matter); a concrete `/pet/12` is NOT `/pet/{petId}` (a template
  split into values is an error), and `/items/` is NOT `/items` (a trailing slash is part of the path, as in
  OpenAPI). The spec's base path (servers / basePath) is optional on both sides.
- Exercised: the spec operations that some request in transactions.jsonl hit (concrete path matched against
  the spec's templates, literals first) AND that the server did not refuse: an answer other than 404, 405
  or 501. What the server refused or never answered is not an API, so it may not create an operation;
  recall is measured against the exercised operations (and also reported against the whole spec).
- True positive: an observed operation equal by structure to a spec operation.
- Off-spec (not scored): an observed operation made of requests no spec operation describes (a client
  probing an undocumented method or a slash-less URL), or an undocumented method on a path the spec
  documents: real traffic, reported as shadow, but not the spec's to judge.
- False positive: any other observed operation (split or over-merged templates, invented paths).

The naive templater is the floor: every request that was answered and not refused becomes an operation
whose path keeps each segment literally, except integers, UUIDs, hex tokens of 8 characters or more with a
digit, e-mail addresses, dates and redacted values, which become parameters. Its operations are scored
the same way.

Exit status 0 when the micro-averaged precision and recall reach --min-micro (0.95), every API reaches
--min-api (0.85) and every API is at least the naive templater's precision and recall; 1 otherwise
(--determinism: 1 when any output differs); 2 on usage errors. Needs PyYAML for YAML specs (the tools venv
that capture.sh makes has it).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "query"}
# Answers that refuse a route rather than serve it (and no answer at all, None).
REFUSED = {404, 405, 501, None}


def load_doc(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json") or text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml  # PyYAML: only needed for YAML specs

    return yaml.safe_load(text)


def wire_segs(path):
    """Segments as on the wire: `/a/` is ['a', ''], `/a` is ['a'], `/` is ['']."""
    path = path.split("?", 1)[0]
    return (path[1:] if path.startswith("/") else path).split("/")


def base_paths(doc):
    """Path prefixes the document declares, without a trailing slash ('' always included: optional)."""
    out = []
    if isinstance(doc.get("basePath"), str):
        out.append(doc["basePath"])
    for s in doc.get("servers") or []:
        url = s.get("url", "") if isinstance(s, dict) else ""
        for k, v in (s.get("variables") or {}).items():
            url = url.replace("{%s}" % k, str(v.get("default", "")))
        out.append(urlsplit(url).path if "://" in url or url.startswith("//") else url)
    out = ["/" + b.strip("/") if b.strip("/") else "" for b in out]
    return list(dict.fromkeys(out + [""]))


def join(base, template):
    return wire_segs(base + (template if template.startswith("/") else "/" + template))


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
        if isinstance(item, dict):
            ops += [(m.upper(), path) for m in item if m.lower() in METHODS]
    return ops


def strict_match(a, b):
    return len(a) == len(b) and all(shape(x) == shape(y) for x, y in zip(a, b))


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
                rx = "^" + ".+".join(re.escape(part) for part in shape(t).split("{}")) + "$"
                if not re.match(rx, p):
                    return None
                score += 2
        elif p == t:
            score += 3
        else:
            return None
    return score


# The naive templater's value shapes.
INT = re.compile(r"^-?\d+$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{8,}$")
EMAIL = re.compile(r"^[^@/\s]+@[^@/\s]+\.[^@/\s]+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def naive_segment(seg):
    from urllib.parse import unquote

    v = unquote(seg)
    if "***" in v or any(rx.match(v) for rx in (INT, UUID, HEX, EMAIL, DATE)):
        return "{p}"
    return seg


def read_transactions(path):
    """(method, concrete path segments, status) of every transaction mirador decoded."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            out.append(((t.get("method") or "").upper(), wire_segs(t.get("uri") or ""), t.get("status")))
    return out


def spec_hit(sops_v, method, ps):
    best = None
    for m, tmpl, vs in sops_v:
        if m != method:
            continue
        for v in vs:
            sc = concrete_score(ps, v)
            if sc is not None and (best is None or sc > best[0]):
                best = (sc, (m, tmpl))
    return best[1] if best else None


def fp_class(m, segs, sops_v, txs):
    """Why an observed operation is no spec operation, by the first class that explains it: made of refused
    requests only; a trailing slash lost or added (alone, or on an undocumented method); values kept as
    literals where the spec has a parameter; literals merged into a parameter where the spec has a word;
    both; or none of these."""
    # The requests behind it, with or without a trailing slash (a template that lost it covers both).
    bare = ["{p}" if is_param(x) else x for x in segs]
    bare = bare[:-1] if len(bare) > 1 and bare[-1] == "" else bare
    statuses = [st for rm, rps, st in txs
                if rm == m and concrete_score(rps[:-1] if len(rps) > 1 and rps[-1] == "" else rps, bare) is not None]
    if statuses and all(st in REFUSED for st in statuses):
        return "refused only"
    variants = [segs]
    flipped = segs[:-1] if segs and segs[-1] == "" else segs + [""]
    if any(sm == m and any(strict_match(flipped, v) for v in vs) for sm, st, vs in sops_v):
        return "trailing slash"
    if any(any(strict_match(flipped, v) for v in vs) for sm, st, vs in sops_v):
        # Served, undocumented (OPTIONS answered by a framework): off-spec, had the slash been kept.
        return "undocumented method (and trailing slash)"
    variants.append(flipped)
    best = None
    for sm, st, vs in sops_v:
        if sm != m:
            continue
        for v in vs:
            for o in variants:
                if len(o) != len(v):
                    continue
                kinds = set()
                for a, b in zip(o, v):
                    if shape(a) == shape(b):
                        continue
                    if "{" in b and "{" not in a:
                        kinds.add("literal")
                    elif "{" in a and "{" not in b:
                        kinds.add("merged")
                    else:
                        kinds.add("x")
                if "x" in kinds or not kinds:
                    continue
                name = {frozenset({"literal"}): "value kept literal",
                        frozenset({"merged"}): "literal merged into a parameter"}.get(frozenset(kinds), "literal and merged")
                if o is not segs:
                    name += " (and trailing slash)"
                if best is None or len(name) < len(best):
                    best = name
    return best or "other"


def score(observed, sops_v, off_spec_requests, exercised, txs):
    """observed: [(method, segs)] -> true positives, false positives, off-spec, precision, recall."""
    tp, fp, off, found = [], [], [], set()
    classes = {}
    for m, os_ in observed:
        hit = next(((sm, st) for sm, st, vs in sops_v if sm == m and any(strict_match(os_, v) for v in vs)), None)
        if hit:
            tp.append((m, "/" + "/".join(os_)))
            found.add(hit)
            continue
        # Off-spec only if undocumented traffic explains it: a request no spec operation describes whose path
        # this template covers, or a method the spec does not give a path it documents (a client probing
        # DELETE /pet/findByStatus: the template is right, the method is not in the spec).
        pattern = ["{p}" if is_param(s) else s for s in os_]
        explained = any(rm == m and concrete_score(rps, pattern) is not None for rm, rps in off_spec_requests)
        other_method = any(sm != m and any(strict_match(os_, v) for v in vs) for sm, st, vs in sops_v)
        if explained or other_method:
            off.append((m, "/" + "/".join(os_)))
        else:
            fp.append((m, "/" + "/".join(os_)))
            c = fp_class(m, os_, sops_v, txs)
            classes[c] = classes.get(c, 0) + 1
    scored = len(tp) + len(fp)
    return {
        "true_positives": len(tp),
        "false_positives": sorted(fp),
        "false_positive_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1])),
        "off_spec": sorted(off),
        "missed": sorted(exercised - found),
        "precision": round(len(tp) / scored, 4) if scored else 0.0,
        "recall": round(len(found & exercised) / len(exercised), 4) if exercised else 0.0,
        "found": found,
    }


def replay(mirador, pcap, out, extra=()):
    cmd = [mirador, "replay", pcap, *extra, "--out", out, "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"evaluate.py: {' '.join(cmd)} exited {r.returncode}:\n{r.stderr}")


def evaluate(mirador, name, pcap, spec_path, keep):
    out = keep or tempfile.mkdtemp(prefix="mirador-eval-")
    os.makedirs(out, exist_ok=True)
    learned, diffed = os.path.join(out, "learned"), os.path.join(out, "with-spec")
    for d in (learned, diffed):
        shutil.rmtree(d, ignore_errors=True)
    replay(mirador, pcap, learned)
    replay(mirador, pcap, diffed, ["--spec", spec_path])
    spec = load_doc(spec_path)
    sbases = base_paths(spec)
    sops = spec_ops(spec)
    sops_v = [(m, t, [join(b, t) for b in sbases]) for m, t in sops]

    # Ground truth from the traffic: which spec operation each request hit, and whether it was served.
    txs = read_transactions(os.path.join(learned, "transactions.jsonl"))
    exercised, hit_refused_only, off_spec_requests, naive = set(), set(), [], {}
    for method, ps, status in txs:
        hit = spec_hit(sops_v, method, ps)
        if hit is None:
            off_spec_requests.append((method, ps))
        elif status not in REFUSED:
            exercised.add(hit)
        else:
            hit_refused_only.add(hit)
        if status not in REFUSED:
            naive[(method, tuple(naive_segment(s) for s in ps))] = True
    hit_refused_only -= exercised

    observed, docs = [], sorted(glob.glob(os.path.join(learned, "openapi", "*.json")))
    for d in docs:
        doc = load_doc(d)
        ob = base_paths(doc)[0]
        observed += [(m, join(ob, t)) for m, t in spec_ops(doc)]
    mir = score(observed, sops_v, off_spec_requests, exercised, txs)
    nai = score([(m, list(s)) for m, s in naive], sops_v, off_spec_requests, exercised, txs)

    diff = {}
    p = os.path.join(diffed, "spec-diff.json")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            for s in json.load(f).get("services", []):
                if s.get("service"):
                    diff[s["service"]] = s.get("summary")
    found = mir.pop("found")
    nai.pop("found")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
        out = None
    return {
        "api": name,
        "pcap": pcap,
        "spec": spec_path,
        "out": out,
        "requests": len(txs),
        "observed_documents": [os.path.basename(d) for d in docs],
        "spec_operations": len(sops),
        "exercised_operations": len(exercised),
        "hit_but_refused_only": sorted(hit_refused_only),
        "observed_operations": len(observed),
        **mir,
        "recall_whole_spec": round(len(found) / len(sops), 4) if sops else 0.0,
        "naive": nai,
        "spec_diff_summary": diff,
    }


# ---- determinism: the same capture, 1, 2 and 4 workers ----

# Fields of a record that differ from run to run by design (seen by replaying one capture twice with the
# same worker count): alert ids and flow uids are drawn per run, the hashes of sensitive values are keyed
# per run.
VOLATILE = {"id", "uid", "hash", "hashes"}
# Files that measure the run itself (timings, per-worker cache counters), not what was observed.
RUN_METRICS = {"stats.json", "sensitive_stats.json"}


# Credential identities without a subject are a keyed hash of the credential (`bearer:<hex>`), keyed per run.
KEYED_IDENTITY = re.compile(r"^(bearer|basic|apikey|cookie):#?[0-9a-f]{8,}$")


def blank(record):
    if isinstance(record, dict):
        return {k: ("<blank>" if k in VOLATILE else blank(v)) for k, v in record.items()}
    if isinstance(record, list):
        return [blank(v) for v in record]
    if isinstance(record, str) and KEYED_IDENTITY.match(record):
        return "<keyed>"
    return record


def normalised(path):
    """(content with volatile fields blanked, the same in file order): JSON lines sorted, JSON as a value."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if path.endswith(".jsonl"):
        lines = [json.dumps(blank(json.loads(line)), sort_keys=True) for line in text.splitlines() if line]
        return sorted(lines), lines
    if path.endswith(".json"):
        v = json.loads(text)
        return v, v
    return text, text


def diff_paths(a, b, here, out):
    """JSON pointers where two documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff_paths(a.get(k), b.get(k), f"{here}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff_paths(x, y, f"{here}/{i}", out)
    elif a != b:
        out.append(here or "/")


def determinism(mirador, name, pcap, spec_path, keep, workers=(1, 2, 4)):
    out = keep or tempfile.mkdtemp(prefix="mirador-det-")
    report = {"api": name, "pcap": pcap, "differences": [], "order_only": []}
    for variant, extra in (("learned", []), ("with-spec", ["--spec", spec_path])):
        runs = {}
        for w in workers:
            d = os.path.join(out, f"det-{variant}-w{w}")
            shutil.rmtree(d, ignore_errors=True)
            # One flow-table shard: with several, the order shards hand their batches over varies.
            replay(mirador, pcap, d, [*extra, "--workers", str(w), "--shards", "1"])
            runs[w] = {os.path.relpath(p, d): p for p in glob.glob(os.path.join(d, "**", "*"), recursive=True)
                       if os.path.isfile(p)}
        ref = runs[workers[0]]
        for w in workers[1:]:
            for rel in sorted(set(ref) | set(runs[w])):
                if rel in RUN_METRICS:
                    continue
                if rel not in ref or rel not in runs[w]:
                    report["differences"].append(f"{variant} workers={w}: {rel} only in one run")
                    continue
                (a, a_order), (b, b_order) = normalised(ref[rel]), normalised(runs[w][rel])
                if a != b:
                    detail = ""
                    if rel.endswith(".jsonl"):
                        sa, sb = set(a), set(b)
                        detail = (f" ({len(sa - sb)} lines only with {workers[0]} worker(s),"
                                  f" {len(sb - sa)} only with {w})")
                    else:
                        paths = []
                        diff_paths(a, b, "", paths)
                        detail = f" at {', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''} ({len(paths)} places)"
                    report["differences"].append(f"{variant} workers={w}: {rel} differs{detail}")
                elif a_order != b_order:
                    # Same records, another order: reported, but not counted as a difference.
                    report["order_only"].append(f"{variant} workers={w}: {rel}")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    report["identical"] = not report["differences"]
    return report


def read_manifest(capdir):
    path = os.path.join(capdir, "manifest.tsv")
    if not os.path.exists(path):
        return None
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                name, pcap, spec, server = line.rstrip("\n").split("\t")
                rows.append((name, pcap, spec, server))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirador", default=os.path.join(os.path.dirname(__file__), "../../target/release/mirador"))
    ap.add_argument("--capture-dir", help="score every capture listed in DIR/manifest.tsv (capture.sh's output)")
    ap.add_argument("--keep", help="write mirador's outputs under this directory (one sub-directory per capture)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--min-micro", type=float, default=0.95, help="micro-averaged precision and recall to reach")
    ap.add_argument("--min-api", type=float, default=0.85, help="precision and recall every API must reach")
    ap.add_argument("--determinism", action="store_true",
                    help="instead of scoring, replay each capture with 1, 2 and 4 workers and compare the outputs")
    ap.add_argument("-v", "--verbose", action="store_true", help="list false positives, misses and off-spec")
    ap.add_argument("pairs", nargs="*", metavar="PCAP SPEC")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("give PCAP SPEC pairs")
    rows = []
    if a.capture_dir:
        rows = read_manifest(a.capture_dir)
        if rows is None:
            ap.error(f"{a.capture_dir}/manifest.tsv: not found (run tests/realapi/capture.sh first)")
    for i in range(0, len(a.pairs), 2):
        pcap, spec = a.pairs[i], a.pairs[i + 1]
        rows.append((os.path.splitext(os.path.basename(pcap))[0], pcap, spec, "?"))
    if not rows:
        ap.error("give --capture-dir or PCAP SPEC pairs")
    for _, pcap, spec, _ in rows:
        for f in (pcap, spec):
            if not os.path.isfile(f):
                ap.error(f"{f}: no such file")
    if not os.access(a.mirador, os.X_OK):
        ap.error(f"{a.mirador}: not an executable (build with `cargo build --release` or pass --mirador)")

    if a.determinism:
        reports = [determinism(a.mirador, n, p, s, os.path.join(a.keep, n) if a.keep else None) for n, p, s, _ in rows]
        if a.json:
            print(json.dumps(reports, indent=2))
        else:
            for r in reports:
                print(f"{r['api']:<13} {'identical' if r['identical'] else 'DIFFERENT'}")
                for d in r["differences"]:
                    print(f"    {d}")
                if r["order_only"]:
                    print(f"    same records in another order: {', '.join(r['order_only'])}")
        return 0 if all(r["identical"] for r in reports) else 1

    results = []
    for name, pcap, spec, server in rows:
        r = evaluate(a.mirador, name, pcap, spec, os.path.join(a.keep, name) if a.keep else None)
        r["server"] = server
        results.append(r)

    def micro(key):
        tp = sum((r if key is None else r[key])["true_positives"] for r in results)
        fp = sum(len((r if key is None else r[key])["false_positives"]) for r in results)
        ex = sum(r["exercised_operations"] for r in results)
        miss = sum(len((r if key is None else r[key])["missed"]) for r in results)
        return {"precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
                "recall": round((ex - miss) / ex, 4) if ex else 0.0}

    totals = {"mirador": micro(None), "naive": micro("naive")}
    failures = []
    for k in ("precision", "recall"):
        if totals["mirador"][k] < a.min_micro:
            failures.append(f"micro {k} {totals['mirador'][k]:.3f} < {a.min_micro}")
    for r in results:
        for k in ("precision", "recall"):
            if r[k] < a.min_api:
                failures.append(f"{r['api']}: {k} {r[k]:.3f} < {a.min_api}")
            if r[k] < r["naive"][k]:
                failures.append(f"{r['api']}: {k} {r[k]:.3f} below the naive templater's {r['naive'][k]:.3f}")

    if a.json:
        print(json.dumps({"apis": results, "micro": totals, "failures": failures}, indent=2))
    else:
        print(f"{'API':<13} {'server':<40} {'ops exercised':>13} {'mirador P / R':>15} {'naive P / R':>15}")
        for r in results:
            nv = r["naive"]
            print(f"{r['api']:<13} {r['server'][:40]:<40} {r['exercised_operations']:>5} of {r['spec_operations']:<5}"
                  f" {r['precision']:>7.3f} / {r['recall']:.3f} {nv['precision']:>7.3f} / {nv['recall']:.3f}")
        m, n = totals["mirador"], totals["naive"]
        ex = sum(r["exercised_operations"] for r in results)
        sp = sum(r["spec_operations"] for r in results)
        print(f"{'micro':<13} {'':<40} {ex:>5} of {sp:<5} {m['precision']:>7.3f} / {m['recall']:.3f}"
              f" {n['precision']:>7.3f} / {n['recall']:.3f}")
        if a.verbose:
            for r in results:
                print(f"\n{r['api']}: {r['requests']} requests, {r['observed_operations']} observed operations "
                      f"({r['true_positives']} TP, {len(r['false_positives'])} FP, {len(r['off_spec'])} off-spec)")
                if r["false_positive_classes"]:
                    print("  FP classes: " + ", ".join(f"{k} {v}" for k, v in r["false_positive_classes"].items()))
                for m_, t in r["false_positives"]:
                    print(f"  FP       {m_} {t}")
                for m_, t in r["missed"]:
                    print(f"  missed   {m_} {t}")
                for m_, t in r["off_spec"]:
                    print(f"  off-spec {m_} {t}")
                for m_, t in r["hit_but_refused_only"]:
                    print(f"  refused  {m_} {t} (only refused answers: not expected)")
        for f in failures:
            print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
