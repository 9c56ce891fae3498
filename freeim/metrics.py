"""Prometheus metrics of this process (the ``metrics`` extra: prometheus-client), answered at ``METRICS_PATH`` on
every node (without prometheus-client the path is the project's), by :func:`view` where a business project
mounts it, and by :func:`serve` on a port of its own.

A node's own are read at scrape time from what the node holds and from its tally
(:mod:`freeim.node.tally`): nothing is counted on the way of a frame. What every process measures
(:mod:`freeim.measures`) and prometheus-client's own process and GC collectors come with them.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import measures  # noqa: F401  (its measures register themselves: served wherever this is)
from .conf import conf
from .node.health import readiness, respond
from .node.lifecycle import current_node
from .node.tally import TALLY

if TYPE_CHECKING:
    from .node.runtime import Node


class NodeCollector(Collector):
    """``freeim_*`` metrics of the node running on this loop (none before it starts)."""

    def collect(self) -> Iterator[Metric]:
        if not conf.IS_NODE:
            return  # a business process: no node, so nothing a node counts
        yield counter("freeim_handshakes", "WebSocket handshakes accepted.", [([], TALLY.handshakes)])
        yield counter("freeim_handshakes_refused", "Handshakes refused (HTTP 403), by why.",
                      [([kind], count) for kind, count in sorted(TALLY.refusals.items())], ["reason"])
        yield counter("freeim_closes", "Sockets the node closed, by close code (4000 forced offline, 4002 slow "
                      "consumer, ...).", [([str(code)], count) for code, count in sorted(TALLY.closes.items())],
                      ["code"])
        yield counter("freeim_payloads", "Payloads applied by the node, by operation (send, chan, broadcast, ...).",
                      [([op], count) for op, count in sorted(TALLY.payloads.items())], ["op"])
        node = _node_on_this_loop()
        if node is None:
            return
        state = readiness(node)
        labels = ["node"]
        for name, text, value in [
                ("freeim_node_ready", "1 while the node answers ready (see its /ready probe).", int(state["ready"])),
                ("freeim_node_connections", "Open WebSockets.", node.registry.connection_count),
                ("freeim_node_clients", "Clients with a socket on this node.", node.client_count()),
                ("freeim_node_backlog_bytes", "Bytes queued for sockets, not yet written.",
                 sum(connection.backlog_bytes for connection in node.registry.connections())),
                ("freeim_node_loop_lag_seconds", "Worst lateness of the event loop over the last two seconds.",
                 node.lag.recent)]:
            yield gauge(name, text, [([node.name], value)], labels)
        age = node.heartbeat_age()  # None in the embedded mode: the family without a sample
        yield gauge("freeim_node_heartbeat_age_seconds", "Seconds since a heartbeat last reached the store.",
                    [] if age is None else [([node.name], age)], labels)


def _node_on_this_loop() -> Node | None:
    """The node, for a scrape on its loop (at ``METRICS_PATH``); None for one from another thread (:func:`serve`'s,
    a view under WSGI), where no loop runs."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return current_node()


def counter(name: str, text: str, samples: list[tuple[list[str], float]], labels: list[str] | None = None) -> Metric:
    family = CounterMetricFamily(name, text, labels=labels or [])
    for values, value in samples:
        family.add_metric(values, value)
    return family


def gauge(name: str, text: str, samples: list[tuple[list[str], float]], labels: list[str]) -> Metric:
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


REGISTRY.register(NodeCollector())


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer a scrape as an ASGI HTTP application."""
    await respond(scope, send, 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)


def registry() -> CollectorRegistry:
    """What a business process serves: the default registry, or in prometheus-client's multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set, for a web server's worker processes) every process's histograms and
    counters summed (per-process collectors, GC pauses among them, are not in that mode)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed)  # type: ignore[no-untyped-call]
    return summed


@require_safe
def view(request: HttpRequest) -> HttpResponse:
    """This process's metrics, to a scrape that sends ``Authorization: Bearer <METRICS_TOKEN>`` (401 without it);
    404 to everyone while ``METRICS_TOKEN`` is not set. For a business project's urls.py: a node answers at
    ``METRICS_PATH`` anyway."""
    token = conf.METRICS_TOKEN
    if token is None:
        raise Http404("No METRICS_TOKEN: the metrics view is off.")
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})


def serve(port: int, address: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Serve this process's metrics over HTTP at ``address:port`` from a thread of its own (prometheus-client's
    server; its ``shutdown()`` stops it), for a process that answers no HTTP: a Celery worker,
    ``freeim_events --metrics-port``. On the loopback address unless asked otherwise (prometheus-client's
    own default is every address): anyone who reaches the port reads them."""
    return _start_http_server(port, address, registry=registry())
