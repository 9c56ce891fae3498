"""Online/offline events in one Redis stream per client partition, read by ``freeim_events`` workers in a
consumer group (:class:`~freeim.backends.contract.EventStream`). The attach and detach scripts append to the
stream of the client's partition, so each client's events keep their order; events of different partitions
have none between them.

An event's id is ``<partition>:<stream entry id>``: entry ids are unique within one stream only."""

from __future__ import annotations

from collections import defaultdict

from ...exceptions import StoreUnavailable
from ..contract import EventsBacklog, GroupBacklog
from .client import Performer, performed
from .keys import PARTITIONS, Keys
from .steps import Lua, Pipe, Steps, one

#: Events read at once, per partition.
READ_COUNT = 500
#: What an event id holds: its partition and its entry id, split at the first of these.
_PARTITION_END = ":"


class RedisEvents:
    def __init__(self, keys: Keys, performer: Performer) -> None:
        self.keys = keys
        self.performer = performer
        self._streams = [keys.clients(part, "events") for part in range(PARTITIONS)]
        #: The (group, consumer) pairs whose groups and consumers this process made sure of.
        self._ready: set[tuple[str, str]] = set()

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

    @performed
    def _ensure(self, group: str, consumer: str) -> Steps[None]:
        yield Pipe(tuple(Lua("ensure_group", (stream,), (group, consumer)) for stream in self._streams))

    @performed
    def _read(self, group: str, consumer: str, claim_idle_ms: int,
              block_ms: int) -> Steps[list[tuple[str, dict[str, str]]]]:
        claims = yield Pipe(tuple(one("xautoclaim", stream, group, consumer, claim_idle_ms, "0-0", READ_COUNT)
                                  for stream in self._streams))
        found = [(part, entries) for part, (_next, entries, *_deleted) in enumerate(claims) if entries]
        if not found:
            replies = yield one("xreadgroup", group, consumer, dict.fromkeys(self._streams, ">"), READ_COUNT,
                                block_ms)
            partition_of = {stream: part for part, stream in enumerate(self._streams)}
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
