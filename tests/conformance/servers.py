"""Python's http.server as one of the conformance servers: answers every method with "ok", logs
"<client port> <status> <request line repr>" per answered request to the file given as argv[2]."""
import http.server
import sys


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self):
        n = int(self.headers.get("Content-Length") or 0) if self.headers else 0
        if n:
            self.rfile.read(n)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_FOO = do_PUT = reply

    def log_request(self, code="-", size="-"):
        with open(sys.argv[2], "a") as f:
            f.write("%d %s %r\n" % (self.client_address[1], getattr(code, "value", code), self.requestline))


http.server.ThreadingHTTPServer(("10.217.0.2", int(sys.argv[1])), H).serve_forever()
