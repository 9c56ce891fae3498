"""HTTP requests and the lifespan, straight to the suite's ASGI application (as a load balancer or Prometheus would
reach a node)."""

import contextlib
import json

from asgiref.testing import ApplicationCommunicator
from django.test import override_settings

from demo_project.cluster import RedisServer
from tests.asgi import application


@contextlib.contextmanager
def on_private_redis():
    """A one-node cluster's settings on a Redis of the test's own (which it may stop and start), beating every
    fifth of a second; the Redis is stopped after."""
    redis = RedisServer()
    redis.start()
    try:
        with override_settings(FREEIM={"REDIS_URL": redis.url, "SERVERS": ["n1:1"], "SERVER": "n1:1",
                                       "HEARTBEAT_TTL": 1}):
            yield redis
    finally:
        redis.stop()


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
