"""Liveness and readiness of this process's node, for load balancers and Kubernetes probes.

``GET <HEALTH_PATH>/live`` answers 200 while the process's event loop answers at all (a blocked loop
does not answer: the probe times out). ``GET <HEALTH_PATH>/ready`` answers 200 while the node may be given
terminals, else 503 with the reasons: not started yet, draining or stopping, its store unreachable (no heartbeat got
through for half of ``HEARTBEAT_TTL``, when connect/ stops sending terminals there anyway), or its loop
lagging (a sleep woke more than ``HEALTH_MAX_LOOP_LAG`` late in the last two seconds). Both are answered
by :func:`freeim.asgi.wrap` before the request reaches Django, on every node.

The node also publishes these facts with each heartbeat (:func:`report`), so ``freeim_status`` and the admin's
live-ops page, in other processes, show every node's readiness.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..backends.contract import NodeHealth
from ..conf import conf

if TYPE_CHECKING:
    from .runtime import Node

#: Seconds between two looks at the loop's lateness, and how many of them readiness weighs (two seconds).
LAG_SAMPLE = 0.25
LAG_WINDOW = 8


class LoopLag:
    """How late the node's loop wakes a task that sleeps :data:`LAG_SAMPLE` seconds, over the last samples."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=LAG_WINDOW)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_SAMPLE)
            self.samples.append(max(0.0, loop.time() - asked - LAG_SAMPLE))

    @property
    def recent(self) -> float:
        """The worst lateness of the window, in seconds."""
        return max(self.samples, default=0.0)


def readiness(node: Node | None, published: bool = False) -> dict[str, Any]:
    """``{"ready", "reasons", ...}`` for ``node`` (None: no node started in this process).

    ``published``: for a report that goes to the store, which the store's absence cannot be a reason of (if it
    arrives, the store answered).
    """
    if node is None:
        return {"ready": False, "reasons": ["the node has not started"]}
    reasons = []
    if node.draining:
        reasons.append("the node is draining")
    elif node.stopping:
        reasons.append("the node is stopping")
    age = node.heartbeat_age()
    if not published and age is not None and node.backend.heartbeat_ttl and age > node.backend.heartbeat_ttl / 2:
        reasons.append(f"no heartbeat reached the store for {age:.1f} s")
    if node.lag.recent > conf.HEALTH_MAX_LOOP_LAG:
        reasons.append(f"the loop lags {node.lag.recent * 1000:.0f} ms")
    return {"ready": not reasons, "reasons": reasons, "node": node.name, "connections": node.registry.connection_count,
            "clients": node.client_count(), "loop_lag_ms": round(node.lag.recent * 1000, 1),
            "heartbeat_age": None if age is None else round(age, 2), "draining": node.draining}


def report(node: Node) -> NodeHealth:
    """What ``node`` publishes of its readiness with each heartbeat (:meth:`.Nodes.heartbeat`)."""
    facts = readiness(node, published=True)
    return NodeHealth(ready=facts["ready"], reasons=facts["reasons"], loop_lag_ms=facts["loop_lag_ms"],
                      draining=facts["draining"], connections=facts["connections"], clients=facts["clients"],
                      started=node.started, version=__version__)


def probe_for(scope: dict[str, Any]) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]] | None:
    """The ASGI application answering ``scope`` if it is an HTTP request for a probe (:func:`answer`) or, with
    prometheus-client installed, a scrape of ``METRICS_PATH`` (:mod:`freeim.metrics`); else None."""
    if scope["type"] != "http":
        return None
    path, base = scope["path"], conf.HEALTH_PATH
    if base and path in (f"{base}/live", f"{base}/ready"):
        handler = answer
    elif path == conf.METRICS_PATH and _METRICS:
        from .. import metrics

        handler = metrics.answer
    else:
        return None
    return handler if scope["method"] in ("GET", "HEAD") else not_allowed


#: Whether prometheus-client is installed (the ``metrics`` extra).
_METRICS = find_spec("prometheus_client") is not None


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer a probe (a GET or HEAD of :func:`probe_for`) as an ASGI HTTP application."""
    from .lifecycle import current_node

    body: dict[str, Any]
    if scope["path"].endswith("/live"):
        status, body = 200, {"live": True}
    else:
        body = readiness(current_node())
        status = 200 if body["ready"] else 503
    await respond(scope, send, status, json.dumps(body).encode(), "application/json")


async def not_allowed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """405 to a probe or a scrape by another method than GET or HEAD."""
    await respond(scope, send, 405, b'{"detail": "Probes answer GET and HEAD."}', "application/json",
                  [(b"allow", b"GET, HEAD")])


async def respond(scope: dict[str, Any], send: Any, status: int, body: bytes, content_type: str,
                  headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer an ASGI HTTP request with ``body`` (none to a HEAD), never cached: a probe's or a scrape's."""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
