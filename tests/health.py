"""Node health reports as a node publishes them with its heartbeat, for tests that write them without a node."""

from __future__ import annotations

from typing import Any

from freeim.backends.contract import NodeHealth


def report(connections: int = 3, clients: int = 2, **changes: Any) -> NodeHealth:
    """A ready node's report, holding ``connections`` sockets of ``clients`` clients; with ``changes``."""
    ready = NodeHealth(ready=True, reasons=[], loop_lag_ms=1.0, draining=False, connections=connections,
                       clients=clients, started=1_700_000_000.25, version="0.1.0")
    return NodeHealth(**(ready | changes))
