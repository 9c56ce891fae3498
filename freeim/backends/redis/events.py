"""Online/offline events in one Redis stream, read by ``freeim_events`` workers in a consumer group
(:class:`~freeim.backends.contract.EventStream`). The attach and detach scripts append to it."""

from __future__ import annotations

from ..contract import EventsBacklog, GroupBacklog
from .client import Performer, performed
from .keys import Keys
from .steps import Lua, Pipe, Steps, one

#: Events read at once.
READ_COUNT = 500


class RedisEvents:
    def __init__(self, keys: Keys, performer: Performer) -> None:
        self.keys = keys
        self.performer = performer

    @performed
    def read(self, group: str, consumer: str, claim_idle_ms: int,
             block_ms: int) -> Steps[list[tuple[str, dict[str, str]]]]:
        events = self.keys.shared("events")
        yield Lua("ensure_group", (events,), (group, consumer))
        _next, entries, *_deleted = yield one("xautoclaim", events, group, consumer, claim_idle_ms, "0-0", READ_COUNT)
        if not entries:
            found = yield one("xreadgroup", group, consumer, {events: ">"}, READ_COUNT, block_ms)
            entries = found[0][1] if found else []
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    @performed
    def ack(self, group: str, entry_ids: list[str]) -> Steps[None]:
        if entry_ids:
            yield one("xack", self.keys.shared("events"), group, *entry_ids)

    @performed
    def backlog(self) -> Steps[EventsBacklog]:
        events = self.keys.shared("events")
        length, exists = yield Pipe((one("xlen", events), one("exists", events)))
        groups = (yield one("xinfo_groups", events)) if exists else []  # XINFO refuses a missing key
        return EventsBacklog(int(length), [GroupBacklog(group["name"], int(group["consumers"]), int(group["pending"]),
                                                        None if group.get("lag") is None else int(group["lag"]))
                                           for group in groups])
