"""Online/offline events in one Redis stream per client partition, read by ``freeim_events`` workers in a
consumer group (:class:`~freeim.backends.contract.EventStream`). The attach and detach scripts append to the
stream of the client's partition, so each client's events are in order there.

The workers of a group share the partitions out: each read, a worker marks itself alive in the group's worker
set, takes the partitions that fall to it among the workers alive (every n-th, by its rank), and gives up those
that no longer do. A partition is read by the worker holding its lease (``claim_idle`` long, renewed by each
read), so one worker at a time handles a client's events, in their order; a worker that takes a partition over
first takes what its last holder read and did not ack. A worker that joins or leaves moves partitions at the
next reads; one that dies leaves its partitions to the others once its leases expire.

An event's id is ``<partition>:<stream entry id>``: entry ids are unique within one stream only.
"""

from __future__ import annotations

from collections import defaultdict

from ...exceptions import StoreUnavailable
from ..contract import EventsBacklog, GroupBacklog
from .client import Performer, performed
from .keys import PARTITIONS, Keys
from .steps import Cmd, Lua, Pipe, Steps, one

#: Events read at once, per partition.
READ_COUNT = 500
#: What an event id holds: its partition and its entry id, split at the first of these.
_PARTITION_END = ":"
#: Wake-ups pushed when partitions are given up: as many waiting workers take one each.
WAKE_TOKENS = 16


