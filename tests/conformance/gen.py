"""Sends every case of cases.py to each server on its own connection, from a fixed client port (server base +
case index) so that the capture, the access logs and mirador's output can be joined per case. Writes one JSON
line per (server, case): the client port and the status codes of every status line the server sent back."""
import errno
import json
import re
import socket
import sys
import time

from cases import CASES, DIVERGENCES

SERVERS = [
    ("nginx", 8081, 41000),
    ("python", 8082, 42000),
    ("node", 8083, 43000),
    ("gunicorn", 8084, 44000),
    ("uvicorn", 8085, 45000),
]
STATUS = re.compile(rb"(?:^|\n)HTTP/1\.[01] (\d{3})")


def bound(sport):
    """A socket bound to the case's client port. The port can still be held for a while by an earlier
    connection on it (a run before this one, closing): wait for it rather than fail the capture (a CI run
    did, once, with EADDRINUSE)."""
    for attempt in range(60):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("10.217.0.1", sport))
            return s
        except OSError as e:
            s.close()
            if e.errno != errno.EADDRINUSE or attempt == 59:
                raise
            if attempt == 0:
                print(f"gen.py: client port {sport} is still in use; waiting for it", file=sys.stderr)
            time.sleep(0.5)


def run(port, sport, chunks):
    s = bound(sport)
    s.settimeout(1.0)
    s.connect(("10.217.0.2", port))
    got = b""
    for i, c in enumerate(chunks):
        if i:
            time.sleep(0.3)
        try:
            s.sendall(c)
        except OSError:
            break
    closed = False
    for half_close in (False, True):
        if half_close:
            # Some servers answer only once they see the end of the request stream (node's 400 to a request
            # cut short): that answer is on the wire too.
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                break
        while not closed:
            try:
                b = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not b:
                closed = True
            got += b
        if closed:
            break
    s.close()
    return got


out = open(sys.argv[1], "w")
for server, port, base in SERVERS:
    for i, (name, chunks, flags) in enumerate(CASES):
        got = run(port, base + i, chunks)
        codes = [int(m) for m in STATUS.findall(got)]
        out.write(json.dumps({"server": server, "case": name, "client_port": base + i, "status_lines": codes,
                              "flags": flags,
                              "divergence": DIVERGENCES.get((server, name))}) + "\n")
        time.sleep(0.05)
