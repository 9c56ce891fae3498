"""Presence and chans in Redis as steps that each touch one slot (:mod:`.lua.presence`, :mod:`.lua.chans`).

A change of a client runs on the client's keys first, where the truth is (its connections, its chans); the
script answers with the truth at a new version (:class:`Truth`), which is then pushed to each chan concerned and
settled, all in the next round trip. A node's own record of its connections goes in the round trip of the
client's step, before it on attach (so the reaper finds a connection of a node that died midway) and after it on
detach (a detach cut short after it leaves the client marked dirty: the reaper pushes it). Pushes carry
versions and chans keep the newest, so steps of one client that run at once, twice or late end as its newest
truth says; a client whose pushes were cut short (its caller died) stays marked dirty, and the reaper pushes its
truth again (:func:`resync_stale`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .keys import PARTITIONS, Keys, partition
from .lua.presence import CLIENT_KEYS
from .steps import Cmd, Lua, Pipe, Steps, one

#: Online/offline events each partition's stream keeps for ``freeim_events`` (roughly: ``MAXLEN ~``): 128,000 in all,
#: about as many as the one stream before partitions (100,000).
EVENTS_MAXLEN = 1_000
#: How long a client's last version is kept (ms): past it, Redis's time alone is past every version given.
VERSION_LIFE_MS = 3_600_000
#: How long a chan keeps the record of a member that left, and a client the chans it left (ms): far past any push
#: of an older version still on its way (a step's retries end within seconds).
ENDED_LIFE_MS = 600_000
#: A client marked dirty this long ago (ms) had its pushes cut short: the reaper pushes its truth again.
STALE_AFTER_MS = 30_000
#: Client partitions the reaper looks into for stale marks per run; each run the next ones.
PARTITIONS_PER_REPAIR = 16
#: Stale clients pushed again per partition and run.
REPAIR_CHUNK = 200


@dataclass(frozen=True)
class Truth:
    """A client at one version: its nodes and chans (``live``), and the chans it left (``ended``)."""

    client: str
    version: str
    nodes: tuple[str, ...]
    live: tuple[str, ...]
    ended: tuple[str, ...]


def truth(client: object, reply: list[Any]) -> Truth | None:
    """The truth a client script answered with, or None when it has nothing to push (:mod:`.lua.presence`)."""
    if len(reply) < 2 or not reply[1]:
        return None
    n = int(reply[2])
    m = int(reply[3 + n])
    return Truth(str(client), reply[1], tuple(reply[3:3 + n]), tuple(reply[4 + n:4 + n + m]),
                 tuple(reply[4 + n + m:]))


class Presence:
    """The steps of presence and chans under one key prefix."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def client(self, script: str, client: object, *args: Any) -> Lua:
        """Client script ``script`` on ``client``'s keys and its partition's."""
        keys = self.keys
        part = partition(client)
        return Lua(script, (*keys.client_keys(client, *CLIENT_KEYS), keys.clients(part, "online"),
                            keys.clients(part, "events"), keys.clients(part, "dirty")), args)

    def attach(self, node: str, client: object, conn: str, meta: str, max_connections: int) -> Steps[str]:
        """Take ``conn`` of ``client`` on ``node``: ``online``, ``more`` or ``full`` (then nothing is taken)."""
        node_conns, node_metas = self.keys.node(node, "conns"), self.keys.node(node, "metas")
        noted = (one("hset", node_conns, conn, str(client)), *((one("hset", node_metas, conn, meta),) if meta else ()))
        *_noted, reply = yield Pipe((*noted, self.client("attach", client, node, client, conn, meta, EVENTS_MAXLEN,
                                                         max_connections, VERSION_LIFE_MS)))
        if reply[0] == "full":
            yield Pipe(self._unrecord(node, {str(client): [conn]}))
        else:
            yield from self.push([truth(client, reply)])
        return str(reply[0])

    def detach(self, node: str, conns_by_client: dict[str, list[str]], metas: dict[str, str],
               mode: str) -> Steps[dict[str, str]]:
        """Take each client's ``conns`` off ``node``: client -> ``offline``, ``stay``, ``gone`` (none of them was the
        client's there), or ``parked`` (``mode`` ``moved``: the client is on no other node, nothing was taken off).

        A script per client and the node's record, all in one round trip (a client whose pushes are then cut short
        is marked dirty: the reaper pushes them); the pushes in the next. ``moved`` takes the node's record off
        after the answers, for the clients not parked. ``metas``: each client's meta for its offline event."""
        clients = list(conns_by_client)
        scripts = tuple(
            self.client("detach", client, node, client, metas.get(client, ""), EVENTS_MAXLEN, mode, VERSION_LIFE_MS,
                        ENDED_LIFE_MS, len(conns_by_client[client]), *conns_by_client[client])
            for client in clients)
        later = mode == "moved"
        replies = (yield Pipe(scripts if later else (*scripts, *self._unrecord(node, conns_by_client))))[:len(clients)]
        answers = {client: str(reply[0]) for client, reply in zip(clients, replies, strict=True)}
        taken = {client: conns for client, conns in conns_by_client.items() if answers[client] != "parked"}
        yield from self.push([truth(client, reply) for client, reply in zip(clients, replies, strict=True)],
                             self._unrecord(node, taken) if later else ())
        return answers

    def _unrecord(self, node: str, conns_by_client: dict[str, list[str]]) -> tuple[Cmd, ...]:
        """Take the connections off ``node``'s own record."""
        conns = [conn for conns in conns_by_client.values() for conn in conns]
        if not conns:
            return ()
        return one("hdel", self.keys.node(node, "conns"), *conns), one("hdel", self.keys.node(node, "metas"), *conns)

    def join(self, client: object, chans: list[str], max_chans: int) -> Steps[int]:
        """1 once ``client`` is in ``chans``; 0 if it is offline, -1 if that would pass ``max_chans`` (nothing
        joined)."""
        reply = yield self.client("join", client, client, max_chans, VERSION_LIFE_MS, *chans)
        yield from self.push([truth(client, reply)])
        return int(reply[0])

    def leave(self, clients: Iterable[object], chans: list[str], clearing: bool = False) -> Steps[None]:
        """Take each of ``clients`` out of ``chans`` (``clearing``: even where its chans no longer say it is in)."""
        clients = list(clients)
        replies = yield Pipe(tuple(self.client("leave", client, client, VERSION_LIFE_MS, ENDED_LIFE_MS,
                                               "1" if clearing else "0", *chans) for client in clients))
        yield from self.push([truth(client, reply) for client, reply in zip(clients, replies, strict=True)])

    def push(self, truths: list[Truth | None], also: tuple[Cmd, ...] = ()) -> Steps[None]:
        """Push each truth to its chans, then settle its client's mark, in one round trip with ``also``."""
        found = [one_truth for one_truth in truths if one_truth is not None]
        if not found and not also:
            return
        by_partition: dict[int, dict[str, list[tuple[str, str, tuple[str, ...] | None]]]] = defaultdict(dict)
        settles: dict[int, list[str]] = defaultdict(list)
        for state in found:
            for chans, nodes in ((state.live, state.nodes), (state.ended, None)):
                for chan in chans:
                    by_partition[partition(chan)].setdefault(chan, []).append((state.client, state.version, nodes))
            settles[partition(state.client)] += [state.client, state.version]
        now = int(time.time() * 1000)
        projections = [self._project(part, records, now) for part, records in by_partition.items()]
        yield Pipe((*projections, *also, *(Lua("settle", (self.keys.clients(part, "dirty"),), tuple(pairs))
                                           for part, pairs in settles.items())))

    def _project(self, part: int, records: dict[str, list[tuple[str, str, tuple[str, ...] | None]]],
                 now: int) -> Lua:
        chans = list(records)
        keys = [self.keys.chans(part)]
        args: list[Any] = [now, ENDED_LIFE_MS, len(chans), *chans]
        for number, chan in enumerate(chans, 1):
            keys += [self.keys.chan(chan, "members"), self.keys.chan(chan, "nodes"), self.keys.chan(chan, "ended")]
            for client, version, nodes in records[chan]:
                args += [number, client, version, -1 if nodes is None else len(nodes), *(nodes or ())]
        return Lua("project", tuple(keys), tuple(args))

    def resync_stale(self, first: int) -> Steps[int]:
        """Push again the truth of clients whose pushes were cut short, in :data:`PARTITIONS_PER_REPAIR` partitions
        from ``first`` on: how many."""
        parts = [(first + offset) % PARTITIONS for offset in range(PARTITIONS_PER_REPAIR)]
        edge = (time.time() * 1000 - STALE_AFTER_MS) * 1000  # versions are µs
        stale = yield Pipe(tuple(one("zrangebyscore", self.keys.clients(part, "dirty"), "-inf", edge, 0,
                                     REPAIR_CHUNK) for part in parts))
        clients = [client for found in stale for client in found]
        if clients:
            replies = yield Pipe(tuple(self.client("resync", client, client, VERSION_LIFE_MS) for client in clients))
            yield from self.push([truth(client, reply) for client, reply in zip(clients, replies, strict=True)])
        return len(clients)

    def members(self, chan: str) -> Steps[list[str]]:
        """The clients whose record in ``chan`` says they are members."""
        records = yield one("hgetall", self.keys.chan(chan, "members"))
        return [client for client, record in records.items() if "n" in json.loads(record)]
