"""A deployment at a glance, for operators: its nodes, what each holds, its chans and its events backlog.

``python manage.py freeim_status`` prints it (``--json`` for scripts). It is read with a few cheap reads
(:class:`~freeim.backends.contract.Nodes` and :class:`~freeim.backends.contract.Presence` say which), one
after the other: each figure is exact when read, the whole is not one atomic snapshot.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .backends import Backend
from .backends.contract import EventsBacklog
from .messaging.operations import LATE_AFTER


class NodeStatus(NamedTuple):
    name: str
    #: ``alive``; ``late`` (it missed beats: connect sends no terminal there); ``dead`` (past the heartbeat TTL:
    #: the next reaper takes its clients offline).
    state: str
    #: Seconds since its last heartbeat; None where nodes beat none (the embedded node).
    heartbeat_age: float | None
    connections: int
    clients: int


class Status(NamedTuple):
    nodes: list[NodeStatus]
    heartbeat_ttl: float | None
    online_clients: int
    chan_count: int
    #: Every chan with its member count, when asked for; None otherwise.
    chans: list[tuple[str, int]] | None
    #: None where the node sends the signals itself (the embedded mode).
    events: EventsBacklog | None


def state_of(age: float | None, ttl: float | None) -> str:
    """A node's state from the seconds since its heartbeat, as connect and the reaper see it."""
    if age is None or ttl is None:
        return "alive"
    if age >= ttl:
        return "dead"
    return "late" if age > ttl * LATE_AFTER else "alive"


async def read_status(backend: Backend, chans: bool = False) -> Status:
    """Read the status of ``backend``'s deployment (and its chans, one by one, with ``chans``)."""
    beats = await backend.nodes.heartbeats()
    loads = await backend.store.node_loads(list(beats))
    nodes = [NodeStatus(node, state_of(age, backend.heartbeat_ttl), age, *loads[node]) for node, age in beats.items()]
    return Status(nodes, backend.heartbeat_ttl, await backend.store.online_count(), await backend.store.chan_count(),
                  await backend.store.chan_list() if chans else None,
                  await backend.events.backlog() if backend.events is not None else None)


def as_json(status: Status) -> dict[str, Any]:
    """``status`` as plain JSON types: what ``freeim_status --json`` prints."""
    report: dict[str, Any] = {
        "nodes": [node._asdict() for node in status.nodes],
        "heartbeat_ttl": status.heartbeat_ttl,
        "connections": sum(node.connections for node in status.nodes),
        "online_clients": status.online_clients,
        "chan_count": status.chan_count,
        "events": None if status.events is None else {
            "length": status.events.length, "groups": [group._asdict() for group in status.events.groups]},
    }
    if status.chans is not None:
        report["chans"] = [{"chan": chan, "members": members} for chan, members in status.chans]
    return report
