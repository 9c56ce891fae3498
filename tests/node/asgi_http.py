"""HTTP requests and the lifespan, straight to the suite's ASGI application (as a load balancer or Prometheus would
reach a node)."""

import json

from asgiref.testing import ApplicationCommunicator

from tests.asgi import application


async def probe(path, method="GET"):
    """``method`` ``path`` on the application, as a load balancer would: (status, JSON body)."""
    request = ApplicationCommunicator(application, {
        "type": "http", "method": method, "path": path, "query_string": b"", "headers": [], "http_version": "1.1",
        "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": ""})
    await request.send_input({"type": "http.request", "body": b""})
    start = await request.receive_output(2)
    body = await request.receive_output(2)
    return start["status"], json.loads(body["body"]) if body["body"].startswith(b"{") else body["body"]


async def start_node():
    lifespan = ApplicationCommunicator(application, {"type": "lifespan"})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.startup.complete"}
    return lifespan


async def stop_node(lifespan):
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.shutdown.complete"}
