#!/usr/bin/env python3
"""A client that uses an API the way an application does, for tests/realapi/capture.sh.

Schemathesis explores a spec with generated values; real traffic looks different: a handful of resources
whose ids the client or its users chose (`website`, `backlog`, `jdoe`, `inv2024-7`, `red1`, UUIDs,
integers), created, listed, read, updated and deleted in that order, each id seen a few times. A template
learner must fold those ids into parameters and keep the resource words literal, from evidence no fuzzer
gives it.

    client.py spec SPEC BASE-URL LOG [-H 'Name: value' ...]    # any spec: fills path parameters with such ids
    client.py drf|fastapi|jsonserver|connexion BASE-URL LOG     # a scenario for one of our stateful servers

Every request and its status is appended to LOG ("METHOD PATH -> STATUS"). Stdlib only (PyYAML for a
YAML spec). Exit status 0 unless the server cannot be reached at all: error statuses are the server's
answer, and part of the traffic.
"""

import http.client
import json
import re
import sys
import uuid
from urllib.parse import quote, urlencode, urlsplit

METHOD_ORDER = ["post", "put", "get", "patch", "delete"]

# Ids as people choose them; each path parameter gets its own slice, so sibling parameters differ.
WORDS = ["website", "backlog", "jdoe", "inv2024-7", "red1", "lyon", "north-wing", "block3", "asmith",
         "sprint-12", "blue2", "mobile2", "inv2024-8", "triage", "oslo", "west-dock"]
INTS = [7, 42, 1003, 15, 256, 9001]


def stable_uuid(name):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mirador-evaluation/" + name))


class Client:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, base, log, headers=()):
        u = urlsplit(base)
        self.host, self.port, self.prefix = u.hostname, u.port or 80, u.path.rstrip("/")
        self.log = open(log, "a", encoding="utf-8")
        self.headers = dict(h.split(":", 1) for h in headers)
        self.headers = {k.strip(): v.strip() for k, v in self.headers.items()}
        self.conn = None
        self.failures = 0

    def request(self, method, path, body=None, query=None):
        target = self.prefix + path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json", "User-Agent": "mirador-evaluation-client/1", **self.headers}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.conn.request(method, target, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                self.log.write(f"{method} {target} -> {r.status}\n")
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                try:
                    return r.status, json.loads(payload) if payload else None
                except ValueError:
                    return r.status, None
            except (OSError, http.client.HTTPException) as e:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    self.log.write(f"{method} {target} -> error {e}\n")
                    self.failures += 1
        return None, None


# ---- any spec (Prism mocks) ----