class RedisEvents:
    def __init__(self, keys: Keys, performer: Performer, cluster: bool = False) -> None:
        self.keys = keys
        self.performer = performer
        #: On a Redis Cluster the streams are read one by one (a read of several spans slots), and none waits.
        self.cluster = cluster
        self._streams = [keys.clients(part, "events") for part in range(PARTITIONS)]
        #: The (group, consumer) pairs whose groups and consumers this process made sure of.
        self._ready: set[tuple[str, str]] = set()
        #: The partitions each (group, consumer) of this process holds the lease of.
        self._held: dict[tuple[str, str], set[int]] = defaultdict(set)

    async def read(self, group: str, consumer: str, claim_idle_ms: int,
                   block_ms: int) -> list[tuple[str, dict[str, str]]]:
        if (group, consumer) not in self._ready:
            await self._ensure(group, consumer)
            self._ready.add((group, consumer))
        try:
            return await self._read(group, consumer, claim_idle_ms, block_ms)
        except StoreUnavailable:
            self._ready.discard((group, consumer))  # a Redis that restarted empty lost them: made again next time
            raise

    async def leave(self, group: str, consumer: str) -> None:
        """Give this worker's partitions up at once (it stops), so the others take them at their next read."""
        await self._leave(group, consumer, sorted(self._held.pop((group, consumer), set())))

    @performed
    def _leave(self, group: str, consumer: str, held: list[int]) -> Steps[None]:
        yield Pipe((Lua("workers", (self.keys.workers(group),), (consumer, 1, "leave")),
                    *(self._lease(group, consumer, part, 0, "give") for part in held), *self._wake(group)))

    def _wake(self, group: str) -> tuple[Cmd, ...]:
        """Wake the workers of ``group`` that wait for a partition (:meth:`_read`): some were given up."""
        wake = self.keys.workers(group, "wake")
        return one("lpush", wake, *["x"] * WAKE_TOKENS), one("pexpire", wake, 1000)

    @performed
    def _ensure(self, group: str, consumer: str) -> Steps[None]:
        yield Pipe(tuple(Lua("ensure_group", (stream,), (group, consumer)) for stream in self._streams))

    def _lease(self, group: str, consumer: str, part: int, ttl_ms: int, action: str) -> Lua:
        return Lua("lock", (self.keys.lease(part, group),), (consumer, ttl_ms, action))

    def _share(self, group: str, consumer: str, claim_idle_ms: int) -> Steps[list[int]]:
        """The partitions this worker holds after taking its share among the workers alive: a lease each."""
        workers = sorted((yield Lua("workers", (self.keys.workers(group),), (consumer, claim_idle_ms, "join"))))
        rank = workers.index(consumer) if consumer in workers else 0
        share = [part for part in range(PARTITIONS) if part % max(len(workers), 1) == rank]
        held = self._held[group, consumer]
        given = sorted(held - set(share))
        answers = yield Pipe((*(self._lease(group, consumer, part, 0, "give") for part in given),
                              *(self._lease(group, consumer, part, claim_idle_ms, "take") for part in share),
                              *(self._wake(group) if given else ())))
        held.clear()
        taken = answers[len(given):len(given) + len(share)]
        held.update(part for part, took in zip(share, taken, strict=True) if took)
        return sorted(held)

    @performed
    def _read(self, group: str, consumer: str, claim_idle_ms: int,
              block_ms: int) -> Steps[list[tuple[str, dict[str, str]]]]:
        """What the partitions this worker holds have for it: first what a worker before it read and did not ack
        (its lease ended: it died, or gave the partition up), then new events, waiting up to ``block_ms``. Holding
        none yet (the workers that had its share have not given it up), it waits as long for one to."""
        owned = yield from self._share(group, consumer, claim_idle_ms)
        if not owned:
            yield one("blpop", self.keys.workers(group, "wake"), block_ms / 1000)
            return []
        claims = yield Pipe(tuple(one("xautoclaim", self._streams[part], group, consumer, 0, "0-0", READ_COUNT)
                                  for part in owned))
        found = [(part, entries) for part, (_next, entries, *_deleted) in zip(owned, claims, strict=True) if entries]
        if not found and self.cluster:
            replies = yield Pipe(tuple(one("xreadgroup", group, consumer, {self._streams[part]: ">"}, READ_COUNT)
                                       for part in owned))
            found = [(part, entries) for part, reply in zip(owned, replies, strict=True) for _stream, entries in reply]
            if not found:  # waits, as a blocking read would
                yield one("blpop", self.keys.workers(group, "wake"), block_ms / 1000)
        elif not found:
            replies = yield one("xreadgroup", group, consumer, {self._streams[part]: ">" for part in owned},
                                READ_COUNT, block_ms)
            partition_of = {self._streams[part]: part for part in owned}
            found = [(partition_of[stream], entries) for stream, entries in replies or ()]
        return [(f"{part}{_PARTITION_END}{entry_id}", fields) for part, entries in found
                for entry_id, fields in entries if fields]

    @performed
    def ack(self, group: str, entry_ids: list[str]) -> Steps[None]:
        by_partition: dict[int, list[str]] = defaultdict(list)
        for event in entry_ids:
            part, _, entry_id = event.partition(_PARTITION_END)
            by_partition[int(part)].append(entry_id)
        if by_partition:
            yield Pipe(tuple(one("xack", self._streams[part], group, *ids) for part, ids in by_partition.items()))

    @performed
    def backlog(self) -> Steps[EventsBacklog]:
        """Summed over the partitions' streams; a group's consumers are the most any partition's group has."""
        replies = yield Pipe(tuple(one(method, stream) for stream in self._streams for method in ("xlen", "exists")))
        lengths, exist = replies[::2], replies[1::2]
        kept = [stream for stream, there in zip(self._streams, exist, strict=True) if there]
        # XINFO refuses a missing key.
        infos = (yield Pipe(tuple(one("xinfo_groups", stream) for stream in kept))) if kept else []
        groups: dict[str, GroupBacklog] = {}
        for info in infos:
            for found in info:
                name, lag = found["name"], found.get("lag")
                seen = groups.get(name, GroupBacklog(name, 0, 0, 0))
                groups[name] = GroupBacklog(
                    name, max(seen.consumers, int(found["consumers"])), seen.pending + int(found["pending"]),
                    None if lag is None or seen.lag is None else seen.lag + int(lag))
        return EventsBacklog(sum(int(length) for length in lengths), list(groups.values()))
