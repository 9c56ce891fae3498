"""A deployment at a glance, for operators: its nodes (state, readiness, load), its chans and its events backlog.

``python manage.py freeim_status`` prints it (``--json`` for scripts) and the admin's live-ops page shows it
(:mod:`freeim.groups.admin_liveops`), both in the words of :func:`summary`, :func:`node_cells` and
:func:`group_cells`. It is read with a few cheap reads (:class:`~freeim.backends.contract.Nodes` and
:class:`~freeim.backends.contract.Presence` say which), one after the other: each figure is exact when read, the
whole is not one atomic snapshot. Readiness and loop lag are what each node reported with its last heartbeat
(:func:`freeim.node.health.report`), since they live in the node's process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .backends import Backend
from .backends.contract import EventsBacklog, GroupBacklog, NodeHealth, NodeLoad
from .messaging.operations import LATE_AFTER

T = TypeVar("T")


class NodeStatus(NamedTuple):
    name: str
    #: ``alive``; ``late`` (it missed beats: connect sends no terminal there); ``draining`` (told to stop, it moves
    #: its terminals to other nodes: connect sends none there); ``dead`` (past the heartbeat TTL: the next reaper
    #: takes its clients offline).
    state: str
    #: Whether it may be given terminals, by its last report; None without one (a dead node's expired with it).
    ready: bool | None
    #: Why it is not ready.
    reasons: list[str]
    #: Seconds since its last heartbeat; None where nodes beat none (the embedded node).
    heartbeat_age: float | None
    #: How late its loop woke, at worst, in the two seconds before its last report.
    loop_lag_ms: float | None
    #: Its sockets and their clients: in presence, or, read without the loads, by its own count in its report.
    connections: int | None
    clients: int | None
    draining: bool
    #: When it started (Unix time) and the freeim version it runs, by its report.
    started: float | None
    version: str | None


class Status(NamedTuple):
    nodes: list[NodeStatus]
    heartbeat_ttl: float | None
    online_clients: int
    chan_count: int
    #: Every chan with its member count, when asked for; None otherwise.
    chans: list[tuple[str, int]] | None
    #: None where the node sends the signals itself (the embedded mode).
    events: EventsBacklog | None


def state_of(age: float | None, ttl: float | None, draining: bool = False) -> str:
    """A node's state from the seconds since its heartbeat, as connect and the reaper see it, and its drain."""
    if age is not None and ttl is not None and age >= ttl:
        return "dead"
    if draining:
        return "draining"
    return "late" if age is not None and ttl is not None and age > ttl * LATE_AFTER else "alive"


async def read_status(backend: Backend, chans: bool = False, loads: bool = True) -> Status:
    """Read the status of ``backend``'s deployment (and its chans, one by one, with ``chans``).

    ``loads``: count each node's sockets and clients in presence (every connection, a chunk per round trip); without,
    take each node's own count from its report (one read per node, for a page that polls).
    """
    beats = await backend.nodes.heartbeats()
    reports = await backend.nodes.node_health(list(beats))
    draining = set(await backend.nodes.draining_nodes())
    counts = await backend.store.node_loads(list(beats)) if loads else {
        node: NodeLoad(report["connections"], report["clients"]) for node, report in reports.items()}
    nodes = [_node_status(node, age, backend.heartbeat_ttl, reports.get(node), counts.get(node), node in draining)
             for node, age in beats.items()]
    return Status(nodes, backend.heartbeat_ttl, await backend.store.online_count(), await backend.store.chan_count(),
                  await backend.store.chan_list() if chans else None,
                  await backend.events.backlog() if backend.events is not None else None)


def _node_status(name: str, age: float | None, ttl: float | None, report: NodeHealth | None, load: NodeLoad | None,
                 marked_draining: bool) -> NodeStatus:
    draining = marked_draining or (report is not None and report["draining"])
    return NodeStatus(name, state_of(age, ttl, draining), None if report is None else report["ready"],
                      [] if report is None else report["reasons"], age,
                      None if report is None else report["loop_lag_ms"], None if load is None else load.connections,
                      None if load is None else load.clients, draining,
                      None if report is None else report["started"], None if report is None else report["version"])


def as_json(status: Status) -> dict[str, Any]:
    """``status`` as plain JSON types: what ``freeim_status --json`` prints."""
    report: dict[str, Any] = {
        "nodes": [node._asdict() for node in status.nodes],
        "heartbeat_ttl": status.heartbeat_ttl,
        "connections": _sockets(status),
        "online_clients": status.online_clients,
        "chan_count": status.chan_count,
        "events": None if status.events is None else {
            "length": status.events.length, "groups": [group._asdict() for group in status.events.groups]},
    }
    if status.chans is not None:
        report["chans"] = [{"chan": chan, "members": members} for chan, members in status.chans]
    return report


# --- in words: the command's table and the admin's page ---------------------------------------------------------

NODE_HEADINGS = ["node", "state", "ready", "last heartbeat", "loop lag", "sockets", "clients"]
GROUP_HEADINGS = ["group", "consumers", "pending", "lag"]
NO_STREAM = "events: sent by the node itself (embedded mode), no stream"
NO_GROUP = "no consumer group yet: no freeim_events worker ever ran"


def summary(status: Status) -> str:
    return (f"{len(status.nodes)} node(s), {status.online_clients:,} client(s) online on {_sockets(status):,} "
            f"socket(s), {status.chan_count:,} chan(s)")


def node_cells(node: NodeStatus) -> list[str]:
    """``node``'s line under :data:`NODE_HEADINGS`."""
    return [node.name, node.state, _maybe(node.ready, lambda ready: "yes" if ready else "no"),
            _maybe(node.heartbeat_age, "{:.1f} s ago".format), _maybe(node.loop_lag_ms, "{:.0f} ms".format),
            _maybe(node.connections, "{:,}".format), _maybe(node.clients, "{:,}".format)]


def not_ready(node: NodeStatus) -> str:
    """Why ``node`` is not ready, in a line ("" when it is, or when it did not say)."""
    return "; ".join(node.reasons) if node.ready is False else ""


def events_line(events: EventsBacklog | None) -> str:
    return NO_STREAM if events is None else f"events stream: {events.length:,} kept"


def group_cells(group: GroupBacklog) -> list[str]:
    """``group``'s line under :data:`GROUP_HEADINGS`."""
    return [group.name, f"{group.consumers:,}", f"{group.pending:,}", "?" if group.lag is None else f"{group.lag:,}"]


def _maybe(value: T | None, shown: Callable[[T], str]) -> str:
    return "-" if value is None else shown(value)


def _sockets(status: Status) -> int:
    return sum(node.connections or 0 for node in status.nodes)