def load_doc(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def resolve(doc, obj, depth=0):
    while isinstance(obj, dict) and "$ref" in obj and depth < 20:
        ref = obj["$ref"]
        if not ref.startswith("#/"):
            return {}
        obj = doc
        for part in ref[2:].split("/"):
            obj = obj.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(obj, dict) else {}
        depth += 1
    return obj if isinstance(obj, dict) else {}


def sample(doc, schema, name="", depth=0):
    """A value the schema accepts, plain rather than clever (no attempt to satisfy every pattern)."""
    s = resolve(doc, schema)
    for key in ("allOf", "oneOf", "anyOf"):
        if s.get(key):
            if key == "allOf":
                merged = {"type": "object", "properties": {}, "required": []}
                for part in s[key]:
                    p = resolve(doc, part)
                    merged["properties"].update(p.get("properties") or {})
                    merged["required"] += p.get("required") or []
                    if p.get("type") and p.get("type") != "object":
                        return sample(doc, p, name, depth + 1)
                s = merged
            else:
                return sample(doc, s[key][0], name, depth + 1)
    if "example" in s and not isinstance(s["example"], (dict, list)):
        return s["example"]
    if s.get("enum"):
        return s["enum"][0]
    if "default" in s and s["default"] is not None:
        return s["default"]
    t = s.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t == "object" or (t is None and "properties" in s):
        if depth > 4:
            return {}
        props = s.get("properties") or {}
        req = set(s.get("required") or [])
        keys = [k for k in props if k in req] or list(props)[:3]
        return {k: sample(doc, props[k], k, depth + 1) for k in keys}
    if t == "array":
        return [] if depth > 4 else [sample(doc, s.get("items") or {}, name, depth + 1)]
    if t in ("integer", "number"):
        lo, hi = s.get("minimum", 1), s.get("maximum", 1_000_000)
        return max(lo, min(hi, 3))
    if t == "boolean":
        return True
    fmt = s.get("format", "")
    if fmt == "uuid":
        return stable_uuid(name or "body")
    if fmt == "date-time":
        return "2024-05-01T10:00:00Z"
    if fmt == "date":
        return "2024-05-01"
    if fmt == "email":
        return "jdoe@example.com"
    return "website" if not s.get("maxLength") or s["maxLength"] >= 7 else "x"


def path_values(doc, param, slot):
    """Three ids for one path parameter, by its schema: integers, UUIDs, enum members or words."""
    s = resolve(doc, param.get("schema") or param)
    t, fmt = s.get("type"), s.get("format", "")
    if s.get("enum"):
        return [str(v) for v in s["enum"][:3]]
    if t in ("integer", "number"):
        lo, hi = s.get("minimum", 1), s.get("maximum", 10**9)
        return [str(max(lo, min(hi, INTS[(slot + i) % len(INTS)]))) for i in range(3)]
    if fmt == "uuid" or "uuid" in param.get("name", "").lower():
        return [stable_uuid(f"{param['name']}/{i}") for i in range(3)]
    if fmt == "date":
        return ["2024-05-01", "2024-06-30", "2025-01-15"]
    return [WORDS[(slot * 3 + i) % len(WORDS)] for i in range(3)]


def run_spec(spec_path, base, log, headers):
    doc = load_doc(spec_path)
    c = Client(base, log, headers)
    slots = {}
    ops = []
    for path, item in (doc.get("paths") or {}).items():
        item = resolve(doc, item)
        for m in METHOD_ORDER:
            if m in item:
                ops.append((path.count("/"), METHOD_ORDER.index(m), path, m, item))
    ops.sort(key=lambda o: (o[0], o[2], o[1]))
    for _, _, path, m, item in ops:
        op = item[m]
        params = [resolve(doc, p) for p in (item.get("parameters") or []) + (op.get("parameters") or [])]
        byname = {(p.get("in"), p.get("name")): p for p in params}
        names = re.findall(r"\{([^}]+)\}", path)
        values = {}
        for n in names:
            p = byname.get(("path", n), {"name": n, "schema": {"type": "string"}})
            slot = slots.setdefault(n, len(slots))
            values[n] = path_values(doc, p, slot)
        query = {p["name"]: sample(doc, p.get("schema") or {}, p["name"]) for (where, _), p in byname.items()
                 if where == "query" and p.get("required")}
        extra = {p["name"]: str(sample(doc, p.get("schema") or {}, p["name"])) for (where, _), p in byname.items()
                 if where == "header" and p.get("required")}
        body = None
        rb = resolve(doc, op.get("requestBody") or {})
        content = rb.get("content") or {}
        ctype = next((k for k in content if "json" in k), None)
        if ctype:
            body = sample(doc, content[ctype].get("schema") or {}, "body")
        # Three resources per operation: the ids a few users of the service would have touched.
        for i in range(3 if names else 1):
            concrete = path
            for n in names:
                concrete = concrete.replace("{%s}" % n, quote(values[n][i], safe=":@-._~"))
            saved = dict(c.headers)
            c.headers.update(extra)
            c.request(m.upper(), concrete, body=body, query=query or None)
            c.headers = saved
    return c


# ---- scenarios for our stateful servers ----


def run_drf(base, log):
    c = Client(base, log)
    api = "/api/v2"
    for slug, name in [("website", "Web site"), ("backlog-tools", "Backlog tools"), ("mobile2", "Mobile 2")]:
        c.request("POST", f"{api}/projects/", {"slug": slug, "name": name})
    c.request("GET", f"{api}/projects/")
    # A client that forgets DRF's slash: Django answers with a redirect to the slashed URL.
    c.request("GET", f"{api}/projects")
    for slug in ("website", "mobile2"):
        c.request("GET", f"{api}/projects/{slug}/")
    c.request("PATCH", f"{api}/projects/website/", {"name": "Public web site"})
    c.request("PUT", f"{api}/projects/mobile2/", {"slug": "mobile2", "name": "Mobile app"})
    for slug, boards in [("website", ["backlog", "sprint-12", "done"]), ("backlog-tools", ["triage"])]:
        for b in boards:
            c.request("POST", f"{api}/projects/{slug}/boards/", {"name": b, "title": b.title()})
        c.request("GET", f"{api}/projects/{slug}/boards/")
    c.request("GET", f"{api}/projects/website/boards/backlog/")
    c.request("PATCH", f"{api}/projects/website/boards/sprint-12/", {"title": "Sprint twelve"})
    c.request("PUT", f"{api}/projects/backlog-tools/boards/triage/", {"name": "triage", "title": "Triage"})
    cards = []
    for board in ("backlog", "sprint-12"):
        for title in ("Fix login page", "Write release notes"):
            st, body = c.request("POST", f"{api}/projects/website/boards/{board}/cards/", {"title": title})
            if isinstance(body, dict) and "id" in body:
                cards.append((board, body["id"]))
        c.request("GET", f"{api}/projects/website/boards/{board}/cards/")
    for board, cid in cards:
        c.request("GET", f"{api}/projects/website/boards/{board}/cards/{cid}/")
    for board, cid in cards[:2]:
        c.request("PATCH", f"{api}/projects/website/boards/{board}/cards/{cid}/", {"done": True})
    if cards:
        board, cid = cards[-1]
        c.request("PUT", f"{api}/projects/website/boards/{board}/cards/{cid}/", {"title": "Notes", "done": True})
        c.request("DELETE", f"{api}/projects/website/boards/{board}/cards/{cid}/")
    c.request("DELETE", f"{api}/projects/website/boards/done/")
    c.request("POST", f"{api}/projects/mobile2/archive/")
    for user, mail in [("jdoe", "jdoe@example.com"), ("asmith", "asmith@example.org"), ("mkowalski", "mk@example.net")]:
        c.request("POST", f"{api}/members/", {"username": user, "email": mail, "full_name": user.title()})
    c.request("GET", f"{api}/members/")
    for user in ("jdoe", "asmith", "mkowalski"):
        c.request("GET", f"{api}/members/{user}/")
    c.request("PATCH", f"{api}/members/jdoe/", {"full_name": "Jane Doe"})
    c.request("PUT", f"{api}/members/asmith/", {"username": "asmith", "email": "a.smith@example.org"})
    c.request("DELETE", f"{api}/members/mkowalski/")
    for label, color in [("red1", "red"), ("blue2", "blue"), ("green3", "green")]:
        c.request("POST", f"{api}/tags/", {"label": label, "color": color})
    c.request("GET", f"{api}/tags/")
    for label in ("red1", "blue2"):
        c.request("GET", f"{api}/tags/{label}/")
    c.request("PATCH", f"{api}/tags/green3/", {"color": "olive"})
    c.request("PUT", f"{api}/tags/blue2/", {"label": "blue2", "color": "navy"})
    c.request("DELETE", f"{api}/tags/red1/")
    for number, amount in [("inv2024-7", "120.00"), ("inv2024-8", "80.50"), ("inv2025-1", "999.99")]:
        c.request("POST", f"{api}/invoices/", {"number": number, "amount": amount})
    c.request("GET", f"{api}/invoices/")
    c.request("GET", f"{api}/invoices/summary/")
    for number in ("inv2024-7", "inv2025-1"):
        c.request("GET", f"{api}/invoices/{number}/")
    c.request("PATCH", f"{api}/invoices/inv2024-7/", {"paid": True})
    c.request("PUT", f"{api}/invoices/inv2024-8/", {"number": "inv2024-8", "amount": "81.00", "paid": True})
    c.request("DELETE", f"{api}/invoices/inv2025-1/")
    c.request("DELETE", f"{api}/projects/backlog-tools/")
    return c


def run_fastapi(base, log):
    c = Client(base, log)
    c.request("GET", "/health")
    c.request("POST", "/v1/login", {"username": "jdoe", "password": "correct horse battery"})
    for code, city in [("lyon", "Lyon"), ("oslo-2", "Oslo"), ("west-dock", "Rotterdam")]:
        c.request("POST", "/v1/warehouses", {"code": code, "city": city})
    c.request("GET", "/v1/warehouses")
    for code in ("lyon", "oslo-2", "west-dock"):
        c.request("GET", f"/v1/warehouses/{code}")
    c.request("PUT", "/v1/warehouses/oslo-2", {"city": "Oslo harbour"})
    for code, bins in [("lyon", [1, 2, 17]), ("west-dock", [5])]:
        for b in bins:
            c.request("PUT", f"/v1/warehouses/{code}/bins/{b}", {"bin_id": b, "capacity": 40 * b})
        c.request("GET", f"/v1/warehouses/{code}/bins")
    c.request("GET", "/v1/warehouses/lyon/bins/17")
    c.request("GET", "/v1/warehouses/west-dock/bins/5")
    items = [("red1", "Red paint"), ("blue2", "Blue paint"), ("block3", "Concrete block"), ("tape-50mm", "Tape")]
    for sku, name in items:
        c.request("POST", "/v1/items", {"sku": sku, "name": name, "quantity": 10})
    c.request("GET", "/v1/items")
    for sku in ("red1", "block3", "tape-50mm"):
        c.request("GET", f"/v1/items/{sku}")
    c.request("PATCH", "/v1/items/red1", {"quantity": 7})
    c.request("PATCH", "/v1/items/blue2", {"name": "Navy paint"})
    c.request("GET", "/v1/search", query={"q": "paint"})
    orders = []
    for supplier in ("Acme", "Globex"):
        st, body = c.request("POST", "/v1/purchase-orders",
                             {"supplier": supplier, "lines": [{"sku": "red1", "quantity": 3}]})
        if isinstance(body, dict) and "order_id" in body:
            orders.append(body["order_id"])
    c.request("GET", "/v1/purchase-orders")
    for o in orders:
        c.request("GET", f"/v1/purchase-orders/{o}")
        c.request("GET", f"/v1/purchase-orders/{o}/lines")
    for user in ("jdoe", "asmith"):
        c.request("PUT", f"/v1/users/{user}/preferences", {"language": "fr", "newsletter": True})
        c.request("GET", f"/v1/users/{user}/preferences")
    for user in ("jdoe", "asmith"):
        st, body = c.request("POST", "/v1/password-resets", {"username": user})
        if isinstance(body, dict) and body.get("token"):
            c.request("GET", f"/v1/password-resets/{body['token']}")
    c.request("POST", "/v1/export")
    c.request("GET", "/v1/status")
    if orders:
        c.request("DELETE", f"/v1/purchase-orders/{orders[0]}")
    c.request("DELETE", "/v1/items/block3")
    c.request("DELETE", "/v1/warehouses/west-dock")
    # A method the service does not route: the 405 is a refusal, not an operation.
    c.request("DELETE", "/v1/status")
    return c


def run_jsonserver(base, log):
    c = Client(base, log)
    # json-server keeps the ids clients give: numbers and words side by side, as in real fixtures.
    for pid, title in [(10, "Release notes"), ("website", "Site launch"), ("inv2024-7", "Invoice run"), (11, "Retro")]:
        c.request("POST", "/posts", {"id": pid, "title": title, "author": "jdoe"})
    c.request("GET", "/posts")
    c.request("GET", "/posts", query={"_page": 1, "_limit": 2})
    for pid in (10, "website", "inv2024-7"):
        c.request("GET", f"/posts/{pid}")
    c.request("PATCH", "/posts/website", {"title": "Site relaunch"})
    c.request("PUT", "/posts/11", {"title": "Retrospective", "author": "asmith"})
    for pid, body in [(10, "Looks good"), ("website", "Ship it"), ("website", "Not yet")]:
        c.request("POST", f"/posts/{pid}/comments", {"body": body})
    for pid in (10, "website"):
        c.request("GET", f"/posts/{pid}/comments")
    c.request("GET", "/comments")
    st, body = c.request("POST", "/comments", {"id": "red1", "body": "tagged", "postId": 10})
    c.request("GET", "/comments/red1")
    c.request("GET", "/comments/1")
    c.request("PATCH", "/comments/red1", {"body": "retagged"})
    c.request("PUT", "/comments/2", {"body": "edited", "postId": 2})
    c.request("DELETE", "/comments/red1")
    c.request("GET", "/profile")
    c.request("PATCH", "/profile", {"name": "jdoe"})
    c.request("PUT", "/profile", {"name": "Jane Doe"})
    c.request("GET", "/db")
    c.request("DELETE", "/posts/inv2024-7")
    c.request("DELETE", "/posts/11")
    return c


def run_connexion(base, log):
    c = Client(base, log)
    api = "/api/2.0"
    for shelf, floor in [("fiction", 1), ("science-2", 2), ("kids", 0)]:
        c.request("POST", f"{api}/shelves", {"name": shelf, "floor": floor})
    c.request("GET", f"{api}/shelves")
    for shelf in ("fiction", "science-2"):
        c.request("GET", f"{api}/shelves/{shelf}")
    books = [("fiction", "978-0-441-47812-5", "The Left Hand of Darkness", "le-guin"),
             ("fiction", "0552131059", "Mort", "pratchett"),
             ("science-2", "978-0-553-29335-7", "Foundation", "asimov")]
    for shelf, isbn, title, author in books:
        c.request("POST", f"{api}/shelves/{shelf}/books", {"isbn": isbn, "title": title, "author": author})
    for shelf in ("fiction", "science-2"):
        c.request("GET", f"{api}/shelves/{shelf}/books")
    for shelf, isbn, _, _ in books:
        c.request("GET", f"{api}/shelves/{shelf}/books/{isbn}")
    c.request("PUT", f"{api}/shelves/fiction/books/0552131059", {"isbn": "0552131059", "title": "Mort (reissue)"})
    for slug, name in [("le-guin", "Ursula K. Le Guin"), ("pratchett", "Terry Pratchett"), ("asimov", "Isaac Asimov")]:
        c.request("PUT", f"{api}/authors/{slug}", {"slug": slug, "name": name})
    for slug in ("le-guin", "asimov"):
        c.request("GET", f"{api}/authors/{slug}")
        c.request("GET", f"{api}/authors/{slug}/books.json")
    loans = []
    for shelf, isbn, _, _ in books[:2]:
        st, body = c.request("POST", f"{api}/shelves/{shelf}/books/{isbn}/loans", {"member": "jdoe"})
        if isinstance(body, dict) and body.get("loan_id"):
            loans.append(body["loan_id"])
    for loan in loans:
        c.request("GET", f"{api}/loans/{loan}")
    c.request("GET", f"{api}/search", query={"q": "found"})
    c.request("GET", f"{api}/stats")
    if loans:
        c.request("DELETE", f"{api}/loans/{loans[0]}")
    c.request("DELETE", f"{api}/shelves/science-2/books/978-0-553-29335-7")
    c.request("DELETE", f"{api}/shelves/kids")
    return c


SCENARIOS = {"drf": run_drf, "fastapi": run_fastapi, "jsonserver": run_jsonserver, "connexion": run_connexion}


def main(argv):
    headers = []
    args = []
    it = iter(argv)
    for a in it:
        if a == "-H":
            headers.append(next(it, ""))
        else:
            args.append(a)
    if len(args) == 4 and args[0] == "spec":
        c = run_spec(args[1], args[2], args[3], headers)
    elif len(args) == 3 and args[0] in SCENARIOS:
        c = SCENARIOS[args[0]](args[1], args[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0 if c.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
