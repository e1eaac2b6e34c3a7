"""Regenerates tests/sinks/ocsf_1.7.0_subset.json from the OCSF 1.7.0 schema shipped in the PyPI package
pydantic-ocsf 3.0.0 (ocsf/schemas/v1_7_0.json, Apache-2.0): the two classes mirador emits (Detection Finding
2004, API Activity 6003) with inheritance resolved, every object they reach, and the base types.

    pip download --no-deps pydantic-ocsf==3.0.0 && unzip pydantic_ocsf-3.0.0-py3-none-any.whl 'ocsf/*'
    python3 tests/sinks/ocsf_subset.py ocsf/schemas/v1_7_0.json > tests/sinks/ocsf_1.7.0_subset.json
"""
import json
import sys

s = json.load(open(sys.argv[1]))
dic = s["dictionary"]["attributes"]
types = s["dictionary"]["types"]["attributes"]


def merged(table, name):
    item = table[name]
    attrs = {}
    if item.get("extends") and item["extends"] in table:
        attrs.update(merged(table, item["extends"]))
    for k, v in item.get("attributes", {}).items():
        if k.startswith("$"):
            continue
        old = attrs.get(k, {})
        new = {**old, **v}
        if "enum" in old and "enum" in v:
            # A class narrows or extends its parent's enum: keep both (0 Unknown and 99 Other come from the base).
            new["enum"] = {**old["enum"], **v["enum"]}
        attrs[k] = new
    return attrs


def describe(attrs):
    out = {}
    for k, v in attrs.items():
        d = {**dic.get(k, {}), **v}
        if "enum" in dic.get(k, {}) and "enum" in v:
            d["enum"] = {**dic[k]["enum"], **v["enum"]}
        t = d.get("type", "string_t")
        e = {"requirement": d.get("requirement", "optional"), "type": t if t in types else "object_t"}
        if t not in types:
            e["object_type"] = t
        if k in ("category_uid", "class_uid", "type_uid"):
            # Placeholders in the uncompiled schema; the test checks the compiled values itself.
            d.pop("enum", None)
        if d.get("is_array"):
            e["is_array"] = True
        if d.get("enum"):
            keys = list(d["enum"].keys())
            e["enum"] = sorted((int(x) for x in keys if x.lstrip("-").isdigit())) + sorted(x for x in keys if not x.lstrip("-").isdigit())
        out[k] = e
    return out


classes = {}
objects = {}
todo = []
for cname, cat in [("detection_finding", 2), ("api_activity", 6)]:
    c = s["events"][cname]
    attrs = describe(merged(s["events"], cname))
    classes[cname] = {"class_uid": cat * 1000 + c["uid"], "attributes": attrs}
    todo += [a["object_type"] for a in attrs.values() if "object_type" in a]
while todo:
    o = todo.pop()
    if o in objects or o not in s["objects"]:
        continue
    attrs = describe(merged(s["objects"], o))
    objects[o] = {"attributes": attrs}
    todo += [a["object_type"] for a in attrs.values() if "object_type" in a]
base = {k: v.get("type", k) for k, v in types.items()}
json.dump(
    {
        "source": "PyPI package pydantic-ocsf 3.0.0, ocsf/schemas/v1_7_0.json (OCSF " + s["version"] + ", Apache-2.0), "
        "reduced by tests/sinks/ocsf_subset.py",
        "version": s["version"],
        "classes": classes,
        "objects": objects,
        "types": base,
    },
    sys.stdout,
    sort_keys=True,
)
