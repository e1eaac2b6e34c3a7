#!/usr/bin/env python3
"""Labelled traffic for the sensitive-data analyzer: planted values of every type and decoys that look
alike but fail validation, as (1) an nginx docroot and config (the server: nginx serves the planted
records as static JSON/text files and answers form, JSON, multipart and query submissions), (2) a
request plan for the client, (3) the labels.

Every exchange n uses paths under /t/<n>/, so a finding is matched to its label by
(n from the finding's path, location, field, type). Usage: plant.py OUTDIR [--seed N]
"""

import base64
import json
import os
import random
import sys

R = random.Random(int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 7)
LABELS = []
PLAN = []  # (n, method, path, headers, body, content_type)
FILES = {}  # docroot relative path -> (bytes, content type)
LOCATIONS = []  # extra nginx locations (exact path, add_header lines)


def label(n, location, field, typ, kind="planted"):
    LABELS.append({"n": n, "location": location, "field": field, "type": typ, "kind": kind})


# ---------------------------------------------------------------------------------------------------
# Value generators (valid) and their decoys (same shape, fail validation).

def digits(k):
    return "".join(R.choice("0123456789") for _ in range(k))


def luhn_check(body):
    s = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return str((10 - s % 10) % 10)


def card(fmt=None):
    kind = R.choice(["visa", "mc", "amex", "disc"])
    if kind == "visa":
        body = "4" + digits(14)
    elif kind == "mc":
        body = str(R.randint(51, 55)) + digits(13)
    elif kind == "amex":
        body = R.choice(["34", "37"]) + digits(12)
    else:
        body = "6011" + digits(11)
    num = body + luhn_check(body)
    fmt = fmt or R.choice(["plain", "space", "dash"])
    if fmt == "plain" or len(num) != 16:
        return num
    sep = " " if fmt == "space" else "-"
    return sep.join(num[i:i + 4] for i in range(0, 16, 4))


def card_decoy():
    c = card("space")
    last = c[-1]
    return c[:-1] + str((int(last) + 1) % 10)


def ssn():
    while True:
        a = R.randint(1, 899)
        if a == 666:
            continue
        v = "%03d-%02d-%04d" % (a, R.randint(1, 99), R.randint(1, 9999))
        if v not in ("078-05-1120", "219-09-9999", "123-45-6789", "111-11-1111", "333-33-3333", "555-55-5555"):
            return v


def ssn_decoy():
    return R.choice([
        "000-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)),
        "666-%02d-%04d" % (R.randint(1, 99), R.randint(1, 9999)),
        "9%02d-%02d-%04d" % (R.randint(0, 99), R.randint(1, 99), R.randint(1, 9999)),
        "078-05-1120",
        "219-09-9999",
        "%03d-00-%04d" % (R.randint(1, 599), R.randint(1, 9999)),
    ])


def iban_check(cc, bban):
    s = bban + cc + "00"
    num = "".join(str(int(ch, 36)) for ch in s)
    return "%02d" % (98 - int(num) % 97)


def iban(bad=False):
    cc, bban = R.choice([
        ("DE", digits(18)),
        ("GB", "WEST" + digits(14)),
        ("FR", digits(20) + R.choice("ABCDEFGHJK") + digits(2)),
        ("NL", "ABNA" + digits(10)),
        ("ES", digits(20)),
    ])
    chk = iban_check(cc, bban)
    if bad:
        chk = "%02d" % ((int(chk) + 1 + R.randint(0, 50)) % 97 + 2)
        if chk == iban_check(cc, bban):
            chk = "%02d" % ((int(chk) + 1) % 97 + 2)
    return cc + chk + bban


def nino(bad=False):
    ok_first = "ABCEGHJKLMNOPRSTWXYZ"
    ok_second = "ABCEGHJKLMNPRSTWXYZ"
    while True:
        p = R.choice(ok_first) + R.choice(ok_second)
        if p not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    if bad:
        return R.choice(["D", "F", "Q"]) + R.choice(ok_second) + digits(6) + R.choice("ABCD")
    return p + digits(6) + R.choice("ABCD")


def dni(bad=False):
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    n = R.randint(10000000, 99999999)
    good = letters[n % 23]
    if bad:
        good = letters[(n + 1 + R.randint(0, 20)) % 23]
    return "%08d%s" % (n, good)


VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
      [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
      [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
      [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
      [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
      [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 8, 5]]
VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_digit(num):
    c = 0
    for i, ch in enumerate(reversed(num)):
        c = VD[c][VP[(i + 1) % 8][int(ch)]]
    return str(VINV[c])


def aadhaar(bad=False, spaced=False):
    body = str(R.randint(2, 9)) + digits(10)
    d = verhoeff_digit(body)
    if bad:
        d = str((int(d) + 1 + R.randint(0, 8)) % 10)
    v = body + d
    return " ".join([v[:4], v[4:8], v[8:]]) if spaced else v


FIRST = ["ana", "bo", "chen", "dara", "eli", "femi", "gus", "hana", "ivo", "jun", "kai", "lea", "mo", "nia"]
LAST = ["berg", "costa", "dubois", "evans", "fischer", "garcia", "haas", "ito", "jones", "kowalski", "lindqvist"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]


def email():
    return "%s.%s%d@%s" % (R.choice(FIRST), R.choice(LAST), R.randint(1, 999), R.choice(DOMAINS))


def phone_e164():
    return R.choice([
        "+1 %03d %03d %04d" % (R.randint(201, 989), R.randint(200, 999), R.randint(0, 9999)),
        "+44 20 %04d %04d" % (R.randint(1000, 9999), R.randint(0, 9999)),
        "+49 30 %07d" % R.randint(1000000, 9999999),
        "+33 1 %02d %02d %02d %02d" % tuple(R.randint(10, 99) for _ in range(4)),
        "+91 %05d %05d" % (R.randint(70000, 99999), R.randint(0, 99999)),
    ])


def phone_national():
    return "(%03d) %03d-%04d" % (R.randint(201, 989), R.randint(200, 999), R.randint(0, 9999))


def dob():
    y, m, d = R.randint(1940, 2006), R.randint(1, 12), R.randint(1, 28)
    return R.choice(["%04d-%02d-%02d" % (y, m, d), "%02d/%02d/%04d" % (d, m, y)])


def public_ip():
    while True:
        a = R.randint(11, 223)
        if a not in (127, 169, 172, 192, 10):
            return "%d.%d.%d.%d" % (a, R.randint(0, 255), R.randint(0, 255), R.randint(1, 254))


def ipv6():
    return "2001:db8:%x:%x::%x" % (R.randint(1, 0xffff), R.randint(1, 0xffff), R.randint(1, 0xffff))


STREETS = ["Baker Street", "Main St", "Oak Avenue", "Rue de Rivoli", "Elm Road", "Station Road"]


def street():
    if R.random() < 0.5:
        return "%d %s" % (R.randint(1, 9999), R.choice(STREETS))
    return "%s %d" % (R.choice(["Hauptstrasse", "Calle Mayor", "Via Roma", "Kungsgatan"]), R.randint(1, 200))


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claim_email):
    h = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k%d" % R.randint(1, 9)}).encode())
    p = b64url(json.dumps({"sub": str(R.randint(1000, 99999)), "email": claim_email, "iat": 1767225600,
                           "exp": 1767229200, "scope": "read"}).encode())
    s = b64url(bytes(R.randint(0, 255) for _ in range(64)))
    return "%s.%s.%s" % (h, p, s)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def rand(k, alphabet=ALNUM):
    return "".join(R.choice(alphabet) for _ in range(k))


def mixed(k, alphabet=ALNUM):
    while True:
        v = rand(k, alphabet)
        if any(c.islower() for c in v) and any(c.isupper() for c in v) and sum(c.isdigit() for c in v) >= 2:
            return v


def aws_id():
    return R.choice(["AKIA", "ASIA"]) + rand(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def aws_secret():
    return mixed(40, ALNUM + "/+")


def pem():
    return "-----BEGIN %sPRIVATE KEY-----\n%s\n%s\n-----END PRIVATE KEY-----" % (
        R.choice(["RSA ", "EC ", ""]), rand(64, ALNUM + "+/"), rand(64, ALNUM + "+/"))


# ---------------------------------------------------------------------------------------------------
# Exchanges.

def record_fields():
    """(key, value, type or None, decoy flag) for one JSON record with a few plants and many decoys."""
    out = []
    plants = [
        ("email", email, "email"),
        ("contact_email", email, "email"),
        ("phone", phone_e164, "phone"),
        ("mobilePhone", phone_national, "phone"),
        ("card_number", card, "credit_card"),
        ("ssn", ssn, "us_ssn"),
        ("iban", iban, "iban"),
        ("nino", nino, "uk_nino"),
        ("dni", dni, "es_dni"),
        ("aadhaar", aadhaar, "in_aadhaar"),
        ("date_of_birth", dob, "date_of_birth"),
        ("birthDate", dob, "date_of_birth"),
        ("passport_number", lambda: R.choice("XYZCP") + "%08d" % R.randint(0, 99999999), "passport_number"),
        ("driverLicenseNumber", lambda: "D%03d-%04d-%04d" % (R.randint(0, 999), R.randint(0, 9999), R.randint(0, 9999)),
         "driver_licence"),
        ("client_ip", public_ip, "ip_address"),
        ("last_login_ipv6", ipv6, "ip_address"),
        ("address_line1", street, "street_address"),
        ("aws_access_key_id", aws_id, "aws_access_key_id"),
        ("aws_secret_access_key", aws_secret, "aws_secret_access_key"),
        ("maps_key", lambda: "AIza" + rand(35, ALNUM + "_-"), "gcp_api_key"),
        ("ci_token", lambda: "ghp_" + rand(36), "github_token"),
        ("gitlab", lambda: "glpat-" + rand(20), "gitlab_token"),
        ("slack_hook_token", lambda: "xoxb-%d-%d-%s" % (R.randint(10**10, 10**11), R.randint(10**10, 10**11), rand(24)),
         "slack_token"),
        ("billing_key", lambda: "sk_live_" + rand(24), "stripe_key"),
        ("tls_key_pem", pem, "private_key"),
        ("client_secret", lambda: mixed(32), "api_key"),
        ("password", lambda: rand(10, ALNUM + "!#%&") + "1aA", "password"),
        ("diagnosis_code", lambda: R.choice(["E11.9", "J45.909", "I10", "F32.1", "C50.911"]), "diagnosis_code"),
    ]
    decoys = [
        ("card_number_test", card_decoy),
        ("payment_card", card_decoy),
        ("ssn_example", ssn_decoy),
        ("beneficiary_iban", lambda: iban(bad=True)),
        ("nino_check", lambda: nino(bad=True)),
        ("dni_check", lambda: dni(bad=True)),
        ("aadhaar_check", lambda: aadhaar(bad=True)),
        ("aadhaar_spaced_check", lambda: aadhaar(bad=True, spaced=True)),
        ("order_number", lambda: "%03d%03d%04d" % (R.randint(100, 999), R.randint(100, 999), R.randint(0, 9999))),
        ("avatar", lambda: "avatar@2x.png"),
        ("sender", lambda: "root@localhost"),
        ("dob", lambda: "%04d-%02d-%02d" % (R.randint(1950, 2000), R.randint(13, 19), R.randint(32, 39))),
        ("created_at", lambda: "2025-%02d-%02dT10:%02d:00Z" % (R.randint(1, 12), R.randint(1, 28), R.randint(0, 59))),
        ("passport_country", lambda: R.choice(["DE", "FR", "GB"])),
        ("license_key", lambda: "%s-%s-%s" % (rand(4), rand(4), rand(4))),
        ("version", lambda: "%d.%d.%d.%d" % (R.randint(1, 20), R.randint(0, 9), R.randint(0, 9), R.randint(0, 99))),
        ("address_type", lambda: R.choice(["home", "billing"])),
        ("public_key_id", lambda: rand(20)),
        ("compass", lambda: R.choice(["north-north-west", "south by east"])),
        ("passwordHint", lambda: "first pet's name"),
        ("password_policy", lambda: "min 12 chars"),
        ("confirm_password", lambda: "********"),
        ("aws_key_sample", lambda: "AKIA" + rand(12, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
        ("aws_secret_access_key_placeholder", lambda: "x" * 40),
        ("gcp_hint", lambda: "AIza" + rand(12)),
        ("gh_hint", lambda: "ghp_" + rand(10)),
        ("gl_hint", lambda: "glpat-" + rand(6)),
        ("slack_hint", lambda: "xoxb-not-a-token"),
        ("stripe_test_value", lambda: "sk_test_" + rand(24)),
        ("tls_public_pem", lambda: "-----BEGIN PUBLIC KEY-----\n" + rand(64) + "\n-----END PUBLIC KEY-----"),
        ("token_type", lambda: "Bearer"),
        ("access_token", lambda: "short"),
        ("api_key_name", lambda: "production-key"),
        ("diagnosis", lambda: "see notes"),
        ("uuid", lambda: "%08x-%04x-4%03x-a%03x-%012x" % (R.getrandbits(32), R.getrandbits(16), R.getrandbits(12),
                                                          R.getrandbits(12), R.getrandbits(48))),
        ("updated_ms", lambda: 1705312800000 + R.randint(0, 10**8)),
        ("price", lambda: R.randint(1, 999) + 0.99),
        ("jwt_like", lambda: "eyJub3QiOiJqc29uIn0.eyJub3QganNvbg.c2ln"),
        ("phone_extension", lambda: "+%d" % R.randint(10, 99)),
    ]
    for k, f, t in R.sample(plants, R.randint(3, 7)):
        out.append((k, f(), t, False))
    for k, f in R.sample(decoys, R.randint(4, 9)):
        out.append((k, f(), None, True))
    R.shuffle(out)
    return out


def json_record(n, location, nest):
    fields = record_fields()
    obj = {}
    for k, v, t, decoy in fields:
        obj[k] = v
        field = ("$.customer." if nest else "$.") + k
        if decoy:
            label(n, location, field, "*", "decoy")
        else:
            label(n, location, field, t)
    body = {"id": n, "status": "active", "customer": obj} if nest else dict(obj, id=n)
    return body


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    # Response bodies: nginx serves planted records as static JSON files.
    for _ in range(140):
        n += 1
        body = json_record(n, "response.body", nest=R.random() < 0.5)
        FILES["t/%d/record.json" % n] = (json.dumps(body).encode(), "application/json")
        PLAN.append((n, "GET", "/t/%d/record.json" % n, {}, None, None))
    # Request JSON bodies, POSTed to nginx.
    for _ in range(100):
        n += 1
        body = json_record(n, "request.body", nest=R.random() < 0.5)
        PLAN.append((n, "POST", "/t/%d/submit" % n, {}, json.dumps(body).encode(), "application/json"))
    # Form bodies and query strings.
    form_plants = [("email", email, "email"), ("password", lambda: rand(12), "password"),
                   ("card_number", card, "credit_card"), ("phone", phone_e164, "phone"), ("ssn", ssn, "us_ssn")]
    form_decoys = [("card_number", card_decoy), ("passwordHint", lambda: "my dog"), ("ssn", ssn_decoy),
                   ("iban", lambda: iban(bad=True)), ("q", lambda: "wireless headphones")]
    from urllib.parse import urlencode
    for i in range(60):
        n += 1
        loc = "request.body" if i % 2 == 0 else "request.query"
        pairs = []
        for k, f, t in R.sample(form_plants, 2):
            pairs.append((k, f()))
            label(n, loc, k, t)
        for k, f in R.sample(form_decoys, 2):
            if any(k == p[0] for p in pairs):
                continue
            pairs.append((k, f()))
            label(n, loc, k, "*", "decoy")
        enc = urlencode(pairs)
        if loc == "request.body":
            PLAN.append((n, "POST", "/t/%d/submit" % n, {}, enc.encode(), "application/x-www-form-urlencoded"))
        else:
            PLAN.append((n, "GET", "/t/%d/submit?%s" % (n, enc), {}, None, None))
    # Multipart fields.
    for _ in range(20):
        n += 1
        b = "----mirador%d" % n
        parts = []
        e, c = email(), card()
        for k, v, t in [("email", e, "email"), ("card_number", c, "credit_card"), ("note", "hello", None)]:
            parts.append('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (b, k, v))
            if t:
                label(n, "request.body", k, t)
        body = ("".join(parts) + "--%s--\r\n" % b).encode()
        PLAN.append((n, "POST", "/t/%d/submit" % n, {}, body, "multipart/form-data; boundary=%s" % b))
    # Headers: Basic, Bearer (opaque and JWT with an email claim), X-Forwarded-For, cookies; decoys too.
    for i in range(80):
        n += 1
        h = {}
        kind = i % 8
        if kind == 0:
            h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (R.choice(FIRST), rand(12))).encode()).decode()
            label(n, "request.header", "authorization", "basic_auth")
        elif kind == 1:
            h["Authorization"] = "Bearer " + rand(40, ALNUM + "-._")
            label(n, "request.header", "authorization", "bearer_token")
        elif kind == 2:
            e = email()
            h["Authorization"] = "Bearer " + jwt(e)
            label(n, "request.header", "authorization", "jwt")
            label(n, "request.header", "authorization#jwt$.email", "email")
        elif kind == 3:
            h["X-Forwarded-For"] = public_ip()
            label(n, "request.header", "x-forwarded-for", "ip_address")
        elif kind == 4:
            h["Cookie"] = "sessionid=%s; theme=dark" % ("%032x" % R.getrandbits(128))
            label(n, "request.cookie", "sessionid", "session_token")
            label(n, "request.cookie", "theme", "*", "decoy")
        elif kind == 5:
            h["Authorization"] = "Basic " + base64.b64encode(b"nocolonhere").decode()
            label(n, "request.header", "authorization", "*", "decoy")
        elif kind == 6:
            h["X-Api-Key"] = "sk_live_" + rand(24)
            label(n, "request.header", "x-api-key", "stripe_key")
        else:
            h["X-Request-Id"] = "%08x-%04x-4%03x-a%03x-%012x" % (R.getrandbits(32), R.getrandbits(16),
                                                                R.getrandbits(12), R.getrandbits(12), R.getrandbits(48))
            label(n, "request.header", "x-request-id", "*", "decoy")
        PLAN.append((n, "GET", "/t/%d/record.json" % n, h, None, None))
        FILES["t/%d/record.json" % n] = (b'{"ok":true}', "application/json")
    # Path segments (emails in the path), and Set-Cookie response headers from nginx.
    for _ in range(20):
        n += 1
        e = email()
        PLAN.append((n, "GET", "/t/%d/users/%s" % (n, e), {}, None, None))
        label(n, "request.path", "segment[3]", "email")
    for _ in range(10):
        n += 1
        sid = "%032x" % R.getrandbits(128)
        LOCATIONS.append(("/t/%d/login" % n, 'add_header Set-Cookie "sid=%s; Path=/; HttpOnly";' % sid))
        PLAN.append((n, "GET", "/t/%d/login" % n, {}, None, None))
        label(n, "response.cookie", "sid", "session_token")
    # Text responses: a leaked .env and a PEM key.
    for _ in range(10):
        n += 1
        ak, sk = aws_id(), aws_secret()
        text = "APP_ENV=production\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nDEBUG=false\nBUILD=2025.01.15\n" % (ak, sk)
        FILES["t/%d/app.env" % n] = (text.encode(), "text/plain")
        PLAN.append((n, "GET", "/t/%d/app.env" % n, {}, None, None))
        label(n, "response.body", "AWS_ACCESS_KEY_ID", "aws_access_key_id")
        label(n, "response.body", "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")
        label(n, "response.body", "BUILD", "*", "decoy")

    docroot = os.path.join(out, "docroot")
    for rel, (data, _) in FILES.items():
        p = os.path.join(docroot, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    with open(os.path.join(out, "plan.json"), "w") as f:
        json.dump([{"n": a, "method": m, "path": p, "headers": h,
                    "body": base64.b64encode(b).decode() if b is not None else None, "content_type": ct}
                   for a, m, p, h, b, ct in PLAN], f)
    with open(os.path.join(out, "labels.jsonl"), "w") as f:
        for l in LABELS:
            f.write(json.dumps(l) + "\n")
    locs = "\n".join("        location = %s { %s default_type application/json; return 200 '{\"ok\":true}'; }"
                     % (p, h) for p, h in LOCATIONS)
    conf = """worker_processes 1;
pid %(out)s/nginx.pid;
error_log %(out)s/nginx-error.log;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    types { text/plain env; }
    access_log off;
    server {
        listen 10.77.0.2:8080;
        root %(out)s/docroot;
        location ~ ^/t/[0-9]+/submit$ { default_type application/json; return 200 '{"ok":true}'; }
        location ~ ^/t/[0-9]+/users/ { default_type application/json; return 200 '{"ok":true}'; }
%(locs)s
    }
}
""" % {"out": os.path.abspath(out), "locs": locs}
    with open(os.path.join(out, "nginx.conf"), "w") as f:
        f.write(conf)
    print("%d exchanges, %d labels (%d planted, %d decoys)" % (
        len(PLAN), len(LABELS), sum(l["kind"] == "planted" for l in LABELS), sum(l["kind"] == "decoy" for l in LABELS)))


if __name__ == "__main__":
    main()
