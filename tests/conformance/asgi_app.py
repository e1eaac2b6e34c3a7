"""An ASGI app served by uvicorn (PyPI, its h11 protocol) as a conformance server: answers every request "ok"
and logs "<client port> 200 <method>" per request it was handed to the file named by $CONFORMANCE_LOG."""
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    with open(os.environ["CONFORMANCE_LOG"], "a") as f:
        f.write("%s 200 %r\n" % (scope["client"][1] if scope.get("client") else 0, scope["method"]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
    await send({"type": "http.response.body", "body": b"ok\n"})
