"""Malformed and unusual HTTP/1.x requests for the conformance capture (see README.md).

Each case: (name, list of byte chunks sent on one connection with a short pause between them, flags mirador must
raise on that connection). Chunks are sent raw: nothing here goes through an HTTP client library.
"""

H = b"Host: t\r\n"


def ws_frame(text, mask=b"\x11\x22\x33\x44"):
    p = text.encode()
    return bytes([0x81, 0x80 | len(p)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(p))


CASES = [
    ("ok_get", [b"GET /ok HTTP/1.1\r\n" + H + b"\r\n"], []),
    ("http10", [b"GET /ok HTTP/1.0\r\n\r\n"], []),
    ("head", [b"HEAD /ok HTTP/1.1\r\n" + H + b"\r\n"], []),
    ("high_byte_method", [b"G\xc9T /ok HTTP/1.1\r\n" + H + b"\r\n"], ["invalid_method"]),
    ("missing_target", [b"GET HTTP/1.1\r\n" + H + b"\r\n"], ["missing_target"]),
    ("glued_version", [b"GETHTTP/1.1\r\n" + H + b"\r\n"], ["invalid_request_line", "missing_target"]),
    ("missing_method", [b"/ok HTTP/1.1\r\n" + H + b"\r\n"], ["missing_method"]),
    ("missing_version_headers", [b"GET /ok\r\n" + H + b"\r\n"], ["missing_version"]),
    ("unknown_method_no_version", [b"FOO /ok\r\n\r\n"], ["missing_version"]),
    ("http09", [b"GET /ok\r\n"], ["http09"]),
    ("bad_version", [b"GET /ok HTTP/1.x\r\n" + H + b"\r\n"], ["invalid_version"]),
    ("lowercase", [b"get /ok http/1.1\r\n" + H + b"\r\n"], ["invalid_method"]),
    ("space_in_target", [b"GET /o k HTTP/1.1\r\n" + H + b"\r\n"], ["invalid_request_line"]),
    ("obs_fold", [b"GET /ok HTTP/1.1\r\n" + H + b"X-A: 1\r\n  2\r\n\r\n"], ["obs_fold"]),
    ("bare_lf", [b"GET /ok HTTP/1.1\n" + b"Host: t\n\n"], ["bare_lf"]),
    ("bare_cr", [b"GET /ok HTTP/1.1\r\nHost: t\rX-B: y\r\n\r\n"], ["bare_cr"]),
    ("nul_in_header", [b"GET /ok HTTP/1.1\r\n" + H + b"X-N: a\x00b\r\n\r\n"], []),
    ("high_bytes_in_header", [b"GET /ok HTTP/1.1\r\n" + H + b"X-H: \xff\xfe\r\n\r\n"], []),
    ("dup_content_length", [b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"],
     ["dup_content_length"]),
    ("conflicting_content_length",
     [b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"],
     ["conflicting_content_length"]),
    ("cl_and_te", [b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\n"], ["cl_and_te"]),
    ("pipeline_bad_middle", [b"GET /ok HTTP/1.1\r\n" + H + b"\r\nG\xc9T /ok HTTP/1.1\r\n" + H + b"\r\n"
                             b"GET /ok HTTP/1.1\r\n" + H + b"\r\n"], ["invalid_method"]),
    ("expect_100", [b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nExpect: 100-continue\r\n\r\n", b"abc"], []),
    ("websocket", [b"GET /ws HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   ws_frame('{"email":"someone@example.com"}')], []),
    ("h2c", [b"GET /ok HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
             b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"], ["upgrade_h2c"]),
    ("connect", [b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n"], []),
]

# Where the server and mirador read the same bytes differently, and why mirador's reading stands. The test
# still checks the flags and that every status line mirador reports is on the wire.
DIVERGENCES = {
    ("python", "conflicting_content_length"):
        "python reads the first Content-Length and takes the 2 bytes left for an HTTP/0.9 request 'de'; "
        "mirador flags the conflict and does not make a request of a lone word",
    ("python", "cl_and_te"):
        "python frames by Content-Length despite Transfer-Encoding (RFC 9112 6.3: chunked wins, as mirador "
        "reads it) and answers the leftover chunk lines as an HTTP/0.9 request",
    ("nginx", "websocket"):
        "nginx refuses the upgrade (200) and answers the client's binary websocket frame as a request (400); "
        "binary bytes are not a request to mirador (nor Zeek): that 400 is counted in "
        "responses_to_invalid_requests",
    ("python", "websocket"):
        "http.server refuses the upgrade (200) and logs the client's binary websocket frame as a request",
}
