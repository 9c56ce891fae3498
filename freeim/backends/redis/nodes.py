"""Node liveness in Redis (:class:`~freeim.backends.contract.Nodes`): registrations kept by
heartbeats, each node's health report, and the reaper that takes a dead node's connections off (one reaper at a
time)."""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from collections.abc import Collection
from time import perf_counter

from ... import ids, measures
from ...ids import ClientId
from ...logs import fields
from ..contract import NodeHealth
from .client import Performer, performed
from .keys import PARTITIONS, Keys
from .lineage import Lineage
from .pools import MASTER_CHECK
from .presence import PARTITIONS_PER_REPAIR, Presence
from .steps import Cmd, Everywhere, Lua, Pipe, Steps, one

logger = logging.getLogger("freeim.redis")
#: Connections of a dead node taken off per round trip.
DROP_CHUNK = 500


def nodes_by_age(keys: Keys, which: str, within_ms: int) -> Lua:
    """The step that reads the nodes that beat within ``within_ms`` (``which``: ``alive``, ``accepting``: alive and
    not draining; or ``dead``)."""
    return Lua("nodes_by_age", (keys.shared("nodes"), keys.shared("draining")), (within_ms, which))


class RedisNodes:
    """Registrations of the nodes sharing one Redis, each alive for ``heartbeat_ttl`` after its last beat."""

    def __init__(self, keys: Keys, performer: Performer, heartbeat_ttl: float) -> None:
        self.keys = keys
        self.performer = performer
        self.ttl_ms = int(heartbeat_ttl * 1000)
        self.lineage = Lineage(MASTER_CHECK)
        self.presence = Presence(keys)
        #: The client partition the reaper's next look for cut-short pushes starts at: a different one in each
        #: process, so that nodes look into different partitions at once.
        self._repair_from = random.randrange(PARTITIONS)

    def _beat(self, node: str, boot: str, mode: str) -> Lua:
        return Lua("heartbeat", (self.keys.node(node, "alive"),), (boot, self.ttl_ms, mode))

    def _mark_beat(self, node: str) -> Lua:
        return Lua("mark_beat", (self.keys.shared("nodes"),), (node,))

    def _nodes_by_age(self, which: str, within_ms: int | None = None) -> Lua:
        return nodes_by_age(self.keys, which, within_ms or self.ttl_ms)

    def _reaper_lock(self, me: str, ttl_ms: int, action: str) -> Lua:
        return Lua("lock", (self.keys.shared("reaper"),), (me, ttl_ms, action))

    @performed
    def register_node(self, node: str, boot: str) -> Steps[None]:
        yield Pipe((self._beat(node, boot, "register"), self._mark_beat(node)))

    def _report(self, node: str, health: NodeHealth) -> Cmd:
        """Write ``node``'s health report, kept for a heartbeat TTL: a dead node's goes before the node is reaped."""
        return one("set", self.keys.node(node, "health"), json.dumps(health), None, self.ttl_ms)

    @performed
    def heartbeat(self, node: str, boot: str, health: NodeHealth | None = None) -> Steps[bool]:
        """False too once Redis is another data set than the node wrote its presence to (:mod:`.lineage`)."""
        # The beat is marked in the registry even when it finds the registration lost: the node registers again at
        # once, and a node that dies before that leaves an entry that ages, as any dead node's.
        report = () if health is None else (self._report(node, health),)
        beaten, *_ = yield Pipe((self._beat(node, boot, "beat"), self._mark_beat(node), *report))
        replications = yield Everywhere(one("info", "replication"))
        replids = {replication["master_replid"] for replication in replications if replication}
        return self.lineage.unchanged(node, replids) and bool(beaten)

    @performed
    def publish_health(self, node: str, health: NodeHealth) -> Steps[None]:
        yield self._report(node, health)

    @performed
    def node_health(self, nodes: list[str]) -> Steps[dict[str, NodeHealth]]:
        if not nodes:
            return {}
        reports = yield Pipe(tuple(one("get", self.keys.node(node, "health")) for node in nodes))
        return {node: json.loads(report) for node, report in zip(nodes, reports, strict=True) if report is not None}

    @performed
    def alive_nodes(self, within: float | None = None, accepting: bool = False) -> Steps[list[str]]:
        which = "accepting" if accepting else "alive"
        return sorted((yield self._nodes_by_age(which, None if within is None else int(within * 1000))))

    @performed
    def set_draining(self, node: str, draining: bool) -> Steps[None]:
        yield one("sadd" if draining else "srem", self.keys.shared("draining"), node)

    @performed
    def draining_nodes(self) -> Steps[list[str]]:
        return sorted((yield one("smembers", self.keys.shared("draining"))))

    @performed
    def release_moved(self, node: str) -> Steps[int]:
        kept, cursor = 0, 0
        while True:  # what is released is behind the cursor, what is kept too: one pass sees each connection once
            cursor, entries = yield one("hscan", self.keys.node(node, "conns"), cursor, None, DROP_CHUNK)
            by_client: dict[str, list[str]] = defaultdict(list)
            for conn, client in entries.items():
                by_client[client].append(conn)
            results = (yield from self.presence.detach(node, by_client, {}, "moved")) if by_client else {}
            kept += sum(len(by_client[client]) for client, result in results.items() if result == "parked")
            if not cursor:
                return kept

    @performed
    def heartbeats(self) -> Steps[dict[str, float | None]]:
        return dict((yield from self._ages()))

    def _ages(self) -> Steps[dict[str, float]]:
        """Seconds since each node's last heartbeat."""
        beats, (seconds, microseconds) = yield Pipe((one("zrange", self.keys.shared("nodes"), 0, -1, False, True),
                                                    one("time")))
        now_ms = seconds * 1000 + microseconds // 1000  # Redis's clock, which wrote the beats
        return {node: max(0.0, (now_ms - at_ms) / 1000) for node, at_ms in sorted(beats)}

    @performed
    def reap(self, me: str) -> Steps[list[str]]:
        """First pushes again the truth of clients whose chans were left behind, in some partitions a run
        (:func:`.presence.resync_stale`, safe to run on several nodes at once: without the lock, which a node that
        dies holding it keeps from the others for a while)."""
        yield from self.presence.resync_stale(self._repair_from)
        self._repair_from += PARTITIONS_PER_REPAIR
        dead = yield self._nodes_by_age("dead")
        if not dead or not (yield self._reaper_lock(me, self.ttl_ms * 3, "take")):
            measures.REAPER_RUNS.inc("lock_held" if dead else "nothing_dead")
            return []
        try:
            ages = yield from self._ages()  # for the time from each one's last beat to its clients offline
            started = perf_counter()
            reaped = []
            for node in dead:
                gone = yield from self._drop(node, force=False)
                if gone is not None:
                    reaped.append(node)
                    measures.REAPED_NODES.inc()
                    measures.TIME_TO_OFFLINE.observe(ages.get(node, 0.0) + perf_counter() - started)
                    logger.warning("freeim: node %s is dead; %d of its clients went offline", node, len(gone),
                                   extra=fields("reap", node, clients=len(gone)))
            measures.REAPER_RUNS.inc("reaped")
            return reaped
        finally:
            yield self._reaper_lock(me, 0, "give")

    @performed
    def drop_node(self, node: str, force: bool = True, keep: Collection[str] = ()) -> Steps[list[ClientId]]:
        return (yield from self._drop(node, force, frozenset(keep))) or []

    def _drop(self, node: str, force: bool, keep: frozenset[str] = frozenset()) -> Steps[list[ClientId] | None]:
        """Take ``node``'s connections off (but those in ``keep``), a chunk of them a round; None if it came back
        alive."""
        gone: list[ClientId] = []
        cursor = -1
        while cursor:  # HSCAN answers cursor 0 once it went through the whole hash
            reply_cursor, found = yield one("hscan", self.keys.node(node, "conns"), max(cursor, 0), None, DROP_CHUNK)
            cursor = int(reply_cursor)
            entries = {conn: client for conn, client in found.items() if conn not in keep}
            if not entries:
                continue
            by_client: dict[str, list[str]] = defaultdict(list)
            for conn, client in entries.items():
                by_client[client].append(conn)
            conns = list(entries)
            alive, known = yield Pipe((one("exists", self.keys.node(node, "alive")),
                                       one("hmget", self.keys.node(node, "metas"), conns)))
            if alive and not force:  # it came back: it writes its presence again itself
                return None
            metas = {entries[conn]: meta for conn, meta in zip(conns, known, strict=True) if meta}
            results = yield from self.presence.detach(node, by_client, metas, "own")
            gone += [ids.client_id(c) for c, result in results.items() if result == "offline"]
        node_keys = (self.keys.node(node, "conns"), self.keys.node(node, "alive"), *self.keys.inbox(node))
        forgotten = yield Lua("forget_node", node_keys, ("1" if force else "0",))
        if forgotten:  # then off the registry: cut short between the two, the entry ages and is reaped again
            yield Pipe((one("zrem", self.keys.shared("nodes"), node), one("srem", self.keys.shared("draining"), node)))
        return gone if forgotten or force else None
