"""A WSGI app served by gunicorn (PyPI) as a conformance server: answers every request "ok" and logs
"<client port> 200 <method>" per request it was handed to the file named by $CONFORMANCE_LOG. What gunicorn
refuses before the app (a 400 to a line it cannot parse) is in the wire's status lines, not in this log."""
import os


def app(environ, start_response):
    environ["wsgi.input"].read()
    with open(os.environ["CONFORMANCE_LOG"], "a") as f:
        f.write("%s 200 %r\n" % (environ.get("REMOTE_PORT"), environ.get("REQUEST_METHOD")))
    body = b"ok\n"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
